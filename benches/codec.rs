//! Codec throughput on realistic packets: full-MTU Update packets (several
//! router-ids, compressed IPv6 prefixes, v4-via-v6 host routes) and small
//! Hello + IHU packets. Prints packets/s and MB/s for decode and encode.
//!
//! Run: `cargo bench --bench codec` (optionally `-- SECONDS` per figure;
//! default 2).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use weft::babel::packet::{decode, Message, PacketBuilder, Update};
use weft::babel::{Centisecs, Metric, Prefix, RouterId, SeqNo};

/// Payload of a 1420-byte WireGuard MTU minus IPv6 and UDP headers.
const MAX_LEN: usize = 1420 - 48;

/// A full table as babeld would send it: per router, its /128 (IID =
/// router-id, so flag 0x40), a few /64s under its /48, and an IPv4 /32
/// v4-via-v6; sorted by router-id.
fn table_updates(routers: u16) -> Vec<Message> {
    let mut v = Vec::new();
    for r in 0..routers {
        let mut rid = [0x02, 0, 0, 0xff, 0xfe, 0, 0, 0];
        rid[6..8].copy_from_slice(&r.to_be_bytes());
        let router_id = RouterId(rid);
        let mut net = "2001:db8::".parse::<Ipv6Addr>().unwrap().octets();
        net[4..6].copy_from_slice(&r.to_be_bytes());
        let upd = |prefix: Prefix, v4_via_v6: bool| Update {
            prefix,
            router_id,
            next_hop: None,
            v4_via_v6,
            seqno: SeqNo(r.wrapping_mul(7)),
            metric: Metric(96 + r % 300),
            interval: Centisecs(400),
        };
        let mut host = net;
        host[8..].copy_from_slice(&rid);
        v.push(Message::Update(upd(Prefix::new(IpAddr::V6(host.into()), 128).unwrap(), false)));
        for s in 0..4u8 {
            let mut a = net;
            a[7] = s;
            v.push(Message::Update(upd(Prefix::new(IpAddr::V6(a.into()), 64).unwrap(), false)));
        }
        let v4 = Ipv4Addr::new(10, (r >> 8) as u8, r as u8, 1);
        v.push(Message::Update(upd(Prefix::new(IpAddr::V4(v4), 32).unwrap(), true)));
    }
    v
}

fn hello_ihu(seqno: u16) -> Vec<Message> {
    let mut v = vec![Message::Hello { unicast: false, seqno: SeqNo(seqno), interval: Centisecs(400) }];
    for n in 0..4u16 {
        v.push(Message::Ihu {
            rxcost: Metric(96 + n),
            interval: Centisecs(1200),
            address: Some(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0x200, 0, 0, n + 1))),
        });
    }
    v
}

/// Packs `msgs` into packets of at most MAX_LEN bytes.
fn encode_all(b: &mut PacketBuilder, msgs: &[Message], out: &mut Vec<Vec<u8>>) {
    for m in msgs {
        if !b.push(m) {
            out.push(b.take());
            assert!(b.push(m));
        }
    }
    if !b.is_empty() {
        out.push(b.take());
    }
}

struct Rate {
    packets: u64,
    bytes: u64,
    elapsed: Duration,
}

impl Rate {
    fn print(&self, what: &str) {
        let s = self.elapsed.as_secs_f64();
        println!(
            "{what:<34} {:>12.0} packets/s {:>9.1} MB/s  ({} packets in {:.2} s)",
            self.packets as f64 / s,
            self.bytes as f64 / s / 1e6,
            self.packets,
            s
        );
    }
}

/// Runs `round` (which handles `packets` packets of `bytes` bytes in all)
/// until `budget` has passed.
fn measure(budget: Duration, packets: u64, bytes: u64, mut round: impl FnMut()) -> Rate {
    round(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < budget {
        round();
        rounds += 1;
    }
    Rate { packets: packets * rounds, bytes: bytes * rounds, elapsed: start.elapsed() }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; under `cargo test --all-targets` this
    // runs as a quick smoke test instead.
    let secs: f64 = if args.iter().any(|a| a == "--bench") {
        args.iter().find_map(|a| a.parse().ok()).unwrap_or(2.0)
    } else {
        0.02
    };
    let budget = Duration::from_secs_f64(secs);

    let table = table_updates(400);
    let mut b = PacketBuilder::new(MAX_LEN);
    let mut full = Vec::new();
    encode_all(&mut b, &table, &mut full);
    let full_bytes: u64 = full.iter().map(|p| p.len() as u64).sum();
    let n_full = full.len() as u64;
    let per_packet = table.len() as f64 / full.len() as f64;
    println!(
        "full-MTU updates: {} messages in {} packets of <= {MAX_LEN} bytes ({:.1} updates/packet, {:.0} bytes/packet avg)",
        table.len(),
        full.len(),
        per_packet,
        full_bytes as f64 / n_full as f64
    );
    for p in &full {
        let d = decode(p).unwrap();
        assert!(d.errors.is_empty());
    }

    let hellos: Vec<Vec<Message>> = (0..256u16).map(hello_ihu).collect();
    let mut small = Vec::new();
    for h in &hellos {
        encode_all(&mut b, h, &mut small);
    }
    let small_bytes: u64 = small.iter().map(|p| p.len() as u64).sum();
    let n_small = small.len() as u64;
    println!("hello+4 IHU packets: {} bytes each", small_bytes / n_small);

    measure(budget, n_full, full_bytes, || {
        for p in &full {
            black_box(decode(black_box(p)).unwrap());
        }
    })
    .print("decode full-MTU updates");

    measure(budget, n_small, small_bytes, || {
        for p in &small {
            black_box(decode(black_box(p)).unwrap());
        }
    })
    .print("decode hello+IHU");

    let mut out = Vec::with_capacity(full.len());
    measure(budget, n_full, full_bytes, || {
        out.clear();
        encode_all(&mut b, black_box(&table), &mut out);
        black_box(&out);
    })
    .print("encode full-MTU updates");

    measure(budget, n_small, small_bytes, || {
        out.clear();
        for h in &hellos {
            encode_all(&mut b, black_box(h), &mut out);
        }
        black_box(&out);
    })
    .print("encode hello+IHU");
}
