//! A flood of malformed and random datagrams at weft's Babel port, from a
//! neighbour namespace and link-local sources, does not crash weft, does not
//! change the routes it learned from an honest neighbour on another link,
//! does not stop its control socket, and shows up in its bad-packet counters.
//!
//! Line of three namespaces: 0 (honest weft) – 1 (weft under test) – 2
//! (attacker). The attacker sends 24,000 datagrams to node 1: random bytes,
//! random TLVs behind a valid header, truncated valid packets (with the
//! header length left alone or cut to match), bit-flipped valid packets,
//! huge lengths (body length 0xFFFF, TLVs and sub-TLVs running past their
//! end, 60 KB datagrams), plus some from a non-link-local address and from a
//! wrong source port.
//!
//! Unauthenticated Babel lets any neighbour announce routes, so "routes
//! unchanged" must not depend on luck: the valid packets that get mangled
//! come from two disjoint groups of source addresses. Group A sends only
//! Hellos, IHUs, requests, acks and unknown TLVs (it may become a neighbour
//! but has no Update to give); group B sends only Router-Id, Next Hop,
//! Update and request TLVs, never a Hello or IHU, so its link cost stays
//! infinite and none of its Updates can be selected. A few flipped bits can
//! turn a TLV into another type, but making a group-B source both heard
//! (Hellos) and acknowledged (an IHU) would take several specific flips in
//! several packets of that one source.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use common::netns::{node_v4, node_v6, Net};
use common::peers::{find_route, kernel_routes, link_locals, Weft, WeftIf};
use weft::babel::packet::{Message, PacketBuilder, SubTlv, Update};
use weft::babel::{Centisecs, Metric, Prefix, RouterId, SeqNo};
use weft::sim::Topology;

const HONEST: usize = 0;
const TARGET: usize = 1;
const ATTACKER: usize = 2;
const DATAGRAMS: usize = 24_000;
/// Link-local source addresses of the attacker; even ones are group A.
const SOURCES: usize = 32;

/// xorshift64*: reproducible datagrams from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn packet(msgs: &[(Message, Vec<SubTlv>)]) -> Vec<u8> {
    let mut b = PacketBuilder::new(1400);
    for (m, subs) in msgs {
        b.push_with_sub_tlvs(m, subs);
    }
    b.take()
}

/// A valid packet of group A: no Router-Id, Next Hop or Update.
fn group_a(r: &mut Rng) -> Vec<u8> {
    let other: Ipv6Addr = "fe80::dead:beef".parse().unwrap();
    let mut msgs = vec![(
        Message::Hello { unicast: r.below(2) == 0, seqno: SeqNo(r.next() as u16), interval: Centisecs(100) },
        Vec::new(),
    )];
    let ihu_to = match r.below(3) {
        0 => Some(other.into()),
        1 => Some(Ipv4Addr::new(192, 0, 2, 77).into()),
        _ => Some("2001:db8::77".parse::<Ipv6Addr>().unwrap().into()),
    };
    msgs.push((Message::Ihu { rxcost: Metric(96), interval: Centisecs(300), address: ihu_to }, Vec::new()));
    let extra = match r.below(5) {
        0 => Message::RouteRequest { prefix: None },
        1 => Message::RouteRequest { prefix: Some("fd99:1::/48".parse().unwrap()) },
        2 => Message::AckReq { opaque: r.next() as u16, interval: Centisecs(50) },
        3 => Message::Ack { opaque: r.next() as u16 },
        _ => {
            let len = r.below(40);
            Message::Unknown { tlv_type: 200, body: r.bytes(len) }
        }
    };
    let subs = if r.below(4) == 0 { vec![SubTlv { sub_type: 0x42, body: r.bytes(3) }] } else { Vec::new() };
    msgs.push((extra, subs));
    packet(&msgs)
}

/// A valid packet of group B: no Hello, no IHU.
fn group_b(r: &mut Rng) -> Vec<u8> {
    let mut rid = [0u8; 8];
    rid.copy_from_slice(&r.bytes(8));
    rid[0] = 0x0a;
    let router_id = RouterId(rid);
    let mut msgs = Vec::new();
    for k in 0..1 + r.below(6) {
        let (prefix, next_hop, v4_via_v6): (Prefix, _, _) = match r.below(4) {
            0 => (format!("fd99:{:x}:{k}::/48", r.below(0xffff)).parse().unwrap(), None, false),
            1 => (format!("fd99:1:2:3::{k}/128").parse().unwrap(), None, false),
            2 => (
                format!("10.99.{}.0/24", r.below(250)).parse().unwrap(),
                Some(Ipv4Addr::new(10, 98, 0, 2).into()),
                false,
            ),
            _ => (format!("10.98.{}.{k}/32", r.below(250)).parse().unwrap(), None, true),
        };
        let metric = if r.below(5) == 0 { Metric::INFINITY } else { Metric(r.below(1000) as u16) };
        let u = Update {
            prefix,
            router_id,
            next_hop: if metric.is_infinite() { None } else { next_hop },
            v4_via_v6,
            seqno: SeqNo(r.next() as u16),
            metric,
            interval: Centisecs(400),
        };
        // A mandatory sub-TLV (source prefix) makes the Update one to ignore.
        let subs = if r.below(6) == 0 {
            vec![SubTlv { sub_type: 0x80, body: vec![48, 0xfd, 0x99] }]
        } else {
            Vec::new()
        };
        msgs.push((Message::Update(u), subs));
    }
    if r.below(3) == 0 {
        msgs.push((
            Message::SeqnoRequest {
                seqno: SeqNo(r.next() as u16),
                hop_count: 2,
                router_id,
                prefix: "fd99:7::/48".parse().unwrap(),
            },
            Vec::new(),
        ));
    }
    packet(&msgs)
}

/// The `n`th datagram of the flood and the index of its source address.
fn datagram(r: &mut Rng, n: usize) -> (Vec<u8>, usize) {
    let src = r.below(SOURCES);
    let valid = |r: &mut Rng| if src % 2 == 0 { group_a(r) } else { group_b(r) };
    let d = match n % 8 {
        // Random bytes, any length up to an Ethernet frame.
        0 => {
            let len = r.below(1500);
            r.bytes(len)
        }
        // A valid header in front of random TLVs.
        1 => {
            let len = r.below(300);
            let body = r.bytes(len);
            let mut d = vec![42, 2];
            d.extend_from_slice(&(body.len() as u16).to_be_bytes());
            d.extend(body);
            d
        }
        // Truncated: the header still claims the full length.
        2 => {
            let mut d = valid(r);
            d.truncate(r.below(d.len()));
            d
        }
        // Truncated inside a TLV, with the header length cut to match.
        3 => {
            let mut d = valid(r);
            let cut = 4 + r.below(d.len() - 4);
            d.truncate(cut);
            d[2..4].copy_from_slice(&((cut - 4) as u16).to_be_bytes());
            d
        }
        // One to three flipped bits, anywhere (header included).
        4 | 5 => {
            let mut d = valid(r);
            for _ in 0..1 + r.below(3) {
                let bit = r.below(d.len() * 8);
                d[bit / 8] ^= 1 << (bit % 8);
            }
            d
        }
        // Huge lengths.
        6 => {
            let mut d = valid(r);
            match r.below(4) {
                0 => d[2..4].copy_from_slice(&0xffffu16.to_be_bytes()),
                1 => {
                    // The last TLV's length runs far past the end.
                    let body = d.len() as u16 - 4;
                    d.extend_from_slice(&[8, 255, 2, 0, 128, 0]);
                    d[2..4].copy_from_slice(&(body + 6).to_be_bytes());
                }
                2 => {
                    // A sub-TLV running past the end of its TLV.
                    let body = d.len() as u16 - 4;
                    d.extend_from_slice(&[4, 10, 0, 0, 0, 1, 0, 100, 2, 200, 0, 0]);
                    d[2..4].copy_from_slice(&(body + 12).to_be_bytes());
                }
                _ => {
                    // A 60 KB datagram: valid header, valid TLVs repeated,
                    // then random bytes.
                    let one = d[4..].to_vec();
                    while d.len() < 30_000 {
                        d.extend_from_slice(&one);
                    }
                    d.extend(r.bytes(30_000));
                    let body = (d.len() - 4).min(0xffff) as u16;
                    d[2..4].copy_from_slice(&body.to_be_bytes());
                }
            }
            d
        }
        // Valid, unmangled: the parsers' ordinary path under load.
        _ => valid(r),
    };
    (d, src)
}

#[test]
fn flood_of_bad_datagrams_neither_crashes_weft_nor_moves_its_routes() {
    require_netns!();
    let mut net = Net::new(&Topology::line(3));
    let (t_to_h, t_to_a) = (net.dev(TARGET, HONEST), net.dev(TARGET, ATTACKER));
    let (a_dev, h_dev) = (net.dev(ATTACKER, TARGET), net.dev(HONEST, TARGET));
    let _honest = Weft::start(
        &mut net,
        HONEST,
        &[WeftIf::wired(&h_dev)],
        &[&format!("{}/128", node_v6(HONEST)), &format!("{}/32", node_v4(HONEST))],
    );
    let target = Weft::start(
        &mut net,
        TARGET,
        &[WeftIf::wired(&t_to_h), WeftIf::wired(&t_to_a)],
        &[&format!("{}/128", node_v6(TARGET))],
    );
    Net::wait_until(Duration::from_secs(20), || {
        let r = kernel_routes(&net, TARGET, "119");
        find_route(&r, &node_v6(HONEST)).is_some() && find_route(&r, &node_v4(HONEST)).is_some()
    })
    .unwrap_or_else(|| panic!("weft did not learn the honest routes:\n{}", net.log(TARGET, "weft.log")));
    let routes_before = kernel_routes(&net, TARGET, "119");
    let selected = |w: &Weft| -> Vec<String> {
        let mut v: Vec<String> = w
            .routes()
            .iter()
            .filter(|r| r["installed"] == true)
            .map(|r| format!("{} via {} metric {}", r["prefix"], r["next_hop"], r["metric"]))
            .collect();
        v.sort();
        v
    };
    let selected_before = selected(&target);
    let status_before = target.query("status");
    let stats_before = status_before["babel"].clone();
    let socket_before = status_before["socket"].clone();
    let (rcvbuf_before, read_before) = (snmp6(&net, "Udp6RcvbufErrors"), snmp6(&net, "Udp6InDatagrams"));
    let reasm_before = snmp6(&net, "Ip6ReasmFails");

    // The attacker's addresses: link-local sources, and one that is not.
    let sources: Vec<Ipv6Addr> =
        (0..SOURCES).map(|k| format!("fe80::bad:{:x}", k + 1).parse().unwrap()).collect();
    for a in &sources {
        net.exec_ok(ATTACKER, &["ip", "addr", "add", &format!("{a}/64"), "dev", &a_dev, "nodad"]);
    }
    net.exec_ok(ATTACKER, &["ip", "addr", "add", "fd99::bad/64", "dev", &a_dev, "nodad"]);
    let mut targets: Vec<Ipv6Addr> =
        link_locals(&net, TARGET, &t_to_a).iter().map(|a| a.parse().unwrap()).collect();
    targets.push("ff02::1:6".parse().unwrap());

    let ns = net.nodes[ATTACKER].ns.clone();
    let t0 = Instant::now();
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            let nsf = std::fs::File::open(format!("/run/netns/{ns}")).expect("attacker namespace");
            nix::sched::setns(&nsf, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let ifindex = nix::net::if_::if_nametoindex(a_dev.as_str()).expect("attacker device");
            let bind = |a: Ipv6Addr, port: u16| {
                UdpSocket::bind(SocketAddrV6::new(
                    a,
                    port,
                    0,
                    if a.segments()[0] == 0xfe80 { ifindex } else { 0 },
                ))
                .unwrap_or_else(|e| panic!("bind [{a}]:{port}: {e}"))
            };
            let socks: Vec<UdpSocket> = sources.iter().map(|a| bind(*a, 6696)).collect();
            let wrong_port = bind(sources[0], 6697);
            let not_link_local = bind("fd99::bad".parse().unwrap(), 6696);
            let mut r = Rng(0x0005_eed0_fbad_10ad);
            let mut sent = 0usize;
            for n in 0..DATAGRAMS {
                let (d, src) = datagram(&mut r, n);
                let to = SocketAddrV6::new(targets[n % targets.len()], 6696, 0, ifindex);
                let sock = match n % 97 {
                    0 => &wrong_port,
                    1 => &not_link_local,
                    _ => &socks[src],
                };
                // An empty datagram is valid UDP; only a full socket buffer
                // makes a send fail here.
                if sock.send_to(&d, to).is_ok() {
                    sent += 1;
                }
                // Paced at roughly 10,000 datagrams/s: a flood, but one that
                // the kernel's socket buffer does not simply discard.
                if n % 100 == 99 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            sent
        })
        .join()
        .expect("flood thread")
    });
    let flood_time = t0.elapsed();

    // Still running, control socket answering at once.
    assert!(target.running(&mut net), "weft died under the flood:\n{}", net.log(TARGET, "weft.log"));
    let t_ctl = Instant::now();
    target.try_query("status").unwrap_or_else(|e| panic!("control socket after the flood: {e}"));
    let ctl_latency = t_ctl.elapsed();
    // The honest neighbour is still there at full cost, and a Hello of it
    // arrives after the flood: whatever the flood disturbed has had time
    // to show.
    let flood_end = Instant::now();
    let fresh_hello = Net::wait_until(Duration::from_secs(5), || {
        target.neighbours().iter().any(|n| {
            n["interface"] == t_to_h.as_str()
                && n["cost"] == 96
                && n["last_hello_ms"]
                    .as_u64()
                    .is_some_and(|ms| (ms as u128) < flood_end.elapsed().as_millis())
        })
    });
    assert!(
        fresh_hello.is_some(),
        "no Hello from the honest neighbour after the flood: {:?}",
        target.neighbours()
    );
    // Counted once the Hello that arrived after the flood was read: every
    // datagram queued before it in the one socket has been read too (the
    // first status, taken at once for the latency, can precede that).
    let status = target.try_query("status").unwrap_or_else(|e| panic!("control socket after the flood: {e}"));
    let routes_after = kernel_routes(&net, TARGET, "119");
    assert_eq!(routes_after, routes_before, "the flood changed weft's kernel routes");
    assert_eq!(selected(&target), selected_before, "the flood changed weft's selected routes");

    let b = &status["babel"];
    let delta = |k: &str| b[k].as_u64().unwrap_or(0) - stats_before[k].as_u64().unwrap_or(0);
    let (pkts, bad, bad_tlvs, ignored) =
        (delta("packets_in"), delta("bad_packets"), delta("bad_tlvs"), delta("ignored_tlvs"));
    let rcvbuf_errors = snmp6(&net, "Udp6RcvbufErrors") - rcvbuf_before;
    // Datagrams the kernel handed to a UDP socket's reader in the target
    // (counted at recvmsg): only weft's socket is there.
    let read_by_kernel = snmp6(&net, "Udp6InDatagrams") - read_before;
    let reasm_fails = snmp6(&net, "Ip6ReasmFails") - reasm_before;
    let sk = &status["socket"];
    let sk_delta = |k: &str| sk[k].as_u64().unwrap_or(0) - socket_before[k].as_u64().unwrap_or(0);
    let socket_read =
        ["received", "dropped_not_link_local", "dropped_bad_port", "dropped_not_joined", "dropped_truncated"]
            .iter()
            .map(|k| sk_delta(k))
            .sum::<u64>();
    eprintln!(
        "flood: {sent} datagrams in {flood_time:?} ({:.0}/s); engine saw {pkts}, bad packets {bad}, \
         malformed TLVs {bad_tlvs}, ignored TLVs {ignored}; kernel dropped {rcvbuf_errors} (socket buffer \
         full); {reasm_fails} not reassembled; socket read {socket_read} of {read_by_kernel} delivered, \
         {} dropped at its edge; control socket answered in {ctl_latency:?}; {} neighbours afterwards",
        sent as f64 / flood_time.as_secs_f64(),
        socket_read - sk_delta("received"),
        target.neighbours().len()
    );
    assert!(bad >= 3000, "weft counted only {bad} bad packets of {sent} sent: {b}");
    assert!(bad_tlvs >= 1000, "weft counted only {bad_tlvs} malformed TLVs: {b}");
    assert!(ignored > 0, "no TLV ignored (mandatory sub-TLVs were sent): {b}");
    // The flood did reach the engine (60 KB datagrams are fragmented on the
    // veth; the kernel drops some for a full socket buffer or reassembly
    // memory), and nothing the kernel delivered was lost inside weft: every
    // datagram its socket read was counted, at the edge (wrong port, not
    // link-local: 2 in 97 of the flood) or by the engine. The kernel's
    // count is taken after the status, so honest Hellos may add a few.
    let deliverable = (sent * 95 / 97) as u64;
    assert!(pkts >= deliverable / 2, "only {pkts} of ~{deliverable} datagrams reached weft's engine");
    assert!(
        socket_read <= read_by_kernel && read_by_kernel - socket_read <= 20,
        "the kernel delivered {read_by_kernel} datagrams, weft's socket counts {socket_read}: {sk}"
    );
    assert!(
        pkts + 5 >= sk_delta("received"),
        "the socket accepted {} datagrams, the engine saw {pkts}",
        sk_delta("received")
    );
    assert!(
        sk_delta("dropped_bad_port") + sk_delta("dropped_not_link_local") > 0,
        "no edge drop counted: {sk}"
    );
}

/// A counter of /proc/net/snmp6 in the target's namespace.
fn snmp6(net: &Net, name: &str) -> u64 {
    let snmp = String::from_utf8_lossy(&net.exec_ok(TARGET, &["cat", "/proc/net/snmp6"]).stdout).to_string();
    snmp.lines()
        .find_map(|l| l.strip_prefix(name).filter(|v| v.starts_with(char::is_whitespace)))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /proc/net/snmp6"))
}
