//! Refresh tokens: opaque random strings stored only as SHA-256, rotated on every use. Tokens
//! descending from one sign-in form a family; presenting a token that was already used or
//! revoked is treated as theft and revokes the whole family.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::secret::{self, digest};

/// A freshly issued token; `token` is shown to the client once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was valid: it is now used and `next` replaces it.
    Rotated {
        user_id: Uuid,
        next: IssuedRefreshToken,
    },
    /// The token had already been used or revoked: its family is now revoked.
    Reused {
        user_id: Uuid,
        family_id: Uuid,
    },
    Expired,
    Unknown,
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    Utc::now() + ttl
}

/// Starts a new family (a sign-in) or continues one (a rotation).
pub async fn issue<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    family_id: Option<Uuid>,
    ttl: Duration,
) -> sqlx::Result<IssuedRefreshToken> {
    let token = secret::generate();
    let issued = IssuedRefreshToken {
        id: Uuid::now_v7(),
        family_id: family_id.unwrap_or_else(Uuid::now_v7),
        expires_at: expiry(ttl),
        token,
    };
    sqlx::query!(
        r#"insert into refresh_tokens (id, user_id, family_id, token_hash, expires_at)
           values ($1, $2, $3, $4, $5)"#,
        issued.id,
        user_id,
        issued.family_id,
        digest(&issued.token),
        issued.expires_at,
    )
    .execute(db)
    .await?;
    Ok(issued)
}

/// Rotates `presented` inside the caller's transaction; the row lock makes two concurrent
/// rotations of one token serialize, so the second is detected as reuse.
pub async fn rotate(
    conn: &mut PgConnection,
    presented: &str,
    ttl: Duration,
) -> sqlx::Result<Rotation> {
    let Some(row) = sqlx::query!(
        r#"select id, user_id, family_id, expires_at, used_at, revoked_at
           from refresh_tokens where token_hash = $1 for update"#,
        digest(presented),
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Rotation::Unknown);
    };
    if row.used_at.is_some() || row.revoked_at.is_some() {
        revoke_family(&mut *conn, row.family_id).await?;
        return Ok(Rotation::Reused {
            user_id: row.user_id,
            family_id: row.family_id,
        });
    }
    if row.expires_at <= Utc::now() {
        return Ok(Rotation::Expired);
    }
    let next = issue(&mut *conn, row.user_id, Some(row.family_id), ttl).await?;
    sqlx::query!(
        "update refresh_tokens set used_at = now(), replaced_by = $2 where id = $1",
        row.id,
        next.id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Rotation::Rotated {
        user_id: row.user_id,
        next,
    })
}

/// The family of a token, if the token exists and belongs to `user_id`.
pub async fn family_of<'e>(
    db: impl sqlx::PgExecutor<'e>,
    presented: &str,
    user_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select family_id from refresh_tokens where token_hash = $1 and user_id = $2",
        digest(presented),
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// Revokes every live token of a family; returns how many.
pub async fn revoke_family<'e>(
    db: impl sqlx::PgExecutor<'e>,
    family_id: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null",
        family_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every live token of a user (sign out everywhere); returns how many.
pub async fn revoke_all_of_user<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update refresh_tokens set revoked_at = now() where user_id = $1 and revoked_at is null",
        user_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
