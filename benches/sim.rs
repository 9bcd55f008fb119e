//! Simulator benchmark: a 1,000-node grid (40 x 25) from a cold start until
//! every node has a route to every other node, with babeld's default
//! intervals. Prints wall time and simulated convergence time.
//!
//! Run: `cargo bench --bench sim` (`WEFT_BENCH_GRID=20x20` for a smaller one,
//! `WEFT_BENCH_HELLO_MS=1000` for other intervals: the update interval is
//! four Hello intervals, as for babeld).

use std::time::Instant;

use weft::sim::{Sim, SimConfig, Topology};

fn main() {
    let (w, h) = std::env::var("WEFT_BENCH_GRID")
        .ok()
        .and_then(|s| s.split_once('x').map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap())))
        // Under `cargo test --all-targets` (no --bench), a quick smoke run.
        .unwrap_or(if std::env::args().any(|a| a == "--bench") { (40, 25) } else { (4, 4) });
    let topo = Topology::grid(w, h);
    let hello: u64 = std::env::var("WEFT_BENCH_HELLO_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let cfg =
        SimConfig { seed: 1, hello_interval_ms: hello, update_interval_ms: 4 * hello, check_loops: true };
    let start = Instant::now();
    let mut sim = Sim::new(&topo, cfg.clone());
    let converged = sim.run_until_converged(900_000);
    let wall = start.elapsed();
    println!(
        "grid {w}x{h} ({} nodes, {} links), hello {} ms, update {} ms, loop checks on",
        topo.len(),
        topo.links.len(),
        cfg.hello_interval_ms,
        cfg.update_interval_ms
    );
    match converged {
        Some(t) => println!("simulated convergence: {:.3} s", t.millis() as f64 / 1000.0),
        None => println!("did NOT converge within 900 simulated seconds"),
    }
    println!(
        "wall time: {:.1} s; control traffic {} datagrams, {} bytes; loops {}",
        wall.as_secs_f64(),
        sim.traffic().packets,
        sim.traffic().bytes,
        sim.loops()
    );
    // Under `cargo test` this is the smoke run: it must show something that
    // can fail. A lossless grid converges, without a loop, with traffic.
    assert!(converged.is_some(), "grid {w}x{h} did not converge");
    assert_eq!(sim.loops(), 0, "forwarding loops on a lossless grid");
    assert!(sim.traffic().packets > 0, "no control traffic counted");
    assert!(sim.fully_correct(), "converged, but some forwarding path does not reach its destination");
}
