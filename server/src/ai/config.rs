//! The AI flags of `potentia serve` (and of `potentia ai …`), each also an environment
//! variable, validated into [`potentia_ai::settings::AiSettings`] and
//! [`potentia_ai::retrieval::RetrievalSettings`]. Keys are read from the environment or a flag,
//! never echoed: `hide_env_values` keeps them out of `--help`, and [`ApiKey`] out of logs.

use std::path::PathBuf;
use std::time::Duration;

use potentia_ai::assistant::judge::JudgeSettings;
use potentia_ai::assistant::{AssistantSettings, ManualClock};
use potentia_ai::retrieval::RetrievalSettings;
use potentia_ai::settings::{
    AiSettings, ApiKey, ChatProviderSettings, EmbeddingProviderSettings, RemoteEndpoint,
    ResilienceSettings, WorkerSettings,
};

/// Gemini's REST base, the default `--ai-*-base-url` of the Gemini providers.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";
/// OpenAI's REST base, the default for the OpenAI-compatible providers.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// A provider as the flags name it: the same four for chat and for embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderArg {
    None,
    Gemini,
    Openai,
    Local,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AiArgs {
    /// Chat provider; `none` answers chat requests with 503 `ai_not_configured`.
    #[arg(
        long,
        env = "POTENTIA_AI_CHAT_PROVIDER",
        value_enum,
        default_value = "none"
    )]
    pub ai_chat_provider: ProviderArg,
    /// Chat model name (default: `gemini-2.5-flash` for Gemini, `gpt-4o-mini` for OpenAI).
    #[arg(long, env = "POTENTIA_AI_CHAT_MODEL")]
    pub ai_chat_model: Option<String>,
    /// Chat API base URL (Gemini's or OpenAI's by default; e.g. `http://localhost:11434/v1` for Ollama).
    #[arg(long, env = "POTENTIA_AI_CHAT_BASE_URL")]
    pub ai_chat_base_url: Option<String>,
    /// Chat API key (required for Gemini; optional for OpenAI-compatible servers).
    #[arg(long, env = "POTENTIA_AI_CHAT_API_KEY", hide_env_values = true)]
    pub ai_chat_api_key: Option<String>,
    /// The SmolLM2 GGUF file of the `local` chat provider (`scripts/models.sh chat-gguf`).
    #[arg(long, env = "POTENTIA_AI_CHAT_GGUF")]
    pub ai_chat_gguf: Option<PathBuf>,

    /// Embedding provider; by default `local` when a local model folder is given, else `none`
    /// (search is text only).
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_PROVIDER", value_enum)]
    pub ai_embedding_provider: Option<ProviderArg>,
    /// Embedding model name (default: `text-embedding-004` for Gemini, `text-embedding-3-small` for OpenAI).
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_MODEL")]
    pub ai_embedding_model: Option<String>,
    /// Embedding API base URL.
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_BASE_URL")]
    pub ai_embedding_base_url: Option<String>,
    /// Embedding API key.
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_API_KEY", hide_env_values = true)]
    pub ai_embedding_api_key: Option<String>,
    /// `dimensions` sent to an OpenAI-compatible embeddings endpoint (at most 768).
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_DIMENSIONS")]
    pub ai_embedding_dimensions: Option<u32>,
    /// The all-MiniLM-L6-v2 folder of the `local` embedder (`scripts/models.sh embedding-dir`).
    #[arg(long, env = "POTENTIA_AI_EMBEDDING_MODEL_DIR")]
    pub ai_embedding_model_dir: Option<PathBuf>,

    /// Connect timeout of provider requests, in milliseconds.
    #[arg(long, env = "POTENTIA_AI_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub ai_connect_timeout_ms: u64,
    /// Time to the first byte of a provider's answer, in milliseconds.
    #[arg(
        long,
        env = "POTENTIA_AI_FIRST_BYTE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub ai_first_byte_timeout_ms: u64,
    /// Time for a whole provider call, stream included, in seconds.
    #[arg(long, env = "POTENTIA_AI_TOTAL_TIMEOUT_SECS", default_value_t = 120)]
    pub ai_total_timeout_secs: u64,
    /// Attempts per provider call (transient failures only are retried).
    #[arg(long, env = "POTENTIA_AI_MAX_ATTEMPTS", default_value_t = 3)]
    pub ai_max_attempts: u32,
    /// Consecutive failed calls that open a provider's circuit breaker.
    #[arg(long, env = "POTENTIA_AI_BREAKER_FAILURES", default_value_t = 5)]
    pub ai_breaker_failures: u32,
    /// Seconds an open breaker waits before a probe.
    #[arg(long, env = "POTENTIA_AI_BREAKER_COOLDOWN_SECS", default_value_t = 30)]
    pub ai_breaker_cooldown_secs: u64,
    /// Provider calls in flight at once, per provider.
    #[arg(long, env = "POTENTIA_AI_MAX_CONCURRENCY", default_value_t = 8)]
    pub ai_max_concurrency: usize,

    /// Jobs the embedding worker takes per batch.
    #[arg(long, env = "POTENTIA_AI_WORKER_BATCH", default_value_t = 32)]
    pub ai_worker_batch: usize,
    /// How often an idle embedding worker looks for jobs, in milliseconds.
    #[arg(long, env = "POTENTIA_AI_WORKER_POLL_MS", default_value_t = 500)]
    pub ai_worker_poll_ms: u64,
    /// Attempts of one embedding job before it becomes a dead letter.
    #[arg(long, env = "POTENTIA_AI_WORKER_MAX_ATTEMPTS", default_value_t = 8)]
    pub ai_worker_max_attempts: u32,

    /// How long a search waits for its query's embedding before answering by text alone, in ms.
    #[arg(
        long,
        env = "POTENTIA_AI_SEARCH_EMBED_TIMEOUT_MS",
        default_value_t = 3_000
    )]
    pub ai_search_embed_timeout_ms: u64,
    /// Query embeddings one user's searches may cost per minute; past it searches answer by
    /// text (`fallback: rate_limited`) until the minute's budget refills.
    #[arg(
        long,
        env = "POTENTIA_AI_SEARCH_EMBEDS_PER_MINUTE",
        default_value_t = 120
    )]
    pub ai_search_embeds_per_minute: u32,
    /// Semantic matches below this cosine similarity are left out (0–1).
    #[arg(long, env = "POTENTIA_AI_MIN_SIMILARITY", default_value_t = 0.2)]
    pub ai_min_similarity: f64,
    /// Chat turns one user may start per minute (past it: 429 with `Retry-After`).
    #[arg(long, env = "POTENTIA_AI_TURNS_PER_MINUTE", default_value_t = 20)]
    pub ai_turns_per_minute: u32,
    /// Minutes after which a conversation's topic is idle: small talk never continues it, and
    /// it is re-entered only when a message refers to it.
    #[arg(long, env = "POTENTIA_AI_CONTEXT_IDLE_MINUTES", default_value_t = 360)]
    pub ai_context_idle_minutes: u64,
    /// The specialist prompt's budget in estimated tokens; what is cut first is in the README.
    #[arg(long, env = "POTENTIA_AI_PROMPT_BUDGET_TOKENS", default_value_t = 6000)]
    pub ai_prompt_budget_tokens: u64,
    /// Tool rounds the specialist may take in one turn.
    #[arg(long, env = "POTENTIA_AI_MAX_TOOL_ROUNDS", default_value_t = 4)]
    pub ai_max_tool_rounds: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AiConfigError {
    #[error("{0} must be set for this provider")]
    Missing(&'static str),
    #[error("{name}: {value:?} is not an http:// or https:// URL")]
    BadUrl { name: &'static str, value: String },
    #[error("{name} must be greater than zero")]
    Zero { name: &'static str },
    #[error("POTENTIA_AI_EMBEDDING_DIMENSIONS must be between 1 and 768")]
    BadDimensions,
    #[error("POTENTIA_AI_MIN_SIMILARITY must be between 0 and 1")]
    BadSimilarity,
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

/// The AI part of the server's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AiServerSettings {
    pub ai: AiSettings,
    pub retrieval: RetrievalSettings,
    /// Query embeddings per user per minute (searches past it answer by text).
    pub search_embeds_per_minute: u32,
    /// Chat turns per user per minute.
    pub turns_per_minute: u32,
    pub assistant: AssistantSettings,
    /// `None`: the wall clock. Tests give the pipeline a clock they move.
    pub clock: Option<ManualClock>,
}

impl Default for AiServerSettings {
    /// No providers: text search only, chat answers 503.
    fn default() -> Self {
        Self {
            ai: AiSettings {
                chat: None,
                embeddings: None,
                resilience: ResilienceSettings::default(),
                worker: WorkerSettings::default(),
            },
            retrieval: RetrievalSettings::default(),
            search_embeds_per_minute: 120,
            turns_per_minute: 20,
            assistant: AssistantSettings::default(),
            clock: None,
        }
    }
}

struct RemoteArgs<'a> {
    model: &'a Option<String>,
    base_url: &'a Option<String>,
    api_key: &'a Option<String>,
    model_var: &'static str,
    base_url_var: &'static str,
    key_var: &'static str,
}

impl RemoteArgs<'_> {
    fn endpoint(
        &self,
        default_base: &str,
        default_model: &str,
        key_required: bool,
    ) -> Result<RemoteEndpoint, AiConfigError> {
        let base = self.base_url.as_deref().unwrap_or(default_base);
        let base_url = url::Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| AiConfigError::BadUrl {
                name: self.base_url_var,
                value: base.to_owned(),
            })?;
        let api_key = match self.api_key.as_deref() {
            Some("") => return Err(AiConfigError::Empty(self.key_var)),
            Some(key) => Some(ApiKey::new(key)),
            None if key_required => return Err(AiConfigError::Missing(self.key_var)),
            None => None,
        };
        let model = match self.model.as_deref() {
            Some("") => return Err(AiConfigError::Empty(self.model_var)),
            Some(model) => model.to_owned(),
            None => default_model.to_owned(),
        };
        Ok(RemoteEndpoint {
            base_url,
            api_key,
            model,
        })
    }
}

impl AiArgs {
    pub fn validate(&self) -> Result<AiServerSettings, AiConfigError> {
        for (name, value) in [
            ("POTENTIA_AI_CONNECT_TIMEOUT_MS", self.ai_connect_timeout_ms),
            (
                "POTENTIA_AI_FIRST_BYTE_TIMEOUT_MS",
                self.ai_first_byte_timeout_ms,
            ),
            ("POTENTIA_AI_TOTAL_TIMEOUT_SECS", self.ai_total_timeout_secs),
            ("POTENTIA_AI_MAX_ATTEMPTS", u64::from(self.ai_max_attempts)),
            (
                "POTENTIA_AI_BREAKER_FAILURES",
                u64::from(self.ai_breaker_failures),
            ),
            (
                "POTENTIA_AI_MAX_CONCURRENCY",
                self.ai_max_concurrency as u64,
            ),
            ("POTENTIA_AI_WORKER_BATCH", self.ai_worker_batch as u64),
            ("POTENTIA_AI_WORKER_POLL_MS", self.ai_worker_poll_ms),
            (
                "POTENTIA_AI_WORKER_MAX_ATTEMPTS",
                u64::from(self.ai_worker_max_attempts),
            ),
            (
                "POTENTIA_AI_SEARCH_EMBED_TIMEOUT_MS",
                self.ai_search_embed_timeout_ms,
            ),
            (
                "POTENTIA_AI_SEARCH_EMBEDS_PER_MINUTE",
                u64::from(self.ai_search_embeds_per_minute),
            ),
            (
                "POTENTIA_AI_TURNS_PER_MINUTE",
                u64::from(self.ai_turns_per_minute),
            ),
            (
                "POTENTIA_AI_CONTEXT_IDLE_MINUTES",
                self.ai_context_idle_minutes,
            ),
            (
                "POTENTIA_AI_PROMPT_BUDGET_TOKENS",
                self.ai_prompt_budget_tokens,
            ),
        ] {
            if value == 0 {
                return Err(AiConfigError::Zero { name });
            }
        }
        if !(0.0..=1.0).contains(&self.ai_min_similarity) {
            return Err(AiConfigError::BadSimilarity);
        }
        let chat_remote = RemoteArgs {
            model: &self.ai_chat_model,
            base_url: &self.ai_chat_base_url,
            api_key: &self.ai_chat_api_key,
            model_var: "POTENTIA_AI_CHAT_MODEL",
            base_url_var: "POTENTIA_AI_CHAT_BASE_URL",
            key_var: "POTENTIA_AI_CHAT_API_KEY",
        };
        let chat = match self.ai_chat_provider {
            ProviderArg::None => None,
            ProviderArg::Gemini => Some(ChatProviderSettings::Gemini(chat_remote.endpoint(
                GEMINI_BASE_URL,
                "gemini-2.5-flash",
                true,
            )?)),
            ProviderArg::Openai => Some(ChatProviderSettings::OpenAi(chat_remote.endpoint(
                OPENAI_BASE_URL,
                "gpt-4o-mini",
                false,
            )?)),
            ProviderArg::Local => Some(ChatProviderSettings::Local {
                gguf: self
                    .ai_chat_gguf
                    .clone()
                    .ok_or(AiConfigError::Missing("POTENTIA_AI_CHAT_GGUF"))?,
            }),
        };
        let embedding_remote = RemoteArgs {
            model: &self.ai_embedding_model,
            base_url: &self.ai_embedding_base_url,
            api_key: &self.ai_embedding_api_key,
            model_var: "POTENTIA_AI_EMBEDDING_MODEL",
            base_url_var: "POTENTIA_AI_EMBEDDING_BASE_URL",
            key_var: "POTENTIA_AI_EMBEDDING_API_KEY",
        };
        let provider =
            self.ai_embedding_provider
                .unwrap_or(if self.ai_embedding_model_dir.is_some() {
                    ProviderArg::Local
                } else {
                    ProviderArg::None
                });
        let embeddings = match provider {
            ProviderArg::None => None,
            ProviderArg::Gemini => Some(EmbeddingProviderSettings::Gemini(
                embedding_remote.endpoint(GEMINI_BASE_URL, "text-embedding-004", true)?,
            )),
            ProviderArg::Openai => {
                if let Some(d) = self.ai_embedding_dimensions {
                    if !(1..=768).contains(&d) {
                        return Err(AiConfigError::BadDimensions);
                    }
                }
                Some(EmbeddingProviderSettings::OpenAi {
                    endpoint: embedding_remote.endpoint(
                        OPENAI_BASE_URL,
                        "text-embedding-3-small",
                        false,
                    )?,
                    dimensions: self.ai_embedding_dimensions,
                })
            }
            ProviderArg::Local => Some(EmbeddingProviderSettings::Local {
                model_dir: self
                    .ai_embedding_model_dir
                    .clone()
                    .ok_or(AiConfigError::Missing("POTENTIA_AI_EMBEDDING_MODEL_DIR"))?,
            }),
        };
        Ok(AiServerSettings {
            ai: AiSettings {
                chat,
                embeddings,
                resilience: ResilienceSettings {
                    connect_timeout: Duration::from_millis(self.ai_connect_timeout_ms),
                    first_byte_timeout: Duration::from_millis(self.ai_first_byte_timeout_ms),
                    total_timeout: Duration::from_secs(self.ai_total_timeout_secs),
                    max_attempts: self.ai_max_attempts,
                    breaker_failures: self.ai_breaker_failures,
                    breaker_cooldown: Duration::from_secs(self.ai_breaker_cooldown_secs),
                    max_concurrency: self.ai_max_concurrency,
                    ..ResilienceSettings::default()
                },
                worker: WorkerSettings {
                    batch_size: self.ai_worker_batch,
                    poll_interval: Duration::from_millis(self.ai_worker_poll_ms),
                    max_attempts: self.ai_worker_max_attempts,
                    ..WorkerSettings::default()
                },
            },
            retrieval: RetrievalSettings {
                query_timeout: Duration::from_millis(self.ai_search_embed_timeout_ms),
                min_similarity: self.ai_min_similarity,
                ..RetrievalSettings::default()
            },
            search_embeds_per_minute: self.ai_search_embeds_per_minute,
            turns_per_minute: self.ai_turns_per_minute,
            assistant: AssistantSettings {
                judge: JudgeSettings {
                    idle_limit: chrono::Duration::minutes(
                        i64::try_from(self.ai_context_idle_minutes).unwrap_or(i64::MAX / 120),
                    ),
                    ..JudgeSettings::default()
                },
                prompt_budget_tokens: usize::try_from(self.ai_prompt_budget_tokens)
                    .unwrap_or(usize::MAX),
                max_tool_rounds: usize::try_from(self.ai_max_tool_rounds).unwrap_or(usize::MAX),
                ..AssistantSettings::default()
            },
            clock: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ai: AiArgs,
    }

    fn parse(args: &[&str]) -> Result<AiServerSettings, AiConfigError> {
        let mut argv = vec!["potentia"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().ai.validate()
    }

    #[test]
    fn nothing_configured_means_no_providers() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.ai.chat, None);
        assert_eq!(settings.ai.embeddings, None);
    }

    #[test]
    fn a_local_model_folder_makes_the_local_embedder_the_default() {
        let settings = parse(&["--ai-embedding-model-dir", "/models/minilm"]).unwrap();
        assert_eq!(
            settings.ai.embeddings,
            Some(EmbeddingProviderSettings::Local {
                model_dir: "/models/minilm".into()
            })
        );
    }

    #[test]
    fn gemini_needs_a_key_and_openai_does_not() {
        assert_eq!(
            parse(&["--ai-chat-provider", "gemini"]),
            Err(AiConfigError::Missing("POTENTIA_AI_CHAT_API_KEY"))
        );
        let settings = parse(&[
            "--ai-chat-provider",
            "openai",
            "--ai-chat-base-url",
            "http://localhost:11434/v1",
            "--ai-chat-model",
            "llama3.2",
        ])
        .unwrap();
        let Some(ChatProviderSettings::OpenAi(endpoint)) = settings.ai.chat else {
            panic!("expected an OpenAI-compatible chat provider");
        };
        assert_eq!(endpoint.api_key, None);
        assert_eq!(endpoint.model, "llama3.2");
    }

    #[test]
    fn a_key_never_shows_in_debug_output() {
        let settings = parse(&[
            "--ai-chat-provider",
            "gemini",
            "--ai-chat-api-key",
            "AIzaSecretValue123",
        ])
        .unwrap();
        assert!(!format!("{settings:?}").contains("AIzaSecretValue123"));
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        assert!(matches!(
            parse(&[
                "--ai-chat-provider",
                "openai",
                "--ai-chat-base-url",
                "ftp://x"
            ]),
            Err(AiConfigError::BadUrl {
                name: "POTENTIA_AI_CHAT_BASE_URL",
                ..
            })
        ));
        assert_eq!(
            parse(&["--ai-embedding-provider", "local"]),
            Err(AiConfigError::Missing("POTENTIA_AI_EMBEDDING_MODEL_DIR"))
        );
        assert_eq!(
            parse(&["--ai-min-similarity", "1.5"]),
            Err(AiConfigError::BadSimilarity)
        );
        assert_eq!(
            parse(&["--ai-max-concurrency", "0"]),
            Err(AiConfigError::Zero {
                name: "POTENTIA_AI_MAX_CONCURRENCY"
            })
        );
    }
}
