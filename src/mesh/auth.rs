//! What the link manager asks of the trust layer, answered from our private
//! key, the trust store and the known-node table: X25519 shared secrets,
//! and verdicts on the credentials neighbours present. A credential already
//! in the known-node table with a good signature ("known good") is judged
//! without checking its signature again.

use crate::link::{Authorised, LinkAuth};
use crate::trust::{derive, Credential, NodePrivateKey, PublicKey, TrustError, TrustStore, TrustTime};

use super::known::{KnownNodes, Learned};

/// Expensive operations done, for `weft status` and for tests that bound
/// what an attacker can make us compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CryptoCounters {
    /// X25519 shared secrets computed.
    pub x25519: u64,
    /// Credential signatures checked (Ed25519).
    pub signature_checks: u64,
}

/// Our key, the trust store, the known-node table, and what they computed.
pub struct TrustContext {
    pub key: NodePrivateKey,
    pub store: TrustStore,
    pub known: KnownNodes,
    counters: CryptoCounters,
    /// CA-signed times seen by the link layer (credential not-before), for
    /// the time floor; drained by the core after every input.
    signed_times: Vec<u64>,
}

impl TrustContext {
    pub fn new(key: NodePrivateKey, store: TrustStore) -> TrustContext {
        TrustContext {
            key,
            store,
            known: KnownNodes::default(),
            counters: CryptoCounters::default(),
            signed_times: Vec::new(),
        }
    }

    pub fn counters(&self) -> CryptoCounters {
        let mut c = self.counters;
        c.signature_checks += self.known.signature_checks;
        c
    }

    /// Records a credential in the known-node table (see [`KnownNodes::learn`]).
    pub fn learn(&mut self, router_id: crate::babel::RouterId, bytes: &[u8], at: TrustTime) -> Learned {
        let l = self.known.learn(&self.store, router_id, bytes, at);
        if let Learned::Taken { signed_time: Some(t) } = l {
            self.signed_times.push(t);
        }
        l
    }

    /// CA-signed times seen since the last call. (What changed in the
    /// known-node table, it tracks itself.)
    pub fn take_news(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.signed_times)
    }
}

impl LinkAuth for TrustContext {
    fn shared_secret(&mut self, peer: &PublicKey) -> Option<[u8; 32]> {
        if peer.is_low_order() {
            return None;
        }
        self.counters.x25519 += 1;
        self.key.shared_secret(peer)
    }

    fn is_known_good(&self, key: &PublicKey, credential: &[u8]) -> bool {
        !credential.is_empty() && self.known.known_good(key, credential).is_some()
    }

    fn is_newer(&self, new: &[u8], current: &[u8]) -> bool {
        let Ok(new) = Credential::from_bytes(new) else { return false };
        match Credential::from_bytes(current) {
            Ok(cur) => new.body().not_before > cur.body().not_before,
            // An allow-listed neighbour (no credential) showing one.
            Err(_) => true,
        }
    }

    fn authorise(
        &mut self,
        key: &PublicKey,
        credential: &[u8],
        at: TrustTime,
    ) -> Result<Authorised, TrustError> {
        let name = |v: &crate::trust::VerifiedNode| v.name.clone().unwrap_or_else(|| key.to_string());
        if credential.is_empty() {
            let v = self.store.authorise_peer_at(key, None, at)?;
            return Ok(Authorised { name: name(&v), expires_unix: v.recheck_at() });
        }
        let cred = Credential::from_bytes(credential).map_err(TrustError::Malformed)?;
        if let Some(v) = self.known.known_good(key, credential) {
            if crate::trust::check_window(cred.body(), at).is_ok() {
                return Ok(Authorised { name: name(v), expires_unix: v.recheck_at() });
            }
        }
        self.counters.signature_checks += 1;
        let v = self.store.authorise_peer_at(key, Some(&cred), at)?;
        // A neighbour's credential counts for its routes at once, without a
        // TLV 224 exchange (a renewal, too).
        if v.authority != crate::trust::Authority::AllowList {
            self.learn(derive::router_id(key), credential, at);
        }
        Ok(Authorised { name: name(&v), expires_unix: v.recheck_at() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::wire::mac;

    #[test]
    fn shared_secrets_agree_between_the_two_ends_only() {
        let (a, b, c) = (
            NodePrivateKey::from_random([1; 32]),
            NodePrivateKey::from_random([2; 32]),
            NodePrivateKey::from_random([3; 32]),
        );
        let (pa, pb) = (a.public_key(), b.public_key());
        let mut auth_a = TrustContext::new(a, TrustStore::new());
        let mut auth_b = TrustContext::new(b, TrustStore::new());
        let mut auth_c = TrustContext::new(c, TrustStore::new());
        let m = mac(&auth_a.shared_secret(&pb).unwrap(), b"offer");
        assert_eq!(m, mac(&auth_b.shared_secret(&pa).unwrap(), b"offer"));
        assert_ne!(m, mac(&auth_c.shared_secret(&pa).unwrap(), b"offer"));
        // A low-order key gives no secret, and costs no X25519.
        let before = auth_a.counters().x25519;
        assert_eq!(auth_a.shared_secret(&PublicKey([0; 32])), None);
        assert_eq!(auth_a.counters().x25519, before);
    }
}
