//! The zero-trust mesh in the simulator: every node runs a Babel engine and
//! a mesh core ([`MeshCore`]) with its own key, credential, trust store and
//! wall clock; raw links carry discovery and the tunnel handshake; a tunnel
//! carries Babel once both ends have configured it consistently, as
//! WireGuard would. Virtual time, seeded randomness: a run replays exactly.
//!
//! Scenarios come from the topology JSON format (see [`super::topology`])
//! with optional keys of their own:
//!
//! ```json
//! {"links": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
//!  "credentials": {"a": {"prefixes": ["10.1.0.0/24"], "not_before": -3600,
//!                        "not_after": 86400, "ca": "main"},
//!                  "c": null},
//!  "clocks": {"b": 0}}
//! ```
//!
//! `credentials`: per node, what its credential grants and its window in
//! seconds relative to the scenario's epoch (`ca`: `main` or `other`, a CA
//! the others do not trust); `null`: no credential; absent: a credential
//! for a year with no extra prefixes; `true` instead of the object: every
//! node's credential grants it `10.(i/256).(i%256).0/24`, which it
//! announces. `clocks`: per node, its wall clock at the start (Unix seconds;
//! 0 is a router that booted in 1970). `adversaries`: misbehaving members
//! (see [`super::adversary`]). `"filter": false` turns every node's route
//! filter off (the mesh before zero trust, a control for attack tests).
//!
//! The simulator also lets a test act as an attacker on a link (inject any
//! discovery datagram), step a node's clock, revoke a key, and announce
//! prefixes from any node.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use serde_json::Value;

use super::adversary::{self, Adversary, AdversaryKind, Walk};
use super::topology::Topology;
use crate::babel::packet::{Destination, Message, PacketBuilder, Update};
use crate::babel::{
    Centisecs, Engine, EngineConfig, FibOp, IfIndex, Input, InterfaceConfig, Metric, Output, Prefix, SeqNo,
    Time,
};
use crate::link::{Scope, TunnelSpec};
use crate::mesh::{MeshConfig, MeshCore, MeshInput, MeshOutput};
use crate::trust::{
    derive, CaSecretKey, Credential, CredentialBody, MeshPrefix, NodePrivateKey, PublicKey, RevocationList,
    TrustStore,
};

/// The scenario's wall-clock time at the start (2026-09-02).
pub const DEFAULT_EPOCH: u64 = 1_788_000_000;
/// Every node's binary was built this long before the epoch (its time
/// floor at the start).
pub const BUILT_BEFORE_EPOCH: u64 = 30 * 86_400;
/// Every node's mesh addresses live here.
pub const MESH_PREFIX: &str = "fd42:77:1::/48";

/// Which CA signed a node's credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaChoice {
    /// The network's CA, which every node trusts.
    Main,
    /// A CA nobody in the scenario trusts.
    Other,
}

/// A node's credential, times relative to the scenario's epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSpec {
    pub prefixes: Vec<Prefix>,
    pub not_before: i64,
    pub not_after: i64,
    pub ca: CaChoice,
}

impl Default for CredentialSpec {
    fn default() -> Self {
        CredentialSpec {
            prefixes: Vec::new(),
            not_before: -86_400,
            not_after: 365 * 86_400,
            ca: CaChoice::Main,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshNodeSpec {
    pub credential: Option<CredentialSpec>,
    /// The node's wall clock at the start, Unix seconds.
    pub wall: u64,
    /// Prefixes it announces besides its mesh address.
    pub announces: Vec<Prefix>,
}

#[derive(Clone, Debug)]
pub struct MeshScenario {
    pub topology: Topology,
    pub nodes: Vec<MeshNodeSpec>,
    pub epoch: u64,
    pub seed: u64,
    /// Hello interval of every tunnel (update: four of them).
    pub hello_interval_ms: u64,
    pub adversaries: Vec<Adversary>,
    /// Route filters on (the default); off only as a control.
    pub filter: bool,
    /// Origin signatures required where credentials carry signing keys
    /// (the default; every simulated credential does).
    pub signatures: bool,
}

impl MeshScenario {
    /// Every node credentialed for a year, every clock right.
    pub fn new(topology: Topology) -> MeshScenario {
        let nodes = (0..topology.len())
            .map(|_| MeshNodeSpec {
                credential: Some(CredentialSpec::default()),
                wall: DEFAULT_EPOCH,
                announces: Vec::new(),
            })
            .collect();
        MeshScenario {
            topology,
            nodes,
            epoch: DEFAULT_EPOCH,
            seed: 1,
            hello_interval_ms: 1000,
            adversaries: Vec::new(),
            filter: true,
            signatures: true,
        }
    }

    /// The topology JSON format with the `credentials` and `clocks` keys.
    pub fn from_json(text: &str) -> Result<MeshScenario, String> {
        let topology = Topology::from_json(text)?;
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut s = MeshScenario::new(topology);
        let index = |name: &str| {
            s.topology.index_of(name).ok_or_else(|| format!("{name:?} is not a node of the topology"))
        };
        if v.get("credentials") == Some(&Value::Bool(true)) {
            for (i, n) in s.nodes.iter_mut().enumerate() {
                let granted = adversary::granted_prefix(i);
                n.credential = Some(CredentialSpec { prefixes: vec![granted], ..CredentialSpec::default() });
                n.announces.push(granted);
            }
        } else if let Some(creds) = v.get("credentials") {
            let creds = creds.as_object().ok_or("\"credentials\" must be an object or true")?;
            for (name, c) in creds {
                let i = index(name)?;
                s.nodes[i].credential = match c {
                    Value::Null => None,
                    c => Some(parse_credential_spec(name, c)?),
                };
            }
        }
        if let Some(clocks) = v.get("clocks") {
            let clocks = clocks.as_object().ok_or("\"clocks\" must be an object")?;
            for (name, t) in clocks {
                let i = index(name)?;
                s.nodes[i].wall =
                    t.as_u64().ok_or_else(|| format!("clocks.{name} must be Unix seconds (0 or more)"))?;
            }
        }
        s.adversaries = adversary::parse(&v, &s.topology)?;
        if let Some(f) = v.get("filter") {
            s.filter = f.as_bool().ok_or("\"filter\" must be true or false")?;
        }
        if let Some(f) = v.get("signatures") {
            s.signatures = f.as_bool().ok_or("\"signatures\" must be true or false")?;
        }
        Ok(s)
    }
}

fn parse_credential_spec(name: &str, c: &Value) -> Result<CredentialSpec, String> {
    let mut spec = CredentialSpec::default();
    let c = c.as_object().ok_or_else(|| format!("credentials.{name} must be an object or null"))?;
    if let Some(p) = c.get("prefixes") {
        let list = p.as_array().ok_or_else(|| format!("credentials.{name}.prefixes must be an array"))?;
        for x in list {
            let t = x.as_str().ok_or_else(|| format!("credentials.{name}.prefixes: strings only"))?;
            spec.prefixes.push(t.parse().map_err(|e| format!("credentials.{name}.prefixes: {t:?}: {e}"))?);
        }
    }
    let secs = |k: &str, d: i64| -> Result<i64, String> {
        match c.get(k) {
            None => Ok(d),
            Some(x) => x.as_i64().ok_or_else(|| format!("credentials.{name}.{k} must be whole seconds")),
        }
    };
    spec.not_before = secs("not_before", spec.not_before)?;
    spec.not_after = secs("not_after", spec.not_after)?;
    spec.ca = match c.get("ca").and_then(Value::as_str) {
        None | Some("main") => CaChoice::Main,
        Some("other") => CaChoice::Other,
        Some(x) => return Err(format!("credentials.{name}.ca {x:?}: expected main or other")),
    };
    Ok(spec)
}

/// A tunnel as the simulated WireGuard backend holds it.
struct SimTunnel {
    spec: TunnelSpec,
    /// The Babel interface over it.
    babel_if: IfIndex,
}

struct MeshNode {
    engine: Engine,
    core: MeshCore,
    key: PublicKey,
    /// Its key for origin-signed announcements (in its credential).
    signing_key: [u8; 32],
    credential: Option<Credential>,
    /// Raw ifindex -> link index.
    raws: HashMap<IfIndex, usize>,
    tunnels: BTreeMap<String, SimTunnel>,
    /// Babel ifindex -> tunnel name.
    babel_ifs: BTreeMap<IfIndex, String>,
    next_babel_if: IfIndex,
    /// Installed routes: prefix -> (ifindex, next hop).
    fib: BTreeMap<Prefix, (IfIndex, IpAddr)>,
    /// How many installed routes have each (IPv4?, length): longest-match
    /// lookups try only lengths present (walking a 1000-node mesh's
    /// million pairs by scanning every route was the run's whole cost).
    fib_lens: BTreeMap<(bool, u8), usize>,
    /// The wall clock: `wall_base` at `wall_at`.
    wall_base: u64,
    wall_at: Time,
    logs: Vec<(Time, log::Level, String)>,
    next_alive: Time,
    /// Babel datagrams this node received over tunnels.
    babel_in: u64,
    /// Babel payload bytes and datagrams this node sent over tunnels
    /// (before loss), TLV 224 included.
    babel_bytes_out: u64,
    babel_packets_out: u64,
}

enum Event {
    Discovery {
        node: usize,
        ifindex: IfIndex,
        src: SocketAddr,
        data: Vec<u8>,
    },
    Babel {
        node: usize,
        ifindex: IfIndex,
        src: Ipv6Addr,
        data: Vec<u8>,
    },
    /// Adversary `k` acts (and, if it keeps acting, schedules its next act).
    Attack {
        k: usize,
    },
}

pub struct MeshSim {
    now: Time,
    epoch: u64,
    nodes: Vec<MeshNode>,
    topology: Topology,
    ca: CaSecretKey,
    other_ca: CaSecretKey,
    store: TrustStore,
    revocations: Option<RevocationList>,
    events: BinaryHeap<Reverse<(Time, u64)>>,
    payloads: HashMap<u64, Event>,
    seq: u64,
    rng: u64,
    timers: BinaryHeap<Reverse<(Time, usize)>>,
    deadline: Vec<Option<Time>>,
    hello_ms: u64,
    /// Discovery datagrams delivered, and lost.
    discovery_packets: u64,
    adversaries: Vec<Adversary>,
    filter: bool,
    /// What each node originates honestly: its node address and the
    /// prefixes of its scenario.
    originates: Vec<Vec<Prefix>>,
    /// The victim's seqno each replaying adversary recorded (by index).
    captured: HashMap<usize, SeqNo>,
    /// Where [`MeshSim::all_delivered`] found a pair not delivered last.
    undelivered_at: usize,
}

const TUNNEL_ALIVE_MS: u64 = 10_000;

fn raw_link_local(node: usize, ifindex: IfIndex) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0xa, (node >> 16) as u16, node as u16, ifindex as u16)
}

fn seeded(seed: u64, what: &str, i: usize) -> [u8; 32] {
    let mut h = ed25519_compact::sha512::Hash::new();
    h.update(seed.to_be_bytes());
    h.update(what.as_bytes());
    h.update((i as u64).to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize()[..32]);
    out
}

impl MeshSim {
    pub fn new(scn: &MeshScenario) -> MeshSim {
        let ca = CaSecretKey::from_seed(seeded(scn.seed, "ca", 0)).expect("CA seed");
        let other_ca = CaSecretKey::from_seed(seeded(scn.seed, "other ca", 0)).expect("CA seed");
        let mut store = TrustStore::new();
        store.add_ca(ca.public_key());
        store.set_mesh_prefix(Some(
            MeshPrefix::new(MESH_PREFIX.parse().expect("prefix")).expect("mesh prefix"),
        ));
        let n = scn.topology.len();
        let mut nodes = Vec::with_capacity(n);
        for (i, spec) in scn.nodes.iter().enumerate().take(n) {
            let key = NodePrivateKey::from_random(seeded(scn.seed, "node", i));
            let public = key.public_key();
            let signing_key = crate::mesh::origin::signing_public(&key);
            let credential = spec.credential.as_ref().map(|c| {
                let body = CredentialBody {
                    public_key: public,
                    name: scn.topology.names[i].clone(),
                    prefixes: c.prefixes.clone(),
                    groups: Vec::new(),
                    not_before: scn.epoch.saturating_add_signed(c.not_before),
                    not_after: scn.epoch.saturating_add_signed(c.not_after),
                    signing_key: Some(crate::mesh::origin::signing_public(&key)),
                };
                let signer = if c.ca == CaChoice::Main { &ca } else { &other_ca };
                Credential::sign(body, signer).expect("credential")
            });
            let floor = scn.epoch - BUILT_BEFORE_EPOCH;
            let mut cfg =
                MeshConfig::new(key, credential.clone(), store.clone(), seeded(scn.seed, "nonce", i), floor);
            cfg.origin_signatures = scn.signatures;
            let core = MeshCore::new(cfg, Time(0), spec.wall);
            let engine = Engine::new(EngineConfig::new(
                derive::router_id(&public),
                SeqNo(i as u16),
                scn.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            ));
            nodes.push(MeshNode {
                engine,
                core,
                key: public,
                signing_key,
                credential,
                raws: HashMap::new(),
                tunnels: BTreeMap::new(),
                babel_ifs: BTreeMap::new(),
                next_babel_if: 1000,
                fib: BTreeMap::new(),
                fib_lens: BTreeMap::new(),
                wall_base: spec.wall,
                wall_at: Time(0),
                logs: Vec::new(),
                next_alive: Time(TUNNEL_ALIVE_MS),
                babel_in: 0,
                babel_bytes_out: 0,
                babel_packets_out: 0,
            });
        }
        let mut next_if = vec![1u32; n];
        for (li, l) in scn.topology.links.iter().enumerate() {
            nodes[l.a].raws.insert(next_if[l.a], li);
            nodes[l.b].raws.insert(next_if[l.b], li);
            next_if[l.a] += 1;
            next_if[l.b] += 1;
        }
        let mut sim = MeshSim {
            now: Time(0),
            epoch: scn.epoch,
            nodes,
            topology: scn.topology.clone(),
            ca,
            other_ca,
            store,
            revocations: None,
            events: BinaryHeap::new(),
            payloads: HashMap::new(),
            seq: 0,
            rng: scn.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            timers: BinaryHeap::new(),
            deadline: vec![None; n],
            hello_ms: scn.hello_interval_ms,
            discovery_packets: 0,
            adversaries: scn.adversaries.clone(),
            filter: scn.filter,
            originates: vec![Vec::new(); n],
            captured: HashMap::new(),
            undelivered_at: 0,
        };
        for k in 0..sim.adversaries.len() {
            let at = match sim.adversaries[k].kind {
                AdversaryKind::Replay { capture_ms, .. } => capture_ms,
                _ => sim.adversaries[k].start_ms,
            };
            sim.schedule(at, Event::Attack { k });
        }
        for i in 0..n {
            let mut raws: Vec<IfIndex> = sim.nodes[i].raws.keys().copied().collect();
            raws.sort();
            for ifindex in raws {
                let link_type = sim.topology.links[sim.nodes[i].raws[&ifindex]].link_type;
                let name = format!("raw{ifindex}");
                sim.core_input(i, MeshInput::RawUp { ifindex, name, link_type, mtu: 1500 });
            }
            let mut announces = scn.nodes[i].announces.clone();
            if let Some(a) = sim.nodes[i].core.mesh_address() {
                announces.push(Prefix::V6(a, 128));
            }
            sim.originates[i] = announces.clone();
            for prefix in announces {
                sim.engine_input(i, Input::Announce { prefix, metric: Metric::ZERO });
            }
        }
        sim
    }

    // ----- running ---------------------------------------------------------

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Runs one event; false if nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: Time) -> bool {
        while let Some(Reverse((t, i))) = self.timers.peek().copied() {
            if self.deadline[i] == Some(t) {
                break;
            }
            self.timers.pop();
        }
        let next_event = self.events.peek().map(|Reverse((t, _))| *t);
        let next_timer = self.timers.peek().map(|Reverse((t, i))| (*t, *i));
        let t = match (next_event, next_timer) {
            (Some(a), Some((b, _))) => a.min(b),
            (Some(a), None) => a,
            (None, Some((b, _))) => b,
            (None, None) => return false,
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        if next_event == Some(t) {
            let Reverse((_, seq)) = self.events.pop().expect("peeked");
            match self.payloads.remove(&seq) {
                Some(Event::Discovery { node, ifindex, src, data }) => {
                    self.core_input(node, MeshInput::Datagram { ifindex: Some(ifindex), src, data: &data });
                }
                Some(Event::Babel { node, ifindex, src, data })
                    if self.nodes[node].babel_ifs.contains_key(&ifindex) =>
                {
                    self.nodes[node].babel_in += 1;
                    self.engine_input(node, Input::Datagram { ifindex, src, data: &data });
                }
                Some(Event::Attack { k }) => self.attack(k),
                _ => {}
            }
        } else if let Some((_, i)) = next_timer {
            self.timers.pop();
            self.deadline[i] = None;
            let (now, wall) = (self.now, self.wall(i));
            self.nodes[i].engine.handle_timeout(now);
            self.nodes[i].core.handle_timeout(now, wall);
            if now >= self.nodes[i].next_alive {
                self.nodes[i].next_alive = now.plus_ms(TUNNEL_ALIVE_MS);
                self.report_alive_tunnels(i);
            }
            self.pump(i);
        }
        true
    }

    pub fn run_until(&mut self, t: Time) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    pub fn run_for(&mut self, ms: u64) {
        let t = self.now.plus_ms(ms);
        self.run_until(t);
    }

    /// Runs until `cond` holds (checked after every event) or `max_ms`
    /// passes; the time it first held.
    pub fn run_until_cond(&mut self, max_ms: u64, mut cond: impl FnMut(&MeshSim) -> bool) -> Option<Time> {
        let limit = self.now.plus_ms(max_ms);
        loop {
            if cond(self) {
                return Some(self.now);
            }
            if !self.step(limit) {
                self.now = self.now.max(limit);
                return cond(self).then_some(self.now);
            }
        }
    }

    // ----- inputs ----------------------------------------------------------

    /// Node `i`'s wall clock now.
    pub fn wall(&self, i: usize) -> u64 {
        let n = &self.nodes[i];
        n.wall_base.saturating_add(self.now.since(n.wall_at) / 1000)
    }

    /// Sets node `i`'s wall clock (an NTP step, spoofed or not).
    pub fn set_wall(&mut self, i: usize, unix: u64) {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.wall_base = unix;
        n.wall_at = now;
    }

    /// The scenario's true time now.
    pub fn true_time(&self) -> u64 {
        self.epoch + self.now.millis() / 1000
    }

    fn engine_input(&mut self, i: usize, input: Input<'_>) {
        self.nodes[i].engine.handle_input(self.now, input);
        self.pump(i);
    }

    fn core_input(&mut self, i: usize, input: MeshInput<'_>) {
        let wall = self.wall(i);
        self.nodes[i].core.handle_input(self.now, wall, input);
        self.pump(i);
    }

    /// Node `i` originates `prefix` (granted or not).
    pub fn announce(&mut self, i: usize, prefix: Prefix) {
        self.engine_input(i, Input::Announce { prefix, metric: Metric::ZERO });
    }

    /// A spoofer's own engine would contradict its lies (it still routes
    /// the victim's prefixes honestly, and retracts them when the lies come
    /// back to it): once it acts, it leaves those Updates out.
    fn as_adversary_sends(&self, i: usize, data: Vec<u8>) -> Vec<u8> {
        let Some(victim) = self.active_adversary(i).and_then(|a| a.kind.victim()) else {
            return data;
        };
        let Ok(d) = crate::babel::packet::decode(&data) else { return data };
        let mut b = PacketBuilder::new(data.len().max(1400));
        for m in &d.messages {
            if matches!(m, Message::Update(u) if self.originates[victim].contains(&u.prefix)) {
                continue;
            }
            b.push(m);
        }
        b.take()
    }

    /// Adversary `k` acts (see [`super::adversary`]).
    fn attack(&mut self, k: usize) {
        let a = self.adversaries[k].clone();
        let interval = 4 * self.hello_ms;
        let fake = match a.kind {
            // The victim's router-id is public (derived from its key); a
            // seqno far ahead of the victim's wins everywhere.
            AdversaryKind::SpoofOrigin { victim } => {
                Some((victim, SeqNo(self.nodes[victim].engine.seqno().0.wrapping_add(1000))))
            }
            AdversaryKind::Replay { victim, .. } => match self.captured.get(&k) {
                Some(&seqno) => Some((victim, seqno)),
                None => {
                    // Record, then make the victim move on: a seqno request
                    // for its node address, sent on every tunnel.
                    let seqno = self.nodes[victim].engine.seqno();
                    self.captured.insert(k, seqno);
                    let req = Message::SeqnoRequest {
                        seqno: seqno.next(),
                        hop_count: 64,
                        router_id: derive::router_id(&self.nodes[victim].key),
                        prefix: self.originates[victim][0],
                    };
                    let mut b = PacketBuilder::new(1400);
                    b.push(&req);
                    let data = b.take();
                    let ifs: Vec<IfIndex> = self.nodes[a.node].babel_ifs.keys().copied().collect();
                    for ifindex in ifs {
                        self.deliver_babel(a.node, ifindex, Destination::Multicast, data.clone());
                    }
                    let wait = a.start_ms.saturating_sub(self.now.millis());
                    self.schedule(wait, Event::Attack { k });
                    return;
                }
            },
            _ => None,
        };
        match a.kind {
            AdversaryKind::SpoofOrigin { .. } | AdversaryKind::Replay { .. } => {
                let (victim, seqno) = fake.expect("set for these kinds");
                let router_id = derive::router_id(&self.nodes[victim].key);
                let mut b = PacketBuilder::new(1400);
                for &prefix in &self.originates[victim] {
                    let u = Update {
                        prefix,
                        router_id,
                        next_hop: None,
                        v4_via_v6: prefix.is_ipv4(),
                        seqno,
                        metric: Metric::ZERO,
                        interval: Centisecs::from_millis(interval),
                    };
                    if !b.push(&Message::Update(u)) {
                        break;
                    }
                }
                let data = b.take();
                let ifs: Vec<IfIndex> = self.nodes[a.node].babel_ifs.keys().copied().collect();
                for ifindex in ifs {
                    self.deliver_babel(a.node, ifindex, Destination::Multicast, data.clone());
                }
                self.schedule(interval, Event::Attack { k });
            }
            AdversaryKind::UnauthorisedPrefix { prefix } => self.announce(a.node, prefix),
            // Routes honestly; the walk drops at it.
            AdversaryKind::Blackhole => {}
        }
    }

    /// A datagram on UDP 6698 arrives at node `i` over its link to node
    /// `via`, from `src` (an attacker on that link, or a replay).
    pub fn inject_discovery(&mut self, i: usize, via: usize, src: Ipv6Addr, data: &[u8]) {
        let ifindex = self.raw_ifindex(i, via).expect("no link between these nodes");
        let src = SocketAddr::V6(SocketAddrV6::new(src, crate::link::wire::DISCOVERY_PORT, 0, ifindex));
        self.core_input(i, MeshInput::Datagram { ifindex: Some(ifindex), src, data });
    }

    /// The CA revokes node `victim`'s key; every node (or those in `at`)
    /// reloads its trust material.
    pub fn revoke(&mut self, victim: usize, at: &[usize]) {
        let key = self.nodes[victim].key;
        let issued = self.true_time();
        let list = match &self.revocations {
            None => RevocationList::sign(1, issued, vec![key], &self.ca).expect("list"),
            Some(l) => l.with_revoked(key, issued, &self.ca).expect("list").unwrap_or_else(|| l.clone()),
        };
        self.store.add_revocation_list(list.clone()).expect("our own list");
        self.revocations = Some(list);
        for &i in at {
            let credential = self.nodes[i].credential.clone();
            let store = Box::new(self.store.clone());
            self.core_input(i, MeshInput::TrustChanged { store, trusted_keys: Vec::new(), credential });
        }
    }

    /// Node `i` gets a new credential (renewal, narrowing), signed now by
    /// the network CA, and reloads it.
    pub fn reissue(&mut self, i: usize, spec: &CredentialSpec) -> Credential {
        let body = CredentialBody {
            public_key: self.nodes[i].key,
            name: self.topology.names[i].clone(),
            prefixes: spec.prefixes.clone(),
            groups: Vec::new(),
            not_before: self.epoch.saturating_add_signed(spec.not_before),
            not_after: self.epoch.saturating_add_signed(spec.not_after),
            signing_key: Some(self.nodes[i].signing_key),
        };
        let signer = if spec.ca == CaChoice::Main { &self.ca } else { &self.other_ca };
        let cred = Credential::sign(body, signer).expect("credential");
        self.nodes[i].credential = Some(cred.clone());
        let store = Box::new(self.store.clone());
        self.core_input(
            i,
            MeshInput::TrustChanged { store, trusted_keys: Vec::new(), credential: Some(cred.clone()) },
        );
        cred
    }

    // ----- the plumbing between engine, core and links ---------------------

    fn pump(&mut self, i: usize) {
        loop {
            let mut outs = Vec::new();
            while let Some(o) = self.nodes[i].engine.poll_output() {
                outs.push(o);
            }
            let mut mesh_outs = Vec::new();
            for o in outs {
                match o {
                    Output::Send { ifindex, dst, data } => self.send_babel(i, ifindex, dst, data),
                    Output::Fib(op) => self.apply_fib(i, op),
                    Output::Extension { ifindex, from, body } => {
                        let wall = self.wall(i);
                        let input = MeshInput::Extension { ifindex, from, body: &body };
                        self.nodes[i].core.handle_input(self.now, wall, input);
                    }
                    Output::Filtered { query, verdict } => {
                        let wall = self.wall(i);
                        self.nodes[i].core.handle_input(
                            self.now,
                            wall,
                            MeshInput::Filtered { query, verdict },
                        );
                    }
                    Output::Origin { seqno, prefixes } => {
                        let wall = self.wall(i);
                        self.nodes[i].core.handle_input(
                            self.now,
                            wall,
                            MeshInput::Origin { seqno, prefixes },
                        );
                    }
                }
            }
            while let Some(o) = self.nodes[i].core.poll_output() {
                mesh_outs.push(o);
            }
            // Nothing new for the engine: both are quiet.
            if mesh_outs.is_empty() {
                break;
            }
            let mut tunnels_changed = false;
            for o in mesh_outs {
                match o {
                    MeshOutput::Send { dst, data } => self.send_discovery(i, dst, data),
                    MeshOutput::TunnelUp(spec) => {
                        self.tunnel_up(i, spec);
                        tunnels_changed = true;
                    }
                    MeshOutput::TunnelDown { name } => {
                        self.tunnel_down(i, &name);
                        tunnels_changed = true;
                    }
                    MeshOutput::Extension { ifindex, dst, body } => {
                        self.nodes[i]
                            .engine
                            .handle_input(self.now, Input::SendExtension { ifindex, dst, body });
                    }
                    MeshOutput::Filter(f, scope) if self.filter => {
                        self.nodes[i].engine.set_route_filter_for(self.now, Some(f.boxed()), &scope)
                    }
                    MeshOutput::Filter(..) => {}
                    MeshOutput::Log { level, message } => self.nodes[i].logs.push((self.now, level, message)),
                }
            }
            if tunnels_changed {
                let set: BTreeSet<IfIndex> = self.nodes[i].babel_ifs.keys().copied().collect();
                let wall = self.wall(i);
                self.nodes[i].core.handle_input(self.now, wall, MeshInput::TunnelInterfaces(set));
            }
        }
        let d = [
            self.nodes[i].engine.poll_timeout(),
            self.nodes[i].core.poll_timeout(),
            Some(self.nodes[i].next_alive),
        ]
        .into_iter()
        .flatten()
        .min();
        if d != self.deadline[i] {
            self.deadline[i] = d;
            if let Some(t) = d {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    fn rand_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn schedule(&mut self, delay_ms: u64, ev: Event) {
        self.seq += 1;
        self.events.push(Reverse((self.now.plus_ms(delay_ms.max(1)), self.seq)));
        self.payloads.insert(self.seq, ev);
    }

    /// The far end of node `i`'s raw interface `ifindex`: (node, its ifindex).
    fn across(&self, i: usize, ifindex: IfIndex) -> Option<(usize, IfIndex)> {
        let li = *self.nodes[i].raws.get(&ifindex)?;
        let l = &self.topology.links[li];
        let peer = if l.a == i { l.b } else { l.a };
        let peer_if = self.nodes[peer].raws.iter().find(|(_, x)| **x == li).map(|(k, _)| *k)?;
        Some((peer, peer_if))
    }

    fn raw_ifindex(&self, i: usize, peer: usize) -> Option<IfIndex> {
        self.nodes[i].raws.keys().copied().find(|r| self.across(i, *r).is_some_and(|(p, _)| p == peer))
    }

    /// Loss and delay of node `i`'s raw link `ifindex`; `None` if it drops.
    fn link_passes(&mut self, i: usize, ifindex: IfIndex) -> Option<u64> {
        let li = *self.nodes[i].raws.get(&ifindex)?;
        let (loss, delay) = (self.topology.links[li].loss, self.topology.links[li].delay_ms);
        if loss > 0.0 && self.rand_unit() < loss {
            return None;
        }
        Some(delay)
    }

    fn send_discovery(&mut self, i: usize, dst: SocketAddr, data: Vec<u8>) {
        let SocketAddr::V6(d) = dst else { return };
        let ifindex = d.scope_id();
        let Some((peer, peer_if)) = self.across(i, ifindex) else { return };
        if !d.ip().is_multicast() && *d.ip() != raw_link_local(peer, peer_if) {
            return;
        }
        let Some(delay) = self.link_passes(i, ifindex) else { return };
        self.discovery_packets += 1;
        let src = SocketAddr::V6(SocketAddrV6::new(
            raw_link_local(i, ifindex),
            crate::link::wire::DISCOVERY_PORT,
            0,
            peer_if,
        ));
        self.schedule(delay, Event::Discovery { node: peer, ifindex: peer_if, src, data });
    }

    /// Node `i`'s tunnel link-local address (one for all its tunnels, from
    /// its key, as the daemon does).
    fn tunnel_link_local(&self, i: usize) -> Ipv6Addr {
        crate::mesh::tunnel_link_local(&self.nodes[i].key)
    }

    fn tunnel_up(&mut self, i: usize, spec: TunnelSpec) {
        if let Some(t) = self.nodes[i].tunnels.get_mut(&spec.name) {
            // Reconfigured (new endpoint or port): same interface.
            t.spec = spec;
            return;
        }
        let babel_if = self.nodes[i].next_babel_if;
        self.nodes[i].next_babel_if += 1;
        let mut c = InterfaceConfig::new(&spec.name, spec.link_type, self.tunnel_link_local(i));
        c.hello_interval_ms = self.hello_ms;
        c.update_interval_ms = 4 * self.hello_ms;
        c.split_horizon = Some(true);
        self.nodes[i].babel_ifs.insert(babel_if, spec.name.clone());
        self.nodes[i].tunnels.insert(spec.name.clone(), SimTunnel { spec, babel_if });
        self.nodes[i].engine.handle_input(self.now, Input::InterfaceUp { ifindex: babel_if, config: c });
    }

    fn tunnel_down(&mut self, i: usize, name: &str) {
        if let Some(t) = self.nodes[i].tunnels.remove(name) {
            self.nodes[i].babel_ifs.remove(&t.babel_if);
            self.nodes[i].engine.handle_input(self.now, Input::InterfaceDown { ifindex: t.babel_if });
        }
    }

    /// Where a tunnel of node `i` leads, if WireGuard would carry packets:
    /// the far end has a tunnel back over the same link, and each side's
    /// endpoint is the other's address and listen port.
    fn tunnel_peer(&self, i: usize, name: &str) -> Option<(usize, IfIndex)> {
        let t = self.nodes[i].tunnels.get(name)?;
        let Scope::Raw(raw) = t.spec.scope else { return None };
        let (peer, peer_raw) = self.across(i, raw)?;
        let back = self.nodes[peer]
            .tunnels
            .values()
            .find(|b| b.spec.peer_key == self.nodes[i].key && b.spec.scope == Scope::Raw(peer_raw))?;
        let ok = t.spec.endpoint.ip() == IpAddr::V6(raw_link_local(peer, peer_raw))
            && t.spec.endpoint.port() == back.spec.listen_port
            && back.spec.endpoint.ip() == IpAddr::V6(raw_link_local(i, raw))
            && back.spec.endpoint.port() == t.spec.listen_port
            && t.spec.peer_key == self.nodes[peer].key;
        ok.then_some((peer, back.babel_if))
    }

    fn send_babel(&mut self, i: usize, ifindex: IfIndex, dst: Destination, data: Vec<u8>) {
        let data = self.as_adversary_sends(i, data);
        self.deliver_babel(i, ifindex, dst, data);
    }

    fn deliver_babel(&mut self, i: usize, ifindex: IfIndex, dst: Destination, data: Vec<u8>) {
        let Some(name) = self.nodes[i].babel_ifs.get(&ifindex).cloned() else { return };
        let Some((peer, peer_if)) = self.tunnel_peer(i, &name) else { return };
        if let Destination::Unicast(a) = dst {
            if a != self.tunnel_link_local(peer) {
                return;
            }
        }
        let Scope::Raw(raw) = self.nodes[i].tunnels[&name].spec.scope else { return };
        self.nodes[i].babel_bytes_out += data.len() as u64;
        self.nodes[i].babel_packets_out += 1;
        let Some(delay) = self.link_passes(i, raw) else { return };
        let src = self.tunnel_link_local(i);
        self.schedule(delay, Event::Babel { node: peer, ifindex: peer_if, src, data });
    }

    fn report_alive_tunnels(&mut self, i: usize) {
        let names: Vec<String> = self.nodes[i].tunnels.keys().cloned().collect();
        for name in names {
            if self.tunnel_peer(i, &name).is_some() {
                let wall = self.wall(i);
                self.nodes[i].core.handle_input(self.now, wall, MeshInput::TunnelAlive { name });
            }
        }
    }

    fn apply_fib(&mut self, i: usize, op: FibOp) {
        match op {
            FibOp::Install(r) | FibOp::Replace(r) => {
                let node = &mut self.nodes[i];
                if node.fib.insert(r.prefix, (r.ifindex, r.next_hop)).is_none() {
                    *node.fib_lens.entry((r.prefix.is_ipv4(), r.prefix.len())).or_default() += 1;
                }
            }
            FibOp::Remove(p) | FibOp::Unreachable(p) => {
                let node = &mut self.nodes[i];
                if node.fib.remove(&p).is_some() {
                    let k = (p.is_ipv4(), p.len());
                    if let Some(n) = node.fib_lens.get_mut(&k) {
                        *n -= 1;
                        if *n == 0 {
                            node.fib_lens.remove(&k);
                        }
                    }
                }
            }
        }
    }

    // ----- views -----------------------------------------------------------

    pub fn engine(&self, i: usize) -> &Engine {
        &self.nodes[i].engine
    }

    pub fn core(&self, i: usize) -> &MeshCore {
        &self.nodes[i].core
    }

    pub fn public_key(&self, i: usize) -> PublicKey {
        self.nodes[i].key
    }

    pub fn credential(&self, i: usize) -> Option<&Credential> {
        self.nodes[i].credential.as_ref()
    }

    pub fn ca(&self) -> &CaSecretKey {
        &self.ca
    }

    /// Node `i`'s own /128 in the mesh prefix.
    pub fn node_prefix(&self, i: usize) -> Prefix {
        let p: Prefix = MESH_PREFIX.parse().expect("prefix");
        MeshPrefix::new(p).expect("mesh prefix").host_prefix_for(&self.nodes[i].key)
    }

    /// Node `i`'s link-local address on its raw link to `peer`.
    pub fn raw_address(&self, i: usize, peer: usize) -> Ipv6Addr {
        raw_link_local(i, self.raw_ifindex(i, peer).expect("no link between these nodes"))
    }

    /// The nodes node `i` has a working tunnel to.
    pub fn tunnel_peers(&self, i: usize) -> BTreeSet<usize> {
        self.nodes[i].tunnels.keys().filter_map(|n| self.tunnel_peer(i, n)).map(|(p, _)| p).collect()
    }

    /// Tunnels node `i` has configured, working or not.
    pub fn tunnel_count(&self, i: usize) -> usize {
        self.nodes[i].tunnels.len()
    }

    /// Node `i`'s installed route for `prefix`: the next node.
    pub fn next_hop(&self, i: usize, prefix: &Prefix) -> Option<usize> {
        let (ifindex, _) = self.nodes[i].fib.get(prefix)?;
        let name = self.nodes[i].babel_ifs.get(ifindex)?;
        self.tunnel_peer(i, name).map(|(p, _)| p)
    }

    /// The path packets from node `from` to `prefix` take, through
    /// installed routes and working tunnels, if it reaches `to`.
    pub fn path(&self, from: usize, to: usize, prefix: &Prefix) -> Option<Vec<usize>> {
        let mut path = vec![from];
        let mut cur = from;
        while cur != to {
            cur = self.next_hop(cur, prefix)?;
            if path.len() > self.nodes.len() {
                return None;
            }
            path.push(cur);
        }
        Some(path)
    }

    /// Node `from` reaches node `to`'s mesh address.
    pub fn reaches(&self, from: usize, to: usize) -> bool {
        self.path(from, to, &self.node_prefix(to)).is_some()
    }

    pub fn has_route(&self, i: usize, prefix: &Prefix) -> bool {
        self.nodes[i].fib.contains_key(prefix)
    }

    pub fn logs(&self, i: usize) -> &[(Time, log::Level, String)] {
        &self.nodes[i].logs
    }

    /// Log lines of node `i` containing `needle`.
    pub fn log_count(&self, i: usize, needle: &str) -> usize {
        self.nodes[i].logs.iter().filter(|(_, _, m)| m.contains(needle)).count()
    }

    pub fn discovery_packets(&self) -> u64 {
        self.discovery_packets
    }

    // ----- insiders ----------------------------------------------------------

    /// The adversary at node `i`, once it has started acting.
    fn active_adversary(&self, i: usize) -> Option<&Adversary> {
        self.adversaries.iter().find(|a| a.node == i && self.now.millis() >= a.start_ms)
    }

    /// Is node `i` one of the scenario's adversaries (acting yet or not)?
    pub fn is_adversary(&self, i: usize) -> bool {
        self.adversaries.iter().any(|a| a.node == i)
    }

    /// What node `i` originates honestly.
    pub fn originates(&self, i: usize) -> &[Prefix] {
        &self.originates[i]
    }

    /// Longest match in node `i`'s forwarding table: the route's prefix
    /// and the next node.
    fn lookup(&self, i: usize, addr: IpAddr) -> Option<(Prefix, usize)> {
        let node = &self.nodes[i];
        let (prefix, (ifindex, _)) = node
            .fib_lens
            .keys()
            .rev()
            .filter(|(v4, _)| *v4 == addr.is_ipv4())
            .find_map(|(_, len)| node.fib.get_key_value(&Prefix::new(addr, *len)?))?;
        let name = node.babel_ifs.get(ifindex)?;
        self.tunnel_peer(i, name).map(|(p, _)| (*prefix, p))
    }

    /// Ground truth the nodes cannot know: node `i`'s selected route for
    /// `prefix` is a lie (its router-id belongs to no node that originates
    /// the prefix, its seqno is ahead of that node's own, or it is a seqno a
    /// replaying adversary recorded and the origin has moved on from).
    fn forged(&self, i: usize, prefix: &Prefix) -> bool {
        let Some((rid, seqno)) = self.nodes[i].engine.selected_origin(prefix) else {
            return false;
        };
        let Some(o) = self.nodes.iter().position(|n| derive::router_id(&n.key) == rid) else {
            return true;
        };
        let current = self.nodes[o].engine.seqno();
        // A seqno a replaying adversary recorded, once the origin moved on.
        let replayed = self.adversaries.iter().enumerate().any(|(k, a)| {
            a.kind.victim() == Some(o)
                && self.captured.get(&k).is_some_and(|c| *c == seqno && current.newer_than(*c))
        });
        !self.originates[o].contains(prefix) || seqno.newer_than(current) || replayed
    }

    /// Where a packet from node `from` to `addr`, which node `origin`
    /// originates, ends up: hop by hop through the installed routes
    /// (longest match) and working tunnels. It is hijacked if a forged
    /// route brought it to an adversary that claims the address; an
    /// adversary reached by honest routes forwards it like any relay
    /// (dropping it instead is blackholing, which no route check prevents).
    pub fn walk(&self, from: usize, origin: usize, addr: IpAddr) -> Walk {
        let mut cur = from;
        let mut came_by: Option<(usize, Prefix)> = None;
        for _ in 0..=self.nodes.len() {
            if cur == origin {
                return Walk::Delivered;
            }
            if let Some(a) = self.active_adversary(cur) {
                let claims = match &a.kind {
                    AdversaryKind::Blackhole => return Walk::Blackholed,
                    AdversaryKind::SpoofOrigin { victim } | AdversaryKind::Replay { victim, .. } => {
                        self.originates[*victim].iter().any(|p| p.contains_addr(addr))
                    }
                    AdversaryKind::UnauthorisedPrefix { prefix } => prefix.contains_addr(addr),
                };
                if claims && came_by.is_some_and(|(prev, p)| self.forged(prev, &p)) {
                    return Walk::Hijacked;
                }
            }
            match self.lookup(cur, addr) {
                Some((p, next)) => {
                    came_by = Some((cur, p));
                    cur = next;
                }
                None => return Walk::Unreachable,
            }
        }
        Walk::Unreachable
    }

    /// Whether every honest pair is delivered now: the convergence check,
    /// made every 100 ms. It starts at the pair that failed last time (in a
    /// large mesh most pairs are delivered long before the last ones, and
    /// walking them all at every check was most of the run) and goes round
    /// once; true only if no pair fails in the whole round.
    pub fn all_delivered(&mut self) -> bool {
        let n = self.nodes.len();
        let mut pairs = Vec::new();
        for from in (0..n).filter(|i| !self.is_adversary(*i)) {
            for origin in (0..n).filter(|v| *v != from && !self.is_adversary(*v)) {
                pairs.extend(self.originates[origin].iter().map(|p| (from, origin, *p)));
            }
        }
        let start = self.undelivered_at.min(pairs.len());
        let failed = pairs[start..].iter().chain(&pairs[..start]).position(|(from, origin, p)| {
            let (first, last) = prefix_ends(p);
            self.walk(*from, *origin, first) != Walk::Delivered
                || self.walk(*from, *origin, last) != Walk::Delivered
        });
        match failed {
            Some(k) => {
                self.undelivered_at = (start + k) % pairs.len();
                false
            }
            None => true,
        }
    }

    /// Every (honest node, prefix another honest node originates) pair,
    /// probed at the prefix's first and last address; a pair counts by its
    /// worse probe (hijacked, then blackholed, then unreachable).
    pub fn pair_outcomes(&self) -> PairOutcomes {
        let mut o = PairOutcomes::default();
        let n = self.nodes.len();
        for from in (0..n).filter(|i| !self.is_adversary(*i)) {
            for origin in (0..n).filter(|v| *v != from && !self.is_adversary(*v)) {
                for p in &self.originates[origin] {
                    let (first, last) = prefix_ends(p);
                    let w = [self.walk(from, origin, first), self.walk(from, origin, last)];
                    o.pairs += 1;
                    if w.contains(&Walk::Hijacked) {
                        o.hijacked += 1;
                    } else if w.contains(&Walk::Blackholed) {
                        o.blackholed += 1;
                    } else if w.contains(&Walk::Unreachable) {
                        o.unreachable += 1;
                    } else {
                        o.delivered += 1;
                    }
                }
            }
        }
        o
    }

    /// Announcements the honest nodes' route filters held back (an origin
    /// not known yet, or no verified set for the seqno), all told.
    pub fn held_announcements(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| !self.is_adversary(*i))
            .map(|i| self.nodes[i].engine.stats().held_by_filter)
            .sum()
    }

    /// Babel payload bytes and datagrams all nodes sent over tunnels so far.
    pub fn control_traffic(&self) -> (u64, u64) {
        self.nodes.iter().fold((0, 0), |(b, p), n| (b + n.babel_bytes_out, p + n.babel_packets_out))
    }

    /// Signature checks of announcement sets the honest nodes made.
    pub fn set_verifications(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| !self.is_adversary(*i))
            .map(|i| {
                let o = &self.nodes[i].core.stats().origin;
                o.verified + o.bad_signature
            })
            .sum()
    }

    /// Announcements the honest nodes' route filters refused, all told.
    pub fn refused_announcements(&self) -> u64 {
        (0..self.nodes.len())
            .filter(|i| !self.is_adversary(*i))
            .map(|i| self.nodes[i].engine.stats().refused_by_filter)
            .sum()
    }
}

/// How the (honest node, honest destination prefix) pairs fare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PairOutcomes {
    pub pairs: u64,
    #[serde(rename = "delivered_pairs")]
    pub delivered: u64,
    /// The path ends at an adversary that claims the destination.
    #[serde(rename = "hijacked_pairs")]
    pub hijacked: u64,
    /// The path crosses a blackhole.
    #[serde(rename = "blackholed_pairs")]
    pub blackholed: u64,
    #[serde(rename = "unreachable_pairs")]
    pub unreachable: u64,
}

/// The first and last address of a prefix.
fn prefix_ends(p: &Prefix) -> (IpAddr, IpAddr) {
    match *p {
        Prefix::V4(a, l) => {
            let host = if l >= 32 { 0 } else { u32::MAX >> l };
            (IpAddr::V4(a), IpAddr::V4((u32::from(a) | host).into()))
        }
        Prefix::V6(a, l) => {
            let host = if l >= 128 { 0 } else { u128::MAX >> l };
            (IpAddr::V6(a), IpAddr::V6((u128::from(a) | host).into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_json_reads_credentials_and_clocks() {
        let s = MeshScenario::from_json(
            r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"c"}],
                "credentials":{"a":{"prefixes":["10.1.0.0/24"],"not_before":-60,"not_after":600,"ca":"other"},
                               "c":null},
                "clocks":{"b":0}}"#,
        )
        .unwrap();
        let a = s.nodes[0].credential.as_ref().unwrap();
        assert_eq!(a.prefixes, vec!["10.1.0.0/24".parse().unwrap()]);
        assert_eq!((a.not_before, a.not_after, a.ca), (-60, 600, CaChoice::Other));
        assert_eq!(s.nodes[1].credential, Some(CredentialSpec::default()));
        assert_eq!(s.nodes[2].credential, None);
        assert_eq!(s.nodes[1].wall, 0);
        assert_eq!(s.nodes[0].wall, DEFAULT_EPOCH);
        for (bad, want) in [
            (r#"{"links":[{"source":"a","target":"b"}],"credentials":{"z":null}}"#, "not a node"),
            (r#"{"links":[{"source":"a","target":"b"}],"clocks":{"a":-1}}"#, "Unix seconds"),
            (r#"{"links":[{"source":"a","target":"b"}],"credentials":{"a":{"ca":"x"}}}"#, "main or other"),
        ] {
            let e = MeshScenario::from_json(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
