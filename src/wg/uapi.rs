//! The cross-platform WireGuard configuration protocol ("UAPI") as text.
//!
//! Pure encoding and decoding only; [`super::uapi_socket`] does the socket IO.
//! A `get=1` request is answered by `key=value` lines (device keys first, then
//! one block per peer starting at `public_key=`) and `errno=N`; a `set=1`
//! request carries the same kind of lines and is answered by `errno=N` alone.
//! Both end with an empty line. Keys are lower-case hex.
//!
//! Implementations differ: boringtun reports `last_handshake_time_sec` as
//! seconds *ago*, cannot modify an existing peer in place (remove and re-add
//! it instead) and refuses scoped IPv6 endpoints. [`Quirks`] carries those.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::model::{apply, AllowedIp, Device, DeviceUpdate, Key, PeerState, PeerUpdate, PrivateKey};

/// Behaviour that differs between userspace implementations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `last_handshake_time_sec` is seconds since the handshake, not since the epoch.
    pub handshake_is_seconds_ago: bool,
    /// A `set` that modifies an existing peer crashes it: remove and re-add.
    pub readd_to_modify: bool,
    /// Endpoints with an IPv6 scope (`[fe80::1%3]:51820`) are refused.
    pub no_scoped_endpoints: bool,
    /// `get` prints link-local endpoints without their scope although the
    /// implementation uses it (wireguard-go 0.0.20220316, Debian 12): the
    /// backend restores the scope it set, see [`Written`].
    pub scope_not_reported: bool,
    /// `get` prints `own_public_key=` instead of `private_key=` (boringtun):
    /// the backend restores the private key it set, see [`Written`].
    pub private_key_not_reported: bool,
}

impl Quirks {
    /// wireguard-go: the reference behaviour.
    pub const WIREGUARD_GO: Quirks = Quirks {
        handshake_is_seconds_ago: false,
        readd_to_modify: false,
        no_scoped_endpoints: false,
        scope_not_reported: true,
        private_key_not_reported: false,
    };
    /// boringtun-cli 0.7.
    pub const BORINGTUN: Quirks = Quirks {
        handshake_is_seconds_ago: true,
        readd_to_modify: true,
        no_scoped_endpoints: true,
        scope_not_reported: false,
        private_key_not_reported: true,
    };
}

/// What is wrong with a UAPI exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UapiError {
    /// The implementation refused the request (`errno=N`, N positive).
    Errno(i32),
    /// A line of the answer could not be understood (1-based line number).
    BadLine { line: usize, text: String, why: String },
    /// The answer ended without an `errno=` line.
    NoErrno,
    /// A peer attribute came before any `public_key=`.
    PeerKeyOutsidePeer { line: usize },
    /// An endpoint names its IPv6 scope by an interface we could not resolve.
    UnknownScope(String),
    /// The update needs something this implementation cannot do.
    Unsupported(String),
}

impl fmt::Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UapiError::Errno(e) => write!(
                f,
                "WireGuard implementation answered errno={e} ({})",
                std::io::Error::from_raw_os_error(*e)
            ),
            UapiError::BadLine { line, text, why } => {
                write!(f, "UAPI answer line {line} {text:?}: {why}")
            }
            UapiError::NoErrno => f.write_str("UAPI answer ended without errno="),
            UapiError::PeerKeyOutsidePeer { line } => {
                write!(f, "UAPI answer line {line}: peer attribute before public_key=")
            }
            UapiError::UnknownScope(s) => write!(f, "unknown IPv6 scope {s:?} in endpoint"),
            UapiError::Unsupported(s) => write!(f, "not supported by this implementation: {s}"),
        }
    }
}

impl std::error::Error for UapiError {}

/// The request that reads a device.
pub const GET_REQUEST: &str = "get=1\n\n";

/// Formats an endpoint as the UAPI wants it: `a.b.c.d:p` or `[v6%scope]:p`.
pub fn format_endpoint(e: &SocketAddr) -> String {
    match e {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) if a.scope_id() != 0 => {
            format!("[{}%{}]:{}", a.ip(), a.scope_id(), a.port())
        }
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// Parses `a.b.c.d:p`, `[v6]:p` or `[v6%zone]:p`. A numeric zone is the scope
/// id; a name (wireguard-go prints interface names for endpoints it learnt from
/// packets) goes through `resolve_zone`.
pub fn parse_endpoint(s: &str, resolve_zone: &dyn Fn(&str) -> Option<u32>) -> Result<SocketAddr, UapiError> {
    let bad = |why: &str| UapiError::BadLine { line: 0, text: s.to_string(), why: why.to_string() };
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(|| bad("expected [ADDR]:PORT"))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        let (addr, zone) = match host.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (host, None),
        };
        let ip: Ipv6Addr = addr.parse().map_err(|_| bad("bad IPv6 address"))?;
        let scope = match zone {
            None => 0,
            Some(z) if !z.is_empty() && z.bytes().all(|b| b.is_ascii_digit()) => {
                z.parse().map_err(|_| bad("bad scope id"))?
            }
            Some(z) => resolve_zone(z).ok_or_else(|| UapiError::UnknownScope(z.to_string()))?,
        };
        Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
    } else {
        let a: std::net::SocketAddrV4 = s.parse().map_err(|_| bad("expected ADDR:PORT"))?;
        Ok(SocketAddr::V4(a))
    }
}

/// Interface names used as IPv6 zones in endpoints of a `get` answer, so the
/// caller can resolve them before [`decode_get`].
pub fn zone_names(answer: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in answer.lines() {
        if let Some(v) = line.strip_prefix("endpoint=[") {
            if let Some((_, rest)) = v.split_once('%') {
                if let Some((z, _)) = rest.split_once(']') {
                    if !z.bytes().all(|b| b.is_ascii_digit()) && !out.iter().any(|o| o == z) {
                        out.push(z.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Encodes a `set=1` request (ending in the empty line).
pub fn encode_set(update: &DeviceUpdate, quirks: Quirks) -> Result<String, UapiError> {
    let mut s = String::from("set=1\n");
    if let Some(k) = update.private_key {
        let _ = writeln!(s, "private_key={}", k.0.to_hex());
    }
    if let Some(p) = update.listen_port {
        let _ = writeln!(s, "listen_port={p}");
    }
    if let Some(m) = update.fwmark {
        let _ = writeln!(s, "fwmark={m}");
    }
    if update.replace_peers {
        s.push_str("replace_peers=true\n");
    }
    for p in &update.peers {
        let _ = writeln!(s, "public_key={}", p.public_key.to_hex());
        if p.remove {
            s.push_str("remove=true\n");
            continue;
        }
        if p.update_only {
            s.push_str("update_only=true\n");
        }
        if let Some(e) = &p.endpoint {
            if quirks.no_scoped_endpoints {
                if let SocketAddr::V6(a) = e {
                    if a.scope_id() != 0 {
                        return Err(UapiError::Unsupported(format!(
                            "scoped endpoint {}",
                            format_endpoint(e)
                        )));
                    }
                }
            }
            let _ = writeln!(s, "endpoint={}", format_endpoint(e));
        }
        if let Some(k) = p.persistent_keepalive {
            let _ = writeln!(s, "persistent_keepalive_interval={k}");
        }
        if p.replace_allowed_ips {
            s.push_str("replace_allowed_ips=true\n");
        }
        for a in &p.allowed_ips {
            let _ = writeln!(s, "allowed_ip={a}");
        }
    }
    s.push('\n');
    Ok(s)
}

/// For implementations that cannot modify a peer in place: every change to an
/// existing peer becomes a removal followed by the peer's whole new state,
/// computed from `current` (a fresh `get`). Lost session state is the price.
///
/// Returns the requests to send in order: the removals first, on their own
/// (boringtun drops a peer that is removed and re-added in one request), then
/// everything else. A single request when no existing peer is modified.
pub fn readd_modified_peers(update: &DeviceUpdate, current: &Device) -> Vec<DeviceUpdate> {
    let after = apply(current, update);
    let mut removals = DeviceUpdate::default();
    let mut rest = DeviceUpdate { peers: Vec::new(), ..update.clone() };
    for p in &update.peers {
        let existed = !update.replace_peers && current.peer(&p.public_key).is_some();
        if p.remove || !existed {
            rest.peers.push(p.clone());
            continue;
        }
        if p.is_noop() {
            continue;
        }
        removals.peers.push(PeerUpdate::remove(p.public_key));
        if let Some(st) = after.peer(&p.public_key) {
            rest.peers.push(PeerUpdate {
                endpoint: st.endpoint,
                persistent_keepalive: Some(st.persistent_keepalive).filter(|&k| k != 0),
                allowed_ips: st.allowed_ips.clone(),
                ..PeerUpdate::new(p.public_key)
            });
        }
    }
    if removals.is_empty() {
        vec![rest]
    } else {
        vec![removals, rest]
    }
}

/// What a backend wrote to a device and the implementation does not report
/// back faithfully, to complete what `get` returns (see the `Quirks` fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub private_key: Option<PrivateKey>,
    pub endpoints: HashMap<Key, SocketAddr>,
}

impl Written {
    /// Keeps track of an update that the implementation accepted.
    pub fn remember(&mut self, update: &DeviceUpdate) {
        if let Some(k) = update.private_key {
            self.private_key = (!k.0.is_zero()).then_some(k);
        }
        if update.replace_peers {
            self.endpoints.clear();
        }
        for p in &update.peers {
            if p.remove {
                self.endpoints.remove(&p.public_key);
            } else if let Some(e) = p.endpoint {
                self.endpoints.insert(p.public_key, e);
            }
        }
    }

    /// Completes a decoded `get` answer.
    ///
    /// - A link-local endpoint without scope gets the scope we set it with,
    ///   when address and port are unchanged: a scope-less link-local endpoint
    ///   is unusable, so one the implementation really uses must be ours.
    /// - A missing private key is the one we set, when the device reports a
    ///   public key (so it has one).
    pub fn restore(&self, dev: &mut Device, quirks: Quirks) {
        if quirks.private_key_not_reported && dev.private_key.is_none() && dev.public_key.is_some() {
            dev.private_key = self.private_key.map(|k| k.clamped());
        }
        if !quirks.scope_not_reported {
            return;
        }
        for p in &mut dev.peers {
            if let (Some(SocketAddr::V6(got)), Some(SocketAddr::V6(ours))) =
                (p.endpoint, self.endpoints.get(&p.public_key))
            {
                if got.scope_id() == 0
                    && needs_scope(&IpAddr::V6(*got.ip()))
                    && got.ip() == ours.ip()
                    && got.port() == ours.port()
                {
                    p.endpoint = Some(SocketAddr::V6(*ours));
                }
            }
        }
    }
}

/// Reads `errno=N` from an answer; 0 is success. wireguard-go writes negative
/// values, others positive: the sign is dropped.
pub fn decode_errno(answer: &str) -> Result<(), UapiError> {
    for (i, line) in answer.lines().enumerate() {
        if let Some(v) = line.strip_prefix("errno=") {
            let n: i64 = v.trim().parse().map_err(|_| UapiError::BadLine {
                line: i + 1,
                text: line.to_string(),
                why: "errno is not a number".into(),
            })?;
            return match n.unsigned_abs() {
                0 => Ok(()),
                e => Err(UapiError::Errno(i32::try_from(e).unwrap_or(i32::MAX))),
            };
        }
    }
    Err(UapiError::NoErrno)
}

/// Decodes the answer to [`GET_REQUEST`]. `now` is used only with
/// [`Quirks::handshake_is_seconds_ago`]. Unknown keys are skipped (newer
/// implementations add some); malformed values are errors.
pub fn decode_get(
    answer: &str,
    quirks: Quirks,
    now: SystemTime,
    resolve_zone: &dyn Fn(&str) -> Option<u32>,
) -> Result<Device, UapiError> {
    let mut dev = Device::default();
    let mut peer: Option<PeerState> = None;
    let mut hs_sec: Option<u64> = None;
    let mut hs_nsec: u64 = 0;
    let mut errno_seen = false;

    fn finish(
        dev: &mut Device,
        peer: &mut Option<PeerState>,
        sec: &mut Option<u64>,
        nsec: &mut u64,
        quirks: Quirks,
        now: SystemTime,
    ) {
        if let Some(mut p) = peer.take() {
            p.last_handshake = match *sec {
                None => None,
                Some(0) if *nsec == 0 && !quirks.handshake_is_seconds_ago => None,
                Some(s) => {
                    let d = Duration::new(s, 0) + Duration::from_nanos(*nsec);
                    if quirks.handshake_is_seconds_ago {
                        now.checked_sub(d)
                    } else {
                        UNIX_EPOCH.checked_add(d)
                    }
                }
            };
            dev.peers.push(p);
        }
        *sec = None;
        *nsec = 0;
    }

    for (i, line) in answer.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            break;
        }
        let bad = |why: &str| UapiError::BadLine { line: n, text: line.to_string(), why: why.to_string() };
        let (k, v) = line.split_once('=').ok_or_else(|| bad("expected key=value"))?;
        let num = |why: &str| -> Result<u64, UapiError> { v.parse().map_err(|_| bad(why)) };
        match k {
            "errno" => {
                errno_seen = true;
                decode_errno(line).map_err(|e| match e {
                    UapiError::BadLine { why, .. } => bad(&why),
                    e => e,
                })?;
            }
            "private_key" => {
                let key = Key::from_hex(v).map_err(|e| bad(&e.to_string()))?;
                dev.private_key = (!key.is_zero()).then_some(PrivateKey(key));
            }
            "own_public_key" => {
                let key = Key::from_hex(v).map_err(|e| bad(&e.to_string()))?;
                dev.public_key = (!key.is_zero()).then_some(key);
            }
            "listen_port" => {
                dev.listen_port = u16::try_from(num("bad port")?).map_err(|_| bad("bad port"))?
            }
            "fwmark" => dev.fwmark = u32::try_from(num("bad fwmark")?).map_err(|_| bad("bad fwmark"))?,
            "public_key" => {
                finish(&mut dev, &mut peer, &mut hs_sec, &mut hs_nsec, quirks, now);
                let key = Key::from_hex(v).map_err(|e| bad(&e.to_string()))?;
                peer = Some(PeerState::new(key));
            }
            _ => {
                let Some(p) = peer.as_mut() else {
                    // Unknown device-level keys are skipped like unknown peer keys.
                    if PEER_KEYS.contains(&k) {
                        return Err(UapiError::PeerKeyOutsidePeer { line: n });
                    }
                    continue;
                };
                match k {
                    "endpoint" => {
                        p.endpoint = Some(parse_endpoint(v, resolve_zone).map_err(|e| match e {
                            UapiError::BadLine { why, .. } => bad(&why),
                            e => e,
                        })?)
                    }
                    "allowed_ip" => {
                        p.allowed_ips.push(v.parse::<AllowedIp>().map_err(|e| bad(&e.to_string()))?)
                    }
                    "persistent_keepalive_interval" => {
                        p.persistent_keepalive =
                            u16::try_from(num("bad interval")?).map_err(|_| bad("bad interval"))?
                    }
                    "rx_bytes" => p.rx_bytes = num("bad counter")?,
                    "tx_bytes" => p.tx_bytes = num("bad counter")?,
                    "last_handshake_time_sec" => hs_sec = Some(num("bad time")?),
                    "last_handshake_time_nsec" => {
                        hs_nsec = num("bad time")?;
                        if hs_nsec >= 1_000_000_000 {
                            return Err(bad("nanoseconds out of range"));
                        }
                    }
                    _ => {} // preshared_key, protocol_version, future keys
                }
            }
        }
    }
    finish(&mut dev, &mut peer, &mut hs_sec, &mut hs_nsec, quirks, now);
    if !errno_seen {
        return Err(UapiError::NoErrno);
    }
    Ok(dev)
}

const PEER_KEYS: &[&str] = &[
    "endpoint",
    "allowed_ip",
    "persistent_keepalive_interval",
    "rx_bytes",
    "tx_bytes",
    "last_handshake_time_sec",
    "last_handshake_time_nsec",
    "preshared_key",
    "protocol_version",
];

/// Resolver for answers that are expected to carry numeric scopes only.
pub fn no_zone_names(_: &str) -> Option<u32> {
    None
}

/// Builds a resolver from a name → ifindex map (read by the caller from the
/// implementation's network namespace).
pub fn zone_map(map: HashMap<String, u32>) -> impl Fn(&str) -> Option<u32> {
    move |z| map.get(z).copied()
}

/// True when `addr` is an IPv6 link-local address, which needs a scope.
pub fn needs_scope(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::model::{DeviceConfig, PeerConfig};

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    // A real answer of wireguard-go 0.0.20220316 (keys replaced), with one
    // learnt endpoint given by interface name and one unknown key.
    const GO_ANSWER: &str = "private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a\n\
listen_port=51820\n\
fwmark=7\n\
public_key=0101010101010101010101010101010101010101010101010101010101010101\n\
preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n\
protocol_version=1\n\
endpoint=[fe80::2%3]:51821\n\
last_handshake_time_sec=1700000000\n\
last_handshake_time_nsec=500\n\
tx_bytes=1000\n\
rx_bytes=2000\n\
persistent_keepalive_interval=25\n\
allowed_ip=::/0\n\
allowed_ip=0.0.0.0/0\n\
future_key=whatever\n\
public_key=0202020202020202020202020202020202020202020202020202020202020202\n\
endpoint=[fe80::3%vethB]:51820\n\
last_handshake_time_sec=0\n\
last_handshake_time_nsec=0\n\
tx_bytes=0\n\
rx_bytes=0\n\
persistent_keepalive_interval=0\n\
errno=0\n\n";

    #[test]
    fn decodes_a_wireguard_go_answer() {
        let names = zone_names(GO_ANSWER);
        assert_eq!(names, vec!["vethB".to_string()]);
        let resolve = zone_map(HashMap::from([("vethB".to_string(), 9)]));
        let d = decode_get(GO_ANSWER, Quirks::WIREGUARD_GO, at(0), &resolve).unwrap();
        assert_eq!(
            d.private_key.unwrap().0.to_hex(),
            "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a"
        );
        assert_eq!((d.listen_port, d.fwmark), (51820, 7));
        assert_eq!(d.peers.len(), 2);
        let p = &d.peers[0];
        assert_eq!(p.public_key, key(1));
        assert_eq!(p.endpoint, Some("[fe80::2%3]:51821".parse().unwrap()));
        assert_eq!(p.last_handshake, Some(at(1_700_000_000) + Duration::from_nanos(500)));
        assert_eq!((p.tx_bytes, p.rx_bytes, p.persistent_keepalive), (1000, 2000, 25));
        assert_eq!(p.allowed_ips, vec![AllowedIp::any_v6(), AllowedIp::any_v4()]);
        let q = &d.peers[1];
        assert_eq!(q.last_handshake, None, "0/0 means never");
        match q.endpoint {
            Some(SocketAddr::V6(a)) => assert_eq!(a.scope_id(), 9),
            other => panic!("endpoint {other:?}"),
        }
        assert_eq!(
            decode_get(GO_ANSWER, Quirks::WIREGUARD_GO, at(0), &no_zone_names),
            Err(UapiError::UnknownScope("vethB".into()))
        );
    }

    #[test]
    fn what_the_implementation_does_not_report_is_restored() {
        let mut w = Written::default();
        let mut up = DeviceUpdate { private_key: Some(PrivateKey(key(0x42))), ..Default::default() };
        let mut p = PeerUpdate::new(key(1));
        p.endpoint = Some("[fe80::b%7]:51821".parse().unwrap());
        up.peers.push(p);
        let mut q = PeerUpdate::new(key(2));
        q.endpoint = Some("[fe80::c%7]:51821".parse().unwrap());
        up.peers.push(q);
        w.remember(&up);
        let text = "own_public_key=0909090909090909090909090909090909090909090909090909090909090909\n\
public_key=0101010101010101010101010101010101010101010101010101010101010101\n\
endpoint=[fe80::b]:51821\n\
public_key=0202020202020202020202020202020202020202020202020202020202020202\n\
endpoint=[fe80::d]:51821\n\
errno=0\n\n";
        let mut d = decode_get(text, Quirks::WIREGUARD_GO, at(0), &no_zone_names).unwrap();
        assert_eq!(d.public_key, Some(key(9)));
        let plain = d.clone();
        w.restore(&mut d, Quirks::WIREGUARD_GO);
        assert_eq!(d.peers[0].endpoint, Some("[fe80::b%7]:51821".parse().unwrap()));
        assert_eq!(
            d.peers[1].endpoint,
            Some("[fe80::d]:51821".parse().unwrap()),
            "a roamed endpoint is not ours to fix"
        );
        assert_eq!(d.private_key, None, "wireguard-go reports its key itself");
        let mut b = plain.clone();
        w.restore(&mut b, Quirks::BORINGTUN);
        assert_eq!(b.private_key, Some(PrivateKey(key(0x42)).clamped()));
        assert_eq!(b.peers, plain.peers, "boringtun has no scopes to restore");
        w.remember(&DeviceUpdate { replace_peers: true, ..Default::default() });
        assert!(w.endpoints.is_empty() && w.private_key.is_some());
    }

    #[test]
    fn boringtun_handshake_is_seconds_ago() {
        let a = "public_key=0101010101010101010101010101010101010101010101010101010101010101\n\
last_handshake_time_sec=5\n\
last_handshake_time_nsec=0\n\
errno=0\n\n";
        let now = at(1_000_000);
        let d = decode_get(a, Quirks::BORINGTUN, now, &no_zone_names).unwrap();
        assert_eq!(d.peers[0].last_handshake, Some(at(1_000_000 - 5)));
        // The same text read as wireguard-go: 5 s after the epoch.
        let d = decode_get(a, Quirks::WIREGUARD_GO, now, &no_zone_names).unwrap();
        assert_eq!(d.peers[0].last_handshake, Some(at(5)));
        // boringtun omits the line when there was no handshake.
        let b = "public_key=0101010101010101010101010101010101010101010101010101010101010101\n\
errno=0\n\n";
        let d = decode_get(b, Quirks::BORINGTUN, now, &no_zone_names).unwrap();
        assert_eq!(d.peers[0].last_handshake, None);
    }

    #[test]
    fn errno_handling() {
        assert_eq!(decode_errno("errno=0\n\n"), Ok(()));
        assert_eq!(decode_errno("errno=-22\n\n"), Err(UapiError::Errno(22)));
        assert_eq!(decode_errno("errno=1\n\n"), Err(UapiError::Errno(1)));
        assert_eq!(decode_errno("\n"), Err(UapiError::NoErrno));
        assert!(matches!(decode_errno("errno=x\n"), Err(UapiError::BadLine { line: 1, .. })));
        assert_eq!(
            decode_get("listen_port=1\nerrno=-2\n\n", Quirks::default(), at(0), &no_zone_names),
            Err(UapiError::Errno(2))
        );
        assert_eq!(
            decode_get("listen_port=1\n\n", Quirks::default(), at(0), &no_zone_names),
            Err(UapiError::NoErrno),
            "a truncated answer is not an empty device"
        );
        let msg = UapiError::Errno(22).to_string();
        assert!(msg.contains("errno=22"), "{msg}");
    }

    #[test]
    fn bad_answers_name_the_line() {
        let cases = [
            ("listen_port=70000\nerrno=0\n", 1),
            ("private_key=abc\nerrno=0\n", 1),
            ("listen_port=1\nnonsense\nerrno=0\n", 2),
            (
                "public_key=0101010101010101010101010101010101010101010101010101010101010101\nallowed_ip=10.0.0.0/40\nerrno=0\n",
                2,
            ),
            (
                "public_key=0101010101010101010101010101010101010101010101010101010101010101\nendpoint=[fe80::1:51820\nerrno=0\n",
                2,
            ),
            (
                "public_key=0101010101010101010101010101010101010101010101010101010101010101\nlast_handshake_time_nsec=1000000000\nerrno=0\n",
                2,
            ),
        ];
        for (text, want) in cases {
            match decode_get(text, Quirks::default(), at(0), &no_zone_names) {
                Err(UapiError::BadLine { line, .. }) => assert_eq!(line, want, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(
            decode_get("allowed_ip=::/0\nerrno=0\n", Quirks::default(), at(0), &no_zone_names),
            Err(UapiError::PeerKeyOutsidePeer { line: 1 })
        );
    }

    #[test]
    fn endpoints_both_ways() {
        for s in ["192.0.2.1:51820", "[2001:db8::1]:1", "[fe80::1%3]:51820"] {
            let e = parse_endpoint(s, &no_zone_names).unwrap();
            assert_eq!(format_endpoint(&e), s);
        }
        let e = parse_endpoint("[fe80::1%eth0]:7", &|z| (z == "eth0").then_some(4)).unwrap();
        assert_eq!(format_endpoint(&e), "[fe80::1%4]:7");
        assert!(parse_endpoint("[fe80::1%3]", &no_zone_names).is_err());
        assert!(parse_endpoint("fe80::1:7", &no_zone_names).is_err());
        assert!(needs_scope(&"fe80::1".parse().unwrap()));
        assert!(!needs_scope(&"fd00::1".parse().unwrap()));
    }

    #[test]
    fn encodes_every_field_in_protocol_order() {
        let mut p = PeerUpdate::new(key(1));
        p.update_only = true;
        p.endpoint = Some("[fe80::1%3]:51820".parse().unwrap());
        p.persistent_keepalive = Some(0);
        p.replace_allowed_ips = true;
        p.allowed_ips = vec![AllowedIp::any_v6(), "10.0.0.0/8".parse().unwrap()];
        let up = DeviceUpdate {
            private_key: Some(PrivateKey(key(0xab))),
            listen_port: Some(51820),
            fwmark: Some(0),
            replace_peers: true,
            peers: vec![PeerUpdate::remove(key(2)), p],
        };
        let text = encode_set(&up, Quirks::WIREGUARD_GO).unwrap();
        let want = format!(
            "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n\
public_key={}\nremove=true\n\
public_key={}\nupdate_only=true\nendpoint=[fe80::1%3]:51820\npersistent_keepalive_interval=0\n\
replace_allowed_ips=true\nallowed_ip=::/0\nallowed_ip=10.0.0.0/8\n\n",
            "ab".repeat(32),
            "02".repeat(32),
            "01".repeat(32)
        );
        assert_eq!(text, want);
        assert_eq!(encode_set(&DeviceUpdate::default(), Quirks::default()).unwrap(), "set=1\n\n");
        assert!(matches!(encode_set(&up, Quirks::BORINGTUN), Err(UapiError::Unsupported(_))));
    }

    #[test]
    fn set_then_get_round_trips_through_text() {
        // What we set, read back as an implementation would print it.
        let cfg = DeviceConfig {
            private_key: PrivateKey(key(9)),
            listen_port: Some(1234),
            fwmark: Some(5),
            peers: vec![PeerConfig {
                public_key: key(1),
                endpoint: Some("192.0.2.7:99".parse().unwrap()),
                allowed_ips: vec!["10.1.0.0/16".parse().unwrap()],
                persistent_keepalive: Some(10),
            }],
        };
        let d = apply(&Device::default(), &DeviceUpdate::replace_all(&cfg));
        let mut text = format!(
            "private_key={}\nlisten_port={}\nfwmark={}\n",
            d.private_key.unwrap().0.to_hex(),
            d.listen_port,
            d.fwmark
        );
        for p in &d.peers {
            text += &format!(
                "public_key={}\nendpoint={}\npersistent_keepalive_interval={}\n",
                p.public_key.to_hex(),
                format_endpoint(&p.endpoint.unwrap()),
                p.persistent_keepalive
            );
            for a in &p.allowed_ips {
                text += &format!("allowed_ip={a}\n");
            }
        }
        text += "errno=0\n\n";
        let back = decode_get(&text, Quirks::default(), at(0), &no_zone_names).unwrap();
        assert_eq!(back, d);
        assert!(crate::wg::model::reconcile(&cfg, &back).is_empty());
    }

    #[test]
    fn boringtun_modifications_become_remove_and_readd() {
        let cfg = DeviceConfig {
            private_key: PrivateKey(key(9)),
            listen_port: None,
            fwmark: None,
            peers: vec![
                PeerConfig {
                    public_key: key(1),
                    endpoint: Some("192.0.2.7:99".parse().unwrap()),
                    allowed_ips: vec!["10.1.0.0/16".parse().unwrap()],
                    persistent_keepalive: Some(10),
                },
                PeerConfig::new(key(2)),
            ],
        };
        let current = apply(&Device::default(), &DeviceUpdate::replace_all(&cfg));
        let mut change = PeerUpdate::new(key(1));
        change.update_only = true;
        change.persistent_keepalive = Some(0);
        let added = PeerConfig::new(key(3));
        let up = DeviceUpdate {
            peers: vec![change, PeerUpdate::remove(key(2)), PeerUpdate::add(&added)],
            ..Default::default()
        };
        let r = readd_modified_peers(&up, &current);
        let mut readd = PeerUpdate::new(key(1));
        readd.endpoint = cfg.peers[0].endpoint;
        readd.allowed_ips = cfg.peers[0].allowed_ips.clone();
        assert_eq!(r.len(), 2, "removals go in a request of their own");
        assert_eq!(r[0].peers, vec![PeerUpdate::remove(key(1))]);
        assert_eq!(r[1].peers, vec![readd, PeerUpdate::remove(key(2)), PeerUpdate::add(&added)]);
        let stepwise = r.iter().fold(current.clone(), |d, u| apply(&d, u));
        // Both reach the same device.
        let mut a = stepwise.peers;
        let mut b = apply(&current, &up).peers;
        a.sort_by_key(|p| p.public_key);
        b.sort_by_key(|p| p.public_key);
        assert_eq!(a, b);
        // Nothing modified: one request, unchanged.
        let only_add = DeviceUpdate { peers: vec![PeerUpdate::add(&added)], ..Default::default() };
        assert_eq!(readd_modified_peers(&only_add, &current), vec![only_add]);
    }
}
