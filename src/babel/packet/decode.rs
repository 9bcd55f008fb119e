//! Datagram → messages (RFC 8966 §4.2–4.6, RFC 9229).
//!
//! The decoder walks the TLVs of the packet body once, carrying the parser
//! state of RFC 8966 §4.5 from TLV to TLV:
//!
//! - the current router-id, set by a Router-Id TLV or by an Update with flag
//!   0x40, needed by every finite-metric Update after it;
//! - one next hop per address family, set by Next Hop TLVs (AE 1 for IPv4,
//!   AE 2 or 3 for IPv6); an Update with no Next Hop of its family before it
//!   uses the packet's source address (reported as `next_hop: None`);
//! - one default prefix per compressible AE (1, 2 and 4, each its own),
//!   set by an Update with flag 0x80.
//!
//! Every one of these is set even when the TLV that sets it is otherwise
//! ignored because of an unknown mandatory sub-TLV. When such a TLV is
//! malformed, the state it tried to set is marked unusable instead of being
//! left at its old value, so that later Updates are not attributed to the
//! wrong router or next hop (they are reported as errors).

use std::net::IpAddr;

use super::address::{self, known_ae, RawPrefix, DEFAULT_SLOTS};
use super::error::TlvErrorKind;
use super::subtlv::{parse_sub_tlvs, SubTlv};
use super::{ae, tlv_type, Message, Update, HEADER_LEN, MAGIC, VERSION};
use crate::babel::types::{Centisecs, Metric, RouterId, SeqNo};

pub use super::error::{HeaderError, TlvError};

/// Result of decoding one datagram: every message that could be read, and a
/// typed error for every TLV that could not. A bad TLV never discards the
/// rest of the packet (unless it breaks the framing itself).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub messages: Vec<Message>,
    pub errors: Vec<TlvError>,
    /// Bytes after the body (RFC 8966 §4.2), kept for RFC 8967 MAC.
    pub trailer: Vec<u8>,
    /// Non-padding, non-mandatory sub-TLVs, each with the index in
    /// `messages` of the message whose TLV carried it (e.g. RFC 9616
    /// timestamps on Hello and IHU). Sub-TLVs of Router-Id and Next Hop
    /// TLVs, which produce no message, are checked but not kept.
    pub sub_tlvs: Vec<(usize, SubTlv)>,
}

/// One piece of parser state (RFC 8966 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot<T> {
    /// Never set in this packet.
    Unset,
    Set(T),
    /// The last TLV that tried to set it was malformed.
    Unusable,
}

struct ParserState {
    router_id: Slot<RouterId>,
    v4_next_hop: Slot<IpAddr>,
    v6_next_hop: Slot<IpAddr>,
    defaults: [Option<RawPrefix>; DEFAULT_SLOTS],
}

/// Decodes one Babel datagram (the UDP payload).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Magic = 42  |  Version = 2  |        Body length            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Body: TLVs, Body length bytes ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Trailer: whatever follows the body up to the datagram's end ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Each TLV in the body is a type byte, a length byte and that many bytes
/// of body, except Pad1 (type 0), which is the single type byte.
pub fn decode(buf: &[u8]) -> Result<Decoded, HeaderError> {
    if buf.len() < HEADER_LEN {
        return Err(HeaderError::TooShort { len: buf.len() });
    }
    if buf[0] != MAGIC {
        return Err(HeaderError::BadMagic(buf[0]));
    }
    if buf[1] != VERSION {
        return Err(HeaderError::BadVersion(buf[1]));
    }
    let body_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let available = buf.len() - HEADER_LEN;
    if body_len > available {
        return Err(HeaderError::BodyOverrun { body_len, available });
    }
    let body = &buf[HEADER_LEN..HEADER_LEN + body_len];
    let mut out = Decoded { trailer: buf[HEADER_LEN + body_len..].to_vec(), ..Decoded::default() };
    let mut st = ParserState {
        router_id: Slot::Unset,
        v4_next_hop: Slot::Unset,
        v6_next_hop: Slot::Unset,
        defaults: [None; DEFAULT_SLOTS],
    };
    let mut pos = 0;
    let mut subs = Vec::new();
    while pos < body.len() {
        let t = body[pos];
        if t == tlv_type::PAD1 {
            pos += 1;
            continue;
        }
        let offset = HEADER_LEN + pos;
        let Some(&len) = body.get(pos + 1) else {
            out.errors.push(TlvError { offset, tlv_type: t, kind: TlvErrorKind::HeaderTruncated });
            break;
        };
        let Some(tlv_body) = body.get(pos + 2..pos + 2 + len as usize) else {
            out.errors.push(TlvError {
                offset,
                tlv_type: t,
                kind: TlvErrorKind::LengthOverrun { len, available: body.len() - pos - 2 },
            });
            break;
        };
        subs.clear();
        match decode_tlv(t, tlv_body, &mut st, &mut subs) {
            Ok(Some(msg)) => {
                let idx = out.messages.len();
                out.messages.push(msg);
                out.sub_tlvs.extend(subs.drain(..).map(|s| (idx, s)));
            }
            Ok(None) => {}
            Err(kind) => out.errors.push(TlvError { offset, tlv_type: t, kind }),
        }
        pos += 2 + len as usize;
    }
    Ok(out)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn need(body: &[u8], min: usize) -> Result<(), TlvErrorKind> {
    if body.len() < min {
        Err(TlvErrorKind::TooShort { len: body.len(), min })
    } else {
        Ok(())
    }
}

/// Decodes one TLV body (after type and length). `Ok(None)` for TLVs that
/// only set parser state or pad.
///
/// Padding (§4.6.1–4.6.2): Pad1 is the lone type byte 0 (handled by the
/// caller, it has no length); PadN carries Length bytes that should be
/// zero and are ignored whatever they are:
///
/// ```text
/// +-+-+-+-+-+-+-+-+        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
/// |   Type = 0    |        |   Type = 1    |    Length     |  MBZ ...
/// +-+-+-+-+-+-+-+-+        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
/// ```
///
/// Any type not listed below (weft's 224 and RFC 8967's MAC/PC/challenge
/// TLVs included) becomes [`Message::Unknown`] with its raw body.
fn decode_tlv(
    t: u8,
    body: &[u8],
    st: &mut ParserState,
    subs: &mut Vec<SubTlv>,
) -> Result<Option<Message>, TlvErrorKind> {
    match t {
        tlv_type::PADN => Ok(None),
        tlv_type::ACK_REQ => decode_ack_req(body, subs).map(Some),
        tlv_type::ACK => decode_ack(body, subs).map(Some),
        tlv_type::HELLO => decode_hello(body, subs).map(Some),
        tlv_type::IHU => decode_ihu(body, subs).map(Some),
        tlv_type::ROUTER_ID => decode_router_id(body, st, subs).map(|()| None),
        tlv_type::NEXT_HOP => decode_next_hop(body, st, subs).map(|()| None),
        tlv_type::UPDATE => decode_update(body, st, subs).map(Some),
        tlv_type::ROUTE_REQUEST => decode_route_request(body, subs).map(Some),
        tlv_type::SEQNO_REQUEST => decode_seqno_request(body, subs).map(Some),
        _ => Ok(Some(Message::Unknown { tlv_type: t, body: body.to_vec() })),
    }
}

/// Acknowledgment Request (§4.6.3), self-terminating after 6 bytes:
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 2   |    Length     |          Reserved             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Opaque               |          Interval             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_ack_req(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 6)?;
    parse_sub_tlvs(&b[6..], subs)?;
    Ok(Message::AckReq { opaque: u16_at(b, 2), interval: Centisecs(u16_at(b, 4)) })
}

/// Acknowledgment (§4.6.4): the Opaque value of the request it answers.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 3   |    Length     |            Opaque             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_ack(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 2)?;
    parse_sub_tlvs(&b[2..], subs)?;
    Ok(Message::Ack { opaque: u16_at(b, 0) })
}

/// Hello (§4.6.5). Flag 0x8000 (U) marks a unicast Hello; the other flag
/// bits are reserved and ignored.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 4   |    Length     |U|         Flags               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Seqno                |          Interval             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_hello(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 6)?;
    parse_sub_tlvs(&b[6..], subs)?;
    Ok(Message::Hello {
        unicast: u16_at(b, 0) & 0x8000 != 0,
        seqno: SeqNo(u16_at(b, 2)),
        interval: Centisecs(u16_at(b, 4)),
    })
}

/// IHU (§4.6.6). The address is that of the neighbour being told "I hear
/// you" — the receiver the rxcost is about; AE 0 (no address) means
/// "whoever receives this", as in a unicast IHU. AE 4 may not appear here
/// (RFC 9229 §2.4).
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 5   |    Length     |       AE      |    Reserved   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            Rxcost             |          Interval             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       Address (0, 4, 16 or 8 bytes by AE) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
/// ```
fn decode_ihu(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 6)?;
    let ae = b[0];
    if ae == ae::V4_VIA_V6 {
        return Err(TlvErrorKind::AeNotAllowed(ae));
    }
    let (address, n) = address::read_address(ae, &b[6..])?;
    parse_sub_tlvs(&b[6 + n..], subs)?;
    Ok(Message::Ihu { rxcost: Metric(u16_at(b, 2)), interval: Centisecs(u16_at(b, 4)), address })
}

/// Router-Id (§4.6.7): the router-id of the Updates that follow.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 6   |    Length     |          Reserved             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Router-Id (8 bytes)                    |
/// +                                                               +
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_router_id(b: &[u8], st: &mut ParserState, subs: &mut Vec<SubTlv>) -> Result<(), TlvErrorKind> {
    if let Err(e) = need(b, 10) {
        st.router_id = Slot::Unusable;
        return Err(e);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[2..10]);
    let id = RouterId(id);
    if !id.is_valid() {
        st.router_id = Slot::Unusable;
        return Err(TlvErrorKind::InvalidRouterId);
    }
    // State first: it holds even if a mandatory sub-TLV voids the TLV.
    st.router_id = Slot::Set(id);
    parse_sub_tlvs(&b[10..], subs)
}

/// Next Hop (§4.6.8): the next hop of the following Updates of one address
/// family — AE 1 for IPv4 prefixes, AE 2 or 3 for IPv6 prefixes and, per
/// RFC 9229, for IPv4 prefixes sent with AE 4. AE 0 and AE 4 are not
/// allowed here.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 7   |    Length     |       AE      |    Reserved   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       Next hop (4, 16 or 8 bytes by AE) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
/// ```
fn decode_next_hop(b: &[u8], st: &mut ParserState, subs: &mut Vec<SubTlv>) -> Result<(), TlvErrorKind> {
    if let Err(e) = need(b, 2) {
        // Which family it meant to set is unknown: neither can be trusted.
        st.v4_next_hop = Slot::Unusable;
        st.v6_next_hop = Slot::Unusable;
        return Err(e);
    }
    let ae = b[0];
    let slot = match ae {
        ae::IPV4 => &mut st.v4_next_hop,
        ae::IPV6 | ae::IPV6_LINK_LOCAL => &mut st.v6_next_hop,
        ae::WILDCARD | ae::V4_VIA_V6 => return Err(TlvErrorKind::AeNotAllowed(ae)),
        _ => return Err(TlvErrorKind::UnknownAe(ae)),
    };
    match address::read_address(ae, &b[2..]) {
        Ok((Some(addr), n)) => {
            *slot = Slot::Set(addr);
            parse_sub_tlvs(&b[2 + n..], subs)
        }
        Ok((None, _)) => unreachable!("AE 0 handled above"),
        Err(e) => {
            *slot = Slot::Unusable;
            Err(e)
        }
    }
}

/// Update (§4.6.9, RFC 9229 for AE 4).
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 8   |    Length     |       AE      |P|R|  Flags    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Plen      |    Omitted    |          Interval             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Seqno                |          Metric               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Prefix: ⌈Plen/8⌉ − Omitted bytes (AE 3: ⌈Plen/8⌉ − 8) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// P (0x80): this prefix becomes the default prefix of its AE for later
/// Updates in the packet. R (0x40): the router-id becomes the last 8 bytes
/// of this prefix's address (4 zero bytes then the address, for IPv4), for
/// this and later Updates. A finite metric needs a router-id; AE 0 means
/// "all my routes" and needs metric 0xFFFF with Plen = Omitted = 0.
fn decode_update(b: &[u8], st: &mut ParserState, subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    if let Err(e) = need(b, 10) {
        if b.len() >= 2 {
            poison_update_state(st, b[0], b[1]);
        }
        return Err(e);
    }
    let (ae, flags, plen, omitted) = (b[0], b[1], b[2], b[3]);
    if !known_ae(ae) {
        return Err(TlvErrorKind::UnknownAe(ae));
    }
    let interval = Centisecs(u16_at(b, 4));
    let seqno = SeqNo(u16_at(b, 6));
    let metric = Metric(u16_at(b, 8));
    let slot = address::default_slot(ae);
    let default = slot.and_then(|s| st.defaults[s].as_ref());
    let (raw, n) = match address::read_prefix(ae, plen, omitted, default, &b[10..]) {
        Ok(x) => x,
        Err(e) => {
            poison_update_state(st, ae, flags);
            return Err(e);
        }
    };

    // Parser state, before anything can void the TLV.
    if ae != ae::WILDCARD {
        if flags & 0x80 != 0 {
            if let Some(s) = slot {
                st.defaults[s] = Some(raw);
            }
        }
        if flags & 0x40 != 0 {
            let id = raw.implied_router_id();
            st.router_id = if id.is_valid() { Slot::Set(id) } else { Slot::Unusable };
        }
    }

    parse_sub_tlvs(&b[10 + n..], subs)?;

    if ae == ae::WILDCARD {
        if !metric.is_infinite() {
            return Err(TlvErrorKind::WildcardWithFiniteMetric);
        }
        return Ok(Message::WildcardRetraction { interval });
    }

    let router_id = match st.router_id {
        Slot::Set(id) => id,
        // Retractions do not use the router-id (§4.6.9).
        _ if metric.is_infinite() => RouterId::default(),
        Slot::Unset => return Err(TlvErrorKind::NoRouterId),
        Slot::Unusable => return Err(TlvErrorKind::RouterIdUnusable),
    };
    let next_hop = if metric.is_infinite() {
        // Nor the next hop.
        None
    } else {
        let nh = if ae == ae::IPV4 { st.v4_next_hop } else { st.v6_next_hop };
        match nh {
            Slot::Set(a) => Some(a),
            Slot::Unset => None,
            Slot::Unusable => return Err(TlvErrorKind::NextHopUnusable),
        }
    };
    Ok(Message::Update(Update {
        prefix: raw.to_prefix(),
        router_id,
        next_hop,
        v4_via_v6: ae == ae::V4_VIA_V6,
        seqno,
        metric,
        interval,
    }))
}

/// A malformed Update may have been meant to set a default prefix or the
/// router-id: make sure no later Update silently uses the old value.
fn poison_update_state(st: &mut ParserState, ae: u8, flags: u8) {
    if flags & 0x80 != 0 {
        if let Some(s) = address::default_slot(ae) {
            st.defaults[s] = None;
        }
    }
    if flags & 0x40 != 0 && known_ae(ae) && ae != ae::WILDCARD {
        st.router_id = Slot::Unusable;
    }
}

/// Route Request (§4.6.10). AE 0 with Plen 0 asks for a full dump; AE 4 is
/// read as AE 1 (RFC 9229 §2.3). No compression.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 9   |    Length     |       AE      |     Plen      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Prefix: ⌈Plen/8⌉ bytes (AE 3: ⌈Plen/8⌉ − 8) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_route_request(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 2)?;
    let (ae, plen) = (b[0], b[1]);
    if !known_ae(ae) {
        return Err(TlvErrorKind::UnknownAe(ae));
    }
    let (raw, n) = address::read_prefix(ae, plen, 0, None, &b[2..])?;
    parse_sub_tlvs(&b[2 + n..], subs)?;
    let prefix = (ae != ae::WILDCARD).then(|| raw.to_prefix());
    Ok(Message::RouteRequest { prefix })
}

/// Seqno Request (§4.6.11). AE 0 is not allowed; AE 4 is read as AE 1
/// (RFC 9229 §2.3). No compression.
///
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    Type = 10  |    Length     |      AE       |    Plen       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Seqno                |  Hop Count    |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Router-Id (8 bytes)                    |
/// +                                                               +
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Prefix: ⌈Plen/8⌉ bytes (AE 3: ⌈Plen/8⌉ − 8) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
fn decode_seqno_request(b: &[u8], subs: &mut Vec<SubTlv>) -> Result<Message, TlvErrorKind> {
    need(b, 14)?;
    let (ae, plen) = (b[0], b[1]);
    if !known_ae(ae) {
        return Err(TlvErrorKind::UnknownAe(ae));
    }
    if ae == ae::WILDCARD {
        return Err(TlvErrorKind::AeNotAllowed(ae));
    }
    let hop_count = b[4];
    if hop_count == 0 {
        return Err(TlvErrorKind::ZeroHopCount);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[6..14]);
    let (raw, n) = address::read_prefix(ae, plen, 0, None, &b[14..])?;
    parse_sub_tlvs(&b[14 + n..], subs)?;
    Ok(Message::SeqnoRequest {
        seqno: SeqNo(u16_at(b, 2)),
        hop_count,
        router_id: RouterId(id),
        prefix: raw.to_prefix(),
    })
}
