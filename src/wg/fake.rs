//! In-memory [`WgBackend`] for tests of code that drives a backend (the link
//! manager, the daemon): it applies updates with [`model::apply`], records
//! every call, and can be told to fail the next one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::model::{self, Device, DeviceUpdate};
use super::{check_ifname, WgBackend, WgError};

/// One call made to the fake, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeCall {
    Create { name: String, mtu: u32 },
    Delete { name: String },
    Set { name: String, update: DeviceUpdate },
    Get { name: String },
    AddAddress { name: String, addr: IpAddr, prefix: u8 },
}

/// An interface held by the fake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeInterface {
    pub mtu: u32,
    pub device: Device,
    pub addresses: Vec<(IpAddr, u8)>,
}

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct FakeBackend {
    pub interfaces: BTreeMap<String, FakeInterface>,
    pub calls: Vec<FakeCall>,
    /// When set, the next call fails with this errno (then it is cleared).
    pub fail_next: Option<i32>,
}

impl FakeBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn enter(&mut self, call: FakeCall) -> Result<(), WgError> {
        self.calls.push(call);
        match self.fail_next.take() {
            Some(errno) => Err(WgError::Netlink { what: "fake failure".into(), errno }),
            None => Ok(()),
        }
    }

    fn iface(&mut self, name: &str) -> Result<&mut FakeInterface, WgError> {
        self.interfaces.get_mut(name).ok_or_else(|| WgError::NoSuchInterface(name.to_string()))
    }
}

impl WgBackend for FakeBackend {
    async fn create_interface(&mut self, name: &str, mtu: u32) -> Result<(), WgError> {
        check_ifname(name)?;
        self.enter(FakeCall::Create { name: name.into(), mtu })?;
        if self.interfaces.contains_key(name) {
            return Err(WgError::Netlink {
                what: format!("creating {name}"),
                errno: libc::EEXIST, // as the kernel answers
            });
        }
        self.interfaces.insert(name.into(), FakeInterface { mtu, ..Default::default() });
        Ok(())
    }

    async fn delete_interface(&mut self, name: &str) -> Result<(), WgError> {
        self.enter(FakeCall::Delete { name: name.into() })?;
        self.interfaces.remove(name).map(|_| ()).ok_or_else(|| WgError::NoSuchInterface(name.to_string()))
    }

    async fn set(&mut self, name: &str, update: &DeviceUpdate) -> Result<(), WgError> {
        self.enter(FakeCall::Set { name: name.into(), update: update.clone() })?;
        let i = self.iface(name)?;
        i.device = model::apply(&i.device, update);
        Ok(())
    }

    async fn get(&mut self, name: &str) -> Result<Device, WgError> {
        self.enter(FakeCall::Get { name: name.into() })?;
        Ok(self.iface(name)?.device.clone())
    }

    async fn add_address(&mut self, name: &str, addr: IpAddr, prefix: u8) -> Result<(), WgError> {
        self.enter(FakeCall::AddAddress { name: name.into(), addr, prefix })?;
        let i = self.iface(name)?;
        if i.addresses.contains(&(addr, prefix)) {
            return Err(WgError::Netlink { what: format!("adding {addr}/{prefix}"), errno: libc::EEXIST });
        }
        i.addresses.push((addr, prefix));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::model::{DeviceConfig, Key, PeerConfig, PrivateKey};
    use crate::wg::sync_device;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn sync_device_converges_and_then_does_nothing() {
        block_on(async {
            let mut b = FakeBackend::new();
            b.create_interface("wgx", 1420).await.unwrap();
            let cfg = DeviceConfig {
                private_key: PrivateKey(Key([1; 32])),
                listen_port: Some(51820),
                fwmark: None,
                peers: vec![PeerConfig::new(Key([2; 32]))],
            };
            let first = sync_device(&mut b, "wgx", &cfg).await.unwrap().0;
            assert!(!first.is_empty());
            let second = sync_device(&mut b, "wgx", &cfg).await.unwrap().0;
            assert!(second.is_empty(), "{second:?}");
            assert_eq!(b.interfaces["wgx"].device.peers.len(), 1);
            let sets = b.calls.iter().filter(|c| matches!(c, FakeCall::Set { .. })).count();
            assert_eq!(sets, 1, "no set when nothing changed");
        });
    }

    #[test]
    fn errors_like_the_kernel() {
        block_on(async {
            let mut b = FakeBackend::new();
            assert!(matches!(b.get("nope").await, Err(WgError::NoSuchInterface(_))));
            b.create_interface("wgx", 1420).await.unwrap();
            assert!(matches!(
                b.create_interface("wgx", 1420).await,
                Err(WgError::Netlink { errno: libc::EEXIST, .. })
            ));
            b.fail_next = Some(5);
            assert!(b.get("wgx").await.is_err());
            assert!(b.get("wgx").await.is_ok(), "failure is one-shot");
            assert!(b.create_interface("bad name", 1).await.is_err());
            b.delete_interface("wgx").await.unwrap();
            assert!(b.interfaces.is_empty());
        });
    }
}
