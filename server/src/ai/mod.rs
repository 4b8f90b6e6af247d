//! The server side of the AI layer: its flags ([`config`]), the providers and retriever built
//! from them at start ([`AiState`]), the embedding worker task, and the routes
//! `GET /api/v1/ai/usage` ([`routes`]). Search modes live in [`crate::search`].

pub mod config;
pub mod routes;

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use potentia_ai::retrieval::Retriever;
use potentia_ai::worker::EmbeddingWorker;
use potentia_ai::{AiError, AiMetrics, ChatModel, Embedder, Providers};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::config::AiServerSettings;

/// The configured providers, shared by every handler and the worker.
#[derive(Clone)]
pub struct AiState {
    /// `None`: chat answers 503 `ai_not_configured`.
    pub chat: Option<Arc<dyn ChatModel>>,
    /// `None`: search is text only and nothing is embedded.
    pub embedder: Option<Arc<dyn Embedder>>,
    pub retriever: Retriever,
    pub metrics: AiMetrics,
    /// Query embeddings per user: a paid provider's cost must not be one user's to run up.
    query_embeds: Arc<DefaultKeyedRateLimiter<Uuid>>,
    settings: AiServerSettings,
}

impl AiState {
    /// Builds the providers; local models are loaded here (a second or two at start).
    pub fn new(
        settings: &AiServerSettings,
        db: PgPool,
        metrics: AiMetrics,
    ) -> Result<Self, AiError> {
        let providers = Providers::from_settings(&settings.ai, &metrics)?;
        match &providers.embedder {
            Some(embedder) => tracing::info!(
                provider = %embedder.provider(),
                model = embedder.model(),
                "embeddings on: semantic and hybrid search, the embedding worker runs"
            ),
            None => tracing::info!("no embedding provider: search is text only"),
        }
        match &providers.chat {
            Some(chat) => {
                tracing::info!(provider = %chat.provider(), model = chat.model(), "chat provider ready")
            }
            None => tracing::info!("no chat provider: chat answers 503 ai_not_configured"),
        }
        let retriever = Retriever::new(
            db,
            providers.embedder.clone(),
            metrics.clone(),
            settings.retrieval.clone(),
        );
        let quota = Quota::per_minute(
            NonZeroU32::new(settings.search_embeds_per_minute).unwrap_or(NonZeroU32::MIN),
        );
        Ok(Self {
            chat: providers.chat,
            embedder: providers.embedder,
            retriever,
            metrics,
            query_embeds: Arc::new(RateLimiter::keyed(quota)),
            settings: settings.clone(),
        })
    }

    /// Takes one query embedding from `user`'s budget of the minute; false when it is spent.
    pub fn take_query_embedding(&self, user: Uuid) -> bool {
        self.query_embeds.check_key(&user).is_ok()
    }

    /// Forgets users whose budgets are full again, so memory stays bounded.
    pub fn prune(&self) {
        self.query_embeds.retain_recent();
        self.query_embeds.shrink_to_fit();
    }

    /// The embedding worker, when an embedder is configured; it runs until `stop`.
    pub fn worker(&self, stop: CancellationToken) -> Option<impl std::future::Future<Output = ()>> {
        let embedder = self.embedder.clone()?;
        let worker = EmbeddingWorker::new(
            self.retriever.db().clone(),
            embedder,
            self.settings.ai.worker.clone(),
            self.metrics.clone(),
        );
        Some(worker.run(stop))
    }
}
