//! Link and address monitoring: the interfaces the daemon may run Babel on,
//! whether they are up, and their addresses, as a stream of
//! [`MonitorEvent`]s behind the [`LinkMonitor`] trait.
//!
//! Events are changes against what was reported before (the [`LinkTable`]),
//! not raw kernel messages: the kernel repeats RTM_NEWLINK for statistics and
//! other changes the daemon does not care about, and after a lost
//! notification (receive buffer overrun) the monitor dumps everything again
//! and reports only the difference.
//!
//! An IPv6 address still doing duplicate address detection (tentative) or
//! that failed it cannot be used as a source, so it is reported only once DAD
//! has succeeded, and reported removed if it becomes tentative again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::net::IpAddr;

use tokio::sync::mpsc;

/// One network interface as the daemon needs to know it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Operationally up: carrier present and not dormant (IFF_RUNNING).
    pub running: bool,
    pub mtu: u32,
}

impl LinkInfo {
    /// Usable for Babel: up and with carrier.
    pub fn is_up(&self) -> bool {
        self.admin_up && self.running
    }
}

impl fmt::Debug for LinkInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{} {}{} mtu {}",
            self.name,
            self.ifindex,
            if self.admin_up { "up" } else { "down" },
            if self.running { "" } else { ",no-carrier" },
            self.mtu
        )
    }
}

/// An address on an interface.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfAddr {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IfAddr {
    /// An IPv6 link-local address (fe80::/10): what Babel speaks from.
    pub fn is_link_local_v6(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
    }
}

impl fmt::Debug for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on #{}", self.addr, self.prefix_len, self.ifindex)
    }
}

/// A change the daemon must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorEvent {
    /// A link appeared (also every link present at start).
    LinkAdded(LinkInfo),
    /// A link's name, up/down, carrier or MTU changed; the new state.
    LinkChanged(LinkInfo),
    /// A link went away; its last known state. Its addresses are reported
    /// removed before this.
    LinkRemoved(LinkInfo),
    /// A usable address appeared (also every address present at start).
    AddressAdded(IfAddr),
    AddressRemoved(IfAddr),
}

/// Links and addresses as last reported: applying kernel updates to it
/// yields the events (pure).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinkTable {
    links: BTreeMap<u32, LinkInfo>,
    addrs: BTreeSet<IfAddr>,
}

/// What one kernel message says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Update {
    Link(LinkInfo),
    LinkGone(u32),
    Addr(IfAddr),
    AddrGone(IfAddr),
}

impl LinkTable {
    pub fn links(&self) -> impl Iterator<Item = &LinkInfo> {
        self.links.values()
    }

    pub fn link(&self, ifindex: u32) -> Option<&LinkInfo> {
        self.links.get(&ifindex)
    }

    pub fn addresses(&self) -> impl Iterator<Item = &IfAddr> {
        self.addrs.iter()
    }

    /// Applies one update, appending the events it causes.
    pub(crate) fn apply(&mut self, u: Update, events: &mut VecDeque<MonitorEvent>) {
        match u {
            Update::Link(info) => match self.links.insert(info.ifindex, info.clone()) {
                None => events.push_back(MonitorEvent::LinkAdded(info)),
                Some(old) if old != info => events.push_back(MonitorEvent::LinkChanged(info)),
                Some(_) => {}
            },
            Update::LinkGone(ifindex) => {
                let gone: Vec<IfAddr> = self.addrs.iter().filter(|a| a.ifindex == ifindex).copied().collect();
                for a in gone {
                    self.addrs.remove(&a);
                    events.push_back(MonitorEvent::AddressRemoved(a));
                }
                if let Some(old) = self.links.remove(&ifindex) {
                    events.push_back(MonitorEvent::LinkRemoved(old));
                }
            }
            Update::Addr(a) => {
                if self.addrs.insert(a) {
                    events.push_back(MonitorEvent::AddressAdded(a));
                }
            }
            Update::AddrGone(a) => {
                if self.addrs.remove(&a) {
                    events.push_back(MonitorEvent::AddressRemoved(a));
                }
            }
        }
    }

    /// The events that turn `self` into `new`: removals first (addresses,
    /// then links), then links added or changed, then addresses added.
    pub(crate) fn diff(&self, new: &LinkTable, events: &mut VecDeque<MonitorEvent>) {
        for a in self.addrs.difference(&new.addrs) {
            events.push_back(MonitorEvent::AddressRemoved(*a));
        }
        for (i, old) in &self.links {
            if !new.links.contains_key(i) {
                events.push_back(MonitorEvent::LinkRemoved(old.clone()));
            }
        }
        for (i, info) in &new.links {
            match self.links.get(i) {
                None => events.push_back(MonitorEvent::LinkAdded(info.clone())),
                Some(old) if old != info => events.push_back(MonitorEvent::LinkChanged(info.clone())),
                Some(_) => {}
            }
        }
        for a in new.addrs.difference(&self.addrs) {
            events.push_back(MonitorEvent::AddressAdded(*a));
        }
    }

    /// Drops addresses whose link is not known (after a resync).
    pub(crate) fn prune_orphans(&mut self) {
        let links = &self.links;
        self.addrs.retain(|a| links.contains_key(&a.ifindex));
    }
}

/// A source of link and address events. The daemon is generic over it;
/// [`super::RtnlMonitor`] watches the kernel, [`FakeMonitor`] is fed by tests.
#[allow(async_fn_in_trait)] // current_thread daemon: no Send bound wanted
pub trait LinkMonitor {
    /// The next change. Cancel-safe: an event is only consumed by a call
    /// that returns it, so this can sit in a `select!`.
    async fn next_event(&mut self) -> io::Result<MonitorEvent>;
}

/// A monitor fed by a test through its [`FakeMonitorHandle`]. When the queue
/// is empty (and even once the handle is gone) it waits, like a quiet kernel.
pub struct FakeMonitor {
    rx: mpsc::UnboundedReceiver<MonitorEvent>,
}

#[derive(Clone)]
pub struct FakeMonitorHandle {
    tx: mpsc::UnboundedSender<MonitorEvent>,
}

impl FakeMonitor {
    pub fn new() -> (FakeMonitor, FakeMonitorHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        (FakeMonitor { rx }, FakeMonitorHandle { tx })
    }
}

impl FakeMonitorHandle {
    pub fn push(&self, ev: MonitorEvent) {
        // The monitor may be gone at the end of a test: nothing to deliver to.
        let _ = self.tx.send(ev);
    }
}

impl LinkMonitor for FakeMonitor {
    async fn next_event(&mut self) -> io::Result<MonitorEvent> {
        match self.rx.recv().await {
            Some(ev) => Ok(ev),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(i: u32, up: bool) -> LinkInfo {
        LinkInfo { ifindex: i, name: format!("eth{i}"), admin_up: up, running: up, mtu: 1500 }
    }

    fn addr(i: u32, a: &str) -> IfAddr {
        IfAddr { ifindex: i, addr: a.parse().unwrap(), prefix_len: 64 }
    }

    #[test]
    fn repeated_updates_are_not_reported_twice() {
        let mut t = LinkTable::default();
        let mut ev = VecDeque::new();
        t.apply(Update::Link(link(2, false)), &mut ev);
        t.apply(Update::Link(link(2, false)), &mut ev);
        t.apply(Update::Link(link(2, true)), &mut ev);
        t.apply(Update::Addr(addr(2, "fe80::1")), &mut ev);
        t.apply(Update::Addr(addr(2, "fe80::1")), &mut ev);
        t.apply(Update::AddrGone(addr(2, "fe80::9")), &mut ev);
        assert_eq!(
            Vec::from(ev),
            vec![
                MonitorEvent::LinkAdded(link(2, false)),
                MonitorEvent::LinkChanged(link(2, true)),
                MonitorEvent::AddressAdded(addr(2, "fe80::1")),
            ]
        );
        assert!(addr(2, "fe80::1").is_link_local_v6());
        assert!(!addr(2, "2001:db8::1").is_link_local_v6());
    }

    #[test]
    fn link_removal_reports_its_addresses_first() {
        let mut t = LinkTable::default();
        let mut ev = VecDeque::new();
        t.apply(Update::Link(link(3, true)), &mut ev);
        t.apply(Update::Addr(addr(3, "fe80::3")), &mut ev);
        t.apply(Update::Addr(addr(4, "fe80::4")), &mut ev);
        ev.clear();
        t.apply(Update::LinkGone(3), &mut ev);
        t.apply(Update::AddrGone(addr(3, "fe80::3")), &mut ev); // kernel's late DELADDR
        assert_eq!(
            Vec::from(ev),
            vec![MonitorEvent::AddressRemoved(addr(3, "fe80::3")), MonitorEvent::LinkRemoved(link(3, true)),]
        );
        assert_eq!(t.addresses().count(), 1);
    }

    #[test]
    fn diff_reports_only_differences_in_a_safe_order() {
        let mut old = LinkTable::default();
        let mut new = LinkTable::default();
        let mut sink = VecDeque::new();
        for u in [
            Update::Link(link(1, true)),
            Update::Link(link(2, true)),
            Update::Link(link(3, true)),
            Update::Addr(addr(1, "fe80::1")),
            Update::Addr(addr(2, "fe80::2")),
        ] {
            old.apply(u, &mut sink);
        }
        for u in [
            Update::Link(link(1, true)),
            Update::Link(link(3, false)),
            Update::Link(link(4, true)),
            Update::Addr(addr(1, "fe80::1")),
            Update::Addr(addr(4, "fe80::4")),
            Update::Addr(addr(9, "fe80::9")),
        ] {
            new.apply(u, &mut sink);
        }
        new.prune_orphans();
        let mut ev = VecDeque::new();
        old.diff(&new, &mut ev);
        assert_eq!(
            Vec::from(ev),
            vec![
                MonitorEvent::AddressRemoved(addr(2, "fe80::2")),
                MonitorEvent::LinkRemoved(link(2, true)),
                MonitorEvent::LinkChanged(link(3, false)),
                MonitorEvent::LinkAdded(link(4, true)),
                MonitorEvent::AddressAdded(addr(4, "fe80::4")),
            ]
        );
    }

    #[test]
    fn fake_delivers_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut m, h) = FakeMonitor::new();
            h.push(MonitorEvent::LinkAdded(link(1, true)));
            h.push(MonitorEvent::AddressAdded(addr(1, "fe80::1")));
            assert_eq!(m.next_event().await.unwrap(), MonitorEvent::LinkAdded(link(1, true)));
            assert_eq!(m.next_event().await.unwrap(), MonitorEvent::AddressAdded(addr(1, "fe80::1")));
            drop(h);
            // nothing more: waits rather than failing
            let r = tokio::time::timeout(std::time::Duration::from_millis(20), m.next_event()).await;
            assert!(r.is_err());
        })
    }
}
