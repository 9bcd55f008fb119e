//! Tests across the trust module: signing, verification verdicts, format
//! evolution, revocation, rotation and prefix authorisation.

use proptest::prelude::*;

use super::armour::ArmourError;
use super::credential::{MAX_CREDENTIAL_LEN, MAX_PREFIXES};
use super::wire::{self, field, ObjectKind, Writer};
use super::*;
use crate::babel::Prefix;

const NB: u64 = 1_700_000_000;
const NA: u64 = NB + 90 * 86_400;

fn ca(n: u8) -> CaSecretKey {
    CaSecretKey::from_seed([n; 32]).unwrap()
}

fn node(n: u8) -> PublicKey {
    NodePrivateKey::from_random([n; 32]).public_key()
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn body(key: PublicKey) -> CredentialBody {
    CredentialBody {
        public_key: key,
        name: "kitchen".into(),
        prefixes: vec![p("10.1.0.0/16"), p("fd00:1234:5678:100::/56")],
        groups: vec!["lan".into(), "ops".into()],
        not_before: NB,
        not_after: NA,
        signing_key: None,
    }
}

fn cred(ca_key: &CaSecretKey, key: PublicKey) -> Credential {
    Credential::sign(body(key), ca_key).unwrap()
}

fn store_with(cas: &[&CaSecretKey]) -> TrustStore {
    let mut s = TrustStore::new();
    for c in cas {
        s.add_ca(c.public_key());
    }
    s.set_mesh_prefix(Some("fd00:1234:5678::/48".parse().unwrap()));
    s
}

/// Signs hand-built signed bytes, for objects the encoder would not make.
fn sign_raw(signed: Vec<u8>, ca_key: &CaSecretKey) -> Vec<u8> {
    let mut bytes = signed;
    let sig = ca_key.sign(&wire::signing_message(&bytes));
    bytes.extend_from_slice(&sig);
    bytes
}

/// The fields of a normal credential from `ca_key`, to which tests add more.
fn base_fields(ca_key: &CaSecretKey, key: &PublicKey) -> Writer {
    let mut w = Writer::new(ObjectKind::Credential);
    w.field(field::PUBLIC_KEY, key.as_bytes());
    w.field(field::NAME, b"n");
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&NB.to_be_bytes());
    v[8..].copy_from_slice(&NA.to_be_bytes());
    w.field(field::VALIDITY, &v);
    w.field(field::CA_KEY_ID, &ca_key.key_id().0);
    w
}

#[test]
fn signed_credential_round_trips_and_verifies() {
    let ca1 = ca(1);
    let c = cred(&ca1, node(1));
    let decoded = Credential::from_bytes(c.to_bytes()).unwrap();
    assert_eq!(decoded, c);
    assert_eq!(Credential::from_armour(&c.to_armour()).unwrap(), c);
    assert_eq!(c.ca_key_id(), ca1.key_id());
    assert!(c.to_bytes().len() < 200, "{} bytes", c.to_bytes().len());

    let node = store_with(&[&ca1]).verify(&c, NB + 10).unwrap();
    assert_eq!(node.public_key, *c.public_key());
    assert_eq!(node.name.as_deref(), Some("kitchen"));
    assert_eq!(node.router_id, router_id(c.public_key()));
    assert_eq!(node.groups, vec!["lan".to_string(), "ops".to_string()]);
    assert_eq!(node.prefixes, body(node.public_key).prefixes);
    assert_eq!(
        node.authority,
        Authority::Credential { ca_key_id: ca1.key_id(), not_before: NB, not_after: NA }
    );
    assert_eq!(node.recheck_at(), Some(NA + 1));
}

#[test]
fn golden_credential_bytes() {
    // A fixed credential: the format is a wire contract between versions.
    let ca_key = ca(7);
    let c = Credential::sign(
        CredentialBody {
            public_key: "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=".parse().unwrap(),
            name: "r1".into(),
            prefixes: vec![p("10.0.0.0/8")],
            groups: vec!["g".into()],
            not_before: 1,
            not_after: 2,
            signing_key: None,
        },
        &ca_key,
    )
    .unwrap();
    let hex: String = c.signed_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let expected = format!(
        "0101\
         0120{}\
         02027231\
         031000000000000000010000000000000002\
         0408{}\
         050301080a\
         060167",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        ca_key.key_id()
    );
    assert_eq!(hex, expected);
    assert_eq!(c.to_bytes().len(), expected.len() / 2 + 64);
}

#[test]
fn smallest_credential_size() {
    let mut b = body(node(1));
    b.name = "n".into();
    b.prefixes.clear();
    b.groups.clear();
    let c = Credential::sign(b, &ca(1)).unwrap();
    assert_eq!(c.to_bytes().len(), credential::MIN_CREDENTIAL_LEN);
    assert_eq!(credential::MIN_CREDENTIAL_LEN, 131);
    // The figure docs/CREDENTIALS.md gives.
    assert_eq!(revocation::MAX_REVOCATION_LIST_LEN, 140_384);
}

#[test]
fn validity_window_boundaries_are_inclusive() {
    let ca1 = ca(1);
    let c = cred(&ca1, node(1));
    let s = store_with(&[&ca1]);
    assert_eq!(s.verify(&c, NB - 1), Err(TrustError::NotYetValid { not_before: NB, now: NB - 1 }));
    assert!(s.verify(&c, NB).is_ok(), "exactly not-before is valid");
    assert!(s.verify(&c, NA).is_ok(), "exactly not-after is valid");
    assert_eq!(s.verify(&c, NA + 1), Err(TrustError::Expired { not_after: NA, now: NA + 1 }));
    // Timers for the daemon.
    assert_eq!(c.next_change(0), Some(NB));
    assert_eq!(c.next_change(NB - 1), Some(NB));
    assert_eq!(c.next_change(NB), Some(NA + 1));
    assert_eq!(c.next_change(NA), Some(NA + 1));
    assert_eq!(c.next_change(NA + 1), None);
    assert_eq!(store::next_change(&c, NB), Some(NA + 1));
    assert_eq!(s.verify(&c, 5).unwrap_err().retry_at(), Some(NB));
    assert_eq!(s.verify(&c, NA + 1).unwrap_err().retry_at(), None);
}

#[test]
fn a_window_ending_at_u64_max_never_needs_a_recheck() {
    let ca1 = ca(1);
    let mut b = body(node(1));
    b.not_after = u64::MAX;
    let c = Credential::sign(b, &ca1).unwrap();
    assert_eq!(c.next_change(NB), None);
    let n = store_with(&[&ca1]).verify(&c, u64::MAX).unwrap();
    assert_eq!(n.recheck_at(), None);
}

#[test]
fn unknown_ca_and_wrong_ca_are_told_apart() {
    let (ca1, ca2) = (ca(1), ca(2));
    let c = cred(&ca1, node(1));
    assert_eq!(store_with(&[&ca2]).verify(&c, NB), Err(TrustError::UnknownCa(ca1.key_id())));
    // A credential that names CA 2 but was signed by CA 1.
    let mut w = base_fields(&ca2, &node(1));
    w.field(field::PREFIX, &[1, 0]);
    let forged = Credential::from_bytes(&sign_raw(w.finish(), &ca1)).unwrap();
    assert_eq!(forged.ca_key_id(), ca2.key_id());
    assert_eq!(store_with(&[&ca1, &ca2]).verify(&forged, NB), Err(TrustError::BadSignature(ca2.key_id())));
    assert!(!forged.signature_valid(&ca2.public_key()));
    assert!(!forged.signature_valid(&ca1.public_key()), "key id differs");
}

#[test]
fn ca_rotation_with_two_cas() {
    let (old, new) = (ca(1), ca(2));
    let c_old = cred(&old, node(1));
    let c_new = cred(&new, node(2));
    let mut s = store_with(&[&old, &new]);
    assert_eq!(s.cas().count(), 2);
    assert!(s.verify(&c_old, NB).is_ok());
    assert!(s.verify(&c_new, NB).is_ok());
    // Retire the old CA: its credentials stop counting, the new ones stay.
    assert!(s.remove_ca(&old.key_id()));
    assert_eq!(s.verify(&c_old, NB), Err(TrustError::UnknownCa(old.key_id())));
    assert!(s.verify(&c_new, NB).is_ok());
}

#[test]
fn unknown_non_critical_fields_are_skipped_and_kept() {
    let ca1 = ca(1);
    let mut w = base_fields(&ca1, &node(1));
    w.field(0x40, b"a field from the future");
    w.field(0x7F, &[]);
    w.field(field::GROUP, b"g");
    w.field(field::SERIAL, &1u64.to_be_bytes()); // a revocation-list field
    let bytes = sign_raw(w.finish(), &ca1);
    let c = Credential::from_bytes(&bytes).unwrap();
    assert_eq!(c.skipped_fields(), &[0x40, 0x7F, field::SERIAL]);
    assert_eq!(c.body().groups, vec!["g".to_string()]);
    assert_eq!(c.to_bytes(), &bytes[..], "forwarded byte for byte");
    assert!(store_with(&[&ca1]).verify(&c, NB).is_ok());
}

#[test]
fn unknown_critical_field_is_refused() {
    let ca1 = ca(1);
    let mut w = base_fields(&ca1, &node(1));
    let offset = w.len();
    w.field(0x80, b"must understand");
    let bytes = sign_raw(w.finish(), &ca1);
    assert_eq!(
        Credential::from_bytes(&bytes),
        Err(DecodeError::UnknownCriticalField { field_type: 0x80, offset })
    );
    assert!(matches!(
        store_with(&[&ca1]).verify_bytes(&bytes, NB),
        Err(TrustError::Malformed(DecodeError::UnknownCriticalField { .. }))
    ));
}

#[test]
fn malformed_credentials_get_typed_errors() {
    let ca1 = ca(1);
    let good = cred(&ca1, node(1));
    let bytes = good.to_bytes().to_vec();
    let dec = Credential::from_bytes;

    assert_eq!(dec(&bytes[..65]), Err(DecodeError::TooShort { len: 65, min: 66 }));
    assert_eq!(
        dec(&vec![1; MAX_CREDENTIAL_LEN + 1]),
        Err(DecodeError::TooLong { len: MAX_CREDENTIAL_LEN + 1, max: MAX_CREDENTIAL_LEN })
    );
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(dec(&v2), Err(DecodeError::UnsupportedVersion(2)));
    let list = RevocationList::sign(1, NB, vec![], &ca1).unwrap();
    assert_eq!(
        dec(list.to_bytes()),
        Err(DecodeError::WrongKind { expected: ObjectKind::Credential, found: 2 })
    );

    let check = |w: Writer| dec(&sign_raw(w.finish(), &ca1));
    let key = node(1);

    // A field header cut short by the signature.
    let mut w = base_fields(&ca1, &key);
    let at = w.len();
    w.field(field::GROUP, b"g");
    let mut raw = w.finish();
    raw.truncate(at + 1);
    assert_eq!(dec(&sign_raw(raw, &ca1)), Err(DecodeError::Truncated { offset: at }));
    // A length running past the end.
    let mut raw = base_fields(&ca1, &key).finish();
    let at = raw.len();
    raw.extend_from_slice(&[field::GROUP, 9, b'x']);
    assert_eq!(dec(&sign_raw(raw, &ca1)), Err(DecodeError::Truncated { offset: at }));

    let mut w = base_fields(&ca1, &key);
    w.field(field::NAME, b"again");
    assert_eq!(check(w), Err(DecodeError::DuplicateField { field: "name" }));

    let mut w = Writer::new(ObjectKind::Credential);
    w.field(field::PUBLIC_KEY, key.as_bytes());
    w.field(field::NAME, b"n");
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    assert_eq!(check(w), Err(DecodeError::MissingField { field: "validity" }));

    let mut w = Writer::new(ObjectKind::Credential);
    w.field(field::PUBLIC_KEY, &key.as_bytes()[..31]);
    assert_eq!(check(w), Err(DecodeError::BadFieldLength { field: "public-key", len: 31 }));

    let mut w = base_fields(&ca1, &key);
    w.field(field::GROUP, &[0xFF, 0xFE]);
    assert_eq!(check(w), Err(DecodeError::NotUtf8 { field: "group" }));

    let mut w = base_fields(&ca1, &key);
    w.field(field::GROUP, b"has space");
    assert!(matches!(check(w), Err(DecodeError::Value(ValueError::BadCharacter { ch: ' ', .. }))));

    let mut w = base_fields(&ca1, &key);
    w.field(field::PREFIX, &[1, 8, 10, 0]);
    assert!(matches!(check(w), Err(DecodeError::BadPrefix { .. })));

    let mut w = base_fields(&ca1, &key);
    w.field(field::PREFIX, &[1, 8, 10]);
    w.field(field::PREFIX, &[1, 8, 10]);
    assert!(matches!(check(w), Err(DecodeError::Value(ValueError::DuplicateEntry { .. }))));

    let mut w = base_fields(&ca1, &key);
    for i in 0..=MAX_PREFIXES {
        w.field(field::PREFIX, &[1, 16, 10, i as u8]);
    }
    assert_eq!(check(w), Err(DecodeError::Value(ValueError::TooMany { field: "prefix", max: MAX_PREFIXES })));

    let mut w = Writer::new(ObjectKind::Credential);
    w.field(field::PUBLIC_KEY, key.as_bytes());
    w.field(field::NAME, b"n");
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&NA.to_be_bytes());
    v[8..].copy_from_slice(&NB.to_be_bytes());
    w.field(field::VALIDITY, &v);
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    assert_eq!(
        check(w),
        Err(DecodeError::Value(ValueError::ValidityWindow { not_before: NA, not_after: NB }))
    );
}

#[test]
fn encoder_refuses_what_the_decoder_would() {
    let ca1 = ca(1);
    let mut b = body(node(1));
    b.name = "x".repeat(65);
    assert!(matches!(Credential::sign(b, &ca1), Err(ValueError::TextTooLong { .. })));
    let mut b = body(node(1));
    b.groups.push("lan".into());
    assert!(matches!(Credential::sign(b, &ca1), Err(ValueError::DuplicateEntry { .. })));
    let mut b = body(node(1));
    b.not_after = b.not_before - 1;
    assert!(matches!(Credential::sign(b, &ca1), Err(ValueError::ValidityWindow { .. })));
    // Every list at its longest is over the size limit: refused, not made.
    let mut b = body(node(1));
    b.name = "n".repeat(64);
    b.prefixes = (0..MAX_PREFIXES as u16)
        .map(|i| {
            let a = std::net::Ipv6Addr::new(0xfd00, i, 0, 0, 0, 0, 0, 1);
            Prefix::new(a.into(), 128).unwrap()
        })
        .collect();
    b.groups = (0..16).map(|i| format!("{i:0>32}")).collect();
    assert!(matches!(
        Credential::sign(b.clone(), &ca1),
        Err(ValueError::Oversized { len: 1378, max: MAX_CREDENTIAL_LEN })
    ));
    // Without the groups it fits, and decodes.
    b.groups.clear();
    let c = Credential::sign(b, &ca1).unwrap();
    assert_eq!(Credential::from_bytes(c.to_bytes()).unwrap(), c);
}

#[test]
fn armour_errors_are_typed() {
    let ca1 = ca(1);
    let c = cred(&ca1, node(1));
    let list = RevocationList::sign(1, NB, vec![node(2)], &ca1).unwrap();
    assert!(matches!(Credential::from_armour(&list.to_armour()), Err(ArmourError::WrongLabel { .. })));
    assert!(matches!(RevocationList::from_armour(&c.to_armour()), Err(ArmourError::WrongLabel { .. })));
    assert!(matches!(Credential::from_armour(""), Err(ArmourError::NoBeginLine { .. })));
    let cut: String = c.to_armour().lines().take(2).collect::<Vec<_>>().join("\n");
    assert!(matches!(Credential::from_armour(&cut), Err(ArmourError::NoEndLine { .. })));
    let bad = c.to_armour().replacen("AQE", "AQI", 1); // damages the header
    assert!(matches!(
        Credential::from_armour(&bad),
        Err(ArmourError::Decode(_)) | Err(ArmourError::Base64(_))
    ));
    // Well-formed armour around a payload that is not a credential.
    let junk = armour::encode(credential::ARMOUR_LABEL, b"junk");
    assert!(matches!(Credential::from_armour(&junk), Err(ArmourError::Decode(DecodeError::TooShort { .. }))));
}

#[test]
fn revocation_rejects_key_and_only_configured_cas_count() {
    let (ca1, ca2, ca3) = (ca(1), ca(2), ca(3));
    let key = node(1);
    let c = cred(&ca1, key);
    let mut s = store_with(&[&ca1, &ca2]);

    // Signed by a CA that is not configured: refused, no effect.
    let foreign = RevocationList::sign(1, NB, vec![key], &ca3).unwrap();
    assert_eq!(s.add_revocation_list(foreign), Err(TrustError::UnknownCa(ca3.key_id())));
    assert!(s.verify(&c, NB).is_ok());

    // Claims CA 1's id but is signed by CA 3.
    let mut w = Writer::new(ObjectKind::RevocationList);
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    w.field(field::SERIAL, &9u64.to_be_bytes());
    w.field(field::ISSUED, &NB.to_be_bytes());
    w.field(field::REVOKED_KEY, key.as_bytes());
    let forged = RevocationList::from_bytes(&sign_raw(w.finish(), &ca3)).unwrap();
    assert_eq!(s.add_revocation_list(forged), Err(TrustError::BadSignature(ca1.key_id())));
    assert!(s.verify(&c, NB).is_ok());

    // The real thing.
    let list = RevocationList::sign(1, NB, vec![key], &ca1).unwrap();
    assert_eq!(s.add_revocation_list(list.clone()), Ok(RevocationUpdate::Installed));
    assert_eq!(s.add_revocation_list(list), Ok(RevocationUpdate::Unchanged));
    assert_eq!(s.verify(&c, NB), Err(TrustError::Revoked { by: ca1.key_id() }));
    // Revoked wins over the time verdicts.
    assert_eq!(s.verify(&c, NA + 1), Err(TrustError::Revoked { by: ca1.key_id() }));
    // A credential for the same key from the other trusted CA is revoked too.
    assert_eq!(s.verify(&cred(&ca2, key), NB), Err(TrustError::Revoked { by: ca1.key_id() }));
    assert!(s.verify(&cred(&ca1, node(2)), NB).is_ok());

    // Removing the CA removes its list.
    s.remove_ca(&ca1.key_id());
    assert!(s.verify(&cred(&ca2, key), NB).is_ok());
}

#[test]
fn revocation_lists_only_move_forward() {
    let ca1 = ca(1);
    let mut s = store_with(&[&ca1]);
    let l1 = RevocationList::sign(1, NB, vec![node(1)], &ca1).unwrap();
    let l2 = l1.with_revoked(node(2), NB + 5, &ca1).unwrap().unwrap();
    assert_eq!(s.add_revocation_list(l2.clone()), Ok(RevocationUpdate::Installed));
    assert_eq!(
        s.add_revocation_list(l1.clone()),
        Err(TrustError::StaleRevocationList { held: 2, offered: 1 })
    );
    // Same serial, different content: a conflict, the held list stays.
    let other2 = RevocationList::sign(2, NB, vec![node(3)], &ca1).unwrap();
    assert!(s.add_revocation_list(other2).is_err());
    assert!(s.revoked_by(&node(2)).is_some());
    assert!(s.revoked_by(&node(3)).is_none());
    let l3 = l2.with_revoked(node(3), NB + 9, &ca1).unwrap().unwrap();
    assert_eq!(s.add_revocation_list(l3), Ok(RevocationUpdate::Replaced { previous_serial: 2 }));
    assert!(s.revoked_by(&node(3)).is_some());
}

#[test]
fn revoking_again_appends() {
    let (ca1, ca2) = (ca(1), ca(2));
    let l1 = RevocationList::sign(1, NB, vec![node(1)], &ca1).unwrap();
    let l2 = l1.with_revoked(node(2), NB + 60, &ca1).unwrap().unwrap();
    assert_eq!(l2.serial(), 2);
    assert_eq!(l2.issued(), NB + 60);
    assert_eq!(l2.revoked(), &[node(1), node(2)]);
    assert!(l2.signature_valid(&ca1.public_key()));
    let back = RevocationList::from_armour(&l2.to_armour()).unwrap();
    assert_eq!(back, l2);
    // Already there: nothing to do.
    assert_eq!(l2.with_revoked(node(1), NB + 70, &ca1), Ok(None));
    // An issue time that went backwards is raised to the old list's.
    let l3 = l2.with_revoked(node(3), NB, &ca1).unwrap().unwrap();
    assert_eq!(l3.issued(), NB + 60);
    // Another CA cannot extend this list.
    assert!(matches!(
        l2.with_revoked(node(3), NB, &ca2),
        Err(revocation::RevokeError::NotSignedByThisCa { .. })
    ));
}

#[test]
fn malformed_revocation_lists() {
    let ca1 = ca(1);
    let mut w = Writer::new(ObjectKind::RevocationList);
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    w.field(field::SERIAL, &1u64.to_be_bytes());
    w.field(field::ISSUED, &NB.to_be_bytes());
    w.field(field::REVOKED_KEY, node(1).as_bytes());
    w.field(field::REVOKED_KEY, node(1).as_bytes());
    assert!(matches!(
        RevocationList::from_bytes(&sign_raw(w.finish(), &ca1)),
        Err(DecodeError::Value(ValueError::DuplicateEntry { .. }))
    ));
    let mut w = Writer::new(ObjectKind::RevocationList);
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    w.field(field::ISSUED, &NB.to_be_bytes());
    assert_eq!(
        RevocationList::from_bytes(&sign_raw(w.finish(), &ca1)),
        Err(DecodeError::MissingField { field: "serial" })
    );
    let mut w = Writer::new(ObjectKind::RevocationList);
    w.field(field::CA_KEY_ID, &ca1.key_id().0);
    w.field(field::SERIAL, &[1, 2, 3]);
    assert_eq!(
        RevocationList::from_bytes(&sign_raw(w.finish(), &ca1)),
        Err(DecodeError::BadFieldLength { field: "serial", len: 3 })
    );
}

#[test]
fn allow_list_and_peer_authorisation() {
    let ca1 = ca(1);
    let (a, b, c) = (node(1), node(2), node(3));
    let mut s = store_with(&[&ca1]);
    s.allow_key(
        a,
        AllowEntry {
            name: Some("a".into()),
            prefixes: vec![p("192.168.1.0/24")],
            signing_key: Some([7; 32]),
        },
    );
    let n = s.verify_allow_listed(&a).unwrap();
    assert_eq!(n.authority, Authority::AllowList);
    assert_eq!(n.recheck_at(), None);
    assert_eq!(n.signing_key, Some([7; 32]), "the allow-list's signing key makes its sets required");
    assert!(n.authorise_prefix(&p("192.168.1.0/25")));
    assert!(n.authorise_prefix(&s.mesh_prefix().unwrap().host_prefix_for(&a)));
    assert_eq!(s.verify_allow_listed(&b), Err(TrustError::NotAuthorised(b)));

    // A credential for the presented key wins; one for another key does not.
    let cb = cred(&ca1, b);
    assert!(s.authorise_peer(&b, Some(&cb), NB).is_ok());
    assert_eq!(s.authorise_peer(&c, Some(&cb), NB), Err(TrustError::KeyMismatch { peer: c, credential: b }));
    assert_eq!(
        s.authorise_peer(&b, Some(&cb), NA + 1),
        Err(TrustError::Expired { not_after: NA, now: NA + 1 })
    );
    assert_eq!(s.authorise_peer(&c, None, NB), Err(TrustError::NotAuthorised(c)));
    // An allow-listed key with an expired credential falls back to the list.
    let ca_cred = cred(&ca1, a);
    let n = s.authorise_peer(&a, Some(&ca_cred), NA + 1).unwrap();
    assert_eq!(n.authority, Authority::AllowList);
    // Revocation beats the allow-list.
    let list = RevocationList::sign(1, NB, vec![a], &ca1).unwrap();
    s.add_revocation_list(list).unwrap();
    assert_eq!(s.verify_allow_listed(&a), Err(TrustError::Revoked { by: ca1.key_id() }));
    assert_eq!(s.authorise_peer(&a, Some(&ca_cred), NB), Err(TrustError::Revoked { by: ca1.key_id() }));
    assert!(s.disallow_key(&a));
}

#[test]
fn prefix_authorisation_edges() {
    let key = node(1);
    let mesh: MeshPrefix = "fd00:1234:5678::/48".parse().unwrap();
    let own = mesh.host_prefix_for(&key);
    let mk = |prefixes: Vec<Prefix>, mesh_address| VerifiedNode {
        public_key: key,
        router_id: router_id(&key),
        name: None,
        prefixes,
        groups: vec![],
        mesh_address,
        transport_address: None,
        authority: Authority::AllowList,
        signing_key: None,
    };
    let n = mk(vec![p("10.0.0.0/8"), p("2001:db8::/32")], Some(mesh.address_for(&key)));
    // Inside, equal, wider, outside, other family.
    assert!(authorise_prefix(&n, &p("10.1.2.0/24")));
    assert!(authorise_prefix(&n, &p("10.255.255.255/32")));
    assert!(authorise_prefix(&n, &p("10.0.0.0/8")));
    assert!(!authorise_prefix(&n, &p("10.0.0.0/7")));
    assert!(!authorise_prefix(&n, &p("11.0.0.0/8")));
    assert!(!authorise_prefix(&n, &p("0.0.0.0/0")));
    assert!(authorise_prefix(&n, &p("2001:db8:1::/48")));
    assert!(!authorise_prefix(&n, &p("2001:db9::/32")));
    assert!(!authorise_prefix(&n, &p("::ffff:10.0.0.0/104")), "no v4-mapped");
    // The key-derived /128 only, not its neighbours or a covering prefix.
    assert!(authorise_prefix(&n, &own));
    let addr = u128::from(mesh.address_for(&key));
    let next = Prefix::new(std::net::Ipv6Addr::from(addr ^ 1).into(), 128).unwrap();
    assert!(!authorise_prefix(&n, &next));
    assert!(!authorise_prefix(&n, &Prefix::new(own.addr(), 127).unwrap()));
    assert!(!authorise_prefix(&n, &mesh.prefix()));
    assert!(!authorise_prefix(&n, &mesh.host_prefix_for(&node(2))));
    // Without a mesh prefix nothing is key-derived.
    assert!(!authorise_prefix(&mk(vec![], None), &own));
    // /0 grants cover one family each.
    let v4all = mk(vec![p("0.0.0.0/0")], None);
    assert!(authorise_prefix(&v4all, &p("0.0.0.0/0")));
    assert!(authorise_prefix(&v4all, &p("203.0.113.7/32")));
    assert!(!authorise_prefix(&v4all, &p("::/0")));
    assert!(!authorise_prefix(&v4all, &own));
    let v6all = mk(vec![p("::/0")], None);
    assert!(authorise_prefix(&v6all, &p("2001:db8::/32")));
    assert!(authorise_prefix(&v6all, &p("::/0")));
    assert!(!authorise_prefix(&v6all, &p("10.0.0.0/8")));
    // Nothing granted, nothing authorised (other than the own address).
    let none = mk(vec![], Some(mesh.address_for(&key)));
    assert!(!authorise_prefix(&none, &p("10.0.0.0/8")));
    assert!(authorise_prefix(&none, &own));
}

#[test]
fn verified_node_serialises_to_json() {
    let ca1 = ca(1);
    let n = store_with(&[&ca1]).verify(&cred(&ca1, node(1)), NB).unwrap();
    let v = serde_json::to_value(&n).unwrap();
    assert_eq!(v["name"], "kitchen");
    assert_eq!(v["authority"]["kind"], "credential");
    assert_eq!(v["prefixes"][0], "10.1.0.0/16");
    assert_eq!(v["public_key"], n.public_key.to_string());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Changing any byte of a credential (signed part or signature) never
    /// yields an accepted credential.
    #[test]
    fn tampering_anywhere_is_detected(pos in 0usize..1000, xor in 1u8..=255) {
        let ca1 = ca(1);
        let s = store_with(&[&ca1]);
        let c = cred(&ca1, node(1));
        let mut bytes = c.to_bytes().to_vec();
        let pos = pos % bytes.len();
        bytes[pos] ^= xor;
        match s.verify_bytes(&bytes, NB + 1) {
            Ok(n) => prop_assert!(false, "tampered byte {pos} accepted: {n:?}"),
            Err(TrustError::Malformed(_))
            | Err(TrustError::BadSignature(_))
            | Err(TrustError::UnknownCa(_)) => {}
            Err(e) => prop_assert!(false, "byte {pos}: unexpected verdict {e}"),
        }
    }

    #[test]
    fn tampered_revocation_lists_are_refused(pos in 0usize..1000, xor in 1u8..=255) {
        let ca1 = ca(1);
        let mut s = store_with(&[&ca1]);
        let list = RevocationList::sign(3, NB, vec![node(1), node(2)], &ca1).unwrap();
        let mut bytes = list.to_bytes().to_vec();
        let pos = pos % bytes.len();
        bytes[pos] ^= xor;
        if let Ok(l) = RevocationList::from_bytes(&bytes) {
            prop_assert!(s.add_revocation_list(l).is_err());
        }
        prop_assert!(s.revoked_by(&node(1)).is_none());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Credential::from_bytes(&data);
        let _ = RevocationList::from_bytes(&data);
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = Credential::from_armour(text);
        }
    }
}

#[test]
fn largest_revocation_list_round_trips_and_one_more_key_is_refused() {
    let ca1 = ca(1);
    let mut keys: Vec<PublicKey> = (0..revocation::MAX_REVOKED_KEYS as u32)
        .map(|i| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            PublicKey(k)
        })
        .collect();
    let list = RevocationList::sign(1, NB, keys.clone(), &ca1).unwrap();
    assert!(list.to_bytes().len() <= revocation::MAX_REVOCATION_LIST_LEN);
    assert_eq!(RevocationList::from_armour(&list.to_armour()).unwrap(), list);
    keys.push(node(1));
    assert_eq!(
        RevocationList::sign(1, NB, keys, &ca1),
        Err(ValueError::TooMany { field: "revoked-key", max: revocation::MAX_REVOKED_KEYS })
    );
}
