//! OpenWrt's own userspace around a test node: ubusd, rpcd (with weft's
//! exec plugin and ACLs) and uhttpd (static files and the ubus JSON-RPC
//! handler), built from source by `scripts/openwrt-components.sh` and run
//! in a node's network namespace and a mount namespace of their own, where
//! `/etc` is an overlay whose `/etc/config` holds the test's UCI files and
//! rpcd's compiled-in plugin and ACL directories are the test's.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::netns::Net;

/// The install prefix of the OpenWrt components (built once, then cached).
pub fn components() -> &'static Path {
    static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = PREFIX.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openwrt-components.sh");
        let out =
            Command::new("sh").arg(&script).output().map_err(|e| format!("cannot run {script:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/openwrt-components.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let prefix = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string();
        Ok(PathBuf::from(prefix))
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// An MD5-crypt hash of [`ROOT_PASSWORD`], as rpcd's `config login` takes it.
const ROOT_PASSWORD_HASH: &str = "$1$weft$NxcuLJNIMX3BiSXU4Xy1j.";
pub const ROOT_PASSWORD: &str = "weft-test";

/// What the router namespace starts with.
pub struct RouterSetup<'a> {
    /// Files for `/etc/config/` (name, text).
    pub uci: Vec<(&'a str, String)>,
    /// ACL files for rpcd's acl.d (file name, JSON text).
    pub acls: Vec<(&'a str, String)>,
    /// ACL groups the root login gets (`list read`/`list write`).
    pub login_acls: Vec<String>,
    /// Document root for uhttpd, if it is to run.
    pub www: Option<PathBuf>,
}

/// ubusd, rpcd and (optionally) uhttpd running in node `i`'s namespace.
pub struct Router {
    pub dir: PathBuf,
    pub ubus_sock: PathBuf,
    ns: String,
    child: Option<Child>,
}

impl Router {
    pub fn start(net: &Net, i: usize, setup: RouterSetup<'_>) -> Router {
        let prefix = components();
        let dir = net.dir(i).join("router");
        let upper = dir.join("etc-upper");
        for d in [upper.join("config"), dir.join("etc-work"), dir.join("plugins"), dir.join("acl.d")] {
            std::fs::create_dir_all(&d).expect("router dir");
        }
        let mut login =
            format!("config login\n\toption username 'root'\n\toption password '{ROOT_PASSWORD_HASH}'\n");
        for acl in &setup.login_acls {
            login.push_str(&format!("\tlist read '{acl}'\n\tlist write '{acl}'\n"));
        }
        std::fs::write(upper.join("config/rpcd"), login).expect("rpcd config");
        for (name, text) in &setup.uci {
            std::fs::write(upper.join("config").join(name), text).expect("uci file");
        }
        // rpcd's own ACL for unauthenticated clients (session.login), and ours.
        std::fs::copy(
            prefix.join("share/rpcd/acl.d/unauthenticated.json"),
            dir.join("acl.d/unauthenticated.json"),
        )
        .expect("copy unauthenticated.json");
        for (name, text) in &setup.acls {
            std::fs::write(dir.join("acl.d").join(name), text).expect("acl file");
        }
        // As the weft package installs it: a symlink named weft in rpcd's
        // plugin directory, pointing at the binary.
        std::os::unix::fs::symlink(super::mesh::weft(), dir.join("plugins/weft")).expect("plugin symlink");
        // Stands in for luci-base's rpcd plugin (ucode, not among the LuCI
        // files at hand): luci.js asks it for system features at boot.
        let luci = dir.join("plugins/luci");
        std::fs::write(&luci, "#!/bin/sh\ncase \"$1\" in list) echo '{\"getFeatures\":{}}' ;; *) cat >/dev/null; echo '{}' ;; esac\n")
            .expect("luci stand-in plugin");
        std::fs::set_permissions(&luci, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");

        let ubus_sock = dir.join("ubus.sock");
        let p = prefix.display();
        let d = dir.display();
        let uhttpd = match &setup.www {
            Some(www) => format!(
                "{p}/bin/uhttpd -f -p 127.0.0.1:80 -h {} -u /ubus -U {d}/ubus.sock -t 30 >{d}/uhttpd.log 2>&1 &",
                www.display()
            ),
            None => String::new(),
        };
        // One shell keeps the mount namespace: every daemon and every plugin
        // rpcd runs sees the same /etc and plugin directories.
        let script = format!(
            "set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-upper,workdir={d}/etc-work /etc
mount --bind {d}/plugins {p}/libexec/rpcd
mount --bind {d}/acl.d {p}/share/rpcd/acl.d
export LD_LIBRARY_PATH={p}/lib
{p}/sbin/ubusd -s {d}/ubus.sock >{d}/ubusd.log 2>&1 &
while [ ! -S {d}/ubus.sock ]; do sleep 0.05; done
{p}/sbin/rpcd -s {d}/ubus.sock -t 30 >{d}/rpcd.log 2>&1 &
{uhttpd}
wait"
        );
        let child = net.spawn(i, &["sh", "-c", &script], "router/router.log");
        let mut r = Router { dir, ubus_sock, ns: net.nodes[i].ns.clone(), child: Some(child) };
        let ok = Net::wait_until(Duration::from_secs(20), || r.ubus(&["list", "weft"]).status.success());
        if ok.is_none() {
            let log = r.logs();
            r.stop();
            panic!("rpcd did not register the weft plugin within 20 s:\n{log}");
        }
        if setup.www.is_some() {
            let up = Net::wait_until(Duration::from_secs(10), || {
                net.exec(i, &["curl", "-s", "-o", "/dev/null", "http://127.0.0.1/"]).status.success()
            });
            if up.is_none() {
                let log = r.logs();
                r.stop();
                panic!("uhttpd does not answer:\n{log}");
            }
        }
        r
    }

    /// `ubus -s SOCK ARGS`.
    pub fn ubus(&self, args: &[&str]) -> Output {
        Command::new(components().join("bin/ubus"))
            .arg("-s")
            .arg(&self.ubus_sock)
            .args(args)
            .env("LD_LIBRARY_PATH", components().join("lib"))
            .output()
            .expect("run ubus")
    }

    /// `ubus call OBJECT METHOD`, parsed; panics with ubus's message.
    pub fn call(&self, object: &str, method: &str) -> Value {
        let out = self.ubus(&["call", object, method]);
        assert!(
            out.status.success(),
            "ubus call {object} {method} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("ubus call {object} {method}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// A JSON-RPC request to uhttpd's /ubus handler, from inside the
    /// namespace (curl), as a browser running LuCI sends it.
    pub fn jsonrpc(&self, body: &Value) -> Value {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sS",
                "--max-time",
                "10",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["--data-binary", &body.to_string(), "http://127.0.0.1/ubus"])
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl to uhttpd failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("uhttpd answered non-JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// `session.login` as root through uhttpd; returns the session id.
    pub fn login(&self) -> String {
        let r = self.jsonrpc(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "call",
            "params": ["00000000000000000000000000000000", "session", "login",
                       {"username": "root", "password": ROOT_PASSWORD}]
        }));
        r["result"][1]["ubus_rpc_session"]
            .as_str()
            .unwrap_or_else(|| panic!("login refused: {r}\n{}", self.logs()))
            .to_string()
    }

    /// `ubus call OBJECT METHOD ARGS` through uhttpd in session `sid`:
    /// JSON-RPC's `result` array (`[status]` or `[0, reply]`) or its error.
    pub fn rpc_call(&self, sid: &str, object: &str, method: &str, args: Value) -> Value {
        let r = self.jsonrpc(&serde_json::json!({
            "jsonrpc": "2.0", "id": 2, "method": "call", "params": [sid, object, method, args]
        }));
        r.get("result").or_else(|| r.get("error")).cloned().unwrap_or(r)
    }

    pub fn logs(&self) -> String {
        ["router.log", "ubusd.log", "rpcd.log", "uhttpd.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                format!("--- {f} ---\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The shell's children (ubusd, rpcd, uhttpd) are in the node's
            // namespace; Net's Drop kills what is left there.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop();
    }
}
