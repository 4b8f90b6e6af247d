//! One loaded canvas: the task that owns its document, its connections and its awareness
//! states, and the only place that changes the document.
//!
//! Commands arrive through the room's mailbox. The loop takes whatever has queued up (at most
//! `max_batch` commands) and handles it in order, except that updates are held back and
//! flushed together right before anything that reads the document, and at the end: that is
//! the group commit. A flush
//!
//! 1. applies the updates to the document off the async workers, checking that each one
//!    integrates completely (no missing dependencies, no panic inside the CRDT library);
//! 2. appends the ones that did to the log in **one** transaction ([`crate::store::append`]);
//! 3. only then broadcasts them to the room's connections and publishes them to other nodes.
//!
//! Nothing can read the document between 1 and 3 (the room is busy), so no client or node
//! ever sees an update before it is durable. An update that does not integrate is refused
//! and the document is reloaded from the log, which never held it. A failed commit stops the
//! room: its connections are closed with 1011, their clients keep their changes and send them
//! again on reconnect (sync step 1/2), and the next load starts from what was committed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::awareness::{AwarenessEntry, AwarenessStates, AwarenessUpdate, IntroducedClients};
use crate::close::{Close, ACCESS_REVOKED, DOCUMENT_TOO_LARGE, POLICY_VIOLATION, PROTOCOL_ERROR};
use crate::connection::{step1_frame, DocumentView, Role};
use crate::error::SyncError;
use crate::fanout::RemoteMessage;
use crate::materialize::{Applied, Materializer};
use crate::protocol::{
    encode_permission_denied, encode_sync_step2, encode_sync_update, EncodedUpdate,
};
use crate::rooms::{Kick, Outbound, PresenceEntry, Shared};
use crate::schema::{BlockPatch, NewBlock, Position};
use crate::store::{self, AuditNote, LogRead};

/// The reason sent to a connection whose access was revoked.
pub const ACCESS_REVOKED_REASON: &str = "access to this canvas was revoked";

type Reply<T> = oneshot::Sender<Result<T, SyncError>>;

/// Where an update came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Connection(u64),
    Http(Uuid),
    /// The room itself (a rebalance of order keys).
    Server,
}

pub(crate) enum Command {
    Join {
        conn: u64,
        user_id: Uuid,
        role: Role,
        outbound: mpsc::Sender<Outbound>,
        kick: watch::Sender<Option<Kick>>,
        reply: Reply<()>,
    },
    Leave {
        conn: u64,
    },
    Update {
        origin: Origin,
        update: EncodedUpdate,
        reply: Option<Reply<i64>>,
        audit: Option<AuditNote>,
    },
    Step1 {
        conn: u64,
        state_vector: StateVector,
    },
    Awareness {
        conn: u64,
        update: AwarenessUpdate,
    },
    QueryAwareness {
        conn: u64,
    },
    State {
        state_vector: Option<StateVector>,
        reply: Reply<Vec<u8>>,
    },
    Presence {
        reply: Reply<Vec<PresenceEntry>>,
    },
    SetPresence {
        user_id: Uuid,
        entry: AwarenessEntry,
        reply: Reply<()>,
    },
    LeavePresence {
        user_id: Uuid,
        reply: Reply<()>,
    },
    Remote(RemoteMessage),
    CatchUp,
    /// A block write from the REST API, applied to the document like a client's update.
    Edit {
        user_id: Uuid,
        edit: BlockEdit,
        expected_version: Option<i64>,
        audit: Option<AuditNote>,
        reply: Reply<EditOutcome>,
    },
    /// The roles the access policy answered, for every user it was asked about.
    AccessChecked(Vec<(Uuid, Option<Role>)>),
    Compacted {
        seq: i64,
        snapshot_bytes: usize,
        result: Result<bool, SyncError>,
    },
}

impl Command {
    /// Answers the command's caller, if it waits for one, with `error`.
    fn fail(self, error: impl Fn() -> SyncError) {
        match self {
            Self::Join { reply, .. }
            | Self::SetPresence { reply, .. }
            | Self::LeavePresence { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Self::Update {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(Err(error()));
            }
            Self::State { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Self::Presence { reply } => {
                let _ = reply.send(Err(error()));
            }
            Self::Edit { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            _ => {}
        }
    }
}

struct Peer {
    user_id: Uuid,
    role: Role,
    outbound: mpsc::Sender<Outbound>,
    kick: watch::Sender<Option<Kick>>,
    introduced: IntroducedClients,
}

struct PendingUpdate {
    origin: Origin,
    update: EncodedUpdate,
    reply: Option<Reply<i64>>,
    /// Written in the commit that logs the update.
    audit: Option<AuditNote>,
}

/// Why the room must stop.
struct Fatal(String);

struct Room {
    canvas_id: Uuid,
    shared: Arc<Shared>,
    mailbox: mpsc::WeakSender<Command>,
    doc: Doc,
    /// Every update with a sequence number up to this one is in `doc`.
    watermark: i64,
    snapshot_seq: i64,
    snapshot_bytes: usize,
    /// Sizes of the log rows after the snapshot, by sequence number.
    tail: BTreeMap<i64, usize>,
    tail_bytes: usize,
    peers: HashMap<u64, Peer>,
    awareness: AwarenessStates,
    /// Awareness clients set over HTTP, by user.
    http_presence: HashMap<Uuid, IntroducedClients>,
    idle_since: Option<Instant>,
    last_access_check: Instant,
    access_check_running: bool,
    last_catch_up: Instant,
    compacting: bool,
    /// `None` only while a materialization runs.
    materializer: Option<Materializer>,
    /// The document changed since the rows were last written.
    materialize_due: bool,
    /// The user whose update was committed last (the actor of a meta change's audit row).
    last_writer: Option<Uuid>,
}

/// The room task of `canvas_id`: load, serve, stop.
pub(crate) async fn run(
    canvas_id: Uuid,
    generation: u64,
    shared: Arc<Shared>,
    mailbox: mpsc::WeakSender<Command>,
    mut inbox: mpsc::Receiver<Command>,
) {
    shared.metrics.rooms.inc();
    let mut room = match Room::load(canvas_id, Arc::clone(&shared), mailbox).await {
        Ok(room) => room,
        Err(error) => {
            shared.metrics.load_failures.inc();
            tracing::error!(%canvas_id, %error, "document failed to load; not serving it");
            let message = error.to_string();
            stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                SyncError::LoadFailed(message.clone())
            });
            shared.metrics.rooms.dec();
            return;
        }
    };
    let mut tick = tokio::time::interval(shared.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut materialize_tick = tokio::time::interval(shared.config.materialize_interval);
    materialize_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => {
                room.close_all(Close::going_away());
                stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                    SyncError::Unavailable("the server is shutting down".into())
                });
                break;
            }
            command = inbox.recv() => {
                let Some(command) = command else { break };
                let mut batch = vec![command];
                while batch.len() < shared.config.max_batch {
                    match inbox.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                if let Err(Fatal(reason)) = room.process(batch).await {
                    tracing::error!(%canvas_id, %reason, "room stopped");
                    room.close_all(Close::internal("the document could not be saved; reconnect"));
                    stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                        SyncError::Unavailable("the document stopped".into())
                    });
                    break;
                }
            }
            _ = materialize_tick.tick(), if room.materialize_wanted() => {
                if let Err(Fatal(reason)) = room.materialize().await {
                    tracing::error!(%canvas_id, %reason, "room stopped");
                    room.close_all(Close::internal("the document could not be read; reconnect"));
                    stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                        SyncError::Unavailable("the document stopped".into())
                    });
                    break;
                }
            }
            _ = tick.tick() => {
                if let Err(Fatal(reason)) = room.housekeeping().await {
                    tracing::error!(%canvas_id, %reason, "room stopped");
                    room.close_all(Close::internal("the document could not be saved; reconnect"));
                    stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                        SyncError::Unavailable("the document stopped".into())
                    });
                    break;
                }
                if room.idle_for_unload() {
                    // Leave the registry first: from here on, new callers load a fresh room
                    // (from the log, which holds everything); queued ones are told to retry.
                    stop_inbox(&shared, canvas_id, generation, &mut inbox, || {
                        SyncError::Unavailable("the document was unloaded".into())
                    });
                    if room.materialize_due {
                        let _ = room.materialize().await;
                    }
                    room.compact_now().await;
                    break;
                }
            }
        }
    }
    shared.metrics.rooms.dec();
}

/// Unregisters the room, closes its inbox and fails whatever was still queued.
fn stop_inbox(
    shared: &Shared,
    canvas_id: Uuid,
    generation: u64,
    inbox: &mut mpsc::Receiver<Command>,
    error: impl Fn() -> SyncError,
) {
    shared.unregister(canvas_id, generation);
    inbox.close();
    while let Ok(command) = inbox.try_recv() {
        command.fail(&error);
    }
}

fn parse_block_id(id: &str) -> Result<Uuid, SyncError> {
    Uuid::parse_str(id)
        .map_err(|_| SyncError::Schema(crate::schema::SchemaError::InvalidId(id.to_owned())))
}

/// A block write of the REST API (ARCHITECTURE §5), applied through the document.
#[derive(Debug, Clone)]
pub enum BlockEdit {
    /// A new block; with `spans`, its text is written with their formatting instead.
    Create {
        block: NewBlock,
        spans: Option<Vec<crate::markdown::Span>>,
    },
    /// The canvas's title or icon (`doc.getMap("meta")`).
    Meta(crate::schema::MetaPatch),
    /// A change of a block; with `spans`, its whole text is replaced by them, formatted.
    Patch {
        id: String,
        patch: BlockPatch,
        spans: Option<Vec<crate::markdown::Span>>,
    },
    Move {
        id: String,
        parent: Option<String>,
        position: Position,
    },
    Delete {
        id: String,
    },
    /// Puts `ids` together, in this order, at `position` under `parent`.
    Reorder {
        ids: Vec<String>,
        parent: Option<String>,
        position: Position,
    },
    /// Inserts blocks parsed from Markdown, together, at `position` under `parent`.
    Import {
        blocks: Vec<crate::markdown::ImportedBlock>,
        parent: Option<String>,
        position: Position,
    },
}

/// What a write touched, to answer with.
enum Touched {
    Meta,
    Block(String),
    Deleted(Vec<String>),
    Many(Vec<String>),
}

impl BlockEdit {
    /// The existing block the write changes (whose version a caller may check).
    fn target(&self) -> Option<&str> {
        match self {
            Self::Create { .. } | Self::Meta(_) | Self::Reorder { .. } | Self::Import { .. } => {
                None
            }
            Self::Patch { id, .. } | Self::Move { id, .. } | Self::Delete { id } => Some(id),
        }
    }

    fn apply(self, txn: &mut yrs::TransactionMut) -> Result<Touched, SyncError> {
        use crate::schema;
        match self {
            Self::Create { block, spans } => schema::insert_block(txn, block).map(|id| {
                if let Some(spans) = spans {
                    crate::markdown::replace_with_spans(txn, &id, &spans);
                }
                Touched::Block(id)
            }),
            Self::Meta(patch) => {
                schema::set_meta(txn, patch);
                Ok(Touched::Meta)
            }
            Self::Patch { id, patch, spans } => schema::update_block(txn, &id, patch).map(|_| {
                if let Some(spans) = spans {
                    crate::markdown::replace_with_spans(txn, &id, &spans);
                }
                Touched::Block(id)
            }),
            Self::Move {
                id,
                parent,
                position,
            } => schema::move_block(txn, &id, parent.as_deref(), position)
                .map(|_| Touched::Block(id)),
            Self::Delete { id } => schema::delete_block(txn, &id).map(Touched::Deleted),
            Self::Reorder {
                ids,
                parent,
                position,
            } => {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                schema::move_blocks(txn, &refs, parent.as_deref(), position)
                    .map(|_| Touched::Many(ids))
            }
            Self::Import {
                blocks,
                parent,
                position,
            } => {
                return crate::markdown::insert_blocks(txn, &blocks, parent.as_deref(), position)
                    .map(Touched::Many)
                    .map_err(|error| match error {
                        crate::markdown::MarkdownError::Schema(error) => SyncError::Schema(error),
                        other => SyncError::Markdown(other),
                    });
            }
        }
        .map_err(SyncError::Schema)
    }
}

/// The answer to a [`BlockEdit`].
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    /// The created, patched or moved block as its row now is.
    pub block: Option<crate::blocks::BlockRecord>,
    /// The ids a delete removed (the block and its subtree).
    pub deleted: Vec<Uuid>,
    /// The blocks a reorder or an import wrote, in document order.
    pub written: Vec<Uuid>,
    /// The log position of the write; `None` when it changed nothing.
    pub seq: Option<i64>,
}

/// Applies `updates` to `doc` in order, each in its own transaction, and stops at the first
/// one that fails or leaves content waiting for missing dependencies. Answers how many were
/// applied, the error of the one that failed, and (for more than one) the applied ones merged.
fn apply_checked(doc: &Doc, updates: &[Bytes]) -> (usize, Option<SyncError>, Option<Vec<u8>>) {
    for (index, data) in updates.iter().enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), SyncError> {
            let update = Update::decode_v1(data)
                .map_err(|e| SyncError::Protocol(crate::ProtocolError::invalid_update(e)))?;
            let mut txn = doc.transact_mut();
            txn.apply_update(update)
                .map_err(|e| SyncError::Protocol(crate::ProtocolError::invalid_update(e)))?;
            if txn.has_missing_updates() {
                return Err(SyncError::MissingDependencies);
            }
            Ok(())
        }));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(_) => SyncError::Protocol(crate::ProtocolError::invalid_update(
                "the update could not be integrated",
            )),
        };
        return (index, Some(failure), merged(&updates[..index]));
    }
    (updates.len(), None, merged(updates))
}

fn merged(updates: &[Bytes]) -> Option<Vec<u8>> {
    if updates.len() < 2 {
        return None;
    }
    let slices: Vec<&[u8]> = updates.iter().map(|u| u.as_ref()).collect();
    yrs::merge_updates_v1(&slices).ok()
}

/// Builds a document from what the log holds.
fn document_from(read: &LogRead) -> Result<Doc, SyncError> {
    let doc = Doc::new();
    apply_stored(&doc, read)?;
    Ok(doc)
}

/// Applies a read of the log to `doc`; the log only holds updates that integrated, so any
/// failure here means the stored document is damaged.
fn apply_stored(doc: &Doc, read: &LogRead) -> Result<(), SyncError> {
    let parts = read
        .snapshot
        .iter()
        .map(|s| (s.seq, &s.data))
        .chain(read.updates.iter().map(|u| (u.seq, &u.data)));
    for (seq, data) in parts {
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let update = Update::decode_v1(data).map_err(|e| e.to_string())?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(SyncError::LoadFailed(format!("update {seq}: {error}"))),
            Err(_) => {
                return Err(SyncError::LoadFailed(format!(
                    "update {seq} could not be integrated"
                )))
            }
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Fatal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Fatal(format!("document task failed: {e}")))
}

impl Room {
    async fn load(
        canvas_id: Uuid,
        shared: Arc<Shared>,
        mailbox: mpsc::WeakSender<Command>,
    ) -> Result<Self, SyncError> {
        let read = store::read_after(&shared.pool, canvas_id, 0).await?;
        let (doc, read) =
            tokio::task::spawn_blocking(move || document_from(&read).map(|doc| (doc, read)))
                .await
                .map_err(|e| SyncError::LoadFailed(e.to_string()))??;
        let materializer = Materializer::load(&shared.pool, canvas_id).await?;
        let now = Instant::now();
        let mut room = Self {
            canvas_id,
            shared,
            mailbox,
            doc,
            watermark: read.last_seq,
            snapshot_seq: 0,
            snapshot_bytes: 0,
            tail: BTreeMap::new(),
            tail_bytes: 0,
            peers: HashMap::new(),
            awareness: AwarenessStates::new(),
            http_presence: HashMap::new(),
            idle_since: Some(now),
            last_access_check: now,
            access_check_running: false,
            last_catch_up: now,
            compacting: false,
            // Rows behind the log (a crash between commit and materialization) catch up now.
            materialize_due: materializer.seq() < read.last_seq,
            last_writer: None,
            materializer: Some(materializer),
        };
        room.count_stored(&read);
        room.maybe_compact().await;
        Ok(room)
    }

    async fn process(&mut self, batch: Vec<Command>) -> Result<(), Fatal> {
        if self.idle_since.is_some() {
            // Any use postpones unloading.
            self.idle_since = Some(Instant::now());
        }
        let mut pending = Vec::new();
        for command in batch {
            match command {
                Command::Update {
                    origin,
                    update,
                    reply,
                    audit,
                } => pending.push(PendingUpdate {
                    origin,
                    update,
                    reply,
                    audit,
                }),
                Command::Awareness { conn, update } => self.awareness_from(conn, &update),
                Command::Leave { conn } => self.remove_peer(conn),
                Command::AccessChecked(roles) => {
                    self.access_check_running = false;
                    for (user_id, role) in roles {
                        self.access_checked(user_id, role);
                    }
                }
                Command::Compacted {
                    seq,
                    snapshot_bytes,
                    result,
                } => self.compacted(seq, snapshot_bytes, result),
                command => {
                    // Everything else reads the document: it must see the updates before it.
                    self.flush(std::mem::take(&mut pending)).await?;
                    self.handle(command).await?;
                }
            }
        }
        self.flush(pending).await
    }

    async fn handle(&mut self, command: Command) -> Result<(), Fatal> {
        match command {
            Command::Join {
                conn,
                user_id,
                role,
                outbound,
                kick,
                reply,
            } => {
                let max = self.shared.config.max_connections_per_canvas;
                if self.peers.len() >= max {
                    let _ = reply.send(Err(SyncError::CanvasFull { max }));
                    return Ok(());
                }
                let mut handshake = vec![Bytes::from(step1_frame(&self.doc))];
                if let Some(states) = self.awareness.encode_all() {
                    handshake.push(Bytes::from(states.to_frame()));
                }
                for frame in handshake {
                    let _ = outbound.try_send(Outbound::Frame(frame));
                }
                self.peers.insert(
                    conn,
                    Peer {
                        user_id,
                        role,
                        outbound,
                        kick,
                        introduced: IntroducedClients::new(),
                    },
                );
                self.idle_since = None;
                let _ = reply.send(Ok(()));
            }
            Command::Step1 { conn, state_vector } => {
                if !self.peers.contains_key(&conn) {
                    return Ok(());
                }
                let doc = self.doc.clone();
                let frame =
                    blocking(move || encode_sync_step2(&doc.diff_since(&state_vector))).await?;
                self.send_to(conn, Bytes::from(frame));
            }
            Command::QueryAwareness { conn } => {
                if let Some(states) = self.awareness.encode_all() {
                    self.send_to(conn, Bytes::from(states.to_frame()));
                }
            }
            Command::State {
                state_vector,
                reply,
            } => {
                let doc = self.doc.clone();
                let state =
                    blocking(move || doc.diff_since(&state_vector.unwrap_or_default())).await?;
                let _ = reply.send(Ok(state));
            }
            Command::Presence { reply } => {
                let entries = self
                    .awareness
                    .encode_all()
                    .map(|all| {
                        all.entries()
                            .iter()
                            .filter_map(|entry| {
                                entry.state.clone().map(|state| PresenceEntry {
                                    client_id: entry.client_id,
                                    clock: entry.clock,
                                    state,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(Ok(entries));
            }
            Command::SetPresence {
                user_id,
                entry,
                reply,
            } => {
                let _ = reply.send(self.set_presence(user_id, entry));
            }
            Command::LeavePresence { user_id, reply } => {
                if let Some(clients) = self.http_presence.remove(&user_id) {
                    self.remove_awareness(clients.iter().collect());
                }
                self.note_idle();
                let _ = reply.send(Ok(()));
            }
            Command::Remote(message) => self.remote(message).await?,
            Command::Edit {
                user_id,
                edit,
                expected_version,
                audit,
                reply,
            } => {
                let outcome = self.edit(user_id, edit, expected_version, audit).await?;
                let _ = reply.send(outcome);
            }
            Command::CatchUp => self.catch_up().await?,
            // Handled in `process`.
            Command::Update { .. }
            | Command::Awareness { .. }
            | Command::Leave { .. }
            | Command::AccessChecked(_)
            | Command::Compacted { .. } => {}
        }
        Ok(())
    }

    /// The group commit: see the module documentation.
    async fn flush(&mut self, pending: Vec<PendingUpdate>) -> Result<(), Fatal> {
        let mut queue: VecDeque<PendingUpdate> = pending.into();
        while !queue.is_empty() {
            let max = self.shared.config.max_document_bytes;
            let mut size = self.snapshot_bytes + self.tail_bytes;
            let mut accepted = Vec::with_capacity(queue.len());
            while let Some(update) = queue.pop_front() {
                if let Origin::Connection(conn) = update.origin {
                    match self.peers.get(&conn) {
                        None => continue,
                        Some(peer) if !peer.role.can_write() => {
                            let frame = encode_permission_denied(crate::READ_ONLY_REASON);
                            self.send_to(conn, Bytes::from(frame));
                            continue;
                        }
                        Some(_) => {}
                    }
                }
                let len = update.update.bytes().len();
                if size + len > max {
                    self.refuse(update, SyncError::DocumentTooLarge { max });
                    continue;
                }
                size += len;
                accepted.push(update);
            }
            if accepted.is_empty() {
                return Ok(());
            }
            let datas: Vec<Bytes> = accepted
                .iter()
                .map(|u| Bytes::copy_from_slice(u.update.bytes()))
                .collect();
            let doc = self.doc.clone();
            let to_apply = datas.clone();
            let (applied, failure, merged) =
                blocking(move || apply_checked(&doc, &to_apply)).await?;
            let mut rest = accepted.split_off(applied);
            if !accepted.is_empty() {
                self.commit(accepted, &datas[..applied], merged).await?;
            }
            if let Some(error) = failure {
                let refused = rest.remove(0);
                tracing::warn!(canvas_id = %self.canvas_id, %error, "update refused");
                self.refuse(refused, error);
                // The document may hold part of the refused update: start again from the log.
                self.reload().await?;
                queue.extend(rest);
            }
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        updates: Vec<PendingUpdate>,
        datas: &[Bytes],
        merged: Option<Vec<u8>>,
    ) -> Result<(), Fatal> {
        let slices: Vec<&[u8]> = datas.iter().map(|d| d.as_ref()).collect();
        let audits: Vec<(usize, &AuditNote)> = updates
            .iter()
            .enumerate()
            .filter_map(|(index, update)| update.audit.as_ref().map(|note| (index, note)))
            .collect();
        let started = Instant::now();
        let range = store::append(&self.shared.pool, self.canvas_id, &slices, &audits)
            .await
            .map_err(|e| Fatal(format!("commit failed: {e}")))?;
        let metrics = &self.shared.metrics;
        metrics
            .persist_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commits.inc();
        metrics.updates.inc_by(datas.len() as u64);
        for (offset, data) in datas.iter().enumerate() {
            self.note_logged(range.first + offset as i64, data.len());
        }
        // Another node appended in between: read what it wrote once ours are out.
        let gap = range.first != self.watermark + 1;
        if !gap {
            self.watermark = range.last;
        }
        // Durable: now, and only now, the updates may be seen.
        // Several updates go out merged, as one frame (their senders get theirs back, which
        // changes nothing); one goes to everyone but its sender.
        match merged {
            Some(merged) => self.broadcast(Bytes::from(encode_sync_update(&merged)), None),
            None => {
                for (update, data) in updates.iter().zip(datas) {
                    let except = match update.origin {
                        Origin::Connection(conn) => Some(conn),
                        Origin::Http(_) | Origin::Server => None,
                    };
                    self.broadcast(Bytes::from(encode_sync_update(data)), except);
                }
            }
        }
        self.shared.fanout.publish(
            self.canvas_id,
            &RemoteMessage::Updates {
                first_seq: range.first,
                updates: datas.to_vec(),
            },
        );
        if let Some(writer) = updates.iter().rev().find_map(|u| self.writer_of(&u.origin)) {
            self.last_writer = Some(writer);
        }
        for (offset, update) in updates.into_iter().enumerate() {
            if let Some(reply) = update.reply {
                let _ = reply.send(Ok(range.first + offset as i64));
            }
        }
        self.materialize_due = true;
        if gap {
            self.catch_up().await?;
        }
        self.maybe_compact().await;
        Ok(())
    }

    /// The user behind an update's origin.
    fn writer_of(&self, origin: &Origin) -> Option<Uuid> {
        match origin {
            Origin::Connection(conn) => self.peers.get(conn).map(|peer| peer.user_id),
            Origin::Http(user_id) => Some(*user_id),
            Origin::Server => None,
        }
    }

    /// Refuses an update: the connection that sent it is closed, an HTTP caller gets the error.
    fn refuse(&mut self, update: PendingUpdate, error: SyncError) {
        match update.origin {
            Origin::Connection(conn) => {
                let close = match &error {
                    SyncError::DocumentTooLarge { .. } => {
                        Close::new(DOCUMENT_TOO_LARGE, "document too large")
                    }
                    SyncError::MissingDependencies => {
                        Close::new(PROTOCOL_ERROR, "update with missing dependencies")
                    }
                    _ => Close::new(PROTOCOL_ERROR, "invalid update"),
                };
                self.kick(conn, close, None);
            }
            Origin::Http(_) | Origin::Server => {}
        }
        if let Some(reply) = update.reply {
            let _ = reply.send(Err(error));
        }
    }

    /// Replaces the document with what the log holds.
    async fn reload(&mut self) -> Result<(), Fatal> {
        let read = store::read_after(&self.shared.pool, self.canvas_id, 0)
            .await
            .map_err(|e| Fatal(format!("reload failed: {e}")))?;
        let (doc, read) = blocking(move || document_from(&read).map(|doc| (doc, read)))
            .await?
            .map_err(|e| Fatal(format!("reload failed: {e}")))?;
        self.doc = doc;
        self.watermark = read.last_seq;
        self.count_stored(&read);
        self.materialize_due = true;
        Ok(())
    }

    /// Sizes of the stored document as a whole read of the log found them.
    fn count_stored(&mut self, read: &LogRead) {
        self.snapshot_seq = read.snapshot.as_ref().map_or(0, |s| s.seq);
        self.snapshot_bytes = read.snapshot.as_ref().map_or(0, |s| s.data.len());
        self.tail = read.updates.iter().map(|u| (u.seq, u.data.len())).collect();
        self.tail_bytes = read.updates.iter().map(|u| u.data.len()).sum();
    }

    /// Reads from Postgres everything committed after the watermark, applies it and sends the
    /// difference to the room's connections.
    async fn catch_up(&mut self) -> Result<(), Fatal> {
        self.last_catch_up = Instant::now();
        let read = match store::read_after(&self.shared.pool, self.canvas_id, self.watermark).await
        {
            Ok(read) => read,
            Err(error) => {
                // Not fatal: the next tick or message tries again.
                tracing::warn!(canvas_id = %self.canvas_id, %error, "catch-up failed");
                return Ok(());
            }
        };
        if read.last_seq <= self.watermark {
            return Ok(());
        }
        self.shared.metrics.catch_ups.inc();
        let doc = self.doc.clone();
        let (read, diff) = blocking(move || {
            let before = doc.state_vector();
            apply_stored(&doc, &read).map(|()| {
                let diff = doc.diff_since(&before);
                (read, diff)
            })
        })
        .await?
        .map_err(|e| Fatal(format!("catch-up could not be applied: {e}")))?;
        for update in &read.updates {
            self.note_logged(update.seq, update.data.len());
        }
        if let Some(snapshot) = &read.snapshot {
            self.note_snapshot(snapshot.seq, snapshot.data.len());
        }
        self.watermark = self.watermark.max(read.last_seq);
        self.materialize_due = true;
        self.broadcast(Bytes::from(encode_sync_update(&diff)), None);
        Ok(())
    }

    async fn remote(&mut self, message: RemoteMessage) -> Result<(), Fatal> {
        match message {
            RemoteMessage::Updates { first_seq, updates } => {
                let last = first_seq + updates.len() as i64 - 1;
                if last <= self.watermark {
                    return Ok(());
                }
                if first_seq > self.watermark + 1 {
                    return self.catch_up().await;
                }
                let fresh: Vec<Bytes> =
                    updates[(self.watermark + 1 - first_seq) as usize..].to_vec();
                let doc = self.doc.clone();
                let to_apply = fresh.clone();
                let (applied, failure, merged) =
                    blocking(move || apply_checked(&doc, &to_apply)).await?;
                if let Some(error) = failure {
                    // Committed by another node yet not integrable here: reading the log
                    // again is the only way to find out what the document really is.
                    tracing::warn!(canvas_id = %self.canvas_id, %error, applied, "remote update did not integrate; reloading");
                    self.reload().await?;
                    self.broadcast_whole_document().await?;
                    return Ok(());
                }
                self.shared
                    .metrics
                    .remote_updates
                    .inc_by(fresh.len() as u64);
                for (offset, data) in fresh.iter().enumerate() {
                    self.note_logged(self.watermark + 1 + offset as i64, data.len());
                }
                self.watermark = last;
                self.materialize_due = true;
                match merged {
                    Some(merged) => self.broadcast(Bytes::from(encode_sync_update(&merged)), None),
                    None => {
                        for data in &fresh {
                            self.broadcast(Bytes::from(encode_sync_update(data)), None);
                        }
                    }
                }
            }
            RemoteMessage::Awareness(bytes) => {
                let limits = self.shared.config.connection.protocol;
                let Ok(update) = AwarenessUpdate::decode(&bytes, &limits) else {
                    return Ok(());
                };
                let change = self.awareness.apply(&update, Instant::now());
                if let Some(applied) = change.applied {
                    self.broadcast(Bytes::from(applied.to_frame()), None);
                }
            }
        }
        Ok(())
    }

    async fn broadcast_whole_document(&mut self) -> Result<(), Fatal> {
        let doc = self.doc.clone();
        let state = blocking(move || doc.diff_since(&StateVector::default())).await?;
        self.broadcast(Bytes::from(encode_sync_update(&state)), None);
        Ok(())
    }

    fn awareness_from(&mut self, conn: u64, update: &AwarenessUpdate) {
        if !self.peers.contains_key(&conn) {
            return;
        }
        let change = self.awareness.apply(update, Instant::now());
        let max = self.shared.config.connection.max_awareness_clients;
        let over_limit = self.peers.get_mut(&conn).is_some_and(|peer| {
            peer.introduced.record(&change);
            peer.introduced.len() > max
        });
        if let Some(applied) = change.applied {
            // Back to the sender too, as y-websocket's server does: a stock client alone in a
            // room otherwise hears nothing for 30 s and reconnects (its message timeout).
            self.broadcast(Bytes::from(applied.to_frame()), None);
            self.shared.fanout.publish(
                self.canvas_id,
                &RemoteMessage::Awareness(Bytes::copy_from_slice(applied.bytes())),
            );
        }
        if over_limit {
            self.kick(
                conn,
                Close::new(POLICY_VIOLATION, "too many awareness clients"),
                None,
            );
        }
    }

    fn set_presence(&mut self, user_id: Uuid, entry: AwarenessEntry) -> Result<(), SyncError> {
        let client_id = entry.client_id;
        let taken = self
            .peers
            .values()
            .any(|p| p.introduced.contains(client_id))
            || self
                .http_presence
                .iter()
                .any(|(owner, clients)| *owner != user_id && clients.contains(client_id));
        if taken {
            return Err(SyncError::PresenceConflict { client_id });
        }
        let update = AwarenessUpdate::from_entries(vec![entry]);
        let change = self.awareness.apply(&update, Instant::now());
        let clients = self.http_presence.entry(user_id).or_default();
        clients.record(&change);
        if clients.is_empty() {
            self.http_presence.remove(&user_id);
        }
        if let Some(applied) = change.applied {
            self.broadcast(Bytes::from(applied.to_frame()), None);
            self.shared.fanout.publish(
                self.canvas_id,
                &RemoteMessage::Awareness(Bytes::copy_from_slice(applied.bytes())),
            );
        }
        self.idle_since = None;
        self.note_idle();
        Ok(())
    }

    fn remove_awareness(&mut self, clients: Vec<u64>) {
        if let Some(removal) = self.awareness.remove(clients, Instant::now()) {
            self.broadcast(Bytes::from(removal.to_frame()), None);
            self.shared.fanout.publish(
                self.canvas_id,
                &RemoteMessage::Awareness(Bytes::copy_from_slice(removal.bytes())),
            );
        }
    }

    fn send_to(&mut self, conn: u64, frame: Bytes) {
        let Some(peer) = self.peers.get(&conn) else {
            return;
        };
        match peer.outbound.try_send(Outbound::Frame(frame)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.metrics.slow_disconnects.inc();
                self.kick(conn, Close::slow_client(), None);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.remove_peer(conn),
        }
    }

    /// Queues `frame` for every connection but `except`; a connection whose queue is full is
    /// disconnected (4008), never silently skipped.
    fn broadcast(&mut self, frame: Bytes, except: Option<u64>) {
        let mut slow = Vec::new();
        let mut gone = Vec::new();
        for (&conn, peer) in &self.peers {
            if Some(conn) == except {
                continue;
            }
            match peer.outbound.try_send(Outbound::Frame(frame.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => slow.push(conn),
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(conn),
            }
        }
        for conn in slow {
            self.shared.metrics.slow_disconnects.inc();
            self.kick(conn, Close::slow_client(), None);
        }
        for conn in gone {
            self.remove_peer(conn);
        }
    }

    /// Ends a connection: its socket sends `last_frame` and closes with `close`.
    fn kick(&mut self, conn: u64, close: Close, last_frame: Option<Bytes>) {
        if let Some(peer) = self.peers.get(&conn) {
            let _ = peer.kick.send(Some(Kick { last_frame, close }));
        }
        self.remove_peer(conn);
    }

    fn remove_peer(&mut self, conn: u64) {
        let Some(peer) = self.peers.remove(&conn) else {
            return;
        };
        let clients: Vec<u64> = peer.introduced.iter().collect();
        self.remove_awareness(clients);
        self.note_idle();
    }

    fn close_all(&mut self, close: Close) {
        let conns: Vec<u64> = self.peers.keys().copied().collect();
        for conn in conns {
            if let Some(peer) = self.peers.remove(&conn) {
                let _ = peer.kick.send(Some(Kick {
                    last_frame: None,
                    close: close.clone(),
                }));
            }
        }
    }

    fn note_idle(&mut self) {
        if self.peers.is_empty() && self.http_presence.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
    }

    fn idle_for_unload(&self) -> bool {
        !self.compacting
            && self
                .idle_since
                .is_some_and(|since| since.elapsed() >= self.shared.config.unload_grace)
    }

    fn access_checked(&mut self, user_id: Uuid, role: Option<Role>) {
        let conns: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.user_id == user_id)
            .map(|(&conn, _)| conn)
            .collect();
        match role {
            None => {
                let frame = Bytes::from(encode_permission_denied(ACCESS_REVOKED_REASON));
                for conn in conns {
                    self.kick(
                        conn,
                        Close::new(ACCESS_REVOKED, ACCESS_REVOKED_REASON),
                        Some(frame.clone()),
                    );
                }
                if let Some(clients) = self.http_presence.remove(&user_id) {
                    self.remove_awareness(clients.iter().collect());
                    self.note_idle();
                }
            }
            Some(role) => {
                for conn in conns {
                    if let Some(peer) = self.peers.get_mut(&conn) {
                        if peer.role != role {
                            peer.role = role;
                            let _ = peer.outbound.try_send(Outbound::SetRole(role));
                        }
                    }
                }
            }
        }
    }

    async fn housekeeping(&mut self) -> Result<(), Fatal> {
        let now = Instant::now();
        // Connections whose socket went away without a Leave (a full mailbox dropped it).
        let gone: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.outbound.is_closed())
            .map(|(&conn, _)| conn)
            .collect();
        for conn in gone {
            self.remove_peer(conn);
        }
        if let Some(removal) = self
            .awareness
            .expire(now, self.shared.config.awareness_timeout)
        {
            let removed: HashSet<u64> = removal.entries().iter().map(|e| e.client_id).collect();
            self.http_presence.retain(|_, clients| {
                for client in &removed {
                    clients.forget(*client);
                }
                !clients.is_empty()
            });
            self.broadcast(Bytes::from(removal.to_frame()), None);
            self.note_idle();
        }
        if now.duration_since(self.last_access_check) >= self.shared.config.access_recheck {
            self.start_access_check();
        }
        if self.shared.fanout.is_shared()
            && !self.peers.is_empty()
            && now.duration_since(self.last_catch_up) >= self.shared.config.catch_up_interval
        {
            self.last_catch_up = now;
            match store::last_seq(&self.shared.pool, self.canvas_id).await {
                Ok(last) if last > self.watermark => self.catch_up().await?,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(canvas_id = %self.canvas_id, %error, "sequence check failed")
                }
            }
        }
        Ok(())
    }

    fn start_access_check(&mut self) {
        self.last_access_check = Instant::now();
        if self.access_check_running {
            return;
        }
        let users: HashSet<Uuid> = self
            .peers
            .values()
            .map(|peer| peer.user_id)
            .chain(self.http_presence.keys().copied())
            .collect();
        if users.is_empty() {
            return;
        }
        let Some(mailbox) = self.mailbox.upgrade() else {
            return;
        };
        self.access_check_running = true;
        let access = Arc::clone(&self.shared.access);
        let canvas_id = self.canvas_id;
        tokio::spawn(async move {
            let mut roles = Vec::with_capacity(users.len());
            for user_id in users {
                match access.role(canvas_id, user_id).await {
                    Ok(role) => roles.push((user_id, role)),
                    // Unknown is not revoked: keep the connection until an answer says so.
                    Err(error) => {
                        tracing::warn!(%canvas_id, %user_id, %error, "access re-check failed")
                    }
                }
            }
            let _ = mailbox.send(Command::AccessChecked(roles)).await;
        });
    }

    /// A REST block write: checks the version against the row (materialized up to now), applies
    /// the write to the document, commits and broadcasts it like a client's update, then
    /// materializes so the answer carries the new row. Commands run one at a time, so of two
    /// writes with the same version exactly one wins.
    async fn edit(
        &mut self,
        user_id: Uuid,
        edit: BlockEdit,
        expected_version: Option<i64>,
        audit: Option<AuditNote>,
    ) -> Result<Result<EditOutcome, SyncError>, Fatal> {
        if self.materialize_due {
            self.materialize().await?;
        }
        let pool = self.shared.pool.clone();
        let target = match edit.target().map(parse_block_id).transpose() {
            Ok(target) => target,
            Err(error) => return Ok(Err(error)),
        };
        if let Some(id) = target {
            match crate::blocks::get(&pool, self.canvas_id, id).await {
                Ok(None) => return Ok(Err(SyncError::UnknownBlock)),
                Ok(Some(current)) => {
                    if let Some(expected) = expected_version.filter(|v| *v != current.version) {
                        return Ok(Err(SyncError::StaleVersion {
                            expected,
                            current: Box::new(current),
                        }));
                    }
                }
                Err(error) => return Ok(Err(error)),
            }
        }
        let doc = self.doc.clone();
        let applied = blocking(move || {
            let mut txn = doc.transact_mut();
            let result = edit.apply(&mut txn);
            let update = txn.encode_update_v1();
            result.map(|touched| (touched, update))
        })
        .await?;
        let (touched, update) = match applied {
            Ok(applied) => applied,
            // A refused write changed nothing in the document.
            Err(error) => return Ok(Err(error)),
        };
        let mut seq = None;
        if self
            .commit_own(Origin::Http(user_id), update, audit)
            .await?
        {
            seq = Some(self.watermark);
            self.materialize().await?;
        }
        let mut outcome = EditOutcome {
            block: None,
            deleted: Vec::new(),
            written: Vec::new(),
            seq,
        };
        match touched {
            Touched::Meta => {}
            Touched::Block(id) => {
                let id = match parse_block_id(&id) {
                    Ok(id) => id,
                    Err(error) => return Ok(Err(error)),
                };
                if seq.is_some() {
                    if let Err(error) =
                        crate::blocks::set_author(&pool, self.canvas_id, &[id], user_id).await
                    {
                        return Ok(Err(error));
                    }
                }
                match crate::blocks::get(&pool, self.canvas_id, id).await {
                    Ok(block) => outcome.block = block,
                    Err(error) => return Ok(Err(error)),
                }
            }
            Touched::Deleted(ids) => {
                outcome.deleted = ids
                    .iter()
                    .filter_map(|id| Uuid::parse_str(id).ok())
                    .collect();
            }
            Touched::Many(ids) => {
                let ids: Vec<Uuid> = ids
                    .iter()
                    .filter_map(|id| Uuid::parse_str(id).ok())
                    .collect();
                outcome.written.clone_from(&ids);
                if seq.is_some() {
                    if let Err(error) =
                        crate::blocks::set_author(&pool, self.canvas_id, &ids, user_id).await
                    {
                        return Ok(Err(error));
                    }
                }
            }
        }
        Ok(Ok(outcome))
    }

    /// Gives short keys to every sibling list with a key grown past
    /// [`crate::order::REBALANCE_LEN`], through the document in one transaction, committed and
    /// broadcast like any update, so every client converges on the new keys.
    async fn rebalance_long_keys(&mut self) -> Result<(), Fatal> {
        let doc = self.doc.clone();
        let update = blocking(move || {
            let parents = crate::schema::parents_needing_rebalance(
                &doc.transact(),
                crate::order::REBALANCE_LEN,
            );
            if parents.is_empty() {
                return None;
            }
            let mut txn = doc.transact_mut();
            for parent in &parents {
                if let Err(error) = crate::schema::rebalance_children(&mut txn, parent.as_deref()) {
                    tracing::warn!(%error, "rebalance skipped a sibling list");
                }
            }
            Some(txn.encode_update_v1())
        })
        .await?;
        let Some(update) = update else { return Ok(()) };
        if self.commit_own(Origin::Server, update, None).await? {
            self.shared.metrics.rebalances.inc();
        }
        Ok(())
    }

    /// Commits and broadcasts an update the room made itself on behalf of `origin` (a REST
    /// write, a rebalance), like a client's, with its audit row. Answers whether there was
    /// anything to commit (a write that changes nothing is neither logged nor audited).
    async fn commit_own(
        &mut self,
        origin: Origin,
        update: Vec<u8>,
        audit: Option<AuditNote>,
    ) -> Result<bool, Fatal> {
        let encoded = EncodedUpdate::decode(&update)
            .map_err(|e| Fatal(format!("own update is invalid: {e}")))?;
        if encoded.is_empty() {
            return Ok(false);
        }
        self.commit(
            vec![PendingUpdate {
                origin,
                update: encoded,
                reply: None,
                audit,
            }],
            &[Bytes::from(update)],
            None,
        )
        .await?;
        Ok(true)
    }

    fn materialize_wanted(&self) -> bool {
        self.materialize_due && self.materializer.is_some()
    }

    /// Writes the rows of the blocks that changed since the last time. The plan is made from
    /// the document here, between commands, so nothing uncommitted can be in it; the write is
    /// awaited like a commit, so a REST write can read its own row right after.
    async fn materialize(&mut self) -> Result<(), Fatal> {
        let Some(materializer) = self.materializer.take() else {
            return Ok(());
        };
        self.materialize_due = false;
        let started = Instant::now();
        self.rebalance_long_keys().await?;
        let doc = self.doc.clone();
        let seq = self.watermark;
        let writer = self.last_writer;
        let (mut materializer, plan) = blocking(move || {
            let mut materializer = materializer;
            let txn = doc.transact();
            let blocks = crate::schema::read_blocks(&txn);
            let meta = crate::schema::read_meta_fields(&txn);
            let plan = materializer.plan(blocks, &meta, writer, seq);
            (materializer, plan)
        })
        .await?;
        let pool = &self.shared.pool;
        let result = if plan.is_empty() && plan.seq <= materializer.seq() {
            Ok(Applied::Written {
                rows: 0,
                deleted: 0,
                queued: 0,
                skipped: Vec::new(),
            })
        } else {
            materializer.apply(pool, plan).await
        };
        let metrics = &self.shared.metrics;
        match result {
            Ok(Applied::Written {
                rows,
                deleted,
                skipped,
                ..
            }) => {
                metrics
                    .materialize_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.materialized_rows.inc_by((rows + deleted) as u64);
                // The materializer tries a refused block again only once it changes, so each
                // refusal is logged and counted once.
                for block in skipped {
                    metrics.skipped_blocks.inc();
                    tracing::warn!(canvas_id = %self.canvas_id, block_id = %block.id,
                        error = %block.error, "a block's row was refused; the other blocks are written");
                }
            }
            Ok(Applied::Stale) => {
                // Another writer is at this position or ahead: learn its rows and position.
                match materializer.reload(pool).await {
                    Ok(()) => self.materialize_due = materializer.seq() < self.watermark,
                    Err(error) => {
                        tracing::warn!(canvas_id = %self.canvas_id, %error, "reading the rows failed");
                        self.materialize_due = true;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(canvas_id = %self.canvas_id, %error, "materialization failed; retrying");
                self.materialize_due = true;
            }
        }
        self.materializer = Some(materializer);
        Ok(())
    }

    fn compacted(&mut self, seq: i64, snapshot_bytes: usize, result: Result<bool, SyncError>) {
        self.compacting = false;
        match result {
            Ok(true) => {
                self.shared.metrics.compactions.inc();
                self.note_snapshot(seq, snapshot_bytes);
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(canvas_id = %self.canvas_id, %error, "compaction failed"),
        }
    }

    fn note_snapshot(&mut self, seq: i64, snapshot_bytes: usize) {
        if seq <= self.snapshot_seq {
            return;
        }
        self.snapshot_seq = seq;
        self.snapshot_bytes = snapshot_bytes;
        let kept = self.tail.split_off(&(seq + 1));
        let dropped = std::mem::replace(&mut self.tail, kept);
        self.tail_bytes -= dropped.values().sum::<usize>();
    }

    fn note_logged(&mut self, seq: i64, len: usize) {
        if seq > self.snapshot_seq && self.tail.insert(seq, len).is_none() {
            self.tail_bytes += len;
        }
    }

    fn compaction_due(&self) -> bool {
        let config = &self.shared.config;
        self.watermark > self.snapshot_seq
            && (self.tail.len() >= config.compact_after_updates
                || self.tail_bytes >= config.compact_after_bytes)
    }

    /// Starts a compaction in the background when the log has grown enough. The snapshot is
    /// encoded now, so it holds every update up to the watermark; the store refuses it if a
    /// newer snapshot got there first.
    async fn maybe_compact(&mut self) {
        if self.compacting || !self.compaction_due() {
            return;
        }
        let Some(mailbox) = self.mailbox.upgrade() else {
            return;
        };
        let Ok(snapshot) = self.encode_snapshot().await else {
            return;
        };
        self.compacting = true;
        let pool = self.shared.pool.clone();
        let canvas_id = self.canvas_id;
        let seq = self.watermark;
        tokio::spawn(async move {
            let result = store::compact(&pool, canvas_id, seq, &snapshot).await;
            let _ = mailbox
                .send(Command::Compacted {
                    seq,
                    snapshot_bytes: snapshot.len(),
                    result,
                })
                .await;
        });
    }

    /// Compacts before unloading, so the next load reads one snapshot instead of a log.
    async fn compact_now(&mut self) {
        if self.watermark <= self.snapshot_seq || self.tail.is_empty() {
            return;
        }
        let Ok(snapshot) = self.encode_snapshot().await else {
            return;
        };
        match store::compact(&self.shared.pool, self.canvas_id, self.watermark, &snapshot).await {
            Ok(true) => {
                self.shared.metrics.compactions.inc();
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(canvas_id = %self.canvas_id, %error, "compaction failed"),
        }
    }

    async fn encode_snapshot(&self) -> Result<Vec<u8>, Fatal> {
        let doc = self.doc.clone();
        blocking(move || {
            let txn = doc.transact();
            txn.encode_state_as_update_v1(&StateVector::default())
        })
        .await
    }
}
