//! Durability against a crash: clients stream edits, the server is killed with SIGKILL in the
//! middle, a new server starts on the same database, the clients reconnect, and every edit any
//! client made is in Postgres.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{listening_addr, log_lines, potentia, wait_for_line, KillOnDrop, ScratchDb, SECRET};
use potentia_client::SyncClient;
use tokio::sync::Mutex;
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

const CLIENTS: usize = 3;

/// Starts the binary on `db`; answers the guard and its address.
fn start_server(db: &ScratchDb) -> (KillOnDrop, String) {
    let child = potentia()
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "human"])
        .env("DATABASE_URL", &db.url)
        .env("POTENTIA_JWT_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn potentia");
    let mut child = KillOnDrop(child);
    let lines = log_lines(&mut child.0);
    let listening = wait_for_line(&lines, "listening");
    let addr = listening_addr(&listening);
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    (child, addr)
}

fn mint_token(user: Uuid) -> String {
    let out = potentia()
        .args(["token", "--user", &user.to_string(), "--ttl-secs", "600"])
        .env("POTENTIA_JWT_SECRET", SECRET)
        .output()
        .expect("potentia token");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The text of the document made of a snapshot and the log after it.
fn stored_text(snapshot: Option<Vec<u8>>, updates: &[Vec<u8>]) -> String {
    let doc = Doc::new();
    for data in snapshot.iter().chain(updates) {
        doc.transact_mut()
            .apply_update(Update::decode_v1(data).expect("stored update decodes"))
            .expect("stored update applies");
    }
    let text = doc.get_or_insert_text("t");
    let txn = doc.transact();
    text.get_string(&txn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_survives_a_sigkill_mid_stream() {
    let db = ScratchDb::create().await;
    let (mut server, addr) = start_server(&db);
    let token = mint_token(Uuid::new_v4());
    let http = reqwest::Client::new();
    let canvas: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/canvases"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "title": "Crash" }))
        .send()
        .await
        .expect("create canvas")
        .json()
        .await
        .expect("canvas json");
    let canvas = canvas["id"].as_str().expect("canvas id").to_owned();
    let url = |addr: &str| format!("ws://{addr}/ws/canvas/{canvas}?token={token}");

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = SyncClient::new(url(&addr)).expect("client");
        client.connect().await.expect("connect");
        client
            .wait_synced(Duration::from_secs(10))
            .await
            .expect("synced");
        clients.push(Arc::new(Mutex::new(client)));
    }
    // Every client types one token every few milliseconds until told to stop.
    let typing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut writers = Vec::new();
    for (who, client) in clients.iter().enumerate() {
        let client = Arc::clone(client);
        let typing = Arc::clone(&typing);
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            let mut n = 0;
            while typing.load(std::sync::atomic::Ordering::Relaxed) {
                let word = format!("[{who}:{n}]");
                {
                    let client = client.lock().await;
                    let doc = client.doc();
                    let text = doc.get_or_insert_text("t");
                    let mut txn = doc.transact_mut();
                    let len = text.len(&txn);
                    text.insert(&mut txn, len, &word);
                }
                written.push(word);
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            written
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill")
        .success());
    let _ = server.0.wait();
    // The clients go on typing while the server is dead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    typing.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut expected = BTreeSet::new();
    for writer in writers {
        expected.extend(writer.await.expect("writer"));
    }
    let logged_before: i64 = {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
        let n = sqlx::query_scalar("select count(*) from canvas_updates")
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    };
    assert!(logged_before > 0, "nothing was committed before the kill");

    let (_server, addr) = start_server(&db);
    for client in &clients {
        let mut client = client.lock().await;
        client.set_url(url(&addr));
        client.connect().await.expect("reconnect");
        client
            .wait_synced(Duration::from_secs(10))
            .await
            .expect("synced");
    }
    let pool = sqlx::PgPool::connect(&db.url).await.expect("pool");
    let canvas_id = Uuid::parse_str(&canvas).expect("uuid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let snapshot: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("select snapshot from canvas_documents where canvas_id = $1")
                .bind(canvas_id)
                .fetch_optional(&pool)
                .await
                .expect("snapshot");
        let snapshot_seq: i64 = sqlx::query_scalar(
            "select coalesce((select snapshot_seq from canvas_documents where canvas_id = $1), 0)",
        )
        .bind(canvas_id)
        .fetch_one(&pool)
        .await
        .expect("snapshot seq");
        let updates: Vec<Vec<u8>> = sqlx::query_scalar(
            "select data from canvas_updates where canvas_id = $1 and seq > $2 order by seq",
        )
        .bind(canvas_id)
        .bind(snapshot_seq)
        .fetch_all(&pool)
        .await
        .expect("log");
        let text = stored_text(snapshot.flatten(), &updates);
        let missing: Vec<&String> = expected
            .iter()
            .filter(|w| !text.contains(w.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} edits never reached Postgres, e.g. {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
    for client in &clients {
        client.lock().await.disconnect().await;
    }
    db.drop_now().await;
}
