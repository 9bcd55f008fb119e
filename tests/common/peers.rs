//! Babel speakers inside the namespaces of a [`Net`]: weft daemons (the built
//! binary), babeld and BIRD 2, each with its own config, log, state and
//! control socket under the node's directory, so that parallel tests never
//! share a path. Also the kernel-route and ping helpers the interop tests
//! check them with.
//!
//! Every process started here is killed when its handle drops, and `Net`'s
//! own drop kills whatever is left in the namespaces, so a failing test
//! leaves nothing running.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use super::netns::Net;

/// The weft binary cargo built for this test run.
pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// Sends `sig` (e.g. "TERM") to a process.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

/// Waits for a child to exit, at most `timeout`; true if it did.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    Net::wait_until(timeout, || child.try_wait().ok().flatten().is_some()).is_some()
}

// ----- weft ---------------------------------------------------------------

/// One `config interface` section of a weft test config.
pub struct WeftIf {
    pub ifname: String,
    /// Extra `option NAME 'VALUE'` lines.
    pub options: Vec<(&'static str, String)>,
}

impl WeftIf {
    /// A plain (no WireGuard) wired Babel interface, babeld/BIRD compatible.
    pub fn wired(ifname: &str) -> WeftIf {
        WeftIf { ifname: ifname.to_string(), options: Vec::new() }
    }

    pub fn option(mut self, name: &'static str, value: &str) -> WeftIf {
        self.options.push((name, value.to_string()));
        self
    }
}

/// A weft daemon running in a node of a [`Net`]. Its process is the node's
/// `daemon`, so `Net` kills it on drop.
pub struct Weft {
    pub node: usize,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl Weft {
    /// Writes a config (1 s hellos, the given interfaces and announced
    /// prefixes) and starts `weft daemon` in node `i`; returns once its
    /// control socket answers.
    pub fn start(net: &mut Net, i: usize, ifaces: &[WeftIf], announces: &[&str]) -> Weft {
        let dir = net.dir(i).to_path_buf();
        let socket = dir.join("weft.sock");
        let mut conf = format!(
            "config weft 'main'\n\toption hello_interval '1'\n\toption state_file '{}'\n\
             \toption control_socket '{}'\n\toption log_level 'debug'\n\
             \toption metrics_file '{}'\n\toption hosts_file '0'\n",
            dir.join("weft.state").display(),
            socket.display(),
            dir.join("weft.prom").display()
        );
        for (k, f) in ifaces.iter().enumerate() {
            conf.push_str(&format!(
                "config interface 'if{k}'\n\toption ifname '{}'\n\toption type 'wired'\n\toption wireguard '0'\n",
                f.ifname
            ));
            for (name, value) in &f.options {
                conf.push_str(&format!("\toption {name} '{value}'\n"));
            }
        }
        for p in announces {
            conf.push_str(&format!("config announce\n\toption prefix '{p}'\n"));
        }
        let config = dir.join("weft.conf");
        std::fs::write(&config, &conf).expect("write weft config");
        let child = net.spawn(i, &[WEFT, "daemon", "-c", config.to_str().unwrap()], "weft.log");
        net.nodes[i].daemon = Some(child);
        let w = Weft { node: i, config, socket };
        let up = Net::wait_until(Duration::from_secs(10), || w.try_query("status").is_ok());
        assert!(
            up.is_some(),
            "weft in node {i} did not answer on its control socket:\n{}",
            net.log(i, "weft.log")
        );
        w
    }

    /// Runs `weft WHAT --json -s SOCKET` (the real CLI) and parses its output.
    pub fn try_query(&self, what: &str) -> Result<Value, String> {
        let out = Command::new(WEFT)
            .args([what, "--json", "-s", self.socket.to_str().unwrap()])
            .output()
            .map_err(|e| format!("cannot run weft {what}: {e}"))?;
        if !out.status.success() {
            return Err(format!("weft {what} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("weft {what} printed bad JSON: {e}"))
    }

    pub fn query(&self, what: &str) -> Value {
        self.try_query(what).unwrap_or_else(|e| panic!("node {}: {e}", self.node))
    }

    pub fn neighbours(&self) -> Vec<Value> {
        self.query("neighbours")["neighbours"].as_array().cloned().unwrap_or_default()
    }

    pub fn routes(&self) -> Vec<Value> {
        self.query("routes")["routes"].as_array().cloned().unwrap_or_default()
    }

    /// The selected (installed) learned route of a prefix, if any.
    pub fn selected_route(&self, prefix: &str) -> Option<Value> {
        self.routes().into_iter().find(|r| r["prefix"] == prefix && r["installed"] == true)
    }

    /// True while the daemon process has not exited.
    pub fn running(&self, net: &mut Net) -> bool {
        net.nodes[self.node].daemon.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

// ----- babeld -------------------------------------------------------------

/// babeld running in a node, configured with the given lines plus its
/// control socket, pid, state and log files in the node's directory.
pub struct Babeld {
    pub node: usize,
    pub ctl: PathBuf,
    pub child: Child,
}

impl Babeld {
    /// Starts babeld with `conf` (interface lines, filters) and returns once
    /// its control socket answers.
    pub fn start(net: &Net, i: usize, conf: &str) -> Babeld {
        let dir = net.dir(i).to_path_buf();
        let ctl = dir.join("babeld.ctl");
        let confp = dir.join("babeld.conf");
        std::fs::write(&confp, conf).expect("write babeld config");
        let (pid, state, log) = (dir.join("babeld.pid"), dir.join("babeld.state"), dir.join("babeld.log"));
        let child = net.spawn(
            i,
            &[
                "babeld",
                "-I",
                pid.to_str().unwrap(),
                "-S",
                state.to_str().unwrap(),
                "-G",
                ctl.to_str().unwrap(),
                "-L",
                log.to_str().unwrap(),
                "-c",
                confp.to_str().unwrap(),
            ],
            "babeld.out",
        );
        let mut b = Babeld { node: i, ctl, child };
        let up =
            Net::wait_until(Duration::from_secs(10), || b.try_dump().is_some_and(|d| d.contains("my-id")));
        if up.is_none() {
            let exited = b.child.try_wait().ok().flatten();
            panic!(
                "babeld in node {i} did not answer on {} (exit: {exited:?}):\n{}\n{}",
                b.ctl.display(),
                net.log(i, "babeld.out"),
                net.log(i, "babeld.log")
            );
        }
        b
    }

    fn try_dump(&self) -> Option<String> {
        let out = Command::new("socat")
            .args(["-t", "2", "-", &format!("UNIX-CONNECT:{}", self.ctl.display())])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take()?.write_all(b"dump\nquit\n").ok()?;
                c.wait_with_output().ok()
            })?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// babeld's `dump`: its id, neighbours, routes and exported prefixes.
    pub fn dump(&self) -> String {
        self.try_dump().unwrap_or_else(|| panic!("babeld in node {} does not answer dump", self.node))
    }

    /// babeld's router-id as weft prints router-ids.
    pub fn router_id(&self) -> String {
        let d = self.dump();
        d.lines()
            .find_map(|l| l.strip_prefix("my-id "))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("no my-id in babeld dump:\n{d}"))
    }

    /// SIGTERM and wait for babeld to exit (it retracts its routes first).
    pub fn stop(&mut self) {
        signal(self.child.id(), "TERM");
        assert!(wait_exit(&mut self.child, Duration::from_secs(10)), "babeld ignored SIGTERM");
    }
}

impl Drop for Babeld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- BIRD -----------------------------------------------------------------

/// BIRD 2 running in a node (foreground), with `conf` as its config.
pub struct Bird {
    pub node: usize,
    pub ctl: PathBuf,
    pub child: Child,
}

impl Bird {
    /// Starts `bird -f` with `conf` and returns once birdc can talk to it.
    pub fn start(net: &Net, i: usize, conf: &str) -> Bird {
        let dir = net.dir(i).to_path_buf();
        let ctl = dir.join("bird.ctl");
        let confp = dir.join("bird.conf");
        std::fs::write(&confp, conf).expect("write bird config");
        let pid = dir.join("bird.pid");
        let child = net.spawn(
            i,
            &[
                "bird",
                "-f",
                "-c",
                confp.to_str().unwrap(),
                "-s",
                ctl.to_str().unwrap(),
                "-P",
                pid.to_str().unwrap(),
            ],
            "bird.out",
        );
        let mut b = Bird { node: i, ctl, child };
        let up = Net::wait_until(Duration::from_secs(10), || b.try_birdc("show status").is_some());
        if up.is_none() {
            let exited = b.child.try_wait().ok().flatten();
            panic!(
                "bird in node {i} did not answer on {} (exit: {exited:?}):\n{}\n{}",
                b.ctl.display(),
                net.log(i, "bird.out"),
                net.log(i, "bird.log")
            );
        }
        b
    }

    fn try_birdc(&self, cmd: &str) -> Option<String> {
        let mut args = vec!["-s", self.ctl.to_str().unwrap()];
        args.extend(cmd.split_whitespace());
        let out = Command::new("birdc").args(&args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub fn birdc(&self, cmd: &str) -> String {
        self.try_birdc(cmd).unwrap_or_else(|| panic!("birdc {cmd:?} failed for node {}", self.node))
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A BIRD config announcing node `i`'s loopback addresses over Babel on
/// `ifaces` (1 s hellos) and exporting learned routes to the kernel.
pub fn bird_conf(net: &Net, i: usize, ifaces: &[&str]) -> String {
    let log = net.dir(i).join("bird.log");
    let mut ifs = String::new();
    for f in ifaces {
        ifs.push_str(&format!(
            "  interface \"{f}\" {{ type wired; hello interval 1 s; update interval 4 s; }};\n"
        ));
    }
    format!(
        "log \"{log}\" all;\nrouter id {rid};\n\
         protocol device {{ scan time 1; }}\n\
         protocol direct {{ ipv4; ipv6; interface \"lo\"; }}\n\
         protocol kernel {{ ipv4 {{ export where source = RTS_BABEL; }}; }}\n\
         protocol kernel {{ ipv6 {{ export where source = RTS_BABEL; }}; }}\n\
         protocol babel {{\n{ifs}\
           ipv4 {{ import all; export where source = RTS_BABEL || (source = RTS_DEVICE && net ~ [ 10.77.0.0/16+ ]); }};\n\
           ipv6 {{ import all; export where source = RTS_BABEL || (source = RTS_DEVICE && net ~ [ fd77::/16+ ]); }};\n\
         }}\n",
        log = log.display(),
        rid = super::netns::node_v4(i),
    )
}

// ----- kernel views ---------------------------------------------------------

/// A kernel route as `ip -j route` shows it, reduced to what the tests
/// compare.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KRoute {
    pub dst: String,
    /// Gateway, as "fe80::1" or "10.0.0.1"; an IPv6 gateway of an IPv4
    /// route (RTA_VIA) is prefixed "inet6 ".
    pub via: String,
    pub dev: String,
    pub onlink: bool,
}

/// Forwarding routes of protocol `proto` (number or name) in node `i`, both
/// families. Unreachable routes, which weft keeps while a retracted prefix is
/// held (RFC 8966 3.5.5), carry no traffic and are left out.
pub fn kernel_routes(net: &Net, i: usize, proto: &str) -> Vec<KRoute> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for r in net.ip_json(i, &[fam, "route", "show", "proto", proto]) {
            if r["type"].as_str().is_some_and(|t| t != "unicast") {
                continue;
            }
            let via = match (&r["gateway"], &r["via"]) {
                (Value::String(g), _) => g.clone(),
                (_, Value::Object(v)) => {
                    format!("inet6 {}", v.get("host").and_then(Value::as_str).unwrap_or("?"))
                }
                _ => String::new(),
            };
            let onlink = r["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "onlink"));
            out.push(KRoute {
                dst: r["dst"].as_str().unwrap_or_default().to_string(),
                via,
                dev: r["dev"].as_str().unwrap_or_default().to_string(),
                onlink,
            });
        }
    }
    out.sort();
    out
}

/// The route to `dst` (as `ip` prints it: host routes without "/32" or
/// "/128") among `routes`.
pub fn find_route<'a>(routes: &'a [KRoute], dst: &str) -> Option<&'a KRoute> {
    routes.iter().find(|r| r.dst == dst)
}

/// One ping from node `i`, with source address `src`, to `dst`.
pub fn ping_from(net: &Net, i: usize, src: &str, dst: &str) -> bool {
    let fam = if dst.contains(':') { "-6" } else { "-4" };
    net.exec(i, &["ping", fam, "-c", "1", "-W", "1", "-I", src, dst]).status.success()
}

/// Waits (bounded) until a ping gets through; panics with `what` otherwise.
pub fn assert_ping(net: &Net, i: usize, src: &str, dst: &str, timeout: Duration, what: &str) -> Duration {
    Net::wait_until(timeout, || ping_from(net, i, src, dst))
        .unwrap_or_else(|| panic!("{what}: node {i} cannot ping {dst} from {src} within {timeout:?}"))
}

/// Adds an IPv4 address (with prefix length) to a device of node `i`.
pub fn add_v4(net: &Net, i: usize, dev: &str, addr: &str) {
    net.exec_ok(i, &["ip", "addr", "add", addr, "dev", dev]);
}

/// Every IPv6 link-local address of `dev` in node `i`. A veth has the one
/// the test bed gives it and the one the kernel derives from its MAC, and a
/// Babel speaker may send from either (the kernel picks the source).
pub fn link_locals(net: &Net, i: usize, dev: &str) -> Vec<String> {
    let mut lls = Vec::new();
    for link in net.ip_json(i, &["-6", "addr", "show", "dev", dev, "scope", "link"]) {
        for a in link["addr_info"].as_array().cloned().unwrap_or_default() {
            if let Some(l) = a["local"].as_str() {
                lls.push(l.to_string());
            }
        }
    }
    lls
}
