//! What the assistant knows about a user: the tables `memories`, `memory_history` and
//! `memory_embeddings`.
//!
//! Memories are bi-temporal. World time: a memory holds from `valid_at` until `invalid_at` (a
//! contradiction sets `invalid_at`; the row stays, so "what did they prefer last month" has an
//! answer). System time: a row holds from `created_at` until `expired_at` (an edit by hand
//! expires the row and writes its replacement). "Valid now" means valid in both. Every change
//! writes a `memory_history` row saying what changed and why. Forgetting deletes the row, its
//! history and its embedding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::queue::{self, SourceKind};
use crate::store::content_hash;

/// The longest memory, in characters.
pub const MAX_MEMORY_CHARS: usize = 2000;
/// Memories a user may have (valid or not; forgetting frees room).
pub const MAX_MEMORIES_PER_USER: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    Fact,
    Preference,
    /// Something the user wants the assistant to always or never do.
    Rule,
}

impl MemoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fact => "fact",
            Self::Preference => "preference",
            Self::Rule => "rule",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "fact" => Some(Self::Fact),
            "preference" => Some(Self::Preference),
            "rule" => Some(Self::Rule),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Assessor,
    User,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub id: Uuid,
    pub kind: MemoryKind,
    pub text: String,
    pub valid_at: DateTime<Utc>,
    pub invalid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expired_at: Option<DateTime<Utc>>,
    pub origin: Origin,
    pub source_message_id: Option<Uuid>,
    pub source_conversation_id: Option<Uuid>,
}

impl Memory {
    pub fn is_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.expired_at.is_none()
            && self.valid_at <= at
            && self.invalid_at.is_none_or(|end| end > at)
    }
}

struct Row {
    id: Uuid,
    kind: String,
    text: String,
    valid_at: DateTime<Utc>,
    invalid_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    expired_at: Option<DateTime<Utc>>,
    origin: String,
    source_message_id: Option<Uuid>,
    source_conversation_id: Option<Uuid>,
}

impl From<Row> for Memory {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            kind: MemoryKind::parse(&r.kind).unwrap_or(MemoryKind::Fact),
            text: r.text,
            valid_at: r.valid_at,
            invalid_at: r.invalid_at,
            created_at: r.created_at,
            expired_at: r.expired_at,
            origin: if r.origin == "user" {
                Origin::User
            } else {
                Origin::Assessor
            },
            source_message_id: r.source_message_id,
            source_conversation_id: r.source_conversation_id,
        }
    }
}

/// A memory to store.
#[derive(Debug, Clone)]
pub struct NewMemory<'a> {
    pub user_id: Uuid,
    pub kind: MemoryKind,
    pub text: &'a str,
    pub valid_at: DateTime<Utc>,
    pub origin: Origin,
    pub source_message_id: Option<Uuid>,
    pub source_conversation_id: Option<Uuid>,
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// Stores a memory, its `add` history row, and queues its embedding.
pub async fn add(db: &mut PgConnection, new: &NewMemory<'_>) -> sqlx::Result<Memory> {
    let row = sqlx::query_as!(
        Row,
        r#"insert into memories (id, user_id, kind, text, valid_at, created_at, origin,
                                 source_message_id, source_conversation_id)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           returning id, kind, text, valid_at, invalid_at, created_at, expired_at, origin,
                     source_message_id, source_conversation_id"#,
        Uuid::now_v7(),
        new.user_id,
        new.kind.as_str(),
        new.text,
        new.valid_at,
        new.at,
        if new.origin == Origin::User {
            "user"
        } else {
            "assessor"
        },
        new.source_message_id,
        new.source_conversation_id,
    )
    .fetch_one(&mut *db)
    .await?;
    history(
        &mut *db,
        row.id,
        new.user_id,
        "add",
        None,
        Some(new.text),
        None,
        new.reason,
        new.source_message_id,
        new.at,
    )
    .await?;
    queue::enqueue(
        &mut *db,
        SourceKind::Memory,
        &[(new.user_id, row.id, content_hash(new.text))],
    )
    .await?;
    Ok(row.into())
}

#[allow(clippy::too_many_arguments)]
async fn history(
    db: &mut PgConnection,
    memory: Uuid,
    user: Uuid,
    event: &str,
    old_text: Option<&str>,
    new_text: Option<&str>,
    replaced_by: Option<Uuid>,
    reason: &str,
    message: Option<Uuid>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into memory_history (memory_id, user_id, event, old_text, new_text, replaced_by,
                                       reason, message_id, at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        memory,
        user,
        event,
        old_text,
        new_text,
        replaced_by,
        reason,
        message,
        at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ends a memory's validity at `at` (a contradiction or a retraction), with the reason and the
/// memory that replaced it, if any. Returns whether it was valid until then.
#[allow(clippy::too_many_arguments)]
pub async fn invalidate(
    db: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
    replaced_by: Option<Uuid>,
    reason: &str,
    message: Option<Uuid>,
) -> sqlx::Result<bool> {
    let old = sqlx::query_scalar!(
        r#"update memories set invalid_at = greatest($3, valid_at)
           where id = $1 and user_id = $2 and invalid_at is null and expired_at is null
           returning text"#,
        id,
        user,
        at,
    )
    .fetch_optional(&mut *db)
    .await?;
    let Some(old) = old else {
        return Ok(false);
    };
    let event = if replaced_by.is_some() {
        "update"
    } else {
        "invalidate"
    };
    history(
        db,
        id,
        user,
        event,
        Some(&old),
        None,
        replaced_by,
        reason,
        message,
        at,
    )
    .await?;
    Ok(true)
}

/// A user's change to a memory: text, kind, or the end of its validity.
#[derive(Debug, Clone, Default)]
pub struct MemoryEdit<'a> {
    pub text: Option<&'a str>,
    pub kind: Option<MemoryKind>,
    /// `Some(None)` makes it valid again.
    pub invalid_at: Option<Option<DateTime<Utc>>>,
}

/// Applies a user's edit. A new text or kind expires the row and writes its replacement (same
/// world validity, a new id, an `edit` history row on both); a change of `invalid_at` alone is
/// made in place. `None` when the memory is not the user's or is expired.
pub async fn edit(
    db: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    change: &MemoryEdit<'_>,
    at: DateTime<Utc>,
) -> sqlx::Result<Option<Memory>> {
    let Some(current) = find(&mut *db, user, id)
        .await?
        .filter(|m| m.expired_at.is_none())
    else {
        return Ok(None);
    };
    let mut target = current.clone();
    let rewritten = change.text.is_some_and(|t| t != current.text)
        || change.kind.is_some_and(|k| k != current.kind);
    if rewritten {
        sqlx::query!("update memories set expired_at = $2 where id = $1", id, at)
            .execute(&mut *db)
            .await?;
        let text = change.text.unwrap_or(&current.text);
        let row = sqlx::query_as!(
            Row,
            r#"insert into memories (id, user_id, kind, text, valid_at, invalid_at, created_at,
                                     origin, source_message_id, source_conversation_id)
               values ($1, $2, $3, $4, $5, $6, $7, 'user', $8, $9)
               returning id, kind, text, valid_at, invalid_at, created_at, expired_at, origin,
                         source_message_id, source_conversation_id"#,
            Uuid::now_v7(),
            user,
            change.kind.unwrap_or(current.kind).as_str(),
            text,
            current.valid_at,
            current.invalid_at,
            at,
            current.source_message_id,
            current.source_conversation_id,
        )
        .fetch_one(&mut *db)
        .await?;
        history(
            &mut *db,
            id,
            user,
            "edit",
            Some(&current.text),
            Some(text),
            Some(row.id),
            "edited by the user",
            None,
            at,
        )
        .await?;
        history(
            &mut *db,
            row.id,
            user,
            "edit",
            Some(&current.text),
            Some(text),
            None,
            "edited by the user",
            None,
            at,
        )
        .await?;
        queue::enqueue(
            &mut *db,
            SourceKind::Memory,
            &[(user, row.id, content_hash(text))],
        )
        .await?;
        target = row.into();
    }
    if let Some(invalid_at) = change.invalid_at {
        let invalid_at = invalid_at.map(|end| end.max(target.valid_at));
        sqlx::query!(
            "update memories set invalid_at = $2 where id = $1",
            target.id,
            invalid_at
        )
        .execute(&mut *db)
        .await?;
        let event = if invalid_at.is_some() {
            "invalidate"
        } else {
            "edit"
        };
        history(
            &mut *db,
            target.id,
            user,
            event,
            Some(&target.text),
            Some(&target.text),
            None,
            "changed by the user",
            None,
            at,
        )
        .await?;
        target.invalid_at = invalid_at;
    }
    Ok(Some(target))
}

/// Forgets a memory: the row, its history and its embedding. Returns whether it existed.
pub async fn forget<'e>(db: impl PgExecutor<'e>, user: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from memories where id = $1 and user_id = $2",
        id,
        user
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many memory rows `user` has (expired rows of edits included).
pub async fn count<'e>(db: impl PgExecutor<'e>, user: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from memories where user_id = $1"#,
        user
    )
    .fetch_one(db)
    .await
}

pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Memory>> {
    let row = sqlx::query_as!(
        Row,
        r#"select id, kind, text, valid_at, invalid_at, created_at, expired_at, origin,
                  source_message_id, source_conversation_id
           from memories where id = $1 and user_id = $2"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// Where a page of memories ends (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryAfter {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// A user's memories, newest first: the ones valid at `at`, or with `include_invalid` also
/// those whose validity ended (never the expired rows an edit replaced).
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    at: DateTime<Utc>,
    include_invalid: bool,
    after: Option<MemoryAfter>,
    limit: i64,
) -> sqlx::Result<Vec<Memory>> {
    let rows = sqlx::query_as!(
        Row,
        r#"select id, kind, text, valid_at, invalid_at, created_at, expired_at, origin,
                  source_message_id, source_conversation_id
           from memories
           where user_id = $1 and expired_at is null
             and ($3 or (valid_at <= $2 and (invalid_at is null or invalid_at > $2)))
             and ($4::timestamptz is null or (created_at, id) < ($4, $5))
           order by created_at desc, id desc
           limit $6"#,
        user,
        at,
        include_invalid,
        after.map(|a| a.created_at),
        after.map(|a| a.id),
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Memories valid at `at`, most similar to `embedding` first (those not yet embedded after the
/// embedded ones, newest first); `similarity` is `None` for those.
pub async fn relevant<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    at: DateTime<Utc>,
    embedding: Option<(&str, &str)>,
    limit: i64,
) -> sqlx::Result<Vec<(Memory, Option<f64>)>> {
    let rows = sqlx::query!(
        r#"with q as materialized (select $3::text::vector as v),
           near as (
               select e.memory_id, e.embedding <=> q.v as distance
               from memory_embeddings e, q
               where e.user_id = $1 and e.model = $4
           )
           select m.id, m.kind, m.text, m.valid_at, m.invalid_at, m.created_at, m.expired_at,
                  m.origin, m.source_message_id, m.source_conversation_id,
                  1 - near.distance as similarity
           from memories m
           left join near on near.memory_id = m.id
           where m.user_id = $1 and m.expired_at is null and m.valid_at <= $2
             and (m.invalid_at is null or m.invalid_at > $2)
           order by near.distance nulls last, m.created_at desc, m.id desc
           limit $5"#,
        user,
        at,
        embedding.map(|e| e.0),
        embedding.map(|e| e.1),
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let memory = Memory::from(Row {
                id: r.id,
                kind: r.kind,
                text: r.text,
                valid_at: r.valid_at,
                invalid_at: r.invalid_at,
                created_at: r.created_at,
                expired_at: r.expired_at,
                origin: r.origin,
                source_message_id: r.source_message_id,
                source_conversation_id: r.source_conversation_id,
            });
            (memory, r.similarity)
        })
        .collect())
}

/// One row of a memory's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub event: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    pub replaced_by: Option<Uuid>,
    pub reason: String,
    pub message_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

pub async fn history_of<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    id: Uuid,
) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as!(
        HistoryEntry,
        r#"select event, old_text, new_text, replaced_by, reason, message_id, at
           from memory_history where memory_id = $1 and user_id = $2 order by at, id"#,
        id,
        user,
    )
    .fetch_all(db)
    .await
}

/// Whether the user lets the assistant learn memories from chat: preference
/// `memory_extraction` (default on).
pub async fn extraction_enabled<'e>(db: impl PgExecutor<'e>, user: Uuid) -> sqlx::Result<bool> {
    let off = sqlx::query_scalar!(
        r#"select coalesce(preferences -> 'memory_extraction' = 'false'::jsonb, false) as "off!"
           from users where id = $1"#,
        user,
    )
    .fetch_optional(db)
    .await?;
    Ok(!off.unwrap_or(false))
}
