//! Babel's wire format (RFC 8966 §4, RFC 9229 AE 4): the packet codec.
//!
//! Two layers:
//! - the *message* layer below ([`Message`], [`Update`], …) is what the engine
//!   speaks: prefixes are whole, every Update carries the router-id and next
//!   hop that were in effect for it, and there is no Router-Id, Next Hop or
//!   padding TLV to think about;
//! - the wire layer (`decode`, `encode`) turns datagrams into messages and
//!   back, carrying the parser state of §4.5 (default prefixes per address
//!   encoding, current router-id, current next hops) from TLV to TLV, and
//!   packing messages up to the MTU with prefix compression.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::types::{Centisecs, Metric, Prefix, RouterId, SeqNo};

mod address;
mod decode;
mod encode;
mod error;
mod subtlv;
#[cfg(test)]
mod tests;

pub use decode::{decode, Decoded};
pub use encode::{encode_messages, PacketBuilder};
pub use error::{EncodeError, HeaderError, TlvError, TlvErrorKind};
pub use subtlv::{sub_tlv_type, SubTlv};

/// Babel's UDP port (RFC 8966 §5).
pub const BABEL_PORT: u16 = 6696;
/// Babel's link-local multicast group (RFC 8966 §5).
pub const BABEL_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
/// First byte of every Babel packet.
pub const MAGIC: u8 = 42;
/// The only protocol version we speak.
pub const VERSION: u8 = 2;
/// Packet header length: magic, version, body length.
pub const HEADER_LEN: usize = 4;

/// TLV type numbers (RFC 8966 §4.3 and IANA "Babel TLV Types").
pub mod tlv_type {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const ACK_REQ: u8 = 2;
    pub const ACK: u8 = 3;
    pub const HELLO: u8 = 4;
    pub const IHU: u8 = 5;
    pub const ROUTER_ID: u8 = 6;
    pub const NEXT_HOP: u8 = 7;
    pub const UPDATE: u8 = 8;
    pub const ROUTE_REQUEST: u8 = 9;
    pub const SEQNO_REQUEST: u8 = 10;
    /// weft's own extension data (credentials, origin attestations). Taken
    /// from the range IANA reserves for experimental use (224–254), which
    /// babeld and BIRD skip as unknown TLVs.
    pub const WEFT: u8 = 224;
}

/// Address encodings (RFC 8966 §4.1.5, RFC 9229).
pub mod ae {
    pub const WILDCARD: u8 = 0;
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const IPV6_LINK_LOCAL: u8 = 3;
    pub const V4_VIA_V6: u8 = 4;
}

/// One semantic Babel message, after the parser state of §4.5 has been
/// applied. Router-Id, Next Hop, Pad1 and PadN TLVs never appear here: they
/// are folded into the messages they qualify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Acknowledgment Request (§4.6.3): answer with an Ack within `interval`.
    AckReq { opaque: u16, interval: Centisecs },
    /// Acknowledgment (§4.6.4).
    Ack { opaque: u16 },
    /// Hello (§4.6.5). `unicast` is the U flag (0x8000).
    Hello { unicast: bool, seqno: SeqNo, interval: Centisecs },
    /// IHU (§4.6.6). `address` is the address of the neighbour this IHU
    /// is about (the one being told "I hear you with this rxcost");
    /// `None` is AE 0: the IHU applies to its receiver, whoever it is.
    Ihu { rxcost: Metric, interval: Centisecs, address: Option<IpAddr> },
    /// Update (§4.6.9), with its prefix decompressed.
    Update(Update),
    /// Update with AE 0 and infinite metric: retract every route this
    /// neighbour has announced (§4.6.9).
    WildcardRetraction { interval: Centisecs },
    /// Route Request (§4.6.10); `None` is a wildcard request (AE 0).
    RouteRequest { prefix: Option<Prefix> },
    /// Seqno Request (§4.6.11).
    SeqnoRequest { seqno: SeqNo, hop_count: u8, router_id: RouterId, prefix: Prefix },
    /// A TLV type this codec does not know (§4.3: skipped by the engine), or
    /// weft's own [`tlv_type::WEFT`] TLV, with its body. Carried so that
    /// higher layers can read extensions.
    Unknown { tlv_type: u8, body: Vec<u8> },
}

/// A decompressed Update (§4.6.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub prefix: Prefix,
    /// The router-id in effect: from the preceding Router-Id TLV, or from the
    /// prefix itself when flag 0x40 was set. A retraction needs none: when
    /// no router-id was in effect it decodes as all zeros, and the encoder
    /// emits no Router-Id TLV for a retraction whose router-id is invalid.
    pub router_id: RouterId,
    /// The next hop in effect for this prefix's family; `None` means "the
    /// sender's source address" (§4.5). For an IPv4 prefix sent with AE 4
    /// (RFC 9229) this is the IPv6 next hop, if one was given. Always `None`
    /// for a retraction (a retraction has no next hop).
    ///
    /// Note for IPv4 prefixes sent with AE 1: `None` means the packet's
    /// source address, which over IPv6 transport is not an IPv4 address, so
    /// the receiver must ignore such a finite-metric Update (§4.6.9).
    pub next_hop: Option<IpAddr>,
    /// True for an IPv4 prefix carried with AE 4 (v4-via-v6). On encode, an
    /// IPv4 prefix is sent with AE 4 when this is set.
    pub v4_via_v6: bool,
    pub seqno: SeqNo,
    pub metric: Metric,
    pub interval: Centisecs,
}

impl Update {
    pub fn is_retraction(&self) -> bool {
        self.metric.is_infinite()
    }
}

/// How a message may be addressed when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// ff02::1:6 on the interface.
    Multicast,
    /// A neighbour's link-local address.
    Unicast(Ipv6Addr),
}

/// Helper for tests and encoders: the all-zero IPv4 address.
pub const V4_UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
