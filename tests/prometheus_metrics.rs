//! Prometheus metrics of a running mesh, read by a real parser: Python's
//! prometheus_client (Debian's python3-prometheus-client) parses what
//! `weft metrics` prints and what the daemon writes to its metrics file, and
//! the values are checked against the daemon's own JSON views and the
//! WireGuard tunnel that carried a ping: two credentialed nodes on one link,
//! so every figure has one right answer.
//!
//! Needs root, wireguard-go and python3-prometheus-client
//! (scripts/install-deps.sh).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::mesh::{mesh_address_of, Ca, Mesh, NodeConf, NodeId};
use common::netns::Net;
use serde_json::Value;
use weft::sim::Topology;

const CONVERGE: Duration = Duration::from_secs(40);
/// Debian's interpreter, where python3-prometheus-client is installed.
const PYTHON: &str = "/usr/bin/python3";

/// Parses exposition text with prometheus_client; returns every sample as
/// (name, labels) -> value, and each family's type.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(text: &str) -> (Samples, BTreeMap<String, String>) {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"samples": [], "types": {}}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out["types"][fam.name] = fam.type
    for s in fam.samples:
        out["samples"].append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let out = common::weft_cli::run_with_stdin(PYTHON, &["-c", SCRIPT], text);
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("parser output");
    let mut samples = Samples::new();
    for s in v["samples"].as_array().unwrap() {
        let labels: BTreeMap<String, String> = s[1]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let key = (s[0].as_str().unwrap().to_string(), labels);
        assert!(samples.insert(key.clone(), s[2].as_f64().unwrap()).is_none(), "duplicate series {key:?}");
    }
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().into()))
        .collect();
    (samples, types)
}

fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let l: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    *s.get(&(name.to_string(), l.clone())).unwrap_or_else(|| {
        panic!("no {name}{l:?}; have: {:#?}", s.keys().filter(|(n, _)| n == name).collect::<Vec<_>>())
    })
}

fn metrics_cli(m: &Mesh, i: usize) -> String {
    let out = Command::new(common::mesh::weft()).args(["metrics", "-s"]).arg(m.sock(i)).output().unwrap();
    assert!(out.status.success(), "weft metrics: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn await_or_fail(m: &Mesh, timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if Net::wait_until(timeout, cond).is_none() {
        panic!("timed out after {timeout:?}: {what}\n{}\n{}", m.log_tail(0, 40), m.log_tail(1, 20));
    }
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn metrics_parse_and_agree_with_the_daemon() {
    require_mesh_tools!();
    assert!(Path::new(PYTHON).exists(), "{PYTHON} is needed");
    let mut m = Mesh::new(&Topology::line(2));
    let ca = Ca::init(m.net.root.join("ca"));
    let mut creds = Vec::new();
    for i in 0..2 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[], None);
        let conf = NodeConf::new(&ca, &id, &cred, &[&m.net.dev(i, 1 - i)]);
        m.write_conf(i, &conf);
        creds.push(cred);
    }
    let mesh: Vec<String> = creds.iter().map(|c| mesh_address_of(c)).collect();
    let started = unix_now();
    for i in 0..2 {
        m.start(i);
    }
    await_or_fail(&m, CONVERGE, "node 0 reaches node 1's mesh address", || {
        m.net.ping_from(0, &mesh[0], &mesh[1])
    });

    let (s, types) = parse(&metrics_cli(&m, 0));
    for (family, kind) in [
        ("weft_build_info", "gauge"),
        ("weft_neighbour_cost", "gauge"),
        ("weft_routes", "gauge"),
        ("weft_nodes", "gauge"),
        ("weft_refused_announcements", "counter"),
        ("weft_refused_routes", "gauge"),
        ("weft_tunnel_received_bytes", "counter"),
        ("weft_tunnel_sent_bytes", "counter"),
        ("weft_latest_handshake_seconds", "gauge"),
        ("weft_control_bytes", "counter"),
    ] {
        assert_eq!(types.get(family).map(String::as_str), Some(kind), "{family}: {types:?}");
    }
    assert_eq!(value(&s, "weft_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // The one neighbour, as `weft neighbours` shows it, with its name.
    let nb = m.query(0, "neighbours");
    let row = &nb["neighbours"].as_array().unwrap()[0];
    let (dev, addr) = (row["interface"].as_str().unwrap(), row["address"].as_str().unwrap());
    let cost = value(&s, "weft_neighbour_cost", &[("dev", dev), ("address", addr), ("name", "node1")]);
    assert!((1.0..65535.0).contains(&cost), "cost {cost}");
    assert_eq!(s.keys().filter(|(n, _)| n == "weft_neighbour_cost").count(), 1);

    // Routes: the installed ones are node 1's mesh address; ours is local.
    let routes = m.query(0, "routes");
    let installed = routes["routes"].as_array().unwrap().iter().filter(|r| r["installed"] == true).count();
    assert!(installed >= 1);
    assert_eq!(value(&s, "weft_routes", &[("state", "installed")]), installed as f64);
    assert_eq!(value(&s, "weft_routes", &[("state", "local")]), 2.0, "our own mesh and transport /128s");
    assert_eq!(value(&s, "weft_nodes", &[("state", "valid")]), 2.0);
    for state in ["expired", "not_yet_valid", "revoked", "untrusted"] {
        assert_eq!(value(&s, "weft_nodes", &[("state", state)]), 0.0, "{state}");
    }
    assert_eq!(value(&s, "weft_refused_routes", &[("reason", "not_granted")]), 0.0);
    let _ = value(&s, "weft_refused_announcements_total", &[]);

    // The tunnel carried Babel and the ping, and shook hands since start.
    let peer = [("peer", "node1"), ("dev", dev)];
    let rx = value(&s, "weft_tunnel_received_bytes_total", &peer);
    let tx = value(&s, "weft_tunnel_sent_bytes_total", &peer);
    assert!(rx > 0.0 && tx > 0.0, "rx {rx} tx {tx}");
    let hs = value(&s, "weft_latest_handshake_seconds", &peer);
    assert!(hs >= started.floor() - 1.0 && hs <= unix_now() + 1.0, "handshake at {hs}, started {started}");
    // Node 1 counts the same tunnel from its side.
    let (s1, _) = parse(&metrics_cli(&m, 1));
    let back = s1
        .iter()
        .find(|((n, l), _)| {
            n == "weft_tunnel_received_bytes_total" && l.get("peer").map(String::as_str) == Some("node0")
        })
        .map(|(_, v)| *v)
        .expect("node 1's tunnel to node0");
    assert!(back > 0.0);

    let c_in = value(&s, "weft_control_bytes_total", &[("dir", "in")]);
    let c_out = value(&s, "weft_control_bytes_total", &[("dir", "out")]);
    // Babel and discovery, as `weft status` counts them a moment later.
    let st = m.status(0);
    let later = |dir: &str| {
        st["babel"][format!("bytes_{dir}")].as_f64().unwrap()
            + st["trust"]["mesh"][format!("discovery_bytes_{dir}")].as_f64().unwrap()
    };
    assert!(st["trust"]["mesh"]["discovery_bytes_in"].as_f64().unwrap() > 0.0, "{st:#}");
    assert!(c_in > 0.0 && c_in <= later("in"), "in {c_in}, later {}", later("in"));
    assert!(c_out > 0.0 && c_out <= later("out"), "out {c_out}, later {}", later("out"));
    // Counters grow: Hellos every second, a ping through the tunnel.
    assert!(m.net.ping_from(0, &mesh[0], &mesh[1]));
    await_or_fail(&m, Duration::from_secs(5), "counters grow", || {
        let (t, _) = parse(&metrics_cli(&m, 0));
        value(&t, "weft_control_bytes_total", &[("dir", "out")]) > c_out
            && value(&t, "weft_tunnel_sent_bytes_total", &peer) > tx
    });

    // The metrics file: the same families, rewritten every update interval
    // (4 s here) with what is current, never half written.
    let file = m.dir(0).join("weft.prom");
    let read = || parse(&std::fs::read_to_string(&file).unwrap_or_default());
    await_or_fail(&m, Duration::from_secs(10), "the metrics file shows both nodes", || {
        file.exists()
            && read().0.get(&("weft_nodes".into(), [("state".into(), "valid".into())].into())) == Some(&2.0)
    });
    let (fs, ftypes) = read();
    assert_eq!(ftypes, types, "the file has what `weft metrics` prints");
    let out_then = value(&fs, "weft_control_bytes_total", &[("dir", "out")]);
    await_or_fail(&m, Duration::from_secs(10), "the metrics file is rewritten with newer counters", || {
        value(&read().0, "weft_control_bytes_total", &[("dir", "out")]) > out_then
    });
    assert!(temp_files(m.dir(0)).is_empty(), "temporary files left: {:?}", temp_files(m.dir(0)));

    // A clean stop removes it: stale metrics would look like a live node.
    m.stop(0);
    assert!(!file.exists(), "the metrics file outlives the daemon");
    let out = Command::new(common::mesh::weft()).args(["metrics", "-s"]).arg(m.sock(0)).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "weft metrics without a daemon");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the weft daemon"));
}
