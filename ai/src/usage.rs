//! usage (in progress).
