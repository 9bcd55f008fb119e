//! Route installation rate through rtnetlink, in a private network namespace
//! (root required): 10,000 routes installed, re-pointed and removed one at a
//! time (each request waits for its ack) and batched (many requests per
//! datagram, one ack), with `ip -batch` as an outside reference.
//!
//! `cargo bench --bench fib` runs the full measurement; under `cargo test`
//! (no `--bench` argument) it runs a 200-route smoke pass.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use weft::babel::Prefix;
use weft::kernel::netns::Netns;
use weft::kernel::{Fib, FibConfig, FibOp, FibRoute, RtnlFib};

const TABLE: u32 = 100;
const REPEATS: usize = 3;

fn routes(n: usize, family: &str, ifindex: u32, nh: &str) -> Vec<FibRoute> {
    (0..n)
        .map(|i| {
            let prefix = match family {
                "v6" => {
                    let a = Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 0);
                    Prefix::new(IpAddr::V6(a), 64).unwrap()
                }
                _ => Prefix::new(IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]), 32).unwrap(),
            };
            FibRoute { prefix, next_hop: nh.parse().unwrap(), ifindex, metric: 1, src: None }
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>9.0} routes/s ({:>7.1} ms)", n as f64 / d.as_secs_f64(), d.as_secs_f64() * 1e3)
}

async fn timed(fib: &mut RtnlFib, ops: &[FibOp], per_call: bool) -> Duration {
    let t = Instant::now();
    if per_call {
        // the daemon calling add()/replace()/remove() route by route
        for op in ops {
            let r = match op {
                FibOp::Add(r) => fib.add(r).await,
                FibOp::Replace(r) => fib.replace(r).await,
                FibOp::Remove(k) => fib.remove(k).await,
            };
            r.unwrap_or_else(|e| panic!("{op:?}: {e}"));
        }
    } else {
        let f = fib.apply(ops).await;
        assert!(f.is_empty(), "{:?}", &f[..f.len().min(3)]);
    }
    t.elapsed()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 10_000 } else { 200 };
    let ns = Netns::new().expect("private network namespace (the benchmark must run as root)");
    let d0 = ns.add_veth("d0").unwrap();
    ns.ip("addr add fe80::1/64 dev d0 nodad").unwrap();
    println!("fib: {n} routes per run, median of {REPEATS} runs, table {TABLE}, private netns");

    ns.block_on(|| async {
        let mut fib = RtnlFib::open(FibConfig::new(TABLE, 119).unwrap()).unwrap();
        fib.flush_own().await.unwrap();
        for family in ["v6", "v4-via-v6"] {
            let first = routes(n, family, d0, "fe80::2");
            let second = routes(n, family, d0, "fe80::3");
            let install: Vec<FibOp> = first.iter().copied().map(FibOp::Add).collect();
            let repoint: Vec<FibOp> = second.iter().copied().map(FibOp::Replace).collect();
            let remove: Vec<FibOp> = second.iter().map(|r| FibOp::Remove(r.key())).collect();
            let mut dumps = Vec::new();
            for (label, batch, per_call) in [
                ("one at a time (replace/remove per call)", 1, true),
                ("batched 16 per datagram", 16, false),
                ("batched 128 per datagram (default)", 128, false),
                ("batched 1024 per datagram", 1024, false),
            ] {
                fib.set_batch_size(batch);
                let (mut ti, mut tr, mut td) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..REPEATS {
                    ti.push(timed(&mut fib, &install, per_call).await);
                    let t = Instant::now();
                    assert_eq!(fib.dump_own().await.unwrap().len(), n);
                    dumps.push(t.elapsed());
                    tr.push(timed(&mut fib, &repoint, per_call).await);
                    td.push(timed(&mut fib, &remove, per_call).await);
                    assert!(fib.dump_own().await.unwrap().is_empty());
                }
                println!("{family:>9} {label}:");
                println!("            install {}", rate(n, median(ti)));
                println!("            replace {}", rate(n, median(tr)));
                println!("            remove  {}", rate(n, median(td)));
            }
            println!(
                "{family:>9} dump_own of {n} routes: {:.1} ms (median)",
                median(dumps).as_secs_f64() * 1e3
            );
            fib.set_batch_size(weft::kernel::DEFAULT_BATCH);
            let mut flushes = Vec::new();
            for _ in 0..REPEATS {
                timed(&mut fib, &install, false).await;
                let t = Instant::now();
                assert_eq!(fib.flush_own().await.unwrap(), n);
                flushes.push(t.elapsed());
            }
            println!("{family:>9} flush_own (dump + batched delete): {}", rate(n, median(flushes)));
        }
    });

    // Reference: iproute2 installing the same IPv6 routes from a batch file.
    let path = std::env::temp_dir().join(format!("weft-bench-fib-{}.txt", std::process::id()));
    let lines: String = routes(n, "v6", d0, "fe80::2")
        .iter()
        .map(|r| {
            format!("route add {} via fe80::2 dev d0 table {TABLE} proto 119 metric 1 onlink\n", r.prefix)
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    let t = Instant::now();
    let out = ns.ip(&format!("-batch {}", path.display()));
    let d = t.elapsed();
    let _ = std::fs::remove_file(&path);
    out.unwrap();
    println!("       v6 reference `ip -batch` install: {}", rate(n, d));
}
