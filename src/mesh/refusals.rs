//! Refusal bookkeeping: which neighbours were refused a tunnel (for the log)
//! and which announcements were refused by the route filter (for `weft
//! status`).

use std::collections::BTreeMap;

use crate::babel::{Prefix, RouterId, Time};
use crate::link::Scope;
use crate::trust::{PublicKey, TrustError};

/// A refused announcement counts as current for this long after it was
/// last heard (several update intervals).
const ANNOUNCEMENT_WINDOW_MS: u64 = 60_000;
/// Most refused (origin, prefix) pairs remembered.
const MAX_ANNOUNCEMENTS: usize = 4096;

#[derive(Default)]
pub struct Refusals {
    /// Refusal log lines already written, by key and reason.
    logged: BTreeMap<String, u64>,
    /// Refused announcements, by origin and prefix, when last heard.
    announcements: BTreeMap<(RouterId, Prefix), Time>,
}

impl Refusals {
    /// A neighbour was refused a tunnel: the log line to write, if any.
    pub fn neighbour(&mut self, key: &PublicKey, scope: Scope, reason: &TrustError) -> Option<String> {
        // One log line per key and reason change, not per beacon.
        let n = self.logged.entry(format!("{key} {reason}")).or_insert(0);
        *n += 1;
        (*n == 1).then(|| format!("refused a tunnel to {key} ({scope:?}): {reason}"))
    }

    /// The route filter refused an announcement.
    pub fn announcement(&mut self, now: Time, origin: RouterId, prefix: Prefix) {
        if self.announcements.len() >= MAX_ANNOUNCEMENTS
            && !self.announcements.contains_key(&(origin, prefix))
        {
            self.expire(now);
            if self.announcements.len() >= MAX_ANNOUNCEMENTS {
                return;
            }
        }
        self.announcements.insert((origin, prefix), now);
    }

    fn expire(&mut self, now: Time) {
        self.announcements.retain(|_, t| now.since(*t) < ANNOUNCEMENT_WINDOW_MS);
    }

    /// Distinct (origin, prefix) pairs refused within the window.
    pub fn refused_announcements(&self, now: Time) -> usize {
        self.announcements.values().filter(|t| now.since(**t) < ANNOUNCEMENT_WINDOW_MS).count()
    }
}
