//! The Babel UDP socket between two private network namespaces joined by
//! veth pairs (root required).

// The one skip rule (require_netns!, require_cmd!, cannot_run!).
#[path = "common/require.rs"]
#[macro_use]
mod require;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use weft::kernel::netns::Netns;
use weft::net::{BabelIo, BabelSocket, Dest, RecvMeta, BABEL_GROUP, BABEL_PORT};

/// Two namespaces A and B joined by veth pairs `va`–`vb` and `vc`–`vd`, with
/// link-local (and, on va/vb, global) addresses; returns the namespaces and
/// the interface indexes (va, vb, vc, vd).
fn pair() -> (Netns, Netns, [u32; 4]) {
    let a = Netns::new().expect("private network namespace (tests must run as root)");
    let b = Netns::new().unwrap();
    for (x, y) in [("va", "vb"), ("vc", "vd")] {
        a.ip(&format!("link add {x} type veth peer name {y} netns {}", b.path())).unwrap();
        a.ip(&format!("link set {x} up")).unwrap();
        b.ip(&format!("link set {y} up")).unwrap();
    }
    a.ip("addr add fe80::a/64 dev va nodad").unwrap();
    a.ip("addr add 2001:db8::a/64 dev va nodad").unwrap();
    a.ip("addr add fe80::c/64 dev vc nodad").unwrap();
    b.ip("addr add fe80::b/64 dev vb nodad").unwrap();
    b.ip("addr add 2001:db8::b/64 dev vb nodad").unwrap();
    b.ip("addr add fe80::d/64 dev vd nodad").unwrap();
    // Static neighbour entries: unicast then never waits for neighbour
    // discovery, so datagrams arrive in the order they were sent.
    for (ns, dev, peer_ns, peer_dev, addrs) in [
        (&a, "va", &b, "vb", &["fe80::b", "2001:db8::b"][..]),
        (&a, "vc", &b, "vd", &["fe80::d"][..]),
        (&b, "vb", &a, "va", &["fe80::a", "2001:db8::a"][..]),
        (&b, "vd", &a, "vc", &["fe80::c"][..]),
    ] {
        let mac = mac_of(peer_ns, peer_dev);
        for addr in addrs {
            ns.ip(&format!("-6 neigh replace {addr} lladdr {mac} dev {dev} nud permanent")).unwrap();
        }
    }
    let idx = [
        a.ifindex("va").unwrap(),
        b.ifindex("vb").unwrap(),
        a.ifindex("vc").unwrap(),
        b.ifindex("vd").unwrap(),
    ];
    (a, b, idx)
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&format!("-j link show dev {dev}")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

/// Opens a Babel socket inside `ns`, registered with the current runtime.
fn open_in(ns: &Netns) -> BabelSocket {
    let rt = tokio::runtime::Handle::current();
    ns.run(move || {
        let _g = rt.enter();
        BabelSocket::open(BABEL_PORT).unwrap()
    })
}

/// Sends `data` from `from` until `to` returns it (UDP over veth can lose a
/// datagram when the machine is overloaded; up to 5 tries, 1 s each).
/// Anything else `to` returns must be a late copy of one of `stale`.
async fn deliver(
    from: &BabelSocket,
    ifindex: u32,
    dest: Dest,
    data: &[u8],
    to: &BabelSocket,
    stale: &[&[u8]],
    buf: &mut [u8],
) -> RecvMeta {
    for _ in 0..5 {
        from.send(ifindex, dest, data).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(m) = tokio::time::timeout_at(deadline, to.recv(buf)).await {
            let m = m.unwrap();
            let got = &buf[..m.len];
            if got == data {
                return m;
            }
            assert!(stale.contains(&got), "unexpected datagram {got:?} ({m:?}) while waiting for {data:?}");
        }
    }
    panic!("{data:?} did not arrive in 5 tries; stats {:?}", to.stats());
}

/// Pins the calling thread to the CPU it runs on.
fn pin_to_one_cpu() {
    use nix::sched::{sched_getcpu, sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(sched_getcpu().unwrap()).unwrap();
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

fn ll(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn multicast_and_unicast_carry_interface_source_and_destination() {
    require_netns!();
    let (a, b, [va, vb, vc, vd]) = pair();
    a.block_on(|| async {
        let mut sa = BabelSocket::open(BABEL_PORT).unwrap();
        let mut sb = open_in(&b);
        for i in [va, vc] {
            sa.join(i).unwrap();
        }
        for i in [vb, vd] {
            sb.join(i).unwrap();
        }
        sa.join(va).unwrap(); // joining twice is harmless
        let mut buf = vec![0u8; 65536];

        let m = deliver(&sa, va, Dest::Multicast, b"hello on va", &sb, &[], &mut buf).await;
        assert_eq!(m, RecvMeta { len: 11, ifindex: vb, source: ll("fe80::a"), destination: BABEL_GROUP });
        assert!(m.is_multicast());

        // the other link: same socket, other interface
        let m = deliver(&sa, vc, Dest::Multicast, b"hello on vc", &sb, &[b"hello on va"], &mut buf).await;
        assert_eq!((m.ifindex, m.source), (vd, ll("fe80::c")));

        // unicast back; A never sees its own multicasts (loop is off), so
        // this is the only thing its socket may return
        let m = deliver(&sb, vb, Dest::Unicast(ll("fe80::a")), b"ihu", &sa, &[], &mut buf).await;
        assert_eq!(m, RecvMeta { len: 3, ifindex: va, source: ll("fe80::b"), destination: ll("fe80::a") });
        assert!(!m.is_multicast());
        assert!(sa.stats().sent >= 2 && sb.stats().received >= 2, "{:?} {:?}", sa.stats(), sb.stats());

        // a non-link-local neighbour address is refused before sending
        let e = sa.send(va, Dest::Unicast(ll("2001:db8::b")), b"x").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn datagrams_from_non_link_local_sources_wrong_ports_or_unjoined_links_are_dropped() {
    require_netns!();
    let (a, b, [va, vb, vc, vd]) = pair();
    a.block_on(|| async {
        // The assertions rely on datagrams reaching B's socket in the order
        // sent, over two veth pairs: one CPU means one backlog queue.
        pin_to_one_cpu();
        let sa = BabelSocket::open(BABEL_PORT).unwrap();
        let mut sb = open_in(&b);
        sb.join(vb).unwrap();
        sb.join(vd).unwrap();
        let mut buf = vec![0u8; 65536];
        let group = SocketAddrV6::new(BABEL_GROUP, BABEL_PORT, 0, va);

        // The kernel installs the local route of a new address from a work
        // queue, so unicast to it can be dropped for a moment (seen under
        // load): a first unicast exchange proves B's fe80::b is reachable.
        deliver(&sa, va, Dest::Unicast(ll("fe80::b")), b"warm-up", &sb, &[], &mut buf).await;

        // From a global address (RFC 8966 section 4: MUST be ignored), as
        // multicast and as unicast, and from a link-local address with
        // another port; then a good datagram, which must be the first thing
        // B's socket returns. Rounds repeat only if the machine lost one.
        let global = UdpSocket::bind(SocketAddrV6::new(ll("2001:db8::a"), 0, 0, 0)).unwrap();
        let other_port = UdpSocket::bind(SocketAddrV6::new(ll("fe80::a"), 40000, 0, va)).unwrap();
        let to_b = SocketAddrV6::new(ll("fe80::b"), BABEL_PORT, 0, va);
        let mut rounds = 0;
        loop {
            rounds += 1;
            global.send_to(b"spoof", group).unwrap();
            global.send_to(b"spoof", to_b).unwrap();
            other_port.send_to(b"port", group).unwrap();
            let m = deliver(&sa, va, Dest::Multicast, b"good", &sb, &[b"good"], &mut buf).await;
            assert_eq!((m.source, m.ifindex), (ll("fe80::a"), vb));
            let st = sb.stats();
            if (st.dropped_not_link_local, st.dropped_bad_port) >= (2, 1) || rounds == 3 {
                assert!(st.dropped_not_link_local >= 2 && st.dropped_bad_port >= 1, "{st:?}");
                break;
            }
        }

        // B stops Babel on vb: unicast arriving there is dropped (the check
        // runs when the datagram is read, so read up to a marker on vd)
        sb.leave(vb).unwrap();
        sb.leave(vb).unwrap(); // twice is harmless
        for round in 1..=3 {
            sa.send(va, Dest::Unicast(ll("fe80::b")), b"after leave").await.unwrap();
            sa.send(va, Dest::Multicast, b"mcast after leave").await.unwrap();
            let m = deliver(&sa, vc, Dest::Multicast, b"marker", &sb, &[b"marker"], &mut buf).await;
            assert_eq!(m.ifindex, vd);
            if sb.stats().dropped_not_joined >= 1 || round == 3 {
                assert!(sb.stats().dropped_not_joined >= 1, "{:?}", sb.stats());
                break;
            }
        }
        sb.join(vb).unwrap();
        let m = deliver(&sa, va, Dest::Unicast(ll("fe80::b")), b"after rejoin", &sb, &[], &mut buf).await;
        assert_eq!(m.ifindex, vb);

        // an interface that disappears: leaving it afterwards is fine
        b.ip("link del vd").unwrap();
        sb.leave(vd).unwrap();
        // joining an interface that does not exist is an error
        assert!(sb.join(vd).is_err());
    });
}

#[test]
fn a_second_socket_on_the_babel_port_fails_loudly() {
    require_netns!();
    let (a, _b, _) = pair();
    a.block_on(|| async {
        let _first = BabelSocket::open(BABEL_PORT).unwrap();
        let e = BabelSocket::open(BABEL_PORT).err().expect("second bind must fail");
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE), "{e}");
    });
}
