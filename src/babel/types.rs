//! Value types that carry RFC 8966's arithmetic, so that the rest of the
//! protocol code cannot compare a sequence number with `<` or overflow a
//! metric by accident.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A 16-bit sequence number compared modulo 2^16 (RFC 8966 §3.2.1).
///
/// `a` is newer than `b` when `0 < (a - b) mod 2^16 < 2^15`. The relation is
/// not a total order (a number exactly 2^15 apart is neither newer nor older),
/// which is why this type deliberately does not implement `Ord`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// The next sequence number, wrapping at 2^16.
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.wrapping_add(1))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }

    /// `self - other` as a signed distance in [-2^15, 2^15). Used for hello
    /// histories, where a small negative distance means a late hello.
    pub fn distance(self, other: SeqNo) -> i32 {
        let d = self.0.wrapping_sub(other.0);
        if d >= 0x8000 {
            d as i32 - 0x10000
        } else {
            d as i32
        }
    }

    /// Strictly newer than `other` modulo 2^16.
    pub fn newer_than(self, other: SeqNo) -> bool {
        let d = self.0.wrapping_sub(other.0);
        d != 0 && d < 0x8000
    }

    /// Newer than or equal to `other`.
    pub fn newer_or_equal(self, other: SeqNo) -> bool {
        self == other || self.newer_than(other)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A route metric or link cost. Addition saturates at [`Metric::INFINITY`]
/// (0xFFFF), which means "unreachable"; a sum never wraps back into the
/// reachable range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Metric(pub u16);

impl Metric {
    pub const INFINITY: Metric = Metric(0xFFFF);
    pub const ZERO: Metric = Metric(0);

    pub fn is_infinite(self) -> bool {
        self == Metric::INFINITY
    }

    /// Saturating addition: anything plus infinity is infinity, and sums that
    /// would reach 0xFFFF become infinity.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Metric) -> Metric {
        Metric(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_infinite() {
            f.write_str("inf")
        } else {
            self.0.fmt(f)
        }
    }
}

/// An 8-byte Babel router-id (RFC 8966 §3.1). All-zeros and all-ones are not
/// valid router-ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouterId(pub [u8; 8]);

impl RouterId {
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8] && self.0 != [0xFF; 8]
    }
}

impl fmt::Display for RouterId {
    /// babeld's notation: eight hex bytes separated by colons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouterId({self})")
    }
}

impl FromStr for RouterId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 8 {
            return Err(format!("router-id {s:?}: expected 8 hex bytes separated by ':'"));
        }
        let mut id = [0u8; 8];
        for (i, p) in parts.iter().enumerate() {
            id[i] =
                u8::from_str_radix(p, 16).map_err(|_| format!("router-id {s:?}: {p:?} is not a hex byte"))?;
        }
        Ok(RouterId(id))
    }
}

/// An interval in centiseconds, the unit of every interval on Babel's wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Centisecs(pub u16);

impl Centisecs {
    pub fn from_millis(ms: u64) -> Centisecs {
        Centisecs((ms / 10).min(u16::MAX as u64) as u16)
    }
    pub fn as_millis(self) -> u64 {
        self.0 as u64 * 10
    }
}

/// An IPv4 or IPv6 prefix with its host bits cleared, so that equal prefixes
/// compare equal. Ordered IPv4 before IPv6, then by address and length.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Prefix {
    /// Builds a prefix, clearing host bits. `None` if the length is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        match addr {
            IpAddr::V4(a) if len <= 32 => Some(Prefix::V4(mask_v4(a, len), len)),
            IpAddr::V6(a) if len <= 128 => Some(Prefix::V6(mask_v6(a, len), len)),
            _ => None,
        }
    }

    pub fn addr(&self) -> IpAddr {
        match *self {
            Prefix::V4(a, _) => IpAddr::V4(a),
            Prefix::V6(a, _) => IpAddr::V6(a),
        }
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        match *self {
            Prefix::V4(_, l) | Prefix::V6(_, l) => l,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, Prefix::V4(..))
    }

    /// True if `other` lies inside this prefix (or equals it).
    pub fn contains(&self, other: &Prefix) -> bool {
        match (*self, *other) {
            (Prefix::V4(a, l), Prefix::V4(b, m)) => m >= l && mask_v4(b, l) == a,
            (Prefix::V6(a, l), Prefix::V6(b, m)) => m >= l && mask_v6(b, l) == a,
            _ => false,
        }
    }

    /// True if the address lies inside this prefix.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (Prefix::V4(a, l), IpAddr::V4(b)) => mask_v4(b, l) == a,
            (Prefix::V6(a, l), IpAddr::V6(b)) => mask_v6(b, l) == a,
            _ => false,
        }
    }
}

fn mask_v4(a: Ipv4Addr, len: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len as u32) };
    Ipv6Addr::from(bits & mask)
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(a, l) => write!(f, "{a}/{l}"),
            Prefix::V6(a, l) => write!(f, "{a}/{l}"),
        }
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = String;
    /// Parses `ADDR/LEN`; a bare address is a host prefix. Host bits set in
    /// the address are an error, as a typo there usually means a wrong prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr =
            a.parse().map_err(|_| format!("{s:?} is not an IP prefix (address part {a:?} is invalid)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        let p = Prefix::new(addr, len).expect("length checked");
        if p.addr() != addr {
            return Err(format!("{s:?} has host bits set (did you mean {p}?)"));
        }
        Ok(p)
    }
}

impl serde::Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for RouterId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A point in the engine's time, in milliseconds since an epoch chosen by
/// whoever drives the engine (the daemon's start, or the simulator's zero).
/// The engine never reads a clock: time only arrives with its inputs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Time(pub u64);

impl Time {
    pub fn millis(self) -> u64 {
        self.0
    }
    pub fn plus_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }
    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqno_compares_modulo_2_16() {
        assert!(SeqNo(1).newer_than(SeqNo(0)));
        assert!(SeqNo(0).newer_than(SeqNo(0xFFFF)));
        assert!(!SeqNo(0xFFFF).newer_than(SeqNo(0)));
        assert!(!SeqNo(5).newer_than(SeqNo(5)));
        assert!(SeqNo(5).newer_or_equal(SeqNo(5)));
        // Exactly half the space apart: neither is newer.
        assert!(!SeqNo(0x8000).newer_than(SeqNo(0)));
        assert!(!SeqNo(0).newer_than(SeqNo(0x8000)));
        assert_eq!(SeqNo(2).distance(SeqNo(0xFFFE)), 4);
        assert_eq!(SeqNo(0xFFFE).distance(SeqNo(2)), -4);
    }

    #[test]
    fn metric_saturates_at_infinity() {
        assert_eq!(Metric(0xFFF0).add(Metric(0x20)), Metric::INFINITY);
        assert_eq!(Metric(1).add(Metric::INFINITY), Metric::INFINITY);
        assert_eq!(Metric(96).add(Metric(256)), Metric(352));
        assert!(Metric(0xFFFE).add(Metric(1)).is_infinite());
    }

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert!(p.contains(&"10.1.2.0/24".parse().unwrap()));
        assert!(!p.contains(&"10.2.0.0/24".parse().unwrap()));
        assert!(!p.contains(&"10.0.0.0/8".parse().unwrap()));
        assert!("10.1.0.1/16".parse::<Prefix>().is_err());
        assert!("10.1.0.0/33".parse::<Prefix>().is_err());
        let h: Prefix = "fd00::1".parse().unwrap();
        assert_eq!(h.len(), 128);
        assert_eq!(Prefix::new("10.1.2.3".parse().unwrap(), 8).unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn router_id_round_trips_text() {
        let r: RouterId = "02:11:22:ff:fe:33:44:55".parse().unwrap();
        assert_eq!(r.to_string(), "02:11:22:ff:fe:33:44:55");
        assert!(r.is_valid());
        assert!(!RouterId([0; 8]).is_valid());
    }
}
