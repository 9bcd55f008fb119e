//! The zero-trust mesh core: everything weft decides about neighbours,
//! credentials and routes, as one pure state machine beside the Babel
//! engine (see `docs/ARCHITECTURE.md`).
//!
//! It owns the link manager (who may be a neighbour, and the tunnels that
//! follow), the known-node table (every credential seen, with its verdict),
//! the credential exchange in TLV 224, the route filter, the refusal
//! bookkeeping, and the judgement of what time it is ([`clock`]: a router
//! whose wall clock is wrong at boot still joins the mesh). Like the engine it is sans-IO: inputs arrive with `now` (the
//! monotonic clock) and `wall` (the wall clock, Unix seconds), outputs are
//! data drained with [`MeshCore::poll_output`], and [`MeshCore::poll_timeout`]
//! says when it next needs [`MeshCore::handle_timeout`]. It never reads a
//! clock, opens a socket or draws randomness (the seed is an input).
//!
//! Credentials of distant nodes travel in TLV 224: every node sends its own
//! credential to its tunnel neighbours, and asks the neighbour that
//! advertised a route for the credential of an origin it does not know. A
//! route learned over a tunnel is used only if its origin's credential is
//! known, valid now, and grants the prefix. Credentials arriving on plain
//! Babel interfaces (babeld/BIRD compatibility) are ignored: nobody there
//! is authenticated, so they are neither trusted nor worth a signature
//! check; on tunnels, signature checks are budgeted per interface.

pub mod auth;
pub mod clock;
pub mod e2e;
pub mod filter;
pub mod known;
pub mod origin;
pub mod policy;
pub mod refusals;
pub mod tlv;
pub mod views;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};

use crate::babel::packet::Destination;
use crate::babel::{
    FilterScope, FilterVerdict, IfIndex, LinkType, Prefix, RouteQuery, RouterId, SeqNo, Time,
};
use crate::link::{LinkConfig, LinkInput, LinkManager, LinkOutput, TunnelSpec};
use crate::trust::{derive, Credential, NodePrivateKey, PublicKey, TrustStore, TrustTime};

pub use auth::{CryptoCounters, TrustContext};
pub use clock::{ClockEvent, ClockState, TrustClock};
pub use filter::{RouteFilter, RouteVerdict};
pub use known::{Grants, KnownNode, KnownNodes, Learned};
use origin::Set;
use refusals::Refusals;
use tlv::{credential_chunks, MeshTlv, Reassembly};

/// What the core starts with.
pub struct MeshConfig {
    pub key: NodePrivateKey,
    pub credential: Option<Credential>,
    pub store: TrustStore,
    /// Keys admitted by the allow-list (`list trusted_key`).
    pub trusted_keys: Vec<PublicKey>,
    /// WireGuard listen ports: `listen_port .. listen_port + listen_port_range`.
    pub listen_port: u16,
    pub listen_port_range: u16,
    /// 32 bytes from the OS random source: the link manager's nonces.
    pub seed: [u8; 32],
    /// The latest of the time floor persisted by the last run and the
    /// binary's build time (Unix seconds): the time is at least that.
    pub time_floor: u64,
    /// One more than the epoch the last run with this key signed at (kept
    /// on flash beside the key): our sets must be newer than the ones our
    /// neighbours still hold, also after a reboot that lost the clock, the
    /// seqno and the time floor (OpenWrt's state directory is tmpfs).
    pub epoch_floor: u32,
    /// Origin-signed announcements: routes from an origin whose credential
    /// has a signing key are used only as its verified set allows.
    pub origin_signatures: bool,
    /// End to end: the UDP port of our end-to-end interface, signed into
    /// our announcement set; `None`: we do not speak end to end.
    pub e2e_port: Option<u16>,
}

impl MeshConfig {
    /// Defaults for everything but the identity, the trust store, the seed
    /// and the time floor.
    pub fn new(
        key: NodePrivateKey,
        credential: Option<Credential>,
        store: TrustStore,
        seed: [u8; 32],
        time_floor: u64,
    ) -> MeshConfig {
        MeshConfig {
            key,
            credential,
            store,
            trusted_keys: Vec::new(),
            listen_port: crate::config::schema::DEFAULT_LISTEN_PORT,
            listen_port_range: crate::config::schema::DEFAULT_LISTEN_PORT_RANGE,
            seed,
            time_floor,
            epoch_floor: 0,
            origin_signatures: true,
            e2e_port: None,
        }
    }
}

/// Something that happened, for the core.
#[derive(Debug)]
pub enum MeshInput<'a> {
    /// A raw mesh interface (`wireguard '1'`) is usable: discovery runs there.
    RawUp {
        ifindex: IfIndex,
        name: String,
        link_type: LinkType,
        mtu: u32,
    },
    RawDown {
        ifindex: IfIndex,
    },
    /// A static peer from the configuration, its address resolved.
    StaticPeer {
        index: u32,
        name: String,
        key: PublicKey,
        addr: Option<SocketAddr>,
    },
    RemoveStaticPeer {
        index: u32,
    },
    /// A discovery datagram (UDP 6698); `ifindex` for link-local sources.
    Datagram {
        ifindex: Option<IfIndex>,
        src: SocketAddr,
        data: &'a [u8],
    },
    /// A TLV 224 body the engine received on a Babel interface.
    Extension {
        ifindex: IfIndex,
        from: Ipv6Addr,
        body: &'a [u8],
    },
    /// The engine's route filter did not let an announcement be used.
    Filtered {
        query: RouteQuery,
        verdict: FilterVerdict,
    },
    /// A tunnel's WireGuard handshake is recent: its neighbour is alive.
    TunnelAlive {
        name: String,
    },
    /// The Babel interfaces that are weft tunnels, now.
    TunnelInterfaces(BTreeSet<IfIndex>),
    /// What the engine originates now (`Output::Origin`): signed and sent.
    Origin {
        seqno: SeqNo,
        prefixes: Vec<Prefix>,
    },
    /// Trust material was reloaded (CAs, allow-list, revocations, our
    /// credential): every neighbour and origin is judged again.
    TrustChanged {
        store: Box<TrustStore>,
        trusted_keys: Vec<PublicKey>,
        credential: Option<Credential>,
    },
}

/// Something the core wants done.
#[derive(Clone, Debug)]
pub enum MeshOutput {
    /// A discovery datagram to send.
    Send {
        dst: SocketAddr,
        data: Vec<u8>,
    },
    /// Create (or reconfigure) this tunnel.
    TunnelUp(TunnelSpec),
    TunnelDown {
        name: String,
    },
    /// A TLV 224 body for the engine to send (`Input::SendExtension`).
    Extension {
        ifindex: IfIndex,
        dst: Destination,
        body: Vec<u8>,
    },
    /// The route filter changed: give the engine this one, which judges
    /// only the routes in the scope differently from the one before.
    Filter(RouteFilter, FilterScope),
    /// A line for the log.
    Log {
        level: log::Level,
        message: String,
    },
}

/// Counters for `weft status`.
#[derive(Default, Clone, Debug, serde::Serialize)]
pub struct MeshStats {
    pub refused_neighbours: u64,
    pub credentials_received: u64,
    pub credentials_rejected: u64,
    /// TLV 224 bodies from plain Babel interfaces, ignored.
    pub credentials_from_plain_interfaces: u64,
    /// Credentials received on a tunnel beyond its verification budget.
    pub credentials_over_budget: u64,
    /// Origin-signed announcement sets.
    pub origin: OriginStats,
}

/// What happened to announcement sets (origin signatures).
#[derive(Default, Clone, Debug, serde::Serialize)]
pub struct OriginStats {
    /// Sets received over tunnels.
    pub received: u64,
    /// Signatures checked, and found good.
    pub verified: u64,
    pub bad_signature: u64,
    /// Not newer than the set already held, or a copy of it (no check).
    pub stale: u64,
    /// Malformed, or from an origin without a valid credential with a
    /// signing key (nothing to check against).
    pub unverifiable: u64,
    pub over_budget: u64,
    /// Sets asked of a neighbour for an announcement held for want of one.
    pub requested: u64,
    /// (tunnel, origin, seqno) whose announcements were held 30 s without
    /// the set coming, and then refused.
    pub missing: u64,
}

/// Our own identity as the core sees it.
pub struct Identity {
    pub public: PublicKey,
    pub router_id: RouterId,
    pub credential: Option<Credential>,
}

const TICK_MS: u64 = 1000;
const CREDENTIAL_REQUEST_MS: u64 = 5000;
const CREDENTIAL_REANNOUNCE_MS: u64 = 60_000;
/// Which signature-check budget of a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    Credentials,
    Sets,
}

/// An announcement held this long for want of its origin's set (three
/// requests unanswered) is refused; that many such (tunnel, origin, seqno)
/// are remembered at most.
const HELD_MS: u64 = 30_000;
const MAX_HELD: usize = 256;

/// Sets kept while their origin's credential is on its way.
const PARKED_SETS: usize = 64;
/// An origin's set is asked of a neighbour at most this often.
const SET_REQUEST_MS: u64 = 1000;
/// Credentials verified per second per tunnel (a burst of twice that),
/// received in TLV 224: a neighbour may relay a whole mesh's, but not make
/// us check signatures as fast as it can send.
const TUNNEL_VERIFY_PER_S: u64 = 20;
/// The same for the whole node, every tunnel together (burst 400): many
/// tunnels cannot multiply the work, at the price of a slower cold start
/// in a large mesh (1 000 origins: about 12 s of sets after the burst).
const NODE_VERIFY_PER_S: u64 = 50;
/// A tunnel that sent a set with a bad signature gets no set checks for this long.
const BAD_SET_PENALTY_MS: u64 = 60_000;
const NODE_VERIFY_BURST: u64 = 400;

/// Refills a token bucket (tokens, last refill) and returns its tokens.
fn bucket_refill(b: &mut (u64, Time), now: Time, per_s: u64, burst: u64) -> u64 {
    let refill = now.since(b.1) * per_s / 1000;
    if refill > 0 {
        b.0 = (b.0 + refill).min(burst);
        // Keep the fraction of a token not yet earned.
        b.1 = b.1.plus_ms(refill * 1000 / per_s);
    }
    b.0
}

pub struct MeshCore {
    id: Identity,
    auth: TrustContext,
    trusted_keys: Vec<PublicKey>,
    link: LinkManager,
    clock: TrustClock,
    reassembly: Reassembly,
    /// Sets too large for one TLV, per sender (apart from credentials, so
    /// that neither evicts the other's pieces).
    set_reassembly: Reassembly,
    tunnel_ifs: BTreeSet<IfIndex>,
    /// Signature checks left per tunnel interface, and when last refilled.
    tunnel_budget: Vec<((IfIndex, Budget), (u64, Time))>,
    /// Announcements held for want of a set: since when, per (tunnel,
    /// origin, seqno); and those held too long, refused by the filter.
    held_since: Vec<((IfIndex, RouterId, SeqNo), Time)>,
    missing: Vec<(IfIndex, RouterId, SeqNo)>,
    /// The node's, per kind (credentials, sets).
    node_budget: [(u64, Time); 2],
    /// Origins whose credential we asked for, and when.
    requested: HashMap<RouterId, Time>,
    /// Origin signatures: our key pair, our current set, and the verified
    /// sets of other origins (one per origin: the newest).
    signing: ed25519_compact::KeyPair,
    own_set: Option<Set>,
    own_epoch: u32,
    origins: origin::Sets,
    /// Sets that arrived before their origin's credential: checked when it
    /// is learned (a few, the newest per origin; see `PARKED_SETS`).
    parked: Vec<(IfIndex, Set)>,
    /// Origins whose set we asked for, and when.
    set_requested: HashMap<RouterId, Time>,
    origin_signatures: bool,
    e2e_port: Option<u16>,
    /// Tunnel interfaces that got our credential, and when.
    announced_to: HashMap<IfIndex, Time>,
    next_tick: Time,
    /// What the filter must judge anew besides the known nodes whose
    /// verdicts changed (those the known-node table tracks itself).
    stale: FilterScope,
    filter: RouteFilter,
    mesh_address: Option<Ipv6Addr>,
    stats: MeshStats,
    refusals: Refusals,
    outputs: VecDeque<MeshOutput>,
    now: Time,
}

impl MeshCore {
    pub fn new(cfg: MeshConfig, now: Time, wall: u64) -> MeshCore {
        let public = cfg.key.public_key();
        let signing = origin::signing_keypair(&cfg.key);
        let router_id = derive::router_id(&public);
        let mut lc = LinkConfig::new(
            public,
            cfg.credential.as_ref().map(|c| c.to_bytes().to_vec()).unwrap_or_default(),
        );
        lc.port_base = cfg.listen_port;
        lc.port_count = cfg.listen_port_range.max(1);
        let mesh_address = cfg.store.mesh_prefix().map(|m| m.address_for(&public));
        let (clock, events) = TrustClock::new(now, wall, cfg.time_floor);
        let mut core = MeshCore {
            id: Identity { public, router_id, credential: cfg.credential },
            auth: TrustContext::new(cfg.key, cfg.store),
            trusted_keys: cfg.trusted_keys,
            link: LinkManager::new(lc, cfg.seed),
            clock,
            reassembly: Reassembly::default(),
            set_reassembly: Reassembly::default(),
            tunnel_ifs: BTreeSet::new(),
            tunnel_budget: Vec::new(),
            held_since: Vec::new(),
            missing: Vec::new(),
            node_budget: [(NODE_VERIFY_BURST, now); 2],
            requested: HashMap::new(),
            signing,
            own_set: None,
            own_epoch: (cfg.time_floor.min(u32::MAX as u64) as u32).max(cfg.epoch_floor),
            origins: origin::Sets::default(),
            parked: Vec::new(),
            set_requested: HashMap::new(),
            origin_signatures: cfg.origin_signatures,
            e2e_port: cfg.e2e_port,
            announced_to: HashMap::new(),
            next_tick: now,
            stale: FilterScope::everything(),
            filter: RouteFilter::default(),
            mesh_address,
            stats: MeshStats::default(),
            refusals: Refusals::default(),
            outputs: VecDeque::new(),
            now,
        };
        core.clock_events(events);
        core.revocation_times();
        if let Some(c) = core.id.credential.clone() {
            let at = core.at();
            core.auth.learn(router_id, c.to_bytes(), at);
            match core.auth.store.verify_at(&c, core.at()) {
                Ok(v) => core.log(
                    log::Level::Info,
                    format!(
                        "our credential: {} (expires {})",
                        v.name.as_deref().unwrap_or("?"),
                        crate::trust::time::iso8601(c.body().not_after)
                    ),
                ),
                Err(e) => core.log(
                    log::Level::Warn,
                    format!("our own credential does not verify: {e} (neighbours will refuse us)"),
                ),
            }
            let ours = core.signing_public();
            match c.body().signing_key {
                Some(k) if k == ours => {}
                Some(_) => core.log(
                    log::Level::Warn,
                    "our credential's signing key is not the one derived from our private key: neighbours \
                     will hold back every route we originate (weft pubkey --signing; weft ca sign --signing-key)"
                        .into(),
                ),
                None => core.log(
                    log::Level::Info,
                    "our credential has no signing key: neighbours take our routes without an origin \
                     signature (weft pubkey --signing; weft ca sign --signing-key)"
                        .into(),
                ),
            }
        }
        for k in core.trusted_keys.clone() {
            core.auth.known.learn_allowed(&core.auth.store, &k);
        }
        core.take_news();
        core.refresh_filter();
        core
    }

    // ----- sans-IO interface -------------------------------------------

    pub fn handle_input(&mut self, now: Time, wall: u64, input: MeshInput<'_>) {
        self.observe(now, wall);
        match input {
            MeshInput::RawUp { ifindex, name, link_type, mtu } => {
                self.link_input(LinkInput::RawUp { ifindex, name, link_type, mtu })
            }
            MeshInput::RawDown { ifindex } => self.link_input(LinkInput::RawDown { ifindex }),
            MeshInput::StaticPeer { index, name, key, addr } => {
                self.link_input(LinkInput::StaticPeer { index, name, key, addr })
            }
            MeshInput::RemoveStaticPeer { index } => self.link_input(LinkInput::RemoveStaticPeer { index }),
            MeshInput::Datagram { ifindex, src, data } => {
                self.link_input(LinkInput::Datagram { ifindex, src, data })
            }
            MeshInput::TunnelAlive { name } => self.link_input(LinkInput::TunnelAlive { name }),
            MeshInput::Extension { ifindex, from, body } => self.on_extension(ifindex, from, body),
            MeshInput::Filtered { query, verdict } => self.on_filtered(query, verdict),
            MeshInput::TunnelInterfaces(set) => {
                if set != self.tunnel_ifs {
                    self.tunnel_ifs = set;
                    self.announced_to.retain(|i, _| self.tunnel_ifs.contains(i));
                    self.tunnel_budget.retain(|((i, _), _)| self.tunnel_ifs.contains(i));
                    self.stale.all = true;
                }
            }
            MeshInput::TrustChanged { store, trusted_keys, credential } => {
                self.trust_changed(*store, trusted_keys, credential)
            }
            MeshInput::Origin { seqno, prefixes } => self.own_origin(seqno, prefixes),
        }
        self.refresh_filter();
    }

    pub fn handle_timeout(&mut self, now: Time, wall: u64) {
        self.observe(now, wall);
        let at = self.at();
        self.link.handle_timeout(now, at, &mut self.auth);
        self.absorb_link();
        if now >= self.next_tick {
            self.next_tick = now.plus_ms(TICK_MS);
            self.tick();
        }
        self.refresh_filter();
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        [self.link.poll_timeout(), Some(self.next_tick)].into_iter().flatten().min()
    }

    pub fn poll_output(&mut self) -> Option<MeshOutput> {
        self.outputs.pop_front()
    }

    // ----- views -------------------------------------------------------

    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Our key-derived address in the mesh prefix, if there is one.
    pub fn mesh_address(&self) -> Option<Ipv6Addr> {
        self.mesh_address
    }

    /// The transport prefix (end to end), if the mesh prefix has room.
    pub fn transport_prefix(&self) -> Option<Prefix> {
        self.auth.store.mesh_prefix().and_then(|m| m.transport_prefix())
    }

    /// Our transport address, when we speak end to end.
    pub fn transport_address(&self) -> Option<Ipv6Addr> {
        self.e2e_port?;
        self.auth.store.mesh_prefix().and_then(|m| m.transport_address_for(&self.id.public))
    }

    /// The end-to-end plan for these selected routes (see [`e2e`]), when we
    /// speak end to end.
    pub fn e2e_plan(
        &self,
        selected: &[(Prefix, RouterId)],
        max_peers: usize,
        grace: &[RouterId],
    ) -> Option<e2e::Plan> {
        self.e2e_port?;
        let records = self.origins.records();
        Some(e2e::plan(&e2e::Inputs {
            own: self.id.router_id,
            transport_prefix: self.transport_prefix()?,
            selected,
            nodes: self.filter.grants(),
            records: &records,
            max_peers,
            grace,
        }))
    }

    /// The group-policy table for the end-to-end `plan`: the peers' groups
    /// from their verified credentials, ours from our own.
    pub fn policy_table(&self, plan: &e2e::Plan, local: &policy::Local<'_>) -> Option<policy::Table> {
        let tp = self.transport_prefix()?;
        let nodes = self.filter.grants();
        let peers: Vec<policy::PeerSources<'_>> = plan
            .peers
            .iter()
            .map(|p| policy::PeerSources {
                allowed: &p.allowed,
                groups: nodes.get(&p.router_id).map_or(&[][..], |n| &n.groups[..]),
            })
            .collect();
        let own_groups = self.id.credential.as_ref().map_or(&[][..], |c| &c.body().groups[..]);
        // Installed prefixes neither steered end to end nor unreachable go
        // hop by hop (nodes without end to end, babeld hosts).
        let hop_routes: Vec<Prefix> =
            local.installed.iter().filter(|p| !tp.contains(p) && plan.steer(p).is_none()).copied().collect();
        Some(policy::table(&policy::Inputs {
            local,
            own_groups,
            transport_prefix: tp,
            peers: &peers,
            unreachable: &plan.unreachable,
            hop_routes: &hop_routes,
        }))
    }

    pub fn known(&self) -> &KnownNodes {
        &self.auth.known
    }

    pub fn link(&self) -> &LinkManager {
        &self.link
    }

    pub fn clock(&self) -> &TrustClock {
        &self.clock
    }

    /// The time floor now: what the daemon persists for the next run.
    /// The epoch our sets are signed at now (to be kept for the next run).
    pub fn own_epoch(&self) -> u32 {
        self.own_epoch
    }

    pub fn time_floor(&self) -> u64 {
        self.clock.floor()
    }

    pub fn stats(&self) -> &MeshStats {
        &self.stats
    }

    /// The route filter now in force.
    pub fn filter(&self) -> &RouteFilter {
        &self.filter
    }

    /// Expensive operations done so far.
    pub fn crypto(&self) -> CryptoCounters {
        self.auth.counters()
    }

    /// Entries the refusal bookkeeping holds.
    pub fn refusal_entries(&self) -> usize {
        self.refusals.len()
    }

    /// Our public key for origin-signed announcements.
    pub fn signing_public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.signing.pk.as_ref());
        out
    }

    pub fn origin_signatures_on(&self) -> bool {
        self.origin_signatures
    }

    /// Origins whose verified announcement set we hold.
    pub fn verified_origins(&self) -> usize {
        self.origins.len()
    }

    /// The seqno of an origin's verified announcement set, if we hold one.
    pub fn verified_seqno(&self, rid: &RouterId) -> Option<SeqNo> {
        self.origins.get(rid).map(|s| s.seqno)
    }

    /// Distinct refused (origin, prefix) pairs heard recently.
    pub fn refused_announcements(&self) -> usize {
        self.refusals.refused_announcements(self.now)
    }

    // ----- internals ---------------------------------------------------

    fn at(&self) -> TrustTime {
        self.clock.trust_time()
    }

    fn log(&mut self, level: log::Level, message: String) {
        self.outputs.push_back(MeshOutput::Log { level, message });
    }

    /// A reading of both clocks: a change in the clock's judgement makes
    /// every verdict be looked at again.
    fn observe(&mut self, now: Time, wall: u64) {
        self.now = self.now.max(now);
        let events = self.clock.observe(now, wall);
        self.clock_events(events);
    }

    fn clock_events(&mut self, events: Vec<ClockEvent>) {
        if events.is_empty() {
            return;
        }
        let mut synchronised = false;
        for e in events {
            let level = match e {
                ClockEvent::Unsynchronised { .. } | ClockEvent::JumpedForward { .. } => log::Level::Warn,
                _ => log::Level::Info,
            };
            synchronised |= matches!(
                e,
                ClockEvent::Synchronised { .. }
                    | ClockEvent::JumpedForward { .. }
                    | ClockEvent::JumpBelieved { .. }
            );
            self.log(level, e.to_string());
        }
        if synchronised {
            self.epoch_to_time_floor();
        }
        // The known-node table records whose verdicts changed.
        self.auth.known.recheck_times(self.at());
    }

    /// Revocation lists' issue times are CA-signed times.
    fn revocation_times(&mut self) {
        let times: Vec<u64> = self.auth.store.revocation_issue_times().collect();
        for t in times {
            let events = self.clock.signed_time(t);
            self.clock_events(events);
        }
    }

    fn take_news(&mut self) {
        let times = self.auth.take_news();
        for t in times {
            let events = self.clock.signed_time(t);
            self.clock_events(events);
        }
    }

    fn link_input(&mut self, input: LinkInput<'_>) {
        let at = self.at();
        self.link.handle_input(self.now, at, input, &mut self.auth);
        self.absorb_link();
    }

    /// Takes what the link manager produced: its outputs, and what its
    /// verdicts taught the known-node table and the clock.
    fn absorb_link(&mut self) {
        self.take_news();
        while let Some(o) = self.link.poll_output() {
            match o {
                LinkOutput::Send { dst, data, .. } => self.outputs.push_back(MeshOutput::Send { dst, data }),
                LinkOutput::TunnelUp(spec) => self.outputs.push_back(MeshOutput::TunnelUp(spec)),
                LinkOutput::TunnelDown { name } => self.outputs.push_back(MeshOutput::TunnelDown { name }),
                LinkOutput::Refused { key, scope, reason } => {
                    self.stats.refused_neighbours += 1;
                    for line in self.refusals.neighbour(self.now, &key, scope, &reason) {
                        self.log(log::Level::Info, line);
                    }
                }
            }
        }
    }

    fn send_extension(&mut self, ifindex: IfIndex, dst: Destination, tlv: &MeshTlv) {
        self.outputs.push_back(MeshOutput::Extension { ifindex, dst, body: tlv.encode() });
    }

    /// One signature check on tunnel `ifindex`, if its budget for this
    /// kind of object allows (credentials and sets have one each, so that a
    /// mesh's sets do not slow the credentials down).
    fn tunnel_token(&mut self, ifindex: IfIndex, kind: Budget) -> bool {
        let now = self.now;
        let key = (ifindex, kind);
        let i = match self.tunnel_budget.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.tunnel_budget.push((key, (2 * TUNNEL_VERIFY_PER_S, now)));
                self.tunnel_budget.len() - 1
            }
        };
        let tunnel = &mut self.tunnel_budget[i].1;
        let node = &mut self.node_budget[kind as usize];
        if bucket_refill(tunnel, now, TUNNEL_VERIFY_PER_S, 2 * TUNNEL_VERIFY_PER_S) == 0
            || bucket_refill(node, now, NODE_VERIFY_PER_S, NODE_VERIFY_BURST) == 0
        {
            return false;
        }
        tunnel.0 -= 1;
        node.0 -= 1;
        true
    }

    /// A weft TLV arrived on a Babel interface.
    fn on_extension(&mut self, ifindex: IfIndex, from: Ipv6Addr, body: &[u8]) {
        if !self.tunnel_ifs.contains(&ifindex) {
            self.stats.credentials_from_plain_interfaces += 1;
            return;
        }
        match MeshTlv::decode(body) {
            Some(MeshTlv::CredentialRequest { router_id }) => {
                if let Some(bytes) = self.auth.known.credential_bytes(&router_id).map(<[u8]>::to_vec) {
                    for c in credential_chunks(router_id, &bytes) {
                        self.send_extension(ifindex, Destination::Unicast(from), &c);
                    }
                }
            }
            Some(MeshTlv::Set(bytes)) => {
                self.stats.origin.received += 1;
                self.on_set(ifindex, &bytes)
            }
            // A set is six chunks at most: a larger count would only make
            // us keep pieces.
            Some(MeshTlv::SetChunk { count, .. }) if usize::from(count) > origin::MAX_SET_CHUNKS => {
                self.stats.origin.unverifiable += 1;
            }
            Some(MeshTlv::SetChunk { router_id, index, count, data }) => {
                let Some(bytes) = self.set_reassembly.add(ifindex, router_id, index, count, data) else {
                    return;
                };
                // No bigger than a set can be (the count byte allows 61 kB).
                if bytes.len() <= origin::MAX_SET_LEN {
                    self.stats.origin.received += 1;
                    self.on_set(ifindex, &bytes)
                }
            }
            Some(MeshTlv::SetRequest { router_id }) => {
                let set = if router_id == self.id.router_id {
                    self.own_set.as_ref()
                } else {
                    self.origins.get(&router_id)
                };
                for t in set.map(|s| origin::set_tlvs(s.router_id, &s.bytes)).unwrap_or_default() {
                    self.send_extension(ifindex, Destination::Unicast(from), &t);
                }
            }
            Some(MeshTlv::CredentialChunk { router_id, index, count, data }) => {
                let Some(bytes) = self.reassembly.add(ifindex, router_id, index, count, data) else { return };
                self.stats.credentials_received += 1;
                if self.auth.known.credential_bytes(&router_id) == Some(&bytes[..]) {
                    return;
                }
                if !self.tunnel_token(ifindex, Budget::Credentials) {
                    self.stats.credentials_over_budget += 1;
                    return;
                }
                match self.auth.learn(router_id, &bytes, self.at()) {
                    Learned::Taken { .. } => {
                        self.log(log::Level::Debug, format!("credential for {router_id} learned"));
                        self.take_news();
                        // Its set may have come first (sets are pushed,
                        // credentials pulled).
                        if let Some(i) = self.parked.iter().position(|(_, s)| s.router_id == router_id) {
                            let (ifindex, set) = self.parked.remove(i);
                            self.on_set(ifindex, &set.bytes);
                        }
                    }
                    Learned::Same => {}
                    Learned::Refused => self.stats.credentials_rejected += 1,
                }
            }
            None => {}
        }
    }

    /// The filter held or refused an announcement: ask the neighbour that
    /// made it for the origin's credential (unknown, or known only with a
    /// credential that is not valid: it may have been renewed), and count
    /// refusals.
    fn on_filtered(&mut self, q: RouteQuery, verdict: FilterVerdict) {
        if !self.tunnel_ifs.contains(&q.ifindex) {
            return;
        }
        if verdict == FilterVerdict::Refuse {
            self.refusals.announcement(self.now, q.router_id, q.prefix);
        }
        let signing = match self.auth.known.nodes.get(&q.router_id).map(|k| &k.verdict) {
            Some(Ok(v)) => v.signing_key,
            _ => None,
        };
        let valid = self.auth.known.nodes.get(&q.router_id).is_some_and(|k| k.verdict.is_ok());
        if valid {
            // Held for want of the origin's set at this seqno: ask the
            // neighbour that relayed it (it verified one to relay it).
            let held = verdict == FilterVerdict::Hold
                && signing.is_some()
                && self.origins.get(&q.router_id).is_none_or(|s| q.seqno.newer_than(s.seqno));
            let now = self.now;
            let key = (q.ifindex, q.router_id, q.seqno);
            if held && !self.held_since.iter().any(|(k, _)| *k == key) && self.held_since.len() < MAX_HELD {
                self.held_since.push((key, now));
            }
            if held && self.set_requested.get(&q.router_id).is_none_or(|t| now.since(*t) >= SET_REQUEST_MS) {
                self.set_requested.insert(q.router_id, now);
                self.stats.origin.requested += 1;
                let req = MeshTlv::SetRequest { router_id: q.router_id };
                self.send_extension(q.ifindex, Destination::Unicast(q.neighbour), &req);
            }
            return;
        }
        let now = self.now;
        if self.requested.get(&q.router_id).is_some_and(|t| now.since(*t) < CREDENTIAL_REQUEST_MS) {
            return;
        }
        self.requested.insert(q.router_id, now);
        let req = MeshTlv::CredentialRequest { router_id: q.router_id };
        self.send_extension(q.ifindex, Destination::Unicast(q.neighbour), &req);
        // Its set too, answered after the credential (same neighbour, in
        // order), so that it can be verified on arrival.
        if self.origin_signatures && self.origins.get(&q.router_id).is_none() {
            self.set_requested.insert(q.router_id, now);
            self.stats.origin.requested += 1;
            let req = MeshTlv::SetRequest { router_id: q.router_id };
            self.send_extension(q.ifindex, Destination::Unicast(q.neighbour), &req);
        }
    }

    /// Periodic work: our credential to tunnel neighbours now and then, and
    /// verdicts that lapse by themselves (expiry).
    fn tick(&mut self) {
        let now = self.now;
        self.judge_held(now);
        self.requested.retain(|_, t| now.since(*t) < 10 * CREDENTIAL_REQUEST_MS);
        self.set_requested.retain(|_, t| now.since(*t) < 10 * SET_REQUEST_MS);
        if let Some(c) = &self.id.credential {
            let chunks = credential_chunks(self.id.router_id, c.to_bytes());
            let due: Vec<IfIndex> = self
                .tunnel_ifs
                .iter()
                .filter(|i| {
                    self.announced_to.get(i).is_none_or(|t| now.since(*t) >= CREDENTIAL_REANNOUNCE_MS)
                })
                .copied()
                .collect();
            let set =
                self.own_set.as_ref().map(|s| origin::set_tlvs(s.router_id, &s.bytes)).unwrap_or_default();
            for i in due {
                self.announced_to.insert(i, now);
                for ch in &chunks {
                    self.send_extension(i, Destination::Multicast, ch);
                }
                for s in &set {
                    self.send_extension(i, Destination::Multicast, s);
                }
            }
        }
        self.auth.known.recheck_times(self.at());
    }

    /// What we originate changed: sign the new set and send it to every
    /// tunnel neighbour (they pass it on). The same seqno with other
    /// prefixes takes the next epoch, so that one (epoch, seqno) never
    /// names two sets.
    fn own_origin(&mut self, seqno: SeqNo, prefixes: Vec<Prefix>) {
        if let Some(s) = &self.own_set {
            let mut sorted = prefixes.clone();
            sorted.sort();
            let mut had = s.prefixes.clone();
            had.sort();
            if s.seqno == seqno && had == sorted {
                return;
            }
            if s.seqno == seqno {
                self.own_epoch = self.own_epoch.saturating_add(1);
            }
        }
        self.sign_own(seqno, prefixes);
    }

    /// Signs our set at the current epoch and sends it to every tunnel.
    fn sign_own(&mut self, seqno: SeqNo, prefixes: Vec<Prefix>) {
        match Set::sign_e2e(&self.signing, self.id.router_id, self.own_epoch, seqno, &prefixes, self.e2e_port)
        {
            Ok(set) => {
                let tlvs = origin::set_tlvs(set.router_id, &set.bytes);
                self.own_set = Some(set);
                for i in self.tunnel_ifs.clone() {
                    for t in &tlvs {
                        self.send_extension(i, Destination::Multicast, t);
                    }
                }
            }
            Err(e) => {
                self.own_set = None;
                self.log(
                    log::Level::Error,
                    format!("cannot sign what we originate ({} prefixes): {e}", prefixes.len()),
                );
            }
        }
    }

    /// The clock moved forward (synchronised, or a jump, believed for trust
    /// decisions only after an hour): sign from an epoch at least the time it
    /// says. A router that booted in 1970 (no RTC, no NTP yet) started from
    /// its time floor, maybe below the epoch of its previous run, which its
    /// neighbours still hold and would keep preferring. (Epochs only need to
    /// rise; a wrong time ahead costs nothing but the epoch's headroom.)
    fn epoch_to_time_floor(&mut self) {
        let wall = if self.clock.state() == ClockState::Unsynchronised { 0 } else { self.clock.wall() };
        // Headroom for per-run increments up to 2106.
        let floor = self.time_floor().max(wall).min((u32::MAX - (1 << 20)) as u64) as u32;
        if floor <= self.own_epoch {
            return;
        }
        self.own_epoch = floor;
        // Same seqno, same prefixes, the new epoch: signed and sent again.
        if let Some((seqno, prefixes)) = self.own_set.as_ref().map(|s| (s.seqno, s.prefixes.clone())) {
            self.sign_own(seqno, prefixes);
        }
    }

    /// An announcement set arrived on tunnel `ifindex`: verified at most
    /// once per (origin, epoch, seqno), within the tunnel's budget, then
    /// kept and passed on to the other tunnels.
    fn on_set(&mut self, ifindex: IfIndex, bytes: &[u8]) {
        let Ok(set) = Set::decode(bytes) else {
            self.stats.origin.unverifiable += 1;
            return;
        };
        if set.router_id == self.id.router_id {
            return;
        }
        if let Some(held) = self.origins.get(&set.router_id) {
            if held.bytes == set.bytes || !origin::newer(set.version(), held.version()) {
                self.stats.origin.stale += 1;
                return;
            }
        }
        let key = match self.auth.known.nodes.get(&set.router_id).map(|k| &k.verdict) {
            Some(Ok(v)) => v.signing_key,
            _ => None,
        };
        let Some(key) = key else {
            self.stats.origin.unverifiable += 1;
            // Unknown origin: keep the newest set per origin, a few in all.
            if !self.auth.known.nodes.contains_key(&set.router_id) {
                self.parked.retain(|(_, s)| s.router_id != set.router_id);
                if self.parked.len() >= PARKED_SETS {
                    self.parked.remove(0);
                }
                self.parked.push((ifindex, set));
            }
            return;
        };
        if !self.tunnel_token(ifindex, Budget::Sets) {
            self.stats.origin.over_budget += 1;
            return;
        }
        if !set.verify(&key) {
            self.stats.origin.bad_signature += 1;
            // Relays pass on only sets they verified: a bad one is the
            // sender's doing. Its set checks wait a minute, so that a few
            // such neighbours cannot spend the node's budget for everyone.
            if let Some((_, b)) = self.tunnel_budget.iter_mut().find(|(k, _)| *k == (ifindex, Budget::Sets)) {
                *b = (0, self.now.plus_ms(BAD_SET_PENALTY_MS));
            }
            self.log(
                log::Level::Warn,
                format!("announcement set for {} with a bad signature from tunnel {ifindex}", set.router_id),
            );
            return;
        }
        self.stats.origin.verified += 1;
        let tlvs = origin::set_tlvs(set.router_id, &set.bytes);
        self.stale.origins.push(set.router_id);
        self.origins.insert(set);
        for i in self.tunnel_ifs.clone() {
            if i != ifindex {
                for t in &tlvs {
                    self.send_extension(i, Destination::Multicast, t);
                }
            }
        }
    }

    /// Builds a new route filter if it is stale, and hands it out.
    /// Held announcements whose set came are forgotten; those held 30 s
    /// without it are refused (the filter changes, the engine drops them).
    fn judge_held(&mut self, now: Time) {
        let covered = |origins: &origin::Sets, rid: &RouterId, seqno: SeqNo| {
            origins.get(rid).is_some_and(|s| !seqno.newer_than(s.seqno))
        };
        let stale = &mut self.stale.origins;
        self.missing.retain(|(_, rid, s)| {
            let gone = covered(&self.origins, rid, *s);
            if gone {
                stale.push(*rid);
            }
            !gone
        });
        let mut expired = Vec::new();
        self.held_since.retain(|(k, t)| {
            if covered(&self.origins, &k.1, k.2) {
                return false;
            }
            if now.since(*t) >= HELD_MS {
                expired.push(*k);
                return false;
            }
            true
        });
        for k in expired {
            if !self.missing.contains(&k) {
                if self.missing.len() >= MAX_HELD {
                    // Its announcement is held again, not refused.
                    let (_, rid, _) = self.missing.remove(0);
                    self.stale.origins.push(rid);
                }
                self.missing.push(k);
                self.stats.origin.missing += 1;
                self.stale.origins.push(k.1);
            }
        }
    }

    /// Builds a new route filter if something it reads changed, and hands
    /// it out with the routes it may judge differently: those of the
    /// origins whose credential, set or held announcements changed, and
    /// routes for their key-derived addresses (which no other origin may
    /// announce while they are valid).
    fn refresh_filter(&mut self) {
        if self.stale.is_empty() && !self.auth.known.has_changes() {
            return;
        }
        let before = self.filter.shared_grants();
        let changes = self.auth.known.take_changes();
        let mut scope = std::mem::take(&mut self.stale);
        scope.all |= changes.all;
        if scope.all {
            scope.origins.clear();
        } else {
            let after = self.auth.known.grants();
            for r in &changes.nodes {
                scope.origins.push(*r);
                for n in [before.get(r), after.get(r)].into_iter().flatten() {
                    let own = [n.mesh_address, n.transport_address];
                    scope.prefixes.extend(own.into_iter().flatten().map(|a| Prefix::V6(a, 128)));
                }
            }
            scope.origins.sort();
            scope.origins.dedup();
            scope.prefixes.sort();
            scope.prefixes.dedup();
        }
        let origins = self.origin_signatures.then(|| self.origins.records());
        self.filter = RouteFilter::new(self.auth.known.grants(), self.tunnel_ifs.clone())
            .with_origins(origins)
            .with_missing(self.missing.clone())
            .with_transport_prefix(self.transport_prefix());
        self.outputs.push_back(MeshOutput::Filter(self.filter.clone(), scope));
    }

    fn trust_changed(
        &mut self,
        store: TrustStore,
        trusted_keys: Vec<PublicKey>,
        credential: Option<Credential>,
    ) {
        self.auth.store = store;
        self.revocation_times();
        self.mesh_address = self.auth.store.mesh_prefix().map(|m| m.address_for(&self.id.public));
        self.trusted_keys = trusted_keys;
        let at = self.at();
        self.auth.known.recheck_signatures(&self.auth.store, at);
        for k in self.trusted_keys.clone() {
            self.auth.known.learn_allowed(&self.auth.store, &k);
        }
        self.set_own_credential(credential);
        self.link_input(LinkInput::TrustChanged);
        self.stale.all = true;
    }

    /// Our credential renewed (same key, new contents): beacons, handshakes
    /// and TLV 224 carry the new one from now on, so neighbours keep our
    /// tunnels and routes past the old expiry without a restart.
    fn set_own_credential(&mut self, credential: Option<Credential>) {
        let bytes = |c: &Option<Credential>| c.as_ref().map(|c| c.to_bytes().to_vec());
        if bytes(&credential) == bytes(&self.id.credential) {
            return;
        }
        match &credential {
            Some(c) => {
                self.log(
                    log::Level::Info,
                    format!(
                        "our credential is renewed (expires {})",
                        crate::trust::time::iso8601(c.body().not_after)
                    ),
                );
                let at = self.at();
                self.auth.learn(self.id.router_id, c.to_bytes(), at);
                self.take_news();
            }
            None => {
                self.log(log::Level::Warn, "our credential file is gone: neighbours will refuse us".into())
            }
        }
        self.link.set_credential(bytes(&credential).unwrap_or_default());
        self.id.credential = credential;
        // Every tunnel neighbour gets the new one at the next tick.
        self.announced_to.clear();
    }
}

/// The link-local address of a node's tunnel interfaces: fe80::/64 with the
/// key-derived interface identifier (stable across restarts).
pub fn tunnel_link_local(key: &PublicKey) -> Ipv6Addr {
    let iid = derive::mesh_interface_id(key);
    Ipv6Addr::from((0xfe80u128 << 112) | iid as u128)
}
