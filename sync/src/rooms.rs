//! The rooms of one node: at most one live document per loaded canvas, shared by every
//! connection and HTTP request for it.
//!
//! [`Rooms`] is the entry point. [`Rooms::connect`] gives a WebSocket its [`Member`] of the
//! canvas's room (loading the document on first use); the HTTP fallbacks call
//! [`Rooms::state`], [`Rooms::push_update`] and the presence functions. Each room is one task
//! (see [`crate::room`]) that owns the document; everything reaches it through its mailbox,
//! so there is never more than one live document, nor more than one load in flight, per canvas
//! on a node. A room that stops (idle, failed, shut down) leaves the registry first; callers
//! that raced it retry on a fresh room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::value::RawValue;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use yrs::StateVector;

use crate::awareness::{AwarenessEntry, AwarenessUpdate};
use crate::close::Close;
use crate::connection::{ConnectionLimits, Role};
use crate::error::SyncError;
use crate::fanout::{Fanout, RedisFanout, RemoteMessage, RemoteSink};
use crate::metrics::SyncMetrics;
use crate::protocol::EncodedUpdate;
use crate::room::{self, Command, Origin};
use crate::store::AuditNote;

/// How the rooms behave; every limit here is documented in the README.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Per-connection frame sizes and rate limits.
    pub connection: ConnectionLimits,
    /// Largest stored document (snapshot plus log), in bytes; an update past it is refused.
    pub max_document_bytes: usize,
    /// Most WebSocket connections to one canvas on one node.
    pub max_connections_per_canvas: usize,
    /// Most WebSocket connections of one user on one node.
    pub max_connections_per_user: usize,
    /// Frames queued for one connection; a client that falls further behind is disconnected.
    pub send_queue_frames: usize,
    /// Commands queued for one room; senders wait when it is full.
    pub room_mailbox: usize,
    /// Most updates grouped into one commit.
    pub max_batch: usize,
    /// How long an idle room (no connections, no presence) stays loaded.
    pub unload_grace: Duration,
    /// How often the room re-checks its users' access (revocations take effect this fast).
    pub access_recheck: Duration,
    /// Awareness states not renewed for this long are removed.
    pub awareness_timeout: Duration,
    /// With several nodes: how often a room compares its sequence number with Postgres.
    pub catch_up_interval: Duration,
    /// Compact when the log since the snapshot holds this many updates…
    pub compact_after_updates: usize,
    /// …or this many bytes.
    pub compact_after_bytes: usize,
    /// How often a room does its housekeeping (expiry, checks, unloading).
    pub tick: Duration,
    /// How soon after a change the room writes the changed blocks' rows (the materialization
    /// lag, plus the write itself).
    pub materialize_interval: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            connection: ConnectionLimits::default(),
            max_document_bytes: 64 * 1024 * 1024,
            max_connections_per_canvas: 500,
            max_connections_per_user: 100,
            send_queue_frames: 2048,
            room_mailbox: 4096,
            max_batch: 512,
            unload_grace: Duration::from_secs(30),
            access_recheck: Duration::from_secs(5),
            awareness_timeout: Duration::from_secs(30),
            catch_up_interval: Duration::from_secs(2),
            compact_after_updates: 1000,
            compact_after_bytes: 1024 * 1024,
            tick: Duration::from_millis(500),
            materialize_interval: Duration::from_millis(50),
        }
    }
}

/// Who may do what to a canvas, asked again while connections stay open. The server
/// implements it with its access rules; `None` means no access at all.
pub trait AccessPolicy: Send + Sync + 'static {
    fn role(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
    ) -> BoxFuture<'static, Result<Option<Role>, SyncError>>;
}

/// What a room sends one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A binary frame to send.
    Frame(Bytes),
    /// The connection's role changed (a member was promoted or demoted).
    SetRole(Role),
}

/// Why a room ended a connection: an optional last frame (e.g. an auth message with the
/// reason), then the close.
#[derive(Debug, Clone, PartialEq)]
pub struct Kick {
    pub last_frame: Option<Bytes>,
    pub close: Close,
}

/// What a [`Member`] receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEvent {
    Frame(Bytes),
    SetRole(Role),
    /// Send `last_frame` if any, then close; nothing more will come.
    Close(Kick),
}

/// One awareness state, for the HTTP presence fallback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PresenceEntry {
    pub client_id: u64,
    pub clock: u64,
    pub state: Box<RawValue>,
}

pub(crate) struct Shared {
    pub pool: PgPool,
    pub config: SyncConfig,
    pub access: Arc<dyn AccessPolicy>,
    pub fanout: Fanout,
    pub metrics: SyncMetrics,
    pub stop: CancellationToken,
    rooms: Mutex<HashMap<Uuid, RoomEntry>>,
    user_connections: Mutex<HashMap<Uuid, usize>>,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct RoomEntry {
    generation: u64,
    mailbox: mpsc::Sender<Command>,
}

impl Shared {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Removes the room of `canvas_id` from the registry, if it is still the one of
    /// `generation`. After this no new command can reach it.
    pub(crate) fn unregister(&self, canvas_id: Uuid, generation: u64) {
        let mut rooms = lock(&self.rooms);
        if rooms
            .get(&canvas_id)
            .is_some_and(|e| e.generation == generation)
        {
            rooms.remove(&canvas_id);
        }
    }

    fn loaded(&self, canvas_id: Uuid) -> Option<mpsc::Sender<Command>> {
        lock(&self.rooms).get(&canvas_id).map(|e| e.mailbox.clone())
    }

    fn room(self: &Arc<Self>, canvas_id: Uuid) -> mpsc::Sender<Command> {
        let mut rooms = lock(&self.rooms);
        if let Some(entry) = rooms.get(&canvas_id) {
            return entry.mailbox.clone();
        }
        let generation = self.next_id();
        let (mailbox, inbox) = mpsc::channel(self.config.room_mailbox);
        rooms.insert(
            canvas_id,
            RoomEntry {
                generation,
                mailbox: mailbox.clone(),
            },
        );
        tokio::spawn(room::run(
            canvas_id,
            generation,
            Arc::clone(self),
            mailbox.downgrade(),
            inbox,
        ));
        mailbox
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps leaves them consistent (single inserts and removes).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The registry of this node's rooms. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    shared: Arc<Shared>,
}

struct SinkToRooms(Weak<Shared>);

impl RemoteSink for SinkToRooms {
    fn deliver(&self, canvas_id: Uuid, message: RemoteMessage) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        if let Some(room) = shared.loaded(canvas_id) {
            // A full mailbox drops the message; the room notices the gap and catches up.
            let _ = room.try_send(Command::Remote(message));
        }
    }

    fn resubscribed(&self) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let rooms: Vec<_> = lock(&shared.rooms)
            .values()
            .map(|e| e.mailbox.clone())
            .collect();
        for room in rooms {
            let _ = room.try_send(Command::CatchUp);
        }
    }
}

/// How many attempts an operation makes when the room it reached was stopping.
const ATTEMPTS: usize = 3;

impl Rooms {
    /// Rooms over `pool`, asking `access` for revocations, fanning out over Redis when
    /// `redis` is given. Must be called inside a Tokio runtime.
    pub fn new(
        pool: PgPool,
        config: SyncConfig,
        access: Arc<dyn AccessPolicy>,
        redis: Option<redis::Client>,
        metrics: SyncMetrics,
    ) -> Self {
        let stop = CancellationToken::new();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let fanout = match redis {
                Some(client) => Fanout::Redis(RedisFanout::start(
                    client,
                    Uuid::new_v4(),
                    Arc::new(SinkToRooms(weak.clone())),
                    stop.clone(),
                )),
                None => Fanout::InProcess,
            };
            Shared {
                pool,
                config,
                access,
                fanout,
                metrics,
                stop,
                rooms: Mutex::new(HashMap::new()),
                user_connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }
        });
        Self { shared }
    }

    /// The configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.shared.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &SyncMetrics {
        &self.shared.metrics
    }

    /// How many documents are loaded.
    pub fn loaded_rooms(&self) -> usize {
        lock(&self.shared.rooms).len()
    }

    /// Whether the document of `canvas_id` is loaded.
    pub fn is_loaded(&self, canvas_id: Uuid) -> bool {
        self.shared.loaded(canvas_id).is_some()
    }

    /// Joins `user_id` to the room of `canvas_id` with `role`. The member's first events are
    /// the server's sync step 1 and the room's awareness states.
    pub async fn connect(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> Result<Member, SyncError> {
        let slot = UserSlot::reserve(&self.shared, user_id)?;
        let (outbound_tx, outbound) = mpsc::channel(self.shared.config.send_queue_frames);
        let (kick_tx, kick) = watch::channel(None);
        let conn = self.shared.next_id();
        let ((), mailbox) = self
            .ask_room(canvas_id, |reply| Command::Join {
                conn,
                user_id,
                role,
                outbound: outbound_tx.clone(),
                kick: kick_tx.clone(),
                reply,
            })
            .await?;
        self.shared.metrics.connections.inc();
        Ok(Member {
            conn,
            mailbox,
            outbound,
            kick,
            _slot: slot,
            metrics: self.shared.metrics.clone(),
        })
    }

    /// The document of `canvas_id` as one v1 update: all of it, or what a client with
    /// `state_vector` lacks.
    pub async fn state(
        &self,
        canvas_id: Uuid,
        state_vector: Option<StateVector>,
    ) -> Result<Vec<u8>, SyncError> {
        self.ask(canvas_id, |reply| Command::State {
            state_vector: state_vector.clone(),
            reply,
        })
        .await
    }

    /// Commits `update` from `user_id` (who must be allowed to write) like a connection's,
    /// with `audit` in the same transaction, and broadcasts it; answers the sequence number it
    /// was given once it is durable.
    pub async fn push_update(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
        update: EncodedUpdate,
        audit: Option<AuditNote>,
    ) -> Result<i64, SyncError> {
        self.shared
            .metrics
            .bytes_in
            .inc_by(update.bytes().len() as u64);
        self.ask(canvas_id, |reply| Command::Update {
            origin: Origin::Http(user_id),
            update: update.clone(),
            reply: Some(reply),
            audit: audit.clone(),
        })
        .await
    }

    /// Applies a REST block write to `canvas_id`'s document (see [`crate::room::BlockEdit`]);
    /// with `expected_version`, refuses with [`SyncError::StaleVersion`] when the target block
    /// has moved on.
    /// `audit` is written in the commit of the write, when the write changes the document.
    pub async fn edit(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
        edit: crate::room::BlockEdit,
        expected_version: Option<i64>,
        audit: Option<AuditNote>,
    ) -> Result<crate::room::EditOutcome, SyncError> {
        self.ask(canvas_id, |reply| Command::Edit {
            user_id,
            edit: edit.clone(),
            expected_version,
            audit: audit.clone(),
            reply,
        })
        .await
    }

    /// Every present awareness state of `canvas_id`.
    pub async fn presence(&self, canvas_id: Uuid) -> Result<Vec<PresenceEntry>, SyncError> {
        self.ask(canvas_id, |reply| Command::Presence { reply })
            .await
    }

    /// Sets the awareness state of an HTTP client of `user_id` (it expires unless renewed).
    pub async fn set_presence(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
        entry: AwarenessEntry,
    ) -> Result<(), SyncError> {
        self.ask(canvas_id, |reply| Command::SetPresence {
            user_id,
            entry: entry.clone(),
            reply,
        })
        .await
    }

    /// Removes every awareness state `user_id` set over HTTP in `canvas_id`.
    pub async fn leave(&self, canvas_id: Uuid, user_id: Uuid) -> Result<(), SyncError> {
        if !self.is_loaded(canvas_id) {
            return Ok(());
        }
        self.ask(canvas_id, |reply| Command::LeavePresence { user_id, reply })
            .await
    }

    /// Closes every connection with "going away" and stops every room; waits up to
    /// `timeout` for them to finish.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shared.stop.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.loaded_rooms() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ask<T>(
        &self,
        canvas_id: Uuid,
        make: impl Fn(oneshot::Sender<Result<T, SyncError>>) -> Command,
    ) -> Result<T, SyncError> {
        self.ask_room(canvas_id, make).await.map(|(value, _)| value)
    }

    /// Sends the command `make` builds to the room of `canvas_id` (loading it) and waits for
    /// the answer, retrying on a fresh room when the one reached was stopping. Answers the
    /// room's mailbox too.
    async fn ask_room<T>(
        &self,
        canvas_id: Uuid,
        make: impl Fn(oneshot::Sender<Result<T, SyncError>>) -> Command,
    ) -> Result<(T, mpsc::Sender<Command>), SyncError> {
        if self.shared.stop.is_cancelled() {
            return Err(SyncError::Unavailable("the server is shutting down".into()));
        }
        for _ in 0..ATTEMPTS {
            let mailbox = self.shared.room(canvas_id);
            let (reply, answer) = oneshot::channel();
            if mailbox.send(make(reply)).await.is_err() {
                continue;
            }
            match answer.await {
                // The room stopped before answering: it had left the registry, so the next
                // attempt reaches (or loads) its successor.
                Ok(Err(SyncError::Unavailable(_))) | Err(_) => continue,
                Ok(result) => return result.map(|value| (value, mailbox)),
            }
        }
        Err(SyncError::Unavailable(
            "the document was being unloaded; try again".into(),
        ))
    }
}

/// One connection's place in a room: the events the room sends it and the way to send the
/// room what the client did. Dropping it leaves the room.
pub struct Member {
    conn: u64,
    mailbox: mpsc::Sender<Command>,
    outbound: mpsc::Receiver<Outbound>,
    kick: watch::Receiver<Option<Kick>>,
    _slot: UserSlot,
    metrics: SyncMetrics,
}

impl Member {
    /// The next event for this connection. Frames already queued come before a close, except
    /// when the close is for falling behind.
    pub async fn next_event(&mut self) -> MemberEvent {
        loop {
            if let Some(kick) = self.kick.borrow_and_update().clone() {
                return MemberEvent::Close(kick);
            }
            tokio::select! {
                biased;
                changed = self.kick.changed() => {
                    if changed.is_err() {
                        return MemberEvent::Close(Kick { last_frame: None, close: Close::going_away() });
                    }
                }
                next = self.outbound.recv() => match next {
                    Some(Outbound::Frame(frame)) => return MemberEvent::Frame(frame),
                    Some(Outbound::SetRole(role)) => return MemberEvent::SetRole(role),
                    None => return MemberEvent::Close(Kick { last_frame: None, close: Close::going_away() }),
                },
            }
        }
    }

    /// The client sent sync step 1: the room answers with step 2.
    pub async fn request_step2(&self, state_vector: StateVector) -> Result<(), SyncError> {
        self.send(Command::Step1 {
            conn: self.conn,
            state_vector,
        })
        .await
    }

    /// The client sent a (validated, non-empty) update: the room commits, applies and
    /// broadcasts it.
    pub async fn apply_update(&self, update: EncodedUpdate) -> Result<(), SyncError> {
        self.metrics.bytes_in.inc_by(update.bytes().len() as u64);
        self.send(Command::Update {
            origin: Origin::Connection(self.conn),
            update,
            reply: None,
            audit: None,
        })
        .await
    }

    /// The client sent an awareness update.
    pub async fn apply_awareness(&self, update: AwarenessUpdate) -> Result<(), SyncError> {
        self.send(Command::Awareness {
            conn: self.conn,
            update,
        })
        .await
    }

    /// The client asked for every awareness state.
    pub async fn query_awareness(&self) -> Result<(), SyncError> {
        self.send(Command::QueryAwareness { conn: self.conn }).await
    }

    async fn send(&self, command: Command) -> Result<(), SyncError> {
        self.mailbox
            .send(command)
            .await
            .map_err(|_| SyncError::Unavailable("the room stopped".into()))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.metrics.connections.dec();
        // A full mailbox: the room notices the closed queue on its next tick instead.
        let _ = self.mailbox.try_send(Command::Leave { conn: self.conn });
    }
}

/// One of a user's connection slots on this node, released on drop.
struct UserSlot {
    shared: Arc<Shared>,
    user_id: Uuid,
}

impl UserSlot {
    fn reserve(shared: &Arc<Shared>, user_id: Uuid) -> Result<Self, SyncError> {
        let max = shared.config.max_connections_per_user;
        let mut counts = lock(&shared.user_connections);
        let count = counts.entry(user_id).or_insert(0);
        if *count >= max {
            return Err(SyncError::UserConnectionLimit { max });
        }
        *count += 1;
        Ok(Self {
            shared: Arc::clone(shared),
            user_id,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.shared.user_connections);
        if let Some(count) = counts.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}
