//! Canvases: create (personal or in a workspace), list, read, change title and icon, archive,
//! restore, duplicate, delete; the caller's permissions; the combined member list and direct
//! members' roles.
//!
//! Title and icon live in the document's `meta` map (ARCHITECTURE §2): [`routes::patch_canvas`]
//! writes them there like a block write, and the materializer (`potentia_sync::materialize`)
//! writes the `canvases` row from the document, whoever changed it.

pub mod db;
pub mod routes;

pub use db::{Canvas, CanvasMember};
