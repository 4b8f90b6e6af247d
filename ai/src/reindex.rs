//! `potentia ai reindex` and `potentia ai status`: re-embedding every block after a change of
//! model, and the state of the queue and the stored vectors.
//!
//! [`reindex`] walks all blocks in `(canvas_id, id)` order and brings each one's vector up to
//! date under the embedder's model, with the worker's own rules (skip what is current, copy an
//! identical text's vector, clear empty texts). After each batch it saves its position in
//! `ai_reindex_progress`, so a run stopped by Ctrl-C or an outage resumes where it stopped; a
//! finished run removes its row, and the next starts from the beginning (cheaply: current
//! vectors cost no call). A text the provider refuses is handed to the queue, whose retries
//! and dead letters then apply, rather than stopping the walk.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::embed::Embedder;
use crate::error::AiError;
use crate::queue::{self, DeadLetter, QueueStats, SourceKind};
use crate::store::{self, BlockKey};
use crate::worker::embed_blocks;

/// How many dead letters [`status`] lists.
pub const DEAD_LETTER_SAMPLE: i64 = 20;

/// Where a reindex run is, reported after each batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub model: String,
    /// Blocks walked so far, earlier interrupted runs of this model included.
    pub done: u64,
    /// Blocks in the database when this run started.
    pub total: u64,
    /// Of this run: blocks embedded by a call, copied from an identical text, already current.
    pub embedded: u64,
    pub reused: u64,
    pub unchanged: u64,
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Blocks walked per second in this run.
    pub rate: f64,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReindexReport {
    #[serde(flatten)]
    pub progress: Progress,
    /// Blocks whose text became empty: their vector was removed.
    pub cleared: u64,
    /// Blocks whose text the provider refused, left to the queue.
    pub queued: u64,
    pub calls: u64,
    /// Whether the run continued an interrupted one.
    pub resumed: bool,
}

/// Re-embeds every block whose stored vector is missing or not of its current text under
/// `embedder`'s model, `batch` blocks at a time, from the position an interrupted run saved.
/// `progress` is called after each batch. An unavailable provider stops the run with
/// [`AiError::Unavailable`]; run it again to resume.
pub async fn reindex(
    db: &PgPool,
    embedder: &dyn Embedder,
    batch: usize,
    mut progress: impl FnMut(Progress),
) -> Result<ReindexReport, AiError> {
    let model = embedder.model().to_owned();
    let batch = batch.max(1);
    let saved = sqlx::query!(
        "select last_canvas_id, last_block_id, done from ai_reindex_progress where model = $1",
        model
    )
    .fetch_optional(db)
    .await?;
    let total = sqlx::query_scalar!(r#"select count(*) as "n!" from blocks"#)
        .fetch_one(db)
        .await?;
    let resumed = saved.is_some();
    let (mut after, done_before) = match saved {
        Some(s) => (
            Some(BlockKey {
                canvas_id: s.last_canvas_id,
                block_id: s.last_block_id,
            }),
            u64::try_from(s.done).unwrap_or(0),
        ),
        None => (None, 0),
    };
    let started = Instant::now();
    let mut report = ReindexReport {
        progress: Progress {
            model: model.clone(),
            done: done_before,
            total: u64::try_from(total).unwrap_or(0),
            embedded: 0,
            reused: 0,
            unchanged: 0,
            elapsed: Duration::ZERO,
            rate: 0.0,
        },
        cleared: 0,
        queued: 0,
        calls: 0,
        resumed,
    };
    loop {
        let blocks = store::block_texts_after(db, after, batch).await?;
        let Some(last) = blocks.last().map(|b| b.key) else {
            break;
        };
        let walked = blocks.len() as u64;
        let pass = embed_blocks(db, embedder, blocks, batch).await?;
        report.calls += pass.calls as u64;
        report.progress.embedded += pass.embedded.len() as u64;
        report.progress.reused += pass.reused.len() as u64;
        report.progress.unchanged += pass.unchanged.len() as u64;
        report.cleared += pass.cleared.len() as u64;
        let refused: Vec<(Uuid, Uuid, Vec<u8>)> = pass
            .rejected
            .iter()
            .map(|r| (r.key.canvas_id, r.key.block_id, r.content_hash.clone()))
            .collect();
        queue::enqueue(db, SourceKind::Block, &refused).await?;
        report.queued += refused.len() as u64;
        if let Some(outage) = pass.outage {
            // The position stays before this batch; what it did write is current next time.
            return Err(AiError::Unavailable {
                provider: embedder.provider(),
                reason: outage.reason,
                retry_after: outage.retry_after,
            });
        }
        report.progress.done += walked;
        save_position(db, &model, last, report.progress.done).await?;
        report.progress.elapsed = started.elapsed();
        let this_run = report.progress.done - done_before;
        report.progress.rate = this_run as f64 / report.progress.elapsed.as_secs_f64().max(1e-9);
        // Blocks added during the run are walked too; the total grows with them.
        report.progress.total = report.progress.total.max(report.progress.done);
        progress(report.progress.clone());
        after = Some(last);
    }
    sqlx::query!("delete from ai_reindex_progress where model = $1", model)
        .execute(db)
        .await?;
    report.progress.elapsed = started.elapsed();
    Ok(report)
}

async fn save_position(db: &PgPool, model: &str, last: BlockKey, done: u64) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into ai_reindex_progress (model, last_canvas_id, last_block_id, done, updated_at)
           values ($1, $2, $3, $4, now())
           on conflict (model) do update
           set last_canvas_id = excluded.last_canvas_id, last_block_id = excluded.last_block_id,
               done = excluded.done, updated_at = excluded.updated_at"#,
        model,
        last.canvas_id,
        last.block_id,
        i64::try_from(done).unwrap_or(i64::MAX),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Stored vectors of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEmbeddings {
    pub model: String,
    pub blocks: i64,
}

/// An interrupted reindex run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReindexPosition {
    pub model: String,
    pub done: i64,
    pub last_canvas_id: Uuid,
    pub last_block_id: Uuid,
    pub updated_at: DateTime<Utc>,
}

/// What `potentia ai status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiStatus {
    pub queue: QueueStats,
    /// The most recent dead letters, at most [`DEAD_LETTER_SAMPLE`].
    pub dead_letters: Vec<DeadLetter>,
    /// Stored vectors per model.
    pub embeddings: Vec<ModelEmbeddings>,
    pub blocks: i64,
    /// Blocks with some text and no stored vector (blank blocks never have one).
    pub blocks_without_embedding: i64,
    /// Interrupted reindex runs, per model.
    pub reindex: Vec<ReindexPosition>,
}

pub async fn status(db: &PgPool) -> Result<AiStatus, AiError> {
    let queue = queue::stats(db).await?;
    let dead_letters = queue::dead_letters(db, DEAD_LETTER_SAMPLE).await?;
    let embeddings = sqlx::query_as!(
        ModelEmbeddings,
        r#"select model, count(*) as "blocks!" from block_embeddings group by model order by model"#
    )
    .fetch_all(db)
    .await?;
    let blocks = sqlx::query!(
        r#"select count(*) as "blocks!",
                  count(*) filter (where b.text ~ '[^[:space:]]' and not exists (
                      select 1 from block_embeddings e
                      where e.canvas_id = b.canvas_id and e.block_id = b.id)) as "missing!"
           from blocks b"#
    )
    .fetch_one(db)
    .await?;
    let reindex = sqlx::query_as!(
        ReindexPosition,
        r#"select model, done, last_canvas_id, last_block_id, updated_at
           from ai_reindex_progress order by model"#
    )
    .fetch_all(db)
    .await?;
    Ok(AiStatus {
        queue,
        dead_letters,
        embeddings,
        blocks: blocks.blocks,
        blocks_without_embedding: blocks.missing,
        reindex,
    })
}

/// `status` as the CLI prints it.
pub fn render_status(status: &AiStatus) -> String {
    let mut out = String::new();
    let q = &status.queue;
    let oldest = q.oldest_age.map_or_else(
        || "-".to_owned(),
        |age| format!("{:.0} s", age.as_secs_f64()),
    );
    let _ = writeln!(out, "Embedding queue");
    let _ = writeln!(
        out,
        "  waiting {}  due {}  oldest {}  dead letters {}",
        q.waiting, q.due, oldest, q.dead
    );
    for (kind, counts) in &q.by_kind {
        let _ = writeln!(
            out,
            "  {kind:<8} waiting {}  due {}  dead {}",
            counts.waiting, counts.due, counts.dead
        );
    }
    if !status.dead_letters.is_empty() {
        let _ = writeln!(
            out,
            "Dead letters (most recent {})",
            status.dead_letters.len()
        );
        for dead in &status.dead_letters {
            let _ = writeln!(
                out,
                "  {} {}/{}  {} attempts  {}  {}",
                dead.source_kind,
                dead.scope_id,
                dead.source_id,
                dead.attempts,
                dead.dead_at.format("%Y-%m-%d %H:%M:%S"),
                dead.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    let _ = writeln!(out, "Block embeddings");
    let _ = writeln!(
        out,
        "  blocks {}  with text but no vector {}",
        status.blocks, status.blocks_without_embedding
    );
    for model in &status.embeddings {
        let _ = writeln!(out, "  {:<32} {}", model.model, model.blocks);
    }
    if !status.reindex.is_empty() {
        let _ = writeln!(
            out,
            "Interrupted reindex runs (run `potentia ai reindex` to resume)"
        );
        for run in &status.reindex {
            let _ = writeln!(
                out,
                "  {:<32} {} blocks done, last {}/{}, {}",
                run.model,
                run.done,
                run.last_canvas_id,
                run.last_block_id,
                run.updated_at.format("%Y-%m-%d %H:%M:%S")
            );
        }
    }
    out
}

/// One line of progress bar for a terminal (`\r` before it redraws the line).
pub fn render_progress(progress: &Progress) -> String {
    const WIDTH: u64 = 30;
    let total = progress.total.max(1);
    let done = progress.done.min(total);
    let filled = (done * WIDTH / total) as usize;
    format!(
        "[{}{}] {}/{} ({:.0}%)  {:.0} blocks/s  embedded {}  reused {}  unchanged {}",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
        progress.done,
        progress.total,
        done as f64 * 100.0 / total as f64,
        progress.rate,
        progress.embedded,
        progress.reused,
        progress.unchanged,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: u64, total: u64) -> Progress {
        Progress {
            model: "m".to_owned(),
            done,
            total,
            embedded: 3,
            reused: 2,
            unchanged: 1,
            elapsed: Duration::from_secs(2),
            rate: 12.4,
        }
    }

    #[test]
    fn the_progress_bar_fills_in_proportion_to_the_blocks_done() {
        let line = render_progress(&progress(50, 200));
        assert!(line.starts_with(&format!("[{}{}]", "#".repeat(7), "-".repeat(23))));
        assert!(line.contains("50/200 (25%)"));
        assert!(line.contains("12 blocks/s"));
    }

    #[test]
    fn the_progress_bar_of_an_empty_database_is_empty() {
        let line = render_progress(&progress(0, 0));
        assert!(line.starts_with(&format!("[{}]", "-".repeat(30))));
        assert!(line.contains("0/0 (0%)"));
    }
}
