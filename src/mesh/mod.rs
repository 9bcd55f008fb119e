//! The zero-trust mesh core: everything weft decides about neighbours,
//! credentials and routes, as one pure state machine beside the Babel
//! engine (see `docs/ARCHITECTURE.md`).
//!
//! It owns the link manager (who may be a neighbour, and the tunnels that
//! follow), the known-node table (every credential seen, with its verdict),
//! the credential exchange in TLV 224, the route filter and the refusal
//! bookkeeping. Like the engine it is sans-IO: inputs arrive with `now` (the
//! monotonic clock) and `wall` (the wall clock, Unix seconds), outputs are
//! data drained with [`MeshCore::poll_output`], and [`MeshCore::poll_timeout`]
//! says when it next needs [`MeshCore::handle_timeout`]. It never reads a
//! clock, opens a socket or draws randomness (the seed is an input).
//!
//! Credentials of distant nodes travel in TLV 224: every node sends its own
//! credential to its tunnel neighbours, and asks the neighbour that
//! advertised a route for the credential of an origin it does not know. A
//! route learned over a tunnel is used only if its origin's credential is
//! known, valid now, and grants the prefix.

pub mod auth;
pub mod filter;
pub mod known;
pub mod refusals;
pub mod tlv;
pub mod views;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{Ipv6Addr, SocketAddr};

use crate::babel::packet::Destination;
use crate::babel::{FilterVerdict, IfIndex, LinkType, RouteQuery, RouterId, Time};
use crate::link::{LinkConfig, LinkInput, LinkManager, LinkOutput, TunnelSpec};
use crate::trust::{derive, Credential, NodePrivateKey, PublicKey, TrustStore};

pub use auth::TrustContext;
pub use filter::{RouteFilter, RouteVerdict};
pub use known::{KnownNode, KnownNodes};
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
    /// Seed of the link manager's nonces (from the OS random source).
    pub seed: u64,
}

impl MeshConfig {
    /// Defaults for everything but the identity and the trust store.
    pub fn new(
        key: NodePrivateKey,
        credential: Option<Credential>,
        store: TrustStore,
        seed: u64,
    ) -> MeshConfig {
        MeshConfig {
            key,
            credential,
            store,
            trusted_keys: Vec::new(),
            listen_port: crate::config::schema::DEFAULT_LISTEN_PORT,
            listen_port_range: crate::config::schema::DEFAULT_LISTEN_PORT_RANGE,
            seed,
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
    /// The route filter changed: give the engine this one.
    Filter(RouteFilter),
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

pub struct MeshCore {
    id: Identity,
    auth: TrustContext,
    trusted_keys: Vec<PublicKey>,
    link: LinkManager,
    known: KnownNodes,
    reassembly: Reassembly,
    tunnel_ifs: BTreeSet<IfIndex>,
    /// Origins whose credential we asked for, and when.
    requested: HashMap<RouterId, Time>,
    /// Tunnel interfaces that got our credential, and when.
    announced_to: HashMap<IfIndex, Time>,
    next_tick: Time,
    /// The Unix second at which the filter must be rebuilt (a verdict
    /// lapses); `None`: now.
    filter_at: Option<u64>,
    filter: RouteFilter,
    mesh_address: Option<Ipv6Addr>,
    stats: MeshStats,
    refusals: Refusals,
    outputs: VecDeque<MeshOutput>,
    now: Time,
    wall: u64,
}

impl MeshCore {
    pub fn new(cfg: MeshConfig, now: Time, wall: u64) -> MeshCore {
        let public = cfg.key.public_key();
        let router_id = derive::router_id(&public);
        let mut lc = LinkConfig::new(
            public,
            cfg.credential.as_ref().map(|c| c.to_bytes().to_vec()).unwrap_or_default(),
        );
        lc.port_base = cfg.listen_port;
        lc.port_count = cfg.listen_port_range.max(1);
        let mesh_address = cfg.store.mesh_prefix().map(|m| m.address_for(&public));
        let mut core = MeshCore {
            id: Identity { public, router_id, credential: cfg.credential },
            auth: TrustContext::new(cfg.key, cfg.store),
            trusted_keys: cfg.trusted_keys,
            link: LinkManager::new(lc, cfg.seed),
            known: KnownNodes::default(),
            reassembly: Reassembly::default(),
            tunnel_ifs: BTreeSet::new(),
            requested: HashMap::new(),
            announced_to: HashMap::new(),
            next_tick: now,
            filter_at: None,
            filter: RouteFilter::default(),
            mesh_address,
            stats: MeshStats::default(),
            refusals: Refusals::default(),
            outputs: VecDeque::new(),
            now,
            wall,
        };
        if let Some(c) = core.id.credential.clone() {
            core.known.learn(&core.auth.store, router_id, c.to_bytes(), wall);
            match core.auth.store.verify(&c, wall) {
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
        }
        for k in core.trusted_keys.clone() {
            core.known.learn_allowed(&core.auth.store, &k);
        }
        core.refresh_filter();
        core
    }

    // ----- sans-IO interface -------------------------------------------

    pub fn handle_input(&mut self, now: Time, wall: u64, input: MeshInput<'_>) {
        self.now = now;
        self.wall = wall;
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
                    self.filter_at = None;
                }
            }
            MeshInput::TrustChanged { store, trusted_keys, credential } => {
                self.trust_changed(*store, trusted_keys, credential)
            }
        }
        self.refresh_filter();
    }

    pub fn handle_timeout(&mut self, now: Time, wall: u64) {
        self.now = now;
        self.wall = wall;
        self.link.handle_timeout(now, wall, &mut self.auth);
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

    pub fn known(&self) -> &KnownNodes {
        &self.known
    }

    pub fn link(&self) -> &LinkManager {
        &self.link
    }

    pub fn stats(&self) -> &MeshStats {
        &self.stats
    }

    /// The route filter now in force.
    pub fn filter(&self) -> &RouteFilter {
        &self.filter
    }

    /// Distinct refused (origin, prefix) pairs heard recently.
    pub fn refused_announcements(&self) -> usize {
        self.refusals.refused_announcements(self.now)
    }

    // ----- internals ---------------------------------------------------

    fn log(&mut self, level: log::Level, message: String) {
        self.outputs.push_back(MeshOutput::Log { level, message });
    }

    fn link_input(&mut self, input: LinkInput<'_>) {
        self.link.handle_input(self.now, self.wall, input, &mut self.auth);
        self.absorb_link();
    }

    /// Takes what the link manager produced: its outputs, and the
    /// credentials it verified (they go into the known-node table at once,
    /// so a renewed neighbour's routes do not wait for a TLV 224 exchange).
    fn absorb_link(&mut self) {
        for bytes in self.auth.take_verified() {
            let Ok(c) = Credential::from_bytes(&bytes) else { continue };
            let rid = derive::router_id(&c.body().public_key);
            if self.known.credential_bytes(&rid) != Some(&bytes[..])
                && self.known.learn(&self.auth.store, rid, &bytes, self.wall)
            {
                self.log(log::Level::Debug, format!("credential for {rid} learned from the link layer"));
                self.filter_at = None;
            }
        }
        while let Some(o) = self.link.poll_output() {
            match o {
                LinkOutput::Send { dst, data, .. } => self.outputs.push_back(MeshOutput::Send { dst, data }),
                LinkOutput::TunnelUp(spec) => self.outputs.push_back(MeshOutput::TunnelUp(spec)),
                LinkOutput::TunnelDown { name } => self.outputs.push_back(MeshOutput::TunnelDown { name }),
                LinkOutput::Refused { key, scope, reason } => {
                    self.stats.refused_neighbours += 1;
                    if let Some(line) = self.refusals.neighbour(&key, scope, &reason) {
                        self.log(log::Level::Info, line);
                    }
                }
            }
        }
    }

    fn send_extension(&mut self, ifindex: IfIndex, dst: Destination, tlv: &MeshTlv) {
        self.outputs.push_back(MeshOutput::Extension { ifindex, dst, body: tlv.encode() });
    }

    /// A weft TLV arrived on a Babel interface.
    fn on_extension(&mut self, ifindex: IfIndex, from: Ipv6Addr, body: &[u8]) {
        match MeshTlv::decode(body) {
            Some(MeshTlv::CredentialRequest { router_id }) => {
                if let Some(bytes) = self.known.credential_bytes(&router_id).map(<[u8]>::to_vec) {
                    for c in credential_chunks(router_id, &bytes) {
                        self.send_extension(ifindex, Destination::Unicast(from), &c);
                    }
                }
            }
            Some(MeshTlv::CredentialChunk { router_id, index, count, data }) => {
                if let Some(bytes) = self.reassembly.add(ifindex, router_id, index, count, data) {
                    self.stats.credentials_received += 1;
                    if self.known.learn(&self.auth.store, router_id, &bytes, self.wall) {
                        self.log(log::Level::Debug, format!("credential for {router_id} learned"));
                        self.filter_at = None;
                    } else if !self.known.nodes.contains_key(&router_id) {
                        self.stats.credentials_rejected += 1;
                    }
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
        let valid = self.known.nodes.get(&q.router_id).is_some_and(|k| k.verdict.is_ok());
        if valid {
            return;
        }
        let now = self.now;
        if self.requested.get(&q.router_id).is_some_and(|t| now.since(*t) < CREDENTIAL_REQUEST_MS) {
            return;
        }
        self.requested.insert(q.router_id, now);
        let req = MeshTlv::CredentialRequest { router_id: q.router_id };
        self.send_extension(q.ifindex, Destination::Unicast(q.neighbour), &req);
    }

    /// Periodic work: our credential to tunnel neighbours now and then, and
    /// verdicts that lapse by themselves (expiry).
    fn tick(&mut self) {
        let now = self.now;
        self.requested.retain(|_, t| now.since(*t) < 10 * CREDENTIAL_REQUEST_MS);
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
            for i in due {
                self.announced_to.insert(i, now);
                for ch in &chunks {
                    self.send_extension(i, Destination::Multicast, ch);
                }
            }
        }
        if self.filter_at.is_some_and(|t| t <= self.wall) {
            self.known.recheck(&self.auth.store, self.wall);
            self.filter_at = None;
        }
    }

    /// Builds a new route filter if it is stale, and hands it out.
    fn refresh_filter(&mut self) {
        if self.filter_at.is_some() {
            return;
        }
        self.filter_at = Some(self.known.next_change(self.wall).unwrap_or(u64::MAX));
        self.filter = RouteFilter::new(self.known.grants(), self.tunnel_ifs.clone());
        self.outputs.push_back(MeshOutput::Filter(self.filter.clone()));
    }

    fn trust_changed(
        &mut self,
        store: TrustStore,
        trusted_keys: Vec<PublicKey>,
        credential: Option<Credential>,
    ) {
        self.auth.replace_store(store);
        self.mesh_address = self.auth.store.mesh_prefix().map(|m| m.address_for(&self.id.public));
        self.trusted_keys = trusted_keys;
        for k in self.trusted_keys.clone() {
            self.known.learn_allowed(&self.auth.store, &k);
        }
        self.set_own_credential(credential);
        self.known.recheck(&self.auth.store, self.wall);
        self.link_input(LinkInput::TrustChanged);
        self.filter_at = None;
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
                self.known.learn(&self.auth.store, self.id.router_id, c.to_bytes(), self.wall);
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
