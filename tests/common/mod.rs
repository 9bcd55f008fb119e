//! Shared support for integration tests.
pub mod mesh;
pub mod netns;
pub mod peers;
pub mod weftd;
pub mod openwrt;
