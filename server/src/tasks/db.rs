//! SQL over todo blocks for the tasks view. Access is `readable_canvases`, the rule every
//! retrieval path shares; due times are `block_due_at(props)` (migration 91).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

/// A todo block, with where it lives.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Task {
    /// The canvas the todo block is in.
    pub canvas_id: Uuid,
    /// That canvas's title.
    pub canvas_title: String,
    /// Null for a personal canvas.
    pub workspace_id: Option<Uuid>,
    /// The todo block; check it off with `PATCH /api/v1/canvases/{canvas_id}/blocks/{block_id}`.
    pub block_id: Uuid,
    /// The block's version, for a version-checked `PATCH` that checks it off.
    pub version: i64,
    /// The todo's plain text.
    pub text: String,
    /// `props.checked`: done.
    pub checked: bool,
    /// `props.due_at` as written: an RFC 3339 instant or a date.
    pub due_at: Option<String>,
    /// The due time as an instant (a date is its UTC midnight); the list's order.
    pub due: Option<DateTime<Utc>>,
    /// The block's last materialized change.
    pub updated_at: DateTime<Utc>,
}

/// Which tasks a query lists.
#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub reader: Uuid,
    pub checked: bool,
    pub due_from: Option<DateTime<Utc>>,
    pub due_to: Option<DateTime<Utc>>,
    /// Only tasks with a due time.
    pub dated_only: bool,
    pub canvas_id: Option<Uuid>,
    pub workspace_id: Option<Uuid>,
    pub after: Option<TaskPosition>,
    pub limit: i64,
}

/// Where a page of tasks ends: due time (undated last), canvas, block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPosition {
    pub due: Option<DateTime<Utc>>,
    pub canvas_id: Uuid,
    pub block_id: Uuid,
}

impl Task {
    pub fn position(&self) -> TaskPosition {
        TaskPosition {
            due: self.due,
            canvas_id: self.canvas_id,
            block_id: self.block_id,
        }
    }
}

/// Tasks of the reader's readable canvases, by due time (undated last), canvas and block id.
pub async fn list<'e>(db: impl PgExecutor<'e>, query: &TaskQuery) -> sqlx::Result<Vec<Task>> {
    // The keyset sorts undated tasks after every dated one: `infinity` stands in for none.
    let after_due = query
        .after
        .map(|a| a.due.map_or(f64::INFINITY, |d| d.timestamp_micros() as f64));
    sqlx::query_as!(
        Task,
        r#"select canvas_id as "canvas_id!", canvas_title as "canvas_title!", workspace_id,
                  block_id as "block_id!", version as "version!", text as "text!",
                  checked as "checked!", due_at, due, updated_at as "updated_at!"
           from (select b.canvas_id, c.title as canvas_title, c.workspace_id, b.id as block_id,
                        b.version, b.text, block_checked(b.props) as checked,
                        b.props->>'due_at' as due_at, block_due_at(b.props) as due, b.updated_at,
                        coalesce((extract(epoch from block_due_at(b.props)) * 1000000)::float8, 'infinity'::float8) as due_key
                 from blocks b
                 join canvases c on c.id = b.canvas_id
                 where b.kind = 'todo'
                   and b.canvas_id in (select canvas_id from readable_canvases($1))
                   and c.archived_at is null
                   and ($2::uuid is null or b.canvas_id = $2)
                   and ($3::uuid is null or c.workspace_id = $3)
                   and block_checked(b.props) = $4) t
           where ($5::timestamptz is null or due >= $5)
             and ($6::timestamptz is null or due < $6)
             and (not $7 or due is not null)
             and ($8::float8 is null or (due_key, canvas_id, block_id) > ($8, $9, $10))
           order by due_key, canvas_id, block_id
           limit $11"#,
        query.reader,
        query.canvas_id,
        query.workspace_id,
        query.checked,
        query.due_from,
        query.due_to,
        query.dated_only,
        after_due,
        query.after.map(|a| a.canvas_id),
        query.after.map(|a| a.block_id),
        query.limit,
    )
    .fetch_all(db)
    .await
}
