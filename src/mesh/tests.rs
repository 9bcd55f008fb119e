//! The mesh core on its own: inputs in, outputs out, real keys and
//! credentials.

use std::collections::BTreeSet;

use super::*;
use crate::trust::{CaSecretKey, CredentialBody, MeshPrefix};

const NOW: u64 = 1_788_000_000;

struct Net {
    ca: CaSecretKey,
    store: TrustStore,
}

impl Net {
    fn new() -> Net {
        let ca = CaSecretKey::from_seed([7; 32]).unwrap();
        let mut store = TrustStore::new();
        store.add_ca(ca.public_key());
        store.set_mesh_prefix(Some(MeshPrefix::new("fd42::/48".parse().unwrap()).unwrap()));
        Net { ca, store }
    }

    fn node(&self, n: u8) -> (NodePrivateKey, Credential) {
        let key = NodePrivateKey::from_random([n; 32]);
        (key.clone(), self.credential(&key, &[], NOW - 3600, NOW + 86_400))
    }

    fn credential(
        &self,
        key: &NodePrivateKey,
        prefixes: &[&str],
        not_before: u64,
        not_after: u64,
    ) -> Credential {
        let body = CredentialBody {
            public_key: key.public_key(),
            name: "n".into(),
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            groups: vec![],
            not_before,
            not_after,
            signing_key: None,
        };
        Credential::sign(body, &self.ca).unwrap()
    }

    fn core(&self, n: u8) -> MeshCore {
        let (key, cred) = self.node(n);
        MeshCore::new(
            MeshConfig::new(key, Some(cred), self.store.clone(), [n; 32], NOW - 86_400 * 30),
            Time(0),
            NOW,
        )
    }
}

fn chunks_of(c: &Credential) -> Vec<Vec<u8>> {
    let rid = derive::router_id(c.public_key());
    credential_chunks(rid, c.to_bytes()).iter().map(MeshTlv::encode).collect()
}

#[test]
fn credentials_over_plain_interfaces_are_not_trusted_and_cost_no_signature_check() {
    let net = Net::new();
    let mut core = net.core(1);
    let (_, other) = net.node(2);
    let rid = derive::router_id(other.public_key());
    let before = core.crypto().signature_checks;
    // Interface 5 is plain Babel (babeld/BIRD compatibility), not a tunnel.
    for _ in 0..100 {
        for body in chunks_of(&other) {
            core.handle_input(
                Time(10),
                NOW,
                MeshInput::Extension { ifindex: 5, from: "fe80::9".parse().unwrap(), body: &body },
            );
        }
    }
    assert!(!core.known().nodes.contains_key(&rid), "a credential from a plain interface was trusted");
    assert_eq!(core.crypto().signature_checks, before, "a credential from a plain interface was verified");
    // Over a tunnel it is learned (once, however often it comes).
    core.handle_input(Time(20), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    for _ in 0..100 {
        for body in chunks_of(&other) {
            core.handle_input(
                Time(30),
                NOW,
                MeshInput::Extension { ifindex: 9, from: "fe80::9".parse().unwrap(), body: &body },
            );
        }
    }
    assert!(core.known().nodes[&rid].verdict.is_ok());
    assert_eq!(core.crypto().signature_checks, before + 1);
}

#[test]
fn an_older_credential_never_replaces_a_newer_one() {
    let net = Net::new();
    let mut core = net.core(1);
    core.handle_input(Time(0), NOW, MeshInput::TunnelInterfaces(BTreeSet::from([9])));
    let key = NodePrivateKey::from_random([2; 32]);
    let rid = derive::router_id(&key.public_key());
    // The CA narrowed node 2's grants: the newer credential lacks 10.1/24.
    let old = net.credential(&key, &["10.1.0.0/24"], NOW - 7200, NOW + 86_400);
    let new = net.credential(&key, &[], NOW - 60, NOW + 86_400);
    let from: std::net::Ipv6Addr = "fe80::9".parse().unwrap();
    for c in [&new, &old, &new, &old] {
        for body in chunks_of(c) {
            core.handle_input(Time(10), NOW, MeshInput::Extension { ifindex: 9, from, body: &body });
        }
    }
    assert_eq!(
        core.known().credential_bytes(&rid),
        Some(new.to_bytes()),
        "the older credential replaced the newer"
    );
    assert_eq!(core.filter().judge(&"10.1.0.0/24".parse().unwrap(), &rid), RouteVerdict::NotGranted);
}
