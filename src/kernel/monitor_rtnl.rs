//! [`RtnlMonitor`]: the [`LinkMonitor`] over rtnetlink notifications.
//!
//! It subscribes to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR
//! first and dumps links and addresses second, on the same socket, so no
//! change can fall between the dump and the notifications. While a dump runs,
//! dump replies and notifications both go into a fresh snapshot in arrival
//! order (which is the order the kernel produced them); at its end the
//! snapshot's difference from what was reported becomes the events. The same
//! resynchronisation runs whenever the kernel reports that notifications
//! were dropped (ENOBUFS).

use std::collections::VecDeque;
use std::io;

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::monitor::{IfAddr, LinkInfo, LinkMonitor, LinkTable, MonitorEvent, Update};
use super::netlink::{
    addr_unusable, dump_addrs_request, dump_links_request, frames, is_overrun, NlSocket, NLM_F_DUMP_INTR,
};

/// What a link or address message says (pure); `None` for other messages.
pub(crate) fn decode(msg: &RouteNetlinkMessage) -> Option<Update> {
    match msg {
        RouteNetlinkMessage::NewLink(m) => decode_link(m, false),
        RouteNetlinkMessage::DelLink(m) => decode_link(m, true),
        RouteNetlinkMessage::NewAddress(m) => decode_addr(m, false),
        RouteNetlinkMessage::DelAddress(m) => decode_addr(m, true),
        _ => None,
    }
}

/// `None` for messages that are not about a whole link (bridge port
/// messages carry AF_BRIDGE).
fn decode_link(m: &LinkMessage, gone: bool) -> Option<Update> {
    if m.header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let ifindex = m.header.index;
    if gone {
        return Some(Update::LinkGone(ifindex));
    }
    let mut name = String::new();
    let mut mtu = 0;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Mtu(v) => mtu = *v,
            _ => {}
        }
    }
    let flags = m.header.flags;
    Some(Update::Link(LinkInfo {
        ifindex,
        name,
        admin_up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        mtu,
    }))
}

/// A tentative or DAD-failed address is not usable and decodes as a removal.
fn decode_addr(m: &AddressMessage, gone: bool) -> Option<Update> {
    let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
    let (mut address, mut local) = (None, None);
    for a in &m.attributes {
        match a {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            // the full 32-bit flags, when present, supersede the header's 8
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours.
    let addr = local.or(address)?;
    let a = IfAddr { ifindex: m.header.index, addr, prefix_len: m.header.prefix_len };
    if gone || addr_unusable(flags) {
        Some(Update::AddrGone(a))
    } else {
        Some(Update::Addr(a))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Links,
    Addrs,
}

/// A dump in progress.
struct Resync {
    phase: Phase,
    seq: u32,
    snapshot: LinkTable,
    /// Notifications were lost or the dump was interrupted meanwhile: run
    /// again when this one ends.
    again: bool,
}

/// The rtnetlink link and address monitor.
pub struct RtnlMonitor {
    sock: NlSocket,
    reported: LinkTable,
    resync: Option<Resync>,
    events: VecDeque<MonitorEvent>,
    resyncs: u64,
}

impl RtnlMonitor {
    /// Subscribes and starts the initial dump; its results come as events.
    /// Must be called inside a tokio runtime.
    pub fn open() -> io::Result<RtnlMonitor> {
        let sock =
            NlSocket::open(&[libc::RTNLGRP_LINK, libc::RTNLGRP_IPV4_IFADDR, libc::RTNLGRP_IPV6_IFADDR])?;
        // Bursts (boot, many tunnels coming up) should not overrun it; an
        // overrun is still handled, by a resync.
        let _ = sock.set_recv_buffer(1 << 20);
        let mut m = RtnlMonitor {
            sock,
            reported: LinkTable::default(),
            resync: None,
            events: VecDeque::new(),
            resyncs: 0,
        };
        m.start_resync()?;
        Ok(m)
    }

    /// Links and addresses as reported so far.
    pub fn table(&self) -> &LinkTable {
        &self.reported
    }

    /// How many times the kernel reported lost notifications (each one
    /// starts a resynchronisation, or extends the one running).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Sets the socket's receive buffer (tests shrink it to force overruns).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        self.sock.set_recv_buffer(bytes)
    }

    fn start_resync(&mut self) -> io::Result<()> {
        let seq = self.request_dump(Phase::Links)?;
        self.resync = Some(Resync { phase: Phase::Links, seq, snapshot: LinkTable::default(), again: false });
        Ok(())
    }

    fn request_dump(&mut self, phase: Phase) -> io::Result<u32> {
        self.sock.send_one(match phase {
            Phase::Links => dump_links_request(),
            Phase::Addrs => dump_addrs_request(),
        })
    }

    fn overrun(&mut self) -> io::Result<()> {
        self.resyncs += 1;
        match &mut self.resync {
            Some(r) => {
                r.again = true;
                Ok(())
            }
            None => self.start_resync(),
        }
    }

    /// Handles one received datagram, queueing events.
    fn process(&mut self, datagram: &[u8]) -> io::Result<()> {
        for frame in frames(datagram) {
            let Ok(frame) = frame else { break };
            let (seq, flags) = (frame.header.sequence_number, frame.header.flags);
            let mut dump_done = false;
            let update = match frame.ack() {
                Some(ack) => {
                    let Some(r) = &mut self.resync else { continue };
                    if seq != r.seq {
                        continue;
                    }
                    let ack = ack.map_err(super::netlink::invalid)?;
                    if ack.errno != 0 {
                        // Start over, so the monitor recovers if the cause
                        // was passing; the caller logs the error.
                        self.resync = None;
                        self.start_resync()?;
                        return Err(io::Error::from_raw_os_error(ack.errno));
                    }
                    // The end of a dump (NLMSG_DONE) or a bare ack.
                    dump_done = frame.header.message_type == netlink_packet_core::NLMSG_DONE;
                    if !dump_done {
                        continue;
                    }
                    None
                }
                None => match frame.parse() {
                    Ok(NetlinkPayload::InnerMessage(m)) => decode(&m),
                    _ => None,
                },
            };
            if let Some(r) = &mut self.resync {
                if seq == r.seq && flags & NLM_F_DUMP_INTR != 0 {
                    r.again = true;
                }
            }
            if let Some(u) = update {
                match &mut self.resync {
                    Some(r) => r.snapshot.apply(u, &mut VecDeque::new()),
                    None => self.reported.apply(u, &mut self.events),
                }
            }
            if dump_done {
                self.dump_finished()?;
            }
        }
        Ok(())
    }

    fn dump_finished(&mut self) -> io::Result<()> {
        let Some(r) = self.resync.as_mut() else {
            return Ok(());
        };
        match r.phase {
            Phase::Links => {
                let seq = self.request_dump(Phase::Addrs)?;
                let r = self.resync.as_mut().expect("resync in progress");
                r.phase = Phase::Addrs;
                r.seq = seq;
            }
            Phase::Addrs if r.again => {
                self.resync = None;
                self.start_resync()?;
            }
            Phase::Addrs => {
                let mut r = self.resync.take().expect("resync in progress");
                r.snapshot.prune_orphans();
                self.reported.diff(&r.snapshot, &mut self.events);
                self.reported = r.snapshot;
            }
        }
        Ok(())
    }
}

impl LinkMonitor for RtnlMonitor {
    async fn next_event(&mut self) -> io::Result<MonitorEvent> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            let datagram = match self.sock.recv().await {
                Ok(d) => d.to_vec(),
                Err(e) if is_overrun(&e) => {
                    self.overrun()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.process(&datagram)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use netlink_packet_route::address::AddressHeaderFlags;

    use super::super::netlink::Batch;
    use super::*;

    /// Serializes `msg` and parses it back, as the kernel's bytes would be.
    fn via_bytes(msg: RouteNetlinkMessage) -> Option<Update> {
        let mut b = Batch::default();
        b.push(msg, 0, 0);
        let frame = frames(b.as_bytes()).next().unwrap().unwrap();
        let NetlinkPayload::InnerMessage(m) = frame.parse().unwrap() else { panic!() };
        decode(&m)
    }

    fn link(family: AddressFamily, index: u32, flags: LinkFlags, name: &str, mtu: u32) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.interface_family = family;
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        m
    }

    fn addr(family: AddressFamily, index: u32, plen: u8, attrs: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family;
        m.header.index = index;
        m.header.prefix_len = plen;
        m.attributes = attrs;
        m
    }

    #[test]
    fn link_decoding() {
        let m = link(AddressFamily::Unspec, 7, LinkFlags::Up | LinkFlags::Running, "wg-a", 1420);
        assert_eq!(
            via_bytes(RouteNetlinkMessage::NewLink(m)),
            Some(Update::Link(LinkInfo {
                ifindex: 7,
                name: "wg-a".into(),
                admin_up: true,
                running: true,
                mtu: 1420
            }))
        );
        let m = link(AddressFamily::Unspec, 7, LinkFlags::Up, "veth0", 1500);
        let Some(Update::Link(l)) = via_bytes(RouteNetlinkMessage::NewLink(m.clone())) else { panic!() };
        assert!(l.admin_up && !l.running && !l.is_up());
        assert_eq!(via_bytes(RouteNetlinkMessage::DelLink(m)), Some(Update::LinkGone(7)));
        // a bridge port message is not about the link itself
        let m = link(AddressFamily::Bridge, 7, LinkFlags::empty(), "veth0", 1500);
        assert_eq!(via_bytes(RouteNetlinkMessage::DelLink(m.clone())), None);
        assert_eq!(via_bytes(RouteNetlinkMessage::NewLink(m)), None);
    }

    #[test]
    fn address_decoding() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let a = IfAddr { ifindex: 4, addr: IpAddr::V6(ll), prefix_len: 64 };
        let m = addr(AddressFamily::Inet6, 4, 64, vec![AddressAttribute::Address(ll.into())]);
        assert_eq!(via_bytes(RouteNetlinkMessage::NewAddress(m.clone())), Some(Update::Addr(a)));
        assert_eq!(via_bytes(RouteNetlinkMessage::DelAddress(m.clone())), Some(Update::AddrGone(a)));
        // tentative (DAD running): not usable yet, in the attribute or the header
        let mut t = m.clone();
        t.attributes.push(AddressAttribute::Flags(AddressFlags::Tentative));
        assert_eq!(via_bytes(RouteNetlinkMessage::NewAddress(t)), Some(Update::AddrGone(a)));
        let mut t = m;
        t.header.flags = AddressHeaderFlags::Dadfailed;
        assert_eq!(via_bytes(RouteNetlinkMessage::NewAddress(t)), Some(Update::AddrGone(a)));
        // point-to-point IPv4: IFA_LOCAL is ours, IFA_ADDRESS the peer
        let p2p = vec![
            AddressAttribute::Address([10, 0, 0, 2].into()),
            AddressAttribute::Local([10, 0, 0, 1].into()),
        ];
        let Some(Update::Addr(a)) =
            via_bytes(RouteNetlinkMessage::NewAddress(addr(AddressFamily::Inet, 5, 32, p2p)))
        else {
            panic!()
        };
        assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        // no address at all: nothing
        assert_eq!(
            via_bytes(RouteNetlinkMessage::NewAddress(addr(AddressFamily::Inet6, 4, 64, vec![]))),
            None
        );
    }
}
