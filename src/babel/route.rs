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
    /// The smoothed metric as of `smoothed_at` (see [`smooth`]); the
    /// route's metric has not changed since then.
    pub smoothed: Metric,
    pub smoothed_at: Time,
    /// How often we asked the neighbour to refresh this route since its
    /// last update (see the engine's refresh_routes).
    pub refresh_asks: u8,
}

impl Route {
    /// The smoothed metric at `now`, given the metric the route has had
    /// since `smoothed_at`.
    pub fn smoothed_metric(&self, metric: Metric, now: Time, half_life_ms: u64) -> Metric {
        smooth(self.smoothed, self.smoothed_at, metric, now, half_life_ms)
    }

    /// Folds the time elapsed under the old metric into the smoothed
    /// metric: call it before the route's metric changes.
    pub fn commit_smoothing(&mut self, old_metric: Metric, now: Time, half_life_ms: u64) {
        self.smoothed = self.smoothed_metric(old_metric, now, half_life_ms);
        self.smoothed_at = now;
    }
}

/// Exponential smoothing of a route's metric (RFC 8966 §3.6 suggests it;
/// babeld's `smoothing-half-life`): the smoothed value moves towards the
/// current metric, halving the gap every `half_life_ms`. A retracted route
/// is infinite at once (it must not be used a moment longer). Within a
/// half-life the decay is interpolated linearly, which keeps it integer,
/// monotone and exact at every half-life.
pub fn smooth(prev: Metric, since: Time, metric: Metric, now: Time, half_life_ms: u64) -> Metric {
    if half_life_ms == 0 || metric.is_infinite() || prev == metric {
        return metric;
    }
    let dt = now.since(since);
    let halvings = dt / half_life_ms;
    if halvings >= 16 {
        return metric;
    }
    let gap = (prev.0 as i64 - metric.0 as i64) >> halvings;
    let rest = (dt % half_life_ms) as i64;
    let span = 2 * half_life_ms as i64;
    let gap = gap * (span - rest) / span;
    // Close enough: snap, so that equal links compare equal (as babeld).
    if gap.abs() < 4 {
        metric
    } else {
        Metric((metric.0 as i64 + gap).clamp(0, 0xFFFF) as u16)
    }
}

/// The smoothed metric a brand-new route starts from when another route is
/// installed: high enough that the newcomer needs one half-life of
/// stability before it can displace a working route (babeld starts new
/// routes at half of infinity, which takes minutes to decay on a path
/// that is only a little better).
pub fn initial_smoothed(metric: Metric, installed_smoothed: Option<Metric>) -> Metric {
    match installed_smoothed {
        Some(s) if s.0 > metric.0 => Metric((2 * s.0 as u32 - metric.0 as u32).min(0xFFFE) as u16),
        _ => metric,
    }
}

/// A better route must beat the current one's smoothed metric by this
/// fraction (1/16) to replace it.
const SWITCH_MARGIN: u32 = 16;

/// What route selection decided for a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub selected: Option<NeighbourId>,
    /// A usable route with a lower metric than the selected one waits for
    /// its smoothed metric to catch up: look again later.
    pub pending: bool,
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
#[derive(Clone, Debug)]
pub struct PrefixEntry {
    pub routes: Slots<Route>,
    pub sources: Slots<Source>,
    /// The neighbour whose route is selected (and installed in the FIB).
    pub selected: Option<NeighbourId>,
    /// After losing the prefix we keep announcing a retraction (§3.5.4,
    /// hold time). Boxed: rare, and the table is large.
    pub retracting: Option<Box<Retraction>>,
    /// The metric we last announced for our selected route (what the
    /// neighbours believe), infinite before the first announcement.
    pub announced: Metric,
}

impl Default for PrefixEntry {
    fn default() -> Self {
        PrefixEntry {
            routes: Slots::default(),
            sources: Slots::default(),
            selected: None,
            retracting: None,
            announced: Metric::INFINITY,
        }
    }
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
        self.announced = metric;
        if metric.is_infinite() {
            return;
        }
        match self.source_mut(&rid) {
            Some(s) => s.advertised(seqno, metric, now),
            None => self.sources.push(Source { router_id: rid, seqno, metric, time: now }),
        }
    }

    /// Route selection with babeld's strong ordering: among usable routes
    /// (finite metric, feasible, accepted by the filter) the one with the
    /// lowest smoothed metric is the candidate; it replaces the current
    /// choice only if it is no worse now *and* better smoothed, by a
    /// sixteenth of the current smoothed metric (babeld needs only
    /// "better": on lossy radios with many near-equal paths that margin
    /// halves the route churn, measured in the simulator). The order is
    /// not total, which is the hysteresis: noisy ETX estimates do not make
    /// routes flap, and switching between feasible routes is always
    /// loop-free, so the hysteresis costs no safety. An unusable current
    /// route is replaced at once.
    pub fn choose(
        &self,
        now: Time,
        metric_of: impl Fn(&Route) -> Metric,
        smoothed_of: impl Fn(&Route, Metric) -> Metric,
        accept: impl Fn(&Route) -> bool,
    ) -> Choice {
        let usable = |r: &Route, m: Metric| {
            !m.is_infinite() && !r.refmetric.is_infinite() && self.is_feasible(r, now) && accept(r)
        };
        let mut best: Option<(&Route, Metric, Metric)> = None;
        let mut lowest: Option<Metric> = None;
        let mut current: Option<(&Route, Metric, Metric)> = None;
        for r in self.routes.iter() {
            let m = metric_of(r);
            if !usable(r, m) {
                continue;
            }
            let sm = smoothed_of(r, m);
            if Some(r.neighbour) == self.selected {
                current = Some((r, m, sm));
            }
            lowest = Some(lowest.map_or(m, |l| l.min(m)));
            // Ties go to the lower metric, then the lower neighbour id.
            let better = best.is_none_or(|(b, bm, bs)| (sm, m, r.neighbour) < (bs, bm, b.neighbour));
            if better {
                best = Some((r, m, sm));
            }
        }
        let Some((best, bm, bs)) = best else {
            return Choice { selected: None, pending: false };
        };
        let Some((cur, cm, cs)) = current else {
            return Choice { selected: Some(best.neighbour), pending: false };
        };
        if best.neighbour != cur.neighbour
            && bm <= cm
            && (bs.0 as u32) + cs.0 as u32 / SWITCH_MARGIN < cs.0 as u32
        {
            return Choice { selected: Some(best.neighbour), pending: false };
        }
        Choice { selected: Some(cur.neighbour), pending: lowest.is_some_and(|l| l < cm) }
    }

    /// The smoothed metric of the selected route, if it is usable enough to
    /// be compared with (finite).
    pub fn selected_smoothed(
        &self,
        metric_of: impl Fn(&Route) -> Metric,
        now: Time,
        half_life_ms: u64,
    ) -> Option<Metric> {
        let r = self.selected_route()?;
        let m = metric_of(r);
        (!m.is_infinite()).then(|| r.smoothed_metric(m, now, half_life_ms))
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
/// Entries are boxed: a B-tree node holds 11 slots, and a table filled in
/// prefix order (as neighbours send their dumps) leaves its nodes about half
/// empty, which with the entries inline cost more than the entry itself
/// (`cargo bench --bench engine`: 282 heap bytes per route inline, see
/// docs/BENCHMARKS.md).
pub type RouteTable = BTreeMap<Prefix, Box<PrefixEntry>>;

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
            smoothed: Metric(refmetric),
            smoothed_at: Time(0),
            refresh_asks: 0,
        }
    }

    /// Selection with smoothing off (smoothed = metric).
    fn pick(
        e: &PrefixEntry,
        metric: impl Fn(&Route) -> Metric,
        accept: impl Fn(&Route) -> bool,
    ) -> Option<NeighbourId> {
        e.choose(Time(0), &metric, |_, m| m, accept).selected
    }

    #[test]
    fn chooses_lowest_metric_feasible_route() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 100));
        e.routes.push(route(2, 9, 5, 50));
        let cost = |_: &Route| Metric(96);
        assert_eq!(pick(&e, |r| r.refmetric.add(cost(r)), |_| true), Some(NeighbourId(2)));
        // FD (seqno 5, metric 60) makes the metric-100 route unfeasible and
        // leaves the metric-50 one.
        e.note_advertised(RouterId([9; 8]), SeqNo(5), Metric(60), Time(0));
        e.routes.as_mut_slice()[1].refmetric = Metric(70);
        assert_eq!(pick(&e, |r| r.refmetric.add(cost(r)), |_| true), None);
        e.routes.as_mut_slice()[0].seqno = SeqNo(6);
        assert_eq!(pick(&e, |r| r.refmetric.add(cost(r)), |_| true), Some(NeighbourId(1)));
    }

    #[test]
    fn strong_ordering_needs_better_now_and_better_smoothed() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 1000));
        e.routes.push(route(2, 9, 5, 900));
        e.selected = Some(NeighbourId(1));
        let m = |r: &Route| r.refmetric;
        // Route 2 is better now, but its smoothed metric is still worse:
        // keep route 1, and say a better one is pending.
        e.routes.as_mut_slice()[1].smoothed = Metric(1100);
        let c = e.choose(Time(0), m, |r, m| r.smoothed_metric(m, Time(0), 4000), |_| true);
        assert_eq!(c, Choice { selected: Some(NeighbourId(1)), pending: true });
        // Two half-lives later its smoothed metric (950) is below 1000, but
        // not by the margin (1/16 of 1000); four half-lives later (912) it is.
        let c = e.choose(Time(8000), m, |r, m| r.smoothed_metric(m, Time(8000), 4000), |_| true);
        assert_eq!(c, Choice { selected: Some(NeighbourId(1)), pending: true });
        let c = e.choose(Time(16000), m, |r, m| r.smoothed_metric(m, Time(16000), 4000), |_| true);
        assert_eq!(c, Choice { selected: Some(NeighbourId(2)), pending: false });
        // Better smoothed but worse right now: no switch.
        e.routes.as_mut_slice()[1].refmetric = Metric(1010);
        e.routes.as_mut_slice()[1].smoothed = Metric(500);
        let c = e.choose(Time(0), m, |r, _| r.smoothed, |_| true);
        assert_eq!(c, Choice { selected: Some(NeighbourId(1)), pending: false });
        // An unusable current route is replaced at once.
        e.routes.as_mut_slice()[0].refmetric = Metric::INFINITY;
        assert_eq!(e.choose(Time(0), m, |r, _| r.smoothed, |_| true).selected, Some(NeighbourId(2)));
    }

    #[test]
    fn smoothing_halves_the_gap_every_half_life() {
        let hl = 4000;
        let s = |dt| smooth(Metric(1256), Time(0), Metric(256), Time(dt), hl).0;
        assert_eq!(s(0), 1256);
        assert_eq!(s(4000), 756);
        assert_eq!(s(8000), 506);
        assert!(s(2000) < 1256 && s(2000) > 756, "{}", s(2000));
        assert!((1..8000).step_by(97).all(|t| s(t) >= s(t + 97)), "monotone");
        assert_eq!(s(64_000), 256);
        // Rising metrics are smoothed too; retractions are not.
        assert_eq!(smooth(Metric(256), Time(0), Metric(1256), Time(4000), hl), Metric(756));
        assert!(smooth(Metric(256), Time(0), Metric::INFINITY, Time(1), hl).is_infinite());
        // No smoothing configured.
        assert_eq!(smooth(Metric(900), Time(0), Metric(256), Time(1), 0), Metric(256));
    }

    #[test]
    fn a_new_route_needs_a_half_life_to_displace_a_working_one() {
        assert_eq!(initial_smoothed(Metric(300), None), Metric(300));
        let s0 = initial_smoothed(Metric(300), Some(Metric(500)));
        assert_eq!(s0, Metric(700));
        assert_eq!(smooth(s0, Time(0), Metric(300), Time(4000), 4000), Metric(500));
        // A worse newcomer starts at its own metric.
        assert_eq!(initial_smoothed(Metric(900), Some(Metric(500))), Metric(900));
    }

    #[test]
    fn filter_and_infinite_metrics_exclude_routes() {
        let mut e = PrefixEntry::default();
        e.routes.push(route(1, 9, 5, 10));
        e.routes.push(route(2, 8, 5, 0xFFFF));
        assert_eq!(pick(&e, |r| r.refmetric, |r| r.router_id != RouterId([9; 8])), None);
    }
}
