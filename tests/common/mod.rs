//! Shared support for integration tests.
// First: the skip rule's macros are used by the modules below.
#[macro_use]
pub mod require;
pub mod mesh;
pub mod netns;
pub mod openwrt;
pub mod peers;
pub mod weft_cli;
pub mod weftd;
