//! The zero-trust mesh at run time: our key and credential, the trust store,
//! the link manager and its discovery socket, the WireGuard tunnels it asks
//! for, and the credential exchange that feeds the route filter.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};
use serde_json::{json, Value};

use super::ifaces::KernelView;
use super::mesh::{credential_chunks, judge, KnownNodes, MeshAuth, MeshTlv, Reassembly, RouteVerdict};
use crate::babel::packet::Destination;
use crate::babel::{
    Engine, IfIndex, Input, InterfaceConfig as EngineIface, LinkType, Prefix, RouterId, Time,
};
use crate::config::{Config, Host, InterfaceType, WireguardBackend};
use crate::link::{LinkConfig, LinkInput, LinkManager, LinkOutput, Scope, TunnelSpec};
use crate::net::{DiscoverySocket, Origin};
use crate::trust::{
    derive, AllowEntry, CaPublicKey, Credential, MeshPrefix, NodePrivateKey, NodePublicKey, RevocationList,
    TrustStore,
};
use crate::wg::model::{AllowedIp, DeviceConfig, Key, PeerConfig, PrivateKey};
use crate::wg::{sync_device, AnyBackend, WgBackend};

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Our identity, read from the configured files.
pub struct Identity {
    pub key: NodePrivateKey,
    pub public: NodePublicKey,
    pub router_id: RouterId,
    pub credential: Option<Credential>,
}

fn read_text(path: &std::path::Path, what: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {what} {}: {e}", path.display())))
}

pub fn load_identity(cfg: &Config) -> io::Result<Identity> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let text = read_text(&cfg.trust.private_key_file, "private key")?;
    let key: NodePrivateKey =
        text.trim().parse().map_err(|e| bad(format!("{}: {e}", cfg.trust.private_key_file.display())))?;
    let public = key.public_key();
    let credential = match std::fs::read_to_string(&cfg.trust.credential_file) {
        Ok(t) => Some(
            Credential::from_armour(&t)
                .map_err(|e| bad(format!("{}: {e}", cfg.trust.credential_file.display())))?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(bad(format!("{}: {e}", cfg.trust.credential_file.display()))),
    };
    if let Some(c) = &credential {
        if c.public_key() != &public {
            return Err(bad(format!(
                "{} is a credential for another key ({}), not ours ({public})",
                cfg.trust.credential_file.display(),
                c.public_key()
            )));
        }
    }
    Ok(Identity { router_id: derive::router_id(&public), key, public, credential })
}

/// The trust store the configuration describes. A missing revocation file
/// is no revocation; an unreadable or unsigned one is an error.
pub fn build_store(cfg: &Config) -> io::Result<TrustStore> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut store = TrustStore::new();
    for k in &cfg.trust.ca_public_keys {
        let ca = CaPublicKey::from_bytes(k.0).map_err(|e| bad(format!("ca_public_key: {e}")))?;
        store.add_ca(ca);
    }
    for k in &cfg.trust.trusted_keys {
        store.allow_key(NodePublicKey(k.0), AllowEntry::default());
    }
    if let Some(p) = cfg.main.mesh_prefix {
        store.set_mesh_prefix(Some(MeshPrefix::new(p).map_err(|e| bad(format!("mesh_prefix: {e}")))?));
    }
    match std::fs::read_to_string(&cfg.trust.revocation_file) {
        Ok(t) => {
            let list = RevocationList::from_armour(&t)
                .map_err(|e| bad(format!("{}: {e}", cfg.trust.revocation_file.display())))?;
            store
                .add_revocation_list(list)
                .map_err(|e| bad(format!("{}: {e}", cfg.trust.revocation_file.display())))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad(format!("{}: {e}", cfg.trust.revocation_file.display()))),
    }
    Ok(store)
}

/// Counters for `weft status`.
#[derive(Default, Clone, Debug, serde::Serialize)]
pub struct MeshStats {
    pub refused_neighbours: u64,
    pub tunnel_errors: u64,
    pub credentials_received: u64,
    pub credentials_rejected: u64,
    /// Discovery and handshake datagrams' payload bytes.
    pub discovery_bytes_in: u64,
    pub discovery_bytes_out: u64,
}

pub struct MeshRuntime {
    pub id: Identity,
    pub store: TrustStore,
    link: LinkManager,
    secrets: RefCell<HashMap<[u8; 32], Option<[u8; 32]>>>,
    /// Credentials the link manager has just verified (beacons, handshakes),
    /// for the known-node table: a neighbour's renewed credential then
    /// counts for its routes at once, without a TLV 224 round trip.
    verified: RefCell<Vec<Vec<u8>>>,
    pub known: KnownNodes,
    reassembly: Reassembly,
    disc: DiscoverySocket,
    wg: AnyBackend,
    /// Tunnels that exist, by interface name.
    tunnels: BTreeMap<String, TunnelSpec>,
    /// Raw interfaces the link manager runs on.
    raws: BTreeMap<IfIndex, String>,
    requested: HashMap<RouterId, Time>,
    /// Tunnel interfaces that got our credential, and when.
    announced_to: HashMap<IfIndex, Time>,
    next_tick: Time,
    next_handshake_poll: Time,
    next_resolve: Time,
    filter_at: Option<u64>,
    pub mesh_address: Option<Ipv6Addr>,
    pub stats: MeshStats,
    refused_log: BTreeMap<String, u64>,
    keepalive: Option<u16>,
}

/// The link manager's [`MeshAuth`] over the runtime's trust fields. A macro
/// rather than a method: it borrows only those fields, so `self.link` can
/// still be borrowed mutably beside it.
macro_rules! link_auth {
    ($rt:expr) => {
        MeshAuth { store: &$rt.store, key: &$rt.id.key, secrets: &$rt.secrets, verified: &$rt.verified }
    };
}

const TICK_MS: u64 = 1000;
const HANDSHAKE_POLL_MS: u64 = 10_000;
const RESOLVE_MS: u64 = 60_000;
const CREDENTIAL_REQUEST_MS: u64 = 5000;
const CREDENTIAL_REANNOUNCE_MS: u64 = 60_000;

impl MeshRuntime {
    pub async fn start(cfg: &Config, id: Identity, store: TrustStore) -> io::Result<MeshRuntime> {
        let to_io = |e: crate::wg::WgError| io::Error::other(e.to_string());
        let mut opts = crate::wg::uapi_socket::UserspaceOptions::wireguard_go();
        opts.program = cfg.main.userspace_implementation.clone().into();
        opts.socket_dir = cfg.main.uapi_dir.clone();
        if cfg.main.userspace_implementation.contains("boringtun") {
            opts.quirks = crate::wg::uapi::Quirks::BORINGTUN;
        }
        let wg = match cfg.main.wireguard_backend {
            WireguardBackend::Auto => AnyBackend::auto(opts).await.map_err(to_io)?,
            WireguardBackend::Kernel => {
                AnyBackend::Kernel(crate::wg::netlink::KernelBackend::new(None).await.map_err(to_io)?)
            }
            WireguardBackend::Userspace => AnyBackend::Userspace(Box::new(
                crate::wg::uapi_socket::UserspaceBackend::new(opts).await.map_err(to_io)?,
            )),
        };
        info!("wireguard backend: {}", wg.kind());
        let disc = DiscoverySocket::open(crate::link::wire::DISCOVERY_PORT)?;
        let mut lc = LinkConfig::new(
            id.public.0,
            id.credential.as_ref().map(|c| c.to_bytes().to_vec()).unwrap_or_default(),
        );
        lc.port_base = cfg.main.listen_port;
        lc.port_count = cfg.main.listen_port_range.max(1);
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let link = LinkManager::new(lc, u64::from_le_bytes(seed));
        let mut known = KnownNodes::default();
        let now = unix_now();
        if let Some(c) = &id.credential {
            known.learn(&store, id.router_id, c.to_bytes(), now);
            match store.verify(c, now) {
                Ok(v) => info!(
                    "our credential: {} (expires {})",
                    v.name.as_deref().unwrap_or("?"),
                    crate::trust::time::iso8601(c.body().not_after)
                ),
                Err(e) => warn!("our own credential does not verify: {e} (neighbours will refuse us)"),
            }
        }
        for k in &cfg.trust.trusted_keys {
            known.learn_allowed(&store, &NodePublicKey(k.0));
        }
        let mesh_address = store.mesh_prefix().map(|m| m.address_for(&id.public));
        let keepalive =
            (cfg.main.keepalive_ms > 0).then(|| (cfg.main.keepalive_ms / 1000).clamp(1, 65535) as u16);
        let mut rt = MeshRuntime {
            id,
            store,
            link,
            secrets: RefCell::new(HashMap::new()),
            verified: RefCell::new(Vec::new()),
            known,
            reassembly: Reassembly::default(),
            disc,
            wg,
            tunnels: BTreeMap::new(),
            raws: BTreeMap::new(),
            requested: HashMap::new(),
            announced_to: HashMap::new(),
            next_tick: Time(0),
            next_handshake_poll: Time(HANDSHAKE_POLL_MS),
            next_resolve: Time(0),
            filter_at: None,
            mesh_address,
            stats: MeshStats::default(),
            refused_log: BTreeMap::new(),
            keepalive,
        };
        if let Some(a) = mesh_address {
            // Our own address must exist on this node for the mesh to reach it.
            match rt.wg.add_address("lo", IpAddr::V6(a), 128).await {
                // Already there from a previous run: the same address.
                Ok(()) | Err(crate::wg::WgError::Netlink { errno: 17, .. }) => info!("our mesh address: {a}"),
                Err(e) => warn!("cannot add our mesh address {a} to lo: {e}"),
            }
        }
        Ok(rt)
    }

    /// The prefix this node announces for itself (its key-derived /128).
    pub fn own_prefix(&self) -> Option<Prefix> {
        self.mesh_address.map(|a| Prefix::V6(a, 128))
    }

    pub fn is_tunnel(&self, name: &str) -> bool {
        self.tunnels.contains_key(name)
    }

    /// A link named like our tunnels that we did not make in this run: left
    /// by a previous run that crashed (kernel WireGuard links, and
    /// wireguard-go processes, outlive a killed daemon).
    pub fn is_stale_tunnel(&self, name: &str) -> bool {
        is_tunnel_name(name) && !self.tunnels.contains_key(name)
    }

    pub async fn reap(&mut self, name: &str) {
        match self.wg.delete_interface(name).await {
            Ok(()) => info!("removed tunnel {name} left by a previous run"),
            Err(e) => debug!("removing stale tunnel {name}: {e}"),
        }
    }

    pub fn tunnel_names(&self) -> impl Iterator<Item = &String> {
        self.tunnels.keys()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        [self.link.poll_timeout(), Some(self.next_tick)].into_iter().flatten().min()
    }

    /// Raw mesh interfaces (wireguard '1') that exist, are up, have a
    /// link-local address: the link manager discovers neighbours there.
    pub fn reconcile_raws(&mut self, now: Time, cfg: &Config, kernel: &KernelView) {
        let mut desired: BTreeMap<IfIndex, (String, LinkType, u32)> = BTreeMap::new();
        for ic in cfg.interfaces.iter().filter(|i| i.enabled && i.wireguard) {
            let Some(l) = kernel.by_name(&ic.ifname) else { continue };
            if !l.is_up() || kernel.link_local(l.ifindex).is_none() {
                continue;
            }
            let wireless = match ic.kind {
                InterfaceType::Wireless => true,
                InterfaceType::Auto => super::ifaces::sysfs_is_wireless(&ic.ifname),
                _ => false,
            };
            let lt =
                if wireless || ic.link_quality == Some(true) { LinkType::Wireless } else { LinkType::Wired };
            desired.insert(l.ifindex, (ic.ifname.clone(), lt, l.mtu));
        }
        let unix = unix_now();
        let gone: Vec<IfIndex> = self.raws.keys().filter(|i| !desired.contains_key(i)).copied().collect();
        for i in gone {
            info!("neighbour discovery stops on {}", self.raws[&i]);
            self.raws.remove(&i);
            self.disc.leave(i);
            let auth = link_auth!(self);
            self.link.handle_input(now, unix, LinkInput::RawDown { ifindex: i }, &auth);
        }
        for (i, (name, link_type, mtu)) in desired {
            if !self.raws.contains_key(&i) {
                if let Err(e) = self.disc.join(i) {
                    warn!("cannot discover neighbours on {name}: {e}");
                    continue;
                }
                info!("neighbour discovery runs on {name} (ifindex {i})");
            }
            self.raws.insert(i, name.clone());
            let auth = link_auth!(self);
            self.link.handle_input(now, unix, LinkInput::RawUp { ifindex: i, name, link_type, mtu }, &auth);
        }
    }

    /// Static peers from the configuration (addresses resolved here: DNS).
    pub fn reconcile_statics(&mut self, now: Time, cfg: &Config, force: bool) {
        if !force && now < self.next_resolve {
            return;
        }
        self.next_resolve = now.plus_ms(RESOLVE_MS);
        let unix = unix_now();
        for (i, p) in cfg.peers.iter().enumerate() {
            let index = i as u32;
            let auth = link_auth!(self);
            if !p.enabled {
                self.link.handle_input(now, unix, LinkInput::RemoveStaticPeer { index }, &auth);
                continue;
            }
            let addr = p.endpoint.as_ref().and_then(|e| match &e.host {
                Host::Ip(ip) => Some(SocketAddr::new(*ip, e.port)),
                // Re-resolved every minute, so a peer whose address changes
                // (dynamic DNS) is found again.
                Host::Name(n) => (n.as_str(), e.port).to_socket_addrs().ok().and_then(|mut a| a.next()),
            });
            let name = p.name.clone().unwrap_or_else(|| format!("peer{i}"));
            self.link.handle_input(
                now,
                unix,
                LinkInput::StaticPeer { index, name, key: p.public_key.0, addr },
                &auth,
            );
        }
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Origin)> {
        self.disc.recv(buf).await
    }

    pub fn on_datagram(&mut self, now: Time, origin: Origin, data: &[u8]) {
        self.stats.discovery_bytes_in += data.len() as u64;
        let auth = link_auth!(self);
        self.link.handle_input(
            now,
            unix_now(),
            LinkInput::Datagram { ifindex: origin.ifindex, src: origin.addr, data },
            &auth,
        );
    }

    pub fn on_timeout(&mut self, now: Time) {
        let auth = link_auth!(self);
        self.link.handle_timeout(now, unix_now(), &auth);
    }

    /// Trust material changed (reload): re-check neighbours and origins.
    pub fn trust_changed(&mut self, now: Time, cfg: &Config) {
        match build_store(cfg) {
            Ok(store) => self.store = store,
            Err(e) => {
                warn!("keeping the previous trust material: {e}");
                return;
            }
        }
        for k in &cfg.trust.trusted_keys {
            self.known.learn_allowed(&self.store, &NodePublicKey(k.0));
        }
        self.reload_own_credential(cfg);
        self.known.recheck(&self.store, unix_now());
        self.secrets.borrow_mut().clear();
        let auth = link_auth!(self);
        self.link.handle_input(now, unix_now(), LinkInput::TrustChanged, &auth);
        self.filter_at = None;
    }

    /// Our credential renewed (same key, new file contents): beacons,
    /// handshakes and TLV 224 carry the new one from now on, so neighbours
    /// keep our tunnels and routes past the old expiry without a restart.
    fn reload_own_credential(&mut self, cfg: &Config) {
        let id = match load_identity(cfg) {
            Ok(id) => id,
            Err(e) => {
                warn!("keeping our credential: {e}");
                return;
            }
        };
        if id.public != self.id.public {
            warn!("private_key_file now holds another key ({}): restart weft to change identity", id.public);
            return;
        }
        let bytes = |c: &Option<Credential>| c.as_ref().map(|c| c.to_bytes().to_vec());
        if bytes(&id.credential) == bytes(&self.id.credential) {
            return;
        }
        match &id.credential {
            Some(c) => {
                info!(
                    "our credential is renewed (expires {})",
                    crate::trust::time::iso8601(c.body().not_after)
                );
                self.known.learn(&self.store, self.id.router_id, c.to_bytes(), unix_now());
            }
            None => warn!("our credential file is gone: neighbours will refuse us"),
        }
        self.link.set_credential(bytes(&id.credential).unwrap_or_default());
        self.id.credential = id.credential;
        // Every tunnel neighbour gets the new one at the next tick.
        self.announced_to.clear();
    }

    /// Carries out what the link manager asked for.
    pub async fn drain_link(&mut self) {
        self.learn_verified();
        while let Some(o) = self.link.poll_output() {
            match o {
                LinkOutput::Send { dst, data, .. } => match self.disc.send(dst, &data).await {
                    Ok(_) => self.stats.discovery_bytes_out += data.len() as u64,
                    Err(e) => debug!("discovery send to {dst}: {e}"),
                },
                LinkOutput::TunnelUp(spec) => self.tunnel_up(spec).await,
                LinkOutput::TunnelDown { name } => {
                    info!("tunnel {name} goes down");
                    self.tunnels.remove(&name);
                    if let Err(e) = self.wg.delete_interface(&name).await {
                        warn!("deleting tunnel {name}: {e}");
                    }
                }
                LinkOutput::Refused { key, scope, reason } => {
                    self.stats.refused_neighbours += 1;
                    let k = NodePublicKey(key).to_string();
                    // One log line per key and reason change, not per beacon.
                    let n = self.refused_log.entry(format!("{k} {reason}")).or_insert(0);
                    if *n == 0 {
                        info!("refused a tunnel to {k} ({scope:?}): {reason}");
                    }
                    *n += 1;
                }
            }
        }
    }

    async fn tunnel_up(&mut self, spec: TunnelSpec) {
        let name = spec.name.clone();
        let fresh = !self.tunnels.contains_key(&name);
        if fresh {
            // A tunnel of this name left by a run that crashed is replaced.
            if let Err(e) = crate::wg::create_replacing(&mut self.wg, &name, spec.mtu).await {
                self.stats.tunnel_errors += 1;
                warn!("cannot create tunnel {name}: {e}");
                return;
            }
            let ll = link_local_for(&self.id.public);
            if let Err(e) = self.wg.add_address(&name, IpAddr::V6(ll), 64).await {
                warn!("tunnel {name}: adding {ll}: {e}");
            }
        }
        let mut peer = PeerConfig::new(Key(spec.peer_key));
        peer.endpoint = Some(spec.endpoint);
        peer.allowed_ips = vec![AllowedIp::any_v6(), AllowedIp::any_v4()];
        peer.persistent_keepalive = match spec.scope {
            Scope::Raw(_) => None,
            _ => self.keepalive.or(Some(25)),
        };
        let desired = DeviceConfig {
            private_key: PrivateKey(Key(*self.id.key.as_bytes())),
            listen_port: Some(spec.listen_port),
            fwmark: None,
            peers: vec![peer],
        };
        match sync_device(&mut self.wg, &name, &desired).await {
            Ok(_) => {
                info!(
                    "tunnel {name} to {} ({}) via {} listening on {}",
                    spec.peer_name,
                    NodePublicKey(spec.peer_key),
                    spec.endpoint,
                    spec.listen_port
                );
                self.tunnels.insert(name, spec);
            }
            Err(e) => {
                self.stats.tunnel_errors += 1;
                warn!("configuring tunnel {name}: {e}");
            }
        }
    }

    /// Babel interfaces for the tunnels that exist and are up.
    pub fn tunnel_interfaces(&self, cfg: &Config, kernel: &KernelView) -> BTreeMap<IfIndex, EngineIface> {
        let mut out = BTreeMap::new();
        for (name, spec) in &self.tunnels {
            let Some(l) = kernel.by_name(name) else { continue };
            let Some(ll) = kernel.link_local(l.ifindex) else { continue };
            if !l.admin_up {
                continue;
            }
            let mut e = EngineIface::new(name, spec.link_type, ll);
            e.other_link_locals = kernel.link_locals(l.ifindex).into_iter().filter(|a| *a != ll).collect();
            let (hello, update) = match spec.scope {
                Scope::Raw(raw) => self
                    .raws
                    .get(&raw)
                    .and_then(|n| cfg.interfaces.iter().find(|i| &i.ifname == n))
                    .map(|i| (i.hello_interval_ms, i.update_interval_ms))
                    .unwrap_or((cfg.main.hello_interval_ms, cfg.main.update_interval_ms)),
                Scope::Static(i) => cfg
                    .peers
                    .get(i as usize)
                    .map(|p| (p.hello_interval_ms, p.update_interval_ms))
                    .unwrap_or((cfg.main.hello_interval_ms, cfg.main.update_interval_ms)),
                Scope::Remote => (cfg.main.hello_interval_ms, cfg.main.update_interval_ms),
            };
            e.hello_interval_ms = hello;
            e.update_interval_ms = update;
            // One neighbour per tunnel: split horizon is always safe.
            e.split_horizon = Some(true);
            e.mtu = spec.mtu;
            out.insert(l.ifindex, e);
        }
        out
    }

    /// Moves credentials the link manager verified into the known-node table.
    fn learn_verified(&mut self) {
        let verified = std::mem::take(&mut *self.verified.borrow_mut());
        let now = unix_now();
        for bytes in verified {
            let Ok(c) = Credential::from_bytes(&bytes) else { continue };
            let rid = crate::trust::derive::router_id(&c.body().public_key);
            if self.known.credential_bytes(&rid) != Some(&bytes[..])
                && self.known.learn(&self.store, rid, &bytes, now)
            {
                debug!("credential for {rid} learned from the link layer");
                self.filter_at = None;
            }
        }
    }

    /// A weft TLV arrived on a Babel interface.
    pub fn on_extension(
        &mut self,
        engine: &mut Engine,
        now: Time,
        ifindex: IfIndex,
        from: Ipv6Addr,
        body: &[u8],
    ) {
        match MeshTlv::decode(body) {
            Some(MeshTlv::CredentialRequest { router_id }) => {
                if let Some(bytes) = self.known.credential_bytes(&router_id).map(<[u8]>::to_vec) {
                    for c in credential_chunks(router_id, &bytes) {
                        engine.handle_input(
                            now,
                            Input::SendExtension {
                                ifindex,
                                dst: Destination::Unicast(from),
                                body: c.encode(),
                            },
                        );
                    }
                }
            }
            Some(MeshTlv::CredentialChunk { router_id, index, count, data }) => {
                if let Some(bytes) = self.reassembly.add(ifindex, router_id, index, count, data) {
                    self.stats.credentials_received += 1;
                    if self.known.learn(&self.store, router_id, &bytes, unix_now()) {
                        debug!("credential for {router_id} learned");
                        self.filter_at = None;
                    } else if !self.known.nodes.contains_key(&router_id) {
                        self.stats.credentials_rejected += 1;
                    }
                }
            }
            None => {}
        }
    }

    /// Periodic work: credentials for unknown origins, our credential to
    /// new tunnel neighbours, WireGuard liveness, DNS, filter refresh.
    pub async fn tick(
        &mut self,
        engine: &mut Engine,
        now: Time,
        cfg: &Config,
        tunnel_ifs: &BTreeSet<IfIndex>,
    ) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now.plus_ms(TICK_MS);
        // Ask for credentials of origins we do not know, or know only with
        // a credential that is not valid (it may have been renewed), from
        // the neighbour that advertised them.
        for r in engine.routes() {
            let valid = self.known.nodes.get(&r.router_id).is_some_and(|k| k.verdict.is_ok());
            if !tunnel_ifs.contains(&r.ifindex) || valid {
                continue;
            }
            if self.requested.get(&r.router_id).is_some_and(|t| now.since(*t) < CREDENTIAL_REQUEST_MS) {
                continue;
            }
            self.requested.insert(r.router_id, now);
            let body = MeshTlv::CredentialRequest { router_id: r.router_id }.encode();
            engine.handle_input(
                now,
                Input::SendExtension { ifindex: r.ifindex, dst: Destination::Unicast(r.neighbour), body },
            );
        }
        self.requested.retain(|_, t| now.since(*t) < 10 * CREDENTIAL_REQUEST_MS);
        // Our own credential to each tunnel neighbour, now and then.
        if let Some(c) = &self.id.credential {
            let chunks = credential_chunks(self.id.router_id, c.to_bytes());
            for i in tunnel_ifs {
                if self.announced_to.get(i).is_some_and(|t| now.since(*t) < CREDENTIAL_REANNOUNCE_MS) {
                    continue;
                }
                self.announced_to.insert(*i, now);
                for ch in &chunks {
                    engine.handle_input(
                        now,
                        Input::SendExtension { ifindex: *i, dst: Destination::Multicast, body: ch.encode() },
                    );
                }
            }
        }
        self.announced_to.retain(|i, _| tunnel_ifs.contains(i));
        // Verdicts that lapse by themselves (expiry) while running.
        let unix = unix_now();
        if self.filter_at.is_some_and(|t| t <= unix) {
            self.known.recheck(&self.store, unix);
            self.filter_at = None;
        }
        if now >= self.next_handshake_poll {
            self.next_handshake_poll = now.plus_ms(HANDSHAKE_POLL_MS);
            self.poll_handshakes(now).await;
        }
        self.reconcile_statics(now, cfg, false);
    }

    async fn poll_handshakes(&mut self, now: Time) {
        let names: Vec<String> = self.tunnels.keys().cloned().collect();
        for name in names {
            let Ok(dev) = self.wg.get(&name).await else { continue };
            let recent = dev.peers.iter().filter_map(|p| p.last_handshake).any(|t| {
                SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO) < Duration::from_secs(180)
            });
            if recent {
                let auth = link_auth!(self);
                self.link.handle_input(now, unix_now(), LinkInput::TunnelAlive { name }, &auth);
            }
        }
    }

    /// Each tunnel's peer and counters as its WireGuard backend reports
    /// them now (for the metrics).
    pub async fn tunnel_counters(&mut self) -> Vec<crate::metrics::Tunnel> {
        let mut out = Vec::new();
        let specs: Vec<(String, String, [u8; 32])> =
            self.tunnels.iter().map(|(n, s)| (n.clone(), s.peer_name.clone(), s.peer_key)).collect();
        for (dev, peer, key) in specs {
            let Ok(d) = self.wg.get(&dev).await else { continue };
            let Some(p) = d.peers.iter().find(|p| p.public_key == Key(key)) else { continue };
            let latest_handshake =
                p.last_handshake.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs());
            out.push(crate::metrics::Tunnel {
                peer,
                dev,
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                latest_handshake,
            });
        }
        out
    }

    /// The name of the peer at the other end of tunnel `ifname`.
    pub fn tunnel_peer(&self, ifname: &str) -> Option<&str> {
        self.tunnels.get(ifname).map(|s| s.peer_name.as_str())
    }

    /// True when the route filter must be rebuilt (credentials or time).
    pub fn filter_stale(&self) -> bool {
        self.filter_at.is_none()
    }

    /// The route filter: routes learned over tunnels must come from an
    /// origin whose credential grants the prefix; plain Babel interfaces
    /// (babeld/BIRD compatibility) are not filtered.
    pub fn build_filter(&mut self, tunnel_ifs: BTreeSet<IfIndex>) -> crate::babel::engine::RouteFilter {
        let unix = unix_now();
        self.filter_at = Some(self.known.next_change(unix).unwrap_or(u64::MAX));
        let grants = self.known.grants();
        let tunnels = Arc::new(tunnel_ifs);
        Box::new(move |prefix: &Prefix, rid: &RouterId, ifindex: IfIndex| {
            !tunnels.contains(&ifindex) || judge(&grants, prefix, rid) == RouteVerdict::Allowed
        })
    }

    /// Announcements refused: known, valid origins announcing prefixes they
    /// were not granted (distinct origin/prefix pairs), and routes held
    /// back because their origin's credential is unknown.
    pub fn refused(&self, engine: &Engine, tunnel_ifs: &BTreeSet<IfIndex>) -> (usize, usize) {
        let grants = self.known.grants();
        let mut refused = BTreeSet::new();
        let mut unknown = BTreeSet::new();
        for r in engine.routes().into_iter().filter(|r| tunnel_ifs.contains(&r.ifindex)) {
            match judge(&grants, &r.prefix, &r.router_id) {
                RouteVerdict::NotGranted => {
                    refused.insert((r.router_id, r.prefix));
                }
                RouteVerdict::UnknownOrigin => {
                    unknown.insert((r.router_id, r.prefix));
                }
                RouteVerdict::Allowed => {}
            }
        }
        (refused.len(), unknown.len())
    }

    /// Extra fields for `weft neighbours` rows on tunnels.
    pub fn tunnel_info(&self, ifname: &str) -> Option<Value> {
        let spec = self.tunnels.get(ifname)?;
        let expires =
            self.link.neighbours().into_iter().find(|n| n.key == spec.peer_key).and_then(|n| n.expires_unix);
        Some(json!({
            "name": spec.peer_name,
            "public_key": NodePublicKey(spec.peer_key).to_string(),
            "credential_expires": expires.map(credential_expiry_text),
            "tunnel": format!("{} up, endpoint {}", ifname, spec.endpoint),
            "endpoint": spec.endpoint.to_string(),
        }))
    }

    pub fn status(&self, engine: &Engine, tunnel_ifs: &BTreeSet<IfIndex>) -> Value {
        let (refused, unknown) = self.refused(engine, tunnel_ifs);
        let link_neighbours: Vec<Value> = self
            .link
            .neighbours()
            .into_iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "public_key": NodePublicKey(n.key).to_string(),
                    "scope": format!("{:?}", n.scope),
                    "verified": n.verified,
                    "credential_expires": n.expires_unix.map(credential_expiry_text),
                    "tunnel": n.tunnel,
                })
            })
            .collect();
        json!({
            "public_key": self.id.public.to_string(),
            "mesh_address": self.mesh_address.map(|a| a.to_string()),
            "credential": self.id.credential.as_ref().map(|c| json!({
                "name": c.body().name,
                "expires": crate::trust::time::iso8601(c.body().not_after),
            })),
            "wireguard_backend": self.wg.kind(),
            "tunnels": self.tunnels.len(),
            "link_neighbours": link_neighbours,
            "refused_announcements": refused,
            "routes_pending_credential": unknown,
            "known_nodes": self.known.nodes.len(),
            "mesh": self.stats,
            "link": self.link.stats(),
        })
    }

    /// `weft nodes`: every node we know, with its credential.
    pub fn nodes(&self) -> Value {
        let list: Vec<Value> = self
            .known
            .nodes
            .iter()
            .map(|(rid, k)| {
                let (status, name, key, prefixes, groups, expires, address) =
                    match (&k.verdict, &k.credential) {
                        (Ok(v), c) => (
                            "valid".to_string(),
                            v.name.clone(),
                            v.public_key.to_string(),
                            v.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                            v.groups.clone(),
                            c.as_ref().map(|c| crate::trust::time::iso8601(c.body().not_after)),
                            v.mesh_address.map(|a| a.to_string()),
                        ),
                        (Err(e), Some(c)) => (
                            e.to_string(),
                            Some(c.body().name.clone()),
                            c.public_key().to_string(),
                            c.body().prefixes.iter().map(|p| p.to_string()).collect(),
                            c.body().groups.clone(),
                            Some(crate::trust::time::iso8601(c.body().not_after)),
                            None,
                        ),
                        (Err(e), None) => (e.to_string(), None, String::new(), vec![], vec![], None, None),
                    };
                // The tunnel(s) to this node when it is a direct neighbour.
                let tunnels: Vec<&str> = self
                    .tunnels
                    .iter()
                    .filter(|(_, t)| !key.is_empty() && NodePublicKey(t.peer_key).to_string() == key)
                    .map(|(name, _)| name.as_str())
                    .collect();
                json!({
                    "router_id": rid.to_string(),
                    "name": name,
                    "public_key": key,
                    "status": status,
                    "expires": expires,
                    "prefixes": prefixes.join(","),
                    "groups": groups.join(","),
                    "tunnel": (!tunnels.is_empty()).then(|| tunnels.join(",")),
                    "address": address,
                    "self": *rid == self.id.router_id,
                })
            })
            .collect();
        json!({ "nodes": list })
    }

    /// Removes every tunnel (clean stop).
    pub async fn shutdown(&mut self) {
        let names: Vec<String> = self.tunnels.keys().cloned().collect();
        for name in names {
            let _ = self.wg.delete_interface(&name).await;
        }
        self.tunnels.clear();
    }
}

/// Names made by [`crate::link::manager::tunnel_name`]: "weft", 6 hex
/// digits, '-', then digits, "s<digits>" or "r".
pub fn is_tunnel_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("weft") else { return false };
    let (hex, tail) = rest.split_at(rest.len().min(6));
    hex.len() == 6
        && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && tail.strip_prefix('-').is_some_and(|t| {
            let digits = t.strip_prefix('s').unwrap_or(t);
            t == "r" || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// A neighbour's credential expiry as shown to users: the link manager keeps
/// the second its verdict lapses (`not_after + 1`, the window is inclusive);
/// users compare with the credential's `not_after` (`weft cert show`).
fn credential_expiry_text(lapses_at: u64) -> String {
    crate::trust::time::iso8601(lapses_at.saturating_sub(1))
}

/// The link-local address of our tunnel interfaces: fe80::/64 with the
/// key-derived interface identifier (stable across restarts).
pub fn link_local_for(key: &NodePublicKey) -> Ipv6Addr {
    let iid = derive::mesh_interface_id(key);
    Ipv6Addr::from((0xfe80u128 << 112) | iid as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_names_are_recognised() {
        for n in ["weftca58c0-56", "weft0a0b0c-s0", "weft0a0b0c-r", "weft123456-1"] {
            assert!(is_tunnel_name(n), "{n}");
        }
        for n in [
            "weft0",
            "weftca58c0",
            "weftCA58C0-1",
            "weftca58c0-",
            "wg0",
            "weftca58c0-x",
            "eth0",
            "weftca58c0-s",
        ] {
            assert!(!is_tunnel_name(n), "{n}");
        }
        let key = NodePublicKey([0xab; 32]);
        assert!(is_tunnel_name(&crate::link::manager::tunnel_name(Scope::Raw(9999), &key.0)));
        assert!(is_tunnel_name(&crate::link::manager::tunnel_name(Scope::Static(3), &key.0)));
    }
}
