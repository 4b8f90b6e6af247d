//! The stored vectors of messages and memories (`message_embeddings`, `memory_embeddings`),
//! written by the embedding worker from the queue's `message` and `memory` jobs. Like block
//! vectors, each keeps its model and the sha-256 of its text, and goes with its row.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::embed::Embedding;
use crate::queue::SourceKind;
use crate::store::{content_hash, vector_literal};

/// A message's or memory's current text.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceText {
    pub id: Uuid,
    pub user_id: Uuid,
    pub text: String,
    pub content_hash: Vec<u8>,
    /// Whether the stored vector is of this text under the model asked about.
    pub current: bool,
}

/// The current texts of `ids` of `kind` (messages or memories); ids that are gone are left out.
pub async fn texts<'e>(
    db: impl PgExecutor<'e>,
    kind: SourceKind,
    ids: &[Uuid],
    model: &str,
) -> sqlx::Result<Vec<SourceText>> {
    let rows: Vec<(Uuid, Uuid, String, Option<Vec<u8>>)> = match kind {
        SourceKind::Message => sqlx::query!(
            r#"select m.id, m.user_id, m.text, e.content_hash as "stored?"
               from conversation_messages m
               left join message_embeddings e on e.message_id = m.id and e.model = $2
               where m.id = any($1)"#,
            ids,
            model,
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.user_id, r.text, r.stored))
        .collect(),
        SourceKind::Memory => sqlx::query!(
            r#"select m.id, m.user_id, m.text, e.content_hash as "stored?"
               from memories m
               left join memory_embeddings e on e.memory_id = m.id and e.model = $2
               where m.id = any($1)"#,
            ids,
            model,
        )
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r.user_id, r.text, r.stored))
        .collect(),
        SourceKind::Block => Vec::new(),
    };
    Ok(rows
        .into_iter()
        .map(|(id, user_id, text, stored)| {
            let hash = content_hash(&text);
            SourceText {
                id,
                user_id,
                current: stored.as_deref() == Some(hash.as_slice()),
                content_hash: hash,
                text,
            }
        })
        .collect())
}

/// Stores vectors of `kind` under `model`; rows deleted meanwhile are left out.
pub async fn upsert<'e>(
    db: impl PgExecutor<'e>,
    kind: SourceKind,
    model: &str,
    rows: &[(&SourceText, Embedding)],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = rows.iter().map(|(s, _)| s.id).collect();
    let users: Vec<Uuid> = rows.iter().map(|(s, _)| s.user_id).collect();
    let hashes: Vec<Vec<u8>> = rows.iter().map(|(s, _)| s.content_hash.clone()).collect();
    let vectors: Vec<String> = rows.iter().map(|(_, v)| vector_literal(v)).collect();
    let written = match kind {
        SourceKind::Message => sqlx::query!(
            r#"insert into message_embeddings (message_id, user_id, model, content_hash, embedding)
               select t.id, t.user_id, $1, t.hash, t.vector::vector
               from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::text[]) as t(id, user_id, hash, vector)
               where exists (select 1 from conversation_messages m where m.id = t.id)
               on conflict (message_id) do update
               set model = excluded.model, content_hash = excluded.content_hash,
                   embedding = excluded.embedding, embedded_at = now()"#,
            model,
            &ids,
            &users,
            &hashes,
            &vectors,
        )
        .execute(db)
        .await?
        .rows_affected(),
        SourceKind::Memory => sqlx::query!(
            r#"insert into memory_embeddings (memory_id, user_id, model, content_hash, embedding)
               select t.id, t.user_id, $1, t.hash, t.vector::vector
               from unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::text[]) as t(id, user_id, hash, vector)
               where exists (select 1 from memories m where m.id = t.id)
               on conflict (memory_id) do update
               set model = excluded.model, content_hash = excluded.content_hash,
                   embedding = excluded.embedding, embedded_at = now()"#,
            model,
            &ids,
            &users,
            &hashes,
            &vectors,
        )
        .execute(db)
        .await?
        .rows_affected(),
        SourceKind::Block => 0,
    };
    Ok(written)
}
