//! Shared support for integration tests.
pub mod mesh;
pub mod netns;
