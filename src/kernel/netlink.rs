//! A minimal rtnetlink codec and socket: just the messages weft needs (routes,
//! links, addresses, acks), written here instead of pulling in
//! netlink-packet-route, whose full message parsers add ~260 KB to an x86_64
//! release binary (measured) for attributes weft never reads.
//!
//! Layout follows `linux/netlink.h` and `linux/rtnetlink.h`: every message is
//! a 16-byte `nlmsghdr` (host byte order) followed by a family header and
//! 4-byte aligned attributes (`u16 len, u16 type, value`).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recvmsg, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

// linux/netlink.h
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// In an ack: extended-ack attributes follow the echoed header.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// In an ack: the request payload was not echoed (NETLINK_CAP_ACK).
const NLM_F_CAPPED: u16 = 0x100;
const NLMSGERR_ATTR_MSG: u16 = 1;

const SOL_NETLINK: libc::c_int = 270;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

// linux/rtnetlink.h
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTNLGRP_LINK: u32 = 1;
pub(crate) const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub(crate) const RTNLGRP_IPV6_IFADDR: u32 = 9;

// linux/if_link.h, linux/if.h, linux/if_addr.h
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_EXT_MASK: u16 = 29;
pub(crate) const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
pub(crate) const IFF_UP: u32 = 0x1;
pub(crate) const IFF_RUNNING: u32 = 0x40;
/// `struct ifinfomsg`: family, pad, type (u16), index (i32), flags, change.
pub(crate) const IFINFOMSG_LEN: usize = 16;
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
pub(crate) const IFA_BROADCAST: u16 = 4;
pub(crate) const IFA_FLAGS: u16 = 8;
pub(crate) const IFA_F_NODAD: u8 = 0x02;
pub(crate) const IFA_F_DADFAILED: u32 = 0x08;
pub(crate) const IFA_F_TENTATIVE: u32 = 0x40;
/// `struct ifaddrmsg`: family, prefix length, flags, scope, index (u32).
pub(crate) const IFADDRMSG_LEN: usize = 8;

pub(crate) const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
pub(crate) const AF_INET: u8 = libc::AF_INET as u8;
pub(crate) const AF_INET6: u8 = libc::AF_INET6 as u8;

const NLA_TYPE_MASK: u16 = 0x3fff;

/// Rounds up to netlink's 4-byte alignment.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A message that does not parse: the kernel never sends one, so seeing it
/// means a bug here or memory corruption; callers skip the rest of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub &'static str);

/// One netlink message, borrowed from a receive buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NlMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Payload after the 16-byte header (family header + attributes).
    pub payload: &'a [u8],
}

/// Iterates over the messages of one datagram. Stops at the first malformed
/// header (yielding its error once).
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

pub(crate) fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.rest;
        if r.len() < NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(DecodeError("truncated netlink header")));
        }
        let len = u32_at(r, 0) as usize;
        if len < NLMSG_HDRLEN || len > r.len() {
            self.rest = &[];
            return Some(Err(DecodeError("netlink message length out of range")));
        }
        let msg = NlMsg {
            ty: u16_at(r, 4),
            flags: u16_at(r, 6),
            seq: u32_at(r, 8),
            payload: &r[NLMSG_HDRLEN..len],
        };
        self.rest = &r[align4(len).min(r.len())..];
        Some(Ok(msg))
    }
}

/// Iterates over `(type, value)` attributes; stops at the first malformed one.
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rest;
        if r.len() < 4 {
            return None;
        }
        let len = u16_at(r, 0) as usize;
        if len < 4 || len > r.len() {
            self.rest = &[];
            return None;
        }
        let ty = u16_at(r, 2) & NLA_TYPE_MASK;
        self.rest = &r[align4(len).min(r.len())..];
        Some((ty, &r[4..len]))
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A `u32` attribute value, if it is exactly four bytes.
pub(crate) fn attr_u32(v: &[u8]) -> Option<u32> {
    (v.len() == 4).then(|| u32_at(v, 0))
}

/// The kernel's answer to one request: `errno` is positive (0 = success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub seq: u32,
    pub errno: i32,
    /// Extended-ack text ("Nexthop device is not up"), when the kernel gave one.
    pub message: Option<String>,
}

/// Parses the payload of an `NLMSG_ERROR` message (an ack when errno is 0).
pub(crate) fn parse_ack(msg: &NlMsg<'_>) -> Result<Ack, DecodeError> {
    let p = msg.payload;
    if p.len() < 4 + NLMSG_HDRLEN {
        return Err(DecodeError("truncated netlink error message"));
    }
    let error = u32_at(p, 0) as i32;
    // The echoed header says which request this answers.
    let echoed_len = u32_at(p, 4) as usize;
    let seq = u32_at(p, 4 + 8);
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if msg.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { align4(echoed_len) };
        if let Some(tlvs) = p.get(4 + echoed..) {
            for (ty, v) in attrs(tlvs) {
                if ty == NLMSGERR_ATTR_MSG {
                    let text = v.split(|b| *b == 0).next().unwrap_or_default();
                    if !text.is_empty() {
                        message = Some(String::from_utf8_lossy(text).into_owned());
                    }
                }
            }
        }
    }
    Ok(Ack { seq, errno: error.checked_neg().unwrap_or(i32::MAX), message })
}

/// Appends netlink messages to one buffer, so that many requests can go to
/// the kernel in a single datagram.
#[derive(Default)]
pub(crate) struct MsgBuilder {
    buf: Vec<u8>,
    start: usize,
}

impl MsgBuilder {
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Starts a message; `family_header` is the fixed struct after nlmsghdr.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, family_header: &[u8]) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        self.buf.extend_from_slice(family_header);
        self.pad();
    }

    pub fn attr(&mut self, ty: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    pub fn attr_u32(&mut self, ty: u16, value: u32) {
        self.attr(ty, &value.to_ne_bytes());
    }

    /// A NUL-terminated string attribute (interface names).
    pub fn attr_str(&mut self, ty: u16, value: &str) {
        let len = (4 + value.len() + 1) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute; its length is patched by [`Self::nest_end`]
    /// with the returned position. No NLA_F_NESTED, as iproute2 sends them.
    pub fn nest_begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    pub fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn end(&mut self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len());
        self.buf.resize(n, 0);
    }
}

// Link and address requests (what the WireGuard backends need from
// rtnetlink). Pure: they only append bytes, so tests check them without a
// kernel. Links are addressed by name where the kernel allows it (new, set,
// delete, get), which saves a name -> index lookup and its race.

/// `struct ifinfomsg` with AF_UNSPEC.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut h = [0u8; IFINFOMSG_LEN];
    h[0] = AF_UNSPEC;
    // h[1] pad, h[2..4] device type: 0
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// `ip link add NAME type KIND`: fails with EEXIST if NAME exists, and with
/// EOPNOTSUPP ("Unknown device type") if the kernel lacks KIND.
pub(crate) fn new_link_request(out: &mut MsgBuilder, seq: u32, name: &str, kind: &str) {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    out.begin(RTM_NEWLINK, flags, seq, &ifinfomsg(0, 0, 0));
    out.attr_str(IFLA_IFNAME, name);
    let info = out.nest_begin(IFLA_LINKINFO);
    // The kind without NUL, as iproute2 sends it (the kernel takes both).
    out.attr(IFLA_INFO_KIND, kind.as_bytes());
    out.nest_end(info);
    out.end();
}

/// `ip link del NAME`: ENODEV if there is no such link.
pub(crate) fn del_link_request(out: &mut MsgBuilder, seq: u32, name: &str) {
    out.begin(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &ifinfomsg(0, 0, 0));
    out.attr_str(IFLA_IFNAME, name);
    out.end();
}

/// `ip link set NAME mtu MTU up`: RTM_NEWLINK without NLM_F_CREATE changes
/// an existing link (ENODEV if there is none), as current iproute2 does.
pub(crate) fn set_mtu_up_request(out: &mut MsgBuilder, seq: u32, name: &str, mtu: u32) {
    out.begin(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &ifinfomsg(0, IFF_UP, IFF_UP));
    out.attr_str(IFLA_IFNAME, name);
    out.attr_u32(IFLA_MTU, mtu);
    out.end();
}

/// `ip link show NAME`: one RTM_NEWLINK answer then the ack, or ENODEV.
pub(crate) fn get_link_request(out: &mut MsgBuilder, seq: u32, name: &str) {
    out.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &ifinfomsg(0, 0, 0));
    out.attr_str(IFLA_IFNAME, name);
    out.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    out.end();
}

/// `ip link show`: a dump of every link, without statistics.
pub(crate) fn dump_links_request(out: &mut MsgBuilder, seq: u32) {
    out.begin(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, &ifinfomsg(0, 0, 0));
    out.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    out.end();
}

/// `ip addr add ADDR/PREFIX dev IFINDEX [nodad]` (EEXIST if present). Like
/// `ip`, IFA_LOCAL and IFA_ADDRESS are both the address; IPv4 prefixes
/// shorter than /31 also get their broadcast address (`brd +`).
pub(crate) fn new_addr_request(
    out: &mut MsgBuilder,
    seq: u32,
    ifindex: u32,
    addr: IpAddr,
    prefix: u8,
    nodad: bool,
) {
    let mut h = [0u8; IFADDRMSG_LEN];
    h[0] = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    h[1] = prefix;
    h[2] = if nodad { IFA_F_NODAD } else { 0 };
    // h[3] scope 0 (universe): IPv6 derives the scope from the address.
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    out.begin(RTM_NEWADDR, flags, seq, &h);
    match addr {
        IpAddr::V4(a) => {
            out.attr(IFA_LOCAL, &a.octets());
            out.attr(IFA_ADDRESS, &a.octets());
            if prefix < 31 {
                let brd = u32::from(a) | (u32::MAX >> prefix);
                out.attr(IFA_BROADCAST, &brd.to_be_bytes());
            }
        }
        IpAddr::V6(a) => {
            out.attr(IFA_LOCAL, &a.octets());
            out.attr(IFA_ADDRESS, &a.octets());
        }
    }
    out.end();
}

/// The index and name of an RTM_NEWLINK payload; `None` if it is too short,
/// not AF_UNSPEC (bridge port messages) or has no name.
pub(crate) fn link_index_and_name(p: &[u8]) -> Option<(u32, String)> {
    if p.len() < IFINFOMSG_LEN || p[0] != AF_UNSPEC {
        return None;
    }
    let name = attrs(&p[IFINFOMSG_LEN..]).find(|(t, _)| *t == IFLA_IFNAME).map(|(_, v)| {
        let raw = v.split(|b| *b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(raw).into_owned()
    })?;
    Some((u32_at(p, 4), name))
}

/// Largest datagram the kernel sends on rtnetlink (dumps are capped at 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// An rtnetlink socket registered with the tokio reactor.
pub(crate) struct NlSocket {
    fd: AsyncFd<OwnedFd>,
    seq: u32,
    buf: Vec<u8>,
}

fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` outlives the call and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl NlSocket {
    /// Opens a NETLINK_ROUTE socket subscribed to `groups` (RTNLGRP_*
    /// numbers). Must be called inside a tokio runtime.
    pub fn open(groups: &[u32]) -> io::Result<NlSocket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        for g in groups {
            set_int_opt(&fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, *g as libc::c_int)?;
        }
        // Error text from the kernel makes per-route failures explainable;
        // old kernels lack it, which only loses the text.
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        // Acks then carry no copy of the request: a batch of acks stays small.
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        // Lets the kernel filter route dumps by table and protocol (>= 4.20);
        // results are filtered here as well, so failure is harmless.
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open
        // and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(NlSocket { fd, seq: 0, buf: vec![0; RECV_BUF] })
    }

    /// Sets the receive buffer, forcing past rmem_max when privileged (a
    /// batch of acks, or a burst of link events, must fit without loss).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let fd = self.fd.get_ref();
        let v = bytes.min(i32::MAX as usize) as libc::c_int;
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
            .or_else(|_| set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v))
    }

    pub fn next_seq(&mut self) -> u32 {
        self.reserve_seqs(1)
    }

    /// Reserves `n` (>= 1) consecutive sequence numbers and returns the
    /// first; the range never contains 0, which notifications carry.
    pub fn reserve_seqs(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        let mut base = self.seq.wrapping_add(1);
        if base == 0 || base.checked_add(n - 1).is_none() {
            base = 1;
        }
        self.seq = base + (n - 1);
        base
    }

    /// Sends one datagram (possibly many messages) to the kernel. The kernel
    /// processes rtnetlink requests inside this call, so their acks are
    /// queued on the socket when it returns.
    pub fn send(&self, data: &[u8]) -> io::Result<()> {
        let kernel = NetlinkAddr::new(0, 0);
        loop {
            match sendto(self.fd.get_ref().as_raw_fd(), data, &kernel, MsgFlags::empty()) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send")),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one request (`seq` its sequence number) and reads its answer:
    /// every message carrying `seq` goes to `on_reply`, until the ack
    /// (NLMSG_ERROR) or the end of a dump (NLMSG_DONE), whose errno is
    /// returned. Messages for other sequence numbers (answers to a request
    /// whose caller went away, notifications) are skipped. Cancel-safe in
    /// the same way: what a dropped call leaves queued is skipped later.
    pub async fn request(
        &mut self,
        req: &[u8],
        seq: u32,
        mut on_reply: impl FnMut(&NlMsg<'_>),
    ) -> io::Result<Ack> {
        self.send(req)?;
        loop {
            let datagram = self.recv().await?;
            for msg in messages(datagram) {
                let msg = msg.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
                if msg.seq != seq {
                    continue;
                }
                match msg.ty {
                    NLMSG_ERROR => {
                        return parse_ack(&msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0));
                    }
                    NLMSG_DONE => {
                        // A dump may end with an error (e.g. EINTR) in place of 0.
                        let error = if msg.payload.len() >= 4 { u32_at(msg.payload, 0) as i32 } else { 0 };
                        return Ok(Ack {
                            seq,
                            errno: error.checked_neg().unwrap_or(i32::MAX),
                            message: None,
                        });
                    }
                    _ => on_reply(&msg),
                }
            }
        }
    }

    /// Receives one datagram without waiting: `Ok(None)` when none is queued.
    /// Datagrams not sent by the kernel are discarded.
    pub fn try_recv(&mut self) -> io::Result<Option<&[u8]>> {
        match recv_kernel(self.fd.get_ref(), &mut self.buf)? {
            Some(n) => Ok(Some(&self.buf[..n])),
            None => Ok(None),
        }
    }

    /// Waits for and receives one datagram from the kernel. Cancel-safe: a
    /// datagram is only taken off the socket by a call that returns it.
    pub async fn recv(&mut self) -> io::Result<&[u8]> {
        let n = loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| match recv_kernel(fd.get_ref(), &mut self.buf) {
                Ok(Some(n)) => Ok(n),
                Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            }) {
                Ok(r) => break r?,
                Err(_would_block) => continue,
            }
        };
        Ok(&self.buf[..n])
    }
}

/// One `recvmsg`: `Ok(None)` on EAGAIN; datagrams from other sockets than the
/// kernel's (port id 0) are dropped.
fn recv_kernel(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        match recvmsg::<NetlinkAddr>(fd.as_raw_fd(), &mut iov, None, MsgFlags::empty()) {
            Ok(m) => {
                if m.address.map(|a| a.pid()) != Some(0) {
                    continue;
                }
                if m.flags.contains(MsgFlags::MSG_TRUNC) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "netlink datagram truncated"));
                }
                return Ok(Some(m.bytes));
            }
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// True if this error is the kernel telling us it dropped messages for us
/// (receive buffer overrun).
pub(crate) fn is_overrun(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOBUFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_parser_round_trip() {
        let mut b = MsgBuilder::default();
        b.begin(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK, 7, &[1, 2, 3]);
        b.attr_u32(6, 0xdead_beef);
        b.attr(1, &[9, 9, 9, 9, 9]);
        b.end();
        b.begin(RTM_DELROUTE, NLM_F_REQUEST, 8, &[0; 12]);
        b.end();
        assert_eq!(b.len() % 4, 0);
        let msgs: Vec<_> = messages(b.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].ty, msgs[0].seq), (RTM_NEWROUTE, 7));
        assert_eq!((msgs[1].ty, msgs[1].seq), (RTM_DELROUTE, 8));
        // family header is padded to 4 bytes, then the attributes follow
        let a: Vec<_> = attrs(&msgs[0].payload[4..]).collect();
        assert_eq!(a, vec![(6, &0xdead_beefu32.to_ne_bytes()[..]), (1, &[9u8; 5][..])]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // length field larger than the buffer
        let mut m = vec![0u8; 20];
        m[0..4].copy_from_slice(&100u32.to_ne_bytes());
        let r: Vec<_> = messages(&m).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
        // short tail
        assert!(messages(&[1, 2, 3]).next().unwrap().is_err());
        // attributes: bad lengths stop iteration
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0, 0, 0]).count(), 0);
        for cut in 0..40 {
            let mut b = MsgBuilder::default();
            b.begin(NLMSG_ERROR, 0, 1, &[0; 20]);
            b.end();
            let bytes = &b.as_bytes()[..cut.min(b.len())];
            for msg in messages(bytes).flatten() {
                let _ = parse_ack(&msg);
            }
        }
    }

    #[test]
    fn ack_with_extended_message() {
        // NLMSG_ERROR: errno -ENETDOWN, capped echo of the request header,
        // then an NLMSGERR_ATTR_MSG text.
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::ENETDOWN).to_ne_bytes());
        let mut echoed = [0u8; 16];
        echoed[0..4].copy_from_slice(&64u32.to_ne_bytes());
        echoed[8..12].copy_from_slice(&42u32.to_ne_bytes());
        payload.extend_from_slice(&echoed);
        let mut b = MsgBuilder::default();
        b.begin(NLMSG_ERROR, NLM_F_ACK_TLVS | NLM_F_CAPPED, 42, &payload);
        b.attr(NLMSGERR_ATTR_MSG, b"Nexthop device is not up\0");
        b.end();
        let msg = messages(b.as_bytes()).next().unwrap().unwrap();
        let ack = parse_ack(&msg).unwrap();
        assert_eq!(ack.seq, 42);
        assert_eq!(ack.errno, libc::ENETDOWN);
        assert_eq!(ack.message.as_deref(), Some("Nexthop device is not up"));
    }
    /// The bytes of one message, built by `f`, split into header fields,
    /// family header and attributes, checking the length field on the way.
    fn one(f: impl FnOnce(&mut MsgBuilder)) -> (u16, u16, u32, Vec<u8>) {
        let mut b = MsgBuilder::default();
        f(&mut b);
        let bytes = b.as_bytes();
        assert_eq!(u32_at(bytes, 0) as usize, bytes.len(), "length field covers the message");
        assert_eq!(bytes.len() % 4, 0);
        let msgs: Vec<_> = messages(bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        (msgs[0].ty, msgs[0].flags, msgs[0].seq, msgs[0].payload.to_vec())
    }

    fn ne16(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }

    fn ifinfo_bytes(index: u32, flags: u32, change: u32) -> Vec<u8> {
        let mut h = vec![AF_UNSPEC, 0, 0, 0];
        h.extend_from_slice(&index.to_ne_bytes());
        h.extend_from_slice(&flags.to_ne_bytes());
        h.extend_from_slice(&change.to_ne_bytes());
        h
    }

    #[test]
    fn new_wireguard_link_bytes() {
        let (ty, flags, seq, p) = one(|b| new_link_request(b, 9, "wg-ab", "wireguard"));
        assert_eq!((ty, seq), (RTM_NEWLINK, 9));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let mut want = ifinfo_bytes(0, 0, 0);
        // IFLA_IFNAME "wg-ab\0" (10 bytes) + 2 padding
        want.extend_from_slice(&ne16(10));
        want.extend_from_slice(&ne16(IFLA_IFNAME));
        want.extend_from_slice(b"wg-ab\0\0\0");
        // IFLA_LINKINFO { IFLA_INFO_KIND "wireguard" (13 bytes) + 3 padding }
        want.extend_from_slice(&ne16(4 + 16));
        want.extend_from_slice(&ne16(IFLA_LINKINFO));
        want.extend_from_slice(&ne16(13));
        want.extend_from_slice(&ne16(IFLA_INFO_KIND));
        want.extend_from_slice(b"wireguard\0\0\0");
        assert_eq!(p, want);
        // and it parses back through the generic attribute iterator
        let a: Vec<_> = attrs(&p[IFINFOMSG_LEN..]).collect();
        assert_eq!(a[0], (IFLA_IFNAME, &b"wg-ab\0"[..]));
        assert_eq!(a[1].0, IFLA_LINKINFO);
        assert_eq!(attrs(a[1].1).collect::<Vec<_>>(), vec![(IFLA_INFO_KIND, &b"wireguard"[..])]);
    }

    #[test]
    fn delete_set_and_get_link_bytes() {
        let name_attr = |n: &[u8]| {
            let mut v = Vec::new();
            v.extend_from_slice(&ne16((4 + n.len() + 1) as u16));
            v.extend_from_slice(&ne16(IFLA_IFNAME));
            v.extend_from_slice(n);
            v.push(0);
            v.resize(align4(v.len()), 0);
            v
        };
        let (ty, flags, seq, p) = one(|b| del_link_request(b, 3, "wg0"));
        assert_eq!((ty, flags, seq), (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 3));
        assert_eq!(p, [ifinfo_bytes(0, 0, 0), name_attr(b"wg0")].concat());

        let (ty, flags, _, p) = one(|b| set_mtu_up_request(b, 4, "wg0", 1420));
        assert_eq!((ty, flags), (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK), "no CREATE: only changes a link");
        let mut mtu = Vec::new();
        mtu.extend_from_slice(&ne16(8));
        mtu.extend_from_slice(&ne16(IFLA_MTU));
        mtu.extend_from_slice(&1420u32.to_ne_bytes());
        assert_eq!(p, [ifinfo_bytes(0, IFF_UP, IFF_UP), name_attr(b"wg0"), mtu].concat());

        let (ty, flags, _, p) = one(|b| get_link_request(b, 5, "eth0"));
        assert_eq!((ty, flags), (RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK));
        let mut mask = Vec::new();
        mask.extend_from_slice(&ne16(8));
        mask.extend_from_slice(&ne16(IFLA_EXT_MASK));
        mask.extend_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
        assert_eq!(p, [ifinfo_bytes(0, 0, 0), name_attr(b"eth0"), mask.clone()].concat());

        let (ty, flags, _, p) = one(|b| dump_links_request(b, 6));
        assert_eq!((ty, flags), (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(p, [ifinfo_bytes(0, 0, 0), mask].concat());
    }

    #[test]
    fn new_address_bytes() {
        let ll: std::net::Ipv6Addr = "fe80::1:2".parse().unwrap();
        let (ty, flags, seq, p) = one(|b| new_addr_request(b, 11, 7, IpAddr::V6(ll), 64, true));
        assert_eq!((ty, seq), (RTM_NEWADDR, 11));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let mut want = vec![AF_INET6, 64, IFA_F_NODAD, 0];
        want.extend_from_slice(&7u32.to_ne_bytes());
        for ty in [IFA_LOCAL, IFA_ADDRESS] {
            want.extend_from_slice(&ne16(20));
            want.extend_from_slice(&ne16(ty));
            want.extend_from_slice(&ll.octets());
        }
        assert_eq!(p, want);

        // IPv4 /24: no NODAD, broadcast 10.1.2.255
        let (_, _, _, p) = one(|b| new_addr_request(b, 12, 7, "10.1.2.3".parse().unwrap(), 24, false));
        let mut want = vec![AF_INET, 24, 0, 0];
        want.extend_from_slice(&7u32.to_ne_bytes());
        for (ty, a) in
            [(IFA_LOCAL, [10, 1, 2, 3]), (IFA_ADDRESS, [10, 1, 2, 3]), (IFA_BROADCAST, [10, 1, 2, 255])]
        {
            want.extend_from_slice(&ne16(8));
            want.extend_from_slice(&ne16(ty));
            want.extend_from_slice(&a);
        }
        assert_eq!(p, want);

        // /31, /32 and /0: no broadcast beyond the point-to-point cases
        for (plen, brd) in [(31, None), (32, None), (0, Some([255u8; 4]))] {
            let (_, _, _, p) = one(|b| new_addr_request(b, 1, 7, "10.1.2.3".parse().unwrap(), plen, false));
            let got = attrs(&p[IFADDRMSG_LEN..]).find(|(t, _)| *t == IFA_BROADCAST).map(|(_, v)| v.to_vec());
            assert_eq!(got, brd.map(|b| b.to_vec()), "/{plen}");
        }
    }

    #[test]
    fn link_index_and_name_from_answers() {
        let mut b = MsgBuilder::default();
        b.begin(RTM_NEWLINK, 0, 1, &ifinfo_bytes(42, IFF_UP, 0));
        b.attr_u32(IFLA_MTU, 1500);
        b.attr_str(IFLA_IFNAME, "wg-peer1");
        b.end();
        let p = &b.as_bytes()[NLMSG_HDRLEN..];
        assert_eq!(link_index_and_name(p), Some((42, "wg-peer1".to_string())));
        // truncated header, no name, not AF_UNSPEC: nothing, and never a panic
        assert_eq!(link_index_and_name(&p[..IFINFOMSG_LEN - 1]), None);
        assert_eq!(link_index_and_name(&p[..IFINFOMSG_LEN + 8]), None);
        let mut bridge = p.to_vec();
        bridge[0] = libc::AF_BRIDGE as u8;
        assert_eq!(link_index_and_name(&bridge), None);
        for cut in 0..p.len() {
            let _ = link_index_and_name(&p[..cut]);
        }
    }
}
