//! The zero-trust layer's pure parts: link MACs from X25519 shared secrets,
//! credentials carried hop by hop inside weft's Babel extension TLV, the
//! store of every known node's verdict, and the route filter built from it.
//!
//! Credentials of distant nodes travel in TLV 224 (which babeld and BIRD
//! skip): every node sends its own credential to its tunnel neighbours, and
//! asks the neighbour that advertised a route for the credential of an
//! origin it does not know. A route learned over a tunnel is used only if its
//! origin's credential is known, valid now, and grants the prefix.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::babel::{IfIndex, Prefix, RouterId};
use crate::link::{Authorised, LinkAuth};
use crate::trust::{derive, Credential, NodePrivateKey, NodePublicKey, TrustError, TrustStore, VerifiedNode};

use ed25519_compact::sha512::Hash as Sha512;

const LINK_MAC_CONTEXT: &[u8] = b"weft link handshake v1";

/// HMAC-SHA-512 (RFC 2104), truncated by the caller.
fn hmac_sha512(key: &[u8], data: &[&[u8]]) -> [u8; 64] {
    let mut k = [0u8; 128];
    if key.len() > 128 {
        k[..64].copy_from_slice(&Sha512::hash(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha512::new();
    inner.update(k.map(|b| b ^ 0x36));
    for d in data {
        inner.update(d);
    }
    let ih = inner.finalize();
    let mut outer = Sha512::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize()
}

/// The link manager's cryptography and policy: MACs keyed by the pair's
/// X25519 secret (cached per peer), verdicts from the trust store.
pub struct MeshAuth<'a> {
    pub store: &'a TrustStore,
    pub key: &'a NodePrivateKey,
    pub secrets: &'a std::cell::RefCell<HashMap<[u8; 32], Option<[u8; 32]>>>,
    /// Credentials that passed [`LinkAuth::authorise`], in the order seen.
    pub verified: &'a std::cell::RefCell<Vec<Vec<u8>>>,
}

/// Secrets kept for at most this many peers (each costs an X25519 to redo).
const MAX_SECRETS: usize = 512;

impl LinkAuth for MeshAuth<'_> {
    fn mac(&self, peer: &[u8; 32], data: &[u8]) -> [u8; crate::link::wire::MAC_LEN] {
        let mut cache = self.secrets.borrow_mut();
        if cache.len() >= MAX_SECRETS && !cache.contains_key(peer) {
            cache.clear();
        }
        let secret = *cache.entry(*peer).or_insert_with(|| self.key.shared_secret(&NodePublicKey(*peer)));
        let mut out = [0u8; crate::link::wire::MAC_LEN];
        // A low-order key gives no secret: produce a MAC nobody can match.
        let Some(secret) = secret else { return out };
        let n = out.len();
        out.copy_from_slice(&hmac_sha512(&secret, &[LINK_MAC_CONTEXT, data])[..n]);
        out
    }

    fn authorise(&self, key: &[u8; 32], credential: &[u8], now_unix: u64) -> Result<Authorised, String> {
        let cred = if credential.is_empty() {
            None
        } else {
            Some(Credential::from_bytes(credential).map_err(|e| format!("unreadable credential: {e}"))?)
        };
        let v = self
            .store
            .authorise_peer(&NodePublicKey(*key), cred.as_ref(), now_unix)
            .map_err(|e| e.to_string())?;
        if cred.is_some() {
            let mut verified = self.verified.borrow_mut();
            // Bounded: beacons repeat; the daemon drains this every event.
            if verified.len() < 64 && !verified.iter().any(|b| b == credential) {
                verified.push(credential.to_vec());
            }
        }
        Ok(Authorised {
            name: v.name.clone().unwrap_or_else(|| NodePublicKey(*key).to_string()),
            expires_unix: v.recheck_at(),
        })
    }
}

// ----- credential exchange in TLV 224 --------------------------------------

/// Kinds of weft TLV bodies (first byte).
pub const KIND_CREDENTIAL_REQUEST: u8 = 1;
pub const KIND_CREDENTIAL_CHUNK: u8 = 2;
/// Babel TLV bodies are at most 255 bytes: 8 (router-id) + 3 of header.
const CHUNK_DATA: usize = 240;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshTlv {
    /// "Send me the credential of this origin."
    CredentialRequest { router_id: RouterId },
    /// Part `index` of `count` of the credential of `router_id`.
    CredentialChunk { router_id: RouterId, index: u8, count: u8, data: Vec<u8> },
}

impl MeshTlv {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            MeshTlv::CredentialRequest { router_id } => {
                let mut b = vec![KIND_CREDENTIAL_REQUEST];
                b.extend_from_slice(&router_id.0);
                b
            }
            MeshTlv::CredentialChunk { router_id, index, count, data } => {
                let mut b = vec![KIND_CREDENTIAL_CHUNK];
                b.extend_from_slice(&router_id.0);
                b.push(*index);
                b.push(*count);
                b.extend_from_slice(data);
                b
            }
        }
    }

    /// `None` for anything that is not a well-formed weft TLV of a kind we
    /// know (future kinds are ignored, not errors).
    pub fn decode(b: &[u8]) -> Option<MeshTlv> {
        let rid = |b: &[u8]| -> Option<RouterId> { Some(RouterId(b.get(1..9)?.try_into().ok()?)) };
        match *b.first()? {
            KIND_CREDENTIAL_REQUEST if b.len() == 9 => {
                Some(MeshTlv::CredentialRequest { router_id: rid(b)? })
            }
            KIND_CREDENTIAL_CHUNK if b.len() > 11 => {
                let (index, count) = (b[9], b[10]);
                (count > 0 && index < count).then(|| MeshTlv::CredentialChunk {
                    router_id: rid(b).expect("length checked"),
                    index,
                    count,
                    data: b[11..].to_vec(),
                })
            }
            _ => None,
        }
    }
}

/// The TLVs that carry one credential.
pub fn credential_chunks(router_id: RouterId, cred: &[u8]) -> Vec<MeshTlv> {
    let parts: Vec<&[u8]> = cred.chunks(CHUNK_DATA).collect();
    let count = parts.len().min(255) as u8;
    parts
        .iter()
        .take(255)
        .enumerate()
        .map(|(i, d)| MeshTlv::CredentialChunk { router_id, index: i as u8, count, data: d.to_vec() })
        .collect()
}

/// Chunks received so far of one credential: the announced count, and
/// each part once it arrives.
type Parts = (u8, Vec<Option<Vec<u8>>>);

/// Reassembles credentials from chunks, per sender; bounded.
#[derive(Default)]
pub struct Reassembly {
    partial: BTreeMap<(IfIndex, RouterId), Parts>,
}

const MAX_PARTIAL: usize = 64;

impl Reassembly {
    /// Adds a chunk; returns the whole credential once complete.
    pub fn add(
        &mut self,
        ifindex: IfIndex,
        router_id: RouterId,
        index: u8,
        count: u8,
        data: Vec<u8>,
    ) -> Option<Vec<u8>> {
        if count == 1 {
            return Some(data);
        }
        if self.partial.len() >= MAX_PARTIAL && !self.partial.contains_key(&(ifindex, router_id)) {
            self.partial.clear();
        }
        let e =
            self.partial.entry((ifindex, router_id)).or_insert_with(|| (count, vec![None; count as usize]));
        if e.0 != count {
            *e = (count, vec![None; count as usize]);
        }
        e.1[index as usize] = Some(data);
        if e.1.iter().all(Option::is_some) {
            let (_, parts) = self.partial.remove(&(ifindex, router_id)).expect("present");
            return Some(parts.into_iter().flatten().flatten().collect());
        }
        None
    }
}

// ----- known nodes -----------------------------------------------------------

/// Everything we know about a node, by router-id.
#[derive(Clone, Debug)]
pub struct KnownNode {
    pub credential: Option<Credential>,
    pub verdict: Result<VerifiedNode, TrustError>,
}

#[derive(Default)]
pub struct KnownNodes {
    pub nodes: BTreeMap<RouterId, KnownNode>,
}

/// Most credentials kept (a mesh of a few thousand nodes at most).
const MAX_KNOWN: usize = 8192;

impl KnownNodes {
    /// Records a credential received for `router_id`. It must belong to that
    /// router-id (derived from its key), or it is dropped. Returns true if
    /// the verdict for that node changed.
    pub fn learn(&mut self, store: &TrustStore, router_id: RouterId, bytes: &[u8], now: u64) -> bool {
        let Ok(cred) = Credential::from_bytes(bytes) else { return false };
        if derive::router_id(cred.public_key()) != router_id {
            return false;
        }
        if let Some(k) = self.nodes.get(&router_id) {
            if k.credential.as_ref().is_some_and(|c| c.to_bytes() == bytes) {
                return false;
            }
        }
        let verdict = store.verify(&cred, now);
        if self.nodes.len() >= MAX_KNOWN && !self.nodes.contains_key(&router_id) {
            // Drop one invalid entry, else refuse: valid nodes are never evicted.
            let bad = self.nodes.iter().find(|(_, k)| k.verdict.is_err()).map(|(r, _)| *r);
            match bad {
                Some(r) => {
                    self.nodes.remove(&r);
                }
                None => return false,
            }
        }
        let old_ok = self.nodes.get(&router_id).map(|k| k.verdict.is_ok());
        // A valid credential is not replaced by an invalid one (e.g. an old
        // copy still circulating).
        if old_ok == Some(true) && verdict.is_err() {
            return false;
        }
        self.nodes.insert(router_id, KnownNode { credential: Some(cred), verdict });
        true
    }

    /// Records a node vouched for by the allow-list (no credential).
    pub fn learn_allowed(&mut self, store: &TrustStore, key: &NodePublicKey) {
        let rid = derive::router_id(key);
        if let Ok(v) = store.verify_allow_listed(key) {
            self.nodes.insert(rid, KnownNode { credential: None, verdict: Ok(v) });
        }
    }

    /// Re-verifies everything (trust material changed, or time passed a
    /// credential's window). Returns true if any verdict changed.
    pub fn recheck(&mut self, store: &TrustStore, now: u64) -> bool {
        let mut changed = false;
        for k in self.nodes.values_mut() {
            let v = match &k.credential {
                Some(c) => store.verify(c, now),
                None => match &k.verdict {
                    Ok(v) => store.verify_allow_listed(&v.public_key),
                    Err(e) => Err(e.clone()),
                },
            };
            if v.is_ok() != k.verdict.is_ok() || v.as_ref().ok() != k.verdict.as_ref().ok() {
                changed = true;
            }
            k.verdict = v;
        }
        changed
    }

    /// The earliest Unix second at which some verdict changes by itself.
    pub fn next_change(&self, now: u64) -> Option<u64> {
        self.nodes
            .values()
            .filter_map(|k| match (&k.verdict, &k.credential) {
                (Ok(v), _) => v.recheck_at(),
                (Err(e), _) => e.retry_at(),
            })
            .filter(|t| *t > now)
            .min()
    }

    pub fn credential_bytes(&self, rid: &RouterId) -> Option<&[u8]> {
        self.nodes.get(rid)?.credential.as_ref().map(|c| c.to_bytes())
    }

    /// A snapshot of what each valid origin may announce, for the filter.
    pub fn grants(&self) -> Arc<BTreeMap<RouterId, VerifiedNode>> {
        Arc::new(
            self.nodes.iter().filter_map(|(r, k)| k.verdict.as_ref().ok().map(|v| (*r, v.clone()))).collect(),
        )
    }
}

/// Why a route learned over a tunnel is or is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteVerdict {
    Allowed,
    /// The origin's credential is not known (yet): requested.
    UnknownOrigin,
    /// Known and valid, but the prefix is not granted: refused, counted.
    NotGranted,
}

pub fn judge(grants: &BTreeMap<RouterId, VerifiedNode>, prefix: &Prefix, rid: &RouterId) -> RouteVerdict {
    match grants.get(rid) {
        None => RouteVerdict::UnknownOrigin,
        Some(v) if v.authorise_prefix(prefix) => RouteVerdict::Allowed,
        Some(_) => RouteVerdict::NotGranted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha512_matches_rfc4231_case_2() {
        let mac = hmac_sha512(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac[..8],
            [0x16, 0x4b, 0x7a, 0x7b, 0xfc, 0xf8, 0x19, 0xe2],
            "RFC 4231 test case 2 (HMAC-SHA-512)"
        );
    }

    #[test]
    fn link_macs_agree_between_the_two_ends_only() {
        let store = TrustStore::new();
        let (a, b, c) = (
            NodePrivateKey::from_random([1; 32]),
            NodePrivateKey::from_random([2; 32]),
            NodePrivateKey::from_random([3; 32]),
        );
        let cache = || std::cell::RefCell::new(HashMap::new());
        let (ca, cb, cc) = (cache(), cache(), cache());
        let v = std::cell::RefCell::new(Vec::new());
        let auth_a = MeshAuth { store: &store, key: &a, secrets: &ca, verified: &v };
        let auth_b = MeshAuth { store: &store, key: &b, secrets: &cb, verified: &v };
        let auth_c = MeshAuth { store: &store, key: &c, secrets: &cc, verified: &v };
        let m = auth_a.mac(&b.public_key().0, b"offer");
        assert_eq!(m, auth_b.mac(&a.public_key().0, b"offer"));
        assert_ne!(m, auth_c.mac(&a.public_key().0, b"offer"));
        assert_ne!(m, auth_a.mac(&b.public_key().0, b"offer!"));
        // A low-order key (all zeros) gives no usable secret.
        assert_eq!(auth_a.mac(&[0; 32], b"x"), [0; 16]);
    }

    #[test]
    fn tlvs_round_trip_and_chunks_reassemble() {
        let rid = RouterId([2, 3, 4, 5, 6, 7, 8, 9]);
        let cred: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let chunks = credential_chunks(rid, &cred);
        assert_eq!(chunks.len(), 3);
        let mut r = Reassembly::default();
        let mut done = None;
        for c in chunks.iter().rev() {
            let enc = c.encode();
            assert!(enc.len() <= 255);
            let MeshTlv::CredentialChunk { router_id, index, count, data } = MeshTlv::decode(&enc).unwrap()
            else {
                panic!()
            };
            done = r.add(7, router_id, index, count, data);
        }
        assert_eq!(done.unwrap(), cred);
        let req = MeshTlv::CredentialRequest { router_id: rid };
        assert_eq!(MeshTlv::decode(&req.encode()), Some(req));
        assert_eq!(MeshTlv::decode(&[9, 1, 2]), None);
        assert_eq!(MeshTlv::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 5, 3, 1]), None, "index beyond count");
        assert_eq!(MeshTlv::decode(&[]), None);
    }
}
