//! Any OpenAI-compatible server — OpenAI, Ollama, vLLM, llama.cpp's `llama-server`: chat
//! through `{base}/chat/completions`, embeddings through `{base}/embeddings`, an optional
//! `Authorization: Bearer` key.
//!
//! The servers differ in small ways, so reading is lenient: `usage` may be `null` or absent,
//! `finish_reason` may be missing, `content` may be `null`, a stream may or may not end with
//! `data: [DONE]`, the usage chunk has empty `choices`, tool-call fragments may lack an
//! `index`, and `arguments` may arrive as a JSON string (OpenAI) or an object (older Ollama).
//! A stream is complete when it sent `[DONE]`, a `finish_reason` or the usage chunk; one that
//! closes before any of them was cut.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::http::{
    http_client, join, parse_frame, sanitize_reason, unit_vector_for, Flow, HttpTarget, KeyHeader,
    OpenStream, StreamDecoder,
};
use crate::chat::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Role, StreamEvent, ToolCall,
    Usage,
};
use crate::embed::{Embedder, Embedding, Purpose};
use crate::error::AiError;
use crate::metrics::Operation;
use crate::resilience::{AttemptError, Resilience};
use crate::settings::{ApiKey, ProviderKind, RemoteEndpoint};

const PROVIDER: ProviderKind = ProviderKind::OpenAi;

/// Texts per embeddings request: far below OpenAI's 2,048 inputs, small enough for a local
/// Ollama to answer within the first-byte timeout.
const MAX_EMBED_BATCH: usize = 128;

/// Chat with a model behind an OpenAI-compatible `/chat/completions`.
pub struct OpenAiChat {
    target: HttpTarget,
    key: Option<ApiKey>,
    url: String,
    model: String,
    resilience: Arc<Resilience>,
}

impl OpenAiChat {
    /// A client for `endpoint.model` at `endpoint.base_url` (the part before
    /// `/chat/completions`), guarded by `resilience` (shared by the provider's clients).
    pub fn new(endpoint: RemoteEndpoint, resilience: Arc<Resilience>) -> Result<Self, AiError> {
        let client = http_client(PROVIDER, resilience.settings())?;
        let target = HttpTarget::new(
            client,
            PROVIDER,
            endpoint.api_key.clone(),
            KeyHeader::Bearer,
        )?;
        Ok(Self {
            target,
            key: endpoint.api_key,
            url: join(&endpoint.base_url, "chat/completions"),
            model: endpoint.model,
            resilience,
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, AiError> {
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = &request.system {
            messages.push(json!({ "role": "system", "content": system }));
        }
        for message in &request.messages {
            messages.push(match message.role {
                Role::User => json!({ "role": "user", "content": message.content }),
                Role::Assistant if message.tool_calls.is_empty() => {
                    json!({ "role": "assistant", "content": message.content })
                }
                Role::Assistant => {
                    let calls: Vec<Value> = message
                        .tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {
                                    "name": call.name,
                                    "arguments": call.arguments.to_string(),
                                },
                            })
                        })
                        .collect();
                    let content = if message.content.is_empty() {
                        Value::Null
                    } else {
                        json!(message.content)
                    };
                    json!({ "role": "assistant", "content": content, "tool_calls": calls })
                }
                Role::Tool => json!({
                    "role": "tool",
                    "tool_call_id": message.tool_call_id.as_deref().unwrap_or_default(),
                    "content": message.content,
                }),
            });
        }
        let mut body = json!({ "model": self.model, "messages": messages, "stream": stream });
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(max_tokens) = request.max_tokens {
            // `max_tokens` rather than `max_completion_tokens`: every compatible server reads it.
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(schema) = &request.response_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": schema.name, "schema": schema.schema, "strict": true },
            });
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    })
                })
                .collect();
            body["tools"] = Value::Array(tools);
        }
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|_| AiError::rejected(PROVIDER, "the request cannot be encoded as JSON"))
    }
}

#[async_trait::async_trait]
impl ChatModel for OpenAiChat {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, AiError> {
        let body = self.body(request, false)?;
        let completion: Completion = self
            .resilience
            .call(&self.model, Operation::Complete, |attempt| {
                let body = body.clone();
                async move {
                    let response = self.target.post(&self.url, &body, &attempt).await?;
                    self.target.json(response, attempt.deadline).await
                }
            })
            .await?;
        let choice = completion.choices.into_iter().next().ok_or_else(|| {
            AiError::unavailable(PROVIDER, "the provider answered without a choice")
        })?;
        let message = choice.message.unwrap_or_default();
        let usage = completion.usage.map(Usage::from);
        if let Some(usage) = usage {
            self.resilience.metrics().count_tokens(
                PROVIDER,
                &self.model,
                usage.input_tokens,
                usage.output_tokens,
            );
        }
        Ok(ChatResponse {
            text: message.content.unwrap_or_default(),
            tool_calls: message
                .tool_calls
                .into_iter()
                .map(|call| {
                    let arguments = match call.function.arguments {
                        Value::String(raw) => parse_arguments(&raw),
                        Value::Null => json!({}),
                        other => other,
                    };
                    finished_call(call.id, call.function.name, arguments)
                })
                .collect(),
            usage,
            finish_reason: choice.finish_reason.as_deref().map(finish_reason),
            model: completion.model.unwrap_or_else(|| self.model.clone()),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError> {
        let body = self.body(request, true)?;
        let stream =
            self.resilience
                .call(&self.model, Operation::Stream, |attempt| {
                    let body = body.clone();
                    let decoder = OpenAiStreamDecoder::new(self.key.clone());
                    async move {
                        OpenStream::open(&self.target, &self.url, &body, attempt, decoder).await
                    }
                })
                .await?;
        Ok(stream.into_chat_stream(self.resilience.clone(), self.model.clone()))
    }
}

/// `null` reads as the type's default (servers send `"tool_calls": null`, `"choices": null`).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Completion {
    model: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    choices: Vec<Choice>,
    usage: Option<CompletionUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<Message>,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Message {
    content: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    tool_calls: Vec<MessageToolCall>,
}

#[derive(Deserialize)]
struct MessageToolCall {
    id: Option<String>,
    function: MessageFunction,
}

#[derive(Deserialize)]
struct MessageFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize, Clone, Copy)]
struct CompletionUsage {
    #[serde(default, deserialize_with = "nullable")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    completion_tokens: u64,
}

impl From<CompletionUsage> for Usage {
    fn from(usage: CompletionUsage) -> Self {
        Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default, deserialize_with = "nullable")]
    choices: Vec<ChunkChoice>,
    usage: Option<CompletionUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default, deserialize_with = "nullable")]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    tool_calls: Vec<ToolCallFragment>,
}

#[derive(Deserialize)]
struct ToolCallFragment {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    name: Option<String>,
    #[serde(default)]
    arguments: Value,
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// The arguments string parsed; an empty one is `{}` (llama.cpp sends it for tools without
/// parameters), one that is not JSON stays a string for the caller to refuse.
fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

fn finished_call(id: Option<String>, name: String, arguments: Value) -> ToolCall {
    ToolCall {
        id: id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple())),
        name,
        arguments,
    }
}

/// A tool call being assembled from its fragments.
#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

struct OpenAiStreamDecoder {
    key: Option<ApiKey>,
    calls: Vec<PartialCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// `[DONE]`, a `finish_reason` or the usage chunk was seen: a close now is a normal end.
    complete: bool,
}

impl OpenAiStreamDecoder {
    fn new(key: Option<ApiKey>) -> Self {
        Self {
            key,
            calls: Vec::new(),
            finish: None,
            usage: None,
            complete: false,
        }
    }

    fn slot(&mut self, fragment: &ToolCallFragment) -> &mut PartialCall {
        let index = match fragment.index {
            Some(index) => index,
            // Without an index: a new id starts a new call, anything else continues the last.
            None => match &fragment.id {
                Some(id) => self
                    .calls
                    .iter()
                    .position(|call| call.id.as_ref() == Some(id))
                    .unwrap_or(self.calls.len()),
                None => self.calls.len().saturating_sub(1),
            },
        };
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, PartialCall::default);
        }
        &mut self.calls[index]
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn on_data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, AiError> {
        if data.trim() == "[DONE]" {
            self.complete = true;
            return Ok(Flow::End);
        }
        let chunk: Chunk = parse_frame(PROVIDER, data)?;
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("unknown error");
            return Err(AiError::unavailable(
                PROVIDER,
                format!(
                    "the provider failed mid-stream: {}",
                    sanitize_reason(message, self.key.as_ref())
                ),
            ));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
            self.complete = true;
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                out.push_back(StreamEvent::Delta(text));
            }
            for fragment in &choice.delta.tool_calls {
                let slot = self.slot(fragment);
                if let Some(id) = fragment.id.as_ref().filter(|id| !id.is_empty()) {
                    slot.id.get_or_insert_with(|| id.clone());
                }
                if let Some(function) = &fragment.function {
                    if let Some(name) = function.name.as_ref().filter(|n| !n.is_empty()) {
                        if slot.name.is_empty() {
                            slot.name = name.clone();
                        }
                    }
                    match &function.arguments {
                        Value::String(piece) => slot.arguments.push_str(piece),
                        Value::Null => {}
                        whole => slot.arguments = whole.to_string(),
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
                self.complete = true;
            }
        }
        Ok(Flow::Continue)
    }

    fn on_end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), AiError> {
        if !self.complete {
            return Err(AiError::unavailable(
                PROVIDER,
                "the stream ended before the provider's final frame",
            ));
        }
        for call in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                continue;
            }
            out.push_back(StreamEvent::ToolCall(finished_call(
                call.id,
                call.name,
                parse_arguments(&call.arguments),
            )));
        }
        out.push_back(StreamEvent::Done {
            usage: self.usage,
            finish_reason: self.finish,
        });
        Ok(())
    }
}

/// Embeddings from an OpenAI-compatible `/embeddings`; vectors shorter than 768 dimensions are
/// normalized and zero-padded, longer ones refused (configure `dimensions`).
pub struct OpenAiEmbedder {
    target: HttpTarget,
    url: String,
    model: String,
    dimensions: Option<u32>,
    resilience: Arc<Resilience>,
}

impl OpenAiEmbedder {
    /// `dimensions` is sent as the request's `dimensions` (OpenAI's `text-embedding-3-*`
    /// honour it; leave it `None` for servers that refuse the field).
    pub fn new(
        endpoint: RemoteEndpoint,
        dimensions: Option<u32>,
        resilience: Arc<Resilience>,
    ) -> Result<Self, AiError> {
        let client = http_client(PROVIDER, resilience.settings())?;
        let target = HttpTarget::new(client, PROVIDER, endpoint.api_key, KeyHeader::Bearer)?;
        Ok(Self {
            target,
            url: join(&endpoint.base_url, "embeddings"),
            model: endpoint.model,
            dimensions,
            resilience,
        })
    }
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    #[serde(default, deserialize_with = "nullable")]
    data: Vec<EmbeddingItem>,
    usage: Option<EmbeddingsUsage>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: Option<usize>,
    #[serde(default, deserialize_with = "nullable")]
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct EmbeddingsUsage {
    #[serde(default, deserialize_with = "nullable")]
    prompt_tokens: u64,
}

#[async_trait::async_trait]
impl Embedder for OpenAiEmbedder {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn max_batch(&self) -> usize {
        MAX_EMBED_BATCH
    }

    async fn embed(&self, texts: &[String], _purpose: Purpose) -> Result<Vec<Embedding>, AiError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut body = json!({ "model": self.model, "input": texts, "encoding_format": "float" });
        if let Some(dimensions) = self.dimensions {
            body["dimensions"] = json!(dimensions);
        }
        let body = serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|_| AiError::rejected(PROVIDER, "the texts cannot be encoded as JSON"))?;
        let count = texts.len();
        let (embeddings, tokens) = self
            .resilience
            .call(&self.model, Operation::Embed, |attempt| {
                let body = body.clone();
                async move {
                    let response = self.target.post(&self.url, &body, &attempt).await?;
                    let answer: EmbeddingsResponse =
                        self.target.json(response, attempt.deadline).await?;
                    let tokens = answer.usage.map(|usage| usage.prompt_tokens);
                    Ok((in_input_order(answer.data, count)?, tokens))
                }
            })
            .await?;
        if let Some(tokens) = tokens {
            self.resilience
                .metrics()
                .count_tokens(PROVIDER, &self.model, tokens, 0);
        }
        Ok(embeddings)
    }
}

/// The vectors ordered by their `index` (position when a server omits it), exactly one per text.
fn in_input_order(items: Vec<EmbeddingItem>, count: usize) -> Result<Vec<Embedding>, AttemptError> {
    let malformed = || {
        AttemptError::retryable(AiError::unavailable(
            PROVIDER,
            format!("asked for {count} embeddings, got a different set"),
        ))
    };
    if items.len() != count {
        return Err(malformed());
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
    for (position, item) in items.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => return Err(malformed()),
        }
    }
    slots
        .into_iter()
        .map(|values| unit_vector_for(PROVIDER, values.unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_without_an_index_are_told_apart_by_id() {
        let mut decoder = OpenAiStreamDecoder::new(None);
        let mut out = VecDeque::new();
        let frames = [
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"one","arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"two","arguments":{"y":2}}}]},"finish_reason":"tool_calls"}]}"#,
        ];
        for frame in frames {
            decoder.on_data(frame, &mut out).unwrap();
        }
        decoder.on_end(&mut out).unwrap();
        let calls: Vec<_> = out
            .into_iter()
            .filter_map(|event| match event {
                StreamEvent::ToolCall(call) => Some((call.id, call.name, call.arguments)),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("a".into(), "one".into(), json!({"x": 1})),
                ("b".into(), "two".into(), json!({"y": 2})),
            ]
        );
    }

    #[test]
    fn arguments_that_are_not_json_stay_text() {
        assert_eq!(parse_arguments(""), json!({}));
        assert_eq!(parse_arguments("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_arguments("{oops"), json!("{oops"));
    }

    #[test]
    fn embeddings_are_put_back_in_input_order() {
        let items = vec![
            EmbeddingItem {
                index: Some(1),
                embedding: vec![0.0, 2.0],
            },
            EmbeddingItem {
                index: Some(0),
                embedding: vec![3.0, 0.0],
            },
        ];
        let vectors = in_input_order(items, 2).unwrap();
        assert_eq!(vectors[0].as_slice()[0], 1.0);
        assert_eq!(vectors[1].as_slice()[1], 1.0);
        let duplicated = vec![
            EmbeddingItem {
                index: Some(0),
                embedding: vec![1.0],
            },
            EmbeddingItem {
                index: Some(0),
                embedding: vec![1.0],
            },
        ];
        assert!(in_input_order(duplicated, 2).is_err());
    }
}
