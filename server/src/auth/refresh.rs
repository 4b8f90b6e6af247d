//! Refresh tokens: opaque strings stored only as SHA-256, rotated on every use. Tokens
//! descending from one sign-in form a family.
//!
//! | presented token | answer |
//! |---|---|
//! | live | rotated: it is marked used and its successor is issued |
//! | used less than the grace window ago | the successor again (the newest live one down the chain) |
//! | used longer ago | theft: the whole family is revoked |
//! | revoked (sign-out, or a family revoked for theft) | refused, nothing more happens |
//! | expired / unknown | refused |
//! | its sign-in is older than the session's maximum lifetime | refused (`session_expired`) |
//!
//! Every token of a family also carries the family's absolute end (`session_expires_at`, the
//! sign-in plus `POTENTIA_SESSION_MAX_LIFETIME_SECS`): rotation never extends a sign-in past it.
//!
//! The grace window lets two tabs that refresh with one token at once both stay signed in. A
//! successor is derived from its predecessor (HMAC-SHA256 under the server's secret), so the
//! server can hand it out again without ever storing a token in the clear.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::secret::{self, digest};

/// How many rotations inside one grace window a replay may walk down to find the live token.
const MAX_REPLAY_CHAIN: usize = 8;

/// A freshly issued token; `token` is shown to the client once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedRefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// When the sign-in ends, however often it refreshes.
    pub session_expires_at: DateTime<Utc>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was valid: it is now used and `next` replaces it.
    Rotated {
        user_id: Uuid,
        next: IssuedRefreshToken,
    },
    /// The token was used moments ago (inside the grace window): `next` is the live token that
    /// descends from it, handed out again.
    Replayed {
        user_id: Uuid,
        next: IssuedRefreshToken,
    },
    /// The token had already been used, outside the grace window: its family is now revoked.
    Reused {
        user_id: Uuid,
        family_id: Uuid,
    },
    /// The token was revoked (signed out, or its family revoked for reuse).
    Revoked,
    Expired,
    /// The sign-in reached its maximum lifetime.
    SessionExpired,
    Unknown,
}

/// `ttl` from now, to the microsecond Postgres keeps, so an answer shows what is stored.
fn expiry(ttl: Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    (Utc::now() + ttl).trunc_subsecs(6)
}

/// Starts a new family: a sign-in that lasts at most `max_lifetime`.
pub async fn issue<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    ttl: Duration,
    max_lifetime: Duration,
) -> sqlx::Result<IssuedRefreshToken> {
    let session_expires_at = expiry(max_lifetime);
    let issued = IssuedRefreshToken {
        id: Uuid::now_v7(),
        family_id: Uuid::now_v7(),
        expires_at: expiry(ttl).min(session_expires_at),
        session_expires_at,
        token: secret::generate(),
    };
    insert(db, user_id, &issued).await?;
    Ok(issued)
}

/// The token that replaces `presented`: derived, so a replay inside the grace window can
/// recompute it.
fn successor(key: &[u8], presented: &str) -> String {
    // Hmac accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"potentia refresh successor\0");
    mac.update(presented.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

async fn insert<'e>(
    db: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    issued: &IssuedRefreshToken,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into refresh_tokens (id, user_id, family_id, token_hash, expires_at, session_expires_at)
           values ($1, $2, $3, $4, $5, $6)"#,
        issued.id,
        user_id,
        issued.family_id,
        digest(&issued.token),
        issued.expires_at,
        issued.session_expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// How [`rotate`] treats a presented token.
#[derive(Debug, Clone)]
pub struct RotationPolicy<'a> {
    /// Key of the successor derivation: the server's signing secret.
    pub key: &'a [u8],
    pub ttl: Duration,
    /// How long a used token still answers with its successor.
    pub grace: Duration,
}

struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    session_expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

async fn lock_token(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<TokenRow>> {
    sqlx::query_as!(
        TokenRow,
        r#"select id, user_id, family_id, expires_at, session_expires_at, used_at, revoked_at
           from refresh_tokens where token_hash = $1 for update"#,
        digest(token),
    )
    .fetch_optional(conn)
    .await
}

fn used_within(used_at: Option<DateTime<Utc>>, grace: Duration) -> bool {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    used_at.is_some_and(|used_at| Utc::now() - used_at <= grace)
}

/// Rotates `presented` inside the caller's transaction. The row lock makes two concurrent
/// rotations of one token serialize: the second sees the first's use and, inside the grace
/// window, answers the same successor.
pub async fn rotate(
    conn: &mut PgConnection,
    presented: &str,
    policy: &RotationPolicy<'_>,
) -> sqlx::Result<Rotation> {
    let Some(row) = lock_token(&mut *conn, presented).await? else {
        return Ok(Rotation::Unknown);
    };
    if row.revoked_at.is_some() {
        return Ok(Rotation::Revoked);
    }
    if row.used_at.is_some() {
        if used_within(row.used_at, policy.grace) {
            if let Some(next) = live_descendant(&mut *conn, presented, policy).await? {
                return Ok(Rotation::Replayed {
                    user_id: row.user_id,
                    next,
                });
            }
        }
        revoke_family(&mut *conn, row.family_id).await?;
        return Ok(Rotation::Reused {
            user_id: row.user_id,
            family_id: row.family_id,
        });
    }
    if row.session_expires_at <= Utc::now() {
        return Ok(Rotation::SessionExpired);
    }
    if row.expires_at <= Utc::now() {
        return Ok(Rotation::Expired);
    }
    let next = IssuedRefreshToken {
        id: Uuid::now_v7(),
        family_id: row.family_id,
        expires_at: expiry(policy.ttl).min(row.session_expires_at),
        session_expires_at: row.session_expires_at,
        token: successor(policy.key, presented),
    };
    insert(&mut *conn, row.user_id, &next).await?;
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

/// The live token down the chain of successors of `used`, when every link was used inside the
/// grace window; `None` when the chain was revoked, expired or went stale.
async fn live_descendant(
    conn: &mut PgConnection,
    used: &str,
    policy: &RotationPolicy<'_>,
) -> sqlx::Result<Option<IssuedRefreshToken>> {
    let mut token = successor(policy.key, used);
    for _ in 0..MAX_REPLAY_CHAIN {
        let Some(row) = lock_token(&mut *conn, &token).await? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() || row.expires_at <= Utc::now() {
            return Ok(None);
        }
        if row.used_at.is_none() {
            return Ok(Some(IssuedRefreshToken {
                id: row.id,
                family_id: row.family_id,
                token,
                expires_at: row.expires_at,
                session_expires_at: row.session_expires_at,
            }));
        }
        if !used_within(row.used_at, policy.grace) {
            return Ok(None);
        }
        token = successor(policy.key, &token);
    }
    Ok(None)
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

/// Whether the sign-in `family_id` was revoked (signed out, or reused).
pub async fn family_revoked<'e>(
    db: impl sqlx::PgExecutor<'e>,
    family_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from refresh_tokens
                          where family_id = $1 and revoked_at is not null) as "revoked!""#,
        family_id,
    )
    .fetch_one(db)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successor_is_a_function_of_its_predecessor_and_the_key() {
        let a = successor(b"key one", "token");
        assert_eq!(a, successor(b"key one", "token"));
        assert_ne!(a, successor(b"key two", "token"));
        assert_ne!(a, successor(b"key one", "other token"));
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn the_grace_window_counts_from_the_use() {
        let grace = Duration::from_secs(10);
        assert!(used_within(Some(Utc::now()), grace));
        assert!(!used_within(
            Some(Utc::now() - chrono::Duration::seconds(11)),
            grace
        ));
        assert!(!used_within(None, grace));
        assert!(!used_within(
            Some(Utc::now() - chrono::Duration::seconds(1)),
            Duration::ZERO
        ));
    }
}
