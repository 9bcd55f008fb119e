//! The daemon against babeld, side by side in the same run, on namespace
//! test beds (root required; babeld optional):
//!
//! - reconvergence after a link failure (carrier down, and silent) on a
//!   ring of 6 and a 3x3 grid: from the failure to the first moment every
//!   node's forwarding path to every announced address works again;
//! - cold start to full reachability on a 5x5 grid;
//! - a 10,000-route table learned from a babeld neighbour that
//!   redistributes static routes: time until all are in the kernel, and the
//!   daemon's RSS per route.
//!
//! Runs are interleaved (weft, babeld, babeld, weft, ...) because the machine
//! is shared and noisy; figures are medians with min and max.
//!
//! `cargo bench --bench daemon` runs everything (about 25 minutes).
//! Environment: `WEFT_BENCH_REPS` (default 5), `WEFT_BENCH_ONLY` (comma list
//! of `reconverge`, `coldstart`, `table`, `table-babeld`, `lossy`, `scale`),
//! `WEFT_BENCH_LOSS` (lossy: comma list of percentages, default 5,10,20),
//! `WEFT_BENCH_SCALE_NODES` (scale bed size, default 150), `WEFT_BENCH_ROUTES` (default
//! 10000), `WEFT_BIN` (the weft binary to measure; default the one cargo
//! built for this bench). Under `cargo test --all-targets` (no `--bench`) it
//! runs a quick smoke pass on a ring of 3 and a 200-route table.

#[path = "../../tests/common/mod.rs"]
mod common;

mod bed;
mod daemons;
mod lossy;
mod rtnl;
mod scale;
mod speaker;
mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bed::{ip_batch, Bed, Failure};
use daemons::{stop_all, Announce, Daemons, Kind, Proc};
use weft::sim::Topology;

/// How often paths are checked while waiting for (re)convergence.
const PROBE_EVERY: Duration = Duration::from_millis(10);

pub struct Settings {
    full: bool,
    reps: usize,
    kinds: Vec<Kind>,
    routes: usize,
    only: Option<Vec<String>>,
    /// Time all paths must keep working to count as converged.
    hold: Duration,
    /// Time after convergence before a link is failed.
    settle: Duration,
}

impl Settings {
    pub fn wants(&self, scenario: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|s| s == scenario))
    }

    /// The kinds in interleaved order for repetition `rep` (ABBA).
    pub fn order(&self, rep: usize) -> Vec<Kind> {
        let mut k = self.kinds.clone();
        if rep % 2 == 1 {
            k.reverse();
        }
        k
    }
}

/// What [`watch`] saw.
#[derive(Debug, Clone, Copy, Default)]
struct Watch {
    /// First check at which every path worked.
    first_ok: Option<Duration>,
    /// Start of the final all-working streak (it then held for `hold`).
    stable_ok: Option<Duration>,
    /// Checks that found a forwarding loop.
    loop_checks: usize,
    checks: usize,
    /// Worst check duration (the probe's resolution).
    max_check: Duration,
}

/// Checks every forwarding path every [`PROBE_EVERY`] from `t0` until all
/// have worked for `hold`, or `timeout` passes. A check's time is when it
/// ended.
fn watch(bed: &mut Bed, protocol: u8, t0: Instant, timeout: Duration, hold: Duration) -> Watch {
    let mut w = Watch::default();
    loop {
        let started = Instant::now();
        let c = bed.check_paths(protocol);
        let now = t0.elapsed();
        w.max_check = w.max_check.max(started.elapsed());
        w.checks += 1;
        if c.loops > 0 {
            w.loop_checks += 1;
        }
        if c.all_ok() {
            w.first_ok.get_or_insert(now);
            let since = *w.stable_ok.get_or_insert(now);
            if now - since >= hold {
                return w;
            }
        } else {
            w.stable_ok = None;
        }
        if now > timeout {
            w.stable_ok = None;
            return w;
        }
        std::thread::sleep(PROBE_EVERY);
    }
}

pub fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// "median M (min A, max B, n N)" of some samples.
pub fn summary(mut v: Vec<f64>, unit: &str, decimals: usize) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    format!(
        "median {median:.decimals$} {unit} (min {:.decimals$}, max {:.decimals$}, n {})",
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

/// Removes routes a daemon left behind (it should leave none) and says so.
pub fn clean_up_routes(bed: &mut Bed, kind: Kind) -> usize {
    let mut left = 0;
    for i in 0..bed.len() {
        let n = bed.count_routes(i, kind.protocol());
        if n > 0 {
            left += n;
            let p = kind.protocol();
            let _ = ip_batch(bed.ns(i), &format!("route flush proto {p}\n-6 route flush proto {p}\n"), true);
        }
    }
    if left > 0 {
        println!("    ! {} left {left} routes in the kernel after a clean stop", kind.as_str());
    }
    left
}

fn start_all(bed: &Bed, d: &Daemons, kind: Kind) -> Vec<Proc> {
    (0..bed.len()).map(|i| d.start(bed, kind, i, Announce::Loopbacks)).collect()
}

struct ReconvRun {
    cold: Watch,
    after: Watch,
    /// Working paths that crossed the failing link just before it failed.
    crossing: usize,
    /// Of 4 pings between the failed link's ends after reconvergence.
    pings_ok: usize,
}

fn reconverge_run(
    bed: &mut Bed,
    d: &Daemons,
    s: &Settings,
    kind: Kind,
    (a, b): (usize, usize),
    how: Failure,
) -> Option<ReconvRun> {
    let p = kind.protocol();
    let t0 = Instant::now();
    let procs = start_all(bed, d, kind);
    let cold = watch(bed, p, t0, Duration::from_secs(60), s.hold);
    let mut result = None;
    if cold.stable_ok.is_some() {
        std::thread::sleep(s.settle);
        let before = bed.check_paths(p);
        if !before.all_ok() {
            println!("    ! paths broken before the failure: {before:?}");
        }
        let crossing = before.per_link[bed.net.link_index(a, b)];
        let t1 = Instant::now();
        bed.fail(a, b, how);
        let after = watch(bed, p, t1, Duration::from_secs(60), s.hold);
        // The data plane agrees with the route walk: the two ends of the
        // failed link reach each other the long way round.
        let pings = [
            bed.net.ping(a, &common::netns::node_v6(b)),
            bed.net.ping(a, &common::netns::node_v4(b)),
            bed.net.ping(b, &common::netns::node_v6(a)),
            bed.net.ping(b, &common::netns::node_v4(a)),
        ];
        let pings_ok = pings.iter().filter(|p| **p).count();
        bed.repair(a, b, how);
        result = Some(ReconvRun { cold, after, crossing, pings_ok });
    } else {
        println!("    ! {} did not converge from a cold start in 60 s", kind.as_str());
    }
    stop_all(procs);
    clean_up_routes(bed, kind);
    result
}

fn reconvergence(d: &Daemons, s: &Settings) {
    let beds: Vec<(&str, Topology, (usize, usize))> = if s.full {
        // ring: node 0 to node 1 must go the long way round (needs a seqno
        // request: the other way is not feasible); grid: the centre loses a
        // link.
        vec![("ring of 6", Topology::ring(6), (0, 1)), ("3x3 grid", Topology::grid(3, 3), (4, 1))]
    } else {
        vec![("ring of 3", Topology::ring(3), (0, 1))]
    };
    let failures: &[Failure] =
        if s.full { &[Failure::Carrier, Failure::Silent] } else { &[Failure::Carrier] };
    for (name, topo, link) in beds {
        println!(
            "\n## reconvergence: {name} ({} nodes, {} links), link {}-{} fails at node {}'s end",
            topo.len(),
            topo.links.len(),
            link.0,
            link.1,
            link.0
        );
        let mut bed = Bed::new(&topo);
        let mut results: Vec<(Kind, Failure, ReconvRun)> = Vec::new();
        for rep in 0..s.reps {
            for &how in failures {
                for kind in s.order(rep) {
                    let Some(r) = reconverge_run(&mut bed, d, s, kind, link, how) else {
                        continue;
                    };
                    println!(
                        "  rep {rep} {:<6} {:<17}: cold start {} | {} paths crossed the link | after failure: all paths {} (stable {}), loops seen in {} checks; pings {}/4",
                        kind.as_str(),
                        how.as_str(),
                        secs(r.cold.first_ok),
                        r.crossing,
                        secs(r.after.first_ok),
                        secs(r.after.stable_ok),
                        r.after.loop_checks,
                        r.pings_ok
                    );
                    if !s.full {
                        assert!(r.after.stable_ok.is_some(), "{} did not reconverge", kind.as_str());
                        assert!(r.crossing > 0, "no path crossed the failed link: the run measured nothing");
                        assert_eq!(r.pings_ok, 4, "{}: routes look right but pings fail", kind.as_str());
                    }
                    results.push((kind, how, r));
                }
            }
        }
        println!("  summary ({name}, hello {} s):", d.hello_s);
        for &how in failures {
            for &kind in &s.kinds {
                // A run in which no path crossed the link measured nothing.
                let all: Vec<&ReconvRun> =
                    results.iter().filter(|(k, h, _)| (*k, *h) == (kind, how)).map(|(_, _, r)| r).collect();
                let rs: Vec<&ReconvRun> = all.iter().copied().filter(|r| r.crossing > 0).collect();
                let first: Vec<f64> =
                    rs.iter().filter_map(|r| r.after.first_ok).map(|d| d.as_secs_f64()).collect();
                let stable: Vec<f64> =
                    rs.iter().filter_map(|r| r.after.stable_ok).map(|d| d.as_secs_f64()).collect();
                let failed = rs.iter().filter(|r| r.after.stable_ok.is_none()).count();
                let loops = rs.iter().filter(|r| r.after.loop_checks > 0).count();
                println!(
                    "    {:<6} {:<17} reconvergence {}; stable {}; {failed} runs never reconverged; loops seen in {loops} runs; {} runs left out (no path crossed the link)",
                    kind.as_str(),
                    how.as_str(),
                    summary(first, "s", 2),
                    summary(stable, "s", 2),
                    all.len() - rs.len()
                );
            }
        }
        for &kind in &s.kinds {
            let cold: Vec<f64> = results
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .filter_map(|(_, _, r)| r.cold.first_ok)
                .map(|d| d.as_secs_f64())
                .collect();
            println!("    {:<6} cold start to full reachability {}", kind.as_str(), summary(cold, "s", 2));
        }
        let res = results.iter().map(|(_, _, r)| r.after.max_check.max(r.cold.max_check)).max();
        println!(
            "  (probe: every {} ms plus the check itself, at most {:.1} ms)",
            PROBE_EVERY.as_millis(),
            res.unwrap_or_default().as_secs_f64() * 1e3
        );
    }
}

fn cold_start(d: &Daemons, s: &Settings) {
    let (w, h) = if s.full { (5, 5) } else { (2, 2) };
    let topo = Topology::grid(w, h);
    println!("\n## cold start: {w}x{h} grid ({} nodes, {} links)", topo.len(), topo.links.len());
    let t = Instant::now();
    let mut bed = Bed::new(&topo);
    println!("  (test bed built in {:.1} s)", t.elapsed().as_secs_f64());
    let mut rows: Vec<(Kind, Watch, u64, Duration, Duration)> = Vec::new();
    for rep in 0..s.reps {
        for kind in s.order(rep) {
            let t0 = Instant::now();
            let procs = start_all(&bed, d, kind);
            let spawned = t0.elapsed();
            let w = watch(&mut bed, kind.protocol(), t0, Duration::from_secs(120), s.hold);
            let rss: u64 = procs.iter().map(|p| p.memory_kb().0).sum::<u64>() / procs.len() as u64;
            let cpu: Duration = procs.iter().map(Proc::cpu).sum::<Duration>() / procs.len() as u32;
            stop_all(procs);
            clean_up_routes(&mut bed, kind);
            println!(
                "  rep {rep} {:<6}: all paths {} (stable {}), loops seen in {} checks; {} daemons started in {:.0} ms; per daemon at the end: RSS {rss} kB, CPU {:.0} ms",
                kind.as_str(),
                secs(w.first_ok),
                secs(w.stable_ok),
                w.loop_checks,
                bed.len(),
                spawned.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3
            );
            if !s.full {
                assert!(w.stable_ok.is_some(), "{} did not converge", kind.as_str());
            }
            rows.push((kind, w, rss, cpu, spawned));
        }
    }
    println!("  summary ({w}x{h} grid, hello {} s):", d.hello_s);
    for &kind in &s.kinds {
        let r: Vec<_> = rows.iter().filter(|r| r.0 == kind).collect();
        let first: Vec<f64> = r.iter().filter_map(|r| r.1.first_ok).map(|d| d.as_secs_f64()).collect();
        let stable: Vec<f64> = r.iter().filter_map(|r| r.1.stable_ok).map(|d| d.as_secs_f64()).collect();
        println!(
            "    {:<6} full reachability {}; stable {}; {} runs never converged",
            kind.as_str(),
            summary(first, "s", 2),
            summary(stable, "s", 2),
            r.iter().filter(|r| r.1.stable_ok.is_none()).count()
        );
        println!(
            "    {:<6} per daemon after convergence: RSS {}, CPU {}",
            kind.as_str(),
            summary(r.iter().map(|r| r.2 as f64).collect(), "kB", 0),
            summary(r.iter().map(|r| r.3.as_secs_f64() * 1e3).collect(), "ms", 0)
        );
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !common::netns::have_netns() {
        println!("daemon benchmark SKIPPED: needs root and iproute2 for network namespaces");
        return;
    }
    let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let babeld = daemons::babeld_version();
    let mut kinds = vec![Kind::Weft];
    if babeld.is_some() {
        kinds.push(Kind::Babeld);
    }
    let s = Settings {
        full,
        reps: env_num("WEFT_BENCH_REPS").unwrap_or(if full { 5 } else { 1 }),
        kinds,
        routes: env_num("WEFT_BENCH_ROUTES").unwrap_or(if full { 10_000 } else { 200 }),
        only: std::env::var("WEFT_BENCH_ONLY").ok().map(|v| v.split(',').map(str::to_string).collect()),
        hold: if full { Duration::from_secs(3) } else { Duration::from_millis(500) },
        settle: if full { Duration::from_secs(6) } else { Duration::from_secs(2) },
    };
    let bin = std::env::var_os("WEFT_BIN").map(PathBuf::from).unwrap_or(env!("CARGO_BIN_EXE_weft").into());
    // A copy, so that rebuilding weft during a long run changes nothing.
    let copy = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
    std::fs::copy(&bin, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
    let bin = copy;
    let d = Daemons { bin, hello_s: 1, link_type: "wired" };
    println!("# weft daemon vs babeld ({})", if full { "full run" } else { "smoke run" });
    println!("weft binary: {}", d.bin.display());
    println!("babeld: {}", babeld.as_deref().unwrap_or("not installed: weft only"));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average {}; hello interval {} s (update interval 4 s) for both; {} repetitions",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        d.hello_s,
        s.reps
    );
    let t = Instant::now();
    if s.wants("reconverge") {
        reconvergence(&d, &s);
    }
    // (The smoke run's reconvergence runs start cold already.)
    if s.full && s.wants("coldstart") {
        cold_start(&d, &s);
    }
    if s.wants("table") {
        table::from_speaker(&d, &s);
    }
    if s.wants("lossy") {
        lossy::lossy(&s, d.hello_s, &d.bin);
    }
    if s.wants("scale") {
        scale::scale(&s, &d);
    }
    if s.full && s.wants("table-babeld") {
        table::from_babeld(&d, &s);
    }
    println!("\n(total {:.0} s)", t.elapsed().as_secs_f64());
}
