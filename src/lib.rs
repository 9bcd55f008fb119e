//! weft: a zero-trust Babel mesh routing daemon for OpenWrt.
//!
//! The architecture (layers, what each module owns, how a received Update
//! and a UCI option travel through the code) is described in
//! `docs/ARCHITECTURE.md`. In short: the protocol (`babel`), the policy
//! (`mesh`, `link`, `trust`) and the configuration (`config`) are pure state
//! machines that never touch a socket or a clock; the edges (`daemon`,
//! `net`, `kernel`, `wg`, `control`) do all IO.

pub mod babel;
pub mod base64;
pub mod config;
pub mod control;
pub mod daemon;
pub mod kernel;
pub mod key;
pub mod link;
pub mod mesh;
pub mod metrics;
pub mod names;
pub mod net;
#[cfg(feature = "simulator")]
pub mod sim;
pub mod trust;
pub mod wg;
