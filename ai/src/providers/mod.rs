//! HTTP clients for the remote providers, each a thin `reqwest` client with its own serde types
//! behind [`crate::resilience::Resilience`]:
//!
//! * [`gemini`]: [`GeminiChat`] and [`GeminiEmbedder`] (Google's Gemini API);
//! * [`openai`]: [`OpenAiChat`] and [`OpenAiEmbedder`] (OpenAI and compatible servers: Ollama,
//!   vLLM, llama.cpp);
//! * [`sse`]: the Server-Sent Events decoder both streams use.
//!
//! Build one `Arc<Resilience>` per provider kind and hand it to that provider's chat and
//! embedding clients: they then share one breaker, one concurrency cap and one gauge.
//!
//! No SDK crate: none covers both providers' streaming, structured output and tools while
//! being well kept, and the two wire formats are small enough to own.

pub mod gemini;
mod http;
pub mod openai;
pub mod sse;

pub use gemini::{GeminiChat, GeminiEmbedder};
pub use http::{http_client, MAX_REASON_CHARS};
pub use openai::{OpenAiChat, OpenAiEmbedder};
