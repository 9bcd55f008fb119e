//! Neighbour link sensing (RFC 8966 §3.4 and Appendix A): Hello histories,
//! IHU-reported transmission cost, and the two link-cost functions —
//! "2-out-of-3" for wired links and ETX for wireless ones.

use std::net::Ipv6Addr;

use super::budget::Budget;

use super::interface::{IfIndex, LinkType};
use super::types::{Metric, SeqNo, Time};

/// The last 16 Hellos of one kind (multicast or unicast) from a neighbour:
/// bit 15 is the most recent. Missed Hellos are shifted in as zeros either
/// when a later seqno arrives or when the expected time passes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelloHistory {
    pub reach: u16,
    /// Seqno of the last Hello accounted for (received or counted as missed).
    pub seqno: Option<SeqNo>,
    /// The interval announced by the neighbour, in milliseconds (0: unknown).
    pub interval_ms: u64,
    /// When the last Hello accounted for arrived (or was expected).
    pub time: Time,
    /// When the history last started from empty (a new neighbour, or one
    /// that restarted or was silent for 16 Hellos): its cost still falls as
    /// the history fills.
    pub started: Time,
}

impl HelloHistory {
    /// Accounts for a received Hello. Returns true if the history changed in
    /// a way that may change the link cost.
    pub fn receive(&mut self, now: Time, seqno: SeqNo, interval_ms: u64) -> bool {
        let mut changed = false;
        if let (Some(last), true) = (self.seqno, self.reach != 0) {
            let missed = seqno.distance(last) - 1;
            if missed < -8 {
                // A neighbour that restarted and lost its seqno: start over.
                self.reach = 0;
                changed = true;
            } else if missed < 0 {
                // A late (reordered or buffered) Hello: forget the newest
                // entries it overtakes rather than double counting.
                self.reach <<= (-missed) as u32;
                changed = true;
            } else if missed > 0 {
                self.reach = if missed >= 16 { 0 } else { self.reach >> missed as u32 };
                changed = true;
            }
        }
        if self.reach == 0 {
            self.started = now;
        }
        self.seqno = Some(seqno);
        self.reach = (self.reach >> 1) | 0x8000;
        if self.reach & 0xFC00 != 0xFC00 {
            changed = true;
        }
        // An unscheduled Hello (interval 0) says nothing about when the
        // next one is due, so it does not move the schedule (as babeld).
        if interval_ms != 0 {
            self.interval_ms = interval_ms;
            self.time = now;
        }
        changed
    }

    /// The time by which the next Hello is overdue: 1.7 intervals after the
    /// last one, which tolerates the sender's jitter.
    pub fn overdue_at(&self) -> Option<Time> {
        (self.interval_ms > 0 && self.seqno.is_some()).then(|| self.time.plus_ms(self.interval_ms * 17 / 10))
    }

    /// Shifts in a zero for every Hello that should have arrived by `now`.
    /// Returns true if anything changed.
    pub fn account_missed(&mut self, now: Time) -> bool {
        if self.interval_ms == 0 || self.seqno.is_none() {
            return false;
        }
        let elapsed = now.since(self.time);
        let tolerance = self.interval_ms * 7 / 10;
        if elapsed < self.interval_ms + tolerance {
            return false;
        }
        let missed = (elapsed - tolerance) / self.interval_ms;
        if missed == 0 {
            return false;
        }
        self.reach = if missed >= 16 { 0 } else { self.reach >> missed as u32 };
        self.seqno = self.seqno.map(|s| s.add(missed.min(0xFFFF) as u16));
        self.time = self.time.plus_ms(missed * self.interval_ms);
        true
    }
}

/// "2-out-of-3" (RFC 8966 Appendix A.2.1): the link is up if at least two of
/// the last three Hellos arrived.
pub fn two_out_of_three(reach: u16) -> bool {
    if reach & 0xC000 == 0xC000 {
        true
    } else if reach & 0xC000 == 0 {
        false
    } else {
        reach & 0x2000 != 0
    }
}

/// Receive cost from one history. `nominal` is the interface's cost for a
/// perfect link (96 wired, 256 wireless by babeld's defaults).
pub fn rxcost(link: LinkType, nominal: u16, hist: &HelloHistory, now: Time) -> Metric {
    // Stale: no Hello among the last 12 expected, or none for 3 minutes.
    let stale = |h: &HelloHistory| h.reach & 0xFFF0 == 0 || now.since(h.time) >= 180_000;
    if stale(hist) {
        return Metric::INFINITY;
    }
    match link {
        LinkType::Wireless => {
            // ETX receive part: nominal / beta, with beta the fraction of the
            // last 16 Hellos received, weighting the two newest more so that
            // a fresh failure shows quickly (Appendix A.2.2).
            let r = hist.reach as u32;
            let sreach = ((r & 0x8000) >> 2) + ((r & 0x4000) >> 1) + (r & 0x3FFF);
            let mut cost = (0x8000u32 * nominal as u32) / (sreach + 1);
            let delay = now.since(hist.time);
            if delay >= 40_000 {
                cost = ((cost as u64 * (delay - 20_000) + 10_000) / 20_000) as u32;
            }
            Metric(cost.min(0xFFFF) as u16)
        }
        LinkType::Wired | LinkType::Tunnel => {
            if two_out_of_three(hist.reach) {
                Metric(nominal)
            } else {
                Metric::INFINITY
            }
        }
    }
}

/// Link cost from the receive and transmit costs (Appendix A.3): for wired
/// links the cost is the transmit cost once the link is bidirectional; for
/// wireless links it is ETX = 1/(alpha*beta), scaled by 256.
pub fn link_cost(link: LinkType, rxcost: Metric, txcost: Metric) -> Metric {
    if rxcost.is_infinite() || txcost.is_infinite() {
        return Metric::INFINITY;
    }
    match link {
        LinkType::Wireless if !(rxcost.0 < 256 && txcost.0 < 256) => {
            let a = txcost.0.max(256) as u32;
            let b = rxcost.0.max(256) as u32;
            Metric(((a * b + 128) >> 8).clamp(1, 0xFFFF) as u16)
        }
        // A cost of 0 would let us advertise exactly our feasibility
        // distance, making our own selected route unfeasible: never below 1.
        _ => txcost.max(Metric(1)),
    }
}

/// A sender whose packets arrive but whose Hellos never do is forgotten
/// after this long.
pub const NO_HELLO_MS: u64 = 60_000;

/// Stable handle of a neighbour in the engine's neighbour slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourId(pub u32);

/// One neighbour: a (interface, link-local address) pair we hear Hellos from.
#[derive(Clone, Debug)]
pub struct Neighbour {
    pub ifindex: IfIndex,
    pub address: Ipv6Addr,
    pub hello: HelloHistory,
    pub uhello: HelloHistory,
    /// Cost of sending to this neighbour, as it reported in its last IHU.
    pub txcost: Metric,
    pub ihu_time: Time,
    pub ihu_interval_ms: u64,
    /// The last IHU taken was addressed to the link-local address we use on
    /// the link (not another of ours).
    pub ihu_current: bool,
    /// Link cost as last computed; routes via this neighbour use it.
    pub cost: Metric,
    pub last_hello: Time,
    pub first_seen: Time,
    /// When the engine must look at this neighbour again (a timer as data).
    pub check_at: Option<Time>,
    /// What this neighbour's requests may still cost us (the engine sets
    /// the rate).
    pub requests: Budget,
    /// Specific route requests from this neighbour answered in the current
    /// second, and when that second started.
    pub route_requests: (u32, Time),
    /// When we last sent this neighbour a unicast full dump.
    pub last_dump: Option<Time>,
}

impl Neighbour {
    pub fn new(ifindex: IfIndex, address: Ipv6Addr, now: Time) -> Neighbour {
        Neighbour {
            ifindex,
            address,
            hello: HelloHistory::default(),
            uhello: HelloHistory::default(),
            txcost: Metric::INFINITY,
            ihu_time: now,
            ihu_interval_ms: 0,
            ihu_current: false,
            cost: Metric::INFINITY,
            last_hello: now,
            first_seen: now,
            check_at: Some(now.plus_ms(NO_HELLO_MS + 1)),
            requests: Budget::new(now, 0),
            route_requests: (0, now),
            last_dump: None,
        }
    }

    /// The better of the multicast and unicast receive costs.
    pub fn rxcost(&self, link: LinkType, nominal: u16, now: Time) -> Metric {
        rxcost(link, nominal, &self.hello, now).min(rxcost(link, nominal, &self.uhello, now))
    }

    /// The transmit cost. As babeld does, it is kept for 3 IHU intervals
    /// no matter what, then forgotten once Hellos are failing too, after 10
    /// IHU intervals, or after 3 minutes: a few lost IHUs on a lossy radio
    /// must not flap every route over a working link.
    pub fn txcost(&self, now: Time) -> Metric {
        let delay = now.since(self.ihu_time);
        let i = self.ihu_interval_ms;
        if i > 0 && delay < i * 3 {
            return self.txcost;
        }
        if delay >= 180_000 || self.hello.reach & 0xFFF0 == 0 || (i > 0 && delay >= i * 10) {
            Metric::INFINITY
        } else {
            self.txcost
        }
    }

    pub fn compute_cost(&self, link: LinkType, nominal: u16, now: Time) -> Metric {
        link_cost(link, self.rxcost(link, nominal, now), self.txcost(now))
    }

    /// When this neighbour next needs looking at without any input (after
    /// `now`): a Hello becoming overdue, the IHU information lapsing, or a
    /// neighbour never heard through a Hello being forgotten.
    pub fn next_check(&self, now: Time) -> Option<Time> {
        let mut ts = vec![self.hello.overdue_at(), self.uhello.overdue_at()];
        if !self.txcost.is_infinite() {
            let i = self.ihu_interval_ms;
            ts.push(Some(self.ihu_time.plus_ms(180_000)));
            if i > 0 {
                ts.push(Some(self.ihu_time.plus_ms(i * 3)));
                ts.push(Some(self.ihu_time.plus_ms(i * 10)));
            }
        }
        if self.hello.seqno.is_none() && self.uhello.seqno.is_none() {
            ts.push(Some(self.first_seen.plus_ms(NO_HELLO_MS + 1)));
        }
        ts.into_iter().flatten().filter(|t| *t > now).min()
    }

    /// Nothing heard for long enough that the neighbour should be forgotten.
    pub fn is_dead(&self, now: Time) -> bool {
        let heard = self.hello.seqno.is_some() || self.uhello.seqno.is_some();
        if !heard {
            return now.since(self.first_seen) > NO_HELLO_MS;
        }
        self.hello.reach == 0 && self.uhello.reach == 0 || now.since(self.last_hello) > 300_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_with(reach: u16) -> HelloHistory {
        HelloHistory { reach, seqno: Some(SeqNo(100)), interval_ms: 4000, time: Time(0), started: Time(0) }
    }

    #[test]
    fn two_out_of_three_truth_table() {
        assert!(two_out_of_three(0xC000));
        assert!(two_out_of_three(0xA000));
        assert!(two_out_of_three(0x6000));
        assert!(!two_out_of_three(0x8000));
        assert!(!two_out_of_three(0x4000));
        assert!(!two_out_of_three(0x2000));
        assert!(!two_out_of_three(0x0000));
    }

    #[test]
    fn hello_history_counts_gaps_and_resets_on_restart() {
        let mut h = HelloHistory::default();
        h.receive(Time(0), SeqNo(10), 4000);
        assert_eq!(h.reach, 0x8000);
        h.receive(Time(4000), SeqNo(11), 4000);
        assert_eq!(h.reach, 0xC000);
        // Seqno 12 and 13 lost.
        h.receive(Time(16000), SeqNo(14), 4000);
        assert_eq!(h.reach, 0x9800);
        // Neighbour restarted with a much older seqno.
        h.receive(Time(20000), SeqNo(1), 4000);
        assert_eq!(h.reach, 0x8000);
        // Wrap-around is just the next Hello.
        let mut w = HelloHistory::default();
        w.receive(Time(0), SeqNo(0xFFFF), 1000);
        w.receive(Time(1000), SeqNo(0), 1000);
        assert_eq!(w.reach, 0xC000);
    }

    #[test]
    fn missed_hellos_are_shifted_in_by_time() {
        let mut h = HelloHistory::default();
        h.receive(Time(0), SeqNo(1), 1000);
        h.receive(Time(1000), SeqNo(2), 1000);
        assert!(!h.account_missed(Time(2500)));
        assert!(h.account_missed(Time(2700)));
        assert_eq!(h.reach, 0x6000);
        // The next real Hello (seqno 4) does not count seqno 3 twice.
        h.receive(Time(3000), SeqNo(4), 1000);
        assert_eq!(h.reach, 0xB000);
    }

    #[test]
    fn wired_cost_needs_two_of_three_and_an_ihu() {
        let h = hist_with(0xC000);
        assert_eq!(rxcost(LinkType::Wired, 96, &h, Time(0)), Metric(96));
        assert!(rxcost(LinkType::Wired, 96, &hist_with(0x8000), Time(0)).is_infinite());
        assert_eq!(link_cost(LinkType::Wired, Metric(96), Metric(96)), Metric(96));
        assert!(link_cost(LinkType::Wired, Metric(96), Metric::INFINITY).is_infinite());
    }

    #[test]
    fn etx_grows_with_loss() {
        let perfect = rxcost(LinkType::Wireless, 256, &hist_with(0xFFFF), Time(0));
        assert_eq!(perfect, Metric(256));
        let half = rxcost(LinkType::Wireless, 256, &hist_with(0xAAAA), Time(0));
        assert!(half.0 > 400 && half.0 < 700, "{half}");
        // ETX of a perfect link both ways is 256; half loss one way doubles it.
        assert_eq!(link_cost(LinkType::Wireless, Metric(256), Metric(256)), Metric(256));
        assert_eq!(link_cost(LinkType::Wireless, Metric(512), Metric(256)), Metric(512));
        assert_eq!(link_cost(LinkType::Wireless, Metric(512), Metric(512)), Metric(1024));
        assert!(rxcost(LinkType::Wireless, 256, &hist_with(0x000F), Time(0)).is_infinite());
    }

    #[test]
    fn txcost_survives_lost_ihus_but_not_silence() {
        let mut n = Neighbour::new(1, Ipv6Addr::LOCALHOST, Time(0));
        n.txcost = Metric(96);
        n.ihu_interval_ms = 12_000;
        n.hello.reach = 0xFFFF;
        // Hellos still arrive: up to 10 IHU intervals are forgiven.
        assert_eq!(n.txcost(Time(119_999)), Metric(96));
        assert!(n.txcost(Time(120_000)).is_infinite());
        // Hellos failing too: gone after 3 intervals.
        n.hello.reach = 0x000F;
        assert_eq!(n.txcost(Time(35_999)), Metric(96));
        assert!(n.txcost(Time(36_000)).is_infinite());
        assert_eq!(n.next_check(Time(0)), Some(Time(36_000)));
        assert_eq!(n.next_check(Time(36_000)), Some(Time(60_001)));
    }

    #[test]
    fn link_cost_is_never_zero() {
        assert_eq!(link_cost(LinkType::Wired, Metric(96), Metric(0)), Metric(1));
        assert_eq!(link_cost(LinkType::Wireless, Metric(0), Metric(0)), Metric(1));
    }
}
