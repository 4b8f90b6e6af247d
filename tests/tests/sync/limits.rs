//! Every limit closes only the connection that breaks it, with a code and a reason, and leaves
//! the document untouched.

use std::time::Duration;

use potentia_client::SyncClient;
use potentia_sync::RateLimit;
use potentia_tests::TestApp;

use crate::convergence::wait_for_rows;
use crate::support::{append, connected, fixture_with, log_rows, stored, text, wait_text, WAIT};

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let f = fixture_with(|s| s.sync.rooms.connection.protocol.max_frame_bytes = 1024).await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(client.doc(), "small");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    append(client.doc(), &"x".repeat(2000));
    let (code, reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!((code, reason.as_str()), (1009, "frame too large"));
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "small");
}

#[tokio::test]
async fn too_many_updates_per_second_close_with_4029() {
    let f = fixture_with(|s| s.sync.rooms.connection.updates = RateLimit::new(5.0, 5.0)).await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    for i in 0..30 {
        append(client.doc(), &i.to_string());
    }
    let (code, reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 4029, "{reason}");
    assert!(reason.contains("too many updates"), "{reason}");
    // What was accepted before the limit is durable and whole; nothing after it landed.
    let stored_text = text(&stored(&f.app.db, f.canvas).await);
    assert!(stored_text.len() < "0123456789".len() + 40, "{stored_text}");
    assert!(
        "012345678910111213141516171819".starts_with(&stored_text),
        "{stored_text}"
    );
}

#[tokio::test]
async fn an_update_past_the_document_size_limit_closes_with_4013() {
    let f = fixture_with(|s| s.sync.rooms.max_document_bytes = 4096).await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(client.doc(), &"a".repeat(2000));
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    append(client.doc(), &"b".repeat(3000));
    let (code, reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!((code, reason.as_str()), (4013, "document too large"));
    assert_eq!(log_rows(&f.app.db, f.canvas).await, 1);
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "a".repeat(2000));
}

#[tokio::test]
async fn connections_past_the_per_canvas_limit_close_with_1013() {
    let f = fixture_with(|s| s.sync.rooms.max_connections_per_canvas = 2).await;
    let _first = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let _second = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let mut third =
        SyncClient::new(f.app.ws_url(f.canvas, f.owner.access_token())).expect("client");
    third.connect().await.expect("socket opens");
    let (code, reason) = third.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 1013);
    assert!(
        reason.contains("too many connections to this canvas"),
        "{reason}"
    );
}

#[tokio::test]
async fn connections_past_the_per_user_limit_close_with_1013() {
    let app = TestApp::spawn_with(|s| s.sync.rooms.max_connections_per_user = 2).await;
    let owner = app.sign_up("owner@example.org").await;
    let mut clients = Vec::new();
    for title in ["a", "b"] {
        let canvas = app.create_canvas(owner.access_token(), None, title).await;
        clients.push(connected(&app, canvas, owner.access_token()).await);
    }
    let canvas = app.create_canvas(owner.access_token(), None, "c").await;
    let mut third = SyncClient::new(app.ws_url(canvas, owner.access_token())).expect("client");
    third.connect().await.expect("socket opens");
    let (code, reason) = third.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 1013);
    assert!(
        reason.contains("too many connections for this user"),
        "{reason}"
    );
    // Closing one frees its slot.
    drop(clients.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    connected(&app, canvas, owner.access_token()).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_not_skipped() {
    let f = fixture_with(|s| {
        s.sync.rooms.send_queue_frames = 4;
        s.sync.rooms.connection.updates = RateLimit::UNLIMITED;
        s.sync.ping_interval = Duration::from_secs(1);
    })
    .await;
    // A socket that never reads, with a small receive buffer: its buffers fill, then its
    // queue.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket.connect(f.app.addr).await.expect("connect");
    let (_stuck, _) =
        tokio_tungstenite::client_async(f.app.ws_url(f.canvas, f.owner.access_token()), stream)
            .await
            .expect("upgrade");
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let reader = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let chunk = "z".repeat(256 * 1024);
    let chunks = 40;
    for _ in 0..chunks {
        append(writer.doc(), &chunk);
        tokio::task::yield_now().await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.app.metric("potentia_sync_slow_disconnects_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck client was never disconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everyone else goes on.
    reader
        .wait_for(WAIT, |_, doc| text(doc).len() == chunks * chunk.len())
        .await
        .expect("the reader got everything");
    assert_eq!(writer.state().closed, None);
    wait_text(&reader, &text(writer.doc())).await;
}
