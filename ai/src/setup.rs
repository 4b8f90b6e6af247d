//! [`Providers`]: the configured chat model and embedder, built once at start from
//! [`AiSettings`]. Remote providers share one [`Resilience`] guard each; local models are loaded
//! from their files here.

use std::cell::OnceCell;
use std::sync::Arc;

use crate::chat::ChatModel;
use crate::embed::Embedder;
use crate::error::AiError;
use crate::local::{MiniLmEmbedder, SmolLmChat};
use crate::metrics::AiMetrics;
use crate::providers::{GeminiChat, GeminiEmbedder, OpenAiChat, OpenAiEmbedder};
use crate::resilience::Resilience;
use crate::settings::{AiSettings, ChatProviderSettings, EmbeddingProviderSettings, ProviderKind};

/// What the server talks to; `None` where nothing is configured.
#[derive(Clone)]
pub struct Providers {
    pub chat: Option<Arc<dyn ChatModel>>,
    pub embedder: Option<Arc<dyn Embedder>>,
}

impl Providers {
    pub fn from_settings(settings: &AiSettings, metrics: &AiMetrics) -> Result<Self, AiError> {
        // One guard per provider, made on first use: its breaker and concurrency cap cover chat
        // and embeddings alike, as they share the provider's quota and availability.
        let gemini = OnceCell::new();
        let openai = OnceCell::new();
        let guard = |kind: ProviderKind| {
            let cell = match kind {
                ProviderKind::Gemini => &gemini,
                ProviderKind::OpenAi | ProviderKind::Local => &openai,
            };
            Arc::clone(cell.get_or_init(|| {
                Arc::new(Resilience::new(
                    kind,
                    settings.resilience.clone(),
                    metrics.clone(),
                ))
            }))
        };
        let chat: Option<Arc<dyn ChatModel>> = match &settings.chat {
            None => None,
            Some(ChatProviderSettings::Gemini(endpoint)) => Some(Arc::new(GeminiChat::new(
                endpoint.clone(),
                guard(ProviderKind::Gemini),
            )?)),
            Some(ChatProviderSettings::OpenAi(endpoint)) => Some(Arc::new(OpenAiChat::new(
                endpoint.clone(),
                guard(ProviderKind::OpenAi),
            )?)),
            Some(ChatProviderSettings::Local { gguf }) => {
                Some(Arc::new(SmolLmChat::load(gguf, metrics.clone())?))
            }
        };
        let embedder: Option<Arc<dyn Embedder>> = match &settings.embeddings {
            None => None,
            Some(EmbeddingProviderSettings::Gemini(endpoint)) => Some(Arc::new(
                GeminiEmbedder::new(endpoint.clone(), guard(ProviderKind::Gemini))?,
            )),
            Some(EmbeddingProviderSettings::OpenAi {
                endpoint,
                dimensions,
            }) => Some(Arc::new(OpenAiEmbedder::new(
                endpoint.clone(),
                *dimensions,
                guard(ProviderKind::OpenAi),
            )?)),
            Some(EmbeddingProviderSettings::Local { model_dir }) => {
                Some(Arc::new(MiniLmEmbedder::load(model_dir, metrics.clone())?))
            }
        };
        Ok(Self { chat, embedder })
    }
}
