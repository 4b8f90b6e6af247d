//! The SQL over `email_outbox`: queue a message, claim due messages for delivery, and record how
//! an attempt ended. Every function takes any `sqlx::PgExecutor`, so mail can be queued inside
//! the transaction of the change that causes it.
//!
//! A claim is a lease: the claimed rows turn `sending`, their `attempts` goes up by one and their
//! `next_attempt_at` becomes the lease's end. Rows are picked with `FOR UPDATE SKIP LOCKED`, so
//! senders on several nodes never claim the same message; a sender that dies leaves its rows to
//! be claimed again once the lease has run out. The recording functions are fenced by the
//! attempt number, so a sender whose lease was taken over cannot overwrite the newer outcome.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use uuid::Uuid;

/// Kind of the mail that invites someone to a workspace.
pub const KIND_WORKSPACE_INVITATION: &str = "workspace_invitation";
pub const KIND_CANVAS_INVITATION: &str = "canvas_invitation";

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmail {
    /// The recipient: `ada@example.org` or `Ada Lovelace <ada@example.org>`.
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    /// Sent as the `text/html` alternative of `body_text` when present.
    pub body_html: Option<String>,
    /// What the mail is for, e.g. [`KIND_WORKSPACE_INVITATION`].
    pub kind: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailStatus {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl EmailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for EmailStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "sending" => Ok(Self::Sending),
            "sent" => Ok(Self::Sent),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown email status {other:?}")),
        }
    }
}

/// A queued message as stored.
#[derive(Debug, Clone)]
pub struct OutboxEmail {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub kind: String,
    pub status: EmailStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message claimed for delivery by one sender.
#[derive(Debug, Clone)]
pub struct ClaimedEmail {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub kind: String,
    /// The number of this attempt, counting from 1; it fences the claim.
    pub attempt: i32,
    pub max_attempts: i32,
}

/// How a failed attempt left its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The message is `pending` again and due at this time.
    RetryAt(DateTime<Utc>),
    /// That was the last allowed attempt: the message is `failed`.
    GaveUp,
}

/// The wait after a failed attempt: `base · 2^(attempt − 1)`, at most `cap`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest wait after failed attempt `attempt` (counting from 1).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 31) as u32;
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// The wait after failed attempt `attempt`: uniformly random between half the ceiling and
    /// the ceiling, so that mail that failed together does not retry in lockstep.
    pub fn delay(&self, attempt: i32) -> Duration {
        self.ceiling(attempt)
            .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// Queues a message; it is due at once. Returns its id.
pub async fn enqueue<'e>(
    db: impl sqlx::PgExecutor<'e>,
    email: &NewEmail,
    max_attempts: i32,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"insert into email_outbox (id, to_address, subject, body_text, body_html, kind, max_attempts)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        id,
        email.to_address,
        email.subject,
        email.body_text,
        email.body_html,
        email.kind,
        max_attempts,
    )
    .execute(db)
    .await?;
    Ok(id)
}

/// Claims up to `limit` due messages for `lease`, oldest due first, skipping rows another
/// sender is claiming. Messages whose lease ran out are claimed again; those whose interrupted
/// attempt was their last are marked `failed` instead.
pub async fn claim_due<'e>(
    db: impl sqlx::PgExecutor<'e>,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<ClaimedEmail>> {
    sqlx::query_as!(
        ClaimedEmail,
        r#"with exhausted as (
               update email_outbox
               set status = 'failed',
                   last_error = 'the sender stopped during the last allowed attempt'
               where status = 'sending' and next_attempt_at <= now() and attempts >= max_attempts
           ), due as (
               select id from email_outbox
               where status in ('pending', 'sending')
                 and next_attempt_at <= now()
                 and attempts < max_attempts
               order by next_attempt_at
               limit $1
               for update skip locked
           )
           update email_outbox o
           set status = 'sending',
               attempts = o.attempts + 1,
               next_attempt_at = now() + make_interval(secs => $2)
           from due
           where o.id = due.id
           returning o.id, o.to_address, o.subject, o.body_text, o.body_html, o.kind,
                     o.attempts as attempt, o.max_attempts"#,
        limit,
        lease.as_secs_f64(),
    )
    .fetch_all(db)
    .await
}

/// Records a delivered message. False when the claim was no longer this sender's.
pub async fn mark_sent<'e>(
    db: impl sqlx::PgExecutor<'e>,
    email: &ClaimedEmail,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"update email_outbox
           set status = 'sent', sent_at = now(), last_error = null
           where id = $1 and status = 'sending' and attempts = $2"#,
        email.id,
        email.attempt,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a transient failure: the message is due again after `backoff`'s delay for this
/// attempt, or `failed` when this was its last allowed attempt. `None` when the claim was no
/// longer this sender's.
pub async fn mark_failed_attempt<'e>(
    db: impl sqlx::PgExecutor<'e>,
    email: &ClaimedEmail,
    error: &str,
    backoff: &Backoff,
) -> sqlx::Result<Option<AttemptOutcome>> {
    let row = sqlx::query!(
        r#"update email_outbox
           set status = case when attempts >= max_attempts then 'failed' else 'pending' end,
               next_attempt_at = case when attempts >= max_attempts then next_attempt_at
                                      else now() + make_interval(secs => $3) end,
               last_error = $4
           where id = $1 and status = 'sending' and attempts = $2
           returning status, next_attempt_at"#,
        email.id,
        email.attempt,
        backoff.delay(email.attempt).as_secs_f64(),
        error,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| {
        if row.status == EmailStatus::Failed.as_str() {
            AttemptOutcome::GaveUp
        } else {
            AttemptOutcome::RetryAt(row.next_attempt_at)
        }
    }))
}

/// Records a permanent failure (the server refused the message for good, or it cannot be
/// built): the message is `failed` whatever attempts it had left. False when the claim was no
/// longer this sender's.
pub async fn mark_undeliverable<'e>(
    db: impl sqlx::PgExecutor<'e>,
    email: &ClaimedEmail,
    error: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"update email_outbox
           set status = 'failed', last_error = $3
           where id = $1 and status = 'sending' and attempts = $2"#,
        email.id,
        email.attempt,
        error,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back a claimed message that was not attempted (the sender is stopping): it is
/// `pending` and due at once, and the claim does not count as an attempt.
pub async fn release<'e>(
    db: impl sqlx::PgExecutor<'e>,
    email: &ClaimedEmail,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"update email_outbox
           set status = 'pending', attempts = attempts - 1, next_attempt_at = now()
           where id = $1 and status = 'sending' and attempts = $2"#,
        email.id,
        email.attempt,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One queued message by id.
pub async fn find<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<OutboxEmail>> {
    let row = sqlx::query!(
        r#"select id, to_address, subject, body_text, body_html, kind, status, attempts,
                  max_attempts, next_attempt_at, last_error, created_at, sent_at
           from email_outbox where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        let status = row
            .status
            .parse::<EmailStatus>()
            .map_err(|err| sqlx::Error::Decode(err.into()))?;
        Ok(OutboxEmail {
            id: row.id,
            to_address: row.to_address,
            subject: row.subject,
            body_text: row.body_text,
            body_html: row.body_html,
            kind: row.kind,
            status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
            sent_at: row.sent_at,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Backoff = Backoff {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(3600),
    };

    #[test]
    fn the_first_retry_waits_at_most_the_base() {
        assert_eq!(DEFAULT.ceiling(1), Duration::from_secs(30));
    }

    #[test]
    fn each_further_failure_doubles_the_wait() {
        let ceilings: Vec<u64> = (1..=7).map(|n| DEFAULT.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [30, 60, 120, 240, 480, 960, 1920]);
    }

    #[test]
    fn the_wait_never_exceeds_the_cap() {
        assert_eq!(DEFAULT.ceiling(8), Duration::from_secs(3600));
        assert_eq!(DEFAULT.ceiling(1000), Duration::from_secs(3600));
        assert_eq!(DEFAULT.ceiling(i32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn attempt_zero_or_below_waits_the_base() {
        assert_eq!(DEFAULT.ceiling(0), Duration::from_secs(30));
        assert_eq!(DEFAULT.ceiling(-5), Duration::from_secs(30));
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_the_ceiling_and_the_ceiling() {
        for attempt in 1..=10 {
            let ceiling = DEFAULT.ceiling(attempt);
            for _ in 0..200 {
                let delay = DEFAULT.delay(attempt);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| DEFAULT.delay(3)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn a_millisecond_base_backs_off_in_milliseconds() {
        let fast = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(300),
        };
        let ceilings: Vec<u128> = (1..=5).map(|n| fast.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 300, 300]);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in [
            EmailStatus::Pending,
            EmailStatus::Sending,
            EmailStatus::Sent,
            EmailStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse::<EmailStatus>(), Ok(status));
        }
    }
}
