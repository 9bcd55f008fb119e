//! The rtnetlink link/address monitor against the real kernel, each test in
//! its own private network namespace (root required).

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::net::IpAddr;
use std::time::Duration;

use weft::kernel::netns::Netns;
use weft::kernel::{IfAddr, LinkMonitor, MonitorEvent, RtnlMonitor};

const WAIT: Duration = Duration::from_secs(5);

/// Reads events until one matches; fails naming what it waited for and
/// every event seen meanwhile.
async fn wait_for(
    mon: &mut RtnlMonitor,
    what: &str,
    pred: impl Fn(&MonitorEvent) -> bool,
) -> (MonitorEvent, Vec<MonitorEvent>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, mon.next_event()).await {
            Ok(Ok(ev)) if pred(&ev) => return (ev, seen),
            Ok(Ok(ev)) => seen.push(ev),
            Ok(Err(e)) => panic!("monitor failed while waiting for {what}: {e}"),
            Err(_) => panic!("no {what} within {WAIT:?}; saw {seen:#?}"),
        }
    }
}

fn is_link<'a>(ev: &'a MonitorEvent, name: &str) -> Option<&'a weft::kernel::LinkInfo> {
    match ev {
        MonitorEvent::LinkAdded(l) | MonitorEvent::LinkChanged(l) | MonitorEvent::LinkRemoved(l)
            if l.name == name =>
        {
            Some(l)
        }
        _ => None,
    }
}

fn addr(ifindex: u32, a: &str, len: u8) -> IfAddr {
    IfAddr { ifindex, addr: a.parse::<IpAddr>().unwrap(), prefix_len: len }
}

#[test]
fn initial_dump_reports_existing_links_and_addresses() {
    require_netns!();
    let ns = Netns::new().expect("private network namespace (tests must run as root)");
    let v0 = ns.add_veth("v0").unwrap();
    ns.ip("addr add fe80::1/64 dev v0 nodad").unwrap();
    ns.ip("addr add 192.0.2.1/24 dev v0").unwrap();
    ns.block_on(|| async {
        let mut mon = RtnlMonitor::open().unwrap();
        let (ev, _) = wait_for(&mut mon, "v0's IPv4 address", |e| {
            *e == MonitorEvent::AddressAdded(addr(v0, "192.0.2.1", 24))
        })
        .await;
        drop(ev);
        let t = mon.table();
        let v0info = t.link(v0).expect("v0 known");
        assert_eq!(v0info.name, "v0");
        assert!(v0info.is_up(), "{v0info:?}");
        assert_eq!(v0info.mtu, 1500);
        assert!(t.links().any(|l| l.name == "lo" && l.is_up()));
        assert!(t.links().any(|l| l.name == "v0p"));
        let addrs: Vec<IfAddr> = t.addresses().copied().collect();
        assert!(addrs.contains(&addr(v0, "fe80::1", 64)), "{addrs:?}");
        assert!(addrs.iter().any(|a| a.addr == "::1".parse::<IpAddr>().unwrap()), "{addrs:?}");
        assert!(addrs.iter().any(|a| a.addr == "127.0.0.1".parse::<IpAddr>().unwrap()), "{addrs:?}");
    });
}

#[test]
fn link_appearing_going_up_and_down_losing_its_link_local_and_going_away() {
    require_netns!();
    let ns = Netns::new().expect("private network namespace (tests must run as root)");
    ns.block_on(|| async {
        let mut mon = RtnlMonitor::open().unwrap();
        wait_for(&mut mon, "lo", |e| is_link(e, "lo").is_some()).await;

        // a link that appears later, down
        ns.ip("link add w1 type veth peer name w1p").unwrap();
        let (ev, _) = wait_for(&mut mon, "w1 added", |e| is_link(e, "w1").is_some()).await;
        let MonitorEvent::LinkAdded(l) = ev else { panic!("{ev:?}") };
        assert!(!l.admin_up && !l.running, "{l:?}");
        let w1 = l.ifindex;

        // admin up, but the peer is down: no carrier
        ns.ip("link set w1 up").unwrap();
        let (ev, _) =
            wait_for(&mut mon, "w1 admin up", |e| is_link(e, "w1").is_some_and(|l| l.admin_up)).await;
        let l = is_link(&ev, "w1").unwrap();
        assert!(matches!(ev, MonitorEvent::LinkChanged(_)) && !l.running && !l.is_up(), "{ev:?}");

        // peer up: carrier, so the link is usable
        ns.ip("link set w1p up").unwrap();
        wait_for(&mut mon, "w1 running", |e| is_link(e, "w1").is_some_and(|l| l.is_up())).await;

        // a link-local address comes and goes
        ns.ip("addr add fe80::5/64 dev w1 nodad").unwrap();
        wait_for(&mut mon, "fe80::5 added", |e| *e == MonitorEvent::AddressAdded(addr(w1, "fe80::5", 64)))
            .await;
        ns.ip("addr del fe80::5/64 dev w1").unwrap();
        wait_for(&mut mon, "fe80::5 removed", |e| {
            *e == MonitorEvent::AddressRemoved(addr(w1, "fe80::5", 64))
        })
        .await;

        // carrier loss from the other end
        ns.ip("link set w1p down").unwrap();
        wait_for(&mut mon, "w1 no carrier", |e| is_link(e, "w1").is_some_and(|l| l.admin_up && !l.running))
            .await;
        ns.ip("link set w1p up").unwrap();
        wait_for(&mut mon, "w1 carrier back", |e| is_link(e, "w1").is_some_and(|l| l.is_up())).await;

        // MTU change
        ns.ip("link set w1 mtu 1400").unwrap();
        wait_for(&mut mon, "w1 mtu 1400", |e| is_link(e, "w1").is_some_and(|l| l.mtu == 1400)).await;

        // admin down takes the IPv6 addresses with it
        ns.ip("addr add fe80::6/64 dev w1 nodad").unwrap();
        wait_for(&mut mon, "fe80::6 added", |e| *e == MonitorEvent::AddressAdded(addr(w1, "fe80::6", 64)))
            .await;
        ns.ip("link set w1 down").unwrap();
        let (_, seen) =
            wait_for(&mut mon, "w1 admin down", |e| is_link(e, "w1").is_some_and(|l| !l.admin_up)).await;
        let lost = MonitorEvent::AddressRemoved(addr(w1, "fe80::6", 64));
        if !seen.contains(&lost) {
            wait_for(&mut mon, "fe80::6 removed on down", |e| *e == lost).await;
        }
        // ... all of them, including the one the kernel generated itself
        while mon.table().addresses().any(|a| a.ifindex == w1) {
            wait_for(
                &mut mon,
                "w1's other addresses removed",
                |e| matches!(e, MonitorEvent::AddressRemoved(a) if a.ifindex == w1),
            )
            .await;
        }

        // removal
        ns.ip("link del w1").unwrap();
        let (ev, _) =
            wait_for(&mut mon, "w1 removed", |e| matches!(e, MonitorEvent::LinkRemoved(l) if l.name == "w1"))
                .await;
        assert!(matches!(ev, MonitorEvent::LinkRemoved(l) if l.ifindex == w1));
        assert!(mon.table().link(w1).is_none());
    });
}

#[test]
fn lost_notifications_are_recovered_by_a_resync() {
    require_netns!();
    let ns = Netns::new().expect("private network namespace (tests must run as root)");
    const N: usize = 60;
    ns.block_on(|| async {
        let mut mon = RtnlMonitor::open().unwrap();
        wait_for(&mut mon, "lo", |e| is_link(e, "lo").is_some()).await;
        // A tiny buffer and a burst while nobody reads: the kernel drops
        // notifications and says so (ENOBUFS).
        mon.set_recv_buffer(4096).unwrap();
        for i in 0..N {
            ns.ip(&format!("link add r{i} type veth peer name r{i}p")).unwrap();
        }
        let mut pending: std::collections::BTreeSet<String> = (0..N).map(|i| format!("r{i}")).collect();
        while !pending.is_empty() {
            let (ev, _) =
                wait_for(&mut mon, "the burst's links", |e| matches!(e, MonitorEvent::LinkAdded(_))).await;
            if let MonitorEvent::LinkAdded(l) = ev {
                pending.remove(&l.name);
            }
        }
        assert!(mon.resyncs() >= 1, "the burst should have overrun a 4 KiB buffer");
        assert_eq!(mon.table().links().filter(|l| l.name.starts_with('r')).count(), 2 * N);
        // and removals after that are seen too
        ns.ip("link del r0").unwrap();
        wait_for(&mut mon, "r0 removed", |e| matches!(e, MonitorEvent::LinkRemoved(l) if l.name == "r0"))
            .await;
    });
}

#[test]
fn a_tentative_address_is_reported_only_once_dad_succeeds() {
    require_netns!();
    let ns = Netns::new().expect("private network namespace (tests must run as root)");
    let t0 = ns.add_veth("t0").unwrap();
    ns.block_on(|| async {
        let mut mon = RtnlMonitor::open().unwrap();
        wait_for(&mut mon, "t0", |e| is_link(e, "t0").is_some()).await;
        // with duplicate address detection (about a second here)
        ns.ip("addr add fe80::7/64 dev t0").unwrap();
        assert!(is_tentative(&ns, "t0", "fe80::7"), "DAD should be running");
        let want = MonitorEvent::AddressAdded(addr(t0, "fe80::7", 64));
        wait_for(&mut mon, "fe80::7 after DAD", |e| *e == want).await;
        assert!(!is_tentative(&ns, "t0", "fe80::7"), "reported while still tentative");
    });
}

/// Whether `ip` shows `addr` on `dev` as still doing DAD.
fn is_tentative(ns: &Netns, dev: &str, addr: &str) -> bool {
    let out = ns.ip(&format!("-j addr show dev {dev}")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let info = v[0]["addr_info"].as_array().unwrap();
    let a = info.iter().find(|a| a["local"] == addr).unwrap_or_else(|| panic!("{addr} not on {dev}: {out}"));
    a["tentative"] == true
}
