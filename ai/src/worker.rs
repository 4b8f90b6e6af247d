//! The embedding worker: drains `embedding_queue` into `block_embeddings`.
//!
//! Each batch: [`queue::claim`] leases due jobs; the blocks' **current** texts are read (a job
//! records that a text changed, not what it became, so an edit made while queued is embedded
//! once, in its newest form); a block whose stored vector already has this text and model is
//! skipped, a text stored under the same model elsewhere is copied, an empty text loses its
//! vector, a deleted block needs nothing; the rest is embedded in calls of at most the model's
//! batch size, written, and its jobs completed. Usage is charged per user, workspace and day.
//!
//! Failures:
//! * [`AiError::Unavailable`] (an outage, an open breaker): the batch's remaining jobs are
//!   deferred without counting an attempt and the worker waits — the breaker's `retry_after`
//!   when it gives one, else a wait that doubles from the poll interval up to a cap. Nothing is dropped.
//! * [`AiError::Rejected`]: the texts of the refused call are tried one by one, once, so that
//!   one bad text does not fail the others; a text refused alone fails its job
//!   ([`queue::fail`]: backoff, then a dead letter).
//! * A database error: the batch is put back for a poll interval and the worker backs off.
//!
//! Jobs of the `message` and `memory` kinds (chat) take a simpler path
//! ([`EmbeddingWorker::process_chat`]): their current texts are read, those whose vector is
//! current are done, the rest are embedded in calls of at most the batch size and written to
//! `message_embeddings` / `memory_embeddings`. A refused call fails its jobs; an outage defers
//! them, as for blocks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::assistant::vectors;
use crate::embed::{embedded_part, Embedder, Embedding, Purpose};
use crate::error::AiError;
use crate::metrics::AiMetrics;
use crate::queue::{self, Failure, Job, SourceKind};
use crate::settings::WorkerSettings;
use crate::store::{self, BlockKey, BlockText, NewEmbedding};
use crate::usage::{self, UsageDelta};

/// How long claimed jobs stay invisible to other workers. Longer than any one provider call
/// with its retries, so that a slow call is not taken over; a worker that dies only delays its
/// jobs this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(600);
/// The longest wait for a provider that is down and gave no `retry_after` (the default
/// breaker cooldown): it bounds how late a recovery is noticed after a long outage.
pub const MAX_OUTAGE_WAIT: Duration = Duration::from_secs(30);
/// The longest `retry_after` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest wait after a database error.
const MAX_ERROR_WAIT: Duration = Duration::from_secs(30);
/// The shortest wait after an outage, whatever `retry_after` says, so the worker never spins.
const MIN_OUTAGE_WAIT: Duration = Duration::from_millis(50);
/// How often the queue gauges are refreshed while batches follow each other.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// The kinds this build embeds.
const HANDLED_KINDS: [SourceKind; 3] = [SourceKind::Block, SourceKind::Message, SourceKind::Memory];

/// The provider could not answer a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    pub reason: String,
    /// How long the deferred jobs wait, and the worker with them.
    #[serde(serialize_with = "seconds")]
    pub wait: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What one batch did, job by job.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchReport {
    pub claimed: usize,
    /// Jobs whose text was embedded by a call of this batch.
    pub embedded: usize,
    /// Jobs answered by copying a vector of the same text and model.
    pub reused: usize,
    /// Jobs whose block already had a vector of this text and model.
    pub unchanged: usize,
    /// Jobs whose block is gone or whose text is empty (no vector kept).
    pub removed: usize,
    /// Jobs whose text was refused, to be tried again later.
    pub retrying: usize,
    /// Jobs whose text was refused for the last time: dead letters.
    pub dead: usize,
    /// Jobs put back, attempts unchanged, because the provider is unavailable.
    pub deferred: usize,
    /// Embedding calls made.
    pub calls: usize,
    /// Texts sent in those calls.
    pub texts_sent: usize,
    pub outage: Option<Outage>,
}

pub struct EmbeddingWorker {
    db: PgPool,
    embedder: Arc<dyn Embedder>,
    settings: WorkerSettings,
    metrics: AiMetrics,
    notify: Arc<Notify>,
    lease: Duration,
    max_outage_wait: Duration,
    /// Batches in a row that met an outage without a `retry_after`: the next wait grows with it.
    outages: AtomicU32,
}

impl EmbeddingWorker {
    pub fn new(
        db: PgPool,
        embedder: Arc<dyn Embedder>,
        settings: WorkerSettings,
        metrics: AiMetrics,
    ) -> Self {
        Self {
            db,
            embedder,
            settings,
            metrics,
            notify: Arc::new(Notify::new()),
            lease: DEFAULT_LEASE,
            max_outage_wait: MAX_OUTAGE_WAIT,
            outages: AtomicU32::new(0),
        }
    }

    /// Replaces [`DEFAULT_LEASE`].
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Replaces [`MAX_OUTAGE_WAIT`].
    pub fn with_max_outage_wait(mut self, wait: Duration) -> Self {
        self.max_outage_wait = wait;
        self
    }

    /// Poke it (`notify_one`) after queueing work: an idle worker starts at once instead of at
    /// its next poll. A poke while it is busy makes its next idle wait return at once.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Drains the queue until `stop` is cancelled. A batch in flight when it is cancelled is
    /// abandoned: its jobs come back when their lease ends.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(
            model = self.embedder.model(),
            provider = %self.embedder.provider(),
            "embedding worker started"
        );
        let mut database_errors: u32 = 0;
        let mut gauges_at: Option<Instant> = None;
        let mut reported_kinds: BTreeSet<SourceKind> = BTreeSet::new();
        loop {
            let batch = tokio::select! {
                () = stop.cancelled() => break,
                batch = self.run_once() => batch,
            };
            let (wait, wake_on_notify) = match &batch {
                Ok(report) => {
                    database_errors = 0;
                    if let Some(outage) = &report.outage {
                        tracing::warn!(
                            reason = %outage.reason,
                            wait_ms = outage.wait.as_millis() as u64,
                            deferred = report.deferred,
                            "embedding provider unavailable; jobs deferred"
                        );
                        (outage.wait, false)
                    } else if report.claimed >= self.settings.batch_size.max(1) {
                        // A full batch: more may be due right now.
                        (Duration::ZERO, false)
                    } else {
                        (self.settings.poll_interval, true)
                    }
                }
                Err(err) => {
                    database_errors = database_errors.saturating_add(1);
                    let wait =
                        growing(self.settings.poll_interval, database_errors, MAX_ERROR_WAIT);
                    tracing::warn!(error = %err, wait_ms = wait.as_millis() as u64, "embedding batch failed");
                    (wait, false)
                }
            };
            if gauges_at.is_none_or(|at| at.elapsed() >= GAUGE_INTERVAL) || wait > Duration::ZERO {
                gauges_at = Some(Instant::now());
                match self.refresh_gauges().await {
                    Ok(stats) => {
                        for (kind, counts) in &stats.by_kind {
                            if !HANDLED_KINDS.contains(kind)
                                && counts.waiting > 0
                                && reported_kinds.insert(*kind)
                            {
                                tracing::info!(
                                    kind = %kind,
                                    waiting = counts.waiting,
                                    "embedding jobs of a kind this build does not embed stay queued"
                                );
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read the embedding queue's stats")
                    }
                }
            }
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = self.notify.notified(), if wake_on_notify => {}
            }
        }
        tracing::info!("embedding worker stopped");
    }

    /// Reads the queue's figures into the metrics' gauges and returns them.
    pub async fn refresh_gauges(&self) -> Result<queue::QueueStats, AiError> {
        let stats = queue::stats(&self.db).await?;
        self.metrics.queue_depth.set(stats.waiting);
        self.metrics
            .queue_oldest_age_seconds
            .set(stats.oldest_age.map_or(0, |age| age.as_secs() as i64));
        self.metrics.dead_letters.set(stats.dead);
        Ok(stats)
    }

    /// Claims one batch and carries it through. `Err` only for a database error (the claimed
    /// jobs are then put back for a poll interval).
    pub async fn run_once(&self) -> Result<BatchReport, AiError> {
        let jobs = queue::claim(
            &self.db,
            &HANDLED_KINDS,
            self.settings.batch_size.max(1),
            self.lease,
        )
        .await?;
        if jobs.is_empty() {
            return Ok(BatchReport::default());
        }
        match self.process(&jobs).await {
            Ok(report) => Ok(report),
            Err(err) => {
                let put_back = queue::defer(
                    &self.db,
                    &jobs,
                    self.settings.poll_interval,
                    "database error",
                )
                .await;
                if let Err(again) = put_back {
                    tracing::warn!(error = %again, "cannot put an embedding batch back; its lease will");
                }
                Err(err.into())
            }
        }
    }

    async fn process(&self, all: &[Job]) -> sqlx::Result<BatchReport> {
        let mut report = BatchReport {
            claimed: all.len(),
            ..BatchReport::default()
        };
        let (blocks, chat): (Vec<Job>, Vec<Job>) = all
            .iter()
            .cloned()
            .partition(|job| job.source_kind == SourceKind::Block);
        for kind in [SourceKind::Message, SourceKind::Memory] {
            let of_kind: Vec<Job> = chat
                .iter()
                .filter(|j| j.source_kind == kind)
                .cloned()
                .collect();
            if !of_kind.is_empty() {
                self.process_chat(kind, &of_kind, &mut report).await?;
            }
        }
        if blocks.is_empty() {
            return Ok(report);
        }
        let jobs = blocks.as_slice();
        let keys: Vec<BlockKey> = jobs.iter().map(block_key).collect();
        let blocks = store::block_texts(&self.db, &keys).await?;
        let present: HashSet<BlockKey> = blocks.iter().map(|b| b.key).collect();
        // The vector of a deleted block went with it (on delete cascade): nothing to do.
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|job| !present.contains(&block_key(job)))
            .collect();
        report.removed = done.len();

        let chunk = self.settings.batch_size.max(1);
        let pass = embed_blocks(&self.db, self.embedder.as_ref(), blocks, chunk).await?;
        report.calls = pass.calls;
        report.texts_sent = pass.texts_sent;
        self.metrics.embedded_texts.inc_by(pass.texts_sent as u64);
        self.metrics
            .embeddings_reused
            .inc_by(pass.reused.len() as u64);

        let by_key: HashMap<BlockKey, &Job> = jobs.iter().map(|j| (block_key(j), j)).collect();
        let of = |keys: &[BlockKey]| -> Vec<&Job> {
            keys.iter().filter_map(|k| by_key.get(k).copied()).collect()
        };
        report.embedded = pass.embedded.len();
        report.reused = pass.reused.len();
        report.unchanged = pass.unchanged.len();
        report.removed += pass.cleared.len();
        for keys in [&pass.embedded, &pass.reused, &pass.unchanged, &pass.cleared] {
            done.extend(of(keys));
        }
        queue::complete(&self.db, done.iter().copied()).await?;

        for rejected in &pass.rejected {
            let (key, reason) = (rejected.key, &rejected.reason);
            let Some(job) = by_key.get(&key) else {
                continue;
            };
            match queue::fail(&self.db, job, reason, &self.settings).await? {
                Failure::Retrying { .. } => report.retrying += 1,
                Failure::Dead => {
                    report.dead += 1;
                    tracing::warn!(
                        canvas_id = %key.canvas_id,
                        block_id = %key.block_id,
                        reason = %reason,
                        "embedding job dead-lettered"
                    );
                }
                Failure::Superseded => {}
            }
        }

        match pass.outage {
            Some(outage) => {
                let wait = match outage.retry_after {
                    Some(after) => after.clamp(MIN_OUTAGE_WAIT, MAX_RETRY_AFTER),
                    None => {
                        let outages = self.outages.fetch_add(1, Ordering::Relaxed);
                        growing(
                            self.settings.poll_interval,
                            outages + 1,
                            self.max_outage_wait,
                        )
                        .max(MIN_OUTAGE_WAIT)
                    }
                };
                let pending = of(&pass.pending);
                report.deferred =
                    queue::defer(&self.db, pending, wait, &outage.reason).await? as usize;
                report.outage = Some(Outage {
                    reason: outage.reason,
                    wait,
                });
            }
            None => self.outages.store(0, Ordering::Relaxed),
        }
        Ok(report)
    }
}

impl EmbeddingWorker {
    /// Embeds the current texts of chat jobs (`message` or `memory`) of one kind.
    async fn process_chat(
        &self,
        kind: SourceKind,
        jobs: &[Job],
        report: &mut BatchReport,
    ) -> sqlx::Result<()> {
        let model = self.embedder.model().to_owned();
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.source_id).collect();
        let texts = vectors::texts(&self.db, kind, &ids, &model).await?;
        let by_id: HashMap<Uuid, &Job> = jobs.iter().map(|j| (j.source_id, j)).collect();
        let present: HashSet<Uuid> = texts.iter().map(|t| t.id).collect();
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| !present.contains(&j.source_id))
            .collect();
        report.removed += done.len();
        let (current, todo): (Vec<_>, Vec<_>) = texts
            .iter()
            .filter(|t| !t.text.trim().is_empty())
            .partition(|t| t.current);
        report.unchanged += current.len();
        done.extend(current.iter().filter_map(|t| by_id.get(&t.id).copied()));
        report.removed += texts.iter().filter(|t| t.text.trim().is_empty()).count();
        done.extend(
            texts
                .iter()
                .filter(|t| t.text.trim().is_empty())
                .filter_map(|t| by_id.get(&t.id).copied()),
        );
        let chunk = self
            .settings
            .batch_size
            .min(self.embedder.max_batch())
            .max(1);
        let mut deltas: HashMap<Uuid, i64> = HashMap::new();
        let mut rest = todo.as_slice();
        while !rest.is_empty() {
            let (call, later) = rest.split_at(chunk.min(rest.len()));
            rest = later;
            let input: Vec<String> = call
                .iter()
                .map(|t| embedded_part(&t.text).to_owned())
                .collect();
            report.calls += 1;
            report.texts_sent += input.len();
            self.metrics.embedded_texts.inc_by(input.len() as u64);
            match self.embedder.embed(&input, Purpose::Document).await {
                Ok(vectors) if vectors.len() == call.len() => {
                    let rows: Vec<_> = call.iter().copied().zip(vectors).collect();
                    vectors::upsert(&self.db, kind, &model, &rows).await?;
                    report.embedded += call.len();
                    for t in call {
                        *deltas.entry(t.user_id).or_default() += 1;
                    }
                    done.extend(call.iter().filter_map(|t| by_id.get(&t.id).copied()));
                }
                Err(AiError::Rejected { reason, .. }) => {
                    for t in call {
                        if let Some(job) = by_id.get(&t.id) {
                            match queue::fail(&self.db, job, &reason, &self.settings).await? {
                                Failure::Retrying { .. } => report.retrying += 1,
                                Failure::Dead => report.dead += 1,
                                Failure::Superseded => {}
                            }
                        }
                    }
                }
                other => {
                    let reason = match other {
                        Ok(v) => format!("{} vectors for {} texts", v.len(), call.len()),
                        Err(err) => err.to_string(),
                    };
                    let wait = growing(self.settings.poll_interval, 1, self.max_outage_wait)
                        .max(MIN_OUTAGE_WAIT);
                    let pending: Vec<&Job> = call
                        .iter()
                        .chain(rest.iter())
                        .filter_map(|t| by_id.get(&t.id).copied())
                        .collect();
                    report.deferred +=
                        queue::defer(&self.db, pending, wait, &reason).await? as usize;
                    report.outage = Some(Outage { reason, wait });
                    break;
                }
            }
        }
        queue::complete(&self.db, done.iter().copied()).await?;
        let day = Utc::now().date_naive();
        let usage: Vec<UsageDelta> = deltas
            .into_iter()
            .map(|(user_id, texts)| UsageDelta {
                user_id,
                workspace_id: None,
                day,
                provider: self.embedder.provider(),
                model: model.clone(),
                requests: 1,
                input_tokens: 0,
                output_tokens: 0,
                embedded_texts: texts,
            })
            .collect();
        usage::record(&self.db, &usage).await?;
        Ok(())
    }
}

fn block_key(job: &Job) -> BlockKey {
    BlockKey {
        canvas_id: job.scope_id,
        block_id: job.source_id,
    }
}

/// `base` doubled `n - 1` times, capped at `cap`.
fn growing(base: Duration, n: u32, cap: Duration) -> Duration {
    base.checked_mul(2u32.saturating_pow(n.saturating_sub(1).min(31)))
        .unwrap_or(cap)
        .min(cap)
}

/// A provider failure that stopped a pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PassOutage {
    pub reason: String,
    pub retry_after: Option<Duration>,
}

/// What [`embed_blocks`] did with each block.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    pub embedded: Vec<BlockKey>,
    pub reused: Vec<BlockKey>,
    pub unchanged: Vec<BlockKey>,
    /// Empty text: no vector kept.
    pub cleared: Vec<BlockKey>,
    /// Refused by the provider when sent alone.
    pub rejected: Vec<RejectedText>,
    /// Not sent because the provider became unavailable.
    pub pending: Vec<BlockKey>,
    pub outage: Option<PassOutage>,
    pub calls: usize,
    pub texts_sent: usize,
}

/// A block whose text the provider refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RejectedText {
    pub key: BlockKey,
    pub content_hash: Vec<u8>,
    pub reason: String,
}

/// Blocks of one text, embedded once for all of them.
struct SameText {
    text: String,
    hash: Vec<u8>,
    blocks: Vec<BlockText>,
}

/// Brings the stored vectors of `blocks` up to date with their current texts under the
/// embedder's model, in calls of at most `chunk` texts (and the model's own limit), and charges
/// the calls to their users. Only a database error is an `Err`; provider failures are in the
/// [`Pass`].
pub(crate) async fn embed_blocks(
    db: &PgPool,
    embedder: &dyn Embedder,
    blocks: Vec<BlockText>,
    chunk: usize,
) -> sqlx::Result<Pass> {
    let model = embedder.model().to_owned();
    let mut pass = Pass::default();
    let mut empty = Vec::new();
    let mut candidates = Vec::new();
    for block in blocks {
        if block.is_current(&model) {
            pass.unchanged.push(block.key);
        } else if block.text.trim().is_empty() {
            empty.push(block.key);
        } else {
            candidates.push(block);
        }
    }
    store::delete(db, &empty).await?;
    pass.cleared = empty;

    let targets: Vec<(BlockKey, Vec<u8>)> = candidates
        .iter()
        .map(|b| (b.key, b.content_hash.clone()))
        .collect();
    let reused = store::copy_reusable(db, &model, &targets).await?;
    let mut groups: Vec<SameText> = Vec::new();
    let mut group_of: HashMap<Vec<u8>, usize> = HashMap::new();
    for block in candidates {
        if reused.contains(&block.key) {
            pass.reused.push(block.key);
            continue;
        }
        match group_of.get(&block.content_hash) {
            Some(&i) => groups[i].blocks.push(block),
            None => {
                group_of.insert(block.content_hash.clone(), groups.len());
                groups.push(SameText {
                    text: block.text.clone(),
                    hash: block.content_hash.clone(),
                    blocks: vec![block],
                });
            }
        }
    }

    let chunk = chunk.min(embedder.max_batch()).max(1);
    let mut usage = Usage::default();
    let mut rest = groups.as_slice();
    while !rest.is_empty() && pass.outage.is_none() {
        let (call, later) = rest.split_at(chunk.min(rest.len()));
        rest = later;
        match embed_call(embedder, call, &mut pass).await {
            Ok(vectors) => {
                write(db, &model, call, vectors, &mut pass, &mut usage).await?;
            }
            Err(AiError::Rejected { reason, .. }) if call.len() == 1 => {
                reject(&mut pass, &call[0], &reason);
            }
            Err(AiError::Rejected { .. }) => {
                // One text may be the cause: try each alone, once.
                for (i, single) in call.iter().enumerate() {
                    match embed_call(embedder, std::slice::from_ref(single), &mut pass).await {
                        Ok(vectors) => {
                            write(
                                db,
                                &model,
                                std::slice::from_ref(single),
                                vectors,
                                &mut pass,
                                &mut usage,
                            )
                            .await?;
                        }
                        Err(AiError::Rejected { reason, .. }) => reject(&mut pass, single, &reason),
                        Err(err) => {
                            pass.outage = Some(outage_of(err));
                            pending(&mut pass, &call[i..]);
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                pass.outage = Some(outage_of(err));
                pending(&mut pass, call);
            }
        }
    }
    pending(&mut pass, rest);
    usage::record(db, &usage.deltas(embedder)).await?;
    Ok(pass)
}

fn reject(pass: &mut Pass, group: &SameText, reason: &str) {
    pass.rejected
        .extend(group.blocks.iter().map(|b| RejectedText {
            key: b.key,
            content_hash: group.hash.clone(),
            reason: reason.to_owned(),
        }));
}

fn pending(pass: &mut Pass, groups: &[SameText]) {
    pass.pending
        .extend(groups.iter().flat_map(|g| g.blocks.iter().map(|b| b.key)));
}

fn outage_of(err: AiError) -> PassOutage {
    match err {
        AiError::Unavailable {
            reason,
            retry_after,
            ..
        } => PassOutage {
            reason,
            retry_after,
        },
        // Not configured, a model that cannot load, a database error inside the provider:
        // nothing the input did, so the jobs wait like they do for an outage.
        other => PassOutage {
            reason: other.to_string(),
            retry_after: None,
        },
    }
}

/// One call for the texts of `groups`; a vector count that does not match is the provider's
/// fault, an outage like a malformed response.
async fn embed_call(
    embedder: &dyn Embedder,
    groups: &[SameText],
    pass: &mut Pass,
) -> Result<Vec<Embedding>, AiError> {
    let texts: Vec<String> = groups
        .iter()
        .map(|g| embedded_part(&g.text).to_owned())
        .collect();
    pass.calls += 1;
    pass.texts_sent += texts.len();
    let vectors = embedder.embed(&texts, Purpose::Document).await?;
    if vectors.len() != texts.len() {
        return Err(AiError::unavailable(
            embedder.provider(),
            format!("{} vectors for {} texts", vectors.len(), texts.len()),
        ));
    }
    Ok(vectors)
}

async fn write(
    db: &PgPool,
    model: &str,
    groups: &[SameText],
    vectors: Vec<Embedding>,
    pass: &mut Pass,
    usage: &mut Usage,
) -> sqlx::Result<()> {
    let mut rows = Vec::new();
    for (group, vector) in groups.iter().zip(vectors) {
        for block in &group.blocks {
            rows.push(NewEmbedding {
                key: block.key,
                content_hash: group.hash.clone(),
                embedding: vector.clone(),
            });
            pass.embedded.push(block.key);
        }
    }
    store::upsert(db, model, &rows).await?;
    usage.charge_call(groups);
    Ok(())
}

/// Usage of a pass, per user and workspace (the day is today's).
#[derive(Default)]
struct Usage {
    /// (requests, embedded texts)
    by_payer: HashMap<(Uuid, Option<Uuid>), (i64, i64)>,
}

impl Usage {
    /// Each text is charged to the first block that has it; each user and workspace with a text
    /// in the call is charged one request.
    fn charge_call(&mut self, groups: &[SameText]) {
        let mut in_call = HashSet::new();
        for group in groups {
            let Some(first) = group.blocks.first() else {
                continue;
            };
            let payer = (first.user_id, first.workspace_id);
            let entry = self.by_payer.entry(payer).or_default();
            entry.1 += 1;
            if in_call.insert(payer) {
                entry.0 += 1;
            }
        }
    }

    fn deltas(&self, embedder: &dyn Embedder) -> Vec<UsageDelta> {
        let day = Utc::now().date_naive();
        self.by_payer
            .iter()
            .map(
                |(&(user_id, workspace_id), &(requests, texts))| UsageDelta {
                    user_id,
                    workspace_id,
                    day,
                    provider: embedder.provider(),
                    model: embedder.model().to_owned(),
                    requests,
                    input_tokens: 0,
                    output_tokens: 0,
                    embedded_texts: texts,
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_wait_doubles_from_the_poll_interval_up_to_its_cap() {
        let base = Duration::from_millis(500);
        assert_eq!(growing(base, 1, MAX_OUTAGE_WAIT), base);
        assert_eq!(growing(base, 2, MAX_OUTAGE_WAIT), base * 2);
        assert_eq!(growing(base, 4, MAX_OUTAGE_WAIT), base * 8);
        assert_eq!(growing(base, 40, MAX_OUTAGE_WAIT), MAX_OUTAGE_WAIT);
    }

    fn block(user: Uuid, workspace: Option<Uuid>, text: &str) -> BlockText {
        BlockText {
            key: BlockKey {
                canvas_id: Uuid::new_v4(),
                block_id: Uuid::new_v4(),
            },
            text: text.to_owned(),
            content_hash: store::content_hash(text),
            workspace_id: workspace,
            user_id: user,
            stored: None,
        }
    }

    #[test]
    fn a_call_charges_each_payer_one_request_and_each_text_once() {
        let (alice, bob, workspace) = (Uuid::new_v4(), Uuid::new_v4(), Some(Uuid::new_v4()));
        let group = |blocks: Vec<BlockText>| SameText {
            text: blocks[0].text.clone(),
            hash: blocks[0].content_hash.clone(),
            blocks,
        };
        let call = [
            group(vec![
                block(alice, workspace, "a"),
                block(bob, workspace, "a"),
            ]),
            group(vec![block(alice, workspace, "b")]),
            group(vec![block(bob, None, "c")]),
        ];
        let mut usage = Usage::default();
        usage.charge_call(&call);
        assert_eq!(usage.by_payer[&(alice, workspace)], (1, 2));
        assert_eq!(usage.by_payer[&(bob, None)], (1, 1));
        assert!(!usage.by_payer.contains_key(&(bob, workspace)));
    }
}
