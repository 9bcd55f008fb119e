//! WireGuard desired state, actual state, and the minimal update between them.
//!
//! Pure: no IO, no clock. [`reconcile`] compares what a device should look like
//! ([`DeviceConfig`]) with what a backend read back ([`Device`]) and produces a
//! [`DeviceUpdate`], the same shape every backend (kernel generic netlink, the
//! cross-platform UAPI, the in-memory fake) knows how to apply. [`apply`] is the
//! reference semantics of such an update (what the kernel and wireguard-go do),
//! used by the fake backend and by the property tests of [`reconcile`].
//!
//! Keys are the crate's one key type ([`crate::key::PublicKey`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::SystemTime;

/// Length of every WireGuard key (Curve25519 point or scalar).
pub const KEY_LEN: usize = 32;

/// Why a key or allowed-IP string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not `ADDRESS/PREFIXLEN`, or the prefix is longer than the family allows.
    AllowedIp(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::AllowedIp(s) => write!(f, "not an allowed IP (ADDRESS/PREFIXLEN): {s:?}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A WireGuard public key: the crate's one 32-byte key type, under the
/// name WireGuard's own tools give it.
pub use crate::key::PublicKey as Key;

/// A private key: same bytes as [`Key`], but never printed by `Debug`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrivateKey(pub Key);

impl PrivateKey {
    /// The Curve25519-clamped form, which is what the kernel and wireguard-go
    /// store and report back (`wg genkey` output is already clamped).
    pub fn clamped(&self) -> PrivateKey {
        let mut k = self.0 .0;
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        PrivateKey(Key(k))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// One allowed-IP entry: the prefix a peer may send from and is routed to.
///
/// Construction masks the host bits, because the kernel and wireguard-go store
/// `10.1.2.3/24` as `10.1.2.0/24`; comparing masked values keeps [`reconcile`]
/// from seeing a difference that is not there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllowedIp {
    addr: IpAddr,
    cidr: u8,
}

impl AllowedIp {
    /// `None` when `cidr` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, cidr: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if cidr <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(cidr)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if cidr <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(cidr)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(AllowedIp { addr, cidr })
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn cidr(&self) -> u8 {
        self.cidr
    }

    /// `0.0.0.0/0`.
    pub fn any_v4() -> Self {
        AllowedIp { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), cidr: 0 }
    }

    /// `::/0`.
    pub fn any_v6() -> Self {
        AllowedIp { addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED), cidr: 0 }
    }
}

impl FromStr for AllowedIp {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::AllowedIp(s.to_string());
        let (a, c) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let cidr: u8 = c.parse().map_err(|_| bad())?;
        AllowedIp::new(addr, cidr).ok_or_else(bad)
    }
}

impl fmt::Display for AllowedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.cidr)
    }
}

impl fmt::Debug for AllowedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What one peer should look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: Key,
    /// `None` leaves whatever endpoint the device learnt (roaming) alone.
    /// IPv6 link-local endpoints carry their interface in the scope id.
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<AllowedIp>,
    /// Seconds; `None` and `Some(0)` both mean off.
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with no endpoint, no allowed IPs and no keepalive.
    pub fn new(public_key: Key) -> Self {
        PeerConfig { public_key, endpoint: None, allowed_ips: Vec::new(), persistent_keepalive: None }
    }
}

/// What a WireGuard device should look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub private_key: PrivateKey,
    /// `None` lets the device pick (and keep) a port.
    pub listen_port: Option<u16>,
    /// `None` and `Some(0)` both mean no mark.
    pub fwmark: Option<u32>,
    pub peers: Vec<PeerConfig>,
}

/// Why a [`DeviceConfig`] cannot be realised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The same public key appears twice.
    DuplicatePeer(Key),
    /// WireGuard routes an allowed IP to exactly one peer per device.
    AllowedIpOnTwoPeers(AllowedIp),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::DuplicatePeer(k) => write!(f, "peer {k} is listed twice"),
            ConfigError::AllowedIpOnTwoPeers(a) => {
                write!(f, "allowed IP {a} is given to two peers")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl DeviceConfig {
    /// Refuses what a device cannot hold: a peer twice, or a prefix on two
    /// peers (the device would silently keep only the last).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut keys = HashSet::new();
        let mut ips = HashSet::new();
        for p in &self.peers {
            if !keys.insert(p.public_key) {
                return Err(ConfigError::DuplicatePeer(p.public_key));
            }
            let mut own = HashSet::new();
            for a in &p.allowed_ips {
                if own.insert(*a) && !ips.insert(*a) {
                    return Err(ConfigError::AllowedIpOnTwoPeers(*a));
                }
            }
        }
        Ok(())
    }
}

/// One peer as read back from a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub public_key: Key,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<AllowedIp>,
    /// Seconds, 0 = off.
    pub persistent_keepalive: u16,
    /// `None` until the first handshake completes.
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl PeerState {
    /// A peer that was just added: nothing set, nothing counted.
    pub fn new(public_key: Key) -> Self {
        PeerState {
            public_key,
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: 0,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }
}

/// A device as read back from a backend.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Device {
    /// `None` when the device has no private key yet.
    pub private_key: Option<PrivateKey>,
    /// Only the kernel reports it; the UAPI does not.
    pub public_key: Option<Key>,
    /// 0 until a port is bound.
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerState>,
}

impl Device {
    /// The peer with this key, if any.
    pub fn peer(&self, key: &Key) -> Option<&PeerState> {
        self.peers.iter().find(|p| p.public_key == *key)
    }
}

/// A change to one peer. Fields left `None`/empty are not touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUpdate {
    pub public_key: Key,
    /// Remove the peer; every other field is ignored.
    pub remove: bool,
    /// Only change the peer if it exists (never create it half-configured).
    pub update_only: bool,
    pub endpoint: Option<SocketAddr>,
    /// `Some(0)` turns keepalive off.
    pub persistent_keepalive: Option<u16>,
    /// Drop all allowed IPs before adding `allowed_ips`.
    pub replace_allowed_ips: bool,
    /// Added (WireGuard has no per-prefix removal on the kernels we target).
    pub allowed_ips: Vec<AllowedIp>,
}

impl PeerUpdate {
    /// An update of `key` that changes nothing yet.
    pub fn new(public_key: Key) -> Self {
        PeerUpdate {
            public_key,
            remove: false,
            update_only: false,
            endpoint: None,
            persistent_keepalive: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }

    /// Removal of `key`.
    pub fn remove(public_key: Key) -> Self {
        PeerUpdate { remove: true, ..PeerUpdate::new(public_key) }
    }

    /// Creation of a peer with its whole configuration.
    pub fn add(p: &PeerConfig) -> Self {
        PeerUpdate {
            endpoint: p.endpoint,
            persistent_keepalive: p.persistent_keepalive.filter(|&k| k != 0),
            allowed_ips: dedup(&p.allowed_ips),
            ..PeerUpdate::new(p.public_key)
        }
    }

    /// True when this update would not change an existing peer.
    pub fn is_noop(&self) -> bool {
        !self.remove
            && self.endpoint.is_none()
            && self.persistent_keepalive.is_none()
            && !self.replace_allowed_ips
            && self.allowed_ips.is_empty()
    }
}

/// A change to a device, applied in one go by a backend (which may split it
/// into several messages).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceUpdate {
    pub private_key: Option<PrivateKey>,
    pub listen_port: Option<u16>,
    /// `Some(0)` clears the mark.
    pub fwmark: Option<u32>,
    /// Remove every peer before applying `peers`.
    pub replace_peers: bool,
    pub peers: Vec<PeerUpdate>,
}

impl DeviceUpdate {
    /// True when applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.private_key.is_none()
            && self.listen_port.is_none()
            && self.fwmark.is_none()
            && !self.replace_peers
            && self.peers.is_empty()
    }

    /// The whole configuration, replacing whatever the device has.
    pub fn replace_all(cfg: &DeviceConfig) -> Self {
        DeviceUpdate {
            private_key: Some(cfg.private_key),
            listen_port: cfg.listen_port,
            fwmark: Some(cfg.fwmark.unwrap_or(0)),
            replace_peers: true,
            peers: cfg.peers.iter().map(PeerUpdate::add).collect(),
        }
    }
}

fn dedup(ips: &[AllowedIp]) -> Vec<AllowedIp> {
    let mut seen = HashSet::new();
    ips.iter().copied().filter(|a| seen.insert(*a)).collect()
}

/// The smallest update that turns `actual` into `desired`.
///
/// - Device fields are sent only when they differ.
/// - Peers that must go are removed one by one, so peers that stay keep their
///   sessions; `replace_peers` is used only when no current peer is kept (one
///   flag instead of N removals, and no session is lost by it).
/// - New peers are added whole; kept peers get an `update_only` change with just
///   the fields that differ: the endpoint (only when the desired one is set),
///   keepalive, and allowed IPs, which are only added when the current set is a
///   subset of the desired one, and otherwise replaced.
///
/// `desired` should pass [`DeviceConfig::validate`]; otherwise the result is
/// still well-formed but the device cannot end up equal to `desired`.
pub fn reconcile(desired: &DeviceConfig, actual: &Device) -> DeviceUpdate {
    let mut up = DeviceUpdate::default();
    // Compared clamped: an unclamped configured key reads back clamped.
    if actual.private_key.map(|k| k.clamped()) != Some(desired.private_key.clamped()) {
        up.private_key = Some(desired.private_key);
    }
    if let Some(p) = desired.listen_port {
        if p != actual.listen_port {
            up.listen_port = Some(p);
        }
    }
    let mark = desired.fwmark.unwrap_or(0);
    if mark != actual.fwmark {
        up.fwmark = Some(mark);
    }

    let wanted: HashSet<Key> = desired.peers.iter().map(|p| p.public_key).collect();
    let stale: Vec<Key> = actual.peers.iter().map(|p| p.public_key).filter(|k| !wanted.contains(k)).collect();
    let kept = actual.peers.len() - stale.len();
    if kept == 0 && !stale.is_empty() {
        up.replace_peers = true;
        up.peers = desired.peers.iter().map(PeerUpdate::add).collect();
        return up;
    }
    up.peers.extend(stale.into_iter().map(PeerUpdate::remove));
    for want in &desired.peers {
        match actual.peer(&want.public_key) {
            None => up.peers.push(PeerUpdate::add(want)),
            Some(have) => {
                let change = peer_change(want, have);
                if !change.is_noop() {
                    up.peers.push(change);
                }
            }
        }
    }
    up
}

fn peer_change(want: &PeerConfig, have: &PeerState) -> PeerUpdate {
    let mut c = PeerUpdate { update_only: true, ..PeerUpdate::new(want.public_key) };
    if let Some(e) = want.endpoint {
        if have.endpoint != Some(e) {
            c.endpoint = Some(e);
        }
    }
    let ka = want.persistent_keepalive.unwrap_or(0);
    if ka != have.persistent_keepalive {
        c.persistent_keepalive = Some(ka);
    }
    let want_ips = dedup(&want.allowed_ips);
    let want_set: HashSet<AllowedIp> = want_ips.iter().copied().collect();
    let have_set: HashSet<AllowedIp> = have.allowed_ips.iter().copied().collect();
    if want_set != have_set {
        if have_set.is_subset(&want_set) {
            c.allowed_ips = want_ips.into_iter().filter(|a| !have_set.contains(a)).collect();
        } else {
            c.replace_allowed_ips = true;
            c.allowed_ips = want_ips;
        }
    }
    c
}

/// What a device looks like after `update` (the kernel's and wireguard-go's
/// semantics, including that an allowed IP added to one peer leaves any other).
/// Counters and handshake times of surviving peers are kept; the public key is
/// left as it was (deriving it needs Curve25519, which this module avoids).
pub fn apply(actual: &Device, update: &DeviceUpdate) -> Device {
    let mut d = actual.clone();
    if let Some(k) = update.private_key {
        d.private_key = if k.0.is_zero() { None } else { Some(k.clamped()) };
        if d.private_key.is_none() {
            d.public_key = None;
        }
    }
    if let Some(p) = update.listen_port {
        d.listen_port = p;
    }
    if let Some(m) = update.fwmark {
        d.fwmark = m;
    }
    if update.replace_peers {
        d.peers.clear();
    }
    for pu in &update.peers {
        let pos = d.peers.iter().position(|p| p.public_key == pu.public_key);
        if pu.remove {
            if let Some(i) = pos {
                d.peers.remove(i);
            }
            continue;
        }
        let i = match pos {
            Some(i) => i,
            None if pu.update_only => continue,
            None => {
                d.peers.push(PeerState::new(pu.public_key));
                d.peers.len() - 1
            }
        };
        let p = &mut d.peers[i];
        if let Some(e) = pu.endpoint {
            p.endpoint = Some(e);
        }
        if let Some(k) = pu.persistent_keepalive {
            p.persistent_keepalive = k;
        }
        if pu.replace_allowed_ips {
            p.allowed_ips.clear();
        }
        for a in &pu.allowed_ips {
            if !d.peers[i].allowed_ips.contains(a) {
                d.peers[i].allowed_ips.push(*a);
            }
            for (j, other) in d.peers.iter_mut().enumerate() {
                if j != i {
                    other.allowed_ips.retain(|x| x != a);
                }
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::SocketAddrV6;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    fn ip(s: &str) -> AllowedIp {
        s.parse().unwrap()
    }

    fn cfg(peers: Vec<PeerConfig>) -> DeviceConfig {
        DeviceConfig { private_key: PrivateKey(key(200)), listen_port: Some(51820), fwmark: None, peers }
    }

    fn peer(n: u8, ips: &[&str]) -> PeerConfig {
        PeerConfig {
            public_key: key(n),
            endpoint: Some(SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 51820, 0, 3))),
            allowed_ips: ips.iter().map(|s| ip(s)).collect(),
            persistent_keepalive: Some(25),
        }
    }

    fn realised(c: &DeviceConfig) -> Device {
        apply(&Device::default(), &DeviceUpdate::replace_all(c))
    }

    #[test]
    fn key_hex_and_base64_round_trip() {
        // `wg pubkey` of a known private key, as printed by wireguard-tools.
        let b64 = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
        let k = Key::from_base64(b64).unwrap();
        assert_eq!(k.to_base64(), b64);
        assert_eq!(Key::from_hex(&k.to_hex()).unwrap(), k);
        assert_eq!(k.to_hex(), "1c8828f7137324c58b2804928624ea2326f1674537c062e251e2753ca7fcca4c");
        assert!(Key::from_hex("00").is_err());
        assert!(Key::from_hex(&"g".repeat(64)).is_err());
        assert!(Key::from_base64("HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=").is_err());
        assert!(Key::from_base64("short=").is_err());
        assert_eq!(
            format!("{:?}", PrivateKey(k)),
            "PrivateKey(<redacted>)",
            "private keys never appear in logs"
        );
    }

    #[test]
    fn allowed_ip_masks_and_checks_prefix() {
        assert_eq!(ip("10.1.2.3/24").to_string(), "10.1.2.0/24");
        assert_eq!(ip("fd00::1:2/112").to_string(), "fd00::1:0/112");
        assert_eq!(ip("0.0.0.0/0"), AllowedIp::any_v4());
        assert_eq!(ip("::/0"), AllowedIp::any_v6());
        assert!("10.0.0.0/33".parse::<AllowedIp>().is_err());
        assert!("::/129".parse::<AllowedIp>().is_err());
        assert!("10.0.0.0".parse::<AllowedIp>().is_err());
        assert!("x/1".parse::<AllowedIp>().is_err());
    }

    #[test]
    fn validate_refuses_duplicates() {
        let c = cfg(vec![peer(1, &["10.0.0.0/8"]), peer(1, &[])]);
        assert_eq!(c.validate(), Err(ConfigError::DuplicatePeer(key(1))));
        let c = cfg(vec![peer(1, &["10.0.0.0/8"]), peer(2, &["10.0.0.0/8"])]);
        assert_eq!(c.validate(), Err(ConfigError::AllowedIpOnTwoPeers(ip("10.0.0.0/8"))));
        assert_eq!(cfg(vec![peer(1, &["::/0", "::/0"])]).validate(), Ok(()));
    }

    #[test]
    fn fresh_device_gets_everything_without_replace() {
        let c = cfg(vec![peer(1, &["::/0", "0.0.0.0/0"])]);
        let up = reconcile(&c, &Device::default());
        assert_eq!(up.private_key, Some(c.private_key));
        assert_eq!(up.listen_port, Some(51820));
        assert_eq!(up.fwmark, None, "0 is already the device's mark");
        assert!(!up.replace_peers, "nothing to remove");
        assert_eq!(up.peers, vec![PeerUpdate::add(&c.peers[0])]);
    }

    #[test]
    fn unchanged_device_needs_no_update() {
        let c = cfg(vec![peer(1, &["::/0"]), peer(2, &["10.0.0.0/8"])]);
        let mut d = realised(&c);
        d.peers[0].rx_bytes = 99;
        d.peers[1].allowed_ips.reverse();
        assert!(reconcile(&c, &d).is_empty());
    }

    #[test]
    fn listen_port_none_keeps_the_chosen_port() {
        let mut c = cfg(vec![]);
        let mut d = realised(&c);
        d.listen_port = 40000;
        c.listen_port = None;
        assert!(reconcile(&c, &d).is_empty());
    }

    #[test]
    fn changed_endpoint_is_a_one_field_update_only() {
        let c = cfg(vec![peer(1, &["::/0"]), peer(2, &["10.0.0.0/8"])]);
        let mut d = realised(&c);
        d.peers[1].endpoint = Some("192.0.2.1:1".parse().unwrap());
        let up = reconcile(&c, &d);
        let mut want = PeerUpdate::new(key(2));
        want.update_only = true;
        want.endpoint = c.peers[1].endpoint;
        assert_eq!(up.peers, vec![want]);
        assert!(!up.replace_peers && up.private_key.is_none());
    }

    #[test]
    fn endpoint_none_leaves_roaming_alone() {
        let mut c = cfg(vec![peer(1, &["::/0"])]);
        let mut d = realised(&c);
        d.peers[0].endpoint = Some("192.0.2.9:9".parse().unwrap());
        c.peers[0].endpoint = None;
        assert!(reconcile(&c, &d).is_empty());
    }

    #[test]
    fn growing_allowed_ips_adds_only_the_new_ones() {
        let c0 = cfg(vec![peer(1, &["10.0.0.0/8"])]);
        let d = realised(&c0);
        let c1 = cfg(vec![peer(1, &["10.0.0.0/8", "fd00::/8"])]);
        let up = reconcile(&c1, &d);
        assert_eq!(up.peers.len(), 1);
        assert!(!up.peers[0].replace_allowed_ips);
        assert_eq!(up.peers[0].allowed_ips, vec![ip("fd00::/8")]);
    }

    #[test]
    fn shrinking_allowed_ips_replaces_them() {
        let c0 = cfg(vec![peer(1, &["10.0.0.0/8", "fd00::/8"])]);
        let d = realised(&c0);
        let c1 = cfg(vec![peer(1, &["fd00::/8"])]);
        let up = reconcile(&c1, &d);
        assert!(up.peers[0].replace_allowed_ips);
        assert_eq!(up.peers[0].allowed_ips, vec![ip("fd00::/8")]);
        assert_eq!(up.peers[0].endpoint, None);
    }

    #[test]
    fn keepalive_off_is_sent_as_zero() {
        let c0 = cfg(vec![peer(1, &[])]);
        let d = realised(&c0);
        let mut c1 = c0.clone();
        c1.peers[0].persistent_keepalive = None;
        let up = reconcile(&c1, &d);
        assert_eq!(up.peers[0].persistent_keepalive, Some(0));
    }

    #[test]
    fn removal_keeps_the_other_peers_sessions() {
        let c0 = cfg(vec![peer(1, &["::/0"]), peer(2, &["10.0.0.0/8"])]);
        let d = realised(&c0);
        let c1 = cfg(vec![peer(2, &["10.0.0.0/8"])]);
        let up = reconcile(&c1, &d);
        assert!(!up.replace_peers, "peer 2 must keep its session");
        assert_eq!(up.peers, vec![PeerUpdate::remove(key(1))]);
    }

    #[test]
    fn all_new_peers_use_replace_peers() {
        let c0 = cfg(vec![peer(1, &["::/0"]), peer(2, &["10.0.0.0/8"])]);
        let d = realised(&c0);
        let c1 = cfg(vec![peer(3, &["::/0"])]);
        let up = reconcile(&c1, &d);
        assert!(up.replace_peers);
        assert_eq!(up.peers, vec![PeerUpdate::add(&c1.peers[0])]);
        let c2 = cfg(vec![]);
        let up = reconcile(&c2, &d);
        assert!(up.replace_peers && up.peers.is_empty());
    }

    #[test]
    fn private_keys_compare_clamped() {
        let c = cfg(vec![]);
        let mut d = realised(&c);
        d.private_key = Some(c.private_key.clamped());
        assert_ne!(d.private_key, Some(c.private_key), "key(200) is not clamped");
        assert!(reconcile(&c, &d).is_empty());
        let wg_genkey = PrivateKey(Key::from_base64("CNBfyMDocccMUoP7wzEK8A4o9oyXk+k2jXJCbckHhlo=").unwrap());
        assert_eq!(wg_genkey.clamped(), wg_genkey);
    }

    #[test]
    fn fwmark_and_private_key_changes() {
        let c0 = cfg(vec![]);
        let d = realised(&c0);
        let mut c1 = c0.clone();
        c1.fwmark = Some(0x51);
        c1.private_key = PrivateKey(key(201));
        let up = reconcile(&c1, &d);
        assert_eq!(up.fwmark, Some(0x51));
        assert_eq!(up.private_key, Some(PrivateKey(key(201))));
        assert!(up.peers.is_empty() && !up.replace_peers);
        let d1 = apply(&d, &up);
        let mut c2 = c1.clone();
        c2.fwmark = None;
        assert_eq!(reconcile(&c2, &d1).fwmark, Some(0));
    }

    #[test]
    fn apply_moves_an_allowed_ip_between_peers() {
        let c0 = cfg(vec![peer(1, &["10.0.0.0/8"]), peer(2, &[])]);
        let d = realised(&c0);
        let mut up = DeviceUpdate::default();
        let mut p = PeerUpdate::new(key(2));
        p.allowed_ips.push(ip("10.0.0.0/8"));
        up.peers.push(p);
        let d1 = apply(&d, &up);
        assert!(d1.peer(&key(1)).unwrap().allowed_ips.is_empty());
        assert_eq!(d1.peer(&key(2)).unwrap().allowed_ips, vec![ip("10.0.0.0/8")]);
    }

    #[test]
    fn apply_update_only_never_creates() {
        let mut up = DeviceUpdate::default();
        let mut p = PeerUpdate::new(key(9));
        p.update_only = true;
        p.persistent_keepalive = Some(5);
        up.peers.push(p);
        assert!(apply(&Device::default(), &up).peers.is_empty());
    }

    // ---- property tests: reconcile reaches the desired state and is idempotent.

    fn arb_ip() -> impl Strategy<Value = AllowedIp> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, c)| AllowedIp::new(IpAddr::V4(Ipv4Addr::from(a)), c).unwrap()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, c)| AllowedIp::new(IpAddr::V6(Ipv6Addr::from(a)), c).unwrap()),
        ]
    }

    fn arb_peer(n: u8) -> impl Strategy<Value = PeerConfig> {
        (
            proptest::option::of((any::<u16>(), 0u32..4).prop_map(|(port, scope)| {
                SocketAddr::V6(SocketAddrV6::new("fe80::7".parse().unwrap(), port, 0, scope))
            })),
            proptest::collection::vec(arb_ip(), 0..4),
            proptest::option::of(0u16..30),
        )
            .prop_map(move |(endpoint, allowed_ips, ka)| PeerConfig {
                public_key: key(n),
                endpoint,
                allowed_ips,
                persistent_keepalive: ka,
            })
    }

    fn arb_config() -> impl Strategy<Value = DeviceConfig> {
        (
            0u8..3,
            proptest::option::of(1u16..4),
            proptest::option::of(0u32..3),
            proptest::collection::btree_set(0u8..8, 0..5),
        )
            .prop_flat_map(|(pk, port, mark, ids)| {
                let peers: Vec<_> = ids.into_iter().map(arb_peer).collect();
                (Just(pk), Just(port), Just(mark), peers)
            })
            .prop_map(|(pk, port, mark, mut peers)| {
                // Give every prefix to one peer only, as validate() demands.
                // (Repeats inside one peer are allowed and must be tolerated.)
                let mut seen = HashSet::new();
                for p in &mut peers {
                    let mut own = HashSet::new();
                    p.allowed_ips.retain(|a| own.contains(a) || (seen.insert(*a) && own.insert(*a)));
                }
                DeviceConfig {
                    private_key: PrivateKey(key(100 + pk)),
                    listen_port: port,
                    fwmark: mark,
                    peers,
                }
            })
    }

    fn matches(desired: &DeviceConfig, d: &Device) -> Result<(), String> {
        if d.private_key != Some(desired.private_key.clamped()) {
            return Err("private key".into());
        }
        if let Some(p) = desired.listen_port {
            if d.listen_port != p {
                return Err("listen port".into());
            }
        }
        if d.fwmark != desired.fwmark.unwrap_or(0) {
            return Err("fwmark".into());
        }
        if d.peers.len() != desired.peers.len() {
            return Err(format!("{} peers, want {}", d.peers.len(), desired.peers.len()));
        }
        for w in &desired.peers {
            let h = d.peer(&w.public_key).ok_or("missing peer")?;
            if w.endpoint.is_some() && h.endpoint != w.endpoint {
                return Err("endpoint".into());
            }
            if h.persistent_keepalive != w.persistent_keepalive.unwrap_or(0) {
                return Err("keepalive".into());
            }
            let a: HashSet<_> = h.allowed_ips.iter().collect();
            let b: HashSet<_> = w.allowed_ips.iter().collect();
            if a != b {
                return Err(format!("allowed ips {a:?} != {b:?}"));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn reconcile_reaches_desired_and_then_rests(
            before in arb_config(), after in arb_config(),
        ) {
            prop_assert_eq!(after.validate(), Ok(()));
            let start = realised(&before);
            let up = reconcile(&after, &start);
            let end = apply(&start, &up);
            if let Err(e) = matches(&after, &end) {
                return Err(TestCaseError::fail(format!("{e}: update {up:?}")));
            }
            let again = reconcile(&after, &end);
            prop_assert!(again.is_empty(), "second reconcile not empty: {:?}", again);
            // Sessions survive: replace_peers only when no current peer is kept.
            if up.replace_peers {
                for p in &start.peers {
                    prop_assert!(after.peers.iter().all(|w| w.public_key != p.public_key));
                }
            }
        }
    }
}
