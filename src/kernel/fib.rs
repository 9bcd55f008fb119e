//! The FIB edge: the routes weft installs in the kernel, behind the [`Fib`]
//! trait, with an in-memory [`FakeFib`] for tests.
//!
//! Every route carries weft's own protocol number and lives in one configured
//! table, so that weft can find and remove exactly its own routes (DESIGN rule
//! 8) and never touches babeld's (protocol 42) or an administrator's.
//!
//! The kernel identifies a route by (table, prefix, metric): `replace` with
//! the same prefix and metric swaps the next hop atomically, while a route
//! with another metric is a second route. To change a route's metric, add
//! the new one and then remove the old one (make-before-break), ideally in
//! one [`Fib::apply`] batch.
//!
//! The FIB edge keeps no copy of what it installed: the caller (the daemon,
//! from the Babel engine's table) knows which keys hold a route of weft's,
//! and says so by asking for [`FibOp::Replace`] rather than [`FibOp::Add`].
//! Flushing at start and stop asks the kernel (a dump filtered on weft's
//! table and protocol).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use crate::babel::Prefix;

/// A route as weft installs it. Table and protocol come from the
/// [`FibConfig`] of the FIB it is given to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FibRoute {
    pub prefix: Prefix,
    /// The neighbour's address: IPv6 link-local for IPv6 routes; IPv4 or
    /// IPv6 for IPv4 routes (an IPv6 next hop is installed as `via inet6`,
    /// RFC 9229).
    pub next_hop: IpAddr,
    pub ifindex: u32,
    /// The kernel's route priority (lower wins). For IPv6 the kernel stores
    /// 0 as 1024, so such a route dumps back with metric 1024.
    pub metric: u32,
    /// The preferred source address (RTA_PREFSRC) for traffic this node
    /// sends along the route; `None`: the kernel picks.
    pub src: Option<IpAddr>,
}

impl FibRoute {
    /// The metric as the kernel stores it.
    pub fn kernel_metric(&self) -> u32 {
        if !self.prefix.is_ipv4() && self.metric == 0 {
            IP6_RT_PRIO_USER
        } else {
            self.metric
        }
    }

    /// What identifies this route in a kernel table.
    pub fn key(&self) -> RouteKey {
        RouteKey { prefix: self.prefix, metric: self.kernel_metric() }
    }

    /// An unreachable route for `prefix`: packets to it are dropped with an
    /// ICMP error instead of following a shorter covering route. weft holds
    /// a retracted prefix this way (RFC 8966 §3.5.5).
    pub fn unreachable(prefix: Prefix, metric: u32) -> FibRoute {
        let next_hop = if prefix.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        FibRoute { prefix, next_hop, ifindex: 0, metric, src: None }
    }

    /// A route straight into an interface, no gateway (the end-to-end
    /// WireGuard interface: its peers' allowed-ips pick the next hop).
    pub fn device(prefix: Prefix, ifindex: u32, metric: u32, src: Option<IpAddr>) -> FibRoute {
        let mut r = FibRoute::unreachable(prefix, metric);
        r.ifindex = ifindex;
        r.src = src.filter(|s| s.is_ipv4() == prefix.is_ipv4());
        r
    }

    pub fn is_unreachable(&self) -> bool {
        self.ifindex == 0 && self.next_hop.is_unspecified()
    }

    /// Into an interface without a gateway.
    pub fn is_device(&self) -> bool {
        self.ifindex != 0 && self.next_hop.is_unspecified()
    }

    /// Checks what the kernel cannot express, before asking it.
    pub fn validate(&self) -> Result<(), FibError> {
        if self.is_unreachable() {
            return Ok(());
        }
        if self.ifindex == 0 {
            return Err(FibError::Invalid("route has no interface (ifindex 0)"));
        }
        if self.src.is_some_and(|s| s.is_ipv4() != self.prefix.is_ipv4()) {
            return Err(FibError::Invalid("route's source address is of the other family"));
        }
        if self.next_hop.is_unspecified() {
            // A device route: no gateway.
            return Ok(());
        }
        if !self.prefix.is_ipv4() && self.next_hop.is_ipv4() {
            return Err(FibError::Invalid("an IPv6 route cannot have an IPv4 next hop"));
        }
        Ok(())
    }
}

/// IPv6's default route priority, which the kernel substitutes for 0.
pub const IP6_RT_PRIO_USER: u32 = 1024;

impl fmt::Debug for FibRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_device() {
            write!(f, "{} dev if {} metric {}", self.prefix, self.ifindex, self.metric)?;
        } else {
            write!(f, "{} via {} if {} metric {}", self.prefix, self.next_hop, self.ifindex, self.metric)?;
        }
        match self.src {
            Some(s) => write!(f, " src {s}"),
            None => Ok(()),
        }
    }
}

/// What the kernel keys a route on within one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub prefix: Prefix,
    pub metric: u32,
}

/// One change to the FIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FibOp {
    /// Install where weft has no route at this prefix and metric. Fails
    /// with EEXIST if anyone else has one there: never clobbers it.
    Add(FibRoute),
    /// Replace weft's own route at this prefix and metric in place (an
    /// atomic change of next hop, or of an unreachable hold route to a
    /// unicast one and back), or install it if it is gone. Only for keys
    /// that hold weft's route: the kernel does not check whose route it
    /// replaces.
    Replace(FibRoute),
    /// Remove weft's route at this prefix and metric, whatever its next hop
    /// (the kernel matches weft's protocol: never someone else's route).
    Remove(RouteKey),
}

impl FibOp {
    /// The route installed, `None` for a removal.
    pub fn route(&self) -> Option<&FibRoute> {
        match self {
            FibOp::Add(r) | FibOp::Replace(r) => Some(r),
            FibOp::Remove(_) => None,
        }
    }

    /// What the operation acts on.
    pub fn key(&self) -> RouteKey {
        match self {
            FibOp::Add(r) | FibOp::Replace(r) => r.key(),
            FibOp::Remove(k) => *k,
        }
    }

    /// Checks what the kernel cannot express, before asking it.
    pub fn validate(&self) -> Result<(), FibError> {
        self.route().map_or(Ok(()), FibRoute::validate)
    }
}

/// Why one route operation failed. Never fatal: the daemon logs it and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibError {
    /// The kernel refused: `errno` is positive (ENETDOWN, ENODEV, ESRCH on a
    /// remove of a route that is not there, EEXIST for a route of someone
    /// else's at the same prefix and metric), `message` its extended-ack text.
    Kernel { errno: i32, message: Option<String> },
    /// The request went out but its answer was lost (receive buffer overrun):
    /// the outcome is unknown until the next dump.
    AckLost,
    /// The socket failed (the message is the OS error).
    Io(String),
    /// The route cannot be expressed to the kernel.
    Invalid(&'static str),
}

impl FibError {
    pub(crate) fn kernel(errno: i32, message: Option<String>) -> FibError {
        FibError::Kernel { errno, message }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            FibError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// A remove that found nothing to remove.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ESRCH) | Some(libc::ENOENT))
    }
}

impl fmt::Display for FibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FibError::Kernel { errno, message } => {
                write!(f, "{}", std::io::Error::from_raw_os_error(*errno))?;
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            FibError::AckLost => f.write_str("kernel answer lost (netlink overrun); outcome unknown"),
            FibError::Io(e) => write!(f, "netlink socket error: {e}"),
            FibError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for FibError {}

impl From<std::io::Error> for FibError {
    fn from(e: std::io::Error) -> Self {
        FibError::Io(e.to_string())
    }
}

/// One failed operation of a batch, by its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibFailure {
    pub index: usize,
    pub op: FibOp,
    pub error: FibError,
}

/// Where weft's routes go and how they are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibConfig {
    table: u32,
    protocol: u8,
}

/// weft's default route protocol number (unassigned in iproute2's rt_protos).
pub const DEFAULT_PROTOCOL: u8 = 119;
/// The main table, where babeld puts its routes too.
pub const DEFAULT_TABLE: u32 = 254;

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig { table: DEFAULT_TABLE, protocol: DEFAULT_PROTOCOL }
    }
}

/// Protocol numbers weft must never use: flush_own would delete the routes
/// of their owners (iproute2's rt_protos list).
const RESERVED_PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (18, "keepalived"),
    (42, "babel (babeld)"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibConfigError {
    /// The protocol number belongs to the kernel or another routing daemon.
    ReservedProtocol { protocol: u8, owner: &'static str },
    /// Table 0 (unspecified) and 255 (local) cannot hold weft's routes.
    ReservedTable(u32),
}

impl fmt::Display for FibConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FibConfigError::ReservedProtocol { protocol, owner } => write!(
                f,
                "route protocol {protocol} is reserved for {owner}; weft must use its own (default {DEFAULT_PROTOCOL})"
            ),
            FibConfigError::ReservedTable(t) => {
                write!(f, "routing table {t} is reserved (0 = unspecified, 255 = local)")
            }
        }
    }
}

impl std::error::Error for FibConfigError {}

impl FibConfig {
    pub fn new(table: u32, protocol: u8) -> Result<FibConfig, FibConfigError> {
        if let Some((_, owner)) = RESERVED_PROTOCOLS.iter().find(|(p, _)| *p == protocol) {
            return Err(FibConfigError::ReservedProtocol { protocol, owner });
        }
        if table == 0 || table == 255 {
            return Err(FibConfigError::ReservedTable(table));
        }
        Ok(FibConfig { table, protocol })
    }

    pub fn table(&self) -> u32 {
        self.table
    }

    pub fn protocol(&self) -> u8 {
        self.protocol
    }
}

/// The kernel's forwarding table as weft sees it: only its own routes.
///
/// The daemon is generic over this trait; [`super::RtnlFib`] talks to the
/// kernel, [`FakeFib`] records operations for tests. Failures are per route
/// and never fatal.
// The daemon runs on a current_thread runtime, so these futures need no Send bound.
#[allow(async_fn_in_trait)]
pub trait Fib {
    fn config(&self) -> FibConfig;

    /// Applies the operations in order; returns the ones that failed.
    async fn apply(&mut self, ops: &[FibOp]) -> Vec<FibFailure>;

    /// Installs `route` where weft has none ([`FibOp::Add`]).
    async fn add(&mut self, route: &FibRoute) -> Result<(), FibError> {
        first_error(self.apply(&[FibOp::Add(*route)]).await)
    }

    /// Replaces weft's route with the same prefix and metric ([`FibOp::Replace`]).
    async fn replace(&mut self, route: &FibRoute) -> Result<(), FibError> {
        first_error(self.apply(&[FibOp::Replace(*route)]).await)
    }

    /// Removes weft's route at this prefix and metric ([`FibOp::Remove`]).
    async fn remove(&mut self, key: &RouteKey) -> Result<(), FibError> {
        first_error(self.apply(&[FibOp::Remove(*key)]).await)
    }

    /// Every route in our table with our protocol number.
    async fn dump_own(&mut self) -> Result<Vec<FibRoute>, FibError>;

    /// Removes every route in our table with our protocol number (at start,
    /// a previous run's; at a clean stop, ours). Returns how many went.
    async fn flush_own(&mut self) -> Result<usize, FibError>;
}

fn first_error(failures: Vec<FibFailure>) -> Result<(), FibError> {
    match failures.into_iter().next() {
        Some(f) => Err(f.error),
        None => Ok(()),
    }
}

/// An in-memory FIB with the kernel's keying (prefix, metric), for tests: it
/// records every operation and can be told to fail routes.
#[derive(Debug, Default)]
pub struct FakeFib {
    config: FibConfig,
    routes: BTreeMap<RouteKey, FibRoute>,
    /// Every operation applied, in order (failed ones included).
    pub log: Vec<FibOp>,
    /// Operations on these prefixes fail with the given errno.
    fail: HashMap<Prefix, i32>,
    /// Calls of flush_own so far.
    pub flushes: usize,
}

impl FakeFib {
    pub fn new(config: FibConfig) -> FakeFib {
        FakeFib { config, ..FakeFib::default() }
    }

    /// The installed routes, ordered by prefix then metric.
    pub fn routes(&self) -> impl Iterator<Item = &FibRoute> {
        self.routes.values()
    }

    pub fn get(&self, prefix: Prefix, metric: u32) -> Option<&FibRoute> {
        self.routes.values().find(|r| r.prefix == prefix && r.metric == metric)
    }

    /// Makes every later operation on `prefix` fail with `errno`.
    pub fn fail_prefix(&mut self, prefix: Prefix, errno: i32) {
        self.fail.insert(prefix, errno);
    }

    pub fn clear_failures(&mut self) {
        self.fail.clear();
    }

    /// Puts a route in place as if a previous run had left it.
    pub fn preload(&mut self, route: FibRoute) {
        self.routes.insert(route.key(), route);
    }

    fn apply_one(&mut self, op: &FibOp) -> Result<(), FibError> {
        op.validate()?;
        if let Some(errno) = self.fail.get(&op.key().prefix) {
            return Err(FibError::kernel(*errno, None));
        }
        match op {
            FibOp::Add(r) if self.routes.contains_key(&r.key()) => Err(FibError::kernel(libc::EEXIST, None)),
            FibOp::Add(r) | FibOp::Replace(r) => {
                self.routes.insert(r.key(), *r);
                Ok(())
            }
            FibOp::Remove(k) => match self.routes.remove(k) {
                Some(_) => Ok(()),
                None => Err(FibError::kernel(libc::ESRCH, None)),
            },
        }
    }
}

impl Fib for FakeFib {
    fn config(&self) -> FibConfig {
        self.config
    }

    async fn apply(&mut self, ops: &[FibOp]) -> Vec<FibFailure> {
        let mut failures = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            self.log.push(*op);
            if let Err(error) = self.apply_one(op) {
                failures.push(FibFailure { index, op: *op, error });
            }
        }
        failures
    }

    async fn dump_own(&mut self) -> Result<Vec<FibRoute>, FibError> {
        Ok(self.routes.values().copied().collect())
    }

    async fn flush_own(&mut self) -> Result<usize, FibError> {
        self.flushes += 1;
        let n = self.routes.len();
        self.routes.clear();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn route(prefix: &str, nh: &str, metric: u32) -> FibRoute {
        FibRoute {
            prefix: prefix.parse().unwrap(),
            next_hop: nh.parse().unwrap(),
            ifindex: 3,
            metric,
            src: None,
        }
    }

    #[test]
    fn config_refuses_other_owners_protocols() {
        assert_eq!(FibConfig::default().protocol(), 119);
        assert_eq!(FibConfig::default().table(), 254);
        let e = FibConfig::new(254, 42).unwrap_err();
        assert!(e.to_string().contains("babeld"), "{e}");
        assert!(FibConfig::new(254, 4).is_err());
        assert!(FibConfig::new(254, 12).is_err());
        assert_eq!(FibConfig::new(0, 119), Err(FibConfigError::ReservedTable(0)));
        assert_eq!(FibConfig::new(255, 119), Err(FibConfigError::ReservedTable(255)));
        assert_eq!(FibConfig::new(1000, 200).unwrap().table(), 1000);
    }

    #[test]
    fn validation() {
        assert!(route("2001:db8::/32", "fe80::1", 1).validate().is_ok());
        assert!(route("192.0.2.0/24", "fe80::1", 1).validate().is_ok());
        assert!(route("192.0.2.0/24", "10.0.0.1", 1).validate().is_ok());
        assert!(route("2001:db8::/32", "10.0.0.1", 1).validate().is_err());
        // No gateway: a device route (end to end), valid with an interface.
        assert!(route("2001:db8::/32", "::", 1).validate().is_ok());
        let d = FibRoute::device("10.0.0.0/8".parse().unwrap(), 4, 1, Some("fd00::1".parse().unwrap()));
        assert_eq!(d.src, None, "a source of the other family is dropped");
        let mut d = FibRoute::device("10.0.0.0/8".parse().unwrap(), 4, 1, Some("10.0.0.1".parse().unwrap()));
        assert!(d.is_device() && d.validate().is_ok());
        d.src = Some("fd00::1".parse().unwrap());
        assert!(d.validate().is_err());
        let mut r = route("2001:db8::/32", "fe80::1", 1);
        r.ifindex = 0;
        assert!(r.validate().is_err());
        assert_eq!(route("2001:db8::/32", "fe80::1", 0).kernel_metric(), 1024);
        assert_eq!(route("192.0.2.0/24", "fe80::1", 0).kernel_metric(), 0);
    }

    #[test]
    fn fake_keys_routes_like_the_kernel() {
        block_on(async {
            let mut fib = FakeFib::new(FibConfig::default());
            let a = route("2001:db8:1::/48", "fe80::1", 10);
            let b = route("2001:db8:1::/48", "fe80::2", 10);
            let c = route("2001:db8:1::/48", "fe80::3", 20);
            fib.add(&a).await.unwrap();
            // same key: adding fails, replacing replaces a
            assert_eq!(fib.add(&b).await.unwrap_err().errno(), Some(libc::EEXIST));
            fib.replace(&b).await.unwrap();
            fib.add(&c).await.unwrap(); // other metric: a second route
            let all: Vec<_> = fib.routes().copied().collect();
            assert_eq!(all, vec![b, c]);
            // removing goes by key, whatever the next hop
            fib.remove(&a.key()).await.unwrap();
            // removing a route that is not there is ESRCH
            let e = fib.remove(&b.key()).await.unwrap_err();
            assert!(e.is_not_found(), "{e}");
            assert_eq!(fib.dump_own().await.unwrap(), vec![c]);
            assert_eq!(fib.log.len(), 6);
        })
    }

    #[test]
    fn fake_reports_failures_per_route() {
        block_on(async {
            let mut fib = FakeFib::new(FibConfig::default());
            let bad: Prefix = "2001:db8:bad::/48".parse().unwrap();
            fib.fail_prefix(bad, libc::ENETUNREACH);
            let ops = [
                FibOp::Add(route("2001:db8:1::/48", "fe80::1", 1)),
                FibOp::Add(route("2001:db8:bad::/48", "fe80::1", 1)),
                FibOp::Replace(route("2001:db8:2::/48", "10.0.0.1", 1)),
                FibOp::Remove(route("2001:db8:3::/48", "fe80::1", 1).key()),
            ];
            let f = fib.apply(&ops).await;
            assert_eq!(f.iter().map(|f| f.index).collect::<Vec<_>>(), vec![1, 2, 3]);
            assert_eq!(f[0].error.errno(), Some(libc::ENETUNREACH));
            assert!(matches!(f[1].error, FibError::Invalid(_)));
            assert!(f[2].error.is_not_found());
            assert_eq!(fib.routes().count(), 1);
            fib.preload(route("10.0.0.0/8", "fe80::9", 5));
            assert_eq!(fib.flush_own().await.unwrap(), 2);
            assert_eq!(fib.routes().count(), 0);
        })
    }
}
