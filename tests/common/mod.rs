//! Shared support for integration tests.
pub mod netns;
pub mod peers;
pub mod weftd;
