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
        let b = Bed::with_link(LinkType::Wired);
        assert_eq!(b.e.neighbours()[0].cost, 96);
        b
    }

    /// The same over a link of the given type.
    fn with_link(link: LinkType) -> Bed {
        let mut b = Bed {
            e: Engine::new(EngineConfig::new(RouterId([2, 1, 1, 1, 1, 1, 1, 1]), SeqNo(100), 5)),
            now: Time(1000),
            out: Vec::new(),
            hello_seqno: 0,
        };
        let mut cfg = InterfaceConfig::new("eth0", link, OURS);
        cfg.ipv4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        b.e.handle_input(b.now, Input::InterfaceUp { ifindex: 3, config: cfg });
        b.hello();
        b.hello();
        b.drain();
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

    /// A datagram from another neighbour on the same interface.
    fn recv_from(&mut self, src: Ipv6Addr, data: &[u8]) {
        self.recv_on(3, src, data);
    }

    fn recv_on(&mut self, ifindex: u32, src: Ipv6Addr, data: &[u8]) {
        self.e.handle_input(self.now, Input::Datagram { ifindex, src, data });
        self.drain();
    }

    /// Runs the engine's timers until `ms` from now, without Hellos from the
    /// neighbour.
    fn idle(&mut self, ms: u64) {
        let end = self.now.plus_ms(ms);
        while let Some(t) = self.e.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.e.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Updates for `p` sent since the output was last cleared.
    fn updates_for(&mut self, p: Prefix) -> Vec<(Destination, Update)> {
        self.sent_messages()
            .into_iter()
            .filter_map(|(d, m)| match m {
                Message::Update(u) if u.prefix == p => Some((d, u)),
                _ => None,
            })
            .collect()
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
fn a_scoped_filter_change_rejudges_the_routes_of_its_origins_and_prefixes_only() {
    let mut b = Bed::new();
    let (a, c) = (RouterId([7; 8]), RouterId([8; 8]));
    let (pa, pc, pk): (Prefix, Prefix, Prefix) =
        ("fd00:a::/64".parse().unwrap(), "fd00:c::/64".parse().unwrap(), "fd00:c::1/128".parse().unwrap());
    b.e.set_route_filter(b.now, Some(Box::new(|_| FilterVerdict::Hold)));
    b.recv(&pkt(&[update_from(pa, a), update_from(pc, c), update_from(pk, a)]));
    assert!([pa, pc, pk].iter().all(|p| b.e.installed(p).is_none()), "held routes installed");
    // A filter that would use everything, said to change only origin a's
    // verdicts: a's routes are judged anew, c's are not (the engine takes
    // the core's word for the scope: that is what makes it cheap).
    let allow = || -> Option<RouteFilter> { Some(Box::new(|_| FilterVerdict::Use)) };
    let scope = FilterScope { origins: vec![a], ..FilterScope::default() };
    b.e.set_route_filter_for(b.now, allow(), &scope);
    assert!(b.e.installed(&pa).is_some() && b.e.installed(&pk).is_some(), "a's routes not re-judged");
    assert!(b.e.installed(&pc).is_none(), "c's route re-judged outside the scope");
    // A prefix in the scope is judged anew whoever its origin.
    b.e.set_route_filter_for(b.now, allow(), &FilterScope { prefixes: vec![pc], ..FilterScope::default() });
    assert!(b.e.installed(&pc).is_some(), "the scoped prefix was not re-judged");
    // After its route changed origin, a scope of the old origin leaves the
    // prefix alone, and one of the new origin covers it.
    b.recv(&pkt(&[update_from(pk, c)]));
    let refuse_c = || -> Option<RouteFilter> {
        Some(Box::new(
            move |q: &RouteQuery| if q.router_id == c { FilterVerdict::Refuse } else { FilterVerdict::Use },
        ))
    };
    b.e.set_route_filter_for(b.now, refuse_c(), &FilterScope { origins: vec![a], ..FilterScope::default() });
    assert!(b.e.installed(&pk).is_some(), "re-judged through the old origin's stale index entry");
    b.e.set_route_filter_for(b.now, refuse_c(), &FilterScope { origins: vec![c], ..FilterScope::default() });
    assert!(b.e.installed(&pk).is_none() && b.e.installed(&pc).is_none(), "c's routes not re-judged");
    assert!(b.e.installed(&pa).is_some());
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

/// An unfeasible update for the selected route from the same origin is
/// ignored (RFC 8966 §3.5.3) and asks nothing: on ETX links the advertised
/// metric crosses the feasibility distance all the time, and asking each
/// time made the origin's new seqnos flood the mesh (babeld asks only for a
/// lost route or a much better unfeasible one). A much better unfeasible
/// route from another neighbour is still asked for, by unicast.
#[test]
fn unfeasible_update_for_the_selected_route_is_ignored_without_a_request() {
    const OTHER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);
    let mut b = Bed::new();
    let p: Prefix = "fd00:7::/64".parse().unwrap();
    // A second interface, so that we advertise the route (split horizon
    // keeps it off the interface it came from).
    with_second_interface(&mut b);
    // OTHER's Hellos (b.advance sends only THEIRS's).
    let mut other_hello = 0u16;
    let mut hear_other = |b: &mut Bed| {
        for _ in 0..3 {
            other_hello += 1;
            let h = Message::Hello { unicast: false, seqno: SeqNo(other_hello), interval: Centisecs(400) };
            b.recv_from(OTHER, &pkt(&[h, ihu(96)]));
        }
    };
    hear_other(&mut b);
    b.recv(&pkt(&[update("fd00:7::/64", 5, 100)]));
    // Let our own advertisement set the feasibility distance to (5, 196).
    b.advance(20_000);
    b.out.clear();
    let asked = |b: &mut Bed, to: Ipv6Addr| {
        b.sent_messages().into_iter().any(|(d, m)| {
            d == Destination::Unicast(to)
                && matches!(m, Message::SeqnoRequest { seqno: SeqNo(6), router_id, prefix, .. } if router_id == ORIGIN && prefix == p)
        })
    };
    // Same origin, same seqno, worse metric: unfeasible, ignored, not asked.
    b.recv(&pkt(&[update("fd00:7::/64", 5, 400)]));
    assert_eq!(b.e.installed(&p).unwrap().metric, Metric(196), "unfeasible update was applied");
    b.advance(200);
    assert!(!asked(&mut b, THEIRS), "asked for a new seqno: {:?}", b.sent_messages());
    // OTHER's route is unfeasible too (250 >= 196) and no better: not asked.
    hear_other(&mut b);
    b.recv_from(OTHER, &pkt(&[update("fd00:7::/64", 5, 250)]));
    b.advance(200);
    assert!(!asked(&mut b, OTHER), "asked for a route no better than ours");
    // Our link to THEIRS gets bad (metric 100 + 2000): OTHER's unfeasible
    // route (300 + 96) is now much better: asked, by unicast.
    b.recv(&pkt(&[ihu(2000)]));
    assert_eq!(b.e.installed(&p).unwrap().metric, Metric(2100));
    b.recv_from(OTHER, &pkt(&[update("fd00:7::/64", 5, 300)]));
    b.advance(200);
    assert!(
        asked(&mut b, OTHER),
        "a much better unfeasible route was not asked for: {:?}",
        b.sent_messages()
    );
    // The origin answers with a new seqno: OTHER's route is feasible and taken.
    b.recv_from(OTHER, &pkt(&[update("fd00:7::/64", 6, 300)]));
    assert_eq!(b.e.installed(&p).unwrap().next_hop, IpAddr::V6(OTHER));
}

/// The selected route stays alive while its neighbour keeps announcing it,
/// unfeasibly, from the same origin (as babeld keeps it): on a lossy link
/// the seqno request can take seconds to be answered, and letting the route
/// expire meanwhile starves every node behind us. Once the announcements
/// stop, it expires as any route does.
#[test]
fn unfeasible_updates_for_the_selected_route_keep_it_alive_until_they_stop() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:8::/64".parse().unwrap();
    with_second_interface(&mut b);
    // Announced with a 16 s interval: expires 84 s after the last update.
    b.recv(&pkt(&[update("fd00:8::/64", 5, 100)]));
    b.advance(10_000);
    // From now on only unfeasible updates (same origin and seqno, worse
    // metric) arrive, every 16 s, and the origin never answers.
    for _ in 0..6 {
        b.recv(&pkt(&[update("fd00:8::/64", 5, 400)]));
        b.advance(16_000);
    }
    // 106 s after the last feasible update.
    let r = b.e.installed(&p).expect("the announced route expired while its neighbour still announced it");
    assert_eq!(r.metric, Metric(196), "the unfeasible metric was applied");
    assert!(b.fib().iter().all(|f| !matches!(f, FibOp::Unreachable(x) | FibOp::Remove(x) if *x == p)));
    // The announcements stop: gone within the hold time.
    b.advance(90_000);
    assert!(b.e.installed(&p).is_none(), "the route outlived its last announcement");
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

/// The second interface of a node that relays: routes learned on eth0 are
/// announced on eth1 (split horizon keeps them off eth0).
fn with_second_interface(b: &mut Bed) {
    let cfg = InterfaceConfig::new("eth1", LinkType::Wired, "fe80::99".parse().unwrap());
    b.e.handle_input(b.now, Input::InterfaceUp { ifindex: 4, config: cfg });
    b.drain();
}

fn ihu(rxcost: u16) -> Message {
    Message::Ihu { rxcost: Metric(rxcost), interval: Centisecs(1200), address: Some(IpAddr::V6(OURS)) }
}

/// A link whose cost moves (ETX on a lossy radio does with every Hello)
/// makes no triggered update unless the selected route's metric moves by
/// what babeld calls significant; a sharp rise goes out at once, but only
/// once: only retractions and changes of origin are repeated.
#[test]
fn link_cost_changes_trigger_updates_only_when_significant() {
    let mut b = Bed::new();
    with_second_interface(&mut b);
    let p: Prefix = "fd00:9::/64".parse().unwrap();
    b.recv(&pkt(&[update("fd00:9::/64", 1, 100)]));
    b.idle(6000);
    b.out.clear();
    let before = b.e.stats().triggered_updates;
    // Small rises and falls of the link cost: nothing is triggered.
    for rxcost in [150, 110, 200, 96] {
        b.recv(&pkt(&[ihu(rxcost)]));
    }
    assert_eq!(b.e.stats().triggered_updates, before, "trivial cost changes triggered updates");
    b.idle(200);
    assert!(b.updates_for(p).is_empty(), "an update went out for a trivial change");
    // A sharp rise (96 -> 700: the route's metric 196 -> 800) goes out within
    // tens of milliseconds, once.
    b.recv(&pkt(&[ihu(700)]));
    b.idle(100);
    let sent = b.updates_for(p);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1.metric, Metric(800));
    b.idle(3000);
    assert!(b.updates_for(p).is_empty(), "a metric change was repeated");
    assert_eq!(b.e.stats().repeated_updates, 0);
}

/// Losing the only route is a retraction: it goes out at once and twice
/// more, half a Hello interval and one Hello interval later (a lost
/// retraction is a black hole until the next dump).
#[test]
fn a_retraction_is_repeated() {
    let mut b = Bed::new();
    with_second_interface(&mut b);
    let p: Prefix = "fd00:a::/64".parse().unwrap();
    b.recv(&pkt(&[update("fd00:a::/64", 1, 100)]));
    b.idle(6000);
    b.out.clear();
    b.recv(&pkt(&[update("fd00:a::/64", 1, 0xFFFF)]));
    b.idle(6500);
    let on_eth1 = b
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Send { ifindex: 4, data, .. } => Some(packet::decode(data).unwrap().messages),
            _ => None,
        })
        .flatten()
        .filter(|m| matches!(m, Message::Update(u) if u.prefix == p && u.is_retraction()))
        .count();
    // (A periodic dump in the window may carry it once more.)
    assert!((3..=4).contains(&on_eth1), "retraction sent {on_eth1} times on eth1");
    assert_eq!(b.e.stats().repeated_updates, 1);
}

/// A seqno request we forwarded is satisfied only when the route we select
/// carries the seqno (babeld), not by any neighbour's update with it: the
/// answer must still go out quickly when the selected route gets it.
#[test]
fn a_forwarded_seqno_request_waits_for_the_selected_route() {
    const OTHER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);
    const ASKER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 4);
    let mut b = Bed::new();
    // ASKER is on eth1: routes from eth0 are announced there.
    with_second_interface(&mut b);
    let p: Prefix = "fd00:b::/64".parse().unwrap();
    for k in 1..=2 {
        let h =
            |k| pkt(&[Message::Hello { unicast: false, seqno: SeqNo(k), interval: Centisecs(400) }, ihu(96)]);
        b.recv_on(3, OTHER, &h(k));
        b.recv_on(
            4,
            ASKER,
            &pkt(&[Message::Hello { unicast: false, seqno: SeqNo(k), interval: Centisecs(400) }]),
        );
    }
    // Selected via THEIRS (metric 100); OTHER has a worse one (300).
    b.recv(&pkt(&[update("fd00:b::/64", 5, 100)]));
    b.recv_from(OTHER, &pkt(&[update("fd00:b::/64", 5, 300)]));
    assert_eq!(b.e.installed(&p).unwrap().next_hop, IpAddr::V6(THEIRS));
    b.idle(6000);
    b.out.clear();
    // ASKER wants seqno 6: forwarded to our successor, THEIRS.
    b.recv_on(
        4,
        ASKER,
        &pkt(&[Message::SeqnoRequest { seqno: SeqNo(6), hop_count: 10, router_id: ORIGIN, prefix: p }]),
    );
    b.idle(50);
    let sent = b.sent_messages();
    assert!(
        sent.iter().any(|(d, m)| *d == Destination::Unicast(THEIRS)
            && matches!(m, Message::SeqnoRequest { seqno: SeqNo(6), .. })),
        "request not forwarded to the successor: {sent:?}"
    );
    // OTHER's route gets seqno 6 first; it is not selected: nothing answers.
    b.recv_from(OTHER, &pkt(&[update("fd00:b::/64", 6, 300)]));
    b.idle(50);
    assert!(b.updates_for(p).is_empty(), "a non-selected route's update answered the request");
    // The selected route gets it: the answer goes out quickly (within
    // babeld's jitter for urgent updates, about 100 ms).
    b.recv(&pkt(&[update("fd00:b::/64", 6, 100)]));
    b.idle(130);
    let sent = b.updates_for(p);
    assert!(sent.iter().any(|(_, u)| u.seqno == SeqNo(6)), "the answer waited: {sent:?}");
}

/// Answers to requests wait about 100 ms for company (babeld's jitter for
/// urgent updates): two seqno requests 30 ms apart are answered in one
/// datagram, where a 20 ms wait sent two.
#[test]
fn answers_to_requests_close_together_share_a_datagram() {
    let mut b = Bed::new();
    let (p1, p2): (Prefix, Prefix) = ("fd00:e1::/64".parse().unwrap(), "fd00:e2::/64".parse().unwrap());
    for p in [p1, p2] {
        b.e.handle_input(b.now, Input::Announce { prefix: p, metric: Metric(0) });
    }
    b.drain();
    b.idle(10_000);
    b.out.clear();
    let (rid, seqno) = (b.e.router_id(), b.e.seqno().next());
    for p in [p1, p2] {
        b.recv(&pkt(&[Message::SeqnoRequest { seqno, hop_count: 10, router_id: rid, prefix: p }]));
        b.idle(30);
    }
    b.idle(200);
    let carrying: Vec<Vec<Prefix>> = b
        .out
        .drain(..)
        .filter_map(|o| match o {
            Output::Send { data, .. } => Some(
                packet::decode(&data)
                    .expect("valid")
                    .messages
                    .into_iter()
                    .filter_map(|m| match m {
                        Message::Update(u) if u.prefix == p1 || u.prefix == p2 => Some(u.prefix),
                        _ => None,
                    })
                    .collect::<Vec<Prefix>>(),
            ),
            _ => None,
        })
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(carrying.len(), 1, "the answers left in {} datagrams: {carrying:?}", carrying.len());
    assert!(carrying[0].contains(&p1) && carrying[0].contains(&p2), "{carrying:?}");
}

/// A neighbour heard for the first time gets two Hellos with IHUs within
/// tens of milliseconds, so that 2-out-of-3 holds at its end at once.
#[test]
fn a_new_neighbour_gets_two_hellos_at_once() {
    let mut e = Engine::new(EngineConfig::new(RouterId([2, 1, 1, 1, 1, 1, 1, 1]), SeqNo(1), 5));
    let cfg = InterfaceConfig::new("eth0", LinkType::Wired, OURS);
    e.handle_input(Time(0), Input::InterfaceUp { ifindex: 3, config: cfg });
    // Past our own first Hello.
    while let Some(t) = e.poll_timeout().filter(|t| *t <= Time(500)) {
        e.handle_timeout(t);
    }
    while e.poll_output().is_some() {}
    let mut now = Time(600);
    let hello = pkt(&[Message::Hello { unicast: false, seqno: SeqNo(7), interval: Centisecs(400) }]);
    e.handle_input(now, Input::Datagram { ifindex: 3, src: THEIRS, data: &hello });
    let end = now.plus_ms(100);
    let mut hellos = 0;
    let mut ihus = 0;
    loop {
        while let Some(o) = e.poll_output() {
            if let Output::Send { data, .. } = o {
                for m in packet::decode(&data).unwrap().messages {
                    match m {
                        Message::Hello { .. } => hellos += 1,
                        Message::Ihu { address: Some(IpAddr::V6(a)), .. } if a == THEIRS => ihus += 1,
                        _ => {}
                    }
                }
            }
        }
        match e.poll_timeout().filter(|t| *t <= end) {
            Some(t) => {
                now = t;
                e.handle_timeout(now);
            }
            None => break,
        }
    }
    assert_eq!((hellos, ihus), (2, 2), "hellos and IHUs within 100 ms of a new neighbour");
}

/// A neighbour that appears just after our last multicast dump and asks for
/// everything gets a unicast dump at once, not the next multicast slot.
#[test]
fn a_new_neighbours_wildcard_request_gets_a_unicast_dump_at_once() {
    const NEW: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 5);
    let mut b = Bed::new();
    let p: Prefix = "2001:db8:2::/48".parse().unwrap();
    b.e.handle_input(b.now, Input::Announce { prefix: p, metric: Metric(0) });
    // The interface's first multicast dump goes out.
    b.idle(60);
    assert!(!b.updates_for(p).is_empty());
    b.recv_from(
        NEW,
        &pkt(&[
            Message::Hello { unicast: false, seqno: SeqNo(1), interval: Centisecs(400) },
            Message::RouteRequest { prefix: None },
        ]),
    );
    b.idle(30);
    let sent = b.updates_for(p);
    assert!(
        sent.iter().any(|(d, _)| *d == Destination::Unicast(NEW)),
        "no unicast dump to the newcomer: {sent:?}"
    );
    // Only one per second: a repeated request waits for the multicast slot.
    b.out.clear();
    b.recv_from(NEW, &pkt(&[Message::RouteRequest { prefix: None }]));
    b.idle(30);
    assert!(b.updates_for(p).iter().all(|(d, _)| *d != Destination::Unicast(NEW)));
}

/// A selected route whose neighbour has gone quiet is asked for (unicast)
/// before it expires, at most three times; an update ends the asking.
#[test]
fn a_quiet_selected_route_is_asked_for_before_it_expires() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:c::/64".parse().unwrap();
    // Announced with a 16 s interval: expires 84 s after the last update.
    b.recv(&pkt(&[update("fd00:c::/64", 1, 100)]));
    b.out.clear();
    let asks = |b: &mut Bed| {
        b.sent_messages()
            .into_iter()
            .filter(|(d, m)| {
                *d == Destination::Unicast(THEIRS)
                    && matches!(m, Message::RouteRequest { prefix: Some(x) } if *x == p)
            })
            .count()
    };
    b.advance(59_000);
    assert_eq!(asks(&mut b), 0, "asked before 3.75 intervals of silence");
    b.advance(2_000);
    assert_eq!(asks(&mut b), 1, "not asked at 3.75 intervals (60 s)");
    b.advance(22_000);
    assert_eq!(asks(&mut b), 2, "two more asks before expiry (68 s and 76 s)");
    assert!(b.e.installed(&p).is_some());
    b.advance(2_000);
    assert!(b.e.installed(&p).is_none(), "expired at 84 s");
    // Refreshed routes are not asked for.
    b.recv(&pkt(&[update("fd00:c::/64", 2, 100)]));
    b.out.clear();
    for _ in 0..4 {
        b.advance(15_000);
        b.recv(&pkt(&[update("fd00:c::/64", 2, 100)]));
    }
    assert_eq!(asks(&mut b), 0);
}

/// What one neighbour's requests can make us do is bounded: a flood of seqno
/// requests costs at most the burst plus the rate, and raises our seqno at
/// most once per half second.
#[test]
fn a_neighbours_requests_cost_a_bounded_amount() {
    let mut b = Bed::new();
    let p: Prefix = "fd00:d::/64".parse().unwrap();
    b.e.handle_input(b.now, Input::Announce { prefix: p, metric: Metric(0) });
    let rid = b.e.router_id();
    let start = b.e.seqno();
    let mut asked = start;
    for _ in 0..1000 {
        asked = asked.next();
        let req = Message::SeqnoRequest { seqno: asked, hop_count: 5, router_id: rid, prefix: p };
        // All at one instant: a flood.
        b.e.handle_input(b.now, Input::Datagram { ifindex: 3, src: THEIRS, data: &pkt(&[req]) });
    }
    b.drain();
    assert_eq!(b.e.seqno(), start.next(), "seqno raised more than once in an instant");
    let over = b.e.stats().requests_over_budget;
    assert!(over >= 1000 - 100, "only {over} of 1000 requests were over budget");
    // Requests for prefixes we do not have cost a retraction each, within
    // the same budget; beyond 64 in a second the requester gets a dump.
    b.out.clear();
    for k in 0..200u16 {
        let q: Prefix = format!("fd00:e:{k:x}::/64").parse().unwrap();
        b.recv(&pkt(&[Message::RouteRequest { prefix: Some(q) }]));
    }
    b.idle(2000);
    let retractions = b
        .sent_messages()
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Update(u) if u.is_retraction()))
        .count();
    assert!(retractions <= 64, "{retractions} retractions for one neighbour's requests");
}

fn route_of(b: &Bed, p: &str) -> (u16, u16) {
    let r = b.e.routes().into_iter().find(|r| r.prefix.to_string() == p).expect("route");
    (r.metric, r.smoothed_metric)
}

/// Over a link younger than 16 Hellos the metric is not smoothed (a new
/// link's ETX falls steadily while its history fills: no noise to damp);
/// afterwards a fall of the metric is smoothed.
#[test]
fn metrics_over_a_young_link_are_not_smoothed() {
    let mut b = Bed::new();
    b.recv(&pkt(&[update("fd00:9::/64", 1, 900)]));
    b.advance(8000);
    b.recv(&pkt(&[update("fd00:9::/64", 1, 100)]));
    let (m, sm) = route_of(&b, "fd00:9::/64");
    assert_eq!((m, sm), (196, 196), "smoothed over a link of two Hellos");
    // Sixteen Hellos of 4 s later the link is no longer young.
    b.advance(64_000);
    b.recv(&pkt(&[update("fd00:9::/64", 2, 900)]));
    b.advance(40_000);
    b.recv(&pkt(&[update("fd00:9::/64", 2, 100)]));
    let (m, sm) = route_of(&b, "fd00:9::/64");
    assert_eq!(m, 196);
    assert!(sm > 900, "a fall over an old link is smoothed: metric {m}, smoothed {sm}");
}

/// Over a wireless link the announced metric is held at the smoothed one
/// (a dip of a noisy estimate announced would tighten feasibility distances
/// downstream); over a wired link, whose cost is no estimate, an improved
/// route is announced with its true metric.
#[test]
fn an_improvement_is_announced_as_is_over_wired_and_held_over_wireless() {
    for (link, held) in [(LinkType::Wired, false), (LinkType::Wireless, true)] {
        let mut b = Bed::with_link(link);
        with_second_interface(&mut b);
        let p: Prefix = "fd00:9::/64".parse().unwrap();
        // Past the young-link time, the route refreshed; the smoothed
        // metric settles.
        for _ in 0..10 {
            b.recv(&pkt(&[update("fd00:9::/64", 1, 900)]));
            b.advance(10_000);
        }
        b.recv(&pkt(&[update("fd00:9::/64", 1, 100)]));
        let (m, sm) = route_of(&b, "fd00:9::/64");
        assert!(sm > m + 400, "{link:?}: metric {m}, smoothed {sm}");
        b.out.clear();
        // The periodic update (16 s) at the latest.
        b.advance(17_000);
        let sent: Vec<u16> = b.updates_for(p).iter().map(|(_, u)| u.metric.0).collect();
        let first = *sent.first().unwrap_or_else(|| panic!("{link:?}: nothing announced"));
        if held {
            assert!(first > m, "{link:?}: announced {first}, metric {m}: not held");
        } else {
            assert_eq!(first, m, "{link:?}: announced {first}, metric {m}");
        }
    }
}
