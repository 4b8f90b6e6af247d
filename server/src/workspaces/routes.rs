//! `/api/v1/workspaces/*`: workspaces and their members.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::db::{self, Member, Workspace, WorkspaceFields};
use crate::access::{require_workspace, WorkspaceRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::validation::{bounded_text, present, required_text, FieldErrors};

pub const MAX_WORKSPACE_NAME_CHARS: usize = 200;
pub const MAX_ICON_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme launch", "icon": "🏁", "description": "Everything for the Q3 launch"}))]
pub struct CreateWorkspace {
    /// Its name, 1 to 200 characters.
    pub name: String,
    /// An emoji or an image URL, at most 2,048 characters.
    pub icon: Option<String>,
    /// What the workspace is for, at most 2,000 characters.
    pub description: Option<String>,
}

/// Absent fields stay; `null` clears `icon` and `description`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": null}))]
pub struct PatchWorkspace {
    /// A new name, 1 to 200 characters.
    pub name: Option<String>,
    /// A new icon (emoji or image URL, at most 2,048 characters); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub icon: Option<Option<String>>,
    /// A new description (at most 2,000 characters); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct ChangeRole {
    /// `admin`, `member` or `viewer`; ownership moves only by transfer.
    #[schema(value_type = crate::access::WorkspaceRole)]
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e6f"}))]
pub struct TransferOwnership {
    /// A current member, who becomes the owner; the previous owner becomes an admin.
    pub user_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceDeleted {
    /// The deleted workspace's id.
    pub id: Uuid,
    /// The workspace's canvases, deleted with it.
    pub canvases_deleted: i64,
    /// The workspace's calendars (with their schedules), deleted with it.
    pub calendars_deleted: i64,
}

fn workspace_json(w: &Workspace) -> serde_json::Value {
    serde_json::json!({ "name": w.name, "icon": w.icon, "description": w.description })
}

/// Creates a workspace owned by the caller.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])),
    request_body = CreateWorkspace,
    responses((status = 201, description = "The new workspace; the caller is its owner", body = Workspace), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, ApiJson<Workspace>)> {
    let mut errors = FieldErrors::default();
    let name = errors.check(required_text("name", body.name, MAX_WORKSPACE_NAME_CHARS));
    let icon = errors.check(bounded_text("icon", body.icon, MAX_ICON_CHARS));
    let description = errors.check(bounded_text(
        "description",
        body.description,
        MAX_DESCRIPTION_CHARS,
    ));
    errors.into_result()?;
    let (Some(name), Some(icon), Some(description)) = (name, icon, description) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let fields = WorkspaceFields {
        name,
        icon,
        description,
    };
    let mut tx = state.db.begin().await?;
    let workspace = db::insert(&mut tx, Uuid::now_v7(), caller.id, &fields).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("workspace.create", "workspace", workspace.id)
            .actor(caller.id)
            .after(workspace_json(&workspace))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(workspace)))
}

/// The workspaces the caller belongs to.
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", security(("bearer" = [])),
    params(PageParams), responses((status = 200, description = "One page of the caller's workspaces", body = Page<Workspace>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json")))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Workspace>>> {
    let page = params.validate()?;
    let rows = db::list_for(&state.db, caller.id, &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, Workspace::position)))
}

/// The workspace with the caller's role in it, for its members.
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, description = "The workspace", body = Workspace), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Workspace>> {
    db::find_for(&state.db, workspace_id, caller.id)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound { what: "workspace" })
}

/// Changes name, icon or description (admins and the owner).
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)), request_body = PatchWorkspace,
    responses((status = 200, description = "The workspace as changed", body = Workspace), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchWorkspace>,
) -> ApiResult<ApiJson<Workspace>> {
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let before = db::find_for(&mut *tx, workspace_id, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "workspace" })?;
    let mut errors = FieldErrors::default();
    let name = match body.name {
        Some(name) => errors.check(required_text("name", name, MAX_WORKSPACE_NAME_CHARS)),
        None => Some(before.name.clone()),
    };
    let icon = match body.icon {
        Some(icon) => errors.check(bounded_text("icon", icon, MAX_ICON_CHARS)),
        None => Some(before.icon.clone()),
    };
    let description = match body.description {
        Some(description) => errors.check(bounded_text(
            "description",
            description,
            MAX_DESCRIPTION_CHARS,
        )),
        None => Some(before.description.clone()),
    };
    errors.into_result()?;
    let (Some(name), Some(icon), Some(description)) = (name, icon, description) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let fields = WorkspaceFields {
        name,
        icon,
        description,
    };
    db::update(&mut *tx, workspace_id, &fields).await?;
    let after = db::find_for(&mut *tx, workspace_id, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "workspace" })?;
    audit::record(
        &mut *tx,
        AuditEntry::new("workspace.update", "workspace", workspace_id)
            .actor(caller.id)
            .before(workspace_json(&before))
            .after(workspace_json(&after))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(after))
}

/// Deletes the workspace with its canvases, calendars, members, invitations and links (owner
/// only).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)),
    responses((status = 200, description = "What was deleted with the workspace", body = WorkspaceDeleted), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<WorkspaceDeleted>> {
    let mut tx = state.db.begin().await?;
    db::lock(&mut *tx, workspace_id).await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Owner).await?;
    let before = db::find_for(&mut *tx, workspace_id, caller.id).await?;
    let calendars = crate::calendars::db::workspace_calendar_ids(&mut *tx, workspace_id).await?;
    let canvases_deleted = db::delete(&mut tx, workspace_id).await?;
    let calendars_deleted = i64::try_from(calendars.len()).unwrap_or(i64::MAX);
    audit::record(
        &mut *tx,
        AuditEntry::new("workspace.delete", "workspace", workspace_id)
            .actor(caller.id)
            .before(before.as_ref().map(workspace_json).unwrap_or_default())
            .after(serde_json::json!({ "canvases_deleted": canvases_deleted, "calendars_deleted": calendars_deleted }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&calendars).await;
    Ok(ApiJson(WorkspaceDeleted {
        id: workspace_id,
        canvases_deleted,
        calendars_deleted,
    }))
}

/// Leaves the workspace. The owner must transfer ownership first (409).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/leave", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)),
    responses((status = 204, description = "Left"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn leave_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    db::lock(&mut *tx, workspace_id).await?;
    let role = require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Viewer).await?;
    if role == WorkspaceRole::Owner {
        return Err(ApiError::conflict(
            "owner_cannot_leave",
            "the owner cannot leave; transfer ownership first or delete the workspace",
        ));
    }
    db::remove_member(&mut *tx, workspace_id, caller.id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("workspace.leave", "workspace", workspace_id)
            .actor(caller.id)
            .before(serde_json::json!({ "user_id": caller.id, "role": role.as_str() }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes another member the owner; the previous owner becomes an admin (owner only).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/transfer", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)), request_body = TransferOwnership,
    responses((status = 200, description = "The new owner's membership", body = Member), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn transfer_ownership(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TransferOwnership>,
) -> ApiResult<ApiJson<Member>> {
    let mut tx = state.db.begin().await?;
    db::lock(&mut *tx, workspace_id).await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Owner).await?;
    if body.user_id == caller.id {
        return Err(ApiError::invalid_field("user_id", "is already the owner"));
    }
    let target = db::member(&mut *tx, workspace_id, body.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_field("user_id", "is not a member of this workspace"))?;
    // Demote first: the schema allows one owner per workspace.
    db::set_role(&mut *tx, workspace_id, caller.id, "admin").await?;
    db::set_role(&mut *tx, workspace_id, body.user_id, "owner").await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("workspace.transfer", "workspace", workspace_id)
            .actor(caller.id)
            .before(serde_json::json!({ "owner": caller.id, "new_owner_role": target.role }))
            .after(serde_json::json!({ "owner": body.user_id, "previous_owner_role": "admin" }))
            .request(request_id.as_deref()),
    )
    .await?;
    let member = db::member(&mut *tx, workspace_id, body.user_id)
        .await?
        .ok_or(ApiError::NotFound { what: "member" })?;
    tx.commit().await?;
    Ok(ApiJson(member))
}

/// Members with name, email and role (any member may look).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/members", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of members", body = Page<Member>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Member>>> {
    let page = params.validate()?;
    require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Viewer).await?;
    let rows = db::list_members(&state.db, workspace_id, &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, Member::position)))
}

/// Changes a member's role (admins and the owner); the owner's role changes only by transfer.
#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}/members/{user_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeRole,
    responses((status = 200, description = "The membership with its new role", body = Member), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn change_member_role(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((workspace_id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ChangeRole>,
) -> ApiResult<ApiJson<Member>> {
    let role = match WorkspaceRole::parse(&body.role) {
        Some(WorkspaceRole::Owner) => {
            return Err(ApiError::invalid_field(
                "role",
                "ownership moves only through /transfer",
            ))
        }
        Some(role) => role,
        None => {
            return Err(ApiError::invalid_field(
                "role",
                "must be admin, member or viewer",
            ))
        }
    };
    let mut tx = state.db.begin().await?;
    db::lock(&mut *tx, workspace_id).await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let target = db::member(&mut *tx, workspace_id, user_id)
        .await?
        .ok_or(ApiError::NotFound { what: "member" })?;
    if target.role == "owner" {
        return Err(ApiError::conflict(
            "owner_protected",
            "the owner's role cannot be changed; transfer ownership instead",
        ));
    }
    db::set_role(&mut *tx, workspace_id, user_id, role.as_str()).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "workspace_member.update",
            "workspace_member",
            format!("{workspace_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": target.role }))
        .after(serde_json::json!({ "role": role.as_str() }))
        .request(request_id.as_deref()),
    )
    .await?;
    let member = db::member(&mut *tx, workspace_id, user_id)
        .await?
        .ok_or(ApiError::NotFound { what: "member" })?;
    tx.commit().await?;
    Ok(ApiJson(member))
}

/// Removes a member (admins and the owner); the owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/members/{user_id}", tag = "workspaces", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((workspace_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    db::lock(&mut *tx, workspace_id).await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let target = db::member(&mut *tx, workspace_id, user_id)
        .await?
        .ok_or(ApiError::NotFound { what: "member" })?;
    if target.role == "owner" {
        return Err(ApiError::conflict(
            "owner_protected",
            "the owner cannot be removed",
        ));
    }
    db::remove_member(&mut *tx, workspace_id, user_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "workspace_member.remove",
            "workspace_member",
            format!("{workspace_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": target.role, "email": target.email }))
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
