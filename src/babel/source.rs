//! The source table and the feasibility condition (RFC 8966 §3.5, §3.7.3).
//!
//! For every source (prefix, router-id) we have advertised, the feasibility
//! distance (FD) is the best (seqno, metric) pair we announced. An update is
//! feasible when it is strictly better than the FD: a newer seqno, or the same
//! seqno with a smaller metric. Selecting only feasible routes is what keeps
//! Babel loop-free at every instant, not just after convergence.

use super::types::{Metric, RouterId, SeqNo, Time};

/// A source entry is forgotten (and stops constraining feasibility) after
/// this long without being advertised — by then every route derived from our
/// old announcements has expired (babeld uses the same 200 s).
pub const SOURCE_GC_MS: u64 = 200_000;

/// Feasibility distance of one (prefix, router-id) source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub router_id: RouterId,
    pub seqno: SeqNo,
    pub metric: Metric,
    /// Last time we advertised this source.
    pub time: Time,
}

impl Source {
    pub fn is_stale(&self, now: Time) -> bool {
        now.since(self.time) > SOURCE_GC_MS
    }

    /// Records that we advertised (seqno, metric) for this source: the FD
    /// only ever moves towards "better".
    pub fn advertised(&mut self, seqno: SeqNo, metric: Metric, now: Time) {
        if seqno.newer_than(self.seqno) || (seqno == self.seqno && metric < self.metric) {
            self.seqno = seqno;
            self.metric = metric;
        }
        self.time = now;
    }
}

/// The feasibility condition of §3.5.1. `fd` is the source entry, if any;
/// retractions are always feasible.
pub fn is_feasible(fd: Option<&Source>, seqno: SeqNo, refmetric: Metric, now: Time) -> bool {
    match fd {
        None => true,
        Some(_) if refmetric.is_infinite() => true,
        Some(s) if s.is_stale(now) => true,
        Some(s) => seqno.newer_than(s.seqno) || (seqno == s.seqno && refmetric < s.metric),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(seqno: u16, metric: u16) -> Source {
        Source { router_id: RouterId([1; 8]), seqno: SeqNo(seqno), metric: Metric(metric), time: Time(0) }
    }

    #[test]
    fn feasibility_condition() {
        let fd = src(10, 300);
        let now = Time(1000);
        assert!(is_feasible(None, SeqNo(1), Metric(5000), now));
        assert!(is_feasible(Some(&fd), SeqNo(11), Metric(5000), now));
        assert!(is_feasible(Some(&fd), SeqNo(10), Metric(299), now));
        assert!(!is_feasible(Some(&fd), SeqNo(10), Metric(300), now));
        assert!(!is_feasible(Some(&fd), SeqNo(9), Metric(1), now));
        assert!(is_feasible(Some(&fd), SeqNo(9), Metric::INFINITY, now));
        // Seqno wrap-around: 0 is newer than 0xFFFF.
        assert!(is_feasible(Some(&src(0xFFFF, 10)), SeqNo(0), Metric(500), now));
        // A stale entry no longer constrains.
        assert!(is_feasible(Some(&fd), SeqNo(9), Metric(1), Time(SOURCE_GC_MS + 1)));
    }

    #[test]
    fn fd_only_improves() {
        let mut s = src(10, 300);
        s.advertised(SeqNo(10), Metric(400), Time(5));
        assert_eq!((s.seqno, s.metric), (SeqNo(10), Metric(300)));
        s.advertised(SeqNo(10), Metric(200), Time(6));
        assert_eq!(s.metric, Metric(200));
        s.advertised(SeqNo(11), Metric(900), Time(7));
        assert_eq!((s.seqno, s.metric, s.time), (SeqNo(11), Metric(900), Time(7)));
        s.advertised(SeqNo(10), Metric(1), Time(8));
        assert_eq!((s.seqno, s.metric), (SeqNo(11), Metric(900)));
    }
}
