//! Canvases: create (personal or in a workspace), list, read, change title and icon, archive,
//! restore, duplicate, delete; the caller's permissions; the combined member list and direct
//! members' roles.
//!
//! Title and icon change only through [`routes::patch_canvas`] → [`db::update_meta`]; that is
//! the one place the sync server will mirror them into the document's `meta` map.

pub mod db;
pub mod routes;

pub use db::{Canvas, CanvasMember};
