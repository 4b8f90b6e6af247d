//! retrieval (in progress).
