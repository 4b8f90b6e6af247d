//! Who may open a canvas's socket, who may write through it, and what happens when access
//! changes while connected.

use std::time::Duration;

use potentia_client::SyncClient;
use potentia_tests::{Session, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{append, connected, fixture_with, stored, text, wait_text, WAIT};

/// A workspace canvas with an owner and one more member of `role`.
async fn shared_canvas(app: &TestApp, role: &str) -> (Session, Session, Uuid, Uuid) {
    let owner = app.sign_up("owner@example.org").await;
    let other = app.sign_up("other@example.org").await;
    let workspace = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), workspace, &other, role)
        .await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(workspace), "Plan")
        .await;
    (owner, other, workspace, canvas)
}

/// The status the server answers a WebSocket upgrade of `url` with.
async fn upgrade_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn fast_recheck(settings: &mut potentia_server::Settings) {
    settings.sync.rooms.access_recheck = Duration::from_millis(100);
    settings.sync.rooms.tick = Duration::from_millis(50);
}

#[tokio::test]
async fn the_upgrade_is_refused_with_401_without_a_valid_token() {
    let f = fixture_with(|_| {}).await;
    let base = format!("ws://{}/ws/canvas/{}", f.app.addr, f.canvas);
    assert_eq!(upgrade_status(&base).await, 401);
    assert_eq!(upgrade_status(&format!("{base}?token=forged")).await, 401);
}

#[tokio::test]
async fn the_upgrade_is_refused_with_404_for_an_outsider_and_an_unknown_canvas() {
    let f = fixture_with(|_| {}).await;
    let outsider = f.app.sign_up("outsider@example.org").await;
    let url = f.app.ws_url(f.canvas, outsider.access_token());
    assert_eq!(upgrade_status(&url).await, 404);
    let unknown = f.app.ws_url(Uuid::now_v7(), f.owner.access_token());
    assert_eq!(upgrade_status(&unknown).await, 404);
}

/// The status of an upgrade of `url` sent from a page on `origin`.
async fn upgrade_status_from(url: &str, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn a_page_on_a_foreign_origin_cannot_open_a_socket() {
    let f = fixture_with(|_| {}).await;
    let url = f.app.ws_url(f.canvas, f.owner.access_token());
    assert_eq!(upgrade_status_from(&url, "https://evil.example").await, 403);
    assert_eq!(upgrade_status_from(&url, "https://app.example").await, 101);
    // A page the server itself served is same-origin.
    let own = format!("http://{}", f.app.addr);
    assert_eq!(upgrade_status_from(&url, &own).await, 101);
}

#[tokio::test]
async fn dev_mode_lets_loopback_pages_open_sockets_by_default() {
    let f = fixture_with(|s| s.http.cors = potentia_server::config::CorsOrigins::Loopback).await;
    let url = f.app.ws_url(f.canvas, f.owner.access_token());
    assert_eq!(
        upgrade_status_from(&url, "http://localhost:5173").await,
        101
    );
    assert_eq!(
        upgrade_status_from(&url, "http://127.0.0.1:3000").await,
        101
    );
    assert_eq!(
        upgrade_status_from(&url, "http://localhost.evil.example").await,
        403
    );
}

#[tokio::test]
async fn a_plain_http_request_to_the_socket_is_told_to_upgrade() {
    let f = fixture_with(|_| {}).await;
    let (status, problem) = f
        .app
        .call(
            Method::GET,
            &format!("/ws/canvas/{}", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "websocket_upgrade_required");
}

#[tokio::test]
async fn a_read_only_clients_writes_never_land() {
    let app = TestApp::spawn().await;
    let (owner, viewer, _, canvas) = shared_canvas(&app, "viewer").await;
    let writer = connected(&app, canvas, owner.access_token()).await;
    let reader = connected(&app, canvas, viewer.access_token()).await;
    append(writer.doc(), "from the owner");
    wait_text(&reader, "from the owner").await;
    append(reader.doc(), " and the viewer");
    reader
        .wait_for(WAIT, |state, _| !state.denied.is_empty())
        .await
        .expect("the write is refused with an auth message");
    assert_eq!(
        reader.state().closed,
        None,
        "the read-only socket stays open"
    );
    append(writer.doc(), "!");
    // The viewer's own copy keeps its refused edit; nobody else ever sees it.
    reader
        .wait_for(WAIT, |_, doc| text(doc).contains('!'))
        .await
        .expect("the viewer still receives");
    let late = connected(&app, canvas, owner.access_token()).await;
    wait_text(&late, "from the owner!").await;
    assert_eq!(text(writer.doc()), "from the owner!");
    assert_eq!(text(&stored(&app.db, canvas).await), "from the owner!");
}

#[tokio::test]
async fn revoked_access_sends_the_reason_and_closes_the_socket() {
    let app = TestApp::spawn_with(fast_recheck).await;
    let (owner, member, workspace, canvas) = shared_canvas(&app, "member").await;
    let client = connected(&app, canvas, member.access_token()).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/workspaces/{workspace}/members/{}",
                member.user_id()
            ),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (code, reason) = client
        .wait_closed(Duration::from_secs(5))
        .await
        .expect("closed");
    assert_eq!(code, 4003);
    assert_eq!(reason, "access to this canvas was revoked");
    assert_eq!(client.state().denied, vec![reason]);
}

#[tokio::test]
async fn a_writer_demoted_to_viewer_can_no_longer_write() {
    let app = TestApp::spawn_with(fast_recheck).await;
    let (owner, member, workspace, canvas) = shared_canvas(&app, "member").await;
    let client = connected(&app, canvas, member.access_token()).await;
    append(client.doc(), "while a member;");
    let watcher = connected(&app, canvas, owner.access_token()).await;
    wait_text(&watcher, "while a member;").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!(
                "/api/v1/workspaces/{workspace}/members/{}",
                member.user_id()
            ),
            Some(owner.access_token()),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Give the room a few re-checks, then write: refused, the socket stays open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(client.doc(), "after demotion");
    client
        .wait_for(WAIT, |state, _| !state.denied.is_empty())
        .await
        .expect("refused");
    assert_eq!(client.state().closed, None);
    assert_eq!(text(&stored(&app.db, canvas).await), "while a member;");
}

#[tokio::test]
async fn deleting_the_canvas_closes_its_sockets() {
    let f = fixture_with(fast_recheck).await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let (status, body) = f
        .app
        .call(
            Method::DELETE,
            &format!("/api/v1/canvases/{}", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (code, _) = client
        .wait_closed(Duration::from_secs(5))
        .await
        .expect("closed");
    assert_eq!(code, 4003);
    let mut again =
        SyncClient::new(f.app.ws_url(f.canvas, f.owner.access_token())).expect("client");
    assert!(
        again.connect().await.is_err(),
        "a deleted canvas must not open"
    );
}

/// An access token of `user` this server issued, expiring in `seconds`.
fn token_expiring_in(user: Uuid, seconds: i64) -> String {
    let claims = json!({
        "sub": user.to_string(),
        "aud": potentia_tests::TEST_AUDIENCE,
        "iss": "potentia",
        "exp": chrono::Utc::now().timestamp() + seconds,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(potentia_tests::TEST_JWT_SECRET.as_bytes()),
    )
    .expect("token")
}

async fn sign_in(app: &TestApp, email: &str) -> Session {
    let response = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": email, "password": potentia_tests::TEST_PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), 200);
    Session(response.json().await.expect("session"))
}

async fn sign_out(app: &TestApp, session: &Session, body: serde_json::Value) {
    let (status, problem) = app
        .call(
            Method::POST,
            "/api/v1/auth/signout",
            Some(session.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 204, "{problem}");
}

#[tokio::test]
async fn a_socket_whose_token_expires_gets_the_reason_and_closes_with_4001() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let canvas = app.create_canvas(owner.access_token(), None, "Plan").await;
    let client = connected(&app, canvas, &token_expiring_in(owner.user_id(), 2)).await;
    let (code, reason) = client
        .wait_closed(Duration::from_secs(10))
        .await
        .expect("closed at expiry");
    assert_eq!(code, potentia_sync::close::UNAUTHENTICATED);
    assert_eq!(
        reason,
        potentia_server::canvas_sync::socket::TOKEN_EXPIRED_REASON
    );
    assert_eq!(client.state().denied, vec![reason]);
}

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_only_and_refuses_its_tokens_new_sockets() {
    let app = TestApp::spawn().await;
    let first = app.sign_up("owner@example.org").await;
    let second = sign_in(&app, "owner@example.org").await;
    let canvas = app.create_canvas(first.access_token(), None, "Plan").await;
    let signed_out = connected(&app, canvas, first.access_token()).await;
    let staying = connected(&app, canvas, second.access_token()).await;
    sign_out(
        &app,
        &first,
        json!({ "refresh_token": first.refresh_token() }),
    )
    .await;
    let (code, reason) = signed_out
        .wait_closed(Duration::from_secs(5))
        .await
        .expect("closed by the sign-out");
    assert_eq!(code, potentia_sync::close::UNAUTHENTICATED);
    assert_eq!(
        reason,
        potentia_server::canvas_sync::socket::SIGNED_OUT_REASON
    );
    append(staying.doc(), "still here");
    wait_text(&staying, "still here").await;
    assert!(staying.state().closed.is_none());
    let url = app.ws_url(canvas, first.access_token());
    assert_eq!(upgrade_status(&url).await, 401);
}

#[tokio::test]
async fn signing_out_everywhere_closes_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let first = app.sign_up("owner@example.org").await;
    let second = sign_in(&app, "owner@example.org").await;
    let canvas = app.create_canvas(first.access_token(), None, "Plan").await;
    let a = connected(&app, canvas, first.access_token()).await;
    let b = connected(&app, canvas, second.access_token()).await;
    sign_out(&app, &first, json!({ "all": true })).await;
    for client in [a, b] {
        let (code, _) = client
            .wait_closed(Duration::from_secs(5))
            .await
            .expect("closed");
        assert_eq!(code, potentia_sync::close::UNAUTHENTICATED);
    }
}

#[tokio::test]
async fn a_sign_out_on_another_node_closes_the_socket_at_the_next_session_check() {
    let app = TestApp::spawn().await;
    let other_node = app.spawn_node(|_| {}).await;
    let session = app.sign_up("owner@example.org").await;
    let canvas = app
        .create_canvas(session.access_token(), None, "Plan")
        .await;
    let client = connected(&app, canvas, session.access_token()).await;
    sign_out(
        &other_node,
        &session,
        json!({ "refresh_token": session.refresh_token() }),
    )
    .await;
    // Test servers check every second.
    let (code, _) = client
        .wait_closed(Duration::from_secs(5))
        .await
        .expect("closed by the check");
    assert_eq!(code, potentia_sync::close::UNAUTHENTICATED);
}
