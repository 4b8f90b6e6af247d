//! End-to-end tests of the HTTP API: a real server over real Postgres, driven through HTTP.

mod auth;
mod authz_matrix;
mod calendar_bounds;
mod calendars;
mod canvases;
mod email;
mod email_verification;
mod errors;
mod invitations;
mod openapi;
mod ops;
mod profile;
mod schemathesis;
mod search;
mod semantic_search;
mod tasks;
mod workspaces;
