//! End to end, proved in network namespaces with the real daemon and
//! wireguard-go: in a line n0 - n1 - n2 of credentialed nodes, traffic from
//! n0 to n2 (mesh addresses and granted IPv4 prefixes) crosses the relay n1
//! only as ciphertext. A capture on *every* interface of n1 (`-i any`: the
//! raw links, each per-hop tunnel as n1 decrypts it with its own private
//! key, and `lo`) never holds the ping's marker bytes; the same capture on
//! n0 does (so the capture would have seen them), and with `end_to_end '0'`
//! n1's capture holds them too (the control: the check can fail).
//!
//! Needs root, wireguard-go and dumpcap (scripts/install-deps.sh). Each test
//! builds its own namespaces; everything is removed on drop.

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use common::mesh::{mesh_address_of, Ca, Mesh, NodeConf, NodeId};
use common::netns::Net;
use weft::sim::Topology;

const CONVERGE: Duration = Duration::from_secs(40);
/// `ping -p`: 8 bytes that appear in nothing else ("weft", e2e, a tag).
const MARKER: &str = "77656674e2e07e57";

fn v4_prefix(i: usize) -> String {
    format!("10.89.{}.0/24", i + 1)
}

fn v4_host(i: usize) -> String {
    format!("10.89.{}.1", i + 1)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn marker_bytes() -> Vec<u8> {
    hex(MARKER)
}

fn contains(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

struct AnyCapture<'a> {
    net: &'a Net,
    node: usize,
    child: Child,
    file: PathBuf,
}

/// Pings on `lo` that bracket a capture: once one is in the file, the
/// capture holds everything the node saw before it (one socket on `any`
/// takes packets in order), so an absence found in it means something.
/// (tests/common/mesh.rs's `Capture` does this per device, with tshark; a
/// capture on `any` that must include `weft-e2e`, which has no link-local
/// address to ping from, does it on `lo` and reads the bytes.)
const START: &str = "5745465453544152";
const END: &str = "574546542d454e44";

/// dumpcap on every interface of node `i`, including those made later;
/// returns once it provably captures.
fn capture_all<'a>(net: &'a Net, i: usize, name: &str) -> AnyCapture<'a> {
    let file = net.dir(i).join(format!("{name}.pcapng"));
    let log = format!("{name}.dumpcap.log");
    let child = net.spawn(i, &["dumpcap", "-q", "-i", "any", "-w", file.to_str().unwrap()], &log);
    let ready = Net::wait_until(Duration::from_secs(15), || net.log(i, &log).contains("File:"));
    assert!(ready.is_some(), "dumpcap did not start on node {i}: {}", net.log(i, &log));
    let cap = AnyCapture { net, node: i, child, file };
    cap.mark(START);
    cap
}

impl AnyCapture<'_> {
    /// Pings `lo` with `pattern` until the capture file holds it.
    fn mark(&self, pattern: &str) {
        let bytes = hex(pattern);
        let seen = Net::wait_until(Duration::from_secs(20), || {
            self.net.exec(self.node, &["ping", "-6", "-c", "1", "-W", "1", "-p", pattern, "::1"]);
            std::fs::read(&self.file).is_ok_and(|b| contains(&b, &bytes) > 0)
        });
        assert!(seen.is_some(), "node {}'s capture never showed its marker {pattern}", self.node);
    }

    /// Stops once everything before now is in the file (the end marker),
    /// and returns the file's bytes.
    fn stop(mut self) -> Vec<u8> {
        self.mark(END);
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let done =
            Net::wait_until(Duration::from_secs(10), || self.child.try_wait().ok().flatten().is_some());
        if done.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        std::fs::read(&self.file).expect("capture file")
    }
}

struct Line {
    m: Mesh,
    mesh: Vec<String>,
}

fn line(end_to_end: bool) -> Line {
    let mut m = Mesh::new(&Topology::line(3));
    let ca = Ca::init(m.net.root.join("ca"));
    let mut mesh = Vec::new();
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[&v4_prefix(i)], None);
        let ifaces: Vec<String> = match i {
            0 => vec![m.net.dev(0, 1)],
            1 => vec![m.net.dev(1, 0), m.net.dev(1, 2)],
            _ => vec![m.net.dev(2, 1)],
        };
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        conf.announces = vec![v4_prefix(i)];
        conf.main_extra = vec![format!("option end_to_end '{}'", u8::from(end_to_end))];
        m.net.exec_ok(i, &["ip", "addr", "add", &format!("{}/32", v4_host(i)), "dev", "lo"]);
        m.write_conf(i, &conf);
        mesh.push(mesh_address_of(&cred));
    }
    for i in 0..3 {
        m.start(i);
    }
    Line { m, mesh }
}

fn await_or_fail(m: &Mesh, timeout: Duration, what: &str, nodes: &[usize], cond: impl FnMut() -> bool) {
    if Net::wait_until(timeout, cond).is_none() {
        let logs: Vec<String> = nodes.iter().map(|&i| m.log_tail(i, 60)).collect();
        panic!("timed out after {timeout:?}: {what}\n{}", logs.join("\n"));
    }
}

/// Pings with the marker from n0 to n2 (mesh address and IPv4 grant) until
/// five of each got through; returns the captures of n0 and n1.
fn marked_pings(l: &Line, within: Duration) -> (Vec<u8>, Vec<u8>) {
    let (m, mesh) = (&l.m, &l.mesh);
    let relay = capture_all(&m.net, 1, "relay");
    let sender = capture_all(&m.net, 0, "sender");
    for (src, dst) in [(mesh[0].clone(), mesh[2].clone()), (v4_host(0), v4_host(2))] {
        let family = if dst.contains(':') { "-6" } else { "-4" };
        let mut ok = 0;
        await_or_fail(m, within, &format!("5 marked pings {src} -> {dst}"), &[0, 1, 2], || {
            let out = m.net.exec(0, &["ping", family, "-c", "1", "-W", "1", "-p", MARKER, "-I", &src, &dst]);
            ok += usize::from(out.status.success());
            ok >= 5
        });
    }
    (sender.stop(), relay.stop())
}

#[test]
fn a_relay_sees_only_ciphertext_end_to_end() {
    require_mesh_tools!();
    let l = line(true);
    let m = &l.m;
    // Every node has a peer for each other node on weft-e2e, and routes the
    // others' mesh addresses and grants into it.
    await_or_fail(m, CONVERGE, "every node has two end-to-end peers", &[0, 1, 2], || {
        (0..3).all(|i| m.status(i)["end_to_end"]["peers"] == 2)
    });
    await_or_fail(m, Duration::from_secs(10), "n0 routes n2 into weft-e2e", &[0], || {
        let r = m.routes(0);
        r.get(&format!("{}/128", l.mesh[2])).is_some_and(|d| d == "weft-e2e")
            && r.get(&v4_prefix(2)).is_some_and(|d| d == "weft-e2e")
    });
    let (sender, relay) = marked_pings(&l, Duration::from_secs(20));
    let marker = marker_bytes();
    let seen_by_sender = contains(&sender, &marker);
    assert!(
        seen_by_sender >= 10,
        "the sender's capture must hold the marker in clear (on weft-e2e): {seen_by_sender}"
    );
    assert_eq!(contains(&relay, &marker), 0, "the relay n1 saw the marker in clear on one of its interfaces");
    // The relay forwarded the traffic (it is the only path): as ciphertext.
    let st = m.status(0);
    assert_eq!(st["end_to_end"]["state"], "up", "{}", st["end_to_end"]);
    // `weft nodes`: each other node's end-to-end peer endpoint, [T]:6699.
    let nodes = m.query(0, "nodes");
    let with_peer = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["end_to_end"]
                .as_str()
                .is_some_and(|e| e.starts_with("[fd42:77:1:ffff:") && e.ends_with("]:6699"))
        })
        .count();
    assert_eq!(with_peer, 2, "{nodes:#}");
    // The transport prefix is held unreachable; transport addresses go hop by hop.
    let tp = m.net.exec_ok(0, &["ip", "-6", "route", "show", "type", "unreachable", "proto", "all"]);
    let tp = String::from_utf8_lossy(&tp.stdout);
    assert!(tp.contains("fd42:77:1:ffff::/64"), "no unreachable transport prefix on n0: {tp}");
}

/// `weft-e2e` taken down by hand: the kernel drops its routes, and the
/// other nodes' addresses become unreachable (never reached through some
/// covering route in clear); up again, end to end is back.
#[test]
fn weft_e2e_down_makes_node_addresses_unreachable_until_up() {
    require_mesh_tools!();
    let l = line(true);
    let m = &l.m;
    let m2 = format!("{}/128", l.mesh[2]);
    await_or_fail(m, CONVERGE, "n0 routes n2 into weft-e2e", &[0, 1, 2], || {
        m.routes(0).get(&m2).is_some_and(|d| d == "weft-e2e")
    });
    let unreachable = || {
        let out = m.net.exec_ok(0, &["ip", "-6", "route", "show", "type", "unreachable", "proto", "119"]);
        String::from_utf8_lossy(&out.stdout).contains(&l.mesh[2])
    };
    m.net.exec_ok(0, &["ip", "link", "set", "weft-e2e", "down"]);
    await_or_fail(m, Duration::from_secs(10), "n2's mesh address unreachable on n0", &[0], unreachable);
    assert!(!m.net.ping_from(0, &l.mesh[0], &l.mesh[2]), "a ping got through with weft-e2e down");
    m.net.exec_ok(0, &["ip", "link", "set", "weft-e2e", "up"]);
    await_or_fail(m, Duration::from_secs(20), "end to end back after weft-e2e came up", &[0, 2], || {
        m.routes(0).get(&m2).is_some_and(|d| d == "weft-e2e") && m.net.ping_from(0, &l.mesh[0], &l.mesh[2])
    });
}

/// The same line with 15 % of the relay's raw-link traffic lost, both ways
/// (every WireGuard datagram in and out of n1, hence Babel, handshakes and
/// the pings alike): the peers still form, the pings get through end to end,
/// and the relay still sees no marker.
#[test]
fn end_to_end_holds_on_lossy_links() {
    require_mesh_tools!();
    let l = line(true);
    let m = &l.m;
    for peer in [0, 2] {
        let dev = m.net.dev(1, peer);
        m.net.nft(
            1,
            &format!(
                "table inet e2eloss_{dev} {{\n chain in_c {{ type filter hook input priority -5; iifname \"{dev}\" numgen random mod 100 < 15 drop; }}\n chain out_c {{ type filter hook output priority -5; oifname \"{dev}\" numgen random mod 100 < 15 drop; }}\n}}\n"
            ),
        );
    }
    await_or_fail(
        m,
        Duration::from_secs(60),
        "n0 and n2 have each other as end-to-end peer",
        &[0, 1, 2],
        || [0, 2].iter().all(|&i| m.status(i)["end_to_end"]["peers"].as_u64() >= Some(1)),
    );
    let t = std::time::Instant::now();
    let (sender, relay) = marked_pings(&l, Duration::from_secs(90));
    eprintln!("10 marked pings through 15 % loss took {:?}", t.elapsed());
    assert!(contains(&sender, &marker_bytes()) >= 10, "the sender's capture holds the marker");
    assert_eq!(contains(&relay, &marker_bytes()), 0, "the relay saw the marker in clear");
}

#[test]
fn without_end_to_end_the_relay_reads_the_traffic() {
    require_mesh_tools!();
    let l = line(false);
    let m = &l.m;
    await_or_fail(m, CONVERGE, "n0 routes n2 through its tunnel", &[0, 1, 2], || {
        let r = m.routes(0);
        r.get(&format!("{}/128", l.mesh[2])).is_some_and(|d| d.starts_with("weft") && d != "weft-e2e")
            && r.contains_key(&v4_prefix(2))
    });
    assert!(m.status(0)["end_to_end"].is_null(), "end to end is off");
    let (_, relay) = marked_pings(&l, Duration::from_secs(20));
    assert!(
        contains(&relay, &marker_bytes()) >= 10,
        "per hop only, the relay decrypts and must see the marker: the capture works"
    );
}

/// Busy and total jiffies of the whole machine (all namespaces share it).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let v: Vec<u64> =
        stat.lines().next().unwrap().split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    (v.iter().sum::<u64>() - idle, v.iter().sum())
}

struct Throughput {
    mbit: f64,
    cpu_s_per_gbit: f64,
    rtt_ms: f64,
}

/// iperf3 TCP n0 -> n2 (mesh addresses) for `secs`, and 100 pings.
fn measure(l: &Line, secs: u32) -> Throughput {
    let (m, mesh) = (&l.m, &l.mesh);
    let server = m.net.spawn(2, &["iperf3", "-s", "-1", "-B", &mesh[2]], "iperf3-server.log");
    let _ =
        Net::wait_until(Duration::from_secs(5), || m.net.log(2, "iperf3-server.log").contains("listening"));
    let (b0, t0) = cpu_jiffies();
    let out = m.net.exec_ok(0, &["iperf3", "-J", "-c", &mesh[2], "-B", &mesh[0], "-t", &secs.to_string()]);
    let (b1, t1) = cpu_jiffies();
    drop(server);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 -J");
    let bps = j["end"]["sum_received"]["bits_per_second"].as_f64().expect("bits_per_second");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    // Busy share of all cores, in CPU-seconds, per Gbit moved.
    let cpu_s = (b1 - b0) as f64 / (t1 - t0).max(1) as f64 * f64::from(secs) * cores;
    let ping = m.net.exec_ok(0, &["ping", "-6", "-q", "-c", "100", "-i", "0.02", "-I", &mesh[0], &mesh[2]]);
    let text = String::from_utf8_lossy(&ping.stdout);
    // rtt min/avg/max/mdev = a/b/c/d ms
    let rtt_ms =
        text.rsplit('=').next().and_then(|s| s.split('/').nth(1)).and_then(|s| s.trim().parse().ok());
    Throughput {
        mbit: bps / 1e6,
        cpu_s_per_gbit: cpu_s / (bps * f64::from(secs) / 1e9),
        rtt_ms: rtt_ms.unwrap_or(f64::NAN),
    }
}

/// `make bench`: throughput, CPU and latency n0 -> n2 through the relay n1,
/// per hop only against end to end (wireguard-go on every node).
#[test]
#[ignore = "benchmark (make bench)"]
fn bench_per_hop_against_end_to_end() {
    require_mesh_tools!();
    require_cmd!("iperf3");
    let secs = std::env::var("WEFT_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let reps: usize = std::env::var("WEFT_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    for e2e in [false, true] {
        let l = line(e2e);
        let m = &l.m;
        let dev = if e2e { "weft-e2e" } else { "weft" };
        await_or_fail(m, CONVERGE, "n0 routes n2", &[0, 1, 2], || {
            m.routes(0).get(&format!("{}/128", l.mesh[2])).is_some_and(|d| d.starts_with(dev))
        });
        await_or_fail(m, Duration::from_secs(20), "ping n0 -> n2", &[0, 2], || {
            m.net.ping_from(0, &l.mesh[0], &l.mesh[2])
        });
        for r in 0..reps {
            let t = measure(&l, secs);
            eprintln!(
                "BENCH e2e={} rep={r} tcp_mbit={:.0} cpu_s_per_gbit={:.2} rtt_ms={:.3}",
                u8::from(e2e),
                t.mbit,
                t.cpu_s_per_gbit,
                t.rtt_ms
            );
        }
    }
}

/// A relay that drops end-to-end packets (what origin signatures cannot
/// prevent: it routes the transport addresses honestly and blackholes
/// what they carry). n0 keeps sending to n2; with no handshake for 30 s
/// its status names n2 as a stale peer; once the relay forwards again, the
/// handshake comes and the peer is no longer stale.
#[test]
fn a_blackholing_relay_is_reported_as_stale_peers() {
    require_mesh_tools!();
    let l = line(true);
    let m = &l.m;
    await_or_fail(m, CONVERGE, "n0 routes n2 into weft-e2e", &[0, 1, 2], || {
        m.routes(0).get(&format!("{}/128", l.mesh[2])).is_some_and(|d| d == "weft-e2e")
    });
    // The relay drops forwarded end-to-end UDP (port 6699), before any
    // handshake between n0 and n2.
    m.net.nft(1, "table inet blackhole {\n chain f { type filter hook forward priority -5; udp dport 6699 drop; }\n}\n");
    let stale = |i: usize| m.status(i)["end_to_end"]["stale_peers"].as_array().map_or(0, Vec::len);
    await_or_fail(m, Duration::from_secs(90), "n0 reports n2 as a stale end-to-end peer", &[0], || {
        m.net.exec(0, &["ping", "-6", "-c", "1", "-W", "1", "-I", &l.mesh[0], &l.mesh[2]]);
        stale(0) == 1
    });
    assert!(!m.net.ping_from(0, &l.mesh[0], &l.mesh[2]), "a ping got through the blackhole");
    assert!(m.status(0)["end_to_end"]["handshakes_stale"].as_u64() >= Some(1));
    assert!(m.log(0).contains("no handshake with"), "the log says nothing about it");
    m.net.exec_ok(1, &["nft", "delete", "table", "inet", "blackhole"]);
    await_or_fail(m, Duration::from_secs(60), "n2 answers again and is not stale", &[0, 2], || {
        m.net.ping_from(0, &l.mesh[0], &l.mesh[2]) && stale(0) == 0
    });
}
