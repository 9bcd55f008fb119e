//! WireGuard desired state and its kernel (generic netlink) and userspace
//! (UAPI) backends.
//!
//! - [`model`]: pure desired/actual state and [`model::reconcile`].
//! - [`uapi`]: pure UAPI text; [`uapi_socket`]: the userspace backend (spawns
//!   wireguard-go or boringtun per interface, talks UAPI over its unix socket).
//! - [`netlink`]: the kernel backend (rtnetlink to create links, generic netlink
//!   family "wireguard" to configure them); message building is pure.
//! - [`rtnl`]: the link operations both backends share (MTU, up, addresses).
//! - [`fake`]: an in-memory backend for tests of whatever drives a backend.
//!
//! Every backend implements [`WgBackend`]; [`AnyBackend::auto`] picks the
//! kernel when it has WireGuard and the userspace implementation otherwise.

pub mod fake;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod rtnl;
pub mod uapi;
pub mod uapi_socket;

use std::fmt;
use std::io;
use std::net::IpAddr;

pub use model::{
    reconcile, AllowedIp, Device, DeviceConfig, DeviceUpdate, Key, PeerConfig, PeerState, PeerUpdate,
    PrivateKey,
};

/// Everything a backend can fail with.
#[derive(Debug)]
pub enum WgError {
    /// No WireGuard interface of that name (or no socket for it).
    NoSuchInterface(String),
    /// Interface names are 1..=15 bytes without '/', whitespace or NUL.
    BadInterfaceName(String),
    /// The kernel refused a netlink request (positive errno) while doing `what`.
    Netlink { what: String, errno: i32 },
    /// A netlink answer we could not parse.
    NetlinkDecode(String),
    /// The userspace implementation refused or garbled a UAPI exchange.
    Uapi(uapi::UapiError),
    /// The userspace implementation did not start (`what` says how).
    Spawn(String),
    /// A bounded wait ran out.
    Timeout(String),
    /// Any other IO failure, with what we were doing.
    Io { what: String, err: io::Error },
}

impl fmt::Display for WgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WgError::NoSuchInterface(n) => write!(f, "no WireGuard interface {n:?}"),
            WgError::BadInterfaceName(n) => write!(f, "bad interface name {n:?}"),
            WgError::Netlink { what, errno } => {
                write!(f, "{what}: kernel answered {}", io::Error::from_raw_os_error(*errno))
            }
            WgError::NetlinkDecode(s) => write!(f, "bad netlink answer: {s}"),
            WgError::Uapi(e) => e.fmt(f),
            WgError::Spawn(s) => write!(f, "starting the WireGuard implementation: {s}"),
            WgError::Timeout(s) => write!(f, "timed out: {s}"),
            WgError::Io { what, err } => write!(f, "{what}: {err}"),
        }
    }
}

impl std::error::Error for WgError {}

impl From<uapi::UapiError> for WgError {
    fn from(e: uapi::UapiError) -> Self {
        WgError::Uapi(e)
    }
}

impl WgError {
    pub(crate) fn io(what: impl Into<String>, err: io::Error) -> Self {
        WgError::Io { what: what.into(), err }
    }
}

/// Checks a Linux interface name (IFNAMSIZ 16 including the NUL).
pub fn check_ifname(name: &str) -> Result<(), WgError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(WgError::BadInterfaceName(name.to_string()))
    }
}

/// One way of running WireGuard interfaces.
///
/// Async because the daemon is one tokio event loop; every call is bounded
/// (netlink answers at once, UAPI and spawning have timeouts).
#[allow(async_fn_in_trait)] // used through generics or AnyBackend, never as dyn
pub trait WgBackend {
    /// Creates the interface, sets its MTU and brings it up. The device has
    /// no key and no peers until [`WgBackend::set`].
    async fn create_interface(&mut self, name: &str, mtu: u32) -> Result<(), WgError>;
    /// Deletes the interface (and stops its userspace implementation).
    async fn delete_interface(&mut self, name: &str) -> Result<(), WgError>;
    /// Applies an update (normally the output of [`reconcile`]).
    async fn set(&mut self, name: &str, update: &DeviceUpdate) -> Result<(), WgError>;
    /// Reads the device back.
    async fn get(&mut self, name: &str) -> Result<Device, WgError>;
    /// Adds an address (kernel WireGuard does not give itself a link-local one).
    async fn add_address(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError>;
}

/// Reads the device, reconciles and applies the difference. Returns what was
/// applied (empty when nothing had to change).
pub async fn sync_device<B: WgBackend>(
    backend: &mut B,
    name: &str,
    desired: &DeviceConfig,
) -> Result<(DeviceUpdate, Device), WgError> {
    let actual = backend.get(name).await?;
    let update = reconcile(desired, &actual);
    if !update.is_empty() {
        backend.set(name, &update).await?;
    }
    // What it held before the update: its peers' handshakes and counters.
    Ok((update, actual))
}

/// Creates an interface whose name the caller owns, replacing one of that
/// name left behind: kernel WireGuard links outlive a daemon that crashed or
/// was killed, and creating them again fails with EEXIST. When the create
/// fails and no such interface exists, the first error is returned.
pub async fn create_replacing<B: WgBackend>(backend: &mut B, name: &str, mtu: u32) -> Result<(), WgError> {
    match backend.create_interface(name, mtu).await {
        Ok(()) => Ok(()),
        Err(first) => {
            if backend.delete_interface(name).await.is_err() {
                return Err(first);
            }
            log::info!("replacing {name}, left by a previous run ({first})");
            backend.create_interface(name, mtu).await
        }
    }
}

/// A backend chosen at run time.
pub enum AnyBackend {
    Kernel(netlink::KernelBackend),
    /// Boxed: it holds option strings and maps, the others are small.
    Userspace(Box<uapi_socket::UserspaceBackend>),
}

impl AnyBackend {
    /// The kernel backend when the "wireguard" generic netlink family resolves
    /// (or a probe link of type wireguard can be created, which loads the
    /// module), otherwise the userspace backend built from `userspace`.
    pub async fn auto(userspace: uapi_socket::UserspaceOptions) -> Result<Self, WgError> {
        match netlink::KernelBackend::probe(userspace.netns.as_deref()).await? {
            Some(k) => Ok(AnyBackend::Kernel(k)),
            None => Ok(AnyBackend::Userspace(Box::new(uapi_socket::UserspaceBackend::new(userspace).await?))),
        }
    }

    /// "kernel" or "userspace", for logs and status output. (The in-memory
    /// [`fake`] backend is used directly by tests: a variant here would put
    /// its code in the router's binary.)
    pub fn kind(&self) -> &'static str {
        match self {
            AnyBackend::Kernel(_) => "kernel",
            AnyBackend::Userspace(_) => "userspace",
        }
    }
}

impl WgBackend for AnyBackend {
    async fn create_interface(&mut self, name: &str, mtu: u32) -> Result<(), WgError> {
        match self {
            AnyBackend::Kernel(b) => b.create_interface(name, mtu).await,
            AnyBackend::Userspace(b) => b.create_interface(name, mtu).await,
        }
    }
    async fn delete_interface(&mut self, name: &str) -> Result<(), WgError> {
        match self {
            AnyBackend::Kernel(b) => b.delete_interface(name).await,
            AnyBackend::Userspace(b) => b.delete_interface(name).await,
        }
    }
    async fn set(&mut self, name: &str, update: &DeviceUpdate) -> Result<(), WgError> {
        match self {
            AnyBackend::Kernel(b) => b.set(name, update).await,
            AnyBackend::Userspace(b) => b.set(name, update).await,
        }
    }
    async fn get(&mut self, name: &str) -> Result<Device, WgError> {
        match self {
            AnyBackend::Kernel(b) => b.get(name).await,
            AnyBackend::Userspace(b) => b.get(name).await,
        }
    }
    async fn add_address(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        match self {
            AnyBackend::Kernel(b) => b.add_address(name, addr, prefix).await,
            AnyBackend::Userspace(b) => b.add_address(name, addr, prefix).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn create_replacing_replaces_a_leftover_interface() {
        let mut b = fake::FakeBackend::new();
        block_on(async {
            b.create_interface("weft0a0b0c-2", 1280).await.unwrap();
            b.add_address("weft0a0b0c-2", "fe80::1".parse().unwrap(), 64).await.unwrap();
            b.calls.clear();
            create_replacing(&mut b, "weft0a0b0c-2", 1420).await.unwrap();
        });
        use fake::FakeCall::*;
        let name = || "weft0a0b0c-2".to_string();
        assert_eq!(
            b.calls,
            [Create { name: name(), mtu: 1420 }, Delete { name: name() }, Create { name: name(), mtu: 1420 }]
        );
        let i = &b.interfaces["weft0a0b0c-2"];
        assert_eq!(i.mtu, 1420, "created afresh");
        assert!(i.addresses.is_empty(), "nothing kept from the old interface");
    }

    #[test]
    fn create_replacing_reports_the_create_error_when_nothing_is_left() {
        let mut b = fake::FakeBackend::new();
        b.fail_next = Some(libc::EOPNOTSUPP);
        let e = block_on(create_replacing(&mut b, "weft0a0b0c-2", 1420)).unwrap_err();
        assert!(matches!(e, WgError::Netlink { errno: libc::EOPNOTSUPP, .. }), "{e}");
        assert!(b.interfaces.is_empty());
        // Fresh names need one call only.
        b.calls.clear();
        block_on(create_replacing(&mut b, "weft0a0b0c-3", 1420)).unwrap();
        assert_eq!(b.calls.len(), 1);
    }

    #[test]
    fn interface_names() {
        for ok in ["wg0", "weft-abcdef1234", "a"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "sixteen-chars-xx", "a/b", "a b", "..", "a:1"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
    }
}
