//! [`RtnlFib`]: the [`Fib`] trait over an rtnetlink socket.
//!
//! Batching: many route requests travel in one datagram, and only the last
//! asks for an ack. The kernel handles the messages of a datagram in order
//! inside the send call and answers a failed request whether or not it asked
//! for an ack, so when the last ack arrives every failure before it has
//! arrived too: a batch of N routes costs one send and 1 + failures receives.
//!
//! Replace never clobbers a route weft does not own: the kernel ignores the
//! protocol when it replaces, so the first install of a (prefix, metric) uses
//! NLM_F_EXCL (an administrator's route there makes it fail with EEXIST), and
//! only routes this FIB installed or dumped as its own are replaced with
//! NLM_F_REPLACE.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::fib::{Fib, FibConfig, FibError, FibFailure, FibOp, FibRoute, RouteKey};
use super::netlink::{frames, Batch, NlSocket, NLM_F_DUMP_INTR};
use crate::babel::Prefix;

/// Route requests per datagram. The kernel handles a datagram in one go, so
/// the bound only keeps the worst case (every request failing, each failure
/// an ack of ~1 KiB of receive buffer) well inside the socket's buffer.
pub const DEFAULT_BATCH: usize = 128;

/// The rtnetlink FIB.
pub struct RtnlFib {
    config: FibConfig,
    sock: NlSocket,
    out: Batch,
    /// Keys of routes this FIB installed or found as its own: only these may
    /// be replaced in place.
    owned: HashSet<RouteKey>,
    batch: usize,
}

fn family_of(prefix: &Prefix) -> AddressFamily {
    if prefix.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// A route message for weft's table and protocol. Tables past 255 do not fit
/// the header's byte; RTA_TABLE carries them (and always goes along).
fn route_message(cfg: FibConfig, family: AddressFamily) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family;
    m.header.table = u8::try_from(cfg.table()).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    m.header.protocol = RouteProtocol::from(cfg.protocol());
    m
}

/// Appends the request for `op` to `out`: pure, so the message can be
/// checked without a kernel. `owned` says whether an install may replace in
/// place.
pub(crate) fn encode_op(out: &mut Batch, cfg: FibConfig, op: &FibOp, owned: bool, seq: u32, ack: bool) {
    let (msg, flags) = route_request(cfg, op, owned);
    out.push(msg, flags | if ack { NLM_F_ACK } else { 0 }, seq);
}

/// The request for `op` and its flags (NLM_F_ACK aside).
pub(crate) fn route_request(cfg: FibConfig, op: &FibOp, owned: bool) -> (RouteNetlinkMessage, u16) {
    let r = op.route();
    let mut m = route_message(cfg, family_of(&r.prefix));
    m.header.destination_prefix_length = r.prefix.len();
    let attrs = &mut m.attributes;
    attrs.push(RouteAttribute::Table(cfg.table()));
    attrs.push(RouteAttribute::Destination(RouteAddress::from(r.prefix.addr())));
    attrs.push(RouteAttribute::Priority(r.kernel_metric()));
    if r.is_unreachable() {
        m.header.kind = RouteType::Unreachable;
    } else {
        // Babel next hops are neighbours on the link by definition: onlink,
        // as babeld sets it, so no connected route is needed for the gateway.
        m.header.kind = RouteType::Unicast;
        m.header.flags = RouteFlags::Onlink;
        attrs.push(RouteAttribute::Oif(r.ifindex));
        attrs.push(match (r.prefix.is_ipv4(), r.next_hop) {
            // An IPv4 route via an IPv6 neighbour (RFC 9229): RTA_VIA.
            (true, IpAddr::V6(g)) => RouteAttribute::Via(RouteVia::Inet6(g)),
            (_, g) => RouteAttribute::Gateway(RouteAddress::from(g)),
        });
    }
    match op {
        FibOp::Replace(_) if owned => (RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_REPLACE),
        FibOp::Replace(_) => (RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL),
        FibOp::Remove(_) => {
            // NOWHERE matches a route of any scope, as `ip route del` does.
            m.header.scope = RouteScope::NoWhere;
            (RouteNetlinkMessage::DelRoute(m), 0)
        }
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

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// What weft's model makes of a route message (pure).
pub(crate) fn decode_route(m: &RouteMessage) -> DumpedRoute {
    let h = &m.header;
    let mut table = u32::from(h.table);
    let mut dst: Option<IpAddr> = None;
    let mut gateway: Option<IpAddr> = None;
    let mut oif = 0;
    let mut metric = 0;
    let mut multipath = false;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Via(RouteVia::Inet(g)) => gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(_) => multipath = true,
            _ => {}
        }
    }
    let dst = dst.or(match h.address_family {
        AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AddressFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    });
    let plain = !multipath && h.source_prefix_length == 0;
    let route = match (dst.and_then(|d| Prefix::new(d, h.destination_prefix_length)), gateway) {
        (Some(prefix), Some(next_hop)) if plain && h.kind == RouteType::Unicast && oif != 0 => {
            Some(FibRoute { prefix, next_hop, ifindex: oif, metric })
        }
        (Some(prefix), None) if plain && h.kind == RouteType::Unreachable => {
            Some(FibRoute::unreachable(prefix, metric))
        }
        _ => None,
    };
    DumpedRoute { table, protocol: u8::from(h.protocol), cloned: h.flags.contains(RouteFlags::Cloned), route }
}

/// How one request of a batch ended.
enum Outcome {
    Pending,
    Done(Result<(), FibError>),
}

impl RtnlFib {
    /// Opens the FIB's netlink socket. Must be called inside a tokio runtime.
    pub fn open(config: FibConfig) -> io::Result<RtnlFib> {
        let sock = NlSocket::open(&[])?;
        // Room for a whole batch of failure acks even on a kernel with a
        // small default; best effort (only forced when privileged).
        let _ = sock.set_recv_buffer(1 << 20);
        Ok(RtnlFib { config, sock, out: Batch::default(), owned: HashSet::new(), batch: DEFAULT_BATCH })
    }

    /// Requests per datagram (at least 1). 1 is the one-at-a-time baseline:
    /// every route waits for its own ack.
    pub fn set_batch_size(&mut self, n: usize) {
        self.batch = n.max(1);
    }

    /// Sends the prepared datagram (requests `base..base+n`) and collects the
    /// outcomes: a failure's ack or, for the last request, its ack.
    fn exchange(&mut self, base: u32, n: usize) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = (0..n).map(|_| Outcome::Pending).collect();
        if let Err(e) = self.sock.send(self.out.as_bytes()) {
            let err = FibError::from(e);
            return (0..n).map(|_| Outcome::Done(Err(err.clone()))).collect();
        }
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
                    return outcomes;
                }
            };
            for frame in frames(datagram).flatten() {
                let Some(Ok(ack)) = frame.ack() else { continue };
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
        outcomes
    }

    /// Dumps one family's routes in our table with our protocol: what
    /// weft's model makes of each, and the message itself.
    async fn dump_family(
        &mut self,
        family: AddressFamily,
    ) -> Result<Vec<(DumpedRoute, RouteMessage)>, FibError> {
        // A dump interrupted by a concurrent change may be inconsistent:
        // the kernel flags it, and we retry a few times.
        for _attempt in 0..4 {
            let cfg = self.config;
            // With strict checking the kernel filters on table and protocol.
            let mut m = route_message(cfg, family);
            if cfg.table() > u32::from(u8::MAX) {
                m.attributes.push(RouteAttribute::Table(cfg.table()));
            }
            let seq = self.sock.send_one((RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP))?;
            let mut found = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let datagram = self.sock.recv().await?;
                for frame in frames(datagram) {
                    let frame = frame.map_err(|e| FibError::Io(format!("bad netlink message: {e}")))?;
                    if frame.header.sequence_number != seq {
                        continue;
                    }
                    interrupted |= frame.header.flags & NLM_F_DUMP_INTR != 0;
                    match frame.ack() {
                        // A table with no routes of any family does not exist
                        // (yet): the filtered dump ends with ENOENT.
                        Some(Ok(ack)) if ack.errno == libc::ENOENT => break 'recv,
                        Some(Ok(ack)) if ack.errno != 0 => {
                            return Err(FibError::kernel(ack.errno, ack.message))
                        }
                        Some(Ok(_)) => break 'recv,
                        Some(Err(e)) => return Err(FibError::Io(format!("bad netlink answer: {e}"))),
                        None => {}
                    }
                    if let Ok(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m))) = frame.parse()
                    {
                        let d = decode_route(&m);
                        if d.table == cfg.table() && d.protocol == cfg.protocol() && !d.cloned {
                            found.push((d, m));
                        }
                    }
                }
            }
            if !interrupted {
                return Ok(found);
            }
        }
        Err(FibError::Io("route dump kept being interrupted by changes".into()))
    }

    async fn dump_raw(&mut self) -> Result<Vec<(DumpedRoute, RouteMessage)>, FibError> {
        let mut all = self.dump_family(AddressFamily::Inet).await?;
        all.extend(self.dump_family(AddressFamily::Inet6).await?);
        Ok(all)
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
            let mut sent: Vec<usize> = Vec::with_capacity(self.batch);
            let mut j = i;
            while j < ops.len() && sent.len() < self.batch {
                if let Err(error) = ops[j].route().validate() {
                    failures.push(FibFailure { index: j, op: ops[j], error });
                } else {
                    sent.push(j);
                }
                j += 1;
            }
            i = j;
            if sent.is_empty() {
                continue;
            }
            let base = self.sock.reserve_seqs(sent.len() as u32);
            self.out.clear();
            for (k, &idx) in sent.iter().enumerate() {
                let op = &ops[idx];
                let owned = self.owned.contains(&op.route().key());
                let last = k + 1 == sent.len();
                encode_op(&mut self.out, self.config, op, owned, base.wrapping_add(k as u32), last);
            }
            let outcomes = self.exchange(base, sent.len());
            for (k, outcome) in outcomes.into_iter().enumerate() {
                let idx = sent[k];
                let op = ops[idx];
                let key = op.route().key();
                let result = match outcome {
                    Outcome::Done(r) => r,
                    Outcome::Pending => Err(FibError::AckLost),
                };
                match (&op, &result) {
                    (FibOp::Replace(_), Ok(())) => {
                        self.owned.insert(key);
                    }
                    (FibOp::Remove(_), Ok(())) => {
                        self.owned.remove(&key);
                    }
                    (FibOp::Remove(_), Err(e)) if e.is_not_found() => {
                        self.owned.remove(&key);
                    }
                    _ => {}
                }
                if let Err(error) = result {
                    failures.push(FibFailure { index: idx, op, error });
                }
            }
        }
        failures.sort_by_key(|f| f.index);
        failures
    }

    async fn dump_own(&mut self) -> Result<Vec<FibRoute>, FibError> {
        let all = self.dump_raw().await?;
        let routes: Vec<FibRoute> = all.into_iter().filter_map(|(d, _)| d.route).collect();
        self.owned.extend(routes.iter().map(|r| r.key()));
        Ok(routes)
    }

    async fn flush_own(&mut self) -> Result<usize, FibError> {
        let all = self.dump_raw().await?;
        let mut removed = 0;
        let mut first_error = None;
        // Each dumped message goes back as RTM_DELROUTE (as `ip route flush`
        // does), so routes of ours that weft's model cannot express go too.
        let mut msgs = all.into_iter().map(|(_, m)| m).peekable();
        while msgs.peek().is_some() {
            let chunk: Vec<RouteMessage> = msgs.by_ref().take(self.batch).collect();
            let n = chunk.len();
            let base = self.sock.reserve_seqs(n as u32);
            self.out.clear();
            for (k, msg) in chunk.into_iter().enumerate() {
                let flags = if k + 1 == n { NLM_F_ACK } else { 0 };
                // header and attributes as dumped
                self.out.push(RouteNetlinkMessage::DelRoute(msg), flags, base.wrapping_add(k as u32));
            }
            for outcome in self.exchange(base, n) {
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
        self.owned.clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::NLM_F_REQUEST;

    use super::*;

    fn route(prefix: &str, nh: &str, ifindex: u32, metric: u32) -> FibRoute {
        FibRoute { prefix: prefix.parse().unwrap(), next_hop: nh.parse().unwrap(), ifindex, metric }
    }

    /// Encodes `op` and parses the bytes back: header flags and the message.
    fn round_trip(op: FibOp, owned: bool) -> (u16, RouteNetlinkMessage) {
        let mut b = Batch::default();
        let cfg = FibConfig::new(1000, 119).unwrap();
        encode_op(&mut b, cfg, &op, owned, 5, true);
        let mut it = frames(b.as_bytes());
        let frame = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        assert_eq!(frame.header.sequence_number, 5);
        let NetlinkPayload::InnerMessage(m) = frame.parse().unwrap() else { panic!("not a route message") };
        (frame.header.flags, m)
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
            let (flags, m) = round_trip(FibOp::Replace(r), false);
            assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
            let RouteNetlinkMessage::NewRoute(m) = m else { panic!("{m:?}") };
            let d = decode_route(&m);
            assert_eq!((d.table, d.protocol, d.cloned), (1000, 119, false));
            assert_eq!(d.route, Some(r), "{r:?}");
        }
    }

    #[test]
    fn v4_via_v6_uses_rta_via_and_onlink() {
        let (flags, m) = round_trip(FibOp::Replace(route("192.0.2.12/32", "fe80::2", 9, 0)), true);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let RouteNetlinkMessage::NewRoute(m) = m else { panic!("{m:?}") };
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        let nh: Ipv6Addr = "fe80::2".parse().unwrap();
        assert!(m.attributes.contains(&RouteAttribute::Via(RouteVia::Inet6(nh))), "{m:?}");
        assert!(!m.attributes.iter().any(|a| matches!(a, RouteAttribute::Gateway(_))));
    }

    #[test]
    fn remove_matches_any_scope_and_asks_no_create() {
        let (flags, m) = round_trip(FibOp::Remove(route("2001:db8::/32", "fe80::1", 2, 1)), true);
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK);
        let RouteNetlinkMessage::DelRoute(m) = m else { panic!("{m:?}") };
        assert_eq!(m.header.scope, RouteScope::NoWhere);
    }

    #[test]
    fn batch_holds_many_requests_and_only_asked_ones_ack() {
        let cfg = FibConfig::new(100, 119).unwrap();
        let mut b = Batch::default();
        for i in 0..3u32 {
            let op = FibOp::Replace(route("2001:db8::/32", "fe80::1", 2, i));
            encode_op(&mut b, cfg, &op, false, 10 + i, i == 2);
        }
        let headers: Vec<_> = frames(b.as_bytes()).map(|f| f.unwrap().header).collect();
        assert_eq!(headers.iter().map(|h| h.sequence_number).collect::<Vec<_>>(), [10, 11, 12]);
        let acks: Vec<_> = headers.iter().map(|h| h.flags & NLM_F_ACK != 0).collect();
        assert_eq!(acks, [false, false, true]);
    }

    #[test]
    fn decode_leaves_out_what_the_model_cannot_express() {
        let mut m = route_message(FibConfig::default(), AddressFamily::Inet6);
        m.header.destination_prefix_length = 200; // no such prefix
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Oif(3));
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet6("fe80::1".parse().unwrap())));
        assert_eq!(decode_route(&m).route, None);
        m.header.destination_prefix_length = 64;
        m.header.source_prefix_length = 48; // source-specific
        assert_eq!(decode_route(&m).route, None);
        m.header.source_prefix_length = 0;
        assert!(decode_route(&m).route.is_some());
        // Truncated bytes: an error, never a panic.
        let mut b = Batch::default();
        encode_op(
            &mut b,
            FibConfig::default(),
            &FibOp::Replace(route("::/0", "fe80::2", 9, 3)),
            false,
            1,
            true,
        );
        for cut in 0..b.as_bytes().len() {
            for f in frames(&b.as_bytes()[..cut]).flatten() {
                let _ = f.parse();
            }
        }
    }
}
