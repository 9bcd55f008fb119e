//! Credentials: a network CA's signed statement that a WireGuard public key
//! belongs to a named node that may originate some prefixes, is in some
//! groups, during a validity window.
//!
//! A decoded [`Credential`] keeps its exact bytes, so a node can pass it on
//! (inside weft's Babel extension TLV) with its signature and any fields
//! this version does not understand intact.

use super::armour::{self, ArmourError};
use super::keys::{CaKeyId, CaPublicKey, CaSecretKey, PublicKey};
use super::wire::{
    self, field, DecodeError, ObjectKind, ValueError, Writer, ENVELOPE_OVERHEAD, SIGNATURE_LEN,
};
use crate::babel::Prefix;

/// Largest encoded credential accepted; a typical one is 150–250 bytes.
pub const MAX_CREDENTIAL_LEN: usize = 1024;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_GROUP_LEN: usize = 32;
pub const MAX_PREFIXES: usize = 32;
pub const MAX_GROUPS: usize = 16;

/// The armour label of credential files.
pub const ARMOUR_LABEL: &str = "WEFT CREDENTIAL";

/// What the CA asserts about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialBody {
    pub public_key: PublicKey,
    pub name: String,
    /// Prefixes the node may originate (a route to anything inside one is
    /// authorised too).
    pub prefixes: Vec<Prefix>,
    pub groups: Vec<String>,
    /// First valid second (Unix time, inclusive).
    pub not_before: u64,
    /// Last valid second (Unix time, inclusive).
    pub not_after: u64,
    /// The node's Ed25519 public key for signing what it originates
    /// (derived from its private key: `weft pubkey --signing`). Without
    /// one, the node's announcements are taken unsigned, as before.
    pub signing_key: Option<[u8; 32]>,
}

impl CredentialBody {
    /// Checks everything the format requires of the values.
    pub fn validate(&self) -> Result<(), ValueError> {
        wire::check_name("name", &self.name, MAX_NAME_LEN)?;
        if self.prefixes.len() > MAX_PREFIXES {
            return Err(ValueError::TooMany { field: "prefix", max: MAX_PREFIXES });
        }
        if self.groups.len() > MAX_GROUPS {
            return Err(ValueError::TooMany { field: "group", max: MAX_GROUPS });
        }
        for g in &self.groups {
            wire::check_group("group", g, MAX_GROUP_LEN)?;
        }
        for (i, p) in self.prefixes.iter().enumerate() {
            if self.prefixes[..i].contains(p) {
                return Err(ValueError::DuplicateEntry { field: "prefix", entry: p.to_string() });
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].contains(g) {
                return Err(ValueError::DuplicateEntry { field: "group", entry: g.clone() });
            }
        }
        if self.not_after < self.not_before {
            return Err(ValueError::ValidityWindow {
                not_before: self.not_before,
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// Whether `now` lies in the validity window (both ends inclusive).
    pub fn validity_at(&self, now: u64) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }
}

/// Where `now` lies relative to a validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    NotYetValid,
    Valid,
    Expired,
}

/// A decoded (or freshly signed) credential. Holding one says nothing about
/// whether it is trusted: that is [`super::TrustStore::verify`]'s job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    body: CredentialBody,
    ca_key_id: CaKeyId,
    /// Field types that were skipped as unknown (non-critical).
    skipped_fields: Vec<u8>,
    bytes: Vec<u8>,
}

impl Credential {
    /// Encodes and signs `body` with the CA key.
    pub fn sign(body: CredentialBody, ca: &CaSecretKey) -> Result<Credential, ValueError> {
        body.validate()?;
        let ca_key_id = ca.key_id();
        let mut w = Writer::new(ObjectKind::Credential);
        w.field(field::PUBLIC_KEY, body.public_key.as_bytes());
        w.field(field::NAME, body.name.as_bytes());
        let mut validity = [0u8; 16];
        validity[..8].copy_from_slice(&body.not_before.to_be_bytes());
        validity[8..].copy_from_slice(&body.not_after.to_be_bytes());
        w.field(field::VALIDITY, &validity);
        w.field(field::CA_KEY_ID, &ca_key_id.0);
        for p in &body.prefixes {
            w.field(field::PREFIX, &wire::encode_prefix(p));
        }
        for g in &body.groups {
            w.field(field::GROUP, g.as_bytes());
        }
        if let Some(k) = &body.signing_key {
            w.field(field::SIGNING_KEY, k);
        }
        let mut bytes = w.finish();
        let len = bytes.len() + SIGNATURE_LEN;
        if len > MAX_CREDENTIAL_LEN {
            return Err(ValueError::Oversized { len, max: MAX_CREDENTIAL_LEN });
        }
        let sig = ca.sign(&wire::signing_message(&bytes));
        bytes.extend_from_slice(&sig);
        Ok(Credential { body, ca_key_id, skipped_fields: Vec::new(), bytes })
    }

    /// Decodes the binary form. Checks the structure only, not the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Credential, DecodeError> {
        let signed = wire::open_envelope(bytes, ObjectKind::Credential, MAX_CREDENTIAL_LEN)?;
        let mut public_key = None;
        let mut name = None;
        let mut validity = None;
        let mut ca_key_id = None;
        let mut prefixes = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        let mut signing_key = None;
        let mut skipped_fields = Vec::new();
        wire::walk_fields(signed, |t, v| {
            match t {
                field::PUBLIC_KEY => {
                    wire::once(&mut public_key, "public-key", PublicKey(wire::fixed("public-key", v)?))?
                }
                field::NAME => {
                    let s = wire::utf8("name", v)?;
                    wire::check_name("name", s, MAX_NAME_LEN)?;
                    wire::once(&mut name, "name", s.to_owned())?;
                }
                field::VALIDITY => {
                    let b: [u8; 16] = wire::fixed("validity", v)?;
                    let nb = wire::u64_field("validity", &b[..8])?;
                    let na = wire::u64_field("validity", &b[8..])?;
                    wire::once(&mut validity, "validity", (nb, na))?;
                }
                field::CA_KEY_ID => {
                    wire::once(&mut ca_key_id, "ca-key-id", CaKeyId(wire::fixed("ca-key-id", v)?))?;
                }
                field::PREFIX => {
                    if prefixes.len() == MAX_PREFIXES {
                        return Err(ValueError::TooMany { field: "prefix", max: MAX_PREFIXES }.into());
                    }
                    prefixes.push(wire::decode_prefix(v)?);
                }
                field::GROUP => {
                    if groups.len() == MAX_GROUPS {
                        return Err(ValueError::TooMany { field: "group", max: MAX_GROUPS }.into());
                    }
                    let s = wire::utf8("group", v)?;
                    wire::check_group("group", s, MAX_GROUP_LEN)?;
                    groups.push(s.to_owned());
                }
                field::SIGNING_KEY => {
                    wire::once(&mut signing_key, "signing-key", wire::fixed("signing-key", v)?)?;
                }
                _ => {
                    skipped_fields.push(t);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        let missing = |field| DecodeError::MissingField { field };
        let (not_before, not_after) = validity.ok_or(missing("validity"))?;
        let body = CredentialBody {
            public_key: public_key.ok_or(missing("public-key"))?,
            name: name.ok_or(missing("name"))?,
            prefixes,
            groups,
            not_before,
            not_after,
            signing_key,
        };
        // Duplicates and the window order are checked here, once for all.
        body.validate()?;
        Ok(Credential {
            body,
            ca_key_id: ca_key_id.ok_or(missing("ca-key-id"))?,
            skipped_fields,
            bytes: bytes.to_vec(),
        })
    }

    /// The exact binary form (what was decoded, or what was signed).
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn body(&self) -> &CredentialBody {
        &self.body
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.body.public_key
    }

    /// The key id of the CA that claims to have signed this.
    pub fn ca_key_id(&self) -> CaKeyId {
        self.ca_key_id
    }

    /// Unknown non-critical field types that were skipped while decoding.
    pub fn skipped_fields(&self) -> &[u8] {
        &self.skipped_fields
    }

    /// The bytes covered by the signature.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    pub fn signature(&self) -> [u8; SIGNATURE_LEN] {
        let mut s = [0u8; SIGNATURE_LEN];
        s.copy_from_slice(&self.bytes[self.bytes.len() - SIGNATURE_LEN..]);
        s
    }

    /// Checks the signature against one CA key, including that the key id in
    /// the credential names this CA.
    pub fn signature_valid(&self, ca: &CaPublicKey) -> bool {
        ca.key_id() == self.ca_key_id
            && ca.verify(&wire::signing_message(self.signed_bytes()), &self.signature())
    }

    /// The next Unix second at which the time verdict changes: not-before
    /// while not yet valid, the first second after not-after while valid,
    /// none once expired. The daemon keeps this as a timer (timers are data).
    pub fn next_change(&self, now: u64) -> Option<u64> {
        next_change(self.body.not_before, self.body.not_after, now)
    }

    /// The text armour (BEGIN/END lines around base64) used in files.
    pub fn to_armour(&self) -> String {
        armour::encode(ARMOUR_LABEL, &self.bytes)
    }

    pub fn from_armour(text: &str) -> Result<Credential, ArmourError> {
        let bytes = armour::decode(text, ARMOUR_LABEL, MAX_CREDENTIAL_LEN)?;
        Credential::from_bytes(&bytes).map_err(ArmourError::Decode)
    }
}

pub(crate) fn next_change(not_before: u64, not_after: u64, now: u64) -> Option<u64> {
    if now < not_before {
        Some(not_before)
    } else if now <= not_after {
        not_after.checked_add(1)
    } else {
        None
    }
}

/// Smallest credential size, for the record: envelope plus required fields.
pub const MIN_CREDENTIAL_LEN: usize = ENVELOPE_OVERHEAD + (2 + 32) + (2 + 1) + (2 + 16) + (2 + 8);
