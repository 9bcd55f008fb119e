//! Single-engine behaviour, driven with packets from a scripted neighbour.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::engine::*;
use super::interface::{InterfaceConfig, LinkType};
use super::packet::{self, Destination, Message, PacketBuilder, Update};
use super::types::*;

const OURS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const ORIGIN: RouterId = RouterId([2, 0, 0, 0, 0, 0, 0, 9]);

fn pkt(msgs: &[Message]) -> Vec<u8> {
    let mut b = PacketBuilder::new(1400);
    for m in msgs {
        assert!(b.push(m), "{m:?} does not encode");
    }
    b.take()
}

struct Bed {
    e: Engine,
    now: Time,
    out: Vec<Output>,
    hello_seqno: u16,
}

impl Bed {
    /// An engine with one wired interface and one neighbour whose link is up.
    fn new() -> Bed {
        let mut b = Bed {
            e: Engine::new(EngineConfig::new(RouterId([2, 1, 1, 1, 1, 1, 1, 1]), SeqNo(100), 5)),
            now: Time(1000),
            out: Vec::new(),
            hello_seqno: 0,
        };
        let mut cfg = InterfaceConfig::new("eth0", LinkType::Wired, OURS);
        cfg.ipv4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        b.e.handle_input(b.now, Input::InterfaceUp { ifindex: 3, config: cfg });
        b.hello();
        b.hello();
        b.drain();
        assert_eq!(b.e.neighbours()[0].cost, 96);
        b
    }

    fn hello(&mut self) {
        self.hello_seqno += 1;
        let p = pkt(&[
            Message::Hello { unicast: false, seqno: SeqNo(self.hello_seqno), interval: Centisecs(400) },
            Message::Ihu { rxcost: Metric(96), interval: Centisecs(1200), address: Some(IpAddr::V6(OURS)) },
        ]);
        self.recv(&p);
    }

    fn recv(&mut self, data: &[u8]) {
        self.now = self.now.plus_ms(10);
        self.e.handle_input(self.now, Input::Datagram { ifindex: 3, src: THEIRS, data });
        self.drain();
    }

    /// Lets time pass; the neighbour keeps sending a Hello every 4 s.
    fn advance(&mut self, ms: u64) {
        let end = self.now.plus_ms(ms);
        let mut next_hello = self.now.plus_ms(4000);
        loop {
            let t = self.e.poll_timeout().unwrap_or(end).min(next_hello);
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            if t == next_hello {
                self.hello();
                next_hello = self.now.plus_ms(4000);
            } else {
                self.e.handle_timeout(self.now);
                self.drain();
            }
        }
        self.now = end;
    }

    fn drain(&mut self) {
        while let Some(o) = self.e.poll_output() {
            self.out.push(o);
        }
    }

    fn sent_messages(&mut self) -> Vec<(Destination, Message)> {
        let mut v = Vec::new();
        for o in self.out.drain(..) {
            if let Output::Send { dst, data, .. } = o {
                for m in packet::decode(&data).expect("we send valid packets").messages {
                    v.push((dst, m));
                }
            }
        }
        v
    }

    fn fib(&mut self) -> Vec<FibOp> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Fib(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

fn update(prefix: &str, seqno: u16, metric: u16) -> Message {
    let prefix: Prefix = prefix.parse().unwrap();
    Message::Update(Update {
        prefix,
        router_id: ORIGIN,
        next_hop: prefix.is_ipv4().then_some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
        v4_via_v6: false,
        seqno: SeqNo(seqno),
        metric: Metric(metric),
        interval: Centisecs(1600),
    })
}

#[test]
fn ipv4_route_installs_and_its_retraction_without_next_hop_removes_it() {
    let mut b = Bed::new();
    b.recv(&pkt(&[update("10.5.0.0/16", 3, 100)]));
    let installed = b.e.installed(&"10.5.0.0/16".parse().unwrap()).expect("installed");
    assert_eq!(installed.next_hop, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(installed.metric, Metric(196));
    b.out.clear();
    // BIRD's retraction: AE 1, infinite metric, no Next Hop TLV before it.
    let retraction = Message::Update(Update {
        prefix: "10.5.0.0/16".parse().unwrap(),
        router_id: ORIGIN,
        next_hop: None,
        v4_via_v6: false,
        seqno: SeqNo(3),
        metric: Metric::INFINITY,
        interval: Centisecs(1600),
    });
    b.recv(&pkt(&[retraction]));
    assert!(b.e.installed(&"10.5.0.0/16".parse().unwrap()).is_none());
    // Held unreachable while retracted, so that packets do not follow a
    // covering route back to a neighbour (RFC 8966 §3.5.5)...
    assert!(b.fib().contains(&FibOp::Unreachable("10.5.0.0/16".parse().unwrap())));
    assert!(!b.fib().contains(&FibOp::Remove("10.5.0.0/16".parse().unwrap())));
    // ...and removed once the hold time is over.
    b.advance(61_000);
    assert!(b.fib().contains(&FibOp::Remove("10.5.0.0/16".parse().unwrap())));
}

#[test]
fn v4_via_v6_routes_use_the_neighbours_link_local_address() {
    let mut b = Bed::new();
    let mut u = match update("10.6.0.0/24", 1, 0) {
        Message::Update(u) => u,
        _ => unreachable!(),
    };
    u.next_hop = None;
    u.v4_via_v6 = true;
    b.recv(&pkt(&[Message::Update(u)]));
    assert_eq!(b.e.installed(&"10.6.0.0/24".parse().unwrap()).unwrap().next_hop, IpAddr::V6(THEIRS));
}

#[test]
fn route_filter_holds_routes_back_and_releases_them() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:9::/64".parse().unwrap();
    b.e.set_route_filter(b.now, Some(Box::new(|_| FilterVerdict::Hold)));
    b.recv(&pkt(&[update("fd00:9::/64", 1, 10)]));
    assert!(b.e.installed(&p).is_none(), "a filtered route was installed");
    assert_eq!(b.e.stats().held_by_filter, 1);
    assert!(b.out.iter().any(|o| matches!(o, Output::Filtered { query, verdict: FilterVerdict::Hold }
        if query.prefix == p && query.router_id == ORIGIN && query.neighbour == THEIRS)));
    b.e.set_route_filter(
        b.now,
        Some(Box::new(|q| {
            if q.prefix.len() == 64 && q.router_id == ORIGIN {
                FilterVerdict::Use
            } else {
                FilterVerdict::Refuse
            }
        })),
    );
    assert!(b.e.installed(&p).is_some(), "route not installed once allowed");
}

#[test]
fn extension_tlvs_go_out_and_come_in() {
    let mut b = Bed::new();
    b.out.clear();
    b.e.handle_input(
        b.now,
        Input::SendExtension { ifindex: 3, dst: Destination::Unicast(THEIRS), body: vec![1, 2, 3] },
    );
    b.advance(100);
    let sent = b.sent_messages();
    assert!(sent.iter().any(|(d, m)| *d == Destination::Unicast(THEIRS)
        && *m == Message::Unknown { tlv_type: packet::tlv_type::WEFT, body: vec![1, 2, 3] }));
    b.recv(&pkt(&[Message::Unknown { tlv_type: packet::tlv_type::WEFT, body: vec![7] }]));
    assert!(b.out.contains(&Output::Extension { ifindex: 3, from: THEIRS, body: vec![7] }));
}

#[test]
fn unfeasible_update_for_the_selected_route_is_ignored_and_triggers_a_seqno_request() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:7::/64".parse().unwrap();
    // A second interface, so that we advertise the route (split horizon
    // keeps it off the interface it came from).
    let cfg = InterfaceConfig::new("eth1", LinkType::Wired, "fe80::99".parse().unwrap());
    b.e.handle_input(b.now, Input::InterfaceUp { ifindex: 4, config: cfg });
    b.recv(&pkt(&[update("fd00:7::/64", 5, 100)]));
    // Let our own advertisement set the feasibility distance to (5, 196).
    b.advance(20_000);
    b.out.clear();
    // Same origin, same seqno, much worse metric: unfeasible.
    b.recv(&pkt(&[update("fd00:7::/64", 5, 400)]));
    assert_eq!(b.e.installed(&p).unwrap().metric, Metric(196), "unfeasible update was applied");
    b.advance(50);
    let sent = b.sent_messages();
    assert!(
        sent.iter().any(|(d, m)| *d == Destination::Unicast(THEIRS)
            && matches!(m, Message::SeqnoRequest { seqno: SeqNo(6), router_id, prefix, .. } if *router_id == ORIGIN && *prefix == p)),
        "no seqno request for seqno 6: {sent:?}"
    );
    // The origin answers with a new seqno: the route is feasible again.
    b.recv(&pkt(&[update("fd00:7::/64", 6, 400)]));
    assert_eq!(b.e.installed(&p).unwrap().metric, Metric(496));
}

#[test]
fn ack_requests_are_answered_by_unicast() {
    let mut b = Bed::new();
    b.out.clear();
    b.recv(&pkt(&[Message::AckReq { opaque: 0xBEEF, interval: Centisecs(100) }]));
    b.advance(10);
    let sent = b.sent_messages();
    assert!(sent.contains(&(Destination::Unicast(THEIRS), Message::Ack { opaque: 0xBEEF })), "{sent:?}");
}

#[test]
fn garbage_and_non_link_local_sources_are_counted_not_fatal() {
    let mut b = Bed::new();
    b.e.handle_input(b.now, Input::Datagram { ifindex: 3, src: THEIRS, data: &[42, 2, 0, 200, 1] });
    b.e.handle_input(
        b.now,
        Input::Datagram { ifindex: 3, src: "2001:db8::1".parse().unwrap(), data: &pkt(&[]) },
    );
    b.e.handle_input(b.now, Input::Datagram { ifindex: 99, src: THEIRS, data: &pkt(&[]) });
    assert_eq!(b.e.stats().bad_packets, 3);
    assert_eq!(b.e.neighbours().len(), 1);
}

#[test]
fn interface_down_flushes_neighbours_and_routes_at_once() {
    let mut b = Bed::new();
    b.recv(&pkt(&[update("fd00:8::/64", 1, 0)]));
    assert_eq!(b.e.installed_routes().len(), 1);
    b.out.clear();
    b.e.handle_input(b.now, Input::InterfaceDown { ifindex: 3 });
    b.drain();
    assert!(b.e.neighbours().is_empty());
    assert!(b.e.installed_routes().is_empty());
    assert!(b.fib().contains(&FibOp::Unreachable("fd00:8::/64".parse().unwrap())));
}

#[test]
fn own_seqno_rises_when_requested() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:1::/64".parse().unwrap();
    b.e.handle_input(b.now, Input::Announce { prefix: p, metric: Metric(0) });
    let rid = b.e.router_id();
    let req = Message::SeqnoRequest { seqno: SeqNo(101), hop_count: 5, router_id: rid, prefix: p };
    b.out.clear();
    b.recv(&pkt(&[req]));
    assert_eq!(b.e.seqno(), SeqNo(101));
    b.advance(50);
    let sent = b.sent_messages();
    assert!(sent
        .iter()
        .any(|(_, m)| matches!(m, Message::Update(u) if u.prefix == p && u.seqno == SeqNo(101))));
    // A hopelessly old request does not move it.
    let old = Message::SeqnoRequest { seqno: SeqNo(50), hop_count: 5, router_id: rid, prefix: p };
    b.recv(&pkt(&[old]));
    assert_eq!(b.e.seqno(), SeqNo(101));
}

/// Two nodes that start within a second of each other: our first full dump
/// went out before the neighbour listened, so its wildcard request must
/// still be answered (rate-limited to one dump a second, not dropped), or
/// it waits for our next periodic dump (16 s by default). Found by
/// tests/wire_tshark.rs: the second of two wefts learned the first's routes
/// only at its periodic update.
#[test]
fn wildcard_request_right_after_a_full_dump_is_answered_within_a_second() {
    let mut b = Bed::new();
    let p: Prefix = "2001:db8:1::/48".parse().unwrap();
    b.e.handle_input(b.now, Input::Announce { prefix: p, metric: Metric(0) });
    b.advance(100);
    let has_update = |msgs: &[(Destination, Message)]| {
        msgs.iter().any(|(_, m)| matches!(m, Message::Update(u) if u.prefix == p && !u.is_retraction()))
    };
    assert!(has_update(&b.sent_messages()), "the interface-up dump did not go out");
    // The request arrives 0.1 s after that dump.
    b.recv(&pkt(&[Message::RouteRequest { prefix: None }]));
    b.advance(1100);
    assert!(has_update(&b.sent_messages()), "a wildcard request shortly after a full dump was ignored");
}

/// A neighbour that first heard us from another of our link-local addresses
/// (ours changed as addresses came up after a link flap) keeps an entry for
/// it until it times out and sends IHUs for both entries. The stale one's
/// cost rises to infinity; it must not override the IHU for the address we
/// use (found in network namespaces: the link stayed down ~12 s).
#[test]
fn ihu_for_our_current_address_wins_over_one_for_an_old_address() {
    const OLD: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99);
    let mut b = Bed::new();
    let mut cfg = InterfaceConfig::new("eth0", LinkType::Wired, OURS);
    cfg.ipv4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    cfg.other_link_locals = vec![OLD];
    b.e.handle_input(b.now, Input::InterfaceUp { ifindex: 3, config: cfg });
    let hello_with = |b: &mut Bed, ihus: &[(u16, Ipv6Addr)]| {
        b.hello_seqno += 1;
        let mut msgs =
            vec![Message::Hello { unicast: false, seqno: SeqNo(b.hello_seqno), interval: Centisecs(400) }];
        for (rxcost, a) in ihus {
            msgs.push(Message::Ihu {
                rxcost: Metric(*rxcost),
                interval: Centisecs(1200),
                address: Some(IpAddr::V6(*a)),
            });
        }
        b.recv(&pkt(&msgs));
        b.e.neighbours()[0].cost
    };
    // In one packet, after the current one, and alone in later packets.
    assert_eq!(hello_with(&mut b, &[(96, OURS), (0xFFFF, OLD)]), 96);
    assert_eq!(hello_with(&mut b, &[(0xFFFF, OLD)]), 96);
    assert_eq!(hello_with(&mut b, &[(0xFFFF, OLD), (96, OURS)]), 96);
    assert_eq!(b.e.neighbours().len(), 1);

    // While a neighbour knows us only under another of our addresses, its
    // IHUs for it are ours (a fresh engine: no IHU for OURS yet).
    let mut e = Engine::new(EngineConfig::new(RouterId([2, 1, 1, 1, 1, 1, 1, 1]), SeqNo(1), 5));
    let mut cfg = InterfaceConfig::new("eth0", LinkType::Wired, OURS);
    cfg.other_link_locals = vec![OLD];
    e.handle_input(Time(0), Input::InterfaceUp { ifindex: 3, config: cfg });
    for k in 1..=2u16 {
        let p = pkt(&[
            Message::Hello { unicast: false, seqno: SeqNo(k), interval: Centisecs(400) },
            Message::Ihu { rxcost: Metric(96), interval: Centisecs(1200), address: Some(IpAddr::V6(OLD)) },
        ]);
        e.handle_input(Time(k as u64 * 10), Input::Datagram { ifindex: 3, src: THEIRS, data: &p });
    }
    assert_eq!(e.neighbours()[0].cost, 96);
}

/// An update for `prefix` from origin `rid`.
fn update_from(prefix: Prefix, rid: RouterId) -> Message {
    Message::Update(Update {
        prefix,
        router_id: rid,
        next_hop: None,
        v4_via_v6: false,
        seqno: SeqNo(1),
        metric: Metric(10),
        interval: Centisecs(1600),
    })
}

#[test]
fn a_neighbour_cannot_make_us_store_more_than_its_share_of_routes_and_origins() {
    let mut b = Bed::new();
    // Every origin unknown: routes are held, waiting for credentials.
    b.e.set_route_filter(b.now, Some(Box::new(|_| FilterVerdict::Hold)));
    let msgs: Vec<Message> = (0..20_000u32)
        .map(|i| {
            let prefix = Prefix::V6(Ipv6Addr::from((0xfd77u128 << 112) | u128::from(i) << 64), 64);
            let mut rid = [2, 0, 0, 0, 0, 0, 0, 0];
            rid[4..].copy_from_slice(&i.to_be_bytes());
            update_from(prefix, RouterId(rid))
        })
        .collect();
    for chunk in msgs.chunks(40) {
        b.recv(&pkt(chunk));
    }
    let stored = b.e.route_count();
    let origins: std::collections::BTreeSet<RouterId> = b.e.routes().iter().map(|r| r.router_id).collect();
    assert!(stored <= 16_384, "{stored} routes stored from one neighbour");
    assert!(origins.len() <= 4096, "{} origins stored from one neighbour", origins.len());
    assert!(b.e.stats().over_neighbour_limit >= 20_000 - 4096);
}
