//! The codec's error: why a frame was refused, with a stable reason for a WebSocket close frame.

use crate::close::{MESSAGE_TOO_BIG, PROTOCOL_ERROR};

/// Why a frame could not be decoded. Decoding never panics; every malformed input ends here.
///
/// [`reason`](Self::reason) is a short stable phrase (at most 123 bytes, the room a WebSocket
/// close frame has) that clients and tests may match on; `Display` adds the details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame with no bytes at all.
    #[error("empty frame")]
    EmptyFrame,
    /// The whole frame is larger than the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    /// The frame ends in the middle of a varint.
    #[error("truncated varint")]
    TruncatedVarint,
    /// A varint that is overlong (non-canonical), wider than 64 bits or out of range for its
    /// field (a client id above 2^53 − 1, a clock above 2^32 − 1).
    #[error("malformed varint")]
    MalformedVarint,
    /// The frame ends where a fixed-size field should be.
    #[error("truncated frame")]
    Truncated,
    /// A declared length or count runs past the end of the frame.
    #[error("declared length {declared} runs past the {remaining} bytes left")]
    LengthPastEnd { declared: u64, remaining: usize },
    /// Bytes left over after a complete message.
    #[error("{count} trailing bytes after the message")]
    TrailingBytes { count: usize },
    /// A top-level message type this server does not know.
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    /// A sync sub-type other than step 1, step 2 and update.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// An auth sub-type other than permission denied.
    #[error("unknown auth message type {0}")]
    UnknownAuthType(u64),
    /// A string that is not UTF-8.
    #[error("invalid utf-8")]
    InvalidUtf8,
    /// An awareness payload larger than the configured limit.
    #[error("awareness update of {len} bytes exceeds the limit of {max} bytes")]
    AwarenessTooLarge { len: usize, max: usize },
    /// An awareness payload with more client states than the configured limit.
    #[error("awareness update with {count} states exceeds the limit of {max}")]
    TooManyAwarenessStates { count: usize, max: usize },
    /// A sync step 1 payload that is not a v1 state vector.
    #[error("invalid state vector: {detail}")]
    InvalidStateVector { detail: String },
    /// A sync step 2 or update payload that is not a v1 update both Yjs and yrs can decode.
    #[error("invalid update: {detail}")]
    InvalidUpdate { detail: String },
    /// An awareness payload that is not a valid awareness update.
    #[error("invalid awareness update: {detail}")]
    InvalidAwareness { detail: String },
}

impl ProtocolError {
    /// A stable reason phrase for the WebSocket close frame (at most 123 bytes).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EmptyFrame => "empty frame",
            Self::FrameTooLarge { .. } => "frame too large",
            Self::TruncatedVarint => "truncated varint",
            Self::MalformedVarint => "malformed varint",
            Self::Truncated => "truncated frame",
            Self::LengthPastEnd { .. } => "length past end of frame",
            Self::TrailingBytes { .. } => "trailing bytes after message",
            Self::UnknownMessageType(_) => "unknown message type",
            Self::UnknownSyncType(_) => "unknown sync message type",
            Self::UnknownAuthType(_) => "unknown auth message type",
            Self::InvalidUtf8 => "invalid utf-8",
            Self::AwarenessTooLarge { .. } => "awareness update too large",
            Self::TooManyAwarenessStates { .. } => "too many awareness states",
            Self::InvalidStateVector { .. } => "invalid state vector",
            Self::InvalidUpdate { .. } => "invalid update",
            Self::InvalidAwareness { .. } => "invalid awareness update",
        }
    }

    /// The WebSocket close code for this error: 1009 (message too big) for size limits, 1002
    /// (protocol error) for everything else.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge { .. }
            | Self::AwarenessTooLarge { .. }
            | Self::TooManyAwarenessStates { .. } => MESSAGE_TOO_BIG,
            _ => PROTOCOL_ERROR,
        }
    }

    pub(crate) fn invalid_update(inner: impl std::fmt::Display) -> Self {
        Self::InvalidUpdate {
            detail: inner.to_string(),
        }
    }

    pub(crate) fn invalid_state_vector(inner: impl std::fmt::Display) -> Self {
        Self::InvalidStateVector {
            detail: inner.to_string(),
        }
    }

    pub(crate) fn invalid_awareness(inner: impl std::fmt::Display) -> Self {
        Self::InvalidAwareness {
            detail: inner.to_string(),
        }
    }
}

/// Why a room, the durable log or the fan-out could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The frame or update was malformed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Postgres failed; nothing was committed by the failing call.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The stored document could not be read back; it is neither served nor overwritten.
    #[error("the stored document could not be loaded: {0}")]
    LoadFailed(String),
    /// The update would make the stored document larger than allowed.
    #[error("the document would exceed its limit of {max} bytes")]
    DocumentTooLarge { max: usize },
    /// The update refers to content the document does not have.
    #[error("the update depends on content the document lacks")]
    MissingDependencies,
    /// The caller may read but not write.
    #[error("read-only access")]
    ReadOnly,
    /// The canvas has as many connections as allowed.
    #[error("too many connections to this canvas (at most {max})")]
    CanvasFull { max: usize },
    /// The user has as many connections as allowed.
    #[error("too many connections for this user (at most {max})")]
    UserConnectionLimit { max: usize },
    /// The room stopped (unloaded, shut down or failed) before answering; try again.
    #[error("the document is unavailable: {0}")]
    Unavailable(String),
    /// An HTTP client claimed an awareness client id another connection or user holds.
    #[error("awareness client {client_id} belongs to another connection")]
    PresenceConflict { client_id: u64 },
    /// No block with that id in the canvas.
    #[error("no such block")]
    UnknownBlock,
    /// The write carried a version the block no longer has; `current` is the block as it is.
    #[error("the block changed since version {expected}; it is at version {}", current.version)]
    StaleVersion {
        expected: i64,
        current: Box<crate::blocks::BlockRecord>,
    },
    /// A block write the document refused (unknown anchor, a move under itself, …).
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// Markdown over a limit.
    #[error(transparent)]
    Markdown(crate::markdown::MarkdownError),
    /// An append with no updates, or more than a sequence number can count.
    #[error("an append needs between 1 and 2^63 updates")]
    BatchTooLarge,
}
