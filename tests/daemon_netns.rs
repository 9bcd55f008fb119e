//! The real `weft daemon` in network namespaces: convergence on a line and
//! a ring, rerouting around carrier loss and silent failure, crash and
//! clean stop, reload, interfaces coming and going, and the CLI views.
//!
//! Needs root (skips otherwise). Each test builds its own uniquely named
//! namespaces, so tests run in parallel; everything is removed on drop.
//! Timing bounds are loose on purpose (the test machine is shared and
//! often loaded); the measured figures are printed with `--nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::netns::{ll, node_v4, node_v6, Net};
use common::weftd::{node_prefixes, route_dst, tail};
use weft::sim::Topology;

/// First convergence of a small mesh with 1 s Hellos.
const CONVERGE: Duration = Duration::from_secs(30);

fn converged(topo: &Topology) -> Net {
    let mut net = Net::new(topo);
    net.start_all();
    let t = net.wait_full_mesh(CONVERGE);
    eprintln!("{} nodes converged in {t:?}", net.len());
    net
}

/// The next hop of node `i`'s kernel route to `addr`: (device, gateway).
/// IPv4 routes have an IPv6 gateway (`via inet6`, RFC 9229).
fn next_hop(net: &Net, i: usize, addr: &str) -> Option<(String, String)> {
    let r = net.route_get(i, addr)?;
    let gw = r["gateway"].as_str().or_else(|| r["via"]["host"].as_str()).unwrap_or_default();
    Some((r["dev"].as_str()?.to_string(), gw.to_string()))
}

/// Waits (bounded) until node `i` sends to `addr` through `dev`. A route
/// may first be learnt the long way round; the better one can then wait for
/// the next periodic update (like babeld, weft sends no triggered update for
/// a metric improvement under 1024), so presence alone does not settle it.
/// Panics with both views of the table.
fn assert_via(net: &Net, i: usize, addr: &str, dev: &str, timeout: Duration) -> Duration {
    let t = Net::wait_until(timeout, || next_hop(net, i, addr).is_some_and(|(d, _)| d == dev)).unwrap_or_else(|| {
        panic!(
            "node {i} does not reach {addr} through {dev} within {timeout:?}: kernel {:?}\nweft routes:\n{}\n{}",
            net.route_get(i, addr),
            String::from_utf8_lossy(&net.weft_cli(i, &["routes"]).stdout),
            tail(&net.weft_log(i), 30)
        )
    });
    if t > Duration::from_millis(500) {
        eprintln!("node {i}: route to {addr} moved to {dev} after {t:?}");
    }
    t
}

#[test]
fn line_of_5_every_node_reaches_every_other() {
    require_netns!();
    let net = converged(&Topology::line(5));
    net.ping_all();
    // Routes follow the line: node 0 reaches node 4 through node 1, with
    // four wired hops of metric; the kernel route is weft's (proto 119).
    let (dev, gw) = next_hop(&net, 0, &node_v6(4)).expect("route 0 -> 4");
    assert_eq!((dev.as_str(), gw.as_str()), ("to1", ll(1, 0).as_str()));
    let r = net.kernel_route(0, &format!("{}/32", node_v4(4))).expect("v4 route 0 -> 4");
    assert_eq!(r["via"]["family"], "inet6", "IPv4 via IPv6 next hop: {r}");
    assert_eq!(r["via"]["host"].as_str(), Some(ll(1, 0).as_str()), "{r}");
    assert_eq!(r["dev"].as_str(), Some("to1"));
    let routes = net.weft_json(0, "routes");
    let far = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == format!("{}/128", node_v6(4)) && r["installed"] == true)
        .unwrap_or_else(|| panic!("no installed route to node 4: {routes}"));
    assert_eq!(far["metric"], 4 * 96, "{far}");
    // The middle node sees both ends directly through its two neighbours.
    assert_eq!(next_hop(&net, 2, &node_v4(0)).unwrap().0, "to1");
    assert_eq!(next_hop(&net, 2, &node_v4(4)).unwrap().0, "to3");
}

#[test]
fn ring_of_6_every_node_reaches_every_other() {
    require_netns!();
    let net = converged(&Topology::ring(6));
    net.ping_all();
    for i in 0..6 {
        let n = net.weft_json(i, "neighbours");
        assert_eq!(n["neighbours"].as_array().unwrap().len(), 2, "node {i}: {n}");
        // Shortest way round the ring: the neighbour on the near side.
        let right = (i + 1) % 6;
        let left = (i + 5) % 6;
        let settle = Duration::from_secs(10);
        for addr in [node_v6(right), node_v4(right), node_v6((i + 2) % 6)] {
            assert_via(&net, i, &addr, &format!("to{right}"), settle);
        }
        for addr in [node_v6(left), node_v4(left), node_v4((i + 4) % 6)] {
            assert_via(&net, i, &addr, &format!("to{left}"), settle);
        }
    }
}

/// Breaks the ring link 0–1 (carrier loss or silent drop), measures the
/// time until node 0 reaches node 1 again (both families, the long way
/// round), then restores the link and waits for the direct path to return.
fn ring_reroute(silent: bool, bound: Duration) {
    let net = converged(&Topology::ring(6));
    let settle = Duration::from_secs(10);
    for addr in [node_v6(1), node_v4(1)] {
        assert_via(&net, 0, &addr, "to1", settle);
    }
    for addr in [node_v6(0), node_v4(0)] {
        assert_via(&net, 1, &addr, "to0", settle);
    }
    let what = if silent { "silent failure" } else { "carrier loss" };
    let start = Instant::now();
    if silent {
        net.link_silent(0, 1);
    } else {
        net.link_down(0, 1);
    }
    // Routes first (polled finely), then the data path itself.
    let routed = Net::wait_until(bound, || {
        [(0, node_v6(1), "to5"), (0, node_v4(1), "to5"), (1, node_v6(0), "to2"), (1, node_v4(0), "to2")]
            .iter()
            .all(|(i, a, d)| net.out_dev(*i, a).as_deref() == Some(*d))
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: no detour within {bound:?}; node 0 routes:\n{}\nnode 1 routes:\n{}\n{}",
            String::from_utf8_lossy(&net.weft_cli(0, &["routes"]).stdout),
            String::from_utf8_lossy(&net.weft_cli(1, &["routes"]).stdout),
            tail(&net.weft_log(0), 30)
        )
    });
    for (i, a) in [(0, node_v6(1)), (0, node_v4(1)), (1, node_v6(0)), (1, node_v4(0))] {
        assert!(
            Net::wait_until(Duration::from_secs(3), || net.ping(i, &a)).is_some(),
            "{what}: node {i} has a detour to {a} but ping fails"
        );
    }
    let working = start.elapsed();
    eprintln!("{what}: detour routed after {routed:?}, pings through after {working:?}");
    assert!(working < bound, "{what}: a working path took {working:?} (bound {bound:?})");
    // The long way round is five wired hops.
    let r = net.weft_json(0, "routes");
    let m = r["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["prefix"] == format!("{}/128", node_v6(1)) && x["installed"] == true)
        .map(|x| x["metric"].clone());
    assert_eq!(m, Some(serde_json::json!(5 * 96)), "{r}");

    let back = Instant::now();
    if silent {
        net.link_unsilence(0, 1);
    } else {
        net.link_up(0, 1);
    }
    for (i, a, d) in
        [(0, node_v6(1), "to1"), (0, node_v4(1), "to1"), (1, node_v6(0), "to0"), (1, node_v4(0), "to0")]
    {
        assert_via(&net, i, &a, d, Duration::from_secs(20));
    }
    let (dev, gw) = next_hop(&net, 0, &node_v4(1)).unwrap();
    assert_eq!((dev.as_str(), gw.as_str()), ("to1", ll(1, 0).as_str()));
    assert!(net.ping(0, &node_v6(1)) && net.ping(0, &node_v4(1)), "direct path does not carry pings");
    eprintln!("{what}: direct path back after {:?}", back.elapsed());
}

#[test]
fn ring_reroutes_around_carrier_loss_and_restores() {
    require_netns!();
    // Carrier loss is an event: no Hello needs to be missed.
    ring_reroute(false, Duration::from_secs(5));
}

#[test]
fn ring_reroutes_around_silent_failure_and_restores() {
    require_netns!();
    // Silent failure shows only as missing Hellos (1 s interval here):
    // detection takes a few intervals, then a seqno request round trip.
    ring_reroute(true, Duration::from_secs(12));
}

/// Node 0's kernel routes whose gateway is `gw`.
fn routes_via(net: &Net, i: usize, gw: &str) -> Vec<String> {
    net.kernel_routes(i)
        .iter()
        .filter(|r| r["gateway"].as_str().or_else(|| r["via"]["host"].as_str()) == Some(gw))
        .map(route_dst)
        .collect()
}

#[test]
fn sigkill_then_restart_leaves_no_stale_routes() {
    require_netns!();
    let mut net = converged(&Topology::ring(4));
    assert_via(&net, 0, &node_v6(1), "to1", Duration::from_secs(10));
    let seqno_before = net.weft_json(0, "status")["seqno"].as_u64().unwrap();
    let before = net.kernel_prefixes(0);
    // A crash leaves the routes behind...
    net.kill_weft(0);
    assert_eq!(net.kernel_prefixes(0), before, "SIGKILL cannot have removed routes");
    // ...and while node 0 is down its neighbour 1 dies too: the routes
    // through it now lead nowhere.
    net.kill_weft(1);
    let stale = routes_via(&net, 0, &ll(1, 0));
    assert!(!stale.is_empty(), "expected routes through node 1 before the restart");
    net.start_weft(0);
    // The control socket answers only after the flush: nothing stale left.
    let now = net.kernel_routes(0);
    assert!(
        routes_via(&net, 0, &ll(1, 0)).is_empty(),
        "routes through the dead neighbour survived the restart: {now:?}"
    );
    let log = net.weft_log(0);
    assert!(
        log.contains(&format!("removed {} stale routes left by a previous run", before.len())),
        "{}",
        tail(&log, 20)
    );
    // The restarted daemon announces with a newer seqno (state file), so
    // the mesh takes its routes at once, and it relearns the live part.
    let seqno_after = net.weft_json(0, "status")["seqno"].as_u64().unwrap();
    assert!(
        weft::babel::SeqNo(seqno_after as u16).newer_than(weft::babel::SeqNo(seqno_before as u16)),
        "seqno {seqno_after} not newer than {seqno_before}"
    );
    let mut live: Vec<String> = [2, 3].iter().flat_map(|&j| node_prefixes(j)).collect();
    live.sort();
    Net::wait_until(Duration::from_secs(20), || net.kernel_prefixes(0) == live).unwrap_or_else(|| {
        panic!(
            "node 0 has {:?}, expected only {live:?}\n{}",
            net.kernel_prefixes(0),
            tail(&net.weft_log(0), 30)
        )
    });
    // Node 1's prefixes are gone everywhere (no one announces them now).
    for i in [2, 3] {
        assert!(
            Net::wait_until(Duration::from_secs(15), || {
                net.kernel_prefixes(i).iter().all(|p| !node_prefixes(1).contains(p))
            })
            .is_some(),
            "node {i} still routes to dead node 1: {:?}",
            net.kernel_prefixes(i)
        );
    }
    // Fresh: the kernel holds exactly what the new daemon says it installed.
    let routes = net.weft_json(0, "routes");
    let mut installed: Vec<(String, String, String)> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["installed"] == true)
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().to_string(),
                r["next_hop"].as_str().unwrap().to_string(),
                r["interface"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    installed.sort();
    let mut kernel: Vec<(String, String, String)> = net
        .kernel_routes(0)
        .iter()
        .map(|r| {
            (
                route_dst(r),
                r["gateway"].as_str().or_else(|| r["via"]["host"].as_str()).unwrap_or_default().to_string(),
                r["dev"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    kernel.sort();
    assert_eq!(kernel, installed, "kernel and daemon disagree after the restart");
    for j in [2, 3] {
        assert!(net.ping(0, &node_v6(j)) && net.ping(0, &node_v4(j)), "node 0 cannot reach node {j}");
        assert!(net.ping(j, &node_v6(0)) && net.ping(j, &node_v4(0)), "node {j} cannot reach node 0");
    }
}

#[test]
fn clean_stop_removes_routes_and_neighbours_drop_them_at_once() {
    require_netns!();
    let mut net = Net::new(&Topology::line(3));
    for i in 0..3 {
        let mut cfg = net.weft_config(i);
        // Slow Hellos: losing the neighbour would take several seconds, so
        // a quick drop can only be the retraction.
        cfg.hello = "2".into();
        net.write_config(i, &cfg);
        net.start_weft(i);
    }
    net.wait_full_mesh(CONVERGE);
    let gone = node_prefixes(0);
    let sigterm = Instant::now();
    let (status, took) = net.stop_weft(0);
    assert!(status.success(), "weft exited with {status} on SIGTERM\n{}", net.weft_log(0));
    eprintln!("clean stop took {took:?}");
    for fam in ["-6", "-4"] {
        let left = net.routes_json(0, fam, "119");
        assert_eq!(left.trim(), "[]", "weft left routes behind ({fam}): {left}");
    }
    assert!(!net.socket(0).exists(), "control socket left behind");
    Net::wait_until(Duration::from_secs(10), || {
        (1..3).all(|i| net.kernel_prefixes(i).iter().all(|p| !gone.contains(p)))
    })
    .unwrap_or_else(|| panic!("neighbours kept the retracted routes: {:?}", net.kernel_prefixes(1)));
    let dropped = sigterm.elapsed();
    eprintln!("neighbours dropped the retracted routes {dropped:?} after the stop");
    // Node 1 still counts node 0 as its neighbour (no Hello missed yet):
    // it was the retraction, not the neighbour timing out.
    let n = net.weft_json(1, "neighbours");
    assert!(
        n["neighbours"].as_array().unwrap().iter().any(|x| x["address"] == ll(0, 1)),
        "node 1 already forgot node 0, so this does not prove a retraction: {n}"
    );
    assert!(dropped < Duration::from_secs(2), "retraction took {dropped:?}");
    // The rest of the mesh is untouched.
    let mut rest = node_prefixes(2).to_vec();
    rest.sort();
    assert_eq!(net.kernel_prefixes(1), rest);
    assert!(net.ping(1, &node_v6(2)) && net.ping(2, &node_v4(1)));
}
