//! The fan-out scenarios (N clients × M canvases at a fixed rate, and the rate ramp) and the
//! memory-per-idle-canvas scenario.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use yrs::types::EntryChange;
use yrs::{Any, Doc, Map, MapPrelim, Number, Observable, Out, Text, TextPrelim, Transact};

use super::now_us;
use super::stats::{ms, percentile, round1, Observed, WindowFigures};
use super::target::Target;
use crate::{SyncClient, REMOTE_ORIGIN};

/// The text each edit inserts (a burst of typing).
const EDIT_TEXT: &str = "typing… ";

/// One edit seen by one receiver.
#[derive(Debug, Clone, Copy)]
struct Sample {
    sender: u32,
    seq: u32,
    sent_us: u64,
    latency_us: u64,
}

type Samples = Arc<Mutex<Vec<Sample>>>;

/// A document whose `bench` map records, for every key another client inserted, the latency
/// from the send time stored under it to now.
fn recording_doc(samples: Samples) -> Doc {
    let doc = super::new_doc();
    let map = doc.get_or_insert_map("bench");
    map.observe("potentia-load", move |txn, event| {
        let remote = txn
            .origin()
            .is_some_and(|origin| origin.as_ref() == REMOTE_ORIGIN.as_bytes());
        if !remote {
            return;
        }
        let now = now_us();
        let mut samples = samples.lock().unwrap_or_else(|p| p.into_inner());
        for (key, change) in event.keys(txn) {
            let EntryChange::Inserted(Out::Any(Any::Number(sent))) = change else {
                continue;
            };
            let Some((sender, seq)) = key.split_once(':') else {
                continue;
            };
            let (Ok(sender), Ok(seq)) = (sender.parse(), seq.parse()) else {
                continue;
            };
            let sent_us = match sent {
                Number::Int(us) => *us as u64,
                Number::Float(us) => *us as u64,
            };
            samples.push(Sample {
                sender,
                seq,
                sent_us,
                latency_us: now.saturating_sub(sent_us),
            });
        }
    });
    doc
}

/// One edit: a few characters typed at the start of the shared text plus the send time under
/// a key of its own, in one transaction (one update).
fn edit(doc: &Doc, sender: u32, seq: u32) -> u64 {
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("bench");
    let mut txn = doc.transact_mut();
    text.insert(&mut txn, 0, EDIT_TEXT);
    let sent = now_us();
    map.insert(
        &mut txn,
        format!("{sender}:{seq}"),
        Any::Number(Number::Float(sent as f64)),
    );
    sent
}

/// Shape of a fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub canvases: usize,
    pub clients_per_canvas: usize,
    /// Edits per second each client sends.
    pub rate_per_client: f64,
    /// Sending before the measured window (connections warm, documents non-empty).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// After sending stops: how long receivers get to see everything.
    pub drain: Duration,
}

/// Figures of a fan-out run (edits sent in the measured window only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutFigures {
    pub canvases: usize,
    pub clients_per_canvas: usize,
    /// Edits per second the schedule asked for, all canvases together.
    pub offered_per_s: f64,
    /// Edits per second actually sent.
    pub sent_per_s: f64,
    /// Edits per second that reached every other client of their canvas (on average).
    pub delivered_per_s: f64,
    /// Deliveries seen / deliveries expected (each edit to every other client of its canvas).
    pub delivered_ratio: f64,
    /// Propagation latency, one sample per edit and receiver (none: nothing arrived).
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Time until the last other client of the canvas saw an edit, p99 over edits.
    pub all_seen_p99_ms: Option<f64>,
    pub samples: usize,
    /// Clients whose connection the server closed during the run.
    pub disconnected: usize,
    #[serde(flatten)]
    pub window: WindowFigures,
    pub server_rss_mib: Option<f64>,
}

/// N clients on each of M canvases, each sending [`edit`]s at a fixed rate; see the module
/// documentation of [`super`].
pub async fn fanout(
    target: &Target,
    observed: &Observed,
    options: &FanoutOptions,
) -> anyhow::Result<FanoutFigures> {
    let per_canvas = options.clients_per_canvas;
    anyhow::ensure!(per_canvas >= 2, "at least two clients per canvas");
    let mut clients: Vec<(SyncClient, Samples)> = Vec::new();
    for _ in 0..options.canvases {
        let canvas = target.new_canvas().await?;
        for _ in 0..per_canvas {
            let samples: Samples = Arc::default();
            let client = target
                .connect(&canvas, recording_doc(Arc::clone(&samples)))
                .await?;
            clients.push((client, samples));
        }
    }
    tracing::info!(
        clients = clients.len(),
        "connected; sending {} edits/s per client",
        options.rate_per_client
    );

    let start = Instant::now() + Duration::from_millis(200);
    let window_start_us = now_us() + 200_000 + options.warmup.as_micros() as u64;
    let window_end_us = window_start_us + options.duration.as_micros() as u64;
    let end = start + options.warmup + options.duration;
    let rate = options.rate_per_client;
    let mut senders = Vec::new();
    for (index, (client, _)) in clients.iter().enumerate() {
        let doc = client.doc().clone();
        let sender = index as u32;
        // Spread the clients' first edits over one period.
        let phase = Duration::from_secs_f64((index as f64 * 0.618_034).fract() / rate);
        senders.push(tokio::spawn(async move {
            let first = start + phase;
            let mut seq: u32 = 0;
            let mut in_window: u64 = 0;
            tokio::time::sleep_until(first).await;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let due = ((now - first).as_secs_f64() * rate).floor() as u64 + 1;
                while u64::from(seq) < due {
                    let sent = edit(&doc, sender, seq);
                    if (window_start_us..window_end_us).contains(&sent) {
                        in_window += 1;
                    }
                    seq += 1;
                }
                let next = first + Duration::from_secs_f64(f64::from(seq) / rate);
                tokio::time::sleep_until(next.min(end)).await;
            }
            in_window
        }));
    }
    tokio::time::sleep_until(start + options.warmup).await;
    let before = observed.snapshot().await;
    tokio::time::sleep_until(end).await;
    let after = observed.snapshot().await;
    let mut sent_in_window = Vec::with_capacity(senders.len());
    for sender in senders {
        sent_in_window.push(sender.await?);
    }

    // Deliveries expected: every edit of the window, at every other client of its canvas.
    let expected_for = |receiver: usize| -> u64 {
        let canvas = receiver / per_canvas;
        (canvas * per_canvas..(canvas + 1) * per_canvas)
            .filter(|&sender| sender != receiver)
            .map(|sender| sent_in_window[sender])
            .sum()
    };
    let in_window = |s: &Sample| (window_start_us..window_end_us).contains(&s.sent_us);
    let seen_for = |samples: &Samples| {
        samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| in_window(s))
            .count() as u64
    };
    let drain_deadline = Instant::now() + options.drain;
    loop {
        let done = clients.iter().enumerate().all(|(i, (client, samples))| {
            client.state().closed.is_some() || seen_for(samples) >= expected_for(i)
        });
        if done || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let disconnected = clients
        .iter()
        .filter(|(client, _)| client.state().closed.is_some())
        .count();
    let expected: u64 = (0..clients.len()).map(expected_for).sum();
    let mut latencies = Vec::new();
    let mut per_edit: HashMap<(u32, u32), (usize, u64)> = HashMap::new();
    for (_, samples) in &clients {
        for sample in samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| in_window(s))
        {
            latencies.push(sample.latency_us);
            let entry = per_edit
                .entry((sample.sender, sample.seq))
                .or_insert((0, 0));
            entry.0 += 1;
            entry.1 = entry.1.max(sample.latency_us);
        }
    }
    latencies.sort_unstable();
    let mut all_seen: Vec<u64> = per_edit
        .values()
        .filter(|(seen, _)| *seen == per_canvas - 1)
        .map(|(_, max)| *max)
        .collect();
    all_seen.sort_unstable();
    let secs = options.duration.as_secs_f64();
    let sent: u64 = sent_in_window.iter().sum();
    let figures = FanoutFigures {
        canvases: options.canvases,
        clients_per_canvas: per_canvas,
        offered_per_s: round1(rate * clients.len() as f64),
        sent_per_s: round1(sent as f64 / secs),
        delivered_per_s: round1(latencies.len() as f64 / (per_canvas - 1) as f64 / secs),
        delivered_ratio: if expected == 0 {
            0.0
        } else {
            (latencies.len() as f64 / expected as f64 * 1e4).round() / 1e4
        },
        latency_p50_ms: quantile_ms(&latencies, 0.50),
        latency_p90_ms: quantile_ms(&latencies, 0.90),
        latency_p99_ms: quantile_ms(&latencies, 0.99),
        latency_max_ms: quantile_ms(&latencies, 1.0),
        all_seen_p99_ms: quantile_ms(&all_seen, 0.99),
        samples: latencies.len(),
        disconnected,
        window: before.until(&after),
        server_rss_mib: observed
            .server_rss_kib()
            .map(|kib| round1(kib as f64 / 1024.0)),
    };
    for (mut client, _) in clients {
        client.disconnect().await;
    }
    Ok(figures)
}

fn quantile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| ms(percentile(sorted, p)))
}

/// Shape of the rate ramp on one canvas.
#[derive(Debug, Clone)]
pub struct RampOptions {
    pub clients: usize,
    /// Total offered edits per second of the first step; each next step multiplies it.
    pub start_rate: f64,
    pub factor: f64,
    pub max_rate: f64,
    pub step: Duration,
    /// A step passes while its p99 latency stays at most this.
    pub p99_limit: Duration,
    /// … and at least this share of the deliveries arrive (after a short drain).
    pub min_delivered_ratio: f64,
}

/// Figures of the ramp: every step, and the highest rate that passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RampFigures {
    pub clients: usize,
    pub p99_limit_ms: f64,
    /// Highest offered rate (edits/s on the canvas) that passed.
    pub max_sustained_per_s: f64,
    /// Delivered edits/s at that step.
    pub max_delivered_per_s: f64,
    /// Why the ramp stopped at the next step.
    pub stopped_by: String,
    pub steps: Vec<FanoutFigures>,
}

/// Doubles (×`factor`) the offered rate on one canvas until a step fails.
pub async fn ramp(
    target: &Target,
    observed: &Observed,
    options: &RampOptions,
) -> anyhow::Result<RampFigures> {
    let mut figures = RampFigures {
        clients: options.clients,
        p99_limit_ms: options.p99_limit.as_secs_f64() * 1e3,
        stopped_by: format!("reached the ramp's ceiling of {} edits/s", options.max_rate),
        ..RampFigures::default()
    };
    let mut rate = options.start_rate;
    while rate <= options.max_rate {
        let step = fanout(
            target,
            observed,
            &FanoutOptions {
                canvases: 1,
                clients_per_canvas: options.clients,
                rate_per_client: rate / options.clients as f64,
                warmup: Duration::from_secs(2),
                duration: options.step,
                drain: Duration::from_secs(3),
            },
        )
        .await?;
        tracing::info!(
            rate,
            sent = step.sent_per_s,
            delivered = step.delivered_ratio,
            p99_ms = step.latency_p99_ms,
            "ramp step"
        );
        let failure = if step.disconnected > 0 {
            Some(format!(
                "{} clients disconnected at {rate} edits/s",
                step.disconnected
            ))
        } else if step.sent_per_s < 0.95 * rate {
            Some(format!(
                "the load generator sent only {} of {rate} edits/s (client-bound: a lower bound)",
                step.sent_per_s
            ))
        } else if step.latency_p99_ms.unwrap_or(f64::INFINITY) > figures.p99_limit_ms {
            Some(format!(
                "p99 {} ms > {} ms at {rate} edits/s",
                step.latency_p99_ms.unwrap_or(f64::INFINITY),
                figures.p99_limit_ms
            ))
        } else if step.delivered_ratio < options.min_delivered_ratio {
            Some(format!(
                "delivered {:.1}% < {:.1}% at {rate} edits/s",
                step.delivered_ratio * 100.0,
                options.min_delivered_ratio * 100.0
            ))
        } else {
            None
        };
        let passed = failure.is_none();
        if passed {
            figures.max_sustained_per_s = rate;
            figures.max_delivered_per_s = step.delivered_per_s;
        }
        figures.steps.push(step);
        if let Some(reason) = failure {
            figures.stopped_by = reason;
            break;
        }
        rate *= options.factor;
    }
    Ok(figures)
}

/// Figures of the memory scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryFigures {
    pub canvases: usize,
    /// Encoded size of each canvas's document.
    pub document_bytes: usize,
    pub rss_before_kib: Option<u64>,
    /// With every canvas loaded and one idle client on each (`--sequential`: none).
    pub rss_loaded_kib: Option<u64>,
    pub sequential: bool,
    pub per_canvas_kib: Option<f64>,
    /// After the clients left (documents that stay loaded: ours with a long unload grace,
    /// the Node server, which never unloads without persistence).
    pub rss_after_disconnect_kib: Option<u64>,
    pub per_canvas_without_clients_kib: Option<f64>,
    /// The server's `potentia_sync_rooms` gauge at the end (ours only).
    pub rooms_loaded: Option<f64>,
}

/// A small canvas: a title and three paragraphs, as ARCHITECTURE §2 lays them out.
fn write_small_canvas(doc: &Doc, index: usize) {
    let meta = doc.get_or_insert_map("meta");
    let blocks = doc.get_or_insert_map("blocks");
    let mut txn = doc.transact_mut();
    meta.insert(&mut txn, "title", format!("Canvas {index}"));
    for i in 0..3 {
        let block = blocks.insert(
            &mut txn,
            uuid::Uuid::new_v4().to_string(),
            MapPrelim::default(),
        );
        block.insert(&mut txn, "type", "paragraph");
        block.insert(&mut txn, "order", format!("a{i}"));
        block.insert(
            &mut txn,
            "text",
            TextPrelim::new(format!(
                "Paragraph {i} of a small canvas: plans for the week."
            )),
        );
    }
}

/// Loads `canvases` small documents, each with one idle client, and reports the server's RSS
/// growth per canvas.
pub async fn memory(
    target: &Target,
    observed: &Observed,
    canvases: usize,
    settle: Duration,
    sequential: bool,
) -> anyhow::Result<MemoryFigures> {
    // Warm-up: the server's pools, caches and allocator have served a few canvases before the
    // baseline. The baseline is taken before the canvases are created: y-sweet loads a document
    // when it is created.
    for index in 0..5 {
        let id = target.new_canvas().await?;
        let mut client = target.connect(&id, super::new_doc()).await?;
        write_small_canvas(client.doc(), index);
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.disconnect().await;
    }
    tokio::time::sleep(settle).await;
    let rss_before = observed.server_rss_kib();
    let mut ids = Vec::with_capacity(canvases);
    for _ in 0..canvases {
        ids.push(target.new_canvas().await?);
    }
    let mut clients = Vec::with_capacity(canvases);
    let mut document_bytes = 0;
    for (index, id) in ids.iter().enumerate() {
        let mut client = target.connect(id, super::new_doc()).await?;
        write_small_canvas(client.doc(), index);
        document_bytes = crate::full_update(client.doc()).len();
        if sequential {
            // Gone before the next one, once the server has the edit (a second client sees it).
            let check = target.connect(id, super::new_doc()).await?;
            let want = crate::state_vector(client.doc());
            check
                .wait_for(Duration::from_secs(30), |_, doc| {
                    crate::state_vector(doc) == want
                })
                .await?;
            drop(check);
            client.disconnect().await;
        } else {
            clients.push(client);
        }
    }
    // Every client's edit has reached its server: a second client per canvas sees it.
    for (client, id) in clients.iter().zip(&ids).step_by((canvases / 10).max(1)) {
        let check = target.connect(id, super::new_doc()).await?;
        let want = crate::state_vector(client.doc());
        let seen = check
            .wait_for(Duration::from_secs(30), |_, doc| {
                crate::state_vector(doc) == want
            })
            .await;
        if let Err(error) = seen {
            use yrs::{ReadTxn, Transact};
            anyhow::bail!(
                "{error}: the writer holds {:?}, a second client received {:?}",
                client.doc().transact().state_vector(),
                check.doc().transact().state_vector()
            );
        }
        drop(check);
    }
    tokio::time::sleep(settle).await;
    let rss_loaded = observed.server_rss_kib();
    for client in &mut clients {
        client.disconnect().await;
    }
    tokio::time::sleep(settle).await;
    let rss_after = observed.server_rss_kib();
    let rooms_loaded = match &observed.metrics_url {
        Some(url) => super::stats::Scrape::fetch(url)
            .await
            .ok()
            .and_then(|s| s.value("potentia_sync_rooms")),
        None => None,
    };
    let per = |rss: Option<u64>| {
        Some(round1(
            rss?.saturating_sub(rss_before?) as f64 / canvases as f64,
        ))
    };
    Ok(MemoryFigures {
        canvases,
        sequential,
        document_bytes,
        rss_before_kib: rss_before,
        rss_loaded_kib: rss_loaded,
        per_canvas_kib: per(rss_loaded),
        rss_after_disconnect_kib: rss_after,
        per_canvas_without_clients_kib: per(rss_after),
        rooms_loaded,
    })
}
