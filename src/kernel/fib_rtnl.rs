//! [`RtnlFib`]: the [`Fib`] trait over an rtnetlink socket.
//!
//! Batching: many route requests travel in one datagram, and only the last
//! asks for an ack. The kernel handles the messages of a datagram in order
//! inside the send call and answers a failed request whether or not it asked
//! for an ack, so when the last ack arrives every failure before it has
//! arrived too: a batch of N routes costs one send and 1 + failures receives.
//!
//! Never clobbering a route weft does not own: the kernel ignores the
//! protocol when it replaces, so [`FibOp::Add`] (a key where weft has no
//! route) uses NLM_F_EXCL (an administrator's route there makes it fail with
//! EEXIST), and only [`FibOp::Replace`] (a key that holds weft's route, as
//! the caller knows) uses NLM_F_REPLACE. Removals carry weft's protocol,
//! which the kernel matches.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use linux_raw_sys::netlink::{rtattr_type_t, rtvia, RTNH_F_ONLINK};
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{RtAddrFamily, RtScope, RtTable, Rta, Rtm, RtmF, Rtn, Rtprot};
use neli::rtnl::{Rtattr, Rtmsg, RtmsgBuilder};
use neli::types::Buffer;

use super::fib::{Fib, FibConfig, FibError, FibFailure, FibOp, FibRoute};
use super::netlink::{
    attr, family_of, ip_attr, ip_from, u32_of, Batch, Body, Frames, NlSocket, RouteBody, RouteMsg,
    NLM_F_DUMP_INTR,
};
use crate::babel::Prefix;

/// Route requests per datagram. The kernel handles a datagram in one go, so
/// the bound only keeps the worst case (every request failing, each failure
/// an ack of ~1 KiB of receive buffer) well inside the socket's buffer.
pub const DEFAULT_BATCH: usize = 128;

/// The rtnetlink FIB. It keeps no copy of the routes it installed: the
/// caller says which keys hold weft's routes ([`FibOp::Replace`]), and
/// flushes ask the kernel.
pub struct RtnlFib {
    config: FibConfig,
    sock: NlSocket,
    out: Batch,
    requests: RouteRequests,
    batch: usize,
    /// Reused from call to call: which operations the datagram carries, and
    /// how each ended.
    sent: Vec<usize>,
    outcomes: Vec<Outcome>,
}

/// A route message header for weft's table and protocol, without
/// attributes. Tables past 255 do not fit the header's byte: RTA_TABLE
/// carries them.
fn header(cfg: FibConfig, family: RtAddrFamily, dst_len: u8, scope: RtScope, kind: Rtn) -> Rtmsg {
    // Babel next hops are neighbours on the link by definition: onlink, as
    // babeld sets it, so no connected route is needed for the gateway. (A
    // route without gateway has link scope, and the kernel refuses onlink
    // there.)
    let onlink = kind == Rtn::Unicast && scope == RtScope::Universe;
    let flags = if onlink { RtmF::from_bits_retain(RTNH_F_ONLINK) } else { RtmF::empty() };
    RtmsgBuilder::default()
        .rtm_family(family)
        .rtm_dst_len(dst_len)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::from(u8::try_from(cfg.table()).unwrap_or(libc::RT_TABLE_UNSPEC)))
        .rtm_protocol(Rtprot::from(cfg.protocol()))
        .rtm_scope(scope)
        .rtm_type(kind)
        .rtm_flags(flags)
        .build()
        .expect("every rtmsg field has a value")
}

/// RTA_VIA: neli names it only when built for glibc, and routers run musl.
fn rta_via() -> Rta {
    Rta::from(rtattr_type_t::RTA_VIA as u16)
}

/// `struct rtvia` (neli has no type for it) for an IPv6 next hop: the
/// family, then the address.
fn via_inet6(g: Ipv6Addr) -> [u8; std::mem::size_of::<rtvia>() + 16] {
    let family = rtvia { rtvia_family: libc::AF_INET6 as _, rtvia_addr: Default::default() };
    let mut v = [0; std::mem::size_of::<rtvia>() + 16];
    let (f, a) = v.split_at_mut(std::mem::size_of::<rtvia>());
    f.copy_from_slice(&family.rtvia_family.to_ne_bytes());
    a.copy_from_slice(&g.octets());
    v
}

/// One attribute built by neli and kept while its value stays the same.
struct Reused<K>(Option<(K, Rtattr<Rta, Buffer>)>);

impl<K: Copy + PartialEq> Reused<K> {
    fn get(&mut self, value: K, build: impl FnOnce(K) -> Rtattr<Rta, Buffer>) -> &Rtattr<Rta, Buffer> {
        if self.0.as_ref().is_none_or(|(had, _)| *had != value) {
            self.0 = Some((value, build(value)));
        }
        &self.0.as_ref().expect("set above").1
    }
}

/// Serializes route requests. neli keeps every attribute value in a buffer
/// of its own; the values a batch of routes shares (the table, and mostly
/// the metric, interface and next hop: one neighbour's routes) are built
/// once and reused, so a route costs one attribute (its destination).
pub(crate) struct RouteRequests {
    cfg: FibConfig,
    table: Rtattr<Rta, Buffer>,
    metric: Reused<u32>,
    oif: Reused<u32>,
    next_hop: Reused<(bool, IpAddr)>,
    src: Reused<IpAddr>,
}

impl RouteRequests {
    pub fn new(cfg: FibConfig) -> RouteRequests {
        RouteRequests {
            cfg,
            table: attr(Rta::Table, cfg.table()),
            metric: Reused(None),
            oif: Reused(None),
            next_hop: Reused(None),
            src: Reused(None),
        }
    }

    /// Appends the request for `op` to `batch` (pure, so it can be checked
    /// without a kernel).
    pub fn push(&mut self, batch: &mut Batch, op: &FibOp, seq: u32, ack: bool) {
        let key = op.key();
        let (ty, flags, scope) = match op {
            FibOp::Add(_) => (Rtm::Newroute, NlmF::CREATE | NlmF::EXCL, RtScope::Universe),
            FibOp::Replace(_) => (Rtm::Newroute, NlmF::CREATE | NlmF::REPLACE, RtScope::Universe),
            // NOWHERE matches a route of any scope, as `ip route del` does.
            FibOp::Remove(_) => (Rtm::Delroute, NlmF::empty(), RtScope::Nowhere),
        };
        let family = family_of(key.prefix.addr());
        let dst = ip_attr(Rta::Dst, key.prefix.addr());
        let metric = self.metric.get(key.metric, |m| attr(Rta::Priority, m));
        let (short, long, device, device_src);
        let mut scope = scope;
        let (kind, attrs): (Rtn, &[&Rtattr<Rta, Buffer>]) = match op.route() {
            Some(r) if r.is_device() => {
                // Into the interface, no gateway: link scope, as `ip route
                // add P dev D` makes it.
                scope = RtScope::Link;
                let oif = self.oif.get(r.ifindex, |i| attr(Rta::Oif, i));
                match r.src {
                    Some(s) => {
                        let src = self.src.get(s, |s| ip_attr(Rta::Prefsrc, s));
                        device_src = [&self.table, &dst, metric, oif, src];
                        (Rtn::Unicast, &device_src)
                    }
                    None => {
                        device = [&self.table, &dst, metric, oif];
                        (Rtn::Unicast, &device)
                    }
                }
            }
            Some(r) if !r.is_unreachable() => {
                let oif = self.oif.get(r.ifindex, |i| attr(Rta::Oif, i));
                let next_hop = self.next_hop.get((r.prefix.is_ipv4(), r.next_hop), |nh| match nh {
                    // An IPv4 route via an IPv6 neighbour (RFC 9229): RTA_VIA.
                    (true, IpAddr::V6(g)) => attr(rta_via(), via_inet6(g)),
                    (_, g) => ip_attr(Rta::Gateway, g),
                });
                long = [&self.table, &dst, metric, oif, next_hop];
                (Rtn::Unicast, &long)
            }
            Some(_) => {
                short = [&self.table, &dst, metric];
                (Rtn::Unreachable, &short)
            }
            // A removal of type 0 matches weft's route at the key whatever
            // its type and next hop.
            None => {
                short = [&self.table, &dst, metric];
                (Rtn::Unspec, &short)
            }
        };
        let header = header(self.cfg, family, key.prefix.len(), scope, kind);
        batch.push_route(ty, flags, RouteBody { header, attrs }, seq, ack);
    }
}

/// A route from a dump, as far as weft's model can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRoute {
    pub table: u32,
    pub protocol: u8,
    pub cloned: bool,
    /// `None` for routes weft's model cannot express (multipath, no gateway,
    /// source-specific, non-unicast).
    pub route: Option<FibRoute>,
}

/// What weft's model makes of a route message (pure), reading only the
/// attributes it needs; `None` if an attribute does not parse.
pub(crate) fn decode_route(m: &RouteMsg<'_>) -> Option<DumpedRoute> {
    let h = m.header();
    let family = *h.rtm_family();
    let mut table = u32::from(u8::from(*h.rtm_table()));
    let (mut dst, mut gateway, mut oif, mut metric, mut multipath) = (None, None, 0, 0, false);
    let mut src = None;
    let mut bad_dst = false;
    let via = rta_via();
    for a in m.attrs() {
        let (ty, v) = a.ok()?;
        match ty {
            t if t == via => {
                let at = std::mem::size_of::<rtvia>();
                if let Some(f) = v.get(..at).and_then(|f| <[u8; 2]>::try_from(f).ok()) {
                    let f = RtAddrFamily::from(u16::from_ne_bytes(f) as u8);
                    gateway = ip_from(f, &v[at..]);
                }
            }
            Rta::Table => table = u32_of(v).unwrap_or(table),
            Rta::Dst => {
                dst = ip_from(family, v);
                bad_dst = dst.is_none();
            }
            Rta::Gateway => gateway = ip_from(family, v),
            Rta::Oif => oif = u32_of(v).unwrap_or(0),
            Rta::Priority => metric = u32_of(v).unwrap_or(0),
            Rta::Multipath => multipath = true,
            Rta::Prefsrc => src = ip_from(family, v),
            _ => {}
        }
    }
    let dst = dst.or(match family {
        RtAddrFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        RtAddrFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    });
    let plain = !multipath && !bad_dst && *h.rtm_src_len() == 0;
    let kind = *h.rtm_type();
    let route = match (dst.and_then(|d| Prefix::new(d, *h.rtm_dst_len())), gateway) {
        (Some(prefix), Some(next_hop)) if plain && kind == Rtn::Unicast && oif != 0 => {
            Some(FibRoute { prefix, next_hop, ifindex: oif, metric, src })
        }
        (Some(prefix), None) if plain && kind == Rtn::Unicast && oif != 0 => {
            Some(FibRoute::device(prefix, oif, metric, src))
        }
        (Some(prefix), None) if plain && kind == Rtn::Unreachable => {
            Some(FibRoute::unreachable(prefix, metric))
        }
        _ => None,
    };
    Some(DumpedRoute {
        table,
        protocol: u8::from(*h.rtm_protocol()),
        cloned: h.rtm_flags().contains(RtmF::CLONED),
        route,
    })
}

/// How one request of a batch ended.
enum Outcome {
    Pending,
    Done(Result<(), FibError>),
}

/// What a dump of weft's own routes keeps.
enum Dump {
    /// What weft's model makes of each (`dump_own`).
    Routes(Vec<FibRoute>),
    /// Each message as the kernel sent it, back to back, and where each
    /// ends (`flush_own` sends them back as deletions).
    Messages { bytes: Vec<u8>, ends: Vec<usize> },
}

impl Dump {
    fn len(&self) -> usize {
        match self {
            Dump::Routes(r) => r.len(),
            Dump::Messages { ends, .. } => ends.len(),
        }
    }

    /// Forgets what came after the first `n` (a dump being retried).
    fn truncate(&mut self, n: usize) {
        match self {
            Dump::Routes(r) => r.truncate(n),
            Dump::Messages { bytes, ends } => {
                ends.truncate(n);
                bytes.truncate(ends.last().copied().unwrap_or(0));
            }
        }
    }

    fn keep(&mut self, d: DumpedRoute, m: &RouteMsg<'_>) {
        match self {
            Dump::Routes(r) => r.extend(d.route),
            Dump::Messages { bytes, ends } => {
                bytes.extend_from_slice(m.bytes());
                ends.push(bytes.len());
            }
        }
    }
}

impl RtnlFib {
    /// Opens the FIB's netlink socket. Must be called inside a tokio runtime.
    pub fn open(config: FibConfig) -> io::Result<RtnlFib> {
        let sock = NlSocket::open(&[])?;
        // Room for a whole batch of failure acks even on a kernel with a
        // small default; best effort (only forced when privileged).
        let _ = sock.set_recv_buffer(1 << 20);
        Ok(RtnlFib {
            config,
            sock,
            out: Batch::default(),
            requests: RouteRequests::new(config),
            batch: DEFAULT_BATCH,
            sent: Vec::new(),
            outcomes: Vec::new(),
        })
    }

    /// Requests per datagram (at least 1). 1 is the one-at-a-time baseline:
    /// every route waits for its own ack.
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch = n.max(1);
    }

    /// Sends the prepared datagram (requests `base..base+n`) and collects the
    /// outcomes into `self.outcomes`: a failure's ack or, for the last
    /// request, its ack.
    fn exchange(&mut self, base: u32, n: usize) {
        let outcomes = &mut self.outcomes;
        outcomes.clear();
        if let Err(e) = self.sock.send(self.out.as_bytes()) {
            let err = FibError::from(e);
            outcomes.extend((0..n).map(|_| Outcome::Done(Err(err.clone()))));
            return;
        }
        outcomes.extend((0..n).map(|_| Outcome::Pending));
        let mut lost = false;
        loop {
            if !matches!(outcomes[n - 1], Outcome::Pending) {
                break;
            }
            // rtnetlink handles requests inside the send call, so every ack is
            // queued by now: an empty queue means acks were dropped.
            let datagram = match self.sock.try_recv() {
                Ok(Some(d)) => d,
                Ok(None) => {
                    lost = true;
                    break;
                }
                Err(e) if super::netlink::is_overrun(&e) => {
                    lost = true;
                    continue;
                }
                Err(e) => {
                    let err = FibError::from(e);
                    for o in outcomes.iter_mut().filter(|o| matches!(o, Outcome::Pending)) {
                        *o = Outcome::Done(Err(err.clone()));
                    }
                    return;
                }
            };
            for frame in Frames::new(datagram).map_while(Result::ok) {
                let Body::Ack(ack) = frame.body else { continue };
                let i = ack.seq.wrapping_sub(base) as usize;
                if i >= n {
                    continue; // a stale answer to an earlier exchange
                }
                outcomes[i] = Outcome::Done(if ack.errno == 0 {
                    Ok(())
                } else {
                    Err(FibError::kernel(ack.errno, ack.message))
                });
            }
        }
        // Requests before the last that got no failure ack succeeded, unless
        // acks were dropped, in which case nothing is known about them.
        for o in outcomes.iter_mut() {
            if matches!(o, Outcome::Pending) {
                *o = Outcome::Done(if lost { Err(FibError::AckLost) } else { Ok(()) });
            }
        }
    }

    /// Dumps one family's routes in our table with our protocol into `out`.
    async fn dump_family(&mut self, family: RtAddrFamily, out: &mut Dump) -> Result<(), FibError> {
        let kept = out.len();
        // A dump interrupted by a concurrent change may be inconsistent:
        // the kernel flags it, and we retry a few times.
        for _attempt in 0..4 {
            out.truncate(kept);
            let cfg = self.config;
            let table = (cfg.table() > u32::from(u8::MAX)).then(|| attr(Rta::Table, cfg.table()));
            let one;
            let attrs: &[&Rtattr<Rta, Buffer>] = match &table {
                Some(t) => {
                    one = [t];
                    &one
                }
                None => &[],
            };
            // With strict checking the kernel filters on table and protocol.
            let body = RouteBody { header: header(cfg, family, 0, RtScope::Universe, Rtn::Unspec), attrs };
            let seq = self.sock.next_seq();
            self.out.clear();
            self.out.push_route(Rtm::Getroute, NlmF::DUMP, body, seq, false);
            self.sock.send(self.out.as_bytes())?;
            let mut interrupted = false;
            'recv: loop {
                let datagram = self.sock.recv().await?;
                for frame in Frames::new(datagram) {
                    let frame = frame.map_err(|e| FibError::Io(format!("bad netlink message: {e}")))?;
                    if frame.seq != seq {
                        continue;
                    }
                    interrupted |= frame.flags & NLM_F_DUMP_INTR != 0;
                    let m = match frame.body {
                        // A table with no routes of any family does not exist
                        // (yet): the filtered dump ends with ENOENT.
                        Body::Ack(ack) if ack.errno == libc::ENOENT => break 'recv,
                        Body::Ack(ack) if ack.errno != 0 => {
                            return Err(FibError::kernel(ack.errno, ack.message))
                        }
                        Body::Ack(_) => break 'recv,
                        Body::Route(m) => m,
                        _ => continue,
                    };
                    let Some(d) = decode_route(&m) else { continue };
                    if d.table == cfg.table() && d.protocol == cfg.protocol() && !d.cloned {
                        out.keep(d, &m);
                    }
                }
            }
            if !interrupted {
                return Ok(());
            }
        }
        Err(FibError::Io("route dump kept being interrupted by changes".into()))
    }

    async fn dump_all(&mut self, out: &mut Dump) -> Result<(), FibError> {
        self.dump_family(RtAddrFamily::Inet, out).await?;
        self.dump_family(RtAddrFamily::Inet6, out).await
    }
}

impl Fib for RtnlFib {
    fn config(&self) -> FibConfig {
        self.config
    }

    async fn apply(&mut self, ops: &[FibOp]) -> Vec<FibFailure> {
        let mut failures = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            // Build one datagram from the next valid operations.
            self.sent.clear();
            let mut j = i;
            while j < ops.len() && self.sent.len() < self.batch {
                match ops[j].validate() {
                    Err(error) => failures.push(FibFailure { index: j, op: ops[j], error }),
                    Ok(()) => self.sent.push(j),
                }
                j += 1;
            }
            i = j;
            let n = self.sent.len();
            if n == 0 {
                continue;
            }
            let base = self.sock.reserve_seqs(n as u32);
            self.out.clear();
            for (k, &idx) in self.sent.iter().enumerate() {
                self.requests.push(&mut self.out, &ops[idx], base.wrapping_add(k as u32), k + 1 == n);
            }
            self.exchange(base, n);
            for (&idx, outcome) in self.sent.iter().zip(self.outcomes.drain(..)) {
                let error = match outcome {
                    Outcome::Done(Ok(())) => continue,
                    Outcome::Done(Err(e)) => e,
                    Outcome::Pending => FibError::AckLost,
                };
                failures.push(FibFailure { index: idx, op: ops[idx], error });
            }
        }
        failures.sort_by_key(|f| f.index);
        failures
    }

    async fn dump_own(&mut self) -> Result<Vec<FibRoute>, FibError> {
        let mut dump = Dump::Routes(Vec::new());
        self.dump_all(&mut dump).await?;
        match dump {
            Dump::Routes(r) => Ok(r),
            Dump::Messages { .. } => unreachable!("asked for routes"),
        }
    }

    async fn flush_own(&mut self) -> Result<usize, FibError> {
        let mut dump = Dump::Messages { bytes: Vec::new(), ends: Vec::new() };
        self.dump_all(&mut dump).await?;
        let Dump::Messages { bytes, ends } = dump else { unreachable!("asked for messages") };
        let mut removed = 0;
        let mut first_error = None;
        // Each dumped message goes back as RTM_DELROUTE (as `ip route flush`
        // does), so routes of ours that weft's model cannot express go too.
        let mut start = 0;
        for chunk in ends.chunks(self.batch) {
            let n = chunk.len();
            let base = self.sock.reserve_seqs(n as u32);
            self.out.clear();
            for (k, &end) in chunk.iter().enumerate() {
                let body = &bytes[start..end];
                self.out.push_bytes(
                    Rtm::Delroute,
                    NlmF::empty(),
                    body,
                    base.wrapping_add(k as u32),
                    k + 1 == n,
                );
                start = end;
            }
            self.exchange(base, n);
            for outcome in self.outcomes.drain(..) {
                match outcome {
                    Outcome::Done(Ok(())) => removed += 1,
                    // gone meanwhile (its link went down): fine
                    Outcome::Done(Err(e)) if e.is_not_found() => {}
                    Outcome::Done(Err(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Outcome::Pending => {
                        first_error.get_or_insert(FibError::AckLost);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::netlink::{frames, ip_octets};
    use super::*;

    fn route(prefix: &str, nh: &str, ifindex: u32, metric: u32) -> FibRoute {
        FibRoute {
            prefix: prefix.parse().unwrap(),
            next_hop: nh.parse().unwrap(),
            ifindex,
            metric,
            src: None,
        }
    }

    /// A datagram's one route message, parsed as the kernel would see it:
    /// header type and flags, and the message.
    fn only_route(datagram: &[u8], seq: u32) -> (Rtm, NlmF, RouteMsg<'_>) {
        let mut f = frames(datagram).unwrap();
        assert_eq!(f.len(), 1);
        let f = f.remove(0);
        assert_eq!(f.seq, seq);
        let Body::Route(m) = f.body else { panic!("{:?}", f.body) };
        (Rtm::from(f.ty), NlmF::from_bits_retain(f.flags), m)
    }

    /// Encodes `op` with a fresh serializer.
    fn encode(op: FibOp) -> Batch {
        let mut b = Batch::default();
        RouteRequests::new(FibConfig::new(1000, 119).unwrap()).push(&mut b, &op, 5, true);
        b
    }

    fn attrs(m: &RouteMsg<'_>) -> Vec<(Rta, Vec<u8>)> {
        m.attrs().map(|a| a.map(|(t, v)| (t, v.to_vec())).unwrap()).collect()
    }

    #[test]
    fn encoded_route_decodes_to_itself() {
        for r in [
            route("2001:db8:1::/48", "fe80::1", 7, 10),
            route("192.0.2.0/24", "10.1.1.1", 7, 10),
            route("192.0.2.12/32", "fe80::2", 9, 0),
            route("0.0.0.0/0", "fe80::2", 9, 3),
            route("::/0", "fe80::2", 9, 3),
            FibRoute::unreachable("2001:db8:9::/48".parse().unwrap(), 7),
        ] {
            let b = encode(FibOp::Add(r));
            let (ty, flags, m) = only_route(b.as_bytes(), 5);
            assert_eq!((ty, flags), (Rtm::Newroute, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL));
            let d = decode_route(&m).unwrap();
            assert_eq!((d.table, d.protocol, d.cloned), (1000, 119, false));
            assert_eq!(d.route, Some(r), "{r:?}");
        }
    }

    #[test]
    fn v4_via_v6_uses_rta_via_and_onlink() {
        let b = encode(FibOp::Replace(route("192.0.2.12/32", "fe80::2", 9, 0)));
        let (_, flags, m) = only_route(b.as_bytes(), 5);
        assert_eq!(flags, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::REPLACE);
        assert_eq!(*m.header().rtm_family(), RtAddrFamily::Inet);
        assert_eq!(m.header().rtm_flags().bits() & RTNH_F_ONLINK, RTNH_F_ONLINK);
        let a = attrs(&m);
        let via = a.iter().find(|(t, _)| *t == rta_via()).expect("RTA_VIA present");
        let nh: Ipv6Addr = "fe80::2".parse().unwrap();
        assert_eq!(via.1, via_inet6(nh));
        // struct rtvia: the family in host order, then the address
        assert_eq!(via_inet6(nh)[..], [&(libc::AF_INET6 as u16).to_ne_bytes()[..], &nh.octets()].concat());
        assert!(a.iter().all(|(t, _)| *t != Rta::Gateway));
    }

    #[test]
    fn remove_goes_by_key_matches_any_scope_and_type_and_asks_no_create() {
        let r = route("2001:db8::/32", "fe80::1", 2, 0);
        let b = encode(FibOp::Remove(r.key()));
        let (ty, flags, m) = only_route(b.as_bytes(), 5);
        assert_eq!((ty, flags), (Rtm::Delroute, NlmF::REQUEST | NlmF::ACK));
        let h = m.header();
        assert_eq!(
            (*h.rtm_scope(), *h.rtm_type(), u8::from(*h.rtm_protocol())),
            (RtScope::Nowhere, Rtn::Unspec, 119)
        );
        // table, destination and the metric as the kernel stores it; no
        // next hop or interface to match
        let want = vec![
            (Rta::Table, 1000u32.to_ne_bytes().to_vec()),
            (Rta::Dst, ip_octets(r.prefix.addr())),
            (Rta::Priority, 1024u32.to_ne_bytes().to_vec()),
        ];
        assert_eq!(attrs(&m), want);
    }

    #[test]
    fn shared_attributes_are_rebuilt_when_their_value_changes() {
        let mut req = RouteRequests::new(FibConfig::new(100, 119).unwrap());
        let ops = [
            FibOp::Add(route("2001:db8:1::/48", "fe80::1", 2, 5)),
            FibOp::Add(route("2001:db8:2::/48", "fe80::1", 2, 5)),
            FibOp::Add(route("2001:db8:3::/48", "fe80::2", 3, 6)),
            FibOp::Add(route("10.0.0.0/8", "fe80::2", 3, 6)),
            FibOp::Add(route("10.1.0.0/16", "10.0.0.1", 3, 6)),
            FibOp::Add(FibRoute::unreachable("2001:db8:4::/48".parse().unwrap(), 6)),
            FibOp::Add(route("2001:db8:5::/48", "fe80::1", 2, 5)),
        ];
        let mut b = Batch::default();
        for (k, op) in ops.iter().enumerate() {
            req.push(&mut b, op, k as u32, false);
        }
        let got: Vec<FibRoute> = frames(b.as_bytes())
            .unwrap()
            .into_iter()
            .map(|f| match f.body {
                Body::Route(m) => decode_route(&m).unwrap().route.unwrap(),
                b => panic!("{b:?}"),
            })
            .collect();
        assert_eq!(got, ops.iter().map(|o| *o.route().unwrap()).collect::<Vec<_>>());
    }

    #[test]
    fn batch_holds_many_requests_and_only_the_last_asks_an_ack() {
        let mut req = RouteRequests::new(FibConfig::new(100, 119).unwrap());
        let mut b = Batch::default();
        for i in 0..3u32 {
            let op = FibOp::Replace(route("2001:db8::/32", "fe80::1", 2, i));
            req.push(&mut b, &op, 10 + i, i == 2);
        }
        let f = frames(b.as_bytes()).unwrap();
        assert_eq!(f.iter().map(|f| f.seq).collect::<Vec<_>>(), [10, 11, 12]);
        let acks: Vec<_> = f.iter().map(|f| f.flags & NlmF::ACK.bits() != 0).collect();
        assert_eq!(acks, [false, false, true]);
    }

    /// A route message as a dump delivers it: header and attributes.
    fn dumped(src_len: u8, attrs: &[&Rtattr<Rta, Buffer>]) -> Batch {
        let cfg = FibConfig::default();
        let mut header = header(cfg, RtAddrFamily::Inet6, 64, RtScope::Universe, Rtn::Unicast);
        if src_len > 0 {
            header = RtmsgBuilder::default()
                .rtm_family(RtAddrFamily::Inet6)
                .rtm_dst_len(64)
                .rtm_src_len(src_len)
                .rtm_tos(0)
                .rtm_table(RtTable::Main)
                .rtm_protocol(Rtprot::from(cfg.protocol()))
                .rtm_scope(RtScope::Universe)
                .rtm_type(Rtn::Unicast)
                .build()
                .unwrap();
        }
        let mut b = Batch::default();
        b.push_route(Rtm::Newroute, NlmF::MULTI, RouteBody { header, attrs }, 1, false);
        b
    }

    #[test]
    fn decode_leaves_out_what_the_model_cannot_express() {
        let (oif, gw) = (attr(Rta::Oif, 3u32), ip_attr(Rta::Gateway, "fe80::1".parse().unwrap()));
        let decode = |b: &Batch| decode_route(&only_route(b.as_bytes(), 1).2).unwrap().route;
        assert_eq!(decode(&dumped(48, &[&oif, &gw])), None, "source-specific");
        assert_eq!(decode(&dumped(0, &[&oif, &gw])), Some(route("::/64", "fe80::1", 3, 0)));
        let multipath = attr(Rta::Multipath, [0u8; 8]);
        assert_eq!(decode(&dumped(0, &[&oif, &gw, &multipath])), None, "multipath");
        // A wrong-sized address: no route, and never a panic.
        let bad = attr(Rta::Dst, [1u8, 2, 3]);
        assert_eq!(decode(&dumped(0, &[&oif, &gw, &bad])), None);
        // An attribute whose length runs past the message: not decoded.
        let b = dumped(0, &[&oif, &gw]);
        let mut bytes = b.as_bytes().to_vec();
        let last = bytes.len() - 20; // the gateway attribute's length field
        bytes[last] = 200;
        let f = frames(&bytes).unwrap().remove(0);
        let Body::Route(m) = f.body else { panic!() };
        assert_eq!(decode_route(&m), None);
    }
}
