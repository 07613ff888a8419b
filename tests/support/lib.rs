//! Shared helpers for the integration tests: databases and test fixtures.

pub mod pg;
