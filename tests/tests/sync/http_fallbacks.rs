//! The HTTP fallbacks: state fetch, update push, presence and leave, with the same access
//! rules and durability as the socket.

use base64::Engine;
use potentia_client::{full_update, state_vector};
use potentia_tests::error_fields;
use reqwest::Method;
use serde_json::json;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, Text, Transact, Update};

use crate::awareness::awareness;
use crate::convergence::wait_for_rows;
use crate::support::{
    append, connected, fixture, fixture_with, stored, text, wait_text, Fixture, WAIT,
};

fn doc_with(text_value: &str) -> Doc {
    let doc = Doc::new();
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, text_value);
    doc
}

async fn push(
    f: &Fixture,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let response = f
        .app
        .client
        .post(f.app.url(&format!("/api/v1/canvases/{}/updates", f.canvas)))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("push");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

async fn fetch_state(f: &Fixture, query: &str) -> (u16, Vec<u8>) {
    let response = f
        .app
        .client
        .get(
            f.app
                .url(&format!("/api/v1/canvases/{}/state{query}", f.canvas)),
        )
        .bearer_auth(f.owner.access_token())
        .send()
        .await
        .expect("state");
    let status = response.status().as_u16();
    (status, response.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn the_state_fetch_returns_the_whole_document() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(client.doc(), "hello");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    let (status, bytes) = fetch_state(&f, "").await;
    assert_eq!(status, 200);
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(&bytes).expect("v1"))
        .expect("applies");
    assert_eq!(text(&doc), "hello");
}

#[tokio::test]
async fn the_state_fetch_with_a_state_vector_returns_only_what_is_missing() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let known = "known;".repeat(50);
    append(client.doc(), &known);
    let behind = Doc::new();
    behind
        .transact_mut()
        .apply_update(Update::decode_v1(&full_update(client.doc())).expect("v1"))
        .expect("copy");
    append(client.doc(), "new");
    wait_for_rows(&f.app.db, f.canvas, 2).await;
    let sv = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state_vector(&behind));
    let (status, diff) = fetch_state(&f, &format!("?sv={sv}")).await;
    assert_eq!(status, 200);
    let (_, whole) = fetch_state(&f, "").await;
    assert!(
        diff.len() < whole.len(),
        "{} vs {}",
        diff.len(),
        whole.len()
    );
    behind
        .transact_mut()
        .apply_update(Update::decode_v1(&diff).expect("v1"))
        .expect("applies");
    assert_eq!(text(&behind), format!("{known}new"));
}

#[tokio::test]
async fn a_bad_state_vector_is_a_422_naming_sv() {
    let f = fixture().await;
    let (status, body) = fetch_state(&f, "?sv=!!!").await;
    assert_eq!(status, 422);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem");
    assert_eq!(problem["errors"][0]["field"], "sv");
}

#[tokio::test]
async fn a_pushed_update_is_durable_broadcast_and_audited() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let (status, body) = push(
        &f,
        f.owner.access_token(),
        "application/octet-stream",
        full_update(&doc_with("pushed")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seq"], 1);
    wait_text(&client, "pushed").await;
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "pushed");
    let rows = f.app.audit_rows("canvas.update_pushed").await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn an_empty_pushed_update_stores_nothing() {
    let f = fixture().await;
    let (status, body) = push(
        &f,
        f.owner.access_token(),
        "application/octet-stream",
        vec![0, 0],
    )
    .await;
    assert_eq!((status, body), (200, json!({ "seq": null })));
    assert_eq!(crate::support::log_rows(&f.app.db, f.canvas).await, 0);
}

#[tokio::test]
async fn a_pushed_update_needs_write_access() {
    let f = fixture().await;
    let viewer = f.app.sign_up("viewer@example.org").await;
    let workspace = f.app.create_workspace(f.owner.access_token(), "Team").await;
    f.app
        .add_member(f.owner.access_token(), workspace, &viewer, "viewer")
        .await;
    let shared = f
        .app
        .create_canvas(f.owner.access_token(), Some(workspace), "Shared")
        .await;
    let shared_fixture = Fixture {
        canvas: shared,
        ..f
    };
    let update = full_update(&doc_with("nope"));
    let (status, body) = push(
        &shared_fixture,
        viewer.access_token(),
        "application/octet-stream",
        update.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let outsider = shared_fixture.app.sign_up("outsider@example.org").await;
    let (status, body) = push(
        &shared_fixture,
        outsider.access_token(),
        "application/octet-stream",
        update,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        crate::support::log_rows(&shared_fixture.app.db, shared).await,
        0
    );
}

#[tokio::test]
async fn a_pushed_update_must_be_binary_and_valid() {
    let f = fixture().await;
    let (status, body) = push(
        &f,
        f.owner.access_token(),
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = push(
        &f,
        f.owner.access_token(),
        "application/octet-stream",
        vec![0x03, 0xff, 0x01],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_update");
    let orphan = Doc::new();
    let t = orphan.get_or_insert_text("t");
    t.insert(&mut orphan.transact_mut(), 0, "x");
    let sv = orphan.transact().state_vector();
    t.insert(&mut orphan.transact_mut(), 1, "y");
    let missing = orphan.transact().encode_state_as_update_v1(&sv);
    let (status, body) = push(
        &f,
        f.owner.access_token(),
        "application/octet-stream",
        missing,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "missing_dependencies");
    assert_eq!(crate::support::log_rows(&f.app.db, f.canvas).await, 0);
}

#[tokio::test]
async fn http_presence_reaches_socket_clients_and_leave_removes_it() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    client.send_awareness(&awareness(5, 1, Some(r#"{"user":"socket"}"#)));
    let path = format!("/api/v1/canvases/{}/presence", f.canvas);
    let token = Some(f.owner.access_token());
    let (status, body) = f
        .app
        .call(
            Method::PUT,
            &path,
            token,
            Some(json!({ "client_id": 9, "clock": 1, "state": { "user": "http" } })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    client
        .wait_for(WAIT, |state, _| {
            state.awareness_frames >= 1
                && state
                    .last_awareness
                    .as_ref()
                    .is_some_and(|b| String::from_utf8_lossy(b).contains("http"))
        })
        .await
        .expect("the socket client sees the HTTP client");
    let (status, body) = f.app.call(Method::GET, &path, token, None).await;
    assert_eq!(status, 200);
    let mut users: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            item["state"]["user"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    users.sort();
    assert_eq!(users, vec!["http", "socket"]);
    let (status, _) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/leave", f.canvas),
            token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, body) = f.app.call(Method::GET, &path, token, None).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn http_presence_cannot_take_a_socket_clients_id() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    client.send_awareness(&awareness(5, 1, Some(r#"{"user":"socket"}"#)));
    let path = format!("/api/v1/canvases/{}/presence", f.canvas);
    // First the socket's awareness must be in the room: a PUT before it would take the id.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, body) = f
            .app
            .call(Method::GET, &path, Some(f.owner.access_token()), None)
            .await;
        if body["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["client_id"] == 5))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the socket's state never arrived: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, body) = f
        .app
        .call(
            Method::PUT,
            &path,
            Some(f.owner.access_token()),
            Some(json!({ "client_id": 5, "clock": 9, "state": { "user": "thief" } })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "presence_conflict");
}

#[tokio::test]
async fn http_presence_with_a_huge_state_and_an_out_of_range_id_names_both() {
    // A body limit above the 256 KiB awareness limit, so the state reaches its check.
    let f = fixture_with(|s| s.http.body_limit_bytes = 1024 * 1024).await;
    let path = format!("/api/v1/canvases/{}/presence", f.canvas);
    let huge = "x".repeat(300 * 1024);
    let (status, body) = f
        .app
        .call(
            Method::PUT,
            &path,
            Some(f.owner.access_token()),
            Some(json!({ "client_id": 1u64 << 60, "clock": 1, "state": { "blob": huge } })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), ["client_id", "state"], "{body}");
}
