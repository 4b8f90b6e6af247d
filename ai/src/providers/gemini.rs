//! Google's Gemini API (`generativelanguage.googleapis.com/v1beta`): chat through
//! `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, embeddings through
//! `models/{model}:batchEmbedContents`. The key travels in `x-goog-api-key`.
//!
//! Mapping from the neutral types:
//! * the system prompt is `systemInstruction`; roles are `user` and `model`; a tool result is a
//!   `functionResponse` part in a `user` turn (adjacent turns of one role are merged, so the
//!   results of parallel calls travel together);
//! * structured output is `responseMimeType: application/json` + `responseJsonSchema`; tools
//!   are `functionDeclarations` with `parametersJsonSchema`;
//! * parts marked `thought: true` are never shown; thinking tokens count as output tokens;
//! * a blocked prompt (`promptFeedback.blockReason`) or a safety stop is [`AiError::Rejected`].
//!
//! Gemini gives function calls no id unless it wants to; we make one up (`gen_…`, never sent
//! back). Thinking models attach a `thoughtSignature` to a function call that must be returned
//! with it on the next turn: it rides in [`ToolCall::id`] after a `~`, so it survives however
//! the conversation is stored.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{
    http_client, join, parse_frame, unit_vector_for, Flow, HttpTarget, KeyHeader, OpenStream,
    StreamDecoder,
};
use crate::chat::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Role, StreamEvent,
    ToolCall, Usage,
};
use crate::embed::{Embedder, Embedding, Purpose, EMBEDDING_DIMENSIONS};
use crate::error::AiError;
use crate::metrics::Operation;
use crate::resilience::{AttemptError, Resilience};
use crate::settings::{ProviderKind, RemoteEndpoint};

const PROVIDER: ProviderKind = ProviderKind::Gemini;

/// `batchEmbedContents` takes at most 100 requests.
const MAX_EMBED_BATCH: usize = 100;

/// Marks an id we generated, which Gemini never saw and must not be sent.
const GENERATED_ID_PREFIX: &str = "gen_";

/// Separates a call's id from its thought signature inside [`ToolCall::id`]; `~` appears in
/// neither ids nor base64.
const SIGNATURE_SEPARATOR: char = '~';

/// Finish reasons that mean the provider's safety filters blocked the answer.
const SAFETY_REASONS: &[&str] = &[
    "SAFETY",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
];

/// Chat with a Gemini model.
pub struct GeminiChat {
    target: HttpTarget,
    generate_url: String,
    stream_url: String,
    model: String,
    resilience: Arc<Resilience>,
}

impl GeminiChat {
    /// A client for `endpoint.model` at `endpoint.base_url`, guarded by `resilience` (which
    /// should be the one shared by every Gemini client).
    pub fn new(endpoint: RemoteEndpoint, resilience: Arc<Resilience>) -> Result<Self, AiError> {
        let client = http_client(PROVIDER, resilience.settings())?;
        let target = HttpTarget::new(client, PROVIDER, endpoint.api_key, KeyHeader::GoogApiKey)?;
        let path = model_path(&endpoint.model);
        Ok(Self {
            generate_url: join(&endpoint.base_url, &format!("{path}:generateContent")),
            stream_url: join(
                &endpoint.base_url,
                &format!("{path}:streamGenerateContent?alt=sse"),
            ),
            target,
            model: endpoint.model,
            resilience,
        })
    }
}

#[async_trait::async_trait]
impl ChatModel for GeminiChat {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, AiError> {
        let body = request_body(request)?;
        let response: GenerateResponse = self
            .resilience
            .call(&self.model, Operation::Complete, |attempt| {
                let body = body.clone();
                async move {
                    let response = self
                        .target
                        .post(&self.generate_url, &body, &attempt)
                        .await?;
                    self.target.json(response, attempt.deadline).await
                }
            })
            .await?;
        let answer = read_answer(response, &self.model)?;
        if let Some(usage) = answer.usage {
            self.resilience.metrics().count_tokens(
                PROVIDER,
                &self.model,
                usage.input_tokens,
                usage.output_tokens,
            );
        }
        Ok(answer)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError> {
        let body = request_body(request)?;
        let stream = self
            .resilience
            .call(&self.model, Operation::Stream, |attempt| {
                let body = body.clone();
                async move {
                    OpenStream::open(
                        &self.target,
                        &self.stream_url,
                        &body,
                        attempt,
                        GeminiStreamDecoder::default(),
                    )
                    .await
                }
            })
            .await?;
        Ok(stream.into_chat_stream(self.resilience.clone(), self.model.clone()))
    }
}

/// `models/{model}`, whether or not the configured name already has the prefix.
fn model_path(model: &str) -> String {
    format!("models/{}", model.trim_start_matches("models/"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
}

#[derive(Serialize)]
struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Value>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Value>,
}

fn request_body(request: &ChatRequest) -> Result<Bytes, AiError> {
    let mut contents: Vec<Content> = Vec::new();
    for (position, message) in request.messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::User => ("user", vec![json!({ "text": message.content })]),
            Role::Assistant => {
                let mut parts = Vec::new();
                if !message.content.is_empty() {
                    parts.push(json!({ "text": message.content }));
                }
                for call in &message.tool_calls {
                    parts.push(function_call_part(call));
                }
                ("model", parts)
            }
            Role::Tool => (
                "user",
                vec![function_response_part(
                    message,
                    &request.messages[..position],
                )?],
            ),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role),
                parts,
            }),
        }
    }

    let mut config = GenerationConfig {
        temperature: request.temperature,
        max_output_tokens: request.max_tokens,
        ..GenerationConfig::default()
    };
    if let Some(schema) = &request.response_schema {
        config.response_mime_type = Some("application/json");
        config.response_json_schema = Some(schema.schema.clone());
    }
    let has_config = config.temperature.is_some()
        || config.max_output_tokens.is_some()
        || config.response_mime_type.is_some();

    let tools = if request.tools.is_empty() {
        Vec::new()
    } else {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "parametersJsonSchema": tool.parameters,
                })
            })
            .collect();
        vec![json!({ "functionDeclarations": declarations })]
    };

    let body = GenerateRequest {
        contents,
        system_instruction: request.system.as_ref().map(|system| Content {
            role: None,
            parts: vec![json!({ "text": system })],
        }),
        generation_config: has_config.then_some(config),
        tools,
    };
    serde_json::to_vec(&body)
        .map(Bytes::from)
        .map_err(|_| AiError::rejected(PROVIDER, "the request cannot be encoded as JSON"))
}

fn function_call_part(call: &ToolCall) -> Value {
    let (id, signature) = split_call_id(&call.id);
    let mut function_call = json!({ "name": call.name, "args": call.arguments });
    if let Some(id) = provider_id(id) {
        function_call["id"] = json!(id);
    }
    let mut part = json!({ "functionCall": function_call });
    if let Some(signature) = signature {
        part["thoughtSignature"] = json!(signature);
    }
    part
}

/// A tool result as a `functionResponse` part. Gemini wants the function's name and an object;
/// a result that is not a JSON object is wrapped as `{"result": …}`.
fn function_response_part(
    message: &ChatMessage,
    earlier: &[ChatMessage],
) -> Result<Value, AiError> {
    let call_id = message.tool_call_id.as_deref().unwrap_or_default();
    let name = match &message.tool_name {
        Some(name) => name.clone(),
        None => earlier
            .iter()
            .flat_map(|m| &m.tool_calls)
            .find(|call| call.id == call_id)
            .map(|call| call.name.clone())
            .ok_or_else(|| {
                AiError::rejected(
                    PROVIDER,
                    "a tool result names no tool and answers no known call",
                )
            })?,
    };
    let response = match serde_json::from_str::<Value>(&message.content) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => json!({ "result": other }),
        Err(_) => json!({ "result": message.content }),
    };
    let mut function_response = json!({ "name": name, "response": response });
    if let Some(id) = provider_id(split_call_id(call_id).0) {
        function_response["id"] = json!(id);
    }
    Ok(json!({ "functionResponse": function_response }))
}

fn split_call_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(SIGNATURE_SEPARATOR) {
        Some((id, signature)) if !signature.is_empty() => (id, Some(signature)),
        Some((id, _)) => (id, None),
        None => (id, None),
    }
}

/// The id to send back to Gemini: only one it gave us.
fn provider_id(id: &str) -> Option<&str> {
    (!id.is_empty() && !id.starts_with(GENERATED_ID_PREFIX)).then_some(id)
}

fn tool_call(call: FunctionCall, signature: Option<String>) -> ToolCall {
    let id = call
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("{GENERATED_ID_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let id = match signature {
        Some(signature) => format!("{id}{SIGNATURE_SEPARATOR}{signature}"),
        None => id,
    };
    ToolCall {
        id,
        name: call.name,
        arguments: match call.args {
            Value::Null => json!({}),
            args => args,
        },
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    function_call: Option<FunctionCall>,
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

impl From<UsageMetadata> for Usage {
    fn from(usage: UsageMetadata) -> Self {
        Usage {
            input_tokens: usage.prompt_token_count,
            output_tokens: usage.candidates_token_count + usage.thoughts_token_count,
        }
    }
}

fn check_prompt_feedback(feedback: Option<&PromptFeedback>) -> Result<(), AiError> {
    match feedback.and_then(|f| f.block_reason.as_deref()) {
        Some(reason) => Err(AiError::rejected(
            PROVIDER,
            format!("the prompt was blocked ({})", short_code(reason)),
        )),
        None => Ok(()),
    }
}

/// `None` when the candidate has not finished; an error when safety filters stopped it.
fn finish_reason(reason: Option<&str>) -> Result<Option<FinishReason>, AiError> {
    Ok(match reason {
        None | Some("FINISH_REASON_UNSPECIFIED") => None,
        Some(reason) if SAFETY_REASONS.contains(&reason) => {
            return Err(AiError::rejected(
                PROVIDER,
                format!("the answer was blocked ({reason})"),
            ))
        }
        Some("STOP") => Some(FinishReason::Stop),
        Some("MAX_TOKENS") => Some(FinishReason::Length),
        Some("RECITATION") => Some(FinishReason::ContentFilter),
        Some(_) => Some(FinishReason::Other),
    })
}

/// A provider code fit for a message: letters, digits and `_`, at most 40 of them.
fn short_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

fn read_answer(response: GenerateResponse, model: &str) -> Result<ChatResponse, AiError> {
    check_prompt_feedback(response.prompt_feedback.as_ref())?;
    let candidate = response.candidates.into_iter().next().ok_or_else(|| {
        AiError::unavailable(PROVIDER, "the provider answered without a candidate")
    })?;
    let mut finish = finish_reason(candidate.finish_reason.as_deref())?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        if part.thought {
            continue;
        }
        if let Some(call) = part.function_call {
            tool_calls.push(tool_call(call, part.thought_signature));
        } else if let Some(piece) = part.text {
            text.push_str(&piece);
        }
    }
    if !tool_calls.is_empty() && finish == Some(FinishReason::Stop) {
        finish = Some(FinishReason::ToolCalls);
    }
    Ok(ChatResponse {
        text,
        tool_calls,
        usage: response.usage_metadata.map(Usage::from),
        finish_reason: finish,
        model: response.model_version.unwrap_or_else(|| model.to_owned()),
    })
}

/// Each SSE frame is a whole `GenerateContentResponse` holding the next piece; there is no
/// `[DONE]`: the frame with a `finishReason` is the last one that matters.
#[derive(Default)]
struct GeminiStreamDecoder {
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    called_tools: bool,
}

impl StreamDecoder for GeminiStreamDecoder {
    fn on_data(&mut self, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow, AiError> {
        let frame: GenerateResponse = parse_frame(PROVIDER, data)?;
        check_prompt_feedback(frame.prompt_feedback.as_ref())?;
        if let Some(usage) = frame.usage_metadata {
            self.usage = Some(usage.into());
        }
        if let Some(candidate) = frame.candidates.into_iter().next() {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if part.thought {
                    continue;
                }
                if let Some(call) = part.function_call {
                    self.called_tools = true;
                    out.push_back(StreamEvent::ToolCall(tool_call(
                        call,
                        part.thought_signature,
                    )));
                } else if let Some(piece) = part.text.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::Delta(piece));
                }
            }
            if let Some(finish) = finish_reason(candidate.finish_reason.as_deref())? {
                self.finish = Some(finish);
            }
        }
        Ok(Flow::Continue)
    }

    fn on_end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), AiError> {
        let Some(mut finish) = self.finish else {
            return Err(AiError::unavailable(
                PROVIDER,
                "the stream ended before the provider's final frame",
            ));
        };
        if self.called_tools && finish == FinishReason::Stop {
            finish = FinishReason::ToolCalls;
        }
        out.push_back(StreamEvent::Done {
            usage: self.usage,
            finish_reason: Some(finish),
        });
        Ok(())
    }
}

/// Embeddings from a Gemini embedding model (`gemini-embedding-001`, `text-embedding-004`),
/// asked for [`EMBEDDING_DIMENSIONS`] dimensions and re-normalized (Gemini's truncated vectors
/// are not unit length).
pub struct GeminiEmbedder {
    target: HttpTarget,
    url: String,
    model: String,
    model_path: String,
    resilience: Arc<Resilience>,
}

impl GeminiEmbedder {
    pub fn new(endpoint: RemoteEndpoint, resilience: Arc<Resilience>) -> Result<Self, AiError> {
        let client = http_client(PROVIDER, resilience.settings())?;
        let target = HttpTarget::new(client, PROVIDER, endpoint.api_key, KeyHeader::GoogApiKey)?;
        let model_path = model_path(&endpoint.model);
        Ok(Self {
            url: join(
                &endpoint.base_url,
                &format!("{model_path}:batchEmbedContents"),
            ),
            target,
            model: endpoint.model,
            model_path,
            resilience,
        })
    }
}

#[derive(Deserialize)]
struct BatchEmbedResponse {
    #[serde(default)]
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    #[serde(default)]
    values: Vec<f32>,
}

#[async_trait::async_trait]
impl Embedder for GeminiEmbedder {
    fn provider(&self) -> ProviderKind {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn max_batch(&self) -> usize {
        MAX_EMBED_BATCH
    }

    async fn embed(&self, texts: &[String], purpose: Purpose) -> Result<Vec<Embedding>, AiError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let task_type = match purpose {
            Purpose::Document => "RETRIEVAL_DOCUMENT",
            Purpose::Query => "RETRIEVAL_QUERY",
        };
        let requests: Vec<Value> = texts
            .iter()
            .map(|text| {
                json!({
                    "model": self.model_path,
                    "content": { "parts": [{ "text": text }] },
                    "taskType": task_type,
                    "outputDimensionality": EMBEDDING_DIMENSIONS,
                })
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "requests": requests }))
            .map(Bytes::from)
            .map_err(|_| AiError::rejected(PROVIDER, "the texts cannot be encoded as JSON"))?;
        let count = texts.len();
        self.resilience
            .call(&self.model, Operation::Embed, |attempt| {
                let body = body.clone();
                async move {
                    let response = self.target.post(&self.url, &body, &attempt).await?;
                    let answer: BatchEmbedResponse =
                        self.target.json(response, attempt.deadline).await?;
                    if answer.embeddings.len() != count {
                        return Err(AttemptError::retryable(AiError::unavailable(
                            PROVIDER,
                            format!(
                                "asked for {count} embeddings, got {}",
                                answer.embeddings.len()
                            ),
                        )));
                    }
                    answer
                        .embeddings
                        .into_iter()
                        .map(|embedding| unit_vector(embedding.values))
                        .collect()
                }
            })
            .await
    }
}

fn unit_vector(values: Vec<f32>) -> Result<Embedding, AttemptError> {
    unit_vector_for(PROVIDER, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_id_carries_its_thought_signature_and_generated_ids_stay_home() {
        let call = tool_call(
            FunctionCall {
                id: None,
                name: "search".into(),
                args: json!({"q": "x"}),
            },
            Some("c2lnbmF0dXJl".into()),
        );
        assert!(call.id.starts_with(GENERATED_ID_PREFIX));
        let part = function_call_part(&call);
        assert_eq!(part["thoughtSignature"], "c2lnbmF0dXJl");
        assert!(part["functionCall"].get("id").is_none());

        let given = tool_call(
            FunctionCall {
                id: Some("abc".into()),
                name: "search".into(),
                args: Value::Null,
            },
            None,
        );
        assert_eq!(given.id, "abc");
        assert_eq!(given.arguments, json!({}));
        assert_eq!(function_call_part(&given)["functionCall"]["id"], "abc");
    }

    #[test]
    fn tool_results_find_their_tool_name_and_become_objects() {
        let call = ToolCall {
            id: "gen_1".into(),
            name: "lookup".into(),
            arguments: json!({}),
        };
        let mut result = ChatMessage::tool_result(&call, "42");
        result.tool_name = None;
        let earlier = vec![ChatMessage {
            tool_calls: vec![call],
            ..ChatMessage::assistant("")
        }];
        let part = function_response_part(&result, &earlier).unwrap();
        assert_eq!(part["functionResponse"]["name"], "lookup");
        assert_eq!(part["functionResponse"]["response"], json!({"result": 42}));
    }
}
