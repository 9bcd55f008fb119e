//! Sub-TLVs (RFC 8966 §4.4).
//!
//! Every TLV of RFC 8966 except Pad1 and PadN is self-terminating: its
//! natural size follows from its fixed fields (and AE/Plen), and whatever its
//! Length field gives beyond that is a sequence of sub-TLVs:
//!
//! ```text
//!  0                   1                   2
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
//! |M|   Type      |    Length     |  Body (Length bytes) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
//! ```
//!
//! Sub-TLV type 0 (Pad1) is a single byte with no Length, exactly like the
//! Pad1 TLV; type 1 (PadN) is padding with a Length. The high bit M of the
//! type is the mandatory bit: a TLV carrying a mandatory sub-TLV that the
//! receiver does not understand must be ignored as a whole (after any parser
//! state it sets has been applied). A sub-TLV that runs past the end of its
//! TLV makes the TLV malformed.
//!
//! This codec understands no mandatory sub-TLV (RFC 9079's Source Prefix,
//! type 128, included: weft does not do source-specific routing, so such an
//! Update must not be taken for an ordinary route). Non-mandatory sub-TLVs
//! other than padding are handed to the caller as [`SubTlv`]s.

use super::error::TlvErrorKind;

/// Sub-TLV type numbers (IANA "Babel Sub-TLV Types").
pub mod sub_tlv_type {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    /// RFC 9616 (not interpreted here).
    pub const DIVERSITY: u8 = 2;
    /// RFC 9616 timestamp: 4 bytes on a Hello, 8 on an IHU.
    pub const TIMESTAMP: u8 = 3;
    /// RFC 9079 source prefix (mandatory; not understood here).
    pub const SOURCE_PREFIX: u8 = 128;
    /// The mandatory bit.
    pub const MANDATORY: u8 = 0x80;
}

/// A non-padding sub-TLV carried with a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubTlv {
    pub sub_type: u8,
    pub body: Vec<u8>,
}

impl SubTlv {
    pub fn is_mandatory(&self) -> bool {
        self.sub_type & sub_tlv_type::MANDATORY != 0
    }
}

/// Reads the sub-TLV area of a TLV. Padding is dropped; any other
/// non-mandatory sub-TLV is appended to `out`.
pub(super) fn parse_sub_tlvs(area: &[u8], out: &mut Vec<SubTlv>) -> Result<(), TlvErrorKind> {
    let mut i = 0;
    while i < area.len() {
        let t = area[i];
        if t == sub_tlv_type::PAD1 {
            i += 1;
            continue;
        }
        let len = *area.get(i + 1).ok_or(TlvErrorKind::SubTlvTruncated)? as usize;
        let body = area.get(i + 2..i + 2 + len).ok_or(TlvErrorKind::SubTlvTruncated)?;
        if t & sub_tlv_type::MANDATORY != 0 {
            return Err(TlvErrorKind::UnknownMandatorySubTlv { sub_type: t });
        }
        if t != sub_tlv_type::PADN {
            out.push(SubTlv { sub_type: t, body: body.to_vec() });
        }
        i += 2 + len;
    }
    Ok(())
}

/// Number of bytes `subs` take on the wire.
pub(super) fn wire_len(subs: &[SubTlv]) -> usize {
    subs.iter().map(|s| 2 + s.body.len()).sum()
}

/// Appends `subs` (already validated) to `out`.
pub(super) fn write_sub_tlvs(subs: &[SubTlv], out: &mut Vec<u8>) {
    for s in subs {
        out.push(s.sub_type);
        out.push(s.body.len() as u8);
        out.extend_from_slice(&s.body);
    }
}
