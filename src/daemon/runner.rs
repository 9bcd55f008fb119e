//! The event loop: one task that owns the engine and every edge, sleeps until
//! the engine's next deadline or the next event, and does what the engine
//! asks. Generic over the edges so that tests can drive it with fakes.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use log::{debug, error, info, warn};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::ifaces::{desired_plain_interfaces, KernelView};
use super::kernel_routes::KernelRoutes;
use super::kernel_switches::KernelSwitches;
use super::mesh_runtime::{wall_clock, MeshRuntime};
use super::publish::{self, Publisher};
use super::state_file::{self, PersistentState};
use super::views;
use crate::babel::packet::Destination;
use crate::babel::{
    self, Engine, IfIndex, Input, InterfaceConfig as EngineIface, Metric, Output, Prefix, RouterId, SeqNo,
    Time,
};
use crate::config::Config;
use crate::control::{reply_err, reply_ok, Request};
use crate::kernel::{self, Fib, FibConfig, FibError, LinkMonitor};
use crate::net::{BabelIo, Dest, Origin};
use std::collections::BTreeSet;

/// A resync after an unknown outcome waits this long (the loop's next
/// wake-up after it), so that a burst of lost answers costs one dump.
const FIB_RESYNC_SOON: Duration = Duration::from_secs(1);
/// Refused installs are retried this often (by a dump and what differs).
const FIB_RETRY_REFUSED: Duration = Duration::from_secs(60);

/// Makes a FIB for a table/protocol (again, when a reload changes them).
pub type FibFactory<F> = Box<dyn Fn(FibConfig) -> io::Result<F>>;

/// Control requests travel from their connection tasks to the loop.
type ControlRequest = (Request, oneshot::Sender<String>);

pub struct Daemon<F: Fib, M: LinkMonitor, S: BabelIo> {
    config_path: PathBuf,
    cfg: Config,
    engine: Engine,
    fib: F,
    fib_factory: FibFactory<F>,
    monitor: M,
    sock: S,
    kernel: KernelView,
    /// Interfaces Babel runs on now, as given to the engine.
    active: BTreeMap<IfIndex, EngineIface>,
    announced: BTreeMap<Prefix, Metric>,
    /// The end-to-end plan may be out of date (see `update_e2e`).
    e2e_dirty: bool,
    /// The next periodic recomputation of the plan.
    e2e_due: Time,
    /// The engine's FIB operations on their way to the kernel (what is
    /// installed is the engine's to say).
    routes: KernelRoutes,
    start: Instant,
    saved_seqno: SeqNo,
    /// The time floor last saved.
    saved_floor: u64,
    fib_failures: u64,
    /// When to read our routes back from the kernel and put right what
    /// differs from the engine (after an unknown outcome, or to retry a
    /// refused install).
    fib_resync_at: Option<Instant>,
    is_wireless: fn(&str) -> bool,
    control_path: PathBuf,
    /// The zero-trust mesh (keys, tunnels, credentials), when configured.
    mesh: Option<MeshRuntime>,
    /// Forwarding and reverse-path switches (`set_forwarding`).
    switches: KernelSwitches,
    /// The hosts file for dnsmasq and the Prometheus textfile.
    publisher: Publisher,
}

fn fib_config(cfg: &Config) -> io::Result<FibConfig> {
    FibConfig::new(cfg.main.table, cfg.main.protocol)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Reads the router-id and seqno to start with; a new router-id is drawn
/// (and saved) on first start.
pub fn initial_state(path: &Path, fixed_router_id: Option<RouterId>) -> PersistentState {
    let (rid, seqno) = state_file::load(path).unwrap_or_else(|e| {
        warn!("ignoring unreadable state file: {e}");
        (None, None)
    });
    let router_id = fixed_router_id.or(rid.filter(RouterId::is_valid)).unwrap_or_else(random_router_id);
    // Start above the saved seqno: whatever we announced before a crash
    // may still be remembered, and must not be newer than what we say now.
    let seqno = seqno.map_or(SeqNo(random_u64() as u16), |s| s.add(1));
    PersistentState { router_id, seqno, time_floor: None }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Never fatal: jitter and a fresh router-id only need to differ.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.as_nanos() as u64 ^ (std::process::id() as u64) << 32;
    }
    u64::from_le_bytes(b)
}

fn random_router_id() -> RouterId {
    let mut id = random_u64().to_be_bytes();
    id[0] = (id[0] & 0xFC) | 0x02; // locally administered, unicast, as babeld
    RouterId(id)
}

impl<F: Fib, M: LinkMonitor, S: BabelIo> Daemon<F, M, S> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        cfg: Config,
        state: PersistentState,
        fib_factory: FibFactory<F>,
        monitor: M,
        sock: S,
        is_wireless: fn(&str) -> bool,
        mesh: Option<MeshRuntime>,
    ) -> io::Result<Self> {
        let fib = fib_factory(fib_config(&cfg)?)?;
        let engine = Engine::new(babel::EngineConfig {
            router_id: state.router_id,
            seqno: state.seqno,
            seed: random_u64(),
            smoothing_half_life_ms: cfg.main.smoothing_half_life_ms,
        });
        let mut engine = engine;
        engine.set_neighbour_limits(cfg.main.neighbour_limits());
        let control_path = cfg.main.control_socket.clone();
        let routes = KernelRoutes::new(cfg.main.kernel_priority);
        let switches = KernelSwitches::new(kernel::sysctl::Sysctl::system(), cfg.main.set_forwarding);
        let publisher = Publisher::new(&cfg.main);
        Ok(Daemon {
            config_path,
            cfg,
            engine,
            fib,
            fib_factory,
            monitor,
            sock,
            kernel: KernelView::default(),
            active: BTreeMap::new(),
            announced: BTreeMap::new(),
            e2e_dirty: true,
            e2e_due: Time(0),
            routes,
            start: Instant::now(),
            saved_seqno: SeqNo(state.seqno.0.wrapping_sub(1)),
            saved_floor: 0,
            fib_failures: 0,
            fib_resync_at: None,
            is_wireless,
            control_path,
            mesh,
            switches,
            publisher,
        })
    }

    fn babel_if_names(&self) -> Vec<String> {
        self.active.values().map(|c| c.name.clone()).collect()
    }

    fn now(&self) -> Time {
        Time(self.start.elapsed().as_millis() as u64)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs until `stop` resolves (or a SIGTERM/SIGINT when `signals`).
    pub async fn run(mut self, signals: bool, stop: Pin<Box<dyn Future<Output = ()>>>) -> io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        // Routes left by a previous run (a crash) go first: they may point
        // at neighbours that are gone.
        match self.fib.flush_own().await {
            Ok(0) => {}
            Ok(n) => info!("removed {n} stale routes left by a previous run"),
            Err(e) => warn!("could not remove stale routes: {e}"),
        }
        self.save_state();
        // Before any route: a node that installs routes but does not forward
        // would draw its neighbours' traffic into a black hole.
        self.switches.apply(self.cfg.main.set_forwarding, &[]);
        let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlRequest>(16);
        let mut listener = bind_control(&self.control_path)?;
        let mut hup = if signals { Some(signal(SignalKind::hangup())?) } else { None };
        let mut term = if signals { Some(signal(SignalKind::terminate())?) } else { None };
        let mut int = if signals { Some(signal(SignalKind::interrupt())?) } else { None };
        let mut stop = stop;
        self.reconcile_announces();
        let mut buf = vec![0u8; 65536];
        let mut dbuf = vec![0u8; 4096];
        if let Some(m) = self.mesh.as_mut() {
            let now = Time(self.start.elapsed().as_millis() as u64);
            m.reconcile_statics(now, &self.cfg, true);
        }
        info!(
            "running: router-id {}, {} interface(s) configured, routes in table {} protocol {}",
            self.engine.router_id(),
            self.cfg.interfaces.len(),
            self.cfg.main.table,
            self.cfg.main.protocol
        );
        loop {
            let next = [
                self.engine.poll_timeout(),
                self.mesh.as_ref().and_then(|m| m.poll_timeout()),
                self.publisher.metrics_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let deadline = next.map(|t| self.start + Duration::from_millis(t.millis()));
            let sleep = tokio::time::sleep_until(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                r = self.sock.recv(&mut buf) => match r {
                    Ok(meta) => {
                        let now = self.now();
                        let data = &buf[..meta.len];
                        self.engine.handle_input(now, Input::Datagram { ifindex: meta.ifindex, src: meta.source, data });
                    }
                    Err(e) => debug!("babel socket: {e}"),
                },
                ev = self.monitor.next_event() => match ev {
                    Ok(ev) => {
                        debug!("kernel: {ev:?}");
                        if let (crate::kernel::MonitorEvent::LinkAdded(l), Some(m)) = (&ev, self.mesh.as_mut()) {
                            if m.is_stale_tunnel(&l.name) {
                                m.reap(&l.name).await;
                            }
                        }
                        self.kernel.apply(&ev);
                        // weft-e2e appearing, or a local address (a source).
                        self.e2e_dirty = true;
                        self.reconcile_interfaces();
                    }
                    Err(e) => {
                        warn!("link monitor: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = sleep => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                    if let Some(m) = self.mesh.as_mut() {
                        m.on_timeout(now);
                    }
                }
                r = mesh_recv(&self.mesh, &mut dbuf) => match r {
                    Ok((n, origin)) => {
                        let now = self.now();
                        if let Some(m) = self.mesh.as_mut() {
                            m.on_datagram(now, origin, &dbuf[..n]);
                        }
                    }
                    Err(e) => debug!("discovery socket: {e}"),
                },
                conn = listener.accept() => match conn {
                    Ok((stream, _)) => { tokio::spawn(serve_control(stream, ctl_tx.clone())); }
                    Err(e) => warn!("control socket: {e}"),
                },
                Some((req, reply)) = ctl_rx.recv() => {
                    let answer = match req {
                        Request::Metrics => reply_ok(Value::String(self.metrics_text().await)),
                        _ => self.answer(req),
                    };
                    let _ = reply.send(answer);
                }
                _ = recv_signal(&mut hup) => {
                    if let Some(l) = self.reload().await {
                        listener = l;
                    }
                }
                _ = recv_signal(&mut term) => break,
                _ = recv_signal(&mut int) => break,
                _ = &mut stop => break,
            }
            if let Some(m) = self.mesh.as_mut() {
                let now = Time(self.start.elapsed().as_millis() as u64);
                m.io_work(now, &self.cfg).await;
            }
            self.pump().await;
            // The time floor is saved hourly (and at every seqno change).
            let floor_moved =
                self.mesh.as_ref().is_some_and(|m| m.core.time_floor() >= self.saved_floor + 3600);
            if self.engine.seqno() != self.saved_seqno || floor_moved {
                self.save_state();
            }
            if self.fib_resync_at.is_some_and(|t| t <= Instant::now()) {
                self.resync_routes().await;
            }
            let now = self.now();
            if self.publisher.metrics_due(now) {
                let text = self.metrics_text().await;
                self.publisher.write_metrics(now, &text);
            }
        }
        self.shutdown().await;
        Ok(())
    }

    /// Moves outputs between the engine, the mesh core and the edges until
    /// neither has anything left. The engine's outputs are taken out before
    /// anything is done with them, so the engine is never re-entered from
    /// inside its own drain: what the core asks of it comes in afterwards.
    async fn pump(&mut self) {
        for _ in 0..64 {
            let engine_moved = self.drain().await;
            let now = self.now();
            let d = match self.mesh.as_mut() {
                Some(m) => m.drain(&mut self.engine, now).await,
                None => Default::default(),
            };
            if d.tunnels_changed {
                self.reconcile_interfaces();
            }
            if d.filter_changed {
                self.update_hosts();
            }
            if d.moved {
                // A newly verified set may make a node end-to-end capable:
                // the next round's drain updates the plan.
                self.e2e_dirty = true;
            }
            if !engine_moved && !d.moved {
                return;
            }
        }
        warn!("engine and mesh core still busy after 64 rounds: continuing at the next event");
    }

    /// Does what the engine asked: datagrams out, FIB changes in one batch,
    /// TLV 224 bodies and filter verdicts to the mesh core. Returns whether
    /// there was anything.
    async fn drain(&mut self) -> bool {
        let mut outs = Vec::new();
        while let Some(o) = self.engine.poll_output() {
            outs.push(o);
        }
        let moved = !outs.is_empty();
        let now = self.now();
        for o in outs {
            match o {
                Output::Send { ifindex, dst, data } => {
                    let dest = match dst {
                        Destination::Multicast => Dest::Multicast,
                        Destination::Unicast(a) => Dest::Unicast(a),
                    };
                    if let Err(e) = self.sock.send(ifindex, dest, &data).await {
                        // A refused send loses a Hello or an update without
                        // a trace on the wire: say so, at 1, 2, 4, 8, ...
                        let n = self.sock.stats().send_errors;
                        if n.is_power_of_two() {
                            warn!("babel: send on ifindex {ifindex} failed ({n} so far): {e}");
                        } else {
                            debug!("babel: send on ifindex {ifindex}: {e}");
                        }
                    }
                }
                Output::Fib(op) => {
                    self.routes.push(op);
                    self.e2e_dirty = true;
                }
                Output::Extension { ifindex, from, body } => {
                    if let Some(m) = self.mesh.as_mut() {
                        m.on_extension(now, ifindex, from, &body);
                    }
                }
                Output::Filtered { query, verdict } => {
                    if let Some(m) = self.mesh.as_mut() {
                        m.on_filtered(now, query, verdict);
                    }
                }
                Output::Origin { seqno, prefixes } => {
                    if let Some(m) = self.mesh.as_mut() {
                        m.on_origin(now, seqno, prefixes);
                    }
                }
            }
        }
        // Only here, with the engine's outputs all taken: the plan must see
        // the FIB the kernel-route layer has been told about.
        self.update_e2e().await;
        self.apply_routes().await;
        moved
    }

    /// Brings the end-to-end interface and the kernel routes it steers in
    /// line with the selected routes and what the core verified, when
    /// either may have changed.
    async fn update_e2e(&mut self) {
        // Also once a second whatever happened: a selected route can change
        // origin without changing next hop (no FIB operation), and a peer's
        // grace runs out with no event at all.
        let now = self.now();
        if !std::mem::take(&mut self.e2e_dirty) && now < self.e2e_due {
            return;
        }
        self.e2e_due = now.plus_ms(1000);
        let Some(m) = self.mesh.as_mut() else { return };
        let routing = m.e2e_update(&self.engine, &self.kernel, &self.cfg, now).await;
        if !self.routes.e2e_is(&routing) {
            self.routes.set_e2e(routing, &self.engine.fib_routes());
        }
        m.persist_epoch();
    }

    /// Sends the batch of route changes to the kernel.
    async fn apply_routes(&mut self) {
        if self.routes.batch().is_empty() {
            return;
        }
        if self.routes.has_ipv4() {
            let names = self.babel_if_names();
            self.switches.route_installed(true, &names);
        }
        let failures = self.fib.apply(self.routes.batch()).await;
        // An outcome we cannot know (the answer lost, the socket failed) or
        // a replace/remove that failed leaves the kernel unlike the engine:
        // a dump puts it right at once. A refused install is retried by the
        // same dump a minute later (the route in its way may be gone).
        let uncertain = failures.iter().any(|f| match (&f.op, &f.error) {
            (_, FibError::AckLost | FibError::Io(_)) => true,
            (kernel::FibOp::Replace(_), _) => true,
            (kernel::FibOp::Remove(_), e) => !e.is_not_found(),
            (kernel::FibOp::Add(_), _) => false,
        });
        for f in &failures {
            // Gone already (the kernel drops a link's routes with the link).
            if matches!(f.op, kernel::FibOp::Remove(_)) && f.error.is_not_found() {
                debug!("kernel route {:?}: {}", f.op, f.error);
                continue;
            }
            self.fib_failures += 1;
            warn!("kernel route {:?}: {}", f.op, f.error);
        }
        self.routes.applied(&failures);
        if uncertain {
            self.fib_resync_at = Some(Instant::now() + FIB_RESYNC_SOON);
        } else if self.routes.missing() > 0 && self.fib_resync_at.is_none() {
            self.fib_resync_at = Some(Instant::now() + FIB_RETRY_REFUSED);
        }
    }

    /// Reads our routes back from the kernel and applies what differs from
    /// the engine (see [`KernelRoutes::reconcile`]).
    async fn resync_routes(&mut self) {
        self.fib_resync_at = None;
        match self.fib.dump_own().await {
            Ok(kernel) => {
                let n = self.routes.missing();
                self.routes.reconcile(kernel, self.engine.fib_routes());
                if !self.routes.batch().is_empty() {
                    info!(
                        "kernel routes: resync with the engine ({} change(s), {n} install(s) had failed)",
                        self.routes.batch().len()
                    );
                }
                self.apply_routes().await;
            }
            Err(e) => {
                warn!("kernel routes: dump for a resync failed: {e}");
                self.fib_resync_at = Some(Instant::now() + FIB_RETRY_REFUSED);
            }
        }
    }

    fn reconcile_interfaces(&mut self) {
        let now = self.now();
        let mut desired = desired_plain_interfaces(&self.cfg, &self.kernel, self.is_wireless);
        if let Some(m) = self.mesh.as_mut() {
            m.reconcile_raws(now, &self.cfg, &self.kernel);
            desired.extend(m.tunnel_interfaces(&self.cfg, &self.kernel));
        }
        for (ifindex, config) in desired.iter_mut() {
            if let Some(cur) = self.active.get(ifindex) {
                super::ifaces::keep_link_local(config, cur.link_local);
            }
        }
        let gone: Vec<IfIndex> = self.active.keys().filter(|i| !desired.contains_key(i)).copied().collect();
        for ifindex in gone {
            let name = self.active.remove(&ifindex).map(|c| c.name).unwrap_or_default();
            info!("babel stops on {name} (ifindex {ifindex})");
            self.engine.handle_input(now, Input::InterfaceDown { ifindex });
            if let Err(e) = self.sock.leave(ifindex) {
                debug!("leave {name}: {e}");
            }
        }
        for (ifindex, config) in desired {
            if self.active.get(&ifindex) == Some(&config) {
                continue;
            }
            if !self.active.contains_key(&ifindex) {
                if let Err(e) = self.sock.join(ifindex) {
                    warn!("cannot run babel on {}: {e}", config.name);
                    continue;
                }
                info!(
                    "babel runs on {} (ifindex {ifindex}, {}, {})",
                    config.name,
                    config.link_type.as_str(),
                    config.link_local
                );
            }
            // What we send must come from the address the engine calls ours.
            self.sock.set_source(ifindex, config.link_local);
            self.active.insert(ifindex, config.clone());
            self.engine.handle_input(now, Input::InterfaceUp { ifindex, config });
        }
        if let Some(m) = self.mesh.as_mut() {
            let tunnels: BTreeSet<IfIndex> =
                self.active.iter().filter(|(_, c)| m.is_tunnel(&c.name)).map(|(i, _)| *i).collect();
            m.set_tunnel_interfaces(now, tunnels);
        }
        let names = self.babel_if_names();
        self.switches.interfaces_changed(&names);
    }

    /// The hosts file follows the nodes whose credentials verify.
    fn update_hosts(&mut self) {
        if let Some(m) = self.mesh.as_ref() {
            self.publisher.update_hosts(publish::verified_nodes(m), wall_clock());
        }
    }

    /// The Prometheus exposition of the daemon's state now.
    async fn metrics_text(&mut self) -> String {
        let tunnels = match self.mesh.as_mut() {
            Some(m) => m.tunnel_counters().await,
            None => Vec::new(),
        };
        let snap = publish::snapshot(&self.engine, self.mesh.as_ref(), tunnels);
        crate::metrics::render(&snap)
    }

    fn reconcile_announces(&mut self) {
        let now = self.now();
        let mut desired: BTreeMap<Prefix, Metric> =
            self.cfg.announces.iter().filter(|a| a.enabled).map(|a| (a.prefix, Metric(a.metric))).collect();
        for p in self.mesh.as_ref().map(|m| m.own_prefixes()).unwrap_or_default() {
            desired.insert(p, Metric(0));
        }
        let gone: Vec<Prefix> = self.announced.keys().filter(|p| !desired.contains_key(p)).copied().collect();
        for prefix in gone {
            info!("no longer announcing {prefix}");
            self.engine.handle_input(now, Input::Withdraw { prefix });
        }
        for (prefix, metric) in &desired {
            if self.announced.get(prefix) != Some(metric) {
                info!("announcing {prefix} metric {metric}");
                self.engine.handle_input(now, Input::Announce { prefix: *prefix, metric: *metric });
            }
        }
        self.announced = desired;
    }

    /// SIGHUP: a valid file replaces the running configuration, applied as
    /// a difference; an invalid one is refused and changes nothing.
    async fn reload(&mut self) -> Option<UnixListener> {
        let new = match crate::config::load(&self.config_path) {
            Ok((c, warnings)) => {
                for w in warnings {
                    warn!("{w}");
                }
                c
            }
            Err(e) => {
                error!("reload refused, keeping the running configuration: {e}");
                return None;
            }
        };
        info!("reloading {}", self.config_path.display());
        let old = std::mem::replace(&mut self.cfg, new);
        super::logger::set_level(self.cfg.main.log_level.as_str());
        self.engine.set_neighbour_limits(self.cfg.main.neighbour_limits());
        self.engine.set_smoothing_half_life(self.cfg.main.smoothing_half_life_ms);
        self.publisher.reconfigure(&self.cfg.main);
        if old.main.origin_signatures != self.cfg.main.origin_signatures {
            warn!("origin_signatures changed: it takes effect when weft restarts");
        }
        let e2e = |m: &crate::config::MainConfig| {
            (m.end_to_end, m.end_to_end_port, m.end_to_end_max_peers, m.end_to_end_mtu)
        };
        if e2e(&old.main) != e2e(&self.cfg.main)
            || (self.cfg.end_to_end() && old.main.mesh_prefix != self.cfg.main.mesh_prefix)
        {
            warn!("end_to_end options or the mesh_prefix changed: end to end keeps the old ones until weft restarts");
        }
        if (old.main.table, old.main.protocol, old.main.kernel_priority)
            != (self.cfg.main.table, self.cfg.main.protocol, self.cfg.main.kernel_priority)
        {
            self.move_routes().await;
        }
        if self.mesh.is_some() {
            let now = self.now();
            if old.trust != self.cfg.trust || old.main.mesh_prefix != self.cfg.main.mesh_prefix {
                info!("trust material changed: re-checking every neighbour and origin");
            }
            // Always re-read: a revocation file may change under the same name.
            if let Some(m) = self.mesh.as_mut() {
                m.trust_changed(now, &self.cfg);
                m.reconcile_statics(now, &self.cfg, true);
            }
        } else if self.cfg.trust.has_trust_material() {
            warn!("trust material was added: restart weft to turn on the zero-trust mesh");
        }
        self.reconcile_interfaces();
        self.reconcile_announces();
        let names = self.babel_if_names();
        self.switches.apply(self.cfg.main.set_forwarding, &names);
        if old.main.control_socket != self.cfg.main.control_socket {
            match bind_control(&self.cfg.main.control_socket) {
                Ok(l) => {
                    let _ = std::fs::remove_file(&self.control_path);
                    self.control_path = self.cfg.main.control_socket.clone();
                    return Some(l);
                }
                Err(e) => warn!("keeping control socket {}: {e}", self.control_path.display()),
            }
        }
        None
    }

    /// Table, protocol or kernel priority changed: our routes move over.
    async fn move_routes(&mut self) {
        let fc = match fib_config(&self.cfg) {
            Ok(fc) => fc,
            Err(e) => {
                error!("keeping the old routing table: {e}");
                return;
            }
        };
        let new_fib = match (self.fib_factory)(fc) {
            Ok(f) => f,
            Err(e) => {
                error!("keeping the old routing table: {e}");
                return;
            }
        };
        if let Err(e) = self.fib.flush_own().await {
            warn!("removing routes from the old table: {e}");
        }
        self.fib = new_fib;
        self.routes.reinstall(self.cfg.main.kernel_priority, self.engine.fib_routes());
        self.apply_routes().await;
    }

    async fn shutdown(&mut self) {
        info!("stopping: retracting our routes");
        let now = self.now();
        self.engine.handle_input(now, Input::Shutdown);
        self.pump().await;
        match self.fib.flush_own().await {
            Ok(n) => info!("removed {n} routes"),
            Err(e) => warn!("removing routes: {e}"),
        }
        if let Some(m) = self.mesh.as_mut() {
            m.shutdown().await;
        }
        self.switches.restore();
        self.publisher.shutdown();
        self.save_state();
        let _ = std::fs::remove_file(&self.control_path);
    }

    fn save_state(&mut self) {
        let time_floor = self.mesh.as_ref().map(|m| m.core.time_floor());
        self.saved_floor = time_floor.unwrap_or(0);
        let st =
            PersistentState { router_id: self.engine.router_id(), seqno: self.engine.seqno(), time_floor };
        match state_file::save(&self.cfg.main.state_file, &st) {
            Ok(()) => self.saved_seqno = st.seqno,
            Err(e) => {
                // Keep going: losing the seqno costs only convergence time.
                warn!("cannot save state to {}: {e}", self.cfg.main.state_file.display());
                self.saved_seqno = st.seqno;
            }
        }
    }

    fn answer(&self, req: Request) -> String {
        match req {
            Request::Status => reply_ok(self.status()),
            Request::Neighbours => {
                let mut v = views::neighbours(&self.engine);
                if let (Some(m), Some(list)) =
                    (&self.mesh, v.get_mut("neighbours").and_then(Value::as_array_mut))
                {
                    for n in list {
                        let name = n.get("interface").and_then(Value::as_str).unwrap_or("").to_string();
                        if let (Some(extra), Some(obj)) = (m.tunnel_info(&name), n.as_object_mut()) {
                            for (k, x) in extra.as_object().into_iter().flatten() {
                                obj.insert(k.clone(), x.clone());
                            }
                        }
                    }
                }
                reply_ok(v)
            }
            Request::Routes => reply_ok(views::routes(&self.engine)),
            Request::Nodes => reply_ok(match &self.mesh {
                Some(m) => m.nodes(),
                None => json!({ "nodes": [] }),
            }),
            // Answered in the loop: reading tunnel counters is async.
            Request::Metrics => reply_err("internal: metrics are answered by the event loop"),
        }
    }

    fn status(&self) -> Value {
        let installed = self.engine.installed_routes().len();
        let interfaces: Vec<Value> = self
            .cfg
            .interfaces
            .iter()
            .map(|i| {
                let link = self.kernel.by_name(&i.ifname);
                let babel = link.is_some_and(|l| self.active.contains_key(&l.ifindex));
                json!({
                    "name": i.ifname,
                    "ifindex": link.map(|l| l.ifindex),
                    "up": link.is_some_and(|l| l.is_up()),
                    "babel": babel,
                    "wireguard": i.wireguard,
                    "type": self.active.get(&link.map_or(0, |l| l.ifindex)).map(|c| c.link_type.as_str()),
                })
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "router_id": self.engine.router_id().to_string(),
            "seqno": self.engine.seqno().0,
            "uptime_s": self.start.elapsed().as_secs(),
            "config": self.config_path.display().to_string(),
            "table": self.cfg.main.table,
            "protocol": self.cfg.main.protocol,
            "interfaces": interfaces,
            "counts": {
                "neighbours": self.engine.neighbours().len(),
                "routes": self.engine.route_count(),
                "installed": installed,
                "announced": self.announced.len(),
                "kernel_route_failures": self.fib_failures,
            },
            "babel": self.engine.stats(),
            // What the Babel socket read and what it dropped before the
            // engine (RFC 8966 section 4's source checks).
            "socket": self.sock.stats(),
            "forwarding": self.switches.status(),
            "trust": self.mesh.as_ref().map(|m| m.status(&self.engine.routes())),
            "end_to_end": self.mesh.as_ref().and_then(|m| m.e2e_status()),
            "policy": self.mesh.as_ref().and_then(|m| m.policy_status(&self.cfg)),
        })
    }
}

async fn mesh_recv(mesh: &Option<MeshRuntime>, buf: &mut [u8]) -> io::Result<(usize, Origin)> {
    match mesh {
        Some(m) => m.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Binds the control socket, mode 0600 (it tells anyone who can read it
/// the whole topology; only root should).
fn bind_control(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a crash would make bind fail.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let old = unsafe { libc::umask(0o177) };
    let l = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let l = l.map_err(|e| io::Error::new(e.kind(), format!("control socket {}: {e}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// One control connection: a request line in, one JSON document out.
async fn serve_control(stream: UnixStream, tx: mpsc::Sender<ControlRequest>) {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = BufReader::new(rd).take(1024);
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_line(&mut line)).await;
    let reply = match read {
        Ok(Ok(_)) => match Request::parse(&line) {
            Ok(req) => {
                let (otx, orx) = oneshot::channel();
                if tx.send((req, otx)).await.is_err() {
                    return;
                }
                orx.await.unwrap_or_else(|_| reply_err("daemon is stopping"))
            }
            Err(e) => reply_err(&e),
        },
        _ => reply_err("no request received"),
    };
    let _ = wr.write_all(reply.as_bytes()).await;
    let _ = wr.shutdown().await;
}
