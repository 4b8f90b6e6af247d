//! The durable update log of each canvas's document (ARCHITECTURE §4), in Postgres.
//!
//! `canvas_updates` holds every committed update under a per-canvas sequence number;
//! `canvas_documents` hands the numbers out and keeps the latest snapshot. The invariants the
//! rest of the crate relies on:
//!
//! * **Appends are serialized per canvas.** [`append`] takes the canvas's `canvas_documents`
//!   row lock to allocate its numbers and inserts its rows in the same transaction, so any
//!   reader's snapshot holds a gap-free prefix `1..=last_seq` of the log (minus what a snapshot
//!   covers).
//! * **A snapshot covers every update with `seq <= snapshot_seq`.** [`compact`] replaces the
//!   snapshot and deletes the rows it covers in one transaction, and only moves `snapshot_seq`
//!   forward: a stale compactor changes nothing.
//! * **A write is audited in its own commit.** An [`AuditNote`] given with an update is written
//!   to `system_audit` by the [`append`] that logs the update, so a committed write always has
//!   its audit row and an audit row always names a committed write.
//! * **Reads are consistent.** [`read_after`] reads the snapshot and the tail in one
//!   repeatable-read transaction, so a concurrent compaction can't make it miss rows.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::SyncError;

/// An audit row to write with one update of an [`append`], in its transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    pub actor: Uuid,
    /// e.g. `block.create`.
    pub action: String,
    /// e.g. `block`.
    pub target_type: String,
    pub target_id: String,
    /// The row's `after`; the update's sequence number is added to an object as `seq`.
    pub after: serde_json::Value,
    pub request_id: Option<String>,
}

/// One committed update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpdate {
    /// Its sequence number in the canvas's log (from 1).
    pub seq: i64,
    /// The v1 update, as the client sent it.
    pub data: Vec<u8>,
}

/// A snapshot: one v1 update holding the whole document as of `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every update with a sequence number up to this one is in the snapshot.
    pub seq: i64,
    /// The document state, v1-encoded.
    pub data: Vec<u8>,
}

/// What [`read_after`] found: everything committed after a sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRead {
    /// The snapshot, when it covers updates after the requested number (their rows are gone).
    pub snapshot: Option<Snapshot>,
    /// The updates after the requested number and after the snapshot, in order.
    pub updates: Vec<StoredUpdate>,
    /// The last sequence number committed when the read was made.
    pub last_seq: i64,
}

impl LogRead {
    /// Bytes read: the snapshot and the updates.
    pub fn bytes(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.data.len())
            + self.updates.iter().map(|u| u.data.len()).sum::<usize>()
    }
}

/// The sequence numbers one [`append`] was given, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub first: i64,
    pub last: i64,
}

/// Sizes of a canvas's stored document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSize {
    pub snapshot_bytes: i64,
    pub log_rows: i64,
    pub log_bytes: i64,
    pub last_seq: i64,
    pub snapshot_seq: i64,
}

async fn repeatable_read(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Everything committed to `canvas_id`'s log after `after` (0 = the whole document): the
/// snapshot when it covers anything after `after`, then the rows after both.
pub async fn read_after(pool: &PgPool, canvas_id: Uuid, after: i64) -> Result<LogRead, SyncError> {
    let mut tx = repeatable_read(pool).await?;
    let head = sqlx::query!(
        "select last_seq, snapshot_seq, snapshot from canvas_documents where canvas_id = $1",
        canvas_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut last_seq, snapshot) = match head {
        Some(head) if head.snapshot_seq > after => (
            head.last_seq,
            head.snapshot.map(|data| Snapshot {
                seq: head.snapshot_seq,
                data,
            }),
        ),
        Some(head) => (head.last_seq, None),
        None => (0, None),
    };
    let from = snapshot.as_ref().map_or(after, |s| s.seq.max(after));
    let updates = sqlx::query_as!(
        StoredUpdate,
        "select seq, data from canvas_updates where canvas_id = $1 and seq > $2 order by seq",
        canvas_id,
        from
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    // Rows written before `canvas_documents` existed (or by hand) count as committed too.
    if let Some(last) = updates.last() {
        last_seq = last_seq.max(last.seq);
    }
    Ok(LogRead {
        snapshot,
        updates,
        last_seq,
    })
}

/// Appends `updates` to `canvas_id`'s log in one transaction (one commit, one fsync, however
/// many updates: the group commit), with the audit rows of `audits` (each the index of its
/// update in `updates`), and returns the numbers the updates were given, in order.
pub async fn append(
    pool: &PgPool,
    canvas_id: Uuid,
    updates: &[&[u8]],
    audits: &[(usize, &AuditNote)],
) -> Result<SeqRange, SyncError> {
    let count = i64::try_from(updates.len()).map_err(|_| SyncError::BatchTooLarge)?;
    if count == 0 {
        return Err(SyncError::BatchTooLarge);
    }
    let mut tx = pool.begin().await?;
    // The row lock serializes appenders; the first append of a canvas starts after any rows
    // already there.
    let last = sqlx::query_scalar!(
        r#"insert into canvas_documents (canvas_id, last_seq)
           select $1, coalesce(max(seq), 0) + $2 from canvas_updates where canvas_id = $1
           on conflict (canvas_id) do update
               set last_seq = canvas_documents.last_seq + $2, updated_at = now()
           returning last_seq"#,
        canvas_id,
        count
    )
    .fetch_one(&mut *tx)
    .await?;
    let first = last - count + 1;
    let seqs: Vec<i64> = (first..=last).collect();
    let datas: Vec<Vec<u8>> = updates.iter().map(|u| u.to_vec()).collect();
    sqlx::query!(
        "insert into canvas_updates (canvas_id, seq, data) select $1, * from unnest($2::bigint[], $3::bytea[])",
        canvas_id,
        &seqs,
        &datas
    )
    .execute(&mut *tx)
    .await?;
    if !audits.is_empty() {
        insert_audits(&mut tx, first, audits).await?;
    }
    tx.commit().await?;
    Ok(SeqRange { first, last })
}

async fn insert_audits(
    tx: &mut Transaction<'_, Postgres>,
    first: i64,
    audits: &[(usize, &AuditNote)],
) -> Result<(), SyncError> {
    let mut actors = Vec::with_capacity(audits.len());
    let mut actions = Vec::with_capacity(audits.len());
    let mut types = Vec::with_capacity(audits.len());
    let mut targets = Vec::with_capacity(audits.len());
    let mut afters = Vec::with_capacity(audits.len());
    let mut requests = Vec::with_capacity(audits.len());
    for (index, note) in audits {
        let mut after = note.after.clone();
        if let Some(object) = after.as_object_mut() {
            object.insert("seq".into(), (first + *index as i64).into());
        }
        actors.push(note.actor);
        actions.push(note.action.clone());
        types.push(note.target_type.clone());
        targets.push(note.target_id.clone());
        afters.push(after);
        requests.push(note.request_id.clone());
    }
    sqlx::query!(
        r#"insert into system_audit (actor_id, action, target_type, target_id, after, request_id)
           select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])"#,
        &actors,
        &actions,
        &types,
        &targets,
        &afters,
        &requests as &[Option<String>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces `canvas_id`'s snapshot with `snapshot` (which must hold every update up to
/// `seq`) and deletes the log rows it covers, in one transaction. Returns `false`, changing
/// nothing, when the stored snapshot is already at `seq` or newer (a stale compactor).
pub async fn compact(
    pool: &PgPool,
    canvas_id: Uuid,
    seq: i64,
    snapshot: &[u8],
) -> Result<bool, SyncError> {
    let mut tx = pool.begin().await?;
    let moved = sqlx::query!(
        r#"update canvas_documents
           set snapshot = $3, snapshot_seq = $2, compactions = compactions + 1,
               compacted_at = now(), updated_at = now()
           where canvas_id = $1 and snapshot_seq < $2 and last_seq >= $2"#,
        canvas_id,
        seq,
        snapshot
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query!(
        "delete from canvas_updates where canvas_id = $1 and seq <= $2",
        canvas_id,
        seq
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The last sequence number committed to `canvas_id`'s log (0 when none).
pub async fn last_seq(pool: &PgPool, canvas_id: Uuid) -> Result<i64, SyncError> {
    let last = sqlx::query_scalar!(
        r#"select greatest(
               (select last_seq from canvas_documents where canvas_id = $1),
               (select max(seq) from canvas_updates where canvas_id = $1),
               0) as "last_seq!""#,
        canvas_id
    )
    .fetch_one(pool)
    .await?;
    Ok(last)
}

/// How much `canvas_id`'s stored document takes: snapshot and log.
pub async fn stored_size(pool: &PgPool, canvas_id: Uuid) -> Result<StoredSize, SyncError> {
    let mut tx = repeatable_read(pool).await?;
    let head = sqlx::query!(
        r#"select last_seq, snapshot_seq, coalesce(length(snapshot), 0)::bigint as "snapshot_bytes!"
           from canvas_documents where canvas_id = $1"#,
        canvas_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let log = sqlx::query!(
        r#"select count(*) as "rows!", coalesce(sum(length(data)), 0)::bigint as "bytes!",
                  coalesce(max(seq), 0) as "max_seq!"
           from canvas_updates where canvas_id = $1"#,
        canvas_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StoredSize {
        snapshot_bytes: head.as_ref().map_or(0, |h| h.snapshot_bytes),
        log_rows: log.rows,
        log_bytes: log.bytes,
        last_seq: head.as_ref().map_or(0, |h| h.last_seq).max(log.max_seq),
        snapshot_seq: head.as_ref().map_or(0, |h| h.snapshot_seq),
    })
}
