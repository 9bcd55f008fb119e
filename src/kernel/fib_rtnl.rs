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

use linux_raw_sys::netlink::{rtattr_type_t, rtvia, RTNH_F_ONLINK};
use neli::consts::nl::NlmF;
use neli::consts::rtnl::{RtAddrFamily, RtScope, RtTable, Rta, Rtm, RtmF, Rtn, Rtprot};
use neli::rtnl::{Rtmsg, RtmsgBuilder};
use neli::types::{Buffer, RtBuffer};

use super::fib::{Fib, FibConfig, FibError, FibFailure, FibOp, FibRoute, RouteKey};
use super::netlink::{
    attr, family_of, frames, ip_attr, ip_from, u32_of, Batch, Body, NlSocket, Request, RtMsg, NLM_F_DUMP_INTR,
};
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

/// A route message for weft's table and protocol. Tables past 255 do not fit
/// the header's byte: RTA_TABLE carries them.
fn rtmsg(
    cfg: FibConfig,
    family: RtAddrFamily,
    dst_len: u8,
    scope: RtScope,
    kind: Rtn,
    attrs: RtBuffer<Rta, Buffer>,
) -> Rtmsg {
    // Babel next hops are neighbours on the link by definition: onlink, as
    // babeld sets it, so no connected route is needed for the gateway.
    let flags = if kind == Rtn::Unicast { RtmF::from_bits_retain(RTNH_F_ONLINK) } else { RtmF::empty() };
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
        .rtattrs(attrs)
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

/// The request for `op` (pure, so it can be checked without a kernel).
/// `owned` says whether an install may replace in place.
pub(crate) fn route_request(cfg: FibConfig, op: &FibOp, owned: bool) -> Request {
    let r = op.route();
    let table = attr(Rta::Table, cfg.table());
    let dst = ip_attr(Rta::Dst, r.prefix.addr());
    let priority = attr(Rta::Priority, r.kernel_metric());
    // Built from arrays, so the attribute list is allocated once.
    let (kind, attrs) = if r.is_unreachable() {
        (Rtn::Unreachable, [table, dst, priority].into_iter().collect())
    } else {
        let next_hop = match (r.prefix.is_ipv4(), r.next_hop) {
            // An IPv4 route via an IPv6 neighbour (RFC 9229): RTA_VIA.
            (true, IpAddr::V6(g)) => attr(rta_via(), via_inet6(g)),
            (_, g) => ip_attr(Rta::Gateway, g),
        };
        (Rtn::Unicast, [table, dst, priority, attr(Rta::Oif, r.ifindex), next_hop].into_iter().collect())
    };
    let (ty, flags, scope) = match op {
        FibOp::Replace(_) if owned => (Rtm::Newroute, NlmF::CREATE | NlmF::REPLACE, RtScope::Universe),
        FibOp::Replace(_) => (Rtm::Newroute, NlmF::CREATE | NlmF::EXCL, RtScope::Universe),
        // NOWHERE matches a route of any scope, as `ip route del` does.
        FibOp::Remove(_) => (Rtm::Delroute, NlmF::empty(), RtScope::Nowhere),
    };
    let family = family_of(r.prefix.addr());
    (ty, RtMsg::Route(rtmsg(cfg, family, r.prefix.len(), scope, kind, attrs)), flags)
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

/// What weft's model makes of a route message (pure).
pub(crate) fn decode_route(m: &Rtmsg) -> DumpedRoute {
    let family = *m.rtm_family();
    let mut table = u32::from(u8::from(*m.rtm_table()));
    let (mut dst, mut gateway, mut oif, mut metric, mut multipath) = (None, None, 0, 0, false);
    for a in m.rtattrs().iter() {
        let v = a.rta_payload().as_ref();
        match *a.rta_type() {
            t if t == rta_via() => {
                let at = std::mem::size_of::<rtvia>();
                if let Some(f) = v.get(..at).and_then(|f| <[u8; 2]>::try_from(f).ok()) {
                    let f = RtAddrFamily::from(u16::from_ne_bytes(f) as u8);
                    gateway = ip_from(f, &v[at..]);
                }
            }
            Rta::Table => table = u32_of(v).unwrap_or(table),
            Rta::Dst => dst = ip_from(family, v),
            Rta::Gateway => gateway = ip_from(family, v),
            Rta::Oif => oif = u32_of(v).unwrap_or(0),
            Rta::Priority => metric = u32_of(v).unwrap_or(0),
            Rta::Multipath => multipath = true,
            _ => {}
        }
    }
    let dst = dst.or(match family {
        RtAddrFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        RtAddrFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    });
    let plain = !multipath && *m.rtm_src_len() == 0;
    let kind = *m.rtm_type();
    let route = match (dst.and_then(|d| Prefix::new(d, *m.rtm_dst_len())), gateway) {
        (Some(prefix), Some(next_hop)) if plain && kind == Rtn::Unicast && oif != 0 => {
            Some(FibRoute { prefix, next_hop, ifindex: oif, metric })
        }
        (Some(prefix), None) if plain && kind == Rtn::Unreachable => {
            Some(FibRoute::unreachable(prefix, metric))
        }
        _ => None,
    };
    DumpedRoute {
        table,
        protocol: u8::from(*m.rtm_protocol()),
        cloned: m.rtm_flags().contains(RtmF::CLONED),
        route,
    }
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
            for frame in frames(datagram).into_iter().flatten() {
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
        outcomes
    }

    /// Dumps one family's routes in our table with our protocol: what
    /// weft's model makes of each, and the message itself.
    async fn dump_family(&mut self, family: RtAddrFamily) -> Result<Vec<(DumpedRoute, Rtmsg)>, FibError> {
        // A dump interrupted by a concurrent change may be inconsistent:
        // the kernel flags it, and we retry a few times.
        for _attempt in 0..4 {
            let cfg = self.config;
            let mut attrs: RtBuffer<Rta, Buffer> = RtBuffer::new();
            if cfg.table() > u32::from(u8::MAX) {
                attrs.push(attr(Rta::Table, cfg.table()));
            }
            // With strict checking the kernel filters on table and protocol.
            let m = rtmsg(cfg, family, 0, RtScope::Universe, Rtn::Unspec, attrs);
            let seq = self.sock.send_one((Rtm::Getroute, RtMsg::Route(m), NlmF::DUMP))?;
            let mut found = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let datagram = self.sock.recv().await?;
                for frame in
                    frames(datagram).map_err(|e| FibError::Io(format!("bad netlink message: {e}")))?
                {
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
                        Body::Msg(RtMsg::Route(m)) => m,
                        _ => continue,
                    };
                    let d = decode_route(&m);
                    if d.table == cfg.table() && d.protocol == cfg.protocol() && !d.cloned {
                        found.push((d, m));
                    }
                }
            }
            if !interrupted {
                return Ok(found);
            }
        }
        Err(FibError::Io("route dump kept being interrupted by changes".into()))
    }

    async fn dump_raw(&mut self) -> Result<Vec<(DumpedRoute, Rtmsg)>, FibError> {
        let mut all = self.dump_family(RtAddrFamily::Inet).await?;
        all.extend(self.dump_family(RtAddrFamily::Inet6).await?);
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
                self.out.push(route_request(self.config, op, owned), base.wrapping_add(k as u32), last);
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
            let chunk: Vec<Rtmsg> = msgs.by_ref().take(self.batch).collect();
            let n = chunk.len();
            let base = self.sock.reserve_seqs(n as u32);
            self.out.clear();
            for (k, msg) in chunk.into_iter().enumerate() {
                // header and attributes as dumped
                let req = (Rtm::Delroute, RtMsg::Route(msg), NlmF::empty());
                self.out.push(req, base.wrapping_add(k as u32), k + 1 == n);
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
    use std::io::Cursor;

    use neli::{FromBytesWithInput, ToBytes};

    use super::*;

    fn route(prefix: &str, nh: &str, ifindex: u32, metric: u32) -> FibRoute {
        FibRoute { prefix: prefix.parse().unwrap(), next_hop: nh.parse().unwrap(), ifindex, metric }
    }

    /// Encodes `op` and parses the bytes back: header type and flags, and
    /// the route message.
    fn round_trip(op: FibOp, owned: bool) -> (Rtm, NlmF, Rtmsg) {
        let mut b = Batch::default();
        b.push(route_request(FibConfig::new(1000, 119).unwrap(), &op, owned), 5, true);
        let mut f = frames(b.as_bytes()).unwrap();
        assert_eq!(f.len(), 1);
        let f = f.remove(0);
        assert_eq!(f.seq, 5);
        let Body::Msg(RtMsg::Route(m)) = f.body else { panic!("{:?}", f.body) };
        (Rtm::from(f.ty), NlmF::from_bits_retain(f.flags), m)
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
            let (ty, flags, m) = round_trip(FibOp::Replace(r), false);
            assert_eq!((ty, flags), (Rtm::Newroute, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL));
            let d = decode_route(&m);
            assert_eq!((d.table, d.protocol, d.cloned), (1000, 119, false));
            assert_eq!(d.route, Some(r), "{r:?}");
        }
    }

    #[test]
    fn v4_via_v6_uses_rta_via_and_onlink() {
        let (_, flags, m) = round_trip(FibOp::Replace(route("192.0.2.12/32", "fe80::2", 9, 0)), true);
        assert_eq!(flags, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::REPLACE);
        assert_eq!(*m.rtm_family(), RtAddrFamily::Inet);
        assert_eq!(m.rtm_flags().bits() & RTNH_F_ONLINK, RTNH_F_ONLINK);
        let via = m.rtattrs().iter().find(|a| *a.rta_type() == rta_via()).expect("RTA_VIA present");
        let nh: Ipv6Addr = "fe80::2".parse().unwrap();
        assert_eq!(via.rta_payload().as_ref(), &via_inet6(nh)[..]);
        // struct rtvia: the family in host order, then the address
        assert_eq!(via_inet6(nh)[..], [&(libc::AF_INET6 as u16).to_ne_bytes()[..], &nh.octets()].concat());
        assert!(m.rtattrs().iter().all(|a| *a.rta_type() != Rta::Gateway));
    }

    #[test]
    fn remove_matches_any_scope_and_asks_no_create() {
        let (ty, flags, m) = round_trip(FibOp::Remove(route("2001:db8::/32", "fe80::1", 2, 1)), true);
        assert_eq!((ty, flags), (Rtm::Delroute, NlmF::REQUEST | NlmF::ACK));
        assert_eq!(*m.rtm_scope(), RtScope::Nowhere);
    }

    #[test]
    fn batch_holds_many_requests_and_only_the_last_asks_an_ack() {
        let cfg = FibConfig::new(100, 119).unwrap();
        let mut b = Batch::default();
        for i in 0..3u32 {
            let op = FibOp::Replace(route("2001:db8::/32", "fe80::1", 2, i));
            b.push(route_request(cfg, &op, false), 10 + i, i == 2);
        }
        let f = frames(b.as_bytes()).unwrap();
        assert_eq!(f.iter().map(|f| f.seq).collect::<Vec<_>>(), [10, 11, 12]);
        let acks: Vec<_> = f.iter().map(|f| f.flags & NlmF::ACK.bits() != 0).collect();
        assert_eq!(acks, [false, false, true]);
    }

    #[test]
    fn decode_leaves_out_what_the_model_cannot_express() {
        let cfg = FibConfig::default();
        let with = |src_len: u8| {
            let mut attrs = RtBuffer::new();
            attrs.push(attr(Rta::Oif, 3u32));
            attrs.push(ip_attr(Rta::Gateway, "fe80::1".parse().unwrap()));
            let m = RtmsgBuilder::default()
                .rtm_family(RtAddrFamily::Inet6)
                .rtm_dst_len(64)
                .rtm_src_len(src_len)
                .rtm_tos(0)
                .rtm_table(RtTable::Main)
                .rtm_protocol(Rtprot::from(cfg.protocol()))
                .rtm_scope(RtScope::Universe)
                .rtm_type(Rtn::Unicast)
                .rtattrs(attrs)
                .build()
                .unwrap();
            // through bytes, as a dump delivers it
            let mut b = Cursor::new(Vec::new());
            m.to_bytes(&mut b).unwrap();
            let bytes = b.into_inner();
            let len = bytes.len();
            decode_route(&Rtmsg::from_bytes_with_input(&mut Cursor::new(bytes), len).unwrap())
        };
        assert_eq!(with(48).route, None, "source-specific");
        assert_eq!(with(0).route, Some(route("::/64", "fe80::1", 3, 0)));
        // A wrong-sized address: no route, and never a panic.
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Rta::Dst, [1u8, 2, 3]));
        let m = rtmsg(cfg, RtAddrFamily::Inet6, 64, RtScope::Universe, Rtn::Unicast, attrs);
        assert_eq!(decode_route(&m).route, None);
    }
}
