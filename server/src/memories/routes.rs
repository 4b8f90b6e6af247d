//! The memory routes. See the module doc of [`crate::memories`].

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use potentia_ai::assistant::memories::{
    self as store, Memory, MemoryAfter, MemoryEdit, NewMemory, Origin, MAX_MEMORY_CHARS,
};

use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams, Position};
use crate::state::AppState;
use crate::validation::{present, required_text, FieldErrors};

/// What kind of thing a memory says: `fact`, `preference`, or `rule` (something the caller
/// wants the assistant to always or never do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// Something true about the caller ("lives in Lyon").
    Fact,
    /// Something the caller likes or dislikes ("prefers tea to coffee").
    Preference,
    /// Something the caller wants the assistant to always or never do.
    Rule,
}

impl From<store::MemoryKind> for MemoryKind {
    fn from(kind: store::MemoryKind) -> Self {
        match kind {
            store::MemoryKind::Fact => Self::Fact,
            store::MemoryKind::Preference => Self::Preference,
            store::MemoryKind::Rule => Self::Rule,
        }
    }
}

/// Where a memory came from: `assessor` (learned by the assistant from a conversation) or
/// `user` (stated or edited by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryOrigin {
    /// Learned by the assistant from a conversation.
    Assessor,
    /// Stated or edited by the caller.
    User,
}

impl From<Origin> for MemoryOrigin {
    fn from(origin: Origin) -> Self {
        match origin {
            Origin::Assessor => Self::Assessor,
            Origin::User => Self::User,
        }
    }
}

/// What a change did to a memory: `add` (stored), `update` (the assistant replaced it with a
/// newer memory), `invalidate` (its validity was ended) or `edit` (the caller changed its text
/// or kind, or made it true again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryEvent {
    /// The memory was stored.
    Add,
    /// The assistant replaced it with a newer memory (`replaced_by`), ending its validity.
    Update,
    /// Its validity was ended: by the assistant (a contradiction or a retraction) or by the
    /// caller setting `invalid_at`.
    Invalidate,
    /// The caller changed it: a new text or kind (on the old version `replaced_by` names the
    /// new one), or `invalid_at` cleared to make it true again.
    Edit,
}

/// A memory: something the assistant knows about the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryOut {
    /// The memory's id; a new text or kind gives the corrected memory a new id.
    pub id: Uuid,
    /// What kind of thing the memory says.
    pub kind: MemoryKind,
    /// What the assistant knows, 1 to 2,000 characters.
    pub text: String,
    /// When it became true (world time).
    pub valid_at: DateTime<Utc>,
    /// When it stopped (or stops) being true: a contradiction or a correction; null while it
    /// holds with no end. Never before `valid_at`.
    pub invalid_at: Option<DateTime<Utc>>,
    /// When this version of the memory was stored.
    pub created_at: DateTime<Utc>,
    /// Who stated it; a memory the caller edited is `user`.
    pub origin: MemoryOrigin,
    /// The message it was learned from; null when the caller stated it, or once that message
    /// is deleted.
    pub source_message_id: Option<Uuid>,
    /// The conversation it was learned in; null when the caller stated it, or once that
    /// conversation is deleted.
    pub source_conversation_id: Option<Uuid>,
}

impl From<Memory> for MemoryOut {
    fn from(m: Memory) -> Self {
        Self {
            id: m.id,
            kind: m.kind.into(),
            text: m.text,
            valid_at: m.valid_at,
            invalid_at: m.invalid_at,
            created_at: m.created_at,
            origin: m.origin.into(),
            source_message_id: m.source_message_id,
            source_conversation_id: m.source_conversation_id,
        }
    }
}

/// One change of a memory.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryOut {
    /// What the change did.
    #[schema(value_type = MemoryEvent)]
    pub event: String,
    /// The text before the change; null for `add`.
    pub old_text: Option<String>,
    /// The text after the change; null when the assistant ended the memory's validity
    /// (`update`, `invalidate`).
    pub new_text: Option<String>,
    /// The memory that replaced this one: the assistant's newer memory (`update`) or the
    /// corrected version (`edit`); null otherwise, or once that memory is forgotten.
    pub replaced_by: Option<Uuid>,
    /// Why, in words: the assistant's reason, or `stated by the user`, `edited by the user`,
    /// `changed by the user` for the caller's own changes.
    pub reason: String,
    /// The message that led the assistant to the change; null for the caller's changes, or
    /// once that message is deleted.
    pub message_id: Option<Uuid>,
    /// When the change was made.
    pub at: DateTime<Utc>,
}

/// A memory with its changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryWithHistory {
    #[serde(flatten)]
    pub memory: MemoryOut,
    /// The changes of this version of the memory, oldest first; a version made by an edit
    /// starts with its `edit` entry.
    pub history: Vec<HistoryOut>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMemories {
    /// Also list memories that are not true now (validity ended or not yet begun); default
    /// false. Versions replaced by an edit are never listed.
    #[serde(default)]
    pub include_invalid: bool,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A memory the caller states.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "preference",
    "text": "Prefers tea to coffee in the afternoon",
    "valid_at": "2026-11-03T09:00:00Z"
}))]
pub struct CreateMemory {
    /// What kind of thing it says; default `fact`.
    #[schema(value_type = Option<MemoryKind>)]
    pub kind: Option<String>,
    /// What the assistant should know, 1 to 2,000 characters after trimming, without control
    /// characters other than newlines and tabs.
    pub text: String,
    /// When it became true; default now.
    pub valid_at: Option<DateTime<Utc>>,
}

/// A correction of a memory. Absent fields stay. A new `text` or `kind` replaces the memory
/// (a new id); `invalid_at` ends its validity (`null`: true again).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "rule",
    "text": "Never suggest coffee after 4 pm"
}))]
pub struct PatchMemory {
    /// A new kind; a different one replaces the memory with a new version (new id).
    #[schema(value_type = Option<MemoryKind>)]
    pub kind: Option<String>,
    /// A new text, 1 to 2,000 characters after trimming; a different one replaces the memory
    /// with a new version (new id).
    pub text: Option<String>,
    /// When the memory stopped being true (an earlier time than `valid_at` counts as
    /// `valid_at`); `null` makes it true again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub invalid_at: Option<Option<DateTime<Utc>>>,
}

fn kind_of(errors: &mut FieldErrors, kind: Option<&str>) -> Option<store::MemoryKind> {
    let kind = kind?;
    let parsed = store::MemoryKind::parse(kind);
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
    responses((status = 200, description = "A page of the caller's memories, newest first", body = Page<MemoryOut>),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 201, description = "The memory, with origin `user`", body = MemoryOut),
              (status = 409, description = "The caller already keeps 10,000 memories, versions replaced by edits included (`too_many_memories`); forget some first", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_memory(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateMemory>,
) -> ApiResult<(StatusCode, ApiJson<MemoryOut>)> {
    let mut errors = FieldErrors::default();
    let text = errors.check(required_text("text", body.text, MAX_MEMORY_CHARS));
    let kind = kind_of(&mut errors, body.kind.as_deref()).unwrap_or(store::MemoryKind::Fact);
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
///
/// Any version answers, also one an edit has replaced.
#[utoipa::path(get, path = "/api/v1/memories/{memory_id}", tag = "memories", security(("bearer" = [])),
    params(("memory_id" = Uuid, Path)),
    responses((status = 200, description = "The memory and its changes, oldest first", body = MemoryWithHistory),
              (status = 404, description = "No such memory of the caller's", body = Problem, content_type = "application/problem+json")))]
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
///
/// A different `text` or `kind` stores a new version with a new id (the old one stops being
/// listed); `invalid_at` alone is changed in place.
#[utoipa::path(patch, path = "/api/v1/memories/{memory_id}", tag = "memories", security(("bearer" = [])),
    params(("memory_id" = Uuid, Path)), request_body = PatchMemory,
    responses((status = 200, description = "The memory as corrected; a new `id` when its text or kind changed", body = MemoryOut),
              (status = 404, description = "No such memory of the caller's, or a version an edit has already replaced", body = Problem, content_type = "application/problem+json"),
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
    responses((status = 204, description = "The memory was forgotten"),
              (status = 404, description = "No such memory of the caller's", body = Problem, content_type = "application/problem+json")))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_as_the_store_names_them() {
        for kind in [
            store::MemoryKind::Fact,
            store::MemoryKind::Preference,
            store::MemoryKind::Rule,
        ] {
            assert_eq!(
                serde_json::to_value(MemoryKind::from(kind)).unwrap(),
                kind.as_str()
            );
        }
    }

    #[test]
    fn history_events_are_the_ones_the_table_allows() {
        let events = [
            MemoryEvent::Add,
            MemoryEvent::Update,
            MemoryEvent::Invalidate,
            MemoryEvent::Edit,
        ]
        .map(|e| serde_json::to_value(e).unwrap());
        assert_eq!(events, ["add", "update", "invalidate", "edit"]);
    }
}
