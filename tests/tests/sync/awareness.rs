//! Awareness (presence, cursors) is relayed in the room and across nodes, removed when its
//! connection goes, and rate-limited per connection.

use potentia_client::SyncClient;
use potentia_sync::{AwarenessEntry, AwarenessUpdate, ProtocolLimits, RateLimit};

use crate::support::{connected, fixture, fixture_with, WAIT};

pub fn awareness(client_id: u64, clock: u64, state: Option<&str>) -> Vec<u8> {
    let entry = AwarenessEntry::new(client_id, clock, state).expect("entry");
    AwarenessUpdate::from_entries(vec![entry]).bytes().to_vec()
}

/// The states (client id → JSON or `None` for a removal) in the last awareness frame.
fn last_states(client: &SyncClient) -> Vec<(u64, Option<String>)> {
    let Some(bytes) = client.state().last_awareness else {
        return Vec::new();
    };
    let update = AwarenessUpdate::decode(&bytes, &ProtocolLimits::default()).expect("decodes");
    update
        .entries()
        .iter()
        .map(|e| (e.client_id, e.state.as_ref().map(|s| s.get().to_owned())))
        .collect()
}

async fn wait_states(client: &SyncClient, expected: &[(u64, Option<&str>)]) {
    let expected: Vec<(u64, Option<String>)> = expected
        .iter()
        .map(|(id, s)| (*id, s.map(str::to_owned)))
        .collect();
    client
        .wait_for(WAIT, |_, _| last_states(client) == expected)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "awareness never became {expected:?}: {e}; last {:?}",
                last_states(client)
            )
        });
}

#[tokio::test]
async fn a_clients_awareness_reaches_the_others() {
    let f = fixture().await;
    let alice = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let bob = connected(&f.app, f.canvas, f.owner.access_token()).await;
    alice.send_awareness(&awareness(11, 1, Some(r#"{"user":"alice","cursor":3}"#)));
    wait_states(&bob, &[(11, Some(r#"{"user":"alice","cursor":3}"#))]).await;
    // A client joining later gets the current states in its handshake.
    let carol = connected(&f.app, f.canvas, f.owner.access_token()).await;
    wait_states(&carol, &[(11, Some(r#"{"user":"alice","cursor":3}"#))]).await;
}

#[tokio::test]
async fn a_clients_awareness_is_removed_when_it_disconnects() {
    let f = fixture().await;
    let mut alice = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let bob = connected(&f.app, f.canvas, f.owner.access_token()).await;
    alice.send_awareness(&awareness(11, 1, Some(r#"{"user":"alice"}"#)));
    wait_states(&bob, &[(11, Some(r#"{"user":"alice"}"#))]).await;
    alice.drop_connection();
    wait_states(&bob, &[(11, None)]).await;
}

#[tokio::test]
async fn awareness_crosses_nodes() {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL (run ./scripts/test.sh)");
    let f = fixture_with(|s| s.redis_url = Some(redis.clone())).await;
    let second = f.app.spawn_node(|_| {}).await;
    let alice = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let bob = connected(&second, f.canvas, f.owner.access_token()).await;
    alice.send_awareness(&awareness(21, 1, Some(r#"{"user":"alice"}"#)));
    wait_states(&bob, &[(21, Some(r#"{"user":"alice"}"#))]).await;
    drop(alice);
    wait_states(&bob, &[(21, None)]).await;
}

#[tokio::test]
async fn too_many_awareness_updates_close_with_4029() {
    let f = fixture_with(|s| s.sync.rooms.connection.awareness = RateLimit::new(2.0, 2.0)).await;
    let alice = connected(&f.app, f.canvas, f.owner.access_token()).await;
    for clock in 1..20 {
        alice.send_awareness(&awareness(11, clock, Some(r#"{"x":1}"#)));
    }
    let (code, reason) = alice.wait_closed(WAIT).await.expect("closed");
    assert_eq!(code, 4029);
    assert!(reason.contains("awareness"), "{reason}");
}
