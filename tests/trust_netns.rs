//! The zero-trust mesh proved in network namespaces with the real daemon,
//! wireguard-go tunnels and credentials made with the real CLI:
//! - credentialed nodes in a line route only through tunnels (captures of the
//!   raw links show discovery and WireGuard, no Babel, no ICMP in clear);
//! - rogues on a shared segment (no credential, expired, another CA, plain
//!   babeld) get nothing and disturb nothing; a node revoked while running
//!   is cut off at the next reload;
//! - a prefix outside the announcer's credential is refused and counted;
//! - a credential that expires while connected cuts its holder off;
//! - static peers across a routed "internet" namespace, IPv4 and IPv6;
//! - `weft neighbours --json` and `weft nodes --json`.
//!
//! Needs root, wireguard-go, dumpcap/tshark and nft (scripts/install-deps.sh).
//! Every test builds its own namespaces (names carry the PID and a counter),
//! so the tests run in parallel; everything is removed on drop.
//! WEFT_KEEP_TEST_LOGS=1 keeps the daemons' logs and captures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::mesh::{
    cert_info, mesh_address_of, Ca, Capture, Frame, FrameKind, Mesh, NodeConf, NodeId, PeerConf,
};
use common::netns::Net;
use weft::sim::Topology;

/// Every test node says Hello each second: the update interval is four.
const UPDATE_INTERVAL: Duration = Duration::from_secs(4);
/// Allowance for polling and for running `ip` on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);
/// weft's beacon interval (fixed: 5 s) plus an update interval and slack.
const RENEWAL_BOUND: Duration = Duration::from_secs(12);
const CONVERGE: Duration = Duration::from_secs(40);

fn v4_prefix(i: usize) -> String {
    format!("10.88.{}.0/24", i + 1)
}

fn v4_host(i: usize) -> String {
    format!("10.88.{}.1", i + 1)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// The tunnel name prefix weft gives tunnels to the node with `public`:
/// "weft" and the first three bytes of its key in hex.
fn tunnel_prefix(public: &str) -> String {
    let key: weft::trust::PublicKey = public.parse().expect("a WireGuard public key");
    format!("weft{:02x}{:02x}{:02x}", key.0[0], key.0[1], key.0[2])
}

/// Tunnels of node `i` to the node whose key is `public`.
fn tunnels_to(m: &Mesh, i: usize, public: &str) -> Vec<String> {
    let p = tunnel_prefix(public);
    m.tunnels(i).into_keys().filter(|n| n.starts_with(&p)).collect()
}

/// Sorts frames captured on raw mesh links: those sent from an address in
/// `from` (all frames if `None`) are counted by kind; descriptions of the
/// ones that are neither discovery, WireGuard nor link control are returned.
fn classify_raw_frames(
    frames: &[Frame],
    from: Option<&BTreeSet<String>>,
) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut bad = Vec::new();
    for f in frames {
        if from.is_some_and(|s| !s.iter().any(|a| f.src.eq_ignore_ascii_case(a))) {
            continue;
        }
        let key = match f.kind() {
            FrameKind::Discovery => "discovery".to_string(),
            FrameKind::WireGuard(t) => format!("wireguard-{t}"),
            FrameKind::LinkControl => "link-control".to_string(),
            FrameKind::IcmpErrorAbout(inner) => format!("icmp-error-about-{inner}"),
            FrameKind::Other(d) => {
                bad.push(d);
                "other".to_string()
            }
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    (counts, bad)
}

/// Asserts that raw mesh links carried only discovery, WireGuard and link
/// control (see [`classify_raw_frames`]); returns the counts.
fn assert_only_discovery_and_wireguard(
    frames: &[Frame],
    from: Option<&BTreeSet<String>>,
) -> BTreeMap<String, usize> {
    let (counts, bad) = classify_raw_frames(frames, from);
    assert!(
        bad.is_empty(),
        "{} frame(s) on raw mesh links were neither discovery nor WireGuard, e.g.:\n{}",
        bad.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    counts
}

/// Waits until `cond` holds, or fails with `what` and the logs of `nodes`.
fn await_or_fail(
    m: &Mesh,
    timeout: Duration,
    what: &str,
    nodes: &[usize],
    cond: impl FnMut() -> bool,
) -> Duration {
    match Net::wait_until(timeout, cond) {
        Some(d) => d,
        None => {
            let logs: Vec<String> = nodes.iter().map(|&i| m.log_tail(i, 40)).collect();
            panic!("timed out after {timeout:?}: {what}\n{}", logs.join("\n"));
        }
    }
}

#[test]
fn three_credentialed_nodes_in_a_line_route_only_through_tunnels() {
    require_mesh_tools!();
    let mut m = Mesh::new(&Topology::line(3));
    let ca = Ca::init(m.net.root.join("ca"));
    let mut creds = Vec::new();
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[&v4_prefix(i)], None);
        let ifaces: Vec<String> = match i {
            0 => vec![m.net.dev(0, 1)],
            1 => vec![m.net.dev(1, 0), m.net.dev(1, 2)],
            _ => vec![m.net.dev(2, 1)],
        };
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        conf.announces = vec![v4_prefix(i)];
        m.net.exec_ok(i, &["ip", "addr", "add", &format!("{}/32", v4_host(i)), "dev", "lo"]);
        m.write_conf(i, &conf);
        creds.push(cred);
    }
    let mesh: Vec<String> = creds.iter().map(|c| mesh_address_of(c)).collect();
    // Everything the daemons ever put on the raw links passes node 1.
    let (d10, d12) = (m.net.dev(1, 0), m.net.dev(1, 2));
    let cap = Capture::start(&m.net, 1, &[&d10, &d12], "raw");
    let t0 = Instant::now();
    for i in 0..3 {
        m.start(i);
    }
    for (i, addr) in mesh.iter().enumerate() {
        assert_eq!(&m.mesh_address(i), addr, "node {i}'s mesh address differs from `cert show`'s");
    }
    // Every node learns every other node's granted prefix and mesh /128,
    // each through a weft tunnel.
    let complete = |i: usize| {
        let r = m.routes(i);
        (0..3).filter(|&j| j != i).all(|j| {
            [v4_prefix(j), format!("{}/128", mesh[j])]
                .iter()
                .all(|p| r.get(p).is_some_and(|dev| dev.starts_with("weft")))
        })
    };
    await_or_fail(&m, CONVERGE, "every node routes to every other through tunnels", &[0, 1, 2], || {
        (0..3).all(complete)
    });
    let converged = t0.elapsed();
    assert_eq!(m.tunnels(0).len(), 1, "node 0 has one neighbour: {:?}", m.tunnels(0));
    assert_eq!(m.tunnels(1).len(), 2, "node 1 has two neighbours: {:?}", m.tunnels(1));
    assert_eq!(m.tunnels(2).len(), 1, "node 2 has one neighbour: {:?}", m.tunnels(2));
    // Node 0 reaches node 2 through node 1: next hop on its only tunnel.
    // End to end: mesh addresses and granted prefixes, both directions.
    for (a, b) in [(0, 2), (2, 0), (0, 1), (1, 2)] {
        await_or_fail(
            &m,
            Duration::from_secs(10),
            &format!("ping {} -> {}", mesh[a], mesh[b]),
            &[a, b],
            || m.net.ping_from(a, &mesh[a], &mesh[b]),
        );
        await_or_fail(
            &m,
            Duration::from_secs(10),
            &format!("ping {} -> {}", v4_host(a), v4_host(b)),
            &[a, b],
            || m.net.ping_from(a, &v4_host(a), &v4_host(b)),
        );
    }
    let frames = cap.stop();
    let counts = assert_only_discovery_and_wireguard(&frames, None);
    eprintln!("converged in {converged:?}; raw-link frames: {counts:?}");
    assert!(counts.get("discovery").copied().unwrap_or(0) >= 4, "no discovery seen: {counts:?}");
    assert!(counts.get("wireguard-1").copied().unwrap_or(0) >= 2, "no WireGuard handshakes seen: {counts:?}");
    // Babel and the pings crossed as WireGuard transport data.
    assert!(counts.get("wireguard-4").copied().unwrap_or(0) >= 20, "too little WireGuard data: {counts:?}");
    // The credentials carry signing keys: every node verified the other
    // two origins' announcement sets, and used their routes because of it.
    for i in 0..3 {
        let t = &m.status(i)["trust"];
        assert_eq!(t["origin"]["signatures"], "require", "node {i}: {t}");
        assert_eq!(t["origin"]["credential_signing_key"], "ours", "node {i}: {t}");
        assert_eq!(t["origin"]["verified_origins"], 2, "node {i}: {}", t["origin"]);
        assert!(t["mesh"]["origin"]["verified"].as_u64().unwrap() >= 2, "node {i}: {}", t["mesh"]["origin"]);
        assert_eq!(t["mesh"]["origin"]["bad_signature"], 0, "node {i}: {}", t["mesh"]["origin"]);
    }
}

/// The classifier the capture checks rely on flags Babel in clear: every
/// frame of a real babeld-to-babeld capture is "other".
#[test]
fn raw_link_check_flags_babel_in_clear() {
    require_cmd!("tshark");
    let frames = common::mesh::read_frames(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/babeld-babeld.pcap"
    )));
    let babel: Vec<&Frame> = frames.iter().filter(|f| f.dst_port == Some(6696)).collect();
    assert!(babel.len() > 10, "the golden capture holds Babel: {} frames", frames.len());
    for f in babel {
        assert!(matches!(f.kind(), FrameKind::Other(_)), "Babel passed as {:?}: {}", f.kind(), f.describe());
    }
    let (_, bad) = classify_raw_frames(&frames, None);
    assert!(
        bad.len() >= frames.iter().filter(|f| f.dst_port == Some(6696)).count(),
        "Babel passed the raw-link check"
    );
}

/// Two credentialed nodes on one link: `weft neighbours --json`, `weft
/// nodes --json` and the `trust` part of `weft status --json` name each
/// other, with keys, credential expiry, tunnel state and mesh addresses.
#[test]
fn neighbours_and_nodes_json_show_names_keys_expiry_and_tunnels() {
    require_mesh_tools!();
    let mut m = Mesh::new(&Topology::line(2));
    let ca = Ca::init(m.net.root.join("ca"));
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    for i in 0..2 {
        let id = NodeId::new(m.dir(i), ["alpha", "bravo"][i]);
        let cred = ca.sign(&id, &[&v4_prefix(i)], Some(["30d", "90d"][i]));
        let mut conf = NodeConf::new(&ca, &id, &cred, &[&m.net.dev(i, 1 - i)]);
        conf.announces = vec![v4_prefix(i)];
        m.write_conf(i, &conf);
        ids.push(id);
        creds.push(cred);
    }
    for i in 0..2 {
        m.start(i);
    }
    let info: Vec<serde_json::Value> = creds.iter().map(|c| cert_info(c)).collect();
    let mesh: Vec<String> = creds.iter().map(|c| mesh_address_of(c)).collect();
    await_or_fail(&m, CONVERGE, "both nodes route to each other", &[0, 1], || {
        (0..2).all(|i| m.routes(i).contains_key(&v4_prefix(1 - i)))
    });
    for i in 0..2 {
        let j = 1 - i;
        let tunnel = tunnels_to(&m, i, &ids[j].public);
        assert_eq!(tunnel.len(), 1, "node {i}: one tunnel to {}: {:?}", ids[j].name, m.tunnels(i));
        let tunnel = &tunnel[0];
        // neighbours: the Babel neighbour on the tunnel, with who it is.
        let nb = m.query(i, "neighbours");
        let rows = nb["neighbours"].as_array().expect("neighbours array");
        assert_eq!(rows.len(), 1, "node {i}: {nb:#}");
        let row = &rows[0];
        assert_eq!(row["interface"], tunnel.as_str(), "{row:#}");
        assert_eq!(row["name"], ids[j].name.as_str(), "{row:#}");
        assert_eq!(row["public_key"], ids[j].public.as_str(), "{row:#}");
        assert_eq!(
            row["credential_expires"], info[j]["not_after"],
            "expiry is the credential's not_after: {row:#}"
        );
        let t = row["tunnel"].as_str().expect("tunnel text");
        assert!(t.contains(tunnel.as_str()) && t.contains(" up"), "tunnel state: {t}");
        assert!(
            t.contains("endpoint [fe80::") && t.contains("]:518"),
            "endpoint is a link-local WireGuard port: {t}"
        );
        // nodes: both nodes, valid, with names, keys, grants and addresses.
        let nodes = m.query(i, "nodes");
        let list = nodes["nodes"].as_array().expect("nodes array");
        assert_eq!(list.len(), 2, "node {i}: {nodes:#}");
        for k in 0..2 {
            let n = list
                .iter()
                .find(|n| n["public_key"] == ids[k].public.as_str())
                .unwrap_or_else(|| panic!("node {i} does not list {}: {nodes:#}", ids[k].name));
            assert_eq!(n["name"], ids[k].name.as_str(), "{n:#}");
            assert_eq!(n["status"], "valid", "{n:#}");
            assert_eq!(n["self"], k == i, "{n:#}");
            assert_eq!(n["expires"], info[k]["not_after"], "{n:#}");
            assert_eq!(n["prefixes"], v4_prefix(k).as_str(), "{n:#}");
            assert_eq!(n["address"], mesh[k].as_str(), "{n:#}");
            assert_eq!(n["router_id"], info[k]["router_id"], "{n:#}");
        }
        // status: the trust summary agrees.
        let st = m.status(i);
        let trust = &st["trust"];
        assert_eq!(trust["public_key"], ids[i].public.as_str(), "{trust:#}");
        assert_eq!(trust["credential"]["name"], ids[i].name.as_str(), "{trust:#}");
        assert_eq!(trust["credential"]["expires"], info[i]["not_after"], "{trust:#}");
        assert_eq!(trust["tunnels"], 1, "{trust:#}");
        assert_eq!(trust["refused_announcements"], 0, "{trust:#}");
        let ln = trust["link_neighbours"].as_array().expect("link_neighbours");
        assert_eq!(ln.len(), 1, "{trust:#}");
        assert_eq!(ln[0]["name"], ids[j].name.as_str(), "{trust:#}");
        assert_eq!(ln[0]["public_key"], ids[j].public.as_str(), "{trust:#}");
        assert_eq!(ln[0]["verified"], true, "{trust:#}");
        assert_eq!(ln[0]["tunnel"], tunnel.as_str(), "{trust:#}");
        assert_eq!(ln[0]["credential_expires"], info[j]["not_after"], "{trust:#}");
        // The human-readable views carry the names too.
        let text = m.net.exec_ok(i, &[common::mesh::weft(), "nodes", "-s", m.sock(i).to_str().unwrap()]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("alpha") && text.contains("bravo"), "weft nodes:\n{text}");
    }
}

/// A credentialed node announcing prefixes its credential does not grant
/// (a disjoint one, a supernet of its grant, an IPv6 one): no node
/// installs them, its neighbour counts them, its granted prefix flows.
#[test]
fn prefixes_outside_the_credential_are_refused_everywhere_and_counted() {
    require_mesh_tools!();
    let mut m = Mesh::new(&Topology::line(3));
    let ca = Ca::init(m.net.root.join("ca"));
    let bad = ["10.99.0.0/24", "10.88.0.0/16", "fd99:1::/64"];
    let mut mesh = Vec::new();
    for i in 0..3 {
        let id = NodeId::new(m.dir(i), &format!("node{i}"));
        let cred = ca.sign(&id, &[&v4_prefix(i)], None);
        let ifaces: Vec<String> =
            (0..3).filter(|&j| j != i && j.abs_diff(i) == 1).map(|j| m.net.dev(i, j)).collect();
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        let mut conf = NodeConf::new(&ca, &id, &cred, &ifaces);
        conf.announces = vec![v4_prefix(i)];
        if i == 0 {
            conf.announces.extend(bad.iter().map(|s| s.to_string()));
        }
        m.write_conf(i, &conf);
        mesh.push(mesh_address_of(&cred));
    }
    for i in 0..3 {
        m.start(i);
    }
    // The granted prefix and the mesh address of node 0 do reach node 2.
    await_or_fail(&m, CONVERGE, "node 0's granted prefix reaches nodes 1 and 2", &[0, 1, 2], || {
        (1..3).all(|i| {
            let r = m.routes(i);
            r.contains_key(&v4_prefix(0)) && r.contains_key(&format!("{}/128", mesh[0]))
        })
    });
    await_or_fail(&m, Duration::from_secs(20), "node 1 counts three refused announcements", &[1], || {
        m.status(1)["trust"]["refused_announcements"] == 3
    });
    // Several update intervals of node 0 re-announcing them.
    let until = Instant::now() + 2 * UPDATE_INTERVAL;
    while Instant::now() < until {
        for i in 0..3 {
            let r = m.routes(i);
            for p in bad {
                assert!(!r.contains_key(p), "node {i} installed {p}, outside node 0's credential: {r:?}");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let st = m.status(1);
    assert_eq!(st["trust"]["refused_announcements"], 3, "{:#}", st["trust"]);
    let c = m.status(2)["trust"]["refused_announcements"].clone();
    eprintln!("refused_announcements: node 1 = 3, node 2 = {c}");
    // Node 0 itself announces them (its own configuration) but they are
    // not kernel routes of weft's.
    let r0 = m.routes(0);
    for p in bad {
        assert!(!r0.contains_key(p), "node 0 installed its own {p}: {r0:?}");
    }
}

/// Link-local addresses of `dev` in node `i`.
fn link_locals(m: &Mesh, i: usize, dev: &str) -> BTreeSet<String> {
    let out = m.net.exec_ok(i, &["ip", "-j", "-6", "addr", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j addr");
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .collect()
}

/// The line of node `i`'s log saying it refused a tunnel to `public`.
fn refusal_line(m: &Mesh, i: usize, public: &str) -> Option<String> {
    let needle = format!("refused a tunnel to {public} (");
    m.log(i).lines().find(|l| l.contains(&needle)).map(str::to_string)
}

#[test]
fn rogues_on_a_shared_segment_get_nothing_and_a_revoked_node_is_cut_off() {
    require_mesh_tools!();
    const SEG: &str = "mesh0";
    let names = ["alpha", "bravo", "victor", "nocred", "expired", "otherca", "babeld"];
    let (legit, rogues) = ([0usize, 1, 2], [3usize, 4, 5]);
    const BABELD: usize = 6;
    let mut m = Mesh::with_nodes(&names);
    m.net.add_segment(&[0, 1, 2, 3, 4, 5, 6], SEG);
    let ca = Ca::init(m.net.root.join("ca"));
    let other_ca = Ca::init(m.net.root.join("ca2"));
    let ids: Vec<NodeId> = (0..6).map(|i| NodeId::new(m.dir(i), names[i])).collect();
    let mut mesh = BTreeMap::new();
    let mut expired_cred = None;
    for i in 0..6 {
        let prefix = if legit.contains(&i) { v4_prefix(i) } else { format!("10.66.{i}.0/24") };
        let cred = match names[i] {
            "nocred" => ids[i].dir.join("none.cred"),
            "expired" => {
                let c = ca.sign(&ids[i], &[&prefix], Some("1s"));
                expired_cred = Some(c.clone());
                c
            }
            "otherca" => other_ca.sign(&ids[i], &[&prefix], None),
            _ => ca.sign(&ids[i], &[&prefix], None),
        };
        let mut conf = NodeConf::new(&ca, &ids[i], &cred, &[SEG]);
        conf.announces = vec![prefix];
        // Per hop: this test follows which tunnel each route takes (end to
        // end is tested in tests/e2e_netns.rs and the tests around this one).
        conf.main_extra.push("option end_to_end '0'".into());
        if rogues.contains(&i) {
            // Rogues accept both CAs: they try as hard as they can.
            conf.ca_keys.push(other_ca.public.clone());
        }
        m.write_conf(i, &conf);
        if cred.exists() {
            mesh.insert(i, mesh_address_of(&cred));
        }
    }
    // Plain babeld announcing its addresses (10.66.6.1 among them) on the segment.
    m.net.exec_ok(BABELD, &["ip", "addr", "add", "10.66.6.1/32", "dev", "lo"]);
    // The legitimate nodes form their mesh first.
    for &i in &legit {
        m.start(i);
    }
    let expected = |i: usize| -> BTreeSet<String> {
        legit.iter().filter(|&&j| j != i).flat_map(|&j| [v4_prefix(j), format!("{}/128", mesh[&j])]).collect()
    };
    // Settled: every route goes over the direct tunnel (one learnt first
    // the long way round moves when the direct tunnel comes up).
    let direct = |i: usize| {
        let r = m.routes(i);
        r.keys().cloned().collect::<BTreeSet<_>>() == expected(i)
            && legit.iter().filter(|&&j| j != i).all(|&j| {
                let t = tunnels_to(&m, i, &ids[j].public);
                [v4_prefix(j), format!("{}/128", mesh[&j])]
                    .iter()
                    .all(|p| r.get(p).is_some_and(|d| t.contains(d)))
            })
    };
    await_or_fail(&m, CONVERGE, "alpha, bravo and victor route to each other directly", &legit, || {
        legit.iter().all(|&i| direct(i))
    });
    for &i in &legit {
        assert_eq!(
            m.tunnels(i).len(),
            2,
            "{}: a tunnel to each other legitimate node: {:?}",
            names[i],
            m.tunnels(i)
        );
    }
    let tunnels_before: Vec<_> = legit.iter().map(|&i| m.tunnels(i)).collect();
    let routes_before: Vec<_> = legit.iter().map(|&i| m.routes(i)).collect();

    // Then the rogues arrive; everything alpha hears on the segment is captured.
    let expired_cred = expired_cred.expect("signed");
    await_or_fail(&m, Duration::from_secs(10), "the 1 s credential expires", &[], || {
        cert_info(&expired_cred)["validity"] == "expired"
    });
    let cap = Capture::start(&m.net, 0, &[SEG], "segment");
    for &r in &rogues {
        m.start(r);
    }
    let _babeld = common::peers::Babeld::start(
        &m.net,
        BABELD,
        &format!("interface {SEG} hello-interval 1 type wired\n"),
    );
    let reasons = [(3, "has no credential"), (4, "expired at"), (5, "signed by unknown CA")];
    for &i in &legit {
        for (r, reason) in reasons {
            await_or_fail(
                &m,
                Duration::from_secs(20),
                &format!("{} refuses {}", names[i], names[r]),
                &[i, r],
                || refusal_line(&m, i, &ids[r].public).is_some(),
            );
            let line = refusal_line(&m, i, &ids[r].public).unwrap();
            assert!(line.contains(reason), "{} refused {} for the wrong reason: {line}", names[i], names[r]);
        }
    }
    // Two update intervals with the rogues beaconing, offering and (babeld)
    // sending Babel: nothing of the legitimate mesh may change.
    let until = Instant::now() + 2 * UPDATE_INTERVAL;
    while Instant::now() < until {
        for (k, &i) in legit.iter().enumerate() {
            assert_eq!(m.tunnels(i), tunnels_before[k], "{}'s tunnels changed with rogues around", names[i]);
            assert_eq!(m.routes(i), routes_before[k], "{}'s routes changed with rogues around", names[i]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    for r in [3, 4, 5, BABELD] {
        assert!(m.tunnels(r).is_empty(), "rogue {} got a tunnel: {:?}", names[r], m.tunnels(r));
        assert!(m.routes(r).is_empty(), "rogue {} got weft routes: {:?}", names[r], m.routes(r));
    }
    let babel_routes = m.net.exec_ok(BABELD, &["ip", "route", "show", "proto", "babel"]);
    assert!(
        babel_routes.stdout.is_empty(),
        "babeld learned routes: {}",
        String::from_utf8_lossy(&babel_routes.stdout)
    );
    for &r in &rogues {
        let st = m.status(r);
        assert_eq!(st["trust"]["tunnels"], 0, "rogue {}: {:#}", names[r], st["trust"]);
    }
    let legit_keys: BTreeSet<&str> = legit.iter().map(|&i| ids[i].public.as_str()).collect();
    for &i in &legit {
        let st = m.status(i);
        let neighbours: BTreeSet<&str> = st["trust"]["link_neighbours"]
            .as_array()
            .expect("link_neighbours")
            .iter()
            .map(|n| n["public_key"].as_str().unwrap_or(""))
            .collect();
        assert!(neighbours.is_subset(&legit_keys), "{} lists a rogue neighbour: {:#}", names[i], st["trust"]);
        assert!(st["trust"]["mesh"]["refused_neighbours"].as_u64().unwrap_or(0) >= 3, "{:#}", st["trust"]);
        let nodes = m.query(i, "nodes").to_string();
        for &r in &rogues {
            assert!(!nodes.contains(&ids[r].public), "{} knows rogue {}: {nodes}", names[i], names[r]);
        }
    }
    let frames = cap.stop();
    let babel_in_clear = frames.iter().filter(|f| f.dst_port == Some(6696)).count();
    assert!(babel_in_clear > 0, "babeld's Babel never reached alpha: the test proves nothing");
    let legit_addrs: BTreeSet<String> = legit.iter().flat_map(|&i| link_locals(&m, i, SEG)).collect();
    let counts = assert_only_discovery_and_wireguard(&frames, Some(&legit_addrs));
    eprintln!("segment, legitimate senders: {counts:?}; Babel in clear from babeld: {babel_in_clear}");

    // Victor is revoked while running: the others re-read the list on SIGHUP.
    let victor = 2;
    let revoked = ids[0].dir.join("revoked");
    ca.revoke(&ids[victor].public, &revoked);
    std::fs::copy(&revoked, ids[1].dir.join("revoked")).expect("copy revocation list");
    let ab_tunnels = [tunnels_to(&m, 0, &ids[1].public), tunnels_to(&m, 1, &ids[0].public)];
    let t_hup = Instant::now();
    m.reload(0);
    m.reload(1);
    let victor_prefixes = [v4_prefix(victor), format!("{}/128", mesh[&victor])];
    let cut = await_or_fail(
        &m,
        UPDATE_INTERVAL + SLACK,
        "alpha and bravo drop victor's tunnel and routes",
        &[0, 1],
        || {
            [0, 1].iter().all(|&i| {
                let r = m.routes(i);
                tunnels_to(&m, i, &ids[victor].public).is_empty()
                    && victor_prefixes.iter().all(|p| !r.contains_key(p))
            })
        },
    );
    eprintln!("victor cut off {cut:?} after SIGHUP ({:?} since)", t_hup.elapsed());
    for i in [0, 1] {
        let line = refusal_line(&m, i, &ids[victor].public).expect("refusal logged");
        assert!(line.contains("revoked"), "{}: {line}", names[i]);
        let nodes = m.query(i, "nodes");
        let v = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["public_key"] == ids[victor].public.as_str())
            .cloned()
            .unwrap_or_default();
        assert!(
            v["status"].as_str().is_some_and(|s| s.contains("revoked")),
            "{} still trusts victor: {v:#}",
            names[i]
        );
    }
    // Alpha and bravo keep their own tunnel and routes.
    assert_eq!([tunnels_to(&m, 0, &ids[1].public), tunnels_to(&m, 1, &ids[0].public)], ab_tunnels);
    for (i, j) in [(0, 1), (1, 0)] {
        let r = m.routes(i);
        assert!(r.contains_key(&v4_prefix(j)) && r.contains_key(&format!("{}/128", mesh[&j])), "{r:?}");
        assert!(
            m.net.ping_from(i, &mesh[&i], &mesh[&j]),
            "{} cannot reach {} after the revocation",
            names[i],
            names[j]
        );
    }
    // Victor can no longer reach them, and its routes to them age out.
    assert!(!m.net.ping_from(victor, &mesh[&victor], &mesh[&0]), "revoked victor still reaches alpha");
    let aged = await_or_fail(
        &m,
        Duration::from_secs(60),
        "victor's routes to alpha and bravo age out",
        &[victor],
        || m.routes(victor).is_empty(),
    );
    eprintln!("victor's own routes gone {aged:?} after the cut; its tunnels: {:?}", m.tunnels(victor));
}

#[test]
fn a_credential_expiring_while_connected_cuts_its_holder_off() {
    require_mesh_tools!();
    const SEG: &str = "mesh0";
    let names = ["alpha", "bravo", "echo"];
    let echo = 2;
    let mut m = Mesh::with_nodes(&names);
    m.net.add_segment(&[0, 1, 2], SEG);
    let ca = Ca::init(m.net.root.join("ca"));
    let ids: Vec<NodeId> = (0..3).map(|i| NodeId::new(m.dir(i), names[i])).collect();
    let write = |m: &Mesh, i: usize, valid_for: Option<&str>| {
        let cred = ca.sign(&ids[i], &[&v4_prefix(i)], valid_for);
        let mut conf = NodeConf::new(&ca, &ids[i], &cred, &[SEG]);
        conf.announces = vec![v4_prefix(i)];
        m.write_conf(i, &conf);
        cred
    };
    let mut mesh: Vec<String> = Vec::new();
    for i in 0..2 {
        mesh.push(mesh_address_of(&write(&m, i, None)));
        m.start(i);
    }
    // Echo's credential is signed last, just before it starts: 30 s to go.
    let cred = write(&m, echo, Some("30s"));
    let not_after = cert_info(&cred)["not_after_unix"].as_u64().expect("not_after_unix");
    mesh.push(mesh_address_of(&cred));
    m.start(echo);
    let echo_routes = [v4_prefix(echo), format!("{}/128", mesh[echo])];
    let connected = |m: &Mesh, i: usize| {
        let r = m.routes(i);
        !tunnels_to(m, i, &ids[echo].public).is_empty() && echo_routes.iter().all(|p| r.contains_key(p))
    };
    let cut = |m: &Mesh, i: usize| {
        let r = m.routes(i);
        tunnels_to(m, i, &ids[echo].public).is_empty() && echo_routes.iter().all(|p| !r.contains_key(p))
    };
    await_or_fail(&m, Duration::from_secs(20), "alpha and bravo route to echo", &[0, 1, 2], || {
        (0..2).all(|i| connected(&m, i))
    });
    assert!(
        unix_now() + 3 < not_after,
        "the test bed took too long: echo's credential has almost expired already"
    );
    let ab = [tunnels_to(&m, 0, &ids[1].public), tunnels_to(&m, 1, &ids[0].public)];
    assert!(ab.iter().all(|t| t.len() == 1), "alpha and bravo have a tunnel: {ab:?}");
    // Connected until it expires (valid through not_after, inclusive)...
    while unix_now() <= not_after {
        for (i, name) in names.iter().enumerate().take(2) {
            assert!(connected(&m, i) || unix_now() > not_after, "{name} dropped echo before expiry");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...then cut off within one update interval.
    let lapse = UNIX_EPOCH + Duration::from_secs(not_after + 1);
    await_or_fail(&m, UPDATE_INTERVAL + SLACK, "alpha and bravo drop echo after expiry", &[0, 1], || {
        (0..2).all(|i| cut(&m, i))
    });
    let late = SystemTime::now().duration_since(lapse).unwrap_or_default();
    eprintln!("echo cut off {late:?} after its credential lapsed");
    for (i, name) in names.iter().enumerate().take(2) {
        let line = refusal_line(&m, i, &ids[echo].public).expect("refusal logged");
        assert!(line.contains("expired"), "{name}: {line}");
    }
    // Alpha and bravo are not disturbed.
    assert_eq!([tunnels_to(&m, 0, &ids[1].public), tunnels_to(&m, 1, &ids[0].public)], ab);
    for (i, j) in [(0, 1), (1, 0)] {
        assert!(m.routes(i).contains_key(&v4_prefix(j)), "{} lost {}'s prefix", names[i], names[j]);
        assert!(m.net.ping_from(i, &mesh[i], &mesh[j]), "{} cannot reach {}", names[i], names[j]);
    }
    // Echo cannot reach them any more; its routes age out.
    assert!(!m.net.ping_from(echo, &mesh[echo], &mesh[0]), "expired echo still reaches alpha");
    let aged = await_or_fail(&m, Duration::from_secs(60), "echo's routes age out", &[echo], || {
        m.routes(echo).is_empty()
    });
    eprintln!("echo's own routes gone {aged:?} after the cut; its tunnels: {:?}", m.tunnels(echo));
    // Renewed after the fact (new credential, SIGHUP): echo is back within
    // a beacon interval and an update interval, not after the refusal hold.
    ca.sign(&ids[echo], &[&v4_prefix(echo)], Some("30d"));
    let t_hup = Instant::now();
    m.reload(echo);
    let back = await_or_fail(&m, RENEWAL_BOUND, "alpha and bravo take renewed echo back", &[0, 1, 2], || {
        (0..2).all(|i| connected(&m, i))
    });
    eprintln!("renewed echo routed again {back:?} after SIGHUP ({:?})", t_hup.elapsed());
}

/// Two sites joined by a router namespace that only does plain IP routing;
/// each site's weft has the other as a static peer (`config peer` with its
/// public address and key). `v6` picks the family of the "internet".
fn static_peers_over_a_routed_internet(v6: bool) {
    let mut m = Mesh::new(&Topology::line(3));
    let (a, router, b) = (0, 1, 2);
    let (pa, pb) = (m.net.dev(a, router), m.net.dev(b, router));
    let (ra, rb) = (m.net.dev(router, a), m.net.dev(router, b));
    // Public addresses: site A in 192.0.2.0/24 / 2001:db8:a::/64, site B in
    // 198.51.100.0/24 / 2001:db8:b::/64, the router at .254 / ::fe in each.
    for (node, dev, addrs) in [
        (a, &pa, ["192.0.2.1/24", "2001:db8:a::1/64"]),
        (router, &ra, ["192.0.2.254/24", "2001:db8:a::fe/64"]),
        (router, &rb, ["198.51.100.254/24", "2001:db8:b::fe/64"]),
        (b, &pb, ["198.51.100.1/24", "2001:db8:b::1/64"]),
    ] {
        for addr in addrs {
            m.net.exec_ok(node, &["ip", "addr", "add", addr, "dev", dev]);
        }
    }
    m.net.plain_ip_router(router);
    for (node, gw4, gw6) in [(a, "192.0.2.254", "2001:db8:a::fe"), (b, "198.51.100.254", "2001:db8:b::fe")] {
        m.net.exec_ok(node, &["ip", "route", "add", "default", "via", gw4]);
        m.net.exec_ok(node, &["ip", "-6", "route", "add", "default", "via", gw6]);
    }
    let public = |n: usize| match (n == a, v6) {
        (true, false) => "192.0.2.1:6698",
        (false, false) => "198.51.100.1:6698",
        (true, true) => "[2001:db8:a::1]:6698",
        (false, true) => "[2001:db8:b::1]:6698",
    };
    let ca = Ca::init(m.net.root.join("ca"));
    let ids = [NodeId::new(m.dir(a), "site_a"), NodeId::new(m.dir(b), "site_b")];
    let mut mesh = BTreeMap::new();
    for (k, (me, other)) in [(a, b), (b, a)].into_iter().enumerate() {
        let cred = ca.sign(&ids[k], &[&v4_prefix(me)], None);
        let mut conf = NodeConf::new(&ca, &ids[k], &cred, &[]);
        conf.announces = vec![v4_prefix(me)];
        conf.peers = vec![PeerConf {
            name: ids[1 - k].name.clone(),
            public_key: ids[1 - k].public.clone(),
            endpoint: public(other).to_string(),
        }];
        m.net.exec_ok(me, &["ip", "addr", "add", &format!("{}/32", v4_host(me)), "dev", "lo"]);
        m.write_conf(me, &conf);
        mesh.insert(me, mesh_address_of(&cred));
    }
    let cap = Capture::start(&m.net, router, &[&ra, &rb], "internet");
    let t0 = Instant::now();
    m.start(a);
    m.start(b);
    // End to end (on by default): the other site's transport address
    // through the static tunnel, its prefix and mesh address into weft-e2e.
    let through_tunnel = |i: usize, other_key: &str| {
        let tunnel = format!("{}-s0", tunnel_prefix(other_key));
        let r = m.routes(i);
        let other = if i == a { b } else { a };
        let e2e = "weft-e2e".to_string();
        r.get(&format!("{}/128", m.transport_address(other))) == Some(&tunnel)
            && [v4_prefix(other), format!("{}/128", mesh[&other])].iter().all(|p| r.get(p) == Some(&e2e))
    };
    await_or_fail(&m, CONVERGE, "each site routes to the other through its static tunnel", &[a, b], || {
        through_tunnel(a, &ids[1].public) && through_tunnel(b, &ids[0].public)
    });
    let converged = t0.elapsed();
    for (x, y) in [(a, b), (b, a)] {
        await_or_fail(
            &m,
            Duration::from_secs(10),
            &format!("ping {} -> {}", v4_host(x), v4_host(y)),
            &[x, y],
            || m.net.ping_from(x, &v4_host(x), &v4_host(y)),
        );
        await_or_fail(
            &m,
            Duration::from_secs(10),
            &format!("ping {} -> {}", mesh[&x], mesh[&y]),
            &[x, y],
            || m.net.ping_from(x, &mesh[&x], &mesh[&y]),
        );
    }
    // The router knows nothing of the sites' prefixes: the pings crossed
    // it inside WireGuard.
    let r4 = String::from_utf8_lossy(&m.net.exec_ok(router, &["ip", "-4", "route"]).stdout).to_string();
    let r6 = String::from_utf8_lossy(&m.net.exec_ok(router, &["ip", "-6", "route"]).stdout).to_string();
    assert!(!r4.contains("10.88.") && !r6.contains("fd42:"), "the router has site routes:\n{r4}{r6}");
    let st = m.status(a);
    let ln = &st["trust"]["link_neighbours"][0];
    assert_eq!(ln["name"], "site_b", "{:#}", st["trust"]);
    assert_eq!(ln["verified"], true, "site_b's credential was checked: {:#}", st["trust"]);
    assert!(ln["scope"].as_str().is_some_and(|s| s.starts_with("Static")), "{:#}", st["trust"]);
    let frames = cap.stop();
    let counts = assert_only_discovery_and_wireguard(&frames, None);
    assert!(counts.get("wireguard-4").copied().unwrap_or(0) >= 8, "little WireGuard data: {counts:?}");
    eprintln!(
        "static peers over IPv{}: converged in {converged:?}; router saw {counts:?}",
        if v6 { 6 } else { 4 }
    );
}

#[test]
fn static_peers_over_a_routed_ipv4_internet() {
    require_mesh_tools!();
    static_peers_over_a_routed_internet(false);
}

#[test]
fn static_peers_over_a_routed_ipv6_internet() {
    require_mesh_tools!();
    static_peers_over_a_routed_internet(true);
}

/// A credential renewed before it expires (new file, SIGHUP to its holder)
/// keeps the holder's tunnel and routes past the old expiry, and the
/// neighbour sees the new expiry in `weft neighbours` and `weft nodes`.
#[test]
fn a_credential_renewed_by_reload_keeps_the_tunnel_past_the_old_expiry() {
    require_mesh_tools!();
    let names = ["alpha", "echo"];
    let (alpha, echo) = (0, 1);
    let mut m = Mesh::new(&Topology::line(2));
    let ca = Ca::init(m.net.root.join("ca"));
    let ids: Vec<NodeId> = (0..2).map(|i| NodeId::new(m.dir(i), names[i])).collect();
    let mut creds = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // 30 s: enough for a loaded machine to set up the tunnel first.
        let cred = ca.sign(id, &[&v4_prefix(i)], Some(if i == echo { "30s" } else { "1d" }));
        let mut conf = NodeConf::new(&ca, id, &cred, &[&m.net.dev(i, 1 - i)]);
        conf.announces = vec![v4_prefix(i)];
        m.write_conf(i, &conf);
        creds.push(cred);
    }
    let old_not_after = cert_info(&creds[echo])["not_after_unix"].as_u64().unwrap();
    m.start(alpha);
    m.start(echo);
    let echo_routes = [v4_prefix(echo), format!("{}/128", mesh_address_of(&creds[echo]))];
    let connected = |m: &Mesh| {
        let r = m.routes(alpha);
        echo_routes.iter().all(|p| r.contains_key(p))
    };
    await_or_fail(&m, Duration::from_secs(20), "alpha routes to echo", &[0, 1], || connected(&m));
    let tunnel = m.tunnels(alpha);
    assert_eq!(tunnel.len(), 1, "{tunnel:?}");
    // Renewal: a new credential in the same file, then SIGHUP.
    assert!(
        unix_now() + 5 < old_not_after,
        "the test bed took too long: echo's credential is about to expire"
    );
    ca.sign(&ids[echo], &[&v4_prefix(echo)], Some("30d"));
    let new_expiry = cert_info(&creds[echo])["not_after"].clone();
    let t_hup = Instant::now();
    m.reload(echo);
    // Alpha hears the new credential in echo's beacons and in Babel (TLV 224).
    await_or_fail(&m, Duration::from_secs(10), "alpha sees echo's renewed credential", &[0, 1], || {
        let nb = m.query(alpha, "neighbours");
        let nodes = m.query(alpha, "nodes");
        let node_expiry = nodes["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["public_key"] == ids[echo].public.as_str())
            .map(|n| n["expires"].clone());
        nb["neighbours"][0]["credential_expires"] == new_expiry && node_expiry.as_ref() == Some(&new_expiry)
    });
    eprintln!("renewal seen by alpha {:?} after SIGHUP", t_hup.elapsed());
    // Past the old expiry, by more than an update interval: nothing moved.
    let until = old_not_after + 1 + UPDATE_INTERVAL.as_secs() + 2;
    while unix_now() <= until {
        assert_eq!(m.tunnels(alpha), tunnel, "alpha's tunnel to echo changed after the renewal");
        assert!(connected(&m), "alpha lost echo's routes after the renewal:\n{}", m.log_tail(alpha, 20));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(refusal_line(&m, alpha, &ids[echo].public).is_none(), "alpha refused echo after its renewal");
}

/// An attacker on the segment replays a legitimate node's key and
/// credential (both public: they travel in every beacon) in beacons of its
/// own. It gets no tunnel (it cannot answer the MAC-authenticated
/// handshake), does not hold up the real node's tunnel, and does not move
/// the tunnel's endpoint once it exists.
#[test]
fn an_impersonator_replaying_a_credential_gets_no_tunnel_and_moves_nothing() {
    require_mesh_tools!();
    const SEG: &str = "mesh0";
    let names = ["alpha", "bravo", "mallory"];
    let (alpha, bravo, mallory) = (0, 1, 2);
    let mut m = Mesh::with_nodes(&names);
    m.net.add_segment(&[0, 1, 2], SEG);
    let ca = Ca::init(m.net.root.join("ca"));
    let ids: Vec<NodeId> = (0..2).map(|i| NodeId::new(m.dir(i), names[i])).collect();
    let mut creds = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let cred = ca.sign(id, &[&v4_prefix(i)], None);
        let mut conf = NodeConf::new(&ca, id, &cred, &[SEG]);
        conf.announces = vec![v4_prefix(i)];
        m.write_conf(i, &conf);
        creds.push(cred);
    }
    let bravo_key: weft::trust::PublicKey = ids[bravo].public.parse().unwrap();
    let bravo_cred = weft::trust::Credential::from_armour(&std::fs::read_to_string(&creds[bravo]).unwrap())
        .expect("credential");
    let beacon =
        weft::link::wire::LinkMessage::Beacon { key: bravo_key, credential: bravo_cred.to_bytes().to_vec() }
            .encode();
    m.start(alpha);
    let replay = common::mesh::Replayer::start(&m.net, mallory, SEG, beacon, Duration::from_millis(500));
    // Alpha hears bravo's credential from mallory's address and offers a
    // handshake that only bravo's private key can answer.
    await_or_fail(&m, Duration::from_secs(10), "alpha hears the replayed beacons", &[alpha], || {
        m.status(alpha)["trust"]["link"]["beacons_in"].as_u64().unwrap_or(0) >= 4
    });
    assert!(m.tunnels(alpha).is_empty(), "alpha built a tunnel for an impersonator: {:?}", m.tunnels(alpha));
    // The real bravo arrives while the replay goes on.
    let t0 = Instant::now();
    m.start(bravo);
    let bravo_prefixes = [v4_prefix(bravo), format!("{}/128", mesh_address_of(&creds[bravo]))];
    let routed = |m: &Mesh| {
        let r = m.routes(alpha);
        bravo_prefixes.iter().all(|p| r.get(p).is_some_and(|d| d.starts_with("weft")))
    };
    let took =
        await_or_fail(&m, Duration::from_secs(20), "alpha routes to the real bravo", &[alpha, bravo], || {
            routed(&m)
        });
    eprintln!("real bravo routed {took:?} after its start, with mallory replaying its beacon");
    let bravo_addrs = link_locals(&m, bravo, SEG);
    let endpoint =
        |m: &Mesh| m.query(alpha, "neighbours")["neighbours"][0]["tunnel"].as_str().unwrap_or("").to_string();
    let ep = endpoint(&m);
    assert!(
        bravo_addrs.iter().any(|a| ep.contains(&format!("[{a}%"))),
        "tunnel endpoint is not bravo's: {ep} vs {bravo_addrs:?}"
    );
    let tunnels = m.tunnels(alpha);
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    // Two update intervals more of replaying: nothing moves.
    let until = Instant::now() + 2 * UPDATE_INTERVAL;
    while Instant::now() < until {
        assert_eq!(m.tunnels(alpha), tunnels, "alpha's tunnel changed under the replay");
        assert_eq!(endpoint(&m), ep, "the replay moved the tunnel endpoint");
        assert!(routed(&m), "alpha lost bravo's routes under the replay");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        m.net.ping_from(alpha, &m.mesh_address(alpha), &m.mesh_address(bravo)),
        "alpha cannot reach bravo"
    );
    let sent = replay.stop();
    assert!(sent >= 10, "the replay sent only {sent} beacons");
    eprintln!("mallory replayed {sent} beacons in {:?}", t0.elapsed());
}

/// A router whose wall clock reads 1970 (no RTC, no NTP yet: `faketime`
/// runs the real binary with a fake wall clock and the true monotonic one)
/// sits in the middle of a credentialed line: the ends reach each other
/// through it. A node whose credential has expired is still refused by a
/// node with a good clock.
#[test]
fn a_router_at_1970_in_the_middle_of_a_line_joins_and_an_expired_credential_stays_refused() {
    require_mesh_tools!();
    require_cmd!("faketime");
    let topo = Topology::from_json(
        r#"{"links":[{"source":"a","target":"b"},{"source":"b","target":"c"},{"source":"c","target":"x"}]}"#,
    )
    .unwrap();
    let (a, b, c, x) = (0, 1, 2, 3);
    let mut m = Mesh::new(&topo);
    let ca = Ca::init(m.net.root.join("ca"));
    let ids: Vec<NodeId> =
        ["a", "b", "c", "x"].iter().enumerate().map(|(i, n)| NodeId::new(m.dir(i), n)).collect();
    let mut mesh = BTreeMap::new();
    let mut expired = None;
    for (i, id) in ids.iter().enumerate() {
        let cred = if i == x {
            let e = ca.sign(id, &[], Some("1s"));
            expired = Some(e.clone());
            e
        } else {
            ca.sign(id, &[], None)
        };
        let ifaces: Vec<String> = m.net.devices(i);
        let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
        m.write_conf(i, &NodeConf::new(&ca, id, &cred, &ifaces));
        mesh.insert(i, mesh_address_of(&cred));
    }
    m.start(a);
    m.start_wrapped(b, "true", "env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '@1970-01-01 00:00:00'");
    m.start(c);
    let clock = m.status(b)["trust"]["clock"].clone();
    assert_eq!(clock["state"], "unsynchronised", "b's clock: {clock:#}");
    assert!(clock["wall"].as_str().is_some_and(|w| w.starts_with("1970-")), "b's clock: {clock:#}");
    // End to end (on by default): the transport address through b's
    // tunnel, the mesh address into weft-e2e.
    let through_b = |from: usize, to: usize| {
        let r = m.routes(from);
        r.get(&format!("{}/128", m.transport_address(to)))
            .is_some_and(|d| tunnels_to(&m, from, &ids[b].public).contains(d))
            && r.get(&format!("{}/128", mesh[&to])).is_some_and(|d| d == "weft-e2e")
    };
    await_or_fail(&m, CONVERGE, "a and c route to each other through b (clock at 1970)", &[a, b, c], || {
        through_b(a, c) && through_b(c, a)
    });
    for (p, q) in [(a, c), (c, a)] {
        await_or_fail(
            &m,
            Duration::from_secs(10),
            &format!("ping {} -> {}", mesh[&p], mesh[&q]),
            &[p, b, q],
            || m.net.ping_from(p, &mesh[&p], &mesh[&q]),
        );
    }
    let said = m.log(b).lines().filter(|l| l.contains("unsynchronised")).count();
    assert_eq!(said, 1, "b said its clock was unsynchronised {said} times:\n{}", m.log_tail(b, 40));
    // The expired node arrives next to c, whose clock is good.
    let expired = expired.expect("signed");
    await_or_fail(&m, Duration::from_secs(10), "x's 1 s credential expires", &[], || {
        cert_info(&expired)["validity"] == "expired"
    });
    m.start(x);
    await_or_fail(&m, Duration::from_secs(20), "c refuses x: expired", &[c, x], || {
        refusal_line(&m, c, &ids[x].public).is_some_and(|l| l.contains("expired at"))
    });
    // For two update intervals after the refusal, nothing of x's gets in.
    let until = Instant::now() + 2 * UPDATE_INTERVAL;
    while Instant::now() < until {
        assert!(tunnels_to(&m, c, &ids[x].public).is_empty(), "c has a tunnel to the expired x");
        assert!(m.tunnels(x).is_empty(), "x got a tunnel: {:?}", m.tunnels(x));
        assert!(!m.routes(a).contains_key(&format!("{}/128", mesh[&x])), "a routes to the expired x");
        std::thread::sleep(Duration::from_millis(250));
    }
}
