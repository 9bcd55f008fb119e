//! Neighbour discovery and the tunnel handshake on raw interfaces (pure).

pub mod manager;
pub mod wire;

#[cfg(test)]
mod tests;

pub use manager::{Authorised, LinkAuth, LinkConfig, LinkInput, LinkManager, LinkOutput, Scope, TunnelSpec};
