//! The stored block vectors (`block_embeddings`) and the block texts they are computed from.
//!
//! A vector is stored with its model's name and the sha-256 of its text, so a block whose stored
//! `(content_hash, model)` matches its current text needs no call, and a text already embedded
//! anywhere under the same model is copied instead of embedded again. Vectors cross the wire in
//! pgvector's text form (`[0.1,0.2,…]`), which needs no extra crate and is exact for `f32`.
//! A deleted block takes its vector with it (a foreign key with `on delete cascade`).

use std::collections::HashSet;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::embed::Embedding;

/// A block, by its canvas and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub canvas_id: Uuid,
    pub block_id: Uuid,
}

/// sha-256 of a text, the way the materializer hashes it into `embedding_queue.text_hash`.
pub fn content_hash(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// A block's current text with what its usage is charged to and what is stored for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockText {
    pub key: BlockKey,
    pub text: String,
    /// [`content_hash`] of `text`.
    pub content_hash: Vec<u8>,
    /// `None` for a personal canvas.
    pub workspace_id: Option<Uuid>,
    /// Who last changed the block through REST, else the canvas's owner.
    pub user_id: Uuid,
    /// The model and hash of the vector stored now, if any.
    pub stored: Option<StoredVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub model: String,
    pub content_hash: Vec<u8>,
}

impl BlockText {
    /// Whether the stored vector is of this text under `model`.
    pub fn is_current(&self, model: &str) -> bool {
        self.stored
            .as_ref()
            .is_some_and(|s| s.model == model && s.content_hash == self.content_hash)
    }
}

/// A row of the block queries below, before its text is hashed.
struct BlockRow {
    canvas_id: Uuid,
    id: Uuid,
    text: String,
    workspace_id: Option<Uuid>,
    user_id: Uuid,
    stored_model: Option<String>,
    stored_hash: Option<Vec<u8>>,
}

impl From<BlockRow> for BlockText {
    fn from(r: BlockRow) -> Self {
        Self {
            key: BlockKey {
                canvas_id: r.canvas_id,
                block_id: r.id,
            },
            content_hash: content_hash(&r.text),
            text: r.text,
            workspace_id: r.workspace_id,
            user_id: r.user_id,
            stored: r
                .stored_model
                .zip(r.stored_hash)
                .map(|(model, content_hash)| StoredVersion {
                    model,
                    content_hash,
                }),
        }
    }
}

/// The blocks of `keys` that still exist, in `(canvas_id, id)` order.
pub async fn block_texts<'e>(
    db: impl PgExecutor<'e>,
    keys: &[BlockKey],
) -> sqlx::Result<Vec<BlockText>> {
    let canvases: Vec<Uuid> = keys.iter().map(|k| k.canvas_id).collect();
    let blocks: Vec<Uuid> = keys.iter().map(|k| k.block_id).collect();
    let rows = sqlx::query_as!(
        BlockRow,
        r#"select b.canvas_id, b.id, b.text, c.workspace_id,
                  coalesce(b.updated_by, c.owner_id) as "user_id!",
                  e.model as "stored_model?", e.content_hash as "stored_hash?"
           from unnest($1::uuid[], $2::uuid[]) as k(canvas_id, block_id)
           join blocks b on b.canvas_id = k.canvas_id and b.id = k.block_id
           join canvases c on c.id = b.canvas_id
           left join block_embeddings e on e.canvas_id = b.canvas_id and e.block_id = b.id
           order by b.canvas_id, b.id"#,
        &canvases,
        &blocks,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(BlockText::from).collect())
}

/// Up to `limit` blocks after `after` in `(canvas_id, id)` order, from the first without it.
pub async fn block_texts_after<'e>(
    db: impl PgExecutor<'e>,
    after: Option<BlockKey>,
    limit: usize,
) -> sqlx::Result<Vec<BlockText>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Two statements rather than one with an `or`, so that each walks the primary key's index.
    let rows = match after {
        Some(after) => {
            sqlx::query_as!(
                BlockRow,
                r#"select b.canvas_id, b.id, b.text, c.workspace_id,
                          coalesce(b.updated_by, c.owner_id) as "user_id!",
                          e.model as "stored_model?", e.content_hash as "stored_hash?"
                   from blocks b
                   join canvases c on c.id = b.canvas_id
                   left join block_embeddings e on e.canvas_id = b.canvas_id and e.block_id = b.id
                   where (b.canvas_id, b.id) > ($1, $2)
                   order by b.canvas_id, b.id
                   limit $3"#,
                after.canvas_id,
                after.block_id,
                limit,
            )
            .fetch_all(db)
            .await?
        }
        None => {
            sqlx::query_as!(
                BlockRow,
                r#"select b.canvas_id, b.id, b.text, c.workspace_id,
                          coalesce(b.updated_by, c.owner_id) as "user_id!",
                          e.model as "stored_model?", e.content_hash as "stored_hash?"
                   from blocks b
                   join canvases c on c.id = b.canvas_id
                   left join block_embeddings e on e.canvas_id = b.canvas_id and e.block_id = b.id
                   order by b.canvas_id, b.id
                   limit $1"#,
                limit,
            )
            .fetch_all(db)
            .await?
        }
    };
    Ok(rows.into_iter().map(BlockText::from).collect())
}

/// Whether the vector stored for a block is of the text hashed `hash` under `model`.
pub async fn is_current<'e>(
    db: impl PgExecutor<'e>,
    key: BlockKey,
    hash: &[u8],
    model: &str,
) -> sqlx::Result<bool> {
    let current = sqlx::query_scalar!(
        r#"select exists (select 1 from block_embeddings
                          where canvas_id = $1 and block_id = $2 and content_hash = $3
                            and model = $4) as "current!""#,
        key.canvas_id,
        key.block_id,
        hash,
        model,
    )
    .fetch_one(db)
    .await?;
    Ok(current)
}

/// For each `(block, hash)` of `targets`, copies a vector already stored for the same hash under
/// `model` (another block with identical text) into the block's row. Returns the blocks served
/// so; the others need a call.
pub async fn copy_reusable<'e>(
    db: impl PgExecutor<'e>,
    model: &str,
    targets: &[(BlockKey, Vec<u8>)],
) -> sqlx::Result<HashSet<BlockKey>> {
    if targets.is_empty() {
        return Ok(HashSet::new());
    }
    let canvases: Vec<Uuid> = targets.iter().map(|(k, _)| k.canvas_id).collect();
    let blocks: Vec<Uuid> = targets.iter().map(|(k, _)| k.block_id).collect();
    let hashes: Vec<Vec<u8>> = targets.iter().map(|(_, h)| h.clone()).collect();
    let rows = sqlx::query!(
        r#"insert into block_embeddings (canvas_id, block_id, model, content_hash, embedding,
                                         embedded_at)
           select t.canvas_id, t.block_id, $1, t.hash, source.embedding, now()
           from unnest($2::uuid[], $3::uuid[], $4::bytea[]) as t(canvas_id, block_id, hash)
           cross join lateral (select e.embedding from block_embeddings e
                               where e.model = $1 and e.content_hash = t.hash
                               limit 1) source
           where exists (select 1 from blocks b where b.canvas_id = t.canvas_id and b.id = t.block_id)
           on conflict (canvas_id, block_id) do update
           set model = excluded.model, content_hash = excluded.content_hash,
               embedding = excluded.embedding, embedded_at = excluded.embedded_at
           returning canvas_id, block_id"#,
        model,
        &canvases,
        &blocks,
        &hashes,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| BlockKey {
            canvas_id: r.canvas_id,
            block_id: r.block_id,
        })
        .collect())
}

/// A vector to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEmbedding {
    pub key: BlockKey,
    pub content_hash: Vec<u8>,
    pub embedding: Embedding,
}

/// Stores `rows` under `model`, replacing what their blocks had. A block deleted meanwhile is
/// left out. Returns how many were written.
pub async fn upsert<'e>(
    db: impl PgExecutor<'e>,
    model: &str,
    rows: &[NewEmbedding],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let canvases: Vec<Uuid> = rows.iter().map(|r| r.key.canvas_id).collect();
    let blocks: Vec<Uuid> = rows.iter().map(|r| r.key.block_id).collect();
    let hashes: Vec<Vec<u8>> = rows.iter().map(|r| r.content_hash.clone()).collect();
    let vectors: Vec<String> = rows.iter().map(|r| vector_literal(&r.embedding)).collect();
    let written = sqlx::query!(
        r#"insert into block_embeddings (canvas_id, block_id, model, content_hash, embedding,
                                         embedded_at)
           select t.canvas_id, t.block_id, $1, t.hash, t.vector::vector, now()
           from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::text[])
                as t(canvas_id, block_id, hash, vector)
           where exists (select 1 from blocks b where b.canvas_id = t.canvas_id and b.id = t.block_id)
           on conflict (canvas_id, block_id) do update
           set model = excluded.model, content_hash = excluded.content_hash,
               embedding = excluded.embedding, embedded_at = excluded.embedded_at"#,
        model,
        &canvases,
        &blocks,
        &hashes,
        &vectors,
    )
    .execute(db)
    .await?;
    Ok(written.rows_affected())
}

/// Removes the vectors of `keys` (blocks whose text became empty). Returns how many.
pub async fn delete<'e>(db: impl PgExecutor<'e>, keys: &[BlockKey]) -> sqlx::Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let canvases: Vec<Uuid> = keys.iter().map(|k| k.canvas_id).collect();
    let blocks: Vec<Uuid> = keys.iter().map(|k| k.block_id).collect();
    let deleted = sqlx::query!(
        r#"delete from block_embeddings e
           using unnest($1::uuid[], $2::uuid[]) as k(canvas_id, block_id)
           where e.canvas_id = k.canvas_id and e.block_id = k.block_id"#,
        &canvases,
        &blocks,
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected())
}

/// pgvector's text form of a vector. `f32`'s `Display` is the shortest text that parses back to
/// the same value, so nothing is lost.
pub fn vector_literal(embedding: &Embedding) -> String {
    let values = embedding.as_slice();
    let mut out = String::with_capacity(values.len() * 12 + 2);
    out.push('[');
    for (i, x) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::EMBEDDING_DIMENSIONS;

    #[test]
    fn the_content_hash_is_the_sha256_of_the_text() {
        assert_eq!(
            content_hash("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
    }

    #[test]
    fn a_vector_literal_parses_back_to_the_same_components() {
        let embedding = Embedding::from_model_output(vec![0.1, -3.0, 1e-7, 2.5]).unwrap();
        let literal = vector_literal(&embedding);
        assert!(literal.starts_with('[') && literal.ends_with(']'));
        let parsed: Vec<f32> = literal[1..literal.len() - 1]
            .split(',')
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(parsed.len(), EMBEDDING_DIMENSIONS);
        assert_eq!(parsed, embedding.as_slice());
    }
}
