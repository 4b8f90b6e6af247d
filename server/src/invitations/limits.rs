//! What one user can make the server do to others through invitations: at most
//! [`MAX_INVITATIONS_PER_HOUR`] invitations per inviter, and at most
//! [`MAX_MAILS_PER_RECIPIENT_PER_DAY`] invitation mails to one address, whoever sends them. Both
//! are counted in Postgres over a sliding window, so every node sees the same counts, under a
//! lock held to the end of the caller's transaction (the inviter's user row; an advisory lock on
//! the address), so requests in parallel cannot all pass one count.

use chrono::{Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::email::{KIND_CANVAS_INVITATION, KIND_WORKSPACE_INVITATION};
use crate::error::ApiError;

/// Invitations one user may send in an hour (to workspaces and canvases together).
pub const MAX_INVITATIONS_PER_HOUR: i64 = 50;
/// Invitation mails one address may receive in a day; past it an invitation is still made
/// (its link works) but not mailed.
pub const MAX_MAILS_PER_RECIPIENT_PER_DAY: i64 = 3;

/// 429 once `inviter` sent [`MAX_INVITATIONS_PER_HOUR`] in the last hour, with the seconds
/// until the oldest of them leaves the window.
pub async fn check_inviter(conn: &mut PgConnection, inviter: Uuid) -> Result<(), ApiError> {
    sqlx::query_scalar!("select id from users where id = $1 for update", inviter)
        .fetch_optional(&mut *conn)
        .await?;
    let sent = sqlx::query!(
        r#"select count(*) as "count!", min(created_at) as oldest from invitations
           where invited_by = $1 and created_at > now() - interval '1 hour'"#,
        inviter,
    )
    .fetch_one(conn)
    .await?;
    match sent.oldest {
        Some(oldest) if sent.count >= MAX_INVITATIONS_PER_HOUR => {
            let wait = (oldest + Duration::hours(1) - Utc::now())
                .num_seconds()
                .max(1);
            Err(ApiError::RateLimited {
                retry_after_secs: u64::try_from(wait).unwrap_or(1),
            })
        }
        _ => Ok(()),
    }
}

/// Whether `address` may be sent one more invitation mail today.
pub async fn may_mail(conn: &mut PgConnection, address: &str) -> Result<bool, ApiError> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('invitation mail ' || lower($1), 0))",
        address
    )
    .execute(&mut *conn)
    .await?;
    let kinds = [
        KIND_WORKSPACE_INVITATION.to_owned(),
        KIND_CANVAS_INVITATION.to_owned(),
    ];
    let mailed = sqlx::query_scalar!(
        r#"select count(*) as "count!" from email_outbox
           where lower(to_address) = lower($1) and kind = any($2)
             and created_at > now() - interval '1 day'"#,
        address,
        &kinds[..],
    )
    .fetch_one(conn)
    .await?;
    Ok(mailed < MAX_MAILS_PER_RECIPIENT_PER_DAY)
}
