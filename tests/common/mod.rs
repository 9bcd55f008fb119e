//! Shared support for integration tests.
pub mod netns;
pub mod weftd;
