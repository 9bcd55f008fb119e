//! The Babel engine: RFC 8966 as a pure, sans-IO state machine.
//!
//! Inputs (datagrams, interface events, own prefixes) arrive with the time;
//! outputs (datagrams to send, FIB operations) are queued and drained with
//! [`Engine::poll_output`]. The engine never reads a clock, opens a socket or
//! uses global randomness: jitter comes from a seeded generator it owns, so
//! a simulation with the same seed replays exactly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

use super::budget::Budget;
use super::interface::{IfIndex, InterfaceConfig, LinkType};
use super::neighbour::{Neighbour, NeighbourId};
use super::output::{pack, OutQueue};
use super::packet::{self, Destination, Message, Update};
use super::request::{PendingRequest, RequestTable, DEFAULT_HOP_COUNT};
use super::route::{initial_smoothed, PrefixEntry, Retraction, Route, RouteTable};
use super::types::{Centisecs, Metric, Prefix, RouterId, SeqNo, Time};

/// Settings of the engine as a whole.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub router_id: RouterId,
    /// Initial seqno (persisted across restarts by the daemon).
    pub seqno: SeqNo,
    /// Seed of the jitter generator.
    pub seed: u64,
    /// Half-life of the smoothed metric used for route selection
    /// (babeld's `smoothing-half-life`); 0 turns smoothing off.
    pub smoothing_half_life_ms: u64,
}

/// babeld's default `smoothing-half-life`.
pub const DEFAULT_SMOOTHING_HALF_LIFE_MS: u64 = 4000;

impl EngineConfig {
    /// A configuration with babeld's defaults.
    pub fn new(router_id: RouterId, seqno: SeqNo, seed: u64) -> EngineConfig {
        EngineConfig { router_id, seqno, seed, smoothing_half_life_ms: DEFAULT_SMOOTHING_HALF_LIFE_MS }
    }
}

/// Something that happened to the engine.
#[derive(Debug)]
pub enum Input<'a> {
    /// A Babel datagram received on an interface from a link-local source.
    Datagram { ifindex: IfIndex, src: Ipv6Addr, data: &'a [u8] },
    /// An interface is up (or its configuration changed).
    InterfaceUp { ifindex: IfIndex, config: InterfaceConfig },
    /// An interface went down or away: its neighbours are flushed at once.
    InterfaceDown { ifindex: IfIndex },
    /// Originate a prefix.
    Announce { prefix: Prefix, metric: Metric },
    /// Stop originating a prefix (a retraction is sent).
    Withdraw { prefix: Prefix },
    /// Send a retraction for everything and remove every installed route.
    Shutdown,
    /// Send one TLV of weft's extension type (carried in Babel packets that
    /// other speakers parse and skip).
    SendExtension { ifindex: IfIndex, dst: Destination, body: Vec<u8> },
}

/// A route to put into (or take out of) the forwarding table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibRoute {
    pub prefix: Prefix,
    /// Next hop; an IPv6 next hop for an IPv4 prefix is v4-via-v6.
    pub next_hop: IpAddr,
    pub ifindex: IfIndex,
    pub metric: Metric,
}

/// A change to the forwarding table. The engine's table says what the FIB
/// holds (the selected routes, and unreachable routes for held prefixes:
/// see [`Engine::fib_routes`]), so each operation says whether it replaces a
/// route of ours: the daemon keeps no copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FibOp {
    /// Install the route for a prefix that has none of ours in the FIB.
    Install(FibRoute),
    /// Replace our route for this prefix (installed, or an unreachable hold
    /// route) in place.
    Replace(FibRoute),
    /// Remove our route for this prefix.
    Remove(Prefix),
    /// Replace our installed route with an unreachable one, holding the
    /// prefix while it is retracted.
    Unreachable(Prefix),
}

/// Something the engine wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        ifindex: IfIndex,
        dst: Destination,
        data: Vec<u8>,
    },
    Fib(FibOp),
    /// A TLV of weft's own extension type arrived (credentials and such).
    Extension {
        ifindex: IfIndex,
        from: Ipv6Addr,
        body: Vec<u8>,
    },
    /// The route filter did not let a received announcement be used: the
    /// policy layer asks for the origin's credential, or counts a refusal.
    Filtered {
        query: RouteQuery,
        verdict: FilterVerdict,
    },
    /// What this node originates changed (its seqno or its prefixes): the
    /// policy layer signs the new set (origin-signed announcements).
    Origin {
        seqno: SeqNo,
        prefixes: Vec<Prefix>,
    },
}

/// Counters for `weft status` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub bad_packets: u64,
    pub bad_tlvs: u64,
    /// TLVs ignored as the RFC says (unknown mandatory sub-TLV or AE).
    pub ignored_tlvs: u64,
    pub unknown_tlvs: u64,
    pub updates_in: u64,
    /// Announcements the route filter refused (not stored).
    pub refused_by_filter: u64,
    /// Announcements the route filter held back (stored, not used).
    pub held_by_filter: u64,
    /// Announcements not stored: their neighbour had its share of routes
    /// or distinct origins already.
    pub over_neighbour_limit: u64,
    pub from_unknown_neighbour: u64,
    pub seqno_requests_in: u64,
    pub seqno_requests_out: u64,
    /// Requests from a neighbour beyond what it may cost us per second.
    pub requests_over_budget: u64,
    /// Triggered updates queued (not counting periodic dumps), and those
    /// queued to be repeated (retractions and changes of origin).
    pub triggered_updates: u64,
    pub repeated_updates: u64,
}

/// A view of a neighbour for the CLI and tests.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NeighbourView {
    pub ifindex: IfIndex,
    pub interface: String,
    pub address: Ipv6Addr,
    pub reach: u16,
    pub rxcost: u16,
    pub txcost: u16,
    pub cost: u16,
    /// Milliseconds since the last Hello.
    pub last_hello_ms: u64,
}

/// A view of a route for the CLI and tests.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouteView {
    pub prefix: Prefix,
    pub router_id: RouterId,
    pub seqno: u16,
    pub refmetric: u16,
    pub metric: u16,
    /// The smoothed metric selection compares (hysteresis).
    pub smoothed_metric: u16,
    pub next_hop: IpAddr,
    pub ifindex: IfIndex,
    pub interface: String,
    pub neighbour: Ipv6Addr,
    pub feasible: bool,
    pub selected: bool,
    pub expires_in_ms: u64,
}

/// A prefix we originate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct XrouteView {
    pub prefix: Prefix,
    pub metric: u16,
}

struct Iface {
    cfg: InterfaceConfig,
    hello_seqno: SeqNo,
    next_hello: Time,
    last_hello: Option<Time>,
    next_update: Time,
    last_full_dump: Option<Time>,
    out: OutQueue,
    /// Retractions and changes of origin are repeated: these prefixes go
    /// out again at `resend_at`, `resends_left` more times, the delay
    /// doubling each time (babeld's send_update_resend).
    resend: BTreeSet<Prefix>,
    resend_at: Option<Time>,
    resend_delay_ms: u64,
    resends_left: u8,
    /// Extra Hellos still to send for neighbours that just appeared, and
    /// when the next goes out (two, so that 2-out-of-3 holds at once).
    extra_hellos: u8,
    extra_hello_at: Option<Time>,
    extra_budget: Budget,
}

impl Iface {
    /// babeld's resend delay: half a Hello interval, within 20 ms..2 s.
    fn resend_delay_ms(&self) -> u64 {
        (self.cfg.hello_interval_ms / 2).clamp(20, 2000)
    }
}

/// The selected route of a prefix as it was before a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Selected {
    neighbour: NeighbourId,
    router_id: RouterId,
    seqno: SeqNo,
    metric: Metric,
    next_hop: IpAddr,
    ifindex: IfIndex,
}

/// How a triggered update goes out (babeld's `urgent` 0, 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Trigger {
    /// Within about a Hello interval (at most 4 s), batched with others.
    Normal,
    /// Within a few tens of milliseconds: a new route (what a cold start
    /// waits for, hop by hop).
    Quick,
    /// Quickly, and repeated: a retraction or a change of origin, whose
    /// loss would leave a black hole or a loop until the next dump.
    Repeat,
    /// Within about 100 ms (babeld's jitter for urgent updates): an answer
    /// to a request, a route getting much worse. These come in bursts (one
    /// per prefix behind a lost route), and waiting a little lets one
    /// datagram carry the burst: 8-12 % fewer datagrams on lossy links in
    /// the simulator at equal reachability (docs/BENCHMARKS.md).
    Answer,
}

/// Repeats of a `Trigger::Repeat` update after the first send.
const UPDATE_REPEATS: u8 = 2;
/// What a neighbour may make us do per second (seqno requests handled,
/// requests for prefixes we do not have answered), and in a burst.
const REQUEST_RATE: u32 = 20;
const REQUEST_BURST: u32 = 100;
/// A requestor asking for more prefixes than this at once gets a full
/// dump instead (bounded, and one packet train instead of many).
const SPECIFIC_REQUESTS_BEFORE_DUMP: usize = 64;
/// Our seqno is raised for a request at most this often.
const SEQNO_BUMP_MIN_MS: u64 = 500;
/// Extra Hellos for new neighbours, per interface: per second and burst
/// (a flood of forged new neighbours must not become a flood of Hellos).
const EXTRA_HELLO_RATE: u32 = 4;
const EXTRA_HELLO_BURST: u32 = 8;
/// When a selected route not refreshed is asked for again: this many
/// quarter update intervals before it expires (it expires 21 quarters
/// after its last update, so at 3.75, 4.25 and 4.75 intervals of silence).
const REFRESH_BEFORE_EXPIRY: [u64; 3] = [6, 4, 2];
/// Gap between the two extra Hellos of a pair.
const EXTRA_HELLO_GAP_MS: u64 = 20;

/// Small, seedable PRNG (xorshift64*): jitter only, not cryptography.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next() % (max + 1)
        }
    }
    /// `value` give or take a quarter (babeld's `roughly`).
    fn roughly(&mut self, value: u64) -> u64 {
        if value <= 1 {
            value
        } else {
            value * 3 / 4 + self.upto(value / 2)
        }
    }
}

/// Route expiry: 5.25 times the interval the neighbour announced, where
/// babeld flushes a route (7/8 of its six-interval hold time), not RFC 8966
/// Appendix B's 3.5: at 20 % frame loss, 3.5 intervals let about one
/// selected route per minute expire in a 25-node mesh although its
/// neighbour still announced it (three periodic updates and three refresh
/// asks lost), and each expiry starved the nodes behind it (simulator,
/// docs/BENCHMARKS.md). A neighbour that goes away is noticed by its
/// Hellos, and one that stops announcing a route retracts it, so the
/// longer hold costs nothing in the common cases. Floored so that a peer
/// announcing tiny intervals cannot make us sweep the table constantly.
fn expiry_ms(interval: Centisecs, fallback_ms: u64) -> u64 {
    let ms = if interval.0 == 0 { fallback_ms } else { interval.as_millis() };
    (ms * 21 / 4).max(MIN_EXPIRY_MS)
}

const MIN_EXPIRY_MS: u64 = 2000;
/// Shortest intervals we run with (and announce): Hello 20 ms, update 100 ms.
const MIN_HELLO_MS: u64 = 20;
const MIN_UPDATE_MS: u64 = 100;
/// Beyond this many neighbours on one interface, only Hellos create new ones.
const MAX_NEIGHBOURS_PER_IF: usize = 256;

/// Prefixes that must never be routed: multicast, loopback, link-local,
/// unspecified host routes.
fn is_martian(p: &Prefix) -> bool {
    match *p {
        Prefix::V4(a, l) => {
            a.is_multicast() || (a.octets()[0] == 127 && l >= 8) || (a.is_unspecified() && l == 32)
        }
        Prefix::V6(a, l) => {
            let s = a.segments();
            a.is_multicast()
                || (a.is_loopback() && l == 128)
                || (s[0] & 0xffc0 == 0xfe80 && l >= 10)
                || (a.is_unspecified() && l == 128)
        }
    }
}

/// What the route filter is asked about a learned route: the prefix, the
/// origin it claims, and where it was learned. (Origin signatures would be
/// added here, so that the policy can judge verified origins.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteQuery {
    pub prefix: Prefix,
    pub router_id: RouterId,
    /// The origin's seqno the route carries.
    pub seqno: SeqNo,
    pub ifindex: IfIndex,
    pub neighbour: Ipv6Addr,
}

/// The route filter's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterVerdict {
    /// The route may be selected.
    Use,
    /// Kept, but not selected until the filter changes (e.g. the origin's
    /// credential is not known yet).
    Hold,
    /// Not authorised.
    Refuse,
}

/// Which learned routes a new route filter may judge differently from the
/// one before: the engine re-runs selection only for those (a mesh of N
/// nodes changes its filter about 2N times while it learns credentials and
/// sets; re-judging every route each time costs N² per node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilterScope {
    /// Everything (tunnels, trust material or the transport prefix changed).
    pub all: bool,
    /// Routes whose origin is one of these, sorted.
    pub origins: Vec<RouterId>,
    /// And every route for one of these prefixes, sorted.
    pub prefixes: Vec<Prefix>,
}

impl FilterScope {
    pub fn everything() -> FilterScope {
        FilterScope { all: true, ..FilterScope::default() }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.origins.is_empty() && self.prefixes.is_empty()
    }
}

/// How much of our route table one neighbour may fill: a neighbour that
/// announces more routes, or routes from more distinct origins, than this
/// gets the rest ignored (and counted). Plenty for a mesh of thousands of
/// nodes, but bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourLimits {
    pub max_routes: usize,
    pub max_origins: usize,
}

impl Default for NeighbourLimits {
    fn default() -> Self {
        NeighbourLimits { max_routes: 16_384, max_origins: 4096 }
    }
}

/// Routes and distinct origins a neighbour has in our table. The origins
/// are a sorted `Vec` (a new origin of a neighbour is rare; lookups are
/// binary searches), which costs less code than another map type.
#[derive(Clone, Debug, Default)]
struct NeighbourLoad {
    routes: usize,
    origins: Vec<(RouterId, u32)>,
}

impl NeighbourLoad {
    fn has_origin(&self, rid: &RouterId) -> bool {
        self.origins.binary_search_by(|(r, _)| r.cmp(rid)).is_ok()
    }

    fn add(&mut self, rid: RouterId) {
        self.routes += 1;
        match self.origins.binary_search_by(|(r, _)| r.cmp(&rid)) {
            Ok(i) => self.origins[i].1 += 1,
            Err(i) => self.origins.insert(i, (rid, 1)),
        }
    }

    fn remove(&mut self, rid: RouterId) {
        self.routes = self.routes.saturating_sub(1);
        if let Ok(i) = self.origins.binary_search_by(|(r, _)| r.cmp(&rid)) {
            self.origins[i].1 -= 1;
            if self.origins[i].1 == 0 {
                self.origins.remove(i);
            }
        }
    }
}

/// Filter deciding whether a learned route may be used: zero-trust prefix
/// authorisation plugs in here. Pure: the engine calls it on receipt and on
/// every re-selection.
pub type RouteFilter = Box<dyn Fn(&RouteQuery) -> FilterVerdict>;

pub struct Engine {
    router_id: RouterId,
    seqno: SeqNo,
    rng: Rng,
    now: Time,
    ifaces: BTreeMap<IfIndex, Iface>,
    neighbours: Vec<Option<Neighbour>>,
    free_ids: Vec<u32>,
    by_addr: BTreeMap<(IfIndex, Ipv6Addr), NeighbourId>,
    table: RouteTable,
    xroutes: BTreeMap<Prefix, Metric>,
    requests: RequestTable,
    filter: Option<RouteFilter>,
    limits: NeighbourLimits,
    /// By neighbour slab index.
    loads: Vec<NeighbourLoad>,
    outputs: VecDeque<Output>,
    next_sweep: Time,
    last_sweep: Time,
    stats: Stats,
    half_life_ms: u64,
    /// Prefixes where a route with a lower metric waits for its smoothed
    /// metric to catch up: selection runs again for them at `next_improve`.
    improving: BTreeSet<Prefix>,
    next_improve: Option<Time>,
    last_seqno_bump: Option<Time>,
    /// When we last asked the neighbours for a prefix whose route got much
    /// worse (rate limit; swept).
    worse_requests: BTreeMap<Prefix, Time>,
    /// (origin, prefix) of every stored route, sorted: which prefixes a
    /// filter change scoped to some origins touches. A superset (pairs whose
    /// route went away are dropped when met, or when it doubles).
    by_origin: Vec<(RouterId, Prefix)>,
}

/// Whether the table holds a route for `p` from origin `rid`.
fn stores_route_from(table: &RouteTable, rid: &RouterId, p: &Prefix) -> bool {
    table.get(p).is_some_and(|e| e.routes.iter().any(|r| r.router_id == *rid))
}

/// How long a lost prefix keeps being announced as a retraction.
const RETRACTION_HOLD_MS: u64 = 60_000;
/// Routes and sources are swept at least this often.
const SWEEP_MS: u64 = 10_000;
/// Sweeps are at least this far apart (or a quarter of the shortest update
/// interval, if less). Each sweep walks the whole table, and in a large
/// mesh some route expires or is due for a refresh request every few
/// hundred milliseconds: sweeping at each such instant walked a 2 000-prefix
/// table several times a second. A second late is nothing next to an
/// expiry of 5.25 update intervals (babeld sweeps every ~30 s).
const SWEEP_GAP_MS: u64 = 1_000;

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            router_id: cfg.router_id,
            seqno: cfg.seqno,
            rng: Rng::new(cfg.seed),
            now: Time(0),
            ifaces: BTreeMap::new(),
            neighbours: Vec::new(),
            free_ids: Vec::new(),
            by_addr: BTreeMap::new(),
            table: RouteTable::new(),
            xroutes: BTreeMap::new(),
            requests: RequestTable::default(),
            filter: None,
            limits: NeighbourLimits::default(),
            loads: Vec::new(),
            outputs: VecDeque::new(),
            next_sweep: Time(SWEEP_MS),
            last_sweep: Time(0),
            stats: Stats::default(),
            half_life_ms: cfg.smoothing_half_life_ms,
            improving: BTreeSet::new(),
            next_improve: None,
            last_seqno_bump: None,
            worse_requests: BTreeMap::new(),
            by_origin: Vec::new(),
        }
    }

    pub fn router_id(&self) -> RouterId {
        self.router_id
    }

    /// Our current seqno (the daemon persists it).
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn load_of(loads: &mut Vec<NeighbourLoad>, id: NeighbourId) -> &mut NeighbourLoad {
        let i = id.0 as usize;
        if loads.len() <= i {
            loads.resize_with(i + 1, NeighbourLoad::default);
        }
        &mut loads[i]
    }

    /// Sets how much of the table one neighbour may fill (routes already
    /// stored stay).
    pub fn set_neighbour_limits(&mut self, limits: NeighbourLimits) {
        self.limits = limits;
    }

    /// Installs the filter deciding which learned routes may be used, and
    /// re-evaluates every prefix against it at once.
    pub fn set_route_filter(&mut self, now: Time, filter: Option<RouteFilter>) {
        self.set_route_filter_for(now, filter, &FilterScope::everything());
    }

    /// Installs a filter that judges only the routes in `scope` differently
    /// from the one before, and re-evaluates those prefixes at once.
    pub fn set_route_filter_for(&mut self, now: Time, filter: Option<RouteFilter>, scope: &FilterScope) {
        self.now = now;
        self.filter = filter;
        let prefixes: Vec<Prefix> =
            if scope.all { self.table.keys().copied().collect() } else { self.scoped_prefixes(scope) };
        for p in prefixes {
            let before = self.snapshot(&p);
            self.reselect(p, before);
        }
    }

    /// The stored prefixes a scoped filter change touches, sorted, without
    /// repeats; drops index pairs whose route is gone.
    fn scoped_prefixes(&mut self, scope: &FilterScope) -> Vec<Prefix> {
        let table = &self.table;
        let mut out: Vec<Prefix> = scope.prefixes.iter().filter(|p| table.contains_key(p)).copied().collect();
        for rid in &scope.origins {
            let start = self.by_origin.partition_point(|(r, _)| r < rid);
            let end = start + self.by_origin[start..].partition_point(|(r, _)| r == rid);
            // This origin's pairs whose route is gone (or re-owned) go.
            let mut kept = start;
            for i in start..end {
                let (r, p) = self.by_origin[i];
                if stores_route_from(table, &r, &p) {
                    out.push(p);
                    self.by_origin[kept] = (r, p);
                    kept += 1;
                }
            }
            self.by_origin.drain(kept..end);
        }
        out.sort();
        out.dedup();
        out
    }

    /// Notes that a route for `prefix` from `rid` is stored.
    fn index_origin(&mut self, rid: RouterId, prefix: Prefix) {
        let Err(i) = self.by_origin.binary_search(&(rid, prefix)) else { return };
        self.by_origin.insert(i, (rid, prefix));
        let stored: usize = self.loads.iter().map(|l| l.routes).sum();
        if self.by_origin.len() > 2 * stored + 64 {
            let table = &self.table;
            self.by_origin.retain(|(r, p)| stores_route_from(table, r, p));
        }
    }

    /// Changes the smoothing half-life (a reload). Smoothed metrics keep
    /// their values and decay at the new rate from now on.
    pub fn set_smoothing_half_life(&mut self, half_life_ms: u64) {
        self.half_life_ms = half_life_ms;
    }

    // ----- sans-IO interface -------------------------------------------

    pub fn handle_input(&mut self, now: Time, input: Input<'_>) {
        self.now = now;
        match input {
            Input::Datagram { ifindex, src, data } => self.receive(ifindex, src, data),
            Input::InterfaceUp { ifindex, config } => self.interface_up(ifindex, config),
            Input::InterfaceDown { ifindex } => self.interface_down(ifindex),
            Input::Announce { prefix, metric } => self.announce(prefix, metric),
            Input::Withdraw { prefix } => self.withdraw(prefix),
            Input::Shutdown => self.shutdown(),
            Input::SendExtension { ifindex, dst, body } => {
                if let Some(iface) = self.ifaces.get_mut(&ifindex) {
                    let msg = Message::Unknown { tlv_type: packet::tlv_type::WEFT, body };
                    match dst {
                        Destination::Multicast => iface.out.control.push(msg),
                        Destination::Unicast(a) => iface.out.unicast.entry(a).or_default().push(msg),
                    }
                    iface.out.flush_by(now.plus_ms(self.rng.upto(20)));
                }
            }
        }
        self.flush_due();
    }

    /// The earliest time at which [`Engine::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut t = Some(self.sweep_due());
        let mut take = |x: Option<Time>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for i in self.ifaces.values() {
            take(Some(i.next_hello));
            take(Some(i.next_update));
            take(i.out.flush_at);
            take(i.resend_at);
            take(i.extra_hello_at);
        }
        take(self.next_improve);
        for n in self.neighbours.iter().flatten() {
            take(n.check_at);
        }
        take(self.requests.next_deadline());
        t
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.check_neighbours();
        let due: Vec<IfIndex> =
            self.ifaces.iter().filter(|(_, i)| i.next_hello <= now).map(|(k, _)| *k).collect();
        for ifindex in due {
            self.send_hello(ifindex, false);
        }
        let due: Vec<IfIndex> = self
            .ifaces
            .iter()
            .filter(|(_, i)| i.extra_hello_at.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for ifindex in due {
            self.send_hello(ifindex, true);
            let gap = self.rng.roughly(EXTRA_HELLO_GAP_MS);
            let iface = self.ifaces.get_mut(&ifindex).expect("listed");
            iface.extra_hellos = iface.extra_hellos.saturating_sub(1);
            iface.extra_hello_at = (iface.extra_hellos > 0).then(|| now.plus_ms(gap));
        }
        let due: Vec<IfIndex> =
            self.ifaces.iter().filter(|(_, i)| i.next_update <= now).map(|(k, _)| *k).collect();
        for ifindex in due {
            let iface = self.ifaces.get_mut(&ifindex).expect("listed");
            let interval = iface.cfg.update_interval_ms;
            iface.next_update = now.plus_ms(interval * 3 / 4 + self.rng.upto(interval / 2));
            iface.out.full_dump = true;
            // With the next Hello, in the same datagram: one header fewer
            // per dump (the dump's own timing is jittered anyway).
            let at = iface.next_hello.max(now);
            iface.out.flush_by(at);
        }
        for iface in self.ifaces.values_mut() {
            if iface.resend_at.is_some_and(|t| t <= now) {
                iface.resends_left = iface.resends_left.saturating_sub(1);
                iface.resend_delay_ms *= 2;
                iface.resend_at =
                    if iface.resends_left > 0 { Some(now.plus_ms(iface.resend_delay_ms)) } else { None };
                let again = if iface.resends_left > 0 {
                    iface.resend.clone()
                } else {
                    std::mem::take(&mut iface.resend)
                };
                iface.out.updates.extend(again);
                iface.out.flush_by(now);
            }
        }
        if self.next_improve.is_some_and(|t| t <= now) {
            self.next_improve = None;
            for p in std::mem::take(&mut self.improving) {
                let before = self.snapshot(&p);
                self.reselect(p, before);
            }
        }
        for (prefix, req) in self.requests.due(now) {
            self.emit_seqno_request(prefix, &req);
        }
        if self.sweep_due() <= now {
            self.sweep();
        }
        self.flush_due();
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ----- inspection ---------------------------------------------------

    pub fn neighbours(&self) -> Vec<NeighbourView> {
        let now = self.now;
        self.neighbours
            .iter()
            .flatten()
            .map(|n| {
                let iface = &self.ifaces[&n.ifindex].cfg;
                let nominal = iface.nominal_rxcost();
                NeighbourView {
                    ifindex: n.ifindex,
                    interface: iface.name.clone(),
                    address: n.address,
                    reach: n.hello.reach,
                    rxcost: n.rxcost(iface.link_type, nominal, now).0,
                    txcost: n.txcost(now).0,
                    cost: n.cost.0,
                    last_hello_ms: now.since(n.last_hello),
                }
            })
            .collect()
    }

    pub fn routes(&self) -> Vec<RouteView> {
        let now = self.now;
        let mut out = Vec::new();
        for (prefix, e) in &self.table {
            for r in &e.routes {
                let Some(n) = self.neighbour(r.neighbour) else {
                    continue;
                };
                let metric = r.refmetric.add(n.cost);
                out.push(RouteView {
                    prefix: *prefix,
                    router_id: r.router_id,
                    seqno: r.seqno.0,
                    refmetric: r.refmetric.0,
                    metric: metric.0,
                    smoothed_metric: r.smoothed_metric(metric, now, self.half_life_ms).0,
                    next_hop: r.next_hop,
                    ifindex: n.ifindex,
                    interface: self.ifaces[&n.ifindex].cfg.name.clone(),
                    neighbour: n.address,
                    feasible: e.is_feasible(r, now),
                    selected: e.selected == Some(r.neighbour),
                    expires_in_ms: r.expires.since(now),
                });
            }
        }
        out
    }

    pub fn xroutes(&self) -> Vec<XrouteView> {
        self.xroutes.iter().map(|(p, m)| XrouteView { prefix: *p, metric: m.0 }).collect()
    }

    /// The installed (selected) route of a prefix, as given to the FIB.
    pub fn installed(&self, prefix: &Prefix) -> Option<FibRoute> {
        let s = self.snapshot(prefix)?;
        Some(FibRoute { prefix: *prefix, next_hop: s.next_hop, ifindex: s.ifindex, metric: s.metric })
    }

    /// The origin (router-id) and seqno of the selected route for `prefix`.
    pub fn selected_origin(&self, prefix: &Prefix) -> Option<(RouterId, SeqNo)> {
        let s = self.snapshot(prefix)?;
        Some((s.router_id, s.seqno))
    }

    /// Every installed route.
    pub fn installed_routes(&self) -> Vec<FibRoute> {
        self.table.keys().filter_map(|p| self.installed(p)).collect()
    }

    /// What the FIB holds now, as the operations that would install it in
    /// an empty one: every selected route, and an unreachable route for
    /// every held prefix.
    pub fn fib_routes(&self) -> Vec<FibOp> {
        self.table
            .iter()
            .filter_map(|(p, e)| match self.installed(p) {
                Some(r) => Some(FibOp::Install(r)),
                None if e.retracting.as_ref().is_some_and(|r| r.unreachable) => Some(FibOp::Unreachable(*p)),
                None => None,
            })
            .collect()
    }

    /// Approximate heap bytes held by routing state (for benchmarks).
    pub fn table_memory_estimate(&self) -> usize {
        use std::mem::size_of;
        let per_entry = size_of::<Prefix>() + size_of::<Box<PrefixEntry>>() + size_of::<PrefixEntry>();
        self.table
            .values()
            .map(|e| {
                per_entry
                    + e.routes.heap_bytes()
                    + e.sources.heap_bytes()
                    + e.retracting.as_ref().map_or(0, |_| size_of::<Retraction>())
            })
            .sum()
    }

    pub fn route_count(&self) -> usize {
        self.table.values().map(|e| e.routes.len()).sum()
    }

    // ----- neighbours -----------------------------------------------------

    fn neighbour(&self, id: NeighbourId) -> Option<&Neighbour> {
        self.neighbours.get(id.0 as usize).and_then(|n| n.as_ref())
    }

    fn neighbour_mut(&mut self, id: NeighbourId) -> Option<&mut Neighbour> {
        self.neighbours.get_mut(id.0 as usize).and_then(|n| n.as_mut())
    }

    fn find_or_create_neighbour(&mut self, ifindex: IfIndex, addr: Ipv6Addr) -> (NeighbourId, bool) {
        if let Some(id) = self.by_addr.get(&(ifindex, addr)) {
            return (*id, false);
        }
        let mut n = Neighbour::new(ifindex, addr, self.now);
        n.requests = Budget::new(self.now, REQUEST_BURST);
        let id = match self.free_ids.pop() {
            Some(i) => {
                self.neighbours[i as usize] = Some(n);
                NeighbourId(i)
            }
            None => {
                self.neighbours.push(Some(n));
                NeighbourId(self.neighbours.len() as u32 - 1)
            }
        };
        self.by_addr.insert((ifindex, addr), id);
        (id, true)
    }

    /// Recomputes a neighbour's link cost; if it changed, every route via
    /// the neighbour is reconsidered (babeld's update_neighbour_metric).
    /// A change of cost is never urgent by itself: the triggered-update
    /// policy decides from the selected route's metric.
    fn update_cost(&mut self, id: NeighbourId) {
        let now = self.now;
        let Some(n) = self.neighbours.get_mut(id.0 as usize).and_then(|n| n.as_mut()) else { return };
        n.check_at = n.next_check(now);
        let n = self.neighbours[id.0 as usize].as_ref().expect("present");
        let iface = &self.ifaces[&n.ifindex].cfg;
        let new = n.compute_cost(iface.link_type, iface.nominal_rxcost(), now);
        if new == n.cost {
            return;
        }
        let old = n.cost;
        // Capture the selections first: they depend on the old cost.
        let affected: Vec<(Prefix, Option<Selected>)> = self
            .table
            .iter()
            .filter(|(_, e)| e.route(id).is_some())
            .map(|(p, _)| (*p, self.snapshot(p)))
            .collect();
        let young = self.is_young(id);
        for (p, before) in &affected {
            let installed = self.installed_smoothed(p, Some(id));
            let hl = self.half_life_ms;
            let r = self.table.get_mut(p).and_then(|e| e.route_mut(id)).expect("listed");
            let (was, will) = (r.refmetric.add(old), r.refmetric.add(new));
            Self::change_metric(r, was, will, installed, young, now, hl);
            let _ = before;
        }
        self.neighbour_mut(id).expect("exists").cost = new;
        for (p, before) in affected {
            self.reselect(p, before);
        }
    }

    /// The smoothed metric of the prefix's selected route, unless that
    /// route is the one via `except` (the route being changed).
    fn installed_smoothed(&self, prefix: &Prefix, except: Option<NeighbourId>) -> Option<Metric> {
        let e = self.table.get(prefix)?;
        if e.selected.is_some() && e.selected == except {
            return None;
        }
        e.selected_smoothed(|r| self.metric_of(r), self.now, self.half_life_ms)
    }

    /// A link younger than sixteen Hellos (its ETX history still filling).
    /// A neighbour that restarted (its Hello history started over) is young
    /// again. The interval counted is at most 10 s, so that a neighbour
    /// announcing a very long one does not escape smoothing for hours.
    fn is_young(&self, id: NeighbourId) -> bool {
        let Some(n) = self.neighbour(id) else { return false };
        let hello = match n.hello.interval_ms {
            0 => self.ifaces.get(&n.ifindex).map_or(0, |i| i.cfg.hello_interval_ms),
            i => i,
        };
        self.now.since(n.first_seen.max(n.hello.started)) < 16 * hello.min(10_000)
    }

    /// The metric of a route: what its neighbour advertised plus the link.
    fn metric_of(&self, r: &Route) -> Metric {
        self.neighbour(r.neighbour).map_or(Metric::INFINITY, |n| r.refmetric.add(n.cost))
    }

    /// Keeps a route's smoothed metric right across a change of its metric:
    /// time under the old metric is folded in; a route coming back from
    /// infinity starts afresh (one half-life before it can displace the
    /// installed route: flapping routes are damped). Over a young link the
    /// metric is not smoothed: a new link's ETX falls steadily while its
    /// Hello history fills (RFC 8966 A.2.2 counts the Hellos before the
    /// first as lost), which is no noise to damp, and smoothing it would
    /// hold every metric of a cold start high for minutes.
    #[allow(clippy::too_many_arguments)]
    fn change_metric(
        r: &mut Route,
        was: Metric,
        will: Metric,
        installed: Option<Metric>,
        young: bool,
        now: Time,
        hl: u64,
    ) {
        if young {
            r.smoothed = will;
            r.smoothed_at = now;
        } else if was.is_infinite() && !will.is_infinite() {
            r.smoothed = initial_smoothed(will, installed);
            r.smoothed_at = now;
        } else {
            r.commit_smoothing(was, now, hl);
        }
    }

    fn flush_neighbour(&mut self, id: NeighbourId) {
        let Some(n) = self.neighbour(id) else { return };
        let key = (n.ifindex, n.address);
        let affected: Vec<(Prefix, Option<Selected>)> = self
            .table
            .iter()
            .filter(|(_, e)| e.route(id).is_some())
            .map(|(p, _)| (*p, self.snapshot(p)))
            .collect();
        for (p, _) in &affected {
            if let Some(e) = self.table.get_mut(p) {
                e.remove_route(id);
            }
        }
        self.by_addr.remove(&key);
        self.neighbours[id.0 as usize] = None;
        self.free_ids.push(id.0);
        if let Some(l) = self.loads.get_mut(id.0 as usize) {
            *l = NeighbourLoad::default();
        }
        self.requests.forget_neighbour(id);
        for (p, before) in affected {
            self.reselect(p, before);
        }
    }

    fn check_neighbours(&mut self) {
        let now = self.now;
        let due: Vec<NeighbourId> = self
            .neighbours
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n.as_ref()?;
                n.check_at.filter(|t| *t <= now).map(|_| NeighbourId(i as u32))
            })
            .collect();
        for id in due {
            let n = self.neighbour_mut(id).expect("listed");
            n.hello.account_missed(now);
            n.uhello.account_missed(now);
            if n.txcost(now).is_infinite() {
                // IHUs stopped: forget the cost for good, which also ends
                // this neighbour's IHU deadline.
                n.txcost = Metric::INFINITY;
            }
            if n.is_dead(now) {
                self.flush_neighbour(id);
            } else {
                self.update_cost(id);
            }
        }
    }

    // ----- interfaces -----------------------------------------------------

    fn interface_up(&mut self, ifindex: IfIndex, mut config: InterfaceConfig) {
        let now = self.now;
        // Intervals travel in centiseconds (max 655.35 s); a zero would make
        // our timers spin and peers read "unscheduled".
        config.hello_interval_ms = config.hello_interval_ms.clamp(MIN_HELLO_MS, 655_350);
        config.update_interval_ms = config.update_interval_ms.clamp(MIN_UPDATE_MS, 655_350);
        if let Some(iface) = self.ifaces.get_mut(&ifindex) {
            let changed_costs = iface.cfg.link_type != config.link_type || iface.cfg.rxcost != config.rxcost;
            iface.cfg = config;
            if changed_costs {
                let ids: Vec<NeighbourId> =
                    self.by_addr.iter().filter(|((i, _), _)| *i == ifindex).map(|(_, id)| *id).collect();
                for id in ids {
                    self.update_cost(id);
                }
            }
            return;
        }
        let hello = config.hello_interval_ms;
        let update = config.update_interval_ms;
        let mut iface = Iface {
            cfg: config,
            hello_seqno: SeqNo(self.rng.next() as u16),
            // The first Hello goes out almost at once, so neighbours find us fast.
            next_hello: now.plus_ms(self.rng.upto(hello.min(50))),
            last_hello: None,
            next_update: now.plus_ms(update / 2 + self.rng.upto(update / 2)),
            last_full_dump: None,
            out: OutQueue::default(),
            resend: BTreeSet::new(),
            resend_at: None,
            resend_delay_ms: 0,
            resends_left: 0,
            extra_hellos: 0,
            extra_hello_at: None,
            extra_budget: Budget::new(now, EXTRA_HELLO_BURST),
        };
        // Ask the link for everything it knows, and tell it what we know.
        iface.out.control.push(Message::RouteRequest { prefix: None });
        iface.out.full_dump = true;
        iface.out.flush_by(iface.next_hello);
        self.ifaces.insert(ifindex, iface);
    }

    fn interface_down(&mut self, ifindex: IfIndex) {
        if !self.ifaces.contains_key(&ifindex) {
            return;
        }
        let ids: Vec<NeighbourId> =
            self.by_addr.iter().filter(|((i, _), _)| *i == ifindex).map(|(_, id)| *id).collect();
        for id in ids {
            self.flush_neighbour(id);
        }
        self.ifaces.remove(&ifindex);
    }

    fn send_hello(&mut self, ifindex: IfIndex, extra: bool) {
        let now = self.now;
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        iface.hello_seqno = iface.hello_seqno.next();
        let interval = iface.cfg.hello_interval_ms;
        if !extra {
            // A little jitter keeps neighbours from synchronising.
            iface.next_hello = now.plus_ms(interval - self.rng.upto(interval / 10));
        }
        iface.last_hello = Some(now);
        let seqno = iface.hello_seqno;
        // Hello first: the receiver must have accounted for it before the IHUs.
        iface
            .out
            .control
            .insert(0, Message::Hello { unicast: false, seqno, interval: Centisecs::from_millis(interval) });
        // IHUs every third Hello and with every extra Hello; in between,
        // to neighbours whose link is still coming up or lossy, so that a
        // new link gets its cost within one Hello interval (as babeld).
        let all = extra || seqno.0 % 3 == 0;
        self.queue_ihus(ifindex, all);
        if let Some(iface) = self.ifaces.get_mut(&ifindex) {
            iface.out.flush_by(now);
        }
    }

    fn queue_ihus(&mut self, ifindex: IfIndex, all: bool) {
        let now = self.now;
        let Some(iface) = self.ifaces.get(&ifindex) else {
            return;
        };
        let link = iface.cfg.link_type;
        let nominal = iface.cfg.nominal_rxcost();
        let interval = Centisecs::from_millis(iface.cfg.hello_interval_ms * 3);
        let ihus: Vec<Message> = self
            .by_addr
            .range((ifindex, Ipv6Addr::UNSPECIFIED)..=(ifindex, Ipv6Addr::from(u128::MAX)))
            .filter_map(|(_, id)| self.neighbour(*id))
            .filter(|n| all || n.txcost(now).0 >= 384 || n.hello.reach & 0xF000 != 0xF000)
            .map(|n| Message::Ihu {
                rxcost: n.rxcost(link, nominal, now),
                interval,
                address: Some(IpAddr::V6(n.address)),
            })
            .collect();
        let iface = self.ifaces.get_mut(&ifindex).expect("checked");
        iface.out.control.retain(|m| !matches!(m, Message::Ihu { .. }));
        let at = iface.out.control.iter().take_while(|m| matches!(m, Message::Hello { .. })).count();
        iface.out.control.splice(at..at, ihus);
    }

    // ----- own prefixes -------------------------------------------------

    fn announce(&mut self, prefix: Prefix, metric: Metric) {
        if self.xroutes.insert(prefix, metric) == Some(metric) {
            return;
        }
        self.origin_changed();
        let before = self.snapshot(&prefix);
        if let Some(e) = self.table.get_mut(&prefix) {
            // An unreachable hold route goes with the hold.
            if e.retracting.take().is_some_and(|r| r.unreachable) && before.is_none() {
                self.outputs.push_back(Output::Fib(FibOp::Remove(prefix)));
            }
        }
        self.reselect(prefix, before);
        self.trigger_update(prefix, Trigger::Quick);
    }

    /// Tells the policy layer what we originate now.
    fn origin_changed(&mut self) {
        let prefixes = self.xroutes.keys().copied().collect();
        self.outputs.push_back(Output::Origin { seqno: self.seqno, prefixes });
    }

    fn withdraw(&mut self, prefix: Prefix) {
        if self.xroutes.remove(&prefix).is_none() {
            return;
        }
        self.origin_changed();
        let (rid, seqno, until) = (self.router_id, self.seqno, self.now.plus_ms(RETRACTION_HOLD_MS));
        let e = self.table.entry(prefix).or_default();
        e.retracting = Some(Box::new(Retraction { router_id: rid, seqno, until, unreachable: false }));
        // A learned route for the prefix may now be used.
        self.reselect(prefix, None);
        self.trigger_update(prefix, Trigger::Repeat);
    }

    fn shutdown(&mut self) {
        let until = self.now.plus_ms(RETRACTION_HOLD_MS);
        let own: Vec<Prefix> = self.xroutes.keys().copied().collect();
        for p in own {
            self.xroutes.remove(&p);
            let e = self.table.entry(p).or_default();
            e.retracting = Some(Box::new(Retraction {
                router_id: self.router_id,
                seqno: self.seqno,
                until,
                unreachable: false,
            }));
        }
        let prefixes: Vec<Prefix> = self.table.keys().copied().collect();
        for p in &prefixes {
            let before = self.snapshot(p);
            let e = self.table.get_mut(p).expect("listed");
            let held = e.retracting.as_ref().is_some_and(|r| r.unreachable);
            if let Some(s) = before {
                e.retracting = Some(Box::new(Retraction {
                    router_id: s.router_id,
                    seqno: s.seqno,
                    until,
                    unreachable: false,
                }));
                e.selected = None;
            }
            if before.is_some() || held {
                if let Some(r) = e.retracting.as_mut() {
                    r.unreachable = false;
                }
                self.outputs.push_back(Output::Fib(FibOp::Remove(*p)));
            }
            e.routes.clear();
        }
        for iface in self.ifaces.values_mut() {
            iface.out.updates.clear();
            iface.out.full_dump = true;
            iface.out.flush_by(self.now);
        }
        self.flush_due();
        // Forget every neighbour so nothing gets reinstalled.
        self.loads.clear();
        for (_, id) in std::mem::take(&mut self.by_addr) {
            self.neighbours[id.0 as usize] = None;
            self.free_ids.push(id.0);
        }
        self.requests = RequestTable::default();
    }

    // ----- receiving ------------------------------------------------------

    fn receive(&mut self, ifindex: IfIndex, src: Ipv6Addr, data: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        if !self.ifaces.contains_key(&ifindex) || src.segments()[0] & 0xffc0 != 0xfe80 {
            self.stats.bad_packets += 1;
            return;
        }
        if self.ifaces[&ifindex].cfg.is_ours(&src) {
            return; // our own multicast, looped back
        }
        let decoded = match packet::decode(data) {
            Ok(d) => d,
            Err(_) => {
                self.stats.bad_packets += 1;
                return;
            }
        };
        for e in &decoded.errors {
            if e.is_malformed() {
                self.stats.bad_tlvs += 1;
            } else {
                self.stats.ignored_tlvs += 1;
            }
        }
        // Any packet makes its sender a neighbour, as babeld does: a peer's
        // first dump often arrives before its first Hello. Past a bound,
        // only a Hello creates one (spoofed sources cannot fill memory).
        if !self.by_addr.contains_key(&(ifindex, src)) {
            let has_hello = decoded.messages.iter().any(|m| matches!(m, Message::Hello { .. }));
            let count = self
                .by_addr
                .range((ifindex, Ipv6Addr::UNSPECIFIED)..=(ifindex, Ipv6Addr::from(u128::MAX)))
                .count();
            if has_hello || count < MAX_NEIGHBOURS_PER_IF {
                let (id, _) = self.find_or_create_neighbour(ifindex, src);
                self.new_neighbour(ifindex, id);
            }
        }
        for msg in decoded.messages {
            self.handle_message(ifindex, src, msg);
        }
    }

    fn handle_message(&mut self, ifindex: IfIndex, src: Ipv6Addr, msg: Message) {
        let now = self.now;
        let neigh = self.by_addr.get(&(ifindex, src)).copied();
        match msg {
            Message::Hello { unicast, seqno, interval } => {
                let (id, _) = self.find_or_create_neighbour(ifindex, src);
                let n = self.neighbour_mut(id).expect("just found");
                let hist = if unicast { &mut n.uhello } else { &mut n.hello };
                hist.receive(now, seqno, interval.as_millis());
                n.last_hello = now;
                self.update_cost(id);
            }
            Message::Ihu { rxcost, interval, address } => {
                let Some(id) = neigh else {
                    self.stats.from_unknown_neighbour += 1;
                    return;
                };
                let cfg = &self.ifaces[&ifindex].cfg;
                // `current`: addressed to the link-local address we use here.
                let (for_us, current) = match address {
                    None => (true, true),
                    Some(IpAddr::V6(a)) => (cfg.is_ours(&a), a == cfg.link_local),
                    Some(IpAddr::V4(a)) => (cfg.ipv4 == Some(a), true),
                };
                if !for_us {
                    return;
                }
                let n = self.neighbour_mut(id).expect("known");
                // A neighbour that first heard us from another of our
                // addresses (ours changed as addresses came up) keeps that
                // entry until it times out, and sends IHUs for it whose cost
                // rises to infinity. Once it answers the address we use,
                // those describe no link of ours.
                if !current && n.ihu_current && now.since(n.ihu_time) < n.ihu_interval_ms.saturating_mul(3) {
                    return;
                }
                n.ihu_current = current;
                n.txcost = rxcost;
                n.ihu_time = now;
                n.ihu_interval_ms = interval.as_millis();
                self.update_cost(id);
            }
            Message::Update(u) => {
                self.stats.updates_in += 1;
                match neigh {
                    Some(id) => self.handle_update(ifindex, id, u),
                    None => self.stats.from_unknown_neighbour += 1,
                }
            }
            Message::WildcardRetraction { .. } => {
                if let Some(id) = neigh {
                    self.retract_all_from(id);
                }
            }
            Message::RouteRequest { prefix } => {
                if prefix.is_none() {
                    // A neighbour asking for everything may have just
                    // restarted: tell it its link cost too.
                    self.queue_ihus(ifindex, false);
                }
                self.handle_route_request(ifindex, neigh, prefix)
            }
            Message::SeqnoRequest { seqno, hop_count, router_id, prefix } => {
                self.stats.seqno_requests_in += 1;
                self.handle_seqno_request(ifindex, neigh, prefix, router_id, seqno, hop_count);
            }
            Message::AckReq { opaque, .. } => {
                let iface = self.ifaces.get_mut(&ifindex).expect("checked");
                iface.out.unicast.entry(src).or_default().push(Message::Ack { opaque });
                iface.out.flush_by(now);
            }
            Message::Ack { .. } => {}
            Message::Unknown { tlv_type, body } => {
                if tlv_type == packet::tlv_type::WEFT {
                    self.outputs.push_back(Output::Extension { ifindex, from: src, body });
                } else {
                    self.stats.unknown_tlvs += 1;
                }
            }
        }
    }

    /// A neighbour was just heard for the first time: ask it for its
    /// routes, and send two extra Hellos with IHUs a few milliseconds
    /// apart. It has heard none of our earlier Hellos, and 2-out-of-3
    /// needs two: this makes the link bidirectional within a round trip
    /// instead of a Hello interval (babeld sends two Hellos at boot for
    /// the same reason).
    fn new_neighbour(&mut self, ifindex: IfIndex, id: NeighbourId) {
        let now = self.now;
        let addr = self.neighbour(id).expect("new").address;
        let jitter = self.rng.upto(5);
        let iface = self.ifaces.get_mut(&ifindex).expect("checked");
        iface.out.unicast.entry(addr).or_default().push(Message::RouteRequest { prefix: None });
        iface.out.flush_by(now.plus_ms(self.rng.upto(10)));
        if iface.extra_hellos < 2 && iface.extra_budget.take(now, EXTRA_HELLO_RATE, EXTRA_HELLO_BURST) {
            iface.extra_hellos = 2;
            if iface.extra_hello_at.is_none() {
                iface.extra_hello_at = Some(now.plus_ms(jitter));
            }
        } else if iface.extra_hellos == 0 {
            // Over budget: IHUs at least, so its cost is known.
            self.queue_ihus(ifindex, true);
        }
    }

    fn retract_all_from(&mut self, id: NeighbourId) {
        let affected: Vec<(Prefix, Option<Selected>)> = self
            .table
            .iter()
            .filter(|(_, e)| e.route(id).is_some_and(|r| !r.refmetric.is_infinite()))
            .map(|(p, _)| (*p, self.snapshot(p)))
            .collect();
        for (p, before) in affected {
            if let Some(r) = self.table.get_mut(&p).and_then(|e| e.route_mut(id)) {
                r.refmetric = Metric::INFINITY;
                r.smoothed = Metric::INFINITY;
                r.smoothed_at = self.now;
            }
            self.reselect(p, before);
        }
    }

    fn handle_update(&mut self, ifindex: IfIndex, id: NeighbourId, mut u: Update) {
        let now = self.now;
        if u.router_id == self.router_id || is_martian(&u.prefix) {
            return;
        }
        let src = self.neighbour(id).expect("known").address;
        let next_hop = match (u.prefix, u.next_hop, u.v4_via_v6) {
            (Prefix::V4(..), Some(IpAddr::V4(a)), false) => IpAddr::V4(a),
            // A retraction needs no next hop (BIRD sends none with them).
            (Prefix::V4(..), _, false) if u.is_retraction() => IpAddr::V6(src),
            // An IPv4 prefix needs an IPv4 next hop unless sent as AE 4.
            (Prefix::V4(..), _, false) => return,
            (_, Some(IpAddr::V6(a)), _) => IpAddr::V6(a),
            _ => IpAddr::V6(src),
        };
        // A Next Hop TLV of :: or 0.0.0.0 names no neighbour (and the FIB
        // would take it for a route straight into the interface).
        if next_hop.is_unspecified() && !u.is_retraction() {
            return;
        }
        if let (Some(f), false) = (&self.filter, u.is_retraction()) {
            let query = RouteQuery {
                prefix: u.prefix,
                router_id: u.router_id,
                seqno: u.seqno,
                ifindex,
                neighbour: src,
            };
            let verdict = f(&query);
            match verdict {
                FilterVerdict::Use => {}
                FilterVerdict::Hold => self.stats.held_by_filter += 1,
                FilterVerdict::Refuse => self.stats.refused_by_filter += 1,
            }
            if verdict != FilterVerdict::Use {
                self.outputs.push_back(Output::Filtered { query, verdict });
            }
            if verdict == FilterVerdict::Refuse {
                // Not stored. A route this neighbour had for the prefix is
                // not what it announces any more: retracted.
                if self.table.get(&u.prefix).is_none_or(|e| e.route(id).is_none()) {
                    return;
                }
                u.metric = Metric::INFINITY;
            }
        }
        // What the neighbour may still add to the table.
        let held = self.table.get(&u.prefix).and_then(|e| e.route(id)).map(|r| r.router_id);
        if !u.is_retraction() && held != Some(u.router_id) {
            let load = self.loads.get(id.0 as usize);
            let routes = load.map_or(0, |l| l.routes);
            let new_origin = !load.is_some_and(|l| l.has_origin(&u.router_id));
            let origins = load.map_or(0, |l| l.origins.len());
            if (held.is_none() && routes >= self.limits.max_routes)
                || (new_origin && origins >= self.limits.max_origins)
            {
                self.stats.over_neighbour_limit += 1;
                return;
            }
        }
        let fallback = self.ifaces[&ifindex].cfg.update_interval_ms;
        let expires = now.plus_ms(expiry_ms(u.interval, fallback));
        let before = self.snapshot(&u.prefix);
        let installed = self.installed_smoothed(&u.prefix, Some(id));
        let young = self.is_young(id);
        let hl = self.half_life_ms;

        let entry = match self.table.get_mut(&u.prefix) {
            Some(e) => e,
            None if u.is_retraction() => return,
            None => self.table.entry(u.prefix).or_default(),
        };
        let feasible = super::source::is_feasible(entry.source(&u.router_id), u.seqno, u.metric, now);
        let cost = self.neighbours[id.0 as usize].as_ref().expect("known").cost;
        let mut request: Option<(RouterId, SeqNo)> = None;
        match entry.route_mut(id) {
            Some(r) => {
                if !feasible && before.is_some_and(|b| b.neighbour == id) && r.router_id == u.router_id {
                    // RFC 8966 §3.5.3: an unfeasible update for the selected
                    // route from the same origin may be ignored. The origin
                    // still announces it through this neighbour, so the
                    // route stays alive (letting it expire on a lossy link
                    // starves every node behind us), and nothing is asked:
                    // on ETX links the advertised metric crosses the
                    // feasibility distance all the time, and a seqno
                    // request for each crossing made the origin's new seqno
                    // flood the mesh (as babeld, which asks only when the
                    // route is lost or a much better one is unfeasible).
                    if !u.is_retraction() {
                        r.expires = expires;
                        r.refresh_asks = 0;
                    }
                } else {
                    if r.router_id != u.router_id {
                        let load = Self::load_of(&mut self.loads, id);
                        load.remove(r.router_id);
                        load.add(u.router_id);
                    }
                    Self::change_metric(
                        r,
                        r.refmetric.add(cost),
                        u.metric.add(cost),
                        installed,
                        young,
                        now,
                        hl,
                    );
                    r.router_id = u.router_id;
                    r.seqno = u.seqno;
                    r.refmetric = u.metric;
                    r.next_hop = next_hop;
                    if !u.is_retraction() {
                        r.expires = expires;
                        r.refresh_asks = 0;
                    }
                    if !feasible {
                        request = Some((u.router_id, u.seqno));
                    }
                }
            }
            None if u.is_retraction() => return,
            None => {
                Self::load_of(&mut self.loads, id).add(u.router_id);
                entry.routes.push(Route {
                    neighbour: id,
                    router_id: u.router_id,
                    seqno: u.seqno,
                    refmetric: u.metric,
                    next_hop,
                    expires,
                    smoothed: if young {
                        u.metric.add(cost)
                    } else {
                        initial_smoothed(u.metric.add(cost), installed)
                    },
                    smoothed_at: now,
                    refresh_asks: 0,
                });
                if !feasible {
                    request = Some((u.router_id, u.seqno));
                }
            }
        }
        self.next_sweep = self.next_sweep.min(expires);
        self.index_origin(u.router_id, u.prefix);
        self.reselect(u.prefix, before);
        if let Some((rid, seqno)) = request {
            // §3.8.2.2: ask the neighbour with the unfeasible route for a
            // newer seqno, if that route would be much better than ours
            // (babeld's 512) or we have none.
            let ours = self.snapshot(&u.prefix).map(|s| s.metric);
            let theirs = u.metric.add(cost);
            let worth = ours.is_none_or(|m| m.0 as u32 >= theirs.0 as u32 + 512);
            if worth && !theirs.is_infinite() {
                self.send_unfeasible_request(id, u.prefix, rid, seqno);
            }
        }
    }

    /// §3.8.2.2: a neighbour's unfeasible route that would be worth having:
    /// ask it (unicast) for a newer seqno of the origin. Not resent, as
    /// babeld: the neighbour's next update will ask again if need be.
    fn send_unfeasible_request(&mut self, id: NeighbourId, prefix: Prefix, rid: RouterId, seqno: SeqNo) {
        let now = self.now;
        let Some(fd) = self.table.get(&prefix).and_then(|e| e.source(&rid)).copied() else {
            return;
        };
        if fd.seqno.distance(seqno) > 100 {
            // A source that lost its seqno: let the old state time out.
            return;
        }
        let want = if fd.metric.is_infinite() { fd.seqno } else { fd.seqno.next() };
        if self.requests.is_redundant(&prefix, &rid, want, now) {
            return;
        }
        // An unfeasible route is announced again with every periodic
        // update; on lossy links one looks much better than ours often.
        // One request per prefix and update interval is plenty.
        let quiet = self
            .neighbour(id)
            .and_then(|n| self.ifaces.get(&n.ifindex))
            .map_or(0, |i| i.cfg.update_interval_ms);
        let req = PendingRequest::new(rid, want, DEFAULT_HOP_COUNT, Some(id), None, now, 0).quiet_for(quiet);
        self.emit_seqno_request(prefix, &req);
        self.requests.record(prefix, req);
    }

    /// May this neighbour make us do one more piece of request work now?
    fn request_budget(&mut self, from: Option<NeighbourId>) -> bool {
        let now = self.now;
        let ok = match from.and_then(|id| self.neighbour_mut(id)) {
            Some(n) => n.requests.take(now, REQUEST_RATE, REQUEST_BURST),
            // Not a neighbour yet: nothing it asks for is worth work.
            None => false,
        };
        if !ok {
            self.stats.requests_over_budget += 1;
        }
        ok
    }

    fn handle_route_request(&mut self, ifindex: IfIndex, from: Option<NeighbourId>, prefix: Option<Prefix>) {
        let now = self.now;
        let jitter = self.update_jitter(ifindex, Trigger::Normal);
        match prefix {
            None => {
                let last = self.ifaces[&ifindex].last_full_dump;
                // A neighbour that appeared after our last multicast dump
                // and asks within a second of it gets a unicast dump at
                // once (at most one a second): a cold start must not wait
                // for the next multicast slot.
                let fresh = from.and_then(|id| self.neighbour_mut(id)).filter(|n| {
                    last.is_some_and(|t| now.since(t) < 1000 && n.first_seen > t)
                        && n.last_dump.is_none_or(|d| now.since(d) >= 1000)
                });
                if let Some(n) = fresh {
                    n.last_dump = Some(now);
                    let addr = n.address;
                    let at = now.plus_ms(self.rng.upto(10));
                    let iface = self.ifaces.get_mut(&ifindex).expect("checked");
                    if !iface.out.dump_to.contains(&addr) {
                        iface.out.dump_to.push(addr);
                    }
                    iface.out.flush_by(at);
                    return;
                }
                // Nodes that boot together all ask at once: one multicast
                // dump per second per interface answers them all.
                // Deferred, not dropped: the last dump may predate them.
                let earliest = last.map_or(now, |t| t.plus_ms(1000)).max(now);
                let at = earliest.plus_ms(self.rng.upto(20));
                let iface = self.ifaces.get_mut(&ifindex).expect("checked");
                iface.out.full_dump = true;
                iface.out.flush_by(at);
            }
            Some(p) => {
                // A neighbour asking for many prefixes at once gets a full
                // dump instead; one asking for prefixes we cannot route
                // gets retractions only within its budget.
                let many = from.and_then(|id| self.neighbour_mut(id)).is_some_and(|n| {
                    if now.since(n.route_requests.1) >= 1000 {
                        n.route_requests = (0, now);
                    }
                    n.route_requests.0 += 1;
                    n.route_requests.0 as usize > SPECIFIC_REQUESTS_BEFORE_DUMP
                });
                if many {
                    return self.handle_route_request(ifindex, from, None);
                }
                let known = self.xroutes.contains_key(&p) || self.table.contains_key(&p);
                if !known && !self.request_budget(from) {
                    return;
                }
                let iface = self.ifaces.get_mut(&ifindex).expect("checked");
                iface.out.updates.insert(p);
                iface.out.requested.insert(p);
                // Not urgent (babeld): requests come when a route got much
                // worse, and the answers batch with other updates.
                iface.out.flush_by(now.plus_ms(jitter));
            }
        }
    }

    fn handle_seqno_request(
        &mut self,
        ifindex: IfIndex,
        from: Option<NeighbourId>,
        prefix: Prefix,
        rid: RouterId,
        seqno: SeqNo,
        hop_count: u8,
    ) {
        let now = self.now;
        if hop_count == 0 || !self.request_budget(from) {
            return;
        }
        if self.xroutes.contains_key(&prefix) {
            if rid == self.router_id && seqno.newer_than(self.seqno) {
                if seqno.distance(self.seqno) > 100 {
                    return; // hopelessly out of date
                }
                // Raising our seqno costs everyone an update wave: at most
                // one raise per interval, whoever asks.
                if self.last_seqno_bump.is_none_or(|t| now.since(t) >= SEQNO_BUMP_MIN_MS) {
                    self.seqno = self.seqno.next();
                    self.origin_changed();
                    self.last_seqno_bump = Some(now);
                }
            }
            self.queue_update(ifindex, prefix, Trigger::Answer);
            return;
        }
        let sel = self.snapshot(&prefix);
        if let Some(s) = sel {
            if s.router_id != rid || s.seqno.newer_or_equal(seqno) {
                self.queue_update(ifindex, prefix, Trigger::Answer);
                return;
            }
            if seqno.distance(s.seqno) > 100 {
                return;
            }
        }
        if hop_count <= 1 || self.requests.is_redundant(&prefix, &rid, seqno, now) {
            return;
        }
        // Forward towards the origin: our successor, or failing that the
        // best neighbour with a finite route (feasible or not) that is not
        // the requestor.
        let mut successor =
            sel.filter(|s| !s.metric.is_infinite()).map(|s| s.neighbour).filter(|n| Some(*n) != from);
        if successor.is_none() {
            if let Some(e) = self.table.get(&prefix) {
                successor = e
                    .routes
                    .iter()
                    .filter(|r| Some(r.neighbour) != from && !r.refmetric.is_infinite())
                    .filter_map(|r| {
                        let m = self.metric_of(r);
                        (!m.is_infinite()).then_some((m, r.neighbour))
                    })
                    .min()
                    .map(|(_, n)| n);
            }
        }
        let Some(succ) = successor else { return };
        let req = PendingRequest::new(rid, seqno, hop_count - 1, Some(succ), from, now, 0);
        self.emit_seqno_request(prefix, &req);
        self.requests.record(prefix, req);
    }

    /// Queues an update for one prefix on one interface (an answer).
    fn queue_update(&mut self, ifindex: IfIndex, prefix: Prefix, trigger: Trigger) {
        let at = self.now.plus_ms(self.update_jitter(ifindex, trigger));
        if let Some(iface) = self.ifaces.get_mut(&ifindex) {
            iface.out.updates.insert(prefix);
            iface.out.flush_by(at);
        }
    }

    /// How long a triggered update may wait on an interface: quick ones a
    /// few tens of milliseconds; the others until the next Hello (at most a
    /// Hello interval, as babeld's update_jitter), so that they batch with
    /// each other and share the Hello's datagram.
    fn update_jitter(&mut self, ifindex: IfIndex, trigger: Trigger) -> u64 {
        let now = self.now;
        let Some(iface) = self.ifaces.get(&ifindex) else { return 0 };
        let hello = iface.cfg.hello_interval_ms;
        match trigger {
            Trigger::Normal => iface.next_hello.since(now).min(4000),
            Trigger::Quick | Trigger::Repeat => self.rng.roughly((hello / 20).clamp(1, 20)),
            Trigger::Answer => self.rng.roughly(hello.clamp(1, 100)),
        }
    }

    fn emit_seqno_request(&mut self, prefix: Prefix, req: &PendingRequest) {
        let msg = Message::SeqnoRequest {
            seqno: req.seqno,
            hop_count: req.hop_count,
            router_id: req.router_id,
            prefix,
        };
        self.stats.seqno_requests_out += 1;
        let now = self.now;
        match req.target {
            Some(n) => {
                let Some(n) = self.neighbour(n) else { return };
                let (ifindex, addr) = (n.ifindex, n.address);
                if let Some(iface) = self.ifaces.get_mut(&ifindex) {
                    iface.out.unicast.entry(addr).or_default().push(msg);
                    iface.out.flush_by(now);
                }
            }
            None => {
                for iface in self.ifaces.values_mut() {
                    iface.out.control.push(msg.clone());
                    iface.out.flush_by(now);
                }
            }
        }
    }

    // ----- selection --------------------------------------------------------

    fn snapshot(&self, prefix: &Prefix) -> Option<Selected> {
        let e = self.table.get(prefix)?;
        let r = e.selected_route()?;
        let n = self.neighbour(r.neighbour)?;
        Some(Selected {
            neighbour: r.neighbour,
            router_id: r.router_id,
            seqno: r.seqno,
            metric: r.refmetric.add(n.cost),
            next_hop: r.next_hop,
            ifindex: n.ifindex,
        })
    }

    /// Re-runs selection for one prefix after something changed, and does
    /// what the change calls for: FIB operations, triggered updates, and
    /// seqno requests when the prefix is lost (§3.8.2.1).
    fn reselect(&mut self, prefix: Prefix, before: Option<Selected>) {
        let now = self.now;
        let own = self.xroutes.contains_key(&prefix);
        let Some(entry) = self.table.get(&prefix) else {
            if before.is_some() {
                self.outputs.push_back(Output::Fib(FibOp::Remove(prefix)));
            }
            return;
        };
        let neighbours = &self.neighbours;
        let filter = &self.filter;
        let hl = self.half_life_ms;
        let choice = if own {
            None
        } else {
            let c = entry.choose(
                now,
                |r| match neighbours.get(r.neighbour.0 as usize).and_then(|n| n.as_ref()) {
                    Some(n) => r.refmetric.add(n.cost),
                    None => Metric::INFINITY,
                },
                |r, m| r.smoothed_metric(m, now, hl),
                |r| {
                    let n = neighbours.get(r.neighbour.0 as usize).and_then(|n| n.as_ref());
                    filter.as_ref().is_none_or(|f| {
                        n.is_some_and(|n| {
                            let q = RouteQuery {
                                prefix,
                                router_id: r.router_id,
                                seqno: r.seqno,
                                ifindex: n.ifindex,
                                neighbour: n.address,
                            };
                            f(&q) == FilterVerdict::Use
                        })
                    })
                },
            );
            if c.pending {
                self.improving.insert(prefix);
                // Look again when the smoothed metrics have moved a
                // quarter of a half-life.
                let at = now.plus_ms((hl / 4).max(250));
                self.next_improve = Some(self.next_improve.map_or(at, |t| t.min(at)));
            }
            c.selected
        };
        self.table.get_mut(&prefix).expect("present").selected = choice;
        let after = self.snapshot(&prefix);

        match (before, after) {
            (None, None) => {}
            (None, Some(a)) => {
                // Replaces an unreachable hold route, if any.
                let entry = self.table.get_mut(&prefix).expect("present");
                let held = entry.retracting.take().is_some_and(|r| r.unreachable);
                self.install(prefix, &a, held);
                self.trigger_update(prefix, Trigger::Quick);
            }
            (Some(b), Some(a)) => {
                if (a.next_hop, a.ifindex) != (b.next_hop, b.ifindex) {
                    self.install(prefix, &a, true);
                }
                self.triggered_update_policy(prefix, &b, &a);
            }
            (Some(b), None) => {
                if own {
                    self.outputs.push_back(Output::Fib(FibOp::Remove(prefix)));
                    return;
                }
                self.outputs.push_back(Output::Fib(FibOp::Unreachable(prefix)));
                let until = now.plus_ms(RETRACTION_HOLD_MS);
                let entry = self.table.get_mut(&prefix).expect("present");
                entry.retracting = Some(Box::new(Retraction {
                    router_id: b.router_id,
                    seqno: b.seqno,
                    until,
                    unreachable: true,
                }));
                self.next_sweep = self.next_sweep.min(until);
                // A retraction: a black hole if it is lost, so repeated.
                self.trigger_update(prefix, Trigger::Repeat);
                // If the route was usable enough, ask for an alternative;
                // near infinity it may just be oscillating (babeld).
                if b.metric.0 <= 0x7FFF {
                    self.request_lost(prefix, b.router_id, b.seqno);
                }
            }
        }
    }

    /// The prefix was lost: ask everyone for a newer seqno of its origin, so
    /// that an unfeasible route can become feasible (§3.8.2.1). Resent with
    /// backoff until answered.
    fn request_lost(&mut self, prefix: Prefix, rid: RouterId, seqno: SeqNo) {
        let now = self.now;
        let fd = self.table.get(&prefix).and_then(|e| e.source(&rid)).copied();
        let want = match fd {
            Some(s) if s.metric.is_infinite() => s.seqno,
            Some(s) => s.seqno.next(),
            None => seqno.next(),
        };
        if self.requests.is_redundant(&prefix, &rid, want, now) {
            return;
        }
        let delay = self.ifaces.values().map(|i| i.resend_delay_ms()).min().unwrap_or(2000);
        let req = PendingRequest::new(rid, want, DEFAULT_HOP_COUNT, None, None, now, delay);
        self.emit_seqno_request(prefix, &req);
        self.requests.record(prefix, req);
    }

    /// babeld's triggered-update policy (send_triggered_update) for a
    /// selected route that changed: a change of origin is repeated (a loop
    /// may be forming), a sharp rise and an answer to a pending request go
    /// out quickly, and small changes wait for the next periodic update
    /// (announcing a transient improvement would only tighten feasibility
    /// distances and make later increases unfeasible).
    fn triggered_update_policy(&mut self, prefix: Prefix, b: &Selected, a: &Selected) {
        let (old, new) = (b.metric.0 as u32, a.metric.0 as u32);
        let diff = old.abs_diff(new);
        // A rise is measured from what the neighbours were last told, not
        // from the previous value: on a lossy radio ETX jumps up and down
        // with every Hello, and babeld's previous-value test fires on every
        // jump. Against the last announcement a noisy metric triggers at
        // most once until the next periodic update resets the reference.
        let told = self.table.get(&prefix).map_or(b.metric, |e| e.announced).0 as u32;
        let rise = new.saturating_sub(told);
        let trigger = if a.router_id != b.router_id {
            Some(Trigger::Repeat)
        } else if (told < 6 * 256 && rise >= 512)
            || self.requests.would_satisfy(&prefix, &a.router_id, a.seqno)
        {
            // Getting much worse (maybe a black hole), or the answer to a
            // pending seqno request: pass it on quickly.
            Some(Trigger::Answer)
        } else if (new < old && diff < 1024) || diff < 384 {
            None
        } else {
            Some(Trigger::Normal)
        };
        if let Some(t) = trigger {
            self.trigger_update(prefix, t);
        }
        if rise >= 288.max(told / 4) && new < 0xFFFF {
            // Getting much worse: maybe a neighbour has a better route. On a
            // lossy radio ETX jumps like this all the time, and every
            // neighbour answers every request: at most one request per
            // prefix per update interval (babeld asks every time).
            let now = self.now;
            let interval = self.ifaces.values().map(|i| i.cfg.update_interval_ms).min().unwrap_or(0);
            if self.worse_requests.get(&prefix).is_some_and(|t| now.since(*t) < interval) {
                return;
            }
            self.worse_requests.insert(prefix, now);
            let ifindexes: Vec<IfIndex> = self.ifaces.keys().copied().collect();
            for ifindex in ifindexes {
                let at = now.plus_ms(self.update_jitter(ifindex, Trigger::Answer));
                let iface = self.ifaces.get_mut(&ifindex).expect("listed");
                iface.out.control.push(Message::RouteRequest { prefix: Some(prefix) });
                iface.out.flush_by(at);
            }
        }
    }

    /// `replace`: a route of ours (installed or held) is in the FIB.
    fn install(&mut self, prefix: Prefix, s: &Selected, replace: bool) {
        let r = FibRoute { prefix, next_hop: s.next_hop, ifindex: s.ifindex, metric: s.metric };
        self.outputs.push_back(Output::Fib(if replace { FibOp::Replace(r) } else { FibOp::Install(r) }));
    }

    fn trigger_update(&mut self, prefix: Prefix, trigger: Trigger) {
        let now = self.now;
        self.stats.triggered_updates += 1;
        if trigger == Trigger::Repeat {
            self.stats.repeated_updates += 1;
        }
        let ifindexes: Vec<IfIndex> = self.ifaces.keys().copied().collect();
        for ifindex in ifindexes {
            let delay = self.update_jitter(ifindex, trigger);
            let iface = self.ifaces.get_mut(&ifindex).expect("listed");
            iface.out.updates.insert(prefix);
            iface.out.flush_by(now.plus_ms(delay));
            if trigger == Trigger::Repeat {
                iface.resend.insert(prefix);
                if iface.resend_at.is_none() {
                    iface.resend_delay_ms = iface.resend_delay_ms();
                    iface.resend_at = Some(now.plus_ms(iface.resend_delay_ms));
                }
                iface.resends_left = UPDATE_REPEATS;
            }
        }
    }

    // ----- expiry -----------------------------------------------------------

    /// When the next sweep runs: what is due, but not before the gap.
    fn sweep_due(&self) -> Time {
        let shortest =
            self.ifaces.values().map(|i| i.cfg.update_interval_ms).min().unwrap_or(SWEEP_GAP_MS * 4);
        self.next_sweep.max(self.last_sweep.plus_ms((shortest / 4).clamp(1, SWEEP_GAP_MS)))
    }

    fn sweep(&mut self) {
        let now = self.now;
        self.last_sweep = now;
        let mut changed: Vec<(Prefix, Option<Selected>)> = Vec::new();
        let mut empty: Vec<Prefix> = Vec::new();
        let mut next = now.plus_ms(SWEEP_MS);
        for (p, e) in &self.table {
            let expired = e.routes.iter().any(|r| r.expires <= now);
            if expired {
                changed.push((*p, self.snapshot(p)));
            }
        }
        let mut gone: Vec<(NeighbourId, RouterId)> = Vec::new();
        for (p, _) in &changed {
            let e = self.table.get_mut(p).expect("listed");
            e.routes.retain_mut(|r| {
                if r.expires > now {
                    return true;
                }
                if r.refmetric.is_infinite() {
                    gone.push((r.neighbour, r.router_id));
                    return false;
                }
                // Expired: becomes a retraction, kept a little longer so a
                // late update from the same neighbour is recognised.
                r.refmetric = Metric::INFINITY;
                r.smoothed = Metric::INFINITY;
                r.smoothed_at = now;
                r.expires = now.plus_ms(SWEEP_MS);
                true
            });
            if e.selected.is_some_and(|n| e.route(n).is_none()) {
                e.selected = None;
            }
        }
        for (n, rid) in gone {
            if let Some(l) = self.loads.get_mut(n.0 as usize) {
                l.remove(rid);
            }
        }
        for (p, before) in changed {
            self.reselect(p, before);
        }
        self.refresh_routes(&mut next);
        for (p, e) in self.table.iter_mut() {
            if let Some(r) = e.retracting.as_ref() {
                if r.until <= now && r.unreachable && e.selected.is_none() {
                    self.outputs.push_back(Output::Fib(FibOp::Remove(*p)));
                } else if r.until > now {
                    next = next.min(r.until);
                }
            }
            if e.gc(now) && !self.xroutes.contains_key(p) {
                empty.push(*p);
            }
            for r in &e.routes {
                next = next.min(r.expires);
            }
        }
        for p in empty {
            self.table.remove(&p);
        }
        let interval = self.ifaces.values().map(|i| i.cfg.update_interval_ms).max().unwrap_or(0);
        self.worse_requests.retain(|_, t| now.since(*t) < interval);
        self.next_sweep = next.max(now.plus_ms(1));
    }

    /// A selected route whose neighbour has been silent for several update
    /// intervals has probably lost periodic updates to a lossy link, not
    /// gone away: ask the neighbour for it (unicast), and again if the
    /// answer is lost too, before the route expires at 5.25 intervals
    /// (babeld asks once, at its expiry); asked at 3.75, 4.25 and 4.75
    /// intervals of silence. A neighbour that no longer has the route
    /// answers with a retraction, which ends the wait early.
    fn refresh_routes(&mut self, next: &mut Time) {
        let now = self.now;
        let mut ask: Vec<(Prefix, NeighbourId)> = Vec::new();
        for (p, e) in &self.table {
            let Some(r) = e.selected_route() else { continue };
            let Some(&before_expiry) = REFRESH_BEFORE_EXPIRY.get(r.refresh_asks as usize) else { continue };
            if r.refmetric.is_infinite() {
                continue;
            }
            let Some(n) = self.neighbour(r.neighbour) else { continue };
            let interval = self.ifaces.get(&n.ifindex).map_or(0, |i| i.cfg.update_interval_ms);
            let at = Time(r.expires.millis().saturating_sub(interval * before_expiry / 4));
            if at <= now {
                ask.push((*p, r.neighbour));
            } else {
                *next = (*next).min(at);
            }
        }
        for (p, id) in ask {
            if let Some(r) = self.table.get_mut(&p).and_then(|e| e.route_mut(id)) {
                r.refresh_asks += 1;
            }
            let Some((ifindex, addr)) = self.neighbour(id).map(|n| (n.ifindex, n.address)) else { continue };
            let at = now.plus_ms(self.rng.upto(20));
            if let Some(iface) = self.ifaces.get_mut(&ifindex) {
                iface.out.unicast.entry(addr).or_default().push(Message::RouteRequest { prefix: Some(p) });
                iface.out.flush_by(at);
            }
        }
    }

    // ----- sending --------------------------------------------------------

    /// Flushes every interface queue that is due.
    fn flush_due(&mut self) {
        let now = self.now;
        let due: Vec<IfIndex> = self
            .ifaces
            .iter()
            .filter(|(_, i)| i.out.flush_at.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for ifindex in due {
            self.flush(ifindex);
        }
    }

    fn advert(&self, prefix: &Prefix, ifindex: IfIndex, iface: &InterfaceConfig) -> Option<Update> {
        let interval = Centisecs::from_millis(iface.update_interval_ms);
        let (router_id, seqno, metric) = if let Some(m) = self.xroutes.get(prefix) {
            (self.router_id, self.seqno, *m)
        } else {
            let e = self.table.get(prefix)?;
            match e.selected_route() {
                Some(r) => {
                    let n = self.neighbour(r.neighbour)?;
                    if iface.split_horizon() && n.ifindex == ifindex {
                        return None;
                    }
                    // Over a wireless link the metric we announce is never
                    // below the smoothed metric: a dip of a noisy ETX
                    // estimate announced would
                    // lower our feasibility distance for good (until the
                    // next seqno), making neighbours' routes unfeasible and
                    // costing seqno requests; announcing more than the real
                    // metric is always loop-safe (the distance follows what
                    // we announce). Halves route churn and control traffic
                    // on 10-20 % lossy grids in the simulator. The price:
                    // an improvement spreads with the smoothing's delay, a
                    // few half-lives per hop (a lossless 150-node mesh at
                    // Hello 4 s has settled on its best paths after ~200 s;
                    // every path works from the start). A wired link's cost
                    // is no estimate: there its metric is announced as is,
                    // so a detour is announced with its true metric at once.
                    let m = r.refmetric.add(n.cost);
                    let wireless =
                        self.ifaces.get(&n.ifindex).is_some_and(|i| i.cfg.link_type == LinkType::Wireless);
                    let sm = r.smoothed_metric(m, self.now, self.half_life_ms);
                    (r.router_id, r.seqno, if wireless { m.max(sm) } else { m })
                }
                None => {
                    let r = e.retracting.as_ref()?;
                    if r.until <= self.now {
                        return None;
                    }
                    (r.router_id, r.seqno, Metric::INFINITY)
                }
            }
        };
        let (next_hop, v4_via_v6) = match (prefix, iface.ipv4) {
            (Prefix::V4(..), Some(a)) => (Some(IpAddr::V4(a)), false),
            (Prefix::V4(..), None) if iface.v4_via_v6 => (None, true),
            // No way to give an IPv4 next hop here.
            (Prefix::V4(..), None) => return None,
            _ => (None, false),
        };
        Some(Update { prefix: *prefix, router_id, next_hop, v4_via_v6, seqno, metric, interval })
    }

    fn flush(&mut self, ifindex: IfIndex) {
        let now = self.now;
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let out = std::mem::take(&mut iface.out);
        let cfg = iface.cfg.clone();
        if out.full_dump {
            iface.last_full_dump = Some(now);
        }
        let max = cfg.max_packet();

        let mut msgs: Vec<Message> = out.control;
        let prefixes: Vec<Prefix> = if out.full_dump {
            let mut all: BTreeSet<Prefix> = self.xroutes.keys().copied().collect();
            all.extend(self.table.keys().copied());
            all.into_iter().collect()
        } else {
            out.updates.into_iter().collect()
        };
        let mut advertised: Vec<(Prefix, RouterId, SeqNo, Metric)> = Vec::new();
        let mut updates: Vec<Update> = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            // Announcing our selected route answers requests for it, even
            // where split horizon keeps it off this link (babeld).
            if let Some(s) = self.snapshot(p) {
                if !s.metric.is_infinite() {
                    self.requests.satisfy(p, &s.router_id, s.seqno);
                }
            }
            if let Some(u) = self.advert(p, ifindex, &cfg) {
                if u.router_id != self.router_id {
                    advertised.push((*p, u.router_id, u.seqno, u.metric));
                }
                updates.push(u);
            } else if out.requested.contains(p) {
                // §3.8.1.1: a request for a prefix we cannot route is
                // answered with a retraction.
                let (next_hop, v4_via_v6) = (None, p.is_ipv4() && cfg.ipv4.is_none());
                let next_hop = match (p, cfg.ipv4) {
                    (Prefix::V4(..), Some(a)) => Some(IpAddr::V4(a)),
                    _ => next_hop,
                };
                updates.push(Update {
                    prefix: *p,
                    router_id: self.router_id,
                    next_hop,
                    v4_via_v6,
                    seqno: self.seqno,
                    metric: Metric::INFINITY,
                    interval: Centisecs::from_millis(cfg.update_interval_ms),
                });
            }
        }
        // Grouped by origin, a dump needs one Router-Id TLV per origin.
        updates.sort_by_key(|u| (u.router_id, u.prefix));
        msgs.extend(updates.into_iter().map(Message::Update));
        for (p, rid, seqno, metric) in advertised {
            if let Some(e) = self.table.get_mut(&p) {
                e.note_advertised(rid, seqno, metric, now);
            }
        }
        for data in pack(max, &msgs) {
            self.push_send(ifindex, Destination::Multicast, data);
        }
        for (addr, msgs) in out.unicast {
            for data in pack(max, &msgs) {
                self.push_send(ifindex, Destination::Unicast(addr), data);
            }
        }
        if !out.dump_to.is_empty() && !out.full_dump {
            self.unicast_dumps(ifindex, &cfg, out.dump_to);
        }
    }

    /// Sends everything we announce to each of `to`, by unicast.
    fn unicast_dumps(&mut self, ifindex: IfIndex, cfg: &InterfaceConfig, to: Vec<Ipv6Addr>) {
        let now = self.now;
        let mut all: BTreeSet<Prefix> = self.xroutes.keys().copied().collect();
        all.extend(self.table.keys().copied());
        let mut updates: Vec<Update> = all.iter().filter_map(|p| self.advert(p, ifindex, cfg)).collect();
        updates.sort_by_key(|u| (u.router_id, u.prefix));
        for u in &updates {
            if u.router_id != self.router_id {
                if let Some(e) = self.table.get_mut(&u.prefix) {
                    e.note_advertised(u.router_id, u.seqno, u.metric, now);
                }
            }
        }
        let msgs: Vec<Message> = updates.into_iter().map(Message::Update).collect();
        let packets = pack(cfg.max_packet(), &msgs);
        for addr in to {
            for data in &packets {
                self.push_send(ifindex, Destination::Unicast(addr), data.clone());
            }
        }
    }

    fn push_send(&mut self, ifindex: IfIndex, dst: Destination, data: Vec<u8>) {
        self.stats.packets_out += 1;
        self.stats.bytes_out += data.len() as u64;
        self.outputs.push_back(Output::Send { ifindex, dst, data });
    }

    /// For tests: the interface's link type.
    pub fn link_type(&self, ifindex: IfIndex) -> Option<LinkType> {
        self.ifaces.get(&ifindex).map(|i| i.cfg.link_type)
    }
}
