//! Real-time canvas sync over HTTP: the y-websocket endpoint (`/ws/canvas/{id}`), the HTTP
//! fallbacks (state, update push, presence, leave), their settings, and the access policy the
//! rooms re-check while connections stay open. The documents themselves live in
//! [`potentia_sync`]: this module authenticates, checks access and moves bytes.

pub mod routes;
pub mod socket;

use std::time::Duration;

use futures::future::BoxFuture;
use potentia_sync::{
    AccessPolicy, ConnectionLimits, MarkdownError, ProtocolLimits, RateLimit, Role, SchemaError,
    SyncConfig, SyncError,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{canvas_access, Access};
use crate::error::ApiError;

/// Flags of the sync endpoint and the rooms; every one is also an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Largest WebSocket frame (one y-protocol message), in bytes.
    #[arg(long, env = "POTENTIA_SYNC_MAX_FRAME_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub sync_max_frame_bytes: usize,
    /// Largest stored document (snapshot plus log), in bytes.
    #[arg(long, env = "POTENTIA_SYNC_MAX_DOCUMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub sync_max_document_bytes: usize,
    /// Most WebSocket connections to one canvas, per node.
    #[arg(
        long,
        env = "POTENTIA_SYNC_MAX_CONNECTIONS_PER_CANVAS",
        default_value_t = 500
    )]
    pub sync_max_connections_per_canvas: usize,
    /// Most WebSocket connections of one user, per node.
    #[arg(
        long,
        env = "POTENTIA_SYNC_MAX_CONNECTIONS_PER_USER",
        default_value_t = 100
    )]
    pub sync_max_connections_per_user: usize,
    /// Sustained updates per second one connection may send.
    #[arg(long, env = "POTENTIA_SYNC_UPDATES_PER_SECOND", default_value_t = 50.0)]
    pub sync_updates_per_second: f64,
    /// Updates one connection may send at once after a quiet period.
    #[arg(long, env = "POTENTIA_SYNC_UPDATE_BURST", default_value_t = 250.0)]
    pub sync_update_burst: f64,
    /// Sustained awareness updates per second one connection may send.
    #[arg(
        long,
        env = "POTENTIA_SYNC_AWARENESS_PER_SECOND",
        default_value_t = 30.0
    )]
    pub sync_awareness_per_second: f64,
    /// Frames queued for one connection before it counts as too slow and is closed.
    #[arg(long, env = "POTENTIA_SYNC_SEND_QUEUE_FRAMES", default_value_t = 2048)]
    pub sync_send_queue_frames: usize,
    /// Seconds an idle document stays loaded.
    #[arg(long, env = "POTENTIA_SYNC_UNLOAD_GRACE_SECS", default_value_t = 30)]
    pub sync_unload_grace_secs: u64,
    /// Milliseconds between re-checks of connected users' access.
    #[arg(long, env = "POTENTIA_SYNC_ACCESS_RECHECK_MS", default_value_t = 5000)]
    pub sync_access_recheck_ms: u64,
    /// Log entries after which a document is compacted into a snapshot.
    #[arg(
        long,
        env = "POTENTIA_SYNC_COMPACT_AFTER_UPDATES",
        default_value_t = 1000
    )]
    pub sync_compact_after_updates: usize,
    /// Seconds between WebSocket pings; a client silent for two intervals is disconnected.
    #[arg(long, env = "POTENTIA_SYNC_PING_SECS", default_value_t = 30)]
    pub sync_ping_secs: u64,
}

/// Validated sync settings.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub rooms: SyncConfig,
    pub ping_interval: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            rooms: SyncConfig::default(),
            ping_interval: Duration::from_secs(30),
        }
    }
}

impl SyncArgs {
    /// The settings, or the name of the first setting that is zero.
    pub fn validate(&self) -> Result<SyncSettings, &'static str> {
        let positive = [
            (
                "POTENTIA_SYNC_MAX_FRAME_BYTES",
                self.sync_max_frame_bytes as f64,
            ),
            (
                "POTENTIA_SYNC_MAX_DOCUMENT_BYTES",
                self.sync_max_document_bytes as f64,
            ),
            (
                "POTENTIA_SYNC_MAX_CONNECTIONS_PER_CANVAS",
                self.sync_max_connections_per_canvas as f64,
            ),
            (
                "POTENTIA_SYNC_MAX_CONNECTIONS_PER_USER",
                self.sync_max_connections_per_user as f64,
            ),
            (
                "POTENTIA_SYNC_UPDATES_PER_SECOND",
                self.sync_updates_per_second,
            ),
            ("POTENTIA_SYNC_UPDATE_BURST", self.sync_update_burst),
            (
                "POTENTIA_SYNC_AWARENESS_PER_SECOND",
                self.sync_awareness_per_second,
            ),
            (
                "POTENTIA_SYNC_SEND_QUEUE_FRAMES",
                self.sync_send_queue_frames as f64,
            ),
            (
                "POTENTIA_SYNC_ACCESS_RECHECK_MS",
                self.sync_access_recheck_ms as f64,
            ),
            (
                "POTENTIA_SYNC_COMPACT_AFTER_UPDATES",
                self.sync_compact_after_updates as f64,
            ),
            ("POTENTIA_SYNC_PING_SECS", self.sync_ping_secs as f64),
        ];
        if let Some((name, _)) = positive
            .iter()
            .find(|(_, value)| value.is_nan() || *value <= 0.0)
        {
            return Err(name);
        }
        let defaults = SyncConfig::default();
        let connection = ConnectionLimits {
            protocol: ProtocolLimits {
                max_frame_bytes: self.sync_max_frame_bytes,
                ..defaults.connection.protocol
            },
            updates: RateLimit::new(self.sync_updates_per_second, self.sync_update_burst),
            awareness: RateLimit::new(
                self.sync_awareness_per_second,
                self.sync_awareness_per_second * 4.0,
            ),
            ..defaults.connection
        };
        Ok(SyncSettings {
            rooms: SyncConfig {
                connection,
                max_document_bytes: self.sync_max_document_bytes,
                max_connections_per_canvas: self.sync_max_connections_per_canvas,
                max_connections_per_user: self.sync_max_connections_per_user,
                send_queue_frames: self.sync_send_queue_frames,
                unload_grace: Duration::from_secs(self.sync_unload_grace_secs),
                access_recheck: Duration::from_millis(self.sync_access_recheck_ms),
                compact_after_updates: self.sync_compact_after_updates,
                ..defaults
            },
            ping_interval: Duration::from_secs(self.sync_ping_secs),
        })
    }
}

/// What a level of canvas access allows on the document: writers write, everyone else who
/// can read (viewers, commenters) receives everything and writes nothing.
pub fn document_role(access: Access) -> Option<Role> {
    match access {
        Access::None => None,
        Access::Read | Access::Comment => Some(Role::ReadOnly),
        Access::Write | Access::Admin => Some(Role::ReadWrite),
    }
}

/// The access rules of `crate::access`, asked again by the rooms while connections stay open.
pub struct CanvasAccessPolicy {
    pub db: PgPool,
}

impl AccessPolicy for CanvasAccessPolicy {
    fn role(
        &self,
        canvas_id: Uuid,
        user_id: Uuid,
    ) -> BoxFuture<'static, Result<Option<Role>, SyncError>> {
        let db = self.db.clone();
        Box::pin(async move {
            let found = canvas_access(&db, user_id, canvas_id).await?;
            Ok(found.and_then(|a| document_role(a.access)))
        })
    }
}

impl From<SyncError> for ApiError {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Protocol(inner) => {
                ApiError::bad_request("invalid_sync_payload", inner.to_string())
            }
            SyncError::Database(inner) => ApiError::Database(inner),
            SyncError::MissingDependencies => {
                ApiError::bad_request("missing_dependencies", error.to_string())
            }
            SyncError::DocumentTooLarge { .. } => ApiError::TooLarge {
                code: "document_too_large",
                detail: error.to_string(),
            },
            SyncError::ReadOnly => ApiError::Forbidden {
                code: "insufficient_role",
                detail: error.to_string(),
            },
            SyncError::PresenceConflict { .. } => {
                ApiError::conflict("presence_conflict", error.to_string())
            }
            SyncError::UnknownBlock => ApiError::NotFound { what: "block" },
            SyncError::StaleVersion { ref current, .. } => ApiError::VersionConflict {
                detail: error.to_string(),
                current: serde_json::to_value(crate::blocks::routes::Block::from(
                    (**current).clone(),
                ))
                .unwrap_or(serde_json::Value::Null),
            },
            SyncError::Schema(SchemaError::DuplicateId(_)) => {
                ApiError::conflict("block_exists", error.to_string())
            }
            SyncError::Schema(SchemaError::TooDeep { .. }) => {
                ApiError::invalid_field("parent_id", error.to_string())
            }
            SyncError::Schema(_) => ApiError::Validation {
                detail: error.to_string(),
                errors: Vec::new(),
            },
            SyncError::Markdown(MarkdownError::TooLarge { .. }) => ApiError::TooLarge {
                code: "markdown_too_large",
                detail: error.to_string(),
            },
            SyncError::Markdown(_) => ApiError::invalid_field("markdown", error.to_string()),
            SyncError::CanvasFull { .. } | SyncError::UserConnectionLimit { .. } => {
                ApiError::RateLimited {
                    retry_after_secs: 5,
                }
            }
            SyncError::LoadFailed(_) | SyncError::Unavailable(_) => ApiError::Unavailable {
                code: "document_unavailable",
                detail: error.to_string(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}
