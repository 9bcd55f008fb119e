//! Shared by the WireGuard integration tests: two network namespaces joined
//! by a veth pair, names unique per process and tag, removed on drop.
#![allow(dead_code)] // each test file uses its own subset

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "../common/require.rs"]
#[macro_use]
pub mod require;

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::Command;

use weft::wg::model::Key;
use weft::wg::netns;

// Generated with `wg genkey | tee priv | wg pubkey`.
pub const PRIV: [&str; 2] =
    ["CNBfyMDocccMUoP7wzEK8A4o9oyXk+k2jXJCbckHhlo=", "6DljK/UwISWbK8tplbAiGIMhrY2jrU832XSv8rmyl0A="];
pub const PUB: [&str; 2] =
    ["KmEVlEoRJCUkHXUmOS0C/WD4Iu+DEpF3C/Df9NffdwQ=", "jj6j03+uidHMckvhRJzltYPJMckjYo1by0cOjzODqkI="];

pub fn key(b64: &str) -> Key {
    Key::from_base64(b64).expect("test key")
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command; its stdout, or an error naming the command and its output.
pub fn run(args: &[&str]) -> Result<String, String> {
    let o = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{args:?}: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

pub fn ll(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
}

/// Namespaces `ns[i]` joined by `veth[i]` (fe80::a and fe80::b, added without DAD);
/// `wg[i]` names the WireGuard interface a test makes there (deleted on drop,
/// with a userspace implementation's socket).
pub struct Topology {
    pub ns: [String; 2],
    pub veth: [String; 2],
    pub wg: [String; 2],
}

impl Topology {
    pub fn new(tag: &str) -> Result<Self, String> {
        let pid = std::process::id();
        let t = Topology {
            ns: [format!("weft-{tag}a-{pid}"), format!("weft-{tag}b-{pid}")],
            veth: [format!("v{tag}a{pid}"), format!("v{tag}b{pid}")],
            wg: [format!("wg{tag}a{pid}"), format!("wg{tag}b{pid}")],
        };
        for n in t.veth.iter().chain(&t.wg) {
            assert!(n.len() <= 15, "interface name {n} too long");
        }
        for ns in &t.ns {
            run(&["ip", "netns", "add", ns])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        run(&[
            "ip", "link", "add", &t.veth[0], "netns", &t.ns[0], "type", "veth", "peer", "name", &t.veth[1],
            "netns", &t.ns[1],
        ])?;
        for i in 0..2 {
            // The test's own WireGuard endpoint address (no daemon here):
            // usable at once, so that the first handshake is not lost to
            // duplicate address detection (which stays on for the rest).
            let addr = format!("{}/64", ll(0xa + i as u16));
            run(&["ip", "-n", &t.ns[i], "addr", "add", &addr, "dev", &t.veth[i], "nodad"])?;
            run(&["ip", "-n", &t.ns[i], "link", "set", &t.veth[i], "up"])?;
        }
        Ok(t)
    }

    pub fn netns_path(&self, i: usize) -> PathBuf {
        netns::named(&self.ns[i])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for i in 0..2 {
            // Deleting the TUN (or its socket) makes wireguard-go exit, which
            // releases the namespace.
            let _ = run(&["ip", "-n", &self.ns[i], "link", "del", &self.wg[i]]);
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wg[i]));
            let _ = run(&["ip", "netns", "del", &self.ns[i]]);
        }
    }
}

/// Pings `target` from namespace `ns` until one reply arrives, at most
/// `tries` one-second attempts; the attempt that succeeded.
pub fn ping_until(ns: &str, target: &str, tries: u32) -> Result<u32, String> {
    let mut last = String::new();
    for i in 1..=tries {
        match run(&["ip", "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "1", target]) {
            Ok(_) => return Ok(i),
            Err(e) => last = e,
        }
    }
    let diag = run(&["ip", "-n", ns, "addr"]);
    Err(format!("no ping reply from {target} in {ns} after {tries} tries: {last}\n{diag:?}"))
}
