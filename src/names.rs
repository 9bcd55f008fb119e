//! Host names for mesh nodes: what the hosts file that dnsmasq reads should
//! say, as a pure function of the known nodes and the time. Writing the
//! file and telling dnsmasq is the daemon's business (daemon::publish).
//!
//! A node's name comes from its CA-signed credential and becomes
//! `<name>.<domain>`, pointing at the node's key-derived mesh address. Only
//! nodes whose verdict holds at `now` are listed; a name that is not a valid
//! DNS name (credential names may hold any printable text) is left out and
//! reported, never rewritten: a rewrite could make two names collide or one
//! name pass for another.

use std::net::Ipv6Addr;

use crate::trust::{Authority, VerifiedNode};

/// Longest DNS name in text form (RFC 1035: 255 octets on the wire).
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// `s` as a DNS name of RFC 1123 labels (letters, digits, inner '-'),
/// lower-cased; `None` if it is not one.
pub fn parse_dns_name(s: &str) -> Option<String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (s.len() <= MAX_NAME_LEN && s.split('.').all(ok_label)).then(|| s.to_ascii_lowercase())
}

/// One line of the hosts file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostEntry {
    /// `<name>.<domain>`, lower-case.
    pub name: String,
    pub address: Ipv6Addr,
}

/// What the hosts file should hold, and the valid nodes left out of it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hosts {
    /// Sorted by name, then address.
    pub entries: Vec<HostEntry>,
    /// Names of valid nodes with a mesh address that are not DNS names.
    pub unusable_names: Vec<String>,
}

/// True if `node`'s verdict holds at `now` (Unix seconds). The table keeps a
/// verdict until the daemon rechecks it, so one that lapsed a moment ago
/// must not be listed meanwhile.
fn valid_at(node: &VerifiedNode, now: u64) -> bool {
    match node.authority {
        Authority::Credential { not_before, not_after, .. } => not_before <= now && now <= not_after,
        Authority::AllowList => true,
    }
}

/// The hosts entries for `nodes` (the verified ones of the known-node
/// table) at `now` in `domain` (already a valid, lower-case DNS name).
/// Nodes without a name (allow-listed keys) or mesh address are skipped.
pub fn hosts<'a>(nodes: impl IntoIterator<Item = &'a VerifiedNode>, now: u64, domain: &str) -> Hosts {
    let mut out = Hosts::default();
    for n in nodes.into_iter().filter(|n| valid_at(n, now)) {
        let (Some(name), Some(address)) = (n.name.as_deref(), n.mesh_address) else { continue };
        match parse_dns_name(&format!("{name}.{domain}")) {
            Some(fqdn) if parse_dns_name(name).is_some() => {
                out.entries.push(HostEntry { name: fqdn, address })
            }
            _ => out.unusable_names.push(name.to_string()),
        }
    }
    out.entries.sort();
    out.entries.dedup();
    out.unusable_names.sort();
    out.unusable_names.dedup();
    out
}

/// The file's text: a comment, then `<address> <name>` lines.
pub fn render(hosts: &Hosts) -> String {
    let mut s = String::from("# Mesh nodes with valid credentials, written by weft: do not edit.\n");
    for e in &hosts.entries {
        s.push_str(&format!("{} {}\n", e.address, e.name));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::RouterId;
    use crate::trust::{CaKeyId, PublicKey};

    fn node(name: Option<&str>, last: u8, window: Option<(u64, u64)>) -> VerifiedNode {
        VerifiedNode {
            public_key: PublicKey([last; 32]),
            router_id: RouterId([last; 8]),
            name: name.map(str::to_string),
            prefixes: Vec::new(),
            groups: Vec::new(),
            mesh_address: Some(Ipv6Addr::new(0xfd42, 0x77, 1, 0, 0, 0, 0, u16::from(last))),
            transport_address: None,
            authority: match window {
                Some((not_before, not_after)) => {
                    Authority::Credential { ca_key_id: CaKeyId([7; 8]), not_before, not_after }
                }
                None => Authority::AllowList,
            },
            signing_key: None,
        }
    }

    #[test]
    fn dns_names_are_checked_and_lower_cased() {
        assert_eq!(parse_dns_name("Mesh").as_deref(), Some("mesh"));
        assert_eq!(parse_dns_name("mesh.example.org").as_deref(), Some("mesh.example.org"));
        assert_eq!(parse_dns_name("node-2").as_deref(), Some("node-2"));
        assert_eq!(parse_dns_name("7").as_deref(), Some("7"));
        for bad in ["", ".", "mesh.", ".mesh", "a..b", "-a", "a-", "node 2", "büro", "a_b", "a/b", "x\n"] {
            assert_eq!(parse_dns_name(bad), None, "{bad:?}");
        }
        assert!(parse_dns_name(&"a".repeat(63)).is_some());
        assert!(parse_dns_name(&"a".repeat(64)).is_none());
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(parse_dns_name(&long).is_none());
        assert!(parse_dns_name(&long[..253]).is_some());
    }

    #[test]
    fn valid_named_nodes_with_addresses_are_listed_sorted() {
        let nodes = [
            node(Some("Node2"), 2, Some((100, 200))),
            node(Some("node1"), 1, Some((100, 200))),
            node(None, 3, None),
            node(Some("sub.node4"), 4, None),
        ];
        let h = hosts(&nodes, 150, "mesh");
        assert_eq!(
            render(&h),
            "# Mesh nodes with valid credentials, written by weft: do not edit.\n\
             fd42:77:1::1 node1.mesh\n\
             fd42:77:1::2 node2.mesh\n\
             fd42:77:1::4 sub.node4.mesh\n"
        );
        assert!(h.unusable_names.is_empty());
        // The same nodes in another order give the same file.
        let mut rev = nodes.clone();
        rev.reverse();
        assert_eq!(hosts(&rev, 150, "mesh"), h);
    }

    #[test]
    fn validity_is_judged_at_now_inclusive() {
        let nodes = [node(Some("n"), 1, Some((100, 200)))];
        assert!(hosts(&nodes, 99, "mesh").entries.is_empty(), "not yet valid");
        assert_eq!(hosts(&nodes, 100, "mesh").entries.len(), 1);
        assert_eq!(hosts(&nodes, 200, "mesh").entries.len(), 1, "not_after is inclusive");
        assert!(hosts(&nodes, 201, "mesh").entries.is_empty(), "expired");
    }

    #[test]
    fn names_that_are_not_dns_names_are_reported_not_rewritten() {
        let mut no_address = node(Some("ghost"), 5, None);
        no_address.mesh_address = None;
        let nodes = [
            node(Some("node 2"), 2, None),
            node(Some("büro"), 3, None),
            node(Some(&"x".repeat(64)), 4, None),
            no_address,
            node(Some("ok"), 1, None),
        ];
        let h = hosts(&nodes, 0, "mesh");
        assert_eq!(
            h.entries,
            [HostEntry { name: "ok.mesh".into(), address: "fd42:77:1::1".parse().unwrap() }]
        );
        assert_eq!(h.unusable_names, ["büro".to_string(), "node 2".into(), "x".repeat(64)]);
        // A name that fits alone but not with the domain.
        let long = vec!["a".repeat(63); 3].join(".") + "." + &"b".repeat(50);
        assert_eq!(long.len(), 242);
        assert!(parse_dns_name(&long).is_some());
        let h = hosts(&[node(Some(&long), 1, None)], 0, "mesh.example.org");
        assert!(h.entries.is_empty());
        assert_eq!(h.unusable_names, [long]);
    }

    #[test]
    fn two_nodes_with_one_name_are_both_listed() {
        // The CA signed both: the file says what the CA says.
        let nodes = [node(Some("twin"), 2, None), node(Some("twin"), 1, None)];
        let h = hosts(&nodes, 0, "mesh");
        let lines: Vec<String> = h.entries.iter().map(|e| format!("{} {}", e.address, e.name)).collect();
        assert_eq!(lines, ["fd42:77:1::1 twin.mesh", "fd42:77:1::2 twin.mesh"]);
    }

    #[test]
    fn no_nodes_give_only_the_comment() {
        assert_eq!(render(&hosts(&[], 0, "mesh")).lines().count(), 1);
    }
}
