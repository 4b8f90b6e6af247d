//! Property tests with a small deterministic generator (SplitMix64, fixed seeds, so every run
//! checks the same cases and a failure names its seed):
//!
//! * random frames, and mutations of valid frames (bit flips, byte changes, truncations,
//!   insertions, length tampering, splices), never panic the decoder or the state machine;
//! * every frame the decoder accepts re-encodes to exactly the same bytes;
//! * randomly built valid messages survive encode → decode → encode unchanged;
//! * an update the decoder accepts also decodes in yrs.

use std::time::{Duration, Instant};

use potentia_sync::awareness::{AwarenessEntry, AwarenessUpdate};
use potentia_sync::protocol::encode_sync_update;
use potentia_sync::wire::write_var_u64;
use potentia_sync::{
    AuthMessage, Connection, ConnectionLimits, EncodedStateVector, EncodedUpdate, Message,
    ProtocolLimits, RateLimit, Role, SyncMessage,
};
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, ClientID, Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update,
};

const FIXTURES: &str = include_str!("fixtures/yjs-frames.json");

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.index(max_len + 1);
        (0..len).map(|_| self.byte()).collect()
    }

    fn text(&mut self, max_chars: usize) -> String {
        const ALPHABET: &[&str] = &[
            "a", "b", "z", " ", "é", "✈", "😀", "\"", "\\", "\n", "\u{0}",
        ];
        let len = self.index(max_chars + 1);
        (0..len)
            .map(|_| ALPHABET[self.index(ALPHABET.len())])
            .collect()
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn fixture_frames() -> Vec<Vec<u8>> {
    let file: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixture JSON");
    file["fixtures"]
        .as_array()
        .expect("fixtures")
        .iter()
        .map(|fixture| hex(fixture["hex"].as_str().expect("hex")))
        .collect()
}

/// A random document edit history, as the updates it produced.
fn random_updates(rng: &mut Rng, client_id: u64) -> Vec<Vec<u8>> {
    let doc = Doc::with_client_id(client_id);
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("map");
    let array = doc.get_or_insert_array("array");
    let mut updates = Vec::new();
    for _ in 0..rng.below(6) + 1 {
        let before = doc.transact().state_vector();
        {
            let mut txn = doc.transact_mut();
            match rng.below(5) {
                // Offsets are in UTF-8 bytes (yrs's default) and must fall on characters.
                0 => {
                    let current = text.get_string(&txn);
                    let mut boundaries: Vec<usize> =
                        current.char_indices().map(|(i, _)| i).collect();
                    boundaries.push(current.len());
                    let at = boundaries[rng.index(boundaries.len())] as u32;
                    text.insert(&mut txn, at, &rng.text(8));
                }
                1 => {
                    let current = text.get_string(&txn);
                    let chars: Vec<(usize, char)> = current.char_indices().collect();
                    if !chars.is_empty() {
                        let (at, c) = chars[rng.index(chars.len())];
                        text.remove_range(&mut txn, at as u32, c.len_utf8() as u32);
                    }
                }
                2 => {
                    map.insert(&mut txn, rng.text(3), rng.next() as i32 as f64);
                }
                3 => {
                    let value = Any::from(vec![Any::from(rng.text(4)), Any::Bool(rng.chance(50))]);
                    array.insert(&mut txn, 0, value);
                }
                _ => {
                    let key = rng.text(3);
                    map.remove(&mut txn, &key);
                }
            }
        }
        updates.push(doc.transact().encode_diff_v1(&before));
    }
    updates.push(
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default()),
    );
    updates
}

fn random_message(rng: &mut Rng) -> Message {
    match rng.below(6) {
        0 => {
            let sv: StateVector = (0..rng.below(5))
                .map(|_| (ClientID::new(rng.below(1 << 53)), rng.next() as u32))
                .collect();
            Message::Sync(SyncMessage::Step1(EncodedStateVector::new(sv)))
        }
        kind @ (1 | 2) => {
            let client_id = rng.below(1 << 32);
            let updates = random_updates(rng, client_id);
            let bytes = &updates[rng.index(updates.len())];
            let update = EncodedUpdate::decode(bytes).expect("yrs's updates validate");
            Message::Sync(if kind == 1 {
                SyncMessage::Step2(update)
            } else {
                SyncMessage::Update(update)
            })
        }
        3 => {
            let entries = (0..rng.below(4))
                .map(|_| {
                    let state = match rng.below(3) {
                        0 => None,
                        1 => {
                            Some(serde_json::json!({ "name": rng.text(6), "n": rng.next() >> 12 }))
                        }
                        _ => Some(serde_json::json!([rng.text(3), null, rng.chance(50)])),
                    }
                    .map(|value| value.to_string());
                    AwarenessEntry::new(rng.below(1 << 53), rng.below(1 << 53), state.as_deref())
                        .expect("valid entry")
                })
                .collect();
            Message::Awareness(AwarenessUpdate::from_entries(entries))
        }
        4 => Message::Auth(AuthMessage::PermissionDenied {
            reason: rng.text(20),
        }),
        _ => Message::QueryAwareness,
    }
}

/// A corruption of `frame`.
fn mutate(rng: &mut Rng, frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    for _ in 0..rng.below(3) + 1 {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.index(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.index(out.len());
                out[i] = rng.byte();
            }
            2 => {
                let at = rng.index(out.len() + 1);
                out.truncate(at);
            }
            3 => {
                let at = rng.index(out.len() + 1);
                let extra = rng.bytes(4);
                out.splice(at..at, extra);
            }
            4 => out.extend(rng.bytes(3)),
            5 if out.len() > 2 => {
                // Tamper with what is likely a length: rewrite byte 2 as a large varint.
                let mut varint = Vec::new();
                write_var_u64(&mut varint, rng.next() >> rng.below(64));
                out.splice(2..3, varint);
            }
            6 if !out.is_empty() => {
                let i = rng.index(out.len());
                out.remove(i);
            }
            _ => {
                // Interesting bytes: the message types, Any tags, continuation bytes.
                const INTERESTING: &[u8] =
                    &[0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 116, 117, 118, 119, 125];
                let i = rng.index(out.len() + 1);
                out.insert(i, INTERESTING[rng.index(INTERESTING.len())]);
            }
        }
    }
    out
}

/// Feeds `frame` to the decoder and to connections of both roles; checks the identity.
fn check(frame: &[u8], now: Instant, stats: &mut Stats) {
    let limits = ProtocolLimits::default();
    match Message::decode(frame, &limits) {
        Ok(message) => {
            stats.accepted += 1;
            assert_eq!(message.encode(), frame, "re-encoding changed {frame:02x?}");
            if let Message::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update)) =
                &message
            {
                assert!(
                    Update::decode_v1(update.bytes()).is_ok(),
                    "accepted an update yrs cannot decode: {frame:02x?}"
                );
            }
        }
        Err(error) => {
            stats.refused += 1;
            assert!(error.reason().len() <= 123);
        }
    }
    let unlimited = ConnectionLimits {
        updates: RateLimit::UNLIMITED,
        awareness: RateLimit::UNLIMITED,
        requests: RateLimit::UNLIMITED,
        ..ConnectionLimits::default()
    };
    for role in [Role::ReadWrite, Role::ReadOnly] {
        let mut connection = Connection::new(role, unlimited);
        let first = connection.receive(frame, now);
        let second = connection.receive(frame, now + Duration::from_millis(1));
        if let Err(close) = &first {
            assert_eq!(second.as_ref(), Err(close), "a closed connection reopened");
            assert!(close.reason.len() <= 123);
        }
    }
}

#[derive(Default)]
struct Stats {
    accepted: usize,
    refused: usize,
}

#[test]
fn random_frames_never_panic() {
    let mut rng = Rng(1);
    let mut stats = Stats::default();
    let now = Instant::now();
    for _ in 0..20_000 {
        let mut frame = rng.bytes(48);
        // Steer most frames past the type check.
        if !frame.is_empty() && rng.chance(80) {
            frame[0] = rng.below(4) as u8;
            if frame.len() > 1 && frame[0] == 0 {
                frame[1] = rng.below(3) as u8;
            }
        }
        check(&frame, now, &mut stats);
    }
    assert!(stats.accepted > 0 && stats.refused > 0);
}

#[test]
fn mutated_valid_frames_never_panic_and_accepted_ones_round_trip() {
    let mut rng = Rng(2);
    let mut corpus = fixture_frames();
    for _ in 0..40 {
        corpus.push(random_message(&mut rng).encode());
    }
    let mut stats = Stats::default();
    let now = Instant::now();
    for _ in 0..30_000 {
        let base = &corpus[rng.index(corpus.len())];
        let frame = mutate(&mut rng, base);
        check(&frame, now, &mut stats);
    }
    // Some mutations stay valid (e.g. a changed character in a string): both paths are hit.
    assert!(stats.accepted > 100, "only {} accepted", stats.accepted);
    assert!(stats.refused > 1000, "only {} refused", stats.refused);
}

#[test]
fn connections_survive_random_frame_sequences() {
    let mut rng = Rng(3);
    let corpus = fixture_frames();
    let start = Instant::now();
    for _ in 0..300 {
        let role = if rng.chance(50) {
            Role::ReadOnly
        } else {
            Role::ReadWrite
        };
        let mut connection = Connection::new(role, ConnectionLimits::default());
        let mut now = start;
        for _ in 0..50 {
            now += Duration::from_millis(rng.below(100));
            let frame = if rng.chance(50) {
                corpus[rng.index(corpus.len())].clone()
            } else {
                let base = rng.index(corpus.len());
                mutate(&mut rng, &corpus[base])
            };
            if connection.receive(&frame, now).is_err() {
                break;
            }
        }
    }
}

#[test]
fn valid_messages_round_trip() {
    let mut rng = Rng(4);
    let limits = ProtocolLimits::default();
    for seed in 0..2_000 {
        let message = random_message(&mut rng);
        let frame = message.encode();
        let decoded = Message::decode(&frame, &limits)
            .unwrap_or_else(|error| panic!("case {seed}: {error} for {message:?}"));
        assert_eq!(decoded, message, "case {seed}");
        assert_eq!(decoded.encode(), frame, "case {seed}");
    }
}

#[test]
fn update_frames_from_random_histories_apply_in_yrs() {
    let mut rng = Rng(5);
    for _ in 0..200 {
        let doc = Doc::new();
        let client_id = rng.below(1 << 53);
        for update in random_updates(&mut rng, client_id) {
            let frame = encode_sync_update(&update);
            let Ok(Message::Sync(SyncMessage::Update(update))) =
                Message::decode(&frame, &ProtocolLimits::default())
            else {
                panic!("a yrs update was refused: {update:02x?}")
            };
            let decoded = Update::decode_v1(update.bytes()).expect("decodes");
            doc.transact_mut().apply_update(decoded).expect("applies");
        }
    }
}
