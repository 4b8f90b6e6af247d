//! Concurrent edits converge: on one node, across two nodes, across a restart, offline.

use std::time::Duration;

use potentia_client::SyncClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::{Map, Text, Transact};

use crate::support::{
    append, connected, content, fixture, fixture_with, stored, text, wait_text, WAIT,
};

/// One random edit: an insert or delete in the text, or a map write.
fn random_edit(client: &SyncClient, rng: &mut StdRng, who: usize, n: usize) {
    let doc = client.doc();
    let text = doc.get_or_insert_text("t");
    let map = doc.get_or_insert_map("m");
    let mut txn = doc.transact_mut();
    let len = text.len(&txn);
    match rng.gen_range(0..10) {
        0..=5 => {
            let at = rng.gen_range(0..=len);
            text.insert(&mut txn, at, &format!("<{who}:{n}>"));
        }
        6..=7 if len > 0 => {
            let at = rng.gen_range(0..len);
            let count = rng.gen_range(1..=(len - at).min(4));
            text.remove_range(&mut txn, at, count);
        }
        _ => {
            map.insert(
                &mut txn,
                format!("k{}", rng.gen_range(0..8)),
                format!("{who}:{n}"),
            );
        }
    }
}

/// Drives `clients` through `rounds` of random edits with random disconnects, then
/// reconnects everyone and checks that all of them and Postgres hold the same document.
async fn edit_randomly_and_converge(clients: &mut [SyncClient], rounds: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..rounds {
        for (who, client) in clients.iter_mut().enumerate() {
            match rng.gen_range(0..20) {
                0 => client.disconnect().await,
                1 => client.drop_connection(),
                2 if client.state().closed.is_some() || client.state() == Default::default() => {
                    client.connect().await.expect("reconnect");
                }
                _ => {}
            }
            // Disconnected clients keep editing: their edits go out on reconnect.
            random_edit(client, &mut rng, who, round);
        }
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for client in clients.iter_mut() {
        client.connect().await.expect("final reconnect");
        client.wait_synced(WAIT).await.expect("synced");
    }
}

async fn assert_converged(clients: &[SyncClient], db: &sqlx::PgPool, canvas: uuid::Uuid) {
    // The stored document is the reference: every client must reach it, and it must hold
    // every client's edits (a client's own content is a subset of the merge).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reference = content(&stored(db, canvas).await);
        let all_equal = clients.iter().all(|c| content(c.doc()) == reference);
        if all_equal {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let states: Vec<String> = clients.iter().map(|c| content(c.doc())).collect();
            panic!("did not converge:\nstored {reference}\nclients {states:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn five_clients_with_random_edits_and_disconnects_converge() {
    let f = fixture().await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connected(&f.app, f.canvas, f.owner.access_token()).await);
    }
    edit_randomly_and_converge(&mut clients, 60, 7).await;
    assert_converged(&clients, &f.app.db, f.canvas).await;
}

#[tokio::test]
async fn clients_on_two_nodes_sharing_postgres_and_redis_converge() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL (run ./scripts/test.sh)");
    let f = fixture_with(|s| s.redis_url = Some(redis.clone())).await;
    let second = f.app.spawn_node(|_| {}).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &f.app } else { &second };
        clients.push(connected(node, f.canvas, f.owner.access_token()).await);
    }
    edit_randomly_and_converge(&mut clients, 60, 11).await;
    assert_converged(&clients, &f.app.db, f.canvas).await;
}

#[tokio::test]
async fn an_edit_on_one_node_reaches_a_client_on_another_at_once() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL (run ./scripts/test.sh)");
    let f = fixture_with(|s| s.redis_url = Some(redis.clone())).await;
    let second = f.app.spawn_node(|_| {}).await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let reader = connected(&second, f.canvas, f.owner.access_token()).await;
    append(writer.doc(), "across nodes");
    wait_text(&reader, "across nodes").await;
}

#[tokio::test]
async fn a_node_without_redis_messages_catches_up_from_postgres() {
    // Two nodes on one database with no Redis between them: only the catch-up from the log
    // can bring one node's edits to the other's clients — here a write on node A, then a
    // client joining node B which already had the room loaded.
    let f = fixture().await;
    let second = f.app.spawn_node(|_| {}).await;
    let early = connected(&second, f.canvas, f.owner.access_token()).await;
    let writer = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(writer.doc(), "one");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    // Node B appends next: its commit gets a sequence number past the gap and reads the gap.
    append(early.doc(), "two");
    early
        .wait_for(WAIT, |_, doc| {
            text(doc).contains("one") && text(doc).contains("two")
        })
        .await
        .expect("node B caught up from Postgres");
}

#[tokio::test]
async fn a_server_restart_between_edits_loses_nothing() {
    let f = fixture().await;
    let mut client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    append(client.doc(), "before ");
    wait_for_rows(&f.app.db, f.canvas, 1).await;
    let app = f.app.restart().await;
    client.disconnect().await;
    let fresh = connected(&app, f.canvas, f.owner.access_token()).await;
    wait_text(&fresh, "before ").await;
    // The old client reconnects to the new server and keeps editing.
    client.set_url(app.ws_url(f.canvas, f.owner.access_token()));
    client.connect().await.expect("reconnect");
    client.wait_synced(WAIT).await.expect("synced");
    append(client.doc(), "after");
    wait_text(&fresh, "before after").await;
    let app = app.restart().await;
    let last = connected(&app, f.canvas, f.owner.access_token()).await;
    wait_text(&last, "before after").await;
}

#[tokio::test]
async fn edits_made_offline_reach_the_others_on_reconnect() {
    let f = fixture().await;
    let mut offline = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let online = connected(&f.app, f.canvas, f.owner.access_token()).await;
    offline.disconnect().await;
    append(offline.doc(), "written offline");
    append(online.doc(), "|online");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(text(online.doc()), "|online");
    offline.connect().await.expect("reconnect");
    offline.wait_synced(WAIT).await.expect("synced");
    online
        .wait_for(WAIT, |_, doc| text(doc).contains("written offline"))
        .await
        .expect("offline edit arrived");
    offline
        .wait_for(WAIT, |_, doc| text(doc).contains("|online"))
        .await
        .expect("online edit arrived");
}

pub async fn wait_for_rows(db: &sqlx::PgPool, canvas: uuid::Uuid, rows: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while crate::support::log_rows(db, canvas).await < rows {
        assert!(
            tokio::time::Instant::now() < deadline,
            "log never reached {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
