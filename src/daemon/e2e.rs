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

/// Sending to a peer without a handshake in a WireGuard session's life
/// (180 s) for this long makes it stale: something on the path drops the
/// end-to-end packets (a relay that blackholes them, a filter).
const STALE_MS: u64 = 30_000;
const SESSION_MS: u64 = 180_000;

/// What the last look at one peer saw.
struct Watch {
    key: [u8; 32],
    tx: u64,
    handshake: Option<std::time::SystemTime>,
    /// When (our clock) that handshake was first seen.
    handshake_at: Option<Time>,
    /// When its tx bytes last grew.
    last_growth: Option<Time>,
    /// Since when we have been sending without a recent handshake.
    since: Option<Time>,
}

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
    /// What the last read-back saw of each peer.
    watch: Vec<Watch>,
    /// Peers stale now, and how often a peer became stale.
    stale: Vec<RouterId>,
    pub handshakes_stale: u64,
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
            watch: Vec::new(),
            stale: Vec::new(),
            handshakes_stale: 0,
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

    /// Looks at the device's peers (every read-back, 10 s): a peer we keep
    /// sending to (its tx bytes grow) without a handshake in the last 180 s
    /// for 30 s is stale. Babel still routes its transport address, so
    /// something on the way drops what end to end sends: the blackholing
    /// that origin signatures cannot prevent, made visible. A handshake is
    /// dated by when its timestamp changed on our monotonic clock, not by
    /// the timestamp: a wall clock that jumps (NTP after a 1970 boot) must
    /// not make every session look old.
    pub fn observe(&mut self, peers: &[crate::wg::model::PeerState], now: Time) {
        let mut watch = Vec::with_capacity(peers.len());
        let mut stale = Vec::new();
        for p in peers {
            let key = p.public_key.0;
            let prev = self.watch.iter().find(|w| w.key == key);
            let handshake_at = match (prev, p.last_handshake) {
                (_, None) => None,
                (Some(w), Some(t)) if w.handshake == Some(t) => w.handshake_at,
                // New, or first seen (given the benefit of the doubt).
                (_, Some(_)) => Some(now),
            };
            let fresh = handshake_at.is_some_and(|t| now.since(t) < SESSION_MS);
            let grew = prev.is_some_and(|w| p.tx_bytes > w.tx);
            let last_growth = if grew { Some(now) } else { prev.and_then(|w| w.last_growth) };
            // Sending: tx grew within the last 15 s (WireGuard retries a
            // handshake every 5 s while it has something to send).
            let sending = last_growth.is_some_and(|t| now.since(t) < 15_000);
            let since =
                if fresh || !sending { None } else { Some(prev.and_then(|w| w.since).unwrap_or(now)) };
            watch.push(Watch {
                key,
                tx: p.tx_bytes,
                handshake: p.last_handshake,
                handshake_at,
                last_growth,
                since,
            });
            let Some(rid) =
                self.plan.peers.iter().find(|x| *x.public_key.as_bytes() == key).map(|x| x.router_id)
            else {
                continue;
            };
            let was = self.stale.contains(&rid);
            if since.is_some_and(|t| now.since(t) >= STALE_MS) {
                if !was {
                    self.handshakes_stale += 1;
                    warn!(
                        "end to end: no handshake with {rid} while sending to it for 30 s: something on the \
                         way drops end-to-end packets (a relay that blackholes them?)"
                    );
                }
                stale.push(rid);
            } else if was && !fresh {
                // Not sending any more, and no handshake either: still stale.
                stale.push(rid);
            } else if was {
                info!("end to end: {rid} answers again");
            }
        }
        self.watch = watch;
        self.stale = stale;
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
            "stale_peers": self.stale.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "handshakes_stale": self.handshakes_stale,
        })
    }

    /// A node's end-to-end peer endpoint, for `weft nodes`.
    pub fn peer_endpoint(&self, rid: &str) -> Option<String> {
        self.plan.peers.iter().find(|p| p.router_id.to_string() == rid).map(|p| p.endpoint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::model::PeerState;
    use std::time::{Duration, SystemTime};

    fn device_with_peer(key: [u8; 32], rid: RouterId) -> E2eDevice {
        let mut d = E2eDevice::new(
            6699,
            DEFAULT_MTU,
            8,
            "fd42::1".parse().unwrap(),
            "fd42:0:0:ffff::/64".parse().unwrap(),
        );
        let peer = crate::mesh::e2e::Peer {
            router_id: rid,
            public_key: crate::key::PublicKey(key),
            endpoint: "[fd42:0:0:ffff::2]:6699".parse().unwrap(),
            allowed: vec!["fd42::2/128".parse().unwrap()],
        };
        d.set_plan(Plan { peers: vec![peer], ..Plan::default() }, Time(0));
        d
    }

    fn state(key: [u8; 32], tx: u64, handshake: Option<SystemTime>) -> PeerState {
        PeerState { last_handshake: handshake, tx_bytes: tx, ..PeerState::new(Key(key)) }
    }

    /// Sending for 30 s without a handshake makes a peer stale (once
    /// counted); a handshake, or no longer sending, ends it.
    #[test]
    fn a_peer_sent_to_without_handshakes_becomes_stale() {
        let (key, rid) = ([5; 32], RouterId([5; 8]));
        let mut d = device_with_peer(key, rid);
        let stale = |d: &E2eDevice| d.status()["stale_peers"].as_array().unwrap().len();
        // Silence is not staleness; nor is a first look.
        d.observe(&[state(key, 0, None)], Time(0));
        d.observe(&[state(key, 0, None)], Time(10_000));
        assert_eq!(stale(&d), 0);
        // Handshake initiations go out every 5 s, nothing comes back.
        for (t, tx) in [(20_000, 148), (30_000, 740), (40_000, 1332)] {
            d.observe(&[state(key, tx, None)], Time(t));
            assert_eq!(stale(&d), 0, "at {t}");
        }
        d.observe(&[state(key, 1924, None)], Time(50_000));
        assert_eq!((stale(&d), d.handshakes_stale), (1, 1));
        d.observe(&[state(key, 2516, None)], Time(60_000));
        assert_eq!((stale(&d), d.handshakes_stale), (1, 1), "counted once");
        // A handshake: answered, whatever its timestamp says (a wall clock
        // that jumped, here 1970).
        let hs = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        d.observe(&[state(key, 9000, Some(hs))], Time(70_000));
        assert_eq!(stale(&d), 0);
        // The same handshake 180 s later while still sending: no session
        // renewed, stale again 30 s after that.
        for (i, t) in (250_000u64..=290_000).step_by(10_000).enumerate() {
            d.observe(&[state(key, 10_000 + i as u64 * 600, Some(hs))], Time(t));
        }
        assert_eq!((stale(&d), d.handshakes_stale), (1, 2));
        // Stopped sending: still stale (no handshake came), not counted again.
        d.observe(&[state(key, 12_400, Some(hs))], Time(300_000));
        d.observe(&[state(key, 12_400, Some(hs))], Time(320_000));
        assert_eq!((stale(&d), d.handshakes_stale), (1, 2));
        // A fresh handshake ends it.
        let hs2 = hs + Duration::from_secs(1);
        d.observe(&[state(key, 12_400, Some(hs2))], Time(330_000));
        assert_eq!(stale(&d), 0);
    }
}
