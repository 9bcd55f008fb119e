//! The Babel routing protocol (RFC 8966) as a pure state machine.

pub mod packet;
pub mod types;

pub use types::{Centisecs, Metric, Prefix, RouterId, SeqNo, Time};
