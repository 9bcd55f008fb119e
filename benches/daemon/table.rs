//! A large route table learned from one neighbour, on a line of two nodes
//! (node 0 announces, node 1 is measured):
//!
//! - [`from_speaker`]: the scripted neighbour ([`crate::speaker`]) sends a
//!   full dump of N IPv4 /24s (AE 4, v4-via-v6) back to back; the time from
//!   its first packet to the Nth route in the measured node's kernel is the
//!   daemon's own install time.
//! - [`from_babeld`]: a babeld redistributing N `proto static` routes, the
//!   way the reference babeld figure (258 B/route) was measured; its times
//!   include the announcing babeld reading its kernel table.
//!
//! Both read VmRSS before and after (bytes per route) and VmHWM.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use weft::babel::Prefix;
use weft::sim::Topology;

use crate::bed::{ip_batch, Bed};
use crate::common::netns::{ll, node_v6};
use crate::daemons::{Announce, Daemons, Kind, Proc};
use crate::rtnl::{Change, Listener};
use crate::speaker::Speaker;
use crate::{secs, summary, Settings};

/// Route k of the table: an IPv4 /24 in 10.128.0.0/9.
fn table_prefix(k: usize) -> Prefix {
    assert!(k < 1 << 15, "at most 32768 routes");
    Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 128 + (k >> 8) as u8, k as u8, 0)), 24).unwrap()
}

fn in_table(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(v) if v.octets()[0] == 10 && v.octets()[1] >= 128)
}

/// Times from `t0` until node `node` has `n` routes of `protocol` in the
/// table's range, from route events: (first, all). Falls back to dumps if
/// events were lost.
fn await_routes(
    bed: &mut Bed,
    l: &mut Listener,
    node: usize,
    protocol: u8,
    n: usize,
    t0: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let mut have: HashSet<(IpAddr, u8, u32)> = HashSet::new();
    let mut first = None;
    let deadline = Duration::from_secs(120);
    while t0.elapsed() < deadline {
        match l.poll(100) {
            Ok(changes) => {
                let now = t0.elapsed();
                for c in changes {
                    match c {
                        Change::Added(r) if r.protocol == protocol && in_table(r.dst) => {
                            first.get_or_insert(now);
                            have.insert((r.dst, r.dst_len, r.metric));
                        }
                        Change::Removed(r) => {
                            have.remove(&(r.dst, r.dst_len, r.metric));
                        }
                        _ => {}
                    }
                }
                if have.len() >= n {
                    return (first, Some(now));
                }
            }
            Err(e) => {
                println!("    ! route events lost ({e}); counting by dumps from now on");
                while t0.elapsed() < deadline {
                    let c = bed.routes(node, protocol).iter().filter(|r| in_table(r.dst)).count();
                    if c >= n {
                        return (first, Some(t0.elapsed()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    (first, None)
}

/// The kernel's count of UDP datagrams dropped for a full socket receive
/// buffer in node `i` (IPv6).
/// Waits until node 1 has a route of `protocol` to `addr` (the neighbour's
/// loopback): the link is up both ways.
fn await_neighbour(bed: &mut Bed, protocol: u8, addr: IpAddr, who: &str) {
    let t = Instant::now();
    while !bed.routes(1, protocol).iter().any(|r| r.dst == addr) {
        assert!(t.elapsed() < Duration::from_secs(30), "{who} learned nothing from its neighbour in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn flush_left(bed: &mut Bed, kind: Kind) -> usize {
    let p = kind.protocol();
    let left = bed.routes(1, p).len();
    if left > 0 {
        let _ = ip_batch(bed.ns(1), &format!("route flush proto {p}\n-6 route flush proto {p}\n"), true);
    }
    left
}

struct Run {
    kind: Kind,
    rss0: u64,
    rss1: u64,
    hwm1: u64,
    first: Option<Duration>,
    all: Option<Duration>,
    cpu: Duration,
    stop: Duration,
    left: usize,
    drops: u64,
}

fn measure(
    bed: &mut Bed,
    d: &Daemons,
    kind: Kind,
    n: usize,
    announce: &mut dyn FnMut() -> Instant,
) -> (Run, Proc) {
    let p = kind.protocol();
    let drops0 = bed.udp_rcvbuf_errors(1);
    let m = d.start(bed, kind, 1, Announce::V6Loopback);
    await_neighbour(bed, p, node_v6(0).parse().unwrap(), kind.as_str());
    std::thread::sleep(Duration::from_secs(2));
    let (rss0, _) = m.memory_kb();
    let cpu0 = m.cpu();
    let mut l = Listener::open(bed.ns(1)).expect("route listener");
    let t0 = announce();
    let (first, all) = await_routes(bed, &mut l, 1, p, n, t0);
    drop(l);
    std::thread::sleep(Duration::from_secs(3));
    let (rss1, hwm1) = m.memory_kb();
    let cpu = m.cpu() - cpu0;
    let drops = bed.udp_rcvbuf_errors(1) - drops0;
    (Run { kind, rss0, rss1, hwm1, first, all, cpu, stop: Duration::ZERO, left: 0, drops }, m)
}

fn print_run(rep: usize, r: &Run, n: usize, extra: &str) {
    println!(
        "  rep {rep} {:<6}: RSS {} kB -> {} kB (+{} B/route, VmHWM {} kB); first route {}, all {n} {} (CPU {:.0} ms, {} datagrams dropped by a full receive buffer){extra}; clean stop {:.0} ms, {} routes left",
        r.kind.as_str(),
        r.rss0,
        r.rss1,
        (r.rss1 as i64 - r.rss0 as i64) * 1024 / n as i64,
        r.hwm1,
        secs(r.first),
        secs(r.all),
        r.cpu.as_secs_f64() * 1e3,
        r.drops,
        r.stop.as_secs_f64() * 1e3,
        r.left,
    );
}

fn print_summary(s: &Settings, runs: &[Run], n: usize, what: &str) {
    println!("  summary ({n} routes, {what}):");
    for &kind in &s.kinds {
        let r: Vec<&Run> = runs.iter().filter(|r| r.kind == kind).collect();
        let f = |g: &dyn Fn(&Run) -> Option<f64>| -> Vec<f64> { r.iter().filter_map(|x| g(x)).collect() };
        let k = kind.as_str();
        println!("    {k:<6} RSS before {}", summary(f(&|x| Some(x.rss0 as f64)), "kB", 0));
        println!("    {k:<6} RSS with the table {}", summary(f(&|x| Some(x.rss1 as f64)), "kB", 0));
        println!("    {k:<6} VmHWM with the table {}", summary(f(&|x| Some(x.hwm1 as f64)), "kB", 0));
        println!(
            "    {k:<6} RSS growth per route {}",
            summary(f(&|x| Some((x.rss1 as f64 - x.rss0 as f64) * 1024.0 / n as f64)), "B", 0)
        );
        println!(
            "    {k:<6} announced -> all {n} in the kernel {}; first route {}",
            summary(f(&|x| x.all.map(|d| d.as_secs_f64())), "s", 3),
            summary(f(&|x| x.first.map(|d| d.as_secs_f64())), "s", 3),
        );
        println!(
            "    {k:<6} CPU for the table {}",
            summary(f(&|x| Some(x.cpu.as_secs_f64() * 1e3)), "ms", 0)
        );
        println!(
            "    {k:<6} clean stop with the table {}; routes left {}; datagrams dropped {}",
            summary(f(&|x| Some(x.stop.as_secs_f64() * 1e3)), "ms", 0),
            r.iter().map(|x| x.left).sum::<usize>(),
            r.iter().map(|x| x.drops).sum::<u64>()
        );
    }
}

pub fn from_speaker(d: &Daemons, s: &Settings) {
    let n = s.routes;
    println!("\n## route table: {n} IPv4 /24s (AE 4) in one full dump from a scripted neighbour, line of 2");
    let mut bed = Bed::new(&Topology::line(2));
    let ifindex = {
        let out = bed.net.exec_ok(0, &["cat", &format!("/sys/class/net/{}/ifindex", bed.net.dev(0, 1))]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let table: Vec<Prefix> = (0..n).map(table_prefix).collect();
    let own = Prefix::new(node_v6(0).parse().unwrap(), 128).unwrap();
    let speaker = Speaker::start(bed.ns(0), ifindex, ll(1, 0).parse().unwrap(), own, &table)
        .expect("scripted neighbour");
    let mut runs = Vec::new();
    let mut dump = (0, 0);
    for rep in 0..s.reps {
        for kind in s.order(rep) {
            let (mut r, m) = measure(&mut bed, d, kind, n, &mut || {
                let (t, packets, bytes) = speaker.dump_now();
                dump = (packets, bytes);
                t
            });
            speaker.stop_dumping();
            r.stop = m.stop();
            r.left = flush_left(&mut bed, kind);
            print_run(rep, &r, n, "");
            if !s.full {
                assert!(r.all.is_some(), "{} did not install all {n} routes", kind.as_str());
                assert!(r.rss1 > 0, "no RSS reading for {}", kind.as_str());
            }
            runs.push(r);
            // The measured node is gone; let the speaker's table lapse from
            // nowhere before the next run (nothing to do: the next daemon
            // starts empty and gets no dump until asked).
        }
    }
    println!("  (the dump: {} packets, {} bytes)", dump.0, dump.1);
    drop(speaker);
    print_summary(s, &runs, n, "from the first packet of the dump");
}

pub fn from_babeld(d: &Daemons, s: &Settings) {
    let n = s.routes;
    println!(
        "\n## route table: {n} IPv4 /24s redistributed from proto static by a neighbouring babeld, line of 2"
    );
    let mut bed = Bed::new(&Topology::line(2));
    ip_batch(bed.ns(0), "link add st0 type veth peer name st0p\nlink set st0p up\nlink set st0 up\n", false)
        .unwrap();
    let script: String =
        (0..n).map(|k| format!("route add {} dev st0 proto static\n", table_prefix(k))).collect();
    let announcer = d.start(&bed, Kind::Babeld, 0, Announce::StaticRoutes);
    let mut runs = Vec::new();
    for rep in 0..s.reps {
        for kind in s.order(rep) {
            let mut batch = Duration::ZERO;
            let ns0 = bed.ns(0).to_string();
            let (mut r, m) = measure(&mut bed, d, kind, n, &mut || {
                let t = Instant::now();
                ip_batch(&ns0, &script, false).unwrap();
                batch = t.elapsed();
                t
            });
            r.stop = m.stop();
            r.left = flush_left(&mut bed, kind);
            print_run(
                rep,
                &r,
                n,
                &format!("; the announcer's `ip -batch` took {:.0} ms", batch.as_secs_f64() * 1e3),
            );
            if !s.full {
                assert!(r.all.is_some(), "{} did not install all {n} routes", kind.as_str());
            }
            runs.push(r);
            // The announcer withdraws them again.
            ip_batch(bed.ns(0), "route flush proto static\n", false).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    announcer.stop();
    print_summary(
        s,
        &runs,
        n,
        "from the start of the announcer's `ip -batch`; includes the announcer's own work",
    );
}
