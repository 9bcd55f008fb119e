//! Shared support for integration tests.
pub mod mesh;
pub mod netns;
pub mod openwrt;
pub mod peers;
pub mod weftd;
