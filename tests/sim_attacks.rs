//! What a neighbour or an attacker on a link can cost a node (issue 9 §3),
//! in the simulator: log lines, memory, expensive cryptography, routes.

use weft::babel::Prefix;
use weft::link::wire::{seal, LinkMessage, MAC_LEN};
use weft::sim::mesh::{CredentialSpec, MeshScenario, MeshSim};
use weft::sim::Topology;
use weft::trust::{Credential, CredentialBody, NodePrivateKey, PublicKey};

const CONVERGE_MS: u64 = 30_000;

fn all_reach(sim: &MeshSim) -> bool {
    (0..sim.len()).all(|a| (0..sim.len()).all(|b| a == b || sim.reaches(a, b)))
}

fn converge(sim: &mut MeshSim) {
    assert!(sim.run_until_cond(CONVERGE_MS, all_reach).is_some(), "no convergence: {:#?}", sim.logs(0));
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn forged_key(n: u64) -> PublicKey {
    let mut k = [0x5au8; 32];
    k[..8].copy_from_slice(&n.to_be_bytes());
    PublicKey(k)
}

#[test]
fn an_hour_of_forged_beacons_adds_a_bounded_number_of_log_lines_and_entries() {
    let mut sim = MeshSim::new(&MeshScenario::new(Topology::line(2)));
    converge(&mut sim);
    let attacker = "fe80::666".parse().unwrap();
    // An expired credential of a real (revoked, retired) node, replayed too.
    let old_key = NodePrivateKey::from_random([9; 32]);
    let expired = Credential::sign(
        CredentialBody {
            public_key: old_key.public_key(),
            name: "retired".into(),
            prefixes: vec![],
            groups: vec![],
            not_before: sim.true_time() - 200_000,
            not_after: sim.true_time() - 100_000,
            signing_key: None,
        },
        sim.ca(),
    )
    .unwrap();
    let stale =
        LinkMessage::Beacon { key: old_key.public_key(), credential: expired.to_bytes().to_vec() }.encode();
    let lines_before = sim.logs(0).len();
    // ~20 forged beacons a second, each from a new key and (spoofed) link-
    // local address: 72 000 in an hour, every one refused.
    let mut n = 0u64;
    for second in 0..3600u64 {
        for _ in 0..19 {
            n += 1;
            let beacon = LinkMessage::Beacon { key: forged_key(n), credential: vec![] }.encode();
            let spoofed = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x6666, (n % 5000) as u16);
            sim.inject_discovery(0, 1, spoofed, &beacon);
        }
        if second % 5 == 0 {
            sim.inject_discovery(0, 1, attacker, &stale);
        }
        sim.run_for(1000);
    }
    let lines = sim.logs(0).len() - lines_before;
    let about_retired = sim.log_count(0, &old_key.public_key().to_string());
    eprintln!(
        "log lines in an hour: {lines}; about the retired key: {about_retired}; entries: {}",
        sim.core(0).refusal_entries()
    );
    assert!(lines <= 200, "{lines} log lines for an hour of forged beacons");
    assert!(about_retired <= 1, "the same refusal was logged again as the clock moved");
    assert!(sim.core(0).link().stats().refused >= 60_000, "{:?}", sim.core(0).link().stats());
    assert!(sim.core(0).refusal_entries() <= 1100, "{} refusal entries", sim.core(0).refusal_entries());
    assert!(all_reach(&sim), "the flood cut the real neighbours off");
}

#[test]
fn forged_answers_confirms_and_offers_cost_a_bounded_number_of_x25519() {
    let mut sim = MeshSim::new(&MeshScenario::new(Topology::line(2)));
    converge(&mut sim);
    let me = sim.public_key(0);
    let replayed = sim.credential(1).unwrap().to_bytes().to_vec();
    let attacker = "fe80::666".parse().unwrap();
    let before = sim.core(0).crypto();
    for n in 0..30_000u64 {
        let from = forged_key(n);
        let msg = match n % 3 {
            0 => LinkMessage::Answer {
                from,
                to: me,
                echo: n,
                nonce: n,
                port: 51820,
                credential: vec![],
                mac: [7; MAC_LEN],
            },
            1 => LinkMessage::Confirm { from, to: me, echo: n, stamp: n, port: 51820, mac: [7; MAC_LEN] },
            // An Offer carrying a real node's (public) credential.
            _ => LinkMessage::Offer {
                from,
                to: me,
                nonce: n,
                stamp: n,
                credential: replayed.clone(),
                mac: [7; MAC_LEN],
            },
        };
        sim.inject_discovery(0, 1, attacker, &seal(&msg, |_| [7; MAC_LEN]));
        if n % 30 == 0 {
            sim.run_for(10);
        }
    }
    sim.run_for(10_000);
    let after = sim.core(0).crypto();
    eprintln!("30 000 forged handshake messages: {before:?} -> {after:?}");
    assert!(after.x25519 - before.x25519 <= 20, "{} X25519 computations", after.x25519 - before.x25519);
    assert!(
        after.signature_checks - before.signature_checks <= 40,
        "{} signature checks",
        after.signature_checks - before.signature_checks
    );
    assert!(all_reach(&sim));
}

#[test]
fn refused_announcements_are_not_stored() {
    let mut s = MeshScenario::new(Topology::line(2));
    s.nodes[0].credential =
        Some(CredentialSpec { prefixes: vec![p("10.1.0.0/24")], ..CredentialSpec::default() });
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    // Node 0 announces 3000 prefixes its credential does not grant.
    for i in 0..3000u32 {
        sim.announce(0, Prefix::V6(std::net::Ipv6Addr::from((0xfd99u128 << 112) | (i as u128) << 64), 64));
    }
    sim.run_for(20_000);
    let stored = sim.engine(1).route_count();
    eprintln!("routes stored at node 1: {stored}; refused: {}", sim.engine(1).stats().refused_by_filter);
    assert!(stored < 50, "node 1 stores {stored} routes");
    assert!(sim.engine(1).stats().refused_by_filter >= 3000);
    assert!(all_reach(&sim));
}

#[test]
fn a_replayed_older_credential_does_not_widen_a_narrowed_node() {
    let mut s = MeshScenario::new(Topology::line(2));
    s.nodes[0].credential = Some(CredentialSpec {
        prefixes: vec![p("10.1.0.0/24")],
        not_before: -7200,
        ..CredentialSpec::default()
    });
    s.nodes[0].announces = vec![p("10.1.0.0/24")];
    let mut sim = MeshSim::new(&s);
    converge(&mut sim);
    sim.run_until_cond(10_000, |s| s.has_route(1, &p("10.1.0.0/24"))).expect("granted prefix installed");
    let old = sim.credential(0).unwrap().to_bytes().to_vec();
    // The CA narrows node 0's grants.
    sim.reissue(0, &CredentialSpec { not_before: -60, ..CredentialSpec::default() });
    sim.run_until_cond(20_000, |s| !s.has_route(1, &p("10.1.0.0/24"))).expect("narrowed grant applied");
    // An attacker replays node 0's old credential in beacons.
    let beacon = LinkMessage::Beacon { key: sim.public_key(0), credential: old }.encode();
    let mut widened = 0;
    for _ in 0..20 {
        sim.inject_discovery(1, 0, "fe80::666".parse().unwrap(), &beacon);
        for _ in 0..10 {
            sim.run_for(100);
            widened += usize::from(sim.has_route(1, &p("10.1.0.0/24")));
        }
    }
    assert_eq!(widened, 0, "the older credential widened node 0's grants again");
}
