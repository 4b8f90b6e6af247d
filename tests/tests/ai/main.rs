//! The HTTP providers against the fake Gemini and OpenAI-compatible servers
//! (`potentia_tests::fake_ai`): request shapes, stream decoding, errors, retries, the circuit
//! breaker, the concurrency cap and key hygiene. No database.

mod embeddings;
mod gemini_chat;
mod openai_chat;
mod resilience;
mod secrets;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use potentia_ai::chat::{ChatMessage, ChatRequest, FinishReason, ToolCall, ToolSpec, Usage};
use potentia_ai::providers::{GeminiChat, OpenAiChat};
use potentia_ai::resilience::Resilience;
use potentia_ai::settings::{ApiKey, ProviderKind, RemoteEndpoint, ResilienceSettings};
use potentia_ai::{AiError, AiMetrics, ChatStream, StreamEvent};
use potentia_tests::fake_ai::{FakeGemini, FakeOpenAi};
use serde_json::json;

pub const OPENAI_KEY: &str = "sk-test-0123456789abcdef";
pub const GEMINI_KEY: &str = "AIzaTest-0123456789abcdef";

/// Short timeouts and backoffs so failure paths take milliseconds.
pub fn fast() -> ResilienceSettings {
    ResilienceSettings {
        connect_timeout: Duration::from_secs(1),
        first_byte_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(10),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_millis(300),
        max_concurrency: 4,
    }
}

pub fn guard(provider: ProviderKind, settings: ResilienceSettings) -> Arc<Resilience> {
    Arc::new(Resilience::new(provider, settings, AiMetrics::default()))
}

pub fn endpoint(base_url: url::Url, key: Option<&str>, model: &str) -> RemoteEndpoint {
    RemoteEndpoint {
        base_url,
        api_key: key.map(ApiKey::new),
        model: model.into(),
    }
}

pub fn openai_chat(
    fake: &FakeOpenAi,
    settings: ResilienceSettings,
) -> (OpenAiChat, Arc<Resilience>) {
    let resilience = guard(ProviderKind::OpenAi, settings);
    let chat = OpenAiChat::new(
        endpoint(fake.base_url(), Some(OPENAI_KEY), "gpt-test"),
        resilience.clone(),
    )
    .unwrap();
    (chat, resilience)
}

pub fn gemini_chat(
    fake: &FakeGemini,
    settings: ResilienceSettings,
) -> (GeminiChat, Arc<Resilience>) {
    let resilience = guard(ProviderKind::Gemini, settings);
    let chat = GeminiChat::new(
        endpoint(fake.base_url(), Some(GEMINI_KEY), "gemini-test"),
        resilience.clone(),
    )
    .unwrap();
    (chat, resilience)
}

pub fn ask(question: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user(question)],
        ..ChatRequest::default()
    }
}

pub fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "The current weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
        }),
    }
}

/// Everything a stream yielded.
#[derive(Debug, Default)]
pub struct Collected {
    pub text: String,
    pub deltas: usize,
    pub tool_calls: Vec<ToolCall>,
    pub done: Option<(Option<Usage>, Option<FinishReason>)>,
    pub error: Option<AiError>,
    /// Items after the `Done` or the error (there must be none).
    pub trailing: usize,
}

pub async fn collect(mut stream: ChatStream) -> Collected {
    let mut collected = Collected::default();
    while let Some(item) = stream.next().await {
        if collected.done.is_some() || collected.error.is_some() {
            collected.trailing += 1;
            continue;
        }
        match item {
            Ok(StreamEvent::Delta(text)) => {
                collected.deltas += 1;
                collected.text.push_str(&text);
            }
            Ok(StreamEvent::ToolCall(call)) => collected.tool_calls.push(call),
            Ok(StreamEvent::Done {
                usage,
                finish_reason,
            }) => collected.done = Some((usage, finish_reason)),
            Err(error) => collected.error = Some(error),
        }
    }
    collected
}
