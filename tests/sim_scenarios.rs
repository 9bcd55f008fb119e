//! Multi-node behaviour of the Babel engine in the deterministic simulator:
//! cold start, link failure (carrier and silent), recovery, loss, starvation.
//! Every scenario also asserts that no forwarding loop appeared at any step.

use weft::babel::{LinkType, Metric, Prefix};
use weft::sim::{sim_prefix, Sim, SimConfig, Topology};

const HELLO: u64 = 4000;
const UPDATE: u64 = 16000;

fn cfg(seed: u64) -> SimConfig {
    SimConfig { seed, hello_interval_ms: HELLO, update_interval_ms: UPDATE, check_loops: true }
}

fn converge(sim: &mut Sim, max_ms: u64) -> u64 {
    let t = sim
        .run_until_converged(max_ms)
        .unwrap_or_else(|| panic!("no convergence within {max_ms} ms; loops: {:?}", sim.loop_log()));
    assert!(sim.fully_correct(), "converged but some forwarding path is broken");
    assert_eq!(sim.loops(), 0, "loops: {:?}", sim.loop_log());
    t.millis()
}

fn hops(sim: &Sim, a: usize, b: usize) -> usize {
    sim.path(a, b).unwrap_or_else(|| panic!("no working path {a}->{b}")).len() - 1
}

#[test]
fn two_nodes_see_each_other_with_wired_cost() {
    let mut sim = Sim::new(&Topology::line(2), cfg(1));
    converge(&mut sim, 30_000);
    let n = sim.engine(0).neighbours();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].cost, 96, "{n:?}");
    let routes = sim.engine(0).routes();
    let r = routes.iter().find(|r| r.prefix == sim_prefix(1)).expect("route to node 1");
    assert_eq!(r.metric, 96);
    assert!(r.selected && r.feasible);
}

#[test]
fn line_of_10_converges_loop_free() {
    let mut sim = Sim::new(&Topology::line(10), cfg(2));
    let t = converge(&mut sim, 120_000);
    // Nine hops of triggered updates: well under one periodic interval.
    assert!(t < UPDATE, "line of 10 took {t} ms");
    assert_eq!(hops(&sim, 0, 9), 9);
    let far = sim.engine(0).routes();
    let r = far.iter().find(|r| r.prefix == sim_prefix(9) && r.selected).unwrap();
    assert_eq!(r.metric, 9 * 96);
}

#[test]
fn ring_of_20_reroutes_after_carrier_loss_and_restores() {
    let mut sim = Sim::new(&Topology::ring(20), cfg(3));
    converge(&mut sim, 120_000);
    sim.run_for(UPDATE);
    assert_eq!(hops(&sim, 0, 1), 1);
    sim.fail_link(0, 1, false);
    let t0 = sim.now().millis();
    let t = sim.run_until_correct(120_000).expect("reconverges").millis() - t0;
    assert!(t < 2 * HELLO, "carrier loss reconvergence took {t} ms");
    assert_eq!(hops(&sim, 0, 1), 19);
    assert_eq!(sim.loops(), 0, "{:?}", sim.loop_log());
    // The link comes back: the one-hop path is used again.
    sim.restore_link(0, 1);
    sim.run_for(2 * UPDATE);
    assert_eq!(hops(&sim, 0, 1), 1);
    assert_eq!(hops(&sim, 10, 1), 9);
    assert_eq!(sim.loops(), 0, "{:?}", sim.loop_log());
}

#[test]
fn grid_10x10_survives_silent_failure() {
    let mut sim = Sim::new(&Topology::grid(10, 10), cfg(4));
    converge(&mut sim, 120_000);
    sim.run_for(UPDATE);
    // Node 44's link to 45 dies without any carrier event.
    sim.fail_link(44, 45, true);
    let t0 = sim.now().millis();
    let t = sim.run_until_correct(200_000).expect("reconverges").millis() - t0;
    // Detection needs missed Hellos (2-out-of-3): a few Hello intervals.
    assert!(t < 5 * HELLO, "silent failure reconvergence took {t} ms");
    assert_eq!(sim.loops(), 0, "{:?}", sim.loop_log());
    sim.restore_link(44, 45);
    sim.run_for(3 * UPDATE);
    assert_eq!(hops(&sim, 44, 45), 1);
    assert!(sim.fully_correct());
    assert_eq!(sim.loops(), 0);
}

#[test]
fn random_200_node_geometric_graph_converges_loop_free() {
    let topo = Topology::random_geometric(200, 0.12, 11);
    let mut sim = Sim::new(&topo, cfg(5));
    converge(&mut sim, 300_000);
    // Fail one link of a node with several links; everything still reaches.
    let l = topo
        .links
        .iter()
        .find(|l| topo.links.iter().filter(|m| m.a == l.a || m.b == l.a).count() >= 3)
        .unwrap();
    sim.run_for(UPDATE);
    sim.fail_link(l.a, l.b, false);
    sim.run_until_correct(300_000).expect("reconverges after a link failure");
    assert_eq!(sim.loops(), 0, "{:?}", sim.loop_log());
}

/// A diamond a-{b,c}-d of wireless links where a–b loses 20 % of frames:
/// ETX must route a→d through c.
#[test]
fn etx_prefers_the_clean_path_under_20_percent_loss() {
    let mut t = Topology::default();
    let (a, b, c, d) = (t.node("a"), t.node("b"), t.node("c"), t.node("d"));
    for (x, y) in [(a, b), (a, c), (b, d), (c, d)] {
        t.add_link(x, y, LinkType::Wireless);
    }
    t.links[0].loss = 0.2;
    let mut sim = Sim::new(&t, cfg(6));
    converge(&mut sim, 120_000);
    // Let the Hello histories fill so ETX reflects the loss.
    sim.run_for(20 * HELLO);
    assert_eq!(sim.path(a, d).unwrap(), vec![a, c, d]);
    assert_eq!(sim.path(d, a).unwrap(), vec![d, c, a]);
    let cost_ab = sim.engine(a).neighbours().into_iter().map(|n| n.cost).max().unwrap();
    assert!(cost_ab > 256, "lossy link cost {cost_ab}");
    assert_eq!(sim.loops(), 0);
}

/// Starvation (§3.8.2.1): in a ring, after a failure the surviving route
/// is unfeasible (its advertised metric is above the feasibility distance),
/// so only a seqno request from the origin can restore it — long before any
/// route would expire.
#[test]
fn starvation_is_resolved_by_seqno_requests() {
    let mut sim = Sim::new(&Topology::ring(6), cfg(7));
    converge(&mut sim, 60_000);
    sim.run_for(2 * UPDATE);
    let before: u64 = (0..6).map(|i| sim.engine(i).stats().seqno_requests_out).sum();
    let seqno_before = sim.engine(0).seqno();
    // Node 1 reaches node 0 directly; its alternative is the long way round.
    sim.fail_link(0, 1, true);
    let t0 = sim.now().millis();
    let t = sim.run_until_correct(120_000).expect("reconverges").millis() - t0;
    let after: u64 = (0..6).map(|i| sim.engine(i).stats().seqno_requests_out).sum();
    assert!(after > before, "no seqno request was sent");
    assert!(sim.engine(0).seqno().newer_than(seqno_before), "origin never raised its seqno");
    // Far below route expiry (3.5 update intervals).
    assert!(t < 3 * UPDATE, "starvation lasted {t} ms");
    assert_eq!(hops(&sim, 1, 0), 5);
    assert_eq!(sim.loops(), 0, "{:?}", sim.loop_log());
}

#[test]
fn withdrawn_prefix_is_retracted_everywhere() {
    let mut sim = Sim::new(&Topology::line(5), cfg(8));
    converge(&mut sim, 60_000);
    let extra: Prefix = "10.99.0.0/16".parse().unwrap();
    sim.announce(4, extra, Metric(0));
    sim.run_for(2000);
    assert!((0..4).all(|i| sim.other_routes(i) == 1), "extra prefix did not spread");
    sim.withdraw_prefix(4, extra);
    sim.run_for(2000);
    assert!((0..4).all(|i| sim.other_routes(i) == 0), "retraction did not spread");
    assert_eq!(sim.loops(), 0);
}

#[test]
fn same_seed_replays_exactly() {
    let run = |seed| {
        let mut sim = Sim::new(&Topology::grid(4, 4), cfg(seed));
        let t = sim.run_until_converged(60_000).unwrap();
        (t, sim.traffic().clone())
    };
    assert_eq!(run(9), run(9));
}

/// Steady state of a lossy mesh after a cold start, as `weft simulate`
/// reports it: every pair must have been routed at one instant (the strict
/// criterion, which lossy radios reach because ETX links stay up and
/// unrefreshed routes are asked for before they expire), and afterwards
/// reachability, control traffic and route churn must stay bounded.
struct Lossy {
    converged_ms: u64,
    steady: weft::sim::report::Steady,
}

fn run_lossy(topo: &Topology, hello: u64, seed: u64, warmup_hellos: u64, steady_ms: u64) -> Lossy {
    let cfg = SimConfig { seed, hello_interval_ms: hello, update_interval_ms: 4 * hello, check_loops: true };
    let mut sim = Sim::new(topo, cfg);
    let converged_ms = converge(&mut sim, 300_000);
    // Past the transient: ETX histories (16 Hellos) fill, and the smoothed
    // metrics that follow them.
    sim.run_for(warmup_hellos * hello);
    let steady = weft::sim::report::Steady::new(sim.measure(steady_ms), topo.len());
    assert_eq!(sim.loops(), 0, "loops: {:?}", sim.loop_log());
    Lossy { converged_ms, steady }
}

fn assert_bounded(what: &str, r: &Lossy, max_bytes: f64, max_changes: f64) {
    let s = &r.steady;
    println!(
        "{what}: converged at {} ms; {:.0} B/node/s, {:.2} datagrams/node/s, {:.3} route changes/node/s; reachability {:.5}, full {:.4} of the time, lost {} times",
        r.converged_ms,
        s.control_bytes_per_node_per_s,
        s.control_packets_per_node_per_s,
        s.route_changes_per_node_per_s,
        s.window.reachability,
        s.window.full_reachability_time,
        s.window.full_reachability_losses
    );
    assert!(s.window.reachability >= 0.999, "{what}: reachability {}", s.window.reachability);
    assert!(
        s.control_bytes_per_node_per_s <= max_bytes,
        "{what}: {} control B/node/s",
        s.control_bytes_per_node_per_s
    );
    assert!(
        s.route_changes_per_node_per_s <= max_changes,
        "{what}: {} route changes/node/s",
        s.route_changes_per_node_per_s
    );
}

/// A random mesh of radios whose links lose 0-30 % of frames each way
/// (the case that never converged when every cost change was urgent).
#[test]
fn lossy_random_geometric_graph_converges_with_bounded_traffic_and_churn() {
    let topo = Topology::random_geometric_degree(120, 8.0, 21).with_loss(0.0, 0.3, 21);
    assert!(topo.links.iter().all(|l| l.link_type == LinkType::Wireless));
    let r = run_lossy(&topo, HELLO, 21, 20, 60_000);
    assert_bounded("RGG-120, loss 0-30 %", &r, 2000.0, 2.0);
}

/// Grids of radios with uniform loss: 5, 10 and 20 % each way.
#[test]
fn lossy_grids_converge_with_bounded_traffic_and_churn() {
    for (loss, max_changes) in [(0.05, 0.8), (0.10, 0.9), (0.20, 1.0)] {
        let topo = Topology::grid(8, 8).with_type(LinkType::Wireless).with_loss(loss, loss, 3);
        let r = run_lossy(&topo, 1000, 31, 20, 60_000);
        assert_bounded(&format!("8x8 grid, {} % loss", loss * 100.0), &r, 1500.0, max_changes);
    }
}

/// Without losses nothing changes in the steady state: not one route.
#[test]
fn a_lossless_mesh_is_quiet_once_converged() {
    let topo = Topology::random_geometric_degree(60, 6.0, 5);
    let r = run_lossy(&topo, HELLO, 5, 40, 60_000);
    assert_bounded("RGG-60 lossless", &r, 800.0, 0.0);
    assert_eq!(r.steady.window.full_reachability_losses, 0);
}
