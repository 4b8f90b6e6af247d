//! Email verification: one-time links that prove an account receives mail at its address.
//!
//! Sign-up queues the first link through the outbox, in the sign-up's transaction; a signed-in
//! user may ask for another ([`resend_allowed`]: one a minute, five a day). A link verifies the
//! address it was sent to, once, within [`LINK_LIFETIME`], and only while the account still has
//! that address. Only the SHA-256 of a token is stored.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::email::{EmailOutbox, NewEmail};
use crate::secret;
use crate::users::db as users_db;

/// Mail kind of a verification link.
pub const KIND_EMAIL_VERIFICATION: &str = "email_verification";
/// How long a link works.
pub const LINK_LIFETIME: Duration = Duration::hours(24);
/// Shortest wait between two links of one account.
pub const RESEND_INTERVAL: Duration = Duration::seconds(60);
/// Most links one account is sent in a day, the sign-up's included.
pub const MAX_LINKS_PER_DAY: i64 = 5;

/// Records a new link for `user_id`'s `email`; returns the token to put in the mail.
async fn issue(conn: &mut PgConnection, user_id: Uuid, email: &str) -> sqlx::Result<String> {
    let token = secret::generate();
    sqlx::query!(
        r#"insert into email_verifications (id, user_id, email, token_hash, expires_at)
           values ($1, $2, $3, $4, $5)"#,
        Uuid::now_v7(),
        user_id,
        email,
        secret::digest(&token),
        Utc::now() + LINK_LIFETIME,
    )
    .execute(conn)
    .await?;
    Ok(token)
}

/// Records a new link for `user_id`'s `email` and queues its mail in the caller's transaction
/// (wake the outbox after the commit).
pub async fn send_link(
    conn: &mut PgConnection,
    outbox: &EmailOutbox,
    app_url: &str,
    user_id: Uuid,
    email: &str,
) -> sqlx::Result<()> {
    let token = issue(&mut *conn, user_id, email).await?;
    outbox
        .enqueue(&mut *conn, &mail(app_url, email, &token))
        .await?;
    Ok(())
}

/// The mail carrying a link.
fn mail(app_url: &str, email: &str, token: &str) -> NewEmail {
    NewEmail {
        to_address: email.to_owned(),
        subject: "Confirm your email address for Potentia".to_owned(),
        body_text: format!(
            "Confirm that this address is yours: {app_url}/verify-email?token={token}\n\n\
             The link works once, for 24 hours. Until you confirm, invitations sent to this \
             address stay hidden from your account. If you did not sign up, ignore this email.\n"
        ),
        body_html: None,
        kind: KIND_EMAIL_VERIFICATION.to_owned(),
    }
}

/// Why a resend is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendRefusal {
    /// Wait this many seconds.
    TooSoon { retry_after_secs: u64 },
}

/// Whether `user_id` may be sent another link now (one a minute, [`MAX_LINKS_PER_DAY`] a day).
pub async fn resend_allowed(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<Result<(), ResendRefusal>> {
    let sent = sqlx::query!(
        r#"select count(*) as "count!", max(created_at) as latest, min(created_at) as oldest
           from email_verifications
           where user_id = $1 and created_at > now() - interval '1 day'"#,
        user_id,
    )
    .fetch_one(conn)
    .await?;
    let now = Utc::now();
    let wait_until = |at: DateTime<Utc>| {
        let secs = (at - now).num_seconds().max(1);
        Err(ResendRefusal::TooSoon {
            retry_after_secs: u64::try_from(secs).unwrap_or(1),
        })
    };
    if sent.count >= MAX_LINKS_PER_DAY {
        if let Some(oldest) = sent.oldest {
            return Ok(wait_until(oldest + Duration::days(1)));
        }
    }
    if let Some(latest) = sent.latest.filter(|latest| now - *latest < RESEND_INTERVAL) {
        return Ok(wait_until(latest + RESEND_INTERVAL));
    }
    Ok(Ok(()))
}

/// What presenting a token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The account's address is verified now; `newly` unless it already was.
    Verified {
        user_id: Uuid,
        email: String,
        newly: bool,
    },
    /// No such token, or one already used.
    Unknown,
    Expired,
    /// The account's address changed since the link was sent.
    AddressChanged,
}

/// Uses `token` inside the caller's transaction.
pub async fn verify(conn: &mut PgConnection, token: &str) -> sqlx::Result<Verified> {
    let Some(link) = sqlx::query!(
        r#"select id, user_id, email, expires_at, used_at from email_verifications
           where token_hash = $1 for update"#,
        secret::digest(token),
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Verified::Unknown);
    };
    if link.used_at.is_some() {
        return Ok(Verified::Unknown);
    }
    if link.expires_at <= Utc::now() {
        return Ok(Verified::Expired);
    }
    sqlx::query!(
        "update email_verifications set used_at = now() where id = $1",
        link.id
    )
    .execute(&mut *conn)
    .await?;
    let newly = users_db::mark_email_verified(&mut *conn, link.user_id, &link.email).await?;
    if !newly {
        // Already verified (a second link of the same address) is fine; another address is not.
        let user = users_db::find(&mut *conn, link.user_id).await?;
        let same_address = user.as_ref().is_some_and(|u| {
            u.email_verified
                && u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(&link.email))
        });
        if !same_address {
            return Ok(Verified::AddressChanged);
        }
    }
    Ok(Verified::Verified {
        user_id: link.user_id,
        email: link.email,
        newly,
    })
}
