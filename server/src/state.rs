//! Shared state of a running server, cloned into every handler.

use std::sync::Arc;

use potentia_sync::{Rooms, SyncMetrics};
use sqlx::PgPool;

use potentia_ai::AiMetrics;

use crate::ai::AiState;
use crate::auth::{AuthRateLimits, JwtKeys, KnownUsers, SessionEnds};
use crate::calendars::cache::FreeBusyCache;
use crate::canvas_sync::CanvasAccessPolicy;
use crate::config::Settings;
use crate::email::EmailOutbox;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    /// Present when `REDIS_URL` is configured.
    pub redis: Option<redis::Client>,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    pub auth_limits: Arc<AuthRateLimits>,
    pub known_users: Arc<KnownUsers>,
    /// Users whose address an external token already vouched for (no write on each request).
    pub known_verified: Arc<KnownUsers>,
    /// Sessions with open canvas sockets on this node, ended by a sign-out.
    pub sessions: Arc<SessionEnds>,
    /// Queue mail with it, and wake this node's sender after the transaction commits.
    pub outbox: EmailOutbox,
    /// The canvases' live documents on this node.
    pub rooms: Rooms,
    /// Calendars' free/busy in Redis (a no-op without Redis).
    pub calendar_cache: FreeBusyCache,
    /// Chat and embedding providers, retrieval.
    pub ai: AiState,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("REDIS_URL: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Ai(#[from] potentia_ai::AiError),
}

impl AppState {
    /// Must be called inside a Tokio runtime (the rooms' fan-out starts its tasks here). Loads
    /// the configured local models.
    pub fn new(settings: Settings, db: PgPool) -> Result<Self, StateError> {
        let redis = settings
            .redis_url
            .as_deref()
            .map(redis::Client::open)
            .transpose()?;
        let sync_metrics = SyncMetrics::default();
        let ai_metrics = AiMetrics::default();
        let ai = AiState::new(&settings.ai, db.clone(), ai_metrics.clone())?;
        let rooms = Rooms::new(
            db.clone(),
            settings.sync.rooms.clone(),
            Arc::new(CanvasAccessPolicy { db: db.clone() }),
            redis.clone(),
            sync_metrics.clone(),
        );
        Ok(Self {
            db,
            calendar_cache: FreeBusyCache::new(redis.clone()),
            redis,
            rooms,
            jwt: Arc::new(JwtKeys::new(&settings.auth)),
            auth_limits: Arc::new(AuthRateLimits::new(&settings.auth)),
            metrics: Arc::new(Metrics::new(&sync_metrics, &ai_metrics)),
            ai,
            known_users: Arc::new(KnownUsers::default()),
            known_verified: Arc::new(KnownUsers::default()),
            sessions: Arc::new(SessionEnds::default()),
            outbox: EmailOutbox::for_settings(settings.smtp.as_ref()),
            settings: Arc::new(settings),
        })
    }
}
