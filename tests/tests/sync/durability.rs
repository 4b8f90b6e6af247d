//! The log: committed before anyone sees an update, compacted without loss, never replaced by
//! an empty or older document.

use std::time::Duration;

use potentia_sync::store;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

use crate::convergence::wait_for_rows;
use crate::support::{
    append, connected, content, fixture, fixture_with, log_rows, stored, text, wait_text, WAIT,
};

#[tokio::test]
async fn an_update_is_in_postgres_before_any_other_client_sees_it() {
    let f = fixture().await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let reader = connected(&f.app, f.canvas, f.owner.access_token()).await;
    for i in 0..20 {
        let word = format!("w{i};");
        append(writer.doc(), &word);
        reader
            .wait_for(WAIT, |_, doc| text(doc).contains(&word))
            .await
            .expect("the reader sees the edit");
        // The reader has it: it must already be durable.
        assert!(
            text(&stored(&f.app.db, f.canvas).await).contains(&word),
            "{word} was broadcast before it was committed"
        );
    }
}

#[tokio::test]
async fn compaction_writes_a_snapshot_deletes_the_covered_log_and_keeps_everything() {
    let f = fixture_with(|s| s.sync.rooms.compact_after_updates = 10).await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let mut expected = String::new();
    for i in 0..35 {
        let word = format!("{i},");
        expected.push_str(&word);
        append(writer.doc(), &word);
    }
    let reader = connected(&f.app, f.canvas, f.owner.access_token()).await;
    wait_text(&reader, &expected).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let size = store::stored_size(&f.app.db, f.canvas).await.expect("size");
        if size.snapshot_seq >= 30 {
            assert!(
                size.log_rows < 10,
                "covered rows were not deleted: {size:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compaction: {size:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), expected);
    // A restarted server loads snapshot + tail.
    let app = f.app.restart().await;
    let fresh = connected(&app, f.canvas, f.owner.access_token()).await;
    wait_text(&fresh, &expected).await;
}

#[tokio::test]
async fn a_stale_compaction_changes_nothing() {
    let f = fixture().await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    for word in ["a", "b", "c"] {
        append(writer.doc(), word);
    }
    wait_for_rows(&f.app.db, f.canvas, 3).await;
    let full = writer
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert!(store::compact(&f.app.db, f.canvas, 3, &full)
        .await
        .expect("compact"));
    // A writer that encoded its snapshot at seq 2 arrives late: refused, nothing changes.
    let older = Doc::new();
    older
        .get_or_insert_text("t")
        .insert(&mut older.transact_mut(), 0, "stale");
    let stale = older
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert!(!store::compact(&f.app.db, f.canvas, 2, &stale)
        .await
        .expect("compact"));
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "abc");
    // And a snapshot can never claim more than was committed.
    assert!(!store::compact(&f.app.db, f.canvas, 99, &stale)
        .await
        .expect("compact"));
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "abc");
}

#[tokio::test]
async fn a_document_that_fails_to_load_is_never_served_nor_overwritten() {
    let f = fixture().await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(writer.doc(), "precious");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    drop(writer);
    // Damage the log behind the server's back, on a fresh server with nothing loaded.
    sqlx::query("update canvas_updates set data = '\\x0105'::bytea where canvas_id = $1")
        .bind(f.canvas)
        .execute(&f.app.db)
        .await
        .expect("damage");
    let app = f.app.restart().await;
    let mut client = potentia_client::SyncClient::new(app.ws_url(f.canvas, f.owner.access_token()))
        .expect("client");
    client.connect().await.expect("socket opens");
    let (code, reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 1011, "{reason}");
    assert!(!client.state().synced, "an empty document was served");
    let (status, problem) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/canvases/{}/state", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "document_unavailable");
    let data: Vec<u8> = sqlx::query_scalar("select data from canvas_updates where canvas_id = $1")
        .bind(f.canvas)
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(data, vec![1, 5], "the stored document was touched");
    assert_eq!(log_rows(&app.db, f.canvas).await, 1);
}

#[tokio::test]
async fn an_idle_room_unloads_and_reloads_from_the_log() {
    let f = fixture_with(|s| s.sync.rooms.unload_grace = Duration::from_millis(200)).await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(writer.doc(), "kept");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    drop(writer);
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.app.metric("potentia_sync_rooms").await > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room never unloaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reader = connected(&f.app, f.canvas, f.owner.access_token()).await;
    wait_text(&reader, "kept").await;
    assert_eq!(
        content(reader.doc()),
        content(&stored(&f.app.db, f.canvas).await)
    );
}

#[tokio::test]
async fn connections_racing_to_an_unloaded_canvas_share_one_document() {
    let f = fixture().await;
    let url = f.app.ws_url(f.canvas, f.owner.access_token());
    let joins = (0..8).map(|_| {
        let url = url.clone();
        async move {
            let mut client = potentia_client::SyncClient::new(url).expect("client");
            client.connect().await.expect("connect");
            client.wait_synced(WAIT).await.expect("synced");
            client
        }
    });
    let clients = futures::future::join_all(joins).await;
    assert_eq!(f.app.metric("potentia_sync_rooms").await, 1.0);
    append(clients[0].doc(), "one room");
    for client in &clients[1..] {
        wait_text(client, "one room").await;
    }
}

#[tokio::test]
async fn the_sync_metrics_count_connections_updates_and_commits() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    assert_eq!(f.app.metric("potentia_sync_connections").await, 1.0);
    for word in ["a", "b", "c"] {
        append(client.doc(), word);
    }
    wait_for_rows(&f.app.db, f.canvas, 3).await;
    assert_eq!(f.app.metric("potentia_sync_updates_total").await, 3.0);
    assert!(f.app.metric("potentia_sync_persist_seconds_count").await >= 1.0);
    assert!(f.app.metric("potentia_sync_bytes_in_total").await > 0.0);
    assert!(f.app.metric("potentia_sync_bytes_out_total").await > 0.0);
    drop(client);
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.app.metric("potentia_sync_connections").await != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection gauge never went down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
