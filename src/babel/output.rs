//! Per-interface output buffering: control messages and pending updates are
//! collected and flushed together, so that one datagram carries many TLVs
//! (RFC 8966 §3.1, and babeld's message.c buffering).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use super::packet::{Message, PacketBuilder};
use super::types::{Prefix, Time};

#[derive(Debug, Default)]
pub struct OutQueue {
    /// Multicast control messages (Hello first, then IHUs, requests).
    pub control: Vec<Message>,
    /// Unicast messages per neighbour address.
    pub unicast: BTreeMap<Ipv6Addr, Vec<Message>>,
    /// Prefixes whose current state must be announced (multicast).
    pub updates: BTreeSet<Prefix>,
    /// Prefixes a neighbour asked for: answered with a retraction if we
    /// have nothing for them.
    pub requested: BTreeSet<Prefix>,
    /// Announce everything (periodic or requested full dump).
    pub full_dump: bool,
    /// Neighbours that get everything by unicast (a new neighbour's
    /// wildcard request, shortly after our last multicast dump).
    /// (A Vec, each address once: a few neighbours at most, and every set
    /// type costs flash.)
    pub dump_to: Vec<Ipv6Addr>,
    pub flush_at: Option<Time>,
}

impl OutQueue {
    /// Makes sure the queue is flushed no later than `at`.
    pub fn flush_by(&mut self, at: Time) {
        self.flush_at = Some(self.flush_at.map_or(at, |t| t.min(at)));
    }

    pub fn is_empty(&self) -> bool {
        self.control.is_empty()
            && self.unicast.is_empty()
            && self.updates.is_empty()
            && !self.full_dump
            && self.dump_to.is_empty()
    }

    pub fn clear(&mut self) {
        *self = OutQueue::default();
    }
}

/// Packs messages, in order, into as few datagrams of at most `max_len`
/// bytes as the codec allows. A message too large for an empty packet is
/// dropped (it cannot be sent on this link at all).
pub fn pack<'a>(max_len: usize, msgs: impl IntoIterator<Item = &'a Message>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = PacketBuilder::new(max_len);
    for m in msgs {
        if b.push(m) {
            continue;
        }
        if !b.is_empty() {
            out.push(b.take());
            if b.push(m) {
                continue;
            }
        }
        // Does not fit even alone: skip it.
    }
    if !b.is_empty() {
        out.push(b.take());
    }
    out
}
