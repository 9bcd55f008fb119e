//! The Babel routing protocol (RFC 8966) as a pure state machine.

pub mod budget;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod interface;
pub mod neighbour;
pub mod output;
pub mod packet;
pub mod request;
pub mod route;
pub mod slots;
pub mod source;
pub mod types;

pub use engine::{
    Engine, EngineConfig, FibOp, FibRoute, FilterScope, FilterVerdict, Input, NeighbourLimits, Output,
    RouteQuery,
};
pub use interface::{IfIndex, InterfaceConfig, LinkType};
pub use types::{Centisecs, Metric, Prefix, RouterId, SeqNo, Time};
