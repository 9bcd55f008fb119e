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

use neli::consts::rtnl::{Ifa, IfaF, Ifla, RtAddrFamily, Rtm};
use neli::rtnl::{Ifaddrmsg, Ifinfomsg};

use super::monitor::{IfAddr, LinkInfo, LinkMonitor, LinkTable, MonitorEvent, Update};
use super::netlink::{
    dump_addrs_request, dump_links_request, frames, ip_from, is_overrun, link_up_running, str_of, u32_of,
    Body, NlSocket, RtMsg, NLM_F_DUMP_INTR,
};

/// What a link or address message of type `ty` says (pure); `None` for
/// other messages.
pub(crate) fn decode(ty: u16, msg: &RtMsg) -> Option<Update> {
    let ty = Rtm::from(ty);
    match msg {
        RtMsg::Link(m) => decode_link(m, ty == Rtm::Dellink),
        RtMsg::Addr(m) => decode_addr(m, ty == Rtm::Deladdr),
    }
}

/// `None` for messages that are not about a whole link (bridge port
/// messages carry AF_BRIDGE).
fn decode_link(m: &Ifinfomsg, gone: bool) -> Option<Update> {
    if *m.ifi_family() != RtAddrFamily::Unspecified {
        return None;
    }
    let ifindex = *m.ifi_index() as u32;
    if gone {
        return Some(Update::LinkGone(ifindex));
    }
    let mut name = String::new();
    let mut mtu = 0;
    for a in m.rtattrs().iter() {
        let v = a.rta_payload().as_ref();
        match *a.rta_type() {
            Ifla::Ifname => name = str_of(v),
            Ifla::Mtu => mtu = u32_of(v).unwrap_or(0),
            _ => {}
        }
    }
    let (admin_up, running) = link_up_running(m);
    Some(Update::Link(LinkInfo { ifindex, name, admin_up, running, mtu }))
}

/// A tentative or DAD-failed address is not usable and decodes as a removal.
fn decode_addr(m: &Ifaddrmsg, gone: bool) -> Option<Update> {
    let family = *m.ifa_family();
    let mut flags = u32::from(m.ifa_flags().bits());
    let (mut address, mut local) = (None, None);
    for a in m.rtattrs().iter() {
        let v = a.rta_payload().as_ref();
        match *a.rta_type() {
            Ifa::Address => address = ip_from(family, v),
            Ifa::Local => local = ip_from(family, v),
            // the full 32-bit flags, when present, supersede the header's 8
            Ifa::Flags => flags = u32_of(v).unwrap_or(flags),
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours.
    let addr = local.or(address)?;
    let a = IfAddr { ifindex: *m.ifa_index(), addr, prefix_len: *m.ifa_prefixlen() };
    let unusable = u32::from((IfaF::TENTATIVE | IfaF::DADFAILED).bits());
    if gone || flags & unusable != 0 {
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

    fn process(&mut self, datagram: &[u8]) -> io::Result<()> {
        let frames = match frames(datagram) {
            Ok(f) => f,
            Err(e) => {
                // Whatever it said is lost: find out again, as after an
                // overrun.
                log::warn!("link monitor: {e}; resynchronising");
                return self.overrun();
            }
        };
        for frame in frames {
            let (seq, flags) = (frame.seq, frame.flags);
            let mut dump_done = false;
            let update = match &frame.body {
                Body::Ack(ack) => {
                    let Some(r) = &mut self.resync else { continue };
                    if seq != r.seq {
                        continue;
                    }
                    if ack.errno != 0 {
                        // Start over, so the monitor recovers if the cause
                        // was passing; the caller logs the error.
                        self.resync = None;
                        self.start_resync()?;
                        return Err(io::Error::from_raw_os_error(ack.errno));
                    }
                    // The end of a dump (NLMSG_DONE), not a bare ack.
                    dump_done = frame.is_done();
                    if !dump_done {
                        continue;
                    }
                    None
                }
                Body::Msg(m) => decode(frame.ty, m),
                Body::Route(_) | Body::Other => None,
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

    use neli::consts::nl::NlmF;
    use neli::consts::rtnl::{Iff, RtScope};
    use neli::rtnl::{IfaddrmsgBuilder, IfinfomsgBuilder};
    use neli::types::{Buffer, RtBuffer};

    use super::super::netlink::{attr, ip_octets, Batch, Request};
    use super::*;

    /// Serializes `msg` as the kernel would send it and decodes it back.
    fn via_bytes(ty: Rtm, msg: RtMsg) -> Option<Update> {
        let mut b = Batch::default();
        let req: Request = (ty, msg, NlmF::empty());
        b.push(req, 0, false);
        let f = frames(b.as_bytes()).unwrap().remove(0);
        let Body::Msg(m) = f.body else { panic!("{:?}", f.body) };
        decode(f.ty, &m)
    }

    fn link(family: RtAddrFamily, index: i32, flags: Iff, name: &str, mtu: u32) -> RtMsg {
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifla::Ifname, name));
        attrs.push(attr(Ifla::Mtu, mtu));
        RtMsg::Link(
            IfinfomsgBuilder::default()
                .ifi_family(family)
                .ifi_index(index)
                .ifi_flags(flags)
                .rtattrs(attrs)
                .build()
                .unwrap(),
        )
    }

    fn addr(family: RtAddrFamily, index: u32, plen: u8, flags: IfaF, attrs: Vec<(Ifa, Vec<u8>)>) -> RtMsg {
        let attrs: RtBuffer<Ifa, Buffer> = attrs.iter().map(|(t, v)| attr(*t, &v[..])).collect();
        RtMsg::Addr(
            IfaddrmsgBuilder::default()
                .ifa_family(family)
                .ifa_prefixlen(plen)
                .ifa_flags(flags)
                .ifa_scope(RtScope::Universe)
                .ifa_index(index)
                .rtattrs(attrs)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn link_decoding() {
        let m = link(RtAddrFamily::Unspecified, 7, Iff::UP | Iff::RUNNING, "wg-a", 1420);
        let want = LinkInfo { ifindex: 7, name: "wg-a".into(), admin_up: true, running: true, mtu: 1420 };
        assert_eq!(via_bytes(Rtm::Newlink, m), Some(Update::Link(want)));
        let m = link(RtAddrFamily::Unspecified, 7, Iff::UP, "veth0", 1500);
        let Some(Update::Link(l)) = via_bytes(Rtm::Newlink, m.clone()) else { panic!() };
        assert!(l.admin_up && !l.running && !l.is_up());
        assert_eq!(via_bytes(Rtm::Dellink, m), Some(Update::LinkGone(7)));
        // a bridge port message is not about the link itself
        let m = link(RtAddrFamily::from(libc::AF_BRIDGE as u8), 7, Iff::empty(), "veth0", 1500);
        assert_eq!(via_bytes(Rtm::Dellink, m.clone()), None);
        assert_eq!(via_bytes(Rtm::Newlink, m), None);
    }

    #[test]
    fn address_decoding() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let a = IfAddr { ifindex: 4, addr: IpAddr::V6(ll), prefix_len: 64 };
        let plain = vec![(Ifa::Address, ll.octets().to_vec())];
        let m = addr(RtAddrFamily::Inet6, 4, 64, IfaF::empty(), plain.clone());
        assert_eq!(via_bytes(Rtm::Newaddr, m.clone()), Some(Update::Addr(a)));
        assert_eq!(via_bytes(Rtm::Deladdr, m), Some(Update::AddrGone(a)));
        // tentative (DAD running) or DAD failed: not usable, whether the
        // header's 8 flag bits or IFA_FLAGS say so
        let m = addr(RtAddrFamily::Inet6, 4, 64, IfaF::TENTATIVE, plain.clone());
        assert_eq!(via_bytes(Rtm::Newaddr, m), Some(Update::AddrGone(a)));
        let mut flagged = plain.clone();
        flagged.push((Ifa::Flags, u32::from(IfaF::DADFAILED.bits()).to_ne_bytes().to_vec()));
        let m = addr(RtAddrFamily::Inet6, 4, 64, IfaF::empty(), flagged);
        assert_eq!(via_bytes(Rtm::Newaddr, m), Some(Update::AddrGone(a)));
        // point-to-point IPv4: IFA_LOCAL is ours, IFA_ADDRESS the peer
        let p2p = vec![
            (Ifa::Address, ip_octets("10.0.0.2".parse().unwrap())),
            (Ifa::Local, ip_octets("10.0.0.1".parse().unwrap())),
        ];
        let Some(Update::Addr(a)) =
            via_bytes(Rtm::Newaddr, addr(RtAddrFamily::Inet, 5, 32, IfaF::empty(), p2p))
        else {
            panic!()
        };
        assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        // no address, or one of the wrong size: nothing
        assert_eq!(via_bytes(Rtm::Newaddr, addr(RtAddrFamily::Inet6, 4, 64, IfaF::empty(), vec![])), None);
        let short = vec![(Ifa::Address, vec![1, 2])];
        assert_eq!(via_bytes(Rtm::Newaddr, addr(RtAddrFamily::Inet6, 4, 64, IfaF::empty(), short)), None);
    }
}
