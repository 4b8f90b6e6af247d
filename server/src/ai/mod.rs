//! The server side of the AI layer: its flags ([`config`]), the providers, retriever and chat
//! pipeline built from them at start ([`AiState`]), the embedding and chat-job workers, the
//! tools the pipeline runs ([`host`]), and the routes `GET /api/v1/ai/usage` ([`routes`]) and
//! `/api/v1/workspaces/{id}/ai-roles` ([`roles`]). Search modes live in [`crate::search`];
//! conversations and memories in [`crate::conversations`] and [`crate::memories`].

pub mod config;
pub mod host;
pub mod roles;
pub mod routes;

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use potentia_ai::assistant::jobs::ChatJobWorker;
use potentia_ai::assistant::{Assistant, Clock, SystemClock};
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
    /// The chat pipeline (judge, specialist, assessor).
    pub assistant: Assistant,
    pub metrics: AiMetrics,
    /// Chat turns per user: each costs up to three model calls.
    turns: Arc<DefaultKeyedRateLimiter<Uuid>>,
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
            db.clone(),
            providers.embedder.clone(),
            metrics.clone(),
            settings.retrieval.clone(),
        );
        let quota = Quota::per_minute(
            NonZeroU32::new(settings.search_embeds_per_minute).unwrap_or(NonZeroU32::MIN),
        );
        let turns = Quota::per_minute(
            NonZeroU32::new(settings.turns_per_minute).unwrap_or(NonZeroU32::MIN),
        );
        let clock: Arc<dyn Clock> = match &settings.clock {
            Some(manual) => Arc::new(manual.clone()),
            None => Arc::new(SystemClock),
        };
        let assistant = Assistant::new(
            db,
            providers.chat.clone(),
            providers.embedder.clone(),
            retriever.clone(),
            clock,
            settings.assistant.clone(),
        );
        Ok(Self {
            chat: providers.chat,
            embedder: providers.embedder,
            retriever,
            assistant,
            metrics,
            turns: Arc::new(RateLimiter::keyed(turns)),
            query_embeds: Arc::new(RateLimiter::keyed(quota)),
            settings: settings.clone(),
        })
    }

    /// Takes one query embedding from `user`'s budget of the minute; false when it is spent.
    pub fn take_query_embedding(&self, user: Uuid) -> bool {
        self.query_embeds.check_key(&user).is_ok()
    }

    /// Takes one chat turn from `user`'s budget of the minute; `Err` holds the seconds until
    /// the next one.
    pub fn take_turn(&self, user: Uuid) -> Result<(), u64> {
        self.turns.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs().max(1)
        })
    }

    /// Forgets users whose budgets are full again, so memory stays bounded.
    pub fn prune(&self) {
        self.query_embeds.retain_recent();
        self.query_embeds.shrink_to_fit();
        self.turns.retain_recent();
        self.turns.shrink_to_fit();
    }

    /// The worker of the jobs that follow an answer (assessment, titles), when chat is on.
    pub fn chat_worker(
        &self,
        stop: CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()>> {
        self.chat.as_ref()?;
        let worker = ChatJobWorker::new(
            self.assistant.clone(),
            self.settings.ai.worker.poll_interval,
        );
        Some(worker.run(stop))
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
