//! The y-websocket wire codec: one WebSocket binary frame ↔ one typed [`Message`].
//!
//! ```text
//! frame          = varuint(type) body
//! type 0 sync    : varuint(0 step 1) varbytes(state vector)
//!                | varuint(1 step 2) varbytes(v1 update)
//!                | varuint(2 update) varbytes(v1 update)
//! type 1 awareness       : varbytes(awareness update)
//! type 2 auth            : varuint(0 permission denied) varstring(reason)
//! type 3 query awareness : (nothing)
//! ```
//!
//! `varbytes` is a varint length then that many bytes. Decoding is strict: a frame must hold
//! exactly one message and nothing after it; varints must be canonical; lengths must fit in
//! the frame; payloads are validated (updates decode for Yjs and yrs, state vectors decode,
//! awareness states are JSON) but never applied. Decoded messages keep the payload bytes they
//! were sent with, so encoding a decoded message gives back the very same frame.

use yrs::updates::encoder::Encode;
use yrs::StateVector;

use crate::awareness::AwarenessUpdate;
use crate::error::ProtocolError;
use crate::validate::{decode_state_vector_v1, validate_update_v1, UpdateSummary};
use crate::wire::{write_var_bytes, write_var_string, write_var_u64, Reader};

/// Message type: document sync.
pub const MESSAGE_SYNC: u64 = 0;
/// Message type: awareness (presence) update.
pub const MESSAGE_AWARENESS: u64 = 1;
/// Message type: auth.
pub const MESSAGE_AUTH: u64 = 2;
/// Message type: a request for every current awareness state.
pub const MESSAGE_QUERY_AWARENESS: u64 = 3;
/// Sync sub-type: step 1, the sender's state vector.
pub const SYNC_STEP1: u64 = 0;
/// Sync sub-type: step 2, what the receiver of a step 1 lacks.
pub const SYNC_STEP2: u64 = 1;
/// Sync sub-type: an incremental update.
pub const SYNC_UPDATE: u64 = 2;
/// Auth sub-type: permission denied, with a reason.
pub const AUTH_PERMISSION_DENIED: u64 = 0;

/// Size limits the decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolLimits {
    /// Largest frame, in bytes (a step 2 carrying a whole offline document must fit).
    pub max_frame_bytes: usize,
    /// Largest awareness payload, in bytes.
    pub max_awareness_bytes: usize,
    /// Most client states in one awareness payload (stock clients echo every state they learn,
    /// so a joining client's first awareness message can list the whole room).
    pub max_awareness_states: usize,
}

impl Default for ProtocolLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 8 * 1024 * 1024,
            max_awareness_bytes: 256 * 1024,
            max_awareness_states: 1024,
        }
    }
}

/// One y-websocket message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 0: document sync.
    Sync(SyncMessage),
    /// Type 1: an awareness update.
    Awareness(AwarenessUpdate),
    /// Type 2: auth.
    Auth(AuthMessage),
    /// Type 3: a request for every current awareness state.
    QueryAwareness,
}

/// The sub-types of a sync message.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncMessage {
    /// Step 1: the sender's state vector; the receiver answers with step 2.
    Step1(EncodedStateVector),
    /// Step 2: the update the receiver of a step 1 lacked.
    Step2(EncodedUpdate),
    /// An incremental update.
    Update(EncodedUpdate),
}

/// The sub-types of an auth message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMessage {
    /// The server refused something; the stock client logs the reason.
    PermissionDenied {
        /// Why.
        reason: String,
    },
}

/// What kind of message a frame holds, read from its first one or two varints only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Sync step 1.
    SyncStep1,
    /// Sync step 2.
    SyncStep2,
    /// Sync update.
    SyncUpdate,
    /// Awareness update.
    Awareness,
    /// Auth.
    Auth,
    /// Query awareness.
    QueryAwareness,
}

impl MessageKind {
    /// Reads the kind of `frame` without decoding its payload (cheap: for rate limiting before
    /// the costly validation). Errors for an empty frame or an unknown type or sub-type.
    pub fn peek(frame: &[u8]) -> Result<Self, ProtocolError> {
        if frame.is_empty() {
            return Err(ProtocolError::EmptyFrame);
        }
        let mut reader = Reader::new(frame);
        Ok(match reader.read_var_u64()? {
            MESSAGE_SYNC => match reader.read_var_u64()? {
                SYNC_STEP1 => Self::SyncStep1,
                SYNC_STEP2 => Self::SyncStep2,
                SYNC_UPDATE => Self::SyncUpdate,
                other => return Err(ProtocolError::UnknownSyncType(other)),
            },
            MESSAGE_AWARENESS => Self::Awareness,
            MESSAGE_AUTH => Self::Auth,
            MESSAGE_QUERY_AWARENESS => Self::QueryAwareness,
            other => return Err(ProtocolError::UnknownMessageType(other)),
        })
    }
}

impl Message {
    /// Decodes one frame. Never panics; every malformed frame is a [`ProtocolError`].
    pub fn decode(frame: &[u8], limits: &ProtocolLimits) -> Result<Self, ProtocolError> {
        if frame.len() > limits.max_frame_bytes {
            return Err(ProtocolError::FrameTooLarge {
                len: frame.len(),
                max: limits.max_frame_bytes,
            });
        }
        let kind = MessageKind::peek(frame)?;
        let mut reader = Reader::new(frame);
        // Skip the type (and sub-type) varints `peek` has already read.
        reader.read_var_u64()?;
        if matches!(
            kind,
            MessageKind::SyncStep1 | MessageKind::SyncStep2 | MessageKind::SyncUpdate
        ) {
            reader.read_var_u64()?;
        }
        // Read the envelope to its end before the costlier payload validation.
        let message = match kind {
            MessageKind::SyncStep1 => {
                let payload = reader.read_var_bytes()?;
                reader.finish()?;
                Self::Sync(SyncMessage::Step1(EncodedStateVector::decode(payload)?))
            }
            MessageKind::SyncStep2 | MessageKind::SyncUpdate => {
                let payload = reader.read_var_bytes()?;
                reader.finish()?;
                let update = EncodedUpdate::decode(payload)?;
                Self::Sync(if kind == MessageKind::SyncStep2 {
                    SyncMessage::Step2(update)
                } else {
                    SyncMessage::Update(update)
                })
            }
            MessageKind::Awareness => {
                let payload = reader.read_var_bytes()?;
                reader.finish()?;
                Self::Awareness(AwarenessUpdate::decode(payload, limits)?)
            }
            MessageKind::Auth => match reader.read_var_u64()? {
                AUTH_PERMISSION_DENIED => {
                    let reason = reader.read_var_string()?.to_owned();
                    reader.finish()?;
                    Self::Auth(AuthMessage::PermissionDenied { reason })
                }
                other => return Err(ProtocolError::UnknownAuthType(other)),
            },
            MessageKind::QueryAwareness => {
                reader.finish()?;
                Self::QueryAwareness
            }
        };
        Ok(message)
    }

    /// The kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Sync(SyncMessage::Step1(_)) => MessageKind::SyncStep1,
            Self::Sync(SyncMessage::Step2(_)) => MessageKind::SyncStep2,
            Self::Sync(SyncMessage::Update(_)) => MessageKind::SyncUpdate,
            Self::Awareness(_) => MessageKind::Awareness,
            Self::Auth(_) => MessageKind::Auth,
            Self::QueryAwareness => MessageKind::QueryAwareness,
        }
    }

    /// Encodes this message as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Sync(SyncMessage::Step1(sv)) => encode_sync_step1(sv.bytes()),
            Self::Sync(SyncMessage::Step2(update)) => encode_sync_step2(update.bytes()),
            Self::Sync(SyncMessage::Update(update)) => encode_sync_update(update.bytes()),
            Self::Awareness(update) => encode_awareness(update.bytes()),
            Self::Auth(AuthMessage::PermissionDenied { reason }) => {
                encode_permission_denied(reason)
            }
            Self::QueryAwareness => encode_query_awareness(),
        }
    }
}

fn sync_frame(sub_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    write_var_u64(&mut out, MESSAGE_SYNC);
    write_var_u64(&mut out, sub_type);
    write_var_bytes(&mut out, payload);
    out
}

/// A sync step 1 frame around an encoded v1 state vector.
pub fn encode_sync_step1(state_vector: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_STEP1, state_vector)
}

/// A sync step 2 frame around an encoded v1 update.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_STEP2, update)
}

/// A sync update frame around an encoded v1 update (what the room broadcasts).
pub fn encode_sync_update(update: &[u8]) -> Vec<u8> {
    sync_frame(SYNC_UPDATE, update)
}

/// An awareness frame around an encoded awareness update.
pub fn encode_awareness(awareness_update: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(awareness_update.len() + 6);
    write_var_u64(&mut out, MESSAGE_AWARENESS);
    write_var_bytes(&mut out, awareness_update);
    out
}

/// An auth frame: permission denied, with `reason`.
pub fn encode_permission_denied(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(reason.len() + 4);
    write_var_u64(&mut out, MESSAGE_AUTH);
    write_var_u64(&mut out, AUTH_PERMISSION_DENIED);
    write_var_string(&mut out, reason);
    out
}

/// A query awareness frame.
pub fn encode_query_awareness() -> Vec<u8> {
    let mut out = Vec::with_capacity(1);
    write_var_u64(&mut out, MESSAGE_QUERY_AWARENESS);
    out
}

/// A validated v1 state vector, with the bytes it was sent as.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedStateVector {
    bytes: Vec<u8>,
    state_vector: StateVector,
}

impl EncodedStateVector {
    /// Validates and decodes `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let state_vector = decode_state_vector_v1(bytes)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            state_vector,
        })
    }

    /// Encodes `state_vector` (e.g. the server's own, for its step 1).
    pub fn new(state_vector: StateVector) -> Self {
        Self {
            bytes: state_vector.encode_v1(),
            state_vector,
        }
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The decoded state vector.
    pub fn state_vector(&self) -> &StateVector {
        &self.state_vector
    }

    /// The decoded state vector, by value.
    pub fn into_state_vector(self) -> StateVector {
        self.state_vector
    }
}

/// A validated v1 update: Yjs and yrs both decode it. Not applied to anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUpdate {
    bytes: Vec<u8>,
    summary: UpdateSummary,
}

impl EncodedUpdate {
    /// Validates `bytes` (see [`crate::validate`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let summary = validate_update_v1(bytes)?;
        Ok(Self {
            bytes: bytes.to_vec(),
            summary,
        })
    }

    /// The update's bytes, as the client sent them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The update's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// What the update contains.
    pub fn summary(&self) -> UpdateSummary {
        self.summary
    }

    /// Whether the update changes nothing (no structs, no deletions).
    pub fn is_empty(&self) -> bool {
        self.summary.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::awareness::AwarenessEntry;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, ReadTxn, Text, Transact};

    fn limits() -> ProtocolLimits {
        ProtocolLimits::default()
    }

    fn round_trip(message: Message) {
        let frame = message.encode();
        let decoded = Message::decode(&frame, &limits()).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.encode(), frame);
        assert_eq!(MessageKind::peek(&frame), Ok(message.kind()));
    }

    fn some_update() -> Vec<u8> {
        let doc = Doc::with_client_id(3);
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "héllo");
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        update
    }

    #[test]
    fn sync_step1_round_trips() {
        let doc = Doc::with_client_id(3);
        let update = some_update();
        doc.transact_mut()
            .apply_update(yrs::Update::decode_v1(&update).expect("decodes"))
            .expect("applies");
        let sv = doc.transact().state_vector();
        round_trip(Message::Sync(SyncMessage::Step1(EncodedStateVector::new(
            sv,
        ))));
        round_trip(Message::Sync(SyncMessage::Step1(EncodedStateVector::new(
            StateVector::default(),
        ))));
    }

    #[test]
    fn sync_step2_and_update_round_trip() {
        let update = EncodedUpdate::decode(&some_update()).expect("valid");
        assert!(!update.is_empty());
        round_trip(Message::Sync(SyncMessage::Step2(update.clone())));
        round_trip(Message::Sync(SyncMessage::Update(update)));
        let empty = EncodedUpdate::decode(&[0, 0]).expect("valid");
        assert!(empty.is_empty());
        round_trip(Message::Sync(SyncMessage::Step2(empty)));
    }

    #[test]
    fn awareness_round_trips() {
        let update = AwarenessUpdate::from_entries(vec![
            AwarenessEntry::new(1, 4, Some(r#"{"user":{"name":"Ada"}}"#)).expect("json"),
            AwarenessEntry::new(2, 9, None).expect("json"),
        ]);
        round_trip(Message::Awareness(update));
        round_trip(Message::Awareness(AwarenessUpdate::from_entries(vec![])));
    }

    #[test]
    fn auth_and_query_awareness_round_trip() {
        round_trip(Message::Auth(AuthMessage::PermissionDenied {
            reason: "read-only ✋".into(),
        }));
        round_trip(Message::Auth(AuthMessage::PermissionDenied {
            reason: String::new(),
        }));
        round_trip(Message::QueryAwareness);
        assert_eq!(encode_query_awareness(), [3]);
    }

    #[test]
    fn frame_size_limit_is_message_too_big() {
        let tight = ProtocolLimits {
            max_frame_bytes: 8,
            ..limits()
        };
        let frame = encode_permission_denied("far too long a reason");
        let error = Message::decode(&frame, &tight).expect_err("too big");
        assert!(matches!(error, ProtocolError::FrameTooLarge { .. }));
        assert_eq!(error.close_code(), 1009);
    }
}
