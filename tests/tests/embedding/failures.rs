//! What the worker does when the provider fails: an outage defers jobs without spending their
//! attempts (the breaker opens, half-opens and closes, and every job ends embedded); a refused
//! text is retried alone, then dead-lettered, and shows in `ai status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use potentia_ai::queue;
use potentia_ai::reindex;
use potentia_ai::resilience::BreakerState;
use potentia_tests::fake_ai::Reply;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{embeddings_count, fixture, queued, stored, worker_settings};
use crate::worker::wait_up_to;

/// How long the fake provider is down; the 60 s, shortened for CI (the breaker's
/// cooldown is shortened with it). `POTENTIA_TEST_OUTAGE_SECS` restores it.
fn outage() -> Duration {
    let secs = std::env::var("POTENTIA_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

#[tokio::test]
async fn no_job_is_lost_when_the_provider_fails_for_a_while_and_then_recovers() {
    let mut f = fixture().await;
    let mut blocks = Vec::new();
    for i in 0..12 {
        blocks.push(
            f.canvas
                .add(&format!("line {i} written during the outage"))
                .await,
        );
    }
    // Records each change of the breaker's state, sampled every millisecond.
    let states = Arc::new(Mutex::new(vec![f.resilience.breaker_state()]));
    let sampling = CancellationToken::new();
    let sampler = {
        let (states, resilience, stop) = (states.clone(), f.resilience.clone(), sampling.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let state = resilience.breaker_state();
                {
                    let mut seen = states.lock().unwrap();
                    if seen.last() != Some(&state) {
                        seen.push(state);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    f.fake.fail_for(outage());
    let stop = CancellationToken::new();
    // Probes at least every second, however long the outage, so the recovery is seen soon.
    let worker = f.worker().with_max_outage_wait(Duration::from_secs(1));
    let running = tokio::spawn(worker.run(stop.clone()));

    // Jobs are deferred many times over during the outage, none dead-lettered.
    wait_up_to(outage() + Duration::from_secs(20), || async {
        embeddings_count(&f.pool).await == 12 && queued(&f.pool).await == 0
    })
    .await;
    stop.cancel();
    running.await.expect("the worker ended cleanly");
    sampling.cancel();
    sampler.await.unwrap();

    for block in &blocks {
        assert!(stored(&f.pool, f.canvas.id, *block).await.is_some());
    }
    assert_eq!(queue::stats(&f.pool).await.unwrap().dead, 0);
    assert_eq!(
        f.fake.embedded_texts(),
        12,
        "each text embedded once, after the outage"
    );
    // No busy loop: while the breaker is open the worker waits; about one probe per cooldown.
    let cooldown = f.resilience.settings().breaker_cooldown.as_secs_f64();
    let bound = 10 + (3.0 * outage().as_secs_f64() / cooldown) as usize;
    let calls = f.fake.embedding_calls();
    assert!(
        calls <= bound,
        "{calls} requests for a {:?} outage",
        outage()
    );
    let states = states.lock().unwrap().clone();
    let expected = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::Closed,
    ];
    let mut wanted = expected.iter().peekable();
    for state in &states {
        if wanted.peek() == Some(&state) {
            wanted.next();
        }
    }
    assert!(
        wanted.peek().is_none(),
        "breaker went {states:?}, expected {expected:?} in order"
    );
    assert_eq!(states.last(), Some(&BreakerState::Closed));
}

#[tokio::test]
async fn an_outage_defers_the_batch_without_counting_an_attempt() {
    let mut f = fixture().await;
    f.canvas.add("waits for the provider").await;
    f.fake.fail_with(503, Some("1"));

    let report = f.worker().run_once().await.expect("a batch");

    let outage = report.outage.expect("an outage");
    assert_eq!(
        outage.wait,
        Duration::from_secs(1),
        "the provider's Retry-After"
    );
    assert_eq!((report.deferred, report.retrying, report.dead), (1, 0, 0));
    let (attempts, due): (i32, bool) =
        sqlx::query_as("select attempts, next_attempt_at <= now() from embedding_queue")
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0);
    assert!(!due, "deferred into the future");
}

#[tokio::test]
async fn a_rejected_text_becomes_a_dead_letter_after_max_attempts_and_shows_in_status() {
    let mut f = fixture().await;
    let block = f.canvas.add("a text the provider refuses").await;
    f.fake.fail_with(400, None);
    let settings = worker_settings();
    let worker = f.worker_with(settings.clone());

    for attempt in 1..=settings.max_attempts {
        let report = loop {
            let report = worker.run_once().await.expect("a batch");
            if report.claimed > 0 {
                break report;
            }
            // Not due yet: the retry backoff.
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(report.outage.is_none());
        if attempt < settings.max_attempts {
            assert_eq!((report.retrying, report.dead), (1, 0), "attempt {attempt}");
        } else {
            assert_eq!((report.retrying, report.dead), (0, 1), "attempt {attempt}");
        }
    }
    // A dead letter is not claimed again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);

    let status = reindex::status(&f.pool).await.unwrap();
    assert_eq!(status.queue.dead, 1);
    assert_eq!(status.queue.waiting, 0);
    assert_eq!(status.dead_letters.len(), 1);
    let dead = &status.dead_letters[0];
    assert_eq!((dead.scope_id, dead.source_id), (f.canvas.id, block));
    assert_eq!(dead.attempts, settings.max_attempts as i32);
    assert!(dead.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(reindex::render_status(&status).contains(&block.to_string()));
    assert_eq!(status.blocks_without_embedding, 1);
    worker.refresh_gauges().await.unwrap();
    assert_eq!(f.metrics.dead_letters.get(), 1);

    // Revived once the provider accepts it.
    f.fake.recover();
    assert_eq!(queue::retry_dead(&f.pool).await.unwrap(), 1);
    f.drain(&worker, 5).await;
    assert!(stored(&f.pool, f.canvas.id, block).await.is_some());
}

#[tokio::test]
async fn one_refused_text_does_not_fail_the_others_of_its_batch() {
    let mut f = fixture().await;
    // Ids in key order: the worker sends texts alone in that order after a refused batch.
    let mut ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    ids.sort();
    f.canvas.add_with_id(ids[0], "the refused one").await;
    f.canvas.add_with_id(ids[1], "fine two").await;
    f.canvas.add_with_id(ids[2], "fine three").await;
    let refusal = || Reply::Status {
        status: 400,
        retry_after: None,
        message: "input rejected".into(),
    };
    f.fake.script(refusal()); // the batch of three
    f.fake.script(refusal()); // the first text alone

    let report = f.worker().run_once().await.expect("a batch");

    assert_eq!((report.embedded, report.retrying, report.dead), (2, 1, 0));
    assert_eq!(report.calls, 4, "the batch, then each text alone");
    assert!(stored(&f.pool, f.canvas.id, ids[0]).await.is_none());
    assert!(stored(&f.pool, f.canvas.id, ids[1]).await.is_some());
    assert!(stored(&f.pool, f.canvas.id, ids[2]).await.is_some());
    let (attempts, error): (i32, Option<String>) =
        sqlx::query_as("select attempts, last_error from embedding_queue where source_id = $1")
            .bind(ids[0])
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.unwrap_or_default().contains("input rejected"));
}
