//! Costs of the trust operations a router performs: credential decode and
//! verification (per neighbour, per credential update), key derivations,
//! signing (CA host only). Prints figures; run with
//! `cargo bench --bench trust`.

use std::hint::black_box;
use std::time::Instant;

use weft::trust::{
    router_id, CaSecretKey, Credential, CredentialBody, MeshPrefix, NodePrivateKey, TrustStore,
};

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this is
    // only a smoke test, so keep it short.
    let iterations =
        if std::env::args().any(|a| a == "--bench") { iterations } else { (iterations / 100).max(1) };
    // Warm up, then time.
    for _ in 0..iterations / 10 + 1 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    println!("{name:<34} {:>9.2} µs/op ({iterations} iterations)", per.as_secs_f64() * 1e6);
}

fn main() {
    let ca = CaSecretKey::from_seed([1; 32]).unwrap();
    let node_key = NodePrivateKey::from_random([2; 32]);
    let public = node_key.public_key();
    let body = CredentialBody {
        public_key: public,
        name: "kitchen".into(),
        prefixes: vec!["10.1.0.0/16".parse().unwrap(), "fd00:1:2::/48".parse().unwrap()],
        groups: vec!["lan".into()],
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        signing_key: None,
    };
    let cred = Credential::sign(body.clone(), &ca).unwrap();
    let bytes = cred.to_bytes().to_vec();
    let mut store = TrustStore::new();
    store.add_ca(ca.public_key());
    let mesh: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
    store.set_mesh_prefix(Some(mesh));
    println!("credential size: {} bytes", bytes.len());

    measure("credential decode", 100_000, || {
        black_box(Credential::from_bytes(black_box(&bytes)).unwrap());
    });
    measure("credential decode + verify", 2_000, || {
        black_box(store.verify_bytes(black_box(&bytes), 1_750_000_000).unwrap());
    });
    measure("credential sign (CA)", 2_000, || {
        black_box(Credential::sign(black_box(body.clone()), &ca).unwrap());
    });
    measure("X25519 public key (pubkey)", 2_000, || {
        black_box(black_box(&node_key).public_key());
    });
    measure("router-id derivation", 100_000, || {
        black_box(router_id(black_box(&public)));
    });
    measure("mesh address derivation", 100_000, || {
        black_box(mesh.address_for(black_box(&public)));
    });
}
