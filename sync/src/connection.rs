//! The per-connection state machine, sans I/O.
//!
//! A [`Connection`] turns the frames one client sends into [`Action`]s for the I/O layer (the
//! room and the socket), or into a [`Close`]. It owns no socket, no document and no clock: the
//! caller passes every frame and the current [`Instant`] in, and performs the actions.
//!
//! ```text
//! on connect     handshake(doc)        → Send(step 1 of the document), SendAwarenessStates
//! step 1         receive(frame, now)   → SendStep2 { state_vector }   (reply: step2_frame(doc, sv))
//! step 2, update receive(frame, now)   → ApplyUpdate(update)          (read-write role)
//!                                      → Send(auth: permission denied) (read-only role)
//!                                      → nothing                       (empty update)
//! awareness      receive(frame, now)   → ApplyAwareness(update), then awareness_applied(change)
//! query awareness receive(frame, now)  → SendAwarenessStates
//! auth           receive(frame, now)   → Close 1008 (only the server sends auth messages)
//! ```
//!
//! **Read-only writes are refused, not closed.** A read-only client's non-empty step 2 or
//! update is answered with an auth message (type 2, permission denied, [`READ_ONLY_REASON`])
//! and never reaches the document; the connection stays open and keeps receiving, as with
//! y-websocket's `readOnly` connections. A stock client that edits locally will send such
//! frames (its step 2 also always carries its whole delete set), and closing would only make it
//! reconnect and try again. A read-only client's refused writes still count against the update
//! rate limit, so a flood of them closes the connection like any other. Awareness stays open to
//! read-only clients: viewers show up as present.
//!
//! **Limits.** Frames over the size limit close with 1009 and malformed frames with 1002 (see
//! [`crate::ProtocolError`]); step 2 and update frames, awareness frames, and requests (step 1
//! and query awareness, each of which makes the server encode a whole diff or state table) have
//! a token bucket each, and an empty bucket closes with 4029. The kind of a frame is read
//! before its payload is validated, so a flood is refused before it costs validation.
//!
//! **Ends the I/O layer decides.** Lost access ([`Connection::revoke`], 4003) and a token that
//! expired or a session that signed out ([`Connection::unauthenticate`], 4001) are each an auth
//! message with the reason, then the close.
//!
//! After a close, the connection stays closed: every later frame gets the same [`Close`].

use std::time::Instant;

use yrs::{ReadTxn, StateVector, Transact};

use crate::awareness::{AwarenessChange, AwarenessUpdate, IntroducedClients};
use crate::close::{Close, ACCESS_REVOKED, POLICY_VIOLATION, RATE_LIMITED, UNAUTHENTICATED};
use crate::protocol::{
    encode_permission_denied, encode_sync_step1, encode_sync_step2, EncodedStateVector,
    EncodedUpdate, Message, MessageKind, ProtocolLimits, SyncMessage,
};

/// The reason sent with the auth message that refuses a read-only client's write.
pub const READ_ONLY_REASON: &str = "read-only access: this change was not saved";

/// What a connection may do to the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives everything; its writes are refused.
    ReadOnly,
    /// Receives everything and writes.
    ReadWrite,
}

impl Role {
    /// Whether this role may change the document.
    pub fn can_write(self) -> bool {
        matches!(self, Self::ReadWrite)
    }
}

/// A token bucket's shape: `per_second` tokens a second, at most `burst` saved up. Each frame
/// takes one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained frames per second.
    pub per_second: f64,
    /// Frames that may arrive at once after a quiet period (at least 1).
    pub burst: f64,
}

impl RateLimit {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_second: f64::INFINITY,
        burst: f64::INFINITY,
    };

    /// `per_second` frames a second with bursts of `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

/// The limits one connection enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// Frame and payload sizes.
    pub protocol: ProtocolLimits,
    /// Sync step 2 and update frames (a stock client sends one per local transaction).
    pub updates: RateLimit,
    /// Awareness frames (a stock client sends one per cursor move, plus a renewal every 15 s).
    pub awareness: RateLimit,
    /// Step 1 and query-awareness frames (a stock client sends one step 1 per connection).
    pub requests: RateLimit,
    /// How many awareness client ids one connection may bring into the room (a stock client
    /// has exactly one).
    pub max_awareness_clients: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            protocol: ProtocolLimits::default(),
            updates: RateLimit::new(50.0, 250.0),
            awareness: RateLimit::new(30.0, 120.0),
            requests: RateLimit::new(2.0, 10.0),
            max_awareness_clients: 8,
        }
    }
}

#[derive(Debug, Clone)]
struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: limit.burst.max(1.0),
            last: None,
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens =
                (self.tokens + elapsed * self.limit.per_second).min(self.limit.burst.max(1.0));
        }
        // A clock that goes backwards must not add tokens later.
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Something the I/O layer must do for a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this frame to this client.
    Send(Vec<u8>),
    /// The client sent step 1: send it [`step2_frame`]`(doc, &state_vector)`, what it lacks.
    SendStep2 {
        /// The client's state vector.
        state_vector: StateVector,
    },
    /// A validated, non-empty update from a writer. The room appends it to the durable log,
    /// and only once that commit succeeded applies it and broadcasts it to the other
    /// connections as [`crate::protocol::encode_sync_update`] (ARCHITECTURE §4).
    ApplyUpdate(EncodedUpdate),
    /// A validated awareness update. The room applies it to its
    /// [`crate::awareness::AwarenessStates`], broadcasts `change.applied`, and passes the
    /// change back to [`Connection::awareness_applied`].
    ApplyAwareness(AwarenessUpdate),
    /// Send this client every current awareness state
    /// ([`crate::awareness::AwarenessStates::encode_all`]), if there is any.
    SendAwarenessStates,
}

/// Read access to a document, enough to answer a sync handshake.
pub trait DocumentView {
    /// The document's state vector.
    fn state_vector(&self) -> StateVector;
    /// A v1 update with everything the document holds that `state_vector` lacks.
    fn diff_since(&self, state_vector: &StateVector) -> Vec<u8>;
}

impl DocumentView for yrs::Doc {
    fn state_vector(&self) -> StateVector {
        self.transact().state_vector()
    }

    fn diff_since(&self, state_vector: &StateVector) -> Vec<u8> {
        // Unlike `encode_diff_v1`, this includes updates still waiting for their
        // dependencies, so a peer that has those dependencies can integrate them.
        self.transact().encode_state_as_update_v1(state_vector)
    }
}

impl<T: DocumentView + ?Sized> DocumentView for &T {
    fn state_vector(&self) -> StateVector {
        (**self).state_vector()
    }

    fn diff_since(&self, state_vector: &StateVector) -> Vec<u8> {
        (**self).diff_since(state_vector)
    }
}

/// The step 1 frame of `doc`: its state vector.
pub fn step1_frame(doc: &impl DocumentView) -> Vec<u8> {
    encode_sync_step1(EncodedStateVector::new(doc.state_vector()).bytes())
}

/// The step 2 frame answering `state_vector`: what `doc` holds that it lacks.
pub fn step2_frame(doc: &impl DocumentView, state_vector: &StateVector) -> Vec<u8> {
    encode_sync_step2(&doc.diff_since(state_vector))
}

/// Counters of one connection, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Frames received.
    pub frames: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Updates handed to the room to apply.
    pub updates_applied: u64,
    /// Writes refused because the role is read-only.
    pub writes_refused: u64,
    /// Awareness updates handed to the room.
    pub awareness_updates: u64,
}

/// One client's connection to one document.
#[derive(Debug, Clone)]
pub struct Connection {
    role: Role,
    limits: ConnectionLimits,
    updates: TokenBucket,
    awareness: TokenBucket,
    requests: TokenBucket,
    introduced: IntroducedClients,
    stats: ConnectionStats,
    closed: Option<Close>,
}

impl Connection {
    /// A connection with `role`, enforcing `limits`.
    pub fn new(role: Role, limits: ConnectionLimits) -> Self {
        Self {
            role,
            updates: TokenBucket::new(limits.updates),
            awareness: TokenBucket::new(limits.awareness),
            requests: TokenBucket::new(limits.requests),
            limits,
            introduced: IntroducedClients::new(),
            stats: ConnectionStats::default(),
            closed: None,
        }
    }

    /// What the server sends first: its step 1, then every current awareness state.
    pub fn handshake(&self, doc: &impl DocumentView) -> Vec<Action> {
        vec![Action::Send(step1_frame(doc)), Action::SendAwarenessStates]
    }

    /// Handles one binary frame from the client.
    pub fn receive(&mut self, frame: &[u8], now: Instant) -> Result<Vec<Action>, Close> {
        if let Some(close) = &self.closed {
            return Err(close.clone());
        }
        self.stats.frames += 1;
        self.stats.bytes += frame.len() as u64;
        let result = self.handle(frame, now);
        if let Err(close) = &result {
            self.closed = Some(close.clone());
        }
        result
    }

    fn handle(&mut self, frame: &[u8], now: Instant) -> Result<Vec<Action>, Close> {
        let max = self.limits.protocol.max_frame_bytes;
        if frame.len() > max {
            return Err(Close::from(crate::ProtocolError::FrameTooLarge {
                len: frame.len(),
                max,
            }));
        }
        let kind = MessageKind::peek(frame)?;
        let (bucket, what) = match kind {
            MessageKind::SyncStep2 | MessageKind::SyncUpdate => (&mut self.updates, "updates"),
            MessageKind::Awareness => (&mut self.awareness, "awareness updates"),
            MessageKind::SyncStep1 | MessageKind::QueryAwareness => {
                (&mut self.requests, "sync requests")
            }
            MessageKind::Auth => {
                return Err(Close::new(
                    POLICY_VIOLATION,
                    "auth messages are sent by the server only",
                ))
            }
        };
        if !bucket.try_take(now) {
            return Err(Close::new(
                RATE_LIMITED,
                format!("rate limited: too many {what} per second"),
            ));
        }
        match Message::decode(frame, &self.limits.protocol)? {
            Message::Sync(SyncMessage::Step1(state_vector)) => Ok(vec![Action::SendStep2 {
                state_vector: state_vector.into_state_vector(),
            }]),
            Message::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update)) => {
                if update.is_empty() {
                    Ok(Vec::new())
                } else if self.role.can_write() {
                    self.stats.updates_applied += 1;
                    Ok(vec![Action::ApplyUpdate(update)])
                } else {
                    self.stats.writes_refused += 1;
                    Ok(vec![Action::Send(encode_permission_denied(
                        READ_ONLY_REASON,
                    ))])
                }
            }
            Message::Awareness(update) => {
                self.stats.awareness_updates += 1;
                Ok(vec![Action::ApplyAwareness(update)])
            }
            Message::QueryAwareness => Ok(vec![Action::SendAwarenessStates]),
            // Refused above, before decoding.
            Message::Auth(_) => Err(Close::new(
                POLICY_VIOLATION,
                "auth messages are sent by the server only",
            )),
        }
    }

    /// Records what one of this connection's awareness updates changed in the room. Closes
    /// with 1008 when the connection has brought more client ids than allowed into the room
    /// (the room then removes all of them, see [`Self::introduced`]).
    pub fn awareness_applied(&mut self, change: &AwarenessChange) -> Result<(), Close> {
        self.introduced.record(change);
        if self.introduced.len() > self.limits.max_awareness_clients {
            let close = Close::new(POLICY_VIOLATION, "too many awareness clients");
            self.closed = Some(close.clone());
            return Err(close);
        }
        Ok(())
    }

    /// The awareness client ids this connection brought into the room: remove them
    /// ([`crate::awareness::AwarenessStates::remove`]) and broadcast the removal when it
    /// closes.
    pub fn introduced(&self) -> &IntroducedClients {
        &self.introduced
    }

    /// Mutable access, e.g. to [`IntroducedClients::forget`] an id another connection took.
    pub fn introduced_mut(&mut self) -> &mut IntroducedClients {
        &mut self.introduced
    }

    /// The access was revoked: the frame to send (an auth message with `reason`), then the
    /// close (4003). The connection is closed from now on.
    pub fn revoke(&mut self, reason: &str) -> (Vec<u8>, Close) {
        let close = Close::new(ACCESS_REVOKED, reason);
        self.closed = Some(close.clone());
        (encode_permission_denied(reason), close)
    }

    /// The caller's token expired or its session signed out: the frame to send (an auth
    /// message with `reason`), then the close (4001). The connection is closed from now on.
    pub fn unauthenticate(&mut self, reason: &str) -> (Vec<u8>, Close) {
        let close = Close::new(UNAUTHENTICATED, reason);
        self.closed = Some(close.clone());
        (encode_permission_denied(reason), close)
    }

    /// Closes the connection for a reason of the I/O layer's (slow client, shutdown, …), so
    /// that later frames are refused with the same close.
    pub fn close(&mut self, close: Close) {
        self.closed.get_or_insert(close);
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Changes the role of a live connection (e.g. a member demoted to viewer).
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    /// The limits.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The counters.
    pub fn stats(&self) -> ConnectionStats {
        self.stats
    }

    /// The close this connection ended with, if it did.
    pub fn closed(&self) -> Option<&Close> {
        self.closed.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::new(10.0, 3.0));
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
        // Time going backwards adds nothing.
        assert!(!bucket.try_take(start));
    }

    #[test]
    fn unlimited_never_runs_dry() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::UNLIMITED);
        assert!((0..10_000).all(|_| bucket.try_take(now)));
    }
}
