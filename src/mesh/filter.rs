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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

pub fn judge(grants: &BTreeMap<RouterId, VerifiedNode>, prefix: &Prefix, rid: &RouterId) -> RouteVerdict {
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
    grants: Arc<BTreeMap<RouterId, VerifiedNode>>,
    tunnels: Arc<BTreeSet<IfIndex>>,
    /// Verified announcement sets; `None`: origin signatures are off.
    origins: Option<Arc<Vec<OriginRecord>>>,
}

impl RouteFilter {
    pub fn new(grants: Arc<BTreeMap<RouterId, VerifiedNode>>, tunnels: BTreeSet<IfIndex>) -> RouteFilter {
        RouteFilter { grants, tunnels: Arc::new(tunnels), origins: None }
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
        judge(&self.grants, prefix, origin)
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
            return FilterVerdict::Use;
        }
        match self.judge_signed(&q.prefix, &q.router_id, q.seqno) {
            RouteVerdict::Allowed => FilterVerdict::Use,
            RouteVerdict::UnknownOrigin | RouteVerdict::AwaitingSet => FilterVerdict::Hold,
            RouteVerdict::NotGranted | RouteVerdict::NotSigned => FilterVerdict::Refuse,
        }
    }

    /// The filter in the form the engine takes.
    pub fn boxed(self) -> crate::babel::engine::RouteFilter {
        Box::new(move |q| self.decide(q))
    }
}
