//! The worker drains the queue into `block_embeddings`: current texts only, each embedded once,
//! stored vectors reused, deleted and emptied blocks cleaned up, several workers sharing one
//! queue without doubling work.

use std::collections::HashSet;
use std::time::Duration;

use potentia_ai::queue::{self, SourceKind};
use potentia_ai::store::{self, BlockKey};
use potentia_ai::EMBEDDING_DIMENSIONS;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{embeddings_count, fixture, queued, sha256, stored, Canvas, MODEL};

#[tokio::test]
async fn a_queued_block_is_embedded_as_a_unit_vector_and_its_job_completed() {
    let mut f = fixture().await;
    let block = f.canvas.add("Brew pour-over coffee with a V60").await;
    assert_eq!(queued(&f.pool).await, 1);

    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.claimed, report.embedded, report.calls), (1, 1, 1));
    assert_eq!(queued(&f.pool).await, 0);
    let (model, hash) = stored(&f.pool, f.canvas.id, block).await.expect("a vector");
    assert_eq!(model, MODEL);
    assert_eq!(hash, sha256("Brew pour-over coffee with a V60"));
    let (dims, norm): (i32, f64) = sqlx::query_as(
        "select vector_dims(embedding), vector_norm(embedding) from block_embeddings",
    )
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!(dims as usize, EMBEDDING_DIMENSIONS);
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

#[tokio::test]
async fn text_changed_again_while_queued_is_embedded_once_in_its_newest_form() {
    let mut f = fixture().await;
    let block = f.canvas.add("first draft").await;
    f.canvas.set_text(block, "second draft").await;
    f.canvas.set_text(block, "final wording").await;

    f.drain(&f.worker(), 5).await;

    assert_eq!(f.texts_sent(), vec!["final wording".to_owned()]);
    assert_eq!(f.fake.embedding_calls(), 1);
    let (_, hash) = stored(&f.pool, f.canvas.id, block).await.expect("a vector");
    assert_eq!(hash, sha256("final wording"));
}

#[tokio::test]
async fn an_edit_made_after_the_claim_is_embedded_by_the_next_batch_not_lost() {
    let mut f = fixture().await;
    let block = f.canvas.add("before the claim").await;
    // The job is claimed (leased) and its text read; then the block changes.
    let jobs = queue::claim(&f.pool, &[SourceKind::Block], 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    f.canvas.set_text(block, "after the claim").await;
    // The first claim's completion must not remove the re-queued job.
    assert_eq!(queue::complete(&f.pool, &jobs).await.unwrap(), 0);

    f.drain(&f.worker(), 5).await;

    assert_eq!(f.texts_sent(), vec!["after the claim".to_owned()]);
    let (_, hash) = stored(&f.pool, f.canvas.id, block).await.expect("a vector");
    assert_eq!(hash, sha256("after the claim"));
}

#[tokio::test]
async fn a_deleted_blocks_embedding_goes() {
    let mut f = fixture().await;
    let kept = f.canvas.add("stays").await;
    let gone = f.canvas.add("goes away").await;
    f.drain(&f.worker(), 5).await;
    assert_eq!(embeddings_count(&f.pool).await, 2);

    f.canvas.delete(gone).await;

    assert!(stored(&f.pool, f.canvas.id, gone).await.is_none());
    assert!(stored(&f.pool, f.canvas.id, kept).await.is_some());
}

#[tokio::test]
async fn a_block_deleted_while_queued_completes_its_job_without_a_call() {
    let mut f = fixture().await;
    let block = f.canvas.add("short-lived").await;
    f.canvas.delete(block).await;
    assert_eq!(queued(&f.pool).await, 1, "the job outlives its block");

    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.claimed, report.removed, report.calls), (1, 1, 0));
    assert_eq!(queued(&f.pool).await, 0);
    assert_eq!(f.fake.embedding_calls(), 0);
    assert_eq!(embeddings_count(&f.pool).await, 0);
}

#[tokio::test]
async fn a_block_emptied_loses_its_vector_without_a_call() {
    let mut f = fixture().await;
    let block = f.canvas.add("something to say").await;
    f.drain(&f.worker(), 5).await;
    let calls = f.fake.embedding_calls();

    f.canvas.set_text(block, "  \n ").await;
    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.claimed, report.removed), (1, 1));
    assert_eq!(f.fake.embedding_calls(), calls);
    assert!(stored(&f.pool, f.canvas.id, block).await.is_none());
    assert_eq!(queued(&f.pool).await, 0);
}

#[tokio::test]
async fn identical_text_under_the_same_model_is_reused_without_a_call() {
    let mut f = fixture().await;
    let original = f.canvas.add("Quarterly budget review").await;
    f.drain(&f.worker(), 5).await;
    assert_eq!(f.fake.embedding_calls(), 1);

    let mut other = Canvas::create(&f.pool, f.user, None).await;
    let copy = other.add("Quarterly budget review").await;
    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.reused, report.calls), (1, 0));
    assert_eq!(f.fake.embedding_calls(), 1);
    let same: bool = sqlx::query_scalar(
        "select a.embedding = b.embedding from block_embeddings a, block_embeddings b
         where a.block_id = $1 and b.block_id = $2",
    )
    .bind(original)
    .bind(copy)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert!(same);
    let reused = f.metrics.embeddings_reused.get();
    assert_eq!(reused, 1);
}

#[tokio::test]
async fn identical_texts_in_one_batch_are_sent_once() {
    let mut f = fixture().await;
    let a = f.canvas.add("todo").await;
    let b = f.canvas.add("todo").await;

    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.embedded, report.texts_sent), (2, 1));
    assert_eq!(f.texts_sent(), vec!["todo".to_owned()]);
    assert!(stored(&f.pool, f.canvas.id, a).await.is_some());
    assert!(stored(&f.pool, f.canvas.id, b).await.is_some());
}

#[tokio::test]
async fn a_block_whose_vector_is_current_is_skipped_without_a_call() {
    let mut f = fixture().await;
    let block = f.canvas.add("already done").await;
    f.drain(&f.worker(), 5).await;
    let key = BlockKey {
        canvas_id: f.canvas.id,
        block_id: block,
    };
    assert!(
        store::is_current(&f.pool, key, &sha256("already done"), MODEL)
            .await
            .unwrap()
    );
    // A job for the same text again (another node re-queued it, say).
    queue::enqueue(
        &f.pool,
        SourceKind::Block,
        &[(f.canvas.id, block, sha256("already done"))],
    )
    .await
    .unwrap();

    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.claimed, report.unchanged, report.calls), (1, 1, 0));
    assert_eq!(f.fake.embedding_calls(), 1);
    assert_eq!(queued(&f.pool).await, 0);
}

#[tokio::test]
async fn a_batch_is_embedded_in_calls_of_at_most_the_batch_size() {
    let mut f = fixture().await;
    for i in 0..10 {
        f.canvas.add(&format!("note number {i}")).await;
    }
    let mut settings = crate::support::worker_settings();
    settings.batch_size = 4;

    f.drain(&f.worker_with(settings), 10).await;

    assert_eq!(f.fake.embedding_calls(), 3);
    assert_eq!(f.fake.embedded_texts(), 10);
    assert_eq!(embeddings_count(&f.pool).await, 10);
    assert_eq!(f.metrics.embedded_texts.get(), 10);
}

#[tokio::test]
async fn two_workers_on_one_queue_never_embed_one_job_twice() {
    let mut f = fixture().await;
    let mut expected = HashSet::new();
    for i in 0..60 {
        let text = format!("distinct line {i} of the shared queue");
        f.canvas.add(&text).await;
        expected.insert(text);
    }
    let mut settings = crate::support::worker_settings();
    settings.batch_size = 3;
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(f.worker_with(settings.clone()).run(stop.clone())))
        .collect();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while embeddings_count(&f.pool).await < 60 || queued(&f.pool).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers did not drain the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for worker in workers {
        worker.await.expect("a worker ended cleanly");
    }

    let sent = f.texts_sent();
    assert_eq!(sent.len(), 60, "every job embedded exactly once");
    assert_eq!(sent.into_iter().collect::<HashSet<_>>(), expected);
}

#[tokio::test]
async fn usage_is_charged_to_the_blocks_writer_and_workspace_per_day() {
    let f = fixture().await;
    let workspace = Uuid::now_v7();
    sqlx::query("insert into workspaces (id, name, created_by) values ($1, 'Team', $2)")
        .bind(workspace)
        .bind(f.user)
        .execute(&f.pool)
        .await
        .unwrap();
    let mut team = Canvas::create(&f.pool, f.user, Some(workspace)).await;
    team.add("team note one").await;
    team.add("team note two").await;

    f.worker().run_once().await.expect("a batch");

    let (requests, texts, provider, model): (i64, i64, String, String) = sqlx::query_as(
        "select requests, embedded_texts, provider, model from ai_usage
         where user_id = $1 and workspace_id = $2 and day = current_date",
    )
    .bind(f.user)
    .bind(workspace)
    .fetch_one(&f.pool)
    .await
    .expect("a usage row");
    assert_eq!((requests, texts), (1, 2));
    assert_eq!((provider.as_str(), model.as_str()), ("openai", MODEL));
}

#[tokio::test]
async fn message_and_memory_jobs_whose_rows_are_gone_are_dropped_and_blocks_go_on() {
    let mut f = fixture().await;
    let conversation = Uuid::now_v7();
    queue::enqueue(
        &f.pool,
        SourceKind::Message,
        &[(conversation, Uuid::now_v7(), sha256("a chat message"))],
    )
    .await
    .unwrap();
    queue::enqueue(
        &f.pool,
        SourceKind::Memory,
        &[(f.user, Uuid::now_v7(), sha256("a memory"))],
    )
    .await
    .unwrap();
    let block = f.canvas.add("a block among them").await;
    let stop = CancellationToken::new();
    let worker = f.worker();
    let notify = worker.notifier();
    let running = tokio::spawn(worker.run(stop.clone()));

    wait_for(|| async { stored(&f.pool, f.canvas.id, block).await.is_some() }).await;
    // Still alive: a later block is embedded too, woken by a poke.
    let later = f.canvas.add("a later block").await;
    notify.notify_one();
    wait_for(|| async {
        stored(&f.pool, f.canvas.id, later).await.is_some() && queued(&f.pool).await == 0
    })
    .await;
    stop.cancel();
    running.await.expect("the worker ended cleanly");

    let stats = queue::stats(&f.pool).await.unwrap();
    assert_eq!(stats.waiting, 0);
    // Only the blocks' texts were sent: the chat rows were gone, so nothing to embed.
    assert_eq!(f.texts_sent().len(), 2);
}

#[tokio::test]
async fn the_worker_updates_the_queue_gauges() {
    let mut f = fixture().await;
    for i in 0..3 {
        f.canvas.add(&format!("gauge {i}")).await;
    }
    let worker = f.worker();
    worker.refresh_gauges().await.unwrap();
    assert_eq!(f.metrics.queue_depth.get(), 3);

    f.drain(&worker, 5).await;
    worker.refresh_gauges().await.unwrap();

    assert_eq!(f.metrics.queue_depth.get(), 0);
    assert_eq!(f.metrics.queue_oldest_age_seconds.get(), 0);
    assert_eq!(f.metrics.dead_letters.get(), 0);
}

/// Waits up to 20 s for `condition`.
pub async fn wait_for<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_up_to(Duration::from_secs(20), condition).await;
}

pub async fn wait_up_to<F, Fut>(limit: Duration, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
