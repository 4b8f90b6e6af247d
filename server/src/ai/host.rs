//! [`ServerHost`]: what the chat pipeline asks of the server — its tools, the agenda and the
//! audit log.
//!
//! Each tool runs the same handler a REST client would call, as the user, so validation, access
//! checks and audit are the REST routes' own: `search` (hybrid retrieval, text when embeddings
//! are off), `read_canvas` (`GET …/markdown`), `add_blocks` (`POST …/markdown`, through the
//! document, live for connected clients), `create_todo` (`POST …/blocks`), `agenda`
//! (`GET /instances`) and `create_schedule` (`POST /calendars/{id}/schedules`). A refusal —
//! an [`ApiError`] of any kind — becomes a tool outcome the model reads, never a failed turn.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use potentia_ai::assistant::packer::AgendaItem;
use potentia_ai::assistant::tools::{AssistantHost, AuditRecord, Tool, ToolContext, ToolOutcome};
use potentia_ai::chat::ToolCall;
use potentia_ai::retrieval::Scope;

use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::blocks::routes as blocks;
use crate::calendars::{query, schedules};
use crate::error::ApiError;
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::state::AppState;

/// The most Markdown `read_canvas` gives the model, in characters.
pub const MAX_READ_CHARS: usize = 20_000;
/// The most Markdown one `add_blocks` call may append, in bytes.
pub const MAX_ADD_BYTES: usize = 64 * 1024;
/// Agenda entries a tool call or a prompt holds, at most.
pub const MAX_AGENDA_ITEMS: u32 = 100;

pub struct ServerHost {
    pub state: AppState,
}

fn caller(context: &ToolContext) -> AuthUser {
    AuthUser {
        id: context.user_id,
        email: None,
    }
}

fn refused(err: ApiError) -> ToolOutcome {
    ToolOutcome::refused(err.code(), err.to_string())
}

fn uuid_arg(arguments: &Value, name: &str) -> Result<Uuid, ToolOutcome> {
    arguments[name]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ToolOutcome::refused(
                "invalid_arguments",
                format!("`{name}` must be a canvas or calendar id"),
            )
        })
}

/// A text argument without control characters other than newline and tab (Postgres refuses
/// NUL, and nothing else belongs in a canvas or a calendar).
fn text_arg(arguments: &Value, name: &str) -> Result<String, ToolOutcome> {
    arguments[name]
        .as_str()
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
                .collect::<String>()
        })
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ToolOutcome::refused("invalid_arguments", format!("`{name}` is required")))
}

fn instant_arg(arguments: &Value, name: &str) -> Result<DateTime<Utc>, ToolOutcome> {
    text_arg(arguments, name)?
        .parse::<DateTime<Utc>>()
        .map_err(|_| {
            ToolOutcome::refused(
                "invalid_arguments",
                format!("`{name}` must be an RFC 3339 instant"),
            )
        })
}

async fn body_of(response: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A search hit as the model reads it: the snippet without the highlight marks; a canvas title
/// has no block id.
fn hit(canvas_id: Uuid, canvas_title: &str, block_id: Uuid, snippet: &str) -> Value {
    let text: String = snippet
        .chars()
        .filter(|c| {
            *c != potentia_ai::retrieval::text::MARK_START
                && *c != potentia_ai::retrieval::text::MARK_END
        })
        .collect();
    json!({
        "canvas_id": canvas_id,
        "canvas_title": canvas_title,
        "block_id": (!block_id.is_nil()).then_some(block_id),
        "text": text,
    })
}

impl ServerHost {
    async fn search(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let q = text_arg(arguments, "query")?;
        let q = q.as_str();
        let limit = arguments["limit"].as_u64().unwrap_or(8).clamp(1, 20) as usize;
        let retriever = &self.state.ai.retriever;
        let hits: Vec<Value> = if retriever.has_embedder() {
            match retriever
                .hybrid_blocks(context.user_id, q, limit, Scope::default())
                .await
            {
                Ok(hits) => hits
                    .into_iter()
                    .map(|h| hit(h.canvas_id, &h.canvas_title, h.block_id, &h.snippet))
                    .collect(),
                Err(err) => return Err(refused(err.into())),
            }
        } else {
            let rows = potentia_ai::retrieval::text::search(
                &self.state.db,
                &potentia_ai::retrieval::text::TextQuery {
                    user_id: context.user_id,
                    q,
                    canvas_id: None,
                    include_archived: false,
                    titles: true,
                    blocks: true,
                    after: None,
                    limit: limit as i64,
                },
            )
            .await
            .map_err(|e| refused(e.into()))?;
            rows.into_iter()
                .map(|h| hit(h.canvas_id, &h.canvas_title, h.block_id, &h.snippet))
                .collect()
        };
        Ok(ToolOutcome::done(json!({ "hits": hits })))
    }

    async fn read_canvas(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let canvas = uuid_arg(arguments, "canvas_id")?;
        let response =
            blocks::export_markdown(State(self.state.clone()), caller(context), ApiPath(canvas))
                .await
                .map_err(refused)?;
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let cut: String = text.chars().take(MAX_READ_CHARS).collect();
        let truncated = cut.len() < text.len();
        Ok(ToolOutcome::done(
            json!({ "canvas_id": canvas, "markdown": cut, "truncated": truncated }),
        ))
    }

    async fn add_blocks(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let canvas = uuid_arg(arguments, "canvas_id")?;
        let markdown = text_arg(arguments, "markdown")?;
        let markdown = markdown.as_str();
        if markdown.len() > MAX_ADD_BYTES {
            return Err(ToolOutcome::refused(
                "too_large",
                format!("at most {MAX_ADD_BYTES} bytes of Markdown per call"),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/markdown"),
        );
        let (_, ApiJson(imported)) = blocks::import_markdown(
            State(self.state.clone()),
            caller(context),
            ApiPath(canvas),
            ApiQuery(blocks::ImportParams::default()),
            RequestId(context.request_id.clone()),
            headers,
            Bytes::copy_from_slice(markdown.as_bytes()),
        )
        .await
        .map_err(refused)?;
        Ok(ToolOutcome::done(
            json!({ "canvas_id": canvas, "block_ids": imported.block_ids }),
        ))
    }

    async fn create_todo(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let canvas = uuid_arg(arguments, "canvas_id")?;
        let text = text_arg(arguments, "text")?;
        let text = text.as_str();
        let mut props = serde_json::Map::new();
        props.insert("checked".into(), Value::Bool(false));
        if let Some(due) = arguments["due_at"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
        {
            let valid = due.parse::<DateTime<Utc>>().is_ok() || due.parse::<NaiveDate>().is_ok();
            if !valid {
                return Err(ToolOutcome::refused(
                    "invalid_arguments",
                    "`due_at` must be an RFC 3339 instant or a date (YYYY-MM-DD)",
                ));
            }
            props.insert("due_at".into(), Value::String(due.to_owned()));
        }
        let response = blocks::create_block(
            State(self.state.clone()),
            caller(context),
            ApiPath(canvas),
            RequestId(context.request_id.clone()),
            ApiJson(blocks::CreateBlock {
                kind: "todo".into(),
                text: text.to_owned(),
                markdown: None,
                runs: None,
                props,
                parent_id: None,
                position: None,
                id: None,
            }),
        )
        .await
        .map_err(refused)?;
        Ok(ToolOutcome::done(
            json!({ "block": body_of(response).await }),
        ))
    }

    async fn agenda_tool(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let from = instant_arg(arguments, "from")?;
        let to = instant_arg(arguments, "to")?;
        let items = self
            .agenda(context, from, to)
            .await
            .map_err(|reason| ToolOutcome::refused("agenda_unavailable", reason))?;
        let items: Vec<Value> = items
            .into_iter()
            .map(|i| json!({"when": i.when, "title": i.title}))
            .collect();
        Ok(ToolOutcome::done(
            json!({ "time_zone": context.time_zone.name(), "items": items }),
        ))
    }

    async fn create_schedule(
        &self,
        context: &ToolContext,
        arguments: &Value,
    ) -> Result<ToolOutcome, ToolOutcome> {
        let title = text_arg(arguments, "title")?;
        let title = title.as_str();
        let start = instant_arg(arguments, "start_at")?;
        let end = instant_arg(arguments, "end_at")?;
        let calendar = match arguments.get("calendar_id").filter(|v| !v.is_null()) {
            Some(_) => uuid_arg(arguments, "calendar_id")?,
            None => self.first_writable_calendar(context.user_id).await?,
        };
        let recurrence = arguments["rrule"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .map(|rule| schedules::RecurrenceBody {
                rrule: vec![rule.to_owned()],
                rdate: Vec::new(),
                exdate: Vec::new(),
            });
        let (_, ApiJson(written)) = schedules::create_schedule(
            State(self.state.clone()),
            caller(context),
            RequestId(context.request_id.clone()),
            ApiPath(calendar),
            ApiJson(schedules::CreateSchedule {
                title: Some(title.to_owned()),
                description: None,
                location: None,
                start: Some(start),
                end: Some(end),
                time_zone: Some(context.time_zone.name().to_owned()),
                start_date: None,
                end_date: None,
                status: None,
                transparency: None,
                recurrence,
                reminders: None,
                uid: None,
                strict: false,
            }),
        )
        .await
        .map_err(refused)?;
        let value = serde_json::to_value(&written.schedule).unwrap_or(Value::Null);
        Ok(ToolOutcome::done(
            json!({ "schedule": value, "conflicts": written.conflicts.len() }),
        ))
    }

    async fn first_writable_calendar(&self, user: Uuid) -> Result<Uuid, ToolOutcome> {
        let id = sqlx::query_scalar!(
            "select id from calendars where owner_id = $1 and workspace_id is null order by created_at limit 1",
            user
        )
        .fetch_optional(&self.state.db)
        .await
        .map_err(|e| refused(e.into()))?;
        id.ok_or_else(|| {
            ToolOutcome::refused(
                "no_calendar",
                "the user has no personal calendar; name a calendar_id",
            )
        })
    }
}

#[async_trait::async_trait]
impl AssistantHost for ServerHost {
    async fn run_tool(&self, context: &ToolContext, call: &ToolCall) -> ToolOutcome {
        let Some(tool) = Tool::parse(&call.name) else {
            return ToolOutcome::refused(
                "unknown_tool",
                format!("there is no tool `{}`", call.name),
            );
        };
        let arguments = &call.arguments;
        let outcome = match tool {
            Tool::Search => self.search(context, arguments).await,
            Tool::ReadCanvas => self.read_canvas(context, arguments).await,
            Tool::AddBlocks => self.add_blocks(context, arguments).await,
            Tool::CreateTodo => self.create_todo(context, arguments).await,
            Tool::Agenda => self.agenda_tool(context, arguments).await,
            Tool::CreateSchedule => self.create_schedule(context, arguments).await,
        };
        let outcome = outcome.unwrap_or_else(|refusal| refusal);
        let record = audit::record(
            &self.state.db,
            AuditEntry::new("conversation.tool", "conversation", context.conversation_id)
                .actor(context.user_id)
                .after(json!({"tool": tool.name(), "ok": outcome.ok}))
                .request(context.request_id.as_deref()),
        )
        .await;
        if let Err(err) = record {
            tracing::warn!(error = %err, "a tool call's audit row could not be written");
        }
        outcome
    }

    async fn agenda(
        &self,
        context: &ToolContext,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AgendaItem>, String> {
        let page = query::view_instances(
            State(self.state.clone()),
            caller(context),
            ApiQuery(query::ViewParams {
                time_min: from,
                time_max: to,
                calendar_ids: None,
                limit: Some(MAX_AGENDA_ITEMS),
                cursor: None,
                include: None,
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
        let zone = context.time_zone;
        Ok(page
            .0
            .items
            .into_iter()
            .map(|i| AgendaItem {
                when: if i.all_day {
                    format!(
                        "{} all day",
                        i.start.with_timezone(&zone).format("%a %-d %b")
                    )
                } else {
                    format!(
                        "{}–{}",
                        i.start.with_timezone(&zone).format("%a %-d %b %H:%M"),
                        i.end.with_timezone(&zone).format("%H:%M")
                    )
                },
                title: i.title,
            })
            .collect())
    }

    async fn audit(&self, db: &mut PgConnection, record: AuditRecord<'_>) -> sqlx::Result<()> {
        audit::record(
            db,
            AuditEntry::new(record.action, record.target_type, record.target_id)
                .actor(record.actor_id)
                .after(record.after)
                .request(record.request_id),
        )
        .await
    }
}
