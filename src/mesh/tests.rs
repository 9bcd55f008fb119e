//! The mesh core on its own: inputs in, outputs out, real keys and
//! credentials.

use std::collections::BTreeSet;

use super::*;
use crate::trust::{CaSecretKey, CredentialBody, MeshPrefix};

const NOW: u64 = 1_788_000_000;

struct Net {
    ca: CaSecretKey,
    store: TrustStore,
}

impl Net {
    fn new() -> Net {
        let ca = CaSecretKey::from_seed([7; 32]).unwrap();
        let mut store = TrustStore::new();
        store.add_ca(ca.public_key());
        store.set_mesh_prefix(Some(MeshPrefix::new("fd42::/48".parse().unwrap()).unwrap()));
        Net { ca, store }
    }

    fn node(&self, n: u8) -> (NodePrivateKey, Credential) {
        let key = NodePrivateKey::from_random([n; 32]);
        (key.clone(), self.credential(&key, &[], NOW - 3600, NOW + 86_400))
    }

    fn credential(
        &self,
        key: &NodePrivateKey,
        prefixes: &[&str],
        not_before: u64,
        not_after: u64,
    ) -> Credential {
        let body = CredentialBody {
            public_key: key.public_key(),
            name: "n".into(),
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            groups: vec![],
            not_before,
            not_after,
            signing_key: Some(origin::signing_public(key)),
        };
        Credential::sign(body, &self.ca).unwrap()
    }

    fn core(&self, n: u8) -> MeshCore {
        let (key, cred) = self.node(n);
        MeshCore::new(
            MeshConfig::new(key, Some(cred), self.store.clone(), [n; 32], NOW - 86_400 * 30),
            Time(0),
            NOW,
        )
    }
}

fn chunks_of(c: &Credential) -> Vec<Vec<u8>> {
    let rid = derive::router_id(c.public_key());
    credential_chunks(rid, c.to_bytes()).iter().map(MeshTlv::encode).collect()
}

/// Gives `core` the credential `cred` over tunnel `ifindex` at `at` ms.
/// Node 1's core with `tunnels`, having learned node 2's credential through
/// tunnel 9 (from fe80::9): node 2's key, credential and router-id.
fn core_knowing_node_2(net: &Net, tunnels: &[u32]) -> (MeshCore, NodePrivateKey, Credential, RouterId) {
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(tunnels.iter().copied().collect()));
    let (key2, cred2) = net.node(2);
    let rid = derive::router_id(cred2.public_key());
    learn(&mut core, &cred2, 9, 10);
    (core, key2, cred2, rid)
}

fn learn(core: &mut MeshCore, cred: &Credential, ifindex: u32, at: u64) {
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    for body in chunks_of(cred) {
        core.handle_input(Time(at), NOW, MeshInput::Extension { ifindex, from, body: &body });
    }
}

/// The announcement sets the core sent since the last call.
fn sent_sets(core: &mut MeshCore) -> Vec<Set> {
    drain(core, |o| match o {
        MeshOutput::Extension { body, .. } => match MeshTlv::decode(&body) {
            Some(MeshTlv::Set(bytes)) => Set::decode(&bytes).ok(),
            _ => None,
        },
        _ => None,
    })
}

/// Takes every pending output, keeping what `pick` makes of each.
fn drain<T>(core: &mut MeshCore, pick: impl FnMut(MeshOutput) -> Option<T>) -> Vec<T> {
    std::iter::from_fn(|| core.poll_output()).filter_map(pick).collect()
}

#[test]
fn credentials_over_plain_interfaces_are_not_trusted_and_cost_no_signature_check() {
    let net = Net::new();
    let mut core = net.core(1);
    let (_, other) = net.node(2);
    let rid = derive::router_id(other.public_key());
    let before = core.crypto().signature_checks;
    // Interface 5 is plain Babel (babeld/BIRD compatibility), not a tunnel.
    for _ in 0..100 {
        for body in chunks_of(&other) {
            core.handle_input(
                Time(10),
                NOW,
                MeshInput::Extension { ifindex: 5, from: "fe80::9".parse().unwrap(), body: &body },
            );
        }
    }
    assert!(!core.known().nodes.contains_key(&rid), "a credential from a plain interface was trusted");
    assert_eq!(core.crypto().signature_checks, before, "a credential from a plain interface was verified");
    // Over a tunnel it is learned (once, however often it comes).
    core.handle_input(Time(20), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    for _ in 0..100 {
        for body in chunks_of(&other) {
            core.handle_input(
                Time(30),
                NOW,
                MeshInput::Extension { ifindex: 9, from: "fe80::9".parse().unwrap(), body: &body },
            );
        }
    }
    assert!(core.known().nodes[&rid].verdict.is_ok());
    assert_eq!(core.crypto().signature_checks, before + 1);
}

#[test]
fn an_older_credential_never_replaces_a_newer_one() {
    let net = Net::new();
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let key = NodePrivateKey::from_random([2; 32]);
    let rid = derive::router_id(&key.public_key());
    // The CA narrowed node 2's grants: the newer credential lacks 10.1/24.
    let old = net.credential(&key, &["10.1.0.0/24"], NOW - 7200, NOW + 86_400);
    let new = net.credential(&key, &[], NOW - 60, NOW + 86_400);
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    for c in [&new, &old, &new, &old] {
        for body in chunks_of(c) {
            core.handle_input(Time(10), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
        }
    }
    assert_eq!(
        core.known().credential_bytes(&rid),
        Some(new.to_bytes()),
        "the older credential replaced the newer"
    );
    assert_eq!(core.filter().judge(&"10.1.0.0/24".parse().unwrap(), &rid), RouteVerdict::NotGranted);
}

/// Origin signatures in the core: a set is verified once however many
/// tunnels bring it, a forged one is refused and counted, and the filter
/// holds a route the verified set does not cover yet, uses one it lists,
/// and refuses one it does not list.
#[test]
fn announcement_sets_are_verified_once_and_decide_routes() {
    let net = Net::new();
    let (mut core, key2, cred2, rid) = core_knowing_node_2(&net, &[9, 10, 11]);
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    let addr = core.known().nodes[&rid].verdict.as_ref().unwrap().mesh_address.unwrap();
    let p = crate::babel::Prefix::V6(addr, 128);
    let other: crate::babel::Prefix = "10.9.9.0/24".parse().unwrap();
    // No set yet: held.
    assert_eq!(core.filter().judge_signed(&p, &rid, SeqNo(5)), RouteVerdict::AwaitingSet);
    let set = Set::sign(&origin::signing_keypair(&key2), rid, 1, SeqNo(5), &[p]).unwrap();
    let body = MeshTlv::Set(set.bytes.clone()).encode();
    let checks = core.stats().origin.verified;
    for ifindex in [9, 10, 11, 9, 10, 11] {
        core.handle_input(Time(20), NOW, MeshInput::Extension { ifindex, from, body: &body });
    }
    assert_eq!(core.stats().origin.verified, checks + 1, "one set from three tunnels is verified once");
    assert_eq!(core.stats().origin.stale, 5);
    // Passed on to the two other tunnels, once.
    let outs: Vec<MeshOutput> = std::iter::from_fn(|| core.poll_output()).collect();
    let passed: Vec<IfIndex> = outs
        .iter()
        .filter_map(|o| match o {
            MeshOutput::Extension { ifindex, body: b, .. } if *b == body => Some(*ifindex),
            _ => None,
        })
        .collect();
    assert_eq!(passed, [10, 11]);
    // The set decides: listed at its seqno or older (Babel's feasibility
    // handles old seqnos), held beyond it, refused when not listed.
    let f = core.filter();
    assert_eq!(f.judge_signed(&p, &rid, SeqNo(5)), RouteVerdict::Allowed);
    assert_eq!(f.judge_signed(&p, &rid, SeqNo(4)), RouteVerdict::Allowed);
    assert_eq!(f.judge_signed(&p, &rid, SeqNo(1005)), RouteVerdict::AwaitingSet);
    assert_eq!(f.judge_signed(&other, &rid, SeqNo(5)), RouteVerdict::NotGranted);
    // A set for node 2 signed by node 3's key (an insider forging it).
    let (key3, _) = net.node(3);
    let forged = Set::sign(&origin::signing_keypair(&key3), rid, 1, SeqNo(1005), &[p]).unwrap();
    let body = MeshTlv::Set(forged.bytes).encode();
    core.handle_input(Time(30), NOW, MeshInput::Extension { ifindex: 10, from, body: &body });
    assert_eq!(core.stats().origin.bad_signature, 1);
    assert_eq!(core.filter().judge_signed(&p, &rid, SeqNo(1005)), RouteVerdict::AwaitingSet);
    // Without origin signatures, the grant alone decides.
    let (key1, cred1) = net.node(1);
    let mut cfg = MeshConfig::new(key1, Some(cred1), net.store.clone(), [1; 32], NOW - 86_400 * 30);
    cfg.origin_signatures = false;
    let mut off = MeshCore::new(cfg, Time(0), NOW);
    off.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    learn(&mut off, &cred2, 9, 10);
    assert_eq!(off.filter().judge_signed(&p, &rid, SeqNo(1005)), RouteVerdict::Allowed);
}

/// What we originate is signed at once and sent to every tunnel; the same
/// seqno with other prefixes takes the next epoch.
#[test]
fn our_own_set_follows_what_the_engine_originates() {
    let net = Net::new();
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9, 10])));
    let _ = std::iter::from_fn(|| core.poll_output()).count();
    let a: crate::babel::Prefix = "fd42::1/128".parse().unwrap();
    let b: crate::babel::Prefix = "10.1.0.0/24".parse().unwrap();
    core.handle_input(Time(1), NOW, MeshInput::Origin { seqno: SeqNo(7), prefixes: vec![a] });
    let first = sent_sets(&mut core);
    assert_eq!(first.len(), 2, "one to each tunnel");
    let pk = origin::signing_public(&NodePrivateKey::from_random([1; 32]));
    assert!(first[0].verify(&pk));
    assert_eq!((first[0].seqno, first[0].prefixes.clone()), (SeqNo(7), vec![a]));
    // Nothing changed: nothing sent.
    core.handle_input(Time(2), NOW, MeshInput::Origin { seqno: SeqNo(7), prefixes: vec![a] });
    assert!(sent_sets(&mut core).is_empty());
    // Another prefix at the same seqno: the next epoch.
    core.handle_input(Time(3), NOW, MeshInput::Origin { seqno: SeqNo(7), prefixes: vec![a, b] });
    let second = sent_sets(&mut core);
    assert_eq!(second[0].epoch, first[0].epoch + 1);
    assert!(origin::newer(second[0].version(), first[0].version()));
}

/// Sets are pushed and credentials pulled, so a set can arrive first: it
/// waits for the credential and is checked when that is learned.
#[test]
fn a_set_that_arrives_before_its_credential_is_checked_when_the_credential_comes() {
    let net = Net::new();
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let (key2, cred2) = net.node(2);
    let rid = derive::router_id(cred2.public_key());
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    let set = Set::sign(&origin::signing_keypair(&key2), rid, 1, SeqNo(5), &[]).unwrap();
    let body = MeshTlv::Set(set.bytes.clone()).encode();
    core.handle_input(Time(10), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
    assert_eq!(core.verified_origins(), 0);
    assert_eq!(core.stats().origin.unverifiable, 1);
    learn(&mut core, &cred2, 9, 20);
    assert_eq!(core.verified_origins(), 1, "the parked set was not checked when its credential came");
    assert_eq!(core.verified_seqno(&rid), Some(SeqNo(5)));
}

/// A router that boots in 1970 signs from its time floor; once the clock is
/// believed it signs again from the real time, so that its neighbours,
/// which may hold a set of its previous run at a later epoch, take the new
/// one.
#[test]
fn our_epoch_catches_up_with_the_clock_once_it_is_believed() {
    let net = Net::new();
    let (key, cred) = net.node(1);
    let floor = NOW - 86_400 * 30;
    let mut core =
        MeshCore::new(MeshConfig::new(key, Some(cred), net.store.clone(), [1; 32], floor), Time(0), 0);
    core.handle_input(Time(0), 0, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let a: crate::babel::Prefix = "fd42::1/128".parse().unwrap();
    core.handle_input(Time(1), 0, MeshInput::Origin { seqno: SeqNo(7), prefixes: vec![a] });
    let first = sent_sets(&mut core);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].epoch as u64, floor, "signed from the time floor while the clock says 1970");
    // NTP sets the clock.
    core.handle_timeout(Time(2000), NOW);
    // (The minutely re-announcement of our set may come in the same tick.)
    let second = sent_sets(&mut core);
    let new = second.iter().find(|s| s.epoch as u64 >= NOW).expect("not signed again when the clock moved");
    assert_eq!((new.seqno, new.prefixes.clone()), (SeqNo(7), vec![a]));
    assert!(origin::newer(new.version(), first[0].version()));
}

/// A flood of forged sets from one tunnel (each newer than the last, so
/// none is a cheap duplicate) costs at most the tunnel's set budget in
/// signature checks; the rest are counted and dropped unchecked.
#[test]
fn a_flood_of_forged_sets_costs_at_most_the_tunnels_budget() {
    let net = Net::new();
    let (mut core, _, _, rid) = core_knowing_node_2(&net, &[9]);
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    let (key3, _) = net.node(3);
    let forger = origin::signing_keypair(&key3);
    for n in 0..1000u16 {
        let set = Set::sign(&forger, rid, 1, SeqNo(n + 1), &[]).unwrap();
        let body = MeshTlv::Set(set.bytes).encode();
        core.handle_input(Time(20), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
    }
    let o = &core.stats().origin;
    assert_eq!(o.bad_signature + o.over_budget, 1000, "{o:?}");
    assert!(o.bad_signature <= 40, "{} signature checks in one instant", o.bad_signature);
    assert_eq!(core.verified_origins(), 0);
}

/// The same flood from twenty tunnels at once: each tunnel's first bad
/// signature stops its set checks for a minute, so twenty forgers cost
/// twenty checks, not twenty tunnels' budgets.
#[test]
fn a_flood_from_many_tunnels_costs_one_check_per_tunnel() {
    let net = Net::new();
    let mut core = net.core(1);
    let tunnels: BTreeSet<u32> = (10..30).collect();
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(tunnels.clone()));
    let (_, cred2) = net.node(2);
    let rid = derive::router_id(cred2.public_key());
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    learn(&mut core, &cred2, 10, 10);
    let (key3, _) = net.node(3);
    let forger = origin::signing_keypair(&key3);
    let mut n = 0u16;
    let mut flood = |core: &mut MeshCore, at: u64| {
        for i in tunnels.iter() {
            for _ in 0..100 {
                n += 1;
                let set = Set::sign(&forger, rid, 1, SeqNo(n), &[]).unwrap();
                let body = MeshTlv::Set(set.bytes).encode();
                core.handle_input(Time(at), NOW, MeshInput::Extension { ifindex: *i, from, body: &body });
            }
        }
    };
    flood(&mut core, 20);
    assert_eq!(core.stats().origin.bad_signature, 20, "one check per forging tunnel");
    flood(&mut core, 30_020);
    assert_eq!(core.stats().origin.bad_signature, 20, "the forgers wait a minute");
    flood(&mut core, 61_000);
    assert_eq!(core.stats().origin.bad_signature, 40, "then one check each again");
    assert_eq!(core.verified_origins(), 0);
}

/// The node's budget (burst 400, then 50/s) bounds checks over all tunnels
/// together, whatever each tunnel may still spend, and keeps fractions of
/// a token between calls.
#[test]
fn the_nodes_budget_bounds_all_tunnels_together() {
    let net = Net::new();
    let mut core = net.core(1);
    let take_all = |core: &mut MeshCore, at: u64| {
        core.now = Time(at);
        (10..30u32).map(|i| (0..100).filter(|_| core.tunnel_token(i, Budget::Sets)).count()).sum::<usize>()
    };
    // Twenty tunnels could spend 40 each: the node allows 400.
    assert_eq!(take_all(&mut core, 1_000), 400);
    // Ten seconds: each tunnel earns 200 (kept at 40), the node 500 (kept
    // at 400).
    assert_eq!(take_all(&mut core, 11_000), 400);
    // Calls every 30 ms for a second still earn the node 50 checks.
    let mut got = 0;
    for k in 1..=34u64 {
        core.now = Time(11_000 + k * 30);
        got += usize::from(core.tunnel_token(10, Budget::Sets));
    }
    assert!(got >= 19, "{got} in 1 s from one tunnel (20/s)");
    // Credentials have a node budget of their own.
    core.now = Time(12_100);
    assert!(core.tunnel_token(11, Budget::Credentials));
}

/// After a reboot that lost the clock and the state directory, the epoch
/// kept beside the key (plus one) still makes our sets newer than the ones
/// the neighbours hold from the previous run.
#[test]
fn the_epoch_kept_on_flash_outranks_a_lost_time_floor() {
    let net = Net::new();
    let (key, cred) = net.node(1);
    let floor = NOW - 86_400 * 365;
    let mut cfg = MeshConfig::new(key, Some(cred), net.store.clone(), [1; 32], floor);
    cfg.epoch_floor = NOW as u32 + 5;
    let mut core = MeshCore::new(cfg, Time(0), 0);
    assert_eq!(core.own_epoch(), NOW as u32 + 5);
    core.handle_input(Time(0), 0, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let a: crate::babel::Prefix = "fd42::1/128".parse().unwrap();
    core.handle_input(Time(1), 0, MeshInput::Origin { seqno: SeqNo(7), prefixes: vec![a] });
    let sets = sent_sets(&mut core);
    assert_eq!(sets[0].epoch, NOW as u32 + 5);
}

/// A gateway announcing many prefixes: its set (over one TLV's 254 bytes)
/// travels in chunks, is reassembled, verified once, and lets every prefix
/// through the filter; more than 64 prefixes cannot be signed at all.
#[test]
fn a_set_too_large_for_one_tlv_travels_in_chunks() {
    let net = Net::new();
    let mut gw = net.core(2);
    gw.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let _ = std::iter::from_fn(|| gw.poll_output()).count();
    let many: Vec<crate::babel::Prefix> =
        (0..40u16).map(|i| format!("2001:db8:{i:x}::/48").parse().unwrap()).collect();
    gw.handle_input(Time(1), NOW, MeshInput::Origin { seqno: SeqNo(3), prefixes: many.clone() });
    let bodies: Vec<Vec<u8>> = std::iter::from_fn(|| gw.poll_output())
        .filter_map(|o| match o {
            MeshOutput::Extension { body, .. } => Some(body),
            _ => None,
        })
        .filter(|b| matches!(MeshTlv::decode(b), Some(MeshTlv::SetChunk { .. })))
        .collect();
    assert_eq!(bodies.len(), 2, "chunks for a 40-prefix set (403 bytes)");
    assert!(bodies.iter().all(|b| b.len() <= 255));

    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let key2 = net.node(2).0;
    let cred2 = net.credential(&key2, &["2001:db8::/32"], NOW - 3600, NOW + 86_400);
    let rid = derive::router_id(cred2.public_key());
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    learn(&mut core, &cred2, 9, 10);
    // Out of order, and twice: one verification.
    for body in bodies.iter().rev().chain(bodies.iter()) {
        core.handle_input(Time(20), NOW, MeshInput::Extension { ifindex: 9, from, body });
    }
    assert_eq!(core.stats().origin.verified, 1, "{:?}", core.stats().origin);
    assert_eq!(core.verified_seqno(&rid), Some(SeqNo(3)));
    for p in &many {
        assert_eq!(core.filter().judge_signed(p, &rid, SeqNo(3)), RouteVerdict::Allowed, "{p}");
    }
    let too_many: Vec<crate::babel::Prefix> =
        (0..65u16).map(|i| format!("fd42:1:{i:x}::/64").parse().unwrap()).collect();
    let keys = origin::signing_keypair(&net.node(2).0);
    assert!(matches!(Set::sign(&keys, rid, 1, SeqNo(4), &too_many), Err(origin::SetError::TooLarge(_))));
}

/// An announcement held for want of its origin's set is refused once 30 s
/// pass without the set (three requests unanswered), counted; a set that
/// covers its seqno makes it usable again.
#[test]
fn an_announcement_held_30_s_without_its_set_is_refused() {
    let net = Net::new();
    let (mut core, key2, _, rid) = core_knowing_node_2(&net, &[9]);
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    let addr = core.known().nodes[&rid].verdict.as_ref().unwrap().mesh_address.unwrap();
    let p = crate::babel::Prefix::V6(addr, 128);
    let query = RouteQuery { prefix: p, router_id: rid, seqno: SeqNo(7), ifindex: 9, neighbour: from };
    assert_eq!(core.filter().decide(&query), FilterVerdict::Hold);
    core.handle_input(Time(20), NOW, MeshInput::Filtered { query, verdict: FilterVerdict::Hold });
    core.handle_timeout(Time(20_000), NOW);
    assert_eq!(core.filter().decide(&query), FilterVerdict::Hold, "refused too early");
    core.handle_timeout(Time(31_000), NOW);
    assert_eq!(core.filter().decide(&query), FilterVerdict::Refuse);
    assert_eq!(core.stats().origin.missing, 1);
    // The same origin from another tunnel, or at another seqno, is still held.
    let other = RouteQuery { seqno: SeqNo(8), ..query };
    assert_eq!(core.filter().decide(&other), FilterVerdict::Hold);
    // The set comes after all: used.
    let set = Set::sign(&origin::signing_keypair(&key2), rid, 1, SeqNo(7), &[p]).unwrap();
    let body = MeshTlv::Set(set.bytes).encode();
    core.handle_input(Time(32_000), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
    core.handle_timeout(Time(33_000), NOW);
    assert_eq!(core.filter().decide(&query), FilterVerdict::Use);
}

/// The filter scopes handed to the engine with each new filter.
fn filter_scopes(core: &mut MeshCore) -> Vec<FilterScope> {
    drain(core, |o| match o {
        MeshOutput::Filter(_, scope) => Some(scope),
        _ => None,
    })
}

/// Each new filter names what it judges differently (the engine re-judges
/// only that): an origin whose credential, set or expiry changed, with
/// its key-derived address; everything when the tunnels change.
#[test]
fn each_new_filter_names_the_origins_it_changed() {
    let net = Net::new();
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    assert!(filter_scopes(&mut core).iter().all(|s| s.all), "tunnels changed: everything");
    let (key2, _) = net.node(2);
    let short = net.credential(&key2, &[], NOW - 3600, NOW + 60);
    let rid = derive::router_id(short.public_key());
    learn(&mut core, &short, 9, 10);
    let v = core.known().nodes[&rid].verdict.clone().unwrap();
    let (addr, transport) = (v.mesh_address.unwrap(), v.transport_address.unwrap());
    let mut own = vec![Prefix::V6(addr, 128), Prefix::V6(transport, 128)];
    own.sort();
    let node2 = FilterScope { all: false, origins: vec![rid], prefixes: own };
    assert_eq!(filter_scopes(&mut core), std::slice::from_ref(&node2), "a learned credential");
    // Its set: that origin's routes, no prefix of others'.
    let p = Prefix::V6(addr, 128);
    let set = Set::sign(&origin::signing_keypair(&key2), rid, 1, SeqNo(5), &[p]).unwrap();
    let body = MeshTlv::Set(set.bytes).encode();
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    core.handle_input(Time(20), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
    assert_eq!(filter_scopes(&mut core), [FilterScope { origins: vec![rid], ..FilterScope::default() }]);
    // Nothing changed: no new filter.
    core.handle_timeout(Time(2_000), NOW + 2);
    assert_eq!(filter_scopes(&mut core), []);
    // Its credential expires while we run: the same scope as learning it.
    core.handle_timeout(Time(120_000), NOW + 120);
    assert_eq!(filter_scopes(&mut core), [node2]);
    assert_eq!(core.filter().judge(&p, &rid), RouteVerdict::UnknownOrigin);
}
