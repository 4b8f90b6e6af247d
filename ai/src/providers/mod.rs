//! HTTP provider clients (filled in by the providers work).
