//! What time it is, for trust decisions, on a router whose wall clock may
//! be wrong: most OpenWrt routers boot with a 1970 or build-date clock and
//! reach NTP only through the mesh, and an NTP reply can be spoofed.
//!
//! Two clocks come in with every input: the monotonic clock (`now`,
//! milliseconds since the daemon started: it only ever moves forward, at
//! the right rate) and the wall clock (`wall`, Unix seconds: anything).
//!
//! - **The time floor** is a lower bound of the true time: the latest of the
//!   wall clock (when it is believed, see below), the floor persisted in the
//!   state file, the binary's build time, and CA-signed times seen
//!   (credential not-before, revocation-list issue time). Evidence ages with
//!   the monotonic clock: if the time was at least F when the monotonic
//!   clock read m, it is at least F + (now - m) now.
//! - **Unsynchronised**: the wall clock reads more than [`SLACK_S`] below the
//!   floor. Not-before is then not enforced (a node at 1970 would refuse
//!   every neighbour), and expiry is judged against the floor.
//! - **A forward jump**: the wall clock runs ahead of where the monotonic
//!   clock says it should be (the last believed reading plus the time
//!   elapsed, plus [`JUMP_TOLERANCE_S`] and 0.1 % for drift). Until the new
//!   reading has held steadily for [`JUMP_CONFIRM_MS`], expiry is judged
//!   against the floor, not against the jumped clock; so a spoofed NTP reply
//!   does not expire every credential at once. It is logged once, re-checked
//!   at every input, and believed only once it has held.
//!
//! Each change of state is logged once (not at every input), and shown in
//! `weft status`.

use crate::babel::Time;
pub use crate::trust::TrustTime;

/// How far the wall clock may run ahead of the monotonic clock's account
/// (NTP steps at start, slewing), beyond 0.1 % of the time elapsed.
pub const JUMP_TOLERANCE_S: u64 = 120;
/// How long a forward jump must hold before expiry follows it.
pub const JUMP_CONFIRM_MS: u64 = 3_600_000;
/// How far below the floor the wall clock may read and still count as
/// synchronised: more than [`JUMP_TOLERANCE_S`], since a believed reading
/// that far ahead raised the floor, and CA clocks are not ours.
pub const SLACK_S: u64 = 300;

/// What the clock is judged to be doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockState {
    Synchronised,
    /// Below the time floor.
    Unsynchronised,
    /// Jumped forward; not yet believed for expiry.
    JumpPending,
}

/// A forward jump being watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Jump {
    since: Time,
    /// Seconds the wall clock runs ahead of the monotonic account.
    ahead: u64,
}

#[derive(Clone, Debug)]
pub struct TrustClock {
    /// The floor, as evidence at a monotonic time.
    floor: u64,
    floor_at: Time,
    /// The last believed wall reading and when.
    anchor_wall: u64,
    anchor_at: Time,
    jump: Option<Jump>,
    state: ClockState,
    wall: u64,
    now: Time,
}

/// A change worth one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockEvent {
    Unsynchronised { wall: u64, floor: u64 },
    Synchronised { wall: u64 },
    JumpedForward { by: u64, expiry_at: u64 },
    JumpBelieved { wall: u64 },
    JumpWithdrawn,
    SteppedBack { by: u64 },
}

impl std::fmt::Display for ClockEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::trust::time::iso8601;
        match self {
            ClockEvent::Unsynchronised { wall, floor } => write!(
                f,
                "wall clock {} is before the time floor {}: treating it as unsynchronised \
                 (credential not-before is not enforced, expiry is judged against the floor)",
                iso8601(*wall),
                iso8601(*floor)
            ),
            ClockEvent::Synchronised { wall } => {
                write!(
                    f,
                    "wall clock {} is synchronised: credential times are checked against it",
                    iso8601(*wall)
                )
            }
            ClockEvent::JumpedForward { by, expiry_at } => write!(
                f,
                "wall clock jumped {by} s ahead of the monotonic clock: expiry is judged against {} \
                 until the new time has held for {} min",
                iso8601(*expiry_at),
                JUMP_CONFIRM_MS / 60_000
            ),
            ClockEvent::JumpBelieved { wall } => {
                write!(f, "wall clock {} has held: expiry follows it again", iso8601(*wall))
            }
            ClockEvent::JumpWithdrawn => f.write_str("wall clock is back in step with the monotonic clock"),
            ClockEvent::SteppedBack { by } => write!(f, "wall clock stepped back {by} s"),
        }
    }
}

fn secs_since(now: Time, then: Time) -> u64 {
    now.since(then) / 1000
}

impl TrustClock {
    /// `floor`: the latest of the persisted floor and the build time. The
    /// first reading is believed as it is (nothing to hold it against).
    pub fn new(now: Time, wall: u64, floor: u64) -> (TrustClock, Vec<ClockEvent>) {
        let mut c = TrustClock {
            floor: floor.max(wall),
            floor_at: now,
            anchor_wall: wall,
            anchor_at: now,
            jump: None,
            state: ClockState::Synchronised,
            wall,
            now,
        };
        let mut events = Vec::new();
        c.settle(&mut events);
        (c, events)
    }

    /// The floor now.
    pub fn floor(&self) -> u64 {
        self.floor.saturating_add(secs_since(self.now, self.floor_at))
    }

    pub fn state(&self) -> ClockState {
        self.state
    }

    pub fn wall(&self) -> u64 {
        self.wall
    }

    /// Where the monotonic clock says the wall clock should be.
    fn projected(&self) -> u64 {
        self.anchor_wall.saturating_add(secs_since(self.now, self.anchor_at))
    }

    /// A CA-signed time seen (not-before of a credential that verified, the
    /// issue time of a revocation list): the true time is at least that.
    pub fn signed_time(&mut self, t: u64) -> Vec<ClockEvent> {
        let mut events = Vec::new();
        if t > self.floor() {
            self.floor = t;
            self.floor_at = self.now;
            self.settle(&mut events);
        }
        events
    }

    /// Takes a reading of both clocks.
    pub fn observe(&mut self, now: Time, wall: u64) -> Vec<ClockEvent> {
        self.now = self.now.max(now);
        self.wall = wall;
        let mut events = Vec::new();
        let projected = self.projected();
        let elapsed = secs_since(self.now, self.anchor_at);
        let allowance = JUMP_TOLERANCE_S + elapsed / 1000;
        if wall > projected.saturating_add(allowance) {
            let ahead = wall - projected;
            match self.jump {
                // Still the same jump: believed once it has held.
                Some(j) if ahead.abs_diff(j.ahead) <= JUMP_TOLERANCE_S => {
                    if self.now.since(j.since) >= JUMP_CONFIRM_MS {
                        self.jump = None;
                        self.anchor_wall = wall;
                        self.anchor_at = self.now;
                        events.push(ClockEvent::JumpBelieved { wall });
                    }
                }
                _ => {
                    self.jump = Some(Jump { since: self.now, ahead });
                    events.push(ClockEvent::JumpedForward {
                        by: ahead,
                        expiry_at: self.floor().max(projected),
                    });
                }
            }
        } else {
            if self.jump.take().is_some() {
                events.push(ClockEvent::JumpWithdrawn);
            }
            if wall.saturating_add(JUMP_TOLERANCE_S) < projected {
                // Stepped back: believed (expiry only gets more lenient, and
                // the floor keeps it from going below what we know).
                events.push(ClockEvent::SteppedBack { by: projected - wall });
                self.anchor_wall = wall;
                self.anchor_at = self.now;
            }
        }
        // A believed reading is evidence of the time, too.
        if self.jump.is_none() && wall > self.floor() {
            self.floor = wall;
            self.floor_at = self.now;
        }
        self.settle(&mut events);
        events
    }

    fn settle(&mut self, events: &mut Vec<ClockEvent>) {
        let floor = self.floor();
        let state = if self.wall.saturating_add(SLACK_S) < floor {
            ClockState::Unsynchronised
        } else if self.jump.is_some() {
            ClockState::JumpPending
        } else {
            ClockState::Synchronised
        };
        if state != self.state {
            match state {
                ClockState::Unsynchronised => {
                    events.push(ClockEvent::Unsynchronised { wall: self.wall, floor })
                }
                ClockState::Synchronised if self.state == ClockState::Unsynchronised => {
                    events.push(ClockEvent::Synchronised { wall: self.wall })
                }
                _ => {}
            }
            self.state = state;
        }
    }

    /// The times trust decisions use now.
    pub fn trust_time(&self) -> TrustTime {
        let floor = self.floor();
        match self.state {
            ClockState::Unsynchronised => TrustTime { not_before_at: None, expiry_at: floor },
            ClockState::JumpPending => {
                TrustTime { not_before_at: Some(self.wall), expiry_at: floor.max(self.projected()) }
            }
            ClockState::Synchronised => TrustTime { not_before_at: Some(self.wall), expiry_at: self.wall },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: u64 = 1_780_000_000;
    const NOW: u64 = 1_790_000_000;

    fn at(s: u64) -> Time {
        Time(s * 1000)
    }

    #[test]
    fn a_good_clock_is_believed_and_raises_the_floor() {
        let (mut c, ev) = TrustClock::new(at(0), NOW, BUILD);
        assert!(ev.is_empty());
        assert_eq!(c.state(), ClockState::Synchronised);
        assert_eq!(c.trust_time(), TrustTime::exact(NOW));
        assert!(c.observe(at(100), NOW + 100).is_empty());
        assert_eq!(c.floor(), NOW + 100);
        assert_eq!(c.trust_time(), TrustTime::exact(NOW + 100));
    }

    #[test]
    fn a_1970_clock_is_unsynchronised_once_and_expiry_follows_the_floor() {
        let (mut c, ev) = TrustClock::new(at(0), 0, BUILD);
        assert_eq!(ev, vec![ClockEvent::Unsynchronised { wall: 0, floor: BUILD }]);
        assert_eq!(c.trust_time(), TrustTime { not_before_at: None, expiry_at: BUILD });
        // Said once, not at every reading; the floor ages with the monotonic clock.
        for s in 1..100 {
            assert!(c.observe(at(s), s).is_empty());
        }
        assert_eq!(c.trust_time().expiry_at, BUILD + 99);
        // A CA-signed time moves the floor.
        assert!(c.signed_time(NOW - 5).is_empty());
        assert_eq!(c.trust_time().expiry_at, NOW - 5);
        assert!(c.signed_time(NOW - 1000).is_empty(), "an older signed time moves nothing");
        assert_eq!(c.floor(), NOW - 5);
    }

    #[test]
    fn ntp_at_boot_is_believed_for_expiry_only_once_it_has_held() {
        let (mut c, _) = TrustClock::new(at(0), 0, BUILD);
        let ev = c.observe(at(30), NOW);
        assert!(matches!(ev[..], [ClockEvent::JumpedForward { .. }]), "{ev:?}");
        assert_eq!(c.state(), ClockState::JumpPending);
        assert_eq!(c.trust_time(), TrustTime { not_before_at: Some(NOW), expiry_at: BUILD + 30 });
        let t = JUMP_CONFIRM_MS / 1000;
        assert!(c.observe(at(30 + t - 1), NOW + t - 1).is_empty());
        assert_eq!(c.observe(at(30 + t), NOW + t), vec![ClockEvent::JumpBelieved { wall: NOW + t }]);
        assert_eq!(c.trust_time(), TrustTime::exact(NOW + t));
    }

    #[test]
    fn a_spoofed_jump_expires_nothing_and_is_withdrawn_when_the_clock_returns() {
        let (mut c, _) = TrustClock::new(at(0), NOW, BUILD);
        let ten_years = 10 * 365 * 86_400;
        let ev = c.observe(at(10), NOW + 10 + ten_years);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(c.trust_time().expiry_at, NOW + 10, "expiry does not follow the jump");
        assert_eq!(c.trust_time().not_before_at, Some(NOW + 10 + ten_years));
        // The same jump seen again is not logged again.
        assert!(c.observe(at(20), NOW + 20 + ten_years).is_empty());
        assert_eq!(c.observe(at(30), NOW + 30), vec![ClockEvent::JumpWithdrawn]);
        assert_eq!(c.trust_time(), TrustTime::exact(NOW + 30));
        assert_eq!(c.floor(), NOW + 30, "the jumped time never became the floor");
    }

    #[test]
    fn small_steps_and_drift_are_not_jumps_and_backward_steps_stop_at_the_floor() {
        let (mut c, _) = TrustClock::new(at(0), NOW, BUILD);
        assert!(c.observe(at(10), NOW + 10 + JUMP_TOLERANCE_S).is_empty());
        // A day at 0.05 % fast.
        assert!(c.observe(at(86_400), NOW + 86_400 + 43).is_empty());
        assert_eq!(c.state(), ClockState::Synchronised);
        let floor = c.floor();
        let ev = c.observe(at(86_401), NOW - 86_400 * 30);
        assert!(ev.iter().any(|e| matches!(e, ClockEvent::SteppedBack { .. })));
        assert!(ev.iter().any(|e| matches!(e, ClockEvent::Unsynchronised { .. })));
        assert_eq!(c.trust_time().expiry_at, floor + 1, "expiry does not go back below the floor");
    }
}
