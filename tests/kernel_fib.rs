//! The rtnetlink FIB against the real kernel, each test in its own private
//! network namespace (root required). Routes are checked both with the FIB's
//! own dump and with `ip -j route` run inside the namespace.

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::net::IpAddr;

use serde_json::Value;
use weft::babel::Prefix;
use weft::kernel::netns::Netns;
use weft::kernel::{
    Fib, FibConfig, FibError, FibOp, FibRoute, LinkMonitor, MonitorEvent, RtnlFib, RtnlMonitor,
};

const TABLE: u32 = 100;
const PROTO: u8 = 119;

fn cfg() -> FibConfig {
    FibConfig::new(TABLE, PROTO).unwrap()
}

/// A namespace with veth `d0` up; returns it and d0's index.
fn setup() -> (Netns, u32) {
    let ns = Netns::new().expect("private network namespace (tests must run as root)");
    let d0 = ns.add_veth("d0").unwrap();
    ns.ip("addr add fe80::1/64 dev d0 nodad").unwrap();
    (ns, d0)
}

fn route(prefix: &str, nh: &str, ifindex: u32, metric: u32) -> FibRoute {
    FibRoute { prefix: prefix.parse().unwrap(), next_hop: nh.parse().unwrap(), ifindex, metric, src: None }
}

/// `ip -j ARGS` inside the namespace, parsed.
fn ip_json(ns: &Netns, args: &str) -> Vec<Value> {
    let out = ns.ip(&format!("-j {args}")).unwrap();
    match serde_json::from_str(&out) {
        Ok(Value::Array(v)) => v,
        other => panic!("`ip -j {args}` gave {other:?} from {out:?}"),
    }
}

fn find<'a>(routes: &'a [Value], dst: &str) -> &'a Value {
    routes.iter().find(|r| r["dst"] == dst).unwrap_or_else(|| panic!("no route to {dst} in {routes:#?}"))
}

fn sorted(mut v: Vec<FibRoute>) -> Vec<FibRoute> {
    v.sort();
    v
}

#[test]
fn v6_route_with_link_local_next_hop_install_replace_remove() {
    require_netns!();
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let r = route("2001:db8:1::/48", "fe80::2", d0, 10);
        fib.add(&r).await.unwrap();
        assert_eq!(fib.dump_own().await.unwrap(), vec![r]);
        let j = ip_json(&ns, &format!("-6 route show table {TABLE}"));
        let e = find(&j, "2001:db8:1::/48");
        assert_eq!(e["gateway"], "fe80::2", "{e}");
        assert_eq!(e["dev"], "d0", "{e}");
        assert_eq!(e["protocol"], "119", "{e}");
        assert_eq!(e["metric"], 10, "{e}");
        assert!(e["flags"].as_array().unwrap().contains(&"onlink".into()), "{e}");

        // same prefix and metric: the next hop is replaced, not added
        let r2 = FibRoute { next_hop: "fe80::3".parse().unwrap(), ..r };
        fib.replace(&r2).await.unwrap();
        assert_eq!(fib.dump_own().await.unwrap(), vec![r2]);
        let j = ip_json(&ns, &format!("-6 route show table {TABLE}"));
        assert_eq!(j.len(), 1, "{j:#?}");
        assert_eq!(find(&j, "2001:db8:1::/48")["gateway"], "fe80::3");

        // adding at a key that holds a route (ours too) is refused
        let e = fib.add(&r).await.unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");

        // metric change, make-before-break: new metric first, then the old
        let r3 = FibRoute { metric: 20, ..r2 };
        let failures = fib.apply(&[FibOp::Add(r3), FibOp::Remove(r2.key())]).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(fib.dump_own().await.unwrap(), vec![r3]);

        // removal goes by prefix and metric, whatever the next hop
        fib.remove(&FibRoute { next_hop: "fe80::9".parse().unwrap(), ..r3 }.key()).await.unwrap();
        assert!(fib.dump_own().await.unwrap().is_empty());
        assert!(ip_json(&ns, &format!("-6 route show table {TABLE}")).is_empty());
        let e = fib.remove(&r3.key()).await.unwrap_err();
        assert!(e.is_not_found(), "removing twice: {e}");
    });
    // The namespace really was private: the host has none of it.
    let host =
        std::process::Command::new("ip").args(["-6", "route", "show", "table", "all"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains("2001:db8:1::/48"));
}

#[test]
fn v4_routes_with_v4_and_v6_next_hops() {
    require_netns!();
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let via4 = route("198.51.100.0/24", "10.0.0.2", d0, 5);
        let via6 = route("192.0.2.12/32", "fe80::2", d0, 5);
        let default = route("0.0.0.0/0", "fe80::2", d0, 7);
        for r in [via4, via6, default] {
            fib.add(&r).await.unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![via4, via6, default]));
        let j = ip_json(&ns, &format!("-4 route show table {TABLE}"));
        let e = find(&j, "198.51.100.0/24");
        assert_eq!(
            (&e["gateway"], &e["dev"], &e["protocol"]),
            (&"10.0.0.2".into(), &"d0".into(), &"119".into())
        );
        // babeld's shape: 192.0.2.12 via inet6 fe80::2 dev d0 proto X onlink
        let e = find(&j, "192.0.2.12");
        assert_eq!(e["via"]["family"], "inet6", "{e}");
        assert_eq!(e["via"]["host"], "fe80::2", "{e}");
        assert_eq!(e["protocol"], "119", "{e}");
        assert!(e["flags"].as_array().unwrap().contains(&"onlink".into()), "{e}");
        assert_eq!(find(&j, "default")["via"]["host"], "fe80::2");
        // the kernel forwards by it: a lookup resolves to the IPv6 next hop
        ns.ip(&format!("rule add to 192.0.2.12 lookup {TABLE}")).unwrap();
        let got = ns.ip("route get 192.0.2.12").unwrap();
        assert!(got.contains("via inet6 fe80::2 dev d0"), "{got}");

        // replace the IPv4-via-IPv6 route's next hop, then remove both
        let via6b = FibRoute { next_hop: "fe80::3".parse().unwrap(), ..via6 };
        fib.replace(&via6b).await.unwrap();
        let j = ip_json(&ns, &format!("-4 route show table {TABLE}"));
        assert_eq!(find(&j, "192.0.2.12")["via"]["host"], "fe80::3");
        for r in [via4, via6b, default] {
            fib.remove(&r.key()).await.unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
        assert!(ip_json(&ns, &format!("-4 route show table {TABLE}")).is_empty());
    });
}

#[test]
fn table_and_protocol_are_honoured_and_flush_removes_only_ours() {
    require_netns!();
    let (ns, d0) = setup();
    // Others' routes: static and babeld's in our table, ours-by-number in
    // another table, and one of ours (by number) weft's model cannot express.
    for cmd in [
        format!("-6 route add 2001:db8:ff::/48 via fe80::9 dev d0 table {TABLE} proto static"),
        format!("-6 route add 2001:db8:fd::/48 via fe80::9 dev d0 table {TABLE} proto babel"),
        format!("route add 203.0.113.0/24 via inet6 fe80::9 dev d0 table {TABLE} proto babel onlink"),
        format!("-6 route add 2001:db8:fe::/48 via fe80::9 dev d0 table 200 proto {PROTO}"),
        format!("-6 route add 2001:db8:aa::/48 via fe80::9 dev d0 proto {PROTO}"),
        format!("-6 route add 2001:db8:fc::/48 dev d0 table {TABLE} proto {PROTO}"),
    ] {
        ns.ip(&cmd).unwrap();
    }
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let ours = vec![
            route("2001:db8:1::/48", "fe80::2", d0, 1),
            route("192.0.2.0/24", "fe80::2", d0, 1),
            route("198.51.100.0/24", "10.0.0.2", d0, 1),
        ];
        for r in &ours {
            fib.add(r).await.unwrap();
        }
        // the device route of ours has no next hop: the model reads it as a
        // device route (end to end's kind)
        let mut with_device = ours.clone();
        with_device.push(FibRoute::device("2001:db8:fc::/48".parse().unwrap(), d0, 1024, None));
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(with_device));
        let j6 = ip_json(&ns, &format!("-6 route show table {TABLE} proto {PROTO}"));
        assert_eq!(j6.len(), 2, "{j6:#?}");
        // ... but flush removes it too
        assert_eq!(fib.flush_own().await.unwrap(), 4);
        assert!(fib.dump_own().await.unwrap().is_empty());
    });
    let j6 = ip_json(&ns, &format!("-6 route show table {TABLE}"));
    let j4 = ip_json(&ns, &format!("-4 route show table {TABLE}"));
    assert_eq!(find(&j6, "2001:db8:ff::/48")["protocol"], "static");
    assert_eq!(find(&j6, "2001:db8:fd::/48")["protocol"], "babel");
    assert_eq!(find(&j4, "203.0.113.0/24")["protocol"], "babel");
    assert_eq!(j6.len() + j4.len(), 3, "{j6:#?} {j4:#?}");
    // our protocol number in other tables is not ours to flush
    assert_eq!(ip_json(&ns, "-6 route show table 200").len(), 1);
    assert!(ns.ip("-6 route show table main").unwrap().contains("2001:db8:aa::/48"));
}

#[test]
fn replace_never_clobbers_a_foreign_route_with_the_same_prefix_and_metric() {
    require_netns!();
    let (ns, d0) = setup();
    ns.ip(&format!("-6 route add 2001:db8:5::/48 via fe80::9 dev d0 table {TABLE} metric 10 proto static"))
        .unwrap();
    ns.ip(&format!(
        "route add 192.0.2.0/24 via inet6 fe80::9 dev d0 table {TABLE} metric 10 proto babel onlink"
    ))
    .unwrap();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        for r in [route("2001:db8:5::/48", "fe80::2", d0, 10), route("192.0.2.0/24", "fe80::2", d0, 10)] {
            let e = fib.add(&r).await.unwrap_err();
            assert_eq!(e.errno(), Some(libc::EEXIST), "{r:?}: {e}");
            // nor is it removed: the kernel matches weft's protocol
            let e = fib.remove(&r.key()).await.unwrap_err();
            assert!(e.is_not_found(), "{r:?}: {e}");
            // another metric is another route, and that one is ours
            fib.add(&FibRoute { metric: 11, ..r }).await.unwrap();
            fib.replace(&FibRoute { metric: 11, next_hop: "fe80::3".parse().unwrap(), ..r }).await.unwrap();
        }
        assert_eq!(fib.dump_own().await.unwrap().len(), 2);
    });
    let j6 = ip_json(&ns, &format!("-6 route show table {TABLE} metric 10"));
    assert_eq!(find(&j6, "2001:db8:5::/48")["gateway"], "fe80::9");
    assert_eq!(find(&j6, "2001:db8:5::/48")["protocol"], "static");
    let j4 = ip_json(&ns, &format!("-4 route show table {TABLE} metric 10"));
    assert_eq!(find(&j4, "192.0.2.0/24")["via"]["host"], "fe80::9");
}

#[test]
fn a_batch_of_1000_routes() {
    require_netns!();
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let mk = |i: u32, nh: &str| -> FibRoute {
            let prefix = if i % 2 == 0 {
                Prefix::new(format!("2001:db8:{:x}::", i).parse::<IpAddr>().unwrap(), 48).unwrap()
            } else {
                Prefix::new(IpAddr::from([10, (i >> 8) as u8, i as u8, 0]), 24).unwrap()
            };
            FibRoute { prefix, next_hop: nh.parse().unwrap(), ifindex: d0, metric: 3, src: None }
        };
        let first: Vec<FibRoute> = (0..1000).map(|i| mk(i, "fe80::2")).collect();
        let ops: Vec<FibOp> = first.iter().copied().map(FibOp::Add).collect();
        let failures = fib.apply(&ops).await;
        assert!(failures.is_empty(), "{:?}", &failures[..failures.len().min(5)]);
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(first.clone()));
        let n = ip_json(&ns, &format!("-4 route show table {TABLE}")).len()
            + ip_json(&ns, &format!("-6 route show table {TABLE}")).len();
        assert_eq!(n, 1000);

        // all next hops change in one batch: replaced in place
        let second: Vec<FibRoute> = (0..1000).map(|i| mk(i, "fe80::3")).collect();
        let ops: Vec<FibOp> = second.iter().copied().map(FibOp::Replace).collect();
        assert!(fib.apply(&ops).await.is_empty());
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(second.clone()));

        let ops: Vec<FibOp> = second.iter().map(|r| FibOp::Remove(r.key())).collect();
        assert!(fib.apply(&ops).await.is_empty());
        assert!(fib.dump_own().await.unwrap().is_empty());
    });
}

#[test]
fn errors_are_reported_per_route_batched_and_one_at_a_time() {
    require_netns!();
    let (ns, d0) = setup();
    let down = ns.add_veth("d1").unwrap();
    ns.ip("link set d1 down").unwrap();
    for batch in [weft::kernel::DEFAULT_BATCH, 1] {
        ns.block_on(|| async {
            let mut fib = RtnlFib::open(cfg()).unwrap();
            fib.set_batch_size(batch);
            let ok1 = route("2001:db8:1::/48", "fe80::2", d0, 1);
            let ok2 = route("192.0.2.0/24", "fe80::2", d0, 1);
            let ok3 = route("2001:db8:3::/48", "fe80::2", d0, 1);
            let ops = [
                FibOp::Add(ok1),
                FibOp::Add(route("2001:db8:2::/48", "fe80::2", 9999, 1)), // no such interface
                FibOp::Replace(ok2),
                FibOp::Remove(route("2001:db8:9::/48", "fe80::2", d0, 1).key()), // not there
                FibOp::Add(route("198.51.100.0/24", "fe80::2", down, 1)),        // interface down
                FibOp::Add(route("2001:db8:4::/48", "10.0.0.1", d0, 1)),         // unexpressible
                FibOp::Add(ok3),
            ];
            let f = fib.apply(&ops).await;
            let summary: Vec<(usize, Option<i32>)> = f.iter().map(|f| (f.index, f.error.errno())).collect();
            assert_eq!(
                summary,
                vec![(1, Some(libc::ENODEV)), (3, Some(libc::ESRCH)), (4, Some(libc::ENETDOWN)), (5, None),],
                "batch {batch}: {f:#?}"
            );
            assert!(matches!(f[3].error, FibError::Invalid(_)));
            assert!(f.iter().all(|f| f.op == ops[f.index]));
            // the kernel's explanation travels with the errno
            assert!(f[2].error.to_string().contains("not up"), "{}", f[2].error);
            assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![ok1, ok2, ok3]));
            assert_eq!(fib.flush_own().await.unwrap(), 3);
        });
    }
}

#[test]
fn nsenter_sees_the_namespace_by_path() {
    require_netns!();
    // How another process (or the lead's tests) can look into a Netns.
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        fib.add(&route("2001:db8:7::/48", "fe80::2", d0, 1)).await.unwrap();
    });
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args(["ip", "-6", "route", "show", "table", "100"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2001:db8:7::/48"));
}

#[test]
fn routes_follow_their_link_down_and_back_up() {
    require_netns!();
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let r6 = route("2001:db8:1::/48", "fe80::2", d0, 1);
        let r4 = route("192.0.2.0/24", "fe80::2", d0, 1);
        let failed = fib.apply(&[FibOp::Add(r6), FibOp::Add(r4)]).await;
        assert!(failed.is_empty(), "installing on a working link: {failed:?}");
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![r6, r4]));

        // carrier loss: the kernel keeps the routes, marked linkdown, and
        // flush still removes them. The kernel handles carrier changes
        // later (linkwatch); its link notification says when it has.
        let mut mon = RtnlMonitor::open().unwrap();
        ns.ip("link set d0p down").unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, mon.next_event()).await {
                // (LinkAdded if the initial dump already saw it down)
                Ok(Ok(MonitorEvent::LinkChanged(l) | MonitorEvent::LinkAdded(l)))
                    if l.ifindex == d0 && !l.running =>
                {
                    break
                }
                Ok(Ok(_)) => {}
                other => panic!("no carrier loss on d0 within 5 s: {other:?}"),
            }
        }
        let j = ip_json(&ns, &format!("-4 route show table {TABLE}"));
        assert!(find(&j, "192.0.2.0/24")["flags"].as_array().unwrap().contains(&"linkdown".into()));
        assert_eq!(fib.flush_own().await.unwrap(), 2);
        ns.ip("link set d0p up").unwrap();

        // admin down: the kernel deletes them itself; once the link is back,
        // replace installs them again
        let failed = fib.apply(&[FibOp::Add(r6), FibOp::Add(r4)]).await;
        assert!(failed.is_empty(), "reinstalling once the carrier is back: {failed:?}");
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![r6, r4]));
        ns.ip("link set d0 down").unwrap();
        assert!(fib.dump_own().await.unwrap().is_empty());
        // the caller still believes them installed: replace installs them
        // again once the link is back
        let e = fib.replace(&r6).await.unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENETDOWN), "{e}");
        ns.ip("link set d0 up").unwrap();
        for r in [r6, r4] {
            fib.replace(&r).await.unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![r6, r4]));
    });
}

/// A retracted prefix is held by an unreachable route (RFC 8966 §3.5.5):
/// it shadows a covering route, is replaced in place by a unicast route
/// when the prefix comes back, and goes with flush_own.
#[test]
fn unreachable_hold_routes_shadow_covering_routes_and_are_replaced_in_place() {
    require_netns!();
    let (ns, d0) = setup();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let covering = route("2001:db8::/32", "fe80::2", d0, 10);
        fib.add(&covering).await.unwrap();
        for p in ["2001:db8:5::/48", "10.9.0.0/16"] {
            let hold = FibRoute::unreachable(p.parse().unwrap(), 10);
            fib.add(&hold).await.unwrap();
        }
        let j = ip_json(&ns, &format!("-6 route show table {TABLE}"));
        assert_eq!(find(&j, "2001:db8:5::/48")["type"], "unreachable");
        let j4 = ip_json(&ns, &format!("-4 route show table {TABLE}"));
        assert_eq!(find(&j4, "10.9.0.0/16")["type"], "unreachable");
        let dumped = fib.dump_own().await.unwrap();
        assert!(
            dumped.contains(&FibRoute::unreachable("2001:db8:5::/48".parse().unwrap(), 10)),
            "{dumped:?}"
        );
        // The prefix comes back: the same (prefix, metric) becomes unicast.
        let back = route("2001:db8:5::/48", "fe80::3", d0, 10);
        fib.replace(&back).await.unwrap();
        let j = ip_json(&ns, &format!("-6 route show table {TABLE}"));
        let e = find(&j, "2001:db8:5::/48");
        assert_eq!(e["gateway"], "fe80::3");
        assert!(e.get("type").is_none_or(|t| t == "unicast"), "{e}");
        assert_eq!(fib.flush_own().await.unwrap(), 3, "covering, returned and held routes");
        assert!(fib.dump_own().await.unwrap().is_empty());
    });
}

/// End to end: routes straight into an interface, no gateway, with a
/// preferred source; both families; read back, replaced by a gateway
/// route and back, removed.
#[test]
fn device_routes_with_a_preferred_source_both_families() {
    require_netns!();
    let (ns, d0) = setup();
    ns.ip("addr add 10.9.0.1/32 dev lo").unwrap();
    ns.ip("addr add fd00:9::1/128 dev lo").unwrap();
    ns.block_on(|| async {
        let mut fib = RtnlFib::open(cfg()).unwrap();
        let v4 = FibRoute::device("10.7.0.0/24".parse().unwrap(), d0, 5, Some("10.9.0.1".parse().unwrap()));
        let v6 = FibRoute::device("fd00:7::/64".parse().unwrap(), d0, 5, Some("fd00:9::1".parse().unwrap()));
        let bare = FibRoute::device("fd00:8::/64".parse().unwrap(), d0, 5, None);
        let failures = fib.apply(&[FibOp::Add(v4), FibOp::Add(v6), FibOp::Add(bare)]).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![v4, v6, bare]));
        let j = ip_json(&ns, &format!("route show table {TABLE}"));
        let e = find(&j, "10.7.0.0/24");
        assert_eq!(
            (e["dev"].as_str(), e["prefsrc"].as_str(), e["scope"].as_str()),
            (Some("d0"), Some("10.9.0.1"), Some("link")),
            "{e}"
        );
        assert!(e.get("gateway").is_none(), "{e}");
        let j = ip_json(&ns, &format!("-6 route show table {TABLE}"));
        assert_eq!(find(&j, "fd00:7::/64")["prefsrc"], "fd00:9::1");
        // Replaced by a gateway route and back, in place.
        let hop = route("fd00:7::/64", "fe80::2", d0, 5);
        fib.replace(&hop).await.unwrap();
        fib.replace(&v6).await.unwrap();
        assert_eq!(sorted(fib.dump_own().await.unwrap()), sorted(vec![v4, v6, bare]));
        // Adding again is refused like any route at an occupied key.
        assert_eq!(fib.add(&v4).await.unwrap_err().errno(), Some(libc::EEXIST));
        fib.remove(&v4.key()).await.unwrap();
        fib.remove(&v6.key()).await.unwrap();
        assert_eq!(fib.flush_own().await.unwrap(), 1);
    });
}
