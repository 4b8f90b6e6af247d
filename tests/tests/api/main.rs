//! End-to-end tests of the HTTP API: a real server over real Postgres, driven through HTTP.

mod auth;
mod email;
mod errors;
mod ops;
mod profile;
