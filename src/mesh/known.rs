//! The known-node table: every node's credential we have seen (our own, our
//! neighbours', and distant origins' received in TLV 224), with the trust
//! store's verdict on it. The route filter is built from its valid entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::babel::RouterId;
use crate::trust::{derive, Credential, PublicKey, TrustError, TrustStore, VerifiedNode};

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
    pub fn learn_allowed(&mut self, store: &TrustStore, key: &PublicKey) {
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
