//! resilience (in progress).
