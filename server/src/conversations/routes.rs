//! The conversation routes. See the module doc of [`crate::conversations`].

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use potentia_ai::assistant::conversations::{
    self as store, ActivityAfter, Conversation, Message, MessageAfter, NewConversation,
};
use potentia_ai::assistant::tools::ToolRecord;
use potentia_ai::assistant::{TurnEvent, TurnRequest, TurnResult, TurnStart};
use potentia_ai::AiError;

use crate::access::{require_canvas, require_workspace, Access, WorkspaceRole};
use crate::ai::host::ServerHost;
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams, Position};
use crate::state::AppState;
use crate::validation::{bounded_text, FieldErrors};

/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8_000;
/// The longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest `client_message_id`, in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 200;
/// Conversations one user may keep.
pub const MAX_CONVERSATIONS_PER_USER: i64 = 10_000;
/// Topics `GET …/contexts` lists, the most recently active first.
pub const MAX_LISTED_CONTEXTS: i64 = 200;

/// A conversation with the assistant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub canvas_id: Option<Uuid>,
    /// Empty until the first exchange has been titled.
    pub title: String,
    /// `none` (untitled), `auto` (generated) or `user` (renamed; never overwritten).
    pub title_source: String,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            workspace_id: c.workspace_id,
            canvas_id: c.canvas_id,
            title: c.title,
            title_source: c.title_source.as_str().to_owned(),
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
        }
    }
}

impl ConversationOut {
    fn position(&self) -> Position {
        Position {
            created_at: self.last_activity_at,
            id: self.id,
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The topic the message belongs to.
    pub context_id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    /// `complete`, `interrupted` (the client went away mid-answer) or `failed`.
    pub status: String,
    pub client_message_id: Option<String>,
    /// For an answer: the user message it answers.
    pub reply_to: Option<Uuid>,
    /// For a user message: the judge's decision (`decision`, `context_id`, `reason`, `source`).
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    /// For an answer: the domain role the specialist took.
    pub domain_role: Option<String>,
    /// For an answer: the tool calls made, with their results.
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Value,
    pub created_at: DateTime<Utc>,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            context_id: m.context_id,
            role: m.role.as_str().to_owned(),
            text: m.text,
            status: m.status.as_str().to_owned(),
            client_message_id: m.client_message_id,
            reply_to: m.reply_to,
            decision: m.decision,
            domain_role: m.domain_role,
            tool_calls: m.tool_calls,
            created_at: m.created_at,
        }
    }
}

/// A topic of a conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContextOut {
    pub id: Uuid,
    /// The rolling summary the assessor keeps.
    pub summary: String,
    pub started_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub message_count: i32,
}

/// The outcome of a turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnOut {
    pub user_message: MessageOut,
    pub assistant_message: MessageOut,
    /// `decision` (`continue`, `switch` or `new`), `context_id`, `reason`, and `source`
    /// (`model`, `rule` or `fallback`).
    #[schema(value_type = Object)]
    pub decision: Value,
    pub domain_role: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<Value>,
    /// A retry of a stored turn: this is the stored answer.
    pub replayed: bool,
    /// What the specialist prompt held (estimated tokens, parts kept and cut).
    #[schema(value_type = Option<Object>)]
    pub prompt: Option<Value>,
}

fn tool_value(record: &ToolRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

impl From<TurnResult> for TurnOut {
    fn from(t: TurnResult) -> Self {
        Self {
            decision: serde_json::to_value(&t.decision).unwrap_or(Value::Null),
            tool_calls: t.tool_calls.iter().map(tool_value).collect(),
            user_message: t.user_message.into(),
            assistant_message: t.assistant_message.into(),
            domain_role: t.domain_role,
            replayed: t.replayed,
            prompt: t.prompt.and_then(|p| serde_json::to_value(p).ok()),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// A title of your own (never overwritten); omitted, one is generated after the first exchange.
    pub title: Option<String>,
    /// Tie it to a workspace you belong to (its domain roles are used).
    pub workspace_id: Option<Uuid>,
    /// Tie it to a canvas you can read.
    pub canvas_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    pub title: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Also forget the memories learned from this conversation.
    #[serde(default)]
    pub forget: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// At most 8,000 characters.
    pub text: String,
    /// Your id for this message (1–200 characters): a retry with the same id returns the same
    /// answer and never runs the assistant twice.
    pub client_message_id: String,
    /// An IANA zone (`Europe/Paris`) for this turn; default the profile's.
    pub time_zone: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        what: "conversation",
    }
}

async fn owned(state: &AppState, caller: &AuthUser, id: Uuid) -> ApiResult<Conversation> {
    store::find(&state.db, caller.id, id)
        .await?
        .ok_or_else(not_found)
}

/// Starts a conversation with the assistant.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = CreateConversation,
    responses((status = 201, body = ConversationOut), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Too many conversations", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateConversation>,
) -> ApiResult<(StatusCode, ApiJson<ConversationOut>)> {
    let title = bounded_text("title", body.title, MAX_TITLE_CHARS)
        .map_err(|e| ApiError::invalid_fields(vec![e]))?;
    let mut tx = state.db.begin().await?;
    if let Some(workspace) = body.workspace_id {
        require_workspace(&mut *tx, caller.id, workspace, WorkspaceRole::Viewer).await?;
    }
    if let Some(canvas) = body.canvas_id {
        require_canvas(&mut *tx, caller.id, canvas, Access::Read).await?;
    }
    if store::count(&mut *tx, caller.id).await? >= MAX_CONVERSATIONS_PER_USER {
        return Err(ApiError::conflict(
            "too_many_conversations",
            format!("a user may keep at most {MAX_CONVERSATIONS_PER_USER} conversations; delete some first"),
        ));
    }
    let conversation = store::create(
        &mut tx,
        &NewConversation {
            user_id: caller.id,
            workspace_id: body.workspace_id,
            canvas_id: body.canvas_id,
            title,
            at: state.ai.assistant.now(),
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("conversation.create", "conversation", conversation.id)
            .actor(caller.id)
            .after(json!({"workspace_id": conversation.workspace_id, "canvas_id": conversation.canvas_id}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(conversation.into())))
}

/// The caller's conversations, most recent activity first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<ConversationOut>), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<ConversationOut>>> {
    let page = params.validate()?;
    let after = page.after.map(|p| ActivityAfter {
        last_activity_at: p.created_at,
        id: p.id,
    });
    let rows = store::list(&state.db, caller.id, after, page.fetch_limit()).await?;
    let rows: Vec<ConversationOut> = rows.into_iter().map(Into::into).collect();
    Ok(ApiJson(Page::from_rows(
        rows,
        &page,
        ConversationOut::position,
    )))
}

#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<ConversationOut>> {
    Ok(ApiJson(owned(&state, &caller, id).await?.into()))
}

/// Renames a conversation; a generated title never replaces this one.
#[utoipa::path(patch, path = "/api/v1/conversations/{conversation_id}", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)), request_body = RenameConversation,
    responses((status = 200, body = ConversationOut), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rename_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RenameConversation>,
) -> ApiResult<ApiJson<ConversationOut>> {
    let title = crate::validation::required_text("title", body.title, MAX_TITLE_CHARS)
        .map_err(|e| ApiError::invalid_fields(vec![e]))?;
    let mut tx = state.db.begin().await?;
    let before = store::find(&mut *tx, caller.id, id)
        .await?
        .ok_or_else(not_found)?;
    let renamed = store::rename(&mut tx, caller.id, id, &title)
        .await?
        .ok_or_else(not_found)?;
    audit::record(
        &mut *tx,
        AuditEntry::new("conversation.rename", "conversation", id)
            .actor(caller.id)
            .before(json!({"title": before.title}))
            .after(json!({"title": renamed.title}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(renamed.into()))
}

/// Deletes a conversation with its topics and messages. Memories learned from it stay unless
/// `?forget=true`.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path), DeleteParams),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_conversation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let deleted = store::delete(&mut tx, caller.id, id, params.forget)
        .await?
        .ok_or_else(not_found)?;
    audit::record(
        &mut *tx,
        AuditEntry::new("conversation.delete", "conversation", id)
            .actor(caller.id)
            .after(json!({"messages": deleted.messages, "memories_forgotten": deleted.memories_forgotten}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The conversation's messages in the order they were written.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<MessageOut>), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<MessageOut>>> {
    let page = params.validate()?;
    owned(&state, &caller, id).await?;
    let after = page.after.map(|p| MessageAfter {
        created_at: p.created_at,
        id: p.id,
    });
    let rows: Vec<MessageOut> = store::messages(&state.db, id, after, page.fetch_limit())
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(ApiJson(Page::from_rows(rows, &page, |m| Position {
        created_at: m.created_at,
        id: m.id,
    })))
}

/// The conversation's topics, most recently active first (the latest 200).
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/contexts", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ContextOut>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_contexts(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Vec<ContextOut>>> {
    owned(&state, &caller, id).await?;
    let contexts = store::contexts(&state.db, id, MAX_LISTED_CONTEXTS)
        .await?
        .into_iter()
        .map(|c| ContextOut {
            id: c.id,
            summary: c.summary,
            started_at: c.started_at,
            last_active_at: c.last_active_at,
            message_count: c.message_count,
        })
        .collect();
    Ok(ApiJson(contexts))
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

fn validate_turn(body: PostMessage) -> ApiResult<(String, String, Option<chrono_tz::Tz>)> {
    let mut errors = FieldErrors::default();
    let text = errors.check(crate::validation::required_text(
        "text",
        body.text,
        MAX_MESSAGE_CHARS,
    ));
    let id = errors.check(crate::validation::required_text(
        "client_message_id",
        body.client_message_id,
        MAX_CLIENT_MESSAGE_ID_CHARS,
    ));
    let zone = match body.time_zone.as_deref() {
        None => None,
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push("time_zone", "is not an IANA time zone (e.g. Europe/Paris)");
                None
            }
        },
    };
    errors.into_result()?;
    match (text, id) {
        (Some(text), Some(id)) => Ok((text, id, zone)),
        _ => Err(ApiError::Internal("validated fields missing".into())),
    }
}

/// Sends a message and gets the assistant's answer: JSON (201; 200 for a replayed retry), or
/// with `Accept: text/event-stream` Server-Sent Events `context`, `delta`…, `tool_call`,
/// `tool_result`, `message`, `title`, `error`. A client that disconnects mid-stream cancels the
/// model call; what was produced is stored with status `interrupted`.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("conversation_id" = Uuid, Path)), request_body = PostMessage,
    responses((status = 201, body = TurnOut), (status = 200, description = "A replayed retry", body = TurnOut),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The same client_message_id is being answered", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 503, description = "No chat provider, or it is unavailable", body = Problem, content_type = "application/problem+json")))]
pub async fn post_message(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PostMessage>,
) -> ApiResult<Response> {
    let (text, client_message_id, time_zone) = validate_turn(body)?;
    owned(&state, &caller, id).await?;
    if state.ai.chat.is_none() {
        return Err(AiError::NotConfigured { what: "chat" }.into());
    }
    state
        .ai
        .take_turn(caller.id)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let host = std::sync::Arc::new(ServerHost {
        state: state.clone(),
    });
    let start = state
        .ai
        .assistant
        .start_turn(
            TurnRequest {
                user_id: caller.id,
                conversation_id: id,
                text,
                client_message_id,
                time_zone,
                request_id,
            },
            host,
        )
        .await?;
    if wants_stream(&headers) {
        return Ok(stream_response(start).into_response());
    }
    match start {
        TurnStart::Replay(turn) => {
            Ok((StatusCode::OK, ApiJson(TurnOut::from(*turn))).into_response())
        }
        TurnStart::Running(mut events) => {
            while let Some(event) = events.recv().await {
                match event {
                    TurnEvent::Message { turn } => {
                        return Ok(
                            (StatusCode::CREATED, ApiJson(TurnOut::from(*turn))).into_response()
                        );
                    }
                    TurnEvent::Error { code, detail } => {
                        return Err(turn_error(&state, &code, detail))
                    }
                    _ => {}
                }
            }
            Err(ApiError::Internal(
                "the turn ended without an answer".into(),
            ))
        }
    }
}

/// The problem a failed turn answers in JSON mode.
fn turn_error(state: &AppState, code: &str, detail: String) -> ApiError {
    let provider = state
        .ai
        .chat
        .as_ref()
        .map_or(potentia_ai::settings::ProviderKind::Local, |c| c.provider());
    match code {
        "ai_unavailable" => AiError::Unavailable {
            provider,
            reason: detail,
            retry_after: None,
        }
        .into(),
        "ai_rejected" => AiError::Rejected {
            provider,
            reason: detail,
        }
        .into(),
        "ai_not_configured" => AiError::NotConfigured { what: "chat" }.into(),
        _ => ApiError::Internal(detail),
    }
}

fn event_name(event: &TurnEvent) -> &'static str {
    match event {
        TurnEvent::Context { .. } => "context",
        TurnEvent::Delta { .. } => "delta",
        TurnEvent::ToolCall { .. } => "tool_call",
        TurnEvent::ToolResult { .. } => "tool_result",
        TurnEvent::Message { .. } => "message",
        TurnEvent::Title { .. } => "title",
        TurnEvent::Error { .. } => "error",
    }
}

fn sse_event(event: TurnEvent) -> Event {
    let name = event_name(&event);
    let data = match event {
        TurnEvent::Context {
            decision,
            user_message,
        } => json!({
            "decision": decision,
            "user_message": MessageOut::from(user_message),
        }),
        TurnEvent::Delta { text } => json!({ "text": text }),
        TurnEvent::ToolCall { call } => {
            json!({ "id": call.id, "name": call.name, "arguments": call.arguments })
        }
        TurnEvent::ToolResult { result } => tool_value(&result),
        TurnEvent::Message { turn } => {
            serde_json::to_value(TurnOut::from(*turn)).unwrap_or(Value::Null)
        }
        TurnEvent::Title { title } => json!({ "title": title }),
        TurnEvent::Error { code, detail } => json!({ "code": code, "detail": detail }),
    };
    Event::default().event(name).data(data.to_string())
}

fn stream_response(start: TurnStart) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events: std::pin::Pin<Box<dyn Stream<Item = TurnEvent> + Send>> = match start {
        TurnStart::Replay(turn) => {
            let turn = *turn;
            Box::pin(stream::iter(vec![
                TurnEvent::Context {
                    decision: turn.decision.clone(),
                    user_message: turn.user_message.clone(),
                },
                TurnEvent::Message {
                    turn: Box::new(turn),
                },
            ]))
        }
        TurnStart::Running(receiver) => Box::pin(stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })),
    };
    Sse::new(events.map(|e| Ok(sse_event(e)))).keep_alive(KeepAlive::default())
}
