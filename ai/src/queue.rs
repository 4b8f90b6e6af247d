//! The embedding queue (`embedding_queue`): one row per source whose text changed, written by
//! the materializer (blocks) and later by chat (messages, memories), drained by the worker.
//!
//! Several workers, on one node or many, share the queue. [`claim`] takes due jobs with
//! `FOR UPDATE SKIP LOCKED` and, in the same statement, *leases* them by moving
//! `next_attempt_at` forward, so no transaction stays open while a provider answers and no other
//! worker takes the job meanwhile; a worker that dies only delays its jobs until the lease ends.
//! [`complete`], [`fail`] and [`defer`] then apply only while the row still holds the hash that
//! was claimed: a newer edit re-queued the source (and made it due again), and that newer job
//! must stay.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::settings::WorkerSettings;

/// The longest wait between two attempts of a failed job.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// What a job embeds; the `source_kind` column's closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A canvas block: `scope_id` is the canvas, `source_id` the block.
    Block,
    /// A conversation message: `scope_id` is the conversation.
    Message,
    /// A memory: `scope_id` is its user.
    Memory,
}

impl SourceKind {
    pub const ALL: [SourceKind; 3] = [Self::Block, Self::Message, Self::Memory];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Message => "message",
            Self::Memory => "memory",
        }
    }

    /// The kind a `source_kind` value names; `None` for a value this build does not know.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub source_kind: SourceKind,
    pub scope_id: Uuid,
    pub source_id: Uuid,
    /// sha-256 of the source's text when it was queued (the current text may be newer).
    pub text_hash: Vec<u8>,
    /// Failed attempts before this one.
    pub attempts: u32,
}

/// Queues `(scope_id, source_id, text_hash)` sources of `kind`, due now; a source already
/// queued keeps its row (its attempts, or its dead letter, for the same text). Returns how many
/// were added.
pub async fn enqueue<'e>(
    db: impl PgExecutor<'e>,
    kind: SourceKind,
    sources: &[(Uuid, Uuid, Vec<u8>)],
) -> sqlx::Result<u64> {
    if sources.is_empty() {
        return Ok(0);
    }
    let scopes: Vec<Uuid> = sources.iter().map(|s| s.0).collect();
    let ids: Vec<Uuid> = sources.iter().map(|s| s.1).collect();
    let hashes: Vec<Vec<u8>> = sources.iter().map(|s| s.2.clone()).collect();
    let added = sqlx::query!(
        r#"insert into embedding_queue (source_kind, scope_id, source_id, text_hash)
           select $1, * from unnest($2::uuid[], $3::uuid[], $4::bytea[])
           on conflict (source_kind, scope_id, source_id) do nothing"#,
        kind.as_str(),
        &scopes,
        &ids,
        &hashes,
    )
    .execute(db)
    .await?;
    Ok(added.rows_affected())
}

/// Takes up to `limit` due jobs of `kinds`, oldest due first, and leases them for `lease`:
/// until then no other [`claim`] returns them. Jobs of other kinds stay queued untouched.
pub async fn claim<'e>(
    db: impl PgExecutor<'e>,
    kinds: &[SourceKind],
    limit: usize,
    lease: Duration,
) -> sqlx::Result<Vec<Job>> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    let rows = sqlx::query!(
        r#"update embedding_queue q
           set next_attempt_at = now() + make_interval(secs => $3)
           from (select source_kind, scope_id, source_id
                 from embedding_queue
                 where dead_at is null and next_attempt_at <= now() and source_kind = any($1)
                 order by next_attempt_at
                 limit $2
                 for update skip locked) due
           where (q.source_kind, q.scope_id, q.source_id)
                 = (due.source_kind, due.scope_id, due.source_id)
           returning q.source_kind, q.scope_id, q.source_id, q.text_hash, q.attempts"#,
        &kinds,
        i64::try_from(limit).unwrap_or(i64::MAX),
        lease.as_secs_f64(),
    )
    .fetch_all(db)
    .await?;
    let mut jobs: Vec<Job> = rows
        .into_iter()
        .filter_map(|r| {
            // Only kinds from `kinds` were selected, so every value parses.
            let source_kind = SourceKind::parse(&r.source_kind)?;
            Some(Job {
                source_kind,
                scope_id: r.scope_id,
                source_id: r.source_id,
                text_hash: r.text_hash,
                attempts: u32::try_from(r.attempts).unwrap_or(0),
            })
        })
        .collect();
    // `returning` has no order; keep one that is stable for callers and tests.
    jobs.sort_by_key(|job| (job.scope_id, job.source_id));
    Ok(jobs)
}

/// Column arrays of jobs, for `unnest`.
struct JobKeys {
    kinds: Vec<String>,
    scopes: Vec<Uuid>,
    sources: Vec<Uuid>,
    hashes: Vec<Vec<u8>>,
}

impl JobKeys {
    fn of<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Self {
        let mut keys = Self {
            kinds: Vec::new(),
            scopes: Vec::new(),
            sources: Vec::new(),
            hashes: Vec::new(),
        };
        for job in jobs {
            keys.kinds.push(job.source_kind.as_str().to_owned());
            keys.scopes.push(job.scope_id);
            keys.sources.push(job.source_id);
            keys.hashes.push(job.text_hash.clone());
        }
        keys
    }
}

/// Removes finished jobs, except those re-queued with a newer text since they were claimed.
/// Returns how many were removed.
pub async fn complete<'e>(
    db: impl PgExecutor<'e>,
    jobs: impl IntoIterator<Item = &Job>,
) -> sqlx::Result<u64> {
    let keys = JobKeys::of(jobs);
    if keys.kinds.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        r#"delete from embedding_queue q
           using unnest($1::text[], $2::uuid[], $3::uuid[], $4::bytea[]) as j(kind, scope, source, hash)
           where q.source_kind = j.kind and q.scope_id = j.scope and q.source_id = j.source
             and q.text_hash = j.hash"#,
        &keys.kinds,
        &keys.scopes,
        &keys.sources,
        &keys.hashes,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Puts jobs back for `delay` without counting an attempt: the provider is down, not the input
/// bad, so nothing is dead-lettered for it. `reason` is kept as the job's last error.
pub async fn defer<'e>(
    db: impl PgExecutor<'e>,
    jobs: impl IntoIterator<Item = &Job>,
    delay: Duration,
    reason: &str,
) -> sqlx::Result<u64> {
    let keys = JobKeys::of(jobs);
    if keys.kinds.is_empty() {
        return Ok(0);
    }
    let deferred = sqlx::query!(
        r#"update embedding_queue q
           set next_attempt_at = now() + make_interval(secs => $5), last_error = $6
           from unnest($1::text[], $2::uuid[], $3::uuid[], $4::bytea[]) as j(kind, scope, source, hash)
           where q.source_kind = j.kind and q.scope_id = j.scope and q.source_id = j.source
             and q.text_hash = j.hash"#,
        &keys.kinds,
        &keys.scopes,
        &keys.sources,
        &keys.hashes,
        delay.as_secs_f64(),
        reason,
    )
    .execute(db)
    .await?;
    Ok(deferred.rows_affected())
}

/// What [`fail`] did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Tried again after the delay.
    Retrying { delay: Duration },
    /// Out of attempts: a dead letter until its text changes or [`retry_dead`] revives it.
    Dead,
    /// The job was re-queued with a newer text meanwhile; that job stands, with its attempts.
    Superseded,
}

/// Counts a failed attempt of `job`: retried after a doubling, jittered delay, or dead-lettered
/// once it has had `settings.max_attempts`.
pub async fn fail<'e>(
    db: impl PgExecutor<'e>,
    job: &Job,
    error: &str,
    settings: &WorkerSettings,
) -> sqlx::Result<Failure> {
    let delay = retry_delay(settings.retry_backoff, job.attempts);
    let max_attempts = i32::try_from(settings.max_attempts.max(1)).unwrap_or(i32::MAX);
    let dead = sqlx::query_scalar!(
        r#"update embedding_queue
           set attempts = attempts + 1, last_error = $5,
               next_attempt_at = now() + make_interval(secs => $6),
               dead_at = case when attempts + 1 >= $7 then now() end
           where source_kind = $1 and scope_id = $2 and source_id = $3 and text_hash = $4
           returning dead_at is not null as "dead!""#,
        job.source_kind.as_str(),
        job.scope_id,
        job.source_id,
        &job.text_hash,
        error,
        delay.as_secs_f64(),
        max_attempts,
    )
    .fetch_optional(db)
    .await?;
    Ok(match dead {
        None => Failure::Superseded,
        Some(true) => Failure::Dead,
        Some(false) => Failure::Retrying { delay },
    })
}

/// The wait after a job's `attempts`-th failure (0 for the first): `base` doubling per attempt,
/// capped at [`MAX_RETRY_DELAY`], then drawn uniformly from its upper half so that jobs failed
/// together do not all come back together.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    let full = base
        .checked_mul(2u32.saturating_pow(attempts.min(31)))
        .unwrap_or(MAX_RETRY_DELAY)
        .min(MAX_RETRY_DELAY);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Revives every dead letter: due now, attempts from zero. Returns how many.
pub async fn retry_dead<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<u64> {
    let revived = sqlx::query!(
        r#"update embedding_queue set dead_at = null, attempts = 0, next_attempt_at = now()
           where dead_at is not null"#
    )
    .execute(db)
    .await?;
    Ok(revived.rows_affected())
}

/// Jobs of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// Not dead, due or not.
    pub waiting: i64,
    pub due: i64,
    pub dead: i64,
}

/// The queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Jobs not dead-lettered, due or not (leased and backing-off jobs included).
    pub waiting: i64,
    /// Waiting jobs whose time has come.
    pub due: i64,
    /// Since the oldest waiting job was queued.
    #[serde(rename = "oldest_age_seconds", serialize_with = "seconds")]
    pub oldest_age: Option<Duration>,
    /// Dead letters.
    pub dead: i64,
    pub by_kind: BTreeMap<SourceKind, KindStats>,
}

fn seconds<S: serde::Serializer>(age: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match age {
        Some(age) => s.serialize_some(&age.as_secs_f64()),
        None => s.serialize_none(),
    }
}

pub async fn stats<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<QueueStats> {
    let rows = sqlx::query!(
        r#"select source_kind,
                  count(*) filter (where dead_at is null) as "waiting!",
                  count(*) filter (where dead_at is null and next_attempt_at <= now()) as "due!",
                  count(*) filter (where dead_at is not null) as "dead!",
                  extract(epoch from now() - min(enqueued_at) filter (where dead_at is null))::float8
                      as oldest_age_seconds
           from embedding_queue
           group by source_kind"#
    )
    .fetch_all(db)
    .await?;
    let mut stats = QueueStats::default();
    let mut oldest: Option<f64> = None;
    for row in rows {
        stats.waiting += row.waiting;
        stats.due += row.due;
        stats.dead += row.dead;
        if let Some(age) = row.oldest_age_seconds {
            oldest = Some(oldest.map_or(age, |o| o.max(age)));
        }
        if let Some(kind) = SourceKind::parse(&row.source_kind) {
            stats.by_kind.insert(
                kind,
                KindStats {
                    waiting: row.waiting,
                    due: row.due,
                    dead: row.dead,
                },
            );
        }
    }
    stats.oldest_age = oldest.map(|s| Duration::from_secs_f64(s.max(0.0)));
    Ok(stats)
}

/// A job that ran out of attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub source_kind: String,
    pub scope_id: Uuid,
    pub source_id: Uuid,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
}

/// The `limit` most recent dead letters.
pub async fn dead_letters<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as!(
        DeadLetter,
        r#"select source_kind, scope_id, source_id, attempts, last_error, dead_at as "dead_at!"
           from embedding_queue
           where dead_at is not null
           order by dead_at desc, scope_id, source_id
           limit $1"#,
        limit
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_kind_round_trips_through_its_column_value() {
        for kind in SourceKind::ALL {
            assert_eq!(SourceKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SourceKind::parse("calendar_event"), None);
    }

    #[test]
    fn the_retry_delay_doubles_per_attempt_within_its_jitter() {
        let base = Duration::from_secs(2);
        for attempts in 0..6 {
            let full = base * 2u32.pow(attempts);
            for _ in 0..50 {
                let delay = retry_delay(base, attempts);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "{delay:?} for {attempts}"
                );
            }
        }
    }

    #[test]
    fn the_retry_delay_is_capped_at_an_hour() {
        for attempts in [12, 31, 1000] {
            let delay = retry_delay(Duration::from_secs(2), attempts);
            assert!(delay <= MAX_RETRY_DELAY && delay >= MAX_RETRY_DELAY / 2);
        }
    }
}
