//! The server side of the AI layer: its flags ([`config`]), the providers and retriever built
//! from them at start ([`AiState`]), the embedding worker task, and the routes
//! `GET /api/v1/ai/usage` ([`routes`]). Search modes live in [`crate::search`].

pub mod config;
pub mod routes;

use std::sync::Arc;

use potentia_ai::retrieval::Retriever;
use potentia_ai::worker::EmbeddingWorker;
use potentia_ai::{AiError, AiMetrics, ChatModel, Embedder, Providers};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

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
        Ok(Self {
            chat: providers.chat,
            embedder: providers.embedder,
            retriever,
            metrics,
            settings: settings.clone(),
        })
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
