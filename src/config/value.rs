//! Parsers for single option values. Each returns what it expected on
//! failure, so that the schema can say `expected ..., got ...`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

pub use crate::key::PublicKey;

/// Describes the expected form of a value, for error messages.
pub type Expected = String;

/// A UCI boolean, spelled the way OpenWrt's `config_get_bool` accepts it.
/// Case-sensitive on purpose: the shell helpers are, and weft and the init
/// script must agree on what a value means.
pub fn parse_bool(s: &str) -> Result<bool, Expected> {
    match s {
        "1" | "on" | "true" | "yes" | "enabled" => Ok(true),
        "0" | "off" | "false" | "no" | "disabled" => Ok(false),
        _ => Err("a boolean (1/0, on/off, true/false, yes/no, enabled/disabled)".into()),
    }
}

/// Decimal seconds (`4`, `0.5`, `1.25`) to milliseconds. No sign, no
/// exponent, at most three decimals (milliseconds are the resolution).
pub fn parse_seconds_ms(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 3
        || (s.contains('.') && frac.is_empty())
    {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let mut ms = 0u64;
    for (i, d) in frac.bytes().enumerate() {
        ms += u64::from(d - b'0') * [100, 10, 1][i];
    }
    whole.checked_mul(1000)?.checked_add(ms)
}

/// The longest Babel interval: the wire carries centiseconds in 16 bits.
pub const MAX_INTERVAL_MS: u64 = u16::MAX as u64 * 10;

/// A Babel interval (hello, update): seconds with at most two decimals,
/// because the wire carries centiseconds, from 0.01 to 655.35 s.
pub fn parse_interval_ms(s: &str) -> Result<u64, Expected> {
    let expected = || "seconds between 0.01 and 655.35 with at most 2 decimals (e.g. 4 or 0.5)".into();
    match parse_seconds_ms(s) {
        Some(ms) if ms % 10 == 0 && (10..=MAX_INTERVAL_MS).contains(&ms) => Ok(ms),
        _ => Err(expected()),
    }
}

/// Any non-negative duration in decimal seconds, up to `max_s`.
pub fn parse_duration_ms(s: &str, max_s: u64) -> Result<u64, Expected> {
    match parse_seconds_ms(s) {
        Some(ms) if ms <= max_s * 1000 => Ok(ms),
        _ => Err(format!("seconds from 0 to {max_s}, at most 3 decimals (e.g. 4 or 0.5)")),
    }
}

/// Whole seconds, `0..=max_s` (WireGuard's persistent keepalive is whole
/// seconds in 16 bits).
pub fn parse_whole_seconds_ms(s: &str, max_s: u64) -> Result<u64, Expected> {
    match s.parse::<u64>() {
        Ok(v) if v <= max_s && s.bytes().all(|b| b.is_ascii_digit()) => Ok(v * 1000),
        _ => Err(format!("whole seconds from 0 to {max_s} (0: off)")),
    }
}

/// An unsigned decimal integer in `min..=max` (no sign, no leading `+`).
pub fn parse_uint(s: &str, min: u64, max: u64) -> Result<u64, Expected> {
    match s.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(format!("a whole number from {min} to {max}")),
    }
}

/// An absolute file-system path on one line.
pub fn parse_abs_path(s: &str) -> Result<PathBuf, Expected> {
    if s.starts_with('/') && !s.contains(['\n', '\r']) {
        Ok(PathBuf::from(s))
    } else {
        Err("an absolute path (starting with '/')".into())
    }
}

/// A Linux network device name, as the kernel's `dev_valid_name` accepts
/// it: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn parse_ifname(s: &str) -> Result<String, Expected> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(s.to_string())
    } else {
        Err("a network device name (1-15 characters, no '/', ':' or spaces)".into())
    }
}

/// A 32-byte public key as `wg pubkey` prints it (44 characters of
/// canonical base64), so that one key has one spelling and comparing strings
/// compares keys. What the bytes mean is the trust module's business.
pub fn parse_public_key(s: &str) -> Result<PublicKey, Expected> {
    s.parse()
        .map_err(|_| "a 32-byte key in base64 (44 characters ending in '=', as `wg pubkey` prints)".into())
}

/// A WireGuard key of a node (trusted key, static peer): a key of small
/// order is refused, since the "secret" agreed with it is public.
pub fn parse_node_key(s: &str) -> Result<PublicKey, Expected> {
    let k = parse_public_key(s)?;
    if k.is_low_order() {
        return Err(
            "a WireGuard public key (this one is of small order: no secret can be agreed with it)".into()
        );
    }
    Ok(k)
}

/// The host part of an endpoint: an address, or a name the daemon resolves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Where a static peer listens: `host:port`, `192.0.2.1:51820` or
/// `[2001:db8::1]:51820`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}:{}", self.port),
            Host::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

impl FromStr for Endpoint {
    type Err = Expected;

    fn from_str(s: &str) -> Result<Endpoint, Expected> {
        let expected =
            |why: &str| format!("host:port, [IPv6]:port or a.b.c.d:port with a port from 1 to 65535 ({why})");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(|| expected("no ']:' after the IPv6 address"))?;
            let a: std::net::Ipv6Addr =
                h.parse().map_err(|_| expected("not an IPv6 address inside the brackets"))?;
            (Host::Ip(IpAddr::V6(a)), p)
        } else {
            let (h, p) = s.rsplit_once(':').ok_or_else(|| expected("no port"))?;
            if h.contains(':') {
                return Err(expected("an IPv6 address needs brackets"));
            }
            let host = match h.parse::<std::net::Ipv4Addr>() {
                Ok(a) => Host::Ip(IpAddr::V4(a)),
                Err(_) if valid_hostname(h) => Host::Name(h.to_ascii_lowercase()),
                Err(_) => return Err(expected("not an IPv4 address or a DNS name")),
            };
            (host, p)
        };
        let port = parse_uint(port, 1, 65535).map_err(|_| expected("bad port"))? as u16;
        Ok(Endpoint { host, port })
    }
}

/// A DNS name: dot-separated labels of letters, digits and `-`, 1 to 63
/// characters each, not starting or ending with `-`, 253 characters in all.
/// All-numeric names are refused (they are mistyped IPv4 addresses).
fn valid_hostname(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && !h.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Levenshtein distance, for "did you mean" hints on unknown names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `known` to `name`, if it is close enough to be a typo.
pub fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_openwrt_spells_them() {
        for t in ["1", "on", "true", "yes", "enabled"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "off", "false", "no", "disabled"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["", "2", "True", "YES", " 1", "enable", "y"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds_to_millis() {
        assert_eq!(parse_seconds_ms("4"), Some(4000));
        assert_eq!(parse_seconds_ms("0.5"), Some(500));
        assert_eq!(parse_seconds_ms("0.05"), Some(50));
        assert_eq!(parse_seconds_ms("1.234"), Some(1234));
        assert_eq!(parse_seconds_ms("007"), Some(7000));
        for bad in ["", ".5", "4.", "1.2345", "-1", "+1", "1e3", "4s", " 4", "1..2", "0x10"] {
            assert_eq!(parse_seconds_ms(bad), None, "{bad:?}");
        }
        assert_eq!(parse_seconds_ms("99999999999999999999"), None);
        assert_eq!(parse_seconds_ms("18446744073709552"), None, "overflow in *1000");
        assert_eq!(parse_seconds_ms("18446744073709551.615"), Some(u64::MAX));
        assert_eq!(parse_seconds_ms("18446744073709551.616"), None, "overflow in +ms");
    }

    #[test]
    fn intervals_fit_the_wire() {
        assert_eq!(parse_interval_ms("0.01"), Ok(10));
        assert_eq!(parse_interval_ms("655.35"), Ok(655_350));
        assert!(parse_interval_ms("0").is_err());
        assert!(parse_interval_ms("0.005").is_err(), "below a centisecond");
        assert!(parse_interval_ms("0.015").is_err(), "not a whole centisecond");
        assert!(parse_interval_ms("655.36").is_err());
    }

    #[test]
    fn durations_and_whole_seconds() {
        assert_eq!(parse_duration_ms("0", 60), Ok(0));
        assert_eq!(parse_duration_ms("60", 60), Ok(60_000));
        assert!(parse_duration_ms("60.001", 60).is_err());
        assert_eq!(parse_whole_seconds_ms("25", 65535), Ok(25_000));
        assert!(parse_whole_seconds_ms("2.5", 65535).is_err());
        assert!(parse_whole_seconds_ms("65536", 65535).is_err());
        assert!(parse_whole_seconds_ms("+5", 65535).is_err());
    }

    #[test]
    fn uints() {
        assert_eq!(parse_uint("5", 5, 10), Ok(5));
        assert!(parse_uint("4", 5, 10).is_err());
        assert!(parse_uint("+6", 5, 10).is_err());
        assert!(parse_uint("", 0, 10).is_err());
        assert!(parse_uint("99999999999999999999999", 0, u64::MAX).is_err());
    }

    #[test]
    fn paths() {
        assert!(parse_abs_path("/etc/weft").is_ok());
        assert!(parse_abs_path("etc/weft").is_err());
        assert!(parse_abs_path("/a\nb").is_err());
    }

    #[test]
    fn ifnames_like_the_kernel() {
        assert!(parse_ifname("mesh0").is_ok());
        assert!(parse_ifname("br-lan.100").is_ok());
        assert!(parse_ifname("123456789012345").is_ok());
        for bad in ["", ".", "..", "a/b", "a:1", "a b", "1234567890123456", "é"] {
            assert!(parse_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_round_trip_and_are_canonical() {
        let k = parse_public_key("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=").unwrap();
        assert_eq!(k.to_string(), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
        assert_eq!(k.0[0], 0x1c);
        let zero = PublicKey([0; 32]);
        assert_eq!(zero.to_string(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(parse_public_key(&zero.to_string()), Ok(zero));
        assert!(parse_node_key(&zero.to_string()).unwrap_err().contains("small order"));
        let ff = PublicKey([0xFF; 32]);
        assert_eq!(parse_public_key(&ff.to_string()), Ok(ff));
        for bad in [
            "",
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw", // no padding
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=", // low bits set
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk-=", // url-safe alphabet
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw==", // 45 chars
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", // 31 bytes
        ] {
            assert!(parse_public_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        let e: Endpoint = "vpn.example.org:51820".parse().unwrap();
        assert_eq!(e.host, Host::Name("vpn.example.org".into()));
        assert_eq!(e.port, 51820);
        let e: Endpoint = "192.0.2.1:1".parse().unwrap();
        assert_eq!(e.to_string(), "192.0.2.1:1");
        let e: Endpoint = "[2001:db8::1]:51820".parse().unwrap();
        assert_eq!(e.to_string(), "[2001:db8::1]:51820");
        assert_eq!("Host.Example:5".parse::<Endpoint>().unwrap().to_string(), "host.example:5");
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "2001:db8::1:51820",
            "[2001:db8::1]51820",
            "[nothex]:1",
            "-bad.example:1",
            "a..b:1",
            "1.2.3:5",
            "a b:1",
        ] {
            let err = bad.parse::<Endpoint>();
            assert!(err.is_err(), "{bad:?} parsed as {err:?}");
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["hello_interval", "update_interval", "ifname"];
        assert_eq!(suggest("helo_interval", &known), Some("hello_interval"));
        assert_eq!(suggest("ifnam", &known), Some("ifname"));
        assert_eq!(suggest("colour", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
