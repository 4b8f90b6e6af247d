//! The crate's one error type. `potentia-server` maps each variant to problem+json:
//! [`AiError::NotConfigured`] → 503 `ai_not_configured`, [`AiError::Unavailable`] → 503
//! `ai_unavailable` with `Retry-After`, [`AiError::Rejected`] → 422 `ai_rejected`,
//! [`AiError::NotFound`] → 404, [`AiError::TurnInProgress`] → 409 `turn_in_progress`,
//! [`AiError::Database`] → 500.
//!
//! Messages never carry an API key, a request body or a provider's raw response beyond a short,
//! sanitized reason.

use std::time::Duration;

use crate::settings::ProviderKind;

#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// No provider of this kind is configured (`what`: `chat` or `embeddings`).
    #[error("no {what} provider is configured")]
    NotConfigured { what: &'static str },
    /// The provider cannot answer now: timeout, connection failure, 429/5xx, a malformed or cut
    /// response, an open circuit breaker, a refused key. Worth retrying after `retry_after`.
    #[error("{provider} is unavailable: {reason}")]
    Unavailable {
        provider: ProviderKind,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused this input for good (a 4xx other than 429, a safety block); the
    /// reason is the provider's, shortened.
    #[error("{provider} rejected the request: {reason}")]
    Rejected {
        provider: ProviderKind,
        reason: String,
    },
    /// A local model's files are missing or unreadable (at start, never per request).
    #[error("cannot load the local model at {path}: {reason}")]
    ModelLoad { path: String, reason: String },
    /// A conversation, message or memory that does not exist or is not the caller's.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The same message (`client_message_id`) is being answered by another request right now.
    #[error("this message is still being answered; retry in a moment")]
    TurnInProgress,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl AiError {
    pub fn unavailable(provider: ProviderKind, reason: impl Into<String>) -> Self {
        Self::Unavailable {
            provider,
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn rejected(provider: ProviderKind, reason: impl Into<String>) -> Self {
        Self::Rejected {
            provider,
            reason: reason.into(),
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Database(_))
    }
}
