//! Materialization: the blocks of a client's document become rows, only changed blocks are
//! written, versions count changes, an older state never overwrites a newer one, and rows that
//! fell behind the log catch up on the next load.

use std::time::Duration;

use potentia_client::SyncClient;
use potentia_sync::schema::{delete_block, insert_block, move_block, update_block};
use potentia_sync::{BlockPatch, NewBlock, Position};
use sqlx::PgPool;
use uuid::Uuid;
use yrs::Transact;

use crate::convergence::wait_for_rows;
use crate::support::{connected, fixture, WAIT};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    text: String,
    order_key: String,
    version: i64,
}

async fn rows(db: &PgPool, canvas: Uuid) -> Vec<Row> {
    sqlx::query_as("select id, kind, text, order_key, version from blocks where canvas_id = $1 order by order_key, id")
        .bind(canvas)
        .fetch_all(db)
        .await
        .expect("rows")
}

async fn wait_rows(db: &PgPool, canvas: Uuid, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = rows(db, canvas).await;
        if done(&current) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows never matched: {current:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn add(client: &SyncClient, kind: &str, text: &str) -> Uuid {
    let doc = client.doc();
    let mut txn = doc.transact_mut();
    let id = insert_block(
        &mut txn,
        NewBlock {
            id: None,
            kind: kind.into(),
            parent: None,
            position: Position::Last,
            text: text.into(),
            props: Default::default(),
        },
    )
    .expect("insert");
    Uuid::parse_str(&id).expect("uuid")
}

fn patch_text(client: &SyncClient, id: Uuid, text: &str) {
    let doc = client.doc();
    let mut txn = doc.transact_mut();
    update_block(
        &mut txn,
        &id.to_string(),
        BlockPatch {
            text: Some(text.into()),
            ..Default::default()
        },
    )
    .expect("update");
}

async fn queued(db: &PgPool, canvas: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from embedding_queue where scope_id = $1")
        .bind(canvas)
        .fetch_one(db)
        .await
        .expect("queue")
}

#[tokio::test]
async fn a_clients_blocks_become_rows_and_follow_its_edits() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let title = add(&client, "heading", "Plan");
    let body = add(&client, "paragraph", "first draft");
    let rows = wait_rows(&f.app.db, f.canvas, |r| r.len() == 2).await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.text.as_str(), r.version))
            .collect::<Vec<_>>(),
        vec![(title, "Plan", 1), (body, "first draft", 1)]
    );
    assert_eq!(rows[0].kind, "heading");
    patch_text(&client, body, "second draft");
    let rows = wait_rows(&f.app.db, f.canvas, |r| {
        r.iter().any(|r| r.text == "second draft")
    })
    .await;
    let body_row = rows.iter().find(|r| r.id == body).expect("body");
    assert_eq!(body_row.version, 2);
    let title_row = rows.iter().find(|r| r.id == title).expect("title");
    assert_eq!(title_row.version, 1, "an unchanged block is not rewritten");
    delete_block(&mut client.doc().transact_mut(), &title.to_string()).expect("delete");
    wait_rows(&f.app.db, f.canvas, |r| r.len() == 1 && r[0].id == body).await;
}

#[tokio::test]
async fn a_text_change_queues_the_block_for_embedding_and_a_move_does_not() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let a = add(&client, "paragraph", "alpha");
    let b = add(&client, "paragraph", "beta");
    wait_rows(&f.app.db, f.canvas, |r| r.len() == 2).await;
    assert_eq!(queued(&f.app.db, f.canvas).await, 2);
    sqlx::query("delete from embedding_queue")
        .execute(&f.app.db)
        .await
        .expect("drain");
    move_block(
        &mut client.doc().transact_mut(),
        &b.to_string(),
        None,
        Position::First,
    )
    .expect("move");
    wait_rows(&f.app.db, f.canvas, |r| {
        r.first().is_some_and(|first| first.id == b)
    })
    .await;
    assert_eq!(
        queued(&f.app.db, f.canvas).await,
        0,
        "a move does not change the text"
    );
    patch_text(&client, a, "alpha, edited");
    wait_rows(&f.app.db, f.canvas, |r| {
        r.iter().any(|r| r.text == "alpha, edited")
    })
    .await;
    let hash: Vec<u8> =
        sqlx::query_scalar("select text_hash from embedding_queue where source_id = $1")
            .bind(a)
            .fetch_one(&f.app.db)
            .await
            .expect("queued");
    use sha2::Digest;
    assert_eq!(
        hash,
        sha2::Sha256::digest("alpha, edited".as_bytes()).to_vec()
    );
}

#[tokio::test]
async fn an_older_document_state_never_overwrites_newer_rows() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let id = add(&client, "paragraph", "current");
    wait_rows(&f.app.db, f.canvas, |r| r.len() == 1).await;
    // Another writer has materialized a newer state: this room's next, older plan is refused.
    sqlx::query("update canvas_materializations set seq = 1000000 where canvas_id = $1")
        .bind(f.canvas)
        .execute(&f.app.db)
        .await
        .expect("fence");
    patch_text(&client, id, "older than the rows");
    wait_for_rows(&f.app.db, f.canvas, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = rows(&f.app.db, f.canvas).await;
    assert_eq!(rows[0].text, "current");
    assert_eq!(rows[0].version, 1);
}

#[tokio::test]
async fn rows_behind_the_log_catch_up_when_the_document_loads() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    add(&client, "todo", "survive the crash");
    wait_rows(&f.app.db, f.canvas, |r| r.len() == 1).await;
    drop(client);
    // As after a crash between the log commit and the materialization.
    sqlx::query("delete from blocks where canvas_id = $1")
        .bind(f.canvas)
        .execute(&f.app.db)
        .await
        .expect("lose rows");
    sqlx::query("update canvas_materializations set seq = 0 where canvas_id = $1")
        .bind(f.canvas)
        .execute(&f.app.db)
        .await
        .expect("rewind");
    let app = f.app.restart().await;
    let _reader = connected(&app, f.canvas, f.owner.access_token()).await;
    let rows = wait_rows(&app.db, f.canvas, |r| r.len() == 1).await;
    assert_eq!(
        (rows[0].kind.as_str(), rows[0].text.as_str()),
        ("todo", "survive the crash")
    );
}

#[tokio::test]
async fn keys_grown_long_are_rebalanced_through_the_document() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let first = add(&client, "paragraph", "first");
    add(&client, "paragraph", "last");
    // Always inserting right after the first block grows the new keys by a digit every few
    // inserts.
    {
        let doc = client.doc();
        let mut txn = doc.transact_mut();
        for i in 0..400 {
            insert_block(
                &mut txn,
                NewBlock {
                    id: None,
                    kind: "paragraph".into(),
                    parent: None,
                    position: Position::After(first.to_string()),
                    text: format!("{i}"),
                    props: Default::default(),
                },
            )
            .expect("insert");
        }
    }
    let rows = wait_rows(&f.app.db, f.canvas, |r| {
        r.len() == 402
            && r.iter()
                .all(|row| row.order_key.len() <= potentia_sync::order::REBALANCE_LEN)
    })
    .await;
    assert_eq!(rows.first().map(|r| r.text.as_str()), Some("first"));
    assert_eq!(rows.last().map(|r| r.text.as_str()), Some("last"));
    // The client got the new keys too.
    client
        .wait_for(WAIT, |_, doc| {
            potentia_sync::schema::read_blocks(&doc.transact())
                .iter()
                .all(|b| b.order.len() <= potentia_sync::order::REBALANCE_LEN)
        })
        .await
        .expect("the client converges on the rebalanced keys");
    assert!(f.app.metric("potentia_sync_rebalances_total").await >= 1.0);
}

/// A text whose full-text index entry Postgres refuses ("string is too long for tsvector"):
/// 40,000 distinct words, 1.3 MB.
fn text_postgres_refuses() -> String {
    use sha2::Digest;
    (0..40_000)
        .map(|i: u32| hex(&sha2::Sha256::digest(i.to_le_bytes())[..16]))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_block_postgres_refuses_is_skipped_counted_once_and_the_others_are_written() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let refused = add(&client, "paragraph", &text_postgres_refuses());
    let beside = add(&client, "paragraph", "written beside it");
    let rows = wait_rows(&f.app.db, f.canvas, |r| r.len() == 1).await;
    assert_eq!(rows[0].id, beside);
    let skipped = "potentia_sync_materialize_skipped_blocks_total";
    // The room counts the refusal right after the commit that wrote the other row.
    let deadline = tokio::time::Instant::now() + WAIT;
    while f.app.metric(skipped).await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Later materializations write the others and do not try the refused block again.
    patch_text(&client, beside, "edited beside it");
    wait_rows(&f.app.db, f.canvas, |r| {
        r.len() == 1 && r[0].text == "edited beside it"
    })
    .await;
    assert_eq!(f.app.metric(skipped).await, 1.0, "counted once");
    // Once its content changes, it is tried again.
    patch_text(&client, refused, "short now");
    let rows = wait_rows(&f.app.db, f.canvas, |r| r.len() == 2).await;
    assert!(rows
        .iter()
        .any(|r| r.id == refused && r.text == "short now"));
}

#[tokio::test]
async fn a_nul_in_a_clients_block_is_left_out_of_its_row_and_kept_in_the_document() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let id = add(&client, "para\0graph", "zebra\0crossing");
    let rows = wait_rows(&f.app.db, f.canvas, |r| r.len() == 1).await;
    assert_eq!(
        (rows[0].id, rows[0].kind.as_str(), rows[0].text.as_str()),
        (id, "paragraph", "zebracrossing")
    );
    let stored = crate::support::stored(&f.app.db, f.canvas).await;
    let blocks = potentia_sync::schema::read_blocks(&stored.transact());
    assert_eq!(blocks[0].text, "zebra\0crossing");
    assert_eq!(
        f.app
            .metric("potentia_sync_materialize_skipped_blocks_total")
            .await,
        0.0
    );
}
