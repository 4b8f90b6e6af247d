//! Bad frames close the socket with a code and a reason and never touch the stored document.

use potentia_sync::protocol::encode_sync_update;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Options, ReadTxn, Text, Transact};

use crate::convergence::wait_for_rows;
use crate::support::{append, connected, fixture, log_rows, stored, text, wait_text, WAIT};

/// Sends `frame` after a first good edit, expects the close `code` with `reason`, and checks
/// that the stored document and its log are exactly as before.
async fn refused(frame: Vec<u8>, code: u16, reason: &str) {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(client.doc(), "good");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    assert!(client.send_raw(frame));
    let (got_code, got_reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!((got_code, got_reason.as_str()), (code, reason));
    assert_eq!(log_rows(&f.app.db, f.canvas).await, 1);
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "good");
    // The room goes on serving the document as it was.
    let other = connected(&f.app, f.canvas, f.owner.access_token()).await;
    wait_text(&other, "good").await;
}

#[tokio::test]
async fn a_truncated_varint_closes_with_1002() {
    refused(vec![0x00, 0x02, 0x85], 1002, "truncated varint").await;
}

#[tokio::test]
async fn an_unknown_message_type_closes_with_1002() {
    refused(vec![0x09, 0x00], 1002, "unknown message type").await;
}

#[tokio::test]
async fn an_unknown_sync_type_closes_with_1002() {
    refused(vec![0x00, 0x07, 0x00], 1002, "unknown sync message type").await;
}

#[tokio::test]
async fn a_garbage_update_closes_with_1002() {
    refused(
        encode_sync_update(&[0x03, 0xff, 0x01, 0x02, 0x07, 0x09]),
        1002,
        "invalid update",
    )
    .await;
}

#[tokio::test]
async fn trailing_bytes_after_a_message_close_with_1002() {
    let mut frame = encode_sync_update(&[0x00, 0x00]);
    frame.push(0x00);
    refused(frame, 1002, "trailing bytes after message").await;
}

#[tokio::test]
async fn an_auth_message_from_a_client_closes_with_1008() {
    refused(
        vec![0x02, 0x00, 0x01, b'x'],
        1008,
        "auth messages are sent by the server only",
    )
    .await;
}

#[tokio::test]
async fn an_update_with_missing_dependencies_closes_with_1002() {
    // Two edits of one client: the second one alone refers to content the server lacks.
    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(4242),
        ..Options::default()
    });
    let t = doc.get_or_insert_text("t");
    t.insert(&mut doc.transact_mut(), 0, "first");
    let after_first = doc.transact().state_vector();
    t.insert(&mut doc.transact_mut(), 5, " second");
    let second_only = doc.transact().encode_state_as_update_v1(&after_first);
    assert!(yrs::Update::decode_v1(&second_only).is_ok());
    refused(
        encode_sync_update(&second_only),
        1002,
        "update with missing dependencies",
    )
    .await;
}

#[tokio::test]
async fn a_text_frame_closes_with_1003() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    assert!(client.send_text("hello"));
    let (code, reason) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!(
        (code, reason.as_str()),
        (1003, "text frames are not supported")
    );
}

#[tokio::test]
async fn the_updates_before_a_bad_one_in_the_same_batch_are_kept() {
    // A burst: good updates, then one with missing dependencies, all queued together.
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let orphan = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(777),
        ..Options::default()
    });
    let t = orphan.get_or_insert_text("t");
    t.insert(&mut orphan.transact_mut(), 0, "x");
    let sv = orphan.transact().state_vector();
    t.insert(&mut orphan.transact_mut(), 1, "y");
    let missing = orphan.transact().encode_state_as_update_v1(&sv);
    for word in ["a", "b", "c"] {
        append(client.doc(), word);
    }
    client.send_raw(encode_sync_update(&missing));
    let (code, _) = client.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 1002);
    let other = connected(&f.app, f.canvas, f.owner.access_token()).await;
    wait_text(&other, "abc").await;
    assert_eq!(text(&stored(&f.app.db, f.canvas).await), "abc");
}
