//! Workspaces and their members: create, list, patch, delete (owner only; its canvases go with
//! it), leave, role changes, removal and ownership transfer. Members join only through an
//! invitation or an invite link (see `invitations`).

pub mod db;
pub mod routes;

pub use db::{Member, Workspace};
