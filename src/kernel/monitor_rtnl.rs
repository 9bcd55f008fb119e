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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::monitor::{IfAddr, LinkInfo, LinkMonitor, LinkTable, MonitorEvent, Update};
use super::netlink::{
    attr_u32, attrs, dump_links_request, is_overrun, messages, parse_ack, u32_at, MsgBuilder, NlSocket,
    AF_INET, AF_INET6, AF_UNSPEC, IFADDRMSG_LEN, IFA_ADDRESS, IFA_FLAGS, IFA_F_DADFAILED, IFA_F_TENTATIVE,
    IFA_LOCAL, IFF_RUNNING, IFF_UP, IFINFOMSG_LEN, IFLA_IFNAME, IFLA_MTU, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, RTM_DELADDR, RTM_DELLINK, RTM_GETADDR, RTM_NEWADDR,
    RTM_NEWLINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_LINK,
};

/// Decodes an RTM_NEWLINK / RTM_DELLINK payload (pure). `None` for messages
/// that are not about a whole link (bridge port messages carry AF_BRIDGE).
pub(crate) fn decode_link(ty: u16, p: &[u8]) -> Option<Update> {
    if p.len() < IFINFOMSG_LEN || p[0] != AF_UNSPEC {
        return None;
    }
    let ifindex = u32_at(p, 4);
    if ty == RTM_DELLINK {
        return Some(Update::LinkGone(ifindex));
    }
    let flags = u32_at(p, 8);
    let mut name = String::new();
    let mut mtu = 0;
    for (t, v) in attrs(&p[IFINFOMSG_LEN..]) {
        match t {
            IFLA_IFNAME => {
                let raw = v.split(|b| *b == 0).next().unwrap_or_default();
                name = String::from_utf8_lossy(raw).into_owned();
            }
            IFLA_MTU => mtu = attr_u32(v).unwrap_or(0),
            _ => {}
        }
    }
    Some(Update::Link(LinkInfo {
        ifindex,
        name,
        admin_up: flags & IFF_UP != 0,
        running: flags & IFF_RUNNING != 0,
        mtu,
    }))
}

/// Decodes an RTM_NEWADDR / RTM_DELADDR payload (pure). A tentative or
/// DAD-failed address is not usable and decodes as a removal.
pub(crate) fn decode_addr(ty: u16, p: &[u8]) -> Option<Update> {
    if p.len() < IFADDRMSG_LEN {
        return None;
    }
    let (family, prefix_len) = (p[0], p[1]);
    let mut flags = p[2] as u32;
    let ifindex = u32_at(p, 4);
    let (mut address, mut local) = (None, None);
    for (t, v) in attrs(&p[IFADDRMSG_LEN..]) {
        match t {
            IFA_ADDRESS => address = ip_from(family, v),
            IFA_LOCAL => local = ip_from(family, v),
            // the full 32-bit flags, when present, supersede the header's 8
            IFA_FLAGS => flags = attr_u32(v).unwrap_or(flags),
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours.
    let addr = local.or(address)?;
    let a = IfAddr { ifindex, addr, prefix_len };
    if ty == RTM_DELADDR || flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0 {
        Some(Update::AddrGone(a))
    } else {
        Some(Update::Addr(a))
    }
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
    out: MsgBuilder,
    reported: LinkTable,
    resync: Option<Resync>,
    events: VecDeque<MonitorEvent>,
    resyncs: u64,
}

impl RtnlMonitor {
    /// Subscribes and starts the initial dump; its results come as events.
    /// Must be called inside a tokio runtime.
    pub fn open() -> io::Result<RtnlMonitor> {
        let sock = NlSocket::open(&[RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR])?;
        // Bursts (boot, many tunnels coming up) should not overrun it; an
        // overrun is still handled, by a resync.
        let _ = sock.set_recv_buffer(1 << 20);
        let mut m = RtnlMonitor {
            sock,
            out: MsgBuilder::default(),
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
        let seq = self.sock.next_seq();
        self.out.clear();
        match phase {
            Phase::Links => dump_links_request(&mut self.out, seq),
            Phase::Addrs => {
                self.out.begin(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, &[0u8; IFADDRMSG_LEN]);
                self.out.end();
            }
        }
        self.sock.send(self.out.as_bytes())?;
        Ok(seq)
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
        let mut dump_done = false;
        for msg in messages(datagram) {
            let Ok(msg) = msg else { break };
            let update = match msg.ty {
                RTM_NEWLINK | RTM_DELLINK => decode_link(msg.ty, msg.payload),
                RTM_NEWADDR | RTM_DELADDR => decode_addr(msg.ty, msg.payload),
                NLMSG_DONE | NLMSG_ERROR => {
                    let Some(r) = &mut self.resync else { continue };
                    if msg.seq != r.seq {
                        continue;
                    }
                    if msg.ty == NLMSG_ERROR {
                        let ack =
                            parse_ack(&msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
                        if ack.errno != 0 {
                            // Start over, so the monitor recovers if the
                            // cause was passing; the caller logs the error.
                            self.resync = None;
                            self.start_resync()?;
                            return Err(io::Error::from_raw_os_error(ack.errno));
                        }
                        continue;
                    }
                    dump_done = true;
                    None
                }
                _ => None,
            };
            if let Some(r) = &mut self.resync {
                if msg.seq == r.seq && msg.flags & NLM_F_DUMP_INTR != 0 {
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
                dump_done = false;
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
    use super::*;

    fn link_msg(family: u8, index: u32, flags: u32, name: &str, mtu: u32) -> Vec<u8> {
        let mut hdr = [0u8; IFINFOMSG_LEN];
        hdr[0] = family;
        hdr[4..8].copy_from_slice(&index.to_ne_bytes());
        hdr[8..12].copy_from_slice(&flags.to_ne_bytes());
        let mut b = MsgBuilder::default();
        b.begin(RTM_NEWLINK, 0, 0, &hdr);
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        b.attr(IFLA_IFNAME, &n);
        b.attr_u32(IFLA_MTU, mtu);
        b.end();
        b.as_bytes()[16..].to_vec()
    }

    fn addr_msg(family: u8, index: u32, plen: u8, attrs_: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut hdr = [0u8; IFADDRMSG_LEN];
        hdr[0] = family;
        hdr[1] = plen;
        hdr[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut b = MsgBuilder::default();
        b.begin(RTM_NEWADDR, 0, 0, &hdr);
        for (t, v) in attrs_ {
            b.attr(*t, v);
        }
        b.end();
        b.as_bytes()[16..].to_vec()
    }

    #[test]
    fn link_decoding() {
        let p = link_msg(AF_UNSPEC, 7, IFF_UP | IFF_RUNNING, "wg-a", 1420);
        assert_eq!(
            decode_link(RTM_NEWLINK, &p),
            Some(Update::Link(LinkInfo {
                ifindex: 7,
                name: "wg-a".into(),
                admin_up: true,
                running: true,
                mtu: 1420
            }))
        );
        let p = link_msg(AF_UNSPEC, 7, IFF_UP, "veth0", 1500);
        let Some(Update::Link(l)) = decode_link(RTM_NEWLINK, &p) else { panic!() };
        assert!(l.admin_up && !l.running && !l.is_up());
        assert_eq!(decode_link(RTM_DELLINK, &p), Some(Update::LinkGone(7)));
        // a bridge port message is not about the link itself
        let p = link_msg(libc::AF_BRIDGE as u8, 7, 0, "veth0", 1500);
        assert_eq!(decode_link(RTM_DELLINK, &p), None);
        assert_eq!(decode_link(RTM_NEWLINK, &p[..10]), None);
    }

    #[test]
    fn address_decoding() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let a = IfAddr { ifindex: 4, addr: IpAddr::V6(ll), prefix_len: 64 };
        let p = addr_msg(AF_INET6, 4, 64, &[(IFA_ADDRESS, ll.octets().to_vec())]);
        assert_eq!(decode_addr(RTM_NEWADDR, &p), Some(Update::Addr(a)));
        assert_eq!(decode_addr(RTM_DELADDR, &p), Some(Update::AddrGone(a)));
        // tentative (DAD running): not usable yet
        let p = addr_msg(
            AF_INET6,
            4,
            64,
            &[(IFA_ADDRESS, ll.octets().to_vec()), (IFA_FLAGS, IFA_F_TENTATIVE.to_ne_bytes().to_vec())],
        );
        assert_eq!(decode_addr(RTM_NEWADDR, &p), Some(Update::AddrGone(a)));
        // point-to-point IPv4: IFA_LOCAL is ours, IFA_ADDRESS the peer
        let p = addr_msg(AF_INET, 5, 32, &[(IFA_ADDRESS, vec![10, 0, 0, 2]), (IFA_LOCAL, vec![10, 0, 0, 1])]);
        let Some(Update::Addr(a)) = decode_addr(RTM_NEWADDR, &p) else { panic!() };
        assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        // no address at all, or a wrong size: nothing
        assert_eq!(decode_addr(RTM_NEWADDR, &addr_msg(AF_INET6, 4, 64, &[])), None);
        assert_eq!(decode_addr(RTM_NEWADDR, &addr_msg(AF_INET6, 4, 64, &[(IFA_ADDRESS, vec![1, 2])])), None);
    }
}
