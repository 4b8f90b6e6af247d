//! Materialization benchmark (issue 5), in process against a real Postgres:
//!
//! 1. **lag**: `--canvases` canvases (default 50), one client each rewriting one block's text
//!    `--rate` times a second (default 10: 500 updates/s in all) for `--seconds`; a poller reads
//!    the rows every 5 ms; lag = when the row first shows an edit − when the edit was made
//!    (p50/p99; includes up to 5 ms of polling). Rows written per update come from the
//!    server's own counters over the same window.
//! 2. **list latency** on a 10,000-block canvas: every page of `GET …/blocks?limit=100` in
//!    document order, and the whole `GET …/snapshot`.
//! 3. **trace replay** into one block: `automerge-paper.json.gz` (259,778 keystrokes), one
//!    update per keystroke, until the block's row holds the trace's `endContent`.
//!
//! ```sh
//! source scripts/env.sh
//! cargo run --release -p potentia-tests --example bench_blocks [-- --canvases 50 --rate 10 --seconds 20]
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use potentia_client::load::trace::Trace;
use potentia_client::SyncClient;
use potentia_sync::schema::{insert_block, update_block};
use potentia_sync::{BlockPatch, NewBlock, Position, RateLimit};
use potentia_tests::TestApp;
use reqwest::Method;
use uuid::Uuid;
use yrs::{Map, Out, ReadTxn, Text, Transact};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn new_block(text: &str, position: Position) -> NewBlock {
    NewBlock {
        id: None,
        kind: "paragraph".into(),
        parent: None,
        position,
        text: text.into(),
        props: Default::default(),
    }
}

async fn client(app: &TestApp, canvas: Uuid, token: &str) -> anyhow::Result<SyncClient> {
    let mut client = SyncClient::new(app.ws_url(canvas, token))?;
    client.connect().await?;
    client.wait_synced(Duration::from_secs(30)).await?;
    Ok(client)
}

async fn lag(app: &TestApp, token: &str) -> anyhow::Result<()> {
    let canvases = arg("--canvases", 50);
    let rate = arg("--rate", 10);
    let seconds = arg("--seconds", 20);
    let mut ids = Vec::new();
    let mut writers = Vec::new();
    for i in 0..canvases {
        let canvas = app.create_canvas(token, None, &format!("lag {i}")).await;
        let client = client(app, canvas, token).await?;
        let block = insert_block(
            &mut client.doc().transact_mut(),
            new_block("t=0", Position::Last),
        )?;
        ids.push(canvas);
        writers.push((client, block));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rows_before = app.metric("potentia_sync_materialized_rows_total").await;
    let updates_before = app.metric("potentia_sync_updates_total").await;
    let started = Instant::now();
    let window = Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (client, block) in writers {
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            let mut sent = 0u64;
            while started.elapsed() < window {
                tick.tick().await;
                let patch = BlockPatch {
                    text: Some(format!("t={}", micros_now())),
                    ..Default::default()
                };
                if update_block(&mut client.doc().transact_mut(), &block, patch).is_ok() {
                    sent += 1;
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(client);
            sent
        }));
    }
    let db = app.db.clone();
    let poller = tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut lags = Vec::new();
        while started.elapsed() < window + Duration::from_secs(1) {
            let rows: Vec<(Uuid, String)> =
                sqlx::query_as("select canvas_id, text from blocks where canvas_id = any($1)")
                    .bind(&ids)
                    .fetch_all(&db)
                    .await
                    .unwrap_or_default();
            let now = micros_now();
            for (canvas, text) in rows {
                let Some(sent) = text.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok()) else {
                    continue;
                };
                if sent > 0 && seen.insert((canvas, sent)) {
                    lags.push(now.saturating_sub(sent) as f64 / 1000.0);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lags
    });
    let mut sent = 0;
    for task in tasks {
        sent += task.await?;
    }
    let mut lags = poller.await?;
    lags.sort_by(|a, b| a.total_cmp(b));
    let rows = app.metric("potentia_sync_materialized_rows_total").await - rows_before;
    let updates = app.metric("potentia_sync_updates_total").await - updates_before;
    println!("materialization lag, {canvases} canvases x {rate} updates/s for {seconds} s ({sent} updates sent, {:.0}/s):", sent as f64 / seconds as f64);
    println!(
        "  lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} observed edits",
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        lags.last().copied().unwrap_or(f64::NAN),
        lags.len()
    );
    println!(
        "  rows written per committed update: {:.3} ({rows} rows / {updates} updates)",
        rows / updates.max(1.0)
    );
    Ok(())
}

async fn list_latency(app: &TestApp, token: &str) -> anyhow::Result<()> {
    let canvas = app.create_canvas(token, None, "10k blocks").await;
    let client = client(app, canvas, token).await?;
    {
        let doc = client.doc();
        let mut txn = doc.transact_mut();
        for i in 0..10_000 {
            insert_block(
                &mut txn,
                new_block(&format!("block number {i}"), Position::Last),
            )?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows: i64 = sqlx::query_scalar("select count(*) from blocks where canvas_id = $1")
            .bind(canvas)
            .fetch_one(&app.db)
            .await?;
        if rows == 10_000 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {rows} rows materialized");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    let mut listed = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/canvases/{canvas}/blocks?limit=100&cursor={c}"),
            None => format!("/api/v1/canvases/{canvas}/blocks?limit=100"),
        };
        let started = Instant::now();
        let (status, page) = app.call(Method::GET, &path, Some(token), None).await;
        pages.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status == 200, "{status} {page}");
        listed += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    pages.sort_by(|a, b| a.total_cmp(b));
    let mut snapshots = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/canvases/{canvas}/snapshot"),
                Some(token),
                None,
            )
            .await;
        anyhow::ensure!(status == 200);
        snapshots.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    snapshots.sort_by(|a, b| a.total_cmp(b));
    println!(
        "block list on a 10,000-block canvas ({listed} listed in {} pages of 100):",
        pages.len()
    );
    println!(
        "  page p50 {:.1} ms, p99 {:.1} ms; whole snapshot p50 {:.0} ms",
        percentile(&pages, 50.0),
        percentile(&pages, 99.0),
        percentile(&snapshots, 50.0)
    );
    Ok(())
}

async fn trace_replay(app: &TestApp, token: &str) -> anyhow::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/traces/automerge-paper.json.gz"
    );
    let trace = Trace::load(std::path::Path::new(path))?;
    let canvas = app.create_canvas(token, None, "trace").await;
    let client = client(app, canvas, token).await?;
    let block = insert_block(
        &mut client.doc().transact_mut(),
        new_block("", Position::Last),
    )?;
    let text = {
        let doc = client.doc();
        let txn = doc.transact();
        let blocks = txn
            .get_map("blocks")
            .ok_or_else(|| anyhow::anyhow!("no blocks map"))?;
        match blocks.get(&txn, &block) {
            Some(Out::YMap(map)) => match map.get(&txn, "text") {
                Some(Out::YText(text)) => text,
                _ => anyhow::bail!("the block has no text"),
            },
            _ => anyhow::bail!("no block"),
        }
    };
    let started = Instant::now();
    let updates = trace.txns.len();
    for txn in &trace.txns {
        let mut t = client.doc().transact_mut();
        for (position, deleted, inserted) in &txn.patches {
            if *deleted > 0 {
                text.remove_range(&mut t, *position as u32, *deleted as u32);
            }
            if !inserted.is_empty() {
                text.insert(&mut t, *position as u32, inserted);
            }
        }
    }
    let sent = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let block_id = Uuid::parse_str(&block)?;
    loop {
        let row: Option<String> =
            sqlx::query_scalar("select text from blocks where canvas_id = $1 and id = $2")
                .bind(canvas)
                .bind(block_id)
                .fetch_optional(&app.db)
                .await?;
        if row.as_deref() == Some(trace.end_content.as_str()) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the row never reached endContent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = started.elapsed();
    println!("trace replay into one block ({updates} updates, one per keystroke):");
    println!(
        "  sent in {:.1} s; the materialized row equals endContent after {:.1} s ({:.0} updates/s)",
        sent.as_secs_f64(),
        done.as_secs_f64(),
        updates as f64 / done.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = Arc::new(
        TestApp::spawn_with(|settings| {
            // A client typing a trace or rewriting a block 10 times a second is the point here.
            settings.sync.rooms.connection.updates = RateLimit::UNLIMITED;
            settings.db_max_connections = 20;
        })
        .await,
    );
    let owner = app.sign_up("bench@example.org").await;
    let token = owner.access_token();
    lag(&app, token).await?;
    list_latency(&app, token).await?;
    trace_replay(&app, token).await?;
    Ok(())
}
