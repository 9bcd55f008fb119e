//! The test bed of the daemon benchmarks: the shared namespace harness
//! (`tests/common/netns.rs`), plus what measuring needs: one link-local
//! address per link end, atomic one-ended failures, and a forwarding-path
//! check of every (node, announced address) pair read straight from the
//! kernels' routing tables.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use weft::sim::Topology;

use crate::common::netns::{ll, node_v4, node_v6, Net};
use crate::rtnl::{Route, Rtnl};

/// How a link fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// One end set administratively down: that end sees the interface go
    /// down, the other loses carrier. Both notice at once.
    Carrier,
    /// Every packet on the link dropped by nftables at one end (both
    /// directions); both interfaces stay up, only Hellos stop arriving.
    Silent,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Carrier => "carrier down",
            Failure::Silent => "silent (nft drop)",
        }
    }
}

/// What a forwarding-path check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathCheck {
    pub total: usize,
    pub ok: usize,
    /// No route at some hop.
    pub no_route: usize,
    /// A hop over a failed link.
    pub dead_link: usize,
    /// A route whose next hop is not the neighbour's address on that link,
    /// or whose interface is not a mesh link.
    pub bad_hop: usize,
    pub loops: usize,
    /// Per link: how many working paths cross it.
    pub per_link: Vec<usize>,
}

impl PathCheck {
    pub fn all_ok(&self) -> bool {
        self.ok == self.total
    }
}

pub struct Bed {
    pub net: Net,
    rtnl: Vec<Rtnl>,
    /// Per node: ifindex -> (neighbour, link index).
    ports: Vec<HashMap<u32, (usize, usize)>>,
    /// Links failed now (link indices).
    failed: HashSet<usize>,
    /// Every announced address with its node.
    targets: Vec<(IpAddr, usize)>,
    _ndisc: NdiscTable,
}

/// The kernel's IPv6 neighbour table is one for all network namespaces,
/// with host-wide limits (gc_thresh3 1024 by default). A bed of many
/// namespaces needs an entry per link end for the Babel multicast group and
/// one per neighbour spoken to by unicast; past the limit the kernel
/// refuses sends with EINVAL ("neighbor table overflow!" in dmesg, counted
/// as Ip6OutNoRoutes) and the daemons lose Hellos. A router has its own
/// kernel and a few neighbours, so the limit belongs to the bed: raised for
/// its lifetime, restored after.
struct NdiscTable {
    saved: Vec<(String, String)>,
}

impl NdiscTable {
    fn fit(link_ends: usize) -> NdiscTable {
        // Multicast and unicast entries per link end, twice over for slack.
        let need = link_ends * 4;
        let mut saved = Vec::new();
        for k in ["gc_thresh1", "gc_thresh2", "gc_thresh3"] {
            let path = format!("/proc/sys/net/ipv6/neigh/default/{k}");
            let Ok(cur) = std::fs::read_to_string(&path) else { continue };
            let cur = cur.trim().to_string();
            let want = match k {
                "gc_thresh1" => need / 4,
                _ => need,
            };
            if cur.parse::<usize>().is_ok_and(|c| c < want) && std::fs::write(&path, want.to_string()).is_ok()
            {
                saved.push((path, cur));
            }
        }
        if !saved.is_empty() {
            println!(
                "  (host IPv6 neighbour table limits raised for the bed: gc_thresh3 {need}, restored after)"
            );
        }
        NdiscTable { saved }
    }
}

impl Drop for NdiscTable {
    fn drop(&mut self) {
        for (path, v) in &self.saved {
            let _ = std::fs::write(path, v);
        }
    }
}

/// Runs `ip -batch -` in namespace `ns` with `script` on stdin; `force`
/// keeps going past failing lines (e.g. an address already there).
pub fn ip_batch(ns: &str, script: &str, force: bool) -> Result<(), String> {
    let mut args = vec!["netns", "exec", ns, "ip"];
    if force {
        args.push("-force");
    }
    args.extend(["-batch", "-"]);
    let mut c = Command::new("ip")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip -batch in {ns}: {e}"))?;
    c.stdin.take().unwrap().write_all(script.as_bytes()).map_err(|e| e.to_string())?;
    let out = c.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() || force {
        Ok(())
    } else {
        Err(format!("ip -batch in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Bed {
    pub fn new(topo: &Topology) -> Bed {
        let net = Net::new(topo);
        let n = net.len();
        // The kernel gives each veth an EUI-64 link-local address besides
        // the harness's fe80::i:j when it comes up. Keep only the harness's
        // (and stop autoconfiguration) so that each daemon has exactly one
        // address per link: weft r0.1 sends from the kernel's choice but
        // only accepts IHUs addressed to the lowest, and with two addresses
        // these can differ (see docs/BENCHMARKS.md).
        for i in 0..n {
            let mut script = String::new();
            for l in net.links.iter().filter(|l| l.a == i || l.b == i) {
                let (dev, peer) = if l.a == i { (&l.dev_a, l.b) } else { (&l.dev_b, l.a) };
                script += &format!(
                    "link set dev {dev} addrgenmode none\naddress flush dev {dev} scope link\naddress add {}/64 dev {dev} nodad\n",
                    ll(i, peer)
                );
            }
            ip_batch(&net.nodes[i].ns, &script, false).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut ports = vec![HashMap::new(); n];
        for (k, l) in net.links.iter().enumerate() {
            for (node, dev, peer) in [(l.a, &l.dev_a, l.b), (l.b, &l.dev_b, l.a)] {
                let out = net.exec_ok(node, &["cat", &format!("/sys/class/net/{dev}/ifindex")]);
                let ifindex: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("ifindex");
                ports[node].insert(ifindex, (peer, k));
            }
        }
        let rtnl = net.nodes.iter().map(|nd| Rtnl::open(&nd.ns).expect("rtnetlink socket")).collect();
        let targets = (0..n)
            .flat_map(|i| [(node_v6(i).parse().unwrap(), i), (node_v4(i).parse().unwrap(), i)])
            .collect();
        let _ndisc = NdiscTable::fit(2 * net.links.len());
        Bed { net, rtnl, ports, failed: HashSet::new(), targets, _ndisc }
    }

    pub fn len(&self) -> usize {
        self.net.len()
    }

    /// Checks only the IPv6 addresses (for daemons announcing only those).
    pub fn ipv6_targets_only(&mut self) {
        self.targets.retain(|(a, _)| a.is_ipv6());
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.net.nodes[i].ns
    }

    /// Routes of `protocol` in node `i`'s main table.
    pub fn routes(&mut self, i: usize, protocol: u8) -> Vec<Route> {
        let all = self.rtnl[i].routes().unwrap_or_else(|e| panic!("route dump in node {i}: {e}"));
        all.into_iter().filter(|r| r.protocol == protocol && r.is_unicast_main()).collect()
    }

    /// Number of routes of `protocol` in node `i` (any table).
    pub fn count_routes(&mut self, i: usize, protocol: u8) -> usize {
        let all = self.rtnl[i].routes().unwrap_or_else(|e| panic!("route dump in node {i}: {e}"));
        all.iter().filter(|r| r.protocol == protocol).count()
    }

    /// Follows every node's forwarding path to every announced address
    /// through the routes of `protocol`, as the kernels would forward.
    pub fn check_paths(&mut self, protocol: u8) -> PathCheck {
        let n = self.len();
        let tables: Vec<Vec<Route>> = (0..n).map(|i| self.routes(i, protocol)).collect();
        let mut c = PathCheck { per_link: vec![0; self.net.links.len()], ..PathCheck::default() };
        let mut crossed = Vec::new();
        for &(addr, dst) in &self.targets {
            for src in (0..n).filter(|&s| s != dst) {
                c.total += 1;
                let mut cur = src;
                let mut hops = 0;
                crossed.clear();
                loop {
                    if cur == dst {
                        c.ok += 1;
                        for &l in &crossed {
                            c.per_link[l] += 1;
                        }
                        break;
                    }
                    hops += 1;
                    if hops > n {
                        c.loops += 1;
                        break;
                    }
                    let best = tables[cur].iter().filter(|r| r.contains(addr)).max_by_key(|r| r.dst_len);
                    let Some(r) = best else {
                        c.no_route += 1;
                        break;
                    };
                    let Some(&(next, link)) = self.ports[cur].get(&r.oif) else {
                        c.bad_hop += 1;
                        break;
                    };
                    if r.gateway != Some(ll(next, cur).parse().unwrap()) {
                        c.bad_hop += 1;
                        break;
                    }
                    if self.failed.contains(&link) {
                        c.dead_link += 1;
                        break;
                    }
                    crossed.push(link);
                    cur = next;
                }
            }
        }
        c
    }

    /// Fails link `a`-`b` at `a`'s end, with one command.
    pub fn fail(&mut self, a: usize, b: usize, how: Failure) {
        let dev = self.net.dev(a, b);
        match how {
            Failure::Carrier => {
                self.net.exec_ok(a, &["ip", "link", "set", "dev", &dev, "down"]);
            }
            Failure::Silent => {
                let script = format!(
                    "table inet benchsilent {{\n chain i {{ type filter hook input priority -10; iifname \"{dev}\" drop; }}\n chain o {{ type filter hook output priority -10; oifname \"{dev}\" drop; }}\n chain f {{ type filter hook forward priority -10; iifname \"{dev}\" drop; oifname \"{dev}\" drop; }}\n}}\n"
                );
                let mut c = self.net.in_ns(a, &["nft", "-f", "-"]);
                c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
                let mut child = c.spawn().expect("nft");
                child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
                let out = child.wait_with_output().unwrap();
                assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        self.failed.insert(self.net.link_index(a, b));
    }

    /// Undoes [`Bed::fail`].
    pub fn repair(&mut self, a: usize, b: usize, how: Failure) {
        let dev = self.net.dev(a, b);
        match how {
            Failure::Carrier => {
                let script = format!("link set dev {dev} up\naddress add {}/64 dev {dev} nodad\n", ll(a, b));
                ip_batch(self.ns(a), &script, true).unwrap();
            }
            Failure::Silent => {
                self.net.exec_ok(a, &["nft", "delete", "table", "inet", "benchsilent"]);
            }
        }
        self.failed.remove(&self.net.link_index(a, b));
    }

    /// (Re)creates a counter of the Babel datagrams (to UDP 6696) each node
    /// sends, as sent (IPv6 datagrams, before any loss on the link).
    pub fn reset_babel_counters(&self) {
        for i in 0..self.len() {
            let _ = self.net.exec(i, &["nft", "delete", "table", "inet", "benchcount"]);
            self.net.nft(
                i,
                "table inet benchcount {\n chain o { type filter hook output priority 0; policy accept; udp dport 6696 counter; }\n}\n",
            );
        }
    }

    /// (datagrams, bytes) each node sent since [`Bed::reset_babel_counters`].
    pub fn babel_counters(&self) -> Vec<(u64, u64)> {
        (0..self.len())
            .map(|i| {
                let out = self.net.exec_ok(i, &["nft", "list", "table", "inet", "benchcount"]);
                let text = String::from_utf8_lossy(&out.stdout);
                let words: Vec<&str> = text.split_whitespace().collect();
                words
                    .windows(4)
                    .find(|w| w[0] == "packets" && w[2] == "bytes")
                    .map(|w| (w[1].parse().unwrap_or(0), w[3].parse().unwrap_or(0)))
                    .unwrap_or((0, 0))
            })
            .collect()
    }

    /// UDP datagrams node `i`'s kernel dropped because a socket's receive
    /// buffer was full (IPv6: Babel's), since the namespace was made.
    pub fn udp_rcvbuf_errors(&self, i: usize) -> u64 {
        let out = self.net.exec_ok(i, &["cat", "/proc/net/snmp6"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Udp6RcvbufErrors").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0)
    }
}
