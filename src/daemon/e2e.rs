//! The end-to-end interface's edge: creates `weft-e2e` on the WireGuard
//! backend (kernel or userspace, the same calls as the per-hop tunnels),
//! keeps its peers equal to the core's plan ([`crate::mesh::e2e`]), and
//! tells the kernel-route layer which prefixes go into it.

use std::net::{IpAddr, Ipv6Addr};

use log::{info, warn};
use serde_json::{json, Value};

use crate::babel::{Prefix, Time};
use crate::mesh::e2e::{Plan, Sources, Steer, INTERFACE};
use crate::wg::model::{AllowedIp, DeviceConfig, Key, PeerConfig, PrivateKey};
use crate::wg::{create_replacing, sync_device, AnyBackend, WgBackend};

/// A failed create is tried again this much later.
const RETRY_MS: u64 = 30_000;

/// The MTU of `weft-e2e` when not configured: a 1500-byte link minus two
/// WireGuard encapsulations over IPv6 (80 bytes each).
pub const DEFAULT_MTU: u32 = 1340;

pub struct E2eDevice {
    port: u16,
    mtu: u32,
    pub max_peers: usize,
    pub transport: Ipv6Addr,
    pub transport_prefix: Prefix,
    created: bool,
    error: Option<String>,
    retry_at: Time,
    /// The plan the device was last brought to.
    applied: Plan,
    /// The newest plan (what the routes follow).
    plan: Plan,
    pub syncs: u64,
    pub sync_errors: u64,
}

/// What the kernel-route layer needs to steer prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E2eRouting {
    pub ifindex: u32,
    pub sources: Sources,
    pub transport_prefix: Prefix,
    /// Sorted: into the end-to-end interface.
    pub e2e: Vec<Prefix>,
    /// Sorted: nowhere.
    pub unreachable: Vec<Prefix>,
}

impl E2eRouting {
    pub fn steer(&self, prefix: &Prefix) -> Option<Steer> {
        crate::mesh::e2e::steer_of(&self.e2e, &self.unreachable, prefix)
    }
}

impl E2eDevice {
    pub fn new(
        port: u16,
        mtu: u32,
        max_peers: usize,
        transport: Ipv6Addr,
        transport_prefix: Prefix,
    ) -> E2eDevice {
        E2eDevice {
            port,
            mtu,
            max_peers,
            transport,
            transport_prefix,
            created: false,
            error: None,
            retry_at: Time(0),
            applied: Plan::default(),
            plan: Plan::default(),
            syncs: 0,
            sync_errors: 0,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Creates the interface if it is not there (at start, and every 30 s
    /// after a failure); true when it exists.
    pub async fn ensure(&mut self, wg: &mut AnyBackend, private: [u8; 32], now: Time) -> bool {
        if self.created {
            return true;
        }
        if now < self.retry_at {
            return false;
        }
        if let Err(e) = create_replacing(wg, INTERFACE, self.mtu).await {
            self.fail(format!("cannot create {INTERFACE}: {e}"), now);
            return false;
        }
        self.created = true;
        self.applied = Plan::default();
        match self.sync(wg, private).await {
            Ok(()) => {
                info!(
                    "end to end: {INTERFACE} listening on port {} at {}, mtu {}",
                    self.port, self.transport, self.mtu
                );
                self.error = None;
                true
            }
            Err(e) => {
                self.created = false;
                let _ = wg.delete_interface(INTERFACE).await;
                self.fail(e, now);
                false
            }
        }
    }

    fn fail(&mut self, e: String, now: Time) {
        if self.error.as_deref() != Some(&e) {
            warn!(
                "end to end: {e} (the prefixes of end-to-end nodes stay unreachable; trying again in 30 s)"
            );
        }
        self.error = Some(e);
        self.retry_at = now.plus_ms(RETRY_MS);
    }

    /// Takes a new plan; brings the device's peers to it when they differ.
    pub async fn apply(&mut self, wg: &mut AnyBackend, private: [u8; 32], plan: Plan) {
        let changed = plan.peers != self.applied.peers;
        self.plan = plan;
        if changed && self.created {
            if let Err(e) = self.sync(wg, private).await {
                warn!("end to end: {e}");
            }
        }
    }

    /// Reads the device back and puts right what differs (peers, and an
    /// endpoint that roamed away from a transport address).
    pub async fn resync(&mut self, wg: &mut AnyBackend, private: [u8; 32]) {
        if self.created {
            if let Err(e) = self.sync(wg, private).await {
                warn!("end to end: {e}");
            }
        }
    }

    async fn sync(&mut self, wg: &mut AnyBackend, private: [u8; 32]) -> Result<(), String> {
        let desired = DeviceConfig {
            private_key: PrivateKey(Key(private)),
            listen_port: Some(self.port),
            fwmark: None,
            peers: self
                .plan
                .peers
                .iter()
                .map(|p| PeerConfig {
                    public_key: Key(*p.public_key.as_bytes()),
                    endpoint: Some(p.endpoint),
                    allowed_ips: p.allowed.iter().filter_map(|a| AllowedIp::new(a.addr(), a.len())).collect(),
                    persistent_keepalive: None,
                })
                .collect(),
        };
        self.syncs += 1;
        match sync_device(wg, INTERFACE, &desired).await {
            Ok(_) => {
                self.applied = self.plan.clone();
                Ok(())
            }
            Err(e) => {
                self.sync_errors += 1;
                Err(format!("configuring {INTERFACE}: {e}"))
            }
        }
    }

    /// How the kernel routes should steer, given the device's index (from
    /// the link monitor). Without the device every end-to-end prefix is
    /// unreachable: never sent in clear through relays.
    pub fn routing(&self, ifindex: Option<u32>, sources: Sources) -> E2eRouting {
        let up = self.created && ifindex.is_some();
        // Only what the device really has (a sync may have failed).
        let mut on_device: Vec<Prefix> =
            self.applied.peers.iter().flat_map(|p| p.allowed.iter().copied()).collect();
        on_device.sort();
        let (e2e, down): (Vec<Prefix>, Vec<Prefix>) =
            self.plan.e2e.iter().copied().partition(|p| up && on_device.binary_search(p).is_ok());
        let mut unreachable = self.plan.unreachable.clone();
        if !down.is_empty() {
            unreachable.extend(down);
            unreachable.sort();
        }
        E2eRouting {
            ifindex: ifindex.unwrap_or(0),
            sources,
            transport_prefix: self.transport_prefix,
            e2e,
            unreachable,
        }
    }

    pub async fn shutdown(&mut self, wg: &mut AnyBackend) {
        if self.created {
            let _ = wg.delete_interface(INTERFACE).await;
            self.created = false;
        }
    }

    pub fn status(&self) -> Value {
        json!({
            "interface": INTERFACE,
            "state": match &self.error { Some(e) => format!("error: {e}"), None if self.created => "up".into(), None => "starting".into() },
            "port": self.port,
            "mtu": self.mtu,
            "transport_address": self.transport.to_string(),
            "peers": self.plan.peers.len(),
            "max_peers": self.max_peers,
            "over_peer_limit": self.plan.over_peer_limit,
            "unreachable_prefixes": self.plan.unreachable.len(),
            "syncs": self.syncs,
            "sync_errors": self.sync_errors,
        })
    }

    /// Each peer, for `weft nodes`: router-id → endpoint.
    pub fn peer_endpoint(&self, rid: &crate::babel::RouterId) -> Option<IpAddr> {
        self.plan.peers.iter().find(|p| p.router_id == *rid).map(|p| p.endpoint.ip())
    }
}
