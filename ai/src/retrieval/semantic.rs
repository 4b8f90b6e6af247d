//! Semantic search: the blocks whose stored vectors are nearest to a query's, among the canvases
//! the caller can read (`readable_canvases`, the same rule as text search).
//!
//! Two plans, chosen per query by how many vectors the caller could match:
//! * **Exact** when at most [`EXACT_SCAN_MAX`] vectors are in the caller's canvases: every one is
//!   compared (a materialized CTE keeps the planner off the HNSW index), so recall is 1.
//! * **HNSW** otherwise: `hnsw.iterative_scan = relaxed_order` keeps scanning the graph until
//!   enough rows pass the canvas filter, so a filtered query still returns `limit` rows; the
//!   outer query re-sorts what the relaxed scan returned. The statement is planned for its own
//!   values (`plan_cache_mode = force_custom_plan`): after five runs of a prepared statement
//!   Postgres may switch to a generic plan, which for `canvas_id = any($1)` is an exact sort
//!   (found by the benchmark: the "HNSW" plan had silently become exact).
//!
//! Only vectors of the query's model are compared (a model change is re-embedded by
//! `potentia ai reindex`). Pages are keyset on `(distance, canvas_id, block_id)`.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Scope;
use crate::embed::Embedding;

/// Above this many candidate vectors the HNSW index answers instead of an exact scan.
pub const EXACT_SCAN_MAX: i64 = 5_000;

/// `hnsw.ef_search` is at least this, and at least twice the rows asked for.
const MIN_EF_SEARCH: i64 = 64;

#[derive(Debug, Clone)]
pub struct SemanticQuery<'a> {
    pub user_id: Uuid,
    pub embedding: &'a Embedding,
    /// The model that made `embedding`; only its vectors are compared.
    pub model: &'a str,
    pub scope: Scope,
    /// Nothing less similar than this (cosine, `[-1, 1]`).
    pub min_similarity: f64,
    pub after: Option<SemanticAfter>,
    /// Rows to fetch.
    pub limit: i64,
}

/// The sort key of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticAfter {
    pub distance: f64,
    pub canvas_id: Uuid,
    pub block_id: Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SemanticHit {
    pub canvas_id: Uuid,
    pub canvas_title: String,
    pub block_id: Uuid,
    pub block_kind: String,
    pub text: String,
    /// Cosine distance, `1 − similarity`.
    pub distance: f64,
}

impl SemanticHit {
    pub fn similarity(&self) -> f64 {
        1.0 - self.distance
    }

    pub fn after(&self) -> SemanticAfter {
        SemanticAfter {
            distance: self.distance,
            canvas_id: self.canvas_id,
            block_id: self.block_id,
        }
    }
}

/// Which plan [`search`] used, for tests and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Exact,
    Hnsw,
}

impl Plan {
    /// Exact for at most `exact_max` candidate vectors, HNSW beyond.
    pub fn for_candidates(candidates: i64, exact_max: i64) -> Plan {
        if candidates > exact_max {
            Plan::Hnsw
        } else {
            Plan::Exact
        }
    }
}

/// Readies the transaction for a filtered HNSW scan returning about `rows` rows: a search list
/// of at least [`MIN_EF_SEARCH`] and twice `rows`, an iterative scan that goes on until enough
/// rows pass the filter, and a plan made for the statement's own values.
pub(crate) async fn prepare_hnsw_scan(tx: &mut PgConnection, rows: i64) -> sqlx::Result<()> {
    let ef_search = (rows * 2).clamp(MIN_EF_SEARCH, 1000);
    sqlx::query!(
        r#"select set_config('hnsw.ef_search', $1, true) as ef_search,
                  set_config('hnsw.iterative_scan', 'relaxed_order', true) as iterative_scan,
                  set_config('plan_cache_mode', 'force_custom_plan', true) as plan_cache_mode"#,
        ef_search.to_string()
    )
    .fetch_one(tx)
    .await?;
    Ok(())
}

/// The nearest blocks the caller may read, nearest first.
pub async fn search(db: &PgPool, query: &SemanticQuery<'_>) -> sqlx::Result<Vec<SemanticHit>> {
    Ok(search_with_plan(db, query, None).await?.0)
}

/// [`search`], with the plan forced (`Some`) or chosen (`None`), and the plan used.
pub async fn search_with_plan(
    db: &PgPool,
    query: &SemanticQuery<'_>,
    force: Option<Plan>,
) -> sqlx::Result<(Vec<SemanticHit>, Plan)> {
    let mut tx = db.begin().await?;
    let canvases = sqlx::query_scalar!(
        r#"select c.id from canvases c
           where c.id in (select canvas_id from readable_canvases($1))
             and (c.archived_at is null or $2)
             and ($3::uuid is null or c.id = $3)"#,
        query.user_id,
        query.scope.include_archived,
        query.scope.canvas_id,
    )
    .fetch_all(&mut *tx)
    .await?;
    if canvases.is_empty() {
        return Ok((Vec::new(), Plan::Exact));
    }
    let plan = match force {
        Some(plan) => plan,
        None => {
            let candidates = sqlx::query_scalar!(
                r#"select count(*) as "n!" from (
                       select 1 from block_embeddings
                       where canvas_id = any($1) and model = $2
                       limit $3) s"#,
                &canvases,
                query.model,
                EXACT_SCAN_MAX + 1,
            )
            .fetch_one(&mut *tx)
            .await?;
            Plan::for_candidates(candidates, EXACT_SCAN_MAX)
        }
    };
    let vector = query.embedding.as_slice();
    let max_distance = 1.0 - query.min_similarity;
    let after = query.after;
    let hits = match plan {
        Plan::Exact => {
            sqlx::query_as!(
                SemanticHit,
                r#"with scored as materialized (
                       select e.canvas_id, e.block_id, (e.embedding <=> $2::real[]::vector) as distance
                       from block_embeddings e
                       where e.canvas_id = any($1) and e.model = $3
                   )
                   select s.canvas_id as "canvas_id!", c.title as "canvas_title!",
                          s.block_id as "block_id!", b.kind as "block_kind!", b.text as "text!",
                          s.distance as "distance!"
                   from scored s
                   join blocks b on b.canvas_id = s.canvas_id and b.id = s.block_id
                   join canvases c on c.id = s.canvas_id
                   where s.distance <= $4
                     and ($5::float8 is null or s.distance > $5
                          or (s.distance = $5 and (s.canvas_id, s.block_id) > ($6::uuid, $7::uuid)))
                   order by s.distance, s.canvas_id, s.block_id
                   limit $8"#,
                &canvases,
                vector,
                query.model,
                max_distance,
                after.map(|a| a.distance),
                after.map(|a| a.canvas_id),
                after.map(|a| a.block_id),
                query.limit,
            )
            .fetch_all(&mut *tx)
            .await?
        }
        Plan::Hnsw => {
            prepare_hnsw_scan(&mut tx, query.limit).await?;
            sqlx::query_as!(
                SemanticHit,
                r#"with nearest as materialized (
                       select e.canvas_id, e.block_id, (e.embedding <=> $2::real[]::vector) as distance
                       from block_embeddings e
                       where e.canvas_id = any($1) and e.model = $3
                         and ($5::float8 is null or (e.embedding <=> $2::real[]::vector) >= $5)
                       order by e.embedding <=> $2::real[]::vector
                       limit $8::int8 + 16
                   )
                   select s.canvas_id as "canvas_id!", c.title as "canvas_title!",
                          s.block_id as "block_id!", b.kind as "block_kind!", b.text as "text!",
                          s.distance as "distance!"
                   from nearest s
                   join blocks b on b.canvas_id = s.canvas_id and b.id = s.block_id
                   join canvases c on c.id = s.canvas_id
                   where s.distance <= $4
                     and ($5::float8 is null or s.distance > $5
                          or (s.distance = $5 and (s.canvas_id, s.block_id) > ($6::uuid, $7::uuid)))
                   order by s.distance, s.canvas_id, s.block_id
                   limit $8"#,
                &canvases,
                vector,
                query.model,
                max_distance,
                after.map(|a| a.distance),
                after.map(|a| a.canvas_id),
                after.map(|a| a.block_id),
                query.limit,
            )
            .fetch_all(&mut *tx)
            .await?
        }
    };
    tx.commit().await?;
    Ok((hits, plan))
}
