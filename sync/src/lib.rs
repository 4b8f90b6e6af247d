//! CRDT sync core for Potentia, without I/O: the y-websocket protocol as the stock
//! `WebsocketProvider` speaks it (ARCHITECTURE §3), and the per-connection state machine that
//! the WebSocket endpoint and the rooms drive.
//!
//! The protocol layer opens no socket, spawns no task and reads no clock: callers pass frames
//! and [`std::time::Instant`]s in and perform the [`Action`]s that come out, which keeps every
//! rule testable with plain values and a plain [`yrs::Doc`]. The runtime layer on top owns the
//! documents: rooms, the durable log in Postgres and the fan-out over Redis; it takes a pool
//! and a Redis client and knows nothing of HTTP.
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
//! * [`rooms`]: the registry of loaded documents, [`Rooms`] and [`Member`]; [`room`] is the
//!   task that owns one document (group commit, broadcast, catch-up, compaction).
//! * [`store`]: the update log and snapshots in Postgres (ARCHITECTURE §4).
//! * [`fanout`]: committed updates and awareness across nodes over Redis (ARCHITECTURE §6).
//! * [`metrics`]: the Prometheus metrics of the rooms.
//! * [`schema`]: the canvas document typed (ARCHITECTURE §2): blocks and meta read and written
//!   as every client shapes them, positions, moves, subtree deletes, rebalancing.
//! * [`order`]: fractional order keys, generated between neighbours, validated, rebalanced.
//! * [`markdown`]: Markdown export of a canvas and import of Markdown as blocks.

pub mod awareness;
pub mod blocks;
pub mod close;
pub mod connection;
pub mod error;
pub mod fanout;
pub mod markdown;
pub mod materialize;
pub mod metrics;
pub mod order;
pub mod props;
pub mod protocol;
pub mod room;
pub mod rooms;
pub mod schema;
pub mod store;
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
pub use error::{ProtocolError, SyncError};
pub use markdown::{ImportedBlock, MarkdownError};
pub use metrics::SyncMetrics;
pub use order::OrderError;
pub use protocol::{
    AuthMessage, EncodedStateVector, EncodedUpdate, Message, MessageKind, ProtocolLimits,
    SyncMessage,
};
pub use rooms::{AccessPolicy, Kick, Member, MemberEvent, PresenceEntry, Rooms, SyncConfig};
pub use schema::{Block, BlockPatch, CanvasMeta, MetaPatch, NewBlock, Position, SchemaError};
pub use validate::UpdateSummary;
