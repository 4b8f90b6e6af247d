//! The canvas's title and icon live in the document's `meta` map: a REST patch goes through
//! the document (clients see it live), and a client's change reaches the `canvases` row, the
//! list and search, cleaned, fenced and audited.

use std::time::Duration;

use potentia_client::SyncClient;
use potentia_sync::schema::{read_meta, set_meta, MetaPatch, MAX_TITLE_CHARS};
use reqwest::Method;
use serde_json::{json, Value};
use yrs::Transact;

use crate::support::{connected, fixture, Fixture, WAIT};

/// A client's own edit of the document's meta, sent as any client edit is.
fn write_meta(client: &SyncClient, title: String, icon: Option<Option<String>>) {
    let doc = client.doc();
    let mut txn = doc.transact_mut();
    set_meta(
        &mut txn,
        MetaPatch {
            title: Some(title),
            icon,
        },
    );
}

async fn canvas_row(f: &Fixture) -> Value {
    let (status, canvas) = f
        .app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{}", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{canvas}");
    canvas
}

async fn wait_title(f: &Fixture, expected: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let canvas = canvas_row(f).await;
        if canvas["title"] == expected {
            return canvas;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the title never became {expected:?}: {canvas}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rest_rename_reaches_connected_clients_through_the_document() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let (status, canvas) = f
        .app
        .call(
            Method::PATCH,
            &format!("/api/v1/canvases/{}", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "title": "Q3 plan", "icon": "📈" })),
        )
        .await;
    assert_eq!(status, 200, "{canvas}");
    assert_eq!(
        (canvas["title"].as_str(), canvas["icon"].as_str()),
        (Some("Q3 plan"), Some("📈"))
    );
    client
        .wait_for(WAIT, |_, doc| {
            let meta = read_meta(&doc.transact());
            meta.title == "Q3 plan" && meta.icon.as_deref() == Some("📈")
        })
        .await
        .expect("the client sees the new title");
    let audit = f.app.audit_rows("canvas.update").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(f.owner.user_id()));
    assert_eq!(audit[0].before.as_ref().unwrap()["title"], "Plan");
}

#[tokio::test]
async fn a_clients_title_becomes_the_canvas_title_in_the_row_list_and_search() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    write_meta(&client, "Garden\u{0} notes".into(), Some(Some("🌱".into())));
    let canvas = wait_title(&f, "Garden notes").await;
    assert_eq!(canvas["icon"], "🌱");
    let (_, list) = f
        .app
        .call(
            Method::GET,
            "/api/v1/canvases",
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(list["items"][0]["title"], "Garden notes");
    let (_, found) = f
        .app
        .call(
            Method::GET,
            "/api/v1/search?q=garden&mode=text",
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert!(found.to_string().contains("Garden notes"), "{found}");
    let audit = f.app.audit_rows("canvas.update").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor_id, Some(f.owner.user_id()));
    assert_eq!(audit[0].after.as_ref().unwrap()["source"], "document");
}

#[tokio::test]
async fn an_overlong_client_title_is_cut_to_the_limit() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let long = "y".repeat(MAX_TITLE_CHARS + 100);
    write_meta(&client, long.clone(), None);
    let canvas = wait_title(&f, &long[..MAX_TITLE_CHARS]).await;
    assert_eq!(canvas["icon"], Value::Null);
}

#[tokio::test]
async fn a_duplicate_keeps_its_own_title_after_its_document_is_materialized() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    write_meta(&client, "Original".into(), None);
    wait_title(&f, "Original").await;
    let (status, copy) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/duplicate", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{copy}");
    let copy_id: uuid::Uuid = copy["id"].as_str().unwrap().parse().unwrap();
    let copy_client = connected(&f.app, copy_id, f.owner.access_token()).await;
    copy_client
        .wait_for(WAIT, |_, doc| {
            read_meta(&doc.transact()).title == "Original (copy)"
        })
        .await
        .expect("the copy's document carries the copy's title");
    let (_, row) = f
        .app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{copy_id}"),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(row["title"], "Original (copy)");
}
