//! The materialized block rows, as REST readers see them: one block, a page of a canvas's
//! blocks in document order (optionally one block's subtree), or all of them.
//!
//! Document order is depth-first, siblings by `(order, id)` as ARCHITECTURE §2 says. In SQL it
//! is the byte order of a path: every ancestor's `order_key ' ' id '/'` from the top. The space
//! sorts below every key digit, so a key sorts before its extensions, and a parent before its
//! children. A block whose parent is gone counts as top level; blocks caught in a parent cycle
//! (only concurrent moves can make one) come last, so that no row is ever left out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::SyncError;

/// One block as its row holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockRecord {
    pub id: Uuid,
    pub canvas_id: Uuid,
    pub parent_id: Option<Uuid>,
    /// The block type (`paragraph`, `heading`, …; unknown types are kept).
    #[serde(rename = "type")]
    pub kind: String,
    /// The fractional order key among its siblings.
    pub order: String,
    /// The plain text.
    pub text: String,
    /// The rich text as a delta (`[{"insert": …, "attributes": …}]`).
    pub content: Value,
    pub props: Value,
    /// Incremented by every change; send it back (`If-Match` or `version`) to write.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who made the last change through the REST API, when known.
    pub updated_by: Option<Uuid>,
}

/// One block of `canvas_id`.
pub async fn get(
    pool: &PgPool,
    canvas_id: Uuid,
    id: Uuid,
) -> Result<Option<BlockRecord>, SyncError> {
    let record = sqlx::query_as!(
        BlockRecord,
        r#"select id, canvas_id, parent_id, kind, order_key as "order: String", text, content, props,
                  version, created_at, updated_at, updated_by
           from blocks where canvas_id = $1 and id = $2"#,
        canvas_id,
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(record)
}

/// A page of `canvas_id`'s blocks in document order: after the block whose position is
/// `after` (a cursor from a previous page), at most `limit`; with `root`, only the blocks under
/// it. Answers the page and the cursor of its last block.
pub async fn list(
    pool: &PgPool,
    canvas_id: Uuid,
    root: Option<Uuid>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<BlockRecord>, Option<String>), SyncError> {
    let rows = sqlx::query!(
        r#"with recursive tree (id, path) as (
               select b.id, (b.order_key || ' ' || b.id::text || '/') collate "C"
               from blocks b
               where b.canvas_id = $1
                 and (b.parent_id is null or not exists (
                     select 1 from blocks p where p.canvas_id = $1 and p.id = b.parent_id))
               union all
               select c.id, (t.path || c.order_key || ' ' || c.id::text || '/') collate "C"
               from blocks c join tree t on c.parent_id = t.id
               where c.canvas_id = $1
           ),
           placed (id, path) as (
               select id, path from tree
               union all
               select b.id, ('~' || b.order_key || ' ' || b.id::text || '/') collate "C"
               from blocks b
               where b.canvas_id = $1 and not exists (select 1 from tree t where t.id = b.id)
           ),
           scope (prefix) as (
               select coalesce((select path from placed where id = $2), '') collate "C"
           )
           select b.id, b.canvas_id, b.parent_id, b.kind, b.order_key as "order: String", b.text,
                  b.content, b.props, b.version, b.created_at, b.updated_at, b.updated_by,
                  p.path as "path!: String"
           from placed p
           join blocks b on b.canvas_id = $1 and b.id = p.id
           cross join scope s
           where ($2::uuid is null or (p.path > s.prefix and left(p.path, length(s.prefix)) = s.prefix))
             and ($3::text is null or p.path > ($3::text collate "C"))
           order by p.path
           limit $4"#,
        canvas_id,
        root,
        after,
        limit
    )
    .fetch_all(pool)
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.path.clone()))
        .flatten();
    let records = rows
        .into_iter()
        .map(|r| BlockRecord {
            id: r.id,
            canvas_id: r.canvas_id,
            parent_id: r.parent_id,
            kind: r.kind,
            order: r.order,
            text: r.text,
            content: r.content,
            props: r.props,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        })
        .collect();
    Ok((records, next))
}

/// Every block of `canvas_id` in document order.
pub async fn all(pool: &PgPool, canvas_id: Uuid) -> Result<Vec<BlockRecord>, SyncError> {
    let (records, _) = list(pool, canvas_id, None, None, i64::MAX).await?;
    Ok(records)
}

/// Records `user_id` as the author of the last change of `ids`.
pub async fn set_author(
    pool: &PgPool,
    canvas_id: Uuid,
    ids: &[Uuid],
    user_id: Uuid,
) -> Result<(), SyncError> {
    sqlx::query!(
        "update blocks set updated_by = $3 where canvas_id = $1 and id = any($2)",
        canvas_id,
        ids,
        user_id
    )
    .execute(pool)
    .await?;
    Ok(())
}
