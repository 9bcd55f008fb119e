//! A minimal rtnetlink reader for the benchmark: route dumps and route
//! change events of a named network namespace, read from this process
//! (no `ip` process per probe, so probes are cheap and finely spaced).
//!
//! Sockets are created on a thread that joined the namespace with setns;
//! a socket stays in the namespace it was created in.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sched::{setns, CloneFlags};

const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTN_UNICAST: u8 = 1;
/// Multicast groups (bit numbers, 1-based) for route changes.
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// One kernel route, as much of it as the path walker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub dst_len: u8,
    pub protocol: u8,
    pub table: u32,
    pub kind: u8,
    pub oif: u32,
    /// RTA_PRIORITY (part of a route's identity in its table).
    pub metric: u32,
    /// RTA_GATEWAY, or RTA_VIA for an IPv4 route with an IPv6 next hop.
    pub gateway: Option<IpAddr>,
}

impl Route {
    pub fn is_unicast_main(&self) -> bool {
        self.kind == RTN_UNICAST && self.table == 254
    }

    /// Does this route's prefix contain `a`?
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.dst, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let bits = self.dst_len as u32;
                bits == 0 || (u32::from(p) ^ u32::from(a)) >> (32 - bits) == 0
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let bits = self.dst_len as u32;
                bits == 0 || (u128::from(p) ^ u128::from(a)) >> (128 - bits) == 0
            }
            _ => false,
        }
    }
}

/// A route change seen by a [`Listener`].
#[derive(Debug)]
pub enum Change {
    Added(Route),
    Removed(Route),
}

pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens a NETLINK_ROUTE socket inside the namespace `/run/netns/NAME`,
/// subscribed to `groups` (bit mask; 0 for none).
fn open_in(ns: &str, groups: u32) -> io::Result<OwnedFd> {
    let nsfile = File::open(format!("/run/netns/{ns}"))?;
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<OwnedFd> {
            setns(&nsfile, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            let fd = check(unsafe {
                libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
            })?;
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = groups;
            check(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            })?;
            Ok(fd)
        })
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
    })
}

fn set_rcvbuf(fd: &OwnedFd, bytes: i32) {
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN (we are root); best effort.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &bytes as *const i32 as *const libc::c_void,
            4,
        );
    }
}

impl Rtnl {
    /// A socket for dumps in namespace `ns` (its name under /run/netns).
    pub fn open(ns: &str) -> io::Result<Rtnl> {
        let fd = open_in(ns, 0)?;
        set_rcvbuf(&fd, 8 << 20);
        Ok(Rtnl { fd, seq: 1, buf: vec![0u8; 1 << 16] })
    }

    /// Every route of the namespace (both families, all tables).
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; 16 + 12];
        let len = req.len() as u32;
        req[0..4].copy_from_slice(&len.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETROUTE.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // rtmsg with family AF_UNSPEC: both families
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr() as *const libc::c_void, req.len(), 0) };
        check(n as i32)?;
        let mut out = Vec::new();
        loop {
            let n = unsafe {
                libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr() as *mut libc::c_void, self.buf.len(), 0)
            };
            let n = check(n as i32)? as usize;
            for (ty, seq, payload) in messages(&self.buf[..n]) {
                if seq != self.seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = payload.get(..4).map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                    }
                    RTM_NEWROUTE => out.extend(parse_route(payload)),
                    _ => {}
                }
            }
        }
    }
}

/// Route change events of one namespace (both families).
pub struct Listener {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Listener {
    pub fn open(ns: &str) -> io::Result<Listener> {
        let groups = (1 << (RTNLGRP_IPV4_ROUTE - 1)) | (1 << (RTNLGRP_IPV6_ROUTE - 1));
        let fd = open_in(ns, groups)?;
        // 10,000 route events arrive in a burst: room for all of them.
        set_rcvbuf(&fd, 64 << 20);
        Ok(Listener { fd, buf: vec![0u8; 1 << 16] })
    }

    /// Waits up to `timeout_ms` for events and returns what arrived (empty
    /// on timeout). An overrun (ENOBUFS) is an error: events were lost.
    pub fn poll(&mut self, timeout_ms: i32) -> io::Result<Vec<Change>> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        if check(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })? == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        loop {
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Ok(out);
                }
                return Err(e);
            }
            for (ty, _, payload) in messages(&self.buf[..n as usize]) {
                match ty {
                    RTM_NEWROUTE => out.extend(parse_route(payload).map(Change::Added)),
                    RTM_DELROUTE => out.extend(parse_route(payload).map(Change::Removed)),
                    _ => {}
                }
            }
        }
    }
}

/// The netlink messages of a datagram: (type, sequence number, payload).
fn messages(mut d: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if d.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(d[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > d.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(d[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(d[8..12].try_into().unwrap());
        let payload = &d[16..len];
        d = &d[((len + 3) & !3).min(d.len())..];
        Some((ty, seq, payload))
    })
}

fn ip_from(family: u8, v: &[u8]) -> Option<IpAddr> {
    match (family as i32, v.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        (libc::AF_INET6, 16) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).unwrap()))),
        _ => None,
    }
}

fn parse_route(p: &[u8]) -> Option<Route> {
    if p.len() < 12 {
        return None;
    }
    let (family, dst_len, table8, protocol, kind) = (p[0], p[1], p[4], p[5], p[7]);
    let mut r = Route {
        dst: match family as i32 {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
        dst_len,
        protocol,
        table: table8 as u32,
        kind,
        oif: 0,
        metric: 0,
        gateway: None,
    };
    let mut a = &p[12..];
    while a.len() >= 4 {
        let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
        let ty = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        if len < 4 || len > a.len() {
            break;
        }
        let v = &a[4..len];
        match ty {
            RTA_DST => r.dst = ip_from(family, v)?,
            RTA_OIF if v.len() == 4 => r.oif = u32::from_ne_bytes(v.try_into().unwrap()),
            RTA_PRIORITY if v.len() == 4 => r.metric = u32::from_ne_bytes(v.try_into().unwrap()),
            RTA_TABLE if v.len() == 4 => r.table = u32::from_ne_bytes(v.try_into().unwrap()),
            RTA_GATEWAY => r.gateway = ip_from(family, v),
            RTA_VIA if v.len() >= 2 => r.gateway = ip_from(u16::from_ne_bytes([v[0], v[1]]) as u8, &v[2..]),
            _ => {}
        }
        a = &a[((len + 3) & !3).min(a.len())..];
    }
    Some(r)
}
