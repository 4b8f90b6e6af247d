//! The memory routes. See the module doc of [`crate::memories`].

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use potentia_ai::assistant::memories::{
    self as store, Memory, MemoryAfter, MemoryEdit, MemoryKind, NewMemory, Origin, MAX_MEMORY_CHARS,
};

use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams, Position};
use crate::state::AppState;
use crate::validation::{present, required_text, FieldErrors};

/// A memory: something the assistant knows about the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryOut {
    pub id: Uuid,
    /// `fact`, `preference` or `rule`.
    pub kind: String,
    pub text: String,
    /// When it became true.
    pub valid_at: DateTime<Utc>,
    /// When it stopped being true (a contradiction or a correction); null while true.
    pub invalid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// `assessor` (learned from a conversation) or `user` (stated or edited by the caller).
    pub origin: String,
    pub source_message_id: Option<Uuid>,
    pub source_conversation_id: Option<Uuid>,
}

impl From<Memory> for MemoryOut {
    fn from(m: Memory) -> Self {
        Self {
            id: m.id,
            kind: m.kind.as_str().to_owned(),
            text: m.text,
            valid_at: m.valid_at,
            invalid_at: m.invalid_at,
            created_at: m.created_at,
            origin: match m.origin {
                Origin::Assessor => "assessor",
                Origin::User => "user",
            }
            .to_owned(),
            source_message_id: m.source_message_id,
            source_conversation_id: m.source_conversation_id,
        }
    }
}

/// One change of a memory.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    /// `add`, `update` (replaced by `replaced_by`), `invalidate` or `edit`.
    pub event: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    pub replaced_by: Option<Uuid>,
    pub reason: String,
    pub message_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryWithHistory {
    #[serde(flatten)]
    pub memory: MemoryOut,
    pub history: Vec<HistoryOut>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMemories {
    /// Also memories that are no longer true.
    #[serde(default)]
    pub include_invalid: bool,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMemory {
    /// `fact`, `preference` or `rule`; default `fact`.
    pub kind: Option<String>,
    /// At most 2,000 characters.
    pub text: String,
    /// When it became true; default now.
    pub valid_at: Option<DateTime<Utc>>,
}

/// Absent fields stay. A new `text` or `kind` replaces the memory (a new id); `invalid_at`
/// ends its validity (`null`: true again).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMemory {
    pub kind: Option<String>,
    pub text: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub invalid_at: Option<Option<DateTime<Utc>>>,
}

fn kind_of(errors: &mut FieldErrors, kind: Option<&str>) -> Option<MemoryKind> {
    let kind = kind?;
    let parsed = MemoryKind::parse(kind);
    if parsed.is_none() {
        errors.push("kind", "must be `fact`, `preference` or `rule`");
    }
    parsed
}

fn not_found() -> ApiError {
    ApiError::NotFound { what: "memory" }
}

/// What the assistant knows about the caller, newest first.
#[utoipa::path(get, path = "/api/v1/memories", tag = "memories", security(("bearer" = [])),
    params(ListMemories),
    responses((status = 200, body = Page<MemoryOut>), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_memories(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ListMemories>,
) -> ApiResult<ApiJson<Page<MemoryOut>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .validate()?;
    let after = page.after.map(|p| MemoryAfter {
        created_at: p.created_at,
        id: p.id,
    });
    let rows: Vec<MemoryOut> = store::list(
        &state.db,
        caller.id,
        state.ai.assistant.now(),
        params.include_invalid,
        after,
        page.fetch_limit(),
    )
    .await?
    .into_iter()
    .map(Into::into)
    .collect();
    Ok(ApiJson(Page::from_rows(rows, &page, |m| Position {
        created_at: m.created_at,
        id: m.id,
    })))
}

/// States a memory.
#[utoipa::path(post, path = "/api/v1/memories", tag = "memories", security(("bearer" = [])),
    request_body = CreateMemory,
    responses((status = 201, body = MemoryOut), (status = 409, description = "Too many memories", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_memory(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateMemory>,
) -> ApiResult<(StatusCode, ApiJson<MemoryOut>)> {
    let mut errors = FieldErrors::default();
    let text = errors.check(required_text("text", body.text, MAX_MEMORY_CHARS));
    let kind = kind_of(&mut errors, body.kind.as_deref()).unwrap_or(MemoryKind::Fact);
    errors.into_result()?;
    let text = text.ok_or_else(|| ApiError::invalid_field("text", "must not be empty"))?;
    let now = state.ai.assistant.now();
    let mut tx = state.db.begin().await?;
    if store::count(&mut *tx, caller.id).await? >= store::MAX_MEMORIES_PER_USER {
        return Err(ApiError::conflict(
            "too_many_memories",
            format!(
                "a user may keep at most {} memories; forget some first",
                store::MAX_MEMORIES_PER_USER
            ),
        ));
    }
    let memory = store::add(
        &mut tx,
        &NewMemory {
            user_id: caller.id,
            kind,
            text: &text,
            valid_at: body.valid_at.unwrap_or(now),
            origin: Origin::User,
            source_message_id: None,
            source_conversation_id: None,
            reason: "stated by the user",
            at: now,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("memory.create", "memory", memory.id)
            .actor(caller.id)
            .after(json!({"kind": kind.as_str()}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(memory.into())))
}

/// A memory with its history.
#[utoipa::path(get, path = "/api/v1/memories/{memory_id}", tag = "memories", security(("bearer" = [])),
    params(("memory_id" = Uuid, Path)),
    responses((status = 200, body = MemoryWithHistory), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_memory(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<MemoryWithHistory>> {
    let memory = store::find(&state.db, caller.id, id)
        .await?
        .ok_or_else(not_found)?;
    let history = store::history_of(&state.db, caller.id, id)
        .await?
        .into_iter()
        .map(|h| HistoryOut {
            event: h.event,
            old_text: h.old_text,
            new_text: h.new_text,
            replaced_by: h.replaced_by,
            reason: h.reason,
            message_id: h.message_id,
            at: h.at,
        })
        .collect();
    Ok(ApiJson(MemoryWithHistory {
        memory: memory.into(),
        history,
    }))
}

/// Corrects a memory.
#[utoipa::path(patch, path = "/api/v1/memories/{memory_id}", tag = "memories", security(("bearer" = [])),
    params(("memory_id" = Uuid, Path)), request_body = PatchMemory,
    responses((status = 200, body = MemoryOut), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_memory(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchMemory>,
) -> ApiResult<ApiJson<MemoryOut>> {
    let mut errors = FieldErrors::default();
    let text = body
        .text
        .and_then(|t| errors.check(required_text("text", t, MAX_MEMORY_CHARS)));
    let kind = kind_of(&mut errors, body.kind.as_deref());
    errors.into_result()?;
    let mut tx = state.db.begin().await?;
    let edited = store::edit(
        &mut tx,
        caller.id,
        id,
        &MemoryEdit {
            text: text.as_deref(),
            kind,
            invalid_at: body.invalid_at,
        },
        state.ai.assistant.now(),
    )
    .await?
    .ok_or_else(not_found)?;
    audit::record(
        &mut *tx,
        AuditEntry::new("memory.update", "memory", id)
            .actor(caller.id)
            .after(json!({"id": edited.id, "invalid_at": edited.invalid_at}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(edited.into()))
}

/// Forgets a memory: it, its history and its embedding are deleted.
#[utoipa::path(delete, path = "/api/v1/memories/{memory_id}", tag = "memories", security(("bearer" = [])),
    params(("memory_id" = Uuid, Path)),
    responses((status = 204, description = "Forgotten"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_memory(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    if !store::forget(&mut *tx, caller.id, id).await? {
        return Err(not_found());
    }
    audit::record(
        &mut *tx,
        AuditEntry::new("memory.forget", "memory", id)
            .actor(caller.id)
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
