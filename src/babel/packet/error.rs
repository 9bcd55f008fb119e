//! Typed decode and encode errors.

use std::fmt;

/// The packet itself is unusable: nothing in it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than the 4 header bytes.
    TooShort { len: usize },
    /// First byte is not 42.
    BadMagic(u8),
    /// Version is not 2.
    BadVersion(u8),
    /// The Body Length field claims more bytes than the datagram has.
    /// (babeld reads such a packet up to the end of the datagram; we refuse
    /// it, since a truncated datagram can neither be trusted nor, later,
    /// authenticated.)
    BodyOverrun { body_len: usize, available: usize },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len } => {
                write!(f, "datagram of {len} bytes is shorter than the 4-byte Babel header")
            }
            HeaderError::BadMagic(m) => write!(f, "magic byte is {m}, not 42"),
            HeaderError::BadVersion(v) => write!(f, "Babel version {v} (only 2 is spoken)"),
            HeaderError::BodyOverrun { body_len, available } => {
                write!(f, "body length {body_len} exceeds the {available} bytes after the header")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// One TLV that was not turned into a message, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvError {
    /// Byte offset of the TLV from the start of the datagram.
    pub offset: usize,
    pub tlv_type: u8,
    pub kind: TlvErrorKind,
}

impl fmt::Display for TlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLV type {} at offset {}: {}", self.tlv_type, self.offset, self.kind)
    }
}

impl std::error::Error for TlvError {}

impl TlvError {
    /// False for TLVs that RFC 8966 says to ignore although nothing is wrong
    /// with them (an unknown mandatory sub-TLV, an unknown address
    /// encoding); true for everything that is actually malformed.
    pub fn is_malformed(&self) -> bool {
        self.kind.is_malformed()
    }
}

/// Why a TLV was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvErrorKind {
    /// Only the type byte of a TLV fits before the end of the body. Framing
    /// is lost: nothing after this point is read.
    HeaderTruncated,
    /// The Length field runs past the end of the body. Framing is lost:
    /// nothing after this point is read.
    LengthOverrun { len: u8, available: usize },
    /// The body is shorter than the TLV's fixed fields.
    TooShort { len: usize, min: usize },
    /// An address encoding this codec does not know: RFC 8966 says to
    /// ignore the TLV silently. Counted, not malformed.
    UnknownAe(u8),
    /// A known address encoding where this TLV may not use it (AE 0 in a
    /// Next Hop or Seqno Request, AE 4 in a Next Hop or IHU).
    AeNotAllowed(u8),
    /// The address or prefix bytes run past the end of the TLV.
    AddressTruncated { needed: usize, available: usize },
    /// Plen larger than the address family allows.
    PlenTooLong { ae: u8, plen: u8 },
    /// AE 3 prefix shorter than the fe80::/64 it implies.
    PlenTooShort { ae: u8, plen: u8 },
    /// Omitted larger than the address.
    OmittedTooLong { ae: u8, omitted: u8 },
    /// Omitted is not 0 for an AE that may not be compressed.
    OmittedNotAllowed { ae: u8 },
    /// Omitted is not 0 but no default prefix was set for this AE earlier in
    /// the packet (or the Update that tried to set it was malformed).
    NoDefaultPrefix { ae: u8 },
    /// AE 0 with a non-zero Plen or Omitted.
    WildcardWithPrefix,
    /// An Update with AE 0 and a finite metric.
    WildcardWithFiniteMetric,
    /// A finite-metric Update with no router-id established before it.
    NoRouterId,
    /// A finite-metric Update after a Router-Id TLV (or 0x40 Update) that was
    /// malformed: attributing it to an older router-id would be wrong.
    RouterIdUnusable,
    /// A Router-Id of all zeros or all ones (RFC 8966 §4.6.7).
    InvalidRouterId,
    /// A finite-metric Update whose next hop was to be set by a malformed
    /// Next Hop TLV of the same family.
    NextHopUnusable,
    /// A Seqno Request with hop count 0.
    ZeroHopCount,
    /// A sub-TLV runs past the end of its TLV.
    SubTlvTruncated,
    /// A sub-TLV with the mandatory bit (0x80) that this codec does not
    /// understand: the whole TLV is ignored (RFC 8966 §4.4), though any
    /// parser state it sets still takes effect. Counted, not malformed.
    UnknownMandatorySubTlv { sub_type: u8 },
}

impl TlvErrorKind {
    /// See [`TlvError::is_malformed`].
    pub fn is_malformed(&self) -> bool {
        !matches!(self, TlvErrorKind::UnknownAe(_) | TlvErrorKind::UnknownMandatorySubTlv { .. })
    }

    /// True if the rest of the packet could not be read after this error.
    pub fn loses_framing(&self) -> bool {
        matches!(self, TlvErrorKind::HeaderTruncated | TlvErrorKind::LengthOverrun { .. })
    }
}

impl fmt::Display for TlvErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TlvErrorKind::*;
        match *self {
            HeaderTruncated => f.write_str("TLV header cut off by the end of the body"),
            LengthOverrun { len, available } => {
                write!(f, "length {len} runs past the end of the body ({available} bytes left)")
            }
            TooShort { len, min } => {
                write!(f, "body of {len} bytes is shorter than the {min} fixed bytes")
            }
            UnknownAe(ae) => write!(f, "unknown address encoding {ae}"),
            AeNotAllowed(ae) => write!(f, "address encoding {ae} is not allowed here"),
            AddressTruncated { needed, available } => {
                write!(f, "address needs {needed} bytes, only {available} left in the TLV")
            }
            PlenTooLong { ae, plen } => write!(f, "prefix length {plen} too long for AE {ae}"),
            PlenTooShort { ae, plen } => {
                write!(f, "prefix length {plen} shorter than the 64 bits AE {ae} implies")
            }
            OmittedTooLong { ae, omitted } => {
                write!(f, "omitted {omitted} bytes is more than an AE {ae} address")
            }
            OmittedNotAllowed { ae } => write!(f, "AE {ae} may not be compressed"),
            NoDefaultPrefix { ae } => {
                write!(f, "bytes omitted but no default prefix for AE {ae} in this packet")
            }
            WildcardWithPrefix => f.write_str("wildcard (AE 0) with a prefix length"),
            WildcardWithFiniteMetric => f.write_str("wildcard update with a finite metric"),
            NoRouterId => f.write_str("update with no router-id before it"),
            RouterIdUnusable => f.write_str("update after a malformed router-id"),
            InvalidRouterId => f.write_str("router-id is all zeros or all ones"),
            NextHopUnusable => f.write_str("update after a malformed next hop of its family"),
            ZeroHopCount => f.write_str("seqno request with hop count 0"),
            SubTlvTruncated => f.write_str("sub-TLV runs past the end of its TLV"),
            UnknownMandatorySubTlv { sub_type } => {
                write!(f, "unknown mandatory sub-TLV {sub_type}: TLV ignored")
            }
        }
    }
}

/// Why [`PacketBuilder::try_push`](super::PacketBuilder::try_push) refused
/// a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The message does not fit in what is left of this packet, or needs
    /// parser state this packet can no longer give it (a "next hop is the
    /// source address" Update after a Next Hop TLV of its family). It will
    /// fit in a fresh packet unless that packet's `max_len` is too small.
    DoesNotFit,
    /// Prefix length beyond 32 (IPv4) or 128 (IPv6).
    PrefixTooLong,
    /// An Update whose prefix family, `v4_via_v6` flag and next-hop family
    /// disagree: an IPv4 prefix with an IPv6 next hop must set `v4_via_v6`;
    /// `v4_via_v6` needs an IPv4 prefix and no IPv4 next hop; an IPv6
    /// prefix needs an IPv6 next hop.
    NextHopFamily,
    /// A finite-metric Update whose router-id is all zeros or all ones.
    InvalidRouterId,
    /// A Seqno Request with hop count 0 (receivers drop it).
    ZeroHopCount,
    /// `Message::Unknown` with the type of a TLV this codec parses (0–10):
    /// the receiver would read it as that TLV.
    KnownTlvType(u8),
    /// A TLV body or sub-TLV longer than 255 bytes.
    TooLong,
    /// A sub-TLV of type 0 or 1 (padding carries no data), or sub-TLVs on a
    /// message whose TLV has no room for them (`Message::Unknown`).
    BadSubTlv,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EncodeError::*;
        f.write_str(match self {
            DoesNotFit => "message does not fit in this packet",
            PrefixTooLong => "prefix length too long for its family",
            NextHopFamily => "prefix family, v4_via_v6 and next-hop family disagree",
            InvalidRouterId => "router-id is all zeros or all ones",
            ZeroHopCount => "seqno request with hop count 0",
            KnownTlvType(_) => "unknown-TLV message uses a known TLV type",
            TooLong => "TLV body longer than 255 bytes",
            BadSubTlv => "padding sub-TLV or sub-TLVs on a TLV without room for them",
        })
    }
}

impl std::error::Error for EncodeError {}
