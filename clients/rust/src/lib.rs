//! The Rust client of Potentia's canvas sync: a [`yrs::Doc`] kept in sync with the server over
//! the y-websocket protocol (ARCHITECTURE §3), the way the stock JS `WebsocketProvider` does.
//!
//! A [`SyncClient`] owns its document across connections: edits made while disconnected stay
//! in the document and reach the server on the next [`SyncClient::connect`] through the sync
//! handshake (step 1 / step 2), so nothing is lost offline. Every local transaction is sent as
//! one update frame; remote updates are applied with [`REMOTE_ORIGIN`] so they are not echoed.
//!
//! Also the library of the load generator (`potentia-load`).

pub mod load;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use potentia_sync::protocol::{
    encode_awareness, encode_sync_step1, encode_sync_step2, encode_sync_update,
};
use potentia_sync::{AuthMessage, Message as SyncFrame, ProtocolLimits, SyncMessage};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// The transaction origin of updates that came from the server.
pub const REMOTE_ORIGIN: &str = "potentia-remote";

/// What the client has seen on its current (or last) connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionState {
    /// The server's step 2 arrived: the client holds everything the server had at connect.
    pub synced: bool,
    /// The close frame's code and reason, once the connection ended.
    pub closed: Option<(u16, String)>,
    /// Reasons of auth (permission denied) messages received.
    pub denied: Vec<String>,
    /// Awareness frames received.
    pub awareness_frames: u64,
    /// The last awareness payload received (v1 awareness encoding).
    pub last_awareness: Option<Vec<u8>>,
    /// Update frames (step 2 and update) received.
    pub updates_received: u64,
}

struct Shared {
    state: Mutex<ConnectionState>,
    changed: Notify,
    outgoing: Mutex<Option<mpsc::UnboundedSender<Message>>>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut ConnectionState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_waiters();
    }

    fn send(&self, message: Message) -> bool {
        let outgoing = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        outgoing.as_ref().is_some_and(|tx| tx.send(message).is_ok())
    }
}

/// A document synced with one canvas. See the module documentation.
pub struct SyncClient {
    doc: Doc,
    url: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl SyncClient {
    /// A client for the canvas at `url` (`ws://host/ws/canvas/<id>?token=…`) with a fresh
    /// document; not connected yet.
    pub fn new(url: impl Into<String>) -> anyhow::Result<Self> {
        Self::with_doc(url, Doc::new())
    }

    /// A client for `url` syncing `doc`.
    pub fn with_doc(url: impl Into<String>, doc: Doc) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(ConnectionState::default()),
            changed: Notify::new(),
            outgoing: Mutex::new(None),
        });
        let observer = Arc::clone(&shared);
        doc.observe_update_v1("potentia-client", move |txn, event| {
            let remote = txn
                .origin()
                .is_some_and(|origin| origin.as_ref() == REMOTE_ORIGIN.as_bytes());
            if !remote {
                // Offline: the edit stays in the document and goes out with the next handshake.
                observer.send(Message::Binary(Bytes::from(encode_sync_update(
                    &event.update,
                ))));
            }
        })
        .map_err(|e| anyhow!("cannot observe the document: {e}"))?;
        Ok(Self {
            doc,
            url: url.into(),
            shared,
            tasks: Vec::new(),
        })
    }

    /// Connects and starts syncing: sends step 1, answers the server's step 1, applies what
    /// arrives. Returns once the socket is open (see [`Self::wait_synced`]).
    pub async fn connect(&mut self) -> anyhow::Result<()> {
        self.disconnect().await;
        let (socket, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        self.shared
            .update(|state| *state = ConnectionState::default());
        *self
            .shared
            .outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        let step1 = encode_sync_step1(&self.doc.transact().state_vector().encode_v1());
        let _ = tx.send(Message::Binary(Bytes::from(step1)));

        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let doc = self.doc.clone();
        let shared = Arc::clone(&self.shared);
        let reader = tokio::spawn(async move {
            let limits = ProtocolLimits {
                max_frame_bytes: usize::MAX,
                ..ProtocolLimits::default()
            };
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Binary(frame)) => handle_frame(&doc, &shared, &tx, &frame, &limits),
                    Ok(Message::Close(frame)) => {
                        let closed = frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                        shared.update(|state| state.closed = Some(closed));
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        shared.update(|state| state.closed = Some((1006, error.to_string())));
                        break;
                    }
                }
            }
            shared.update(|state| {
                state.closed.get_or_insert((1006, "connection lost".into()));
            });
            *shared.outgoing.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
        self.tasks = vec![writer, reader];
        Ok(())
    }

    /// Closes the connection (1000); the document stays and keeps local edits.
    pub async fn disconnect(&mut self) {
        let sent = self.shared.send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            },
        )));
        *self
            .shared
            .outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        for task in self.tasks.drain(..) {
            if sent {
                let abort = task.abort_handle();
                if tokio::time::timeout(Duration::from_secs(2), task)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            } else {
                task.abort();
            }
        }
    }

    /// Drops the connection without a close frame (a crash or a lost network).
    pub fn drop_connection(&mut self) {
        *self
            .shared
            .outgoing
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Points the next [`Self::connect`] at another URL (another node, a restarted server).
    pub fn set_url(&mut self, url: impl Into<String>) {
        self.url = url.into();
    }

    /// The document.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// What the current (or last) connection has seen.
    pub fn state(&self) -> ConnectionState {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends a raw frame (tests: malformed input).
    pub fn send_raw(&self, frame: Vec<u8>) -> bool {
        self.shared.send(Message::Binary(Bytes::from(frame)))
    }

    /// Sends a text frame (tests: the protocol is binary-only).
    pub fn send_text(&self, text: &str) -> bool {
        self.shared.send(Message::Text(text.into()))
    }

    /// Sends an awareness update (v1 awareness encoding).
    pub fn send_awareness(&self, update: &[u8]) -> bool {
        self.shared
            .send(Message::Binary(Bytes::from(encode_awareness(update))))
    }

    /// Waits until `done` holds for the connection state or the document, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&ConnectionState, &Doc) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if done(&self.state(), &self.doc) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                if done(&self.state(), &self.doc) {
                    return Ok(());
                }
                return Err(anyhow!(
                    "timed out after {timeout:?}; state: {:?}",
                    self.state()
                ));
            }
        }
    }

    /// Waits for the server's step 2.
    pub async fn wait_synced(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for(timeout, |state, _| state.synced || state.closed.is_some())
            .await?;
        match self.state().closed {
            Some((code, reason)) if !self.state().synced => {
                Err(anyhow!("closed before syncing: {code} {reason}"))
            }
            _ => Ok(()),
        }
    }

    /// Waits for the connection to end; answers its close code and reason.
    pub async fn wait_closed(&self, timeout: Duration) -> anyhow::Result<(u16, String)> {
        self.wait_for(timeout, |state, _| state.closed.is_some())
            .await?;
        self.state().closed.ok_or_else(|| anyhow!("not closed"))
    }
}

impl Drop for SyncClient {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

fn handle_frame(
    doc: &Doc,
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Message>,
    frame: &[u8],
    limits: &ProtocolLimits,
) {
    let Ok(message) = SyncFrame::decode(frame, limits) else {
        tracing::warn!("malformed frame from the server ignored");
        return;
    };
    match message {
        SyncFrame::Sync(SyncMessage::Step1(state_vector)) => {
            let diff = doc
                .transact()
                .encode_state_as_update_v1(state_vector.state_vector());
            let _ = tx.send(Message::Binary(Bytes::from(encode_sync_step2(&diff))));
        }
        SyncFrame::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update)) => {
            let step2 = matches!(message_kind(frame), Some(1));
            if let Ok(decoded) = Update::decode_v1(update.bytes()) {
                let mut txn = doc.transact_mut_with(REMOTE_ORIGIN);
                if let Err(error) = txn.apply_update(decoded) {
                    tracing::warn!(%error, "update from the server did not apply");
                }
            }
            shared.update(|state| {
                state.updates_received += 1;
                if step2 {
                    state.synced = true;
                }
            });
        }
        SyncFrame::Awareness(update) => {
            shared.update(|state| {
                state.awareness_frames += 1;
                state.last_awareness = Some(update.bytes().to_vec());
            });
        }
        SyncFrame::Auth(AuthMessage::PermissionDenied { reason }) => {
            shared.update(|state| state.denied.push(reason));
        }
        SyncFrame::QueryAwareness => {}
    }
}

/// The sync sub-type of a sync frame (0 step 1, 1 step 2, 2 update).
fn message_kind(frame: &[u8]) -> Option<u8> {
    match frame {
        [0, kind, ..] => Some(*kind),
        _ => None,
    }
}

/// The state vector of `doc`, v1-encoded.
pub fn state_vector(doc: &Doc) -> Vec<u8> {
    doc.transact().state_vector().encode_v1()
}

/// Everything `doc` holds as one v1 update.
pub fn full_update(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}
