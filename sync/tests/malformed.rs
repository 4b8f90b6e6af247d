//! Malformed frames: each maps to a stable reason and close code, through the decoder and
//! through a connection, and none of them yields anything to apply.

use std::time::Instant;

use potentia_sync::close::{MESSAGE_TOO_BIG, POLICY_VIOLATION, PROTOCOL_ERROR};
use potentia_sync::wire::write_var_u64;
use potentia_sync::{
    Close, Connection, ConnectionLimits, Message, ProtocolError, ProtocolLimits, Role,
};

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    reason: &'static str,
    code: u16,
}

fn case(name: &'static str, frame: Vec<u8>, reason: &'static str, code: u16) -> Case {
    Case {
        name,
        frame,
        reason,
        code,
    }
}

/// An update with one item in root map "m" whose `Any` content nests `depth` arrays.
fn deeply_nested_update(depth: usize) -> Vec<u8> {
    // clients, structs, client, clock, info (Any content, parent written out), parent kind
    // (root name), name, count of values
    let mut update = vec![1, 1, 1, 0, 8, 1, 1, b'm', 1];
    update.extend(std::iter::repeat_n([117u8, 1], depth).flatten());
    update.extend([126, 0]);
    update
}

fn sync_update(update: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, 2];
    write_var_u64(&mut frame, update.len() as u64);
    frame.extend_from_slice(update);
    frame
}

fn cases() -> Vec<Case> {
    vec![
        case("empty frame", vec![], "empty frame", PROTOCOL_ERROR),
        case(
            "truncated type varint",
            vec![0x80],
            "truncated varint",
            PROTOCOL_ERROR,
        ),
        case(
            "truncated sub-type varint",
            vec![0, 0xff],
            "truncated varint",
            PROTOCOL_ERROR,
        ),
        case(
            "missing sub-type",
            vec![0],
            "truncated varint",
            PROTOCOL_ERROR,
        ),
        case(
            "missing payload length",
            vec![0, 2],
            "truncated varint",
            PROTOCOL_ERROR,
        ),
        case(
            "truncated payload length",
            vec![0, 2, 0x80],
            "truncated varint",
            PROTOCOL_ERROR,
        ),
        case(
            "overlong varint",
            vec![0x80, 0x00],
            "malformed varint",
            PROTOCOL_ERROR,
        ),
        case(
            "varint over 64 bits",
            vec![0xff; 11],
            "malformed varint",
            PROTOCOL_ERROR,
        ),
        case(
            "unknown message type",
            vec![4],
            "unknown message type",
            PROTOCOL_ERROR,
        ),
        case(
            "unknown large message type",
            vec![0xff, 0x7f],
            "unknown message type",
            PROTOCOL_ERROR,
        ),
        case(
            "unknown sync sub-type",
            vec![0, 3, 0],
            "unknown sync message type",
            PROTOCOL_ERROR,
        ),
        case(
            "length past end",
            vec![0, 1, 5, 0, 0],
            "length past end of frame",
            PROTOCOL_ERROR,
        ),
        case(
            "huge declared length",
            vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            "length past end of frame",
            PROTOCOL_ERROR,
        ),
        case(
            "2^63 declared length",
            vec![
                0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ],
            "length past end of frame",
            PROTOCOL_ERROR,
        ),
        case(
            "trailing garbage after update",
            vec![0, 2, 2, 0, 0, 0xaa],
            "trailing bytes after message",
            PROTOCOL_ERROR,
        ),
        case(
            "trailing garbage after query",
            vec![3, 0],
            "trailing bytes after message",
            PROTOCOL_ERROR,
        ),
        case(
            "garbage update bytes",
            sync_update(&[3, 1, 2]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "garbage step 2 bytes",
            vec![0, 1, 4, 0xde, 0xad, 0xbe, 0xef],
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "update with a huge client count",
            sync_update(&[0xff, 0xff, 0xff, 0x7f, 0]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "update with trailing bytes inside",
            sync_update(&[0, 0, 0]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "empty update payload",
            sync_update(&[]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "update nested too deeply",
            sync_update(&deeply_nested_update(5_000)),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "update with an unknown content type",
            sync_update(&[1, 1, 1, 0, 11, 1, 1, b'm', 0, 0]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "update with legacy JSON content",
            sync_update(&[1, 1, 1, 0, 2, 1, 1, b'm', 1, 1, b'1', 0]),
            "invalid update",
            PROTOCOL_ERROR,
        ),
        case(
            "garbage state vector",
            vec![0, 0, 2, 1, 5],
            "invalid state vector",
            PROTOCOL_ERROR,
        ),
        case(
            "state vector with trailing bytes",
            vec![0, 0, 2, 0, 0],
            "invalid state vector",
            PROTOCOL_ERROR,
        ),
        case(
            "empty awareness payload",
            vec![1, 0],
            "invalid awareness update",
            PROTOCOL_ERROR,
        ),
        case(
            "awareness entry without state",
            vec![1, 3, 1, 1, 1],
            "invalid awareness update",
            PROTOCOL_ERROR,
        ),
        case(
            "awareness state not JSON",
            vec![1, 6, 1, 1, 1, 2, b'{', b'x'],
            "invalid awareness update",
            PROTOCOL_ERROR,
        ),
        case(
            "unknown auth sub-type",
            vec![2, 1, 0],
            "unknown auth message type",
            PROTOCOL_ERROR,
        ),
        case(
            "auth reason not UTF-8",
            vec![2, 0, 2, 0xff, 0xfe],
            "invalid utf-8",
            PROTOCOL_ERROR,
        ),
        case(
            "auth reason past end",
            vec![2, 0, 9, b'x'],
            "length past end of frame",
            PROTOCOL_ERROR,
        ),
    ]
}

#[test]
fn the_decoder_maps_each_malformed_frame_to_its_error() {
    let limits = ProtocolLimits::default();
    for case in cases() {
        let error = Message::decode(&case.frame, &limits).expect_err(case.name);
        assert_eq!(error.reason(), case.reason, "{}: {error}", case.name);
        assert_eq!(error.close_code(), case.code, "{}", case.name);
        assert!(error.reason().len() <= 123);
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn a_connection_closes_on_each_malformed_frame_and_stays_closed() {
    for case in cases() {
        for role in [Role::ReadWrite, Role::ReadOnly] {
            let mut connection = Connection::new(role, ConnectionLimits::default());
            let now = Instant::now();
            let close = connection.receive(&case.frame, now).expect_err(case.name);
            // A client may not send auth messages at all, well-formed or not.
            let expected = if case.frame.first() == Some(&2) {
                Close::new(
                    POLICY_VIOLATION,
                    "auth messages are sent by the server only",
                )
            } else {
                Close::new(case.code, case.reason)
            };
            assert_eq!(close, expected, "{}", case.name);
            // Everything after a close gets the same close, even a valid frame.
            assert_eq!(connection.receive(&[3], now), Err(close), "{}", case.name);
        }
    }
}

#[test]
fn size_limits_close_with_message_too_big() {
    let limits = ConnectionLimits {
        protocol: ProtocolLimits {
            max_frame_bytes: 64,
            max_awareness_bytes: 16,
            max_awareness_states: 2,
        },
        ..ConnectionLimits::default()
    };
    let now = Instant::now();

    let big = sync_update(&[0u8; 100]);
    let close = Connection::new(Role::ReadWrite, limits)
        .receive(&big, now)
        .expect_err("frame too large");
    assert_eq!(close, Close::new(MESSAGE_TOO_BIG, "frame too large"));

    let mut awareness = vec![1, 20];
    awareness.extend([0u8; 20]);
    let close = Connection::new(Role::ReadWrite, limits)
        .receive(&awareness, now)
        .expect_err("awareness too large");
    assert_eq!(
        close,
        Close::new(MESSAGE_TOO_BIG, "awareness update too large")
    );

    // Three states: 1, 1, "1" each.
    let many = [1, 13, 3, 1, 1, 1, b'1', 2, 1, 1, b'1', 3, 1, 1, b'1'];
    let close = Connection::new(Role::ReadWrite, limits)
        .receive(&many, now)
        .expect_err("too many states");
    assert_eq!(
        close,
        Close::new(MESSAGE_TOO_BIG, "too many awareness states")
    );
}

#[test]
fn protocol_errors_are_typed() {
    let limits = ProtocolLimits::default();
    assert_eq!(
        Message::decode(&[9], &limits),
        Err(ProtocolError::UnknownMessageType(9))
    );
    assert_eq!(
        Message::decode(&[0, 7], &limits),
        Err(ProtocolError::UnknownSyncType(7))
    );
    assert_eq!(
        Message::decode(&[3, 1, 2], &limits),
        Err(ProtocolError::TrailingBytes { count: 2 })
    );
    assert_eq!(
        Message::decode(&[0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f], &limits),
        Err(ProtocolError::LengthPastEnd {
            declared: u64::from(u32::MAX),
            remaining: 0
        })
    );
}
