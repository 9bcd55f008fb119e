//! The link manager: who may be a neighbour, and the tunnels that follow.
//!
//! Pure state machine (no sockets, no clock): it hears beacons and
//! handshake messages, asks a [`LinkAuth`] whether a key is authorised,
//! agrees WireGuard ports with each authorised neighbour through an
//! authenticated three-way handshake, and outputs the desired tunnels.
//!
//! Handshake (initiated by either side, both may initiate at once):
//! `Offer(nonce_a, stamp_a, cred_a)` → `Answer(echo nonce_a, nonce_b,
//! port_b, cred_b)` → `Confirm(echo nonce_b, port_a)`. Every message carries
//! a MAC keyed by the pair's X25519 shared secret; the echoed nonce proves
//! the Answer and the Confirm fresh, the stamp the Offer (see
//! [`super::wire`]). The initiator creates its tunnel on a valid Answer, the
//! responder on a valid Confirm, so a replayed Offer creates nothing; an
//! Offer does not replace the answer a handshake in progress waits for.
//! Beacons are unauthenticated and therefore never change an existing
//! tunnel: a forged or replayed beacon can at most trigger an Offer that
//! only the real key holder can answer.
//!
//! What an attacker on the link can cost is bounded:
//! - a key of small order is dropped on sight;
//! - a new neighbour (beacon or Offer) costs a signature check and an X25519
//!   computation: admissions are rate-limited per source address, then per
//!   interface, with a lane of its own for credentials already known to be
//!   valid, so a flood of forged ones cannot keep a real neighbour out;
//! - until its handshake completes a neighbour is half-open: it holds no
//!   WireGuard port and no tunnel slot, and half-open neighbours are bounded
//!   per interface and per source address, and time out;
//! - an Answer or Confirm is matched to the handshake it answers (a table
//!   lookup) before its MAC is computed, with the secret computed when that
//!   neighbour was admitted: a forged one costs no X25519;
//! - a credential that is not newer (by not-before) than the one a
//!   neighbour already showed is not looked at;
//! - tunnel names are short, but a name is never given to two neighbours.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::wire::{mac, seal, LinkMessage, PublicKey, DISCOVERY_GROUP, DISCOVERY_PORT, MAC_LEN};
use crate::babel::{IfIndex, LinkType, Time};
use crate::trust::{TrustError, TrustTime};

/// Cryptography and policy the manager needs, supplied by the mesh core
/// (which owns the trust store and our private key).
pub trait LinkAuth {
    /// The X25519 shared secret of our private key and `peer` (the same on
    /// both sides); `None` if there is none worth having.
    fn shared_secret(&mut self, peer: &PublicKey) -> Option<[u8; 32]>;
    /// Whether `credential` is one already verified and valid for `key`:
    /// admitting it costs no signature check.
    fn is_known_good(&self, key: &PublicKey, credential: &[u8]) -> bool;
    /// Whether `new` was issued after `current` (both credentials of one
    /// key; a credential that does not parse is not newer). Cheap: no
    /// signature is checked.
    fn is_newer(&self, new: &[u8], current: &[u8]) -> bool;
    /// Whether `key`, presenting `credential` (possibly empty), may have a
    /// tunnel at `at`; the trust module's verdict otherwise.
    fn authorise(
        &mut self,
        key: &PublicKey,
        credential: &[u8],
        at: TrustTime,
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
    /// Most neighbours with a tunnel per interface.
    pub max_peers_per_scope: usize,
    /// Admissions (a signature check and an X25519 each) allowed per second
    /// per interface for credentials not known yet, and again for known
    /// ones.
    pub verify_budget_per_s: u32,
    /// Admissions allowed per second per source address.
    pub source_budget_per_s: u32,
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
            source_budget_per_s: 2,
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
    /// Answers and Confirms matching no handshake, and Offers whose stamp
    /// is not fresh.
    pub stale_handshakes: u64,
    pub refused: u64,
    pub rate_limited: u64,
    pub table_full: u64,
    /// Keys of small order, dropped on sight.
    pub low_order_keys: u64,
    /// Neighbours turned away because too many were half-open.
    pub half_open_full: u64,
    /// Half-open neighbours dropped because their handshake never completed.
    pub half_open_expired: u64,
    /// Credentials not newer than the one a neighbour showed, not looked at.
    pub older_credentials: u64,
}

#[derive(Clone, Debug)]
struct Peer {
    name: String,
    expires_unix: Option<u64>,
    credential: Vec<u8>,
    /// Its credential (or allow-listing) has been checked. Static peers are
    /// admitted before they have shown one.
    verified: bool,
    /// The X25519 secret of the pair (computed once, at admission).
    secret: Option<[u8; 32]>,
    /// Discovery address of the neighbour (beacon or handshake source).
    addr: Option<SocketAddr>,
    /// The source address it was admitted from (half-open accounting).
    admitted_from: Option<IpAddr>,
    /// Our WireGuard port for this pair, once the handshake completed.
    port: Option<u16>,
    /// The port promised in our Answers, until a Confirm arrives.
    tentative_port: Option<u16>,
    their_port: Option<u16>,
    /// Our Offers in flight (nonce, stamp), newest last: an Answer to any
    /// of them counts (a late one, too).
    offers: Vec<(u64, u64)>,
    /// The highest Offer stamp taken from it (same-run replays are stale).
    last_stamp: Option<u64>,
    /// Its runs (stamps' high halves), when each was first heard of.
    runs: Vec<(u32, Time)>,
    /// The stamp of the last handshake it completed as initiator (its
    /// Confirm), and when.
    confirmed: Option<(u64, Time)>,
    next_offer: Time,
    retry_ms: u64,
    since: Time,
    last_seen: Time,
    tunnel: Option<TunnelSpec>,
    /// The interface name given to its tunnel (kept across re-handshakes).
    tunnel_name: Option<String>,
}

impl Peer {
    fn half_open(&self, scope: Scope) -> bool {
        self.tunnel.is_none() && !matches!(scope, Scope::Static(_))
    }

    /// Whether a Confirm for its Offer with `stamp` may complete a
    /// handshake: a later Offer of the run whose handshake completed last,
    /// or an Offer of a run first heard of after that (it restarted). An
    /// old Confirm replayed completes nothing.
    fn confirmable(&self, stamp: u64) -> bool {
        let Some((last, at)) = self.confirmed else { return true };
        let run = (stamp >> 32) as u32;
        if run == (last >> 32) as u32 {
            return stamp > last;
        }
        self.runs.iter().any(|(r, first)| *r == run && *first > at)
    }
}

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Time,
}

impl Bucket {
    fn full(burst: u32, now: Time) -> Bucket {
        Bucket { tokens: f64::from(burst.max(1)), at: now }
    }

    /// Takes a token if there is one; tokens come back at `rate` a second,
    /// up to `burst`.
    fn take(&mut self, rate: u32, burst: u32, now: Time) -> bool {
        let dt = now.since(self.at) as f64 / 1000.0;
        self.tokens = (self.tokens + dt * f64::from(rate.max(1))).min(f64::from(burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Debug)]
struct Raw {
    name: String,
    link_type: LinkType,
    mtu: u32,
    next_beacon: Time,
    /// Admission budgets: credentials not known yet, and known ones.
    unknown: Bucket,
    known: Bucket,
}

#[derive(Clone, Debug)]
struct StaticPeer {
    name: String,
    key: PublicKey,
    addr: Option<SocketAddr>,
}

/// Static peers by their index, sorted: a handful, so a Vec rather than one
/// more `BTreeMap` type on the router's flash.
#[derive(Default)]
struct Statics(Vec<(u32, StaticPeer)>);

impl Statics {
    fn get(&self, index: &u32) -> Option<&StaticPeer> {
        self.0.binary_search_by_key(index, |(i, _)| *i).ok().map(|k| &self.0[k].1)
    }

    fn insert(&mut self, index: u32, peer: StaticPeer) {
        match self.0.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(k) => self.0[k].1 = peer,
            Err(k) => self.0.insert(k, (index, peer)),
        }
    }

    fn remove(&mut self, index: &u32) {
        self.0.retain(|(i, _)| i != index);
    }

    fn keys(&self) -> impl Iterator<Item = &u32> {
        self.0.iter().map(|(i, _)| i)
    }

    fn iter(&self) -> impl Iterator<Item = (&u32, &StaticPeer)> {
        self.0.iter().map(|(i, p)| (i, p))
    }
}

/// How long a refused key is not looked at again (unless trust changes).
const REFUSED_HOLD_MS: u64 = 60_000;
const MAX_REFUSED: usize = 1024;
/// WireGuard's overhead over IPv6: outer IPv6 (40) + UDP (8) + WireGuard (32).
const WG_OVERHEAD: u32 = 80;
/// Half-open neighbours at most, per interface and per source address.
const MAX_HALF_OPEN_PER_SCOPE: usize = 16;
const MAX_HALF_OPEN_PER_SOURCE: usize = 2;
/// A half-open neighbour whose handshake has not completed after this long
/// is dropped (four Offers at 1, 2, 4, 8 s).
const HALF_OPEN_MS: u64 = 15_000;
/// Source addresses whose admission budget is remembered.
const MAX_SOURCES: usize = 256;
/// Runs of a neighbour remembered (it restarted that often in ours).
const MAX_RUNS: usize = 16;

pub struct LinkManager {
    cfg: LinkConfig,
    now: Time,
    at: TrustTime,
    /// Nonces: SHA-512(seed ‖ counter); Answer nonces: SHA-512(seed ‖
    /// peer ‖ stamp).
    seed: [u8; 32],
    counter: u64,
    /// Our run, in Offer stamps; and Offers sent in it.
    run: u32,
    offers_sent: u32,
    /// (A Vec: a few raw interfaces, and every map type costs flash.)
    raws: Vec<(IfIndex, Raw)>,
    statics: Statics,
    peers: BTreeMap<(Scope, PublicKey), Peer>,
    /// Refused keys, until when, and a fingerprint of the credential they
    /// were refused with: the same credential is not looked at again before
    /// then, a different one (a renewal) is, within the admission budget.
    refused: BTreeMap<(Scope, PublicKey), (Time, u64)>,
    /// Admission budget per source address (a small table, searched in place).
    sources: Vec<((Option<IfIndex>, IpAddr), Bucket)>,
    outputs: VecDeque<LinkOutput>,
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
/// `alt` picks other bytes of the key when the first choice is taken.
pub fn tunnel_name_alt(scope: Scope, key: &PublicKey, alt: usize) -> String {
    let h = match alt {
        0..=9 => hex(&key.0[3 * alt..3 * alt + 3]),
        n => format!("{:06x}", n & 0xff_ffff),
    };
    match scope {
        Scope::Raw(i) => format!("weft{h}-{}", i % 10_000),
        Scope::Static(n) => format!("weft{h}-s{}", n % 100),
        Scope::Remote => format!("weft{h}-r"),
    }
}

/// The first-choice tunnel name (see [`tunnel_name_alt`]).
pub fn tunnel_name(scope: Scope, key: &PublicKey) -> String {
    tunnel_name_alt(scope, key, 0)
}

fn is_link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

impl LinkManager {
    /// `seed`: 32 bytes from the OS random source (nonces and our run id
    /// are drawn from it; an attacker must not be able to guess them).
    pub fn new(cfg: LinkConfig, seed: [u8; 32]) -> LinkManager {
        let mut m = LinkManager {
            cfg,
            now: Time(0),
            at: TrustTime::exact(0),
            seed,
            counter: 0,
            run: 0,
            offers_sent: 0,
            raws: Vec::new(),
            statics: Statics::default(),
            peers: BTreeMap::new(),
            refused: BTreeMap::new(),
            sources: Vec::new(),
            outputs: VecDeque::new(),
            stats: LinkStats::default(),
        };
        m.run = m.nonce() as u32;
        m
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

    /// Neighbours known (authorised or half-open), with their tunnel if any.
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
        self.counter += 1;
        let mut h = ed25519_compact::sha512::Hash::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    }

    /// The nonce of our Answer to `peer`'s Offer with `stamp`: derived, not
    /// stored, so that a Confirm is checked against it without keeping
    /// anything per Offer.
    fn answer_nonce(&self, peer: &PublicKey, stamp: u64) -> u64 {
        let mut h = ed25519_compact::sha512::Hash::new();
        h.update(self.seed);
        h.update(b"answer");
        h.update(peer.0);
        h.update(stamp.to_be_bytes());
        u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    }

    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t: Option<Time> = None;
        let mut take = |x: Time| t = Some(t.map_or(x, |t: Time| t.min(x)));
        for (_, r) in &self.raws {
            take(r.next_beacon);
        }
        for ((scope, _), p) in &self.peers {
            if p.tunnel.is_none() || p.their_port.is_none() {
                take(p.next_offer);
            }
            if p.half_open(*scope) {
                take(p.since.plus_ms(HALF_OPEN_MS + 1));
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
        // Wake when a credential lapses (its time mapped onto ours).
        if let Some(e) = self.peers.values().filter_map(|p| p.expires_unix).min() {
            take(self.now.plus_ms(e.saturating_sub(self.at.expiry_at).saturating_mul(1000)));
        }
        t
    }

    pub fn handle_input(
        &mut self,
        now: Time,
        at: impl Into<TrustTime>,
        input: LinkInput<'_>,
        auth: &mut dyn LinkAuth,
    ) {
        self.now = now;
        self.at = at.into();
        match input {
            LinkInput::RawUp { ifindex, name, link_type, mtu } => match self.raw_mut(ifindex) {
                Some(r) => {
                    r.name = name;
                    r.link_type = link_type;
                    r.mtu = mtu;
                }
                None => {
                    let rate = self.cfg.verify_budget_per_s;
                    let (unknown, known) = (Bucket::full(rate, now), Bucket::full(rate, now));
                    let raw = Raw { name, link_type, mtu, next_beacon: now, unknown, known };
                    self.raws.push((ifindex, raw));
                    self.send_beacon(ifindex);
                }
            },
            LinkInput::RawDown { ifindex } => {
                self.raws.retain(|(i, _)| *i != ifindex);
                self.sources.retain(|((i, _), _)| *i != Some(ifindex));
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
                        p.offers.clear();
                        p.retry_ms = self.cfg.retry_ms;
                        self.send_offer(k);
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

    pub fn handle_timeout(&mut self, now: Time, at: impl Into<TrustTime>, auth: &mut dyn LinkAuth) {
        let at = at.into();
        self.now = now;
        self.at = at;
        let due: Vec<IfIndex> =
            self.raws.iter().filter(|(_, r)| r.next_beacon <= now).map(|(i, _)| *i).collect();
        for i in due {
            self.send_beacon(i);
        }
        // Credentials lapse while running: the verdict's expiry is compared
        // (no signature check).
        let expired: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.expires_unix.is_some_and(|e| e <= at.expiry_at))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let (cred, lapsed) =
                self.peers.get(&k).map(|p| (p.credential.clone(), p.expires_unix)).unwrap_or_default();
            let not_after = lapsed.unwrap_or(at.expiry_at).saturating_sub(1);
            self.refuse(k.0, k.1, &cred, TrustError::Expired { not_after, now: at.expiry_at });
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
        let stuck: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|((s, _), p)| p.half_open(*s) && now.since(p.since) > HALF_OPEN_MS)
            .map(|(k, _)| *k)
            .collect();
        for k in stuck {
            self.stats.half_open_expired += 1;
            self.drop_peer(k);
        }
        let retry: Vec<(Scope, PublicKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| (p.tunnel.is_none() || p.their_port.is_none()) && p.next_offer <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in retry {
            self.send_offer(k);
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
        let next = self.now.plus_ms(interval - jitter);
        let Some(r) = self.raw_mut(ifindex) else { return };
        r.next_beacon = next;
        let data =
            LinkMessage::Beacon { key: self.cfg.key, credential: self.cfg.credential.clone() }.encode();
        let dst = SocketAddr::V6(SocketAddrV6::new(DISCOVERY_GROUP, DISCOVERY_PORT, 0, ifindex));
        self.outputs.push_back(LinkOutput::Send { ifindex: Some(ifindex), dst, data });
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
        self.outputs.push_back(LinkOutput::Refused { key, scope, reason });
    }

    /// Spends one admission token: the source address's, then the
    /// interface's lane (known credentials have a lane of their own).
    fn take_token(&mut self, scope: Scope, src: &SocketAddr, known_good: bool) -> bool {
        let now = self.now;
        let iface = match scope {
            Scope::Raw(i) => Some(i),
            Scope::Static(_) | Scope::Remote => None,
        };
        let source = (iface, src.ip());
        // A source may spend twice its rate at once (a neighbour's beacon
        // and Offer arrive together).
        let (rate, burst) = (self.cfg.source_budget_per_s, 2 * self.cfg.source_budget_per_s);
        let i = match self.sources.iter().position(|(k, _)| *k == source) {
            Some(i) => i,
            None => {
                if self.sources.len() >= MAX_SOURCES {
                    // Forget the source heard from longest ago.
                    if let Some(i) =
                        self.sources.iter().enumerate().min_by_key(|(_, (_, b))| b.at).map(|(i, _)| i)
                    {
                        self.sources.swap_remove(i);
                    }
                }
                self.sources.push((source, Bucket::full(burst, now)));
                self.sources.len() - 1
            }
        };
        if !self.sources[i].1.take(rate, burst, now) {
            return false;
        }
        let Some(i) = iface else { return true };
        let rate = self.cfg.verify_budget_per_s;
        let Some(r) = self.raw_mut(i) else { return false };
        if known_good {
            r.known.take(rate, rate, now)
        } else {
            r.unknown.take(rate, rate, now)
        }
    }

    fn raw_mut(&mut self, ifindex: IfIndex) -> Option<&mut Raw> {
        self.raws.iter_mut().find(|(i, _)| *i == ifindex).map(|(_, r)| r)
    }

    fn free_port(&self) -> Option<u16> {
        // A Vec, not a set: a few dozen ports, and each set type costs flash.
        let used: Vec<u16> = self.peers.values().flat_map(|p| [p.port, p.tentative_port]).flatten().collect();
        (0..self.cfg.port_count).map(|i| self.cfg.port_base.wrapping_add(i)).find(|p| !used.contains(p))
    }

    /// Whether another half-open neighbour fits, at `scope` and from `src`.
    fn half_open_room(&self, scope: Scope, src: Option<&SocketAddr>) -> bool {
        if matches!(scope, Scope::Static(_)) {
            return true;
        }
        let half_open = self.peers.iter().filter(|((s, _), p)| *s == scope && p.half_open(*s));
        let (mut here, mut from_src) = (0, 0);
        for (_, p) in half_open {
            here += 1;
            if src.is_some_and(|a| p.admitted_from == Some(a.ip())) {
                from_src += 1;
            }
        }
        here < MAX_HALF_OPEN_PER_SCOPE && from_src < MAX_HALF_OPEN_PER_SOURCE
    }

    /// Creates the entry of a newly authorised neighbour: half-open, no
    /// port, its shared secret computed.
    fn admit(
        &mut self,
        (scope, key): (Scope, PublicKey),
        verdict: Authorised,
        credential: Vec<u8>,
        addr: Option<SocketAddr>,
        verified: bool,
        auth: &mut dyn LinkAuth,
    ) -> bool {
        let secret = auth.shared_secret(&key);
        if secret.is_none() {
            self.stats.low_order_keys += 1;
            return false;
        }
        self.peers.insert(
            (scope, key),
            Peer {
                name: verdict.name,
                expires_unix: verdict.expires_unix,
                credential,
                verified,
                secret,
                addr,
                admitted_from: addr.map(|a| a.ip()),
                port: None,
                tentative_port: None,
                their_port: None,
                offers: Vec::new(),
                last_stamp: None,
                runs: Vec::new(),
                confirmed: None,
                next_offer: self.now,
                retry_ms: self.cfg.retry_ms,
                since: self.now,
                last_seen: self.now,
                tunnel: None,
                tunnel_name: None,
            },
        );
        true
    }

    /// Looks up or admits the neighbour `key` at `scope`, authorising it
    /// with the credential it presented. Returns false if it is refused
    /// (or must wait: no budget, no room).
    fn known_or_admitted(
        &mut self,
        scope: Scope,
        key: PublicKey,
        credential: &[u8],
        src: SocketAddr,
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
            // Another credential: a renewal, a static peer's first one, or
            // an older one replayed (never looked at: grants only narrow
            // with time, never widen back).
            if verified && !auth.is_newer(credential, &p.credential) {
                self.stats.older_credentials += 1;
                return true;
            }
            if !self.take_token(scope, &src, auth.is_known_good(&key, credential)) {
                self.stats.rate_limited += 1;
                return verified;
            }
            return match auth.authorise(&key, credential, self.at) {
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
        if !self.half_open_room(scope, Some(&src)) {
            self.stats.half_open_full += 1;
            return false;
        }
        if !self.take_token(scope, &src, auth.is_known_good(&key, credential)) {
            self.stats.rate_limited += 1;
            return false;
        }
        match auth.authorise(&key, credential, self.at) {
            Ok(v) => self.admit((scope, key), v, credential.to_vec(), Some(src), true, auth),
            Err(reason) => {
                self.refuse(scope, key, credential, reason);
                false
            }
        }
    }

    fn scope_of(&self, ifindex: Option<IfIndex>, src: &SocketAddr, key: &PublicKey) -> Option<Scope> {
        if is_link_local(&src.ip()) {
            return ifindex.filter(|i| self.raws.iter().any(|(r, _)| r == i)).map(Scope::Raw);
        }
        if let Some((i, _)) = self.statics.iter().find(|(_, s)| s.key == *key) {
            return Some(Scope::Static(*i));
        }
        None
    }

    /// Checks a handshake message's MAC with the pair's secret.
    fn mac_ok(&mut self, k: (Scope, PublicKey), covered: &[u8], got: &[u8; MAC_LEN]) -> bool {
        let ok = self.peers.get(&k).and_then(|p| p.secret).is_some_and(|s| mac(&s, covered) == *got);
        if !ok {
            self.stats.bad_macs += 1;
        }
        ok
    }

    fn receive(&mut self, ifindex: Option<IfIndex>, src: SocketAddr, data: &[u8], auth: &mut dyn LinkAuth) {
        let (msg, covered) = match LinkMessage::decode(data) {
            Ok(x) => x,
            Err(_) => {
                self.stats.bad_datagrams += 1;
                return;
            }
        };
        let covered = &data[..covered];
        let me = self.cfg.key;
        let sender = match &msg {
            LinkMessage::Beacon { key, .. } => key,
            LinkMessage::Offer { from, .. }
            | LinkMessage::Answer { from, .. }
            | LinkMessage::Confirm { from, .. } => from,
        };
        if sender.is_low_order() {
            self.stats.low_order_keys += 1;
            return;
        }
        match msg {
            LinkMessage::Beacon { key, credential } => {
                self.stats.beacons_in += 1;
                let Some(scope @ Scope::Raw(_)) = self.scope_of(ifindex, &src, &key) else { return };
                if !self.known_or_admitted(scope, key, &credential, src, auth) {
                    return;
                }
                let now = self.now;
                let Some(p) = self.peers.get_mut(&(scope, key)) else { return };
                p.last_seen = now;
                if p.addr.is_none() || p.tunnel.is_none() {
                    p.addr = Some(src);
                }
                if p.tunnel.is_none() && p.offers.is_empty() {
                    self.send_offer((scope, key));
                }
            }
            LinkMessage::Offer { from, to, nonce, stamp, credential, mac } => {
                if to != me {
                    return;
                }
                let scope = match self.scope_of(ifindex, &src, &from) {
                    Some(s) => s,
                    None if self.cfg.accept_remote => Scope::Remote,
                    None => return,
                };
                let k = (scope, from);
                if let Some(p) = self.peers.get(&k) {
                    // Same run and not newer: a replay (or a reordered
                    // duplicate). Dropped before any cryptography.
                    if p.last_stamp.is_some_and(|l| l >> 32 == stamp >> 32 && stamp <= l) {
                        self.stats.stale_handshakes += 1;
                        return;
                    }
                    if !self.mac_ok(k, covered, &mac) {
                        return;
                    }
                    if !self.known_or_admitted(scope, from, &credential, src, auth) {
                        return;
                    }
                } else {
                    // A new neighbour: admitted (budget, verdict, secret)
                    // before its MAC can even be checked.
                    if !self.known_or_admitted(scope, from, &credential, src, auth) {
                        return;
                    }
                    if !self.mac_ok(k, covered, &mac) {
                        self.drop_peer(k);
                        return;
                    }
                }
                self.answer(k, nonce, stamp, src, ifindex);
            }
            LinkMessage::Answer { from, to, echo, nonce, port: their_port, credential, mac } => {
                if to != me {
                    return;
                }
                let Some(scope) = self.find_scope(ifindex, &src, &from) else { return };
                let k = (scope, from);
                // Matched to our Offer first: a forged Answer costs a lookup.
                let stamp =
                    self.peers.get(&k).and_then(|p| p.offers.iter().find(|(n, _)| *n == echo)).map(|x| x.1);
                let Some(stamp) = stamp else {
                    self.stats.stale_handshakes += 1;
                    return;
                };
                if !self.mac_ok(k, covered, &mac) {
                    return;
                }
                if !self.known_or_admitted(scope, from, &credential, src, auth) {
                    return;
                }
                let Some(my_port) = self.commit_port(k) else { return };
                let Some(p) = self.peers.get_mut(&k) else { return };
                p.offers.clear();
                let confirm = LinkMessage::Confirm {
                    from: me,
                    to: from,
                    echo: nonce,
                    stamp,
                    port: my_port,
                    mac: [0; MAC_LEN],
                };
                let secret = p.secret.expect("admitted with a secret");
                let data = seal(&confirm, |b| super::wire::mac(&secret, b));
                self.outputs.push_back(LinkOutput::Send { ifindex, dst: src, data });
                self.establish(k, src, their_port);
            }
            LinkMessage::Confirm { from, to, echo, stamp, port, mac } => {
                if to != me {
                    return;
                }
                let Some(scope) = self.find_scope(ifindex, &src, &from) else { return };
                let k = (scope, from);
                // Our Answer to that Offer had this nonce, and the Offer is
                // newer than the last handshake completed: a lookup and a
                // hash before any MAC.
                if echo != self.answer_nonce(&from, stamp)
                    || !self.peers.get(&k).is_some_and(|p| p.confirmable(stamp))
                {
                    self.stats.stale_handshakes += 1;
                    return;
                }
                if !self.mac_ok(k, covered, &mac) {
                    return;
                }
                if self.commit_port(k).is_none() {
                    return;
                }
                let now = self.now;
                if let Some(p) = self.peers.get_mut(&k) {
                    p.confirmed = Some((stamp, now));
                }
                self.establish(k, src, port);
            }
        }
    }

    /// Answers an authenticated, fresh Offer with the port we promise (the
    /// committed one, or a tentative one held until a Confirm). Nothing is
    /// kept per Offer: the Answer's nonce is derived from the Offer's stamp.
    fn answer(
        &mut self,
        k: (Scope, PublicKey),
        offer_nonce: u64,
        stamp: u64,
        src: SocketAddr,
        ifindex: Option<IfIndex>,
    ) {
        let free = self.free_port();
        let answer_nonce = self.answer_nonce(&k.1, stamp);
        let (me, cred, now) = (self.cfg.key, self.cfg.credential.clone(), self.now);
        let Some(p) = self.peers.get_mut(&k) else { return };
        p.last_stamp = Some(stamp);
        let run = (stamp >> 32) as u32;
        if !p.runs.iter().any(|(r, _)| *r == run) {
            if p.runs.len() >= MAX_RUNS {
                p.runs.remove(0);
            }
            p.runs.push((run, now));
        }
        let port = match p.port.or(p.tentative_port).or(free) {
            Some(port) => port,
            None => {
                self.stats.table_full += 1;
                return;
            }
        };
        if p.port.is_none() {
            p.tentative_port = Some(port);
        }
        let reply = LinkMessage::Answer {
            from: me,
            to: k.1,
            echo: offer_nonce,
            nonce: answer_nonce,
            port,
            credential: cred,
            mac: [0; MAC_LEN],
        };
        let secret = p.secret.expect("admitted with a secret");
        let data = seal(&reply, |b| mac(&secret, b));
        self.outputs.push_back(LinkOutput::Send { ifindex, dst: src, data });
    }

    /// Our port for the pair, committed now that the handshake completes;
    /// `None` if there is no room (ports or tunnel slots).
    fn commit_port(&mut self, k: (Scope, PublicKey)) -> Option<u16> {
        let p = self.peers.get(&k)?;
        if let Some(port) = p.port {
            return Some(port);
        }
        let with_tunnel = self.peers.iter().filter(|((s, _), p)| *s == k.0 && p.tunnel.is_some()).count();
        let port = p.tentative_port.or_else(|| self.free_port());
        match port {
            Some(port) if with_tunnel < self.cfg.max_peers_per_scope => {
                let p = self.peers.get_mut(&k).expect("present");
                p.port = Some(port);
                p.tentative_port = None;
                Some(port)
            }
            _ => {
                self.stats.table_full += 1;
                None
            }
        }
    }

    /// The scope of a handshake message from a peer we already know.
    fn find_scope(&self, ifindex: Option<IfIndex>, src: &SocketAddr, key: &PublicKey) -> Option<Scope> {
        self.scope_of(ifindex, src, key)
            .or_else(|| self.cfg.accept_remote.then_some(Scope::Remote))
            .filter(|s| self.peers.contains_key(&(*s, *key)))
    }

    /// A name for `k`'s tunnel that no other neighbour's tunnel has.
    fn unique_name(&self, k: (Scope, PublicKey)) -> String {
        let taken: Vec<&str> = self
            .peers
            .iter()
            .filter(|(pk, _)| **pk != k)
            .filter_map(|(_, p)| p.tunnel_name.as_deref())
            .collect();
        (0..)
            .map(|alt| tunnel_name_alt(k.0, &k.1, alt))
            .find(|n| !taken.contains(&n.as_str()))
            .expect("some name is free")
    }

    /// A fresh, authenticated message told us the neighbour's address and
    /// port: (re)create its tunnel.
    fn establish(&mut self, k: (Scope, PublicKey), src: SocketAddr, their_port: u16) {
        let (scope, key) = k;
        let (link_type, mtu) = match scope {
            Scope::Raw(i) => match self.raws.iter().find(|(r, _)| *r == i).map(|(_, r)| r) {
                Some(r) => {
                    let lt =
                        if r.link_type == LinkType::Wireless { LinkType::Wireless } else { LinkType::Tunnel };
                    (lt, r.mtu.saturating_sub(WG_OVERHEAD).max(1280))
                }
                None => return,
            },
            Scope::Static(_) | Scope::Remote => (LinkType::Tunnel, 1420),
        };
        let name = match self.peers.get(&k) {
            Some(p) if p.verified => p.tunnel_name.clone().unwrap_or_else(|| self.unique_name(k)),
            _ => return,
        };
        let now = self.now;
        let p = self.peers.get_mut(&k).expect("known");
        let Some(listen_port) = p.port else { return };
        p.tunnel_name = Some(name.clone());
        p.their_port = Some(their_port);
        p.addr = Some(src);
        p.last_seen = now;
        p.retry_ms = self.cfg.retry_ms;
        let endpoint = match src {
            SocketAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(*a.ip(), their_port, 0, a.scope_id())),
            SocketAddr::V4(a) => SocketAddr::new(IpAddr::V4(*a.ip()), their_port),
        };
        let spec = TunnelSpec {
            name,
            scope,
            peer_key: key,
            peer_name: p.name.clone(),
            listen_port,
            endpoint,
            mtu,
            link_type,
            expires_unix: p.expires_unix,
        };
        if p.tunnel.as_ref() != Some(&spec) {
            p.tunnel = Some(spec.clone());
            self.outputs.push_back(LinkOutput::TunnelUp(spec));
        }
    }

    fn send_offer(&mut self, k: (Scope, PublicKey)) {
        let nonce = self.nonce();
        self.offers_sent = self.offers_sent.wrapping_add(1);
        let stamp = u64::from(self.run) << 32 | u64::from(self.offers_sent);
        let (me, cred, now) = (self.cfg.key, self.cfg.credential.clone(), self.now);
        let max_retry = self.cfg.retry_ms * 16;
        let Some(p) = self.peers.get_mut(&k) else { return };
        let (Some(dst), Some(secret)) = (p.addr, p.secret) else { return };
        // Each copy has its own nonce and stamp; an Answer to any of the
        // last few counts (it may be late).
        if p.offers.len() >= 4 {
            p.offers.remove(0);
        }
        p.offers.push((nonce, stamp));
        p.next_offer = now.plus_ms(p.retry_ms);
        p.retry_ms = (p.retry_ms * 2).min(max_retry);
        let offer =
            LinkMessage::Offer { from: me, to: k.1, nonce, stamp, credential: cred, mac: [0; MAC_LEN] };
        let ifindex = match k.0 {
            Scope::Raw(i) => Some(i),
            Scope::Static(_) | Scope::Remote => None,
        };
        let data = seal(&offer, |b| mac(&secret, b));
        self.outputs.push_back(LinkOutput::Send { ifindex, dst, data });
    }

    fn start_static(&mut self, index: u32, auth: &mut dyn LinkAuth) {
        let Some(s) = self.statics.get(&index).cloned() else { return };
        let scope = Scope::Static(index);
        if let Some(p) = self.peers.get_mut(&(scope, s.key)) {
            if p.tunnel.is_none() && s.addr.is_some() {
                p.addr = s.addr;
            }
            return;
        }
        // A configured static peer is admitted provisionally; its
        // credential is checked when its Answer or Offer arrives.
        let v = Authorised { name: s.name.clone(), expires_unix: None };
        if self.admit((scope, s.key), v, Vec::new(), s.addr, false, auth) {
            self.send_offer((scope, s.key));
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
                self.outputs.push_back(LinkOutput::TunnelDown { name: t.name });
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
            match auth.authorise(&k.1, &cred, self.at) {
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
