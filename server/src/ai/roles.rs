//! `/api/v1/workspaces/{workspace_id}/ai-roles*`: the domain roles of a workspace's
//! conversations, besides the built-in ones. Any member reads them; admins change them.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use potentia_ai::assistant::roles::{self as store, NameTaken, Role};

use crate::access::{require_workspace, WorkspaceRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, RequestId};
use crate::state::AppState;
use crate::validation::{required_text, FieldErrors};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_PROMPT_CHARS: usize = 8000;
/// Roles one workspace may define.
pub const MAX_ROLES: usize = 50;

/// A domain role the assistant's specialist can take to answer a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleOut {
    /// The role's id.
    pub id: Uuid,
    /// The workspace that defined the role; null for a built-in role (which cannot be changed).
    pub workspace_id: Option<Uuid>,
    /// The role's name, 1 to 100 characters, unique within its workspace; answers name it in
    /// their `domain_role`.
    pub name: String,
    /// What the role is for, 1 to 1,000 characters; messages are matched against it.
    pub description: String,
    /// The instructions the specialist follows in this role, 1 to 8,000 characters.
    pub prompt: String,
    /// When the role was created.
    pub created_at: DateTime<Utc>,
    /// When the role was last replaced (its creation time if never).
    pub updated_at: DateTime<Utc>,
}

impl From<Role> for RoleOut {
    fn from(r: Role) -> Self {
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            name: r.name,
            description: r.description,
            prompt: r.prompt,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A workspace role to add, or the new content of one. Text is trimmed and must not contain
/// control characters other than newlines and tabs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "chef",
    "description": "Cooking: recipes, techniques, ingredients and menus.",
    "prompt": "Act as a chef. Suggest one recipe and explain each step."
}))]
pub struct RoleBody {
    /// The role's name, 1 to 100 characters; unique among the workspace's roles (409 otherwise).
    pub name: String,
    /// What the role is for, 1 to 1,000 characters; messages are matched against it to choose
    /// the role.
    pub description: String,
    /// The instructions the specialist follows in this role, 1 to 8,000 characters.
    pub prompt: String,
}

fn validate(body: RoleBody) -> ApiResult<(String, String, String)> {
    let mut errors = FieldErrors::default();
    let name = errors.check(required_text("name", body.name, MAX_NAME_CHARS));
    let description = errors.check(required_text(
        "description",
        body.description,
        MAX_DESCRIPTION_CHARS,
    ));
    let prompt = errors.check(required_text("prompt", body.prompt, MAX_PROMPT_CHARS));
    errors.into_result()?;
    match (name, description, prompt) {
        (Some(n), Some(d), Some(p)) => Ok((n, d, p)),
        _ => Err(ApiError::Internal("validated fields missing".into())),
    }
}

fn name_taken() -> ApiError {
    ApiError::conflict("role_name_taken", "the workspace has a role of that name")
}

/// The built-in roles and the workspace's own (any member).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/ai-roles", tag = "conversations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, description = "The built-in roles first, then the workspace's own, each by name", body = Vec<RoleOut>),
              (status = 404, description = "No such workspace, or the caller is not a member", body = Problem, content_type = "application/problem+json")))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(workspace): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Vec<RoleOut>>> {
    require_workspace(&state.db, caller.id, workspace, WorkspaceRole::Viewer).await?;
    let roles = store::available(&state.db, Some(workspace)).await?;
    Ok(ApiJson(roles.into_iter().map(Into::into).collect()))
}

/// Adds a domain role to the workspace (admins).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/ai-roles", tag = "conversations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)), request_body = RoleBody,
    responses((status = 201, description = "The role was added", body = RoleOut),
              (status = 403, description = "The caller is a member but not an admin of the workspace", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such workspace, or the caller is not a member", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The workspace already has a role of that name (`role_name_taken`), or already defines 50 roles (`too_many_roles`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RoleBody>,
) -> ApiResult<(StatusCode, ApiJson<RoleOut>)> {
    let (name, description, prompt) = validate(body)?;
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace, WorkspaceRole::Admin).await?;
    if store::of_workspace(&mut *tx, workspace).await?.len() >= MAX_ROLES {
        return Err(ApiError::conflict(
            "too_many_roles",
            format!("a workspace may define at most {MAX_ROLES} roles"),
        ));
    }
    let role = store::create(&mut *tx, workspace, &name, &description, &prompt)
        .await?
        .map_err(|NameTaken| name_taken())?;
    audit::record(
        &mut *tx,
        AuditEntry::new("ai_role.create", "ai_role", role.id)
            .actor(caller.id)
            .after(json!({"workspace_id": workspace, "name": role.name}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(role.into())))
}

/// Replaces a workspace role (admins).
#[utoipa::path(put, path = "/api/v1/workspaces/{workspace_id}/ai-roles/{role_id}", tag = "conversations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), ("role_id" = Uuid, Path)), request_body = RoleBody,
    responses((status = 200, description = "The role as replaced", body = RoleOut),
              (status = 403, description = "The caller is a member but not an admin of the workspace", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such workspace or caller not a member, or no such role in this workspace (built-in roles cannot be changed)", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Another role of the workspace has that name (`role_name_taken`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn replace_role(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((workspace, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> ApiResult<ApiJson<RoleOut>> {
    let (name, description, prompt) = validate(body)?;
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace, WorkspaceRole::Admin).await?;
    let role = store::update(&mut *tx, workspace, id, &name, &description, &prompt)
        .await?
        .map_err(|NameTaken| name_taken())?
        .ok_or(ApiError::NotFound { what: "role" })?;
    audit::record(
        &mut *tx,
        AuditEntry::new("ai_role.update", "ai_role", role.id)
            .actor(caller.id)
            .after(json!({"workspace_id": workspace, "name": role.name}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(role.into()))
}

/// Deletes a workspace role (admins).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/ai-roles/{role_id}", tag = "conversations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 204, description = "The role was deleted"),
              (status = 403, description = "The caller is a member but not an admin of the workspace", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such workspace or caller not a member, or no such role in this workspace (built-in roles cannot be deleted)", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((workspace, id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace, WorkspaceRole::Admin).await?;
    if !store::delete(&mut *tx, workspace, id).await? {
        return Err(ApiError::NotFound { what: "role" });
    }
    audit::record(
        &mut *tx,
        AuditEntry::new("ai_role.delete", "ai_role", id)
            .actor(caller.id)
            .after(json!({"workspace_id": workspace}))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
