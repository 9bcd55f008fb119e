//! The real daemon under a flood on its raw mesh link (root required):
//! an attacker on the segment sends forged beacons, Offers and Answers
//! (UDP 6698) and weft TLV 224 credential fragments (Babel, UDP 6696, on a
//! plain-Babel link to the daemon), each at a fixed rate, for a fixed time.
//! Measured on the target daemon: CPU time, RSS at the start and end of the
//! flood (and its peak), and how long a real neighbour that arrives during
//! the flood takes to get its tunnel. Also printed: what the daemon counted
//! (rate-limited admissions, signature checks, X25519 computations, log
//! lines).
//!
//! `cargo bench --bench flood` runs 1000 datagrams/s of each kind for 60 s,
//! the real neighbour arriving after 20 s. Environment: `WEFT_FLOOD_RATE`
//! (per kind, per second), `WEFT_FLOOD_SECS`, `WEFT_FLOOD_SOURCES` (how many
//! link-local addresses the attacker sends beacons, Offers and Answers
//! from, in turn; default 1). Under
//! `cargo test --all-targets` (no `--bench`) it runs a 6 s smoke pass.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mesh::{Ca, Mesh, NodeConf, NodeId};
use common::netns::{seg_ll, Net};
use weft::link::wire::{LinkMessage, MAC_LEN};
use weft::sim::Topology;
use weft::trust::{Credential, PublicKey};

const SEG: &str = "mesh0";
const TARGET: usize = 0;
const ATTACKER: usize = 1;
const REAL: usize = 2;

/// xorshift64: the flood's keys, nonces and garbage (not cryptography).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn key(&mut self) -> PublicKey {
        let mut k = [0u8; 32];
        for c in k.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        k[31] &= 0x7f;
        k[0] |= 0x10;
        PublicKey(k)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What one flood stream sends: a datagram to `dst` made by `make`.
type Make = Box<dyn FnMut(&mut Rng) -> Vec<u8> + Send>;

struct Stream {
    name: &'static str,
    /// Source addresses, in turn (each a socket).
    sources: Vec<SocketAddr>,
    dst: SocketAddr,
    make: Make,
}

/// Streams sending from a thread in the attacker's namespace, each at
/// `rate` datagrams a second, paced in 10 ms batches.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Vec<(&'static str, Arc<AtomicU64>)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(net: &Net, i: usize, rate: u64, streams: Vec<Stream>) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sent = Vec::new();
        let mut threads = Vec::new();
        for (n, s) in streams.into_iter().enumerate() {
            let count = Arc::new(AtomicU64::new(0));
            sent.push((s.name, count.clone()));
            let ns = format!("/run/netns/{}", net.nodes[i].ns);
            let stop = stop.clone();
            let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
            threads.push(std::thread::spawn(move || {
                let sources = s.sources.clone();
                let setup = || -> Result<Vec<UdpSocket>, String> {
                    let f = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
                    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("setns: {e}"))?;
                    sources.iter().map(|a| UdpSocket::bind(a).map_err(|e| format!("bind {a}: {e}"))).collect()
                };
                let socks = match setup() {
                    Ok(x) => {
                        let _ = tx.send(Ok(()));
                        x
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let mut make = s.make;
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
                let t0 = Instant::now();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let due = t0.elapsed().as_millis() as u64 * rate / 1000;
                    while done < due {
                        let sock = &socks[done as usize % socks.len()];
                        if sock.send_to(&make(&mut rng), s.dst).is_ok() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        done += 1;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }));
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("flood stream in node {i}: {e}"),
                Err(e) => panic!("flood stream in node {i} did not start: {e}"),
            }
        }
        Flood { stop, sent, threads }
    }

    fn stop(self) -> Vec<(&'static str, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.sent.into_iter().map(|(n, c)| (n, c.load(Ordering::Relaxed))).collect()
    }
}

/// CPU time (user + system) of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A Babel packet holding one TLV of weft's type (224) with `body`.
fn babel_tlv224(body: &[u8]) -> Vec<u8> {
    let mut p = vec![42, 2];
    p.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    p.push(224);
    p.push(body.len() as u8);
    p.extend_from_slice(body);
    p
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !common::netns::have_netns() {
        println!("flood benchmark SKIPPED: needs root and iproute2 for network namespaces");
        return;
    }
    for tool in ["wireguard-go", "ping"] {
        assert!(common::netns::have(tool), "{tool} is needed: run scripts/install-deps.sh");
    }
    let env_num = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let rate = env_num("WEFT_FLOOD_RATE", 1000);
    let n_sources = env_num("WEFT_FLOOD_SOURCES", 1).clamp(1, 1000) as usize;
    let secs = env_num("WEFT_FLOOD_SECS", if full { 60 } else { 6 });
    let arrive_after = if full { 20 } else { 2 };
    let bin = env!("CARGO_BIN_EXE_weft");
    println!("# weft daemon under a flood on its raw link ({})", if full { "full run" } else { "smoke run" });
    println!("weft binary: {bin}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // target and attacker share the raw segment mesh0 and a plain Babel
    // link; the real neighbour joins the segment later.
    let topo = Topology::from_json(
        r#"{"nodes":["target","attacker","real"],"links":[{"source":"target","target":"attacker"}]}"#,
    )
    .expect("topology");
    let mut m = Mesh::new(&topo);
    let seg = m.net.add_segment(&[TARGET, ATTACKER, REAL], SEG);
    let plain = m.net.dev(TARGET, ATTACKER);
    let ca = Ca::init(m.net.root.join("ca"));
    let ids: Vec<NodeId> =
        ["target", "attacker", "real"].iter().enumerate().map(|(i, n)| NodeId::new(m.dir(i), n)).collect();
    for i in [TARGET, REAL] {
        let cred = ca.sign(&ids[i], &[], None);
        let mut conf = NodeConf::new(&ca, &ids[i], &cred, &[SEG]);
        if i == TARGET {
            conf.plain_ifaces = vec![plain.clone()];
        }
        m.write_conf(i, &conf);
    }
    // A valid credential of a node that never shows up: replayed in beacons
    // and Offers (it verifies: it is public), and sent in TLV 224.
    let ghost = NodeId::new(&m.net.root.join("ghost"), "ghost");
    let ghost_cred =
        Credential::from_armour(&std::fs::read_to_string(ca.sign(&ghost, &[], None)).expect("ghost"))
            .expect("ghost credential");
    let ghost_bytes = ghost_cred.to_bytes().to_vec();
    let target_key: PublicKey = ids[TARGET].public.parse().expect("key");

    m.start(TARGET);
    let pid = m.net.nodes[TARGET].daemon.as_ref().expect("running").id();
    // The attacker's addresses are usable once DAD is done.
    m.net.wait_link_local(ATTACKER, SEG, Duration::from_secs(10));
    m.net.wait_link_local(ATTACKER, &m.net.dev(ATTACKER, TARGET), Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let ifindex = |i: usize, dev: &str| -> u32 {
        let out = m.net.exec_ok(i, &["cat", &format!("/sys/class/net/{dev}/ifindex")]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("ifindex")
    };
    let a_seg = ifindex(ATTACKER, SEG);
    // The attacker's source addresses on the segment (extra ones: spoofed).
    let mut sources =
        vec![SocketAddr::V6(SocketAddrV6::new(seg_ll(ATTACKER, seg).parse().unwrap(), 0, 0, a_seg))];
    for k in 1..n_sources {
        let a = format!("fe80::dead:{:x}:{:x}", k >> 16, k & 0xffff);
        m.net.exec_ok(ATTACKER, &["ip", "addr", "add", &format!("{a}/64"), "dev", SEG, "nodad"]);
        sources.push(SocketAddr::V6(SocketAddrV6::new(a.parse().unwrap(), 0, 0, a_seg)));
    }
    let a_plain_ll: Ipv6Addr = common::netns::ll(ATTACKER, TARGET).parse().unwrap();
    let a_plain = ifindex(ATTACKER, &m.net.dev(ATTACKER, TARGET));
    let target_seg: Ipv6Addr = seg_ll(TARGET, seg).parse().expect("address");
    let to_target = SocketAddr::V6(SocketAddrV6::new(target_seg, 6698, 0, a_seg));
    let group = SocketAddr::V6(SocketAddrV6::new("ff02::114".parse().unwrap(), 6698, 0, a_seg));
    let babel_group = SocketAddr::V6(SocketAddrV6::new("ff02::1:6".parse().unwrap(), 6696, 0, a_plain));

    let (gb1, gb2, gb3) = (ghost_bytes.clone(), ghost_bytes.clone(), ghost_bytes.clone());
    let ghost_rid = weft::trust::derive::router_id(ghost_cred.public_key());
    let ghost_key = *ghost_cred.public_key();
    let streams = vec![
        Stream {
            name: "beacons",
            sources: sources.clone(),
            dst: group,
            make: Box::new(move |r: &mut Rng| {
                // A fresh key with a forged credential, or the ghost's key
                // with its (valid, public) credential replayed.
                if r.next() % 4 == 0 {
                    LinkMessage::Beacon { key: ghost_key, credential: gb1.clone() }.encode()
                } else {
                    LinkMessage::Beacon { key: r.key(), credential: r.bytes(200) }.encode()
                }
            }),
        },
        Stream {
            name: "offers",
            sources: sources.clone(),
            dst: to_target,
            make: Box::new(move |r: &mut Rng| {
                let (from, credential) =
                    if r.next() % 2 == 0 { (ghost_key, gb2.clone()) } else { (r.key(), r.bytes(200)) };
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&r.bytes(MAC_LEN));
                LinkMessage::Offer { from, to: target_key, nonce: r.next(), stamp: r.next(), credential, mac }
                    .encode()
            }),
        },
        Stream {
            name: "answers",
            sources: sources.clone(),
            dst: to_target,
            make: Box::new(move |r: &mut Rng| {
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&r.bytes(MAC_LEN));
                LinkMessage::Answer {
                    from: r.key(),
                    to: target_key,
                    echo: r.next(),
                    nonce: r.next(),
                    port: 51820,
                    credential: gb3.clone(),
                    mac,
                }
                .encode()
            }),
        },
        Stream {
            name: "tlv224",
            sources: vec![SocketAddr::V6(SocketAddrV6::new(a_plain_ll, 6696, 0, a_plain))],
            dst: babel_group,
            make: Box::new(move |r: &mut Rng| {
                // A whole credential in one chunk, or a forged fragment.
                let chunk = if r.next() % 2 == 0 {
                    weft::mesh::tlv::MeshTlv::CredentialChunk {
                        router_id: ghost_rid,
                        index: 0,
                        count: 1,
                        data: ghost_bytes.clone(),
                    }
                } else {
                    let mut rid = [0u8; 8];
                    rid.copy_from_slice(&r.bytes(8));
                    weft::mesh::tlv::MeshTlv::CredentialChunk {
                        router_id: weft::babel::RouterId(rid),
                        index: (r.next() % 3) as u8,
                        count: 3,
                        data: r.bytes(200),
                    }
                };
                babel_tlv224(&chunk.encode())
            }),
        },
    ];

    let (cpu0, rss0) = (cpu_seconds(pid), rss_kib(pid));
    let t0 = Instant::now();
    let flood = Flood::start(&m.net, ATTACKER, rate, streams);
    let mut rss_max = rss0;
    let mut arrived: Option<Instant> = None;
    let mut tunnel_after: Option<Duration> = None;
    let real_key = ids[REAL].public.clone();
    let prefix = |k: &str| -> String {
        let key: PublicKey = k.parse().expect("key");
        format!("weft{:02x}{:02x}{:02x}", key.0[0], key.0[1], key.0[2])
    };
    let (target_tunnel, real_tunnel) = (prefix(&real_key), prefix(&ids[TARGET].public));
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(200));
        rss_max = rss_max.max(rss_kib(pid));
        if arrived.is_none() && t0.elapsed() >= Duration::from_secs(arrive_after) {
            // Counted from the real neighbour's start: its daemon's own
            // start-up is part of the time.
            arrived = Some(Instant::now());
            m.start(REAL);
        }
        if let (Some(at), None) = (arrived, tunnel_after) {
            let up = m.tunnels(TARGET).keys().any(|n| n.starts_with(&target_tunnel))
                && m.tunnels(REAL).keys().any(|n| n.starts_with(&real_tunnel));
            if up {
                tunnel_after = Some(at.elapsed());
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss1) = (cpu_seconds(pid), rss_kib(pid));
    let sent = flood.stop();
    let st = m.status(TARGET);
    let log_lines = m.log(TARGET).lines().count();
    println!("flood: {rate}/s of each kind for {secs} s, from {n_sources} source address(es); sent:");
    for (name, n) in &sent {
        println!("  {name:8} {n:7} ({:.0}/s)", *n as f64 / elapsed);
    }
    println!(
        "target daemon: CPU {:.2} s in {:.1} s = {:.1} % of one core; RSS {} KiB at the start, {} KiB at the end (growth {} KiB), peak {} KiB",
        cpu1 - cpu0,
        elapsed,
        100.0 * (cpu1 - cpu0) / elapsed,
        rss0,
        rss1,
        rss1 as i64 - rss0 as i64,
        rss_max
    );
    match tunnel_after {
        Some(d) => println!(
            "real neighbour (started after {arrive_after} s of flood): tunnels both ways {:.2} s after its start",
            d.as_secs_f64()
        ),
        None => {
            println!("real neighbour (started after {arrive_after} s of flood): NO TUNNEL within the flood")
        }
    }
    let t = &st["trust"];
    println!("target counted: link {}", t["link"]);
    println!("target counted: crypto {}, mesh {}", t["crypto"], t["mesh"]);
    println!("target log: {log_lines} lines in all");
    assert!(
        tunnel_after.is_some_and(|d| d <= Duration::from_secs(10)),
        "the real neighbour got no tunnel within 10 s"
    );
}
