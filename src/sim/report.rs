//! `weft simulate`: run a topology from a cold start (and optionally a link
//! failure) and report convergence, control traffic and loops.

use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

use super::mesh::{MeshScenario, MeshSim, PairOutcomes};
use super::{Sim, SimConfig, Topology, Window};
use crate::babel::{LinkType, Time};

#[derive(Clone, Debug, Serialize)]
pub struct NodeConvergence {
    pub node: String,
    pub convergence_ms: Option<u64>,
}

/// How many links of each type the topology has.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkTypes {
    pub wired: usize,
    pub wireless: usize,
    pub tunnel: usize,
    /// Lossy links the topology gave no type: taken as wireless.
    pub lossy_without_type_taken_as_wireless: usize,
}

/// Steady state after convergence: per-node rates over a window.
#[derive(Clone, Debug, Serialize)]
pub struct Steady {
    #[serde(flatten)]
    pub window: Window,
    pub control_bytes_per_node_per_s: f64,
    pub control_packets_per_node_per_s: f64,
    pub route_changes_per_node_per_s: f64,
}

impl Steady {
    pub fn new(window: Window, nodes: usize) -> Steady {
        let per = |x: u64| x as f64 * 1000.0 / window.ms.max(1) as f64 / nodes.max(1) as f64;
        Steady {
            control_bytes_per_node_per_s: per(window.bytes),
            control_packets_per_node_per_s: per(window.packets),
            route_changes_per_node_per_s: per(window.route_changes),
            window,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub links: usize,
    pub link_types: LinkTypes,
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
    /// The steady-state window that follows convergence (or the time
    /// limit, for a mesh that never has every pair routed at one instant).
    pub steady: Option<Steady>,
    /// Wall-clock time the simulation took.
    pub wall_ms: u64,
}

pub struct SimOptions {
    pub cfg: SimConfig,
    pub fail_link: Option<(usize, usize)>,
    pub silent: bool,
    pub max_ms: u64,
    /// Length of the steady-state window (0: none).
    pub steady_ms: u64,
    /// Time between convergence and the window; `None`: two update
    /// intervals or twenty Hellos, whichever is longer.
    pub warmup_ms: Option<u64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            cfg: SimConfig::default(),
            fail_link: None,
            silent: false,
            max_ms: 600_000,
            steady_ms: 120_000,
            warmup_ms: None,
        }
    }
}

fn link_types(topo: &Topology) -> LinkTypes {
    let mut t = LinkTypes::default();
    for l in &topo.links {
        match l.link_type {
            LinkType::Wired => t.wired += 1,
            LinkType::Wireless => t.wireless += 1,
            LinkType::Tunnel => t.tunnel += 1,
        }
        if l.type_defaulted {
            t.lossy_without_type_taken_as_wireless += 1;
        }
    }
    t
}

/// Runs the scenario and builds the report.
pub fn simulate(topo: &Topology, opts: &SimOptions) -> SimReport {
    let started = Instant::now();
    let mut sim = Sim::new(topo, opts.cfg.clone());
    let converged_at = sim.run_until_converged(opts.max_ms);
    let convergence_control_bytes = sim.traffic().bytes;
    let mut steady = None;
    if opts.steady_ms > 0 {
        // Past the cold start's transient: two full update rounds, and
        // long enough for ETX's 16-Hello histories to fill.
        let warmup = (2 * opts.cfg.update_interval_ms).max(20 * opts.cfg.hello_interval_ms);
        sim.run_for(opts.warmup_ms.unwrap_or(warmup));
        steady = Some(Steady::new(sim.measure(opts.steady_ms), topo.len()));
    }
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
        link_types: link_types(topo),
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
        steady,
        wall_ms: started.elapsed().as_millis() as u64,
    }
}

fn print_human(r: &SimReport) {
    let ms = |v: Option<u64>| v.map_or("never".to_string(), |v| format!("{:.3} s", v as f64 / 1000.0));
    println!(
        "topology: {} nodes, {} links ({} wired, {} wireless, {} tunnel); seed {}; hello {} ms, update {} ms",
        r.nodes,
        r.links,
        r.link_types.wired,
        r.link_types.wireless,
        r.link_types.tunnel,
        r.seed,
        r.hello_interval_ms,
        r.update_interval_ms
    );
    if r.link_types.lossy_without_type_taken_as_wireless > 0 {
        println!(
            "note: {} lossy links had no \"type\" and were taken as wireless (ETX)",
            r.link_types.lossy_without_type_taken_as_wireless
        );
    }
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
    if let Some(s) = &r.steady {
        println!(
            "steady state ({:.0} s): {:.0} control bytes/node/s, {:.2} datagrams/node/s, {:.3} route changes/node/s",
            s.window.ms as f64 / 1000.0,
            s.control_bytes_per_node_per_s,
            s.control_packets_per_node_per_s,
            s.route_changes_per_node_per_s
        );
        println!(
            "  reachability {:.4} (time-averaged over pairs); every pair at once {:.1} % of the time, lost {} times",
            s.window.reachability,
            100.0 * s.window.full_reachability_time,
            s.window.full_reachability_losses
        );
    }
    println!("forwarding loops seen: {}", r.loops);
    println!("wall time: {} ms", r.wall_ms);
}

const USAGE: &str = "usage: weft simulate (FILE | --line N | --ring N | --grid WxH | --random N[:DEGREE])
                     [--loss P|LO-HI] [--type wired|wireless|tunnel] [--topology-seed N]
                     [--seed N] [--fail-link A,B] [--silent] [--json] [--write-topology FILE]
                     [--hello-interval SECONDS] [--update-interval SECONDS] [--max-time SECONDS]
                     [--steady SECONDS] [--warmup SECONDS]
FILE is a JSON topology: {\"links\":[{\"source\":\"a\",\"target\":\"b\",\"loss\":0.1,\"delay_ms\":5,\"type\":\"wireless\"}]}
With \"credentials\" or \"adversaries\" in FILE it runs the zero-trust mesh (credentials, tunnels,
route filters; Hello 1 s unless given) and reports where honest nodes' packets end up:
{\"credentials\":true,\"adversaries\":[{\"node\":\"m\",\"kind\":\"spoof_origin\",\"victim\":\"v\",\"start_s\":60}]}
(kinds: spoof_origin, unauthorised_prefix, replay, blackhole; \"filter\":false turns route filters off,
\"signatures\":false origin signatures)
(a lossy link without a type is taken as wireless, and so are generated links given --loss;
generated nodes are named n0, n1, ...; --steady 0 skips the steady-state window)";

fn seconds_to_ms(flag: &str, v: &str) -> Result<u64, String> {
    let s: f64 = v.parse().map_err(|_| format!("{flag}: {v:?} is not a number of seconds"))?;
    if !(0.01..=86_400.0).contains(&s) {
        return Err(format!("{flag}: {v} is out of range (0.01..86400 seconds)"));
    }
    Ok((s * 1000.0).round() as u64)
}

/// Where the topology comes from.
#[derive(Debug, PartialEq)]
enum Source {
    File(String),
    Line(usize),
    Ring(usize),
    Grid(usize, usize),
    Random(usize, f64),
}

/// The parsed command line.
struct Args {
    source: Source,
    opts: SimOptions,
    /// Given on the command line (the mesh simulator has defaults of its own).
    hello_given: bool,
    max_given: bool,
    json: bool,
    fail: Option<(String, String)>,
    loss: Option<(f64, f64)>,
    link_type: Option<LinkType>,
    topology_seed: Option<u64>,
    write_topology: Option<String>,
}

fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|n| (2..=100_000).contains(n))
        .ok_or_else(|| format!("{flag}: {v:?} is not a node count (2..100000)"))
}

fn parse_source(flag: &str, v: &str) -> Result<Source, String> {
    Ok(match flag {
        "--line" => Source::Line(count(flag, v)?),
        "--ring" => Source::Ring(count(flag, v)?),
        "--grid" => {
            let (w, h) = v.split_once('x').ok_or_else(|| format!("--grid: expected WxH, got {v:?}"))?;
            let side = |x: &str| x.parse::<usize>().ok().filter(|n| (1..=1000).contains(n));
            match (side(w), side(h)) {
                (Some(w), Some(h)) if w * h >= 2 => Source::Grid(w, h),
                _ => return Err(format!("--grid: {v:?} is not WxH with sides 1..1000")),
            }
        }
        _ => {
            let (n, d) = v.split_once(':').unwrap_or((v, "8"));
            let degree: f64 = d
                .parse()
                .ok()
                .filter(|d: &f64| (1.0..=100.0).contains(d))
                .ok_or_else(|| format!("--random: degree {d:?} is not in 1..100"))?;
            Source::Random(count(flag, n)?, degree)
        }
    })
}

fn parse_loss(v: &str) -> Result<(f64, f64), String> {
    let p = |x: &str| x.parse::<f64>().ok().filter(|x| (0.0..=1.0).contains(x));
    let (lo, hi) = match v.split_once('-') {
        Some((a, b)) => (p(a), p(b)),
        None => (p(v), p(v)),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Ok((lo, hi)),
        _ => Err(format!("--loss: {v:?} is not a probability P or a range LO-HI within 0..1")),
    }
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut source = None;
    let mut a = Args {
        source: Source::Line(2),
        opts: SimOptions::default(),
        hello_given: false,
        max_given: false,
        json: false,
        fail: None,
        loss: None,
        link_type: None,
        topology_seed: None,
        write_topology: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let mut set_source = |s: Source| match source.replace(s) {
            Some(_) => {
                Err("give one topology: a FILE or one of --line, --ring, --grid, --random".to_string())
            }
            None => Ok(()),
        };
        match arg.as_str() {
            "--seed" => {
                let v = value(arg)?;
                a.opts.cfg.seed = v.parse().map_err(|_| format!("--seed: {v:?} is not a whole number"))?;
            }
            "--topology-seed" => {
                let v = value(arg)?;
                a.topology_seed =
                    Some(v.parse().map_err(|_| format!("--topology-seed: {v:?} is not a whole number"))?);
            }
            "--fail-link" => {
                let v = value(arg)?;
                let (x, y) =
                    v.split_once(',').ok_or_else(|| format!("--fail-link: expected A,B, got {v:?}"))?;
                a.fail = Some((x.to_string(), y.to_string()));
            }
            "--silent" => a.opts.silent = true,
            "--json" => a.json = true,
            "--hello-interval" => {
                a.opts.cfg.hello_interval_ms = seconds_to_ms(arg, &value(arg)?)?;
                a.hello_given = true;
            }
            "--update-interval" => a.opts.cfg.update_interval_ms = seconds_to_ms(arg, &value(arg)?)?,
            "--max-time" => {
                a.opts.max_ms = seconds_to_ms(arg, &value(arg)?)?;
                a.max_given = true;
            }
            "--warmup" => a.opts.warmup_ms = Some(seconds_to_ms(arg, &value(arg)?)?),
            "--steady" => {
                let v = value(arg)?;
                a.opts.steady_ms = if v == "0" { 0 } else { seconds_to_ms(arg, &v)? };
            }
            "--line" | "--ring" | "--grid" | "--random" => {
                let v = value(arg)?;
                set_source(parse_source(arg, &v)?)?;
            }
            "--loss" => a.loss = Some(parse_loss(&value(arg)?)?),
            "--type" => {
                let v = value(arg)?;
                a.link_type = Some(match v.as_str() {
                    "wired" => LinkType::Wired,
                    "wireless" => LinkType::Wireless,
                    "tunnel" => LinkType::Tunnel,
                    _ => return Err(format!("--type: {v:?} is not wired, wireless or tunnel")),
                });
            }
            "--write-topology" => a.write_topology = Some(value(arg)?),
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            s => set_source(Source::File(s.to_string()))?,
        }
    }
    a.source = source.ok_or("a topology is required: a FILE or one of --line, --ring, --grid, --random")?;
    Ok(a)
}

/// Builds the topology the arguments describe.
fn topology(a: &Args) -> Result<Topology, String> {
    let seed = a.topology_seed.unwrap_or(a.opts.cfg.seed);
    let mut t = match &a.source {
        Source::File(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?;
            Topology::from_json(&text).map_err(|e| format!("{f}: {e}"))?
        }
        Source::Line(n) => Topology::line(*n),
        Source::Ring(n) => Topology::ring(*n),
        Source::Grid(w, h) => Topology::grid(*w, *h),
        Source::Random(n, d) => Topology::random_geometric_degree(*n, *d, seed),
    };
    if let Some((lo, hi)) = a.loss {
        // Lossy generated links are radios unless --type says otherwise.
        if lo > 0.0 && a.link_type.is_none() && !matches!(a.source, Source::File(_)) {
            t = t.with_type(LinkType::Wireless);
        }
        t = t.with_loss(lo, hi, seed);
    }
    if let Some(ty) = a.link_type {
        t = t.with_type(ty);
    }
    Ok(t)
}

/// What `weft simulate FILE` reports for a zero-trust mesh scenario.
#[derive(Clone, Debug, Serialize)]
pub struct MeshReport {
    pub nodes: usize,
    pub links: usize,
    pub seed: u64,
    pub hello_interval_ms: u64,
    /// Route filters on (false only as a control).
    pub filter: bool,
    /// Origin signatures required (false only as a control).
    pub signatures: bool,
    pub adversaries: Vec<AdversaryView>,
    /// Every honest pair delivered at one instant before the first
    /// adversary acted (or the end, without adversaries).
    pub converged: bool,
    pub convergence_ms: Option<u64>,
    /// When the pairs below were walked.
    pub end_ms: u64,
    #[serde(flatten)]
    pub outcomes: PairOutcomes,
    /// Updates the honest nodes' route filters refused, all told.
    pub refused_announcements: u64,
    /// Updates held back: origin unknown, or no verified set for the seqno.
    pub held_announcements: u64,
    /// Announcement-set signatures the honest nodes checked.
    pub set_verifications: u64,
    /// Babel bytes (payload, TLV 224 included) and datagrams per node and
    /// second over tunnels in the last minute of the run (or the whole run
    /// if shorter), and all bytes until convergence.
    pub control_bytes_per_node_per_s: f64,
    pub control_packets_per_node_per_s: f64,
    pub convergence_control_bytes: u64,
    pub wall_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AdversaryView {
    pub node: String,
    pub kind: &'static str,
    pub start_ms: u64,
}

/// Runs a zero-trust mesh scenario: converge (checked every 100 ms), let
/// the adversaries act, then walk every honest pair.
pub fn simulate_mesh(
    mut scn: MeshScenario,
    seed: u64,
    hello_ms: Option<u64>,
    max_ms: Option<u64>,
) -> MeshReport {
    let started = Instant::now();
    scn.seed = seed;
    if let Some(h) = hello_ms {
        scn.hello_interval_ms = h;
    }
    let first_attack = scn.adversaries.iter().map(|a| a.start_ms).min();
    let last_attack = scn.adversaries.iter().map(|a| a.start_ms).max();
    let end = max_ms.unwrap_or(match last_attack {
        Some(t) => t + 60_000,
        None => 120_000,
    });
    // Every node checks every signature itself (and counts and budgets it);
    // the process makes each distinct check once.
    crate::trust::keys::shared_verdicts::share(true);
    let mut sim = MeshSim::new(&scn);
    let converge_by = first_attack.unwrap_or(end).min(end);
    let mut convergence_ms = None;
    let mut convergence_control_bytes = 0;
    while sim.now().millis() < converge_by {
        sim.run_for(100);
        if sim.all_delivered() {
            convergence_ms = Some(sim.now().millis());
            convergence_control_bytes = sim.control_traffic().0;
            break;
        }
    }
    let window_start = end.saturating_sub(60_000).max(sim.now().millis());
    sim.run_until(Time(window_start));
    let (b0, p0) = sim.control_traffic();
    sim.run_until(Time(end));
    let (b1, p1) = sim.control_traffic();
    crate::trust::keys::shared_verdicts::share(false);
    let per =
        |x: u64| x as f64 * 1000.0 / (end - window_start).max(1) as f64 / scn.topology.len().max(1) as f64;
    MeshReport {
        nodes: scn.topology.len(),
        links: scn.topology.links.len(),
        seed,
        hello_interval_ms: scn.hello_interval_ms,
        filter: scn.filter,
        signatures: scn.signatures,
        adversaries: scn
            .adversaries
            .iter()
            .map(|a| AdversaryView {
                node: scn.topology.names[a.node].clone(),
                kind: a.kind.as_str(),
                start_ms: a.start_ms,
            })
            .collect(),
        converged: convergence_ms.is_some(),
        convergence_ms,
        end_ms: sim.now().millis(),
        outcomes: sim.pair_outcomes(),
        refused_announcements: sim.refused_announcements(),
        held_announcements: sim.held_announcements(),
        set_verifications: sim.set_verifications(),
        control_bytes_per_node_per_s: per(b1 - b0),
        control_packets_per_node_per_s: per(p1 - p0),
        convergence_control_bytes,
        wall_ms: started.elapsed().as_millis() as u64,
    }
}

fn print_mesh_human(r: &MeshReport) {
    let on = |b: bool| if b { "on" } else { "off" };
    println!(
        "zero-trust mesh: {} nodes, {} links, seed {}, route filters {}, origin signatures {}",
        r.nodes,
        r.links,
        r.seed,
        on(r.filter),
        on(r.signatures)
    );
    for a in &r.adversaries {
        println!("  adversary {} ({}) from {:.1} s", a.node, a.kind, a.start_ms as f64 / 1000.0);
    }
    match r.convergence_ms {
        Some(t) => println!("honest pairs all delivered at {:.1} s", t as f64 / 1000.0),
        None => println!("honest pairs never all delivered before the first attack"),
    }
    let o = &r.outcomes;
    println!(
        "at {:.1} s: {} pairs: {} delivered, {} hijacked, {} blackholed, {} unreachable; {} announcements refused, {} held; {} set signatures checked",
        r.end_ms as f64 / 1000.0,
        o.pairs,
        o.delivered,
        o.hijacked,
        o.blackholed,
        o.unreachable,
        r.refused_announcements,
        r.held_announcements,
        r.set_verifications
    );
}

/// The text of a FILE topology that describes a zero-trust mesh scenario.
fn mesh_scenario_text(a: &Args) -> Result<Option<String>, String> {
    let Source::File(f) = &a.source else { return Ok(None) };
    let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {f}: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{f}: {e}"))?;
    Ok((v.get("credentials").is_some() || v.get("adversaries").is_some()).then_some(text))
}

fn run_mesh(a: &Args, text: &str) -> ExitCode {
    let file = match &a.source {
        Source::File(f) => f.as_str(),
        _ => "",
    };
    if a.loss.is_some() || a.link_type.is_some() || a.fail.is_some() {
        eprintln!("weft simulate: {file}: --loss, --type and --fail-link are not supported for mesh scenarios (give them in the file)");
        return ExitCode::from(2);
    }
    let scn = match MeshScenario::from_json(text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weft simulate: {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let r = simulate_mesh(
        scn,
        a.opts.cfg.seed,
        a.hello_given.then_some(a.opts.cfg.hello_interval_ms),
        a.max_given.then_some(a.opts.max_ms),
    );
    if a.json {
        println!("{}", serde_json::to_string(&r).expect("serialisable"));
    } else {
        print_mesh_human(&r);
    }
    ExitCode::SUCCESS
}

/// Entry point of `weft simulate`.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let mut a = match parse_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("weft simulate: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match mesh_scenario_text(&a) {
        Ok(Some(text)) => return run_mesh(&a, &text),
        Ok(None) => {}
        Err(e) => {
            eprintln!("weft simulate: {e}");
            return ExitCode::from(1);
        }
    }
    let topo = match topology(&a) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weft simulate: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &a.write_topology {
        if let Err(e) = std::fs::write(path, topo.to_json()) {
            eprintln!("weft simulate: cannot write {path}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some((x, y)) = a.fail.take() {
        let (Some(ia), Some(ib)) = (topo.index_of(&x), topo.index_of(&y)) else {
            eprintln!("weft simulate: --fail-link {x},{y}: no such node");
            return ExitCode::from(1);
        };
        if !topo.links.iter().any(|l| (l.a, l.b) == (ia, ib) || (l.a, l.b) == (ib, ia)) {
            eprintln!("weft simulate: --fail-link {x},{y}: these nodes are not linked");
            return ExitCode::from(1);
        }
        a.opts.fail_link = Some((ia, ib));
    }
    let report = simulate(&topo, &a.opts);
    if a.json {
        println!("{}", serde_json::to_string(&report).expect("serialisable"));
    } else {
        print_human(&report);
    }
    if report.loops > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
