//! `potentia ai reindex`: after a change of model every block is re-embedded, identical texts
//! once, and a run stopped half-way resumes from its saved position.

use std::collections::HashSet;
use std::time::Duration;

use potentia_ai::reindex::{self, render_progress, Progress};

use crate::support::{embedder_for, fixture, stored, Fixture, MODEL};

const NEW_MODEL: &str = "fake-embed-2";

async fn seeded(blocks: usize) -> (Fixture, Vec<uuid::Uuid>) {
    let mut f = fixture().await;
    let mut ids = Vec::new();
    for i in 0..blocks {
        ids.push(
            f.canvas
                .add(&format!("paragraph {i} about something"))
                .await,
        );
    }
    f.drain(&f.worker(), 20).await;
    (f, ids)
}

async fn models(f: &Fixture) -> Vec<(String, i64)> {
    sqlx::query_as("select model, count(*) from block_embeddings group by model order by model")
        .fetch_all(&f.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn reindex_after_a_model_change_re_embeds_every_block() {
    let (mut f, ids) = seeded(7).await;
    let duplicate = f.canvas.add("paragraph 0 about something").await;
    f.drain(&f.worker(), 5).await;
    let sent_before = f.texts_sent().len();
    let new_model = embedder_for(&f.fake, NEW_MODEL, &f.resilience);
    let mut reports = Vec::new();

    let report = reindex::reindex(&f.pool, new_model.as_ref(), 3, |p| reports.push(p))
        .await
        .expect("a reindex");

    assert_eq!(models(&f).await, vec![(NEW_MODEL.to_owned(), 8)]);
    for id in ids.iter().chain([&duplicate]) {
        assert_eq!(
            stored(&f.pool, f.canvas.id, *id).await.unwrap().0,
            NEW_MODEL
        );
    }
    // Seven distinct texts, the duplicate copied (or sent once with its twin).
    assert_eq!(f.texts_sent().len() - sent_before, 7);
    assert_eq!(report.progress.done, 8);
    assert_eq!(report.progress.total, 8);
    assert_eq!(report.progress.embedded + report.progress.reused, 8);
    assert!(!report.resumed);
    assert_eq!(
        reports.iter().map(|p| p.done).collect::<Vec<_>>(),
        vec![3, 6, 8]
    );
    assert!(render_progress(reports.last().unwrap()).contains("8/8 (100%)"));
    let status = reindex::status(&f.pool).await.unwrap();
    assert!(
        status.reindex.is_empty(),
        "a finished run leaves no position"
    );
    assert_eq!(status.blocks_without_embedding, 0);

    // Run again under the same model: nothing to send.
    let again = reindex::reindex(&f.pool, new_model.as_ref(), 3, |_| {})
        .await
        .unwrap();
    assert_eq!(again.progress.unchanged, 8);
    assert_eq!(again.calls, 0);
}

#[tokio::test]
async fn an_interrupted_reindex_resumes_from_its_saved_position() {
    let (f, _ids) = seeded(9).await;
    let sent_before = f.texts_sent().len();
    let new_model = embedder_for(&f.fake, NEW_MODEL, &f.resilience);

    // Stopped (as by Ctrl-C: the future is dropped) once its first batch is saved.
    let (saved_tx, mut saved_rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    // `biased`: the report is looked at before the run is polled again, so the run is dropped
    // at its next await after the first save, never after a second one (a random branch
    // order let it save twice first now and then).
    tokio::select! {
        biased;
        first = saved_rx.recv() => assert_eq!(first.unwrap().done, 3),
        finished = reindex::reindex(&f.pool, new_model.as_ref(), 3, |p| {
            let _ = saved_tx.send(p);
        }) => panic!("the run should have been stopped: {finished:?}"),
    }
    let status = reindex::status(&f.pool).await.unwrap();
    assert_eq!(status.reindex.len(), 1);
    let position = &status.reindex[0];
    assert_eq!(position.model, NEW_MODEL);
    let saved = position.done;
    assert_eq!(saved, 3, "stopped before its second batch was saved");
    assert_eq!(f.texts_sent().len() - sent_before, 3);

    let report = reindex::reindex(&f.pool, new_model.as_ref(), 3, |_| {})
        .await
        .expect("the resumed run");

    assert!(report.resumed);
    assert_eq!(report.progress.done, 9);
    assert_eq!(
        report.progress.embedded + report.progress.unchanged,
        9 - saved as u64,
        "only the blocks after the saved position are walked"
    );
    let all_sent = f.texts_sent()[sent_before..].to_vec();
    assert_eq!(
        all_sent.len(),
        9,
        "no block embedded twice across the two runs"
    );
    assert_eq!(all_sent.iter().collect::<HashSet<_>>().len(), 9);
    assert_eq!(models(&f).await, vec![(NEW_MODEL.to_owned(), 9)]);
    assert!(reindex::status(&f.pool).await.unwrap().reindex.is_empty());
}

#[tokio::test]
async fn a_reindex_stopped_by_an_outage_resumes_when_the_provider_is_back() {
    let (f, _ids) = seeded(6).await;
    let new_model = embedder_for(&f.fake, NEW_MODEL, &f.resilience);
    let mut first_batch_done = false;
    f.fake.fail_for(Duration::from_secs(60));
    let stopped = reindex::reindex(&f.pool, new_model.as_ref(), 3, |_| {
        first_batch_done = true;
    })
    .await;
    assert!(matches!(
        stopped,
        Err(potentia_ai::AiError::Unavailable { .. })
    ));
    assert!(!first_batch_done);
    assert_eq!(
        models(&f).await,
        vec![(MODEL.to_owned(), 6)],
        "old vectors kept"
    );

    f.fake.recover();
    tokio::time::sleep(f.resilience.settings().breaker_cooldown).await;
    let report = reindex::reindex(&f.pool, new_model.as_ref(), 3, |_| {})
        .await
        .expect("the run after the outage");

    assert_eq!(report.progress.done, 6);
    assert_eq!(models(&f).await, vec![(NEW_MODEL.to_owned(), 6)]);
}
