//! What `weft status`, `weft neighbours` and `weft nodes` show of the mesh
//! core, as JSON (pure: built from the core's state and the engine's routes).

use serde_json::{json, Value};

use super::{MeshCore, RouteVerdict};
use crate::babel::engine::RouteView;
use crate::link::TunnelSpec;
use crate::trust::time::iso8601;

/// A neighbour's credential expiry as shown to users: the link manager keeps
/// the second its verdict lapses (`not_after + 1`, the window is inclusive);
/// users compare with the credential's `not_after` (`weft cert show`).
fn credential_expiry_text(lapses_at: u64) -> String {
    iso8601(lapses_at.saturating_sub(1))
}

impl MeshCore {
    /// Routes learned over tunnels whose origin's credential is not known
    /// (held back, requested).
    pub fn routes_pending_credential(&self, routes: &[RouteView]) -> usize {
        let mut pending = std::collections::BTreeSet::new();
        for r in routes.iter().filter(|r| self.filter().is_tunnel(r.ifindex)) {
            if self.filter().judge(&r.prefix, &r.router_id) == RouteVerdict::UnknownOrigin {
                pending.insert((r.router_id, r.prefix));
            }
        }
        pending.len()
    }

    /// The `trust` object of `weft status`.
    pub fn status(&self, routes: &[RouteView]) -> Value {
        let link_neighbours: Vec<Value> = self
            .link()
            .neighbours()
            .into_iter()
            .map(|n| {
                json!({
                    "name": n.name,
                    "public_key": n.key.to_string(),
                    "scope": format!("{:?}", n.scope),
                    "verified": n.verified,
                    "credential_expires": n.expires_unix.map(credential_expiry_text),
                    "tunnel": n.tunnel,
                })
            })
            .collect();
        let id = self.identity();
        json!({
            "public_key": id.public.to_string(),
            "mesh_address": self.mesh_address().map(|a| a.to_string()),
            "credential": id.credential.as_ref().map(|c| json!({
                "name": c.body().name,
                "expires": iso8601(c.body().not_after),
            })),
            "link_neighbours": link_neighbours,
            "refused_announcements": self.refused_announcements(),
            "routes_pending_credential": self.routes_pending_credential(routes),
            "known_nodes": self.known().nodes.len(),
            "mesh": self.stats(),
            "link": self.link().stats(),
            "crypto": self.crypto(),
            "clock": self.clock_status(),
            "origin": self.origin_status(),
        })
    }

    /// Origin-signed announcements: our key, whether our credential
    /// carries it (without it neighbours take our routes unsigned), and how
    /// many origins' sets we hold.
    pub fn origin_status(&self) -> Value {
        let ours = self.signing_public();
        let in_credential = self.identity().credential.as_ref().and_then(|c| c.body().signing_key);
        json!({
            "signatures": if self.origin_signatures_on() { "require" } else { "off" },
            "signing_key": crate::base64::encode(&ours),
            "credential_signing_key": match in_credential {
                None => "absent",
                Some(k) if k == ours => "ours",
                Some(_) => "mismatch",
            },
            "verified_origins": self.verified_origins(),
        })
    }

    /// What the core makes of the wall clock (see [`super::clock`]).
    pub fn clock_status(&self) -> Value {
        let c = self.clock();
        let at = c.trust_time();
        json!({
            "state": c.state(),
            "wall": iso8601(c.wall()),
            "floor": iso8601(c.floor()),
            "expiry_judged_at": iso8601(at.expiry_at),
            "not_before_checked": at.not_before_at.is_some(),
        })
    }

    /// Extra fields for a `weft neighbours` row on the tunnel `spec`.
    pub fn tunnel_info(&self, ifname: &str, spec: &TunnelSpec) -> Value {
        let expires = self
            .link()
            .neighbours()
            .into_iter()
            .find(|n| n.key == spec.peer_key)
            .and_then(|n| n.expires_unix);
        json!({
            "name": spec.peer_name,
            "public_key": spec.peer_key.to_string(),
            "credential_expires": expires.map(credential_expiry_text),
            "tunnel": format!("{} up, endpoint {}", ifname, spec.endpoint),
            "endpoint": spec.endpoint.to_string(),
        })
    }

    /// `weft nodes`: every node we know, with its credential.
    pub fn nodes(&self) -> Value {
        let tunnels = self.link().tunnels();
        let list: Vec<Value> = self
            .known()
            .nodes
            .iter()
            .map(|(rid, k)| {
                let (status, name, key, prefixes, groups, expires, address) =
                    match (&k.verdict, &k.credential) {
                        (Ok(v), c) => (
                            "valid".to_string(),
                            v.name.clone(),
                            Some(v.public_key),
                            v.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                            v.groups.clone(),
                            c.as_ref().map(|c| iso8601(c.body().not_after)),
                            v.mesh_address.map(|a| a.to_string()),
                        ),
                        (Err(e), Some(c)) => (
                            e.to_string(),
                            Some(c.body().name.clone()),
                            Some(*c.public_key()),
                            c.body().prefixes.iter().map(|p| p.to_string()).collect(),
                            c.body().groups.clone(),
                            Some(iso8601(c.body().not_after)),
                            None,
                        ),
                        (Err(e), None) => (e.to_string(), None, None, vec![], vec![], None, None),
                    };
                // The tunnel(s) to this node when it is a direct neighbour.
                let to_it: Vec<&str> =
                    tunnels.iter().filter(|t| Some(t.peer_key) == key).map(|t| t.name.as_str()).collect();
                json!({
                    "router_id": rid.to_string(),
                    "name": name,
                    "public_key": key.map(|k| k.to_string()).unwrap_or_default(),
                    "status": status,
                    "expires": expires,
                    "prefixes": prefixes.join(","),
                    "groups": groups.join(","),
                    "tunnel": (!to_it.is_empty()).then(|| to_it.join(",")),
                    "address": address,
                    // The seqno of its verified announcement set (origin
                    // signatures), if we hold one.
                    "signed_seqno": self.verified_seqno(rid).map(|s| s.0),
                    "self": *rid == self.identity().router_id,
                })
            })
            .collect();
        json!({ "nodes": list })
    }
}
