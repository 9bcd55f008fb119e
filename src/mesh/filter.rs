//! The route filter: a pure decision over a learned route (its prefix, the
//! origin it claims, the interface and neighbour it came from) and what is
//! known about that origin. Routes learned over tunnels must come from an
//! origin whose credential is known, valid, and grants the prefix; plain
//! Babel interfaces (babeld/BIRD compatibility) are not filtered.
//!
//! The filter is a snapshot: the core builds a new one whenever what it
//! depends on changes (credentials, time, which interfaces are tunnels) and
//! tells the daemon, which hands it to the engine. Further checks on the
//! origin (a verified origin signature, group policy) belong in
//! [`RouteFilter::decide`], as more fields of the query and the snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::known::Grants;
use super::origin::OriginRecord;
use crate::babel::{FilterVerdict, IfIndex, Prefix, RouteQuery, RouterId, SeqNo};
use crate::trust::VerifiedNode;

/// Why a route learned over a tunnel is or is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteVerdict {
    Allowed,
    /// The origin's credential is not known (yet): requested.
    UnknownOrigin,
    /// Known and valid, but the prefix is not granted: refused, counted.
    NotGranted,
    /// The origin signs what it announces, and no verified set of it
    /// covers this seqno yet: held, the set asked for.
    AwaitingSet,
    /// The origin's verified set at this seqno (or a newer one) does not
    /// list the prefix: refused, counted.
    NotSigned,
}

pub fn judge(grants: &Grants, prefix: &Prefix, rid: &RouterId) -> RouteVerdict {
    match grants.get(rid) {
        None => RouteVerdict::UnknownOrigin,
        Some(v) if v.authorise_prefix(prefix) => RouteVerdict::Allowed,
        Some(_) => RouteVerdict::NotGranted,
    }
}

/// A snapshot of what each valid origin may announce, and which Babel
/// interfaces are tunnels.
#[derive(Clone, Debug, Default)]
pub struct RouteFilter {
    grants: Arc<Grants>,
    tunnels: Arc<BTreeSet<IfIndex>>,
    /// Verified announcement sets; `None`: origin signatures are off.
    origins: Option<Arc<Vec<OriginRecord>>>,
    /// End to end's transport prefix: inside it an origin may announce its
    /// own transport address and nothing else, whatever its grants.
    transport: Option<Prefix>,
    /// (tunnel, origin, seqno) held 30 s without the set coming: refused.
    missing: Arc<Vec<(IfIndex, RouterId, SeqNo)>>,
}

impl RouteFilter {
    pub fn new(grants: Arc<Grants>, tunnels: BTreeSet<IfIndex>) -> RouteFilter {
        RouteFilter {
            grants,
            tunnels: Arc::new(tunnels),
            origins: None,
            transport: None,
            missing: Arc::default(),
        }
    }

    /// Announcements held 30 s for a set that never came: refused.
    pub fn with_missing(mut self, missing: Vec<(IfIndex, RouterId, SeqNo)>) -> RouteFilter {
        self.missing = Arc::new(missing);
        self
    }

    pub fn with_transport_prefix(mut self, tp: Option<Prefix>) -> RouteFilter {
        self.transport = tp;
        self
    }

    /// The valid origins this snapshot knows.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The same, shared.
    pub fn shared_grants(&self) -> Arc<Grants> {
        self.grants.clone()
    }

    /// With origin signatures on: the verified sets, sorted by router-id.
    pub fn with_origins(mut self, origins: Option<Arc<Vec<OriginRecord>>>) -> RouteFilter {
        self.origins = origins;
        self
    }

    pub fn is_tunnel(&self, ifindex: IfIndex) -> bool {
        self.tunnels.contains(&ifindex)
    }

    /// The verdict on a route learned over a tunnel.
    pub fn judge(&self, prefix: &Prefix, origin: &RouterId) -> RouteVerdict {
        let v = judge(&self.grants, prefix, origin);
        if v != RouteVerdict::Allowed {
            return v;
        }
        let key_derived = |n: &VerifiedNode, a: &std::net::Ipv6Addr| {
            n.mesh_address == Some(*a) || n.transport_address == Some(*a)
        };
        let host = match prefix {
            Prefix::V6(a, 128) => Some(a),
            _ => None,
        };
        // The origin's own mesh or transport address: the common case (every
        // node announces both), decided without looking at other nodes.
        if host.is_some_and(|a| self.grants.get(origin).is_some_and(|n| key_derived(n, a))) {
            return v;
        }
        // Inside the transport prefix only a node's own transport address
        // (routed anywhere else it would carry end-to-end packets to whoever
        // announced it); and no covering grant (a gateway's ::/0) lets a
        // node announce another's key-derived address, or end to end would
        // hand it the owner's traffic.
        let in_tp = self.transport.is_some_and(|tp| tp.contains(prefix));
        if in_tp || host.is_some_and(|a| self.grants.values().any(|n| key_derived(n, a))) {
            return RouteVerdict::NotGranted;
        }
        v
    }

    /// The verdict on a route at `seqno`, the origin's signature included:
    /// an origin whose credential has a signing key is believed only as far
    /// as its verified set goes. A set at the route's seqno or newer must
    /// list the prefix (an older seqno is Babel's business: feasibility
    /// keeps it from winning); a newer seqno than the set waits for the set.
    pub fn judge_signed(&self, prefix: &Prefix, origin: &RouterId, seqno: SeqNo) -> RouteVerdict {
        let v = self.judge(prefix, origin);
        let (RouteVerdict::Allowed, Some(origins)) = (v, &self.origins) else { return v };
        if self.grants.get(origin).is_none_or(|n| n.signing_key.is_none()) {
            return v;
        }
        match super::origin::find(origins, origin, |r| r.router_id).ok().map(|i| &origins[i]) {
            None => RouteVerdict::AwaitingSet,
            Some(r) if seqno.newer_than(r.seqno) => RouteVerdict::AwaitingSet,
            Some(r) if r.prefixes.contains(prefix) => RouteVerdict::Allowed,
            Some(_) => RouteVerdict::NotSigned,
        }
    }

    /// The engine's question.
    pub fn decide(&self, q: &RouteQuery) -> FilterVerdict {
        if !self.is_tunnel(q.ifindex) {
            // Plain Babel (babeld, BIRD) is not filtered, except inside the
            // transport prefix, where only host routes (a weft node's T over
            // a plain link) make sense: a /64 there would clash with the
            // unreachable route the daemon holds for it.
            let inside = self.transport.is_some_and(|tp| tp.contains(&q.prefix));
            return if inside && q.prefix.len() != 128 { FilterVerdict::Refuse } else { FilterVerdict::Use };
        }
        match self.judge_signed(&q.prefix, &q.router_id, q.seqno) {
            RouteVerdict::Allowed => FilterVerdict::Use,
            RouteVerdict::AwaitingSet if self.missing.contains(&(q.ifindex, q.router_id, q.seqno)) => {
                FilterVerdict::Refuse
            }
            RouteVerdict::UnknownOrigin | RouteVerdict::AwaitingSet => FilterVerdict::Hold,
            RouteVerdict::NotGranted | RouteVerdict::NotSigned => FilterVerdict::Refuse,
        }
    }

    /// The filter in the form the engine takes.
    pub fn boxed(self) -> crate::babel::engine::RouteFilter {
        Box::new(move |q| self.decide(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Authority, NodePrivateKey};

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn inside_the_transport_prefix_only_the_origins_own_transport_address_passes() {
        let rid = RouterId([2; 8]);
        let node = VerifiedNode {
            public_key: NodePrivateKey::from_random([2; 32]).public_key(),
            router_id: rid,
            name: None,
            // A grant that covers the whole mesh prefix, TP included.
            prefixes: vec![p("fd42:77:1::/48")],
            groups: Vec::new(),
            mesh_address: Some("fd42:77:1::2".parse().unwrap()),
            transport_address: Some("fd42:77:1:ffff::2".parse().unwrap()),
            authority: Authority::AllowList,
            signing_key: None,
        };
        let grants = Arc::new([(rid, node)].into_iter().collect());
        let f =
            RouteFilter::new(grants, BTreeSet::new()).with_transport_prefix(Some(p("fd42:77:1:ffff::/64")));
        assert_eq!(f.judge(&p("fd42:77:1:ffff::2/128"), &rid), RouteVerdict::Allowed);
        assert_eq!(f.judge(&p("fd42:77:1:ffff::3/128"), &rid), RouteVerdict::NotGranted, "another's T");
        assert_eq!(f.judge(&p("fd42:77:1:ffff::/80"), &rid), RouteVerdict::NotGranted, "a piece of TP");
        assert_eq!(f.judge(&p("fd42:77:1:ffff::/64"), &rid), RouteVerdict::NotGranted, "TP itself");
        // Covering TP is fine: the daemon's unreachable TP route wins by length.
        assert_eq!(f.judge(&p("fd42:77:1::/48"), &rid), RouteVerdict::Allowed);
        assert_eq!(f.judge(&p("fd42:77:1::2/128"), &rid), RouteVerdict::Allowed);
        // Another node's key-derived /128 is not ours to announce, even
        // under a covering grant.
        let other = RouterId([3; 8]);
        let mut gw = f.grants.get(&rid).unwrap().clone();
        gw.router_id = other;
        gw.prefixes = vec![p("::/0")];
        gw.mesh_address = Some("fd42:77:1::3".parse().unwrap());
        gw.transport_address = Some("fd42:77:1:ffff::3".parse().unwrap());
        let both = Arc::new([(rid, f.grants.get(&rid).unwrap().clone()), (other, gw)].into_iter().collect());
        let f2 =
            RouteFilter::new(both, BTreeSet::new()).with_transport_prefix(Some(p("fd42:77:1:ffff::/64")));
        assert_eq!(f2.judge(&p("fd42:77:1::2/128"), &other), RouteVerdict::NotGranted, "M of another");
        assert_eq!(f2.judge(&p("fd42:77:1::3/128"), &other), RouteVerdict::Allowed, "its own M");
        assert_eq!(f2.judge(&p("2001:db8::1/128"), &other), RouteVerdict::Allowed, "any other /128 of ::/0");
        // From a plain interface: only host routes inside TP.
        let q = |prefix: &str| RouteQuery {
            prefix: p(prefix),
            router_id: other,
            seqno: crate::babel::SeqNo(1),
            ifindex: 9,
            neighbour: "fe80::9".parse().unwrap(),
        };
        assert_eq!(f2.decide(&q("fd42:77:1:ffff::/64")), crate::babel::FilterVerdict::Refuse);
        assert_eq!(f2.decide(&q("fd42:77:1:ffff::9/128")), crate::babel::FilterVerdict::Use);
        assert_eq!(f2.decide(&q("10.0.0.0/8")), crate::babel::FilterVerdict::Use);
        let off = RouteFilter::new(f.grants.clone(), BTreeSet::new());
        assert_eq!(off.judge(&p("fd42:77:1:ffff::3/128"), &rid), RouteVerdict::Allowed, "no TP, no rule");
    }
}
