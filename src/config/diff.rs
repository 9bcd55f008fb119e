//! What changed between two configurations, so that a reload applies only
//! the difference: an unchanged interface keeps its neighbours and routes.

use std::fmt;
use std::hash::Hash;

use super::schema::{AnnounceConfig, Config, InterfaceConfig, MainConfig, PeerConfig, TrustConfig};

/// The difference between an old and a new configuration. Sections are
/// matched by what identifies them (interface: `ifname`, announce: prefix,
/// peer: public key), not by their position or section name, so reordering
/// the file changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDiff {
    /// UCI names of the main-section options whose value changed
    /// (e.g. `"protocol"`, `"hello_interval"`), in declaration order.
    pub main: Vec<&'static str>,
    /// UCI names of the trust options that changed (`"ca_public_key"`,
    /// `"trusted_key"`, ...): neighbours must be re-authorised.
    pub trust: Vec<&'static str>,
    pub interfaces: Changes<InterfaceConfig>,
    pub announces: Changes<AnnounceConfig>,
    pub peers: Changes<PeerConfig>,
    /// Any `config policy` section changed (they are ordered: compared whole).
    pub policies: bool,
}

/// Added, removed and changed items of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<T> {
    /// In the new configuration only, in its order.
    pub added: Vec<T>,
    /// In the old configuration only, in its order.
    pub removed: Vec<T>,
    /// In both with different settings, in the new configuration's order.
    pub changed: Vec<Changed<T>>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes { added: Vec::new(), removed: Vec::new(), changed: Vec::new() }
    }
}

impl<T> Changes<T> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed<T> {
    pub old: T,
    pub new: T,
}

impl ConfigDiff {
    /// True if the two configurations mean the same thing.
    pub fn is_empty(&self) -> bool {
        self.main.is_empty()
            && self.trust.is_empty()
            && self.interfaces.is_empty()
            && self.announces.is_empty()
            && self.peers.is_empty()
            && !self.policies
    }
}

impl fmt::Display for ConfigDiff {
    /// One line for the reload log, e.g. `main: hello_interval; interfaces:
    /// +eth2 -eth1 ~mesh0; announces: +10.0.0.0/8`; `no change` if empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no change");
        }
        let mut parts: Vec<String> = Vec::new();
        if !self.main.is_empty() {
            parts.push(format!("main: {}", self.main.join(", ")));
        }
        if !self.trust.is_empty() {
            parts.push(format!("trust: {}", self.trust.join(", ")));
        }
        let mut keyed = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                parts.push(format!("{what}: {}", items.join(" ")));
            }
        };
        keyed("interfaces", self.interfaces.marks(|i| i.ifname.clone()));
        keyed("announces", self.announces.marks(|a| a.prefix.to_string()));
        keyed(
            "peers",
            self.peers.marks(|p| match &p.name {
                Some(n) => n.clone(),
                None => p.public_key.to_string(),
            }),
        );
        if self.policies {
            parts.push("policies".into());
        }
        f.write_str(&parts.join("; "))
    }
}

impl<T> Changes<T> {
    /// `+added -removed ~changed`, each named by `name`.
    fn marks(&self, name: impl Fn(&T) -> String) -> Vec<String> {
        let added = self.added.iter().map(|t| format!("+{}", name(t)));
        let removed = self.removed.iter().map(|t| format!("-{}", name(t)));
        let changed = self.changed.iter().map(|c| format!("~{}", name(&c.new)));
        added.chain(removed).chain(changed).collect()
    }
}

/// Compares two configurations. Interface and peer settings are effective
/// values (see [`super::schema`]), so a main-section change that reaches an
/// interface (e.g. `hello_interval` it does not override) also shows up as
/// a changed interface.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    ConfigDiff {
        main: diff_main(&old.main, &new.main),
        trust: diff_trust(&old.trust, &new.trust),
        interfaces: diff_keyed(&old.interfaces, &new.interfaces, |i| i.ifname.clone()),
        announces: diff_keyed(&old.announces, &new.announces, |a| a.prefix),
        peers: diff_keyed(&old.peers, &new.peers, |p| p.public_key),
        policies: old.policies != new.policies,
    }
}

/// Pushes `name` for each field that differs. The destructuring is
/// exhaustive on purpose: a new field does not compile until it is listed.
fn diff_main(old: &MainConfig, new: &MainConfig) -> Vec<&'static str> {
    let MainConfig {
        enabled,
        protocol,
        table,
        kernel_priority,
        hello_interval_ms,
        update_interval_ms,
        smoothing_half_life_ms,
        babel_port,
        state_file,
        control_socket,
        log_level,
        mesh_prefix,
        wireguard_backend,
        userspace_implementation,
        uapi_dir,
        listen_port,
        listen_port_range,
        keepalive_ms,
        max_routes_per_neighbour,
        max_origins_per_neighbour,
        set_forwarding,
        origin_signatures,
        end_to_end,
        end_to_end_port,
        end_to_end_max_peers,
        end_to_end_mtu,
        domain,
        hosts_file,
        metrics_file,
        default_policy_accept,
    } = old;
    let mut out = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            out.push(name);
        }
    };
    check(*enabled != new.enabled, "enabled");
    check(*protocol != new.protocol, "protocol");
    check(*table != new.table, "table");
    check(*kernel_priority != new.kernel_priority, "kernel_priority");
    check(*hello_interval_ms != new.hello_interval_ms, "hello_interval");
    check(*update_interval_ms != new.update_interval_ms, "update_interval");
    check(*smoothing_half_life_ms != new.smoothing_half_life_ms, "smoothing_half_life");
    check(*babel_port != new.babel_port, "babel_port");
    check(*state_file != new.state_file, "state_file");
    check(*control_socket != new.control_socket, "control_socket");
    check(*log_level != new.log_level, "log_level");
    check(*mesh_prefix != new.mesh_prefix, "mesh_prefix");
    check(*wireguard_backend != new.wireguard_backend, "wireguard_backend");
    check(*userspace_implementation != new.userspace_implementation, "userspace_implementation");
    check(*uapi_dir != new.uapi_dir, "uapi_dir");
    check(*listen_port != new.listen_port, "listen_port");
    check(*listen_port_range != new.listen_port_range, "listen_port_range");
    check(*keepalive_ms != new.keepalive_ms, "keepalive");
    check(*max_routes_per_neighbour != new.max_routes_per_neighbour, "max_routes_per_neighbour");
    check(*max_origins_per_neighbour != new.max_origins_per_neighbour, "max_origins_per_neighbour");
    check(*set_forwarding != new.set_forwarding, "set_forwarding");
    check(*origin_signatures != new.origin_signatures, "origin_signatures");
    check(*end_to_end != new.end_to_end, "end_to_end");
    check(*end_to_end_port != new.end_to_end_port, "end_to_end_port");
    check(*end_to_end_max_peers != new.end_to_end_max_peers, "end_to_end_max_peers");
    check(*end_to_end_mtu != new.end_to_end_mtu, "end_to_end_mtu");
    check(*domain != new.domain, "domain");
    check(*hosts_file != new.hosts_file, "hosts_file");
    check(*metrics_file != new.metrics_file, "metrics_file");
    check(*default_policy_accept != new.default_policy_accept, "default_policy");
    out
}

fn diff_trust(old: &TrustConfig, new: &TrustConfig) -> Vec<&'static str> {
    let TrustConfig {
        private_key_file,
        credential_file,
        ca_public_keys,
        trusted_keys,
        trusted_signing_keys,
        revocation_file,
    } = old;
    let mut out = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            out.push(name);
        }
    };
    check(*private_key_file != new.private_key_file, "private_key_file");
    check(*credential_file != new.credential_file, "credential_file");
    // Keys are a set: reordering the list is no change.
    check(!same_set(ca_public_keys, &new.ca_public_keys), "ca_public_key");
    check(
        !same_set(trusted_keys, &new.trusted_keys)
            || !same_set(trusted_signing_keys, &new.trusted_signing_keys),
        "trusted_key",
    );
    check(*revocation_file != new.revocation_file, "revocation_file");
    out
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

fn diff_keyed<T: Clone + PartialEq, K: Eq + Hash>(old: &[T], new: &[T], key: impl Fn(&T) -> K) -> Changes<T> {
    use std::collections::HashMap;
    let old_by_key: HashMap<K, &T> = old.iter().map(|t| (key(t), t)).collect();
    let new_keys: std::collections::HashSet<K> = new.iter().map(&key).collect();
    let mut c = Changes::default();
    for n in new {
        match old_by_key.get(&key(n)) {
            None => c.added.push(n.clone()),
            Some(o) if *o != n => c.changed.push(Changed { old: (*o).clone(), new: n.clone() }),
            Some(_) => {}
        }
    }
    c.removed = old.iter().filter(|o| !new_keys.contains(&key(o))).cloned().collect();
    c
}

#[cfg(test)]
mod tests;
