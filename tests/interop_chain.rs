//! A chain babeld – weft – BIRD in three namespaces: babeld and BIRD never
//! speak to each other, yet their loopback addresses reach each other
//! through weft, in IPv6 and in IPv4. The babeld link carries IPv4 as
//! v4-via-v6 (no IPv4 address on it); the BIRD link has IPv4 addresses and
//! IPv4 next hops. So weft translates between the two encodings.

mod common;

use std::time::{Duration, Instant};

use common::netns::{node_v4, node_v6, Net};
use common::peers::{add_v4, assert_ping, bird_conf, find_route, kernel_routes, Babeld, Bird, Weft, WeftIf};
use weft::sim::Topology;

const BABELD: usize = 0;
const WEFT: usize = 1;
const BIRD: usize = 2;

#[test]
fn babeld_and_bird_ping_each_other_through_weft() {
    require_netns!();
    require_cmd!("babeld", "socat", "bird", "birdc");
    let mut net = Net::new(&Topology::line(3));
    let (w_to_babeld, w_to_bird) = (net.dev(WEFT, BABELD), net.dev(WEFT, BIRD));
    let (babeld_dev, bird_dev) = (net.dev(BABELD, WEFT), net.dev(BIRD, WEFT));
    let (w_link4, bird_link4) = ("10.99.1.1", "10.99.1.2");
    add_v4(&net, WEFT, &w_to_bird, &format!("{w_link4}/24"));
    add_v4(&net, BIRD, &bird_dev, &format!("{bird_link4}/24"));

    // A fresh host: nothing forwards until weft turns it on by itself.
    assert_eq!(forwarding(&net, WEFT), "0 0", "a fresh namespace forwards already");
    let t0 = Instant::now();
    let weft = Weft::start(
        &mut net,
        WEFT,
        &[WeftIf::wired(&w_to_babeld), WeftIf::wired(&w_to_bird).option("v4_via_v6", "0")],
        &[&format!("{}/128", node_v6(WEFT)), &format!("{}/32", node_v4(WEFT))],
    );
    let babeld = Babeld::start(
        &net,
        BABELD,
        &format!(
            "interface {babeld_dev} type wired hello-interval 1 update-interval 4\n\
             redistribute local ip fd77::/16 allow\nredistribute local ip 10.77.0.0/16 allow\n\
             redistribute local deny\n"
        ),
    );
    let bird = Bird::start(&net, BIRD, &bird_conf(&net, BIRD, &[&bird_dev]));

    // Each end learns the other's prefixes (and weft's), all through weft.
    let ends = [(BABELD, "babel", BIRD), (BIRD, "bird", BABELD)];
    for (node, proto, far) in ends {
        let ok = Net::wait_until(Duration::from_secs(30), || {
            let r = kernel_routes(&net, node, proto);
            [node_v6(far), node_v4(far), node_v6(WEFT), node_v4(WEFT)]
                .iter()
                .all(|d| find_route(&r, d).is_some())
        });
        assert!(
            ok.is_some(),
            "node {node} ({proto}) lacks routes through weft: {:?}\nweft: {:?}\nbabeld:\n{}\nBIRD:\n{}",
            kernel_routes(&net, node, proto),
            kernel_routes(&net, WEFT, "119"),
            babeld.dump(),
            bird.birdc("show route all")
        );
    }
    let converged = t0.elapsed();
    // The encodings at each end: v4-via-v6 at babeld, an IPv4 gateway at BIRD.
    let at_babeld = kernel_routes(&net, BABELD, "babel");
    let r = find_route(&at_babeld, &node_v4(BIRD)).unwrap();
    assert!(r.via.starts_with("inet6 fe80:") && r.dev == babeld_dev, "babeld's route to BIRD: {r:?}");
    let at_bird = kernel_routes(&net, BIRD, "bird");
    let r = find_route(&at_bird, &node_v4(BABELD)).unwrap();
    assert_eq!(
        (r.via.as_str(), r.dev.as_str()),
        (w_link4, bird_dev.as_str()),
        "BIRD's route to babeld: {r:?}"
    );
    // weft forwards between the two: both far prefixes installed.
    let at_weft = kernel_routes(&net, WEFT, "119");
    let r = find_route(&at_weft, &node_v4(BIRD)).unwrap();
    assert_eq!((r.via.as_str(), r.dev.as_str()), (bird_link4, w_to_bird.as_str()), "{at_weft:?}");
    let r = find_route(&at_weft, &node_v4(BABELD)).unwrap();
    assert!(r.via.starts_with("inet6 fe80:") && r.dev == w_to_babeld && r.onlink, "{at_weft:?}");

    let to = Duration::from_secs(5);
    let t_ping = Instant::now();
    for (from, to_node) in [(BABELD, BIRD), (BIRD, BABELD)] {
        for (src, dst) in [(node_v6(from), node_v6(to_node)), (node_v4(from), node_v4(to_node))] {
            assert_ping(&net, from, &src, &dst, to, &format!("{src} -> {dst} through weft"));
        }
    }
    // Two hops from each end: the far end's prefixes cost 2 x 96, as the
    // end's own Babel implementation reports it.
    let dump = babeld.dump();
    for p in [format!("{}/128", node_v6(BIRD)), format!("{}/32", node_v4(BIRD))] {
        let line = dump
            .lines()
            .find(|l| {
                l.starts_with("add route")
                    && l.contains(&format!("prefix {p} "))
                    && l.contains("installed yes")
            })
            .unwrap_or_else(|| panic!("babeld has no installed route to {p}:\n{dump}"));
        assert!(line.contains(" metric 192 "), "babeld's route to {p}: {line}");
    }
    for p in [format!("{}/128", node_v6(BABELD)), format!("{}/32", node_v4(BABELD))] {
        let r = bird.birdc(&format!("show route for {p} all"));
        assert!(r.contains("Babel.metric: 192"), "BIRD's route to {p}:\n{r}");
    }
    // weft did it (IPv6 at start, IPv4 with its first IPv4 route) and says so.
    assert_eq!(forwarding(&net, WEFT), "1 1", "IPv6 and IPv4 forwarding in weft's node");
    let st = weft.query("status");
    assert_eq!(st["forwarding"]["routes_for_others"], true, "{:#}", st["forwarding"]);
    assert_eq!(st["forwarding"]["note"], serde_json::Value::Null, "{:#}", st["forwarding"]);
    eprintln!(
        "babeld-weft-BIRD: converged after {converged:?}; pings both ways in both families took {:?}",
        t_ping.elapsed()
    );
}

/// Node `i`'s IPv6 and IPv4 forwarding switches, as "0 1".
fn forwarding(net: &Net, i: usize) -> String {
    let read =
        |k: &str| String::from_utf8_lossy(&net.exec_ok(i, &["sysctl", "-n", k]).stdout).trim().to_string();
    format!("{} {}", read("net.ipv6.conf.all.forwarding"), read("net.ipv4.conf.all.forwarding"))
}
