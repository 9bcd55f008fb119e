//! Misbehaving members in the zero-trust mesh simulator (issue 10, part 3):
//! every node credentialed by one CA and granted its own /24, one insider
//! that lies in Babel or drops what it forwards. Rootless, deterministic.
//!
//! What stops what: prefixes outside the insider's grant, the route filter
//! (grants); another node's prefixes announced under that node's router-id
//! (`spoof_origin`), origin-signed announcements: the filter alone checks
//! only the grant of the router-id written in the Update, so each attack is
//! also run with the defence off, as the control that shows the hijack.

use std::process::Command;

use weft::sim::mesh::{MeshScenario, MeshSim};
use weft::sim::report::{simulate_mesh, MeshReport};
use weft::sim::Topology;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

/// The topology as scenario JSON, with `extra` keys added.
fn scenario(topo: &Topology, extra: &str) -> String {
    let names = names(topo.len());
    let links: Vec<String> = topo
        .links
        .iter()
        .map(|l| format!(r#"{{"source":"{}","target":"{}"}}"#, names[l.a], names[l.b]))
        .collect();
    format!(r#"{{"links":[{}],"credentials":true{extra}}}"#, links.join(","))
}

fn run(topo: &Topology, extra: &str, seed: u64) -> MeshReport {
    let scn = MeshScenario::from_json(&scenario(topo, extra)).expect("scenario");
    let r = simulate_mesh(scn, seed, None, None);
    assert!(r.converged, "the honest mesh never converged before the attack: {r:?}");
    r
}

fn topologies() -> Vec<(&'static str, Topology)> {
    vec![
        ("ring of 8", Topology::ring(8)),
        ("5x5 grid", Topology::grid(5, 5)),
        ("random graph of 30", Topology::random_geometric_degree(30, 4.0, 7)),
    ]
}

#[test]
fn a_quiet_credentialed_mesh_delivers_every_pair() {
    let r = run(&Topology::grid(3, 3), "", 1);
    // 9 nodes, each originating its node address and its /24: 9 * 8 * 2.
    assert_eq!(r.outcomes.pairs, 144);
    assert_eq!(r.outcomes.delivered, 144, "{r:?}");
    assert_eq!(r.refused_announcements, 0);
}

#[test]
fn an_unauthorised_prefix_is_refused_by_the_filter_and_hijacks_without_it() {
    for (name, topo) in topologies() {
        let adv = r#","adversaries":[{"node":"n3","kind":"unauthorised_prefix","victim":"n0","start_s":40}]"#;
        let on = run(&topo, adv, 2);
        assert_eq!(on.outcomes.hijacked, 0, "{name}: an ungranted more-specific hijacked traffic: {on:?}");
        assert!(on.refused_announcements > 0, "{name}: nothing was refused: {on:?}");
        assert_eq!(on.outcomes.delivered, on.outcomes.pairs, "{name}: {on:?}");
        // The control: without route filters the more-specific /25 wins
        // by longest match everywhere it spreads.
        let off = run(&topo, &format!(r#"{adv},"filter":false"#), 2);
        assert!(off.outcomes.hijacked > 0, "{name}: the attack does nothing even unfiltered: {off:?}");
    }
}

/// The node farthest (in hops) from node `from`, by its scenario name.
fn farthest(topo: &Topology, from: usize) -> String {
    let mut dist = vec![usize::MAX; topo.len()];
    dist[from] = 0;
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(u) = queue.pop_front() {
        for l in &topo.links {
            for (a, b) in [(l.a, l.b), (l.b, l.a)] {
                if a == u && dist[b] == usize::MAX {
                    dist[b] = dist[u] + 1;
                    queue.push_back(b);
                }
            }
        }
    }
    let far = (0..topo.len()).max_by_key(|i| (dist[*i] != usize::MAX, dist[*i])).unwrap();
    names(topo.len())[far].clone()
}

/// A member announces the victim's prefixes under the victim's (public)
/// router-id with a higher seqno. The grant check lets them in (the
/// router-id's grants cover them); origin signatures hold them back, since
/// no set signed by the victim covers that seqno.
#[test]
fn a_spoofed_origin_is_held_back_by_origin_signatures_and_hijacks_without_them() {
    for (name, topo) in topologies() {
        // Far from the victim, so that its metric-0 lie beats the truth
        // for many (a Babel route is chosen by metric, not by seqno).
        let spoofer = farthest(&topo, 0);
        let adv = format!(
            r#","adversaries":[{{"node":"{spoofer}","kind":"spoof_origin","victim":"n0","start_s":40}}]"#
        );
        let on = run(&topo, &adv, 3);
        assert_eq!(on.outcomes.hijacked, 0, "{name}: spoofed announcements hijacked traffic: {on:?}");
        assert_eq!(on.outcomes.delivered, on.outcomes.pairs, "{name}: {on:?}");
        assert!(on.held_announcements > 0, "{name}: the spoofed Updates never reached anyone: {on:?}");
        let off = run(&topo, &format!(r#"{adv},"signatures":false"#), 3);
        assert!(off.outcomes.hijacked > 0, "{name}: the spoof does nothing even unsigned: {off:?}");
        // Only pairs towards the victim are at stake: its two prefixes from
        // every other honest node at most.
        let honest = topo.len() as u64 - 1;
        assert!(off.outcomes.hijacked <= 2 * (honest - 1), "{name}: {off:?}");
    }
}

/// A replay of the victim's announcements at a seqno it has moved on from
/// (the replayer asked it to, as any member may) is refused by Babel's seqno
/// order alone: no pair is hijacked, with or without route filters. (Only a
/// replay after the 16-bit seqno wraps would win: the epoch of signed
/// announcements is for that.)
#[test]
fn a_replay_of_older_announcements_hijacks_nothing() {
    for (name, topo) in topologies() {
        for filter in ["", r#","filter":false"#] {
            let adv = format!(
                r#","adversaries":[{{"node":"n5","kind":"replay","victim":"n0","capture_s":10,"start_s":40}}]{filter}"#
            );
            let scn = MeshScenario::from_json(&scenario(&topo, &adv)).unwrap();
            let mut sim = MeshSim::new(&scn);
            sim.run_for(9_990);
            let captured = sim.engine(0).seqno();
            sim.run_for(90_010);
            assert!(
                sim.engine(0).seqno().newer_than(captured),
                "{name}: the victim never moved on from the recorded seqno, the replay proves nothing"
            );
            let o = sim.pair_outcomes();
            assert_eq!(o.hijacked, 0, "{name} {filter}: {o:?}");
            assert_eq!(o.delivered, o.pairs, "{name} {filter}: {o:?}");
        }
    }
}

#[test]
fn a_blackhole_is_reported_and_changes_no_route() {
    let topo = Topology::grid(5, 5);
    // The centre of the grid: on many shortest paths.
    let adv = r#","adversaries":[{"node":"n12","kind":"blackhole","start_s":40}]"#;
    let r = run(&topo, adv, 4);
    assert!(r.outcomes.blackholed > 0, "{r:?}");
    assert_eq!(r.outcomes.hijacked, 0);
    assert_eq!(r.outcomes.unreachable, 0, "{r:?}");
    assert_eq!(r.outcomes.blackholed + r.outcomes.delivered, r.outcomes.pairs);
}

#[test]
fn the_same_seed_replays_the_same_attack() {
    let adv = r#","adversaries":[{"node":"n5","kind":"spoof_origin","victim":"n0","start_s":15}]"#;
    let a = run(&Topology::ring(8), adv, 7);
    let b = run(&Topology::ring(8), adv, 7);
    assert_eq!(a.outcomes, b.outcomes);
    assert_eq!(a.convergence_ms, b.convergence_ms);
}

#[test]
fn weft_simulate_reports_attacks_in_json_and_refuses_bad_scenarios() {
    let dir = std::env::temp_dir().join(format!("weft-sim-adv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("attack.json");
    let adv = r#","adversaries":[{"node":"n3","kind":"unauthorised_prefix","victim":"n0","start_s":10}]"#;
    std::fs::write(&file, scenario(&Topology::line(4), adv)).unwrap();
    let out = Command::new(WEFT).args(["simulate", file.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for key in [
        "hijacked_pairs",
        "blackholed_pairs",
        "delivered_pairs",
        "unreachable_pairs",
        "held_announcements",
        "set_verifications",
        "refused_announcements",
    ] {
        assert!(v.get(key).is_some_and(|x| x.is_u64()), "{key} missing: {v}");
    }
    assert_eq!(v["hijacked_pairs"], 0);
    assert_eq!(v["adversaries"][0]["kind"], "unauthorised_prefix");
    // Bad scenarios: a clear error naming the problem, exit 1, nothing on stdout.
    for (bad, want) in [
        (r#","adversaries":[{"node":"n9","kind":"blackhole"}]"#, "not a node"),
        (r#","adversaries":[{"node":"n1","kind":"teleport"}]"#, "unknown kind"),
        (r#","filter":"no""#, "filter"),
    ] {
        std::fs::write(&file, scenario(&Topology::line(4), bad)).unwrap();
        let out = Command::new(WEFT).args(["simulate", file.to_str().unwrap(), "--json"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(err.contains(want), "{bad}: {err}");
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
