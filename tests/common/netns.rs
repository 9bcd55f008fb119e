//! Network-namespace test beds built from the simulator's JSON topology
//! format: one namespace per node, one veth pair per link, and helpers to
//! run programs inside, break links (carrier down or silent nftables drop),
//! add loss, and wait for conditions. Everything is torn down on drop,
//! including after a panic.
//!
//! A node is a plain Linux host: the bed leaves the kernel's defaults alone
//! (forwarding off, duplicate address detection on), because turning
//! forwarding on and waiting for DAD are the daemon's job. Each link end
//! gets one fixed link-local address ([`ll`]) instead of the kernel's
//! MAC-derived one (`addrgenmode none`), so that tests can name next hops;
//! it is tentative for a second or two after the link comes up, like any.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weft::sim::Topology;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command and returns its output; panics with the command line and
/// stderr if it cannot be run or fails.
pub fn sh(cmd: &[&str]) -> Output {
    let out =
        Command::new(cmd[0]).args(&cmd[1..]).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// True if we can create network namespaces (root, iproute2 present).
pub fn have_netns() -> bool {
    let me = unsafe { libc_geteuid() };
    me == 0 && Command::new("ip").arg("-V").output().is_ok()
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

pub struct Node {
    pub name: String,
    pub ns: String,
    pub index: usize,
    pub dir: PathBuf,
    pub daemon: Option<Child>,
}

pub struct Link {
    pub a: usize,
    pub b: usize,
    /// Device names at a and at b.
    pub dev_a: String,
    pub dev_b: String,
}

pub struct Net {
    pub tag: String,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub root: PathBuf,
    /// Shared Ethernet segments (see [`Net::add_segment`]).
    pub segments: Vec<Segment>,
}

/// A shared Ethernet segment: a bridge in its own namespace, one port per
/// member node, so that every member hears every other's multicast.
pub struct Segment {
    /// Namespace that holds the bridge.
    pub ns: String,
    /// Device name of the segment in each member node.
    pub dev: String,
    pub members: Vec<usize>,
}

/// Link-local address of node `i` on its link to node `j`.
pub fn ll(i: usize, j: usize) -> String {
    format!("fe80::{:x}:{:x}", i + 1, j + 1)
}

/// Link-local address of node `i` on shared segment `k`.
pub fn seg_ll(i: usize, k: usize) -> String {
    format!("fe80::{:x}:5e:{:x}", i + 1, k)
}

/// The IPv6 address node `i` announces (on its loopback).
pub fn node_v6(i: usize) -> String {
    format!("fd77::{:x}", i + 1)
}

/// The IPv4 address node `i` announces (on its loopback).
pub fn node_v4(i: usize) -> String {
    format!("10.77.{}.1", i + 1)
}

impl Net {
    /// Builds the namespaces and links of a topology.
    pub fn new(topo: &Topology) -> Net {
        Net::build(topo, true)
    }

    /// Like [`Net::new`], but each link end keeps the link-local address
    /// the kernel derives from its MAC, as on a router fresh out of the box.
    pub fn with_kernel_addresses(topo: &Topology) -> Net {
        Net::build(topo, false)
    }

    fn build(topo: &Topology, bed_addresses: bool) -> Net {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("w{:x}x{n}", std::process::id());
        let root = std::env::temp_dir().join(format!("weft-test-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("temp dir");
        let mut net = Net {
            tag: tag.clone(),
            nodes: Vec::new(),
            links: Vec::new(),
            root: root.clone(),
            segments: Vec::new(),
        };
        for (i, name) in topo.names.iter().enumerate() {
            let ns = format!("{tag}n{i}");
            // Record the node before creating it, so Drop cleans it up even
            // if a later step panics.
            let dir = root.join(format!("n{i}"));
            std::fs::create_dir_all(&dir).expect("node dir");
            net.nodes.push(Node { name: name.clone(), ns: ns.clone(), index: i, dir, daemon: None });
            sh(&["ip", "netns", "add", &ns]);
            net.exec_ok(i, &["ip", "link", "set", "lo", "up"]);
            net.exec_ok(i, &["ip", "addr", "add", &format!("{}/128", node_v6(i)), "dev", "lo"]);
            net.exec_ok(i, &["ip", "addr", "add", &format!("{}/32", node_v4(i)), "dev", "lo"]);
        }
        for (k, l) in topo.links.iter().enumerate() {
            let (ta, tb) = (format!("{tag}l{k}a"), format!("{tag}l{k}b"));
            let (dev_a, dev_b) = (format!("to{}", l.b), format!("to{}", l.a));
            sh(&["ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb]);
            sh(&["ip", "link", "set", &ta, "netns", &net.nodes[l.a].ns, "name", &dev_a]);
            sh(&["ip", "link", "set", &tb, "netns", &net.nodes[l.b].ns, "name", &dev_b]);
            for (node, dev, peer) in [(l.a, &dev_a, l.b), (l.b, &dev_b, l.a)] {
                net.exec_ok(node, &["ip", "link", "set", dev, "address", &mac(node, peer)]);
                if bed_addresses {
                    net.set_link_local(node, dev, &ll(node, peer));
                }
                net.exec_ok(node, &["ip", "link", "set", dev, "up"]);
            }
            net.links.push(Link { a: l.a, b: l.b, dev_a, dev_b });
        }
        net
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Makes node `i` a plain IP router, one that runs no routing daemon
    /// (an ISP's, between sites): turning on forwarding is that router's
    /// own configuration. Never for a node that runs weft, which must turn
    /// forwarding on by itself (nor babeld, which does too).
    pub fn plain_ip_router(&self, i: usize) {
        for switch in ["net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.forwarding"] {
            self.exec_ok(i, &["sysctl", "-qw", &format!("{switch}=1")]);
        }
    }

    /// Gives a (down) device of node `i` the link-local address `addr` as
    /// its only one: no MAC-derived address when it comes up. Duplicate
    /// address detection stays on: the address is tentative for a while
    /// after the link comes up, and the daemon must wait for it.
    pub fn set_link_local(&self, i: usize, dev: &str, addr: &str) {
        self.exec_ok(i, &["ip", "link", "set", dev, "addrgenmode", "none"]);
        self.exec_ok(i, &["ip", "addr", "flush", "dev", dev]);
        self.exec_ok(i, &["ip", "addr", "add", &format!("{addr}/64"), "dev", dev]);
    }

    /// Waits until node `i`'s device `dev` has a link-local address that
    /// finished duplicate address detection (for tests that use the link
    /// themselves, not through a daemon).
    pub fn wait_link_local(&self, i: usize, dev: &str, timeout: Duration) {
        let usable = || {
            let out = self.exec(i, &["ip", "-6", "addr", "show", "dev", dev, "scope", "link"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.contains("inet6 fe80:") && !text.contains("tentative")
        };
        if Net::wait_until(timeout, usable).is_none() {
            let out = self.exec(i, &["ip", "-6", "addr", "show", "dev", dev]);
            panic!(
                "node {i}: {dev} has no usable link-local address after {timeout:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    /// Joins `members` to one shared Ethernet segment: a bridge in a
    /// namespace of its own, and in each member a port named `dev` with the
    /// link-local address [`seg_ll`]. Returns the segment's index.
    pub fn add_segment(&mut self, members: &[usize], dev: &str) -> usize {
        let k = self.segments.len();
        let ns = format!("{}s{k}", self.tag);
        // Recorded before it exists, so Drop removes it whatever fails next.
        self.segments.push(Segment { ns: ns.clone(), dev: dev.to_string(), members: members.to_vec() });
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &ns, "link", "set", "br0", "up"]);
        for &m in members {
            let (port, tmp) = (format!("p{m}"), format!("{}s{k}m{m}", self.tag));
            sh(&["ip", "link", "add", &tmp, "type", "veth", "peer", "name", &port, "netns", &ns]);
            sh(&["ip", "link", "set", &tmp, "netns", &self.nodes[m].ns, "name", dev]);
            sh(&["ip", "-n", &ns, "link", "set", &port, "master", "br0"]);
            sh(&["ip", "-n", &ns, "link", "set", &port, "up"]);
            self.exec_ok(m, &["ip", "link", "set", dev, "address", &mac(m, 0xff00 + k)]);
            self.set_link_local(m, dev, &seg_ll(m, k));
            self.exec_ok(m, &["ip", "link", "set", dev, "up"]);
        }
        k
    }

    /// The command line that runs `cmd` inside node `i`'s namespace.
    pub fn in_ns(&self, i: usize, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.nodes[i].ns]).args(cmd);
        c
    }

    pub fn exec(&self, i: usize, cmd: &[&str]) -> Output {
        self.in_ns(i, cmd).output().unwrap_or_else(|e| panic!("cannot run {cmd:?} in node {i}: {e}"))
    }

    pub fn exec_ok(&self, i: usize, cmd: &[&str]) -> Output {
        let out = self.exec(i, cmd);
        assert!(out.status.success(), "{cmd:?} in node {i} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    pub fn link_index(&self, a: usize, b: usize) -> usize {
        self.links
            .iter()
            .position(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
            .unwrap_or_else(|| panic!("no link {a}-{b}"))
    }

    /// Device name at node `a` of its link to node `b`.
    pub fn dev(&self, a: usize, b: usize) -> String {
        let l = &self.links[self.link_index(a, b)];
        if l.a == a {
            l.dev_a.clone()
        } else {
            l.dev_b.clone()
        }
    }

    /// Carrier loss: both ends of the link go down.
    pub fn link_down(&self, a: usize, b: usize) {
        self.exec_ok(a, &["ip", "link", "set", &self.dev(a, b), "down"]);
        self.exec_ok(b, &["ip", "link", "set", &self.dev(b, a), "down"]);
    }

    pub fn link_up(&self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let dev = self.dev(x, y);
            self.exec_ok(x, &["ip", "link", "set", &dev, "up"]);
            // Setting a device down flushes its IPv6 addresses (sysctl
            // keep_addr_on_down is 0): put the test bed's one back (it goes
            // through duplicate address detection again, as after a real
            // cable cut).
            let _ = self.exec(x, &["ip", "addr", "add", &format!("{}/64", ll(x, y)), "dev", &dev]);
        }
    }

    pub fn nft(&self, i: usize, script: &str) {
        let mut c = self.in_ns(i, &["nft", "-f", "-"]);
        c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("nft");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "nft in node {i}: {}\n{script}", String::from_utf8_lossy(&out.stderr));
    }

    /// Silent failure: every packet on the link is dropped at both ends, but
    /// the interfaces stay up (no carrier event).
    pub fn link_silent(&self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let dev = self.dev(x, y);
            self.nft(
                x,
                &format!(
                    "table inet weftsilent_{dev} {{\n chain input_c {{ type filter hook input priority -10; iifname \"{dev}\" drop; }}\n chain output_c {{ type filter hook output priority -10; oifname \"{dev}\" drop; }}\n chain forward_c {{ type filter hook forward priority -10; iifname \"{dev}\" drop; oifname \"{dev}\" drop; }}\n}}\n"
                ),
            );
        }
    }

    /// Ends a silent failure.
    pub fn link_unsilence(&self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            let dev = self.dev(x, y);
            let _ = self.exec(x, &["nft", "delete", "table", "inet", &format!("weftsilent_{dev}")]);
        }
    }

    /// Random loss of Babel datagrams arriving at `a` from `b`, in percent.
    pub fn babel_loss(&self, a: usize, b: usize, percent: u32) {
        let dev = self.dev(a, b);
        self.nft(
            a,
            &format!(
                "table inet weftloss_{dev} {{\n chain input_c {{ type filter hook input priority -5; iifname \"{dev}\" udp dport 6696 numgen random mod 100 < {percent} drop; }}\n}}\n"
            ),
        );
    }

    /// Pings `addr` from node `i` (one echo, bounded wait).
    pub fn ping(&self, i: usize, addr: &str) -> bool {
        let v6 = addr.contains(':');
        let mut cmd = vec!["ping", "-c", "1", "-W", "1", addr];
        if v6 {
            cmd.insert(1, "-6");
        }
        self.exec(i, &cmd).status.success()
    }

    /// Pings `addr` from node `i` with source address `src` (one echo).
    pub fn ping_from(&self, i: usize, src: &str, addr: &str) -> bool {
        let family = if addr.contains(':') { "-6" } else { "-4" };
        self.exec(i, &["ping", family, "-c", "1", "-W", "1", "-I", src, addr]).status.success()
    }

    /// `ip -j ARGS` in node `i`, parsed: a list. Output that is not a JSON
    /// list fails the test, so that an absence check can never pass on a
    /// listing it could not read (`ip` prints `[]` for nothing).
    pub fn ip_json(&self, i: usize, args: &[&str]) -> Vec<serde_json::Value> {
        let mut cmd = vec!["ip", "-j"];
        cmd.extend_from_slice(args);
        let out = self.exec_ok(i, &cmd);
        match serde_json::from_slice(&out.stdout) {
            Ok(serde_json::Value::Array(v)) => v,
            other => panic!(
                "node {i}: `{}` printed no JSON list ({other:?}): {:?}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }

    /// Routes of node `i` as `ip -j route` shows them (both families).
    pub fn routes_json(&self, i: usize, family: &str, proto: &str) -> String {
        String::from_utf8_lossy(
            &self.exec_ok(i, &["ip", family, "-j", "route", "show", "proto", proto]).stdout,
        )
        .to_string()
    }

    /// Polls `cond` every 100 ms until it holds or `timeout` passes.
    pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if cond() {
                return Some(start.elapsed());
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a program in node `i`'s namespace with stdout/stderr to a log
    /// file in the node's directory.
    pub fn spawn(&self, i: usize, cmd: &[&str], log: &str) -> Child {
        let logf = std::fs::File::create(self.nodes[i].dir.join(log)).expect("log file");
        self.in_ns(i, cmd)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} in node {i}: {e}"))
    }

    pub fn dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    pub fn log(&self, i: usize, name: &str) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join(name)).unwrap_or_default()
    }
}

fn mac(node: usize, peer: usize) -> String {
    format!(
        "02:77:{:02x}:{:02x}:{:02x}:{:02x}",
        (node >> 8) & 0xff,
        node & 0xff,
        (peer >> 8) & 0xff,
        peer & 0xff
    )
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.daemon.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for n in &self.nodes {
            // Kill anything still running inside (babeld, bird, wireguard-go).
            let _ = Command::new("ip").args(["netns", "pids", &n.ns]).output().map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
            let _ = Command::new("ip").args(["netns", "del", &n.ns]).status();
        }
        for s in &self.segments {
            let _ = Command::new("ip").args(["netns", "del", &s.ns]).status();
        }
        if std::env::var_os("WEFT_KEEP_TEST_LOGS").is_none() && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("test logs kept in {}", self.root.display());
        }
    }
}
