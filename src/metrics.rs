//! Prometheus text exposition (format 0.0.4) of a snapshot of the daemon's
//! state: `weft metrics` prints it, and the daemon writes it for
//! node-exporter's textfile collector. Pure: the daemon gathers the
//! [`Snapshot`] (daemon::publish), this module only formats it.
//!
//! Names follow the OpenWrt collectors' style (`<subsystem>_<what>_<unit>`,
//! counters end in `_total`). Every family is always present, with zero
//! samples where a labelled state has none, so that dashboards and alerts
//! see a stable set of series.

use std::fmt::Write as _;

use crate::trust::{TrustError, VerifiedNode};

/// A Babel neighbour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub dev: String,
    pub address: String,
    /// The peer's credential name on a tunnel; empty on plain Babel links.
    pub name: String,
    /// The link cost (65535: unreachable).
    pub cost: u16,
}

/// One WireGuard tunnel to a neighbour, as its backend counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The peer's name (its credential's).
    pub peer: String,
    /// The tunnel interface: there may be two tunnels to one peer.
    pub dev: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Unix seconds of the latest handshake; `None`: none yet.
    pub latest_handshake: Option<u64>,
}

/// How many known nodes are in each credential state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub valid: u64,
    pub expired: u64,
    pub not_yet_valid: u64,
    pub revoked: u64,
    /// Unknown CA, bad signature, malformed, not authorised, ...
    pub untrusted: u64,
}

impl NodeCounts {
    /// Counts the verdicts of a known-node table.
    pub fn of<'a>(verdicts: impl IntoIterator<Item = &'a Result<VerifiedNode, TrustError>>) -> NodeCounts {
        let mut c = NodeCounts::default();
        for v in verdicts {
            let slot = match v {
                Ok(_) => &mut c.valid,
                Err(TrustError::Expired { .. }) => &mut c.expired,
                Err(TrustError::NotYetValid { .. }) => &mut c.not_yet_valid,
                Err(TrustError::Revoked { .. }) => &mut c.revoked,
                Err(_) => &mut c.untrusted,
            };
            *slot += 1;
        }
        c
    }
}

/// Routes by state (one per route entry of the Babel table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// Selected, in the kernel.
    pub installed: u64,
    /// Feasible, not selected.
    pub feasible: u64,
    pub unfeasible: u64,
    /// Prefixes this node announces.
    pub local: u64,
}

/// Everything the exposition shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub version: String,
    pub neighbours: Vec<Neighbour>,
    pub routes: RouteCounts,
    pub nodes: NodeCounts,
    /// Babel updates the credential filter refused since start.
    pub refused_announcements: u64,
    /// Routes refused now: origin known, prefix not granted.
    pub refused_not_granted: u64,
    /// Routes held back now: the origin's credential is not known (yet).
    pub refused_unknown_origin: u64,
    pub tunnels: Vec<Tunnel>,
    /// Control traffic (Babel and neighbour discovery) payload bytes.
    pub control_bytes_in: u64,
    pub control_bytes_out: u64,
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.0, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// The text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::new());
    o.family("weft_build_info", "gauge", "The running weft's version (always 1).");
    o.sample("weft_build_info", &[("version", &s.version)], 1);

    o.family("weft_neighbour_cost", "gauge", "Babel link cost to each neighbour (65535: unreachable).");
    for n in &s.neighbours {
        o.sample(
            "weft_neighbour_cost",
            &[("dev", &n.dev), ("address", &n.address), ("name", &n.name)],
            u64::from(n.cost),
        );
    }

    o.family("weft_routes", "gauge", "Babel routes by state (local: prefixes this node announces).");
    let r = &s.routes;
    for (state, v) in [
        ("installed", r.installed),
        ("feasible", r.feasible),
        ("unfeasible", r.unfeasible),
        ("local", r.local),
    ] {
        o.sample("weft_routes", &[("state", state)], v);
    }

    o.family("weft_nodes", "gauge", "Known mesh nodes by credential state.");
    let n = &s.nodes;
    for (state, v) in [
        ("valid", n.valid),
        ("expired", n.expired),
        ("not_yet_valid", n.not_yet_valid),
        ("revoked", n.revoked),
        ("untrusted", n.untrusted),
    ] {
        o.sample("weft_nodes", &[("state", state)], v);
    }

    o.family(
        "weft_refused_announcements_total",
        "counter",
        "Babel updates over tunnels refused by the credential filter (origin unknown or prefix not granted).",
    );
    o.sample("weft_refused_announcements_total", &[], s.refused_announcements);

    o.family(
        "weft_refused_routes",
        "gauge",
        "Routes learned over tunnels that are refused now, by reason (distinct origin and prefix pairs).",
    );
    o.sample("weft_refused_routes", &[("reason", "not_granted")], s.refused_not_granted);
    o.sample("weft_refused_routes", &[("reason", "unknown_origin")], s.refused_unknown_origin);

    o.family("weft_tunnel_received_bytes_total", "counter", "Bytes received through each WireGuard tunnel.");
    for t in &s.tunnels {
        o.sample("weft_tunnel_received_bytes_total", &[("peer", &t.peer), ("dev", &t.dev)], t.rx_bytes);
    }
    o.family("weft_tunnel_sent_bytes_total", "counter", "Bytes sent through each WireGuard tunnel.");
    for t in &s.tunnels {
        o.sample("weft_tunnel_sent_bytes_total", &[("peer", &t.peer), ("dev", &t.dev)], t.tx_bytes);
    }
    o.family(
        "weft_latest_handshake_seconds",
        "gauge",
        "Unix time of each tunnel's latest WireGuard handshake (0: none yet).",
    );
    for t in &s.tunnels {
        o.sample(
            "weft_latest_handshake_seconds",
            &[("peer", &t.peer), ("dev", &t.dev)],
            t.latest_handshake.unwrap_or(0),
        );
    }

    o.family(
        "weft_control_bytes_total",
        "counter",
        "Control traffic (Babel and neighbour discovery) payload bytes, by direction.",
    );
    o.sample("weft_control_bytes_total", &[("dir", "in")], s.control_bytes_in);
    o.sample("weft_control_bytes_total", &[("dir", "out")], s.control_bytes_out);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{CaKeyId, PublicKey};

    fn sample() -> Snapshot {
        Snapshot {
            version: "0.1.0".into(),
            neighbours: vec![
                Neighbour {
                    dev: "weft0a0b0c-3".into(),
                    address: "fe80::1".into(),
                    name: "node2".into(),
                    cost: 96,
                },
                Neighbour { dev: "eth1".into(), address: "fe80::2".into(), name: String::new(), cost: 65535 },
            ],
            routes: RouteCounts { installed: 3, feasible: 1, unfeasible: 0, local: 2 },
            nodes: NodeCounts { valid: 3, revoked: 1, ..NodeCounts::default() },
            refused_announcements: 7,
            refused_not_granted: 1,
            refused_unknown_origin: 0,
            tunnels: vec![Tunnel {
                peer: "node2".into(),
                dev: "weft0a0b0c-3".into(),
                rx_bytes: 1234,
                tx_bytes: 99,
                latest_handshake: Some(1_700_000_000),
            }],
            control_bytes_in: 5000,
            control_bytes_out: 4000,
        }
    }

    #[test]
    fn exposition_lines() {
        let text = render(&sample());
        for line in [
            "weft_build_info{version=\"0.1.0\"} 1",
            "weft_neighbour_cost{dev=\"weft0a0b0c-3\",address=\"fe80::1\",name=\"node2\"} 96",
            "weft_neighbour_cost{dev=\"eth1\",address=\"fe80::2\",name=\"\"} 65535",
            "weft_routes{state=\"installed\"} 3",
            "weft_routes{state=\"local\"} 2",
            "weft_nodes{state=\"valid\"} 3",
            "weft_nodes{state=\"revoked\"} 1",
            "weft_nodes{state=\"expired\"} 0",
            "weft_refused_announcements_total 7",
            "weft_refused_routes{reason=\"not_granted\"} 1",
            "weft_tunnel_received_bytes_total{peer=\"node2\",dev=\"weft0a0b0c-3\"} 1234",
            "weft_tunnel_sent_bytes_total{peer=\"node2\",dev=\"weft0a0b0c-3\"} 99",
            "weft_latest_handshake_seconds{peer=\"node2\",dev=\"weft0a0b0c-3\"} 1700000000",
            "weft_control_bytes_total{dir=\"in\"} 5000",
            "weft_control_bytes_total{dir=\"out\"} 4000",
            "# TYPE weft_tunnel_sent_bytes_total counter",
            "# TYPE weft_routes gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(text.ends_with('\n'));
        // Each family's HELP and TYPE come once, before its samples.
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = l.split(' ').nth(2).unwrap();
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
            let first_sample = text.lines().position(|x| x.starts_with(name) && !x.starts_with('#'));
            let type_at = text.lines().position(|x| x == l).unwrap();
            assert!(first_sample.is_none_or(|s| s > type_at), "{name}: sample before TYPE");
        }
    }

    #[test]
    fn every_family_is_present_without_a_mesh() {
        let text = render(&Snapshot { version: "0.1.0".into(), ..Snapshot::default() });
        for name in [
            "weft_build_info",
            "weft_neighbour_cost",
            "weft_routes",
            "weft_nodes",
            "weft_refused_announcements_total",
            "weft_refused_routes",
            "weft_tunnel_received_bytes_total",
            "weft_tunnel_sent_bytes_total",
            "weft_latest_handshake_seconds",
            "weft_control_bytes_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(
            text.contains("weft_latest_handshake_seconds")
                && !text.contains("weft_latest_handshake_seconds{")
        );
        assert!(text.contains("weft_nodes{state=\"untrusted\"} 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = sample();
        s.tunnels[0].peer = "a \"quoted\" \\ name\nx".into();
        let text = render(&s);
        assert!(
            text.contains("weft_tunnel_sent_bytes_total{peer=\"a \\\"quoted\\\" \\\\ name\\nx\",dev="),
            "{text}"
        );
        assert!(text.lines().all(|l| !l.is_empty()));
    }

    #[test]
    fn verdicts_are_counted_by_state() {
        let ok = VerifiedNode {
            public_key: PublicKey([1; 32]),
            router_id: crate::babel::RouterId([1; 8]),
            name: None,
            prefixes: vec![],
            groups: vec![],
            mesh_address: None,
            transport_address: None,
            authority: crate::trust::Authority::AllowList,
            signing_key: None,
        };
        let v = [
            Ok(ok),
            Err(TrustError::Expired { not_after: 1, now: 2 }),
            Err(TrustError::Revoked { by: CaKeyId([0; 8]) }),
            Err(TrustError::Revoked { by: CaKeyId([1; 8]) }),
            Err(TrustError::UnknownCa(CaKeyId([2; 8]))),
            Err(TrustError::NotYetValid { not_before: 5, now: 1 }),
        ];
        assert_eq!(
            NodeCounts::of(&v),
            NodeCounts { valid: 1, expired: 1, not_yet_valid: 1, revoked: 2, untrusted: 1 }
        );
    }
}
