//! The zero-trust mesh in the simulator (rootless, deterministic): every
//! node runs the real Babel engine and the real mesh core; credentials,
//! expiry, revocation and misbehaving nodes play out in virtual time.

use weft::babel::Prefix;
use weft::sim::mesh::{CredentialSpec, MeshScenario, MeshSim};
use weft::sim::Topology;

/// Long enough for discovery (5 s beacons), handshakes and Babel (1 s Hellos).
const CONVERGE_MS: u64 = 30_000;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn all_reach(sim: &MeshSim) -> bool {
    (0..sim.len()).all(|a| (0..sim.len()).all(|b| a == b || sim.reaches(a, b)))
}

fn converge(sim: &mut MeshSim) {
    if sim.run_until_cond(CONVERGE_MS, all_reach).is_none() {
        let logs: Vec<String> = (0..sim.len())
            .map(|i| format!("node {i}: tunnels to {:?}; log {:?}", sim.tunnel_peers(i), sim.logs(i)))
            .collect();
        panic!("no full reachability within {CONVERGE_MS} ms\n{}", logs.join("\n"));
    }
}

#[test]
fn a_credentialed_line_routes_end_to_end_through_tunnels() {
    let mut sim = MeshSim::new(&MeshScenario::new(Topology::line(3)));
    converge(&mut sim);
    assert_eq!(sim.path(0, 2, &sim.node_prefix(2)), Some(vec![0, 1, 2]));
    assert_eq!(sim.tunnel_peers(1), [0, 2].into());
    assert_eq!(sim.core(1).known().nodes.len(), 3, "node 1 knows every credential");
    // Node 0 learned node 2's credential over TLV 224 (it is no neighbour).
    let rid2 = weft::trust::derive::router_id(&sim.public_key(2));
    assert!(sim.core(0).known().nodes[&rid2].verdict.is_ok());
}

#[test]
fn nodes_without_a_valid_credential_get_no_tunnel_and_no_route() {
    let s = MeshScenario::from_json(
        r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"nocred"},
                     {"source":"b","target":"otherca"},{"source":"b","target":"expired"}],
            "credentials":{"nocred":null,"otherca":{"ca":"other"},
                           "expired":{"not_before":-200000,"not_after":-100000}}}"#,
    )
    .unwrap();
    let mut sim = MeshSim::new(&s);
    let (a, b) = (0, 1);
    sim.run_until_cond(CONVERGE_MS, |s| s.reaches(a, b) && s.reaches(b, a)).expect("a and b");
    sim.run_for(20_000);
    assert_eq!(sim.tunnel_peers(b), [a].into(), "b tunnels only to a");
    for rogue in 2..5 {
        assert_eq!(sim.tunnel_count(rogue), 0, "rogue {rogue} configured a tunnel");
        assert!(!sim.has_route(a, &sim.node_prefix(rogue)));
    }
    for (rogue, reason) in [(2, "has no credential"), (3, "signed by unknown CA"), (4, "expired at")] {
        let line = format!("refused a tunnel to {}", sim.public_key(rogue));
        let refusal = sim.logs(b).iter().find(|(_, _, m)| m.contains(&line));
        assert!(
            refusal.is_some_and(|(_, _, m)| m.contains(reason)),
            "b did not refuse rogue {rogue} for {reason:?}: {:?}",
            sim.logs(b)
        );
    }
}

#[test]
fn a_credential_expiring_while_connected_cuts_its_holder_off() {
    let mut s = MeshScenario::new(Topology::line(3));
    s.nodes[2].credential = Some(CredentialSpec { not_after: 120, ..CredentialSpec::default() });
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    sim.run_until(weft::babel::Time(110_000));
    assert!(sim.reaches(0, 2), "node 2 cut off before its credential expired");
    sim.run_for(20_000);
    assert!(sim.tunnel_peers(1).iter().all(|&p| p != 2), "node 1 kept its tunnel to node 2");
    let gone = sim.run_until_cond(30_000, |s| !s.has_route(0, &s.node_prefix(2)));
    assert!(gone.is_some(), "node 0 still routes to the expired node 2");
    assert!(sim.reaches(0, 1) && sim.reaches(1, 0));
}

#[test]
fn a_revoked_node_is_cut_off_at_the_reload() {
    let mut sim = MeshSim::new(&MeshScenario::new(Topology::line(3)));
    converge(&mut sim);
    sim.revoke(2, &[0, 1]);
    sim.run_for(2_000);
    assert!(!sim.tunnel_peers(1).contains(&2), "node 1 kept its tunnel to the revoked node");
    let gone = sim.run_until_cond(30_000, |s| !s.has_route(0, &s.node_prefix(2)));
    assert!(gone.is_some(), "node 0 still routes to the revoked node");
}

#[test]
fn prefixes_outside_the_credential_are_refused_and_granted_ones_travel() {
    let mut s = MeshScenario::new(Topology::line(3));
    s.nodes[0].credential =
        Some(CredentialSpec { prefixes: vec![p("10.1.0.0/24")], ..CredentialSpec::default() });
    s.nodes[0].announces = vec![p("10.1.0.0/24"), p("10.99.0.0/24"), p("fd99::/64")];
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    sim.run_until_cond(10_000, |s| s.has_route(2, &p("10.1.0.0/24")))
        .expect("the granted prefix reaches node 2");
    sim.run_for(10_000);
    for i in 1..3 {
        assert!(!sim.has_route(i, &p("10.99.0.0/24")) && !sim.has_route(i, &p("fd99::/64")), "node {i}");
    }
    assert_eq!(sim.core(1).refused_announcements(), 2);
}

#[test]
fn runs_replay_exactly() {
    let run = || {
        let mut sim = MeshSim::new(&MeshScenario::new(Topology::ring(4)));
        converge(&mut sim);
        (sim.now(), sim.discovery_packets())
    };
    assert_eq!(run(), run());
}
