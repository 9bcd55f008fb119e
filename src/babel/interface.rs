//! What the engine knows about one interface it runs Babel on.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// Kernel interface index (or a simulator's stand-in for one).
pub type IfIndex = u32;

/// The kind of link, which picks the link-cost function and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    /// Ethernet-like: 2-out-of-3, nominal cost 96, split horizon.
    Wired,
    /// Radio: ETX, nominal cost 256, no split horizon.
    Wireless,
    /// A point-to-point tunnel (WireGuard): like wired.
    Tunnel,
}

impl LinkType {
    pub fn default_rxcost(self) -> u16 {
        match self {
            LinkType::Wireless => 256,
            LinkType::Wired | LinkType::Tunnel => 96,
        }
    }

    pub fn default_split_horizon(self) -> bool {
        !matches!(self, LinkType::Wireless)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Wired => "wired",
            LinkType::Wireless => "wireless",
            LinkType::Tunnel => "tunnel",
        }
    }
}

/// Configuration of one Babel interface, as the daemon (or simulator) hands
/// it to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    pub link_type: LinkType,
    pub hello_interval_ms: u64,
    pub update_interval_ms: u64,
    /// Nominal receive cost of a perfect link; `None` for the link type's default.
    pub rxcost: Option<u16>,
    /// `None` for the link type's default.
    pub split_horizon: Option<bool>,
    /// Link MTU; packets are at most MTU − 48 bytes (IPv6 + UDP headers).
    pub mtu: u32,
    /// Our link-local address on this interface.
    pub link_local: Ipv6Addr,
    /// Any other link-local addresses we have there (an IHU addressed to
    /// any of them is for us, as babeld checks all of an interface's).
    pub other_link_locals: Vec<Ipv6Addr>,
    /// Our IPv4 address, used as the next hop of IPv4 routes. Without one,
    /// IPv4 routes go out as v4-via-v6 (RFC 9229).
    pub ipv4: Option<Ipv4Addr>,
    /// May IPv4 routes go out as v4-via-v6? Off for BIRD peers, which lack
    /// RFC 9229; then an interface without IPv4 address carries no IPv4.
    pub v4_via_v6: bool,
}

impl InterfaceConfig {
    /// A configuration with babeld-like defaults (4 s hellos, 16 s updates).
    pub fn new(name: &str, link_type: LinkType, link_local: Ipv6Addr) -> InterfaceConfig {
        InterfaceConfig {
            name: name.to_string(),
            link_type,
            hello_interval_ms: 4000,
            update_interval_ms: 16000,
            rxcost: None,
            split_horizon: None,
            mtu: 1500,
            link_local,
            other_link_locals: Vec::new(),
            ipv4: None,
            v4_via_v6: true,
        }
    }

    pub fn nominal_rxcost(&self) -> u16 {
        self.rxcost.unwrap_or_else(|| self.link_type.default_rxcost())
    }

    pub fn split_horizon(&self) -> bool {
        self.split_horizon.unwrap_or_else(|| self.link_type.default_split_horizon())
    }

    /// Is `a` one of our link-local addresses here?
    pub fn is_ours(&self, a: &Ipv6Addr) -> bool {
        *a == self.link_local || self.other_link_locals.contains(a)
    }

    /// Largest Babel packet we send on this interface.
    pub fn max_packet(&self) -> usize {
        (self.mtu as usize).saturating_sub(48).clamp(512, 65_000)
    }
}
