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
        })
    }

    /// `weft nodes`: every node we know, with its credential.
    pub fn nodes(&self) -> Value {
        let list: Vec<Value> = self
            .known()
            .nodes
            .iter()
            .map(|(rid, k)| {
                let (status, name, key, prefixes, expires, address) = match (&k.verdict, &k.credential) {
                    (Ok(v), c) => (
                        "valid".to_string(),
                        v.name.clone(),
                        v.public_key.to_string(),
                        v.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        c.as_ref().map(|c| iso8601(c.body().not_after)),
                        v.mesh_address.map(|a| a.to_string()),
                    ),
                    (Err(e), Some(c)) => (
                        e.to_string(),
                        Some(c.body().name.clone()),
                        c.public_key().to_string(),
                        c.body().prefixes.iter().map(|p| p.to_string()).collect(),
                        Some(iso8601(c.body().not_after)),
                        None,
                    ),
                    (Err(e), None) => (e.to_string(), None, String::new(), vec![], None, None),
                };
                json!({
                    "router_id": rid.to_string(),
                    "name": name,
                    "public_key": key,
                    "status": status,
                    "expires": expires,
                    "prefixes": prefixes.join(","),
                    "address": address,
                    "self": *rid == self.identity().router_id,
                })
            })
            .collect();
        json!({ "nodes": list })
    }
}
