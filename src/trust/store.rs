//! The verifier: which CAs, allow-listed keys and revocation lists a node
//! trusts, and the verdicts it reaches with them. Pure: time is an argument
//! (Unix seconds), and a verdict tells when it next needs re-checking.

use std::fmt;
use std::net::Ipv6Addr;

use super::credential::{self, Credential};
use super::derive::{self, MeshPrefix};
use super::keys::{CaKeyId, CaPublicKey, PublicKey};
use super::revocation::RevocationList;
use super::wire::DecodeError;
use crate::babel::{Prefix, RouterId};

/// Why a node or a revocation list is not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustError {
    /// The bytes are not a well-formed credential.
    Malformed(DecodeError),
    /// Signed (so it claims) by a CA that is not configured.
    UnknownCa(CaKeyId),
    /// The signature does not verify with the named CA's key.
    BadSignature(CaKeyId),
    NotYetValid {
        not_before: u64,
        now: u64,
    },
    Expired {
        not_after: u64,
        now: u64,
    },
    /// The key is on a revocation list of this CA.
    Revoked {
        by: CaKeyId,
    },
    /// The credential is for another key than the peer presented.
    KeyMismatch {
        peer: PublicKey,
        credential: PublicKey,
    },
    /// No credential and not on the allow-list.
    NotAuthorised(PublicKey),
    /// A revocation list older than (or conflicting with) the one held.
    StaleRevocationList {
        held: u64,
        offered: u64,
    },
}

impl TrustError {
    /// A short name of the kind of error, without the times or keys it
    /// carries: what logs and counters group refusals by.
    pub fn kind(&self) -> &'static str {
        match self {
            TrustError::Malformed(_) => "malformed",
            TrustError::UnknownCa(_) => "unknown-ca",
            TrustError::BadSignature(_) => "bad-signature",
            TrustError::NotYetValid { .. } => "not-yet-valid",
            TrustError::Expired { .. } => "expired",
            TrustError::Revoked { .. } => "revoked",
            TrustError::KeyMismatch { .. } => "key-mismatch",
            TrustError::NotAuthorised(_) => "not-authorised",
            TrustError::StaleRevocationList { .. } => "stale-revocation-list",
        }
    }

    /// When a retry could succeed without anything else changing: the
    /// not-before of a credential that is not yet valid. The daemon keeps it
    /// as a timer.
    pub fn retry_at(&self) -> Option<u64> {
        match self {
            TrustError::NotYetValid { not_before, .. } => Some(*not_before),
            _ => None,
        }
    }
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::Malformed(e) => write!(f, "malformed credential: {e}"),
            TrustError::UnknownCa(id) => write!(f, "signed by unknown CA {id}"),
            TrustError::BadSignature(id) => write!(f, "bad signature (claimed CA {id})"),
            TrustError::NotYetValid { not_before, now } => write!(
                f,
                "not valid before {} (now {})",
                super::time::iso8601(*not_before),
                super::time::iso8601(*now)
            ),
            TrustError::Expired { not_after, now } => write!(
                f,
                "expired at {} (now {})",
                super::time::iso8601(*not_after),
                super::time::iso8601(*now)
            ),
            TrustError::Revoked { by } => write!(f, "key revoked by CA {by}"),
            TrustError::KeyMismatch { peer, credential } => {
                write!(f, "credential is for key {credential}, but the peer's key is {peer}")
            }
            TrustError::NotAuthorised(k) => {
                write!(f, "key {k} has no credential and is not allow-listed")
            }
            TrustError::StaleRevocationList { held, offered } => {
                write!(f, "revocation list serial {offered} is not newer than the held serial {held}")
            }
        }
    }
}

impl std::error::Error for TrustError {}

/// The times a verdict is reached at. A router whose wall clock cannot be
/// believed (see `mesh::clock`) checks expiry against a lower bound of the
/// time and may not check not-before at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustTime {
    /// Not-before is checked against this; `None`: not enforced.
    pub not_before_at: Option<u64>,
    /// Not-after is checked against this.
    pub expiry_at: u64,
}

impl TrustTime {
    /// Both ends of the window checked against one time.
    pub fn exact(t: u64) -> TrustTime {
        TrustTime { not_before_at: Some(t), expiry_at: t }
    }
}

impl From<u64> for TrustTime {
    fn from(t: u64) -> TrustTime {
        TrustTime::exact(t)
    }
}

/// Whether a credential's validity window holds at `at` (both ends inclusive).
pub fn check_window(body: &super::CredentialBody, at: TrustTime) -> Result<(), TrustError> {
    if let Some(t) = at.not_before_at {
        if t < body.not_before {
            return Err(TrustError::NotYetValid { not_before: body.not_before, now: t });
        }
    }
    if at.expiry_at > body.not_after {
        return Err(TrustError::Expired { not_after: body.not_after, now: at.expiry_at });
    }
    Ok(())
}

/// An allow-list entry: a key trusted without a credential. It may carry
/// prefix grants of its own (from local configuration), so that a small
/// network without a CA can still let a node announce a LAN.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowEntry {
    pub name: Option<String>,
    pub prefixes: Vec<Prefix>,
    /// Its key for origin-signed announcements, if the allow-list names one.
    pub signing_key: Option<[u8; 32]>,
}

/// What vouches for a verified node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Authority {
    Credential { ca_key_id: CaKeyId, not_before: u64, not_after: u64 },
    AllowList,
}

/// A node that passed verification, with what it is granted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedNode {
    pub public_key: PublicKey,
    pub router_id: RouterId,
    pub name: Option<String>,
    /// Prefixes granted by the credential or the allow-list entry.
    pub prefixes: Vec<Prefix>,
    pub groups: Vec<String>,
    /// The key-derived /128, when the store has a mesh prefix.
    pub mesh_address: Option<Ipv6Addr>,
    /// The key-derived transport address (end to end), when the mesh
    /// prefix leaves room for one.
    pub transport_address: Option<Ipv6Addr>,
    pub authority: Authority,
    /// The credential's key for origin-signed announcements, if any.
    pub signing_key: Option<[u8; 32]>,
}

impl VerifiedNode {
    /// See [`authorise_prefix`].
    pub fn authorise_prefix(&self, prefix: &Prefix) -> bool {
        authorise_prefix(self, prefix)
    }

    /// The first second at which this verdict stops holding on its own
    /// (the credential expires), if ever.
    pub fn recheck_at(&self) -> Option<u64> {
        match self.authority {
            Authority::Credential { not_after, .. } => not_after.checked_add(1),
            Authority::AllowList => None,
        }
    }
}

/// Whether `node` may originate `prefix`: it lies inside (or equals) a
/// granted prefix, or it is one of the node's own key-derived /128s (mesh
/// or transport address). IPv4 and IPv6
/// never match each other; a granted /0 covers its whole family.
pub fn authorise_prefix(node: &VerifiedNode, prefix: &Prefix) -> bool {
    if let Prefix::V6(a, 128) = prefix {
        if node.mesh_address == Some(*a) || node.transport_address == Some(*a) {
            return true;
        }
    }
    node.prefixes.iter().any(|g| g.contains(prefix))
}

/// What adding a revocation list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationUpdate {
    /// First list from this CA.
    Installed,
    /// Replaced a list with a lower serial.
    Replaced { previous_serial: u64 },
    /// The very same list was already held.
    Unchanged,
}

/// A few entries, sorted by key, searched linearly: each `BTreeMap` key and
/// value type costs kilobytes of flash on a router, and a store holds a CA
/// or two and at most some dozens of allow-listed keys.
#[derive(Clone, Debug)]
struct SmallMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    fn get(&self, k: &K) -> Option<&V> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| v)
    }

    fn insert(&mut self, k: K, v: V) {
        match self.0.iter().position(|(x, _)| *x >= k) {
            Some(i) if self.0[i].0 == k => self.0[i].1 = v,
            Some(i) => self.0.insert(i, (k, v)),
            None => self.0.push((k, v)),
        }
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.0.iter().position(|(x, _)| x == k)?;
        Some(self.0.remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// CA keys, allow-listed keys, revocation lists and the mesh prefix.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    cas: SmallMap<CaKeyId, CaPublicKey>,
    allowed: SmallMap<PublicKey, AllowEntry>,
    revocations: SmallMap<CaKeyId, RevocationList>,
    mesh_prefix: Option<MeshPrefix>,
}

impl TrustStore {
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    pub fn set_mesh_prefix(&mut self, prefix: Option<MeshPrefix>) {
        self.mesh_prefix = prefix;
    }

    pub fn mesh_prefix(&self) -> Option<MeshPrefix> {
        self.mesh_prefix
    }

    /// Trusts a CA. Several may be trusted at once (rotation: add the new CA,
    /// re-issue credentials, then remove the old one).
    pub fn add_ca(&mut self, ca: CaPublicKey) -> CaKeyId {
        let id = ca.key_id();
        self.cas.insert(id, ca);
        id
    }

    /// Stops trusting a CA, and with it its revocation list.
    pub fn remove_ca(&mut self, id: &CaKeyId) -> bool {
        self.revocations.remove(id);
        self.cas.remove(id).is_some()
    }

    pub fn cas(&self) -> impl Iterator<Item = (&CaKeyId, &CaPublicKey)> {
        self.cas.iter()
    }

    pub fn allow_key(&mut self, key: PublicKey, entry: AllowEntry) {
        self.allowed.insert(key, entry);
    }

    pub fn disallow_key(&mut self, key: &PublicKey) -> bool {
        self.allowed.remove(key).is_some()
    }

    /// Accepts a revocation list signed by a configured CA, if it is newer
    /// than the one held from that CA. Lists from other CAs are refused
    /// (and so have no effect).
    pub fn add_revocation_list(&mut self, list: RevocationList) -> Result<RevocationUpdate, TrustError> {
        let id = list.ca_key_id();
        let ca = self.cas.get(&id).ok_or(TrustError::UnknownCa(id))?;
        if !list.signature_valid(ca) {
            return Err(TrustError::BadSignature(id));
        }
        let update = match self.revocations.get(&id) {
            None => RevocationUpdate::Installed,
            Some(held) if held.to_bytes() == list.to_bytes() => return Ok(RevocationUpdate::Unchanged),
            Some(held) if held.serial() < list.serial() => {
                RevocationUpdate::Replaced { previous_serial: held.serial() }
            }
            Some(held) => {
                return Err(TrustError::StaleRevocationList { held: held.serial(), offered: list.serial() })
            }
        };
        self.revocations.insert(id, list);
        Ok(update)
    }

    /// The issue times of the revocation lists held (CA-signed times).
    pub fn revocation_issue_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.revocations.values().map(RevocationList::issued)
    }

    /// The CA whose list revokes `key`, if any. A revocation by any trusted
    /// CA counts for every credential and for the allow-list: the key is the
    /// identity, and a compromised key is compromised everywhere.
    pub fn revoked_by(&self, key: &PublicKey) -> Option<CaKeyId> {
        self.revocations.iter().find(|(_, l)| l.contains(key)).map(|(id, _)| *id)
    }

    /// Verifies a credential at `now`. Checks, in this order: known CA,
    /// signature, revocation, not-before, not-after (both ends inclusive).
    pub fn verify(&self, cred: &Credential, now: u64) -> Result<VerifiedNode, TrustError> {
        self.verify_at(cred, TrustTime::exact(now))
    }

    /// [`Self::verify`] with the window checked at `at`.
    pub fn verify_at(&self, cred: &Credential, at: TrustTime) -> Result<VerifiedNode, TrustError> {
        let v = self.verify_signature(cred)?;
        check_window(cred.body(), at)?;
        Ok(v)
    }

    /// Everything but the validity window: known CA, signature, revocation.
    /// The verdict holds until the trust material changes; the window is
    /// checked (cheaply) as time passes.
    pub fn verify_signature(&self, cred: &Credential) -> Result<VerifiedNode, TrustError> {
        let id = cred.ca_key_id();
        let ca = self.cas.get(&id).ok_or(TrustError::UnknownCa(id))?;
        if !cred.signature_valid(ca) {
            return Err(TrustError::BadSignature(id));
        }
        let body = cred.body();
        if let Some(by) = self.revoked_by(&body.public_key) {
            return Err(TrustError::Revoked { by });
        }
        Ok(VerifiedNode {
            public_key: body.public_key,
            router_id: derive::router_id(&body.public_key),
            name: Some(body.name.clone()),
            prefixes: body.prefixes.clone(),
            groups: body.groups.clone(),
            mesh_address: self.mesh_prefix.map(|p| p.address_for(&body.public_key)),
            transport_address: self.mesh_prefix.and_then(|p| p.transport_address_for(&body.public_key)),
            authority: Authority::Credential {
                ca_key_id: id,
                not_before: body.not_before,
                not_after: body.not_after,
            },
            signing_key: body.signing_key,
        })
    }

    /// Decodes and verifies the binary form (as received in a TLV).
    pub fn verify_bytes(&self, bytes: &[u8], now: u64) -> Result<VerifiedNode, TrustError> {
        let cred = Credential::from_bytes(bytes).map_err(TrustError::Malformed)?;
        self.verify(&cred, now)
    }

    /// Verifies a key by the allow-list alone.
    pub fn verify_allow_listed(&self, key: &PublicKey) -> Result<VerifiedNode, TrustError> {
        let entry = self.allowed.get(key).ok_or(TrustError::NotAuthorised(*key))?;
        if let Some(by) = self.revoked_by(key) {
            return Err(TrustError::Revoked { by });
        }
        Ok(VerifiedNode {
            public_key: *key,
            router_id: derive::router_id(key),
            name: entry.name.clone(),
            prefixes: entry.prefixes.clone(),
            groups: Vec::new(),
            mesh_address: self.mesh_prefix.map(|p| p.address_for(key)),
            transport_address: self.mesh_prefix.and_then(|p| p.transport_address_for(key)),
            authority: Authority::AllowList,
            signing_key: entry.signing_key,
        })
    }

    /// The verdict on a peer that presented WireGuard key `peer` and maybe a
    /// credential: a valid credential for that very key wins; otherwise the
    /// allow-list decides; otherwise the credential's error (or
    /// `NotAuthorised` without one) is the answer. Revocation beats both.
    pub fn authorise_peer(
        &self,
        peer: &PublicKey,
        cred: Option<&Credential>,
        now: u64,
    ) -> Result<VerifiedNode, TrustError> {
        self.authorise_peer_at(peer, cred, TrustTime::exact(now))
    }

    /// [`Self::authorise_peer`] with the window checked at `at`.
    pub fn authorise_peer_at(
        &self,
        peer: &PublicKey,
        cred: Option<&Credential>,
        at: TrustTime,
    ) -> Result<VerifiedNode, TrustError> {
        let by_credential = cred.map(|c| {
            if c.public_key() != peer {
                Err(TrustError::KeyMismatch { peer: *peer, credential: *c.public_key() })
            } else {
                self.verify_at(c, at)
            }
        });
        match by_credential {
            Some(Ok(node)) => Ok(node),
            Some(Err(e @ TrustError::Revoked { .. })) => Err(e),
            Some(Err(e)) => match self.verify_allow_listed(peer) {
                Ok(node) => Ok(node),
                Err(TrustError::NotAuthorised(_)) => Err(e),
                Err(other) => Err(other),
            },
            None => self.verify_allow_listed(peer),
        }
    }
}

/// The next second at which a credential's time verdict changes (see
/// [`Credential::next_change`]).
pub fn next_change(cred: &Credential, now: u64) -> Option<u64> {
    credential::next_change(cred.body().not_before, cred.body().not_after, now)
}
