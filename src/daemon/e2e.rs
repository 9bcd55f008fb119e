//! The end-to-end interface's edge: creates `weft-e2e` on the WireGuard
//! backend (kernel or userspace, the same calls as the per-hop tunnels),
//! keeps its peers equal to the core's plan ([`crate::mesh::e2e`]), and
//! tells the kernel-route layer which prefixes go into it.

use std::net::Ipv6Addr;

use log::{info, warn};
use serde_json::{json, Value};

use crate::babel::{Prefix, RouterId, Time};
use crate::mesh::e2e::{Plan, Sources, Steer, INTERFACE};
use crate::wg::model::{AllowedIp, DeviceConfig, Key, PeerConfig, PrivateKey};

/// A failed create is tried again this much later.
const RETRY_MS: u64 = 30_000;
/// A peer whose transport route vanished is kept this long.
pub const GRACE_MS: u64 = 300_000;

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
    /// When each origin's transport address was last seen routed.
    seen: Vec<(RouterId, Time)>,
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
            seen: Vec::new(),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether the interface should be created now (at start, and every
    /// 30 s after a failure).
    pub fn wants_create(&self, now: Time) -> bool {
        !self.created && now >= self.retry_at
    }

    pub fn is_created(&self) -> bool {
        self.created
    }

    /// What the device should be: our key and port, a peer per planned node.
    pub fn desired(&self, private: [u8; 32]) -> DeviceConfig {
        DeviceConfig {
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
        }
    }

    /// The interface was created and configured with [`Self::desired`].
    pub fn created(&mut self) {
        if !self.created {
            info!(
                "end to end: {INTERFACE} listening on port {} at {}, mtu {}",
                self.port, self.transport, self.mtu
            );
        }
        self.created = true;
        self.error = None;
        self.synced(true);
    }

    /// A configuration with [`Self::desired`] was applied, or failed.
    pub fn synced(&mut self, ok: bool) {
        self.syncs += 1;
        if ok {
            self.applied = self.plan.clone();
        } else {
            self.sync_errors += 1;
        }
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Creating or configuring the interface failed: tried again in 30 s.
    pub fn fail(&mut self, e: String, now: Time) {
        if self.error.as_deref() != Some(&e) {
            warn!(
                "end to end: {e} (the prefixes of end-to-end nodes stay unreachable; trying again in 30 s)"
            );
        }
        self.created = false;
        self.error = Some(e);
        self.retry_at = now.plus_ms(RETRY_MS);
    }

    /// Origins whose transport address was routed within [`GRACE_MS`]:
    /// their peers survive a short flap of that route (a new peer would
    /// start without a session, and the first packet waits for a handshake).
    pub fn grace(&mut self, now: Time) -> Vec<RouterId> {
        self.seen.retain(|(_, t)| now.since(*t) < GRACE_MS);
        self.seen.iter().map(|(r, _)| *r).collect()
    }

    /// Takes a new plan made at `now`; true if the device's peers must change.
    pub fn set_plan(&mut self, plan: Plan, now: Time) -> bool {
        for rid in &plan.routed {
            match self.seen.iter_mut().find(|(r, _)| r == rid) {
                Some(e) => e.1 = now,
                None => self.seen.push((*rid, now)),
            }
        }
        let changed = plan.peers != self.applied.peers;
        self.plan = plan;
        changed && self.created
    }

    /// How the kernel routes should steer, given the device's index and
    /// whether it is up (from the link monitor). Without the device every
    /// end-to-end prefix is unreachable: never sent in clear through relays.
    pub fn routing(&self, link: Option<(u32, bool)>, sources: Sources) -> E2eRouting {
        // Down, the kernel has dropped the interface's routes: unreachable
        // until it is up again (never the covering route of some other path).
        let up = self.created && link.is_some_and(|(_, up)| up);
        let mut e2e = Vec::new();
        let mut unreachable = self.plan.unreachable.clone();
        for peer in &self.plan.peers {
            // Only what the device really holds for this very peer (a sync
            // may have failed after a prefix moved between peers).
            let held = self.applied.peers.iter().find(|a| a.public_key == peer.public_key);
            for p in &peer.allowed {
                if up && held.is_some_and(|a| a.allowed.binary_search(p).is_ok()) {
                    e2e.push(*p);
                } else {
                    unreachable.push(*p);
                }
            }
        }
        e2e.sort();
        unreachable.sort();
        let ifindex = link.map_or(0, |(i, _)| i);
        E2eRouting { ifindex, sources, transport_prefix: self.transport_prefix, e2e, unreachable }
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

    /// A node's end-to-end peer endpoint, for `weft nodes`.
    pub fn peer_endpoint(&self, rid: &str) -> Option<String> {
        self.plan.peers.iter().find(|p| p.router_id.to_string() == rid).map(|p| p.endpoint.to_string())
    }
}
