//! Pending seqno requests (RFC 8966 §3.8): the ones we originated to end a
//! starvation and the ones we forwarded for a neighbour, as babeld keeps
//! them: a record per prefix, remembered for a while so that duplicates
//! are not forwarded again and an update answering one goes out quickly;
//! only requests we originated after losing a route are resent.

use std::collections::BTreeMap;

use super::neighbour::NeighbourId;
use super::types::{Prefix, RouterId, SeqNo, Time};

/// How long a request is remembered (babeld's REQUEST_TIMEOUT).
pub const REQUEST_TIMEOUT_MS: u64 = 65_000;
/// Resends of a request we originated after losing a route, with the delay
/// doubling each time (babeld's RESEND_MAX).
pub const MAX_RESENDS: u8 = 3;
/// A request forwarded this recently is not forwarded again (by default).
pub const RECENT_MS: u64 = 1000;
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
    pub created: Time,
    pub sent_at: Time,
    /// Next resend, for the requests that are resent.
    pub resend_at: Option<Time>,
    pub resend_delay_ms: u64,
    pub resends_left: u8,
    /// How long after sending it another request for the same thing would
    /// be redundant (when it is not resent).
    pub quiet_ms: u64,
}

impl PendingRequest {
    /// A request sent now; `resend_delay_ms` 0 means it is never resent.
    pub fn new(
        router_id: RouterId,
        seqno: SeqNo,
        hop_count: u8,
        target: Option<NeighbourId>,
        requestor: Option<NeighbourId>,
        now: Time,
        resend_delay_ms: u64,
    ) -> PendingRequest {
        let resends = resend_delay_ms > 0;
        PendingRequest {
            router_id,
            seqno,
            hop_count,
            target,
            requestor,
            created: now,
            sent_at: now,
            resend_at: resends.then(|| now.plus_ms(resend_delay_ms)),
            resend_delay_ms,
            resends_left: if resends { MAX_RESENDS } else { 0 },
            quiet_ms: RECENT_MS,
        }
    }

    /// Keeps another request for the same thing from going out for `ms`.
    pub fn quiet_for(mut self, ms: u64) -> PendingRequest {
        self.quiet_ms = ms.max(RECENT_MS);
        self
    }

    fn expired(&self, now: Time) -> bool {
        now.since(self.created) >= REQUEST_TIMEOUT_MS
    }
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

    /// A request for (prefix, router-id, at least this seqno) is in flight:
    /// it will be resent, or it went out too recently to send another.
    pub fn is_redundant(&self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo, now: Time) -> bool {
        self.pending.get(prefix).is_some_and(|p| {
            !p.expired(now)
                && p.router_id == *rid
                && p.seqno.newer_or_equal(seqno)
                && (p.resend_at.is_some() || now.since(p.sent_at) < p.quiet_ms)
        })
    }

    /// Records a request that is being sent now.
    pub fn record(&mut self, prefix: Prefix, req: PendingRequest) {
        self.pending.insert(prefix, req);
    }

    /// We are announcing a route (router-id, seqno) for the prefix: a
    /// request it answers is satisfied (a different origin answers it too:
    /// the starving route is gone).
    pub fn satisfy(&mut self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo) -> bool {
        if self.would_satisfy(prefix, rid, seqno) {
            self.pending.remove(prefix);
            true
        } else {
            false
        }
    }

    /// Is there a request that announcing (router-id, seqno) would answer?
    /// Then the update must go out quickly.
    pub fn would_satisfy(&self, prefix: &Prefix, rid: &RouterId, seqno: SeqNo) -> bool {
        self.pending.get(prefix).is_some_and(|p| p.router_id != *rid || seqno.newer_or_equal(p.seqno))
    }

    /// Forgets every request sent to or on behalf of a neighbour that went away.
    pub fn forget_neighbour(&mut self, n: NeighbourId) {
        self.pending.retain(|_, p| p.target != Some(n) && p.requestor != Some(n));
    }

    /// Requests due for a resend at `now` (rescheduled with the delay
    /// doubled, or no longer resent once their resends are used up);
    /// expired records are dropped.
    pub fn due(&mut self, now: Time) -> Vec<(Prefix, PendingRequest)> {
        let mut out = Vec::new();
        self.pending.retain(|prefix, p| {
            if p.expired(now) {
                return false;
            }
            if p.resend_at.is_none_or(|t| t > now) {
                return true;
            }
            p.resends_left -= 1;
            p.sent_at = now;
            p.resend_delay_ms *= 2;
            p.resend_at = (p.resends_left > 0).then(|| now.plus_ms(p.resend_delay_ms));
            out.push((*prefix, p.clone()));
            true
        });
        out
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.pending.values().filter_map(|p| p.resend_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RID: RouterId = RouterId([7; 8]);

    #[test]
    fn originated_requests_are_resent_with_backoff_then_remembered() {
        let p: Prefix = "10.0.0.0/24".parse().unwrap();
        let mut t = RequestTable::default();
        t.record(p, PendingRequest::new(RID, SeqNo(5), 64, None, None, Time(0), 500));
        assert!(t.is_redundant(&p, &RID, SeqNo(5), Time(100)));
        assert!(t.is_redundant(&p, &RID, SeqNo(4), Time(100)));
        assert!(!t.is_redundant(&p, &RID, SeqNo(6), Time(100)));
        assert!(t.due(Time(499)).is_empty());
        assert_eq!(t.due(Time(500)).len(), 1);
        assert!(t.due(Time(1499)).is_empty());
        assert_eq!(t.due(Time(1500)).len(), 1);
        assert_eq!(t.due(Time(3500)).len(), 1);
        assert_eq!(t.next_deadline(), None, "three resends, no more");
        // Still remembered: an update answering it is urgent, but a new
        // request for it is no longer redundant after a while.
        assert!(t.would_satisfy(&p, &RID, SeqNo(5)));
        assert!(!t.is_redundant(&p, &RID, SeqNo(5), Time(5000)));
        assert!(t.due(Time(REQUEST_TIMEOUT_MS)).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn forwarded_requests_are_not_resent_and_satisfaction_follows_babeld() {
        let p: Prefix = "10.0.0.0/24".parse().unwrap();
        let mut t = RequestTable::default();
        t.record(
            p,
            PendingRequest::new(RID, SeqNo(5), 10, Some(NeighbourId(1)), Some(NeighbourId(2)), Time(0), 0),
        );
        assert!(t.is_redundant(&p, &RID, SeqNo(5), Time(999)));
        assert!(!t.is_redundant(&p, &RID, SeqNo(5), Time(1000)));
        assert!(t.due(Time(10_000)).is_empty());
        assert!(!t.satisfy(&p, &RID, SeqNo(4)), "an older seqno answers nothing");
        assert!(t.satisfy(&p, &RouterId([8; 8]), SeqNo(1)), "another origin makes it moot");
        t.record(p, PendingRequest::new(RID, SeqNo(5), 10, None, None, Time(0), 0));
        assert!(t.satisfy(&p, &RID, SeqNo(5)));
        assert!(t.is_empty());
        t.record(p, PendingRequest::new(RID, SeqNo(5), 10, None, None, Time(0), 0).quiet_for(4000));
        assert!(t.is_redundant(&p, &RID, SeqNo(5), Time(3999)));
        assert!(!t.is_redundant(&p, &RID, SeqNo(5), Time(4000)));
        t.record(p, PendingRequest::new(RID, SeqNo(5), 10, Some(NeighbourId(1)), None, Time(0), 0));
        t.forget_neighbour(NeighbourId(1));
        assert!(t.is_empty());
    }
}
