//! weft and babeld together when things fail: a ring of both whose silent
//! cut leaves a weft node starved (only unfeasible routes left), so that it
//! recovers only through a seqno request that babeld forwards to the
//! source and the source's answer; and, with slow Hellos, retractions told
//! apart from neighbour loss in both directions. (A babeld that vanishes is
//! interop_babeld.rs's.)

mod common;

use std::time::{Duration, Instant};

use common::netns::{node_v6, Net};
use common::peers::{find_route, kernel_routes, Babeld};
use common::weftd::tail;
use weft::sim::Topology;

/// babeld on `devs`, Hellos every `hello` s and updates every four,
/// announcing only the node's loopback addresses.
fn babeld_conf(devs: &[String], hello: u32) -> String {
    let mut s = String::new();
    for d in devs {
        s += &format!("interface {d} type wired hello-interval {hello} update-interval {}\n", 4 * hello);
    }
    s + "redistribute local ip fd77::/16 allow\nredistribute local ip 10.77.0.0/16 allow\nredistribute local deny\n"
}

/// The seqno of the route to `prefix` that node `i`'s weft has installed.
fn installed_seqno(net: &Net, i: usize, prefix: &str) -> Option<u64> {
    net.weft_json(i, "routes")["routes"]
        .as_array()?
        .iter()
        .find(|r| r["prefix"] == prefix && r["installed"] == true)
        .and_then(|r| r["seqno"].as_u64())
}

/// Ring W0 – B1 – W2 – B3 – W4 – W0 (W weft, B babeld), 1 s Hellos. W4
/// reaches B1 through W0 (two hops); weft and babeld use split horizon on
/// wired links, so W0 never offers W4 that route back. When W0 – B1 fails
/// silently, W4's only other route to B1 is the long way round (B3, W2: four
/// hops), worse than the feasibility distance it has for B1: W4 is starved.
/// It must send a seqno request, babeld (B3) and weft (W2) forward it to B1,
/// and B1's new seqno comes back. Route expiry cannot cure starvation, so
/// getting there at all (within a bound) proves the request went through.
#[test]
fn a_starved_weft_node_recovers_through_a_seqno_request_forwarded_by_babeld() {
    require_netns!();
    require_cmd!("babeld", "socat");
    let mut net = Net::new(&Topology::ring(5));
    let (w0, b1, w4) = (0, 1, 4);
    let mut babelds = Vec::new();
    for i in [1, 3] {
        babelds.push(Babeld::start(&net, i, &babeld_conf(&net.devices(i), 1)));
    }
    for i in [0, 2, 4] {
        let cfg = net.weft_config(i);
        net.write_config(i, &cfg);
        net.start_weft(i);
    }
    let target = node_v6(b1);
    let prefix = format!("{target}/128");
    // Every weft node routes to every other node.
    let all = |net: &Net| [0, 2, 4].iter().all(|&i| net.has_all_routes(i));
    Net::wait_until(Duration::from_secs(40), || all(&net)).unwrap_or_else(|| {
        panic!(
            "the ring did not converge: {:?}\n{}\n{}",
            [0, 2, 4].map(|i| net.kernel_prefixes(i)),
            babelds[0].dump(),
            tail(&net.weft_log(4), 30)
        )
    });
    // The short ways, settled: W0 direct, W4 through W0.
    let settle = Duration::from_secs(15);
    for (i, dev) in [(w0, net.dev(w0, b1)), (w4, net.dev(w4, w0))] {
        Net::wait_until(settle, || net.out_dev(i, &target).as_deref() == Some(dev.as_str())).unwrap_or_else(
            || panic!("node {i} does not reach {target} through {dev}: {:?}", net.route_get(i, &target)),
        );
    }
    let seqno_before = installed_seqno(&net, w4, &prefix).expect("W4's route to B1");
    let requests_before = net.weft_json(w4, "status")["babel"]["seqno_requests_out"].as_u64().unwrap();

    let t = Instant::now();
    net.link_silent(w0, b1);
    // Both W0 and W4 go the long way (W4 through B3, W0 through W4) and
    // packets follow. The bound is generous for two loaded cores, and far
    // below what starvation without a request would take (forever).
    let bound = Duration::from_secs(30);
    let long_way = [(w4, net.dev(w4, 3)), (w0, net.dev(w0, w4))];
    Net::wait_until(bound, || {
        long_way.iter().all(|(i, d)| net.out_dev(*i, &target).as_deref() == Some(d.as_str()))
    })
    .unwrap_or_else(|| {
        panic!(
            "no way round to {target} within {bound:?}: W0 {:?}, W4 {:?}\nW4 routes:\n{}\n{}\nB3:\n{}",
            net.route_get(w0, &target),
            net.route_get(w4, &target),
            String::from_utf8_lossy(&net.weft_cli(w4, &["routes"]).stdout),
            tail(&net.weft_log(w4), 40),
            babelds[1].dump()
        )
    });
    let rerouted = t.elapsed();
    for i in [w0, w4] {
        Net::wait_until(Duration::from_secs(5), || net.ping(i, &target))
            .unwrap_or_else(|| panic!("node {i} has a way round to {target} but ping fails"));
    }
    // The cure was B1's answer to a request: a newer seqno, and W4 asked.
    let seqno_after = installed_seqno(&net, w4, &prefix).expect("W4's route to B1");
    let requests_after = net.weft_json(w4, "status")["babel"]["seqno_requests_out"].as_u64().unwrap();
    assert_ne!(seqno_after, seqno_before, "B1's seqno did not move: no request reached it");
    assert!(
        requests_after > requests_before,
        "W4 sent no seqno request ({requests_before} -> {requests_after})"
    );
    eprintln!(
        "silent cut W0-B1: W0 and W4 route the long way after {rerouted:?}; B1's seqno {seqno_before} -> \
         {seqno_after}; W4 sent {} seqno requests",
        requests_after - requests_before
    );
    drop(babelds);
}

/// Hellos every 4 s on the weft – babeld link: losing a neighbour takes two
/// or three missed Hellos (8-12 s), a retraction one datagram. weft stops
/// cleanly; babeld drops weft's routes while it still counts weft as a
/// neighbour, so it was weft's retraction that did it. (The other way, a
/// babeld that stops announcing a prefix, is not here: see the report of
/// this change; babeld's own clean stop cannot show it, since its last
/// Hello announces a 10 ms interval so that neighbours drop it at once.)
#[test]
fn retractions_are_told_apart_from_neighbour_loss_with_slow_hellos() {
    require_netns!();
    require_cmd!("babeld", "socat");
    const WEFT: usize = 0;
    const BABELD: usize = 1;
    let mut net = Net::new(&Topology::line(2));
    let bdev = net.dev(BABELD, WEFT);
    let mut cfg = net.weft_config(WEFT);
    cfg.hello = "4".into();
    net.write_config(WEFT, &cfg);
    net.start_weft(WEFT);
    let babeld = Babeld::start(&net, BABELD, &babeld_conf(&[bdev], 4));
    let (b6, w6) = (node_v6(BABELD), node_v6(WEFT));
    let babeld_route = |babeld: &Babeld| {
        babeld
            .dump()
            .lines()
            .find(|l| {
                l.starts_with("add route")
                    && l.contains(&format!("prefix {w6}/128 "))
                    && l.contains("installed yes")
            })
            .map(str::to_string)
    };
    Net::wait_until(Duration::from_secs(60), || {
        find_route(&kernel_routes(&net, WEFT, "119"), &b6).is_some() && babeld_route(&babeld).is_some()
    })
    .unwrap_or_else(|| panic!("no routes both ways:\n{}\n{}", babeld.dump(), tail(&net.weft_log(WEFT), 30)));

    // weft stops: babeld removes weft's route, with weft still its
    // neighbour.
    let t = Instant::now();
    let (status, _) = net.stop_weft(WEFT);
    assert!(status.success(), "weft exited with {status}");
    // What weft advertised became infinite (refmetric 65535: a retraction,
    // not only a neighbour whose cost went up); babeld keeps such a route
    // in its table at metric 65535 for a while.
    let retracted = |l: &str| l.contains(" metric 65535 refmetric 65535 ");
    let any_route = |babeld: &Babeld| {
        babeld
            .dump()
            .lines()
            .find(|l| l.starts_with("add route") && l.contains(&format!("prefix {w6}/128 ")))
            .map(str::to_string)
    };
    Net::wait_until(Duration::from_secs(6), || any_route(&babeld).is_some_and(|l| retracted(&l)))
        .unwrap_or_else(|| panic!("babeld did not take weft's retraction:\n{}", babeld.dump()));
    let babeld_dropped = t.elapsed();
    // And Hellos were not missed: the newest bit of babeld's reach for weft
    // is still set (weft's last IHU says it stops hearing babeld, so the
    // link cost is infinite too, but that is not a missed Hello).
    let dump = babeld.dump();
    let reach = dump
        .lines()
        .find(|l| l.starts_with("add neighbour"))
        .and_then(|l| l.split(" reach ").nth(1))
        .and_then(|r| u16::from_str_radix(r.split_whitespace().next()?, 16).ok())
        .unwrap_or_else(|| panic!("babeld lists no neighbour:\n{dump}"));
    assert!(
        reach & 0x8000 != 0,
        "babeld missed weft's Hellos (reach {reach:04x}), so this does not prove a retraction:\n{dump}"
    );
    eprintln!("slow Hellos: babeld dropped weft's routes {babeld_dropped:?} after weft stopped");
}
