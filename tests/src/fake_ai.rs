//! Fake AI providers (in progress).
