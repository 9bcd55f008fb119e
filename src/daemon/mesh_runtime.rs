//! The zero-trust mesh's edges: it moves bytes between the pure mesh core
//! ([`crate::mesh::MeshCore`]) and the world: the discovery socket, the
//! WireGuard backend, the files our identity and trust material live in,
//! DNS for static peers, and the clocks. Every decision is the core's.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};
use serde_json::Value;

use super::e2e::{E2eDevice, E2eRouting};
use super::ifaces::KernelView;
use super::policy::PolicyFirewall;
use crate::babel::engine::RouteView;
use crate::babel::{
    Engine, IfIndex, Input, InterfaceConfig as EngineIface, LinkType, Prefix, RouterId, Time,
};
use crate::config::{Config, Host, InterfaceType, WireguardBackend};
use crate::link::{Scope, TunnelSpec};
use crate::mesh::{MeshConfig, MeshCore, MeshInput, MeshOutput};
use crate::net::{DiscoverySocket, Origin};
use crate::trust::{derive, AllowEntry, CaPublicKey, Credential, MeshPrefix, NodePrivateKey, PublicKey};
use crate::trust::{RevocationList, TrustStore};
use crate::wg::model::{AllowedIp, DeviceConfig, Key, PeerConfig, PrivateKey};
use crate::wg::{sync_device, AnyBackend, WgBackend};

/// The wall clock, Unix seconds: read here and only here, once per event,
/// and handed to the core as an input.
pub fn wall_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Our identity, read from the configured files.
pub struct Identity {
    pub key: NodePrivateKey,
    pub public: PublicKey,
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
        let ca = CaPublicKey::from_key(*k).map_err(|e| bad(format!("ca_public_key: {e}")))?;
        store.add_ca(ca);
    }
    for k in &cfg.trust.trusted_keys {
        let signing_key = cfg.trust.trusted_signing_keys.iter().find(|(t, _)| t == k).map(|(_, s)| *s);
        store.allow_key(*k, AllowEntry { signing_key, ..AllowEntry::default() });
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

/// Why [`MeshRuntime::device`] failed.
enum DeviceError {
    Create(crate::wg::WgError),
    Configure(crate::wg::WgError),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceError::Create(e) => write!(f, "cannot create: {e}"),
            DeviceError::Configure(e) => write!(f, "configuring: {e}"),
        }
    }
}

/// What carrying out the core's outputs did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drained {
    /// There were outputs.
    pub moved: bool,
    /// A tunnel was created or removed: the daemon reconciles its Babel
    /// interfaces.
    pub tunnels_changed: bool,
    /// The route filter changed (a node's verdict did): the hosts file
    /// follows.
    pub filter_changed: bool,
}

pub struct MeshRuntime {
    pub core: MeshCore,
    public: PublicKey,
    private: [u8; 32],
    disc: DiscoverySocket,
    wg: AnyBackend,
    /// Tunnels that exist, by interface name.
    /// (A Vec, as `raws`: a few entries, and each map type costs kilobytes
    /// of flash on a router.)
    tunnels: Vec<TunnelSpec>,
    /// Raw interfaces discovery runs on.
    raws: Vec<(IfIndex, String)>,
    next_handshake_poll: Time,
    next_resolve: Time,
    keepalive: Option<u16>,
    tunnel_errors: u64,
    /// Discovery and handshake datagrams' payload bytes, in and out.
    discovery_bytes_in: u64,
    discovery_bytes_out: u64,
    /// The end-to-end interface, when end to end is on.
    e2e: Option<E2eDevice>,
    /// The group policy's nftables table: with end to end (its peers are
    /// what attributes a packet to a node).
    policy: Option<PolicyFirewall>,
    /// Where our signing epoch is kept (beside the private key, on flash),
    /// and what it holds.
    epoch_file: std::path::PathBuf,
    saved_epoch: Option<u32>,
}

const HANDSHAKE_POLL_MS: u64 = 10_000;
const RESOLVE_MS: u64 = 60_000;

impl MeshRuntime {
    /// `time_floor`: the latest of the floor the last run saved and the
    /// build time.
    pub async fn start(
        cfg: &Config,
        id: Identity,
        store: TrustStore,
        time_floor: u64,
        now: Time,
    ) -> io::Result<MeshRuntime> {
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
        let seed = nonce_seed(getrandom::fill)?;
        let epoch_file = cfg.trust.private_key_file.with_file_name("epoch");
        let saved_epoch =
            std::fs::read_to_string(&epoch_file).ok().and_then(|t| t.trim().parse::<u32>().ok());
        let private = *id.key.as_bytes();
        let core = MeshCore::new(
            MeshConfig {
                key: id.key,
                credential: id.credential,
                store,
                trusted_keys: cfg.trust.trusted_keys.clone(),
                listen_port: cfg.main.listen_port,
                listen_port_range: cfg.main.listen_port_range,
                seed,
                time_floor,
                epoch_floor: saved_epoch.map_or(0, |e| e.saturating_add(1)),
                origin_signatures: cfg.main.origin_signatures,
                e2e_port: cfg.end_to_end().then_some(cfg.main.end_to_end_port),
            },
            now,
            wall_clock(),
        );
        let keepalive =
            (cfg.main.keepalive_ms > 0).then(|| (cfg.main.keepalive_ms / 1000).clamp(1, 65535) as u16);
        let mut rt = MeshRuntime {
            core,
            public: id.public,
            private,
            disc,
            wg,
            tunnels: Vec::new(),
            raws: Vec::new(),
            next_handshake_poll: now.plus_ms(HANDSHAKE_POLL_MS),
            next_resolve: now,
            keepalive,
            tunnel_errors: 0,
            discovery_bytes_in: 0,
            discovery_bytes_out: 0,
            e2e: None,
            policy: None,
            epoch_file,
            saved_epoch,
        };
        rt.persist_epoch();
        let transport = rt.core.transport_address().zip(rt.core.transport_prefix());
        let own = [("mesh", rt.core.mesh_address()), ("transport", transport.map(|(t, _)| t))];
        for (what, a) in own {
            let Some(a) = a else { continue };
            // Our own addresses must exist on this node for the mesh to reach it.
            match rt.wg.add_address("lo", IpAddr::V6(a), 128).await {
                // Already there from a previous run: the same address.
                Ok(()) | Err(crate::wg::WgError::Netlink { errno: 17, .. }) => {
                    info!("our {what} address: {a}")
                }
                Err(e) => warn!("cannot add our {what} address {a} to lo: {e}"),
            }
        }
        if let Some((t, tp)) = transport {
            let mtu = cfg.main.end_to_end_mtu.unwrap_or(super::e2e::DEFAULT_MTU);
            rt.e2e =
                Some(E2eDevice::new(cfg.main.end_to_end_port, mtu, cfg.main.end_to_end_max_peers, t, tp));
            rt.e2e_ensure(now).await;
            rt.policy = Some(PolicyFirewall::default());
        } else {
            super::policy::remove_stale();
        }
        if rt.e2e.is_none() && cfg.main.end_to_end.is_none() && cfg.trust.has_trust_material() {
            info!("end to end is off: mesh_prefix must be /63 or shorter to hold transport addresses");
        }
        Ok(rt)
    }

    /// The end-to-end plan for the engine's selected routes, applied to
    /// `weft-e2e`; what the kernel routes should steer (`None`: end to end
    /// is off).
    pub async fn e2e_update(
        &mut self,
        engine: &Engine,
        kernel: &KernelView,
        cfg: &Config,
        now: Time,
    ) -> Option<E2eRouting> {
        let dev = self.e2e.as_mut()?;
        let selected: Vec<(Prefix, RouterId)> = engine
            .installed_routes()
            .iter()
            .filter_map(|r| engine.selected_origin(&r.prefix).map(|(rid, _)| (r.prefix, rid)))
            .collect();
        let grace = dev.grace(now);
        let plan = self.core.e2e_plan(&selected, dev.max_peers, &grace)?;
        let changed = dev.set_plan(plan, now);
        // The policy's sets before WireGuard's peers: a prefix moving from
        // one peer to another leaves the old peer's group before WireGuard
        // attributes it to the new one (never the other way round).
        let installed: Vec<Prefix> = selected.iter().map(|(p, _)| *p).collect();
        self.policy_update(cfg, &installed, now);
        if changed {
            self.e2e_sync(now, false).await;
        }
        let grants: Vec<Prefix> =
            self.core.identity().credential.as_ref().map(|c| c.body().prefixes.clone()).unwrap_or_default();
        let local_v4: Vec<std::net::Ipv4Addr> = kernel
            .addrs
            .iter()
            .filter_map(|a| match a.addr {
                IpAddr::V4(v) => Some(v),
                IpAddr::V6(_) => None,
            })
            .collect();
        let sources = crate::mesh::e2e::own_sources(self.core.mesh_address(), &grants, &local_v4);
        let link = kernel.by_name(crate::mesh::e2e::INTERFACE).map(|l| (l.ifindex, l.admin_up));
        self.e2e.as_ref().map(|d| d.routing(link, sources))
    }

    /// Keeps our signing epoch on flash when it changed (at start, when the
    /// clock is first believed, and on the rare in-run increments): a few
    /// writes per run. A failure is said once; the next start then signs
    /// from its time floor, as before the file existed.
    pub fn persist_epoch(&mut self) {
        let epoch = self.core.own_epoch();
        if self.saved_epoch == Some(epoch) {
            return;
        }
        let tmp = self.epoch_file.with_extension("new");
        // Synced before the rename: after a power cut the file holds the old
        // epoch or the new one, never nothing.
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                use std::io::Write as _;
                f.write_all(format!("{epoch}\n").as_bytes())?;
                f.sync_all()
            })
            .and_then(|_| std::fs::rename(&tmp, &self.epoch_file));
        if let Err(e) = r {
            warn!("cannot keep the signing epoch in {}: {e}", self.epoch_file.display());
        }
        self.saved_epoch = Some(epoch);
    }

    /// Brings the group policy's table in line with the end-to-end plan,
    /// the tunnels and the configured rules.
    fn policy_update(&mut self, cfg: &Config, installed: &[Prefix], now: Time) {
        let (Some(dev), Some(fw)) = (self.e2e.as_ref(), self.policy.as_mut()) else { return };
        let ifaces = |wireguard: bool| -> Vec<String> {
            cfg.interfaces
                .iter()
                .filter(|i| i.enabled && i.wireguard == wireguard)
                .map(|i| i.ifname.clone())
                .collect()
        };
        let (plain, raw) = (ifaces(false), ifaces(true));
        let local = crate::mesh::policy::Local {
            rules: &cfg.policies,
            default_accept: cfg.main.default_policy_accept,
            e2e_port: cfg.main.end_to_end_port,
            babel_port: cfg.main.babel_port,
            plain_interfaces: &plain,
            raw_interfaces: &raw,
            installed,
        };
        if let Some(t) = self.core.policy_table(dev.plan(), &local) {
            fw.apply(t, now);
        }
    }

    /// `weft status`'s `policy` (`None`: end to end, and with it policy, is off).
    pub fn policy_status(&self, cfg: &Config) -> Option<Value> {
        Some(self.policy.as_ref()?.status(&cfg.policies, cfg.main.default_policy_accept))
    }

    /// Creates `weft-e2e` if it is due (at start, 30 s after a failure);
    /// true when it exists.
    async fn e2e_ensure(&mut self, now: Time) -> bool {
        let Some(dev) = self.e2e.as_ref() else { return false };
        if !dev.wants_create(now) {
            return dev.is_created();
        }
        let (mtu, desired) = (dev.mtu(), dev.desired(self.private));
        let name = crate::mesh::e2e::INTERFACE;
        let r = self.device(name, Some(mtu), &desired).await;
        let Some(dev) = self.e2e.as_mut() else { return false };
        match r {
            Ok(_) => dev.created(),
            Err(DeviceError::Create(e)) => dev.fail(format!("cannot create {name}: {e}"), now),
            Err(DeviceError::Configure(e)) => {
                dev.fail(format!("configuring {name}: {e}"), now);
                let _ = self.wg.delete_interface(name).await;
            }
        }
        self.e2e.as_ref().is_some_and(|d| d.is_created())
    }

    /// Brings `weft-e2e`'s peers to the plan; `poll`: the periodic read-back,
    /// whose look at the peers' handshakes and counters finds stale ones
    /// (looks at an even pace: a plan change's sync in between would
    /// compare counters over a few milliseconds).
    async fn e2e_sync(&mut self, now: Time, poll: bool) {
        let Some(desired) = self.e2e.as_ref().filter(|d| d.is_created()).map(|d| d.desired(self.private))
        else {
            return;
        };
        let name = crate::mesh::e2e::INTERFACE;
        let r = self.device(name, None, &desired).await;
        if let Some(d) = self.e2e.as_mut() {
            d.synced(r.is_ok());
            if let (Ok(actual), true) = (&r, poll) {
                d.observe(&actual.peers, now);
            }
            if let Err(e) = r {
                // Gone (wireguard-go killed, `ip link del`) or refusing: made
                // again from scratch 30 s later; said once, not per event.
                d.fail(format!("{name}: {e}"), now);
                let _ = self.wg.delete_interface(name).await;
            }
        }
    }

    /// The one place WireGuard devices are created and configured: a single
    /// call site each of `create_replacing` and `sync_device` keeps their
    /// large futures (both backends inside) in the binary once.
    async fn device(
        &mut self,
        name: &str,
        create_mtu: Option<u32>,
        desired: &DeviceConfig,
    ) -> Result<crate::wg::model::Device, DeviceError> {
        if let Some(mtu) = create_mtu {
            // One of this name left by a run that crashed is replaced.
            crate::wg::create_replacing(&mut self.wg, name, mtu).await.map_err(DeviceError::Create)?;
        }
        sync_device(&mut self.wg, name, desired)
            .await
            .map(|(_, actual)| actual)
            .map_err(DeviceError::Configure)
    }

    fn input(&mut self, now: Time, input: MeshInput<'_>) {
        self.core.handle_input(now, wall_clock(), input);
    }

    /// The prefixes this node announces for itself: its key-derived mesh
    /// address and, end to end, its transport address (/128s).
    pub fn own_prefixes(&self) -> Vec<Prefix> {
        let t = self.e2e.as_ref().map(|e| e.transport);
        self.core.mesh_address().into_iter().chain(t).map(|a| Prefix::V6(a, 128)).collect()
    }

    fn tunnel(&self, name: &str) -> Option<&TunnelSpec> {
        self.tunnels.iter().find(|t| t.name == name)
    }

    pub fn is_tunnel(&self, name: &str) -> bool {
        self.tunnel(name).is_some()
    }

    /// A link named like our tunnels that we did not make in this run: left
    /// by a previous run that crashed (kernel WireGuard links, and
    /// wireguard-go processes, outlive a killed daemon).
    pub fn is_stale_tunnel(&self, name: &str) -> bool {
        is_tunnel_name(name) && self.tunnel(name).is_none()
    }

    pub async fn reap(&mut self, name: &str) {
        match self.wg.delete_interface(name).await {
            Ok(()) => info!("removed tunnel {name} left by a previous run"),
            Err(e) => debug!("removing stale tunnel {name}: {e}"),
        }
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        self.core.poll_timeout()
    }

    /// Raw mesh interfaces (wireguard '1') that exist, are up, have a
    /// link-local address: the core discovers neighbours there.
    pub fn reconcile_raws(&mut self, now: Time, cfg: &Config, kernel: &KernelView) {
        // A few interfaces: a sorted Vec, not one more map type on flash.
        let mut desired: Vec<(IfIndex, (String, LinkType, u32))> = Vec::new();
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
            if !desired.iter().any(|(i, _)| *i == l.ifindex) {
                desired.push((l.ifindex, (ic.ifname.clone(), lt, l.mtu)));
            }
        }
        desired.sort_by_key(|(i, _)| *i);
        let gone: Vec<IfIndex> =
            self.raws.iter().map(|(i, _)| *i).filter(|i| !desired.iter().any(|(j, _)| j == i)).collect();
        for i in gone {
            if let Some(k) = self.raws.iter().position(|(j, _)| *j == i) {
                info!("neighbour discovery stops on {}", self.raws.remove(k).1);
            }
            self.disc.leave(i);
            self.input(now, MeshInput::RawDown { ifindex: i });
        }
        for (i, (name, link_type, mtu)) in desired {
            if !self.raws.iter().any(|(j, _)| *j == i) {
                if let Err(e) = self.disc.join(i) {
                    warn!("cannot discover neighbours on {name}: {e}");
                    continue;
                }
                info!("neighbour discovery runs on {name} (ifindex {i})");
            }
            self.raws.retain(|(j, _)| *j != i);
            self.raws.push((i, name.clone()));
            self.input(now, MeshInput::RawUp { ifindex: i, name, link_type, mtu });
        }
    }

    /// Static peers from the configuration (addresses resolved here: DNS).
    pub fn reconcile_statics(&mut self, now: Time, cfg: &Config, force: bool) {
        if !force && now < self.next_resolve {
            return;
        }
        self.next_resolve = now.plus_ms(RESOLVE_MS);
        for (i, p) in cfg.peers.iter().enumerate() {
            let index = i as u32;
            if !p.enabled {
                self.input(now, MeshInput::RemoveStaticPeer { index });
                continue;
            }
            let addr = p.endpoint.as_ref().and_then(|e| match &e.host {
                Host::Ip(ip) => Some(SocketAddr::new(*ip, e.port)),
                // Re-resolved every minute, so a peer whose address changes
                // (dynamic DNS) is found again.
                Host::Name(n) => (n.as_str(), e.port).to_socket_addrs().ok().and_then(|mut a| a.next()),
            });
            let name = p.name.clone().unwrap_or_else(|| format!("peer{i}"));
            self.input(now, MeshInput::StaticPeer { index, name, key: p.public_key, addr });
        }
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Origin)> {
        self.disc.recv(buf).await
    }

    pub fn on_datagram(&mut self, now: Time, origin: Origin, data: &[u8]) {
        self.discovery_bytes_in += data.len() as u64;
        self.input(now, MeshInput::Datagram { ifindex: origin.ifindex, src: origin.addr, data });
    }

    /// A TLV 224 body the engine received.
    pub fn on_extension(&mut self, now: Time, ifindex: IfIndex, from: Ipv6Addr, body: &[u8]) {
        self.input(now, MeshInput::Extension { ifindex, from, body });
    }

    pub fn on_filtered(
        &mut self,
        now: Time,
        query: crate::babel::RouteQuery,
        verdict: crate::babel::FilterVerdict,
    ) {
        self.input(now, MeshInput::Filtered { query, verdict });
    }

    /// What the engine originates changed: the core signs the new set.
    pub fn on_origin(&mut self, now: Time, seqno: crate::babel::SeqNo, prefixes: Vec<crate::babel::Prefix>) {
        self.input(now, MeshInput::Origin { seqno, prefixes });
    }

    /// Which Babel interfaces are our tunnels.
    pub fn set_tunnel_interfaces(&mut self, now: Time, set: BTreeSet<IfIndex>) {
        self.input(now, MeshInput::TunnelInterfaces(set));
    }

    pub fn on_timeout(&mut self, now: Time) {
        self.core.handle_timeout(now, wall_clock());
    }

    /// Trust material changed (reload): the files are read again and the
    /// core judges every neighbour and origin anew.
    pub fn trust_changed(&mut self, now: Time, cfg: &Config) {
        let store = match build_store(cfg) {
            Ok(store) => store,
            Err(e) => {
                warn!("keeping the previous trust material: {e}");
                return;
            }
        };
        let credential = match load_identity(cfg) {
            Ok(id) if id.public != self.public => {
                warn!(
                    "private_key_file now holds another key ({}): restart weft to change identity",
                    id.public
                );
                self.core.identity().credential.clone()
            }
            Ok(id) => id.credential,
            Err(e) => {
                warn!("keeping our credential: {e}");
                self.core.identity().credential.clone()
            }
        };
        let trusted_keys = cfg.trust.trusted_keys.clone();
        self.input(now, MeshInput::TrustChanged { store: Box::new(store), trusted_keys, credential });
    }

    /// IO-side periodic work: WireGuard liveness and DNS.
    pub async fn io_work(&mut self, now: Time, cfg: &Config) {
        if now >= self.next_handshake_poll {
            self.next_handshake_poll = now.plus_ms(HANDSHAKE_POLL_MS);
            self.poll_handshakes(now).await;
            // weft-e2e created late after a failure; its peers and endpoints
            // put back (WireGuard roams an endpoint to wherever a packet came from).
            if self.e2e_ensure(now).await {
                self.e2e_sync(now, true).await;
            }
        }
        self.reconcile_statics(now, cfg, false);
    }

    async fn poll_handshakes(&mut self, now: Time) {
        let names: Vec<String> = self.tunnels.iter().map(|t| t.name.clone()).collect();
        for name in names {
            let Ok(dev) = self.wg.get(&name).await else { continue };
            let recent = dev.peers.iter().filter_map(|p| p.last_handshake).any(|t| {
                SystemTime::now().duration_since(t).unwrap_or(Duration::ZERO) < Duration::from_secs(180)
            });
            if recent {
                self.input(now, MeshInput::TunnelAlive { name });
            }
        }
    }

    /// Carries out what the core asked for (see [`Drained`]). The engine
    /// gets TLVs and filters here, never from inside its own drain.
    pub async fn drain(&mut self, engine: &mut Engine, now: Time) -> Drained {
        let mut d = Drained::default();
        while let Some(o) = self.core.poll_output() {
            d.moved = true;
            match o {
                MeshOutput::Send { dst, data } => match self.disc.send(dst, &data).await {
                    Ok(_) => self.discovery_bytes_out += data.len() as u64,
                    Err(e) => debug!("discovery send to {dst}: {e}"),
                },
                MeshOutput::TunnelUp(spec) => {
                    d.tunnels_changed |= self.tunnel_up(spec).await;
                }
                MeshOutput::TunnelDown { name } => {
                    info!("tunnel {name} goes down");
                    let before = self.tunnels.len();
                    self.tunnels.retain(|t| t.name != name);
                    d.tunnels_changed |= self.tunnels.len() != before;
                    if let Err(e) = self.wg.delete_interface(&name).await {
                        warn!("deleting tunnel {name}: {e}");
                    }
                }
                MeshOutput::Extension { ifindex, dst, body } => {
                    engine.handle_input(now, Input::SendExtension { ifindex, dst, body });
                }
                MeshOutput::Filter(f, scope) => {
                    engine.set_route_filter_for(now, Some(f.boxed()), &scope);
                    d.filter_changed = true;
                }
                MeshOutput::Log { level, message } => log::log!(level, "{message}"),
            }
        }
        d
    }

    /// Creates or reconfigures a tunnel; true if a new one exists.
    async fn tunnel_up(&mut self, spec: TunnelSpec) -> bool {
        let name = spec.name.clone();
        let fresh = self.tunnel(&name).is_none();
        let mut peer = PeerConfig::new(spec.peer_key);
        peer.endpoint = Some(spec.endpoint);
        peer.allowed_ips = vec![AllowedIp::any_v6(), AllowedIp::any_v4()];
        peer.persistent_keepalive = match spec.scope {
            Scope::Raw(_) => None,
            _ => self.keepalive.or(Some(25)),
        };
        let desired = DeviceConfig {
            private_key: PrivateKey(Key(self.private)),
            listen_port: Some(spec.listen_port),
            fwmark: None,
            peers: vec![peer],
        };
        match self.device(&name, fresh.then_some(spec.mtu), &desired).await {
            Err(DeviceError::Create(e)) => {
                self.tunnel_errors += 1;
                warn!("cannot create tunnel {name}: {e}");
                false
            }
            Ok(_) => {
                if fresh {
                    let ll = crate::mesh::tunnel_link_local(&self.public);
                    if let Err(e) = self.wg.add_address(&name, IpAddr::V6(ll), 64).await {
                        warn!("tunnel {name}: adding {ll}: {e}");
                    }
                }
                info!(
                    "tunnel {name} to {} ({}) via {} listening on {}",
                    spec.peer_name, spec.peer_key, spec.endpoint, spec.listen_port
                );
                self.tunnels.retain(|t| t.name != name);
                self.tunnels.push(spec);
                fresh
            }
            Err(DeviceError::Configure(e)) => {
                self.tunnel_errors += 1;
                warn!("configuring tunnel {name}: {e}");
                false
            }
        }
    }

    /// Babel interfaces for the tunnels that exist and are up.
    pub fn tunnel_interfaces(&self, cfg: &Config, kernel: &KernelView) -> BTreeMap<IfIndex, EngineIface> {
        let mut out = BTreeMap::new();
        for spec in &self.tunnels {
            let name = &spec.name;
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
                    .iter()
                    .find(|(j, _)| *j == raw)
                    .and_then(|(_, n)| cfg.interfaces.iter().find(|i| &i.ifname == n))
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

    /// Discovery and handshake payload bytes received and sent.
    pub fn discovery_bytes(&self) -> (u64, u64) {
        (self.discovery_bytes_in, self.discovery_bytes_out)
    }

    /// Announcements refused now (distinct origin/prefix pairs heard
    /// recently) and routes held for an unknown origin.
    pub fn refused(&self, engine: &Engine) -> (usize, usize) {
        (self.core.refused_announcements(), self.core.routes_pending_credential(&engine.routes()))
    }

    /// Each tunnel's peer and counters as its WireGuard backend reports
    /// them now (for the metrics).
    pub async fn tunnel_counters(&mut self) -> Vec<crate::metrics::Tunnel> {
        let mut out = Vec::new();
        let specs: Vec<(String, String, PublicKey)> =
            self.tunnels.iter().map(|s| (s.name.clone(), s.peer_name.clone(), s.peer_key)).collect();
        for (dev, peer, key) in specs {
            let Ok(d) = self.wg.get(&dev).await else { continue };
            let Some(p) = d.peers.iter().find(|p| p.public_key == key) else { continue };
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
        self.tunnel(ifname).map(|s| s.peer_name.as_str())
    }

    /// Extra fields for `weft neighbours` rows on tunnels.
    pub fn tunnel_info(&self, ifname: &str) -> Option<Value> {
        let spec = self.tunnel(ifname)?;
        Some(self.core.tunnel_info(ifname, spec))
    }

    /// The end-to-end interface's state (`None`: end to end is off).
    pub fn e2e_status(&self) -> Option<Value> {
        self.e2e.as_ref().map(|d| d.status())
    }

    pub fn status(&self, routes: &[RouteView]) -> Value {
        let mut v = self.core.status(routes);
        v["wireguard_backend"] = self.wg.kind().into();
        v["tunnels"] = self.tunnels.len().into();
        v["mesh"]["tunnel_errors"] = self.tunnel_errors.into();
        v["mesh"]["discovery_bytes_in"] = self.discovery_bytes_in.into();
        v["mesh"]["discovery_bytes_out"] = self.discovery_bytes_out.into();
        v
    }

    pub fn nodes(&self) -> Value {
        let mut v = self.core.nodes();
        if let (Some(dev), Some(list)) = (&self.e2e, v["nodes"].as_array_mut()) {
            for n in list {
                // Our end-to-end peer for this node: its [T]:port, or null.
                let ep = n["router_id"].as_str().and_then(|r| dev.peer_endpoint(r));
                n["end_to_end"] = ep.into();
            }
        }
        v
    }

    /// Removes every tunnel (clean stop).
    pub async fn shutdown(&mut self) {
        let names: Vec<String> = self.tunnels.iter().map(|t| t.name.clone()).collect();
        for name in names {
            let _ = self.wg.delete_interface(&name).await;
        }
        self.tunnels.clear();
        if let Some(fw) = self.policy.as_mut() {
            fw.remove();
        }
        if self.e2e.is_some() {
            // Whatever state it is in (also a half-made one after a failure).
            let _ = self.wg.delete_interface(crate::mesh::e2e::INTERFACE).await;
        }
    }
}

/// The link manager's seed, from the OS random source. Without one the
/// mesh does not start: predictable nonces would let old handshake
/// messages be replayed.
pub fn nonce_seed<E: std::fmt::Display>(
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    fill(&mut seed).map_err(|e| io::Error::other(format!("no random numbers for handshake nonces: {e}")))?;
    Ok(seed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_random_numbers_the_mesh_does_not_start() {
        let e = nonce_seed(|_| Err("getrandom: ENOSYS")).unwrap_err();
        assert!(e.to_string().contains("no random numbers"), "{e}");
        let seed = nonce_seed(|b| {
            b.fill(7);
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(seed, [7; 32]);
    }

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
        let key = PublicKey([0xab; 32]);
        assert!(is_tunnel_name(&crate::link::manager::tunnel_name(Scope::Raw(9999), &key)));
        assert!(is_tunnel_name(&crate::link::manager::tunnel_name(Scope::Static(3), &key)));
    }
}
