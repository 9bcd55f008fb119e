//! Property tests of the Babel codec: generated messages survive
//! PacketBuilder → decode unchanged, and no input makes the decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use weft::babel::packet::{decode, encode_messages, Message, SubTlv, Update};
use weft::babel::{Centisecs, Metric, Prefix, RouterId, SeqNo};

type Item = (Message, Vec<SubTlv>);

fn router_id() -> impl Strategy<Value = RouterId> {
    prop_oneof![
        Just(RouterId([2, 0, 0, 0, 0, 0, 0, 1])),
        Just(RouterId([2, 0, 0, 0, 0, 0, 0, 2])),
        any::<[u8; 8]>().prop_map(RouterId).prop_filter("valid router-id", |r| r.is_valid()),
    ]
}

/// Prefixes that share leading bytes with one another to varying extents,
/// so that compression has something to find (and sometimes nothing).
fn v4_prefix() -> impl Strategy<Value = Prefix> {
    let base = prop::sample::select(vec![[10u8, 1, 0, 0], [10, 1, 2, 0], [192, 0, 2, 0]]);
    (base, any::<[u8; 4]>(), 0usize..=4, 0u8..=32).prop_map(|(base, rnd, keep, len)| {
        let mut a = rnd;
        a[..keep].copy_from_slice(&base[..keep]);
        Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap()
    })
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    let base = prop::sample::select(vec![
        "2001:db8:1::".parse::<Ipv6Addr>().unwrap(),
        "2001:db8:1:2::".parse().unwrap(),
        "fd00:aaaa::".parse().unwrap(),
        "fe80::".parse().unwrap(),
    ]);
    let len = prop_oneof![Just(128u8), Just(64), Just(48), 0u8..=128];
    (base, any::<[u8; 16]>(), 0usize..=16, len).prop_map(|(base, rnd, keep, len)| {
        let mut a = rnd;
        a[..keep].copy_from_slice(&base.octets()[..keep]);
        Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).unwrap()
    })
}

fn v4_next_hop() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        Just(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(a.into())),
    ]
}

/// Link-local in fe80::/64 (sent as AE 3), in fe80::/10 but not /64 and
/// global (both AE 2).
fn v6_next_hop() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just("fe80::1".parse().unwrap()),
        Just("fe80::c0ef:4bff:feb4:f11c".parse().unwrap()),
        Just("fe80:1::1".parse().unwrap()),
        Just("2001:db8::9".parse().unwrap()),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(a.into())),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![4 => (0u16..0xFFFF).prop_map(Metric), 1 => Just(Metric::INFINITY)]
}

/// An Update as the decoder reports it: a retraction has no next hop.
fn update() -> impl Strategy<Value = Update> {
    let family = 0u8..3; // IPv4 (AE 1), IPv4 via IPv6 (AE 4), IPv6
    (
        family,
        v4_prefix(),
        v6_prefix(),
        router_id(),
        prop::option::of(v4_next_hop()),
        prop::option::of(v6_next_hop()),
        any::<u16>(),
        metric(),
        any::<u16>(),
    )
        .prop_map(|(fam, p4, p6, rid, nh4, nh6, seqno, metric, interval)| {
            let (prefix, nh) = match fam {
                0 => (p4, nh4),
                1 => (p4, nh6),
                _ => (p6, nh6),
            };
            Update {
                prefix,
                router_id: rid,
                next_hop: if metric.is_infinite() { None } else { nh },
                v4_via_v6: fam == 1,
                seqno: SeqNo(seqno),
                metric,
                interval: Centisecs(interval),
            }
        })
}

/// An Update for a router's own /128 whose interface id is its router-id:
/// the encoder sends these with flag 0x40 instead of a Router-Id TLV.
fn own_address_update() -> impl Strategy<Value = Update> {
    (update(), any::<[u8; 8]>(), router_id()).prop_map(|(mut u, net, rid)| {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&net);
        a[8..].copy_from_slice(&rid.0);
        u.prefix = Prefix::new(IpAddr::V6(a.into()), 128).unwrap();
        u.router_id = rid;
        u.v4_via_v6 = false;
        if matches!(u.next_hop, Some(IpAddr::V4(_))) {
            u.next_hop = None;
        }
        u
    })
}

fn message() -> impl Strategy<Value = Message> {
    let addr = prop_oneof![Just(None), v4_next_hop().prop_map(Some), v6_next_hop().prop_map(Some)];
    let prefix = prop_oneof![v4_prefix(), v6_prefix()];
    prop_oneof![
        8 => update().prop_map(Message::Update),
        2 => own_address_update().prop_map(Message::Update),
        1 => (any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(u, s, i)| Message::Hello {
            unicast: u,
            seqno: SeqNo(s),
            interval: Centisecs(i)
        }),
        1 => (any::<u16>(), any::<u16>(), addr).prop_map(|(r, i, a)| Message::Ihu {
            rxcost: Metric(r),
            interval: Centisecs(i),
            address: a
        }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(o, i)| Message::AckReq {
            opaque: o,
            interval: Centisecs(i)
        }),
        1 => any::<u16>().prop_map(|o| Message::Ack { opaque: o }),
        1 => any::<u16>().prop_map(|i| Message::WildcardRetraction { interval: Centisecs(i) }),
        1 => prop::option::of(prefix.clone()).prop_map(|p| Message::RouteRequest { prefix: p }),
        1 => (any::<u16>(), 1u8..=255, router_id(), prefix).prop_map(|(s, h, r, p)| {
            Message::SeqnoRequest {
                seqno: SeqNo(s),
                hop_count: h,
                router_id: r,
                prefix: p,
            }
        }),
        1 => (11u8..=255, prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(t, b)| Message::Unknown { tlv_type: t, body: b }),
    ]
}

fn sub_tlvs() -> impl Strategy<Value = Vec<SubTlv>> {
    prop::collection::vec(
        (2u8..=127, prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(t, b)| SubTlv { sub_type: t, body: b }),
        0..=2,
    )
}

fn item() -> impl Strategy<Value = Item> {
    (message(), prop::bool::weighted(0.2), sub_tlvs()).prop_map(|(m, with, subs)| {
        let subs = if with && !matches!(m, Message::Unknown { .. }) { subs } else { Vec::new() };
        (m, subs)
    })
}

/// Decodes every packet, checking each is clean; messages and sub-TLVs are
/// numbered across packets.
fn decode_all(packets: &[Vec<u8>]) -> (Vec<Message>, Vec<(usize, SubTlv)>) {
    let mut msgs = Vec::new();
    let mut subs = Vec::new();
    for p in packets {
        let d = decode(p).expect("our own packet has a good header");
        assert!(d.errors.is_empty(), "errors {:?} in {p:02x?}", d.errors);
        assert!(d.trailer.is_empty());
        let base = msgs.len();
        subs.extend(d.sub_tlvs.into_iter().map(|(i, s)| (base + i, s)));
        msgs.extend(d.messages);
    }
    (msgs, subs)
}

fn expected_subs(items: &[Item]) -> Vec<(usize, SubTlv)> {
    items.iter().enumerate().flat_map(|(i, (_, subs))| subs.iter().map(move |s| (i, s.clone()))).collect()
}

/// A retraction's router-id is informational: when it cannot be expressed
/// (the decoder saw none, or a malformed one), it decodes as the one in
/// effect or as zeros. Compare retractions without it.
fn canonical(mut msgs: Vec<Message>) -> Vec<Message> {
    for m in &mut msgs {
        if let Message::Update(u) = m {
            if u.is_retraction() {
                u.router_id = RouterId::default();
            }
        }
    }
    msgs
}

/// Decodes `bytes`; if it has a good header, re-encodes what was read and
/// checks that decoding that gives the same messages and sub-TLVs.
fn decode_reencode(bytes: &[u8]) {
    let Ok(d) = decode(bytes) else { return };
    for e in &d.errors {
        assert!(e.offset >= 4 && e.offset < bytes.len(), "{e:?}");
    }
    let mut items: Vec<Item> = d.messages.iter().map(|m| (m.clone(), Vec::new())).collect();
    for (i, s) in &d.sub_tlvs {
        items[*i].1.push(s.clone());
    }
    // A TLV may grow on re-encoding (less compression, AE 3 prefixes sent
    // as AE 2) past 255 bytes with its sub-TLVs: leave such ones out.
    items.retain(|it| encode_messages(std::slice::from_ref(it), 1500).is_ok());
    let packets = encode_messages(&items, 1500).expect("each fits alone");
    let (msgs, subs) = decode_all(&packets);
    let want: Vec<Message> = items.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(canonical(msgs), canonical(want));
    assert_eq!(subs, expected_subs(&items));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip_through_packets(
        items in prop::collection::vec(item(), 0..80),
        max_len in 96usize..1500,
    ) {
        let packets = encode_messages(&items, max_len).expect("every message fits an empty packet");
        for p in &packets {
            prop_assert!(p.len() <= max_len);
        }
        let (msgs, subs) = decode_all(&packets);
        let want: Vec<Message> = items.iter().map(|(m, _)| m.clone()).collect();
        prop_assert_eq!(msgs, want);
        prop_assert_eq!(subs, expected_subs(&items));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        decode_reencode(&bytes);
    }

    /// Random bodies behind a valid header, so that TLV parsing is reached.
    #[test]
    fn arbitrary_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..600),
        trailer in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = vec![42, 2];
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&trailer);
        decode_reencode(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        items in prop::collection::vec(item(), 1..40),
        edits in prop::collection::vec((0u8..4, any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let packets = encode_messages(&items, 1500).unwrap();
        let mut bytes = packets[0].clone();
        for (op, at, v) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] ^= v | 1,
                1 => bytes.insert(i, v),
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        decode_reencode(&bytes);
    }
}

#[test]
fn full_packet_of_sorted_updates_compresses() {
    // 200 /64s under one /48 from one router: after the first, each Update
    // carries 3 of its 8 prefix bytes.
    let items: Vec<Item> = (0..200u16)
        .map(|i| {
            let mut a = "2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets();
            a[6..8].copy_from_slice(&i.to_be_bytes());
            let u = Update {
                prefix: Prefix::new(IpAddr::V6(a.into()), 64).unwrap(),
                router_id: RouterId([2, 0, 0, 0, 0, 0, 0, 1]),
                next_hop: None,
                v4_via_v6: false,
                seqno: SeqNo(1),
                metric: Metric(256),
                interval: Centisecs(400),
            };
            (Message::Update(u), Vec::new())
        })
        .collect();
    let packets = encode_messages(&items, 1400).unwrap();
    let total: usize = packets.iter().map(Vec::len).sum();
    // Uncompressed: 20 bytes per Update. Compressed: 15 (omitting 5).
    assert!(total < 200 * 16, "{} packets, {total} bytes", packets.len());
    let (msgs, _) = decode_all(&packets);
    assert_eq!(msgs.len(), 200);
}
