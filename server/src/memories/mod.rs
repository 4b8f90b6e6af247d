//! `/api/v1/memories*`: what the assistant knows about the caller — listed, stated, corrected
//! and forgotten by the caller alone. The bi-temporal rules live in
//! `potentia_ai::assistant::memories`.

pub mod routes;
