//! The link manager: who may be a neighbour, and the tunnels that follow.
//!
//! Pure state machine (no sockets, no clock): it hears beacons and
//! handshake messages, asks an [`LinkAuth`] whether a key is authorised,
//! agrees WireGuard ports with each authorised neighbour through an
//! authenticated three-way handshake, and outputs the desired tunnels.
//!
//! Handshake (initiated by either side, both may initiate at once):
//! `Offer(nonce_a, port_a, cred_a)` → `Answer(echo nonce_a, nonce_b, port_b,
//! cred_b)` → `Confirm(echo nonce_b, port_a)`. Every message carries a MAC
//! keyed by the pair's X25519 shared secret; the echoed nonce proves the
//! message is fresh. The initiator creates its tunnel on a valid Answer,
//! the responder on a valid Confirm, so a replayed Offer creates nothing.
//! Beacons are unauthenticated and therefore never change an existing
//! tunnel: a forged or replayed beacon can at most trigger an Offer that
//! only the real key holder can answer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::wire::{seal, LinkMessage, PublicKey, DISCOVERY_GROUP, DISCOVERY_PORT, MAC_LEN};
use crate::babel::{IfIndex, LinkType, Time};
use crate::trust::TrustError;

/// Cryptography and policy the manager needs, supplied by the mesh core
/// (which owns the trust store and our private key).
pub trait LinkAuth {
    /// A MAC over `data` keyed by the X25519 shared secret of our private
    /// key and `peer`'s public key (the same value on both sides).
    fn mac(&mut self, peer: &PublicKey, data: &[u8]) -> [u8; MAC_LEN];
    /// Whether `key`, presenting `credential` (possibly empty), may have a
    /// tunnel at Unix time `now_unix`; the trust module's verdict otherwise.
    fn authorise(
        &mut self,
        key: &PublicKey,
        credential: &[u8],
        now_unix: u64,
    ) -> Result<Authorised, TrustError>;
}

/// A positive verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorised {
    pub name: String,
    /// When the verdict lapses (credential expiry), if ever.
    pub expires_unix: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct LinkConfig {
    pub key: PublicKey,
    /// Our credential in binary form (empty with an allow-list only).
    pub credential: Vec<u8>,
    /// WireGuard listen ports are allocated from `port_base..port_base+port_count`.
    pub port_base: u16,
    pub port_count: u16,
    pub beacon_interval_ms: u64,
    /// A discovered neighbour with no beacon and no sign of life on its
    /// tunnel for this long is dropped, with its tunnel.
    pub peer_timeout_ms: u64,
    /// First handshake retry delay; doubles up to 16 times this.
    pub retry_ms: u64,
    /// Most neighbours kept per interface.
    pub max_peers_per_scope: usize,
    /// Credential verifications allowed per second per interface, so that a
    /// flood of forged beacons cannot eat the CPU.
    pub verify_budget_per_s: u32,
    /// Accept handshakes from non-link-local addresses for keys that are
    /// not configured static peers (roaming remote workers).
    pub accept_remote: bool,
}

impl LinkConfig {
    pub fn new(key: PublicKey, credential: Vec<u8>) -> LinkConfig {
        LinkConfig {
            key,
            credential,
            port_base: 51820,
            port_count: 80,
            beacon_interval_ms: 5000,
            peer_timeout_ms: 30_000,
            retry_ms: 1000,
            max_peers_per_scope: 64,
            verify_budget_per_s: 20,
            accept_remote: false,
        }
    }
}

/// Where a neighbour is reached: over a raw mesh interface, or as a
/// configured static peer (by its index in the static peer list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Raw(IfIndex),
    Static(u32),
    /// A roaming node that offered from a routable address (`accept_remote`).
    Remote,
}

/// A tunnel the daemon should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    pub name: String,
    pub scope: Scope,
    pub peer_key: PublicKey,
    pub peer_name: String,
    pub listen_port: u16,
    pub endpoint: SocketAddr,
    pub mtu: u32,
    /// Babel link type of the tunnel: wireless over radios (so ETX sees
    /// loss), tunnel otherwise.
    pub link_type: LinkType,
    pub expires_unix: Option<u64>,
}

#[derive(Debug)]
pub enum LinkInput<'a> {
    RawUp {
        ifindex: IfIndex,
        name: String,
        link_type: LinkType,
        mtu: u32,
    },
    RawDown {
        ifindex: IfIndex,
    },
    /// Add or update a static peer; `addr` is its resolved discovery address.
    StaticPeer {
        index: u32,
        name: String,
        key: PublicKey,
        addr: Option<SocketAddr>,
    },
    RemoveStaticPeer {
        index: u32,
    },
    /// A discovery datagram; `ifindex` is the receiving interface for
    /// link-local sources.
    Datagram {
        ifindex: Option<IfIndex>,
        src: SocketAddr,
        data: &'a [u8],
    },
    /// The tunnel's WireGuard handshake is recent: the neighbour is alive.
    TunnelAlive {
        name: String,
    },
    /// Trust material changed (reload, revocation): re-check everyone.
    TrustChanged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOutput {
    Send {
        ifindex: Option<IfIndex>,
        dst: SocketAddr,
        data: Vec<u8>,
    },
    TunnelUp(TunnelSpec),
    TunnelDown {
        name: String,
    },
    /// A key was refused a tunnel (for logs and counters).
    Refused {
        key: PublicKey,
        scope: Scope,
        reason: TrustError,
    },
}

/// A neighbour as `weft neighbours` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkNeighbour {
    pub scope: Scope,
    pub key: PublicKey,
    pub name: String,
    pub verified: bool,
    pub expires_unix: Option<u64>,
    pub tunnel: Option<String>,
}

/// Counters for `weft status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    pub beacons_in: u64,
    pub bad_datagrams: u64,
    pub bad_macs: u64,
    pub stale_handshakes: u64,
    pub refused: u64,
    pub rate_limited: u64,
    pub table_full: u64,
}

#[derive(Clone, Debug)]
struct Peer {
    name: String,
    expires_unix: Option<u64>,
    credential: Vec<u8>,
    /// Its credential (or allow-listing) has been checked. Static peers are
    /// admitted before they have shown one.
    verified: bool,
    /// Discovery address of the neighbour (beacon or handshake source).
    addr: Option<SocketAddr>,
    my_port: u16,
    their_port: Option<u16>,
    /// Nonce of our outstanding Offer.
    offer_nonce: Option<u64>,
    /// Nonce of our outstanding Answer (awaiting a Confirm).
    answer_nonce: Option<u64>,
    next_offer: Time,
    retry_ms: u64,
    last_seen: Time,
    tunnel: Option<TunnelSpec>,
}

#[derive(Clone, Debug)]
struct Raw {
    name: String,
    link_type: LinkType,
    mtu: u32,
    next_beacon: Time,
    tokens: f64,
    tokens_at: Time,
}

#[derive(Clone, Debug)]
struct StaticPeer {
    name: String,
    key: PublicKey,
    addr: Option<SocketAddr>,
}

/// How long a refused key is not looked at again (unless trust changes).
const REFUSED_HOLD_MS: u64 = 60_000;
const MAX_REFUSED: usize = 1024;
/// WireGuard's overhead over IPv6: outer IPv6 (40) + UDP (8) + WireGuard (32).
const WG_OVERHEAD: u32 = 80;

pub struct LinkManager {
    cfg: LinkConfig,
    now: Time,
    unix: u64,
    rng: u64,
    raws: BTreeMap<IfIndex, Raw>,
    statics: BTreeMap<u32, StaticPeer>,
    peers: BTreeMap<(Scope, PublicKey), Peer>,
    /// Refused keys, until when, and a fingerprint of the credential they
    /// were refused with: the same credential is not looked at again before
    /// then, a different one (a renewal) is, within the verification budget.
    refused: BTreeMap<(Scope, PublicKey), (Time, u64)>,
    outputs: Vec<LinkOutput>,
    stats: LinkStats,
}

/// FNV-1a of a credential: tells a renewed credential from the refused one
/// without keeping either (a collision only delays a look by the hold).
fn fingerprint(credential: &[u8]) -> u64 {
    credential.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Interface name of a tunnel: "weft" + 6 hex digits of the peer's key,
/// then the raw interface index, "s<n>" for a static peer or "r" for a
/// roaming one (at most 15 characters; the firewall matches "weft+").
pub fn tunnel_name(scope: Scope, key: &PublicKey) -> String {
    match scope {
        Scope::Raw(i) => format!("weft{}-{}", hex(&key.0[..3]), i % 10_000),
        Scope::Static(n) => format!("weft{}-s{}", hex(&key.0[..3]), n % 100),
        Scope::Remote => format!("weft{}-r", hex(&key.0[..3])),
    }
}

impl LinkManager {
    pub fn new(cfg: LinkConfig, seed: u64) -> LinkManager {
        LinkManager {
            cfg,
            now: Time(0),
            unix: 0,
            rng: seed | 1,
            raws: BTreeMap::new(),
            statics: BTreeMap::new(),
            peers: BTreeMap::new(),
            refused: BTreeMap::new(),
            outputs: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Replaces our own credential (renewal); beacons carry it from now on.
    pub fn set_credential(&mut self, credential: Vec<u8>) {
        self.cfg.credential = credential;
    }

    /// The tunnels that exist now.
    pub fn tunnels(&self) -> Vec<TunnelSpec> {
        self.peers.values().filter_map(|p| p.tunnel.clone()).collect()
    }

    /// Neighbours known (authorised), with their tunnel if any.
    pub fn neighbours(&self) -> Vec<LinkNeighbour> {
        self.peers
            .iter()
            .map(|((s, k), p)| LinkNeighbour {
                scope: *s,
                key: *k,
                name: p.name.clone(),
                verified: p.verified,
                expires_unix: p.expires_unix,
                tunnel: p.tunnel.as_ref().map(|t| t.name.clone()),
            })
            .collect()
    }

    fn nonce(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        if self.outputs.is_empty() {
            None
        } else {
            Some(self.outputs.remove(0))
        }
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut take = |x: Time| t = Some(t.map_or(x, |t: Time| t.min(x)));
        for r in self.raws.values() {
            take(r.next_beacon);
        }
        for ((scope, _), p) in &self.peers {
            if p.tunnel.is_none() || p.their_port.is_none() {
                take(p.next_offer);
            }
            if matches!(scope, Scope::Raw(_)) {
                take(p.last_seen.plus_ms(self.cfg.peer_timeout_ms + 1));
            }
        }
        for s in self.statics.keys() {
            if !self.peers.keys().any(|(sc, _)| *sc == Scope::Static(*s)) {
                take(self.now.plus_ms(self.cfg.retry_ms));
            }
        }
        // Wake when a credential lapses (wall clock mapped onto our time).
        if let Some(e) = self.peers.values().filter_map(|p| p.expires_unix).min() {
            take(self.now.plus_ms(e.saturating_sub(self.unix).saturating_mul(1000)));
        }
        t
    }

    pub fn handle_input(&mut self, now: Time, unix: u64, input: LinkInput<'_>, auth: &mut dyn LinkAuth) {
        self.now = now;
        self.unix = unix;
        match input {
            LinkInput::RawUp { ifindex, name, link_type, mtu } => {
                let first = !self.raws.contains_key(&ifindex);
                let burst = self.cfg.verify_budget_per_s as f64;
                let r = self.raws.entry(ifindex).or_insert(Raw {
                    name: name.clone(),
                    link_type,
                    mtu,
                    next_beacon: now,
                    tokens: burst,
                    tokens_at: now,
                });
                r.name = name;
                r.link_type = link_type;
                r.mtu = mtu;
                if first {
                    self.send_beacon(ifindex);
                }
            }
            LinkInput::RawDown { ifindex } => {
                self.raws.remove(&ifindex);
                let gone: Vec<(Scope, PublicKey)> =
                    self.peers.keys().filter(|(s, _)| *s == Scope::Raw(ifindex)).copied().collect();
                for k in gone {
                    self.drop_peer(k);
                }
            }
            LinkInput::StaticPeer { index, name, key, addr } => {
                let changed_key = self.statics.get(&index).is_some_and(|s| s.key != key);
                if changed_key {
                    self.drop_static(index);
                }
                let moved = self.statics.get(&index).is_some_and(|s| s.key == key && s.addr != addr);
                self.statics.insert(index, StaticPeer { name, key, addr });
                if moved && addr.is_some() {
                    // Its address changed (dynamic DNS): handshake again at
                    // the new one; the Answer moves the tunnel's endpoint.
                    let k = (Scope::Static(index), key);
                    if let Some(p) = self.peers.get_mut(&k) {
                        p.addr = addr;
                        p.offer_nonce = None;
                        p.retry_ms = self.cfg.retry_ms;
                        self.send_offer(k, auth);
                    }
                }
                self.start_static(index, auth);
            }
            LinkInput::RemoveStaticPeer { index } => {
                self.drop_static(index);
                self.statics.remove(&index);
            }
            LinkInput::Datagram { ifindex, src, data } => self.receive(ifindex, src, data, auth),
            LinkInput::TunnelAlive { name } => {
                let now = self.now;
                for p in self.peers.values_mut() {
                    if p.tunnel.as_ref().is_some_and(|t| t.name == name) {
                        p.last_seen = now;
                    }
                }
            }
            LinkInput::TrustChanged => {
                self.refused.clear();
                self.recheck(auth);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Time, unix: u64, auth: &mut dyn LinkAuth) {
        self.now = now;
        self.unix = unix;
        let due: Vec<IfIndex> =
            self.raws.iter().filter(|(_, r)| r.next_beacon <= now).map(|(i, _)| *i).collect();
        for i in due {
            self.send_beacon(i);
        }
        // Credentials lapse while running: re-check at every timeout is
        // cheap (no signature check: the verdict's expiry is compared).
        let expired: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.expires_unix.is_some_and(|e| e <= unix))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let (cred, lapsed) =
                self.peers.get(&k).map(|p| (p.credential.clone(), p.expires_unix)).unwrap_or_default();
            let reason =
                TrustError::Expired { not_after: lapsed.unwrap_or(unix).saturating_sub(1), now: unix };
            self.refuse(k.0, k.1, &cred, reason);
            self.drop_peer(k);
        }
        let timeout = self.cfg.peer_timeout_ms;
        let dead: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|((s, _), p)| matches!(s, Scope::Raw(_)) && now.since(p.last_seen) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            self.drop_peer(k);
        }
        let retry: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| (p.tunnel.is_none() || p.their_port.is_none()) && p.next_offer <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in retry {
            self.send_offer(k, auth);
        }
        let statics: Vec<u32> = self.statics.keys().copied().collect();
        for s in statics {
            self.start_static(s, auth);
        }
        self.refused.retain(|_, (until, _)| *until > now);
    }

    fn send_beacon(&mut self, ifindex: IfIndex) {
        let interval = self.cfg.beacon_interval_ms;
        let jitter = self.nonce() % (interval / 4 + 1);
        let Some(r) = self.raws.get_mut(&ifindex) else { return };
        r.next_beacon = self.now.plus_ms(interval - jitter);
        let data =
            LinkMessage::Beacon { key: self.cfg.key, credential: self.cfg.credential.clone() }.encode();
        let dst = SocketAddr::V6(SocketAddrV6::new(DISCOVERY_GROUP, DISCOVERY_PORT, 0, ifindex));
        self.outputs.push(LinkOutput::Send { ifindex: Some(ifindex), dst, data });
    }

    fn refuse(&mut self, scope: Scope, key: PublicKey, credential: &[u8], reason: TrustError) {
        self.stats.refused += 1;
        if self.refused.len() >= MAX_REFUSED {
            // Forget the entry that would expire first.
            if let Some(k) = self.refused.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k) {
                self.refused.remove(&k);
            }
        }
        self.refused.insert((scope, key), (self.now.plus_ms(REFUSED_HOLD_MS), fingerprint(credential)));
        self.outputs.push(LinkOutput::Refused { key, scope, reason });
    }

    /// Spends one verification token of a raw interface.
    fn take_token(&mut self, scope: Scope) -> bool {
        let Scope::Raw(i) = scope else { return true };
        let (now, rate) = (self.now, self.cfg.verify_budget_per_s as f64);
        let Some(r) = self.raws.get_mut(&i) else { return false };
        let dt = now.since(r.tokens_at) as f64 / 1000.0;
        r.tokens = (r.tokens + dt * rate).min(rate.max(1.0));
        r.tokens_at = now;
        if r.tokens >= 1.0 {
            r.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn free_port(&self) -> Option<u16> {
        let used: BTreeSet<u16> = self.peers.values().map(|p| p.my_port).collect();
        (0..self.cfg.port_count).map(|i| self.cfg.port_base.wrapping_add(i)).find(|p| !used.contains(p))
    }

    /// Creates the entry of a newly authorised neighbour.
    fn admit(
        &mut self,
        scope: Scope,
        key: PublicKey,
        verdict: Authorised,
        credential: Vec<u8>,
        addr: Option<SocketAddr>,
        verified: bool,
    ) -> bool {
        if self.peers.keys().filter(|(s, _)| *s == scope).count() >= self.cfg.max_peers_per_scope {
            self.stats.table_full += 1;
            return false;
        }
        let Some(port) = self.free_port() else {
            self.stats.table_full += 1;
            return false;
        };
        self.peers.insert(
            (scope, key),
            Peer {
                name: verdict.name,
                expires_unix: verdict.expires_unix,
                credential,
                verified,
                addr,
                my_port: port,
                their_port: None,
                offer_nonce: None,
                answer_nonce: None,
                next_offer: self.now,
                retry_ms: self.cfg.retry_ms,
                last_seen: self.now,
                tunnel: None,
            },
        );
        true
    }

    /// Looks up or admits the neighbour `key` at `scope`, authorising it
    /// with the credential it presented. Returns false if it is refused.
    fn known_or_admitted(
        &mut self,
        scope: Scope,
        key: PublicKey,
        credential: &[u8],
        addr: Option<SocketAddr>,
        auth: &mut dyn LinkAuth,
    ) -> bool {
        if key == self.cfg.key {
            return false;
        }
        if let Some(p) = self.peers.get(&(scope, key)) {
            let verified = p.verified;
            if verified && (credential.is_empty() || p.credential == credential) {
                return true;
            }
            // A new credential (renewal), or a static peer's first one.
            return match auth.authorise(&key, credential, self.unix) {
                Ok(v) => {
                    let p = self.peers.get_mut(&(scope, key)).expect("present");
                    p.credential = credential.to_vec();
                    p.name = v.name;
                    p.expires_unix = v.expires_unix;
                    p.verified = true;
                    true
                }
                // Keep a verified neighbour on its still-valid old credential.
                Err(_) if verified => true,
                Err(reason) => {
                    self.refuse(scope, key, credential, reason);
                    self.drop_peer((scope, key));
                    false
                }
            };
        }
        if self.refused.get(&(scope, key)).is_some_and(|(_, f)| *f == fingerprint(credential)) {
            return false;
        }
        if !self.take_token(scope) {
            self.stats.rate_limited += 1;
            return false;
        }
        match auth.authorise(&key, credential, self.unix) {
            Ok(v) => self.admit(scope, key, v, credential.to_vec(), addr, true),
            Err(reason) => {
                self.refuse(scope, key, credential, reason);
                false
            }
        }
    }

    fn scope_of(&self, ifindex: Option<IfIndex>, src: &SocketAddr, key: &PublicKey) -> Option<Scope> {
        let link_local = matches!(src.ip(), IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        if link_local {
            return ifindex.filter(|i| self.raws.contains_key(i)).map(Scope::Raw);
        }
        if let Some((i, _)) = self.statics.iter().find(|(_, s)| s.key == *key) {
            return Some(Scope::Static(*i));
        }
        None
    }

    fn receive(&mut self, ifindex: Option<IfIndex>, src: SocketAddr, data: &[u8], auth: &mut dyn LinkAuth) {
        let (msg, covered) = match LinkMessage::decode(data) {
            Ok(x) => x,
            Err(_) => {
                self.stats.bad_datagrams += 1;
                return;
            }
        };
        let me = self.cfg.key;
        match msg {
            LinkMessage::Beacon { key, credential } => {
                self.stats.beacons_in += 1;
                let Some(scope @ Scope::Raw(_)) = self.scope_of(ifindex, &src, &key) else { return };
                if !self.known_or_admitted(scope, key, &credential, Some(src), auth) {
                    return;
                }
                let now = self.now;
                let p = self.peers.get_mut(&(scope, key)).expect("admitted");
                p.last_seen = now;
                if p.addr.is_none() || p.tunnel.is_none() {
                    p.addr = Some(src);
                }
                if p.tunnel.is_none() && p.offer_nonce.is_none() {
                    self.send_offer((scope, key), auth);
                }
            }
            LinkMessage::Offer { from, to, nonce, port, credential, mac } => {
                if to != me {
                    return;
                }
                let scope = match self.scope_of(ifindex, &src, &from) {
                    Some(s) => s,
                    None if self.cfg.accept_remote => Scope::Remote,
                    None => return,
                };
                // The MAC costs an X25519 for a key we have no secret for
                // yet: unknown keys first pass the rate-limited admission.
                let known = self.peers.contains_key(&(scope, from));
                if known && auth.mac(&from, &data[..covered]) != mac {
                    self.stats.bad_macs += 1;
                    return;
                }
                if !self.known_or_admitted(scope, from, &credential, Some(src), auth) {
                    return;
                }
                if !known && auth.mac(&from, &data[..covered]) != mac {
                    self.stats.bad_macs += 1;
                    self.drop_peer((scope, from));
                    return;
                }
                let answer_nonce = self.nonce();
                let cred = self.cfg.credential.clone();
                let p = self.peers.get_mut(&(scope, from)).expect("admitted");
                p.answer_nonce = Some(answer_nonce);
                let my_port = p.my_port;
                let reply = LinkMessage::Answer {
                    from: me,
                    to: from,
                    echo: nonce,
                    nonce: answer_nonce,
                    port: my_port,
                    credential: cred,
                    mac: [0; MAC_LEN],
                };
                let _ = port; // the offerer's port is only trusted once fresh (Confirm)
                let data = seal(&reply, |b| auth.mac(&from, b));
                self.outputs.push(LinkOutput::Send { ifindex, dst: src, data });
            }
            LinkMessage::Answer { from, to, echo, nonce, port, credential, mac } => {
                if to != me || auth.mac(&from, &data[..covered]) != mac {
                    self.stats.bad_macs += 1;
                    return;
                }
                let Some(scope) = self.find_scope(ifindex, &src, &from) else { return };
                let fresh = self.peers.get(&(scope, from)).is_some_and(|p| p.offer_nonce == Some(echo));
                if !fresh {
                    self.stats.stale_handshakes += 1;
                    return;
                }
                if !self.known_or_admitted(scope, from, &credential, Some(src), auth) {
                    return;
                }
                let p = self.peers.get_mut(&(scope, from)).expect("known");
                p.offer_nonce = None;
                let my_port = p.my_port;
                let confirm = LinkMessage::Confirm {
                    from: me,
                    to: from,
                    echo: nonce,
                    port: my_port,
                    mac: [0; MAC_LEN],
                };
                let data = seal(&confirm, |b| auth.mac(&from, b));
                self.outputs.push(LinkOutput::Send { ifindex, dst: src, data });
                self.establish((scope, from), src, port);
            }
            LinkMessage::Confirm { from, to, echo, port, mac } => {
                if to != me || auth.mac(&from, &data[..covered]) != mac {
                    self.stats.bad_macs += 1;
                    return;
                }
                let Some(scope) = self.find_scope(ifindex, &src, &from) else { return };
                let fresh = self.peers.get(&(scope, from)).is_some_and(|p| p.answer_nonce == Some(echo));
                if !fresh {
                    self.stats.stale_handshakes += 1;
                    return;
                }
                self.peers.get_mut(&(scope, from)).expect("known").answer_nonce = None;
                self.establish((scope, from), src, port);
            }
        }
    }

    /// The scope of a handshake message from a peer we already know.
    fn find_scope(&self, ifindex: Option<IfIndex>, src: &SocketAddr, key: &PublicKey) -> Option<Scope> {
        self.scope_of(ifindex, src, key)
            .or_else(|| self.cfg.accept_remote.then_some(Scope::Remote))
            .filter(|s| self.peers.contains_key(&(*s, *key)))
    }

    /// A fresh, authenticated message told us the neighbour's address and
    /// port: (re)create its tunnel.
    fn establish(&mut self, k: (Scope, PublicKey), src: SocketAddr, their_port: u16) {
        let (scope, key) = k;
        let (link_type, mtu) = match scope {
            Scope::Raw(i) => match self.raws.get(&i) {
                Some(r) => {
                    let lt =
                        if r.link_type == LinkType::Wireless { LinkType::Wireless } else { LinkType::Tunnel };
                    (lt, r.mtu.saturating_sub(WG_OVERHEAD).max(1280))
                }
                None => return,
            },
            Scope::Static(_) | Scope::Remote => (LinkType::Tunnel, 1420),
        };
        let now = self.now;
        let p = self.peers.get_mut(&k).expect("known");
        if !p.verified {
            return;
        }
        p.their_port = Some(their_port);
        p.addr = Some(src);
        p.last_seen = now;
        p.retry_ms = self.cfg.retry_ms;
        let endpoint = match src {
            SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), their_port, 0, a.scope_id())),
            SocketAddr::V4(a) => SocketAddr::new(IpAddr::V4(*a.ip()), their_port),
        };
        let spec = TunnelSpec {
            name: tunnel_name(scope, &key),
            scope,
            peer_key: key,
            peer_name: p.name.clone(),
            listen_port: p.my_port,
            endpoint,
            mtu,
            link_type,
            expires_unix: p.expires_unix,
        };
        if p.tunnel.as_ref() != Some(&spec) {
            p.tunnel = Some(spec.clone());
            self.outputs.push(LinkOutput::TunnelUp(spec));
        }
    }

    fn send_offer(&mut self, k: (Scope, PublicKey), auth: &mut dyn LinkAuth) {
        let nonce = self.nonce();
        let (me, cred, now) = (self.cfg.key, self.cfg.credential.clone(), self.now);
        let Some(p) = self.peers.get_mut(&k) else { return };
        let Some(dst) = p.addr else { return };
        // Keep the nonce of an offer in flight so that a late Answer to it
        // still counts; a new one is drawn once it has been answered.
        let nonce = *p.offer_nonce.get_or_insert(nonce);
        p.next_offer = now.plus_ms(p.retry_ms);
        p.retry_ms = (p.retry_ms * 2).min(self.cfg.retry_ms * 16);
        let offer = LinkMessage::Offer {
            from: me,
            to: k.1,
            nonce,
            port: p.my_port,
            credential: cred,
            mac: [0; MAC_LEN],
        };
        let ifindex = match k.0 {
            Scope::Raw(i) => Some(i),
            Scope::Static(_) | Scope::Remote => None,
        };
        let data = seal(&offer, |b| auth.mac(&k.1, b));
        self.outputs.push(LinkOutput::Send { ifindex, dst, data });
    }

    fn start_static(&mut self, index: u32, auth: &mut dyn LinkAuth) {
        let Some(s) = self.statics.get(&index).cloned() else { return };
        let scope = Scope::Static(index);
        if self.peers.contains_key(&(scope, s.key)) {
            if let Some(p) = self.peers.get_mut(&(scope, s.key)) {
                if p.tunnel.is_none() && s.addr.is_some() {
                    p.addr = s.addr;
                }
            }
            return;
        }
        // A configured static peer is admitted provisionally; its
        // credential is checked when its Answer or Offer arrives.
        let v = Authorised { name: s.name.clone(), expires_unix: None };
        if self.admit(scope, s.key, v, Vec::new(), s.addr, false) {
            self.send_offer((scope, s.key), auth);
        }
    }

    fn drop_static(&mut self, index: u32) {
        let keys: Vec<(Scope, PublicKey)> =
            self.peers.keys().filter(|(s, _)| *s == Scope::Static(index)).copied().collect();
        for k in keys {
            self.drop_peer(k);
        }
    }

    fn drop_peer(&mut self, k: (Scope, PublicKey)) {
        if let Some(p) = self.peers.remove(&k) {
            if let Some(t) = p.tunnel {
                self.outputs.push(LinkOutput::TunnelDown { name: t.name });
            }
        }
    }

    fn recheck(&mut self, auth: &mut dyn LinkAuth) {
        let keys: Vec<((Scope, PublicKey), Vec<u8>)> =
            self.peers.iter().map(|(k, p)| (*k, p.credential.clone())).collect();
        for (k, cred) in keys {
            if !self.peers[&k].verified {
                continue; // a static peer not yet heard from
            }
            match auth.authorise(&k.1, &cred, self.unix) {
                Ok(v) => {
                    let p = self.peers.get_mut(&k).expect("listed");
                    p.name = v.name;
                    p.expires_unix = v.expires_unix;
                }
                Err(reason) => {
                    self.refuse(k.0, k.1, &cred, reason);
                    self.drop_peer(k);
                }
            }
        }
    }

    /// The address a link-local neighbour's tunnel endpoint uses.
    pub fn link_local_endpoint(addr: Ipv6Addr, port: u16, ifindex: IfIndex) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(addr, port, 0, ifindex))
    }
}
