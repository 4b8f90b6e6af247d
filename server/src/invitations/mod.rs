//! Invitations to a workspace or a canvas (by user id or email, accepted or declined by the
//! invitee, by id or by the secret token) and workspace invite links (a code anyone signed in
//! can use until it expires, runs out or is revoked), with limits on how much mail one user
//! can make the server send.

pub mod db;
pub mod limits;
pub mod routes;

pub use db::{Invitation, InviteLink};

/// How long an invitation stays valid.
pub const INVITATION_TTL_DAYS: i64 = 7;
