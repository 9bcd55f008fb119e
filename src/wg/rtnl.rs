//! The rtnetlink link operations the WireGuard backends need: create and
//! delete links, MTU and up, addresses, name → index. Never shells out to `ip`.
//!
//! Built on `kernel::netlink` (neli's rtnetlink types; the request builders
//! there are pure and unit-tested).
//! The kernel answers
//! these requests synchronously, so each call is one request and its ack
//! (or one dump) on a socket that no other call uses meanwhile.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{check_ifname, netns, WgError};

use crate::kernel::netlink::{
    del_link_request, dump_links_request, get_link_request, link_index_and_name, new_addr_request,
    new_link_request, set_mtu_up_request, Ack, NlSocket, Request, RtMsg, NLM_F_DUMP_INTR,
};

/// A route-netlink connection, possibly opened in another network namespace.
/// Clones share the socket; their requests take turns.
#[derive(Clone)]
pub struct Rtnl {
    conn: Arc<Mutex<Conn>>,
}

struct Conn {
    sock: NlSocket,
}

/// A link dump that the kernel marks interrupted (links changed meanwhile)
/// is run again, this many times at most; the last one is used regardless.
const DUMP_ATTEMPTS: usize = 3;

impl Conn {
    /// Sends a request and reads its answer (see [`NlSocket::request`]).
    async fn call(&mut self, request: Request, on_reply: impl FnMut(u16, RtMsg)) -> io::Result<Ack> {
        self.sock.request(request, on_reply).await
    }
}

/// The kernel's refusal as a [`WgError`], with its extended-ack text (such as
/// "Unknown device type") appended to `what` when it gave one.
fn refused(what: String, ack: Ack) -> WgError {
    let what = match ack.message {
        Some(m) => format!("{what} ({m})"),
        None => what,
    };
    WgError::Netlink { what, errno: ack.errno }
}

/// Ok for a successful ack; ENODEV means `name` does not exist.
fn expect_ok(name: &str, what: impl FnOnce() -> String, ack: Ack) -> Result<(), WgError> {
    match ack.errno {
        0 => Ok(()),
        libc::ENODEV => Err(WgError::NoSuchInterface(name.to_string())),
        _ => Err(refused(what(), ack)),
    }
}

impl Rtnl {
    /// Opens the socket (in `netns` if given), registered with the current
    /// tokio runtime.
    pub async fn connect(netns: Option<&Path>) -> Result<Self, WgError> {
        let rt = tokio::runtime::Handle::current();
        let sock = netns::run_in(netns, move || {
            // The socket registers with the runtime's reactor, which needs its
            // context on this (possibly helper) thread.
            let _guard = rt.enter();
            NlSocket::open(&[])
        })?
        .map_err(|e| WgError::io("opening rtnetlink socket", e))?;
        Ok(Rtnl { conn: Arc::new(Mutex::new(Conn { sock })) })
    }

    /// The interface index of `name`, or `None` if there is no such link.
    pub async fn index_of(&self, name: &str) -> Result<Option<u32>, WgError> {
        check_ifname(name)?;
        let mut index = None;
        let ack = self
            .conn
            .lock()
            .await
            .call(get_link_request(name), |_, m| {
                if let RtMsg::Link(m) = m {
                    index = index.or(link_index_and_name(&m).map(|(i, _)| i));
                }
            })
            .await
            .map_err(|e| WgError::io(format!("looking up link {name}"), e))?;
        match ack.errno {
            0 if index.is_some() => Ok(index),
            0 => Err(WgError::NetlinkDecode(format!("looking up link {name}: no link in the answer"))),
            libc::ENODEV => Ok(None),
            _ => Err(refused(format!("looking up link {name}"), ack)),
        }
    }

    async fn require_index(&self, name: &str) -> Result<u32, WgError> {
        self.index_of(name).await?.ok_or_else(|| WgError::NoSuchInterface(name.to_string()))
    }

    /// All links, name → index (to resolve IPv6 zones given by name).
    pub async fn link_indices(&self) -> Result<HashMap<String, u32>, WgError> {
        let mut conn = self.conn.lock().await;
        let mut out = HashMap::new();
        for _ in 0..DUMP_ATTEMPTS {
            out.clear();
            let mut interrupted = false;
            let ack = conn
                .call(dump_links_request(), |flags, m| {
                    interrupted |= flags & NLM_F_DUMP_INTR != 0;
                    if let RtMsg::Link(m) = m {
                        if let Some((index, name)) = link_index_and_name(&m) {
                            out.insert(name, index);
                        }
                    }
                })
                .await
                .map_err(|e| WgError::io("listing links", e))?;
            if ack.errno != 0 {
                return Err(refused("listing links".into(), ack));
            }
            if !interrupted {
                break;
            }
        }
        Ok(out)
    }

    /// `ip link add NAME type wireguard`.
    pub async fn create_wireguard(&self, name: &str) -> Result<(), WgError> {
        check_ifname(name)?;
        let ack = self
            .conn
            .lock()
            .await
            .call(new_link_request(name, "wireguard"), |_, _| {})
            .await
            .map_err(|e| WgError::io(format!("creating wireguard link {name}"), e))?;
        match ack.errno {
            0 => Ok(()),
            _ => Err(refused(format!("creating wireguard link {name}"), ack)),
        }
    }

    /// `ip link del NAME`.
    pub async fn delete(&self, name: &str) -> Result<(), WgError> {
        check_ifname(name)?;
        let what = || format!("deleting link {name}");
        let ack = self
            .conn
            .lock()
            .await
            .call(del_link_request(name), |_, _| {})
            .await
            .map_err(|e| WgError::io(what(), e))?;
        expect_ok(name, what, ack)
    }

    /// `ip link set NAME mtu MTU up`.
    pub async fn set_mtu_up(&self, name: &str, mtu: u32) -> Result<(), WgError> {
        check_ifname(name)?;
        let what = || format!("setting mtu {mtu} and up on {name}");
        let ack = self
            .conn
            .lock()
            .await
            .call(set_mtu_up_request(name, mtu), |_, _| {})
            .await
            .map_err(|e| WgError::io(what(), e))?;
        expect_ok(name, what, ack)
    }

    /// `ip addr add ADDR/PREFIX dev NAME [nodad]`: IPv6 addresses skip
    /// duplicate address detection, so a tunnel's link-local address is usable
    /// at once (a point-to-point tunnel cannot have a duplicate).
    pub async fn add_address(&self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        let idx = self.require_index(name).await?;
        let what = || format!("adding {addr}/{prefix} to {name}");
        let ack = self
            .conn
            .lock()
            .await
            .call(new_addr_request(idx, addr, prefix, addr.is_ipv6()), |_, _| {})
            .await
            .map_err(|e| WgError::io(what(), e))?;
        expect_ok(name, what, ack)
    }
}
