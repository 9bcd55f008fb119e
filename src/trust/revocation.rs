//! Revocation lists: a CA-signed list of WireGuard public keys that are no
//! longer trusted, whatever credential or allow-list entry they hold.
//!
//! A list has a serial number; a CA issues a new list with a higher serial
//! to add keys ("revoking again appends"), and a verifier keeps only the
//! highest serial it has seen from each CA.

use super::armour::{self, ArmourError};
use super::keys::{CaKeyId, CaPublicKey, CaSecretKey, PublicKey};
use super::wire::{self, field, DecodeError, ObjectKind, ValueError, Writer, SIGNATURE_LEN};

/// Most keys in one list.
pub const MAX_REVOKED_KEYS: usize = 4096;
/// Largest encoded list: every field at its largest, plus 1 KiB for fields
/// of future versions.
pub const MAX_REVOCATION_LIST_LEN: usize =
    wire::ENVELOPE_OVERHEAD + 3 * (2 + 8) + MAX_REVOKED_KEYS * (2 + 32) + 1024;

pub const ARMOUR_LABEL: &str = "WEFT REVOCATION LIST";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    ca_key_id: CaKeyId,
    serial: u64,
    issued: u64,
    revoked: Vec<PublicKey>,
    /// The same keys sorted, for lookups in O(log n).
    sorted: Vec<PublicKey>,
    skipped_fields: Vec<u8>,
    bytes: Vec<u8>,
}

impl RevocationList {
    /// Encodes and signs a list. `issued` is a Unix time in seconds.
    pub fn sign(
        serial: u64,
        issued: u64,
        revoked: Vec<PublicKey>,
        ca: &CaSecretKey,
    ) -> Result<RevocationList, ValueError> {
        if revoked.len() > MAX_REVOKED_KEYS {
            return Err(ValueError::TooMany { field: "revoked-key", max: MAX_REVOKED_KEYS });
        }
        let sorted = sorted_unique(&revoked)?;
        let ca_key_id = ca.key_id();
        let mut w = Writer::new(ObjectKind::RevocationList);
        w.field(field::CA_KEY_ID, &ca_key_id.0);
        w.field(field::SERIAL, &serial.to_be_bytes());
        w.field(field::ISSUED, &issued.to_be_bytes());
        for k in &revoked {
            w.field(field::REVOKED_KEY, k.as_bytes());
        }
        let mut bytes = w.finish();
        let sig = ca.sign(&wire::signing_message(&bytes));
        bytes.extend_from_slice(&sig);
        Ok(RevocationList { ca_key_id, serial, issued, revoked, sorted, skipped_fields: Vec::new(), bytes })
    }

    /// A new list with `key` added, the next serial, signed by `ca`: what
    /// `weft ca revoke` does to an existing list. A key already present
    /// gives `Ok(None)` (nothing to change).
    pub fn with_revoked(
        &self,
        key: PublicKey,
        issued: u64,
        ca: &CaSecretKey,
    ) -> Result<Option<RevocationList>, RevokeError> {
        if ca.key_id() != self.ca_key_id || !self.signature_valid(&ca.public_key()) {
            return Err(RevokeError::NotSignedByThisCa { list_ca: self.ca_key_id });
        }
        if self.contains(&key) {
            return Ok(None);
        }
        let serial = self.serial.checked_add(1).ok_or(RevokeError::SerialExhausted)?;
        let mut revoked = self.revoked.clone();
        revoked.push(key);
        // Never issue a list that claims to be older than the one it replaces.
        let issued = issued.max(self.issued);
        RevocationList::sign(serial, issued, revoked, ca).map(Some).map_err(RevokeError::Value)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<RevocationList, DecodeError> {
        let signed = wire::open_envelope(bytes, ObjectKind::RevocationList, MAX_REVOCATION_LIST_LEN)?;
        let mut ca_key_id = None;
        let mut serial = None;
        let mut issued = None;
        let mut revoked = Vec::new();
        let mut skipped_fields = Vec::new();
        wire::walk_fields(signed, |t, v| {
            match t {
                field::CA_KEY_ID => {
                    wire::once(&mut ca_key_id, "ca-key-id", CaKeyId(wire::fixed("ca-key-id", v)?))?
                }
                field::SERIAL => wire::once(&mut serial, "serial", wire::u64_field("serial", v)?)?,
                field::ISSUED => wire::once(&mut issued, "issued", wire::u64_field("issued", v)?)?,
                field::REVOKED_KEY => {
                    if revoked.len() == MAX_REVOKED_KEYS {
                        return Err(
                            ValueError::TooMany { field: "revoked-key", max: MAX_REVOKED_KEYS }.into()
                        );
                    }
                    revoked.push(PublicKey(wire::fixed("revoked-key", v)?));
                }
                _ => {
                    skipped_fields.push(t);
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        let sorted = sorted_unique(&revoked)?;
        let missing = |field| DecodeError::MissingField { field };
        Ok(RevocationList {
            ca_key_id: ca_key_id.ok_or(missing("ca-key-id"))?,
            serial: serial.ok_or(missing("serial"))?,
            issued: issued.ok_or(missing("issued"))?,
            revoked,
            sorted,
            skipped_fields,
            bytes: bytes.to_vec(),
        })
    }

    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn ca_key_id(&self) -> CaKeyId {
        self.ca_key_id
    }

    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The revoked keys, oldest revocation first.
    pub fn revoked(&self) -> &[PublicKey] {
        &self.revoked
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.sorted.binary_search(key).is_ok()
    }

    pub fn skipped_fields(&self) -> &[u8] {
        &self.skipped_fields
    }

    pub fn signature_valid(&self, ca: &CaPublicKey) -> bool {
        let n = self.bytes.len() - SIGNATURE_LEN;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&self.bytes[n..]);
        ca.key_id() == self.ca_key_id && ca.verify(&wire::signing_message(&self.bytes[..n]), &sig)
    }

    pub fn to_armour(&self) -> String {
        armour::encode(ARMOUR_LABEL, &self.bytes)
    }

    pub fn from_armour(text: &str) -> Result<RevocationList, ArmourError> {
        let bytes = armour::decode(text, ARMOUR_LABEL, MAX_REVOCATION_LIST_LEN)?;
        RevocationList::from_bytes(&bytes).map_err(ArmourError::Decode)
    }
}

/// The keys sorted, or the first duplicate.
fn sorted_unique(keys: &[PublicKey]) -> Result<Vec<PublicKey>, ValueError> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    match sorted.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(ValueError::DuplicateEntry { field: "revoked-key", entry: w[0].to_string() }),
        None => Ok(sorted),
    }
}

/// Why a key could not be added to an existing list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeError {
    /// The existing list is not a valid list of the CA doing the revoking.
    NotSignedByThisCa {
        list_ca: CaKeyId,
    },
    SerialExhausted,
    Value(ValueError),
}

impl std::fmt::Display for RevokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevokeError::NotSignedByThisCa { list_ca } => write!(
                f,
                "the existing revocation list is not validly signed by this CA \
                 (it names CA {list_ca})"
            ),
            RevokeError::SerialExhausted => f.write_str("revocation list serial is at its maximum"),
            RevokeError::Value(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RevokeError {}
