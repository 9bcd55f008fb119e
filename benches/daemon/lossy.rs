//! weft and babeld on lossy radio-like links, same bed, same loss,
//! alternating runs: every veth end drops a share of its frames on egress
//! (nftables `numgen random`, both directions, everything: Hellos, updates,
//! neighbour discovery, pings), and both daemons run the links as
//! `type wireless` (ETX). Per run, after a cold start and a warm-up long
//! enough for the 16-Hello histories to fill, a steady-state window
//! measures what the field pays for a routing protocol:
//!
//! - control traffic: bytes and datagrams to UDP 6696 leaving each node
//!   (IPv6 datagrams as sent, before the loss), per node per second;
//! - route rewrites: routes of the daemon's protocol the kernel reports
//!   added or replaced (RTM_NEWROUTE), all nodes;
//! - reachability: every node's forwarding path to every announced address
//!   walked through the kernels' tables every 100 ms; how often full
//!   reachability was lost and the share of checks at which it held;
//! - pings over the longest paths of the topology during the window
//!   (delivery on lossy hops is what a user sees);
//! - cold start: from the daemons' start to the first check at which every
//!   path worked.

use std::collections::VecDeque;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use weft::sim::Topology;

use crate::bed::Bed;
use crate::common::netns::node_v6;
use crate::daemons::{stop_all, Announce, Daemons, Kind, Proc};
use crate::rtnl::{Change, Listener};
use crate::{secs, summary, Settings};

/// One run's figures.
#[derive(Debug, Clone)]
struct Run {
    kind: Kind,
    cold: Option<Duration>,
    bytes_per_node_s: f64,
    packets_per_node_s: f64,
    rewrites: u64,
    full_losses: u64,
    full_share: f64,
    pings_sent: u64,
    pings_received: u64,
}

/// Loss in hundredths of a percent on every link end's egress.
fn set_loss(bed: &Bed, per_10k: u32) {
    for i in 0..bed.len() {
        let _ = bed.net.exec(i, &["nft", "delete", "table", "netdev", "benchloss"]);
        if per_10k == 0 {
            continue;
        }
        let mut script = String::from("table netdev benchloss {\n");
        for (k, dev) in bed.net.devices(i).iter().enumerate() {
            script += &format!(
                " chain e{k} {{ type filter hook egress device \"{dev}\" priority -400; policy accept; numgen random mod 10000 < {per_10k} drop; }}\n"
            );
        }
        script += "}\n";
        bed.net.nft(i, &script);
    }
}

/// Pairs of nodes farthest apart in hops (the longest paths), up to `k`.
fn far_pairs(topo: &Topology, k: usize) -> Vec<(usize, usize, usize)> {
    let n = topo.len();
    let mut adj = vec![Vec::new(); n];
    for l in &topo.links {
        adj[l.a].push(l.b);
        adj[l.b].push(l.a);
    }
    let mut pairs = Vec::new();
    for s in 0..n {
        let mut dist = vec![usize::MAX; n];
        dist[s] = 0;
        let mut q = VecDeque::from([s]);
        while let Some(u) = q.pop_front() {
            for &v in &adj[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    q.push_back(v);
                }
            }
        }
        for (t, &d) in dist.iter().enumerate() {
            if t > s && d != usize::MAX {
                pairs.push((d, s, t));
            }
        }
    }
    pairs.sort_by(|a, b| b.cmp(a));
    // Distinct endpoints, so the pings spread over the mesh.
    let mut used = Vec::new();
    let mut out = Vec::new();
    for (d, s, t) in pairs {
        if out.len() == k {
            break;
        }
        if used.contains(&s) || used.contains(&t) {
            continue;
        }
        used.extend([s, t]);
        out.push((s, t, d));
    }
    out
}

/// Starts `count` pings from `a` to `b`'s address, one every 200 ms.
fn start_pings(bed: &Bed, a: usize, b: usize, count: u32) -> Child {
    bed.net
        .in_ns(a, &["ping", "-6", "-q", "-n", "-c", &count.to_string(), "-i", "0.2", "-W", "2", &node_v6(b)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping")
}

/// (sent, received) from ping's summary line.
fn ping_result(c: Child) -> (u64, u64) {
    let out = c.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("transmitted")).unwrap_or("");
    let num = |word: &str| {
        line.split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (num("transmitted"), num("received"))
}

/// With WEFT_BENCH_PCAP=DIR, every node's outgoing Babel datagrams of the
/// steady-state window go to DIR/<daemon>-<nodes>-<n>.pcap (overwritten by the
/// next run of the same daemon), to tell where the bytes go:
/// `tshark -r F -T fields -e babel.message.type -e babel.message.length`.
fn start_captures(bed: &Bed, kind: Kind) -> Vec<Child> {
    let Ok(dir) = std::env::var("WEFT_BENCH_PCAP") else {
        return Vec::new();
    };
    let _ = std::fs::create_dir_all(&dir);
    let caps: Vec<Child> = (0..bed.len())
        .map(|i| {
            let file = format!("{dir}/{}-{}-{i}.pcap", kind.as_str(), bed.len());
            let _ = std::fs::remove_file(&file);
            bed.net
                .in_ns(
                    i,
                    &["tcpdump", "-i", "any", "-U", "-s", "1500", "-w", &file, "outbound and udp port 6696"],
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump")
        })
        .collect();
    // tcpdump needs a moment to attach; the window is long, a few
    // datagrams missed at its start do not change the composition.
    caps
}

fn stop_captures(caps: Vec<Child>) {
    for mut c in caps {
        let _ = std::process::Command::new("kill").args(["-INT", &c.id().to_string()]).status();
        let _ = c.wait();
    }
}

struct Plan {
    warmup: Duration,
    window: Duration,
    probe: Duration,
}

fn run(bed: &mut Bed, d: &Daemons, kind: Kind, topo: &Topology, plan: &Plan) -> Run {
    let p = kind.protocol();
    let n = bed.len();
    let t0 = Instant::now();
    let procs: Vec<Proc> = (0..n).map(|i| d.start(bed, kind, i, Announce::Loopbacks)).collect();
    // Cold start: the first check at which every path works.
    let mut cold = None;
    while t0.elapsed() < Duration::from_secs(60) {
        if bed.check_paths(p).all_ok() {
            cold = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(plan.warmup.saturating_sub(t0.elapsed()));
    let mut listeners: Vec<Listener> =
        (0..n).map(|i| Listener::open(bed.ns(i)).expect("route listener")).collect();
    bed.reset_babel_counters();
    let pairs = far_pairs(topo, 4);
    let pings_each = (plan.window.as_millis() / 200) as u32;
    let pingers: Vec<Child> = pairs.iter().map(|&(a, b, _)| start_pings(bed, a, b, pings_each)).collect();
    let captures = start_captures(bed, kind);
    let w0 = Instant::now();
    let (mut checks, mut ok_checks, mut full_losses, mut rewrites) = (0u64, 0u64, 0u64, 0u64);
    let mut was_ok = true;
    while w0.elapsed() < plan.window {
        let started = Instant::now();
        let ok = bed.check_paths(p).all_ok();
        checks += 1;
        if ok {
            ok_checks += 1;
        } else if was_ok {
            full_losses += 1;
        }
        was_ok = ok;
        for l in listeners.iter_mut() {
            let changes = l.poll(0).unwrap_or_else(|e| panic!("route events lost: {e}"));
            // Installs and replacements: babeld changes a next hop by
            // deleting and adding, weft by replacing; each is one add.
            rewrites +=
                changes.iter().filter(|c| matches!(c, Change::Added(r) if r.protocol == p)).count() as u64;
        }
        std::thread::sleep(plan.probe.saturating_sub(started.elapsed()));
    }
    let window = w0.elapsed();
    stop_captures(captures);
    let (packets, bytes) = bed.babel_counters().iter().fold((0, 0), |(p, b), (p2, b2)| (p + p2, b + b2));
    let (mut sent, mut received) = (0, 0);
    for c in pingers {
        let (s, r) = ping_result(c);
        sent += s;
        received += r;
    }
    stop_all(procs);
    crate::clean_up_routes(bed, kind);
    let per = |x: u64| x as f64 / window.as_secs_f64() / n as f64;
    Run {
        kind,
        cold,
        bytes_per_node_s: per(bytes),
        packets_per_node_s: per(packets),
        rewrites,
        full_losses,
        full_share: ok_checks as f64 / checks.max(1) as f64,
        pings_sent: sent,
        pings_received: received,
    }
}

pub fn lossy(s: &Settings, hello_s: u32, bin: &std::path::Path) {
    let d = Daemons { bin: bin.to_path_buf(), hello_s, link_type: "wireless" };
    let beds: Vec<(String, Topology)> = if s.full {
        vec![
            ("5x5 grid".into(), Topology::grid(5, 5)),
            ("random graph of 30".into(), Topology::random_geometric_degree(30, 4.0, 7)),
        ]
    } else {
        vec![("2x2 grid".into(), Topology::grid(2, 2))]
    };
    let losses: Vec<u32> = match std::env::var("WEFT_BENCH_LOSS") {
        Ok(v) => {
            v.split(',').filter_map(|x| x.trim().parse::<f64>().ok()).map(|p| (p * 100.0) as u32).collect()
        }
        Err(_) if s.full => vec![500, 1000, 2000],
        Err(_) => vec![1000],
    };
    let plan = if s.full {
        Plan {
            warmup: Duration::from_secs(25),
            window: Duration::from_secs(20),
            probe: Duration::from_millis(100),
        }
    } else {
        Plan {
            warmup: Duration::from_secs(3),
            window: Duration::from_secs(3),
            probe: Duration::from_millis(100),
        }
    };
    for (name, topo) in beds {
        println!(
            "\n## lossy links: {name} ({} nodes, {} links, longest paths {:?} hops), type wireless, hello {hello_s} s",
            topo.len(),
            topo.links.len(),
            far_pairs(&topo, 4).iter().map(|p| p.2).collect::<Vec<_>>()
        );
        let mut bed = Bed::new(&topo);
        for &loss in &losses {
            set_loss(&bed, loss);
            let pct = loss as f64 / 100.0;
            let mut runs: Vec<Run> = Vec::new();
            for rep in 0..s.reps {
                for kind in s.order(rep) {
                    let r = run(&mut bed, &d, kind, &topo, &plan);
                    println!(
                        "  {pct}% rep {rep} {:<6}: cold start {} | {:.0} B/node/s, {:.1} datagrams/node/s | {} route rewrites in {} s | full reachability lost {} times, held at {:.1} % of checks | pings {}/{}",
                        kind.as_str(),
                        secs(r.cold),
                        r.bytes_per_node_s,
                        r.packets_per_node_s,
                        r.rewrites,
                        plan.window.as_secs(),
                        r.full_losses,
                        100.0 * r.full_share,
                        r.pings_received,
                        r.pings_sent
                    );
                    if !s.full && kind == Kind::Weft {
                        assert!(r.cold.is_some(), "weft did not converge on the lossy bed");
                        assert!(
                            r.bytes_per_node_s > 0.0,
                            "no Babel traffic counted: the counters measure nothing"
                        );
                    }
                    runs.push(r);
                }
            }
            println!("  summary ({name}, {pct}% loss per link end, medians of {} runs):", s.reps);
            for &kind in &s.kinds {
                let rs: Vec<&Run> = runs.iter().filter(|r| r.kind == kind).collect();
                let f = |g: &dyn Fn(&Run) -> f64| rs.iter().map(|r| g(r)).collect::<Vec<f64>>();
                println!(
                    "    {:<6} control {} | {} | route rewrites {} | full reachability lost {} | held {} | ping delivery {} | cold start {}",
                    kind.as_str(),
                    summary(f(&|r| r.bytes_per_node_s), "B/node/s", 0),
                    summary(f(&|r| r.packets_per_node_s), "datagrams/node/s", 1),
                    summary(f(&|r| r.rewrites as f64), "per window", 0),
                    summary(f(&|r| r.full_losses as f64), "times", 0),
                    summary(f(&|r| 100.0 * r.full_share), "%", 1),
                    summary(f(&|r| 100.0 * r.pings_received as f64 / r.pings_sent.max(1) as f64), "%", 1),
                    summary(rs.iter().filter_map(|r| r.cold).map(|c| c.as_secs_f64()).collect(), "s", 2),
                );
            }
        }
        set_loss(&bed, 0);
    }
}
