//! Messages → datagrams.
//!
//! [`PacketBuilder`] packs messages into one datagram of at most `max_len`
//! bytes, keeping the encoder's mirror of the receiver's parser state
//! (RFC 8966 §4.5) so that it can leave out what the receiver already knows:
//!
//! - a Router-Id TLV only when an Update's router-id differs from the one in
//!   effect, or not even then when the Update is an IPv6 prefix whose last 8
//!   bytes are the router-id (flag 0x40, as babeld does; BIRD reads 0x40 on
//!   IPv6 prefixes only, so it is never used on IPv4 ones);
//! - a Next Hop TLV only when an Update's next hop differs from the one in
//!   effect for its family (AE 1 for an IPv4 next hop, AE 3 for an IPv6 one
//!   in fe80::/64, AE 2 for other IPv6 ones);
//! - the leading bytes an Update's prefix shares with the default prefix of
//!   its AE (Omitted), setting a new default prefix (flag 0x80) when the new
//!   prefix is at least as long as the current default, or shares nothing
//!   with it.

use std::net::IpAddr;

use super::address::{self, common_bytes, default_slot, RawPrefix, DEFAULT_SLOTS};
use super::error::EncodeError;
use super::subtlv::{sub_tlv_type, wire_len, write_sub_tlvs, SubTlv};
use super::{ae, tlv_type, Message, Update, HEADER_LEN, MAGIC, VERSION};
use crate::babel::types::{Prefix, RouterId};

/// Largest datagram a 16-bit body length can describe.
const MAX_DATAGRAM: usize = HEADER_LEN + u16::MAX as usize;

/// What the receiver's parser state will be after the TLVs written so far.
#[derive(Clone, Copy, Debug, Default)]
struct EncoderState {
    router_id: Option<RouterId>,
    v4_next_hop: Option<IpAddr>,
    v6_next_hop: Option<IpAddr>,
    defaults: [Option<RawPrefix>; DEFAULT_SLOTS],
}

/// Packs messages into one datagram of at most `max_len` bytes (header
/// included, trailer excluded).
#[derive(Debug)]
pub struct PacketBuilder {
    max_len: usize,
    buf: Vec<u8>,
    st: EncoderState,
}

fn fresh_buf(cap: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(cap);
    b.extend_from_slice(&[MAGIC, VERSION, 0, 0]);
    b
}

impl PacketBuilder {
    pub fn new(max_len: usize) -> PacketBuilder {
        let max_len = max_len.clamp(HEADER_LEN, MAX_DATAGRAM);
        PacketBuilder { max_len, buf: fresh_buf(max_len), st: EncoderState::default() }
    }

    /// The limit given to [`new`](Self::new) (clamped to 4..=65539).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Length of the datagram so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes still free before `max_len`.
    pub fn remaining(&self) -> usize {
        self.max_len - self.buf.len()
    }

    /// True if no message has been pushed since the last [`take`](Self::take).
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    /// Appends `msg`; returns false (and appends nothing) if it does not fit.
    ///
    /// The caller then takes the packet and pushes the message into the
    /// fresh one. A false on an empty builder means the message can never
    /// be sent (too big, or not encodable: see [`try_push`](Self::try_push)).
    pub fn push(&mut self, msg: &Message) -> bool {
        self.try_push(msg).is_ok()
    }

    /// [`push`](Self::push) with non-mandatory or mandatory extension
    /// sub-TLVs appended to the message's TLV (after its fixed fields).
    pub fn push_with_sub_tlvs(&mut self, msg: &Message, subs: &[SubTlv]) -> bool {
        self.try_push_with_sub_tlvs(msg, subs).is_ok()
    }

    /// Appends `msg`, or says why not. On error nothing is appended and the
    /// builder is unchanged.
    pub fn try_push(&mut self, msg: &Message) -> Result<(), EncodeError> {
        self.try_push_with_sub_tlvs(msg, &[])
    }

    /// [`try_push`](Self::try_push) with sub-TLVs.
    pub fn try_push_with_sub_tlvs(&mut self, msg: &Message, subs: &[SubTlv]) -> Result<(), EncodeError> {
        for s in subs {
            if s.sub_type == sub_tlv_type::PAD1 || s.sub_type == sub_tlv_type::PADN {
                return Err(EncodeError::BadSubTlv);
            }
            if s.body.len() > u8::MAX as usize {
                return Err(EncodeError::TooLong);
            }
        }
        if wire_len(subs) > u8::MAX as usize {
            return Err(EncodeError::TooLong);
        }
        let mark = self.buf.len();
        let saved = self.st;
        let r = self.write_message(msg, subs);
        match r {
            Ok(()) if self.buf.len() <= self.max_len => Ok(()),
            other => {
                self.buf.truncate(mark);
                self.st = saved;
                Err(other.err().unwrap_or(EncodeError::DoesNotFit))
            }
        }
    }

    /// The finished datagram (a bare header if nothing was pushed); the
    /// builder is reset, parser state included, for the next packet.
    pub fn take(&mut self) -> Vec<u8> {
        let body = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
        self.st = EncoderState::default();
        std::mem::replace(&mut self.buf, fresh_buf(self.max_len))
    }

    fn write_message(&mut self, msg: &Message, subs: &[SubTlv]) -> Result<(), EncodeError> {
        let buf = &mut self.buf;
        match msg {
            Message::AckReq { opaque, interval } => tlv(buf, tlv_type::ACK_REQ, subs, |b| {
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&opaque.to_be_bytes());
                b.extend_from_slice(&interval.0.to_be_bytes());
            }),
            Message::Ack { opaque } => tlv(buf, tlv_type::ACK, subs, |b| {
                b.extend_from_slice(&opaque.to_be_bytes());
            }),
            Message::Hello { unicast, seqno, interval } => tlv(buf, tlv_type::HELLO, subs, |b| {
                let flags: u16 = if *unicast { 0x8000 } else { 0 };
                b.extend_from_slice(&flags.to_be_bytes());
                b.extend_from_slice(&seqno.0.to_be_bytes());
                b.extend_from_slice(&interval.0.to_be_bytes());
            }),
            Message::Ihu { rxcost, interval, address } => tlv(buf, tlv_type::IHU, subs, |b| {
                let at = b.len();
                b.extend_from_slice(&[ae::WILDCARD, 0]);
                b.extend_from_slice(&rxcost.0.to_be_bytes());
                b.extend_from_slice(&interval.0.to_be_bytes());
                if let Some(a) = address {
                    let ae = address::write_address(*a, b);
                    b[at] = ae;
                }
            }),
            Message::Update(u) => self.write_update(u, subs),
            Message::WildcardRetraction { interval } => tlv(buf, tlv_type::UPDATE, subs, |b| {
                b.extend_from_slice(&[ae::WILDCARD, 0, 0, 0]);
                b.extend_from_slice(&interval.0.to_be_bytes());
                b.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
            }),
            Message::RouteRequest { prefix } => {
                let raw = prefix.as_ref().map(checked_raw).transpose()?;
                tlv(buf, tlv_type::ROUTE_REQUEST, subs, |b| match raw {
                    None => b.extend_from_slice(&[ae::WILDCARD, 0]),
                    Some(r) => {
                        b.extend_from_slice(&[plain_ae(&r), r.plen]);
                        b.extend_from_slice(&r.bytes[..r.byte_len()]);
                    }
                })
            }
            Message::SeqnoRequest { seqno, hop_count, router_id, prefix } => {
                if *hop_count == 0 {
                    return Err(EncodeError::ZeroHopCount);
                }
                let r = checked_raw(prefix)?;
                tlv(buf, tlv_type::SEQNO_REQUEST, subs, |b| {
                    b.extend_from_slice(&[plain_ae(&r), r.plen]);
                    b.extend_from_slice(&seqno.0.to_be_bytes());
                    b.extend_from_slice(&[*hop_count, 0]);
                    b.extend_from_slice(&router_id.0);
                    b.extend_from_slice(&r.bytes[..r.byte_len()]);
                })
            }
            Message::Unknown { tlv_type: t, body } => {
                if *t <= tlv_type::SEQNO_REQUEST {
                    return Err(EncodeError::KnownTlvType(*t));
                }
                if !subs.is_empty() {
                    return Err(EncodeError::BadSubTlv);
                }
                tlv(buf, *t, &[], |b| b.extend_from_slice(body))
            }
        }
    }

    fn write_update(&mut self, u: &Update, subs: &[SubTlv]) -> Result<(), EncodeError> {
        let raw = checked_raw(&u.prefix)?;
        let ae = match (raw.width, u.v4_via_v6) {
            (4, false) => ae::IPV4,
            (4, true) => ae::V4_VIA_V6,
            (_, false) => ae::IPV6,
            (_, true) => return Err(EncodeError::NextHopFamily),
        };
        match (ae, u.next_hop) {
            (ae::IPV4, Some(IpAddr::V6(_))) => return Err(EncodeError::NextHopFamily),
            (ae::IPV6 | ae::V4_VIA_V6, Some(IpAddr::V4(_))) => return Err(EncodeError::NextHopFamily),
            _ => {}
        }
        let retraction = u.metric.is_infinite();
        if !retraction && !u.router_id.is_valid() {
            return Err(EncodeError::InvalidRouterId);
        }

        // Next hop: retractions have none (§4.6.9), so leave state alone.
        if !retraction {
            let st_nh = if ae == ae::IPV4 { &mut self.st.v4_next_hop } else { &mut self.st.v6_next_hop };
            match u.next_hop {
                Some(nh) if *st_nh != Some(nh) => {
                    tlv(&mut self.buf, tlv_type::NEXT_HOP, &[], |b| {
                        let at = b.len();
                        b.extend_from_slice(&[0, 0]);
                        let ae = address::write_address(nh, b);
                        b[at] = ae;
                    })?;
                    *st_nh = Some(nh);
                }
                Some(_) => {}
                // "The source address" cannot be restored once a Next Hop
                // of this family is in effect: a fresh packet is needed.
                None if st_nh.is_some() => return Err(EncodeError::DoesNotFit),
                None => {}
            }
        }

        let slot = default_slot(ae).expect("AE 1, 2 and 4 have default prefixes");
        let (omit, set_default) = match self.st.defaults[slot] {
            None => (0, true),
            Some(d) => {
                let omit = common_bytes(&raw, &d);
                (omit, raw.byte_len() >= d.byte_len() || omit == 0)
            }
        };
        // babeld refuses to decompress an IPv6 prefix against a default
        // that looks IPv4-mapped (::ffff:0:0/96): never make one the default.
        let set_default = set_default && !(ae == ae::IPV6 && is_v4_mapped(&raw));
        let mut flags = 0u8;
        if set_default {
            flags |= 0x80;
        }

        // Router-id: retractions do not need one, but keep the receiver's
        // view exact whenever a valid one is given.
        if u.router_id.is_valid() && self.st.router_id != Some(u.router_id) {
            if ae == ae::IPV6 && raw.implied_router_id() == u.router_id {
                flags |= 0x40;
            } else {
                tlv(&mut self.buf, tlv_type::ROUTER_ID, &[], |b| {
                    b.extend_from_slice(&[0, 0]);
                    b.extend_from_slice(&u.router_id.0);
                })?;
            }
            self.st.router_id = Some(u.router_id);
        }

        tlv(&mut self.buf, tlv_type::UPDATE, subs, |b| {
            b.extend_from_slice(&[ae, flags, raw.plen, omit as u8]);
            b.extend_from_slice(&u.interval.0.to_be_bytes());
            b.extend_from_slice(&u.seqno.0.to_be_bytes());
            b.extend_from_slice(&u.metric.0.to_be_bytes());
            b.extend_from_slice(&raw.bytes[omit..raw.byte_len()]);
        })?;
        if set_default {
            self.st.defaults[slot] = Some(raw);
        }
        Ok(())
    }
}

/// Packs `msgs` (each with its sub-TLVs) in order into as many datagrams
/// of at most `max_len` bytes as needed. Fails with the index of the first
/// message that cannot be encoded even into an empty packet.
pub fn encode_messages(
    msgs: &[(Message, Vec<SubTlv>)],
    max_len: usize,
) -> Result<Vec<Vec<u8>>, (usize, EncodeError)> {
    let mut out = Vec::new();
    let mut b = PacketBuilder::new(max_len);
    for (i, (m, subs)) in msgs.iter().enumerate() {
        if let Err(e) = b.try_push_with_sub_tlvs(m, subs) {
            if b.is_empty() {
                return Err((i, e));
            }
            out.push(b.take());
            b.try_push_with_sub_tlvs(m, subs).map_err(|e| (i, e))?;
        }
    }
    if !b.is_empty() {
        out.push(b.take());
    }
    Ok(out)
}

fn is_v4_mapped(r: &RawPrefix) -> bool {
    r.bytes[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
}

/// The uncompressed AE of a prefix in a Request TLV.
fn plain_ae(r: &RawPrefix) -> u8 {
    if r.width == 4 {
        ae::IPV4
    } else {
        ae::IPV6
    }
}

fn checked_raw(p: &Prefix) -> Result<RawPrefix, EncodeError> {
    let max = if p.is_ipv4() { 32 } else { 128 };
    if p.len() > max {
        return Err(EncodeError::PrefixTooLong);
    }
    Ok(RawPrefix::from_prefix(p))
}

/// Writes one TLV: type, length, the fixed fields `body` writes, then the
/// sub-TLVs.
fn tlv(
    buf: &mut Vec<u8>,
    t: u8,
    subs: &[SubTlv],
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[t, 0]);
    body(buf);
    write_sub_tlvs(subs, buf);
    let len = buf.len() - start - 2;
    if len > u8::MAX as usize {
        return Err(EncodeError::TooLong);
    }
    buf[start + 1] = len as u8;
    Ok(())
}
