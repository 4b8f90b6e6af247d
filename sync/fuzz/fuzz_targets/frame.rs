//! Fuzzes the frame decoder and the connection state machine: no input may panic, an accepted
//! frame must re-encode to itself, and a closed connection must stay closed.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use potentia_sync::{Connection, ConnectionLimits, Message, ProtocolLimits, Role};

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = Message::decode(frame, &ProtocolLimits::default()) {
        assert_eq!(message.encode(), frame);
    }
    let now = Instant::now();
    for role in [Role::ReadOnly, Role::ReadWrite] {
        let mut connection = Connection::new(role, ConnectionLimits::default());
        if let Err(close) = connection.receive(frame, now) {
            assert!(close.reason.len() <= 123);
            assert_eq!(connection.receive(frame, now), Err(close));
        }
    }
});
