//! The discovery socket edge: UDP port 6698 for weft's beacons (multicast
//! ff02::114 on raw mesh interfaces) and handshakes (unicast, link-local or
//! a static peer's routable address, IPv6 or IPv4).

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::link::wire::DISCOVERY_GROUP;

pub struct DiscoverySocket {
    sock: UdpSocket,
    joined: BTreeSet<u32>,
}

/// A received datagram's origin: the address, and for link-local sources
/// the interface it came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub addr: SocketAddr,
    pub ifindex: Option<u32>,
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

impl DiscoverySocket {
    /// Opens `[::]:port`, dual-stack (static peers may be IPv4). Must be
    /// called inside a tokio runtime.
    pub fn open(port: u16) -> io::Result<DiscoverySocket> {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(false)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(1)?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
        Ok(DiscoverySocket { sock: UdpSocket::from_std(s.into())?, joined: BTreeSet::new() })
    }

    pub fn join(&mut self, ifindex: u32) -> io::Result<()> {
        if self.joined.contains(&ifindex) {
            return Ok(());
        }
        self.sock.join_multicast_v6(&DISCOVERY_GROUP, ifindex)?;
        self.joined.insert(ifindex);
        Ok(())
    }

    /// Harmless if the interface is already gone.
    pub fn leave(&mut self, ifindex: u32) {
        if self.joined.remove(&ifindex) {
            let _ = self.sock.leave_multicast_v6(&DISCOVERY_GROUP, ifindex);
        }
    }

    /// Receives one datagram. Link-local datagrams from interfaces we have
    /// not joined are dropped here (the raw-interface list is a trust
    /// boundary), and so are our own looped-back ones.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Origin)> {
        loop {
            let (n, from) = self.sock.recv_from(buf).await?;
            let origin = match from {
                SocketAddr::V6(a) if is_link_local(a.ip()) => {
                    if !self.joined.contains(&a.scope_id()) {
                        continue;
                    }
                    Origin { addr: from, ifindex: Some(a.scope_id()) }
                }
                SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                    Some(v4) => Origin { addr: SocketAddr::new(IpAddr::V4(v4), a.port()), ifindex: None },
                    None => Origin { addr: from, ifindex: None },
                },
                SocketAddr::V4(_) => Origin { addr: from, ifindex: None },
            };
            return Ok((n, origin));
        }
    }

    pub async fn send(&self, dst: SocketAddr, data: &[u8]) -> io::Result<()> {
        let dst = match dst {
            SocketAddr::V4(a) => SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0)),
            v6 => v6,
        };
        self.sock.send_to(data, dst).await.map(|_| ())
    }
}
