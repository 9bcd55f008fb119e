//! The end-to-end plan (pure): from the routes Babel selected and the
//! origins' verified announcement sets, which remote nodes get a peer on the
//! end-to-end WireGuard interface, with which allowed-ips, and which
//! prefixes the kernel sends into that interface instead of hop by hop.
//!
//! Babel routes every node's transport address T hop by hop (through the
//! per-hop tunnels); the end-to-end interface carries traffic to a node's
//! mesh address and the prefixes it originates, encrypted to that node's
//! key, inside UDP packets between transport addresses. A relay forwards
//! those packets by their T route and sees only ciphertext.
//!
//! No loop: nothing inside the transport prefix TP is ever steered into the
//! end-to-end interface or put in a peer's allowed-ips, and the daemon holds
//! an unreachable route for TP so that a shorter prefix that covers it (a
//! gateway's `::/0`) never catches a transport address whose /128 is gone.
//!
//! A node whose signed set says it speaks end to end is reached only end to
//! end: while it has no peer (no route to its T yet, or over the peer cap)
//! its prefixes are unreachable, never sent in clear through relays. The
//! flag is signed, so a relay cannot switch it off.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use super::origin::{find, OriginRecord};
use crate::babel::{Prefix, RouterId};
use crate::key::PublicKey;

/// The default UDP port of the end-to-end interface.
pub const DEFAULT_PORT: u16 = 6699;
/// The default number of end-to-end peers at most.
pub const DEFAULT_MAX_PEERS: usize = 1024;
/// The name of the end-to-end WireGuard interface.
pub const INTERFACE: &str = "weft-e2e";

/// One remote node on the end-to-end interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub router_id: RouterId,
    pub public_key: PublicKey,
    /// `[T(node)]:port`, from its signed set.
    pub endpoint: SocketAddr,
    /// Every selected prefix this node originates, outside TP: WireGuard
    /// sends them to this peer and accepts them only from it.
    pub allowed: Vec<Prefix>,
}

/// Where the kernel sends a selected prefix instead of its Babel next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steer {
    /// Into the end-to-end interface (its peer's allowed-ips cover it).
    EndToEnd,
    /// Nowhere: the origin speaks end to end and has no peer (yet).
    Unreachable,
}

/// What the end-to-end interface and the kernel routes should be. (Sorted
/// `Vec<Prefix>`s rather than maps or tuples: every new sort or map type
/// costs kilobytes of flash on a router.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Sorted by router-id; their allowed-ips are what goes into the
    /// end-to-end interface.
    pub peers: Vec<Peer>,
    /// Sorted: prefixes of end-to-end nodes without a peer. Prefixes in
    /// neither go hop by hop.
    pub unreachable: Vec<Prefix>,
    /// Origins that speak end to end but got no peer because of the cap.
    pub over_peer_limit: usize,
    /// Origins whose transport address is routed now (sorted).
    pub routed: Vec<RouterId>,
}

impl Plan {
    pub fn steer(&self, prefix: &Prefix) -> Option<Steer> {
        if self.peers.iter().any(|p| p.allowed.binary_search(prefix).is_ok()) {
            Some(Steer::EndToEnd)
        } else {
            steer_of(&[], &self.unreachable, prefix)
        }
    }
}

/// Where `prefix` goes, given the two sorted lists.
pub fn steer_of(e2e: &[Prefix], unreachable: &[Prefix], prefix: &Prefix) -> Option<Steer> {
    if e2e.binary_search(prefix).is_ok() {
        Some(Steer::EndToEnd)
    } else if unreachable.binary_search(prefix).is_ok() {
        Some(Steer::Unreachable)
    } else {
        None
    }
}

/// What the plan is made from.
pub struct Inputs<'a> {
    pub own: RouterId,
    pub transport_prefix: Prefix,
    /// Every selected route: (prefix, origin), any order.
    pub selected: &'a [(Prefix, RouterId)],
    /// Valid origins now (credential or allow-list), by router-id.
    pub nodes: &'a super::Grants,
    /// Verified announcement sets, sorted by router-id.
    pub records: &'a [OriginRecord],
    pub max_peers: usize,
    /// Origins whose transport address was routed a short while ago: they
    /// keep their peer (and its session) through a short flap.
    pub grace: &'a [RouterId],
}

pub fn plan(inp: &Inputs<'_>) -> Plan {
    let (tp, recs) = (inp.transport_prefix, inp.records);
    // Per verified origin: its key, T and port if it speaks end to end.
    let capable: Vec<Option<(PublicKey, Ipv6Addr, u16)>> = recs
        .iter()
        .map(|r| {
            let node = inp.nodes.get(&r.router_id).filter(|_| r.router_id != inp.own)?;
            Some((node.public_key, node.transport_address?, r.e2e_port?))
        })
        .collect();
    let index = |rid: &RouterId| find(recs, rid, |r| r.router_id).ok().filter(|&k| capable[k].is_some());
    let mut routed = vec![false; recs.len()];
    for (p, rid) in inp.selected {
        if let Some(k) = index(rid) {
            routed[k] |= capable[k].is_some_and(|(_, t, _)| *p == Prefix::V6(t, 128));
        }
    }
    let mut out = Plan::default();
    for (k, r) in routed.iter_mut().enumerate() {
        if *r {
            out.routed.push(recs[k].router_id);
        } else if capable[k].is_some() && inp.grace.contains(&recs[k].router_id) {
            *r = true;
        }
    }
    let mut peer_of: Vec<Option<usize>> = vec![None; recs.len()];
    for (k, c) in capable.iter().enumerate() {
        let Some((key, t, port)) = *c else { continue };
        if !routed[k] {
            continue;
        }
        if out.peers.len() >= inp.max_peers {
            out.over_peer_limit += 1;
            continue;
        }
        peer_of[k] = Some(out.peers.len());
        out.peers.push(Peer {
            router_id: recs[k].router_id,
            public_key: key,
            endpoint: SocketAddr::V6(SocketAddrV6::new(t, port, 0, 0)),
            allowed: Vec::new(),
        });
    }
    for (p, rid) in inp.selected {
        let Some(k) = index(rid) else { continue };
        if overlaps_inside(&tp, p) {
            continue;
        }
        match peer_of[k] {
            Some(i) => out.peers[i].allowed.push(*p),
            None => out.unreachable.push(*p),
        }
    }
    for peer in &mut out.peers {
        peer.allowed.sort();
    }
    out.unreachable.sort();
    out
}

/// Whether `p` lies inside the transport prefix (a transport address, or a
/// piece of TP): such a prefix always goes hop by hop.
pub fn overlaps_inside(tp: &Prefix, p: &Prefix) -> bool {
    tp.contains(p)
}

/// The address our own traffic into the end-to-end interface leaves from,
/// per family: the mesh address for IPv6; for IPv4 a local address inside
/// one of our granted IPv4 prefixes, if we have one (the far end accepts
/// only sources its peer for us may use).
pub fn own_sources(
    mesh_address: Option<Ipv6Addr>,
    grants: &[Prefix],
    local_v4: &[std::net::Ipv4Addr],
) -> Sources {
    // Inside the most specific IPv4 grant that holds one of our addresses
    // (never a /0: a gateway's default route is not an address range of
    // its own), never loopback or link-local; the lowest, to be stable.
    let mut best: Option<(u8, std::net::Ipv4Addr)> = None;
    for a in local_v4.iter().filter(|a| !a.is_loopback() && !a.is_link_local() && !a.is_unspecified()) {
        for g in grants.iter().filter(|g| g.is_ipv4() && g.len() > 0 && g.contains_addr((*a).into())) {
            let better = match best {
                None => true,
                Some((len, b)) => g.len() > len || (g.len() == len && *a < b),
            };
            if better {
                best = Some((g.len(), *a));
            }
        }
    }
    Sources { v6: mesh_address, v4: best.map(|(_, a)| a) }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    pub v6: Option<Ipv6Addr>,
    pub v4: Option<std::net::Ipv4Addr>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::SeqNo;
    use crate::mesh::Grants;
    use crate::trust::{Authority, NodePrivateKey, VerifiedNode};
    use std::sync::Arc;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    const TP: &str = "fd42:77:1:ffff::/64";

    fn node(n: u8) -> VerifiedNode {
        let key = NodePrivateKey::from_random([n; 32]).public_key();
        VerifiedNode {
            public_key: key,
            router_id: RouterId([n; 8]),
            name: Some(format!("n{n}")),
            prefixes: vec![p(&format!("10.{n}.0.0/24"))],
            groups: Vec::new(),
            mesh_address: Some(format!("fd42:77:1::{n}").parse().unwrap()),
            transport_address: Some(format!("fd42:77:1:ffff::{n}").parse().unwrap()),
            authority: Authority::AllowList,
            signing_key: None,
        }
    }

    fn record(n: u8, port: Option<u16>) -> OriginRecord {
        OriginRecord {
            router_id: RouterId([n; 8]),
            epoch: 1,
            seqno: SeqNo(1),
            prefixes: Arc::from([]),
            e2e_port: port,
        }
    }

    fn routes_of(n: u8) -> Vec<(Prefix, RouterId)> {
        let rid = RouterId([n; 8]);
        vec![
            (p(&format!("fd42:77:1::{n}/128")), rid),
            (p(&format!("fd42:77:1:ffff::{n}/128")), rid),
            (p(&format!("10.{n}.0.0/24")), rid),
        ]
    }

    fn run(selected: &[(Prefix, RouterId)], records: &[OriginRecord], max_peers: usize) -> Plan {
        let nodes: Grants = (1..=4).map(|n| (RouterId([n; 8]), node(n))).collect();
        plan(&Inputs {
            own: RouterId([1; 8]),
            transport_prefix: p(TP),
            selected,
            nodes: &nodes,
            records,
            max_peers,
            grace: &[],
        })
    }

    #[test]
    fn a_capable_routed_node_gets_a_peer_and_its_prefixes_go_end_to_end() {
        let mut sel = routes_of(1);
        sel.extend(routes_of(2));
        sel.extend(routes_of(3));
        let plan = run(&sel, &[record(1, Some(6699)), record(2, Some(7000)), record(3, None)], 10);
        assert_eq!(plan.peers.len(), 1, "ourselves and the node without the flag get none");
        let peer = &plan.peers[0];
        assert_eq!(peer.router_id, RouterId([2; 8]));
        assert_eq!(peer.endpoint, "[fd42:77:1:ffff::2]:7000".parse().unwrap());
        assert_eq!(peer.allowed, vec![p("10.2.0.0/24"), p("fd42:77:1::2/128")]);
        assert_eq!(plan.steer(&p("fd42:77:1::2/128")), Some(Steer::EndToEnd));
        assert_eq!(plan.steer(&p("10.2.0.0/24")), Some(Steer::EndToEnd));
        // The transport address itself, and everyone else, hop by hop.
        assert_eq!(plan.steer(&p("fd42:77:1:ffff::2/128")), None);
        assert_eq!(plan.steer(&p("10.3.0.0/24")), None);
        assert_eq!(plan.steer(&p("10.1.0.0/24")), None);
    }

    #[test]
    fn without_a_route_to_its_transport_address_a_capable_node_is_unreachable() {
        let sel: Vec<_> = routes_of(2).into_iter().filter(|(q, _)| !p(TP).contains(q)).collect();
        let plan = run(&sel, &[record(2, Some(6699))], 10);
        assert!(plan.peers.is_empty());
        assert_eq!(plan.steer(&p("10.2.0.0/24")), Some(Steer::Unreachable), "never in clear through relays");
    }

    #[test]
    fn a_short_flap_of_the_transport_route_keeps_the_peer() {
        let sel: Vec<_> = routes_of(2).into_iter().filter(|(q, _)| !p(TP).contains(q)).collect();
        let nodes: Grants = [(RouterId([2; 8]), node(2))].into_iter().collect();
        let recs = [record(2, Some(6699))];
        let inp = |grace| Inputs {
            own: RouterId([1; 8]),
            transport_prefix: p(TP),
            selected: &sel,
            nodes: &nodes,
            records: &recs,
            max_peers: 10,
            grace,
        };
        let kept = plan(&inp(&[RouterId([2; 8])]));
        assert_eq!(kept.peers.len(), 1, "T routed a moment ago: the peer and its session stay");
        assert!(kept.routed.is_empty(), "but it is not routed now");
        assert_eq!(plan(&inp(&[])).peers.len(), 0);
        // Grace never revives a node that is no longer valid.
        let none = Grants::default();
        let gone = plan(&Inputs { nodes: &none, ..inp(&[RouterId([2; 8])]) });
        assert!(gone.peers.is_empty());
    }

    #[test]
    fn the_peer_cap_makes_the_rest_unreachable_and_counts_them() {
        let mut sel = routes_of(2);
        sel.extend(routes_of(3));
        sel.extend(routes_of(4));
        let recs = [record(2, Some(1)), record(3, Some(1)), record(4, Some(1))];
        let plan = run(&sel, &recs, 2);
        assert_eq!(plan.peers.len(), 2);
        assert_eq!(plan.over_peer_limit, 1);
        assert_eq!(plan.steer(&p("10.4.0.0/24")), Some(Steer::Unreachable));
    }

    #[test]
    fn nothing_inside_the_transport_prefix_is_steered_or_allowed() {
        // Property over many mixes: an origin that (somehow) had a route
        // inside TP besides its T, a gateway's ::/0, the whole mesh prefix.
        let tp = p(TP);
        for mask in 0u32..64 {
            let mut sel = routes_of(2);
            if mask & 1 != 0 {
                sel.push((p("fd42:77:1:ffff::99/128"), RouterId([2; 8])));
            }
            if mask & 2 != 0 {
                sel.push((p("::/0"), RouterId([2; 8])));
            }
            if mask & 4 != 0 {
                sel.push((p("fd42:77:1::/48"), RouterId([3; 8])));
                sel.extend(routes_of(3));
            }
            if mask & 8 != 0 {
                sel.push((p("fd42:77:1:ffff::/80"), RouterId([3; 8])));
            }
            let port = |b: u32| (mask & b != 0).then_some(6699);
            let plan = run(&sel, &[record(2, port(16).or(Some(1))), record(3, port(32))], 10);
            for peer in &plan.peers {
                assert!(peer.allowed.iter().all(|a| !tp.contains(a)), "{mask}: {peer:?}");
            }
            assert!(plan.unreachable.iter().all(|q| !tp.contains(q)), "{mask}: {plan:?}");
            // One prefix, one peer.
            let mut all: Vec<Prefix> = plan.peers.iter().flat_map(|x| x.allowed.clone()).collect();
            let n = all.len();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), n);
        }
    }

    #[test]
    fn allowed_ips_follow_selection_between_two_gateways() {
        let mut sel = routes_of(2);
        sel.extend(routes_of(3));
        sel.push((p("0.0.0.0/0"), RouterId([2; 8])));
        let recs = [record(2, Some(1)), record(3, Some(1))];
        let a = run(&sel, &recs, 10);
        assert!(a.peers[0].allowed.contains(&p("0.0.0.0/0")));
        let last = sel.len() - 1;
        sel[last].1 = RouterId([3; 8]);
        let b = run(&sel, &recs, 10);
        assert!(!b.peers[0].allowed.contains(&p("0.0.0.0/0")));
        assert!(b.peers[1].allowed.contains(&p("0.0.0.0/0")));
    }

    #[test]
    fn our_ipv4_source_is_an_address_inside_our_grant() {
        let s = own_sources(
            Some("fd42:77:1::1".parse().unwrap()),
            &[p("10.1.0.0/24")],
            &["192.168.1.1".parse().unwrap(), "10.1.0.1".parse().unwrap()],
        );
        assert_eq!(s.v4, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(own_sources(None, &[], &["10.1.0.1".parse().unwrap()]).v4, None);
        // A gateway granted 0.0.0.0/0 and a LAN: the LAN address, never lo's.
        let gw = own_sources(
            None,
            &[p("0.0.0.0/0"), p("10.7.0.0/16")],
            &["127.0.0.1".parse().unwrap(), "192.0.2.9".parse().unwrap(), "10.7.3.1".parse().unwrap()],
        );
        assert_eq!(gw.v4, Some("10.7.3.1".parse().unwrap()));
        assert_eq!(own_sources(None, &[p("0.0.0.0/0")], &["127.0.0.1".parse().unwrap()]).v4, None);
    }
}
