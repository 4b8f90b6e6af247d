//! Frames produced by the reference JavaScript implementation (yjs, y-protocols, lib0; see
//! `fixtures/README.md`) decode, re-encode byte for byte, and mean what JavaScript meant.

use potentia_sync::awareness::AwarenessUpdate;
use potentia_sync::{step1_frame, AuthMessage, Message, MessageKind, ProtocolLimits, SyncMessage};
use serde_json::Value;
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, Map, Out, ReadTxn, Transact, Update};

const FIXTURES: &str = include_str!("fixtures/yjs-frames.json");

struct Fixture {
    name: String,
    kind: String,
    frame: Vec<u8>,
    extra: Value,
}

fn fixtures() -> Vec<Fixture> {
    let file: Value = serde_json::from_str(FIXTURES).expect("fixture file is JSON");
    file["fixtures"]
        .as_array()
        .expect("a fixtures array")
        .iter()
        .map(|fixture| Fixture {
            name: fixture["name"].as_str().expect("name").to_owned(),
            kind: fixture["kind"].as_str().expect("kind").to_owned(),
            frame: hex(fixture["hex"].as_str().expect("hex")),
            extra: fixture.clone(),
        })
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn decode(fixture: &Fixture) -> Message {
    Message::decode(&fixture.frame, &ProtocolLimits::default())
        .unwrap_or_else(|error| panic!("{}: {error}", fixture.name))
}

fn apply(doc: &Doc, update: &[u8]) {
    let update = Update::decode_v1(update).expect("update decodes");
    doc.transact_mut()
        .apply_update(update)
        .expect("update applies");
}

fn title(doc: &Doc) -> Option<String> {
    let meta = doc.get_or_insert_map("meta");
    match meta.get(&doc.transact(), "title") {
        Some(Out::Any(Any::String(title))) => Some(title.to_string()),
        _ => None,
    }
}

#[test]
fn every_fixture_decodes_and_re_encodes_byte_identically() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 20, "the fixture file lost frames");
    for fixture in &fixtures {
        let message = decode(fixture);
        let expected_kind = match fixture.kind.as_str() {
            "sync_step1" => MessageKind::SyncStep1,
            "sync_step2" => MessageKind::SyncStep2,
            "sync_update" => MessageKind::SyncUpdate,
            "awareness" => MessageKind::Awareness,
            "auth_permission_denied" => MessageKind::Auth,
            "query_awareness" => MessageKind::QueryAwareness,
            other => panic!("unknown fixture kind {other}"),
        };
        assert_eq!(message.kind(), expected_kind, "{}", fixture.name);
        assert_eq!(message.encode(), fixture.frame, "{}", fixture.name);
    }
}

#[test]
fn state_vectors_match_javascript() {
    for fixture in fixtures().iter().filter(|f| f.kind == "sync_step1") {
        let Message::Sync(SyncMessage::Step1(sv)) = decode(fixture) else {
            panic!("{}: not a step 1", fixture.name)
        };
        let expected = fixture.extra["state_vector"]
            .as_object()
            .expect("state_vector");
        assert_eq!(sv.state_vector().len(), expected.len(), "{}", fixture.name);
        for (client, clock) in expected {
            let client: u64 = client.parse().expect("client id");
            let clock = clock.as_u64().expect("clock");
            assert_eq!(
                u64::from(sv.state_vector().get(&yrs::ClientID::new(client))),
                clock,
                "{}",
                fixture.name
            );
        }
    }
}

#[test]
fn updates_build_the_canvas_javascript_built() {
    let fixtures = fixtures();
    let whole = fixtures
        .iter()
        .find(|f| f.name == "step2 with the whole canvas")
        .expect("whole canvas fixture");
    let Message::Sync(SyncMessage::Step2(update)) = decode(whole) else {
        panic!("not a step 2")
    };
    let from_step2 = Doc::new();
    apply(&from_step2, update.bytes());
    assert_eq!(title(&from_step2).as_deref(), Some("Trip to Lisbon"));
    let blocks = from_step2.get_or_insert_map("blocks");
    let txn = from_step2.transact();
    let Some(Out::YMap(block)) = blocks.get(&txn, "0190f5c2-7b1e-7000-8000-000000000002") else {
        panic!("block 2 is missing")
    };
    let Some(Out::YText(text)) = block.get(&txn, "text") else {
        panic!("block 2 has no text")
    };
    let expected = whole.extra["text_of_block_2"].as_str().expect("text");
    assert_eq!(text.get_string(&txn), expected);
    drop(txn);

    // The same canvas, one 'update' event at a time, in the order JavaScript emitted them.
    let from_events = Doc::new();
    for fixture in fixtures
        .iter()
        .filter(|f| f.name.starts_with("update event "))
    {
        let Message::Sync(SyncMessage::Update(update)) = decode(fixture) else {
            panic!("{}: not an update", fixture.name)
        };
        assert!(!update.is_empty(), "{}", fixture.name);
        apply(&from_events, update.bytes());
    }
    assert!(!from_events.transact().has_missing_updates());
    assert_eq!(
        from_events.transact().state_vector(),
        from_step2.transact().state_vector()
    );
    assert_eq!(
        blocks.to_json(&from_step2.transact()),
        from_events
            .get_or_insert_map("blocks")
            .to_json(&from_events.transact())
    );

    // The server's own step 1 for that state is the one JavaScript wrote.
    let js_step1 = fixtures
        .iter()
        .find(|f| f.name == "step1 of a canvas with content")
        .expect("step1 fixture");
    assert_eq!(step1_frame(&from_step2), js_step1.frame);

    // JavaScript's "nothing to send" is an empty update.
    let nothing = fixtures
        .iter()
        .find(|f| f.name == "step2 with nothing to send")
        .expect("empty step2 fixture");
    let Message::Sync(SyncMessage::Step2(empty)) = decode(nothing) else {
        panic!("not a step 2")
    };
    assert!(empty.is_empty());
}

#[test]
fn awareness_entries_match_javascript() {
    for fixture in fixtures().iter().filter(|f| f.kind == "awareness") {
        let Message::Awareness(update) = decode(fixture) else {
            panic!("{}: not awareness", fixture.name)
        };
        let expected = fixture.extra["entries"].as_array().expect("entries");
        assert_eq!(update.entries().len(), expected.len(), "{}", fixture.name);
        for (entry, expected) in update.entries().iter().zip(expected) {
            assert_eq!(Some(entry.client_id), expected["client_id"].as_u64());
            assert_eq!(Some(entry.clock), expected["clock"].as_u64());
            let state: Value = serde_json::from_str(entry.state_json()).expect("JSON state");
            assert_eq!(state, expected["state"], "{}", fixture.name);
        }
        // Re-encoding from the entries alone gives JavaScript's bytes too.
        let rebuilt = AwarenessUpdate::from_entries(update.entries().to_vec());
        assert_eq!(rebuilt.to_frame(), fixture.frame, "{}", fixture.name);
    }
}

#[test]
fn auth_reason_matches_javascript() {
    let fixtures = fixtures();
    let fixture = fixtures
        .iter()
        .find(|f| f.kind == "auth_permission_denied")
        .expect("auth fixture");
    let Message::Auth(AuthMessage::PermissionDenied { reason }) = decode(fixture) else {
        panic!("not an auth message")
    };
    assert_eq!(Some(reason.as_str()), fixture.extra["reason"].as_str());
    assert_eq!(
        potentia_sync::protocol::encode_permission_denied(&reason),
        fixture.frame
    );
}
