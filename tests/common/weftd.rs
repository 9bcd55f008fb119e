//! The real `weft daemon` on a namespace test bed: a config file per node
//! (one plain-Babel interface per link, the node's loopback addresses
//! announced), start / SIGTERM / SIGKILL / SIGHUP, the CLI views as JSON,
//! and the kernel routes weft installed (protocol 119) as `ip -j` shows them.
//!
//! Every wait is bounded and fails with the node's log attached.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netns::{ll, node_v4, node_v6, Net};

/// The built binary under test.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");
/// weft's default kernel route protocol.
pub const PROTO: &str = "119";

/// One node's configuration, rendered as UCI.
#[derive(Clone, Debug)]
pub struct WeftConfig {
    /// `hello_interval` in seconds, as written in the file.
    pub hello: String,
    /// Interfaces Babel runs on (plain, `type wired`).
    pub interfaces: Vec<String>,
    /// Prefixes announced.
    pub announces: Vec<String>,
    pub state_file: PathBuf,
    pub control_socket: PathBuf,
}

impl WeftConfig {
    pub fn render(&self) -> String {
        let mut s = format!(
            "config weft 'main'\n\toption hello_interval '{}'\n\toption state_file '{}'\n\
             \toption control_socket '{}'\n\toption log_level 'debug'\n\
             \toption metrics_file '{}'\n\toption hosts_file '0'\n",
            self.hello,
            self.state_file.display(),
            self.control_socket.display(),
            self.state_file.with_file_name("weft.prom").display()
        );
        for i in &self.interfaces {
            s += &format!("\nconfig interface '{i}'\n\toption ifname '{i}'\n\toption type 'wired'\n");
        }
        for p in &self.announces {
            s += &format!("\nconfig announce\n\toption prefix '{p}'\n");
        }
        s
    }
}

/// Both of node `i`'s announced prefixes, as they appear in routes.
pub fn node_prefixes(i: usize) -> [String; 2] {
    [format!("{}/128", node_v6(i)), format!("{}/32", node_v4(i))]
}

/// A route that sends packets on (`ip -j` omits `type` for unicast).
pub fn is_forwarding(r: &Value) -> bool {
    matches!(r["type"].as_str(), None | Some("unicast"))
}

/// The `dst` of an `ip -j route` object, normalised to prefix form (`ip`
/// prints host routes without their length).
pub fn route_dst(r: &Value) -> String {
    let d = r["dst"].as_str().unwrap_or_default();
    if d.contains('/') || d == "default" {
        d.to_string()
    } else if d.contains(':') {
        format!("{d}/128")
    } else {
        format!("{d}/32")
    }
}

impl Net {
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.dir(i).join("weft.conf")
    }

    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir(i).join("weft.sock")
    }

    pub fn state_path(&self, i: usize) -> PathBuf {
        self.dir(i).join("state")
    }

    /// Node `i`'s devices, one per link, as the test bed named them.
    pub fn devices(&self, i: usize) -> Vec<String> {
        let mut v: Vec<String> = self
            .links
            .iter()
            .filter_map(|l| {
                if l.a == i {
                    Some(l.dev_a.clone())
                } else if l.b == i {
                    Some(l.dev_b.clone())
                } else {
                    None
                }
            })
            .collect();
        v.sort();
        v
    }

    /// The default configuration of node `i`: 1 s Hellos on every link it
    /// has, its loopback addresses announced.
    pub fn weft_config(&self, i: usize) -> WeftConfig {
        WeftConfig {
            hello: "1".into(),
            interfaces: self.devices(i),
            announces: node_prefixes(i).to_vec(),
            state_file: self.state_path(i),
            control_socket: self.socket(i),
        }
    }

    pub fn write_config(&self, i: usize, cfg: &WeftConfig) {
        self.write_config_text(i, &cfg.render());
    }

    /// Replaces the config file atomically, so that a reload never reads a
    /// half-written file.
    pub fn write_config_text(&self, i: usize, text: &str) {
        let tmp = self.config_path(i).with_extension("tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, self.config_path(i)).expect("rename config");
    }

    /// Writes the default config of every node and starts every daemon.
    pub fn start_all(&mut self) {
        for i in 0..self.len() {
            let cfg = self.weft_config(i);
            self.write_config(i, &cfg);
        }
        for i in 0..self.len() {
            self.start_weft(i);
        }
    }

    /// Starts `weft daemon` in node `i` with its current config file, and
    /// waits until its control socket answers. The log (appended across
    /// restarts) is `weft.log` in the node's directory.
    pub fn start_weft(&mut self, i: usize) {
        assert!(self.nodes[i].daemon.is_none(), "node {i}: weft already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir(i).join("weft.log"))
            .expect("log file");
        let conf = self.config_path(i);
        let child = self
            .in_ns(i, &[WEFT, "daemon", "-c", conf.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start weft in node {i}: {e}"));
        self.nodes[i].daemon = Some(child);
        let ok = Net::wait_until(Duration::from_secs(10), || {
            self.try_weft_json(i, "status").is_ok() || self.daemon_exited(i)
        });
        if ok.is_none() || self.daemon_exited(i) {
            panic!("node {i}: weft did not come up\n{}", self.weft_log(i));
        }
    }

    fn daemon_exited(&mut self, i: usize) -> bool {
        match self.nodes[i].daemon.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    /// True while node `i`'s daemon process runs.
    pub fn weft_running(&mut self, i: usize) -> bool {
        !self.daemon_exited(i)
    }

    pub fn weft_pid(&self, i: usize) -> i32 {
        self.nodes[i].daemon.as_ref().unwrap_or_else(|| panic!("node {i}: weft not running")).id() as i32
    }

    pub fn signal_weft(&self, i: usize, sig: i32) {
        let r = unsafe { libc::kill(self.weft_pid(i), sig) };
        assert_eq!(r, 0, "kill({sig}) node {i}: {}", std::io::Error::last_os_error());
    }

    /// SIGTERM, then waits (bounded) for the exit; returns its status and
    /// how long the clean stop took.
    pub fn stop_weft(&mut self, i: usize) -> (ExitStatus, Duration) {
        let start = Instant::now();
        self.signal_weft(i, libc::SIGTERM);
        let status = self.wait_exit(i, Duration::from_secs(10));
        (status, start.elapsed())
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill_weft(&mut self, i: usize) {
        self.signal_weft(i, libc::SIGKILL);
        self.wait_exit(i, Duration::from_secs(10));
    }

    fn wait_exit(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            let c = self.nodes[i].daemon.as_mut().expect("daemon");
            if let Some(st) = c.try_wait().expect("wait") {
                self.nodes[i].daemon = None;
                return st;
            }
            if start.elapsed() > timeout {
                panic!("node {i}: weft did not exit within {timeout:?}\n{}", self.weft_log(i));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn weft_log(&self, i: usize) -> String {
        self.log(i, "weft.log")
    }

    /// Runs the weft CLI against node `i`'s control socket (the socket is a
    /// file, so this needs no namespace).
    pub fn weft_cli(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new(WEFT)
            .args(args)
            .arg("-s")
            .arg(self.socket(i))
            .output()
            .unwrap_or_else(|e| panic!("cannot run weft {args:?}: {e}"))
    }

    /// `weft VIEW --json` on node `i`, parsed.
    pub fn try_weft_json(&self, i: usize, view: &str) -> Result<Value, String> {
        let out = self.weft_cli(i, &[view, "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("weft {view} --json: {e}"))
    }

    pub fn weft_json(&self, i: usize, view: &str) -> Value {
        self.try_weft_json(i, view).unwrap_or_else(|e| panic!("node {i}: {e}\n{}", self.weft_log(i)))
    }

    /// Every kernel route of weft's in node `i`, both families, including
    /// the unreachable routes that hold retracted prefixes.
    pub fn kernel_routes_all(&self, i: usize) -> Vec<Value> {
        let mut v = Vec::new();
        for fam in ["-6", "-4"] {
            v.extend(self.ip_json(i, &[fam, "route", "show", "proto", PROTO]));
        }
        v
    }

    /// weft's forwarding routes in node `i` (unicast, through a neighbour).
    /// A retracted prefix is held as an `unreachable` route for a while
    /// (RFC 8966 section 3.5.5): that is not a way to the prefix.
    pub fn kernel_routes(&self, i: usize) -> Vec<Value> {
        self.kernel_routes_all(i).into_iter().filter(is_forwarding).collect()
    }

    /// Prefixes weft holds as unreachable in node `i`, sorted.
    pub fn kernel_unreachable(&self, i: usize) -> Vec<String> {
        let mut v: Vec<String> =
            self.kernel_routes_all(i).iter().filter(|r| r["type"] == "unreachable").map(route_dst).collect();
        v.sort();
        v
    }

    /// The destinations of weft's kernel routes in node `i`, sorted.
    pub fn kernel_prefixes(&self, i: usize) -> Vec<String> {
        let mut v: Vec<String> = self.kernel_routes(i).iter().map(route_dst).collect();
        v.sort();
        v
    }

    /// weft's kernel route to `prefix` in node `i`, if any.
    pub fn kernel_route(&self, i: usize, prefix: &str) -> Option<Value> {
        self.kernel_routes(i).into_iter().find(|r| route_dst(r) == prefix)
    }

    /// `ip -j route get ADDR` in node `i`: the route the kernel would use.
    pub fn route_get(&self, i: usize, addr: &str) -> Option<Value> {
        let out = self.exec(i, &["ip", "-j", "route", "get", addr]);
        // No route: `ip` fails ("Network is unreachable"). Anything else it
        // prints must parse, or "no route" would be read from garbage.
        if !out.status.success() {
            return None;
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(v)) => v.first().cloned(),
            other => panic!("node {i}: `ip -j route get {addr}` printed no JSON list: {other:?}"),
        }
    }

    /// The device node `i` would send to `addr` through (`None`: no route).
    pub fn out_dev(&self, i: usize, addr: &str) -> Option<String> {
        self.route_get(i, addr).and_then(|r| r["dev"].as_str().map(str::to_string))
    }

    /// The prefixes every node should have a route to, from node `i`.
    pub fn expected_prefixes(&self, i: usize) -> Vec<String> {
        let mut v: Vec<String> = (0..self.len()).filter(|&j| j != i).flat_map(node_prefixes).collect();
        v.sort();
        v
    }

    /// True when node `i` has a weft route to every other node's prefixes
    /// (and nothing else).
    pub fn has_all_routes(&self, i: usize) -> bool {
        self.kernel_prefixes(i) == self.expected_prefixes(i)
    }

    /// Waits until every node routes to every other node; returns the time
    /// it took, or panics naming the nodes that lack routes.
    pub fn wait_full_mesh(&self, timeout: Duration) -> Duration {
        Net::wait_until(timeout, || (0..self.len()).all(|i| self.has_all_routes(i))).unwrap_or_else(|| {
            let mut msg = String::new();
            for i in 0..self.len() {
                if !self.has_all_routes(i) {
                    msg += &format!(
                        "node {i} has {:?}, expected {:?}\n--- log ---\n{}\n",
                        self.kernel_prefixes(i),
                        self.expected_prefixes(i),
                        tail(&self.weft_log(i), 40)
                    );
                }
            }
            panic!("no full mesh within {timeout:?}:\n{msg}")
        })
    }

    /// Pings every other node's IPv6 and IPv4 address from every node
    /// (bounded retries for the first neighbour discovery), panicking with
    /// every pair that failed.
    pub fn ping_all(&self) {
        let mut failed = Vec::new();
        for i in 0..self.len() {
            for j in 0..self.len() {
                if i == j {
                    continue;
                }
                for addr in [node_v6(j), node_v4(j)] {
                    if Net::wait_until(Duration::from_secs(3), || self.ping(i, &addr)).is_none() {
                        failed.push(format!("{i} -> {addr}"));
                    }
                }
            }
        }
        assert!(failed.is_empty(), "pings failed: {failed:?}");
    }

    /// Adds a link between two existing nodes after start (the devices
    /// appear to a running daemon as new interfaces).
    pub fn add_link(&mut self, a: usize, b: usize) {
        let k = self.links.len();
        let (ta, tb) = (format!("{}l{k}a", self.tag), format!("{}l{k}b", self.tag));
        let (dev_a, dev_b) = (format!("to{b}"), format!("to{a}"));
        super::netns::sh(&["ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb]);
        super::netns::sh(&["ip", "link", "set", &ta, "netns", &self.nodes[a].ns, "name", &dev_a]);
        super::netns::sh(&["ip", "link", "set", &tb, "netns", &self.nodes[b].ns, "name", &dev_b]);
        for (node, dev, peer) in [(a, &dev_a, b), (b, &dev_b, a)] {
            self.set_link_local(node, dev, &ll(node, peer));
            self.exec_ok(node, &["ip", "link", "set", dev, "up"]);
        }
        self.links.push(super::netns::Link { a, b, dev_a, dev_b });
    }
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `ip monitor route` running in a namespace, collecting events (text
/// lines: iproute2 6.1 ignores `-j` for monitor; deletions start with
/// `Deleted `) until dropped or [`RouteMonitor::finish`]ed.
pub struct RouteMonitor {
    child: std::process::Child,
    out: PathBuf,
}

impl RouteMonitor {
    /// Starts watching node `i`'s routing tables. `ip` gives no sign when
    /// its socket is subscribed, so the caller proves the monitor is live
    /// by making a change and waiting for it with [`RouteMonitor::wait_for`].
    pub fn start(net: &Net, i: usize, name: &str) -> RouteMonitor {
        let out = net.dir(i).join(name);
        let f = std::fs::File::create(&out).expect("monitor file");
        let child = net
            .in_ns(i, &["ip", "monitor", "route"])
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor");
        RouteMonitor { child, out }
    }

    /// Every event line seen so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// Waits until an event line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        Net::wait_until(timeout, || self.lines().iter().any(|l| l.contains(needle))).is_some()
    }

    /// Proves the monitor is subscribed: adds and deletes a host route to
    /// `probe` on `dev` in node `i` until the monitor reports it.
    pub fn prove_live(&self, net: &Net, i: usize, dev: &str, probe: &str) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let route = format!("{probe}/32");
            let _ = net.exec(i, &["ip", "route", "add", &route, "dev", dev, "proto", "static"]);
            let _ = net.exec(i, &["ip", "route", "del", &route, "dev", dev, "proto", "static"]);
            if self.wait_for(probe, Duration::from_millis(300)) {
                return true;
            }
        }
        false
    }

    pub fn finish(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines()
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Net {
    /// The IPv6 link-local addresses on node `i`'s device `dev`.
    pub fn kernel_link_locals(&self, i: usize, dev: &str) -> Vec<String> {
        self.ip_json(i, &["-6", "addr", "show", "dev", dev, "scope", "link"])
            .into_iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().map(str::to_string))
            .collect()
    }
}
