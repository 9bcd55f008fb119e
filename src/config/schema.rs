//! The typed configuration and how it is read from a UCI [`Document`].
//!
//! Option names are a contract with the init script, LuCI and users'
//! files: never rename one. Defaults follow babeld where babeld has the
//! same knob. Time values are stored in milliseconds.
//!
//! Values stored here are *effective* values: an interface that does not
//! set `hello_interval` carries the main section's value, an interface
//! without `wireguard` carries the default that trust material implies.
//! So comparing two configurations (see [`super::diff`]) sees every change
//! that matters to a link, whichever section it was written in.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::babel::types::Prefix;

use super::error::{ConfigError, ErrorKind, Warning};
use super::uci::{Document, Section, UciValue};
use super::value::{
    parse_abs_path, parse_bool, parse_duration_ms, parse_ifname, parse_interval_ms, parse_node_key,
    parse_public_key, parse_uint, parse_whole_seconds_ms, suggest, Endpoint, Expected, PublicKey,
    MAX_INTERVAL_MS,
};

/// Kernel route protocol number weft uses unless told otherwise.
pub const DEFAULT_PROTOCOL: u8 = 119;
/// babeld's protocol number (`RTPROT_BABEL`): never ours, or a weft start
/// would flush babeld's routes.
pub const BABELD_PROTOCOL: u8 = 42;
pub const TABLE_MAIN: u32 = 254;
pub const TABLE_DEFAULT: u32 = 253;
pub const TABLE_LOCAL: u32 = 255;
pub const DEFAULT_HELLO_MS: u64 = 4_000;
/// babeld's rule: four hello intervals.
pub const UPDATE_PER_HELLO: u64 = 4;
pub const DEFAULT_SMOOTHING_HALF_LIFE_MS: u64 = 4_000;
pub const DEFAULT_BABEL_PORT: u16 = 6696;
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
pub const DEFAULT_LISTEN_PORT_RANGE: u16 = 80;
/// babeld's receive costs.
pub const RXCOST_WIRED: u16 = 96;
pub const RXCOST_WIRELESS: u16 = 256;
pub const RXCOST_TUNNEL: u16 = 96;
pub const DEFAULT_DOMAIN: &str = "mesh";
/// OpenWrt's dnsmasq reads every file in /tmp/hosts (`--addn-hosts`).
pub const DEFAULT_HOSTS_FILE: &str = "/tmp/hosts/weft";
/// The directory of node-exporter's textfile collector on OpenWrt.
pub const DEFAULT_METRICS_FILE: &str = "/var/prometheus/weft.prom";

/// The whole configuration. `==` compares exactly, including the order of
/// sections; [`super::diff`] ignores order and says what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub main: MainConfig,
    pub trust: TrustConfig,
    /// `config interface` sections in file order.
    pub interfaces: Vec<InterfaceConfig>,
    /// `config announce` sections in file order.
    pub announces: Vec<AnnounceConfig>,
    /// `config peer` sections in file order.
    pub peers: Vec<PeerConfig>,
    /// Enabled `config policy` sections in file order (the first matching
    /// one decides).
    pub policies: Vec<crate::mesh::policy::Rule>,
}

/// The `config weft 'main'` section, except trust material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainConfig {
    /// `enabled` (bool, default 1): 0 means weft is not to run (for the
    /// init script and the daemon to honour).
    pub enabled: bool,
    /// `protocol` (default 119): the kernel route protocol number weft's
    /// routes carry. weft removes every route with this number at start, so
    /// it must be its own: 0-4 (kernel, boot, static...) and 42 (babeld) are
    /// refused; numbers other daemons are known to use give a warning.
    pub protocol: u8,
    /// `table` (default `main` = 254): routing table for weft's routes:
    /// `main`, `default` (253) or a number 1..=4294967295 except 255
    /// (`local`).
    pub table: u32,
    /// `kernel_priority` (default 0): metric (priority) of installed kernel
    /// routes, as babeld's `kernel-priority`.
    pub kernel_priority: u32,
    /// `hello_interval` (seconds, default 4): Hello interval on every link
    /// that does not set its own. 0.01 to 655.35, centisecond steps.
    pub hello_interval_ms: u64,
    /// `update_interval` (seconds, default four hello intervals, i.e. 16):
    /// interval of full route dumps, for links that do not set their own.
    pub update_interval_ms: u64,
    /// `smoothing_half_life` (seconds, default 4, 0 disables): half-life of
    /// the metric smoothing used for route selection (babeld `-M`).
    pub smoothing_half_life_ms: u64,
    /// `babel_port` (default 6696): UDP port of the Babel protocol
    /// (babeld `-p`); changing it breaks interoperability, useful in tests.
    pub babel_port: u16,
    /// `state_file` (default `/var/lib/weft/state`): where the seqno and
    /// other state that must survive a restart is kept.
    pub state_file: PathBuf,
    /// `control_socket` (default `/var/run/weft.sock`): the local socket
    /// `weft status` and friends talk to.
    pub control_socket: PathBuf,
    /// `log_level` (default `info`): error, warn, info, debug or trace.
    pub log_level: LogLevel,
    /// `mesh_prefix` (IPv6 prefix, no default): the ULA prefix in which
    /// each node's address is derived from its key. Absent: no derived
    /// addresses. Must be at most /64 long so the key has room.
    pub mesh_prefix: Option<Prefix>,
    /// `wireguard_backend` (default `auto`): `kernel` (generic netlink),
    /// `userspace` (UAPI sockets) or `auto` (kernel if the module is there).
    pub wireguard_backend: WireguardBackend,
    /// `userspace_implementation` (default `wireguard-go`): program started
    /// for the userspace backend, a name looked up in PATH or an absolute
    /// path (e.g. `boringtun-cli`).
    pub userspace_implementation: String,
    /// `uapi_dir` (default `/var/run/wireguard`): directory of userspace
    /// WireGuard UAPI sockets (`<dir>/<ifname>.sock`).
    pub uapi_dir: PathBuf,
    /// `listen_port` (default 51820): first UDP port of the per-neighbour
    /// WireGuard interfaces.
    pub listen_port: u16,
    /// `listen_port_range` (default 80): how many ports from `listen_port`
    /// on weft may use, i.e. the most tunnels at once. The range must end
    /// at or below 65535.
    pub listen_port_range: u16,
    /// `keepalive` (whole seconds, default 0 = off): WireGuard persistent
    /// keepalive, the default for static peers (see [`PeerConfig`]). Babel
    /// Hellos already cross every tunnel every few seconds, so it matters
    /// mostly for a peer behind NAT that must stay reachable.
    pub keepalive_ms: u64,
    /// `max_routes_per_neighbour` (default 16384): most routes one
    /// neighbour may put in our table; announcements beyond are ignored and
    /// counted (`weft status`: `babel.over_neighbour_limit`).
    pub max_routes_per_neighbour: usize,
    /// `max_origins_per_neighbour` (default 4096): most distinct origins
    /// (router-ids) among one neighbour's routes.
    pub max_origins_per_neighbour: usize,
    /// `set_forwarding` (bool, default 1): weft turns on IPv6 forwarding at
    /// start, and IPv4 forwarding once it installs an IPv4 route, as babeld
    /// does; 0 leaves the kernel's forwarding switches to the system (weft
    /// then reports whether this node routes for others).
    pub set_forwarding: bool,
    /// `origin_signatures` (`require`, the default, or `off`): routes learned
    /// over tunnels from an origin whose credential carries a signing key
    /// are used only as that origin's verified announcement set allows.
    pub origin_signatures: bool,
    /// `end_to_end` (bool; default: on when trust material and a mesh
    /// prefix of /63 or shorter are configured): traffic to other nodes'
    /// addresses and granted prefixes goes through the end-to-end WireGuard
    /// interface `weft-e2e`, encrypted to the destination node's key, so
    /// that relays see only ciphertext. `None`: not set (the default rule).
    pub end_to_end: Option<bool>,
    /// `end_to_end_port` (default 6699): the UDP port of `weft-e2e`, at our
    /// transport address; signed into our announcement set.
    pub end_to_end_port: u16,
    /// `end_to_end_max_peers` (default 1024): remote nodes on `weft-e2e` at
    /// most; the prefixes of nodes beyond it are unreachable.
    pub end_to_end_max_peers: usize,
    /// `end_to_end_mtu` (default 1340: a 1500-byte link minus two WireGuard
    /// encapsulations over IPv6; at least 1280): the MTU of `weft-e2e`. Set
    /// it lower when mesh links have a smaller MTU (it is not derived from
    /// them yet).
    pub end_to_end_mtu: Option<u32>,
    /// `domain` (default `mesh`): the DNS domain of node names in the hosts
    /// file: a node named `node2` is `node2.mesh`. Lower-cased.
    pub domain: String,
    /// `hosts_file` (default `/tmp/hosts/weft`, where OpenWrt's dnsmasq
    /// reads extra hosts files; `0` disables): every valid node's
    /// `<name>.<domain>` and mesh address, in hosts format. (Not ''
    /// disables: UCI drops empty values, so '' is the default.)
    pub hosts_file: Option<PathBuf>,
    /// `metrics_file` (default `/var/prometheus/weft.prom`, node-exporter's
    /// textfile directory; `0` disables): Prometheus metrics, rewritten
    /// every update interval.
    pub metrics_file: Option<PathBuf>,
    /// `default_policy` (`accept`, the default, or `drop`): what happens to
    /// a new connection to this node that no `config policy` section
    /// matches. Needs end to end (its peers say who sent a packet).
    pub default_policy_accept: bool,
}

/// Trust material from the `config weft` section. Kept apart because a
/// change here makes the daemon re-check every neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustConfig {
    /// `private_key_file` (default `/etc/weft/private.key`): this node's
    /// WireGuard private key (its identity). Only the path is checked here.
    pub private_key_file: PathBuf,
    /// `credential_file` (default `/etc/weft/node.cred`): this node's
    /// CA-signed credential; needed when `ca_public_key` is set.
    pub credential_file: PathBuf,
    /// `list ca_public_key` (Ed25519 keys, base64): CAs whose credentials
    /// admit a neighbour. Several keys allow a CA rotation.
    pub ca_public_keys: Vec<PublicKey>,
    /// `list trusted_key` (WireGuard public keys, base64): the allow-list
    /// alternative to a CA for small networks.
    pub trusted_keys: Vec<PublicKey>,
    /// The optional second word of a `trusted_key` (`'WGKEY SIGNKEY'`, the
    /// output of `weft pubkey --signing`): that node's key for origin-signed
    /// announcements. Without one its routes are taken unsigned.
    pub trusted_signing_keys: Vec<(PublicKey, [u8; 32])>,
    /// `revocation_file` (default `/etc/weft/revoked`): the revocation list
    /// the trust module reads. Only the path is checked here.
    pub revocation_file: PathBuf,
}

impl MainConfig {
    /// The per-neighbour limits the engine enforces.
    pub fn neighbour_limits(&self) -> crate::babel::NeighbourLimits {
        crate::babel::NeighbourLimits {
            max_routes: self.max_routes_per_neighbour,
            max_origins: self.max_origins_per_neighbour,
        }
    }
}

impl Config {
    /// Whether end to end is on: as set, or by default when there is trust
    /// material and a mesh prefix with room for transport addresses.
    pub fn end_to_end(&self) -> bool {
        let room = self.main.mesh_prefix.is_some_and(|p| p.len() < 64);
        self.main.end_to_end.unwrap_or(room && self.trust.has_trust_material())
    }
}

impl TrustConfig {
    /// True if neighbours can be authorised at all (a CA or an allow-list).
    pub fn has_trust_material(&self) -> bool {
        !self.ca_public_keys.is_empty() || !self.trusted_keys.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireguardBackend {
    Auto,
    Kernel,
    Userspace,
}

/// What kind of link an interface is; it sets babeld's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterfaceType {
    /// Decided by the daemon: wireless if the kernel says it is
    /// (see [`InterfaceConfig::link_params`]).
    Auto,
    Wired,
    Wireless,
    Tunnel,
}

/// A `config interface` section: a device weft runs Babel on, directly or
/// through per-neighbour WireGuard tunnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `ifname` (required, unique): the kernel device.
    pub ifname: String,
    /// `enabled` (bool, default 1).
    pub enabled: bool,
    /// `type` (default `auto`): wireless, wired, tunnel or auto.
    pub kind: InterfaceType,
    /// `wireguard` (bool): 1 wraps each neighbour in its own WireGuard
    /// tunnel; 0 runs plain Babel on the device (babeld/BIRD compatible).
    /// Default: 1 when trust material (`ca_public_key` or `trusted_key`)
    /// is configured, else 0, so a zero-trust network is zero-trust
    /// everywhere unless an interface opts out, and a plain configuration
    /// behaves like babeld. 1 without trust material is an error: no
    /// neighbour could ever be admitted.
    pub wireguard: bool,
    /// `hello_interval` (seconds): effective value, the main section's
    /// unless set here.
    pub hello_interval_ms: u64,
    /// `update_interval` (seconds): effective value: set here, else the
    /// main section's if set there, else four times this interface's hello
    /// interval (babeld's rule), at most 655.35 s.
    pub update_interval_ms: u64,
    /// `rxcost` (1..=65534): receive cost; `None`: by type (96 wired and
    /// tunnel, 256 wireless).
    pub rxcost: Option<u16>,
    /// `split_horizon` (bool); `None`: by type (on for wired only).
    pub split_horizon: Option<bool>,
    /// `link_quality` (bool): ETX link-quality estimation; `None`: by type
    /// (on for wireless only).
    pub link_quality: Option<bool>,
    /// `v4_via_v6` (bool, default 1): announce IPv4 routes with an IPv6
    /// next hop (RFC 9229). Set 0 on links to BIRD, which lacks it.
    pub v4_via_v6: bool,
}

/// Link parameters once the interface type is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams {
    pub rxcost: u16,
    pub split_horizon: bool,
    pub link_quality: bool,
}

impl InterfaceConfig {
    /// Resolves the by-type defaults. For `type auto` the daemon says
    /// whether the device is wireless; an undetected `auto` device is
    /// treated like babeld does: wired costs, but no split horizon (it may
    /// be bridged to a radio).
    pub fn link_params(&self, detected_wireless: bool) -> LinkParams {
        let (rxcost, split_horizon, link_quality) = match self.kind {
            InterfaceType::Wired => (RXCOST_WIRED, true, false),
            InterfaceType::Wireless => (RXCOST_WIRELESS, false, true),
            InterfaceType::Tunnel => (RXCOST_TUNNEL, false, false),
            InterfaceType::Auto if detected_wireless => (RXCOST_WIRELESS, false, true),
            InterfaceType::Auto => (RXCOST_WIRED, false, false),
        };
        LinkParams {
            rxcost: self.rxcost.unwrap_or(rxcost),
            split_horizon: self.split_horizon.unwrap_or(split_horizon),
            link_quality: self.link_quality.unwrap_or(link_quality),
        }
    }
}

/// A `config announce` section: a prefix this node originates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// `prefix` (required, unique): IPv4 or IPv6, host bits clear.
    pub prefix: Prefix,
    /// `metric` (0..=65534, default 0): metric it is announced with.
    pub metric: u16,
    /// `enabled` (bool, default 1).
    pub enabled: bool,
}

/// A `config peer` section: a static WireGuard peer, typically over the
/// internet, run as a Babel tunnel link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The section name (`config peer 'office'`), if any.
    pub name: Option<String>,
    /// `public_key` (required, unique): the peer's WireGuard key.
    pub public_key: PublicKey,
    /// `endpoint` (`host:port`, `[v6]:port`): where to reach the peer.
    /// Absent: wait for the peer to reach us.
    pub endpoint: Option<Endpoint>,
    /// `enabled` (bool, default 1).
    pub enabled: bool,
    /// `keepalive` (whole seconds): effective value, the main section's
    /// unless set here. Set it (e.g. 25) when either side is behind NAT.
    pub keepalive_ms: u64,
    /// `rxcost` (1..=65534, default 96 as babeld's tunnels).
    pub rxcost: u16,
    /// `hello_interval` (seconds): effective, main's unless set here.
    pub hello_interval_ms: u64,
    /// `update_interval` (seconds): effective, as for interfaces.
    pub update_interval_ms: u64,
}

/// Options of each section type, for unknown-option warnings and hints.
const MAIN_OPTIONS: &[&str] = &[
    "enabled",
    "protocol",
    "table",
    "kernel_priority",
    "hello_interval",
    "update_interval",
    "smoothing_half_life",
    "babel_port",
    "state_file",
    "control_socket",
    "log_level",
    "private_key_file",
    "credential_file",
    "ca_public_key",
    "trusted_key",
    "revocation_file",
    "mesh_prefix",
    "wireguard_backend",
    "userspace_implementation",
    "uapi_dir",
    "listen_port",
    "listen_port_range",
    "keepalive",
    "max_routes_per_neighbour",
    "max_origins_per_neighbour",
    "set_forwarding",
    "origin_signatures",
    "end_to_end",
    "end_to_end_port",
    "end_to_end_max_peers",
    "end_to_end_mtu",
    "domain",
    "hosts_file",
    "metrics_file",
    "default_policy",
];
const INTERFACE_OPTIONS: &[&str] = &[
    "ifname",
    "enabled",
    "type",
    "wireguard",
    "hello_interval",
    "update_interval",
    "rxcost",
    "split_horizon",
    "link_quality",
    "v4_via_v6",
];
const ANNOUNCE_OPTIONS: &[&str] = &["prefix", "metric", "enabled"];
const PEER_OPTIONS: &[&str] =
    &["public_key", "endpoint", "enabled", "keepalive", "rxcost", "hello_interval", "update_interval"];
const POLICY_OPTIONS: &[&str] = &["src_group", "dest_group", "proto", "dest_port", "action", "enabled"];
const SECTION_TYPES: &[&str] = &["weft", "interface", "announce", "peer", "policy"];

/// Protocol numbers known to belong to someone else (iproute2's
/// `rt_protos` and common daemons): sharing one would make weft flush
/// their routes at start.
const KNOWN_PROTOCOLS: &[(u8, &str)] = &[
    (8, "gated"),
    (9, "ra (kernel router advertisements)"),
    (10, "mrt"),
    (11, "zebra (FRR, Quagga)"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (17, "mrouted"),
    (18, "keepalived"),
    (99, "openr"),
    (186, "bgp (FRR)"),
    (187, "isis (FRR)"),
    (188, "ospf (FRR)"),
    (189, "rip (FRR)"),
    (192, "eigrp (FRR)"),
];

/// Reads one section's options, remembering which were asked for, so that
/// what is left over can be warned about.
struct Fields<'a> {
    file: &'a str,
    section: &'a Section,
    known: &'static [&'static str],
    label: String,
}

impl<'a> Fields<'a> {
    fn new(file: &'a str, section: &'a Section, known: &'static [&'static str]) -> Fields<'a> {
        Fields { file, section, known, label: section.label() }
    }

    /// Options of this section that contradict each other (at `line`).
    fn conflict(&self, line: usize, message: String) -> ConfigError {
        ConfigError::at(self.file, line, ErrorKind::Conflict { section: self.label.clone(), message })
    }

    fn invalid(&self, option: &str, value: &str, line: usize, expected: Expected) -> ConfigError {
        ConfigError::at(
            self.file,
            line,
            ErrorKind::InvalidValue {
                section: self.label.clone(),
                option: option.to_string(),
                value: value.to_string(),
                expected,
            },
        )
    }

    /// A single-valued option: `(value, line)` if set. Given as a `list`,
    /// it is an error (libuci-based readers would not see it either).
    fn single(&self, name: &str) -> Result<Option<(&'a str, usize)>, ConfigError> {
        debug_assert!(self.known.contains(&name), "{name} missing from known list");
        match self.section.option(name) {
            None => Ok(None),
            Some(o) => match &o.value {
                UciValue::Single(v) => Ok(Some((v.as_str(), o.line))),
                UciValue::List(_) => Err(ConfigError::at(
                    self.file,
                    o.line,
                    ErrorKind::InvalidValue {
                        section: self.label.clone(),
                        option: name.to_string(),
                        value: "(a list)".into(),
                        expected: "a single value: use 'option', not 'list'".into(),
                    },
                )),
            },
        }
    }

    /// A list option; a single `option` counts as a one-item list.
    fn list(&self, name: &str) -> Vec<(&'a str, usize)> {
        debug_assert!(self.known.contains(&name), "{name} missing from known list");
        match self.section.option(name).map(|o| (&o.value, o.line)) {
            None => Vec::new(),
            Some((UciValue::Single(v), line)) => vec![(v.as_str(), line)],
            Some((UciValue::List(items), _)) => items.iter().map(|i| (i.value.as_str(), i.line)).collect(),
        }
    }

    /// Parses a single-valued option with `parse`, if set.
    fn get<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, Expected>,
    ) -> Result<Option<(T, usize)>, ConfigError> {
        match self.single(name)? {
            None => Ok(None),
            Some((v, line)) => parse(v).map(|t| Some((t, line))).map_err(|e| self.invalid(name, v, line, e)),
        }
    }

    fn value<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, Expected>,
    ) -> Result<Option<T>, ConfigError> {
        Ok(self.get(name, parse)?.map(|(t, _)| t))
    }

    fn required<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, Expected>,
    ) -> Result<(T, usize), ConfigError> {
        self.get(name, parse)?.ok_or_else(|| {
            ConfigError::at(
                self.file,
                self.section.line,
                ErrorKind::Missing { section: self.label.clone(), option: name.to_string() },
            )
        })
    }

    /// Warnings for options this section type does not have.
    fn warn_unknown(&self, warnings: &mut Vec<Warning>) {
        for o in &self.section.options {
            if self.known.contains(&o.name.as_str()) {
                continue;
            }
            let hint = match suggest(&o.name, self.known) {
                Some(s) => format!(" (did you mean '{s}'?)"),
                None => String::new(),
            };
            warnings.push(Warning::new(
                self.file,
                o.line,
                format!("unknown option '{}' in {} is ignored{hint}", o.name, self.label),
            ));
        }
    }
}

fn parse_protocol(s: &str) -> Result<u8, Expected> {
    let expected = || {
        "a route protocol number from 5 to 255 other than 42 (babeld's); 0-4 belong to the kernel".to_string()
    };
    match parse_uint(s, 5, 255) {
        Ok(v) if v != u64::from(BABELD_PROTOCOL) => Ok(v as u8),
        _ => Err(expected()),
    }
}

fn parse_table(s: &str) -> Result<u32, Expected> {
    match s {
        "main" => Ok(TABLE_MAIN),
        "default" => Ok(TABLE_DEFAULT),
        _ => match parse_uint(s, 1, u64::from(u32::MAX)) {
            Ok(v) if v != u64::from(TABLE_LOCAL) => Ok(v as u32),
            _ => {
                Err("'main', 'default' or a table number from 1 to 4294967295 other than 255 (local)".into())
            }
        },
    }
}

fn parse_log_level(s: &str) -> Result<LogLevel, Expected> {
    match s {
        "error" => Ok(LogLevel::Error),
        "warn" => Ok(LogLevel::Warn),
        "info" => Ok(LogLevel::Info),
        "debug" => Ok(LogLevel::Debug),
        "trace" => Ok(LogLevel::Trace),
        _ => Err("one of error, warn, info, debug, trace".into()),
    }
}

fn parse_backend(s: &str) -> Result<WireguardBackend, Expected> {
    match s {
        "auto" => Ok(WireguardBackend::Auto),
        "kernel" => Ok(WireguardBackend::Kernel),
        "userspace" => Ok(WireguardBackend::Userspace),
        _ => Err("one of auto, kernel, userspace".into()),
    }
}

fn parse_interface_type(s: &str) -> Result<InterfaceType, Expected> {
    match s {
        "auto" => Ok(InterfaceType::Auto),
        "wired" => Ok(InterfaceType::Wired),
        "wireless" => Ok(InterfaceType::Wireless),
        "tunnel" => Ok(InterfaceType::Tunnel),
        _ => Err("one of wireless, wired, tunnel, auto".into()),
    }
}

fn parse_prefix(s: &str) -> Result<Prefix, Expected> {
    s.parse::<Prefix>()
        .map_err(|e| format!("an IPv4 or IPv6 prefix such as 10.13.1.0/24 or fd00:1::/48 ({e})"))
}

fn parse_mesh_prefix(s: &str) -> Result<Prefix, Expected> {
    let expected = "an IPv6 prefix of length 64 or less, such as fd12:3456:789a::/48";
    match s.parse::<Prefix>() {
        Ok(p) if !p.is_ipv4() && p.len() <= 64 => Ok(p),
        Ok(_) => Err(expected.into()),
        Err(e) => Err(format!("{expected} ({e})")),
    }
}

fn parse_rxcost(s: &str) -> Result<u16, Expected> {
    parse_uint(s, 1, 65534).map(|v| v as u16).map_err(|e| format!("{e} (65535 is infinity)"))
}

fn parse_metric(s: &str) -> Result<u16, Expected> {
    parse_uint(s, 0, 65534).map(|v| v as u16).map_err(|e| format!("{e} (65535 is infinity: a retraction)"))
}

fn parse_program(s: &str) -> Result<String, Expected> {
    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(s.to_string())
    } else {
        Err("a program name or absolute path without spaces".into())
    }
}

fn parse_port(s: &str) -> Result<u16, Expected> {
    parse_uint(s, 1, 65535).map(|v| v as u16)
}

/// `listen_port_range`: a number of ports, or "FIRST-LAST" (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRange {
    Count(u16),
    Span(u16, u16),
}

fn parse_port_range(s: &str) -> Result<PortRange, Expected> {
    match s.split_once('-') {
        None => parse_port(s).map(PortRange::Count),
        Some((a, b)) => match (parse_port(a.trim()), parse_port(b.trim())) {
            (Ok(first), Ok(last)) if first <= last => Ok(PortRange::Span(first, last)),
            _ => Err("a number of ports, or FIRST-LAST with ports from 1 to 65535 and FIRST <= LAST".into()),
        },
    }
}

fn parse_keepalive(s: &str) -> Result<u64, Expected> {
    parse_whole_seconds_ms(s, 65535)
}

/// A DNS domain (RFC 1123 labels), lower-cased.
fn parse_domain(s: &str) -> Result<String, Expected> {
    crate::names::parse_dns_name(s).ok_or_else(|| {
        "a DNS domain such as 'mesh' or 'mesh.example.org': labels of letters, digits and '-', \
         separated by '.'"
            .into()
    })
}

/// An absolute path, or a false boolean ('0', 'off', ...) for "none". Not
/// '': libuci drops an empty value (`uci set` deletes the option), so ''
/// could only ever mean the default.
fn parse_optional_path(s: &str) -> Result<Option<PathBuf>, Expected> {
    match parse_bool(s) {
        Ok(false) => Ok(None),
        _ => parse_abs_path(s).map(Some).map_err(|e| format!("{e}, or '0' to disable")),
    }
}

/// Intervals a link section (interface, peer) may override.
struct Intervals {
    hello_ms: u64,
    /// `None` when the main section did not set it: derived per link.
    update_ms: Option<u64>,
}

impl Intervals {
    fn for_link(&self, f: &Fields<'_>) -> Result<(u64, u64), ConfigError> {
        let hello = f.value("hello_interval", parse_interval_ms)?.unwrap_or(self.hello_ms);
        let update = match f.value("update_interval", parse_interval_ms)? {
            Some(u) => u,
            None => self.update_ms.unwrap_or_else(|| (hello * UPDATE_PER_HELLO).min(MAX_INTERVAL_MS)),
        };
        Ok((hello, update))
    }
}

/// Builds the typed configuration from a parsed document.
pub fn from_document(doc: &Document, file: &str, warnings: &mut Vec<Warning>) -> Result<Config, ConfigError> {
    if let Some(p) = &doc.package {
        if p.name != "weft" {
            warnings.push(Warning::new(
                file,
                p.line,
                format!("package '{}' is not 'weft'; reading it anyway", p.name),
            ));
        }
    }

    // At most one main section.
    let mut main_sections = doc.sections_of("weft");
    let main_section = main_sections.next();
    if let Some(second) = main_sections.next() {
        return Err(ConfigError::at(
            file,
            second.line,
            ErrorKind::Duplicate {
                what: "'config weft' section: only one is allowed".into(),
                first_line: main_section.map_or(0, |s| s.line),
            },
        ));
    }
    let (main, trust, intervals) = match main_section {
        Some(s) => {
            if s.name.as_deref() != Some("main") {
                warnings.push(Warning::new(
                    file,
                    s.line,
                    "the 'config weft' section should be named 'main' (scripts read weft.main.*)".into(),
                ));
            }
            read_main(file, s, warnings)?
        }
        None => {
            warnings.push(Warning::new(file, 1, "no 'config weft' section: using the defaults".into()));
            let empty = Section {
                section_type: "weft".into(),
                name: Some("main".into()),
                index: 0,
                line: 1,
                options: Vec::new(),
            };
            read_main(file, &empty, warnings)?
        }
    };

    let mut interfaces = Vec::new();
    let mut seen_ifnames: HashMap<String, usize> = HashMap::new();
    for s in doc.sections_of("interface") {
        let (iface, line) = read_interface(file, s, &trust, &intervals, warnings)?;
        if let Some(first) = seen_ifnames.insert(iface.ifname.clone(), line) {
            return Err(ConfigError::at(
                file,
                line,
                ErrorKind::Duplicate {
                    what: format!("interface with ifname '{}'", iface.ifname),
                    first_line: first,
                },
            ));
        }
        interfaces.push(iface);
    }

    let mut announces = Vec::new();
    let mut seen_prefixes: HashMap<Prefix, usize> = HashMap::new();
    for s in doc.sections_of("announce") {
        let f = Fields::new(file, s, ANNOUNCE_OPTIONS);
        let (prefix, line) = f.required("prefix", parse_prefix)?;
        if let Some(first) = seen_prefixes.insert(prefix, line) {
            return Err(ConfigError::at(
                file,
                line,
                ErrorKind::Duplicate { what: format!("announce of prefix {prefix}"), first_line: first },
            ));
        }
        announces.push(AnnounceConfig {
            prefix,
            metric: f.value("metric", parse_metric)?.unwrap_or(0),
            enabled: f.value("enabled", parse_bool)?.unwrap_or(true),
        });
        f.warn_unknown(warnings);
    }

    let mut peers = Vec::new();
    let mut seen_keys: HashMap<PublicKey, usize> = HashMap::new();
    for s in doc.sections_of("peer") {
        let f = Fields::new(file, s, PEER_OPTIONS);
        let (public_key, line) = f.required("public_key", parse_node_key)?;
        if let Some(first) = seen_keys.insert(public_key, line) {
            return Err(ConfigError::at(
                file,
                line,
                ErrorKind::Duplicate {
                    what: format!("peer with public_key {public_key}"),
                    first_line: first,
                },
            ));
        }
        let (hello_interval_ms, update_interval_ms) = intervals.for_link(&f)?;
        peers.push(PeerConfig {
            name: s.name.clone(),
            public_key,
            endpoint: f.value("endpoint", |v| v.parse::<Endpoint>())?,
            enabled: f.value("enabled", parse_bool)?.unwrap_or(true),
            keepalive_ms: f.value("keepalive", parse_keepalive)?.unwrap_or(main.keepalive_ms),
            rxcost: f.value("rxcost", parse_rxcost)?.unwrap_or(RXCOST_TUNNEL),
            hello_interval_ms,
            update_interval_ms,
        });
        f.warn_unknown(warnings);
    }

    let mut policies = Vec::new();
    for s in doc.sections_of("policy") {
        if let Some(rule) = read_policy(file, s, warnings)? {
            policies.push(rule);
        }
    }
    let needs_e2e = !policies.is_empty() || !main.default_policy_accept;
    let room = main.mesh_prefix.is_some_and(|p| p.len() < 64);
    if needs_e2e && !(trust.has_trust_material() && main.end_to_end.unwrap_or(room)) {
        let line = doc.sections_of("policy").next().or(main_section).map_or(1, |s| s.line);
        return Err(ConfigError::at(
            file,
            line,
            ErrorKind::Conflict {
                section: "policy".into(),
                message: "group policy (config policy, default_policy 'drop') needs end to end: trust \
                          material, a mesh_prefix of /63 or shorter and end_to_end not '0' (the \
                          end-to-end peers are what tells who sent a packet)"
                    .into(),
            },
        ));
    }

    for s in &doc.sections {
        if !SECTION_TYPES.contains(&s.section_type.as_str()) {
            let hint = match suggest(&s.section_type, SECTION_TYPES) {
                Some(t) => format!(" (did you mean '{t}'?)"),
                None => String::new(),
            };
            warnings.push(Warning::new(
                file,
                s.line,
                format!("unknown section type '{}' is ignored{hint}", s.section_type),
            ));
        }
    }

    if interfaces.iter().all(|i| !i.enabled) && peers.iter().all(|p| !p.enabled) {
        warnings.push(Warning::new(
            file,
            main_section.map_or(1, |s| s.line),
            "no enabled interface or peer: weft will have no neighbours".into(),
        ));
    }

    Ok(Config { main, trust, interfaces, announces, peers, policies })
}

fn read_main(
    file: &str,
    s: &Section,
    warnings: &mut Vec<Warning>,
) -> Result<(MainConfig, TrustConfig, Intervals), ConfigError> {
    let f = Fields::new(file, s, MAIN_OPTIONS);

    let protocol = match f.get("protocol", parse_protocol)? {
        Some((p, line)) => {
            if let Some((_, owner)) = KNOWN_PROTOCOLS.iter().find(|(n, _)| *n == p) {
                warnings.push(Warning::new(
                    file,
                    line,
                    format!(
                        "protocol {p} is used by {owner}: weft removes every route of its protocol at start"
                    ),
                ));
            }
            p
        }
        None => DEFAULT_PROTOCOL,
    };

    let hello_interval_ms = f.value("hello_interval", parse_interval_ms)?.unwrap_or(DEFAULT_HELLO_MS);
    let update_set = f.value("update_interval", parse_interval_ms)?;
    let update_interval_ms =
        update_set.unwrap_or_else(|| (hello_interval_ms * UPDATE_PER_HELLO).min(MAX_INTERVAL_MS));

    let mesh_prefix = match f.get("mesh_prefix", parse_mesh_prefix)? {
        Some((p, line)) => {
            let ula: Prefix = Prefix::V6(std::net::Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7);
            if !ula.contains(&p) {
                warnings.push(Warning::new(
                    file,
                    line,
                    format!("mesh_prefix {p} is not a unique local (fc00::/7) prefix"),
                ));
            }
            Some(p)
        }
        None => None,
    };

    let listen_port_opt = f.get("listen_port", parse_port)?;
    let mut listen_port = listen_port_opt.map(|(p, _)| p).unwrap_or(DEFAULT_LISTEN_PORT);
    let listen_port_range = match f.get("listen_port_range", parse_port_range)? {
        // "FIRST-LAST", as firewall rules write it: FIRST is the listen_port.
        Some((PortRange::Span(first, last), line)) => {
            if listen_port_opt.is_some_and(|(p, _)| p != first) {
                return Err(f.conflict(
                    line,
                    format!("listen_port_range {first}-{last} does not start at listen_port {listen_port}"),
                ));
            }
            listen_port = first;
            last - first + 1
        }
        Some((PortRange::Count(r), line)) => {
            if u32::from(listen_port) + u32::from(r) - 1 > 65535 {
                return Err(f.conflict(
                    line,
                    format!("listen_port {listen_port} + listen_port_range {r} goes past port 65535"),
                ));
            }
            r
        }
        // The default range shrinks to fit under a high listen_port.
        None => DEFAULT_LISTEN_PORT_RANGE.min((65536 - u32::from(listen_port)) as u16),
    };

    let end_to_end = f.get("end_to_end", parse_bool)?;
    if let Some((true, line)) = end_to_end {
        if mesh_prefix.is_none_or(|p| p.len() >= 64) {
            return Err(f.conflict(
                line,
                "end_to_end '1' needs a mesh_prefix of /63 or shorter (its last /64 holds the \
                 transport addresses)"
                    .to_string(),
            ));
        }
    }

    if let Some((port, line)) = f.get("end_to_end_port", parse_port)? {
        let clash = u32::from(port) >= u32::from(listen_port)
            && u32::from(port) < u32::from(listen_port) + u32::from(listen_port_range);
        if clash || port == crate::link::wire::DISCOVERY_PORT {
            return Err(f.conflict(
                line,
                format!("end_to_end_port {port} is one of the tunnels' listen ports or the discovery port"),
            ));
        }
    }

    let main = MainConfig {
        enabled: f.value("enabled", parse_bool)?.unwrap_or(true),
        protocol,
        table: f.value("table", parse_table)?.unwrap_or(TABLE_MAIN),
        kernel_priority: f
            .value("kernel_priority", |v| parse_uint(v, 0, u64::from(u32::MAX)).map(|v| v as u32))?
            .unwrap_or(0),
        hello_interval_ms,
        update_interval_ms,
        smoothing_half_life_ms: f
            .value("smoothing_half_life", |v| parse_duration_ms(v, 3600))?
            .unwrap_or(DEFAULT_SMOOTHING_HALF_LIFE_MS),
        babel_port: f.value("babel_port", parse_port)?.unwrap_or(DEFAULT_BABEL_PORT),
        state_file: path_or(&f, "state_file", "/var/lib/weft/state")?,
        control_socket: path_or(&f, "control_socket", "/var/run/weft.sock")?,
        log_level: f.value("log_level", parse_log_level)?.unwrap_or(LogLevel::Info),
        mesh_prefix,
        wireguard_backend: f.value("wireguard_backend", parse_backend)?.unwrap_or(WireguardBackend::Auto),
        userspace_implementation: f
            .value("userspace_implementation", parse_program)?
            .unwrap_or_else(|| "wireguard-go".into()),
        uapi_dir: path_or(&f, "uapi_dir", "/var/run/wireguard")?,
        listen_port,
        listen_port_range,
        keepalive_ms: f.value("keepalive", parse_keepalive)?.unwrap_or(0),
        max_routes_per_neighbour: f
            .value("max_routes_per_neighbour", |v| parse_uint(v, 1, 1_000_000).map(|v| v as usize))?
            .unwrap_or(crate::babel::NeighbourLimits::default().max_routes),
        max_origins_per_neighbour: f
            .value("max_origins_per_neighbour", |v| parse_uint(v, 1, 1_000_000).map(|v| v as usize))?
            .unwrap_or(crate::babel::NeighbourLimits::default().max_origins),
        set_forwarding: f.value("set_forwarding", parse_bool)?.unwrap_or(true),
        origin_signatures: f
            .value("origin_signatures", |v| match v {
                "require" => Ok(true),
                "off" => Ok(false),
                _ => Err(format!("{v:?} is not require or off")),
            })?
            .unwrap_or(true),
        end_to_end: end_to_end.map(|(v, _)| v),
        end_to_end_port: f.value("end_to_end_port", parse_port)?.unwrap_or(crate::mesh::e2e::DEFAULT_PORT),
        end_to_end_max_peers: f
            .value("end_to_end_max_peers", |v| parse_uint(v, 1, 65_536).map(|v| v as usize))?
            .unwrap_or(crate::mesh::e2e::DEFAULT_MAX_PEERS),
        end_to_end_mtu: f.value("end_to_end_mtu", |v| parse_uint(v, 1280, 65_535).map(|v| v as u32))?,
        domain: f.value("domain", parse_domain)?.unwrap_or_else(|| DEFAULT_DOMAIN.into()),
        hosts_file: f
            .value("hosts_file", parse_optional_path)?
            .unwrap_or_else(|| Some(PathBuf::from(DEFAULT_HOSTS_FILE))),
        metrics_file: f
            .value("metrics_file", parse_optional_path)?
            .unwrap_or_else(|| Some(PathBuf::from(DEFAULT_METRICS_FILE))),
        default_policy_accept: f.value("default_policy", parse_action)?.unwrap_or(true),
    };

    let trust = TrustConfig {
        private_key_file: path_or(&f, "private_key_file", "/etc/weft/private.key")?,
        credential_file: path_or(&f, "credential_file", "/etc/weft/node.cred")?,
        ca_public_keys: key_list(&f, "ca_public_key", parse_public_key, warnings)?,
        trusted_keys: key_list(&f, "trusted_key", |v| parse_node_key(first_word(v)), warnings)?,
        trusted_signing_keys: trusted_signing_keys(&f)?,
        revocation_file: path_or(&f, "revocation_file", "/etc/weft/revoked")?,
    };

    f.warn_unknown(warnings);
    let intervals = Intervals { hello_ms: hello_interval_ms, update_ms: update_set };
    Ok((main, trust, intervals))
}

fn first_word(v: &str) -> &str {
    v.split_whitespace().next().unwrap_or("")
}

/// The second words of `list trusted_key 'WGKEY SIGNKEY'`.
fn trusted_signing_keys(f: &Fields<'_>) -> Result<Vec<(PublicKey, [u8; 32])>, ConfigError> {
    let mut out = Vec::new();
    for (v, line) in f.list("trusted_key") {
        let words: Vec<&str> = v.split_whitespace().collect();
        let signing = match words.as_slice() {
            [_] | [] => continue,
            [_, s] => crate::base64::decode_array::<32>(s).map_err(|e| {
                f.invalid(
                    "trusted_key",
                    v,
                    line,
                    format!(
                        "a signing key after the WireGuard key: {e} (the output of `weft pubkey --signing`)"
                    ),
                )
            })?,
            _ => {
                return Err(f.invalid(
                    "trusted_key",
                    v,
                    line,
                    "a WireGuard key, then at most its signing key".into(),
                ))
            }
        };
        let key = parse_node_key(words[0]).map_err(|e| f.invalid("trusted_key", v, line, e))?;
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, signing));
        }
    }
    Ok(out)
}

fn parse_action(s: &str) -> Result<bool, Expected> {
    match s {
        "accept" => Ok(true),
        "drop" => Ok(false),
        "reject" => Err("accept or drop (weft drops; it sends no rejections)".into()),
        _ => Err("accept or drop".into()),
    }
}

/// A `config policy` section; `None` when disabled.
fn read_policy(
    file: &str,
    s: &Section,
    warnings: &mut Vec<Warning>,
) -> Result<Option<crate::mesh::policy::Rule>, ConfigError> {
    use crate::mesh::policy::{parse_ports, Protos, Rule};
    let f = Fields::new(file, s, POLICY_OPTIONS);
    let group = |name: &str| -> Result<Option<String>, ConfigError> {
        f.value(name, |v| {
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err("a group name, as in the credentials (no spaces)".to_string())
            } else {
                Ok(v.to_string())
            }
        })
    };
    let (src_group, dest_group) = (group("src_group")?, group("dest_group")?);
    let mut dest_ports = Vec::new();
    for (v, line) in f.list("dest_port") {
        dest_ports.extend(parse_ports(v).map_err(|e| f.invalid("dest_port", v, line, e))?);
    }
    let protos = match f.get("proto", Protos::parse)? {
        Some((p, line)) => {
            if !dest_ports.is_empty() && (p.is_all() || p.icmp) {
                return Err(f.conflict(line, format!("dest_port needs proto tcp and/or udp, not '{p}'")));
            }
            p
        }
        // Ports without a protocol: TCP and UDP, as fw4 reads them.
        None if !dest_ports.is_empty() => Protos { tcp: true, udp: true, icmp: false },
        None => Protos::ALL,
    };
    let (accept, _) = f.required("action", parse_action)?;
    let enabled = f.value("enabled", parse_bool)?.unwrap_or(true);
    f.warn_unknown(warnings);
    Ok(enabled.then(|| Rule { name: s.name.clone(), src_group, dest_group, protos, dest_ports, accept }))
}

fn path_or(f: &Fields<'_>, name: &str, default: &str) -> Result<PathBuf, ConfigError> {
    Ok(f.value(name, parse_abs_path)?.unwrap_or_else(|| PathBuf::from(default)))
}

/// A list of keys; a key given twice is kept once, with a warning.
fn key_list(
    f: &Fields<'_>,
    name: &str,
    parse: fn(&str) -> Result<PublicKey, Expected>,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<PublicKey>, ConfigError> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for (v, line) in f.list(name) {
        let k = parse(v).map_err(|e| f.invalid(name, v, line, e))?;
        if keys.contains(&k) {
            warnings.push(Warning::new(f.file, line, format!("{name} {k} is listed twice")));
        } else {
            keys.push(k);
        }
    }
    Ok(keys)
}

fn read_interface(
    file: &str,
    s: &Section,
    trust: &TrustConfig,
    intervals: &Intervals,
    warnings: &mut Vec<Warning>,
) -> Result<(InterfaceConfig, usize), ConfigError> {
    let f = Fields::new(file, s, INTERFACE_OPTIONS);
    let (ifname, line) = f.required("ifname", parse_ifname)?;
    let wireguard = match f.get("wireguard", parse_bool)? {
        // Not fatal: a fresh router (the shipped configuration) runs and
        // admits nobody until a CA or trusted key is added, rather than
        // refusing to start or speaking unauthenticated Babel.
        Some((true, wg_line)) => {
            if !trust.has_trust_material() {
                warnings.push(Warning::new(
                    file,
                    wg_line,
                    format!(
                        "{}: wireguard is 1 but no ca_public_key or trusted_key is configured: \
                         no neighbour will be admitted until one is",
                        f.label
                    ),
                ));
            }
            true
        }
        Some((false, _)) => false,
        None => trust.has_trust_material(),
    };
    let (hello_interval_ms, update_interval_ms) = intervals.for_link(&f)?;
    let iface = InterfaceConfig {
        ifname,
        enabled: f.value("enabled", parse_bool)?.unwrap_or(true),
        kind: f.value("type", parse_interface_type)?.unwrap_or(InterfaceType::Auto),
        wireguard,
        hello_interval_ms,
        update_interval_ms,
        rxcost: f.value("rxcost", parse_rxcost)?,
        split_horizon: f.value("split_horizon", parse_bool)?,
        link_quality: f.value("link_quality", parse_bool)?,
        v4_via_v6: f.value("v4_via_v6", parse_bool)?.unwrap_or(true),
    };
    f.warn_unknown(warnings);
    Ok((iface, line))
}

#[cfg(test)]
mod tests;
