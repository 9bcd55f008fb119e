//! `make demo` (scripts/demo.sh) runs to the end with the built binary,
//! tells its story (credentials, tunnels, routes, a refused intruder, a
//! reroute), and leaves nothing behind: no namespace, no process, no temp
//! dir, no tunnel.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh")
}

#[test]
fn demo_script_is_clean_shell() {
    require_cmd!("shellcheck");
    let out = Command::new("shellcheck").arg(script()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn demo_runs_and_cleans_up() {
    require_netns!();
    let start = Instant::now();
    let out = Command::new("sh")
        .arg(script())
        .env("WEFT", common::weftd::WEFT)
        .env("DEMO_SKIP_DEPS", "1")
        .output()
        .expect("run demo");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed ({}):\n{stdout}\n{stderr}", out.status);
    eprintln!("demo took {took:?}");
    for line in [
        "weft cert show node.cred",
        "signature:     valid",
        "every router has a route to every other router",
        "all of them use the shortest paths",
        "A# weft neighbours",
        "A# weft nodes",
        "A# weft routes",
        "All 24 pings between all pairs of routers",
        "E's beacons reached A, and A said no:",
        "has no credential and is not allow-listed",
        "ping: connect: Network is unreachable",
        "A reaches C again after",
        "A uses the direct cable again",
        "0 of weft's routes left behind",
    ] {
        assert!(stdout.contains(line), "demo output lacks {line:?}:\n{stdout}");
    }
    // A's neighbours are the three credentialed routers, over tunnels.
    for n in ["router-b", "router-c", "router-d"] {
        assert!(stdout.contains(n), "{n} missing from the demo output");
    }
    assert!(took < Duration::from_secs(90), "demo took {took:?}");
    // Its temp dir (named in the config it prints) and namespaces are gone.
    let dir = stdout
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("'").and_then(|w| w.split("/a/state").next()).filter(|d| d.contains("weft-demo-"))
        })
        .expect("temp dir in the demo output")
        .to_string();
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    let tag = dir.rsplit("weft-demo-").next().unwrap().split('.').next().unwrap().to_string();
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&format!("{tag}-")), "namespaces of {tag} left behind:\n{list}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(&dir), "a weft of the demo still runs");
}
