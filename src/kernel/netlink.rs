//! rtnetlink on maintained crates: `netlink-packet-route` for the message
//! types (routes, links, addresses), `netlink-packet-core` for the netlink
//! header, acks and framing, and `netlink-sys` for the socket, which this
//! module registers with tokio itself (no `rtnetlink` handle: the FIB sends
//! many requests per datagram and waits once, which a request/response
//! handle cannot express).
//!
//! Nothing here spells out a message layout or an attribute number: requests
//! are built from the crates' types and answers parsed by them.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    DecodeError, Emitable, ErrorMessage, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NlasIterator, Parseable, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub(crate) use netlink_packet_core::NLM_F_DUMP_INTR;

/// A whole rtnetlink message, header and payload.
pub(crate) type RtnlMessage = NetlinkMessage<RouteNetlinkMessage>;

/// Requests serialized back to back, so that many go to the kernel in a
/// single datagram.
#[derive(Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Appends `msg` with `flags` (NLM_F_REQUEST is added) and `seq`.
    pub fn push(&mut self, msg: RouteNetlinkMessage, flags: u16, seq: u32) {
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        msg.finalize();
        let at = self.buf.len();
        self.buf.resize(at + msg.buffer_len(), 0);
        msg.serialize(&mut self.buf[at..]);
    }
}

/// One message of a datagram: its header, and its bytes for parsing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub header: NetlinkHeader,
    bytes: &'a [u8],
}

impl Frame<'_> {
    /// Parses the whole message. Fails for a message the crate cannot
    /// parse; the kernel never sends one, so callers skip it.
    pub fn parse(&self) -> Result<NetlinkPayload<RouteNetlinkMessage>, DecodeError> {
        RtnlMessage::deserialize(self.bytes).map(|m| m.payload)
    }

    /// The kernel's answer if this is an ack / error (NLMSG_ERROR) or the end
    /// of a dump (NLMSG_DONE); `None` for any other message, without
    /// parsing it.
    pub fn ack(&self) -> Option<Result<Ack, DecodeError>> {
        if !matches!(self.header.message_type, NLMSG_ERROR | NLMSG_DONE) {
            return None;
        }
        Some(self.parse().map(|p| {
            let (errno, message) = match p {
                NetlinkPayload::Error(e) => (errno_of(e.raw_code()), ext_ack_message(&self.header, &e)),
                NetlinkPayload::Done(d) => (errno_of(d.code), None),
                _ => (0, None),
            };
            Ack { seq: self.header.sequence_number, errno, message }
        }))
    }
}

/// The messages of one datagram, split as netlink-proto's codec does (each
/// at its header's length). Stops at the first header that does not fit.
pub(crate) fn frames(datagram: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, DecodeError>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = NetlinkBuffer::new_checked(rest).and_then(|b| NetlinkHeader::parse(&b));
        let header = match parsed {
            Ok(h) => h,
            Err(e) => {
                rest = &[];
                return Some(Err(e));
            }
        };
        let (bytes, tail) = rest.split_at(header.length as usize);
        rest = tail;
        Some(Ok(Frame { header, bytes }))
    })
}

/// The kernel's answer to one request: `errno` is positive (0 = success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub seq: u32,
    pub errno: i32,
    /// Extended-ack text ("Nexthop device is not up"), when the kernel gave one.
    pub message: Option<String>,
}

fn errno_of(code: i32) -> i32 {
    code.checked_neg().unwrap_or(i32::MAX)
}

/// The NLMSGERR_ATTR_MSG text of an ack, which netlink-packet-core leaves in
/// the bytes after the error code: the echoed request (only its header with
/// NETLINK_CAP_ACK), then the extended-ack attributes.
fn ext_ack_message(header: &NetlinkHeader, e: &ErrorMessage) -> Option<String> {
    if header.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if header.flags & NLM_F_CAPPED != 0 {
        NetlinkHeader::default().buffer_len()
    } else {
        NetlinkBuffer::new_checked(&e.header[..]).ok()?.length() as usize
    };
    let msg_kind = u16::from(neli::consts::nl::NlmsgerrAttr::Msg);
    for nla in NlasIterator::new(e.header.get(echoed..)?) {
        let nla = nla.ok()?;
        if nla.kind() == msg_kind {
            let text = nla.value().split(|b| *b == 0).next().unwrap_or_default();
            return (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

// Link and address requests (what the WireGuard backends need from
// rtnetlink). Pure, so tests check them without a kernel. Links are
// addressed by name where the kernel allows it (new, set, delete, get),
// which saves a name -> index lookup and its race.

fn link_named(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

/// `ip link add NAME type KIND`: fails with EEXIST if NAME exists, and with
/// EOPNOTSUPP ("Unknown device type") if the kernel lacks KIND.
pub(crate) fn new_link_request(name: &str, kind: InfoKind) -> (RouteNetlinkMessage, u16) {
    let mut m = link_named(name);
    m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
    (RouteNetlinkMessage::NewLink(m), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
}

/// `ip link del NAME`: ENODEV if there is no such link.
pub(crate) fn del_link_request(name: &str) -> (RouteNetlinkMessage, u16) {
    (RouteNetlinkMessage::DelLink(link_named(name)), NLM_F_ACK)
}

/// `ip link set NAME mtu MTU up`: RTM_NEWLINK without NLM_F_CREATE changes
/// an existing link (ENODEV if there is none), as current iproute2 does.
pub(crate) fn set_mtu_up_request(name: &str, mtu: u32) -> (RouteNetlinkMessage, u16) {
    let mut m = link_named(name);
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    (RouteNetlinkMessage::NewLink(m), NLM_F_ACK)
}

/// `ip link show NAME`: one RTM_NEWLINK answer then the ack, or ENODEV.
pub(crate) fn get_link_request(name: &str) -> (RouteNetlinkMessage, u16) {
    let mut m = link_named(name);
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    (RouteNetlinkMessage::GetLink(m), NLM_F_ACK)
}

/// `ip link show`: a dump of every link, without statistics.
pub(crate) fn dump_links_request() -> (RouteNetlinkMessage, u16) {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    (RouteNetlinkMessage::GetLink(m), NLM_F_DUMP)
}

/// `ip addr show`: a dump of every address.
pub(crate) fn dump_addrs_request() -> (RouteNetlinkMessage, u16) {
    (RouteNetlinkMessage::GetAddress(AddressMessage::default()), NLM_F_DUMP)
}

/// `ip addr add ADDR/PREFIX dev IFINDEX [nodad]` (EEXIST if present). Like
/// `ip`, IFA_LOCAL and IFA_ADDRESS are both the address; IPv4 prefixes
/// shorter than /31 also get their broadcast address (`brd +`).
pub(crate) fn new_addr_request(
    ifindex: u32,
    addr: IpAddr,
    prefix: u8,
    nodad: bool,
) -> (RouteNetlinkMessage, u16) {
    let mut m = AddressMessage::default();
    m.header.family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    m.header.prefix_len = prefix;
    if nodad {
        m.header.flags = AddressHeaderFlags::Nodad;
    }
    // scope 0 (universe): IPv6 derives the scope from the address.
    m.header.index = ifindex;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    if let IpAddr::V4(a) = addr {
        if prefix < 31 {
            let brd = u32::from(a) | (u32::MAX >> prefix);
            m.attributes.push(AddressAttribute::Broadcast(brd.into()));
        }
    }
    (RouteNetlinkMessage::NewAddress(m), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
}

/// The index and name of a link message; `None` if it is not about a whole
/// link (bridge port messages carry AF_BRIDGE) or has no name.
pub(crate) fn link_index_and_name(m: &LinkMessage) -> Option<(u32, String)> {
    if m.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some((m.header.index, n.clone())),
        _ => None,
    })
}

/// True if an IFA_FLAGS / header flag set says the address is not usable.
pub(crate) fn addr_unusable(flags: AddressFlags) -> bool {
    flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
}

/// Largest datagram the kernel sends on rtnetlink (dumps are capped at 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// An rtnetlink socket registered with the tokio reactor.
pub(crate) struct NlSocket {
    fd: AsyncFd<Socket>,
    seq: u32,
    buf: Vec<u8>,
    batch: Batch,
}

impl NlSocket {
    /// Opens a non-blocking rtnetlink socket joined to `groups`
    /// (RTNLGRP_* numbers). Must be called inside a tokio runtime.
    pub fn open(groups: &[u32]) -> io::Result<NlSocket> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind(&SocketAddr::new(0, 0))?;
        sock.set_non_blocking(true)?;
        for &g in groups {
            sock.add_membership(g)?;
        }
        // Acks echo only the request's header, with the kernel's explanation
        // of a refusal attached; best effort (older kernels lack them).
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        // Dump filters on table and protocol (routes): the kernel then sends
        // only weft's own routes.
        let _ = sock.set_netlink_get_strict_chk(true);
        // SAFETY: the AsyncFd owns the Socket, which owns its descriptor and
        // closes it only when dropped, so the descriptor stays open and the
        // same for the AsyncFd's whole life.
        let fd =
            unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(NlSocket { fd, seq: 0, buf: vec![0; RECV_BUF], batch: Batch::default() })
    }

    /// Sets the receive buffer, forcing past rmem_max when privileged (a
    /// batch of acks, or a burst of link events, must fit without loss).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        let v = bytes.min(i32::MAX as usize);
        setsockopt(self.fd.get_ref(), sockopt::RcvBufForce, &v)
            .or_else(|_| setsockopt(self.fd.get_ref(), sockopt::RcvBuf, &v))
            .map_err(io::Error::from)
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
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.fd.get_ref().send_to(data, &kernel, 0) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one message with a fresh sequence number, which it returns.
    pub fn send_one(&mut self, (msg, flags): (RouteNetlinkMessage, u16)) -> io::Result<u32> {
        let seq = self.next_seq();
        self.batch.clear();
        self.batch.push(msg, flags, seq);
        self.send(self.batch.as_bytes())?;
        Ok(seq)
    }

    /// Sends one request and reads its answer: every message carrying its
    /// sequence number goes to `on_reply` (with its header flags), until the
    /// ack (NLMSG_ERROR) or the end of a dump (NLMSG_DONE), whose errno is
    /// returned. Messages for other sequence numbers (answers to a request
    /// whose caller went away, notifications) are skipped, and so are
    /// messages the crate cannot parse. Cancel-safe in the same way: what a
    /// dropped call leaves queued is skipped later.
    pub async fn request(
        &mut self,
        request: (RouteNetlinkMessage, u16),
        mut on_reply: impl FnMut(u16, RouteNetlinkMessage),
    ) -> io::Result<Ack> {
        let seq = self.send_one(request)?;
        loop {
            let datagram = self.recv().await?;
            for frame in frames(datagram) {
                let frame = frame.map_err(invalid)?;
                if frame.header.sequence_number != seq {
                    continue;
                }
                if let Some(ack) = frame.ack() {
                    return ack.map_err(invalid);
                }
                match frame.parse() {
                    Ok(NetlinkPayload::InnerMessage(m)) => on_reply(frame.header.flags, m),
                    Ok(_) => {}
                    Err(e) => log::debug!("skipping an rtnetlink message that does not parse: {e}"),
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

pub(crate) fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// One receive: `Ok(None)` on EAGAIN; datagrams from other sockets than the
/// kernel's (port id 0) are dropped.
fn recv_kernel(sock: &Socket, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // MSG_TRUNC: the datagram's real length, to detect truncation.
        match sock.recv_from(&mut &mut buf[..], libc::MSG_TRUNC) {
            Ok((n, from)) => {
                if from.port_number() != 0 {
                    continue;
                }
                if n > buf.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "netlink datagram truncated"));
                }
                return Ok(Some(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
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

    use netlink_packet_core::DefaultNla;

    use super::*;

    /// Serializes one request and parses it back: header flags and message.
    fn round_trip((msg, flags): (RouteNetlinkMessage, u16)) -> (u16, RouteNetlinkMessage) {
        let mut b = Batch::default();
        b.push(msg, flags, 9);
        assert_eq!(b.as_bytes().len() % 4, 0, "messages stay 4-byte aligned for the next in a batch");
        let frame = frames(b.as_bytes()).next().unwrap().unwrap();
        assert_eq!(frame.header.sequence_number, 9);
        assert_eq!(frame.header.length as usize, b.as_bytes().len());
        let NetlinkPayload::InnerMessage(m) = frame.parse().unwrap() else {
            panic!("not an rtnetlink message")
        };
        (frame.header.flags, m)
    }

    fn name_of(m: &LinkMessage) -> Option<&str> {
        m.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        })
    }

    #[test]
    fn link_requests() {
        let (flags, m) = round_trip(new_link_request("wg-ab", InfoKind::Wireguard));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let RouteNetlinkMessage::NewLink(m) = m else { panic!("{m:?}") };
        assert_eq!(name_of(&m), Some("wg-ab"));
        assert!(m.attributes.contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Wireguard)])));

        let (flags, m) = round_trip(del_link_request("wg0"));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK);
        assert!(matches!(&m, RouteNetlinkMessage::DelLink(l) if name_of(l) == Some("wg0")), "{m:?}");

        let (flags, m) = round_trip(set_mtu_up_request("wg0", 1420));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK, "no CREATE: only changes a link");
        let RouteNetlinkMessage::NewLink(m) = m else { panic!("{m:?}") };
        assert_eq!((m.header.flags, m.header.change_mask), (LinkFlags::Up, LinkFlags::Up));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1420)));

        let skip_stats = LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]);
        let (flags, m) = round_trip(get_link_request("eth0"));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK);
        assert!(matches!(&m, RouteNetlinkMessage::GetLink(l) if name_of(l) == Some("eth0")
            && l.attributes.contains(&skip_stats)));

        let (flags, m) = round_trip(dump_links_request());
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert!(matches!(&m, RouteNetlinkMessage::GetLink(l) if l.attributes == vec![skip_stats.clone()]));
        let (flags, m) = round_trip(dump_addrs_request());
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert!(matches!(m, RouteNetlinkMessage::GetAddress(_)));
    }

    #[test]
    fn address_requests() {
        let ll: IpAddr = "fe80::1:2".parse().unwrap();
        let (flags, m) = round_trip(new_addr_request(7, ll, 64, true));
        assert_eq!(flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let RouteNetlinkMessage::NewAddress(m) = m else { panic!("{m:?}") };
        assert_eq!((m.header.family, m.header.prefix_len, m.header.index), (AddressFamily::Inet6, 64, 7));
        assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        assert_eq!(m.attributes, vec![AddressAttribute::Local(ll), AddressAttribute::Address(ll)]);

        // IPv4 /24: no NODAD, broadcast 10.1.2.255 (`brd +`)
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let (_, m) = round_trip(new_addr_request(7, a, 24, false));
        let RouteNetlinkMessage::NewAddress(m) = m else { panic!("{m:?}") };
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert!(m.header.flags.is_empty());
        assert!(m.attributes.contains(&AddressAttribute::Broadcast(Ipv4Addr::new(10, 1, 2, 255))));
        // /31, /32 and /0: no broadcast beyond the point-to-point cases
        for (plen, brd) in [(31, None), (32, None), (0, Some(Ipv4Addr::BROADCAST))] {
            let (_, m) = round_trip(new_addr_request(7, a, plen, false));
            let RouteNetlinkMessage::NewAddress(m) = m else { panic!("{m:?}") };
            let got = m.attributes.iter().find_map(|x| match x {
                AddressAttribute::Broadcast(b) => Some(*b),
                _ => None,
            });
            assert_eq!(got, brd, "/{plen}");
        }
    }

    #[test]
    fn link_index_and_name_only_for_whole_links() {
        let (_, m) = round_trip(set_mtu_up_request("wg-peer1", 1500));
        let RouteNetlinkMessage::NewLink(mut m) = m else { panic!("{m:?}") };
        m.header.index = 42;
        assert_eq!(link_index_and_name(&m), Some((42, "wg-peer1".to_string())));
        m.header.interface_family = AddressFamily::Bridge;
        assert_eq!(link_index_and_name(&m), None, "bridge port message");
        assert_eq!(link_index_and_name(&LinkMessage::default()), None, "no name");
    }

    /// An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and
    /// NETLINK_EXT_ACK: the echoed request header, then the text.
    fn error_datagram(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut echoed = NetlinkHeader::default();
        echoed.sequence_number = seq;
        let mut payload = vec![0; echoed.buffer_len()];
        echoed.emit(&mut payload);
        let mut flags = NLM_F_CAPPED;
        if let Some(t) = text {
            let mut v = t.as_bytes().to_vec();
            v.push(0);
            let nla = DefaultNla::new(u16::from(neli::consts::nl::NlmsgerrAttr::Msg), v);
            let at = payload.len();
            payload.resize(at + nla.buffer_len(), 0);
            nla.emit(&mut payload[at..]);
            flags |= NLM_F_ACK_TLVS;
        }
        let mut e = ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(code);
        e.header = payload;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut m: RtnlMessage = NetlinkMessage::new(header, NetlinkPayload::Error(e));
        m.finalize();
        let mut bytes = vec![0; m.buffer_len()];
        m.serialize(&mut bytes);
        bytes
    }

    #[test]
    fn acks_with_and_without_extended_text() {
        let d = error_datagram(42, -libc::ENETDOWN, Some("Nexthop device is not up"));
        let ack = frames(&d).next().unwrap().unwrap().ack().unwrap().unwrap();
        let want = Ack { seq: 42, errno: libc::ENETDOWN, message: Some("Nexthop device is not up".into()) };
        assert_eq!(ack, want);
        let d = [error_datagram(7, 0, None), error_datagram(8, -libc::EEXIST, None)].concat();
        let acks: Vec<_> = frames(&d).map(|f| f.unwrap().ack().unwrap().unwrap()).collect();
        assert_eq!(acks[0], Ack { seq: 7, errno: 0, message: None });
        assert_eq!(acks[1], Ack { seq: 8, errno: libc::EEXIST, message: None });
        // Not an ack: None, without parsing.
        let mut b = Batch::default();
        b.push(dump_links_request().0, 0, 1);
        assert!(frames(b.as_bytes()).next().unwrap().unwrap().ack().is_none());
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let mut d = error_datagram(42, -libc::ENETDOWN, Some("x"));
        let mut b = Batch::default();
        b.push(new_addr_request(7, "10.1.2.3".parse().unwrap(), 24, false).0, 0, 1);
        d.extend_from_slice(b.as_bytes());
        for cut in 0..d.len() {
            for f in frames(&d[..cut]).flatten() {
                let _ = f.parse();
                let _ = f.ack();
            }
        }
        // A length field past the end stops the iteration with an error.
        let mut bad = d.clone();
        bad[0] = 0xff;
        let r: Vec<_> = frames(&bad).collect();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_err());
    }
}
