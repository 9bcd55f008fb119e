//! The rtnetlink link operations the WireGuard backends need: create and
//! delete links, MTU and up, addresses, name → index. Never shells out to `ip`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressHeaderFlags;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkWireguard};

use super::{netns, WgError};

/// A route-netlink connection, possibly opened in another network namespace.
#[derive(Clone)]
pub struct Rtnl {
    handle: Handle,
}

fn nl_err(what: String, e: rtnetlink::Error) -> WgError {
    match e {
        rtnetlink::Error::NetlinkError(m) => WgError::Netlink { what, errno: m.raw_code().saturating_abs() },
        other => WgError::NetlinkDecode(format!("{what}: {other}")),
    }
}

const ENODEV: i32 = 19;

impl Rtnl {
    /// Opens the socket (in `netns` if given) and spawns its connection task
    /// on the current tokio runtime.
    pub async fn connect(netns: Option<&Path>) -> Result<Self, WgError> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = netns::run_in(netns, move || {
            // The socket registers with the runtime's reactor, which needs its
            // context on this (possibly helper) thread.
            let _guard = rt.enter();
            rtnetlink::new_connection()
        })?
        .map_err(|e| WgError::io("opening rtnetlink socket", e))?;
        tokio::spawn(conn);
        Ok(Rtnl { handle })
    }

    /// The interface index of `name`, or `None` if there is no such link.
    pub async fn index_of(&self, name: &str) -> Result<Option<u32>, WgError> {
        let mut s = self.handle.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == ENODEV => Ok(None),
            Err(e) => Err(nl_err(format!("looking up link {name}"), e)),
        }
    }

    async fn require_index(&self, name: &str) -> Result<u32, WgError> {
        self.index_of(name).await?.ok_or_else(|| WgError::NoSuchInterface(name.to_string()))
    }

    /// All links, name → index (to resolve IPv6 zones given by name).
    pub async fn link_indices(&self) -> Result<HashMap<String, u32>, WgError> {
        let mut s = self.handle.link().get().execute();
        let mut out = HashMap::new();
        while let Some(m) = s.try_next().await.map_err(|e| nl_err("listing links".into(), e))? {
            if let Some(n) = link_name(&m) {
                out.insert(n, m.header.index);
            }
        }
        Ok(out)
    }

    /// `ip link add NAME type wireguard`.
    pub async fn create_wireguard(&self, name: &str) -> Result<(), WgError> {
        self.handle
            .link()
            .add(LinkWireguard::new(name).build())
            .execute()
            .await
            .map_err(|e| nl_err(format!("creating wireguard link {name}"), e))
    }

    /// `ip link del NAME`.
    pub async fn delete(&self, name: &str) -> Result<(), WgError> {
        let idx = self.require_index(name).await?;
        self.handle.link().del(idx).execute().await.map_err(|e| nl_err(format!("deleting link {name}"), e))
    }

    /// `ip link set NAME mtu MTU up`.
    pub async fn set_mtu_up(&self, name: &str, mtu: u32) -> Result<(), WgError> {
        let idx = self.require_index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(idx).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(|e| nl_err(format!("setting mtu {mtu} and up on {name}"), e))
    }

    /// `ip addr add ADDR/PREFIX dev NAME [nodad]`: IPv6 addresses skip
    /// duplicate address detection, so a tunnel's link-local address is usable
    /// at once (a point-to-point tunnel cannot have a duplicate).
    pub async fn add_address(&self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        let idx = self.require_index(name).await?;
        let mut req = self.handle.address().add(idx, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        req.execute().await.map_err(|e| nl_err(format!("adding {addr}/{prefix} to {name}"), e))
    }
}

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}
