//! The route table (RFC 8966 §3.2.6) and route selection (§3.6).
//!
//! One entry per prefix holds every route learned for it (one per
//! neighbour), the source-table entries (feasibility distances) of that
//! prefix, and which route is selected. Keeping sources inside the prefix
//! entry stores each prefix once, which matters at 10,000+ routes on a
//! router with 64 MB of RAM.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::neighbour::NeighbourId;
use super::slots::Slots;
use super::source::{is_feasible, Source};
use super::types::{Metric, Prefix, RouterId, SeqNo, Time};

/// A route learned from one neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub neighbour: NeighbourId,
    pub router_id: RouterId,
    pub seqno: SeqNo,
    /// The metric the neighbour advertised (before adding the link cost).
    pub refmetric: Metric,
    pub next_hop: IpAddr,
    /// When the route expires unless refreshed (a retracted route is
    /// dropped then).
    pub expires: Time,
}

/// A prefix we lost and keep retracting until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retraction {
    pub router_id: RouterId,
    pub seqno: SeqNo,
    pub until: Time,
    /// An unreachable route holds the prefix in the FIB meanwhile, so that
    /// packets do not follow a covering route back to a neighbour that
    /// still routes the prefix through us (§3.5.5).
    pub unreachable: bool,
}

/// Everything known about one prefix.
#[derive(Clone, Debug, Default)]
pub struct PrefixEntry {
    pub routes: Slots<Route>,
    pub sources: Slots<Source>,
    /// The neighbour whose route is selected (and installed in the FIB).
    pub selected: Option<NeighbourId>,
    /// After losing the prefix we keep announcing a retraction (§3.5.4,
    /// hold time). Boxed: rare, and the table is large.
    pub retracting: Option<Box<Retraction>>,
}

impl PrefixEntry {
    pub fn source(&self, rid: &RouterId) -> Option<&Source> {
        self.sources.iter().find(|s| s.router_id == *rid)
    }

    pub fn source_mut(&mut self, rid: &RouterId) -> Option<&mut Source> {
        self.sources.iter_mut().find(|s| s.router_id == *rid)
    }

    pub fn route(&self, n: NeighbourId) -> Option<&Route> {
        self.routes.iter().find(|r| r.neighbour == n)
    }

    pub fn route_mut(&mut self, n: NeighbourId) -> Option<&mut Route> {
        self.routes.iter_mut().find(|r| r.neighbour == n)
    }

    pub fn selected_route(&self) -> Option<&Route> {
        self.selected.and_then(|n| self.route(n))
    }

    pub fn remove_route(&mut self, n: NeighbourId) -> Option<Route> {
        let r = self.routes.take_first(|r| r.neighbour == n)?;
        if self.selected == Some(n) {
            self.selected = None;
        }
        Some(r)
    }

    /// Whether the route's advertisement is feasible against our current
    /// source table (checked at selection time, not only on receipt).
    pub fn is_feasible(&self, r: &Route, now: Time) -> bool {
        is_feasible(self.source(&r.router_id), r.seqno, r.refmetric, now)
    }

    /// Records an advertisement we are sending for a learned route.
    pub fn note_advertised(&mut self, rid: RouterId, seqno: SeqNo, metric: Metric, now: Time) {
        if metric.is_infinite() {
            return;
        }
        match self.source_mut(&rid) {
            Some(s) => s.advertised(seqno, metric, now),
            None => self.sources.push(Source { router_id: rid, seqno, metric, time: now }),
        }
    }

    /// Picks the best usable route: finite metric, feasible, accepted by the
    /// filter. The current choice is kept unless another is better by more
    /// than a small hysteresis (1/16 of the current metric), so that noisy
    /// ETX estimates do not make routes flap; switching between feasible
    /// routes is always loop-free, so hysteresis costs no safety.
    pub fn choose(
        &self,
        now: Time,
        metric_of: impl Fn(&Route) -> Metric,
        accept: impl Fn(&Route) -> bool,
    ) -> Option<NeighbourId> {
        let usable = |r: &Route| {
            let m = metric_of(r);
            !m.is_infinite() && !r.refmetric.is_infinite() && self.is_feasible(r, now) && accept(r)
        };
        let mut best: Option<(&Route, Metric)> = None;
        for r in self.routes.iter().filter(|r| usable(r)) {
            let m = metric_of(r);
            // Ties go to the lower neighbour id for determinism.
            let better = match best {
                None => true,
                Some((b, bm)) => m < bm || (m == bm && r.neighbour < b.neighbour),
            };
            if better {
                best = Some((r, m));
            }
        }
        let (best, best_metric) = best?;
        if let Some(cur) = self.selected_route().filter(|r| usable(r)) {
            let cm = metric_of(cur);
            if cur.neighbour == best.neighbour || best_metric.0 as u32 + cm.0 as u32 / 16 >= cm.0 as u32 {
                return Some(cur.neighbour);
            }
        }
        Some(best.neighbour)
    }

    /// Drops sources not advertised for a long time. Returns true if the
    /// entry is now empty and can be removed from the table.
    pub fn gc(&mut self, now: Time) -> bool {
        self.sources.retain_mut(|s| !s.is_stale(now));
        if self.retracting.as_ref().is_some_and(|r| r.until <= now) {
            self.retracting = None;
        }
        self.routes.is_empty() && self.sources.is_empty() && self.retracting.is_none()
    }
}

/// All prefixes, ordered (so that dumps and iteration are deterministic).
pub type RouteTable = BTreeMap<Prefix, PrefixEntry>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn route(n: u32, rid: u8, seqno: u16, refmetric: u16) -> Route {
        Route {
            neighbour: NeighbourId(n),
            router_id: RouterId([rid; 8]),
            seqno: SeqNo(seqno),
            refmetric: Metric(refmetric),
            next_hop: IpAddr::V6(Ipv6Addr::LOCALHOST),
            expires: Time(100_000),
        }
    }

    #[test]
    fn chooses_lowest_metric_feasible_route() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 100));
        e.routes.push(route(2, 9, 5, 50));
        let cost = |_: &Route| Metric(96);
        assert_eq!(e.choose(Time(0), |r| r.refmetric.add(cost(r)), |_| true), Some(NeighbourId(2)));
        // FD (seqno 5, metric 60) makes the metric-100 route unfeasible and
        // leaves the metric-50 one.
        e.note_advertised(RouterId([9; 8]), SeqNo(5), Metric(60), Time(0));
        e.routes.as_mut_slice()[1].refmetric = Metric(70);
        assert_eq!(e.choose(Time(0), |r| r.refmetric.add(cost(r)), |_| true), None);
        e.routes.as_mut_slice()[0].seqno = SeqNo(6);
        assert_eq!(e.choose(Time(0), |r| r.refmetric.add(cost(r)), |_| true), Some(NeighbourId(1)));
    }

    #[test]
    fn hysteresis_keeps_current_route_for_small_gains() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 1000));
        e.routes.push(route(2, 9, 5, 980));
        e.selected = Some(NeighbourId(1));
        let m = |r: &Route| r.refmetric;
        assert_eq!(e.choose(Time(0), m, |_| true), Some(NeighbourId(1)));
        e.routes.as_mut_slice()[1].refmetric = Metric(900);
        assert_eq!(e.choose(Time(0), m, |_| true), Some(NeighbourId(2)));
    }

    #[test]
    fn filter_and_infinite_metrics_exclude_routes() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 10));
        e.routes.push(route(2, 8, 5, 0xFFFF));
        assert_eq!(e.choose(Time(0), |r| r.refmetric, |r| r.router_id != RouterId([9; 8])), None);
    }
}
