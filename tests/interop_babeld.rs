//! weft and babeld 1.12 on one wired link, in two namespaces: routes both
//! ways for IPv6 prefixes and for IPv4 prefixes carried v4-via-v6 (RFC 9229
//! AE 4, no IPv4 address on the link), pings between the announced loopback
//! addresses, link costs as both sides see them, and the prompt removal of
//! babeld's routes when babeld stops.

mod common;

use std::time::{Duration, Instant};

use common::netns::{node_v4, node_v6, Net};
use common::peers::{assert_ping, find_route, kernel_routes, link_locals, Babeld, Weft, WeftIf};
use weft::sim::Topology;

const WEFT_NODE: usize = 0;
const BABELD_NODE: usize = 1;

/// babeld on `dev`: 1 s hellos, announcing only the node's loopback
/// addresses (without `redistribute local deny` it would announce every
/// local address).
pub fn babeld_conf(dev: &str) -> String {
    format!(
        "interface {dev} type wired hello-interval 1 update-interval 4\n\
         redistribute local ip fd77::/16 allow\n\
         redistribute local ip 10.77.0.0/16 allow\n\
         redistribute local deny\n"
    )
}

#[test]
fn weft_and_babeld_exchange_ipv6_and_v4_via_v6_routes() {
    require_netns!();
    require_cmd!("babeld", "socat");
    let mut net = Net::new(&Topology::line(2));
    let (wdev, bdev) = (net.dev(WEFT_NODE, BABELD_NODE), net.dev(BABELD_NODE, WEFT_NODE));
    // Each side may send from either of its link-local addresses.
    let (w_lls, b_lls) = (link_locals(&net, WEFT_NODE, &wdev), link_locals(&net, BABELD_NODE, &bdev));
    let (w6, w4, b6, b4) =
        (node_v6(WEFT_NODE), node_v4(WEFT_NODE), node_v6(BABELD_NODE), node_v4(BABELD_NODE));

    let t0 = Instant::now();
    let weft = Weft::start(
        &mut net,
        WEFT_NODE,
        &[WeftIf::wired(&wdev)],
        &[&format!("{w6}/128"), &format!("{w4}/32")],
    );
    let mut babeld = Babeld::start(&net, BABELD_NODE, &babeld_conf(&bdev));

    // weft installs babeld's prefixes: IPv6 via babeld's link-local address,
    // IPv4 v4-via-v6 (an IPv6 gateway on an onlink IPv4 route).
    let t_weft = Net::wait_until(Duration::from_secs(20), || {
        let r = kernel_routes(&net, WEFT_NODE, "119");
        find_route(&r, &b6).is_some() && find_route(&r, &b4).is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "weft did not install babeld's routes: {:?}\nweft log:\n{}\nbabeld dump:\n{}",
            kernel_routes(&net, WEFT_NODE, "119"),
            net.log(WEFT_NODE, "weft.log"),
            babeld.dump()
        )
    });
    let got = kernel_routes(&net, WEFT_NODE, "119");
    let r6 = find_route(&got, &b6).unwrap();
    assert!(
        b_lls.contains(&r6.via) && r6.dev == wdev,
        "weft's route to {b6} is not via babeld ({b_lls:?}): {r6:?}"
    );
    let r4 = find_route(&got, &b4).unwrap();
    let gw = r4
        .via
        .strip_prefix("inet6 ")
        .unwrap_or_else(|| panic!("weft's route to {b4} is not v4-via-v6: {r4:?}"));
    assert!(
        b_lls.iter().any(|a| a == gw) && r4.dev == wdev,
        "weft's route to {b4} is not via babeld: {r4:?}"
    );
    assert!(r4.onlink, "weft's v4-via-v6 route must be onlink, as babeld installs it: {r4:?}");
    assert_eq!(got.len(), 2, "weft installed something it should not have: {got:?}");

    // babeld installs weft's prefixes the same way.
    Net::wait_until(Duration::from_secs(20), || {
        let r = kernel_routes(&net, BABELD_NODE, "babel");
        find_route(&r, &w6).is_some() && find_route(&r, &w4).is_some()
    })
    .unwrap_or_else(|| {
        panic!(
            "babeld did not install weft's routes: {:?}\nbabeld dump:\n{}\nbabeld log:\n{}",
            kernel_routes(&net, BABELD_NODE, "babel"),
            babeld.dump(),
            net.log(BABELD_NODE, "babeld.log")
        )
    });
    let got = kernel_routes(&net, BABELD_NODE, "babel");
    let r6 = find_route(&got, &w6).unwrap();
    assert!(w_lls.contains(&r6.via), "babeld's route to {w6} is not via weft ({w_lls:?}): {r6:?}");
    let r4 = find_route(&got, &w4).unwrap();
    let gw = r4
        .via
        .strip_prefix("inet6 ")
        .unwrap_or_else(|| panic!("babeld's route to {w4} is not v4-via-v6: {r4:?}"));
    assert!(w_lls.iter().any(|a| a == gw), "babeld's route to {w4} is not via weft: {r4:?}");
    let converged = t0.elapsed();

    // Pings between the announced loopback addresses, both ways, both families.
    let to = Duration::from_secs(5);
    assert_ping(&net, WEFT_NODE, &w6, &b6, to, "weft -> babeld over IPv6");
    assert_ping(&net, WEFT_NODE, &w4, &b4, to, "weft -> babeld over IPv4 (v4-via-v6)");
    assert_ping(&net, BABELD_NODE, &b6, &w6, to, "babeld -> weft over IPv6");
    assert_ping(&net, BABELD_NODE, &b4, &w4, to, "babeld -> weft over IPv4 (v4-via-v6)");

    // `weft neighbours --json`: babeld, heard on each of the last four
    // Hellos (newest in the top bit, as babeld prints it), with the wired
    // cost both ways (babeld's IHU carries its rxcost 96).
    let recent_hellos = |n: &serde_json::Value| {
        u16::from_str_radix(n["reach"].as_str().unwrap_or("0"), 16).is_ok_and(|r| r & 0xf000 == 0xf000)
    };
    let ok = Net::wait_until(Duration::from_secs(10), || {
        let n = weft.neighbours();
        n.len() == 1 && recent_hellos(&n[0]) && n[0]["txcost"] == 96
    });
    let n = weft.neighbours();
    assert!(ok.is_some(), "babeld's Hellos are not all heard, or its IHU does not say 96: {n:?}");
    assert!(
        b_lls.iter().any(|a| n[0]["address"] == a.as_str()),
        "neighbour is not babeld ({b_lls:?}): {n:?}"
    );
    assert_eq!(n[0]["interface"], wdev.as_str(), "{n:?}");
    assert_eq!((n[0]["rxcost"].as_u64(), n[0]["cost"].as_u64()), (Some(96), Some(96)), "{n:?}");
    assert!(n[0]["last_hello_ms"].as_u64().unwrap() < 2500, "babeld's Hellos are not arriving: {n:?}");

    // `weft routes --json`: both of babeld's prefixes, from babeld's
    // router-id, at one hop's cost.
    let babeld_id = babeld.router_id();
    for p in [format!("{b6}/128"), format!("{b4}/32")] {
        let r =
            weft.selected_route(&p).unwrap_or_else(|| panic!("no selected route {p}: {:?}", weft.routes()));
        assert_eq!(r["router_id"], babeld_id.as_str(), "{r}");
        assert_eq!((r["refmetric"].as_u64(), r["metric"].as_u64()), (Some(0), Some(96)), "{r}");
        assert_eq!(r["neighbour"], n[0]["address"], "{r}");
        assert_eq!(r["feasible"], true, "{r}");
    }

    // babeld's view of weft: a neighbour with cost 96, weft's prefixes
    // installed at metric 96 with weft's router-id.
    let dump = babeld.dump();
    let weft_id = weft.query("status")["router_id"].as_str().unwrap().to_string();
    let neigh = dump
        .lines()
        .find(|l| {
            l.starts_with("add neighbour") && w_lls.iter().any(|a| l.contains(&format!("address {a} ")))
        })
        .unwrap_or_else(|| panic!("babeld does not list weft as a neighbour:\n{dump}"));
    assert!(neigh.contains(" cost 96"), "babeld's cost to weft is not 96: {neigh}");
    for p in [format!("{w6}/128"), format!("{w4}/32")] {
        let line = dump
            .lines()
            .find(|l| {
                l.starts_with("add route")
                    && l.contains(&format!("prefix {p} "))
                    && l.contains("installed yes")
            })
            .unwrap_or_else(|| panic!("babeld has no installed route to {p}:\n{dump}"));
        assert!(line.contains(&format!("id {weft_id} ")), "{line}");
        assert!(line.contains(" metric 96 "), "{line}");
    }

    // weft stops announcing its IPv4 prefix (config reload): babeld takes
    // weft's AE 4 retraction at once (it keeps a retracted route in its
    // table at metric 65535 for a while, as babeld does), the IPv6 route
    // stays.
    let t = Instant::now();
    let conf = std::fs::read_to_string(&weft.config).unwrap();
    let without_v4 = conf.replace(&format!("config announce\n\toption prefix '{w4}/32'\n"), "");
    assert_ne!(conf, without_v4, "could not find the IPv4 announce in weft's config");
    std::fs::write(&weft.config, without_v4).unwrap();
    common::peers::signal(net.nodes[WEFT_NODE].daemon.as_ref().unwrap().id(), "HUP");
    let babeld_route = |p: &str| {
        babeld
            .dump()
            .lines()
            .find(|l| l.starts_with("add route") && l.contains(&format!("prefix {p} ")))
            .map(String::from)
    };
    let retracted = Net::wait_until(Duration::from_secs(3), || {
        babeld_route(&format!("{w4}/32")).is_none_or(|l| l.contains(" metric 65535 "))
    });
    assert!(
        retracted.is_some(),
        "babeld did not take weft's retraction of {w4} within 3 s:\n{}",
        babeld.dump()
    );
    let weft_retracted_after = t.elapsed();
    let r6 =
        babeld_route(&format!("{w6}/128")).unwrap_or_else(|| panic!("babeld lost {w6}:\n{}", babeld.dump()));
    assert!(r6.contains(" metric 96 "), "babeld's route to {w6} changed: {r6}");

    // babeld loses its IPv4 loopback address. babeld 1.12.1 does not retract
    // that prefix properly over a v4-via-v6 link (on the wire it sends an
    // AE 2 retraction of ::/0 instead), so weft must let the route expire:
    // 5.25 x babeld's 4 s update interval (21 s, where babeld itself would
    // flush it). The IPv6 route stays.
    let t = Instant::now();
    net.exec_ok(BABELD_NODE, &["ip", "addr", "del", &format!("{b4}/32"), "dev", "lo"]);
    let gone = Net::wait_until(Duration::from_secs(25), || {
        find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b4).is_none()
    });
    assert!(
        gone.is_some(),
        "weft kept {b4} 25 s after babeld stopped announcing it: {:?}\n{}",
        weft.routes(),
        babeld.dump()
    );
    let expired_after = t.elapsed();
    assert!(find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b6).is_some(), "weft lost {b6} as well");

    // babeld stops cleanly: it retracts its routes, and weft must take them
    // out of the kernel at once rather than waiting for them to expire.
    let t_stop = Instant::now();
    babeld.stop();
    let gone = Net::wait_until(Duration::from_secs(3), || {
        let r = kernel_routes(&net, WEFT_NODE, "119");
        find_route(&r, &b6).is_none() && find_route(&r, &b4).is_none()
    });
    assert!(
        gone.is_some(),
        "weft kept babeld's routes 3 s after babeld retracted them: {:?}\n{}",
        kernel_routes(&net, WEFT_NODE, "119"),
        net.log(WEFT_NODE, "weft.log")
    );
    let removed_after = t_stop.elapsed();
    assert!(weft.running(&mut net), "weft exited:\n{}", net.log(WEFT_NODE, "weft.log"));
    eprintln!(
        "weft<->babeld: weft installed babeld's routes after {t_weft:?}, both sides converged after \
         {converged:?}; babeld took weft's AE 4 retraction after {weft_retracted_after:?}; \
         babeld's lost IPv4 prefix expired from weft after {expired_after:?}; routes removed \
         {removed_after:?} after SIGTERM to babeld"
    );
}

/// babeld dies without a word (SIGKILL): weft notices the silence and drops
/// the routes within the neighbour timeout, not the route expiry.
#[test]
fn weft_drops_routes_of_a_babeld_that_vanished() {
    require_netns!();
    require_cmd!("babeld", "socat");
    let mut net = Net::new(&Topology::line(2));
    let (wdev, bdev) = (net.dev(WEFT_NODE, BABELD_NODE), net.dev(BABELD_NODE, WEFT_NODE));
    let b6 = node_v6(BABELD_NODE);
    let weft =
        Weft::start(&mut net, WEFT_NODE, &[WeftIf::wired(&wdev)], &[&format!("{}/128", node_v6(WEFT_NODE))]);
    // Hellos every second, updates every 20 s: babeld's routes would expire
    // after 5.25 x 20 = 105 s, so a drop within the bound below can only be
    // weft noticing that the neighbour is gone.
    let conf = babeld_conf(&bdev).replace("update-interval 4", "update-interval 20");
    let mut babeld = Babeld::start(&net, BABELD_NODE, &conf);
    Net::wait_until(Duration::from_secs(30), || {
        find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b6).is_some()
    })
    .unwrap_or_else(|| panic!("weft did not learn {b6} from babeld:\n{}", net.log(WEFT_NODE, "weft.log")));
    let t = Instant::now();
    babeld.child.kill().expect("kill babeld");
    let _ = babeld.child.wait();
    // Generous for two loaded cores, far below the 105 s route expiry.
    let gone = Net::wait_until(Duration::from_secs(15), || {
        find_route(&kernel_routes(&net, WEFT_NODE, "119"), &b6).is_none()
    });
    assert!(gone.is_some(), "weft kept the route of a dead babeld:\n{}", net.log(WEFT_NODE, "weft.log"));
    assert!(weft.neighbours().is_empty() || weft.neighbours()[0]["cost"] == 65535, "{:?}", weft.neighbours());
    eprintln!("weft removed a vanished babeld's route after {:?}", t.elapsed());
}
