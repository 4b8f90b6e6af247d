//! Cross-node fan-out (ARCHITECTURE §6): committed updates and awareness changes published on
//! Redis, one channel per canvas, and applied by every other node that has the canvas loaded.
//!
//! Redis is only a fast path. Every update message carries the sequence numbers the log gave
//! it; a node that sees a gap (a lost message, a reconnect, a node that joined late) reads the
//! missing range from Postgres. Awareness is best-effort: states expire unless renewed.
//!
//! Wire format of a message (channel `potentia:sync:<canvas id>`):
//!
//! ```text
//! updates:   0x01, node id (16 bytes), first seq (varint), count (varint), count × var bytes
//! awareness: 0x02, node id (16 bytes), awareness update (rest of the message)
//! ```

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::wire::{write_var_bytes, write_var_u64, Reader};

const CHANNEL_PREFIX: &str = "potentia:sync:";
const KIND_UPDATES: u8 = 1;
const KIND_AWARENESS: u8 = 2;
/// Messages waiting to be published; beyond this, messages are dropped and the other nodes
/// catch up from Postgres (updates) or miss a cursor move (awareness).
const PUBLISH_QUEUE: usize = 16_384;

/// A message from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteMessage {
    /// Updates that node committed, numbered `first_seq..`.
    Updates { first_seq: i64, updates: Vec<Bytes> },
    /// An awareness update (v1 awareness encoding) from that node's clients.
    Awareness(Bytes),
}

impl RemoteMessage {
    /// Encodes this message as `node`'s.
    pub fn encode(&self, node: Uuid) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Updates { first_seq, updates } => {
                out.push(KIND_UPDATES);
                out.extend_from_slice(node.as_bytes());
                write_var_u64(&mut out, u64::try_from(*first_seq).unwrap_or(0));
                write_var_u64(&mut out, updates.len() as u64);
                for update in updates {
                    write_var_bytes(&mut out, update);
                }
            }
            Self::Awareness(update) => {
                out.push(KIND_AWARENESS);
                out.extend_from_slice(node.as_bytes());
                out.extend_from_slice(update);
            }
        }
        out
    }

    /// Decodes a message and the node that sent it; `None` for anything malformed.
    pub fn decode(payload: &[u8]) -> Option<(Uuid, Self)> {
        let mut reader = Reader::new(payload);
        let kind = reader.read_u8().ok()?;
        let node = Uuid::from_slice(reader.read_exact(16).ok()?).ok()?;
        match kind {
            KIND_UPDATES => {
                let first_seq = i64::try_from(reader.read_var_u64().ok()?).ok()?;
                let count = reader.read_count(1).ok()?;
                let mut updates = Vec::with_capacity(count);
                for _ in 0..count {
                    updates.push(Bytes::copy_from_slice(reader.read_var_bytes().ok()?));
                }
                reader.finish().ok()?;
                Some((node, Self::Updates { first_seq, updates }))
            }
            KIND_AWARENESS => {
                let rest = reader.read_exact(reader.remaining()).ok()?;
                Some((node, Self::Awareness(Bytes::copy_from_slice(rest))))
            }
            _ => None,
        }
    }
}

fn channel(canvas_id: Uuid) -> String {
    format!("{CHANNEL_PREFIX}{canvas_id}")
}

/// Where committed updates go besides this node's own connections.
#[derive(Debug, Clone)]
pub enum Fanout {
    /// One node: nothing to publish.
    InProcess,
    /// Several nodes sharing Redis.
    Redis(RedisFanout),
}

impl Fanout {
    /// Publishes `message` for `canvas_id` to the other nodes (in order, without waiting).
    pub fn publish(&self, canvas_id: Uuid, message: &RemoteMessage) {
        if let Self::Redis(redis) = self {
            let payload = message.encode(redis.node_id);
            if redis.queue.try_send((channel(canvas_id), payload)).is_err() {
                tracing::warn!(%canvas_id, "fan-out queue full: other nodes will catch up from Postgres");
            }
        }
    }

    /// Whether other nodes may write the same documents.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }
}

/// The Redis side of [`Fanout`]: a publisher task fed by a queue (publishing in order) and
/// this node's id, which its subscriber uses to skip its own messages.
#[derive(Debug, Clone)]
pub struct RedisFanout {
    node_id: Uuid,
    queue: mpsc::Sender<(String, Vec<u8>)>,
}

/// What the subscriber hands to the rooms.
pub trait RemoteSink: Send + Sync + 'static {
    /// A message from another node for `canvas_id` (ignored unless the canvas is loaded here).
    fn deliver(&self, canvas_id: Uuid, message: RemoteMessage);
    /// The subscription was re-established: messages may have been missed.
    fn resubscribed(&self);
}

impl RedisFanout {
    /// Starts the publisher and the subscriber on `client`; both stop with `stop`.
    pub fn start(
        client: redis::Client,
        node_id: Uuid,
        sink: std::sync::Arc<dyn RemoteSink>,
        stop: CancellationToken,
    ) -> Self {
        let (queue, rx) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_loop(client.clone(), rx, stop.clone()));
        tokio::spawn(subscribe_loop(client, node_id, sink, stop));
        Self { node_id, queue }
    }

    /// This node's id.
    pub fn node_id(&self) -> Uuid {
        self.node_id
    }
}

async fn publish_loop(
    client: redis::Client,
    mut rx: mpsc::Receiver<(String, Vec<u8>)>,
    stop: CancellationToken,
) {
    let mut connection = None;
    loop {
        let (channel, payload) = tokio::select! {
            _ = stop.cancelled() => return,
            next = rx.recv() => match next { Some(next) => next, None => return },
        };
        if connection.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => connection = Some(c),
                Err(error) => {
                    tracing::warn!(%error, "fan-out: cannot connect to Redis; message dropped");
                    continue;
                }
            }
        }
        if let Some(conn) = connection.as_mut() {
            let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(payload)
                .query_async(conn)
                .await;
            if let Err(error) = published {
                tracing::warn!(%error, "fan-out: publish failed; other nodes will catch up from Postgres");
                connection = None;
            }
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    node_id: Uuid,
    sink: std::sync::Arc<dyn RemoteSink>,
    stop: CancellationToken,
) {
    // Messages published while unsubscribed are lost: after every reconnect the rooms catch
    // up from Postgres.
    let mut first = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                backoff = Duration::from_millis(100);
                if !first {
                    sink.resubscribed();
                }
                first = false;
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        _ = stop.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    let Some(canvas_id) = message
                        .get_channel_name()
                        .strip_prefix(CHANNEL_PREFIX)
                        .and_then(|id| Uuid::parse_str(id).ok())
                    else {
                        continue;
                    };
                    match RemoteMessage::decode(message.get_payload_bytes()) {
                        Some((from, _)) if from == node_id => {}
                        Some((_, remote)) => sink.deliver(canvas_id, remote),
                        None => tracing::warn!(%canvas_id, "fan-out: malformed message ignored"),
                    }
                }
                tracing::warn!("fan-out: Redis subscription ended; reconnecting");
            }
            Err(error) => {
                tracing::warn!(%error, "fan-out: cannot subscribe on Redis; retrying");
                first = false;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_messages_round_trip() {
        let node = Uuid::new_v4();
        let message = RemoteMessage::Updates {
            first_seq: 42,
            updates: vec![Bytes::from_static(b"\x00\x00"), Bytes::from_static(b"abc")],
        };
        assert_eq!(
            RemoteMessage::decode(&message.encode(node)),
            Some((node, message))
        );
    }

    #[test]
    fn awareness_messages_round_trip() {
        let node = Uuid::new_v4();
        let message = RemoteMessage::Awareness(Bytes::from_static(b"\x01\x02\x03"));
        assert_eq!(
            RemoteMessage::decode(&message.encode(node)),
            Some((node, message))
        );
    }

    #[test]
    fn malformed_messages_decode_to_nothing() {
        let node = Uuid::new_v4();
        let mut encoded = RemoteMessage::Updates {
            first_seq: 1,
            updates: vec![Bytes::from_static(b"xyz")],
        }
        .encode(node);
        encoded.pop();
        assert_eq!(RemoteMessage::decode(&encoded), None);
        assert_eq!(RemoteMessage::decode(&[9; 20]), None);
        assert_eq!(RemoteMessage::decode(&[]), None);
    }
}
