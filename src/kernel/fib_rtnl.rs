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

use super::fib::{Fib, FibConfig, FibError, FibFailure, FibOp, FibRoute, RouteKey};
use super::netlink::{
    attr_u32, attrs, messages, parse_ack, u16_at, u32_at, MsgBuilder, NlSocket, AF_INET, AF_INET6,
    NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE,
};
use crate::babel::Prefix;

// linux/rtnetlink.h
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTN_UNICAST: u8 = 1;
const RTN_UNREACHABLE: u8 = 7;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_NOWHERE: u8 = 255;
const RT_TABLE_UNSPEC: u8 = 0;
const RTNH_F_ONLINK: u32 = 4;
const RTM_F_CLONED: u32 = 0x200;
const RTMSG_LEN: usize = 12;

/// Route requests per datagram. The kernel handles a datagram in one go, so
/// the bound only keeps the worst case (every request failing, each failure
/// an ack of ~1 KiB of receive buffer) well inside the socket's buffer.
pub const DEFAULT_BATCH: usize = 128;

/// The rtnetlink FIB.
pub struct RtnlFib {
    config: FibConfig,
    sock: NlSocket,
    out: MsgBuilder,
    /// Keys of routes this FIB installed or found as its own: only these may
    /// be replaced in place.
    owned: HashSet<RouteKey>,
    batch: usize,
}

/// The `rtmsg` that starts every route message.
fn rtmsg(
    family: u8,
    dst_len: u8,
    table: u32,
    protocol: u8,
    scope: u8,
    kind: u8,
    flags: u32,
) -> [u8; RTMSG_LEN] {
    let mut h = [0u8; RTMSG_LEN];
    h[0] = family;
    h[1] = dst_len;
    // h[2] src_len, h[3] tos: 0
    h[4] = if table < 256 { table as u8 } else { RT_TABLE_UNSPEC };
    h[5] = protocol;
    h[6] = scope;
    h[7] = kind;
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h
}

/// Appends the request for `op` to `out`: pure, so the bytes can be checked
/// without a kernel. `owned` says whether an install may replace in place.
pub(crate) fn encode_op(out: &mut MsgBuilder, cfg: FibConfig, op: &FibOp, owned: bool, seq: u32, ack: bool) {
    let r = op.route();
    let (ty, mut flags, scope) = match op {
        FibOp::Replace(_) if owned => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, RT_SCOPE_UNIVERSE),
        FibOp::Replace(_) => (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, RT_SCOPE_UNIVERSE),
        // NOWHERE matches a route of any scope, as `ip route del` does.
        FibOp::Remove(_) => (RTM_DELROUTE, 0, RT_SCOPE_NOWHERE),
    };
    flags |= NLM_F_REQUEST;
    if ack {
        flags |= NLM_F_ACK;
    }
    let family = if r.prefix.is_ipv4() { AF_INET } else { AF_INET6 };
    if r.is_unreachable() {
        let hdr = rtmsg(family, r.prefix.len(), cfg.table(), cfg.protocol(), scope, RTN_UNREACHABLE, 0);
        out.begin(ty, flags, seq, &hdr);
        out.attr_u32(RTA_TABLE, cfg.table());
        match r.prefix.addr() {
            IpAddr::V4(a) => out.attr(RTA_DST, &a.octets()),
            IpAddr::V6(a) => out.attr(RTA_DST, &a.octets()),
        }
        out.attr_u32(RTA_PRIORITY, r.kernel_metric());
        out.end();
        return;
    }
    // Babel next hops are neighbours on the link by definition: onlink, as
    // babeld sets it, so no connected route is needed for the gateway.
    let hdr = rtmsg(family, r.prefix.len(), cfg.table(), cfg.protocol(), scope, RTN_UNICAST, RTNH_F_ONLINK);
    out.begin(ty, flags, seq, &hdr);
    out.attr_u32(RTA_TABLE, cfg.table());
    match r.prefix.addr() {
        IpAddr::V4(a) => out.attr(RTA_DST, &a.octets()),
        IpAddr::V6(a) => out.attr(RTA_DST, &a.octets()),
    }
    out.attr_u32(RTA_PRIORITY, r.kernel_metric());
    out.attr_u32(RTA_OIF, r.ifindex);
    match (r.prefix.is_ipv4(), r.next_hop) {
        (true, IpAddr::V4(g)) => out.attr(RTA_GATEWAY, &g.octets()),
        (false, IpAddr::V6(g)) => out.attr(RTA_GATEWAY, &g.octets()),
        (true, IpAddr::V6(g)) => {
            // struct rtvia: sa_family_t family, then the address (RFC 9229).
            let mut via = [0u8; 18];
            via[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            via[2..].copy_from_slice(&g.octets());
            out.attr(RTA_VIA, &via);
        }
        (false, IpAddr::V4(_)) => unreachable!("validated before encoding"),
    }
    out.end();
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

/// Decodes the payload of an RTM_NEWROUTE message (pure).
pub(crate) fn decode_route(p: &[u8]) -> Option<DumpedRoute> {
    if p.len() < RTMSG_LEN {
        return None;
    }
    let (family, dst_len, src_len, hdr_table, protocol, kind) = (p[0], p[1], p[2], p[4], p[5], p[7]);
    let flags = u32_at(p, 8);
    let mut table = hdr_table as u32;
    let mut dst: Option<IpAddr> = None;
    let mut gateway: Option<IpAddr> = None;
    let mut oif = 0;
    let mut metric = 0;
    let mut multipath = false;
    for (ty, v) in attrs(&p[RTMSG_LEN..]) {
        match ty {
            RTA_TABLE => table = attr_u32(v).unwrap_or(table),
            RTA_DST => dst = ip_from(family, v),
            RTA_GATEWAY => gateway = ip_from(family, v),
            RTA_VIA if v.len() >= 2 => {
                gateway = ip_from(u16_at(v, 0) as u8, &v[2..]);
            }
            RTA_OIF => oif = attr_u32(v).unwrap_or(0),
            RTA_PRIORITY => metric = attr_u32(v).unwrap_or(0),
            RTA_MULTIPATH => multipath = true,
            _ => {}
        }
    }
    let dst = dst.or(match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    });
    let route = match (dst.and_then(|d| Prefix::new(d, dst_len)), gateway) {
        (Some(prefix), Some(next_hop)) if !multipath && src_len == 0 && kind == RTN_UNICAST && oif != 0 => {
            Some(FibRoute { prefix, next_hop, ifindex: oif, metric })
        }
        (Some(prefix), None) if src_len == 0 && kind == RTN_UNREACHABLE => {
            Some(FibRoute::unreachable(prefix, metric))
        }
        _ => None,
    };
    Some(DumpedRoute { table, protocol, cloned: flags & RTM_F_CLONED != 0, route })
}

fn ip_from(family: u8, v: &[u8]) -> Option<IpAddr> {
    match (family, v.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        (AF_INET6, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(v);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
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
        Ok(RtnlFib { config, sock, out: MsgBuilder::default(), owned: HashSet::new(), batch: DEFAULT_BATCH })
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
            for msg in messages(datagram).flatten() {
                if msg.ty != NLMSG_ERROR {
                    continue;
                }
                let Ok(ack) = parse_ack(&msg) else { continue };
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

    /// Dumps one family's routes in our table with our protocol: the decoded
    /// route (if representable) and the raw message payload.
    async fn dump_family(&mut self, family: u8) -> Result<Vec<(DumpedRoute, Vec<u8>)>, FibError> {
        // A dump interrupted by a concurrent change may be inconsistent:
        // the kernel flags it, and we retry a few times.
        for _attempt in 0..4 {
            let seq = self.sock.next_seq();
            let cfg = self.config;
            self.out.clear();
            // With strict checking the kernel filters on table and protocol.
            let hdr = rtmsg(family, 0, cfg.table(), cfg.protocol(), 0, 0, 0);
            self.out.begin(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, &hdr);
            if cfg.table() >= 256 {
                self.out.attr_u32(RTA_TABLE, cfg.table());
            }
            self.out.end();
            self.sock.send(self.out.as_bytes())?;
            let mut found = Vec::new();
            let mut interrupted = false;
            'recv: loop {
                let datagram = self.sock.recv().await?;
                for msg in messages(datagram) {
                    let msg = msg.map_err(|e| FibError::Io(format!("bad netlink message: {}", e.0)))?;
                    if msg.seq != seq {
                        continue;
                    }
                    interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                    match msg.ty {
                        NLMSG_DONE => break 'recv,
                        NLMSG_ERROR => {
                            let ack = parse_ack(&msg).map_err(|e| FibError::Io(e.0.into()))?;
                            if ack.errno != 0 {
                                return Err(FibError::kernel(ack.errno, ack.message));
                            }
                        }
                        RTM_NEWROUTE => {
                            if let Some(d) = decode_route(msg.payload) {
                                if d.table == cfg.table() && d.protocol == cfg.protocol() && !d.cloned {
                                    found.push((d, msg.payload.to_vec()));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            if !interrupted {
                return Ok(found);
            }
        }
        Err(FibError::Io("route dump kept being interrupted by changes".into()))
    }

    async fn dump_raw(&mut self) -> Result<Vec<(DumpedRoute, Vec<u8>)>, FibError> {
        let mut all = self.dump_family(AF_INET).await?;
        all.extend(self.dump_family(AF_INET6).await?);
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
        for chunk in all.chunks(self.batch) {
            let base = self.sock.reserve_seqs(chunk.len() as u32);
            self.out.clear();
            for (k, (_, payload)) in chunk.iter().enumerate() {
                let last = k + 1 == chunk.len();
                let flags = NLM_F_REQUEST | if last { NLM_F_ACK } else { 0 };
                let seq = base.wrapping_add(k as u32);
                // family header and attributes exactly as dumped
                self.out.begin(RTM_DELROUTE, flags, seq, payload);
                self.out.end();
            }
            for outcome in self.exchange(base, chunk.len()) {
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
    use super::*;

    fn route(prefix: &str, nh: &str, ifindex: u32, metric: u32) -> FibRoute {
        FibRoute { prefix: prefix.parse().unwrap(), next_hop: nh.parse().unwrap(), ifindex, metric }
    }

    fn encode(op: FibOp, owned: bool) -> Vec<u8> {
        let mut b = MsgBuilder::default();
        let cfg = FibConfig::new(1000, 119).unwrap();
        encode_op(&mut b, cfg, &op, owned, 5, true);
        b.as_bytes().to_vec()
    }

    #[test]
    fn encoded_route_decodes_to_itself() {
        for r in [
            route("2001:db8:1::/48", "fe80::1", 7, 10),
            route("192.0.2.0/24", "10.1.1.1", 7, 10),
            route("192.0.2.12/32", "fe80::2", 9, 0),
            route("0.0.0.0/0", "fe80::2", 9, 3),
            route("::/0", "fe80::2", 9, 3),
        ] {
            let bytes = encode(FibOp::Replace(r), false);
            let msg = messages(&bytes).next().unwrap().unwrap();
            assert_eq!(msg.ty, RTM_NEWROUTE);
            assert_eq!(msg.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
            let d = decode_route(msg.payload).unwrap();
            assert_eq!((d.table, d.protocol, d.cloned), (1000, 119, false));
            assert_eq!(d.route, Some(r), "{r:?}");
        }
    }

    #[test]
    fn v4_via_v6_uses_rta_via_and_onlink() {
        let bytes = encode(FibOp::Replace(route("192.0.2.12/32", "fe80::2", 9, 0)), true);
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(msg.flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
        let p = msg.payload;
        assert_eq!(p[0], AF_INET);
        assert_eq!(u32_at(p, 8) & RTNH_F_ONLINK, RTNH_F_ONLINK);
        let a: Vec<_> = attrs(&p[RTMSG_LEN..]).collect();
        let via = a.iter().find(|(t, _)| *t == RTA_VIA).expect("RTA_VIA present").1;
        assert_eq!(u16_at(via, 0), libc::AF_INET6 as u16);
        assert_eq!(&via[2..], &"fe80::2".parse::<Ipv6Addr>().unwrap().octets());
        assert!(a.iter().all(|(t, _)| *t != RTA_GATEWAY));
    }

    #[test]
    fn remove_matches_any_scope_and_asks_no_create() {
        let bytes = encode(FibOp::Remove(route("2001:db8::/32", "fe80::1", 2, 1)), true);
        let msg = messages(&bytes).next().unwrap().unwrap();
        assert_eq!(msg.ty, RTM_DELROUTE);
        assert_eq!(msg.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(msg.payload[6], RT_SCOPE_NOWHERE);
    }

    #[test]
    fn decode_rejects_garbage_without_panicking() {
        assert!(decode_route(&[0; 5]).is_none());
        let mut p = rtmsg(AF_INET6, 200, 254, 119, 0, RTN_UNICAST, 0).to_vec();
        p.extend_from_slice(&[8, 0, RTA_DST as u8, 0, 1, 2, 3, 4]); // wrong address size
        let d = decode_route(&p).unwrap();
        assert_eq!(d.route, None);
    }
}
