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

use crate::babel::{FilterVerdict, IfIndex, Prefix, RouteQuery, RouterId};
use crate::trust::VerifiedNode;

/// Why a route learned over a tunnel is or is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteVerdict {
    Allowed,
    /// The origin's credential is not known (yet): requested.
    UnknownOrigin,
    /// Known and valid, but the prefix is not granted: refused, counted.
    NotGranted,
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
}

impl RouteFilter {
    pub fn new(grants: Arc<BTreeMap<RouterId, VerifiedNode>>, tunnels: BTreeSet<IfIndex>) -> RouteFilter {
        RouteFilter { grants, tunnels: Arc::new(tunnels) }
    }

    pub fn is_tunnel(&self, ifindex: IfIndex) -> bool {
        self.tunnels.contains(&ifindex)
    }

    /// The verdict on a route learned over a tunnel.
    pub fn judge(&self, prefix: &Prefix, origin: &RouterId) -> RouteVerdict {
        judge(&self.grants, prefix, origin)
    }

    /// The engine's question.
    pub fn decide(&self, q: &RouteQuery) -> FilterVerdict {
        if !self.is_tunnel(q.ifindex) {
            return FilterVerdict::Use;
        }
        match self.judge(&q.prefix, &q.router_id) {
            RouteVerdict::Allowed => FilterVerdict::Use,
            RouteVerdict::UnknownOrigin => FilterVerdict::Hold,
            RouteVerdict::NotGranted => FilterVerdict::Refuse,
        }
    }

    /// The filter in the form the engine takes.
    pub fn boxed(self) -> crate::babel::engine::RouteFilter {
        Box::new(move |q| self.decide(q))
    }
}
