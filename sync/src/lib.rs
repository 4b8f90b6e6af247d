//! CRDT sync core for Potentia, without I/O: the y-websocket protocol as the stock
//! `WebsocketProvider` speaks it (ARCHITECTURE §3), and the per-connection state machine that
//! the WebSocket endpoint and the rooms drive.
//!
//! Nothing here opens a socket, spawns a task or reads a clock: callers pass frames and
//! [`std::time::Instant`]s in and perform the [`Action`]s that come out, which keeps every rule
//! testable with plain values and a plain [`yrs::Doc`].
//!
//! * [`protocol`]: one binary frame ↔ one [`Message`] (sync step 1 / step 2 / update,
//!   awareness, auth, query awareness), strictly decoded.
//! * [`validate`]: v1 updates and state vectors checked, without applying them, so that a
//!   relayed update means the same to yrs and to every Yjs client.
//! * [`awareness`]: awareness payloads, a room's table of states, the ids a connection brought.
//! * [`connection`]: [`Connection`], roles, rate limits, the handshake and the actions.
//! * [`close`]: the WebSocket close codes the crate uses, and [`Close`].
//! * [`error`]: [`ProtocolError`], why a frame was refused.
//! * [`wire`]: lib0 varints, byte arrays and strings.

pub mod awareness;
pub mod close;
pub mod connection;
pub mod error;
pub mod protocol;
pub mod validate;
pub mod wire;

pub use awareness::{
    AwarenessChange, AwarenessEntry, AwarenessStates, AwarenessUpdate, IntroducedClients,
};
pub use close::Close;
pub use connection::{
    step1_frame, step2_frame, Action, Connection, ConnectionLimits, ConnectionStats, DocumentView,
    RateLimit, Role, READ_ONLY_REASON,
};
pub use error::ProtocolError;
pub use protocol::{
    AuthMessage, EncodedStateVector, EncodedUpdate, Message, MessageKind, ProtocolLimits,
    SyncMessage,
};
pub use validate::UpdateSummary;
