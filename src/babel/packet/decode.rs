//! Datagram → messages. (Skeleton: the full codec is being written.)

use super::Message;

/// Result of decoding one datagram: every message that could be read, and a
/// typed error for every TLV that could not. A bad TLV never discards the
/// rest of the packet.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub messages: Vec<Message>,
    pub errors: Vec<TlvError>,
    /// Bytes after the body (RFC 8966 §4.2), kept for RFC 8967 MAC.
    pub trailer: Vec<u8>,
}

/// The packet itself is unusable: nothing in it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort { len: usize },
    BadMagic(u8),
    BadVersion(u8),
    BodyOverrun { body_len: usize, available: usize },
}

/// One TLV that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlvError {
    /// Byte offset of the TLV from the start of the datagram.
    pub offset: usize,
    pub tlv_type: u8,
    pub reason: String,
}

pub fn decode(_buf: &[u8]) -> Result<Decoded, HeaderError> {
    unimplemented!("codec in progress")
}
