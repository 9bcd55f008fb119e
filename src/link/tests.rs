//! Link manager behaviour with a fake authoriser and a fake wire.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::manager::*;
use super::wire::{mac, seal, LinkMessage, PublicKey, DISCOVERY_PORT, MAC_LEN};
use crate::babel::{LinkType, Time};
use crate::trust::{CaKeyId, TrustError, TrustTime};

/// Authorises the keys it is given; its "shared secret" is a hash of the
/// two keys (sorted): only nodes constructed with `me` equal to one of the
/// two keys produce it in these tests, which is what X25519 gives in
/// reality.
struct FakeAuth {
    me: PublicKey,
    allowed: BTreeMap<PublicKey, (String, Option<u64>)>,
    /// Credentials it has verified before (checked again at no cost).
    known_good: BTreeSet<(PublicKey, Vec<u8>)>,
    checks: u32,
    secrets: u32,
}

impl FakeAuth {
    fn new(me: PublicKey, allowed: &[(PublicKey, &str, Option<u64>)]) -> FakeAuth {
        FakeAuth {
            me,
            allowed: allowed.iter().map(|(k, n, e)| (*k, (n.to_string(), *e))).collect(),
            known_good: BTreeSet::new(),
            checks: 0,
            secrets: 0,
        }
    }
}

fn fake_secret(a: &PublicKey, b: &PublicKey) -> [u8; 32] {
    let (x, y) = if a < b { (a, b) } else { (b, a) };
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = DefaultHasher::new();
        (i, x, y).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

fn pair_mac(a: &PublicKey, b: &PublicKey, data: &[u8]) -> [u8; MAC_LEN] {
    mac(&fake_secret(a, b), data)
}

impl LinkAuth for FakeAuth {
    fn shared_secret(&mut self, peer: &PublicKey) -> Option<[u8; 32]> {
        self.secrets += 1;
        Some(fake_secret(&self.me, peer))
    }
    fn is_known_good(&self, key: &PublicKey, credential: &[u8]) -> bool {
        self.known_good.contains(&(*key, credential.to_vec()))
    }
    /// Fake credentials are newer when they sort after (cred-a2 > cred-a).
    fn is_newer(&self, new: &[u8], current: &[u8]) -> bool {
        new > current
    }
    fn authorise(
        &mut self,
        key: &PublicKey,
        credential: &[u8],
        at: TrustTime,
    ) -> Result<Authorised, TrustError> {
        let now_unix = at.expiry_at;
        self.checks += 1;
        if credential == b"forged" {
            return Err(TrustError::BadSignature(CaKeyId([0; 8])));
        }
        match self.allowed.get(key) {
            Some((_, Some(e))) if *e <= now_unix => {
                Err(TrustError::Expired { not_after: e - 1, now: now_unix })
            }
            Some((name, e)) => Ok(Authorised { name: name.clone(), expires_unix: *e }),
            None => Err(TrustError::NotAuthorised(*key)),
        }
    }
}

/// The kind of refusal, as the assertions compare it.
fn kind(e: &TrustError) -> &'static str {
    e.kind()
}

const A: PublicKey = PublicKey([0xA1; 32]);
const B: PublicKey = PublicKey([0xB2; 32]);
const C: PublicKey = PublicKey([0xC3; 32]);

fn ll(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, n)
}

fn src(n: u16, ifindex: u32) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ll(n), DISCOVERY_PORT, 0, ifindex))
}

/// Two managers on one raw link: A (ll ::1, ifindex 1) and B (ll ::2, ifindex 7).
struct Wire {
    a: LinkManager,
    b: LinkManager,
    auth_a: FakeAuth,
    auth_b: FakeAuth,
    now: Time,
    unix: u64,
    up_a: Vec<TunnelSpec>,
    up_b: Vec<TunnelSpec>,
    down_a: Vec<String>,
    down_b: Vec<String>,
    refused_a: Vec<&'static str>,
    refused_b: Vec<&'static str>,
    /// Drop every datagram (silent link).
    cut: bool,
}

impl Wire {
    fn new(
        allowed_by_a: &[(PublicKey, &str, Option<u64>)],
        allowed_by_b: &[(PublicKey, &str, Option<u64>)],
    ) -> Wire {
        let mut w = Wire {
            a: LinkManager::new(LinkConfig::new(A, b"cred-a".to_vec()), [1; 32]),
            b: LinkManager::new(LinkConfig::new(B, b"cred-b".to_vec()), [2; 32]),
            auth_a: FakeAuth::new(A, allowed_by_a),
            auth_b: FakeAuth::new(B, allowed_by_b),
            now: Time(0),
            unix: 1_000_000,
            up_a: vec![],
            up_b: vec![],
            down_a: vec![],
            down_b: vec![],
            refused_a: vec![],
            refused_b: vec![],
            cut: false,
        };
        let (now, unix) = (w.now, w.unix);
        w.a.handle_input(
            now,
            unix,
            LinkInput::RawUp { ifindex: 1, name: "mesh0".into(), link_type: LinkType::Wireless, mtu: 1500 },
            &mut w.auth_a,
        );
        w.b.handle_input(
            now,
            unix,
            LinkInput::RawUp { ifindex: 7, name: "eth1".into(), link_type: LinkType::Wired, mtu: 1500 },
            &mut w.auth_b,
        );
        w
    }

    /// Delivers queued datagrams back and forth until quiet.
    fn pump(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(o) = self.a.poll_output() {
                moved = true;
                match o {
                    LinkOutput::Send { data, .. } if !self.cut => {
                        let (now, unix) = (self.now, self.unix);
                        self.b.handle_input(
                            now,
                            unix,
                            LinkInput::Datagram { ifindex: Some(7), src: src(1, 7), data: &data },
                            &mut self.auth_b,
                        )
                    }
                    LinkOutput::Send { .. } => {}
                    LinkOutput::TunnelUp(t) => self.up_a.push(t),
                    LinkOutput::TunnelDown { name } => self.down_a.push(name),
                    LinkOutput::Refused { reason, .. } => self.refused_a.push(kind(&reason)),
                }
            }
            while let Some(o) = self.b.poll_output() {
                moved = true;
                match o {
                    LinkOutput::Send { data, .. } if !self.cut => {
                        let (now, unix) = (self.now, self.unix);
                        self.a.handle_input(
                            now,
                            unix,
                            LinkInput::Datagram { ifindex: Some(1), src: src(2, 1), data: &data },
                            &mut self.auth_a,
                        )
                    }
                    LinkOutput::Send { .. } => {}
                    LinkOutput::TunnelUp(t) => self.up_b.push(t),
                    LinkOutput::TunnelDown { name } => self.down_b.push(name),
                    LinkOutput::Refused { reason, .. } => self.refused_b.push(kind(&reason)),
                }
            }
            if !moved {
                return;
            }
        }
        panic!("handshake does not settle");
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now.plus_ms(ms);
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.unix = 1_000_000 + self.now.millis() / 1000;
                    let (now, unix) = (self.now, self.unix);
                    self.a.handle_timeout(now, unix, &mut self.auth_a);
                    self.b.handle_timeout(now, unix, &mut self.auth_b);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.unix = 1_000_000 + self.now.millis() / 1000;
    }
}

fn mutual() -> Wire {
    Wire::new(&[(B, "bob", None)], &[(A, "alice", None)])
}

#[test]
fn authorised_neighbours_agree_ports_and_build_tunnels() {
    let mut w = mutual();
    w.pump();
    assert_eq!(w.up_a.len(), 1, "A has no tunnel");
    assert_eq!(w.up_b.len(), 1, "B has no tunnel");
    let (ta, tb) = (&w.up_a[0], &w.up_b[0]);
    assert_eq!(ta.peer_key, B);
    assert_eq!(tb.peer_key, A);
    assert_eq!(ta.peer_name, "bob");
    // Each side's endpoint is the other's address with the other's port.
    assert_eq!(ta.endpoint, SocketAddr::V6(SocketAddrV6::new(ll(2), tb.listen_port, 0, 1)));
    assert_eq!(tb.endpoint, SocketAddr::V6(SocketAddrV6::new(ll(1), ta.listen_port, 0, 7)));
    assert_eq!(ta.mtu, 1420);
    assert_eq!(ta.link_type, LinkType::Wireless, "a tunnel over a radio keeps ETX");
    assert_eq!(tb.link_type, LinkType::Tunnel);
    assert!(ta.name.len() <= 15 && ta.name.starts_with("weftb2b2b2"), "{}", ta.name);
    // Nothing more happens while the neighbours stay in touch.
    w.advance(120_000);
    assert_eq!((w.up_a.len(), w.up_b.len()), (1, 1));
    assert!(w.down_a.is_empty() && w.down_b.is_empty());
}

#[test]
fn a_node_without_a_credential_gets_nothing() {
    // B does not authorise A; A authorises B.
    let mut w = Wire::new(&[(B, "bob", None)], &[]);
    w.advance(30_000);
    assert!(w.up_a.is_empty() && w.up_b.is_empty(), "a tunnel was built for an unauthorised node");
    assert_eq!(w.refused_b, vec!["not-authorised"]);
    // Its repeated beacons are not re-verified each time.
    assert!(w.auth_b.checks <= 2, "verified {} times", w.auth_b.checks);
    assert!(w.b.neighbours().is_empty());
}

#[test]
fn forged_and_replayed_handshakes_are_ignored() {
    let mut w = mutual();
    w.pump();
    let tunnel = w.up_b[0].clone();
    // C, who knows A's and B's public keys but not their shared secret,
    // forges a Confirm moving A's endpoint to its own address: it matches no
    // Answer of B's (a hash), so no MAC is even computed.
    let forged = LinkMessage::Confirm { from: A, to: B, echo: 1, stamp: 1, port: 9999, mac: [0; MAC_LEN] };
    let data = seal(&forged, |b| pair_mac(&C, &B, b));
    let (now, unix) = (w.now, w.unix);
    let secrets = w.auth_b.secrets;
    w.b.handle_input(
        now,
        unix,
        LinkInput::Datagram { ifindex: Some(7), src: src(66, 7), data: &data },
        &mut w.auth_b,
    );
    assert_eq!((w.b.stats().stale_handshakes, w.b.stats().bad_macs), (1, 0));
    assert_eq!(w.auth_b.secrets, secrets, "a forged Confirm cost a key agreement");
    // A genuine but old Answer (right MAC, stale nonce) is replayed.
    let replay = LinkMessage::Answer {
        from: A,
        to: B,
        echo: 42,
        nonce: 5,
        port: 9999,
        credential: vec![],
        mac: [0; 16],
    };
    let data = seal(&replay, |b| pair_mac(&A, &B, b));
    w.b.handle_input(
        now,
        unix,
        LinkInput::Datagram { ifindex: Some(7), src: src(66, 7), data: &data },
        &mut w.auth_b,
    );
    assert_eq!(w.b.stats().stale_handshakes, 2);
    // A forged beacon with A's key from another address.
    let beacon = LinkMessage::Beacon { key: A, credential: b"cred-a".to_vec() }.encode();
    w.b.handle_input(
        now,
        unix,
        LinkInput::Datagram { ifindex: Some(7), src: src(66, 7), data: &beacon },
        &mut w.auth_b,
    );
    w.pump();
    assert_eq!(w.b.tunnels(), vec![tunnel], "the established tunnel was disturbed");
    assert_eq!(w.up_b.len(), 1);
}

#[test]
fn a_flood_of_unknown_keys_grows_no_state_and_is_rate_limited() {
    let mut w = mutual();
    w.pump();
    let (now, unix) = (w.now, w.unix);
    for i in 0..5000u32 {
        let mut key = PublicKey([0u8; 32]);
        key.0[..4].copy_from_slice(&i.to_be_bytes());
        let beacon = LinkMessage::Beacon { key, credential: b"forged".to_vec() }.encode();
        w.b.handle_input(
            now,
            unix,
            LinkInput::Datagram { ifindex: Some(7), src: src(100 + (i % 500) as u16, 7), data: &beacon },
            &mut w.auth_b,
        );
    }
    assert_eq!(w.b.neighbours().len(), 1, "unknown keys were admitted");
    // Only the burst budget was spent on signature checks.
    assert!(w.auth_b.checks <= 25, "{} verifications", w.auth_b.checks);
    assert!(w.b.stats().rate_limited > 4900);
    assert_eq!(w.b.tunnels().len(), 1);
}

#[test]
fn expiry_while_running_removes_the_tunnel() {
    let exp = 1_000_000 + 90;
    let mut w = Wire::new(&[(B, "bob", Some(exp))], &[(A, "alice", None)]);
    w.pump();
    assert_eq!(w.up_a.len(), 1);
    w.advance(60_000);
    assert!(w.down_a.is_empty());
    w.advance(40_000);
    assert_eq!(w.down_a.len(), 1, "expired credential kept its tunnel");
    assert!(w.refused_a.contains(&"expired"));
    // It keeps beaconing; it gets no new tunnel.
    w.advance(60_000);
    assert_eq!(w.up_a.len(), 1);
    assert!(w.a.tunnels().is_empty());
}

#[test]
fn revocation_on_trust_change_removes_the_tunnel() {
    let mut w = mutual();
    w.pump();
    w.auth_a.allowed.clear(); // B's key revoked
    let (now, unix) = (w.now, w.unix);
    w.a.handle_input(now, unix, LinkInput::TrustChanged, &mut w.auth_a);
    w.pump();
    assert_eq!(w.down_a.len(), 1);
    assert!(w.a.tunnels().is_empty());
    w.advance(30_000);
    assert_eq!(w.up_a.len(), 1, "revoked node got a new tunnel");
}

#[test]
fn a_silent_neighbour_is_dropped_after_the_timeout() {
    let mut w = mutual();
    w.pump();
    w.cut = true;
    w.advance(29_000);
    assert!(w.down_a.is_empty());
    w.advance(3_000);
    assert_eq!((w.down_a.len(), w.down_b.len()), (1, 1));
    // The link heals: the tunnels come back.
    w.cut = false;
    w.advance(10_000);
    assert_eq!((w.a.tunnels().len(), w.b.tunnels().len()), (1, 1));
}

#[test]
fn lost_confirm_is_recovered_by_the_responder_offering() {
    let mut w = mutual();
    // Deliver only beacons/offers from A, answers from B; drop A's first Confirm.
    let mut dropped = false;
    for _ in 0..20 {
        while let Some(o) = w.a.poll_output() {
            match o {
                LinkOutput::Send { data, .. } => {
                    if !dropped && matches!(LinkMessage::decode(&data), Ok((LinkMessage::Confirm { .. }, _)))
                    {
                        dropped = true;
                        continue;
                    }
                    let (now, unix) = (w.now, w.unix);
                    w.b.handle_input(
                        now,
                        unix,
                        LinkInput::Datagram { ifindex: Some(7), src: src(1, 7), data: &data },
                        &mut w.auth_b,
                    );
                }
                LinkOutput::TunnelUp(t) => w.up_a.push(t),
                _ => {}
            }
        }
        while let Some(o) = w.b.poll_output() {
            match o {
                LinkOutput::Send { data, .. } => {
                    let (now, unix) = (w.now, w.unix);
                    w.a.handle_input(
                        now,
                        unix,
                        LinkInput::Datagram { ifindex: Some(1), src: src(2, 1), data: &data },
                        &mut w.auth_a,
                    );
                }
                LinkOutput::TunnelUp(t) => w.up_b.push(t),
                _ => {}
            }
        }
    }
    assert!(dropped);
    w.advance(10_000);
    assert_eq!((w.a.tunnels().len(), w.b.tunnels().len()), (1, 1));
}

#[test]
fn static_peers_handshake_over_routable_addresses() {
    let mut a = LinkManager::new(LinkConfig::new(A, b"cred-a".to_vec()), [3; 32]);
    let mut b = LinkManager::new(LinkConfig::new(B, b"cred-b".to_vec()), [4; 32]);
    let mut auth_a = FakeAuth::new(A, &[(B, "office", None)]);
    let mut auth_b = FakeAuth::new(B, &[(A, "laptop", None)]);
    let addr_a: SocketAddr = "192.0.2.1:6698".parse().unwrap();
    let addr_b: SocketAddr = "198.51.100.2:6698".parse().unwrap();
    let (now, unix) = (Time(0), 1_000_000);
    a.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "office".into(), key: B, addr: Some(addr_b) },
        &mut auth_a,
    );
    b.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "laptop".into(), key: A, addr: None },
        &mut auth_b,
    );
    for _ in 0..10 {
        while let Some(o) = a.poll_output() {
            if let LinkOutput::Send { dst, data, .. } = o {
                assert_eq!(dst, addr_b);
                b.handle_input(
                    now,
                    unix,
                    LinkInput::Datagram { ifindex: None, src: addr_a, data: &data },
                    &mut auth_b,
                );
            }
        }
        while let Some(o) = b.poll_output() {
            if let LinkOutput::Send { dst, data, .. } = o {
                assert_eq!(dst, addr_a);
                a.handle_input(
                    now,
                    unix,
                    LinkInput::Datagram { ifindex: None, src: addr_b, data: &data },
                    &mut auth_a,
                );
            }
        }
    }
    let (ta, tb) = (a.tunnels(), b.tunnels());
    assert_eq!((ta.len(), tb.len()), (1, 1));
    assert_eq!(ta[0].endpoint, SocketAddr::new(addr_b.ip(), tb[0].listen_port));
    assert_eq!(tb[0].endpoint, SocketAddr::new(addr_a.ip(), ta[0].listen_port));
    assert!(ta[0].name.ends_with("-s0"));
    // An unconfigured key offering from the internet is ignored (no
    // accept_remote), so it gets no answer at all.
    let offer = LinkMessage::Offer { from: C, to: B, nonce: 1, stamp: 1, credential: vec![], mac: [0; 16] };
    let data = seal(&offer, |x| pair_mac(&C, &B, x));
    b.handle_input(
        now,
        unix,
        LinkInput::Datagram { ifindex: None, src: "203.0.113.9:6698".parse().unwrap(), data: &data },
        &mut auth_b,
    );
    assert!(b.poll_output().is_none());
}

#[test]
fn a_static_peer_with_a_bad_credential_is_refused() {
    let mut a = LinkManager::new(LinkConfig::new(A, b"cred-a".to_vec()), [3; 32]);
    let mut b = LinkManager::new(LinkConfig::new(B, b"forged".to_vec()), [4; 32]);
    let mut auth_a = FakeAuth::new(A, &[(B, "office", None)]);
    let mut auth_b = FakeAuth::new(B, &[(A, "laptop", None)]);
    let addr_a: SocketAddr = "192.0.2.1:6698".parse().unwrap();
    let addr_b: SocketAddr = "198.51.100.2:6698".parse().unwrap();
    let (now, unix) = (Time(0), 1_000_000);
    a.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "office".into(), key: B, addr: Some(addr_b) },
        &mut auth_a,
    );
    b.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "laptop".into(), key: A, addr: Some(addr_a) },
        &mut auth_b,
    );
    let mut refused = 0;
    for _ in 0..10 {
        while let Some(o) = a.poll_output() {
            match o {
                LinkOutput::Send { data, .. } => b.handle_input(
                    now,
                    unix,
                    LinkInput::Datagram { ifindex: None, src: addr_a, data: &data },
                    &mut auth_b,
                ),
                LinkOutput::Refused { .. } => refused += 1,
                _ => {}
            }
        }
        while let Some(o) = b.poll_output() {
            if let LinkOutput::Send { data, .. } = o {
                a.handle_input(
                    now,
                    unix,
                    LinkInput::Datagram { ifindex: None, src: addr_b, data: &data },
                    &mut auth_a,
                );
            }
        }
    }
    assert!(refused >= 1);
    assert!(a.tunnels().is_empty(), "a tunnel to a peer with a forged credential");
}

#[test]
fn a_static_peer_that_moves_is_followed() {
    let mut a = LinkManager::new(LinkConfig::new(A, b"cred-a".to_vec()), [3; 32]);
    let mut b = LinkManager::new(LinkConfig::new(B, b"cred-b".to_vec()), [4; 32]);
    let mut auth_a = FakeAuth::new(A, &[(B, "office", None)]);
    let mut auth_b = FakeAuth::new(B, &[(A, "laptop", None)]);
    let addr_a: SocketAddr = "192.0.2.1:6698".parse().unwrap();
    let mut addr_b: SocketAddr = "198.51.100.2:6698".parse().unwrap();
    let (now, unix) = (Time(0), 1_000_000);
    a.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "office".into(), key: B, addr: Some(addr_b) },
        &mut auth_a,
    );
    b.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "laptop".into(), key: A, addr: None },
        &mut auth_b,
    );
    let exchange = |a: &mut LinkManager,
                    b: &mut LinkManager,
                    auth_a: &mut FakeAuth,
                    auth_b: &mut FakeAuth,
                    addr_b: SocketAddr| {
        for _ in 0..10 {
            while let Some(o) = a.poll_output() {
                if let LinkOutput::Send { dst, data, .. } = o {
                    if dst == addr_b {
                        b.handle_input(
                            now,
                            unix,
                            LinkInput::Datagram { ifindex: None, src: addr_a, data: &data },
                            auth_b,
                        );
                    }
                }
            }
            while let Some(o) = b.poll_output() {
                if let LinkOutput::Send { data, .. } = o {
                    a.handle_input(
                        now,
                        unix,
                        LinkInput::Datagram { ifindex: None, src: addr_b, data: &data },
                        auth_a,
                    );
                }
            }
        }
    };
    exchange(&mut a, &mut b, &mut auth_a, &mut auth_b, addr_b);
    assert_eq!(a.tunnels()[0].endpoint.ip(), addr_b.ip());
    // The office's address changes; DNS re-resolution tells A.
    addr_b = "203.0.113.7:6698".parse().unwrap();
    a.handle_input(
        now,
        unix,
        LinkInput::StaticPeer { index: 0, name: "office".into(), key: B, addr: Some(addr_b) },
        &mut auth_a,
    );
    exchange(&mut a, &mut b, &mut auth_a, &mut auth_b, addr_b);
    assert_eq!(a.tunnels().len(), 1);
    assert_eq!(a.tunnels()[0].endpoint.ip(), addr_b.ip(), "tunnel endpoint did not follow the move");
}

#[test]
fn a_refused_key_with_a_renewed_credential_is_looked_at_again_at_once() {
    let mut w = Wire::new(&[(B, "bob", None)], &[]);
    w.advance(12_000);
    assert_eq!(w.refused_b, vec!["not-authorised"]);
    let checks = w.auth_b.checks;
    // B would accept A now, but A still shows the credential B refused:
    // it is not verified again within the hold.
    w.auth_b.allowed.insert(A, ("alice".into(), None));
    w.advance(12_000);
    assert!(w.up_b.is_empty(), "the refused credential was looked at again within the hold");
    assert_eq!(w.auth_b.checks, checks, "the refused credential was verified again");
    // A renewed credential is looked at with A's next message.
    w.a.set_credential(b"cred-a2".to_vec());
    w.advance(6_000);
    assert_eq!(w.up_b.len(), 1, "the renewed credential waited for the hold to end");
    assert_eq!(w.up_a.len(), 1);
}

// ----- what an attacker on the link can cost us (issue 9 §3) ---------------

impl Wire {
    /// A datagram for B from an attacker at `src` on B's link.
    fn deliver_to_b(&mut self, src_addr: SocketAddr, data: &[u8]) {
        let (now, unix) = (self.now, self.unix);
        self.b.handle_input(
            now,
            unix,
            LinkInput::Datagram { ifindex: Some(7), src: src_addr, data },
            &mut self.auth_b,
        );
    }

    /// Advances `ms` in 5 ms steps, B receiving one datagram made by
    /// `forge(step)` before each step.
    fn advance_flooded(&mut self, ms: u64, mut forge: impl FnMut(u64) -> (SocketAddr, Vec<u8>)) {
        for step in 0..ms / 5 {
            let (from, data) = forge(step);
            self.deliver_to_b(from, &data);
            self.pump();
            self.advance(5);
        }
    }
}

fn key_n(n: u32) -> PublicKey {
    let mut k = PublicKey([0x42; 32]);
    k.0[..4].copy_from_slice(&n.to_be_bytes());
    k
}

#[test]
fn replayed_credentials_from_one_address_take_no_ports_and_a_real_neighbour_still_joins() {
    // 80 keys whose (public) credentials B accepts, replayed by one
    // attacker who holds none of their private keys.
    let replayed: Vec<PublicKey> = (0..80).map(key_n).collect();
    let mut allowed_by_b: Vec<(PublicKey, &str, Option<u64>)> =
        replayed.iter().map(|k| (*k, "replayed", None)).collect();
    allowed_by_b.push((A, "alice", None));
    let mut w = Wire::new(&[(B, "bob", None)], &allowed_by_b);
    w.cut = true;
    let attacker = src(666, 7);
    for round in 0..10 {
        for k in &replayed {
            let beacon = LinkMessage::Beacon { key: *k, credential: b"cred".to_vec() }.encode();
            w.deliver_to_b(attacker, &beacon);
        }
        w.pump();
        w.advance(1000 + round);
    }
    let from_attacker = w.b.neighbours().len();
    assert!(from_attacker <= 2, "{from_attacker} half-open neighbours from one address");
    // The real neighbour arrives.
    w.cut = false;
    w.advance(12_000);
    assert_eq!(
        w.b.tunnels().iter().filter(|t| t.peer_key == A).count(),
        1,
        "A got no tunnel: {:?}",
        w.b.stats()
    );
    assert_eq!(w.b.stats().table_full, 0);
    assert_eq!(w.b.tunnels().len(), 1, "a replayed key got a tunnel");
}

#[test]
fn forged_beacons_at_200_per_second_from_one_address_do_not_keep_a_new_neighbour_out() {
    let mut w = Wire::new(&[(B, "bob", None)], &[(A, "alice", None)]);
    w.cut = true;
    let attacker = src(666, 7);
    // The flood is under way when A arrives.
    let forge = |step: u64| {
        let key = key_n(1_000_000 + step as u32);
        (attacker, LinkMessage::Beacon { key, credential: b"forged".to_vec() }.encode())
    };
    w.advance_flooded(2_000, forge);
    w.cut = false;
    w.advance_flooded(10_000, forge);
    assert_eq!(w.b.tunnels().len(), 1, "A not admitted within 10 s of a 200/s flood: {:?}", w.b.stats());
}

#[test]
fn a_low_order_key_in_a_beacon_is_dropped_before_any_check() {
    let mut w = Wire::new(&[(B, "bob", None)], &[]);
    w.pump();
    let zero = PublicKey([0; 32]);
    let checks = w.auth_b.checks;
    for _ in 0..10 {
        let beacon = LinkMessage::Beacon { key: zero, credential: b"cred".to_vec() }.encode();
        w.deliver_to_b(src(666, 7), &beacon);
    }
    w.pump();
    assert_eq!(w.auth_b.checks, checks, "a low-order key was looked at");
    assert!(w.b.neighbours().is_empty());
    assert_eq!(w.b.stats().low_order_keys, 10);
}

#[test]
fn tunnels_to_keys_sharing_a_prefix_get_distinct_names() {
    // Two neighbours of B on one link whose keys share their first bytes
    // (a key ground to match a victim's name).
    let a2 = PublicKey({
        let mut k = A.0;
        k[31] ^= 1;
        k
    });
    let mut b = LinkManager::new(LinkConfig::new(B, b"cred-b".to_vec()), [2; 32]);
    let mut auth_b = FakeAuth::new(B, &[(A, "alice", None), (a2, "mallory", None)]);
    let mut peers = [
        (
            LinkManager::new(LinkConfig::new(A, b"cred-a".to_vec()), [1; 32]),
            FakeAuth::new(A, &[(B, "bob", None)]),
            1u16,
        ),
        (
            LinkManager::new(LinkConfig::new(a2, b"cred-m".to_vec()), [3; 32]),
            FakeAuth::new(a2, &[(B, "bob", None)]),
            3u16,
        ),
    ];
    let (now, unix) = (Time(0), 1_000_000);
    let up = |ifindex| LinkInput::RawUp { ifindex, name: "m".into(), link_type: LinkType::Wired, mtu: 1500 };
    b.handle_input(now, unix, up(7), &mut auth_b);
    for (m, auth, _) in peers.iter_mut() {
        m.handle_input(now, unix, up(1), auth);
    }
    let mut ups_b = Vec::new();
    for _ in 0..20 {
        while let Some(o) = b.poll_output() {
            match o {
                LinkOutput::Send { dst, data, .. } => {
                    for (m, auth, n) in peers.iter_mut() {
                        if dst.ip().is_multicast() || dst.ip() == IpAddr::V6(ll(*n)) {
                            m.handle_input(
                                now,
                                unix,
                                LinkInput::Datagram { ifindex: Some(1), src: src(2, 1), data: &data },
                                auth,
                            );
                        }
                    }
                }
                LinkOutput::TunnelUp(t) => ups_b.push(t),
                _ => {}
            }
        }
        for (m, _, n) in peers.iter_mut() {
            while let Some(o) = m.poll_output() {
                if let LinkOutput::Send { data, .. } = o {
                    b.handle_input(
                        now,
                        unix,
                        LinkInput::Datagram { ifindex: Some(7), src: src(*n, 7), data: &data },
                        &mut auth_b,
                    );
                }
            }
        }
    }
    let names: BTreeSet<String> = b.tunnels().iter().map(|t| t.name.clone()).collect();
    assert_eq!(b.tunnels().len(), 2, "both neighbours have a tunnel");
    assert_eq!(names.len(), 2, "two peers share one tunnel name: {names:?}");
    assert!(names.iter().all(|n| n.len() <= 15 && n.starts_with("weft")), "{names:?}");
}

#[test]
fn a_replayed_offer_neither_aborts_a_handshake_nor_gets_an_answer() {
    let mut w = mutual();
    // B's beacon reaches A (A's own beacon is lost): A offers.
    while w.a.poll_output().is_some() {}
    while let Some(o) = w.b.poll_output() {
        if let LinkOutput::Send { data, .. } = o {
            let (now, unix) = (w.now, w.unix);
            w.a.handle_input(
                now,
                unix,
                LinkInput::Datagram { ifindex: Some(1), src: src(2, 1), data: &data },
                &mut w.auth_a,
            );
        }
    }
    let mut offer = None;
    while let Some(o) = w.a.poll_output() {
        if let LinkOutput::Send { data, .. } = o {
            if matches!(LinkMessage::decode(&data), Ok((LinkMessage::Offer { .. }, _))) {
                offer = Some(data);
            }
        }
    }
    let offer = offer.expect("A offers on B's beacon");
    w.deliver_to_b(src(1, 7), &offer);
    let answers = |w: &mut Wire| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(o) = w.b.poll_output() {
            if let LinkOutput::Send { data, .. } = o {
                if matches!(LinkMessage::decode(&data), Ok((LinkMessage::Answer { .. }, _))) {
                    v.push(data);
                }
            }
        }
        v
    };
    let first = answers(&mut w);
    assert_eq!(first.len(), 1);
    // An attacker replays the Offer while the handshake is in progress.
    w.deliver_to_b(src(666, 7), &offer);
    w.deliver_to_b(src(1, 7), &offer);
    assert!(answers(&mut w).is_empty(), "a replayed Offer was answered");
    // The genuine Answer reaches A; its Confirm completes B's side at once.
    let (now, unix) = (w.now, w.unix);
    w.a.handle_input(
        now,
        unix,
        LinkInput::Datagram { ifindex: Some(1), src: src(2, 1), data: &first[0] },
        &mut w.auth_a,
    );
    let mut confirm = None;
    while let Some(o) = w.a.poll_output() {
        if let LinkOutput::Send { data, .. } = o {
            if matches!(LinkMessage::decode(&data), Ok((LinkMessage::Confirm { .. }, _))) {
                confirm = Some(data);
            }
        }
    }
    let confirm = confirm.expect("A confirms");
    w.deliver_to_b(src(1, 7), &confirm);
    assert_eq!(w.b.tunnels().len(), 1, "the replayed Offer aborted the handshake: {:?}", w.b.stats());
    assert_eq!(w.b.stats().stale_handshakes, 2, "the two replayed Offers");
    // The Confirm replayed later completes nothing again.
    let tunnel = w.b.tunnels();
    w.deliver_to_b(src(666, 7), &confirm);
    assert_eq!(w.b.stats().stale_handshakes, 3);
    assert_eq!(w.b.tunnels(), tunnel);
}

#[test]
fn a_known_good_neighbour_gets_in_past_a_flood_from_many_spoofed_addresses() {
    let mut w = Wire::new(&[(B, "bob", None)], &[(A, "alice", None)]);
    // B has seen A's credential before (relayed through the mesh, say).
    w.auth_b.known_good.insert((A, b"cred-a".to_vec()));
    w.cut = true;
    let forge = |step: u64| {
        let key = key_n(2_000_000 + step as u32);
        let from = src(1000 + (step % 1000) as u16, 7);
        (from, LinkMessage::Beacon { key, credential: b"forged".to_vec() }.encode())
    };
    w.advance_flooded(2_000, forge);
    w.cut = false;
    w.advance_flooded(10_000, forge);
    assert_eq!(w.b.tunnels().len(), 1, "A not admitted within 10 s: {:?}", w.b.stats());
    assert!(w.b.stats().rate_limited > 1000, "the flood was not rate-limited: {:?}", w.b.stats());
}
