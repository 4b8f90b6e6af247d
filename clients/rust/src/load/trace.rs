//! Replay of a real typing trace (`../shared/traces/*.json.gz`, sequential format) through one
//! client, one update per keystroke, with a second client watching; then, after the server
//! restarted, a fresh client checks the text again ([`verify`]).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use yrs::{GetString, ReadTxn, Text, Transact};

use super::stats::{round1, round2, Observed, WindowFigures};
use super::target::{Kind, Target};

/// The encoded size of the automerge-paper document in yjs that the trace's README quotes: yjs's
/// **v2** encoding (`Y.encodeStateAsUpdateV2`, yjs 13.6.33 gives exactly this).
pub const AUTOMERGE_PAPER_YJS_BYTES: u64 = 159_929;

/// The same document in the v1 encoding the y-websocket protocol carries
/// (`Y.encodeStateAsUpdate`, yjs 13.6.33; yrs 0.28 encodes it to the same size).
pub const AUTOMERGE_PAPER_YJS_V1_BYTES: u64 = 311_038;

/// A sequential editing trace.
#[derive(Debug, Deserialize)]
pub struct Trace {
    #[serde(rename = "startContent", default)]
    pub start_content: String,
    #[serde(rename = "endContent")]
    pub end_content: String,
    pub txns: Vec<TraceTxn>,
}

/// One transaction of the trace: patches `(position, deleted, inserted)`.
#[derive(Debug, Deserialize)]
pub struct TraceTxn {
    pub patches: Vec<(usize, usize, String)>,
}

impl Trace {
    /// Reads a `.json` or `.json.gz` trace.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
        let trace: Trace = if path.extension().is_some_and(|e| e == "gz") {
            serde_json::from_reader(BufReader::new(flate2::read::GzDecoder::new(file)))?
        } else {
            serde_json::from_reader(BufReader::new(file))?
        };
        ensure!(
            trace.start_content.is_empty(),
            "traces with a start content are not supported"
        );
        // Positions count code points; with ASCII only they are also yrs's byte offsets.
        let ascii = trace
            .txns
            .iter()
            .flat_map(|t| &t.patches)
            .all(|(_, _, text)| text.is_ascii());
        ensure!(
            ascii,
            "only ASCII traces are supported (positions are code points)"
        );
        Ok(trace)
    }
}

/// What the replay leaves for [`verify`] after the restart.
#[derive(Debug, Serialize, Deserialize)]
pub struct TraceState {
    pub kind: Kind,
    pub canvas: String,
    pub trace: PathBuf,
    /// Ours: the token of the user who owns the canvas.
    pub token: Option<String>,
}

/// Figures of the replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceFigures {
    pub transactions: usize,
    /// The watcher received every update within `--max-secs`.
    pub completed: bool,
    /// Transactions the watcher had received (all of them when completed).
    pub watcher_received: usize,
    /// Seconds until the writer had sent every update.
    pub send_s: f64,
    /// Seconds until the watcher held every update.
    pub watcher_s: f64,
    /// Updates per second, first send to the watcher holding all.
    pub updates_per_s: f64,
    /// Ours: seconds until Postgres held every update (`canvas_documents.last_seq`), as first
    /// observed by polling after the watcher was complete.
    pub durable_s: Option<f64>,
    /// Ours: log entries the replay added.
    pub logged_updates: Option<i64>,
    /// The watcher's text equals the trace's `endContent`.
    pub watcher_text_ok: bool,
    pub end_chars: usize,
    /// The writer's document encoded (yrs, v1).
    pub client_encoded_bytes: usize,
    /// Stored after compaction: ours snapshot + log rows; y-sweet its store files.
    pub stored_bytes: Option<u64>,
    pub snapshot_bytes: Option<u64>,
    pub log_bytes: Option<u64>,
    pub log_rows: Option<i64>,
    /// `stored_bytes` / 159,929 (yjs's v2 encoding of the same document, the README's figure).
    pub stored_vs_yjs: Option<f64>,
    /// `stored_bytes` / 311,038 (yjs's v1 encoding, what the protocol and our log carry).
    pub stored_vs_yjs_v1: Option<f64>,
    #[serde(flatten)]
    pub window: WindowFigures,
}

/// Options of the replay.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub trace: PathBuf,
    /// Most updates in flight (sent, not yet seen by the watcher).
    pub window: usize,
    /// Ours: the database, to see durability and stored bytes.
    pub database_url: Option<String>,
    /// y-sweet: its store directory, to measure what it stored.
    pub ysweet_store: Option<PathBuf>,
    /// Where to leave the [`TraceState`].
    pub state_file: PathBuf,
    /// How long to wait for compaction (ours) or the checkpoint (y-sweet) after the replay.
    pub settle_timeout: Duration,
    /// How long the replay may take before it is reported as incomplete.
    pub max_duration: Duration,
}

/// Replays the trace; see the module documentation.
pub async fn replay(
    target: &Target,
    observed: &Observed,
    options: &TraceOptions,
) -> anyhow::Result<TraceFigures> {
    let trace = Trace::load(&options.trace)?;
    let canvas = target.new_canvas().await?;
    let pool = match &options.database_url {
        Some(url) if target.kind == Kind::Potentia => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .context("connecting to the database")?,
        ),
        _ => None,
    };

    let writer_doc = super::new_doc();
    let writer = target.connect(&canvas, writer_doc.clone()).await?;
    let writer_id = writer_doc.client_id();

    // The watcher publishes how much of the writer it holds: the writer's clock and the
    // text's length.
    let watcher_doc = super::new_doc();
    let seen_clock = Arc::new(AtomicU64::new(0));
    let seen_len = Arc::new(AtomicU64::new(0));
    let progressed = Arc::new(Notify::new());
    {
        let text = watcher_doc.get_or_insert_text("text");
        let (clock, len, notify) = (
            Arc::clone(&seen_clock),
            Arc::clone(&seen_len),
            Arc::clone(&progressed),
        );
        let _ = watcher_doc.observe_after_transaction("potentia-load", move |txn| {
            clock.store(
                u64::from(txn.state_vector().get(&writer_id)),
                Ordering::Release,
            );
            len.store(u64::from(text.len(txn)), Ordering::Release);
            notify.notify_waiters();
        });
    }
    let watcher = target.connect(&canvas, watcher_doc.clone()).await?;
    let base_seq = match &pool {
        Some(pool) => last_seq(pool, &canvas).await?,
        None => 0,
    };

    let text = writer_doc.get_or_insert_text("text");
    let mut clock_after: Vec<u64> = Vec::with_capacity(trace.txns.len());
    let mut clock: u64 = 0;
    let before = observed.snapshot().await;
    let started = Instant::now();
    let deadline = started + options.max_duration;
    for (index, txn) in trace.txns.iter().enumerate() {
        if index >= options.window {
            let need = clock_after[index - options.window];
            let caught_up = tokio::time::timeout_at(
                deadline.into(),
                wait_until(&progressed, || seen_clock.load(Ordering::Acquire) >= need),
            )
            .await;
            if caught_up.is_err() {
                break;
            }
        } else if index % 256 == 0 {
            tokio::task::yield_now().await;
        }
        let mut t = writer_doc.transact_mut();
        for (position, deleted, inserted) in &txn.patches {
            if *deleted > 0 {
                text.remove_range(&mut t, *position as u32, *deleted as u32);
            }
            if !inserted.is_empty() {
                text.insert(&mut t, *position as u32, inserted);
                clock += inserted.encode_utf16().count() as u64;
            }
        }
        drop(t);
        clock_after.push(clock);
    }
    let send_s = started.elapsed().as_secs_f64();
    let end_len = trace.end_content.len() as u64;
    let complete = || {
        seen_clock.load(Ordering::Acquire) >= clock && seen_len.load(Ordering::Acquire) == end_len
    };
    let finished = clock_after.len() == trace.txns.len()
        && tokio::time::timeout_at(deadline.into(), wait_until(&progressed, complete))
            .await
            .is_ok();
    let watcher_s = started.elapsed().as_secs_f64();
    let after = observed.snapshot().await;
    if !finished {
        // Too slow to finish: report how far the watcher got.
        let seen = seen_clock.load(Ordering::Acquire);
        let done = clock_after.partition_point(|&c| c <= seen);
        tracing::warn!(done, "the watcher did not receive every update in time");
        return Ok(TraceFigures {
            transactions: trace.txns.len(),
            completed: false,
            watcher_received: done,
            send_s: round2(send_s),
            watcher_s: round2(watcher_s),
            updates_per_s: round1(done as f64 / watcher_s),
            end_chars: trace.end_content.chars().count(),
            window: before.until(&after),
            ..TraceFigures::default()
        });
    }
    let watcher_text = watcher_doc
        .get_or_insert_text("text")
        .get_string(&watcher_doc.transact());
    let writer_text = text.get_string(&writer_doc.transact());
    ensure!(
        writer_text == trace.end_content,
        "the replay itself went wrong: the writer's text differs from endContent"
    );

    let mut figures = TraceFigures {
        transactions: trace.txns.len(),
        completed: true,
        watcher_received: trace.txns.len(),
        send_s: round2(send_s),
        watcher_s: round2(watcher_s),
        updates_per_s: round1(trace.txns.len() as f64 / watcher_s),
        watcher_text_ok: watcher_text == trace.end_content,
        end_chars: trace.end_content.chars().count(),
        client_encoded_bytes: crate::full_update(&writer_doc).len(),
        window: before.until(&after),
        ..TraceFigures::default()
    };

    if let Some(pool) = &pool {
        let want = base_seq + trace.txns.len() as i64;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let seq = last_seq(pool, &canvas).await?;
            if seq >= want {
                figures.durable_s = Some(round2(started.elapsed().as_secs_f64()));
                figures.logged_updates = Some(seq - base_seq);
                break;
            }
            if Instant::now() >= deadline {
                bail!("only {} of {} updates are in the log", seq - base_seq, want);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(writer);
    drop(watcher);

    match (target.kind, &pool, &options.ysweet_store) {
        (Kind::Potentia, Some(pool), _) => {
            // Once idle past its grace period the room unloads and compacts everything.
            let deadline = Instant::now() + options.settle_timeout;
            loop {
                let (snapshot_seq, last): (i64, i64) = sqlx::query_as(
                    "select snapshot_seq, last_seq from canvas_documents where canvas_id = $1",
                )
                .bind(parse_uuid(&canvas)?)
                .fetch_one(pool)
                .await?;
                if snapshot_seq == last || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let id = parse_uuid(&canvas)?;
            let (snapshot,): (i64,) = sqlx::query_as(
                "select coalesce(length(snapshot), 0)::int8 from canvas_documents where canvas_id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            let (log, rows): (i64, i64) = sqlx::query_as(
                "select coalesce(sum(length(data)), 0)::int8, count(*) from canvas_updates where canvas_id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            figures.snapshot_bytes = Some(snapshot as u64);
            figures.log_bytes = Some(log as u64);
            figures.log_rows = Some(rows);
            figures.stored_bytes = Some((snapshot + log) as u64);
        }
        (Kind::Ysweet, _, Some(store)) => {
            // y-sweet checkpoints every 10 s by default: wait until its files have not changed for 12 s.
            let dir = store.join(&canvas);
            let deadline = Instant::now() + options.settle_timeout;
            let mut last = 0;
            let mut stable = 0;
            while Instant::now() < deadline && stable < 6 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let size = dir_size(&dir);
                stable = if size == last && size > 0 {
                    stable + 1
                } else {
                    0
                };
                last = size;
            }
            figures.stored_bytes = Some(last);
        }
        _ => {}
    }
    figures.stored_vs_yjs = figures
        .stored_bytes
        .map(|b| round2(b as f64 / AUTOMERGE_PAPER_YJS_BYTES as f64));
    figures.stored_vs_yjs_v1 = figures
        .stored_bytes
        .map(|b| round2(b as f64 / AUTOMERGE_PAPER_YJS_V1_BYTES as f64));

    let state = TraceState {
        kind: target.kind,
        canvas,
        trace: options.trace.clone(),
        token: target.token().map(str::to_owned),
    };
    std::fs::write(&options.state_file, serde_json::to_vec_pretty(&state)?)?;
    Ok(figures)
}

/// Figures of the check after a restart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyFigures {
    /// A fresh client's text equals `endContent`.
    pub restart_text_ok: bool,
    /// Seconds from connecting to holding the document.
    pub restart_sync_s: f64,
    pub restart_chars: usize,
}

/// After the server restarted: a fresh client loads the replayed document and compares.
pub async fn verify(base: &str, state_file: &Path) -> anyhow::Result<VerifyFigures> {
    let state: TraceState = serde_json::from_slice(&std::fs::read(state_file)?)?;
    let target = Target::with_token(state.kind, base, state.token.clone())?;
    let trace = Trace::load(&state.trace)?;
    let started = Instant::now();
    let client = target.connect(&state.canvas, super::new_doc()).await?;
    let restart_sync_s = started.elapsed().as_secs_f64();
    let doc = client.doc();
    let text = doc.get_or_insert_text("text").get_string(&doc.transact());
    Ok(VerifyFigures {
        restart_text_ok: text == trace.end_content,
        restart_sync_s: round2(restart_sync_s),
        restart_chars: text.chars().count(),
    })
}

async fn wait_until(notify: &Notify, mut done: impl FnMut() -> bool) {
    loop {
        let notified = notify.notified();
        if done() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
    }
}

async fn last_seq(pool: &sqlx::PgPool, canvas: &str) -> anyhow::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("select last_seq from canvas_documents where canvas_id = $1")
            .bind(parse_uuid(canvas)?)
            .fetch_optional(pool)
            .await?;
    Ok(row.map_or(0, |(seq,)| seq))
}

fn parse_uuid(canvas: &str) -> anyhow::Result<uuid::Uuid> {
    canvas.parse().context("canvas ids of ours are UUIDs")
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
