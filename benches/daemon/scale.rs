//! A large mesh: 150 namespaces joined by plain veths in a random geometric
//! graph (average degree 8), wired links, Hello 1 s, weft and babeld
//! alternating on the same bed. Per run: cold start to full reachability
//! (every node's forwarding path to every node's address, walked through
//! the kernels' tables), the time from which it held for good, control
//! traffic per node per second in the steady state after it (mean and the
//! busiest node), UDP datagrams the kernels dropped for full receive
//! buffers, and CPU per daemon.

use std::time::{Duration, Instant};

use weft::sim::Topology;

use crate::bed::Bed;
use crate::daemons::{stop_all, Announce, Daemons, Kind, Proc};
use crate::{secs, summary, Settings};

struct Run {
    kind: Kind,
    first_ok: Option<Duration>,
    stable_ok: Option<Duration>,
    bytes_mean: f64,
    bytes_max: f64,
    drops: u64,
    cpu_ms: f64,
}

fn run(bed: &mut Bed, d: &Daemons, kind: Kind, timeout: Duration, window: Duration) -> Run {
    let p = kind.protocol();
    let n = bed.len();
    let drops0: u64 = (0..n).map(|i| bed.udp_rcvbuf_errors(i)).sum();
    let t0 = Instant::now();
    let procs: Vec<Proc> = (0..n).map(|i| d.start(bed, kind, i, Announce::V6Loopback)).collect();
    let (mut first_ok, mut stable_ok) = (None, None);
    // Converged once every path has worked for 3 s in a row.
    while t0.elapsed() < timeout {
        let ok = bed.check_paths(p).all_ok();
        let now = t0.elapsed();
        if ok {
            first_ok.get_or_insert(now);
            let since = *stable_ok.get_or_insert(now);
            if now - since >= Duration::from_secs(3) {
                break;
            }
        } else {
            stable_ok = None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if t0.elapsed() >= timeout {
        stable_ok = None;
        diagnose(bed, d, kind);
    }
    bed.reset_babel_counters();
    let w0 = Instant::now();
    std::thread::sleep(window);
    let counted = bed.babel_counters();
    let secs_counted = w0.elapsed().as_secs_f64();
    let per_node: Vec<f64> = counted.iter().map(|(_, b)| *b as f64 / secs_counted).collect();
    let cpu: Duration = procs.iter().map(Proc::cpu).sum::<Duration>() / n as u32;
    stop_all(procs);
    crate::clean_up_routes(bed, kind);
    let drops = (0..n).map(|i| bed.udp_rcvbuf_errors(i)).sum::<u64>() - drops0;
    Run {
        kind,
        first_ok,
        stable_ok,
        bytes_mean: per_node.iter().sum::<f64>() / n as f64,
        bytes_max: per_node.iter().cloned().fold(0.0, f64::max),
        drops,
        cpu_ms: cpu.as_secs_f64() * 1e3,
    }
}

/// What is wrong when a daemon did not converge: the kinds of broken paths,
/// and (weft) the Hello histories and costs of the busiest nodes' links.
fn diagnose(bed: &mut Bed, d: &Daemons, kind: Kind) {
    let c = bed.check_paths(kind.protocol());
    println!(
        "    not converged: {} of {} paths ok; no route {}, loops {}, bad hop {}, dead link {}",
        c.ok, c.total, c.no_route, c.loops, c.bad_hop, c.dead_link
    );
    if kind != Kind::Weft {
        return;
    }
    let mut by_degree: Vec<usize> = (0..bed.len()).collect();
    by_degree.sort_by_key(|&i| std::cmp::Reverse(bed.net.devices(i).len()));
    for &i in by_degree.iter().take(2) {
        let sock = bed.net.dir(i).join("weft.sock");
        let out = std::process::Command::new(&d.bin)
            .args(["neighbours", "--json", "-s"])
            .arg(&sock)
            .output()
            .expect("weft neighbours");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let list = v["neighbours"].as_array().cloned().unwrap_or_default();
        let brief: Vec<String> = list
            .iter()
            .map(|n| {
                format!(
                    "{}:{}/{}",
                    n["interface"].as_str().unwrap_or("?"),
                    n["reach"].as_str().unwrap_or("?"),
                    n["cost"]
                )
            })
            .collect();
        println!(
            "    node {i} ({} links) neighbours dev:reach/cost: {}",
            bed.net.devices(i).len(),
            brief.join(" ")
        );
        let st = std::process::Command::new(&d.bin).args(["status", "--json", "-s"]).arg(&sock).output();
        if let Ok(st) = st {
            let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
            println!("    node {i} counts {} babel {}", v["counts"], v["babel"]);
        }
    }
}

pub fn scale(s: &Settings, d: &Daemons) {
    let n_full = std::env::var("WEFT_BENCH_SCALE_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let (n, degree) = if s.full { (n_full, 8.0) } else { (12, 4.0) };
    let topo = Topology::random_geometric_degree(n, degree, 150);
    println!(
        "\n## scale: random geometric graph of {n} nodes, {} links (average degree {:.1}, at most {} neighbours), {} links, hello {} s",
        topo.links.len(),
        topo.average_degree(),
        topo.max_degree(),
        d.link_type,
        d.hello_s
    );
    let t = Instant::now();
    let mut bed = Bed::new(&topo);
    bed.ipv6_targets_only();
    println!("  (test bed built in {:.0} s)", t.elapsed().as_secs_f64());
    let timeout = Duration::from_secs(if s.full { 90 } else { 30 });
    let window = Duration::from_secs(if s.full { 20 } else { 3 });
    let mut runs = Vec::new();
    for rep in 0..s.reps {
        for kind in s.order(rep) {
            let r = run(&mut bed, d, kind, timeout, window);
            println!(
                "  rep {rep} {:<6}: all paths {} (stable from {}) | steady {:.0} B/node/s (busiest node {:.0}) | {} datagrams dropped by full receive buffers | CPU {:.0} ms per daemon",
                kind.as_str(),
                secs(r.first_ok),
                secs(r.stable_ok),
                r.bytes_mean,
                r.bytes_max,
                r.drops,
                r.cpu_ms
            );
            if !s.full && kind == Kind::Weft {
                assert!(r.stable_ok.is_some(), "weft did not converge on the scale bed");
            }
            runs.push(r);
        }
    }
    println!("  summary ({n} nodes, medians of {} runs):", s.reps);
    for &kind in &s.kinds {
        let rs: Vec<&Run> = runs.iter().filter(|r| r.kind == kind).collect();
        let f = |g: &dyn Fn(&Run) -> Option<f64>| rs.iter().filter_map(|r| g(r)).collect::<Vec<f64>>();
        println!(
            "    {:<6} full reachability {} | stable {} ({} runs never) | control {} | busiest node {} | receive-buffer drops {} | CPU {}",
            kind.as_str(),
            summary(f(&|r| r.first_ok.map(|d| d.as_secs_f64())), "s", 2),
            summary(f(&|r| r.stable_ok.map(|d| d.as_secs_f64())), "s", 2),
            rs.iter().filter(|r| r.stable_ok.is_none()).count(),
            summary(f(&|r| Some(r.bytes_mean)), "B/node/s", 0),
            summary(f(&|r| Some(r.bytes_max)), "B/s", 0),
            summary(f(&|r| Some(r.drops as f64)), "", 0),
            summary(f(&|r| Some(r.cpu_ms)), "ms", 0),
        );
    }
}
