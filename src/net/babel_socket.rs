//! The Babel UDP socket: one IPv6 socket on port 6696 for all interfaces,
//! joined to ff02::1:6 on each interface Babel runs on, reporting for every
//! datagram the interface it arrived on, its source and its destination.
//!
//! Socket options, after babeld's `babel_socket` unless said otherwise:
//! - IPV6_V6ONLY: weft speaks Babel over IPv6 only (IPv4 prefixes travel in
//!   it, RFC 9229), so no IPv4-mapped traffic reaches the socket.
//! - no SO_REUSEADDR (babeld sets it): with it, a second daemon on the port
//!   (another weft, or babeld, which also sets it) would bind silently and
//!   the two would split unicast traffic between them. Without it, the second
//!   bind fails loudly with EADDRINUSE. UDP has no TIME_WAIT, so a restart
//!   does not need it.
//! - IPV6_MULTICAST_LOOP off: our own multicasts must not come back to us.
//! - IPV6_MULTICAST_HOPS 1 and IPV6_UNICAST_HOPS 1: Babel is link-local;
//!   nothing of ours should be routable past the neighbour.
//! - IPV6_TCLASS CS6 (network control), so that Wi-Fi WMM and queueing
//!   disciplines prioritise routing traffic; best effort, like babeld.
//! - IPV6_RECVPKTINFO: the arrival interface and the destination address
//!   (multicast or unicast) of each datagram.
//!
//! Receive-side checks (RFC 8966 section 4): a datagram whose source is not
//! IPv6 link-local, or whose source port is not the Babel port, is dropped;
//! so is one arriving on an interface Babel was not joined on (a unicast
//! datagram on a LAN port, say): for a zero-trust daemon the interface list
//! is the trust boundary. Each kind of drop is counted in [`SocketStats`].

use std::cell::Cell;
use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// RFC 8966 section 5: the well-known port and link-local multicast group.
pub const BABEL_PORT: u16 = 6696;
pub const BABEL_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);

/// DSCP CS6 ("network control") in the IPv6 traffic class.
const TCLASS_CS6: i32 = 0xc0;

/// What came with a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes of the datagram at the start of the caller's buffer.
    pub len: usize,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The sender (always IPv6 link-local).
    pub source: Ipv6Addr,
    /// Where it was sent: [`BABEL_GROUP`] or one of our unicast addresses.
    pub destination: Ipv6Addr,
}

impl RecvMeta {
    pub fn is_multicast(&self) -> bool {
        self.destination.is_multicast()
    }
}

/// Where to send a datagram on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// ff02::1:6 on the interface.
    Multicast,
    /// A neighbour's link-local address on the interface.
    Unicast(Ipv6Addr),
}

/// Counters of the socket edge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SocketStats {
    pub received: u64,
    pub sent: u64,
    /// Source address not IPv6 link-local (RFC 8966 section 4: MUST ignore).
    pub dropped_not_link_local: u64,
    /// Source port not the Babel port (RFC 8966 section 4: MUST ignore).
    pub dropped_bad_port: u64,
    /// Arrived on an interface Babel is not joined on.
    pub dropped_not_joined: u64,
    /// Larger than the caller's buffer.
    pub dropped_truncated: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
}

/// Why a datagram is dropped, or not (pure, shared by the real socket and
/// the fake so tests of either see the same rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    NotLinkLocal,
    BadPort,
    NotJoined,
}

/// IPv6 link-local unicast (fe80::/10).
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

pub fn check_datagram(source: &SocketAddrV6, ifindex: u32, port: u16, joined: &BTreeSet<u32>) -> Verdict {
    if !is_link_local(source.ip()) {
        Verdict::NotLinkLocal
    } else if source.port() != port {
        Verdict::BadPort
    } else if !joined.contains(&ifindex) {
        Verdict::NotJoined
    } else {
        Verdict::Accept
    }
}

pub(crate) fn count(stats: &Cell<SocketStats>, v: Verdict) {
    let mut s = stats.get();
    match v {
        Verdict::Accept => s.received += 1,
        Verdict::NotLinkLocal => s.dropped_not_link_local += 1,
        Verdict::BadPort => s.dropped_bad_port += 1,
        Verdict::NotJoined => s.dropped_not_joined += 1,
    }
    stats.set(s);
}

/// The destination socket address for `dest` on `ifindex`, or an error if
/// it is not a link-local neighbour.
pub fn destination(ifindex: u32, dest: Dest, port: u16) -> io::Result<SocketAddrV6> {
    let addr = match dest {
        Dest::Multicast => BABEL_GROUP,
        Dest::Unicast(a) if is_link_local(&a) => a,
        Dest::Unicast(a) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("Babel neighbours are link-local; {a} is not"),
            ))
        }
    };
    // The scope id picks the interface for both link-local unicast and
    // link-scope multicast.
    Ok(SocketAddrV6::new(addr, port, 0, ifindex))
}

/// The Babel datagram edge. The daemon is generic over it; [`BabelSocket`]
/// is the real socket, [`super::FakeBabelSocket`] the test double.
#[allow(async_fn_in_trait)] // current_thread daemon: no Send bound wanted
pub trait BabelIo {
    /// Receives the next acceptable datagram into `buf` (give it 64 KiB to
    /// never truncate). Dropped datagrams are counted, never returned.
    /// Cancel-safe.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta>;

    /// Sends one datagram out of interface `ifindex`.
    async fn send(&self, ifindex: u32, dest: Dest, data: &[u8]) -> io::Result<()>;

    /// Starts Babel on an interface: joins ff02::1:6 there and accepts its
    /// datagrams. Joining twice is harmless.
    fn join(&mut self, ifindex: u32) -> io::Result<()>;

    /// Stops Babel on an interface. Harmless if the interface is already
    /// gone (the kernel dropped the membership with it).
    fn leave(&mut self, ifindex: u32) -> io::Result<()>;

    fn joined(&self) -> &BTreeSet<u32>;

    fn stats(&self) -> SocketStats;

    /// Pins the source address of what we send on `ifindex` to the
    /// link-local address the engine uses there. Otherwise the kernel picks
    /// one of the device's link-local addresses (the newest, usually), so
    /// neighbours know us under another address than the one we announce
    /// and report, and under a new one whenever an address is added: a new
    /// neighbour for them, while the old one times out.
    fn set_source(&mut self, _ifindex: u32, _source: Ipv6Addr) {}
}

/// The real Babel socket.
pub struct BabelSocket {
    sock: UdpSocket,
    port: u16,
    joined: BTreeSet<u32>,
    /// Source address per interface (see [`BabelIo::set_source`]).
    /// Source address per interface (a few: a Vec, not one more map type).
    sources: Vec<(u32, Ipv6Addr)>,
    stats: Cell<SocketStats>,
}

impl BabelSocket {
    /// Opens the socket on `[::]:port` (port [`BABEL_PORT`] in production).
    /// Must be called inside a tokio runtime.
    pub fn open(port: u16) -> io::Result<BabelSocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(true)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(1)?;
        s.set_unicast_hops_v6(1)?;
        // Best effort, as in babeld: a kernel without it still routes.
        let _ = setsockopt(&s, sockopt::Ipv6TClass, &TCLASS_CS6);
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
        s.set_nonblocking(true)?;
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0);
        s.bind(&SocketAddr::V6(any).into())?;
        let sock = UdpSocket::from_std(s.into())?;
        Ok(BabelSocket {
            sock,
            port,
            joined: BTreeSet::new(),
            sources: Vec::new(),
            stats: Cell::new(SocketStats::default()),
        })
    }

    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// One `recvmsg` with its packet info: (len, truncated, source, ifindex, destination).
    fn recv_once(&self, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Received> {
        let fd = self.sock.as_raw_fd();
        let mut iov = [io::IoSliceMut::new(buf)];
        let m = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
        let mut info = None;
        for c in m.cmsgs()? {
            if let ControlMessageOwned::Ipv6PacketInfo(pi) = c {
                info = Some((pi.ipi6_ifindex, Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
            }
        }
        let source = m.address.map(SocketAddrV6::from);
        Ok(Received { len: m.bytes, truncated: m.flags.contains(MsgFlags::MSG_TRUNC), source, info })
    }
}

struct Received {
    len: usize,
    truncated: bool,
    source: Option<SocketAddrV6>,
    info: Option<(u32, Ipv6Addr)>,
}

impl BabelSocket {
    /// One datagram, from the source address set for the interface (if
    /// any); errors name that address, which is what a refusal is usually
    /// about (not assigned, or still tentative).
    async fn send_from_source(&self, ifindex: u32, dest: Dest, data: &[u8]) -> io::Result<()> {
        let to = destination(ifindex, dest, self.port)?;
        let n = match self.sources.iter().find(|(i, _)| *i == ifindex).map(|(_, a)| a) {
            None => self.sock.send_to(data, SocketAddr::V6(to)).await?,
            Some(src) => {
                // IPV6_PKTINFO on sendmsg sets the source address (and the
                // interface) of this one datagram.
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr { s6_addr: src.octets() },
                    ipi6_ifindex: ifindex,
                };
                let addr = SockaddrIn6::from(to);
                let fd = self.sock.as_raw_fd();
                self.sock
                    .async_io(Interest::WRITABLE, || {
                        let iov = [io::IoSlice::new(data)];
                        let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
                        sendmsg(fd, &iov, &cmsg, MsgFlags::empty(), Some(&addr)).map_err(io::Error::from)
                    })
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("from {src}: {e}")))?
            }
        };
        if n != data.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short UDP send"));
        }
        Ok(())
    }
}

impl BabelIo for BabelSocket {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
        loop {
            let r = self.sock.async_io(Interest::READABLE, || self.recv_once(buf, &mut cmsg)).await?;
            if r.truncated {
                let mut s = self.stats.get();
                s.dropped_truncated += 1;
                self.stats.set(s);
                continue;
            }
            // Both are always present with IPV6_RECVPKTINFO on an IPv6 socket;
            // without them the datagram cannot be attributed to a link.
            let (Some(source), Some((ifindex, destination))) = (r.source, r.info) else {
                count(&self.stats, Verdict::NotJoined);
                continue;
            };
            let v = check_datagram(&source, ifindex, self.port, &self.joined);
            count(&self.stats, v);
            if v == Verdict::Accept {
                return Ok(RecvMeta { len: r.len, ifindex, source: *source.ip(), destination });
            }
        }
    }

    async fn send(&self, ifindex: u32, dest: Dest, data: &[u8]) -> io::Result<()> {
        let r = self.send_from_source(ifindex, dest, data).await;
        let mut s = self.stats.get();
        match r {
            Ok(()) => s.sent += 1,
            Err(_) => s.send_errors += 1,
        }
        self.stats.set(s);
        r
    }

    fn join(&mut self, ifindex: u32) -> io::Result<()> {
        if self.joined.contains(&ifindex) {
            return Ok(());
        }
        self.sock.join_multicast_v6(&BABEL_GROUP, ifindex)?;
        self.joined.insert(ifindex);
        Ok(())
    }

    fn leave(&mut self, ifindex: u32) -> io::Result<()> {
        self.sources.retain(|(i, _)| *i != ifindex);
        if !self.joined.remove(&ifindex) {
            return Ok(());
        }
        match self.sock.leave_multicast_v6(&BABEL_GROUP, ifindex) {
            Ok(()) => Ok(()),
            // The interface went away and took the membership with it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::EADDRNOTAVAIL)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn joined(&self) -> &BTreeSet<u32> {
        &self.joined
    }

    fn stats(&self) -> SocketStats {
        self.stats.get()
    }

    fn set_source(&mut self, ifindex: u32, source: Ipv6Addr) {
        match self.sources.iter_mut().find(|(i, _)| *i == ifindex) {
            Some(e) => e.1 = source,
            None => self.sources.push((ifindex, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(a: &str, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(a.parse().unwrap(), port, 0, 0)
    }

    #[test]
    fn rfc8966_receive_checks() {
        let joined: BTreeSet<u32> = [3].into();
        assert_eq!(check_datagram(&sa("fe80::1", 6696), 3, 6696, &joined), Verdict::Accept);
        assert_eq!(check_datagram(&sa("febf::1", 6696), 3, 6696, &joined), Verdict::Accept);
        assert_eq!(check_datagram(&sa("2001:db8::1", 6696), 3, 6696, &joined), Verdict::NotLinkLocal);
        assert_eq!(check_datagram(&sa("fec0::1", 6696), 3, 6696, &joined), Verdict::NotLinkLocal);
        assert_eq!(check_datagram(&sa("::ffff:10.0.0.1", 6696), 3, 6696, &joined), Verdict::NotLinkLocal);
        assert_eq!(check_datagram(&sa("fe80::1", 1234), 3, 6696, &joined), Verdict::BadPort);
        assert_eq!(check_datagram(&sa("fe80::1", 6696), 4, 6696, &joined), Verdict::NotJoined);
    }

    #[test]
    fn destinations_are_link_local_and_scoped() {
        let d = destination(5, Dest::Multicast, 6696).unwrap();
        assert_eq!((*d.ip(), d.port(), d.scope_id()), (BABEL_GROUP, 6696, 5));
        let d = destination(5, Dest::Unicast("fe80::9".parse().unwrap()), 6696).unwrap();
        assert_eq!(d.scope_id(), 5);
        let e = destination(5, Dest::Unicast("2001:db8::9".parse().unwrap()), 6696).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
