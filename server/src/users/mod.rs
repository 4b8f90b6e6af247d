//! Users: the profile model and its validation, the `users` table's SQL, and `/auth/me`.

pub mod db;
pub mod model;
pub mod routes;

pub use model::{ProfilePatch, User};
