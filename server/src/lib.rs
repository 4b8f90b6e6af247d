//! Potentia's server: configuration, the axum router, authentication, the REST modules and
//! operational endpoints. Domain crates hold the logic; this crate speaks HTTP.

pub mod access;
pub mod ai;
pub mod app;
pub mod audit;
pub mod auth;
pub mod blocks;
pub mod calendars;
pub mod canvas_sync;
pub mod canvases;
pub mod config;
pub mod conversations;
pub mod db;
pub mod email;
pub mod error;
pub mod http;
pub mod invitations;
pub mod memories;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod search;
pub mod secret;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod users;
pub mod validation;
pub mod workspaces;

pub use app::{router, routes, run, serve};
pub use config::Settings;
pub use state::AppState;
