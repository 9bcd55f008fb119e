//! `weft simulate`: run a topology from a cold start (and optionally a link
//! failure) and report convergence, control traffic and loops.

use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

use super::{Sim, SimConfig, Topology};

#[derive(Clone, Debug, Serialize)]
pub struct NodeConvergence {
    pub node: String,
    pub convergence_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub links: usize,
    pub seed: u64,
    pub hello_interval_ms: u64,
    pub update_interval_ms: u64,
    /// Every node got a route to every other node's prefix.
    pub converged: bool,
    /// Simulated time from cold start to full reachability (null if never).
    pub convergence_ms: Option<u64>,
    pub per_node: Vec<NodeConvergence>,
    /// The failed link, if any, and how it failed.
    pub failed_link: Option<String>,
    /// Simulated time from the failure until every path works again.
    pub reconvergence_ms: Option<u64>,
    /// Forwarding loops seen at any step.
    pub loops: u64,
    /// Babel payload bytes and datagrams sent, all phases.
    pub control_bytes: u64,
    pub control_packets: u64,
    /// Babel payload bytes sent until cold-start convergence.
    pub convergence_control_bytes: u64,
    /// Wall-clock time the simulation took.
    pub wall_ms: u64,
}

pub struct SimOptions {
    pub cfg: SimConfig,
    pub fail_link: Option<(usize, usize)>,
    pub silent: bool,
    pub max_ms: u64,
}

/// Runs the scenario and builds the report.
pub fn simulate(topo: &Topology, opts: &SimOptions) -> SimReport {
    let started = Instant::now();
    let mut sim = Sim::new(topo, opts.cfg.clone());
    let converged_at = sim.run_until_converged(opts.max_ms);
    let convergence_control_bytes = sim.traffic().bytes;
    let mut reconvergence_ms = None;
    let mut failed_link = None;
    if let (Some((a, b)), Some(_)) = (opts.fail_link, converged_at) {
        // Let the mesh settle (a full update round) before breaking it.
        sim.run_for(opts.cfg.update_interval_ms);
        sim.fail_link(a, b, opts.silent);
        failed_link = Some(format!(
            "{}-{} ({})",
            topo.names[a],
            topo.names[b],
            if opts.silent { "silent" } else { "carrier down" }
        ));
        let t0 = sim.now();
        reconvergence_ms = sim.run_until_correct(opts.max_ms).map(|t| t.since(t0));
    }
    SimReport {
        nodes: topo.len(),
        links: topo.links.len(),
        seed: opts.cfg.seed,
        hello_interval_ms: opts.cfg.hello_interval_ms,
        update_interval_ms: opts.cfg.update_interval_ms,
        converged: converged_at.is_some(),
        convergence_ms: converged_at.map(|t| t.millis()),
        per_node: topo
            .names
            .iter()
            .zip(sim.node_convergence())
            .map(|(n, t)| NodeConvergence { node: n.clone(), convergence_ms: t.map(|t| t.millis()) })
            .collect(),
        failed_link,
        reconvergence_ms,
        loops: sim.loops(),
        control_bytes: sim.traffic().bytes,
        control_packets: sim.traffic().packets,
        convergence_control_bytes,
        wall_ms: started.elapsed().as_millis() as u64,
    }
}

fn print_human(r: &SimReport) {
    let ms = |v: Option<u64>| v.map_or("never".to_string(), |v| format!("{:.3} s", v as f64 / 1000.0));
    println!(
        "topology: {} nodes, {} links; seed {}; hello {} ms, update {} ms",
        r.nodes, r.links, r.seed, r.hello_interval_ms, r.update_interval_ms
    );
    println!("{:<16} {:>14}", "node", "converged at");
    for n in &r.per_node {
        println!("{:<16} {:>14}", n.node, ms(n.convergence_ms));
    }
    println!("convergence (every node reaches every node): {}", ms(r.convergence_ms));
    if let Some(l) = &r.failed_link {
        println!("failed link {l}: reconvergence {}", ms(r.reconvergence_ms));
    }
    println!(
        "control traffic: {} bytes in {} datagrams ({} bytes until convergence)",
        r.control_bytes, r.control_packets, r.convergence_control_bytes
    );
    println!("forwarding loops seen: {}", r.loops);
    println!("wall time: {} ms", r.wall_ms);
}

const USAGE: &str = "usage: weft simulate FILE [--seed N] [--fail-link A,B] [--silent] [--json]
                     [--hello-interval SECONDS] [--update-interval SECONDS] [--max-time SECONDS]
FILE is a JSON topology: {\"links\":[{\"source\":\"a\",\"target\":\"b\",\"loss\":0.1,\"delay_ms\":5}]}";

fn seconds_to_ms(flag: &str, v: &str) -> Result<u64, String> {
    let s: f64 = v.parse().map_err(|_| format!("{flag}: {v:?} is not a number of seconds"))?;
    if !(0.01..=86_400.0).contains(&s) {
        return Err(format!("{flag}: {v} is out of range (0.01..86400 seconds)"));
    }
    Ok((s * 1000.0).round() as u64)
}

/// Parsed command line: file, options, --json, --fail-link names.
type Parsed = (String, SimOptions, bool, Option<(String, String)>);

fn parse_args(args: &[String]) -> Result<Parsed, String> {
    let mut file = None;
    let mut opts = SimOptions { cfg: SimConfig::default(), fail_link: None, silent: false, max_ms: 600_000 };
    let mut json = false;
    let mut fail = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--seed" => {
                let v = value("--seed")?;
                opts.cfg.seed = v.parse().map_err(|_| format!("--seed: {v:?} is not a whole number"))?;
            }
            "--fail-link" => {
                let v = value("--fail-link")?;
                let (x, y) =
                    v.split_once(',').ok_or_else(|| format!("--fail-link: expected A,B, got {v:?}"))?;
                fail = Some((x.to_string(), y.to_string()));
            }
            "--silent" => opts.silent = true,
            "--json" => json = true,
            "--hello-interval" => opts.cfg.hello_interval_ms = seconds_to_ms(a, &value(a)?)?,
            "--update-interval" => opts.cfg.update_interval_ms = seconds_to_ms(a, &value(a)?)?,
            "--max-time" => opts.max_ms = seconds_to_ms(a, &value(a)?)?,
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            s => {
                if file.replace(s.to_string()).is_some() {
                    return Err("only one topology file may be given".into());
                }
            }
        }
    }
    let file = file.ok_or("a topology FILE is required")?;
    Ok((file, opts, json, fail))
}

/// Entry point of `weft simulate`.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (file, mut opts, json, fail) = match parse_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("weft simulate: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weft simulate: cannot read {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let topo = match Topology::from_json(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weft simulate: {file}: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some((a, b)) = fail {
        let (Some(ia), Some(ib)) = (topo.index_of(&a), topo.index_of(&b)) else {
            eprintln!("weft simulate: --fail-link {a},{b}: no such node in {file}");
            return ExitCode::from(1);
        };
        if !topo.links.iter().any(|l| (l.a, l.b) == (ia, ib) || (l.a, l.b) == (ib, ia)) {
            eprintln!("weft simulate: --fail-link {a},{b}: these nodes are not linked in {file}");
            return ExitCode::from(1);
        }
        opts.fail_link = Some((ia, ib));
    }
    let report = simulate(&topo, &opts);
    if json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    } else {
        print_human(&report);
    }
    if report.loops > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
