//! rtnetlink with neli's rtnetlink types: `Rtmsg`, `Ifinfomsg`, `Ifaddrmsg`
//! and their `Rtattr` attributes, neli's netlink header and ack parsing,
//! and neli's socket, registered with tokio here. The same crate speaks the
//! WireGuard generic netlink family (`wg::netlink`), so weft has one netlink
//! stack. Chosen by measurement over netlink-packet-route (with or without
//! the rtnetlink handle): see docs/BENCHMARKS.md, "Netlink stack".
//!
//! Message layouts, attribute numbers and alignment are neli's; the few
//! constants neli lacks (or names only when built for glibc) come from
//! linux-raw-sys, the kernel's UAPI headers.

use std::io::{self, Cursor};
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use neli::consts::nl::{NlmF, Nlmsg, NlmsgerrAttr};
use neli::consts::rtnl::{Ifa, IfaF, Iff, Ifla, IflaInfo, RtAddrFamily, RtScope, Rta, RtaType, Rtm};
use neli::consts::socket::NlFamily;
use neli::err::{DeError, SerError};
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder, Rtattr, RtattrBuilder, Rtmsg};
use neli::socket::NlSocket as RawSocket;
use neli::types::{Buffer, RtBuffer};
use neli::utils::Groups;
use neli::{FromBytes, FromBytesWithInput, Header, Size, ToBytes};
use nix::sys::socket::{recvmsg, sendto, MsgFlags, NetlinkAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// In a dump answer: the dump was interrupted by a change (retry it).
pub(crate) const NLM_F_DUMP_INTR: u16 = NlmF::DUMP_INTR.bits();

/// A link or address message. Route messages are the FIB's, which sends
/// them with [`Batch::push_route`] and reads them as [`RouteMsg`] (without
/// copying: a dump carries thousands).
#[derive(Debug, Clone)]
pub(crate) enum RtMsg {
    Link(Ifinfomsg),
    Addr(Ifaddrmsg),
}

/// A request: message type, message, and flags (NLM_F_REQUEST is added).
pub(crate) type Request = (Rtm, RtMsg, NlmF);

/// Why a datagram or message does not parse: the kernel never sends one, so
/// it means a bug here or in the crate; callers skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.0)
}

/// One attribute, its value serialized by neli (integers in host order,
/// `&str` NUL-terminated, byte arrays as they are).
pub(crate) fn attr<T: RtaType, P: Size + ToBytes>(ty: T, value: P) -> Rtattr<T, Buffer> {
    RtattrBuilder::default()
        .rta_type(ty)
        .rta_payload(value)
        .build()
        .expect("serializing an attribute value into a Vec cannot fail")
}

/// An address attribute: 4 or 16 bytes, network order.
pub(crate) fn ip_attr<T: RtaType>(ty: T, a: IpAddr) -> Rtattr<T, Buffer> {
    match a {
        IpAddr::V4(a) => attr(ty, a.octets()),
        IpAddr::V6(a) => attr(ty, a.octets()),
    }
}

/// Where a field's bytes are, instead of a copy of them: neli reads the
/// field's length and alignment as for any payload, and the caller then
/// borrows the bytes from the buffer it parsed (no allocation per message
/// or attribute, which neli's `Buffer` costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// The bytes of this span in `parsed`, the buffer it was read from.
    fn of<'a>(&self, parsed: &'a [u8]) -> &'a [u8] {
        &parsed[self.start..self.start + self.len]
    }
}

impl Size for Span {
    fn unpadded_size(&self) -> usize {
        self.len
    }
}

impl FromBytesWithInput for Span {
    type Input = usize;

    fn from_bytes_with_input(buffer: &mut Cursor<impl AsRef<[u8]>>, len: usize) -> Result<Self, DeError> {
        let start = buffer.position() as usize;
        match start.checked_add(len) {
            Some(end) if end <= buffer.get_ref().as_ref().len() => {
                buffer.set_position(end as u64);
                Ok(Span { start, len })
            }
            _ => Err(DeError::InvalidInput(len)),
        }
    }
}

/// A route message as received: neli's `Rtmsg` header, and the attributes
/// read in place (see [`RouteMsg::attrs`]).
#[derive(Debug)]
pub(crate) struct RouteMsg<'a> {
    header: Rtmsg,
    /// The whole message body: the header, then the attributes.
    bytes: &'a [u8],
}

impl<'a> RouteMsg<'a> {
    /// Reads the header of a route message body; `None` if it is too short.
    pub fn parse(bytes: &'a [u8]) -> Option<RouteMsg<'a>> {
        // Only the header: its attribute list parses empty, without allocating.
        let header = Rtmsg::from_bytes_with_input(&mut Cursor::new(bytes), Rtmsg::header_size()).ok()?;
        Some(RouteMsg { header, bytes })
    }

    /// The header fields (its own attribute list is empty).
    pub fn header(&self) -> &Rtmsg {
        &self.header
    }

    /// The message body as the kernel sent it.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes, type and value, each read by neli and borrowed from
    /// the message; an attribute that does not parse ends the list with an
    /// error.
    pub fn attrs(&self) -> Attrs<'a, Rta> {
        let mut at = Cursor::new(self.bytes);
        at.set_position(Rtmsg::header_size() as u64);
        Attrs { at, failed: false, kind: std::marker::PhantomData }
    }
}

/// The attributes of a message, read one by one (see [`RouteMsg::attrs`]).
pub(crate) struct Attrs<'a, T> {
    at: Cursor<&'a [u8]>,
    failed: bool,
    kind: std::marker::PhantomData<T>,
}

impl<'a, T: RtaType> Iterator for Attrs<'a, T> {
    type Item = Result<(T, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at.position() as usize >= self.at.get_ref().len() {
            return None;
        }
        match Rtattr::<T, Span>::from_bytes(&mut self.at) {
            Ok(a) => Some(Ok((*a.rta_type(), a.rta_payload().of(self.at.get_ref())))),
            Err(e) => {
                self.failed = true;
                Some(Err(DecodeError(format!("route attribute: {e}"))))
            }
        }
    }
}

/// A route message to send (see [`Batch::push_route`]): neli's `Rtmsg`
/// header without attributes of its own, then neli attributes held by
/// reference, so that the attributes many routes share (table, metric,
/// interface, next hop) are built once instead of once per route.
#[derive(Debug)]
pub(crate) struct RouteBody<'a> {
    pub header: Rtmsg,
    pub attrs: &'a [&'a Rtattr<Rta, Buffer>],
}

impl Size for RouteBody<'_> {
    fn unpadded_size(&self) -> usize {
        // As neli sizes an Rtmsg with these attributes in its own list.
        self.header.unpadded_size() + self.attrs.iter().map(|a| a.padded_size()).sum::<usize>()
    }
}

impl ToBytes for RouteBody<'_> {
    fn to_bytes(&self, buffer: &mut Cursor<Vec<u8>>) -> Result<(), SerError> {
        self.header.to_bytes(buffer)?;
        self.attrs.iter().try_for_each(|a| a.to_bytes(buffer))
    }
}

fn emit<P: ToBytes + Size>(ty: Rtm, flags: NlmF, seq: u32, payload: P, out: &mut Cursor<Vec<u8>>) {
    let msg: Nlmsghdr<Rtm, P> = NlmsghdrBuilder::default()
        .nl_type(ty)
        .nl_flags(flags | NlmF::REQUEST)
        .nl_seq(seq)
        .nl_payload(NlPayload::Payload(payload))
        .build()
        .expect("a header with every field set always builds");
    msg.to_bytes(out).expect("serializing into a Vec cannot fail");
}

/// Requests serialized back to back, so that many go to the kernel in a
/// single datagram.
#[derive(Default)]
pub(crate) struct Batch {
    buf: Cursor<Vec<u8>>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.buf.get_mut().clear();
        self.buf.set_position(0);
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get_ref()
    }

    /// Appends a request with sequence number `seq`; `ack` adds NLM_F_ACK.
    pub fn push(&mut self, (ty, msg, flags): Request, seq: u32, ack: bool) {
        let flags = if ack { flags | NlmF::ACK } else { flags };
        match msg {
            RtMsg::Link(m) => emit(ty, flags, seq, m, &mut self.buf),
            RtMsg::Addr(m) => emit(ty, flags, seq, m, &mut self.buf),
        }
    }

    /// Appends a route request (NLM_F_REQUEST is added; `ack` adds NLM_F_ACK).
    pub fn push_route(&mut self, ty: Rtm, flags: NlmF, body: RouteBody<'_>, seq: u32, ack: bool) {
        let flags = if ack { flags | NlmF::ACK } else { flags };
        emit(ty, flags, seq, body, &mut self.buf);
    }

    /// Appends a request whose body is a message as the kernel sent it
    /// (`ip route flush` sends dumped routes back as deletions).
    pub fn push_bytes(&mut self, ty: Rtm, flags: NlmF, body: &[u8], seq: u32, ack: bool) {
        let flags = if ack { flags | NlmF::ACK } else { flags };
        emit(ty, flags, seq, body, &mut self.buf);
    }
}

/// The kernel's answer to one request: `errno` is positive (0 = success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub seq: u32,
    pub errno: i32,
    /// Extended-ack text ("Nexthop device is not up"), when the kernel gave one.
    pub message: Option<String>,
}

/// What one message of a datagram is.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// An ack or error (NLMSG_ERROR), or the end of a dump (NLMSG_DONE).
    Ack(Ack),
    /// A route message, read in place.
    Route(RouteMsg<'a>),
    /// A link or address message.
    Msg(RtMsg),
    /// Any other message, or one that did not parse (skipped).
    Other,
}

/// One message of a datagram.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: Body<'a>,
}

impl Frame<'_> {
    /// The end of a dump (rather than an ack or error).
    pub fn is_done(&self) -> bool {
        self.ty == u16::from(Nlmsg::Done)
    }
}

fn errno_of(code: libc::c_int) -> i32 {
    code.checked_neg().unwrap_or(i32::MAX)
}

fn typed(ty: Rtm, body: &[u8]) -> Body<'_> {
    let len = body.len();
    let parsed = match ty {
        Rtm::Newroute | Rtm::Delroute | Rtm::Getroute => {
            return RouteMsg::parse(body).map_or(Body::Other, Body::Route)
        }
        Rtm::Newlink | Rtm::Dellink | Rtm::Getlink => {
            Ifinfomsg::from_bytes_with_input(&mut Cursor::new(body), len).ok().map(RtMsg::Link)
        }
        Rtm::Newaddr | Rtm::Deladdr | Rtm::Getaddr => {
            Ifaddrmsg::from_bytes_with_input(&mut Cursor::new(body), len).ok().map(RtMsg::Addr)
        }
        _ => None,
    };
    parsed.map_or(Body::Other, Body::Msg)
}

/// The messages of one datagram, each read by neli in place. Yields an
/// error and stops if the framing is broken; a message whose body does not
/// parse becomes [`Body::Other`].
pub(crate) struct Frames<'a> {
    at: Cursor<&'a [u8]>,
    failed: bool,
}

impl<'a> Frames<'a> {
    pub fn new(datagram: &'a [u8]) -> Frames<'a> {
        Frames { at: Cursor::new(datagram), failed: false }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let datagram: &'a [u8] = self.at.get_ref();
        if self.failed || self.at.position() as usize >= datagram.len() {
            return None;
        }
        let m = match Nlmsghdr::<Rtm, Span>::from_bytes(&mut self.at) {
            Ok(m) => m,
            Err(e) => {
                self.failed = true;
                return Some(Err(DecodeError(format!("netlink datagram: {e}"))));
            }
        };
        let (ty, flags, seq) = (*m.nl_type(), m.nl_flags().bits(), *m.nl_seq());
        let ack = |errno, message| Body::Ack(Ack { seq, errno, message });
        let body = match m.nl_payload() {
            NlPayload::Ack(_) => ack(0, None),
            NlPayload::Err(e) => {
                let msg = e.ext_ack().iter().find(|a| *a.nla_type().nla_type() == NlmsgerrAttr::Msg);
                let text = msg.and_then(|a| {
                    let raw = a.nla_payload().as_ref().split(|b| *b == 0).next().unwrap_or_default();
                    (!raw.is_empty()).then(|| String::from_utf8_lossy(raw).into_owned())
                });
                ack(errno_of(*e.error()), text)
            }
            NlPayload::DumpExtAck(e) => ack(errno_of(*e.error()), None),
            NlPayload::Empty if u16::from(ty) == u16::from(Nlmsg::Done) => ack(0, None),
            NlPayload::Payload(p) => typed(ty, p.of(datagram)),
            NlPayload::Empty => Body::Other,
        };
        Some(Ok(Frame { ty: ty.into(), flags, seq, body }))
    }
}

/// Splits and parses one datagram. Fails as a whole only if its framing is
/// broken; a message whose body does not parse becomes [`Body::Other`].
pub(crate) fn frames(datagram: &[u8]) -> Result<Vec<Frame<'_>>, DecodeError> {
    Frames::new(datagram).collect()
}

// Link and address requests (what the WireGuard backends and the monitor
// need). Pure, so tests check them without a kernel. Links are addressed by
// name where the kernel allows it (new, set, delete, get), which saves a
// name -> index lookup and its race.

fn link(name: Option<&str>, up: bool, more: Vec<Rtattr<Ifla, Buffer>>) -> RtMsg {
    let mut attrs = RtBuffer::new();
    if let Some(n) = name {
        attrs.push(attr(Ifla::Ifname, n));
    }
    for a in more {
        attrs.push(a);
    }
    let b = IfinfomsgBuilder::default().ifi_family(RtAddrFamily::Unspecified).rtattrs(attrs);
    let b = if up { b.up() } else { b };
    RtMsg::Link(b.build().expect("every ifinfomsg field has a value"))
}

/// IFLA_EXT_MASK without statistics: answers stay small.
fn skip_stats() -> Rtattr<Ifla, Buffer> {
    attr(Ifla::ExtMask, linux_raw_sys::netlink::RTEXT_FILTER_SKIP_STATS)
}

/// `ip link add NAME type KIND`: fails with EEXIST if NAME exists, and with
/// EOPNOTSUPP ("Unknown device type") if the kernel lacks KIND.
pub(crate) fn new_link_request(name: &str, kind: &str) -> Request {
    // The kind without NUL, as iproute2 sends it (the kernel takes both).
    let info = attr(Ifla::Linkinfo, &[][..])
        .nest(&attr(IflaInfo::Kind, kind.as_bytes()))
        .expect("nesting into a Vec");
    (Rtm::Newlink, link(Some(name), false, vec![info]), NlmF::ACK | NlmF::CREATE | NlmF::EXCL)
}

/// `ip link del NAME`: ENODEV if there is no such link.
pub(crate) fn del_link_request(name: &str) -> Request {
    (Rtm::Dellink, link(Some(name), false, vec![]), NlmF::ACK)
}

/// `ip link set NAME mtu MTU up`: RTM_NEWLINK without NLM_F_CREATE changes
/// an existing link (ENODEV if there is none), as current iproute2 does.
pub(crate) fn set_mtu_up_request(name: &str, mtu: u32) -> Request {
    (Rtm::Newlink, link(Some(name), true, vec![attr(Ifla::Mtu, mtu)]), NlmF::ACK)
}

/// `ip link show NAME`: one RTM_NEWLINK answer then the ack, or ENODEV.
pub(crate) fn get_link_request(name: &str) -> Request {
    (Rtm::Getlink, link(Some(name), false, vec![skip_stats()]), NlmF::ACK)
}

/// `ip link show`: a dump of every link, without statistics.
pub(crate) fn dump_links_request() -> Request {
    (Rtm::Getlink, link(None, false, vec![skip_stats()]), NlmF::DUMP)
}

fn addr_msg(
    family: RtAddrFamily,
    prefix: u8,
    flags: IfaF,
    index: u32,
    attrs: RtBuffer<Ifa, Buffer>,
) -> RtMsg {
    RtMsg::Addr(
        IfaddrmsgBuilder::default()
            .ifa_family(family)
            .ifa_prefixlen(prefix)
            .ifa_flags(flags)
            .ifa_scope(RtScope::Universe)
            .ifa_index(index)
            .rtattrs(attrs)
            .build()
            .expect("every ifaddrmsg field has a value"),
    )
}

/// `ip addr show`: a dump of every address.
pub(crate) fn dump_addrs_request() -> Request {
    (Rtm::Getaddr, addr_msg(RtAddrFamily::Unspecified, 0, IfaF::empty(), 0, RtBuffer::new()), NlmF::DUMP)
}

/// `ip addr add ADDR/PREFIX dev IFINDEX [nodad]` (EEXIST if present). Like
/// `ip`, IFA_LOCAL and IFA_ADDRESS are both the address; IPv4 prefixes
/// shorter than /31 also get their broadcast address (`brd +`). Scope 0
/// (universe): IPv6 derives the scope from the address.
pub(crate) fn new_addr_request(ifindex: u32, addr: IpAddr, prefix: u8, nodad: bool) -> Request {
    let mut attrs = RtBuffer::new();
    attrs.push(ip_attr(Ifa::Local, addr));
    attrs.push(ip_attr(Ifa::Address, addr));
    if let IpAddr::V4(a) = addr {
        if prefix < 31 {
            let brd = u32::from(a) | (u32::MAX >> prefix);
            attrs.push(ip_attr(Ifa::Broadcast, IpAddr::from(brd.to_be_bytes())));
        }
    }
    let flags = if nodad { IfaF::NODAD } else { IfaF::empty() };
    let m = addr_msg(family_of(addr), prefix, flags, ifindex, attrs);
    (Rtm::Newaddr, m, NlmF::ACK | NlmF::CREATE | NlmF::EXCL)
}

pub(crate) fn family_of(a: IpAddr) -> RtAddrFamily {
    if a.is_ipv4() {
        RtAddrFamily::Inet
    } else {
        RtAddrFamily::Inet6
    }
}

#[cfg(test)]
pub(crate) fn ip_octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An address attribute's value of `family`; `None` for other sizes.
pub(crate) fn ip_from(family: RtAddrFamily, v: &[u8]) -> Option<IpAddr> {
    match family {
        RtAddrFamily::Inet => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
        RtAddrFamily::Inet6 => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
        _ => None,
    }
}

/// A `u32` attribute value, if it is exactly four bytes.
pub(crate) fn u32_of(v: &[u8]) -> Option<u32> {
    v.try_into().ok().map(u32::from_ne_bytes)
}

/// A string attribute value, up to its NUL.
pub(crate) fn str_of(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// The index and name of a link message; `None` if it is not about a whole
/// link (bridge port messages carry AF_BRIDGE) or has no name.
pub(crate) fn link_index_and_name(m: &Ifinfomsg) -> Option<(u32, String)> {
    if *m.ifi_family() != RtAddrFamily::Unspecified {
        return None;
    }
    let name = m
        .rtattrs()
        .iter()
        .find(|a| *a.rta_type() == Ifla::Ifname)
        .map(|a| str_of(a.rta_payload().as_ref()))?;
    Some((*m.ifi_index() as u32, name))
}

/// Whether a link is administratively up and has carrier.
pub(crate) fn link_up_running(m: &Ifinfomsg) -> (bool, bool) {
    (m.ifi_flags().contains(Iff::UP), m.ifi_flags().contains(Iff::RUNNING))
}

/// Largest datagram the kernel sends on rtnetlink (dumps are capped at 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// An rtnetlink socket registered with the tokio reactor.
pub(crate) struct NlSocket {
    fd: AsyncFd<RawSocket>,
    seq: u32,
    buf: Vec<u8>,
    batch: Batch,
}

fn set_int_opt(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
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
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl NlSocket {
    /// Opens a non-blocking rtnetlink socket joined to `groups`
    /// (RTNLGRP_* numbers). Must be called inside a tokio runtime.
    pub fn open(groups: &[u32]) -> io::Result<NlSocket> {
        let sock = RawSocket::connect(NlFamily::Route, None, Groups::new_groups(groups))?;
        sock.nonblock()?;
        // The kernel's explanation of a refusal comes with the ack; best
        // effort (older kernels lack it). Not NETLINK_CAP_ACK: neli parses
        // the echoed request by its original length, so it must be whole.
        let _ = sock.enable_ext_ack(true);
        // Dumps filter on table and protocol (routes): the kernel then sends
        // only weft's own routes.
        let _ = sock.enable_strict_checking(true);
        // SAFETY: the AsyncFd owns the socket, which closes its descriptor
        // only when dropped, so the descriptor stays open and the same for
        // the AsyncFd's whole life.
        let fd =
            unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(NlSocket { fd, seq: 0, buf: vec![0; RECV_BUF], batch: Batch::default() })
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

    /// Sends one request with a fresh sequence number, which it returns.
    pub fn send_one(&mut self, request: Request) -> io::Result<u32> {
        let seq = self.next_seq();
        self.batch.clear();
        self.batch.push(request, seq, false);
        self.send(self.batch.as_bytes())?;
        Ok(seq)
    }

    /// Sends one request and reads its answer: every route, link or address
    /// message carrying its sequence number goes to `on_reply` (with its
    /// header flags), until the ack (NLMSG_ERROR) or the end of a dump
    /// (NLMSG_DONE), which is returned. Messages for other sequence numbers
    /// (answers to a request whose caller went away, notifications) are
    /// skipped. Cancel-safe in the same way: what a dropped call leaves
    /// queued is skipped later.
    pub async fn request(
        &mut self,
        request: Request,
        mut on_reply: impl FnMut(u16, RtMsg),
    ) -> io::Result<Ack> {
        let seq = self.send_one(request)?;
        loop {
            let datagram = self.recv().await?;
            for frame in frames(datagram).map_err(invalid)? {
                if frame.seq != seq {
                    continue;
                }
                match frame.body {
                    Body::Ack(ack) => return Ok(ack),
                    Body::Msg(m) => on_reply(frame.flags, m),
                    Body::Route(_) | Body::Other => {}
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
fn recv_kernel(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
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
    use std::net::Ipv4Addr;

    use neli::err::{NlmsgerrBuilder, NlmsghdrErrBuilder};
    use neli::genl::{AttrTypeBuilder, NlattrBuilder};
    use neli::types::GenlBuffer;
    use neli::Header;

    use super::*;

    /// Serializes one request and parses it back, as the kernel would see
    /// it: header type, flags and sequence number, and the typed message.
    fn round_trip(req: Request) -> (Rtm, NlmF, RtMsg) {
        let mut b = Batch::default();
        b.push(req, 9, false);
        assert_eq!(b.as_bytes().len() % 4, 0, "messages stay 4-byte aligned for the next in a batch");
        let mut f = frames(b.as_bytes()).unwrap();
        assert_eq!(f.len(), 1);
        let f = f.remove(0);
        assert_eq!(f.seq, 9);
        let Body::Msg(m) = f.body else { panic!("not parsed: {:?}", f.body) };
        (Rtm::from(f.ty), NlmF::from_bits_retain(f.flags), m)
    }

    fn link_of(m: RtMsg) -> Ifinfomsg {
        let RtMsg::Link(l) = m else { panic!("{m:?}") };
        l
    }

    fn link_attr(l: &Ifinfomsg, t: Ifla) -> Option<Vec<u8>> {
        l.rtattrs().iter().find(|a| *a.rta_type() == t).map(|a| a.rta_payload().as_ref().to_vec())
    }

    #[test]
    fn link_requests() {
        let (ty, flags, m) = round_trip(new_link_request("wg-ab", "wireguard"));
        assert_eq!((ty, flags), (Rtm::Newlink, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL));
        let l = link_of(m);
        assert_eq!(link_index_and_name(&l), Some((0, "wg-ab".into())));
        let info = l.rtattrs().iter().find(|a| *a.rta_type() == Ifla::Linkinfo).expect("IFLA_LINKINFO");
        let kind = info
            .get_attr_handle::<IflaInfo>()
            .unwrap()
            .get_attribute(IflaInfo::Kind)
            .map(|a| a.rta_payload().as_ref().to_vec());
        assert_eq!(kind.as_deref(), Some(&b"wireguard"[..]));

        let (ty, flags, m) = round_trip(del_link_request("wg0"));
        assert_eq!((ty, flags), (Rtm::Dellink, NlmF::REQUEST | NlmF::ACK));
        assert_eq!(link_index_and_name(&link_of(m)), Some((0, "wg0".into())));

        let (ty, flags, m) = round_trip(set_mtu_up_request("wg0", 1420));
        assert_eq!((ty, flags), (Rtm::Newlink, NlmF::REQUEST | NlmF::ACK), "no CREATE: only changes a link");
        let l = link_of(m);
        assert_eq!((*l.ifi_flags(), *l.ifi_change()), (Iff::UP, Iff::UP));
        assert_eq!(link_attr(&l, Ifla::Mtu), Some(1420u32.to_ne_bytes().to_vec()));

        let skip = Some(linux_raw_sys::netlink::RTEXT_FILTER_SKIP_STATS.to_ne_bytes().to_vec());
        let (ty, flags, m) = round_trip(get_link_request("eth0"));
        assert_eq!((ty, flags), (Rtm::Getlink, NlmF::REQUEST | NlmF::ACK));
        let l = link_of(m);
        assert_eq!(link_index_and_name(&l), Some((0, "eth0".into())));
        assert_eq!(link_attr(&l, Ifla::ExtMask), skip);

        let (ty, flags, m) = round_trip(dump_links_request());
        assert_eq!((ty, flags), (Rtm::Getlink, NlmF::REQUEST | NlmF::DUMP));
        let l = link_of(m);
        assert_eq!((link_attr(&l, Ifla::Ifname), link_attr(&l, Ifla::ExtMask)), (None, skip));
        let (ty, flags, m) = round_trip(dump_addrs_request());
        assert_eq!((ty, flags), (Rtm::Getaddr, NlmF::REQUEST | NlmF::DUMP));
        assert!(matches!(m, RtMsg::Addr(_)));
    }

    fn addr_attrs(m: RtMsg) -> (Ifaddrmsg, Vec<(Ifa, Vec<u8>)>) {
        let RtMsg::Addr(a) = m else { panic!("{m:?}") };
        let attrs = a.rtattrs().iter().map(|x| (*x.rta_type(), x.rta_payload().as_ref().to_vec())).collect();
        (a, attrs)
    }

    #[test]
    fn address_requests() {
        let ll: IpAddr = "fe80::1:2".parse().unwrap();
        let (ty, flags, m) = round_trip(new_addr_request(7, ll, 64, true));
        assert_eq!((ty, flags), (Rtm::Newaddr, NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::EXCL));
        let (a, attrs) = addr_attrs(m);
        assert_eq!((*a.ifa_family(), *a.ifa_prefixlen(), *a.ifa_index()), (RtAddrFamily::Inet6, 64, 7));
        assert_eq!(*a.ifa_flags(), IfaF::NODAD);
        assert_eq!(attrs, vec![(Ifa::Local, ip_octets(ll)), (Ifa::Address, ip_octets(ll))]);

        // IPv4 /24: no NODAD, broadcast 10.1.2.255 (`brd +`)
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let (_, _, m) = round_trip(new_addr_request(7, v4, 24, false));
        let (a, attrs) = addr_attrs(m);
        assert_eq!((*a.ifa_family(), *a.ifa_flags()), (RtAddrFamily::Inet, IfaF::empty()));
        assert!(attrs.contains(&(Ifa::Broadcast, vec![10, 1, 2, 255])), "{attrs:?}");
        // /31, /32 and /0: no broadcast beyond the point-to-point cases
        for (plen, brd) in [(31, None), (32, None), (0, Some(Ipv4Addr::BROADCAST.octets().to_vec()))] {
            let (_, attrs) = addr_attrs(round_trip(new_addr_request(7, v4, plen, false)).2);
            let got = attrs.into_iter().find(|(t, _)| *t == Ifa::Broadcast).map(|(_, v)| v);
            assert_eq!(got, brd, "/{plen}");
        }
    }

    #[test]
    fn link_index_and_name_only_for_whole_links() {
        let name = vec![attr(Ifla::Ifname, "wg-peer1")];
        let build = |family| {
            IfinfomsgBuilder::default()
                .ifi_family(family)
                .ifi_index(42)
                .rtattrs(name.clone().into_iter().collect())
                .build()
                .unwrap()
        };
        assert_eq!(link_index_and_name(&build(RtAddrFamily::Unspecified)), Some((42, "wg-peer1".into())));
        assert_eq!(
            link_index_and_name(&build(RtAddrFamily::from(libc::AF_BRIDGE as u8))),
            None,
            "bridge port message"
        );
        let RtMsg::Link(nameless) = link(None, false, vec![]) else { unreachable!() };
        assert_eq!(link_index_and_name(&nameless), None);
    }

    /// An NLMSG_ERROR as the kernel sends it with NETLINK_EXT_ACK: the
    /// code, the whole echoed request, then the text.
    fn error_datagram(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut request = Batch::default();
        request.push(del_link_request("wg0"), seq, true);
        let echoed = NlmsghdrErrBuilder::default()
            .nl_type(u16::from(Rtm::Dellink))
            .nl_seq(seq)
            .nl_payload(Buffer::from(&request.as_bytes()[Nlmsghdr::<Rtm, Buffer>::header_size()..]))
            .build()
            .unwrap();
        let mut ext_ack = GenlBuffer::new();
        if let Some(t) = text {
            let ty = AttrTypeBuilder::default().nla_type(NlmsgerrAttr::Msg).build().unwrap();
            ext_ack.push(NlattrBuilder::default().nla_type(ty).nla_payload(t).build().unwrap());
        }
        let err = NlmsgerrBuilder::default().error(code).nlmsg(echoed).ext_ack(ext_ack).build().unwrap();
        let flags = if text.is_some() { NlmF::ACK_TLVS } else { NlmF::empty() };
        let msg: Nlmsghdr<u16, Buffer> = NlmsghdrBuilder::default()
            .nl_type(u16::from(Nlmsg::Error))
            .nl_flags(flags)
            .nl_seq(seq)
            .nl_payload(NlPayload::Err(err))
            .build()
            .unwrap();
        let mut c = Cursor::new(Vec::new());
        msg.to_bytes(&mut c).unwrap();
        c.into_inner()
    }

    fn acks(datagram: &[u8]) -> Vec<Ack> {
        frames(datagram)
            .unwrap()
            .into_iter()
            .map(|f| match f.body {
                Body::Ack(a) => a,
                b => panic!("{b:?}"),
            })
            .collect()
    }

    #[test]
    fn errors_with_and_without_extended_text() {
        let d = error_datagram(42, -libc::ENETDOWN, Some("Nexthop device is not up"));
        let want = Ack { seq: 42, errno: libc::ENETDOWN, message: Some("Nexthop device is not up".into()) };
        assert_eq!(acks(&d), vec![want]);
        let d = [error_datagram(8, -libc::EEXIST, None), error_datagram(9, -libc::ENODEV, None)].concat();
        let got = acks(&d);
        assert_eq!(got[0], Ack { seq: 8, errno: libc::EEXIST, message: None });
        assert_eq!(got[1], Ack { seq: 9, errno: libc::ENODEV, message: None });
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let mut d = error_datagram(42, -libc::ENETDOWN, Some("x"));
        let mut b = Batch::default();
        b.push(new_addr_request(7, "10.1.2.3".parse().unwrap(), 24, false), 1, false);
        b.push(new_link_request("wg0", "wireguard"), 2, false);
        d.extend_from_slice(b.as_bytes());
        assert_eq!(frames(&d).unwrap().len(), 3);
        for cut in 0..d.len() {
            let _ = frames(&d[..cut]);
        }
        // A length field past the end of the datagram.
        let mut bad = d.clone();
        bad[0] = 0xff;
        bad[1] = 0xff;
        assert!(frames(&bad).is_err());
    }
}
