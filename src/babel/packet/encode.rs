//! Messages → datagrams. (Skeleton: the full codec is being written.)

use super::Message;

/// Packs messages into one datagram of at most `max_len` bytes.
pub struct PacketBuilder {
    max_len: usize,
    buf: Vec<u8>,
}

impl PacketBuilder {
    pub fn new(max_len: usize) -> PacketBuilder {
        PacketBuilder { max_len, buf: Vec::new() }
    }
    /// Appends `msg`; returns false (and appends nothing) if it does not fit.
    pub fn push(&mut self, _msg: &Message) -> bool {
        let _ = self.max_len;
        unimplemented!("codec in progress")
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The finished datagram; the builder is reset for the next one.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}
