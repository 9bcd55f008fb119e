//! weft: a zero-trust Babel mesh routing daemon for OpenWrt.
//!
//! The pure parts (protocol, trust, link management, configuration) never
//! touch a socket or a clock; the edges (`kernel`, `wg`, `control`, the
//! daemon) do all IO. See DESIGN.md in the shared folder for the reasons.

pub mod babel;
pub mod config;
pub mod control;
pub mod daemon;
pub mod kernel;
pub mod link;
pub mod metrics;
pub mod names;
pub mod net;
pub mod sim;
pub mod trust;
pub mod wg;
