//! Refusal bookkeeping: which neighbours were refused a tunnel (for the
//! log) and which announcements were refused by the route filter (for
//! `weft status`). Everything here is bounded, whatever arrives: forged
//! beacons from fresh keys cost at most a fixed number of entries and a
//! rate-limited trickle of log lines.

use crate::babel::{Prefix, RouterId, Time};
use crate::link::Scope;
use crate::trust::{PublicKey, TrustError};

/// A refused announcement counts as current for this long after it was
/// last heard (several update intervals).
const ANNOUNCEMENT_WINDOW_MS: u64 = 60_000;
/// Most refused (origin, prefix) pairs remembered.
const MAX_ANNOUNCEMENTS: usize = 1024;
/// Most (key, reason) pairs remembered for de-duplicating log lines.
const MAX_LOGGED: usize = 256;
/// Refusal log lines: at most this many at once, then one a
/// [`LOG_REFILL_MS`]; those held back are counted and summed up in one line.
const LOG_BURST: u32 = 20;
const LOG_REFILL_MS: u64 = 60_000;
const SUMMARY_MS: u64 = 60_000;

#[derive(Default)]
pub struct Refusals {
    /// Refusals logged, by key and kind of reason (never a time: a
    /// refusal repeated as the clock moves is the same refusal), and when
    /// last heard of. A small table: searched in place.
    logged: Vec<((PublicKey, &'static str), Time)>,
    /// Refused announcements, by origin and prefix (sorted), when last heard.
    announcements: Vec<((RouterId, Prefix), Time)>,
    tokens: Option<(u32, Time)>,
    /// Lines held back since the last summary, and when that was.
    suppressed: u64,
    last_summary: Option<Time>,
}

impl Refusals {
    /// A neighbour was refused a tunnel: the log lines to write (none if
    /// this refusal was logged already, or lines are being rate-limited).
    pub fn neighbour(
        &mut self,
        now: Time,
        key: &PublicKey,
        scope: Scope,
        reason: &TrustError,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let entry = (*key, reason.kind());
        if let Some(e) = self.logged.iter_mut().find(|(k, _)| *k == entry) {
            e.1 = now;
        } else {
            if self.logged.len() >= MAX_LOGGED {
                // Forget the refusal heard of longest ago.
                if let Some(i) = self.logged.iter().enumerate().min_by_key(|(_, (_, t))| *t).map(|(i, _)| i) {
                    self.logged.swap_remove(i);
                }
            }
            self.logged.push((entry, now));
            if self.take_token(now) {
                lines.push(format!("refused a tunnel to {key} ({scope:?}): {reason}"));
            } else {
                self.suppressed += 1;
            }
        }
        if self.suppressed > 0 && self.last_summary.is_none_or(|t| now.since(t) >= SUMMARY_MS) {
            lines.push(format!(
                "{} more neighbours refused a tunnel (not logged one by one)",
                self.suppressed
            ));
            self.suppressed = 0;
            self.last_summary = Some(now);
        }
        lines
    }

    fn take_token(&mut self, now: Time) -> bool {
        let (tokens, at) = self.tokens.get_or_insert((LOG_BURST, now));
        let refill = (now.since(*at) / LOG_REFILL_MS) as u32;
        if refill > 0 {
            *tokens = (*tokens + refill).min(LOG_BURST);
            *at = at.plus_ms(u64::from(refill) * LOG_REFILL_MS);
        }
        if *tokens > 0 {
            *tokens -= 1;
            true
        } else {
            false
        }
    }

    /// Entries held (log de-duplication and refused announcements).
    pub fn len(&self) -> usize {
        self.logged.len() + self.announcements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The route filter refused an announcement.
    pub fn announcement(&mut self, now: Time, origin: RouterId, prefix: Prefix) {
        let key = (origin, prefix);
        if let Ok(i) = self.announcements.binary_search_by(|(k, _)| k.cmp(&key)) {
            self.announcements[i].1 = now;
            return;
        }
        if self.announcements.len() >= MAX_ANNOUNCEMENTS {
            self.announcements.retain(|(_, t)| now.since(*t) < ANNOUNCEMENT_WINDOW_MS);
            if self.announcements.len() >= MAX_ANNOUNCEMENTS {
                return;
            }
        }
        let at = self.announcements.binary_search_by(|(k, _)| k.cmp(&key)).unwrap_or_else(|i| i);
        self.announcements.insert(at, (key, now));
    }

    /// Distinct (origin, prefix) pairs refused within the window.
    pub fn refused_announcements(&self, now: Time) -> usize {
        self.announcements.iter().filter(|(_, t)| now.since(*t) < ANNOUNCEMENT_WINDOW_MS).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::CaKeyId;

    #[test]
    fn a_repeated_refusal_is_logged_once_whatever_the_time_in_its_reason() {
        let mut r = Refusals::default();
        let k = PublicKey([9; 32]);
        let lines: usize = (0..720u64)
            .map(|s| {
                let reason = TrustError::Expired { not_after: 1, now: 1_000 + s * 5 };
                r.neighbour(Time(s * 5000), &k, Scope::Raw(1), &reason).len()
            })
            .sum();
        assert_eq!(lines, 1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn fresh_keys_get_a_bounded_table_and_a_trickle_of_lines() {
        let mut r = Refusals::default();
        let mut lines = Vec::new();
        for i in 0..72_000u64 {
            let mut key = [0x11; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            let t = Time(i * 50);
            lines.extend(r.neighbour(
                t,
                &PublicKey(key),
                Scope::Raw(1),
                &TrustError::BadSignature(CaKeyId([0; 8])),
            ));
        }
        assert!(r.len() <= MAX_LOGGED);
        // An hour: the burst, then one line and one summary a minute.
        assert!(lines.len() <= 20 + 60 + 60, "{} lines", lines.len());
        assert!(lines.iter().any(|l| l.contains("more neighbours refused")));
    }
}
