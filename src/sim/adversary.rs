//! Misbehaving insiders in the mesh simulator: members with a valid
//! credential and working tunnels that lie in Babel or drop what they
//! should forward. Described in the scenario JSON, so that an attack is
//! reproducible and rootless:
//!
//! ```json
//! {"links": [...], "credentials": true,
//!  "adversaries": [{"node": "m", "kind": "spoof_origin", "victim": "v"},
//!                  {"node": "x", "kind": "unauthorised_prefix", "victim": "v"},
//!                  {"node": "b", "kind": "blackhole", "start_s": 30}]}
//! ```
//!
//! - `spoof_origin`: every update interval, announces the victim's node
//!   address and granted prefixes under the victim's router-id, with a seqno
//!   1000 ahead of the victim's and metric 0 (what a member can do today:
//!   router-ids are public, and the route filter checks the grant of the
//!   router-id written in the Update, not who wrote it).
//! - `unauthorised_prefix`: originates `prefix` under its own router-id;
//!   default: the upper half of the victim's granted /24, which longest match
//!   prefers.
//! - `replay`: at `capture_s` (default 10 s) records the victim's seqno and
//!   asks the victim (a seqno request through the mesh, as any member may)
//!   for a newer one; from `start_s`, re-sends the victim's announcements at
//!   the recorded, now older, seqno with metric 0, every update interval.
//!   Babel's seqno order refuses them already; a replay that wins needs the
//!   16-bit seqno to wrap, which origin signatures' epoch is for.
//! - `blackhole`: routes honestly and drops whatever it should forward;
//!   no signature can prevent it, the report counts it.
//!
//! Every adversary acts from `start_s` (default 60 s).

use serde_json::Value;

use super::topology::Topology;
use crate::babel::Prefix;

pub const DEFAULT_START_MS: u64 = 60_000;
pub const DEFAULT_CAPTURE_MS: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdversaryKind {
    SpoofOrigin { victim: usize },
    UnauthorisedPrefix { prefix: Prefix },
    Replay { victim: usize, capture_ms: u64 },
    Blackhole,
}

impl AdversaryKind {
    /// The node whose announcements it fakes, if any.
    pub fn victim(&self) -> Option<usize> {
        match *self {
            AdversaryKind::SpoofOrigin { victim } | AdversaryKind::Replay { victim, .. } => Some(victim),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AdversaryKind::SpoofOrigin { .. } => "spoof_origin",
            AdversaryKind::UnauthorisedPrefix { .. } => "unauthorised_prefix",
            AdversaryKind::Replay { .. } => "replay",
            AdversaryKind::Blackhole => "blackhole",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adversary {
    pub node: usize,
    pub kind: AdversaryKind,
    pub start_ms: u64,
}

/// The /24 that `credentials: true` grants node `i`: 10.(i/256).(i%256).0/24.
pub fn granted_prefix(i: usize) -> Prefix {
    let a = std::net::Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, 0);
    Prefix::V4(a, 24)
}

/// The upper half of node `i`'s granted /24.
fn upper_half(i: usize) -> Prefix {
    let a = std::net::Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, 128);
    Prefix::V4(a, 25)
}

/// Reads the `adversaries` array of a scenario.
pub fn parse(v: &Value, topo: &Topology) -> Result<Vec<Adversary>, String> {
    let Some(list) = v.get("adversaries") else {
        return Ok(Vec::new());
    };
    let list = list.as_array().ok_or("\"adversaries\" must be an array")?;
    let mut out = Vec::new();
    for (k, a) in list.iter().enumerate() {
        let at = |what: &str| format!("adversaries[{k}].{what}");
        let a = a.as_object().ok_or_else(|| format!("adversaries[{k}] must be an object"))?;
        let node_of = |key: &str| -> Result<usize, String> {
            let name = a.get(key).and_then(Value::as_str).ok_or_else(|| format!("{} is missing", at(key)))?;
            topo.index_of(name).ok_or_else(|| format!("{}: {name:?} is not a node of the topology", at(key)))
        };
        let node = node_of("node")?;
        let start_ms = match a.get("start_s") {
            None => DEFAULT_START_MS,
            Some(s) => s.as_u64().ok_or_else(|| format!("{} must be whole seconds", at("start_s")))? * 1000,
        };
        let kind = match a.get("kind").and_then(Value::as_str) {
            Some("spoof_origin") => {
                let victim = node_of("victim")?;
                if victim == node {
                    return Err(format!("{}: a node cannot spoof itself", at("victim")));
                }
                AdversaryKind::SpoofOrigin { victim }
            }
            Some("unauthorised_prefix") => {
                let prefix = match a.get("prefix") {
                    Some(p) => {
                        let t = p.as_str().ok_or_else(|| format!("{} must be a string", at("prefix")))?;
                        t.parse().map_err(|e| format!("{}: {t:?}: {e}", at("prefix")))?
                    }
                    None => upper_half(node_of("victim")?),
                };
                AdversaryKind::UnauthorisedPrefix { prefix }
            }
            Some("replay") => {
                let victim = node_of("victim")?;
                if victim == node {
                    return Err(format!("{}: a node cannot replay itself", at("victim")));
                }
                let capture_ms = match a.get("capture_s") {
                    None => DEFAULT_CAPTURE_MS,
                    Some(s) => {
                        s.as_u64().ok_or_else(|| format!("{} must be whole seconds", at("capture_s")))? * 1000
                    }
                };
                if capture_ms >= start_ms {
                    return Err(format!("{} must come before start_s", at("capture_s")));
                }
                AdversaryKind::Replay { victim, capture_ms }
            }
            Some("blackhole") => AdversaryKind::Blackhole,
            Some(x) => {
                return Err(format!(
                    "{}: unknown kind {x:?} (spoof_origin, unauthorised_prefix, replay or blackhole)",
                    at("kind")
                ))
            }
            None => return Err(format!("{} is missing", at("kind"))),
        };
        if out.iter().any(|o: &Adversary| o.node == node) {
            return Err(format!("{}: one adversary per node", at("node")));
        }
        out.push(Adversary { node, kind, start_ms });
    }
    Ok(out)
}

/// Where packets from one node to one destination address end up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// At the node that originates the destination.
    Delivered,
    /// At an adversary that is not the destination's origin.
    Hijacked,
    /// Through a blackhole on the way.
    Blackholed,
    /// No route somewhere on the way, or a loop.
    Unreachable,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        Topology::from_json(r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"c"}]}"#).unwrap()
    }

    #[test]
    fn adversaries_parse_with_defaults_and_clear_errors() {
        let v: Value = serde_json::from_str(
            r#"{"adversaries":[{"node":"b","kind":"spoof_origin","victim":"c"},
                                 {"node":"a","kind":"unauthorised_prefix","victim":"c","start_s":5},
                                 {"node":"c","kind":"blackhole"}]}"#,
        )
        .unwrap();
        let a = parse(&v, &topo()).unwrap();
        assert_eq!(
            a[0],
            Adversary { node: 1, kind: AdversaryKind::SpoofOrigin { victim: 2 }, start_ms: 60_000 }
        );
        assert_eq!(a[1].kind, AdversaryKind::UnauthorisedPrefix { prefix: "10.0.2.128/25".parse().unwrap() });
        assert_eq!(a[1].start_ms, 5000);
        assert_eq!(a[2].kind, AdversaryKind::Blackhole);
        let v: Value = serde_json::from_str(
            r#"{"adversaries":[{"node":"a","kind":"replay","victim":"c","start_s":30}]}"#,
        )
        .unwrap();
        let a = parse(&v, &topo()).unwrap();
        assert_eq!(a[0].kind, AdversaryKind::Replay { victim: 2, capture_ms: 10_000 });
        for (bad, want) in [
            (r#"{"adversaries":{}}"#, "must be an array"),
            (r#"{"adversaries":[{"node":"z","kind":"blackhole"}]}"#, "not a node"),
            (r#"{"adversaries":[{"node":"a","kind":"teleport"}]}"#, "unknown kind"),
            (r#"{"adversaries":[{"node":"a","kind":"spoof_origin"}]}"#, "victim is missing"),
            (r#"{"adversaries":[{"node":"a","kind":"spoof_origin","victim":"a"}]}"#, "cannot spoof itself"),
            (
                r#"{"adversaries":[{"node":"a","kind":"unauthorised_prefix","prefix":"10.0.0.0/33"}]}"#,
                "prefix",
            ),
            (r#"{"adversaries":[{"node":"a","kind":"blackhole","start_s":-1}]}"#, "whole seconds"),
            (
                r#"{"adversaries":[{"node":"a","kind":"blackhole"},{"node":"a","kind":"blackhole"}]}"#,
                "one adversary",
            ),
            (
                r#"{"adversaries":[{"node":"a","kind":"replay","victim":"b","capture_s":70}]}"#,
                "before start_s",
            ),
        ] {
            let v: Value = serde_json::from_str(bad).unwrap();
            let e = parse(&v, &topo()).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
