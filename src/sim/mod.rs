//! Deterministic network simulator: many engines, virtual time, lossy links.
//!
//! Every node runs a real [`Engine`] and every datagram goes through the real
//! codec. Links are point-to-point with a delay and a seeded random loss;
//! they can go down with a carrier event (the interface goes down at both
//! ends) or fail silently (datagrams vanish, nothing is signalled). After
//! every step the forwarding state that changed is checked for loops: a loop
//! at any instant is a failure of the protocol implementation.

pub mod adversary;
pub mod mesh;
pub mod report;
pub mod topology;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};

use crate::babel::packet::Destination;
use crate::babel::{
    Engine, EngineConfig, FibOp, Input, InterfaceConfig, Metric, Output, Prefix, RouterId, SeqNo, Time,
};
pub use topology::{LinkSpec, Topology};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub hello_interval_ms: u64,
    pub update_interval_ms: u64,
    /// Check for forwarding loops after every step.
    pub check_loops: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { seed: 1, hello_interval_ms: 4000, update_interval_ms: 16000, check_loops: true }
    }
}

/// Router-id of simulated node `i`: nonzero, and equal to the low 64 bits
/// of its prefix, like weft's key-derived node addresses.
pub fn sim_router_id(i: usize) -> RouterId {
    let mut id = [0u8; 8];
    id[0] = 0x02;
    id[4..].copy_from_slice(&(i as u32).to_be_bytes());
    RouterId(id)
}

/// The prefix simulated node `i` announces: fd00::<router-id>/128.
pub fn sim_prefix(i: usize) -> Prefix {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[8..].copy_from_slice(&sim_router_id(i).0);
    Prefix::V6(Ipv6Addr::from(a), 128)
}

fn link_local(node: usize, ifindex: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, (node >> 16) as u16, node as u16, ifindex as u16)
}

struct Link {
    spec: LinkSpec,
    /// ifindex of this link at node a and at node b.
    if_a: u32,
    if_b: u32,
    up: bool,
    silent: bool,
}

struct Node {
    engine: Engine,
    /// ifindex -> link index.
    links: HashMap<u32, usize>,
    /// Forwarding table: destination node index -> next-hop node.
    fib: Vec<Option<u32>>,
    /// Routes installed for prefixes that are not node prefixes.
    other_routes: usize,
    full_at: Option<Time>,
    /// Prefixes holding a route of the engine's in the FIB (installed or
    /// held unreachable), kept in debug builds only: each FIB operation's
    /// claim (an install where there is none, a replace or removal where
    /// there is one) is checked, since the kernel FIB relies on it.
    ours: HashSet<Prefix>,
}

enum Event {
    Deliver { node: usize, ifindex: u32, src: Ipv6Addr, data: Vec<u8> },
}

/// Counts of what crossed the links.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
}

/// Reachability tracked over time: which pairs have a working forwarding
/// path, integrated so that a lossy mesh gets a time-averaged figure
/// besides the strict "every pair at one instant".
struct Reachability {
    bad: Vec<usize>,
    total_bad: usize,
    since: Time,
    bad_pair_ms: u128,
    full_ms: u64,
    full_losses: u64,
}

/// What a measurement window saw (see [`Sim::measure`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Window {
    pub ms: u64,
    pub bytes: u64,
    pub packets: u64,
    /// FIB operations (route installs, switches, removals), all nodes.
    pub route_changes: u64,
    /// Time-averaged fraction of ordered pairs whose forwarding path
    /// worked.
    pub reachability: f64,
    /// Fraction of the time every pair's path worked at once.
    pub full_reachability_time: f64,
    /// Times full reachability was lost during the window.
    pub full_reachability_losses: u64,
}

pub struct Sim {
    cfg: SimConfig,
    now: Time,
    nodes: Vec<Node>,
    links: Vec<Link>,
    events: BinaryHeap<Reverse<(Time, u64, usize)>>,
    payloads: HashMap<u64, Event>,
    seq: u64,
    rng: u64,
    prefix_index: HashMap<Prefix, usize>,
    /// Sum over nodes of installed routes to other nodes' prefixes.
    installed_pairs: usize,
    loops: u64,
    loop_log: Vec<String>,
    traffic: Traffic,
    /// FIB operations applied, per node (what would be kernel route
    /// rewrites on a router).
    route_changes: Vec<u64>,
    /// Per destination: nodes whose forwarding path does not reach it,
    /// while reachability is being tracked.
    reach: Option<Reachability>,
    dirty: BTreeSet<usize>,
    /// (lower node, higher node) -> link index.
    link_at: HashMap<(usize, usize), usize>,
    /// Node timers, lazily deleted: an entry counts only if it matches
    /// `deadline[node]`.
    timers: BinaryHeap<Reverse<(Time, usize)>>,
    deadline: Vec<Option<Time>>,
}

impl Sim {
    pub fn new(topo: &Topology, cfg: SimConfig) -> Sim {
        let n = topo.len();
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                engine: Engine::new(EngineConfig::new(
                    sim_router_id(i),
                    SeqNo((cfg.seed as u16).wrapping_mul(31).wrapping_add(i as u16)),
                    cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                )),
                links: HashMap::new(),
                fib: vec![None; n],
                other_routes: 0,
                full_at: None,
                ours: HashSet::new(),
            })
            .collect();
        let mut links = Vec::new();
        let mut next_if = vec![1u32; n];
        for spec in &topo.links {
            let (if_a, if_b) = (next_if[spec.a], next_if[spec.b]);
            next_if[spec.a] += 1;
            next_if[spec.b] += 1;
            nodes[spec.a].links.insert(if_a, links.len());
            nodes[spec.b].links.insert(if_b, links.len());
            links.push(Link { spec: spec.clone(), if_a, if_b, up: true, silent: false });
        }
        let prefix_index = (0..n).map(|i| (sim_prefix(i), i)).collect();
        let link_at = links
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.spec.a.min(l.spec.b), l.spec.a.max(l.spec.b)), i))
            .collect();
        let mut sim = Sim {
            rng: cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            cfg,
            now: Time(0),
            nodes,
            links,
            events: BinaryHeap::new(),
            payloads: HashMap::new(),
            seq: 0,
            prefix_index,
            installed_pairs: 0,
            loops: 0,
            loop_log: Vec::new(),
            traffic: Traffic::default(),
            route_changes: vec![0; n],
            reach: None,
            dirty: BTreeSet::new(),
            link_at,
            timers: BinaryHeap::new(),
            deadline: vec![None; n],
        };
        for i in 0..n {
            let mut ifs: Vec<u32> = sim.nodes[i].links.keys().copied().collect();
            ifs.sort();
            for ifindex in ifs {
                sim.bring_up(i, ifindex);
            }
            sim.input(i, Input::Announce { prefix: sim_prefix(i), metric: Metric::ZERO });
        }
        sim
    }

    fn iface_config(&self, node: usize, ifindex: u32) -> InterfaceConfig {
        let link = &self.links[self.nodes[node].links[&ifindex]];
        let mut c =
            InterfaceConfig::new(&format!("if{ifindex}"), link.spec.link_type, link_local(node, ifindex));
        c.hello_interval_ms = self.cfg.hello_interval_ms;
        c.update_interval_ms = self.cfg.update_interval_ms;
        c
    }

    fn bring_up(&mut self, node: usize, ifindex: u32) {
        let config = self.iface_config(node, ifindex);
        self.input(node, Input::InterfaceUp { ifindex, config });
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn engine(&self, node: usize) -> &Engine {
        &self.nodes[node].engine
    }

    pub fn loops(&self) -> u64 {
        self.loops
    }

    pub fn loop_log(&self) -> &[String] {
        &self.loop_log
    }

    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Time at which each node first had a route to every other node.
    pub fn node_convergence(&self) -> Vec<Option<Time>> {
        self.nodes.iter().map(|n| n.full_at).collect()
    }

    /// Every node has a route to every other node's prefix.
    pub fn all_routes_present(&self) -> bool {
        let n = self.nodes.len();
        self.installed_pairs == n * n.saturating_sub(1)
    }

    /// The next hop of `from` towards node `to`'s prefix.
    pub fn next_hop(&self, from: usize, to: usize) -> Option<usize> {
        self.nodes[from].fib[to].map(|x| x as usize)
    }

    /// The forwarding path from `from` to `to`, if it reaches `to` over
    /// links that are up.
    pub fn path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut path = vec![from];
        let mut cur = from;
        while cur != to {
            let next = self.next_hop(cur, to)?;
            if !self.link_usable(cur, next) || path.len() > self.nodes.len() {
                return None;
            }
            path.push(next);
            cur = next;
        }
        Some(path)
    }

    fn link_between(&self, a: usize, b: usize) -> Option<&Link> {
        self.link_index(a, b).map(|i| &self.links[i])
    }

    fn link_usable(&self, a: usize, b: usize) -> bool {
        self.link_between(a, b).is_some_and(|l| l.up && !l.silent)
    }

    /// Every node's forwarding path reaches every other node.
    pub fn fully_correct(&self) -> bool {
        let n = self.nodes.len();
        (0..n).all(|to| self.bad_count(to) == 0)
    }

    fn bad_count(&self, to: usize) -> usize {
        // Walk the functional graph towards `to` with memoisation:
        // 0 = unknown, 1 = reaches, 2 = does not, 3 = on the stack.
        let n = self.nodes.len();
        let mut state = vec![0u8; n];
        state[to] = 1;
        let mut bad = 0;
        let mut stack = Vec::new();
        for start in 0..n {
            let mut cur = start;
            while state[cur] == 0 {
                state[cur] = 3;
                stack.push(cur);
                match self.nodes[cur].fib[to] {
                    Some(next) if self.link_usable(cur, next as usize) => cur = next as usize,
                    _ => break,
                }
            }
            let ok = state[cur] == 1;
            for v in stack.drain(..) {
                state[v] = if ok { 1 } else { 2 };
            }
        }
        for s in &state {
            if *s == 2 {
                bad += 1;
            }
        }
        bad
    }

    /// Starts tracking, incrementally, whether every pair can reach.
    fn track_correctness(&mut self) {
        let n = self.nodes.len();
        let bad: Vec<usize> = (0..n).map(|to| self.bad_count(to)).collect();
        let total_bad = bad.iter().sum();
        self.reach = Some(Reachability {
            bad,
            total_bad,
            since: self.now,
            bad_pair_ms: 0,
            full_ms: 0,
            full_losses: 0,
        });
    }

    /// Accounts for reachability up to `t` (before time moves on).
    fn integrate_reachability(&mut self, t: Time) {
        if let Some(r) = self.reach.as_mut() {
            let dt = t.since(r.since);
            r.bad_pair_ms += r.total_bad as u128 * dt as u128;
            if r.total_bad == 0 {
                r.full_ms += dt;
            }
            r.since = t;
        }
    }

    /// FIB operations applied at each node so far.
    pub fn route_changes(&self) -> &[u64] {
        &self.route_changes
    }

    /// Runs for `ms` and reports traffic, route changes and reachability
    /// over that window.
    pub fn measure(&mut self, ms: u64) -> Window {
        let (bytes0, packets0) = (self.traffic.bytes, self.traffic.packets);
        let changes0: u64 = self.route_changes.iter().sum();
        self.track_correctness();
        self.run_for(ms);
        self.integrate_reachability(self.now);
        let r = self.reach.take().expect("tracking");
        let n = self.nodes.len() as u128;
        let pairs = n * n.saturating_sub(1);
        let span = ms.max(1) as u128;
        Window {
            ms,
            bytes: self.traffic.bytes - bytes0,
            packets: self.traffic.packets - packets0,
            route_changes: self.route_changes.iter().sum::<u64>() - changes0,
            reachability: if pairs == 0 { 1.0 } else { 1.0 - r.bad_pair_ms as f64 / (pairs * span) as f64 },
            full_reachability_time: r.full_ms as f64 / span as f64,
            full_reachability_losses: r.full_losses,
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

    fn input(&mut self, node: usize, input: Input<'_>) {
        self.nodes[node].engine.handle_input(self.now, input);
        self.drain(node);
    }

    fn drain(&mut self, node: usize) {
        let d = self.nodes[node].engine.poll_timeout();
        if d != self.deadline[node] {
            self.deadline[node] = d;
            if let Some(t) = d {
                self.timers.push(Reverse((t, node)));
            }
        }
        while let Some(out) = self.nodes[node].engine.poll_output() {
            match out {
                Output::Send { ifindex, dst, data } => self.transmit(node, ifindex, dst, data),
                Output::Fib(op) => self.apply_fib(node, op),
                Output::Extension { .. } | Output::Filtered { .. } | Output::Origin { .. } => {}
            }
        }
    }

    fn transmit(&mut self, node: usize, ifindex: u32, dst: Destination, data: Vec<u8>) {
        let Some(&li) = self.nodes[node].links.get(&ifindex) else { return };
        self.traffic.packets += 1;
        self.traffic.bytes += data.len() as u64;
        let link = &self.links[li];
        if !link.up || link.silent {
            self.traffic.lost += 1;
            return;
        }
        let (peer, peer_if) =
            if link.spec.a == node { (link.spec.b, link.if_b) } else { (link.spec.a, link.if_a) };
        let (loss, delay) = (link.spec.loss, link.spec.delay_ms);
        if loss > 0.0 && self.rand_unit() < loss {
            self.traffic.lost += 1;
            return;
        }
        if let Destination::Unicast(a) = dst {
            if a != link_local(peer, peer_if) {
                return;
            }
        }
        self.seq += 1;
        let at = self.now.plus_ms(delay);
        self.events.push(Reverse((at, self.seq, peer)));
        self.payloads.insert(
            self.seq,
            Event::Deliver { node: peer, ifindex: peer_if, src: link_local(node, ifindex), data },
        );
    }

    fn apply_fib(&mut self, node: usize, op: FibOp) {
        if cfg!(debug_assertions) {
            let ours = &mut self.nodes[node].ours;
            let ok = match &op {
                FibOp::Install(r) => ours.insert(r.prefix),
                FibOp::Replace(r) => !ours.insert(r.prefix),
                FibOp::Unreachable(p) => !ours.insert(*p),
                FibOp::Remove(p) => ours.remove(p),
            };
            assert!(
                ok,
                "node {node}: {op:?} contradicts the FIB (install over ours, or replace/remove of none)"
            );
        }
        let (prefix, new) = match op {
            FibOp::Install(r) | FibOp::Replace(r) => {
                let li = self.nodes[node].links.get(&r.ifindex).copied();
                let peer = li.map(|li| {
                    let l = &self.links[li];
                    if l.spec.a == node {
                        l.spec.b
                    } else {
                        l.spec.a
                    }
                });
                debug_assert_eq!(
                    Some(r.next_hop),
                    peer.map(|p| IpAddr::V6(link_local(p, self.peer_if(li.unwrap(), node))))
                );
                (r.prefix, peer)
            }
            // An unreachable route forwards nothing: as far as loops and
            // reachability go, the node has no route.
            FibOp::Remove(p) | FibOp::Unreachable(p) => (p, None),
        };
        self.route_changes[node] += 1;
        let Some(&to) = self.prefix_index.get(&prefix) else {
            match new {
                Some(_) => self.nodes[node].other_routes += 1,
                None => self.nodes[node].other_routes = self.nodes[node].other_routes.saturating_sub(1),
            }
            return;
        };
        if to == node {
            return;
        }
        let slot = &mut self.nodes[node].fib[to];
        let had = slot.is_some();
        *slot = new.map(|p| p as u32);
        match (had, new.is_some()) {
            (false, true) => self.installed_pairs += 1,
            (true, false) => self.installed_pairs -= 1,
            _ => {}
        }
        let n = self.nodes.len();
        if new.is_some() && self.nodes[node].full_at.is_none() {
            let have =
                self.nodes[node].fib.iter().enumerate().filter(|(i, f)| *i != node && f.is_some()).count();
            if have == n - 1 {
                self.nodes[node].full_at = Some(self.now);
            }
        }
        if self.cfg.check_loops && new.is_some() {
            self.check_loop_from(node, to);
        }
        if self.reach.is_some() {
            self.dirty.insert(to);
        }
    }

    fn peer_if(&self, li: usize, node: usize) -> u32 {
        let l = &self.links[li];
        if l.spec.a == node {
            l.if_b
        } else {
            l.if_a
        }
    }

    /// A loop created by changing `node`'s route towards `to` must pass
    /// through `node`: follow next hops from it.
    fn check_loop_from(&mut self, node: usize, to: usize) {
        let mut cur = node;
        let mut steps = 0;
        while let Some(next) = self.nodes[cur].fib[to] {
            cur = next as usize;
            if cur == to {
                return;
            }
            if cur == node {
                self.loops += 1;
                if self.loop_log.len() < 20 {
                    self.loop_log.push(format!(
                        "t={}ms: loop towards node {to} through node {node}",
                        self.now.millis()
                    ));
                }
                return;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return; // a loop elsewhere, counted when it formed
            }
        }
    }

    /// Runs one event (the earliest timer or delivery). Returns false if
    /// nothing is scheduled before `limit`.
    pub fn step(&mut self, limit: Time) -> bool {
        let next_delivery = self.events.peek().map(|Reverse((t, _, _))| *t);
        // Discard timer entries that were superseded.
        while let Some(Reverse((t, i))) = self.timers.peek().copied() {
            if self.deadline[i] == Some(t) {
                break;
            }
            self.timers.pop();
        }
        let (timer_node, next_timer) =
            self.timers.peek().map_or((None, None), |Reverse((t, i))| (Some(*i), Some(*t)));
        let t = match (next_delivery, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        if t > limit {
            return false;
        }
        self.integrate_reachability(t.max(self.now));
        self.now = self.now.max(t);
        if next_delivery == Some(t) {
            let Reverse((_, seq, _)) = self.events.pop().expect("peeked");
            let Some(Event::Deliver { node, ifindex, src, data }) = self.payloads.remove(&seq) else {
                return true;
            };
            let li = self.nodes[node].links[&ifindex];
            if self.links[li].up && !self.links[li].silent {
                self.input(node, Input::Datagram { ifindex, src, data: &data });
            } else {
                self.traffic.lost += 1;
            }
        } else if let Some(i) = timer_node {
            self.timers.pop();
            self.deadline[i] = None;
            self.nodes[i].engine.handle_timeout(self.now);
            self.drain(i);
        }
        self.refresh_dirty();
        true
    }

    fn refresh_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let counts: Vec<(usize, usize)> = dirty.iter().map(|to| (*to, self.bad_count(*to))).collect();
        if let Some(r) = self.reach.as_mut() {
            let was_full = r.total_bad == 0;
            for (to, c) in counts {
                r.total_bad = r.total_bad + c - r.bad[to];
                r.bad[to] = c;
            }
            if was_full && r.total_bad > 0 {
                r.full_losses += 1;
            }
        }
    }

    /// Link usability changed: every destination must be re-checked.
    fn all_dirty(&mut self) {
        if self.reach.is_some() {
            self.dirty.extend(0..self.nodes.len());
            self.refresh_dirty();
        }
    }

    pub fn run_until(&mut self, t: Time) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }

    pub fn run_for(&mut self, ms: u64) {
        let t = self.now.plus_ms(ms);
        self.run_until(t);
    }

    /// Runs until every node has a route to every other node (the cold
    /// start criterion), or `max_ms` passes. Returns the time it happened.
    pub fn run_until_converged(&mut self, max_ms: u64) -> Option<Time> {
        let limit = self.now.plus_ms(max_ms);
        while !self.all_routes_present() {
            if !self.step(limit) {
                return None;
            }
        }
        Some(self.now)
    }

    /// Runs until every pair's forwarding path really reaches its
    /// destination over working links (the reconvergence criterion), or
    /// `max_ms` passes. Returns the time it happened.
    pub fn run_until_correct(&mut self, max_ms: u64) -> Option<Time> {
        let limit = self.now.plus_ms(max_ms);
        self.track_correctness();
        loop {
            if self.reach.as_ref().expect("tracking").total_bad == 0 {
                self.reach = None;
                return Some(self.now);
            }
            if !self.step(limit) {
                self.reach = None;
                return None;
            }
        }
    }

    fn link_index(&self, a: usize, b: usize) -> Option<usize> {
        self.link_at.get(&(a.min(b), a.max(b))).copied()
    }

    /// Takes a link down. With `silent`, datagrams just stop (no event);
    /// otherwise both ends see their interface go down.
    pub fn fail_link(&mut self, a: usize, b: usize, silent: bool) -> bool {
        let Some(li) = self.link_index(a, b) else { return false };
        if silent {
            self.links[li].silent = true;
            self.all_dirty();
        } else {
            self.links[li].up = false;
            let (na, ia, nb, ib) = {
                let l = &self.links[li];
                (l.spec.a, l.if_a, l.spec.b, l.if_b)
            };
            self.input(na, Input::InterfaceDown { ifindex: ia });
            self.input(nb, Input::InterfaceDown { ifindex: ib });
            self.all_dirty();
        }
        true
    }

    /// Brings a failed link back.
    pub fn restore_link(&mut self, a: usize, b: usize) -> bool {
        let Some(li) = self.link_index(a, b) else { return false };
        self.links[li].silent = false;
        self.all_dirty();
        if !self.links[li].up {
            self.links[li].up = true;
            let (na, ia, nb, ib) = {
                let l = &self.links[li];
                (l.spec.a, l.if_a, l.spec.b, l.if_b)
            };
            self.bring_up(na, ia);
            self.bring_up(nb, ib);
        }
        true
    }

    pub fn set_loss(&mut self, a: usize, b: usize, loss: f64) -> bool {
        let Some(li) = self.link_index(a, b) else { return false };
        self.links[li].spec.loss = loss;
        true
    }

    /// Makes node `node` stop originating a prefix.
    pub fn withdraw_prefix(&mut self, node: usize, prefix: Prefix) {
        self.input(node, Input::Withdraw { prefix });
    }

    pub fn announce(&mut self, node: usize, prefix: Prefix, metric: Metric) {
        self.input(node, Input::Announce { prefix, metric });
    }

    /// Installed routes towards prefixes that are not node prefixes.
    pub fn other_routes(&self, node: usize) -> usize {
        self.nodes[node].other_routes
    }
}
