//! What the link manager asks of the trust layer, answered from our private
//! key and the trust store: handshake MACs keyed by the pair's X25519 shared
//! secret, and verdicts on the credentials neighbours present.

use std::collections::HashMap;

use ed25519_compact::sha512::Hash as Sha512;

use crate::link::wire::MAC_LEN;
use crate::link::{Authorised, LinkAuth};
use crate::trust::{Credential, NodePrivateKey, PublicKey, TrustError, TrustStore};

const LINK_MAC_CONTEXT: &[u8] = b"weft link handshake v1";

/// HMAC-SHA-512 (RFC 2104), truncated by the caller.
pub(crate) fn hmac_sha512(key: &[u8], data: &[&[u8]]) -> [u8; 64] {
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

/// Our key, the trust store, and what they have computed so far.
pub struct TrustContext {
    pub key: NodePrivateKey,
    pub store: TrustStore,
    /// X25519 secrets by peer key (`None`: a low-order key).
    secrets: HashMap<PublicKey, Option<[u8; 32]>>,
    /// Credentials that passed [`LinkAuth::authorise`], in the order seen,
    /// for the known-node table (drained by the core after every input).
    verified: Vec<Vec<u8>>,
}

/// Secrets kept for at most this many peers (each costs an X25519 to redo).
const MAX_SECRETS: usize = 512;

impl TrustContext {
    pub fn new(key: NodePrivateKey, store: TrustStore) -> TrustContext {
        TrustContext { key, store, secrets: HashMap::new(), verified: Vec::new() }
    }

    /// Trust material changed: verdicts and secrets are computed afresh.
    pub fn replace_store(&mut self, store: TrustStore) {
        self.store = store;
        self.secrets.clear();
    }

    /// The credentials verified since the last call.
    pub fn take_verified(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.verified)
    }
}

impl LinkAuth for TrustContext {
    fn mac(&mut self, peer: &PublicKey, data: &[u8]) -> [u8; MAC_LEN] {
        if self.secrets.len() >= MAX_SECRETS && !self.secrets.contains_key(peer) {
            self.secrets.clear();
        }
        let key = &self.key;
        let secret = *self.secrets.entry(*peer).or_insert_with(|| key.shared_secret(peer));
        let mut out = [0u8; MAC_LEN];
        // A low-order key gives no secret: produce a MAC nobody can match.
        let Some(secret) = secret else { return out };
        out.copy_from_slice(&hmac_sha512(&secret, &[LINK_MAC_CONTEXT, data])[..MAC_LEN]);
        out
    }

    fn authorise(
        &mut self,
        key: &PublicKey,
        credential: &[u8],
        now_unix: u64,
    ) -> Result<Authorised, TrustError> {
        let cred = if credential.is_empty() {
            None
        } else {
            Some(Credential::from_bytes(credential).map_err(TrustError::Malformed)?)
        };
        let v = self.store.authorise_peer(key, cred.as_ref(), now_unix)?;
        // Bounded: beacons repeat; the core drains this after every input.
        if cred.is_some() && self.verified.len() < 64 && !self.verified.iter().any(|b| b == credential) {
            self.verified.push(credential.to_vec());
        }
        Ok(Authorised {
            name: v.name.clone().unwrap_or_else(|| key.to_string()),
            expires_unix: v.recheck_at(),
        })
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
        let (a, b, c) = (
            NodePrivateKey::from_random([1; 32]),
            NodePrivateKey::from_random([2; 32]),
            NodePrivateKey::from_random([3; 32]),
        );
        let (pa, pb) = (a.public_key(), b.public_key());
        let mut auth_a = TrustContext::new(a, TrustStore::new());
        let mut auth_b = TrustContext::new(b, TrustStore::new());
        let mut auth_c = TrustContext::new(c, TrustStore::new());
        let m = auth_a.mac(&pb, b"offer");
        assert_eq!(m, auth_b.mac(&pa, b"offer"));
        assert_ne!(m, auth_c.mac(&pa, b"offer"));
        assert_ne!(m, auth_a.mac(&pb, b"offer!"));
        // A low-order key (all zeros) gives no usable secret.
        assert_eq!(auth_a.mac(&PublicKey([0; 32]), b"x"), [0; 16]);
    }
}
