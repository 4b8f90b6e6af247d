//! WebSocket close codes and the [`Close`] a connection ends with.
//!
//! Standard codes (RFC 6455 §7.4.1) where one fits; application codes in the 4000–4999 range
//! follow one rule, `4000 + the HTTP status of the same meaning`, so that they read like the
//! REST API's answers:
//!
//! | code | name | when |
//! |---|---|---|
//! | 1001 | [`GOING_AWAY`] | the server shuts down or unloads the room (the I/O layer sends it) |
//! | 1002 | [`PROTOCOL_ERROR`] | a malformed frame: bad varint, unknown type, length past the end, trailing bytes, an update or state vector that does not decode |
//! | 1003 | [`UNSUPPORTED_DATA`] | a text frame (the protocol is binary only; the I/O layer sends it) |
//! | 1008 | [`POLICY_VIOLATION`] | the client sent an auth message (only the server may), or its awareness introduced more client ids than allowed |
//! | 1009 | [`MESSAGE_TOO_BIG`] | a frame, or an awareness payload, over its configured limit |
//! | 1011 | [`INTERNAL_ERROR`] | the server failed (e.g. the document could not be loaded or persisted) |
//! | 4001 | [`UNAUTHENTICATED`] | the access token expired, or its session signed out, while connected (sent after an auth message with the reason): reconnect with a fresh token |
//! | 4003 | [`ACCESS_REVOKED`] | the caller lost access to the canvas while connected (sent after an auth message with the reason) |
//! | 4008 | [`SLOW_CLIENT`] | the client does not read fast enough (its send queue is full) or stopped answering pings |
//! | 4013 | [`DOCUMENT_TOO_LARGE`] | applying the client's update would grow the document past its limit |
//! | 4029 | [`RATE_LIMITED`] | more updates, awareness updates or sync requests per second than allowed |
//!
//! A read-only client's write is *not* a close: it is refused with an auth message and the
//! connection stays open (see [`crate::connection`]).

use std::fmt;

/// The server is going away (shutdown, room unloaded).
pub const GOING_AWAY: u16 = 1001;
/// A malformed frame.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame on a binary protocol.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A well-formed message this client may not send.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame or payload over its size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server failed.
pub const INTERNAL_ERROR: u16 = 1011;
/// The access token expired, or its session signed out, while connected (HTTP 401).
pub const UNAUTHENTICATED: u16 = 4001;
/// Access to the canvas was revoked while connected (HTTP 403).
pub const ACCESS_REVOKED: u16 = 4003;
/// The client cannot keep up with what the server sends, or stopped answering (HTTP 408).
pub const SLOW_CLIENT: u16 = 4008;
/// The document would grow past its size limit (HTTP 413).
pub const DOCUMENT_TOO_LARGE: u16 = 4013;
/// Too many messages per second (HTTP 429).
pub const RATE_LIMITED: u16 = 4029;

/// The longest reason a close frame can carry: 125 bytes of payload less the 2-byte code.
pub const MAX_REASON_BYTES: usize = 123;

/// How, and why, a connection ends: the I/O layer sends a close frame with this code and
/// reason, then drops the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The WebSocket close code (see the module's table).
    pub code: u16,
    /// A short reason, at most [`MAX_REASON_BYTES`] bytes of UTF-8.
    pub reason: String,
}

impl Close {
    /// A close with `code` and `reason`, the reason cut at a character boundary to fit in a
    /// close frame.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self { code, reason }
    }

    /// The close for a text frame.
    pub fn text_frame() -> Self {
        Self::new(UNSUPPORTED_DATA, "text frames are not supported")
    }

    /// The close for a server shutdown or an unloaded room.
    pub fn going_away() -> Self {
        Self::new(GOING_AWAY, "server going away")
    }

    /// The close for a failure on the server's side; `reason` should not leak internals.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, reason)
    }

    /// The close for a client whose send queue is full or that stopped answering pings.
    pub fn slow_client() -> Self {
        Self::new(SLOW_CLIENT, "client too slow")
    }

    /// The close for an update that would grow the document past its limit.
    pub fn document_too_large() -> Self {
        Self::new(DOCUMENT_TOO_LARGE, "document too large")
    }
}

impl From<&crate::ProtocolError> for Close {
    fn from(error: &crate::ProtocolError) -> Self {
        Self::new(error.close_code(), error.reason())
    }
}

impl From<crate::ProtocolError> for Close {
    fn from(error: crate::ProtocolError) -> Self {
        Self::from(&error)
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "close {}: {}", self.code, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_to_a_close_frame_at_a_char_boundary() {
        let close = Close::new(PROTOCOL_ERROR, "é".repeat(100));
        assert!(close.reason.len() <= MAX_REASON_BYTES);
        assert_eq!(close.reason.len(), 122);
        assert_eq!(Close::new(1000, "ok").reason, "ok");
    }
}
