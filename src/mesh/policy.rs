//! Group policy (microsegmentation), pure: from the configured rules, this
//! node's groups, the end-to-end peers and the mesh interfaces, the
//! nftables table `inet weft` that enforces it. The daemon's edge
//! ([`crate::daemon::policy`]) hands the text to `nft -f -`.
//!
//! Who sent a packet is decided cryptographically: a packet that arrives on
//! `weft-e2e` was decrypted with peer n's session and WireGuard accepted it
//! only because its source lies in n's allowed-ips, so a source set built
//! from the allowed-ips of the peers in group G means "sent by a node of
//! G". Per-hop tunnels carry nothing for us from an end-to-end node (its
//! traffic to our addresses goes end to end), so a source of an end-to-end
//! node arriving per hop is a spoof and is dropped. (Strict reverse-path
//! filtering would also catch it, but Babel's routes are often asymmetric
//! and it would drop honest forwarded traffic.)
//!
//! A node enforces policy for traffic *for itself*: to its own addresses
//! (input) and to what it routes out of the mesh (forwarded to a non-mesh
//! interface: its LAN, its uplink). Traffic it relays between mesh
//! interfaces is not its business. Rules whose `dest_group` this node is
//! not in are left out; the first matching rule wins, then the default.
//! Established and related traffic is always let through: a policy governs
//! who may open a connection.

use std::fmt::Write;

use crate::babel::Prefix;

/// The nftables table weft owns (never fw4's `inet fw4`).
pub const TABLE: &str = "inet weft";

/// Protocols a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Protos {
    pub tcp: bool,
    pub udp: bool,
    pub icmp: bool,
}

impl Protos {
    pub const ALL: Protos = Protos { tcp: false, udp: false, icmp: false };

    pub fn is_all(&self) -> bool {
        *self == Protos::ALL
    }

    /// Parses `all`/`any` or a space-separated set of `tcp`, `udp`, `icmp`.
    pub fn parse(s: &str) -> Result<Protos, String> {
        let mut p = Protos::ALL;
        for w in s.split_whitespace() {
            match w {
                "all" | "any" => return Ok(Protos::ALL),
                "tcp" => p.tcp = true,
                "udp" => p.udp = true,
                "icmp" => p.icmp = true,
                _ => return Err(format!("{w:?} is not tcp, udp, icmp or all")),
            }
        }
        if p.is_all() {
            return Err("empty: tcp, udp, icmp or all".into());
        }
        Ok(p)
    }

    /// IP protocol numbers: nft resolves names through /etc/protocols, which
    /// a host nobody prepared may lack (`ipv6-icmp` then fails the table).
    fn numbers(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.tcp {
            v.push("6");
        }
        if self.udp {
            v.push("17");
        }
        if self.icmp {
            v.extend(["1", "58"]);
        }
        v
    }
}

impl std::fmt::Display for Protos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let mut names = Vec::new();
        for (on, n) in [(self.tcp, "tcp"), (self.udp, "udp"), (self.icmp, "icmp")] {
            if on {
                names.push(n);
            }
        }
        f.write_str(&names.join(" "))
    }
}

/// One `config policy` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The section's name, if it has one (for `weft status`).
    pub name: Option<String>,
    /// `src_group`: the sending node's credential has this group. `None`:
    /// any sender, also one that cannot be attributed (per hop).
    pub src_group: Option<String>,
    /// `dest_group`: this node's credential has this group. `None`: every node.
    pub dest_group: Option<String>,
    pub protos: Protos,
    /// `dest_port`: inclusive ranges; empty: any port.
    pub dest_ports: Vec<(u16, u16)>,
    /// `action`: accept or drop.
    pub accept: bool,
}

impl Rule {
    fn matches(&self) -> String {
        let mut s = String::new();
        let names = self.protos.numbers();
        match names.len() {
            0 => {}
            1 => {
                let _ = write!(s, "meta l4proto {} ", names[0]);
            }
            _ => {
                let _ = write!(s, "meta l4proto {{ {} }} ", names.join(", "));
            }
        }
        if !self.dest_ports.is_empty() {
            let ports: Vec<String> = self
                .dest_ports
                .iter()
                .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
                .collect();
            let _ = write!(s, "th dport {{ {} }} ", ports.join(", "));
        }
        s
    }
}

/// Parses `dest_port` values: `N` or `N-M`, several per value separated by
/// spaces (as fw4 writes them).
pub fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let port = |p: &str| {
        p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(|| format!("{p:?} is not a port 1-65535"))
    };
    let mut v = Vec::new();
    for w in s.split_whitespace() {
        let r = match w.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(w)?, port(w)?),
        };
        if r.0 > r.1 {
            return Err(format!("{w}: the range is backwards"));
        }
        v.push(r);
    }
    if v.is_empty() {
        return Err("empty: a port or a range N-M".into());
    }
    Ok(v)
}

/// One end-to-end peer, as the policy sees it.
pub struct PeerSources<'a> {
    /// Its allowed-ips on `weft-e2e`: what WireGuard accepts only from it.
    pub allowed: &'a [Prefix],
    /// Its credential's groups.
    pub groups: &'a [String],
}

/// What the daemon knows for the table: configuration and interfaces.
pub struct Local<'a> {
    pub rules: &'a [Rule],
    pub default_accept: bool,
    /// Our end-to-end UDP port and Babel's.
    pub e2e_port: u16,
    pub babel_port: u16,
    /// Interfaces Babel runs on in plain (babeld, BIRD): unauthenticated,
    /// policed like per-hop tunnels (which are matched by name, `weft*`).
    pub plain_interfaces: &'a [String],
    /// The raw interfaces the tunnels run over: nothing from them may be
    /// forwarded into `weft-e2e`.
    pub raw_interfaces: &'a [String],
    /// Every installed prefix (the ones routed hop by hop are told apart here).
    pub installed: &'a [Prefix],
}

/// What the table is made from: the daemon's part, and what the core
/// verified.
pub struct Inputs<'a> {
    pub local: &'a Local<'a>,
    /// Our own credential's groups.
    pub own_groups: &'a [String],
    pub transport_prefix: Prefix,
    pub peers: &'a [PeerSources<'a>],
    /// Prefixes of end-to-end nodes that have no peer now (unreachable):
    /// they come from nowhere either.
    pub unreachable: &'a [Prefix],
    /// Selected prefixes routed hop by hop (nodes without end to end,
    /// babeld hosts): a source whose longest match is one of these may come
    /// per hop, even inside an end-to-end gateway's `::/0`.
    pub hop_routes: &'a [Prefix],
}

/// The kind of a named set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ifname,
    V4,
    V6,
}

impl Kind {
    fn decl(self) -> &'static str {
        match self {
            Kind::Ifname => "type ifname",
            Kind::V4 => "type ipv4_addr; flags interval",
            Kind::V6 => "type ipv6_addr; flags interval",
        }
    }
}

/// The table: a structure (chains, counters, set declarations) that changes
/// only with the rules and our groups, and sets whose elements follow the
/// peers and interfaces. A change of the sets alone is applied without
/// replacing the table, so the counters keep counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    structure: String,
    sets: Vec<(String, Kind, Vec<String>)>,
    /// Counter names, in the order `weft status` shows them, and the index
    /// of the configured rule each one counts (`None`: not a rule).
    pub counters: Vec<(String, Option<usize>)>,
}

/// Counter names that are not rules.
pub const SPOOFED: &str = "spoofed";
pub const FOREIGN: &str = "foreign";
pub const DEFAULT: &str = "policy_default";

fn rule_counter(i: usize) -> String {
    format!("policy_{i}")
}

/// A prefix as an inclusive range of one family's address space
/// (IPv4 in the low 32 bits).
fn range(p: &Prefix) -> (bool, u128, u128) {
    let (v4, a, bits) = match p {
        Prefix::V4(a, _) => (true, u128::from(u32::from(*a)), 32),
        Prefix::V6(a, _) => (false, u128::from(*a), 128),
    };
    let host = u32::from(bits - p.len().min(bits));
    let mask = if host == 128 { u128::MAX } else { (1u128 << host) - 1 };
    (v4, a & !mask, a | mask)
}

fn render(v4: bool, lo: u128, hi: u128) -> String {
    let one = |x: u128| {
        if v4 {
            std::net::Ipv4Addr::from(x as u32).to_string()
        } else {
            std::net::Ipv6Addr::from(x).to_string()
        }
    };
    if lo == hi {
        one(lo)
    } else {
        format!("{}-{}", one(lo), one(hi))
    }
}

/// Set elements (IPv4, IPv6) for the addresses whose longest matching
/// prefix in `items` is flagged: WireGuard attributes a source to the peer
/// with the longest allowed-ip holding it, so a group's set is its members'
/// prefixes minus longer ones of non-members. Ranges, merged, never
/// overlapping (nftables refuses overlapping intervals).
fn owned(items: &[(Prefix, bool)]) -> (Vec<String>, Vec<String>) {
    let mut r: Vec<(bool, u128, u128, bool)> = items
        .iter()
        .map(|(p, f)| {
            let (v4, lo, hi) = range(p);
            (v4, lo, hi, *f)
        })
        .collect();
    // Prefixes nest or are disjoint: by start, the longer range first, this
    // is a walk down a tree; each prefix owns its range minus its children.
    r.sort_by(|a, b| (a.0, a.1, b.2).cmp(&(b.0, b.1, a.2)));
    r.dedup_by(|b, a| (a.0, a.1, a.2) == (b.0, b.1, b.2));
    let mut out: Vec<(bool, u128, u128)> = Vec::new();
    let mut emit = |v4: bool, lo: u128, hi: u128| match out.last_mut() {
        Some(last) if last.0 == v4 && last.2.checked_add(1) == Some(lo) => last.2 = hi,
        _ => out.push((v4, lo, hi)),
    };
    // (family, end, flagged, next address not yet given to a child).
    let mut stack: Vec<(bool, u128, bool, Option<u128>)> = Vec::new();
    let close = |top: (bool, u128, bool, Option<u128>), emit: &mut dyn FnMut(bool, u128, u128)| {
        if let (true, Some(c)) = (top.2, top.3) {
            emit(top.0, c, top.1);
        }
    };
    for &(v4, lo, hi, f) in &r {
        while let Some(&top) = stack.last() {
            if top.0 == v4 && top.1 >= lo {
                break;
            }
            close(top, &mut emit);
            stack.pop();
        }
        if let Some(top) = stack.last_mut() {
            if let (true, Some(c)) = (top.2, top.3) {
                if c < lo {
                    emit(v4, c, lo - 1);
                }
            }
            top.3 = hi.checked_add(1).filter(|n| *n <= top.1);
        }
        stack.push((v4, hi, f, Some(lo)));
    }
    while let Some(top) = stack.pop() {
        close(top, &mut emit);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (v4, lo, hi) in out {
        if v4 {
            a.push(render(true, lo, hi))
        } else {
            b.push(render(false, lo, hi))
        }
    }
    (a, b)
}

fn quoted(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    v.sort();
    v.dedup();
    v
}

/// The two hooks: what arrives through `weft-e2e`, a per-hop tunnel
/// (named `weft*`, matched at once when one appears) or a plain Babel
/// interface and is for us (addressed to us, or forwarded out of the mesh).
/// In the forward hook, TCP SYNs into `weft-e2e` get their MSS clamped to
/// its MTU (ICMP "too big" is often filtered); a peer's packet going on into
/// the mesh is dropped (peers may send us only what is for us), and so is
/// one arriving per hop or raw and leaving through `weft-e2e` (it would be
/// attributed to us at the far end: laundering); what we relay between
/// mesh interfaces is not looked at.
const HOOKS: &str = "\tchain input {
\t\ttype filter hook input priority filter - 5; policy accept;
\t\tiifname \"weft-e2e\" jump from_e2e
\t\tiifname \"weft*\" jump from_hop
\t\tiifname @plain jump from_hop
\t}
\tchain forward {
\t\ttype filter hook forward priority filter - 5; policy accept;
\t\toifname \"weft-e2e\" tcp flags syn tcp option maxseg size set rt mtu
\t\tiifname \"weft-e2e\" oifname \"weft*\" counter name \"foreign\" drop
\t\tiifname \"weft-e2e\" oifname @plain counter name \"foreign\" drop
\t\tiifname \"weft*\" oifname \"weft-e2e\" counter name \"foreign\" drop
\t\tiifname @raw oifname \"weft-e2e\" counter name \"foreign\" drop
\t\toifname \"weft*\" return
\t\toifname @plain return
\t\tiifname \"weft-e2e\" jump from_e2e
\t\tiifname \"weft*\" jump from_hop
\t\tiifname @plain jump from_hop
\t}
";

/// Per hop: ICMP errors of our flows, multicast (Babel, neighbour
/// discovery), link-local ICMPv6 and Babel, and end-to-end UDP to our
/// transport address pass; then a source no node may use per hop (a
/// transport address, a link-local one, an end-to-end node's) is a spoof;
/// the rest is attributed to no node: only rules without `src_group` apply.
fn hop_head(tp: &Prefix, e2e_port: u16, babel_port: u16) -> String {
    let (tp, e2e, babel) = (tp.to_string(), e2e_port.to_string(), babel_port.to_string());
    [
        "\tchain from_hop {\n\t\tmeta l4proto { 1, 58 } ct state related accept\n",
        "\t\tip6 daddr ff00::/8 return\n\t\tip daddr 224.0.0.0/4 return\n",
        "\t\tip6 daddr fe80::/10 meta l4proto 58 return\n",
        "\t\tip6 daddr fe80::/10 udp dport ",
        &babel,
        " return\n",
        "\t\tip6 daddr ",
        &tp,
        " udp dport ",
        &e2e,
        " return\n",
        "\t\tip6 saddr { ",
        &tp,
        ", fe80::/10 } counter name \"spoofed\" drop\n",
        "\t\tip saddr @e2e4 counter name \"spoofed\" drop\n",
        "\t\tip6 saddr @e2e6 counter name \"spoofed\" drop\n",
        "\t\tct state established,related accept\n",
    ]
    .concat()
}

pub fn table(inp: &Inputs<'_>) -> Table {
    let mut sets = Vec::new();
    sets.push(("plain".to_string(), Kind::Ifname, quoted(inp.local.plain_interfaces)));
    sets.push(("raw".to_string(), Kind::Ifname, quoted(inp.local.raw_interfaces)));
    // Sources that only weft-e2e may carry: by longest match, as routing
    // would answer them, so a per-hop route inside a gateway's ::/0 stays
    // allowed per hop.
    let mut e2e: Vec<(Prefix, bool)> =
        inp.peers.iter().flat_map(|p| p.allowed.iter().map(|a| (*a, true))).collect();
    e2e.extend(inp.unreachable.iter().map(|u| (*u, true)));
    e2e.extend(inp.hop_routes.iter().map(|h| (*h, false)));
    let (e4, e6) = owned(&e2e);
    sets.push(("e2e4".into(), Kind::V4, e4));
    sets.push(("e2e6".into(), Kind::V6, e6));

    // The rules in force here, and a source set per group they name.
    let active: Vec<(usize, &Rule)> = inp
        .local
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.dest_group.as_ref().is_none_or(|g| inp.own_groups.contains(g)))
        .collect();
    let mut groups: Vec<&str> = Vec::new();
    for (_, r) in &active {
        if let Some(g) = r.src_group.as_deref() {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    for (k, g) in groups.iter().enumerate() {
        let items: Vec<(Prefix, bool)> = inp
            .peers
            .iter()
            .flat_map(|p| {
                let member = p.groups.iter().any(|x| x == g);
                p.allowed.iter().map(move |a| (*a, member))
            })
            .collect();
        let (a, b) = owned(&items);
        sets.push((format!("src{k}_4"), Kind::V4, a));
        sets.push((format!("src{k}_6"), Kind::V6, b));
    }

    let mut counters: Vec<(String, Option<usize>)> = vec![(SPOOFED.into(), None), (FOREIGN.into(), None)];
    counters.extend(active.iter().map(|(i, _)| (rule_counter(*i), Some(*i))));
    counters.push((DEFAULT.into(), None));

    let mut s = String::new();
    for (name, kind, _) in &sets {
        s.extend(["\tset ", name, " { ", kind.decl(), "; }\n"]);
    }
    for (c, _) in &counters {
        s.extend(["\tcounter ", c, " { }\n"]);
    }
    s.push_str(HOOKS);
    s.push_str(&hop_head(&inp.transport_prefix, inp.local.e2e_port, inp.local.babel_port));
    let rule = |s: &mut String, saddr: &str, r: &Rule, i: usize| {
        let verdict = if r.accept { "\" accept\n" } else { "\" drop\n" };
        s.extend(["\t\t", saddr, &r.matches(), "counter name \"", &rule_counter(i), verdict]);
    };
    let default = if inp.local.default_accept {
        "\t\tcounter name \"policy_default\" accept\n\t}\n"
    } else {
        "\t\tcounter name \"policy_default\" drop\n\t}\n"
    };
    for (i, r) in active.iter().filter(|(_, r)| r.src_group.is_none()) {
        rule(&mut s, "", r, *i);
    }
    s.push_str(default);
    s.push_str("\tchain from_e2e {\n\t\tct state established,related accept\n");
    for (i, r) in &active {
        match r.src_group.as_deref() {
            None => rule(&mut s, "", r, *i),
            Some(g) => {
                let k = groups.iter().position(|x| *x == g).unwrap_or(0).to_string();
                rule(&mut s, &["ip saddr @src", &k, "_4 "].concat(), r, *i);
                rule(&mut s, &["ip6 saddr @src", &k, "_6 "].concat(), r, *i);
            }
        }
    }
    s.push_str(default);
    Table { structure: s, sets, counters }
}

impl Table {
    /// Whether `other` differs from this table only in its sets' elements.
    pub fn same_structure(&self, other: &Table) -> bool {
        self.structure == other.structure
    }

    /// The whole table, replacing any left by an earlier run, as one
    /// transaction (`nft -f -` applies all of it or nothing).
    pub fn full(&self) -> String {
        let mut s = format!("table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{\n");
        s.push_str(&self.structure);
        s.push_str("}\n");
        s.push_str(&self.elements(None));
        s
    }

    /// The sets that differ from `old`'s, refilled in one transaction.
    pub fn update_from(&self, old: &Table) -> String {
        self.elements(Some(old))
    }

    fn elements(&self, old: Option<&Table>) -> String {
        let mut s = String::new();
        for (name, kind, elems) in &self.sets {
            let before = old.and_then(|o| o.sets.iter().find(|(n, k, _)| n == name && k == kind));
            if let Some((_, _, e)) = before {
                if e == elems {
                    continue;
                }
                let _ = writeln!(s, "flush set {TABLE} {name}");
            }
            if !elems.is_empty() {
                let _ = writeln!(s, "add element {TABLE} {name} {{ {} }}", elems.join(", "));
            }
        }
        s
    }
}

/// Reads `nft list counters table inet weft`: (name, packets, bytes).
pub fn parse_counters(text: &str) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut name: Option<&str> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("counter ") {
            name = rest.split_whitespace().next();
        } else if let (Some(n), Some(rest)) = (name, line.strip_prefix("packets ")) {
            let mut w = rest.split_whitespace();
            let packets = w.next().and_then(|p| p.parse().ok());
            let bytes = w.nth(1).and_then(|b| b.parse().ok());
            if let (Some(p), Some(b)) = (packets, bytes) {
                out.push((n.to_string(), p, b));
            }
            name = None;
        }
    }
    out
}

#[cfg(test)]
mod tests;
