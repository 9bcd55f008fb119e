//! Which interfaces Babel runs on, right now: the configured plain-Babel
//! devices that exist, are up, and have a link-local address (pure).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::babel::{IfIndex, InterfaceConfig as EngineIface, LinkType};
use crate::config::{Config, InterfaceConfig, InterfaceType};
use crate::kernel::{IfAddr, LinkInfo};

/// What the kernel says about links and addresses, as the daemon tracks it.
#[derive(Debug, Default, Clone)]
pub struct KernelView {
    pub links: BTreeMap<IfIndex, LinkInfo>,
    /// Every address, in the order they came (a Vec: one map type fewer
    /// on a router's flash; a router has a few dozen addresses).
    pub addrs: Vec<IfAddr>,
}

impl KernelView {
    pub fn by_name(&self, name: &str) -> Option<&LinkInfo> {
        self.links.values().find(|l| l.name == name)
    }

    /// The interface's link-local address; the lowest, so that the choice
    /// is stable when there are several.
    pub fn link_local(&self, ifindex: IfIndex) -> Option<Ipv6Addr> {
        self.addrs
            .iter()
            .filter(|a| a.ifindex == ifindex && a.is_link_local_v6())
            .filter_map(|a| match a.addr {
                IpAddr::V6(v) => Some(v),
                IpAddr::V4(_) => None,
            })
            .min()
    }

    /// Every IPv6 link-local address of the interface.
    pub fn link_locals(&self, ifindex: IfIndex) -> Vec<Ipv6Addr> {
        let mut v: Vec<Ipv6Addr> = self
            .addrs
            .iter()
            .filter(|a| a.ifindex == ifindex && a.is_link_local_v6())
            .filter_map(|a| match a.addr {
                IpAddr::V6(v) => Some(v),
                IpAddr::V4(_) => None,
            })
            .collect();
        v.sort();
        v
    }

    pub fn ipv4(&self, ifindex: IfIndex) -> Option<Ipv4Addr> {
        self.addrs
            .iter()
            .filter(|a| a.ifindex == ifindex)
            .filter_map(|a| match a.addr {
                IpAddr::V4(v) if !v.is_loopback() => Some(v),
                _ => None,
            })
            .min()
    }

    pub fn apply(&mut self, ev: &crate::kernel::MonitorEvent) {
        use crate::kernel::MonitorEvent::*;
        match ev {
            LinkAdded(l) | LinkChanged(l) => {
                self.links.insert(l.ifindex, l.clone());
            }
            LinkRemoved(l) => {
                self.links.remove(&l.ifindex);
                self.addrs.retain(|a| a.ifindex != l.ifindex);
            }
            AddressAdded(a) => {
                if !self.addrs.contains(a) {
                    self.addrs.push(*a);
                }
            }
            AddressRemoved(a) => self.addrs.retain(|x| x != a),
        }
    }
}

/// The engine configuration of one configured interface, given the
/// device's state, or `None` if Babel cannot run on it now (absent, down,
/// or without link-local address yet).
pub fn engine_interface(
    ic: &InterfaceConfig,
    kernel: &KernelView,
    is_wireless: impl Fn(&str) -> bool,
) -> Option<(IfIndex, EngineIface)> {
    let link = kernel.by_name(&ic.ifname)?;
    if !link.is_up() {
        return None;
    }
    let ll = kernel.link_local(link.ifindex)?;
    let detected = ic.kind == InterfaceType::Auto && is_wireless(&ic.ifname);
    let params = ic.link_params(detected);
    let link_type = if params.link_quality {
        LinkType::Wireless
    } else if ic.kind == InterfaceType::Tunnel {
        LinkType::Tunnel
    } else {
        LinkType::Wired
    };
    let mut e = EngineIface::new(&ic.ifname, link_type, ll);
    e.other_link_locals = kernel.link_locals(link.ifindex).into_iter().filter(|a| *a != ll).collect();
    e.hello_interval_ms = ic.hello_interval_ms;
    e.update_interval_ms = ic.update_interval_ms;
    e.rxcost = Some(params.rxcost);
    e.split_horizon = Some(params.split_horizon);
    e.mtu = link.mtu;
    e.ipv4 = kernel.ipv4(link.ifindex);
    e.v4_via_v6 = ic.v4_via_v6;
    Some((link.ifindex, e))
}

/// Every plain-Babel interface that should be running, by ifindex.
pub fn desired_plain_interfaces(
    cfg: &Config,
    kernel: &KernelView,
    is_wireless: impl Fn(&str) -> bool,
) -> BTreeMap<IfIndex, EngineIface> {
    cfg.interfaces
        .iter()
        .filter(|i| i.enabled && !i.wireguard)
        .filter_map(|i| engine_interface(i, kernel, &is_wireless))
        .collect()
}

/// Keeps speaking from `current` while the interface still has it: a second
/// link-local address that appears (or finishes duplicate address
/// detection) later must not change our source address under running
/// neighbours, who know us by it. Returns true if `e` was changed.
pub fn keep_link_local(e: &mut EngineIface, current: Ipv6Addr) -> bool {
    if e.link_local == current || !e.other_link_locals.contains(&current) {
        return false;
    }
    e.other_link_locals.retain(|a| *a != current);
    e.other_link_locals.push(e.link_local);
    e.other_link_locals.sort();
    e.link_local = current;
    true
}

/// Linux marks radios in sysfs; used for `type auto`.
pub fn sysfs_is_wireless(ifname: &str) -> bool {
    let base = std::path::Path::new("/sys/class/net").join(ifname);
    base.join("wireless").exists() || base.join("phy80211").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::MonitorEvent;

    fn link(ifindex: u32, name: &str, up: bool) -> LinkInfo {
        LinkInfo { ifindex, name: name.into(), admin_up: up, running: up, mtu: 1500 }
    }

    fn addr(ifindex: u32, a: &str, len: u8) -> IfAddr {
        IfAddr { ifindex, addr: a.parse().unwrap(), prefix_len: len }
    }

    #[test]
    fn interfaces_need_to_exist_be_up_and_have_a_link_local_address() {
        let (cfg, _) = crate::config::parse_str(
            "config interface 'a'\n\toption ifname 'eth1'\n\toption type 'wired'\n\
             config interface 'b'\n\toption ifname 'wlan0'\n\toption type 'wireless'\n\
             config interface 'c'\n\toption ifname 'absent0'\n",
            "test",
        )
        .unwrap();
        let mut k = KernelView::default();
        k.apply(&MonitorEvent::LinkAdded(link(2, "eth1", true)));
        k.apply(&MonitorEvent::LinkAdded(link(3, "wlan0", false)));
        assert!(desired_plain_interfaces(&cfg, &k, |_| false).is_empty(), "no link-local yet");
        k.apply(&MonitorEvent::AddressAdded(addr(2, "fe80::2", 64)));
        k.apply(&MonitorEvent::AddressAdded(addr(2, "192.0.2.7", 24)));
        k.apply(&MonitorEvent::AddressAdded(addr(3, "fe80::3", 64)));
        let d = desired_plain_interfaces(&cfg, &k, |_| false);
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), vec![2], "wlan0 is down");
        let e = &d[&2];
        assert_eq!(e.link_type, LinkType::Wired);
        assert_eq!(e.ipv4, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(e.link_local, "fe80::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(e.split_horizon, Some(true));
        k.apply(&MonitorEvent::LinkChanged(link(3, "wlan0", true)));
        let d = desired_plain_interfaces(&cfg, &k, |_| false);
        assert_eq!(d[&3].link_type, LinkType::Wireless);
        assert_eq!(d[&3].rxcost, Some(256));
        // Losing its link-local address takes an interface out.
        k.apply(&MonitorEvent::AddressRemoved(addr(2, "fe80::2", 64)));
        assert!(!desired_plain_interfaces(&cfg, &k, |_| false).contains_key(&2));
    }

    #[test]
    fn a_later_link_local_address_does_not_replace_the_one_in_use() {
        let (cfg, _) = crate::config::parse_str(
            "config interface 'a'\n\toption ifname 'eth1'\n\toption type 'wired'\n",
            "test",
        )
        .unwrap();
        let mut k = KernelView::default();
        k.apply(&MonitorEvent::LinkAdded(link(2, "eth1", true)));
        // The MAC-derived address finishes DAD first; a configured, lower one later.
        k.apply(&MonitorEvent::AddressAdded(addr(2, "fe80::77:ff:fe00:1", 64)));
        let first = desired_plain_interfaces(&cfg, &k, |_| false)[&2].link_local;
        assert_eq!(first, "fe80::77:ff:fe00:1".parse::<Ipv6Addr>().unwrap());
        k.apply(&MonitorEvent::AddressAdded(addr(2, "fe80::1:2", 64)));
        let mut e = desired_plain_interfaces(&cfg, &k, |_| false)[&2].clone();
        assert_eq!(e.link_local, "fe80::1:2".parse::<Ipv6Addr>().unwrap(), "the lowest, left alone");
        assert!(keep_link_local(&mut e, first));
        assert_eq!(e.link_local, first);
        assert_eq!(e.other_link_locals, vec!["fe80::1:2".parse::<Ipv6Addr>().unwrap()]);
        assert!(!keep_link_local(&mut e, first), "nothing more to change");
        // Once the address in use is gone, the interface takes what is left.
        k.apply(&MonitorEvent::AddressRemoved(addr(2, "fe80::77:ff:fe00:1", 64)));
        let mut e = desired_plain_interfaces(&cfg, &k, |_| false)[&2].clone();
        assert!(!keep_link_local(&mut e, first));
        assert_eq!(e.link_local, "fe80::1:2".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn auto_type_uses_detection() {
        let (cfg, _) =
            crate::config::parse_str("config interface 'm'\n\toption ifname 'mesh0'\n", "t").unwrap();
        let mut k = KernelView::default();
        k.apply(&MonitorEvent::LinkAdded(link(5, "mesh0", true)));
        k.apply(&MonitorEvent::AddressAdded(addr(5, "fe80::5", 64)));
        assert_eq!(desired_plain_interfaces(&cfg, &k, |_| true)[&5].link_type, LinkType::Wireless);
        assert_eq!(desired_plain_interfaces(&cfg, &k, |_| false)[&5].link_type, LinkType::Wired);
    }
}
