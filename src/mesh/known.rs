//! The known-node table: every node's credential we have seen (our own, our
//! neighbours', and distant origins' received in TLV 224), with the trust
//! store's verdict on it. The route filter is built from its valid entries.
//!
//! A verdict has two parts: the signature part (CA, signature, revocation),
//! checked once per credential and again when the trust material changes,
//! and the validity window, checked cheaply as time passes. Of two valid
//! credentials of one node the newer (by not-before, the issue time) is
//! kept, and an older one never replaces it: a CA that narrows a node's
//! grants is not undone by a replay of the old credential.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::babel::RouterId;
use crate::trust::{
    check_window, derive, Credential, PublicKey, TrustError, TrustStore, TrustTime, VerifiedNode,
};

/// Everything we know about a node, by router-id.
#[derive(Clone, Debug)]
pub struct KnownNode {
    pub credential: Option<Credential>,
    /// The verdict without the validity window (CA, signature, revocation;
    /// or the allow-list).
    pub signed: Result<VerifiedNode, TrustError>,
    /// The whole verdict at the last check.
    pub verdict: Result<VerifiedNode, TrustError>,
}

impl KnownNode {
    fn judge(&self, at: TrustTime) -> Result<VerifiedNode, TrustError> {
        let v = self.signed.as_ref().map_err(Clone::clone)?;
        if let Some(c) = &self.credential {
            check_window(c.body(), at)?;
        }
        Ok(v.clone())
    }

    /// The issue time (not-before) of a credential whose signature holds.
    fn issued(&self) -> Option<u64> {
        match (&self.signed, &self.credential) {
            (Ok(_), Some(c)) => Some(c.body().not_before),
            _ => None,
        }
    }
}

/// What [`KnownNodes::learn`] made of a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// Taken: the verdict on the node may have changed. Carries the
    /// credential's not-before if its signature holds (a CA-signed time).
    Taken { signed_time: Option<u64> },
    /// The very credential held already.
    Same,
    /// Not taken: it does not parse or belong to the router-id, its
    /// signature fails while a good one is held, or it is older than the
    /// one held.
    Refused,
}

/// What each valid origin may announce, by router-id: the route filter's
/// view of the known-node table. Values are shared, so that a new snapshot
/// after one node's change costs pointer copies, not credential copies.
/// Sorted by router-id (a sorted vector, as `origin::Sets`: a map type of
/// its own would cost kilobytes of flash).
#[derive(Clone, Debug, Default)]
pub struct Grants(Vec<(RouterId, Arc<VerifiedNode>)>);

impl Grants {
    pub fn get(&self, rid: &RouterId) -> Option<&VerifiedNode> {
        super::origin::find(&self.0, rid, |e| e.0).ok().map(|i| &*self.0[i].1)
    }

    pub fn values(&self) -> impl Iterator<Item = &VerifiedNode> {
        self.0.iter().map(|e| &*e.1)
    }

    /// Sets or removes one node's entry.
    fn set(&mut self, rid: RouterId, node: Option<Arc<VerifiedNode>>) {
        match (super::origin::find(&self.0, &rid, |e| e.0), node) {
            (Ok(i), Some(n)) => self.0[i].1 = n,
            (Ok(i), None) => {
                self.0.remove(i);
            }
            (Err(i), Some(n)) => self.0.insert(i, (rid, n)),
            (Err(_), None) => {}
        }
    }
}

impl FromIterator<(RouterId, VerifiedNode)> for Grants {
    /// Any order; a router-id given twice keeps the last.
    fn from_iter<I: IntoIterator<Item = (RouterId, VerifiedNode)>>(iter: I) -> Grants {
        let mut g = Grants::default();
        for (r, v) in iter {
            g.set(r, Some(Arc::new(v)));
        }
        g
    }
}

/// Whose verdicts changed since the filter last looked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantChanges {
    /// Every node's (the trust material changed).
    pub all: bool,
    /// These nodes', sorted.
    pub nodes: Vec<RouterId>,
}

#[derive(Default)]
pub struct KnownNodes {
    pub nodes: BTreeMap<RouterId, KnownNode>,
    /// Credential signatures checked.
    pub signature_checks: u64,
    grants: Arc<Grants>,
    changes: GrantChanges,
}

/// Most credentials kept (a mesh of a few thousand nodes at most).
const MAX_KNOWN: usize = 8192;

impl KnownNodes {
    /// Records a credential received for `router_id`. It must belong to that
    /// router-id (derived from its key), or it is dropped.
    pub fn learn(&mut self, store: &TrustStore, router_id: RouterId, bytes: &[u8], at: TrustTime) -> Learned {
        let Ok(cred) = Credential::from_bytes(bytes) else { return Learned::Refused };
        if derive::router_id(cred.public_key()) != router_id {
            return Learned::Refused;
        }
        let held = self.nodes.get(&router_id);
        if held.and_then(|k| k.credential.as_ref()).is_some_and(|c| c.to_bytes() == bytes) {
            return Learned::Same;
        }
        // Older than a credential whose signature holds: not even checked.
        let held_issued = held.and_then(KnownNode::issued);
        if held_issued.is_some_and(|t| cred.body().not_before <= t) {
            return Learned::Refused;
        }
        self.signature_checks += 1;
        let signed = store.verify_signature(&cred);
        if signed.is_err() && held.is_some_and(|k| k.signed.is_ok()) {
            return Learned::Refused;
        }
        if self.nodes.len() >= MAX_KNOWN && !self.nodes.contains_key(&router_id) {
            // Drop one invalid entry, else refuse: valid nodes are never evicted.
            let bad = self.nodes.iter().find(|(_, k)| k.verdict.is_err()).map(|(r, _)| *r);
            match bad {
                Some(r) => {
                    self.nodes.remove(&r);
                    self.changes.nodes.push(r);
                }
                None => return Learned::Refused,
            }
        }
        let signed_time = signed.is_ok().then_some(cred.body().not_before);
        let mut node = KnownNode { credential: Some(cred), signed: signed.clone(), verdict: signed };
        node.verdict = node.judge(at);
        self.nodes.insert(router_id, node);
        self.changes.nodes.push(router_id);
        Learned::Taken { signed_time }
    }

    /// Records a node vouched for by the allow-list (no credential).
    pub fn learn_allowed(&mut self, store: &TrustStore, key: &PublicKey) {
        let rid = derive::router_id(key);
        if self.nodes.get(&rid).is_some_and(|k| k.credential.is_some() && k.verdict.is_ok()) {
            return;
        }
        if let Ok(v) = store.verify_allow_listed(key) {
            self.nodes.insert(rid, KnownNode { credential: None, signed: Ok(v.clone()), verdict: Ok(v) });
            self.changes.nodes.push(rid);
        }
    }

    /// Trust material changed: every signature verdict is reached again.
    pub fn recheck_signatures(&mut self, store: &TrustStore, at: TrustTime) {
        for k in self.nodes.values_mut() {
            k.signed = match &k.credential {
                Some(c) => {
                    self.signature_checks += 1;
                    store.verify_signature(c)
                }
                None => match &k.signed {
                    Ok(v) => store.verify_allow_listed(&v.public_key),
                    Err(e) => Err(e.clone()),
                },
            };
            k.verdict = k.judge(at);
        }
        self.changes.all = true;
    }

    /// Time passed (or the clock's judgement changed): windows are checked
    /// again, and nodes that entered or left theirs are recorded as
    /// changed. No signature is checked.
    pub fn recheck_times(&mut self, at: TrustTime) {
        // Once a second on every node over every known node: a verdict that
        // stays valid is not copied again.
        for (r, k) in self.nodes.iter_mut() {
            let (Ok(_), Some(c)) = (&k.signed, &k.credential) else { continue };
            match (check_window(c.body(), at), k.verdict.is_ok()) {
                (Ok(()), true) => {}
                // Still outside its window: the reason's time moves on.
                (Err(e), false) => k.verdict = Err(e),
                _ => {
                    k.verdict = k.judge(at);
                    self.changes.nodes.push(*r);
                }
            }
        }
    }

    pub fn credential_bytes(&self, rid: &RouterId) -> Option<&[u8]> {
        self.nodes.get(rid)?.credential.as_ref().map(|c| c.to_bytes())
    }

    /// The node's verdict without the window, if `credential` is the one
    /// held for `key` and its signature holds.
    pub fn known_good(&self, key: &PublicKey, credential: &[u8]) -> Option<&VerifiedNode> {
        let k = self.nodes.get(&derive::router_id(key))?;
        let held = k.credential.as_ref()?;
        (held.to_bytes() == credential && held.public_key() == key).then_some(k.signed.as_ref().ok()?)
    }

    /// Whether verdicts changed since [`KnownNodes::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.changes.all || !self.changes.nodes.is_empty()
    }

    /// Brings the grants snapshot up to date and says whose verdicts
    /// changed since the last call.
    pub fn take_changes(&mut self) -> GrantChanges {
        let mut c = std::mem::take(&mut self.changes);
        let valid = |k: &KnownNode| k.verdict.as_ref().ok().map(|v| Arc::new(v.clone()));
        if c.all {
            c.nodes.clear();
            // In router-id order already.
            self.grants =
                Arc::new(Grants(self.nodes.iter().filter_map(|(r, k)| valid(k).map(|v| (*r, v))).collect()));
            return c;
        }
        c.nodes.sort();
        c.nodes.dedup();
        if c.nodes.is_empty() {
            return c;
        }
        let grants = Arc::make_mut(&mut self.grants);
        for r in &c.nodes {
            grants.set(*r, self.nodes.get(r).and_then(valid));
        }
        c
    }

    /// What each valid origin may announce, as of the last
    /// [`KnownNodes::take_changes`].
    pub fn grants(&self) -> Arc<Grants> {
        self.grants.clone()
    }
}
