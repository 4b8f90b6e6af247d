//! The semantic search's plans on a real pgvector index: above `EXACT_SCAN_MAX` vectors the HNSW
//! plan is chosen, and it scans the index on every run of its prepared statement, not only on the
//! first five (after which Postgres may plan a statement generically).

use std::time::{Duration, Instant};

use potentia_ai::retrieval::semantic::{self, Plan, SemanticQuery, EXACT_SCAN_MAX};
use potentia_ai::retrieval::Scope;
use potentia_ai::Embedding;

use crate::support::fixture;

/// Index scans of the HNSW index so far, once this session's statistics are visible.
async fn hnsw_scans(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "select coalesce(idx_scan, 0) from pg_stat_user_indexes
         where indexrelname = 'block_embeddings_hnsw'",
    )
    .fetch_one(pool)
    .await
    .expect("index statistics")
}

#[tokio::test]
async fn the_hnsw_plan_scans_the_index_on_every_run_not_only_the_first_five() {
    let f = fixture().await;
    let rows = EXACT_SCAN_MAX + 500;
    // Blocks with random unit-ish vectors, made in the database (fast, and only the plan matters).
    sqlx::query(
        "insert into blocks (canvas_id, id, kind, order_key, text, doc_seq)
         select $1, gen_random_uuid(), 'paragraph', lpad(i::text, 8, '0'), 'block ' || i, 1
         from generate_series(1, $2) i",
    )
    .bind(f.canvas.id)
    .bind(rows)
    .execute(&f.pool)
    .await
    .expect("insert blocks");
    sqlx::query(
        "insert into block_embeddings (canvas_id, block_id, model, content_hash, embedding)
         select b.canvas_id, b.id, 'bench-model', '\\x00',
                (select array_agg((random() - 0.5)::real)
                 from generate_series(1, 768) where b.id is not null)::vector
         from blocks b where b.canvas_id = $1",
    )
    .bind(f.canvas.id)
    .execute(&f.pool)
    .await
    .unwrap_or_else(|err| panic!("insert vectors: {err}"));
    sqlx::query("analyze block_embeddings")
        .execute(&f.pool)
        .await
        .expect("analyze");

    let mut raw = vec![0.0f32; 768];
    raw[0] = 1.0;
    let embedding = Embedding::from_model_output(raw).expect("a unit vector");
    let query = SemanticQuery {
        user_id: f.user,
        embedding: &embedding,
        model: "bench-model",
        scope: Scope::default(),
        min_similarity: -1.0,
        after: None,
        limit: 10,
    };
    let (_, chosen) = semantic::search_with_plan(&f.pool, &query, None)
        .await
        .expect("search");
    assert_eq!(chosen, Plan::Hnsw, "more than EXACT_SCAN_MAX vectors");

    let before = hnsw_scans(&f.pool).await;
    let runs = 10;
    for _ in 0..runs {
        let (hits, plan) = semantic::search_with_plan(&f.pool, &query, Some(Plan::Hnsw))
            .await
            .expect("search");
        assert_eq!(plan, Plan::Hnsw);
        assert_eq!(hits.len(), 10);
    }
    // Statistics reach the shared view within about a second of each backend going idle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scans = hnsw_scans(&f.pool).await - before;
        if scans >= runs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HNSW index was scanned {scans} times in {runs} HNSW searches"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
