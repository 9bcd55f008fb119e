//! Engine benchmark: a neighbour's full dump of 10,000 routes, decoded and
//! processed (selection, FIB operations, triggered updates), and the heap
//! memory the routing state takes per route. The daemon keeps no per-route
//! state of its own beside it (what is installed is the engine's to say),
//! so this is what the daemon's RSS per route is made of.
//!
//! Run: `cargo bench --bench engine` (prints figures; no assertions).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use weft::babel::packet::{Message, PacketBuilder, Update};
use weft::babel::{
    Centisecs, Engine, EngineConfig, Input, InterfaceConfig, LinkType, Metric, Prefix, RouterId, SeqNo, Time,
};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live allocations: each costs malloc a header and rounding (glibc: 8
/// bytes, 16-byte chunks of at least 32 bytes).
static COUNT: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Under `cargo test --all-targets` this runs as a quick smoke test.
fn routes() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        500
    }
}
const OURS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

fn packets(msgs: &[Message]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = PacketBuilder::new(1452);
    for m in msgs {
        if !b.push(m) {
            out.push(b.take());
            assert!(b.push(m), "message does not fit an empty packet");
        }
    }
    if !b.is_empty() {
        out.push(b.take());
    }
    out
}

/// The dump: 10,000 prefixes from 100 origins, as a real mesh would have
/// (IPv6 /64s and IPv4 /24s with v4-via-v6).
fn dump() -> Vec<Vec<u8>> {
    let msgs: Vec<Message> = (0..routes())
        .map(|i| {
            let origin = (i % 100) as u8 + 1;
            let prefix = if i % 2 == 0 {
                Prefix::new(
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, (i >> 8) as u16, i as u16, 0, 0, 0, 0)),
                    64,
                )
            } else {
                Prefix::new(IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)), 32)
            }
            .unwrap();
            Message::Update(Update {
                prefix,
                router_id: RouterId([2, 0, 0, 0, 0, 0, 0, origin]),
                next_hop: None,
                v4_via_v6: prefix.is_ipv4(),
                seqno: SeqNo(7),
                metric: Metric(256 + origin as u16),
                interval: Centisecs(1600),
            })
        })
        .collect();
    packets(&msgs)
}

fn engine_with_neighbour(now: Time) -> Engine {
    let mut e = Engine::new(EngineConfig::new(RouterId([2, 9, 9, 9, 9, 9, 9, 9]), SeqNo(1), 1));
    let mut cfg = InterfaceConfig::new("eth0", LinkType::Wired, OURS);
    cfg.ipv4 = None;
    e.handle_input(now, Input::InterfaceUp { ifindex: 1, config: cfg });
    for (k, seqno) in [(0u64, 1u16), (10, 2)] {
        let hello = packets(&[
            Message::Hello { unicast: false, seqno: SeqNo(seqno), interval: Centisecs(400) },
            Message::Ihu { rxcost: Metric(96), interval: Centisecs(1200), address: Some(IpAddr::V6(OURS)) },
        ]);
        e.handle_input(now.plus_ms(k), Input::Datagram { ifindex: 1, src: THEIRS, data: &hello[0] });
    }
    while e.poll_output().is_some() {}
    assert_eq!(e.neighbours()[0].cost, 96, "neighbour link not up");
    e
}

fn main() {
    let dump = dump();
    let bytes: usize = dump.iter().map(Vec::len).sum();
    println!("dump: {} routes in {} packets, {bytes} bytes", routes(), dump.len());
    let mut times = Vec::new();
    let mut per_route = 0.0;
    let mut allocs_per_route = 0.0;
    let rounds = if routes() >= 10_000 { 11 } else { 2 };
    for round in 0..rounds {
        let now = Time(1000);
        let mut e = engine_with_neighbour(now);
        let before = LIVE.load(Ordering::Relaxed);
        let count_before = COUNT.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut outputs = 0usize;
        for p in &dump {
            e.handle_input(now.plus_ms(20), Input::Datagram { ifindex: 1, src: THEIRS, data: p });
            while e.poll_output().is_some() {
                outputs += 1;
            }
        }
        let elapsed = t.elapsed();
        assert_eq!(e.installed_routes().len(), routes(), "not every route was installed");
        let after = LIVE.load(Ordering::Relaxed);
        if round > 0 {
            times.push(elapsed.as_secs_f64() * 1000.0);
        }
        per_route = (after - before) as f64 / routes() as f64;
        allocs_per_route = (COUNT.load(Ordering::Relaxed) - count_before) as f64 / routes() as f64;
        let _ = outputs;
        drop(e);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "full dump processing: median {:.2} ms, min {:.2} ms over {} runs ({:.0} routes/s)",
        times[times.len() / 2],
        times[0],
        times.len(),
        routes() as f64 / (times[times.len() / 2] / 1000.0)
    );
    println!(
        "routing state heap per route: {per_route:.0} bytes in {allocs_per_route:.2} allocations (route, source, table entry, FIB-op queue drained)"
    );
}
