//! Chat models: the [`ChatModel`] trait and the provider-neutral request and response types.
//!
//! A request carries an optional system prompt, the conversation, sampling limits, an optional
//! JSON schema the answer must follow ([`ResponseSchema`]) and optional tools the model may
//! call. [`ChatModel::complete`] returns the whole answer; [`ChatModel::stream`] yields
//! [`StreamEvent::Delta`]s and [`StreamEvent::ToolCall`]s, then one [`StreamEvent::Done`] with
//! the usage. Dropping the stream cancels the underlying HTTP request (or local generation).

use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::AiError;
use crate::settings::ProviderKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    /// The result of a tool call, answering [`ChatMessage::tool_call_id`].
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Calls the assistant made in this message (role `assistant` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For role `tool`: the id of the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For role `tool`: the name of the tool that was called (Gemini needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::plain(Role::Assistant, content)
    }

    /// The result of tool call `call` as the model should read it.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
            tool_name: Some(call.name.clone()),
        }
    }

    fn plain(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            tool_name: None,
        }
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    /// Written for the model to read.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (generated when the provider gives none, as Gemini).
    pub id: String,
    pub name: String,
    /// The arguments object, parsed.
    pub arguments: serde_json::Value,
}

/// Structured output: the answer's text must be JSON matching `schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// A short identifier (`[a-zA-Z0-9_-]`), required by OpenAI.
    pub name: String,
    pub schema: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub response_schema: Option<ResponseSchema>,
    pub tools: Vec<ToolSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why the model stopped; a closed set, with what a provider says outside it as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// `None` when the provider reported none (some OpenAI-compatible servers).
    pub usage: Option<Usage>,
    /// `None` when the provider reported none.
    pub finish_reason: Option<FinishReason>,
    /// The model that answered, as the provider named it.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// More of the answer's text.
    Delta(String),
    /// A complete tool call (arguments assembled from the provider's fragments).
    ToolCall(ToolCall),
    /// The last event of a stream that ended normally.
    Done {
        usage: Option<Usage>,
        finish_reason: Option<FinishReason>,
    },
}

/// A stream of events; an `Err` item ends it (a stream cut in the middle is
/// [`AiError::Unavailable`]). Dropping it cancels the request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, AiError>> + Send>>;

#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    fn provider(&self) -> ProviderKind;

    /// The configured model name (`gemini-2.5-flash`, `gpt-4o-mini`, `smollm2-135m-instruct`).
    fn model(&self) -> &str;

    /// Whether the model can call tools; a request with tools to one that cannot is rejected.
    fn supports_tools(&self) -> bool {
        true
    }

    /// The model's context window in tokens, when it is small enough to bound a prompt (local
    /// models); `None` for the remote providers, whose windows exceed any prompt budget.
    fn context_tokens(&self) -> Option<usize> {
        None
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, AiError>;

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError>;
}
