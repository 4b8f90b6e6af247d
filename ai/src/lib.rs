//! Potentia's AI layer, framework-free like `potentia-sync`: it takes a database handle and plain
//! types and returns [`AiError`]; `potentia-server` maps that to problem+json and mounts routes.
//!
//! * [`assistant`]: conversations, the judge / specialist / assessor pipeline, memories, roles,
//!   tools and the chat jobs.
//! * [`chat`]: the [`ChatModel`] trait — one completion, or a stream of deltas and tool calls.
//! * [`embed`]: the [`Embedder`] trait — texts in, unit vectors of [`EMBEDDING_DIMENSIONS`] out.
//! * [`providers`]: HTTP clients for Gemini and any OpenAI-compatible endpoint, behind
//!   [`resilience`] (timeouts, retries honouring `Retry-After`, a circuit breaker, a concurrency
//!   cap per provider).
//! * [`local`]: models run in process with candle: all-MiniLM-L6-v2 (the default embedder) and
//!   SmolLM2-135M-Instruct (an opt-in chat model for offline development).
//! * [`settings`] and [`Providers`]: what the operator configured, built into trait objects.
//! * [`queue`], [`worker`], [`store`]: the embedding queue (generic over source kinds), the worker
//!   that drains it, and the stored vectors; [`reindex`]: re-embedding after a model change, and
//!   the status `potentia ai status` prints.
//! * [`retrieval`]: text, semantic and hybrid search over the blocks a user may read, the access
//!   rule written once (SQL function `readable_canvases`).
//! * [`usage`]: tokens and embedded texts per user, workspace and day.
//! * [`metrics`] holds the `potentia_ai_*` metrics.

pub mod assistant;
pub mod chat;
pub mod embed;
pub mod error;
pub mod local;
pub mod metrics;
pub mod providers;
pub mod queue;
pub mod reindex;
pub mod resilience;
pub mod retrieval;
pub mod settings;
pub mod setup;
pub mod store;
pub mod usage;
pub mod worker;

pub use chat::{ChatModel, ChatRequest, ChatResponse, ChatStream, StreamEvent};
pub use embed::{Embedder, Embedding, Purpose, EMBEDDING_DIMENSIONS, MAX_EMBEDDED_CHARS};
pub use error::AiError;
pub use metrics::AiMetrics;
pub use setup::Providers;
