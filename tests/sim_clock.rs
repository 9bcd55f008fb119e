//! Routers whose wall clock is wrong, in the simulator (issue 9 §2): a node
//! that booted in 1970 still joins the mesh, expired credentials stay
//! refused by nodes with a good clock, a clock jumping far ahead (a spoofed
//! NTP reply) does not expire every credential at once, and each change of
//! the clock's state is logged once.

use weft::sim::mesh::{CredentialSpec, MeshScenario, MeshSim};
use weft::sim::Topology;

const CONVERGE_MS: u64 = 30_000;
const TEN_YEARS: u64 = 10 * 365 * 86_400;

fn all_reach(sim: &MeshSim) -> bool {
    (0..sim.len()).all(|a| (0..sim.len()).all(|b| a == b || sim.reaches(a, b)))
}

fn converge(sim: &mut MeshSim) {
    if sim.run_until_cond(CONVERGE_MS, all_reach).is_none() {
        let logs: Vec<String> = (0..sim.len())
            .map(|i| format!("node {i}: tunnels to {:?}; log {:#?}", sim.tunnel_peers(i), sim.logs(i)))
            .collect();
        panic!("no full reachability within {CONVERGE_MS} ms\n{}", logs.join("\n"));
    }
}

/// Credentials issued an hour ago, valid for a day.
fn fresh() -> CredentialSpec {
    CredentialSpec { not_before: -3600, not_after: 86_400, ..CredentialSpec::default() }
}

#[test]
fn a_router_that_booted_in_1970_in_the_middle_of_a_line_joins_the_mesh() {
    let mut s = MeshScenario::new(Topology::line(3));
    for n in &mut s.nodes {
        n.credential = Some(fresh());
    }
    s.nodes[1].wall = 0;
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    assert_eq!(
        sim.path(0, 2, &sim.node_prefix(2)),
        Some(vec![0, 1, 2]),
        "the ends reach each other through it"
    );
    assert_eq!(sim.path(2, 0, &sim.node_prefix(0)), Some(vec![2, 1, 0]));
}

#[test]
fn an_expired_credential_is_still_refused_by_nodes_with_a_good_clock_and_by_the_1970_node() {
    // 0 - 1(1970) - 2, and an expired node on each side of the 1970 node.
    let s = MeshScenario::from_json(
        r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"c"},
                     {"source":"c","target":"x"},{"source":"b","target":"y"}],
            "credentials":{"a":{"not_before":-3600},"b":{"not_before":-3600},"c":{"not_before":-3600},
                           "x":{"not_before":-200000,"not_after":-100000},
                           "y":{"not_before":-200000,"not_after":-100000}},
            "clocks":{"b":0}}"#,
    )
    .unwrap();
    let mut sim = MeshSim::new(&s);
    let (a, b, c, x, y) = (0, 1, 2, 3, 4);
    sim.run_until_cond(CONVERGE_MS, |s| s.reaches(a, c) && s.reaches(c, a)).expect("a and c through b");
    sim.run_for(30_000);
    assert!(!sim.tunnel_peers(c).contains(&x), "c (good clock) admitted the expired x");
    assert!(!sim.tunnel_peers(b).contains(&y), "b (1970) admitted the expired y");
    assert_eq!(sim.tunnel_count(x) + sim.tunnel_count(y), 0);
    assert!(!sim.has_route(a, &sim.node_prefix(x)) && !sim.has_route(a, &sim.node_prefix(y)));
    let _ = b;
}

#[test]
fn the_clock_state_is_said_once_in_the_log_and_shown_in_status() {
    let mut s = MeshScenario::new(Topology::line(2));
    s.nodes[1].wall = 0;
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    sim.run_for(600_000);
    assert_eq!(sim.log_count(1, "unsynchronised"), 1, "{:#?}", sim.logs(1));
    let st = sim.core(1).status(&[]);
    assert_eq!(st["clock"]["state"], "unsynchronised", "{st:#}");
    assert_eq!(sim.core(0).status(&[])["clock"]["state"], "synchronised");
    // NTP arrives through the mesh: the clock is set; said once too.
    let t = sim.true_time();
    sim.set_wall(1, t);
    sim.run_for(10_000);
    assert_eq!(sim.log_count(1, "jumped"), 1, "{:#?}", sim.logs(1));
    assert!(all_reach(&sim));
}

#[test]
fn a_clock_jumping_ten_years_ahead_does_not_expire_every_credential_at_once() {
    let mut sim = MeshSim::new(&MeshScenario::new(Topology::line(3)));
    converge(&mut sim);
    let t = sim.true_time();
    sim.set_wall(1, t + TEN_YEARS);
    sim.run_for(300_000);
    assert!(all_reach(&sim), "node 1's neighbours were expired by a spoofed clock: {:#?}", sim.logs(1));
    assert_eq!(sim.log_count(1, "jumped"), 1, "{:#?}", sim.logs(1));
    // The spoofed time passes; the clock is back in step.
    let t = sim.true_time();
    sim.set_wall(1, t);
    sim.run_for(10_000);
    assert!(all_reach(&sim));
    assert_eq!(sim.log_count(1, "back in step"), 1, "{:#?}", sim.logs(1));
}
