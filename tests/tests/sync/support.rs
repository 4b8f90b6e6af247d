//! What the sync tests share: a canvas with its owner, connected clients, the stored document.

use std::time::Duration;

use potentia_client::SyncClient;
use potentia_server::Settings;
use potentia_tests::{Session, TestApp};
use sqlx::PgPool;
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Map, Text, Transact, Update};

pub const WAIT: Duration = Duration::from_secs(15);

/// A server, a signed-up owner and a personal canvas of theirs.
pub struct Fixture {
    pub app: TestApp,
    pub owner: Session,
    pub canvas: Uuid,
}

pub async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

pub async fn fixture_with(configure: impl FnOnce(&mut Settings)) -> Fixture {
    let app = TestApp::spawn_with(configure).await;
    let owner = app.sign_up("owner@example.org").await;
    let canvas = app.create_canvas(owner.access_token(), None, "Plan").await;
    Fixture { app, owner, canvas }
}

/// A client of `canvas` on `app`, connected and synced.
pub async fn connected(app: &TestApp, canvas: Uuid, token: &str) -> SyncClient {
    let mut client = SyncClient::new(app.ws_url(canvas, token)).expect("client");
    client.connect().await.expect("connect");
    client.wait_synced(WAIT).await.expect("synced");
    client
}

/// The text of the document's `"t"` Y.Text.
pub fn text(doc: &Doc) -> String {
    let text = doc.get_or_insert_text("t");
    text.get_string(&doc.transact())
}

/// Appends `s` to the document's `"t"` text in one transaction.
pub fn append(doc: &Doc, s: &str) {
    let text = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    let len = text.len(&txn);
    text.insert(&mut txn, len, s);
}

/// The document's content as comparable text: the `"t"` text and the `"m"` map.
pub fn content(doc: &Doc) -> String {
    let text = doc.get_or_insert_text("t");
    let map = doc.get_or_insert_map("m");
    let txn = doc.transact();
    let mut entries: Vec<String> = map
        .iter(&txn)
        .map(|(k, v)| format!("{k}={}", v.to_string(&txn)))
        .collect();
    entries.sort();
    format!("{}|{}", text.get_string(&txn), entries.join(","))
}

/// The document as Postgres holds it: snapshot plus log.
pub async fn stored(db: &PgPool, canvas: Uuid) -> Doc {
    let read = potentia_sync::store::read_after(db, canvas, 0)
        .await
        .expect("read the log");
    let doc = Doc::new();
    let parts = read
        .snapshot
        .iter()
        .map(|s| s.data.clone())
        .chain(read.updates.iter().map(|u| u.data.clone()));
    for data in parts {
        doc.transact_mut()
            .apply_update(Update::decode_v1(&data).expect("stored update decodes"))
            .expect("stored update applies");
    }
    doc
}

/// Rows of the canvas's log.
pub async fn log_rows(db: &PgPool, canvas: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from canvas_updates where canvas_id = $1")
        .bind(canvas)
        .fetch_one(db)
        .await
        .expect("count")
}

/// Waits until `client`'s text is `expected`.
pub async fn wait_text(client: &SyncClient, expected: &str) {
    client
        .wait_for(WAIT, |_, doc| text(doc) == expected)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "text never became {expected:?} (is {:?}): {e}",
                text(client.doc())
            )
        });
}
