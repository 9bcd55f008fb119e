//! Pending seqno requests (RFC 8966 §3.8): the ones we originated to end a
//! starvation and the ones we forwarded for a neighbour, with duplicate
//! suppression and a bounded number of resends.

use std::collections::BTreeMap;

use super::neighbour::NeighbourId;
use super::types::{Prefix, RouterId, SeqNo, Time};

/// Delay before an unsatisfied request is sent again.
pub const RESEND_MS: u64 = 2000;
/// Sends of one request in all (the first one included).
pub const MAX_SENDS: u8 = 3;
/// Hop count of the requests we originate: above any sane mesh diameter.
pub const DEFAULT_HOP_COUNT: u8 = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    pub router_id: RouterId,
    pub seqno: SeqNo,
    pub hop_count: u8,
    /// Where it is sent: a neighbour (unicast), or `None` for multicast on
    /// every interface.
    pub target: Option<NeighbourId>,
    /// Who asked us, for forwarded requests (never forward back to them).
    pub requestor: Option<NeighbourId>,
    pub sent_at: Time,
    pub resend_at: Time,
    pub sends_left: u8,
}

#[derive(Clone, Debug, Default)]
pub struct RequestTable {
    pending: BTreeMap<Prefix, PendingRequest>,
}

impl RequestTable {
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn get(&self, prefix: &Prefix) -> Option<&PendingRequest> {
        self.pending.get(prefix)
    }

    /// A request for this (prefix, router-id, seqno) went out recently
    /// enough that sending or forwarding another would only duplicate it.
    pub fn is_redundant(&self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo, now: Time) -> bool {
        self.pending.get(prefix).is_some_and(|p| {
            p.router_id == *rid && p.seqno.newer_or_equal(seqno) && now.since(p.sent_at) < RESEND_MS
        })
    }

    /// Records a request that is being sent now.
    pub fn record(&mut self, prefix: Prefix, req: PendingRequest) {
        self.pending.insert(prefix, req);
    }

    /// An update arrived: a request it answers is satisfied.
    pub fn satisfy(&mut self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo) -> bool {
        if self.pending.get(prefix).is_some_and(|p| p.router_id == *rid && seqno.newer_or_equal(p.seqno)) {
            self.pending.remove(prefix);
            true
        } else {
            false
        }
    }

    /// Is there an unsatisfied request that an update (rid, seqno) answers?
    pub fn would_satisfy(&self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo) -> bool {
        self.pending.get(prefix).is_some_and(|p| p.router_id == *rid && seqno.newer_or_equal(p.seqno))
    }

    /// Forgets every request sent to or on behalf of a neighbour that went away.
    pub fn forget_neighbour(&mut self, n: NeighbourId) {
        self.pending.retain(|_, p| p.target != Some(n) && p.requestor != Some(n));
    }

    /// Requests due for a resend at `now`; they are rescheduled (or dropped
    /// once their sends are used up).
    pub fn due(&mut self, now: Time) -> Vec<(Prefix, PendingRequest)> {
        let mut out = Vec::new();
        self.pending.retain(|prefix, p| {
            if p.resend_at > now {
                return true;
            }
            if p.sends_left == 0 {
                return false;
            }
            p.sends_left -= 1;
            p.sent_at = now;
            p.resend_at = now.plus_ms(RESEND_MS);
            out.push((*prefix, p.clone()));
            true
        });
        out
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.pending.values().map(|p| p.resend_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(seqno: u16, now: Time) -> PendingRequest {
        PendingRequest {
            router_id: RouterId([7; 8]),
            seqno: SeqNo(seqno),
            hop_count: 64,
            target: None,
            requestor: None,
            sent_at: now,
            resend_at: now.plus_ms(RESEND_MS),
            sends_left: MAX_SENDS - 1,
        }
    }

    #[test]
    fn resends_are_bounded_and_satisfaction_clears() {
        let p: Prefix = "10.0.0.0/24".parse().unwrap();
        let mut t = RequestTable::default();
        t.record(p, req(5, Time(0)));
        assert!(t.is_redundant(&p, &RouterId([7; 8]), SeqNo(5), Time(100)));
        assert!(t.is_redundant(&p, &RouterId([7; 8]), SeqNo(4), Time(100)));
        assert!(!t.is_redundant(&p, &RouterId([7; 8]), SeqNo(6), Time(100)));
        assert!(t.due(Time(1999)).is_empty());
        assert_eq!(t.due(Time(2000)).len(), 1);
        assert_eq!(t.due(Time(4000)).len(), 1);
        assert!(t.due(Time(6000)).is_empty());
        assert!(t.is_empty());
        t.record(p, req(5, Time(0)));
        assert!(!t.satisfy(&p, &RouterId([7; 8]), SeqNo(4)));
        assert!(!t.satisfy(&p, &RouterId([8; 8]), SeqNo(5)));
        assert!(t.satisfy(&p, &RouterId([7; 8]), SeqNo(5)));
        assert!(t.is_empty());
    }
}
