//! Byte vectors built by hand from the RFC 8966 §4 / RFC 9229 layouts,
//! checked both ways (decode → messages, messages → the same bytes), and
//! decode-only vectors for what our encoder never emits and for errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::babel::types::{Centisecs, Metric, Prefix, RouterId, SeqNo};

const R: [u8; 8] = [0x02, 0, 0, 0, 0, 0, 0, 0x01];
const RID: RouterId = RouterId(R);

fn pkt(body: &[u8]) -> Vec<u8> {
    let mut v = vec![42, 2];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn enc(msgs: &[Message]) -> Vec<u8> {
    let mut b = PacketBuilder::new(1500);
    for m in msgs {
        assert!(b.push(m), "push {m:?}");
    }
    b.take()
}

fn dec_ok(bytes: &[u8]) -> Vec<Message> {
    let d = decode(bytes).expect("header");
    assert!(d.errors.is_empty(), "errors: {:?}", d.errors);
    assert!(d.trailer.is_empty());
    d.messages
}

/// Both ways: `body` decodes to `msgs` with no error, and `msgs` encode to
/// exactly `body`.
fn both_ways(body: &[u8], msgs: &[Message]) {
    let bytes = pkt(body);
    assert_eq!(dec_ok(&bytes), msgs, "decode");
    assert_eq!(enc(msgs), bytes, "encode");
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn upd(prefix: &str, nh: Option<&str>, seqno: u16, metric: u16) -> Update {
    Update {
        prefix: p(prefix),
        router_id: RID,
        next_hop: nh.map(ip),
        v4_via_v6: false,
        seqno: SeqNo(seqno),
        metric: Metric(metric),
        interval: Centisecs(400),
    }
}

fn errors(bytes: &[u8]) -> Vec<TlvErrorKind> {
    decode(bytes).unwrap().errors.iter().map(|e| e.kind).collect()
}

#[test]
fn hello_and_ihu_link_local() {
    both_ways(
        &[
            4, 6, 0x00, 0x00, 0x12, 0x34, 0x01, 0x90, // Hello
            5, 14, 3, 0, 0x01, 0x00, 0x04, 0xb0, // IHU AE 3
            0, 1, 0, 2, 0, 3, 0, 4,
        ],
        &[
            Message::Hello { unicast: false, seqno: SeqNo(0x1234), interval: Centisecs(400) },
            Message::Ihu {
                rxcost: Metric(256),
                interval: Centisecs(1200),
                address: Some(ip("fe80::1:2:3:4")),
            },
        ],
    );
}

#[test]
fn unicast_hello_and_ihu_ae_0_1_2() {
    let mut body = vec![4, 6, 0x80, 0x00, 0, 9, 0, 0];
    body.extend_from_slice(&[5, 6, 0, 0, 0x01, 0x00, 0x04, 0xb0]);
    body.extend_from_slice(&[5, 10, 1, 0, 0x00, 0x60, 0x01, 0x90, 192, 0, 2, 7]);
    body.extend_from_slice(&[5, 22, 2, 0, 0xff, 0xff, 0x01, 0x90]);
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    both_ways(
        &body,
        &[
            Message::Hello { unicast: true, seqno: SeqNo(9), interval: Centisecs(0) },
            Message::Ihu { rxcost: Metric(256), interval: Centisecs(1200), address: None },
            Message::Ihu { rxcost: Metric(96), interval: Centisecs(400), address: Some(ip("192.0.2.7")) },
            Message::Ihu {
                rxcost: Metric::INFINITY,
                interval: Centisecs(400),
                address: Some(ip("2001:db8::1")),
            },
        ],
    );
}

#[test]
fn ack_req_ack_unknown() {
    both_ways(
        &[
            2, 6, 0, 0, 0xbe, 0xef, 0x00, 0x32, // AckReq
            3, 2, 0xbe, 0xef, // Ack
            224, 3, 1, 2, 3, // weft's TLV
        ],
        &[
            Message::AckReq { opaque: 0xbeef, interval: Centisecs(50) },
            Message::Ack { opaque: 0xbeef },
            Message::Unknown { tlv_type: 224, body: vec![1, 2, 3] },
        ],
    );
}

#[test]
fn ipv6_updates_with_compression() {
    let body = cat(&[
        &[6, 10, 0, 0],
        &R,
        // 2001:db8:1::/48, sets the AE 2 default prefix.
        &[8, 16, 2, 0x80, 48, 0, 0x01, 0x90, 0, 7, 0, 96],
        &[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01],
        // 2001:db8:2::/48: 5 bytes omitted.
        &[8, 11, 2, 0x80, 48, 5, 0x01, 0x90, 0, 7, 0, 128, 0x02],
        // 2001:db8:1:2::/64 against 2001:db8:2::: 5 bytes omitted.
        &[8, 13, 2, 0x80, 64, 5, 0x01, 0x90, 0, 7, 0, 128, 0x01, 0x00, 0x02],
    ]);
    both_ways(
        &body,
        &[
            Message::Update(upd("2001:db8:1::/48", None, 7, 96)),
            Message::Update(upd("2001:db8:2::/48", None, 7, 128)),
            Message::Update(upd("2001:db8:1:2::/64", None, 7, 128)),
        ],
    );
}

#[test]
fn ipv4_updates_with_next_hop_ae1_and_compression() {
    let body = cat(&[
        &[7, 6, 1, 0, 192, 0, 2, 1],
        &[6, 10, 0, 0],
        &R,
        &[8, 12, 1, 0x80, 16, 0, 0x01, 0x90, 0, 1, 1, 0, 10, 1],
        &[8, 11, 1, 0x80, 16, 1, 0x01, 0x90, 0, 1, 1, 0, 2],
    ]);
    both_ways(
        &body,
        &[
            Message::Update(upd("10.1.0.0/16", Some("192.0.2.1"), 1, 256)),
            Message::Update(upd("10.2.0.0/16", Some("192.0.2.1"), 1, 256)),
        ],
    );
}

#[test]
fn v4_via_v6_with_link_local_next_hop() {
    let body = cat(&[
        &[7, 10, 3, 0, 0xc0, 0xef, 0x4b, 0xff, 0xfe, 0xb4, 0xf1, 0x1c],
        &[6, 10, 0, 0],
        &R,
        &[8, 13, 4, 0x80, 24, 0, 0x01, 0x90, 0, 3, 0, 0, 192, 0, 2],
    ]);
    let mut u = upd("192.0.2.0/24", Some("fe80::c0ef:4bff:feb4:f11c"), 3, 0);
    u.v4_via_v6 = true;
    both_ways(&body, &[Message::Update(u)]);
}

#[test]
fn ipv6_next_hop_ae2_and_router_id_flag() {
    let body = cat(&[
        &[7, 18, 2, 0],
        &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09],
        // Flags 0x80|0x40: no Router-Id TLV, the router-id is the prefix's
        // last 8 bytes.
        &[8, 26, 2, 0xc0, 128, 0, 0x01, 0x90, 0, 5, 0, 0],
        &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0],
        &[0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55],
    ]);
    let mut u = upd("2001:db8::211:22ff:fe33:4455/128", Some("2001:db8::9"), 5, 0);
    u.router_id = "02:11:22:ff:fe:33:44:55".parse().unwrap();
    both_ways(&body, &[Message::Update(u)]);
}

#[test]
fn requests_and_wildcard_retraction() {
    let body = cat(&[
        &[9, 2, 0, 0],
        &[9, 3, 1, 8, 10],
        &[9, 6, 2, 32, 0x20, 0x01, 0x0d, 0xb8],
        &[10, 20, 2, 48, 0, 9, 64, 0],
        &R,
        &[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01],
        &[10, 17, 1, 24, 0xff, 0xff, 1, 0],
        &R,
        &[192, 0, 2],
        &[8, 10, 0, 0, 0, 0, 0x01, 0x90, 0, 0, 0xff, 0xff],
    ]);
    both_ways(
        &body,
        &[
            Message::RouteRequest { prefix: None },
            Message::RouteRequest { prefix: Some(p("10.0.0.0/8")) },
            Message::RouteRequest { prefix: Some(p("2001:db8::/32")) },
            Message::SeqnoRequest {
                seqno: SeqNo(9),
                hop_count: 64,
                router_id: RID,
                prefix: p("2001:db8:1::/48"),
            },
            Message::SeqnoRequest {
                seqno: SeqNo(0xffff),
                hop_count: 1,
                router_id: RID,
                prefix: p("192.0.2.0/24"),
            },
            Message::WildcardRetraction { interval: Centisecs(400) },
        ],
    );
}

#[test]
fn retraction_needs_no_router_id_or_next_hop() {
    let body = [8, 12, 1, 0, 16, 0, 0x01, 0x90, 0, 1, 0xff, 0xff, 10, 1];
    let msgs = dec_ok(&pkt(&body));
    let mut want = upd("10.1.0.0/16", None, 1, 0xffff);
    want.router_id = RouterId::default();
    assert_eq!(msgs, vec![Message::Update(want)]);
}

#[test]
fn padding_everywhere_is_skipped() {
    let body = cat(&[
        &[0, 0],                      // two Pad1
        &[1, 3, 0, 0, 0],             // PadN
        &[4, 11, 0, 0, 0, 1, 0, 100], // Hello with sub-TLVs:
        &[0],                         //   Pad1 sub-TLV
        &[1, 2, 0, 0],                //   PadN sub-TLV
        &[0],                         // Pad1
    ]);
    let d = decode(&pkt(&body)).unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.sub_tlvs.is_empty());
    assert_eq!(
        d.messages,
        vec![Message::Hello { unicast: false, seqno: SeqNo(1), interval: Centisecs(100) }]
    );
}

#[test]
fn timestamp_sub_tlvs_are_surfaced_and_encodable() {
    let body = cat(&[
        &[4, 12, 0, 0, 0, 1, 0, 100, 3, 4, 0xde, 0xad, 0xbe, 0xef],
        &[5, 16, 0, 0, 0, 96, 0, 100, 3, 8, 0, 0, 0, 1, 0, 0, 0, 2],
    ]);
    let bytes = pkt(&body);
    let d = decode(&bytes).unwrap();
    assert!(d.errors.is_empty());
    let ts = |body: &[u8]| SubTlv { sub_type: sub_tlv_type::TIMESTAMP, body: body.to_vec() };
    assert_eq!(d.sub_tlvs, vec![(0, ts(&[0xde, 0xad, 0xbe, 0xef])), (1, ts(&[0, 0, 0, 1, 0, 0, 0, 2]))]);
    let mut b = PacketBuilder::new(1500);
    for (i, m) in d.messages.iter().enumerate() {
        let subs: Vec<SubTlv> = d.sub_tlvs.iter().filter(|(j, _)| *j == i).map(|(_, s)| s.clone()).collect();
        assert!(b.push_with_sub_tlvs(m, &subs));
    }
    assert_eq!(b.take(), bytes);
}

#[test]
fn mandatory_sub_tlv_voids_the_tlv_but_keeps_its_parser_state() {
    let body = cat(&[
        // Update 2001:db8:1::211:22ff:fe33:4455/128, flags P|R, with an
        // unknown mandatory sub-TLV (source prefix, 128).
        &[8, 30, 2, 0xc0, 128, 0, 0x01, 0x90, 0, 5, 0, 0],
        &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0],
        &[0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55],
        &[128, 2, 8, 0x10],
        // Compressed against it (14 bytes omitted), router-id from it.
        &[8, 12, 2, 0, 128, 14, 0x01, 0x90, 0, 5, 0, 7, 0x00, 0x01],
        // Hello with a mandatory sub-TLV after a Pad1: ignored too.
        &[4, 9, 0, 0, 0, 1, 0, 100, 0, 0x85, 0],
    ]);
    let d = decode(&pkt(&body)).unwrap();
    assert_eq!(
        d.errors,
        vec![
            TlvError { offset: 4, tlv_type: 8, kind: TlvErrorKind::UnknownMandatorySubTlv { sub_type: 128 } },
            TlvError {
                offset: 4 + 32 + 14,
                tlv_type: 4,
                kind: TlvErrorKind::UnknownMandatorySubTlv { sub_type: 0x85 }
            }
        ]
    );
    assert!(d.errors.iter().all(|e| !e.is_malformed()));
    let mut u = upd("2001:db8:1:0:211:22ff:fe33:1/128", None, 5, 7);
    u.router_id = "02:11:22:ff:fe:33:44:55".parse().unwrap();
    assert_eq!(d.messages, vec![Message::Update(u)]);
}

#[test]
fn ae4_and_ae1_keep_separate_default_prefixes() {
    let body = cat(&[
        &[6, 10, 0, 0],
        &R,
        &[7, 6, 1, 0, 192, 0, 2, 1],
        // AE 1 10.1.0.0/16 sets the AE 1 default.
        &[8, 12, 1, 0x80, 16, 0, 0x01, 0x90, 0, 1, 0, 1, 10, 1],
        // AE 4 with 1 byte omitted: no AE 4 default yet.
        &[8, 11, 4, 0, 16, 1, 0x01, 0x90, 0, 1, 0, 1, 2],
        // AE 4 172.16.0.0/12 sets the AE 4 default ...
        &[8, 12, 4, 0x80, 12, 0, 0x01, 0x90, 0, 1, 0, 1, 172, 16],
        // ... which AE 1 does not see: 10.3.0.0/16 against 10.1.0.0.
        &[8, 11, 1, 0, 16, 1, 0x01, 0x90, 0, 1, 0, 1, 3],
        // ... and AE 4 does: 172.20.0.0/16 against 172.16.0.0.
        &[8, 11, 4, 0, 16, 1, 0x01, 0x90, 0, 1, 0, 1, 20],
    ]);
    let d = decode(&pkt(&body)).unwrap();
    assert_eq!(
        d.errors.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![TlvErrorKind::NoDefaultPrefix { ae: 4 }]
    );
    let v4v6 = |s: &str| {
        let mut u = upd(s, None, 1, 1);
        u.v4_via_v6 = true;
        Message::Update(u)
    };
    assert_eq!(
        d.messages,
        vec![
            Message::Update(upd("10.1.0.0/16", Some("192.0.2.1"), 1, 1)),
            v4v6("172.16.0.0/12"),
            Message::Update(upd("10.3.0.0/16", Some("192.0.2.1"), 1, 1)),
            v4v6("172.20.0.0/16"),
        ]
    );
}

#[test]
fn ae3_prefix_in_update_and_requests() {
    let body = cat(&[
        &[6, 10, 0, 0],
        &R,
        // AE 3, Plen 128: 8 bytes on the wire after the implied fe80::/64.
        // Flag 0x80 sets nothing for AE 3.
        &[8, 18, 3, 0x80, 128, 0, 0x01, 0x90, 0, 1, 0, 1],
        &[0, 0, 0, 0, 0, 0, 0, 0x42],
        &[9, 10, 3, 128, 0, 0, 0, 0, 0, 0, 0, 0x42],
        // AE 3 with Omitted: not allowed.
        &[8, 11, 3, 0, 128, 1, 0x01, 0x90, 0, 1, 0, 1, 0],
    ]);
    let d = decode(&pkt(&body)).unwrap();
    assert_eq!(
        d.errors.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![TlvErrorKind::OmittedNotAllowed { ae: 3 }]
    );
    assert_eq!(
        d.messages,
        vec![
            Message::Update(upd("fe80::42/128", None, 1, 1)),
            Message::RouteRequest { prefix: Some(p("fe80::42/128")) }
        ]
    );
}

#[test]
fn update_state_errors() {
    // No router-id before a finite update; a retraction is fine.
    let body = cat(&[
        &[8, 12, 1, 0, 16, 0, 0x01, 0x90, 0, 1, 0, 1, 10, 1],
        &[8, 12, 1, 0, 16, 0, 0x01, 0x90, 0, 1, 0xff, 0xff, 10, 1],
        // Omitted without a default prefix.
        &[8, 12, 2, 0, 48, 4, 0x01, 0x90, 0, 1, 0xff, 0xff, 0, 1],
        // Unknown AE: silently ignored (counted).
        &[8, 10, 9, 0, 0, 0, 0x01, 0x90, 0, 1, 0, 1],
        // Wildcard with a finite metric, and with a Plen.
        &[8, 10, 0, 0, 0, 0, 0x01, 0x90, 0, 1, 0, 1],
        &[8, 10, 0, 0, 8, 0, 0x01, 0x90, 0, 1, 0xff, 0xff],
        // Plen too long, Omitted too long, prefix bytes missing.
        &[8, 10, 1, 0, 33, 0, 0x01, 0x90, 0, 1, 0xff, 0xff],
        &[8, 10, 2, 0, 128, 17, 0x01, 0x90, 0, 1, 0xff, 0xff],
        &[8, 11, 2, 0, 64, 0, 0x01, 0x90, 0, 1, 0xff, 0xff, 0x20],
        // Too short for the fixed part.
        &[8, 4, 2, 0, 64, 0],
    ]);
    use TlvErrorKind::*;
    assert_eq!(
        errors(&pkt(&body)),
        vec![
            NoRouterId,
            NoDefaultPrefix { ae: 2 },
            UnknownAe(9),
            WildcardWithFiniteMetric,
            WildcardWithPrefix,
            PlenTooLong { ae: 1, plen: 33 },
            OmittedTooLong { ae: 2, omitted: 17 },
            AddressTruncated { needed: 8, available: 1 },
            TooShort { len: 4, min: 10 },
        ]
    );
    let d = decode(&pkt(&body)).unwrap();
    assert_eq!(d.messages.len(), 1, "only the retraction: {:?}", d.messages);
}

#[test]
fn malformed_state_tlvs_poison_what_they_set() {
    let body = cat(&[
        &[6, 10, 0, 0],
        &R,
        // Next Hop AE 2 with 4 of 16 address bytes.
        &[7, 6, 2, 0, 0x20, 0x01, 0x0d, 0xb8],
        &[8, 12, 2, 0, 16, 0, 0x01, 0x90, 0, 1, 0, 1, 0x20, 0x01],
        // Router-Id TLV cut short.
        &[6, 4, 0, 0, 1, 2],
        &[8, 12, 1, 0, 16, 0, 0x01, 0x90, 0, 1, 0, 1, 10, 1],
        // All-zero router-id.
        &[6, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // A retraction sets the AE 2 default to 2001:db8:1::/48 ...
        &[8, 16, 2, 0x80, 48, 0, 0x01, 0x90, 0, 1, 0xff, 0xff],
        &[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01],
        // ... a malformed Update with P set clears it ...
        &[8, 12, 2, 0x80, 48, 0, 0x01, 0x90, 0, 1, 0xff, 0xff, 0x20, 0x01],
        // ... so this compressed retraction has none.
        &[8, 11, 2, 0, 48, 5, 0x01, 0x90, 0, 1, 0xff, 0xff, 0x02],
        // Next Hop with AE 0 and AE 4: not allowed.
        &[7, 2, 0, 0],
        &[7, 6, 4, 0, 1, 2, 3, 4],
    ]);
    use TlvErrorKind::*;
    assert_eq!(
        errors(&pkt(&body)),
        vec![
            AddressTruncated { needed: 16, available: 4 },
            NextHopUnusable,
            TooShort { len: 4, min: 10 },
            RouterIdUnusable,
            InvalidRouterId,
            AddressTruncated { needed: 6, available: 2 },
            NoDefaultPrefix { ae: 2 },
            AeNotAllowed(0),
            AeNotAllowed(4),
        ]
    );
}

#[test]
fn other_tlv_errors() {
    let body = cat(&[
        &[4, 4, 0, 0, 0, 1],             // Hello too short
        &[5, 6, 4, 0, 0, 1, 0, 1],       // IHU AE 4
        &[5, 8, 2, 0, 0, 1, 0, 1, 0, 0], // IHU address cut
        &[5, 6, 7, 0, 0, 1, 0, 1],       // IHU unknown AE
        &[10, 14, 0, 0, 0, 1, 5, 0],     // Seqno request AE 0
        &R,
        &[10, 14, 1, 0, 0, 1, 0, 0], // hop count 0
        &R,
        &[9, 3, 0, 8, 0],            // wildcard request with Plen
        &[3, 5, 0, 1, 3, 4, 0],      // Ack with a cut sub-TLV
        &[4, 6, 0, 0, 0, 2, 0, 100], // a good Hello still read
        &[7],                        // framing lost
    ]);
    use TlvErrorKind::*;
    let bytes = pkt(&body);
    assert_eq!(
        errors(&bytes),
        vec![
            TooShort { len: 4, min: 6 },
            AeNotAllowed(4),
            AddressTruncated { needed: 16, available: 2 },
            UnknownAe(7),
            AeNotAllowed(0),
            ZeroHopCount,
            WildcardWithPrefix,
            SubTlvTruncated,
            HeaderTruncated,
        ]
    );
    let d = decode(&bytes).unwrap();
    assert_eq!(d.messages.len(), 1);
    assert_eq!(d.errors.last().unwrap().offset, bytes.len() - 1);
}

#[test]
fn length_overrun_keeps_what_came_before() {
    let bytes = pkt(&[4, 6, 0, 0, 0, 2, 0, 100, 8, 200, 0, 0]);
    let d = decode(&bytes).unwrap();
    assert_eq!(d.messages.len(), 1);
    assert_eq!(
        d.errors,
        vec![TlvError {
            offset: 12,
            tlv_type: 8,
            kind: TlvErrorKind::LengthOverrun { len: 200, available: 2 }
        }]
    );
    assert!(d.errors[0].kind.loses_framing());
}

#[test]
fn header_errors_and_trailer() {
    assert_eq!(decode(&[42, 2, 0]), Err(HeaderError::TooShort { len: 3 }));
    assert_eq!(decode(&[43, 2, 0, 0]), Err(HeaderError::BadMagic(43)));
    assert_eq!(decode(&[42, 1, 0, 0]), Err(HeaderError::BadVersion(1)));
    assert_eq!(decode(&[42, 2, 0, 5, 0, 0]), Err(HeaderError::BodyOverrun { body_len: 5, available: 2 }));
    // Body length 8, then 3 trailer bytes: a TLV-looking trailer is not
    // parsed as TLVs.
    let mut bytes = pkt(&[4, 6, 0, 0, 0, 2, 0, 100]);
    bytes.extend_from_slice(&[16, 1, 0xaa]);
    let d = decode(&bytes).unwrap();
    assert_eq!(d.messages.len(), 1);
    assert!(d.errors.is_empty());
    assert_eq!(d.trailer, vec![16, 1, 0xaa]);
    let empty = decode(&[42, 2, 0, 0]).unwrap();
    assert_eq!(empty, Decoded::default());
}

#[test]
fn builder_refuses_what_does_not_fit_and_resets_on_take() {
    let u = Message::Update(upd("2001:db8:1::/48", None, 1, 1));
    // Header 4 + Router-Id 12 + Update 18 = 34.
    let mut b = PacketBuilder::new(33);
    assert!(b.is_empty());
    assert!(!b.push(&u));
    assert!(b.is_empty());
    assert_eq!(b.len(), 4);
    let mut b = PacketBuilder::new(34 + 13);
    assert!(b.push(&u));
    assert_eq!(b.len(), 34);
    // The second fits only because Router-Id and 5 prefix bytes are left out.
    let u2 = Message::Update(upd("2001:db8:2::/48", None, 1, 1));
    assert!(b.push(&u2));
    assert_eq!(b.remaining(), 0);
    assert!(!b.push(&u2));
    let first = b.take();
    assert_eq!(first.len(), 47);
    assert_eq!(dec_ok(&first), vec![u.clone(), u2.clone()]);
    // After take, nothing is assumed: the router-id is sent again.
    assert!(b.is_empty());
    assert!(b.push(&u2));
    let second = b.take();
    assert_eq!(second.len(), 34);
    assert_eq!(dec_ok(&second), vec![u2]);
    assert_eq!(PacketBuilder::new(1500).take(), vec![42, 2, 0, 0]);
}

#[test]
fn source_address_next_hop_after_a_next_hop_needs_a_fresh_packet() {
    let with_nh = Message::Update(upd("2001:db8:1::/48", Some("fe80::1"), 1, 1));
    let without = Message::Update(upd("2001:db8:2::/48", None, 1, 1));
    let mut b = PacketBuilder::new(1500);
    assert!(b.push(&with_nh));
    assert_eq!(b.try_push(&without), Err(EncodeError::DoesNotFit));
    let _ = b.take();
    assert!(b.push(&without));
    assert!(b.push(&with_nh));
    assert_eq!(dec_ok(&b.take()), vec![without, with_nh]);
}

#[test]
fn unencodable_messages_are_refused() {
    let mut b = PacketBuilder::new(1500);
    let mut u = upd("10.0.0.0/8", Some("fe80::1"), 1, 1);
    assert_eq!(b.try_push(&Message::Update(u.clone())), Err(EncodeError::NextHopFamily));
    u.v4_via_v6 = true;
    assert!(b.push(&Message::Update(u.clone())));
    u.next_hop = Some(ip("192.0.2.1"));
    assert_eq!(b.try_push(&Message::Update(u.clone())), Err(EncodeError::NextHopFamily));
    let mut v6 = upd("2001:db8::/32", None, 1, 1);
    v6.v4_via_v6 = true;
    assert_eq!(b.try_push(&Message::Update(v6.clone())), Err(EncodeError::NextHopFamily));
    v6.v4_via_v6 = false;
    v6.router_id = RouterId([0xff; 8]);
    assert_eq!(b.try_push(&Message::Update(v6.clone())), Err(EncodeError::InvalidRouterId));
    v6.prefix = Prefix::V6(Ipv6Addr::UNSPECIFIED, 129);
    v6.router_id = RID;
    assert_eq!(b.try_push(&Message::Update(v6)), Err(EncodeError::PrefixTooLong));
    assert_eq!(
        b.try_push(&Message::SeqnoRequest {
            seqno: SeqNo(1),
            hop_count: 0,
            router_id: RID,
            prefix: p("10.0.0.0/8")
        }),
        Err(EncodeError::ZeroHopCount)
    );
    assert_eq!(
        b.try_push(&Message::Unknown { tlv_type: 8, body: vec![] }),
        Err(EncodeError::KnownTlvType(8))
    );
    assert_eq!(
        b.try_push(&Message::Unknown { tlv_type: 224, body: vec![0; 256] }),
        Err(EncodeError::TooLong)
    );
    let hello = Message::Hello { unicast: false, seqno: SeqNo(1), interval: Centisecs(1) };
    let pad = SubTlv { sub_type: 1, body: vec![] };
    assert_eq!(b.try_push_with_sub_tlvs(&hello, &[pad]), Err(EncodeError::BadSubTlv));
    // Only the one good update went in.
    assert_eq!(dec_ok(&b.take()).len(), 1);
    // Host bits are cleared on the way out.
    let sloppy = Update {
        prefix: Prefix::V4(Ipv4Addr::new(10, 1, 2, 3), 8),
        ..upd("10.0.0.0/8", Some("192.0.2.1"), 1, 1)
    };
    assert_eq!(
        dec_ok(&enc(&[Message::Update(sloppy)])),
        vec![Message::Update(upd("10.0.0.0/8", Some("192.0.2.1"), 1, 1))]
    );
}

#[test]
fn ipv4_mapped_ipv6_prefix_never_becomes_the_default() {
    // babeld will not decompress against a ::ffff:0:0/96-looking default.
    let a = Message::Update(upd("::ffff:10.0.0.0/104", None, 1, 1));
    let b = Message::Update(upd("::ffff:10.1.0.0/112", None, 1, 1));
    let bytes = enc(&[a.clone(), b.clone()]);
    // Router-Id, then two uncompressed Updates without flag 0x80.
    assert_eq!(bytes[4 + 12 + 3], 0, "flags of the first Update");
    assert_eq!(bytes[4 + 12 + 5], 0, "omitted of the first Update");
    assert_eq!(dec_ok(&bytes), vec![a, b]);
}
