//! Helpers for the integration tests: each test gets its own work directory.
