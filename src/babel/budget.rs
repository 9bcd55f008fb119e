//! Token buckets: what one neighbour may make us do per second (forward
//! its seqno requests, answer its requests for prefixes we do not have),
//! so that a misbehaving or flooding neighbour costs a bounded amount.

use super::types::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Tokens, in thousandths.
    milli: u64,
    at: Time,
}

impl Budget {
    /// A full bucket.
    pub fn new(now: Time, burst: u32) -> Budget {
        Budget { milli: burst as u64 * 1000, at: now }
    }

    /// Takes one token if there is one, refilling at `per_s` up to `burst`.
    pub fn take(&mut self, now: Time, per_s: u32, burst: u32) -> bool {
        let refill = now.since(self.at).saturating_mul(per_s as u64);
        self.milli = (self.milli + refill).min(burst as u64 * 1000);
        self.at = now.max(self.at);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = Budget::new(Time(0), 3);
        assert!((0..3).all(|_| b.take(Time(0), 10, 3)));
        assert!(!b.take(Time(0), 10, 3));
        assert!(!b.take(Time(99), 10, 3));
        assert!(b.take(Time(100), 10, 3));
        assert!(!b.take(Time(100), 10, 3));
        // Never more than the burst, however long it rested.
        assert_eq!((0..10).filter(|_| b.take(Time(1_000_000), 10, 3)).count(), 3);
    }
}
