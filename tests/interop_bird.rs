//! weft and BIRD 2 on one wired link, in two namespaces: IPv6 routes and
//! plain IPv4 routes (IPv4 addresses on the link, IPv4 next hops: BIRD
//! 2.0.12 has no v4-via-v6) both ways, pings both ways, costs as weft sees
//! BIRD, and no complaint from BIRD about anything weft sent.

mod common;

use std::time::{Duration, Instant};

use common::netns::{node_v4, node_v6, Net};
use common::peers::{
    add_v4, assert_ping, bird_conf, find_route, kernel_routes, link_locals, Bird, Weft, WeftIf,
};
use weft::sim::Topology;

const WEFT_NODE: usize = 0;
const BIRD_NODE: usize = 1;

#[test]
fn weft_and_bird_exchange_ipv6_and_ipv4_routes() {
    require_netns!();
    require_cmd!("bird", "birdc");
    let mut net = Net::new(&Topology::line(2));
    let (wdev, bdev) = (net.dev(WEFT_NODE, BIRD_NODE), net.dev(BIRD_NODE, WEFT_NODE));
    let (w6, w4, b6, b4) = (node_v6(WEFT_NODE), node_v4(WEFT_NODE), node_v6(BIRD_NODE), node_v4(BIRD_NODE));
    let (w_link4, b_link4) = ("10.99.0.1", "10.99.0.2");
    add_v4(&net, WEFT_NODE, &wdev, &format!("{w_link4}/24"));
    add_v4(&net, BIRD_NODE, &bdev, &format!("{b_link4}/24"));
    let (w_lls, b_lls) = (link_locals(&net, WEFT_NODE, &wdev), link_locals(&net, BIRD_NODE, &bdev));

    let t0 = Instant::now();
    let weft = Weft::start(
        &mut net,
        WEFT_NODE,
        &[WeftIf::wired(&wdev).option("v4_via_v6", "0")],
        &[&format!("{w6}/128"), &format!("{w4}/32")],
    );
    let bird = Bird::start(&net, BIRD_NODE, &bird_conf(&net, BIRD_NODE, &[&bdev]));

    // weft installs BIRD's prefixes: IPv6 via BIRD's link-local address,
    // IPv4 via BIRD's IPv4 address on the link.
    let t_weft = Net::wait_until(Duration::from_secs(20), || {
        let r = kernel_routes(&net, WEFT_NODE, "119");
        find_route(&r, &b6).is_some() && find_route(&r, &b4).is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "weft did not install BIRD's routes: {:?}\nweft log:\n{}\nBIRD:\n{}\n{}",
            kernel_routes(&net, WEFT_NODE, "119"),
            net.log(WEFT_NODE, "weft.log"),
            bird.birdc("show babel neighbors"),
            bird.birdc("show route all")
        )
    });
    let got = kernel_routes(&net, WEFT_NODE, "119");
    let r6 = find_route(&got, &b6).unwrap();
    assert!(
        b_lls.contains(&r6.via) && r6.dev == wdev,
        "weft's route to {b6} is not via BIRD ({b_lls:?}): {r6:?}"
    );
    let r4 = find_route(&got, &b4).unwrap();
    assert_eq!((r4.via.as_str(), r4.dev.as_str()), (b_link4, wdev.as_str()), "weft's route to {b4}: {r4:?}");
    assert_eq!(got.len(), 2, "weft installed something it should not have: {got:?}");

    // BIRD installs weft's prefixes the same way.
    Net::wait_until(Duration::from_secs(20), || {
        let r = kernel_routes(&net, BIRD_NODE, "bird");
        find_route(&r, &w6).is_some() && find_route(&r, &w4).is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "BIRD did not install weft's routes: {:?}\n{}\n{}\n{}",
            kernel_routes(&net, BIRD_NODE, "bird"),
            bird.birdc("show babel neighbors"),
            bird.birdc("show route all"),
            net.log(BIRD_NODE, "bird.log")
        )
    });
    let got = kernel_routes(&net, BIRD_NODE, "bird");
    let r6 = find_route(&got, &w6).unwrap();
    assert!(w_lls.contains(&r6.via), "BIRD's route to {w6} is not via weft ({w_lls:?}): {r6:?}");
    let r4 = find_route(&got, &w4).unwrap();
    assert_eq!(r4.via, w_link4, "BIRD's route to {w4} is not via weft's IPv4 address: {r4:?}");
    let converged = t0.elapsed();

    let to = Duration::from_secs(5);
    assert_ping(&net, WEFT_NODE, &w6, &b6, to, "weft -> BIRD over IPv6");
    assert_ping(&net, WEFT_NODE, &w4, &b4, to, "weft -> BIRD over IPv4");
    assert_ping(&net, BIRD_NODE, &b6, &w6, to, "BIRD -> weft over IPv6");
    assert_ping(&net, BIRD_NODE, &b4, &w4, to, "BIRD -> weft over IPv4");

    // weft sees BIRD as one neighbour with the wired cost both ways.
    let ok = Net::wait_until(Duration::from_secs(10), || {
        let n = weft.neighbours();
        n.len() == 1 && n[0]["cost"] == 96 && n[0]["txcost"] == 96 && n[0]["rxcost"] == 96
    });
    assert!(ok.is_some(), "weft's view of BIRD: {:?}", weft.neighbours());
    let n = weft.neighbours();
    assert!(b_lls.iter().any(|a| n[0]["address"] == a.as_str()), "neighbour is not BIRD ({b_lls:?}): {n:?}");
    for p in [format!("{b6}/128"), format!("{b4}/32")] {
        let r =
            weft.selected_route(&p).unwrap_or_else(|| panic!("no selected route {p}: {:?}", weft.routes()));
        assert_eq!(r["metric"].as_u64(), Some(96), "{r}");
        assert_eq!(r["neighbour"], n[0]["address"], "{r}");
    }

    // BIRD sees weft as a neighbour and holds weft's routes at metric 96.
    let neighbours = bird.birdc("show babel neighbors");
    assert!(
        w_lls.iter().any(|a| neighbours.contains(a.as_str())),
        "BIRD does not list weft ({w_lls:?}):\n{neighbours}"
    );
    let weft_id = weft.query("status")["router_id"].as_str().unwrap().to_string();
    for p in [format!("{w6}/128"), format!("{w4}/32")] {
        let r = bird.birdc(&format!("show route for {p} all"));
        assert!(r.contains("Babel.metric: 96"), "BIRD's route to {p}:\n{r}");
        assert!(
            r.contains(&format!("Babel.router_id: {weft_id}")),
            "BIRD's route to {p} is not weft's:\n{r}"
        );
    }
    // Nothing weft sent was refused by BIRD's parser.
    let log = net.log(BIRD_NODE, "bird.log");
    for bad in ["Bad packet", "Bad TLV", "Malformed", "Invalid"] {
        assert!(!log.contains(bad), "BIRD complained ({bad}) about weft's packets:\n{log}");
    }

    // BIRD loses its IPv4 loopback address and retracts that one prefix
    // (an IPv4 retraction BIRD sends without a Next Hop): weft removes it
    // at once and keeps the IPv6 route.
    let t = Instant::now();
    net.exec_ok(BIRD_NODE, &["ip", "addr", "del", &format!("{b4}/32"), "dev", "lo"]);
    let gone = Net::wait_until(Duration::from_secs(3), || {
        find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b4).is_none()
    });
    assert!(
        gone.is_some(),
        "weft kept {b4} 3 s after BIRD retracted it:\n{}",
        net.log(WEFT_NODE, "weft.log")
    );
    let retracted_after = t.elapsed();
    assert!(find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b6).is_some(), "weft lost {b6} as well");

    // BIRD stops: its last route goes too, by retraction or by the
    // neighbour's silence (Hellos every second).
    let t = Instant::now();
    let mut bird = bird;
    stop_bird(&mut bird);
    let gone = Net::wait_until(Duration::from_secs(16), || {
        find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b6).is_none()
    });
    assert!(gone.is_some(), "weft kept {b6} 16 s after BIRD stopped:\n{}", net.log(WEFT_NODE, "weft.log"));
    let stopped_after = t.elapsed();
    assert!(weft.running(&mut net), "weft exited:\n{}", net.log(WEFT_NODE, "weft.log"));
    eprintln!(
        "weft<->BIRD: weft installed BIRD's routes after {t_weft:?}, both sides after {converged:?}; \
         a retracted IPv4 prefix left weft's table after {retracted_after:?}, BIRD's last route \
         {stopped_after:?} after SIGTERM"
    );
}

fn stop_bird(bird: &mut Bird) {
    common::peers::signal(bird.child.id(), "TERM");
    assert!(common::peers::wait_exit(&mut bird.child, Duration::from_secs(10)), "BIRD ignored SIGTERM");
}
