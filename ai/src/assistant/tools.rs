//! The tools the specialist may call, and the [`AssistantHost`] that runs them.
//!
//! The specs (names, descriptions, JSON Schemas) are the model's contract and live here; running
//! a tool needs canvases, documents and calendars, which the server owns, so the server
//! implements [`AssistantHost`]. Every call runs under the user's own permissions and is audited
//! by the host; a refusal (no access, a stale version, bad arguments) is a [`ToolOutcome`] with
//! `ok: false` that the model reads and the client is shown, never an error of the turn.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::packer::AgendaItem;
use crate::chat::{ToolCall, ToolSpec};

/// The tools, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    Search,
    ReadCanvas,
    AddBlocks,
    CreateTodo,
    Agenda,
    CreateSchedule,
}

impl Tool {
    pub const ALL: [Tool; 6] = [
        Self::Search,
        Self::ReadCanvas,
        Self::AddBlocks,
        Self::CreateTodo,
        Self::Agenda,
        Self::CreateSchedule,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::ReadCanvas => "read_canvas",
            Self::AddBlocks => "add_blocks",
            Self::CreateTodo => "create_todo",
            Self::Agenda => "agenda",
            Self::CreateSchedule => "create_schedule",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn spec(self) -> ToolSpec {
        let (description, parameters) = match self {
            Self::Search => (
                "Search the user's canvases (the blocks they can read) by words and meaning.",
                json!({"type": "object", "properties": {
                    "query": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20}
                }, "required": ["query"]}),
            ),
            Self::ReadCanvas => (
                "Read a canvas as Markdown, by its id (from search results).",
                json!({"type": "object", "properties": {
                    "canvas_id": {"type": "string", "format": "uuid"}
                }, "required": ["canvas_id"]}),
            ),
            Self::AddBlocks => (
                "Append Markdown (headings, paragraphs, lists, todos) to the end of a canvas the user can edit.",
                json!({"type": "object", "properties": {
                    "canvas_id": {"type": "string", "format": "uuid"},
                    "markdown": {"type": "string"}
                }, "required": ["canvas_id", "markdown"]}),
            ),
            Self::CreateTodo => (
                "Add a todo with an optional due date (RFC 3339 instant or YYYY-MM-DD) to a canvas the user can edit.",
                json!({"type": "object", "properties": {
                    "canvas_id": {"type": "string", "format": "uuid"},
                    "text": {"type": "string"},
                    "due_at": {"type": "string"}
                }, "required": ["canvas_id", "text"]}),
            ),
            Self::Agenda => (
                "List the user's calendar events between two instants (RFC 3339), in their time zone.",
                json!({"type": "object", "properties": {
                    "from": {"type": "string", "format": "date-time"},
                    "to": {"type": "string", "format": "date-time"}
                }, "required": ["from", "to"]}),
            ),
            Self::CreateSchedule => (
                "Create an event on one of the user's calendars (the first writable one when calendar_id is omitted).",
                json!({"type": "object", "properties": {
                    "calendar_id": {"type": "string", "format": "uuid"},
                    "title": {"type": "string"},
                    "start_at": {"type": "string", "format": "date-time"},
                    "end_at": {"type": "string", "format": "date-time"},
                    "rrule": {"type": "string"}
                }, "required": ["title", "start_at", "end_at"]}),
            ),
        };
        ToolSpec {
            name: self.name().to_owned(),
            description: description.to_owned(),
            parameters,
        }
    }
}

/// Every tool's spec, as the specialist is offered them.
pub fn specs() -> Vec<ToolSpec> {
    Tool::ALL.into_iter().map(Tool::spec).collect()
}

/// What a tool call did, as the model reads it and the message stores it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolOutcome {
    pub ok: bool,
    /// The result, or `{"error": code, "reason": …}` for a refusal.
    pub content: Value,
}

impl ToolOutcome {
    pub fn done(content: Value) -> Self {
        Self { ok: true, content }
    }

    pub fn refused(code: &str, reason: impl Into<String>) -> Self {
        Self {
            ok: false,
            content: json!({"error": code, "reason": reason.into()}),
        }
    }
}

/// A tool call made in a turn, with its outcome: stored on the assistant message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRecord {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    pub ok: bool,
    pub result: Value,
}

/// Who the turn is for, as a tool sees it.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    pub time_zone: chrono_tz::Tz,
    pub request_id: Option<String>,
}

/// An audit row the pipeline asks the host to write in the pipeline's transaction.
#[derive(Debug, Clone)]
pub struct AuditRecord<'a> {
    pub actor_id: Uuid,
    /// Dotted verb: `conversation.turn`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Uuid,
    pub after: Value,
    pub request_id: Option<&'a str>,
}

/// What the server provides to the pipeline: tools, the agenda, the audit log.
#[async_trait::async_trait]
pub trait AssistantHost: Send + Sync {
    /// Runs `call` under the user's permissions, audited; never fails the turn.
    async fn run_tool(&self, context: &ToolContext, call: &ToolCall) -> ToolOutcome;

    /// The user's agenda between two instants, in their time zone, in time order.
    async fn agenda(
        &self,
        context: &ToolContext,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgendaItem>, String>;

    /// Writes an audit row in the caller's transaction.
    async fn audit(&self, db: &mut PgConnection, record: AuditRecord<'_>) -> sqlx::Result<()>;
}
