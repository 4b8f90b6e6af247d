//! `/api/v1/canvases/*`: canvases, the caller's permissions and canvas members.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use potentia_sync::room::BlockEdit;
use potentia_sync::schema::MetaPatch;

use super::db::{self, Canvas, CanvasMember, CanvasOrder, ListedCanvas, NewCanvas, Scope};
use crate::access::{require_canvas, require_workspace, Access, CanvasRole, WorkspaceRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::validation::{bounded_text, present};
use crate::workspaces::routes::MAX_ICON_CHARS;

pub const MAX_TITLE_CHARS: usize = potentia_sync::schema::MAX_TITLE_CHARS;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Launch plan", "icon": "🚀", "workspace_id": "0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e6f"}))]
pub struct CreateCanvas {
    /// The title, at most 500 characters; empty when omitted.
    #[serde(default)]
    pub title: Option<String>,
    /// An emoji or an image URL, at most 2,048 characters.
    pub icon: Option<String>,
    /// Omit for a personal canvas; members (not viewers) may create in a workspace.
    pub workspace_id: Option<Uuid>,
}

/// Absent fields stay; `null` clears the icon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Launch plan (Q3)"}))]
pub struct PatchCanvas {
    /// A new title, at most 500 characters; written through the document, so connected clients see it.
    pub title: Option<String>,
    /// A new icon (at most 2,048 characters); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub icon: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Launch plan — template"}))]
pub struct DuplicateCanvas {
    /// Defaults to "<title> (copy)".
    pub title: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListCanvases {
    /// A workspace's canvases; omitted, the caller's personal ones (or, with `scope=all`,
    /// every canvas the caller can read).
    pub workspace_id: Option<Uuid>,
    /// `all`: every canvas the caller can read — personal, in their workspaces, shared with
    /// them — for a home screen. Not combined with `workspace_id`.
    pub scope: Option<ListScope>,
    /// `created` (oldest first, the default) or `last_activity` (most recently edited first).
    #[serde(default)]
    pub sort: CanvasOrder,
    /// Archived canvases instead of active ones.
    #[serde(default)]
    pub archived: bool,
    /// Page size, 1 to 100; 50 when omitted.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Which canvases `GET /canvases` lists besides a workspace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// The caller's personal canvases (the default).
    Personal,
    /// Every canvas the caller can read.
    All,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteCanvasParams {
    /// Required to delete a canvas whose document has content.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Permissions {
    /// The canvas asked about.
    pub canvas_id: Uuid,
    /// The role that grants `access`: `owner`, `admin` or `member` (of the workspace),
    /// `editor`, `commenter` or `viewer`.
    #[schema(value_type = crate::access::AnyRole)]
    pub role: String,
    /// What the caller may do, in increasing order: `none`, `read`, `comment`, `write`, `admin`.
    pub access: Access,
    /// Whether the caller may read blocks and open the document.
    pub can_read: bool,
    /// Whether the caller may comment.
    pub can_comment: bool,
    /// Whether the caller may edit blocks, the title and the icon.
    pub can_write: bool,
    /// Whether the caller may manage members, archive and delete.
    pub can_admin: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "commenter"}))]
pub struct ChangeCanvasRole {
    /// `editor`, `commenter` or `viewer`.
    #[schema(value_type = crate::access::CanvasRole)]
    pub role: String,
}

fn title_of(title: Option<String>) -> Result<String, ApiError> {
    bounded_text("title", title, MAX_TITLE_CHARS)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::invalid_fields(vec![e]))
}

fn icon_of(icon: Option<String>) -> Result<Option<String>, ApiError> {
    bounded_text("icon", icon, MAX_ICON_CHARS).map_err(|e| ApiError::invalid_fields(vec![e]))
}

/// Creates a canvas owned by the caller, personal or in a workspace.
#[utoipa::path(post, path = "/api/v1/canvases", tag = "canvases", security(("bearer" = [])),
    request_body = CreateCanvas,
    responses((status = 201, description = "The new canvas", body = Canvas), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateCanvas>,
) -> ApiResult<(StatusCode, ApiJson<Canvas>)> {
    let title = title_of(body.title)?;
    let icon = icon_of(body.icon)?;
    let mut tx = state.db.begin().await?;
    if let Some(workspace_id) = body.workspace_id {
        require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Member).await?;
    }
    let canvas = db::insert(
        &mut *tx,
        &NewCanvas {
            id: Uuid::now_v7(),
            workspace_id: body.workspace_id,
            owner_id: caller.id,
            title: &title,
            icon: icon.as_deref(),
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("canvas.create", "canvas", canvas.id)
            .actor(caller.id)
            .after(canvas.meta_json())
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(canvas)))
}

/// The caller's personal canvases, a workspace's, or (`scope=all`) every canvas the caller
/// can read; active or archived; by creation or by last activity.
#[utoipa::path(get, path = "/api/v1/canvases", tag = "canvases", security(("bearer" = [])),
    params(ListCanvases),
    responses((status = 200, description = "One page of canvases", body = Page<ListedCanvas>), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_canvases(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ListCanvases>,
) -> ApiResult<ApiJson<Page<ListedCanvas>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .validate()?;
    let scope = match (params.workspace_id, params.scope) {
        (Some(_), Some(ListScope::All)) => {
            return Err(ApiError::invalid_field(
                "scope",
                "`all` already includes every workspace; leave out workspace_id",
            ))
        }
        (Some(workspace_id), _) => {
            require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Viewer).await?;
            Scope::Workspace(workspace_id)
        }
        (None, Some(ListScope::All)) => Scope::Readable(caller.id),
        (None, Some(ListScope::Personal) | None) => Scope::Personal(caller.id),
    };
    let order = params.sort;
    let rows = db::list(&state.db, scope, params.archived, order, &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, |row| {
        row.position(order)
    })))
}

/// The canvas, for anyone who can read it.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "The canvas", body = Canvas), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Canvas>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    db::find(&state.db, canvas_id)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound { what: "canvas" })
}

/// Changes title or icon (write access), through the document's `meta` like a block write:
/// connected clients see it live, and the row follows (audited as `canvas.update`).
#[utoipa::path(patch, path = "/api/v1/canvases/{canvas_id}", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)), request_body = PatchCanvas,
    responses((status = 200, description = "The canvas as changed; connected clients see the new title or icon live", body = Canvas), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchCanvas>,
) -> ApiResult<ApiJson<Canvas>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let patch = MetaPatch {
        title: body.title.map(|title| title_of(Some(title))).transpose()?,
        icon: body.icon.map(icon_of).transpose()?,
    };
    state
        .rooms
        .edit(canvas_id, caller.id, BlockEdit::Meta(patch), None, None)
        .await?;
    db::find(&state.db, canvas_id)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound { what: "canvas" })
}

async fn set_archived(
    state: &AppState,
    caller: &AuthUser,
    request_id: Option<&str>,
    canvas_id: Uuid,
    archived: bool,
) -> ApiResult<ApiJson<Canvas>> {
    let mut tx = state.db.begin().await?;
    require_canvas(&mut *tx, caller.id, canvas_id, Access::Write).await?;
    let canvas = db::set_archived(&mut *tx, canvas_id, archived).await?;
    let action = if archived {
        "canvas.archive"
    } else {
        "canvas.restore"
    };
    audit::record(
        &mut *tx,
        AuditEntry::new(action, "canvas", canvas_id)
            .actor(caller.id)
            .after(canvas.meta_json())
            .request(request_id),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(canvas))
}

/// Archives the canvas: it leaves the default lists but keeps its content (write access).
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/archive", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "The archived canvas", body = Canvas), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn archive_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Canvas>> {
    set_archived(&state, &caller, request_id.as_deref(), canvas_id, true).await
}

/// Restores an archived canvas (write access).
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/restore", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "The restored canvas", body = Canvas), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn restore_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Canvas>> {
    set_archived(&state, &caller, request_id.as_deref(), canvas_id, false).await
}

/// Copies a canvas the caller can read, with its content, into the same place (the same
/// workspace, where the caller must be a member, or the caller's personal canvases).
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/duplicate", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)), request_body = DuplicateCanvas,
    responses((status = 201, description = "The copy, with a copy of every block", body = Canvas), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn duplicate_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DuplicateCanvas>,
) -> ApiResult<(StatusCode, ApiJson<Canvas>)> {
    let mut tx = state.db.begin().await?;
    let access = require_canvas(&mut *tx, caller.id, canvas_id, Access::Read).await?;
    let source = db::find(&mut *tx, canvas_id)
        .await?
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    // A direct member of a workspace canvas may copy it only to their personal canvases.
    let workspace_id = match source.workspace_id {
        Some(ws)
            if crate::access::workspace_access(&mut *tx, caller.id, ws).await?
                >= Some(WorkspaceRole::Member) =>
        {
            Some(ws)
        }
        _ => None,
    };
    let title = match body.title {
        Some(title) => title_of(Some(title))?,
        None => format!("{} (copy)", source.title)
            .chars()
            .take(MAX_TITLE_CHARS)
            .collect(),
    };
    let copy = db::insert(
        &mut *tx,
        &NewCanvas {
            id: Uuid::now_v7(),
            workspace_id,
            owner_id: caller.id,
            title: &title,
            icon: source.icon.as_deref(),
        },
    )
    .await?;
    let updates_copied = db::copy_content(&mut *tx, canvas_id, copy.id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("canvas.duplicate", "canvas", copy.id)
            .actor(caller.id)
            .after(serde_json::json!({ "source": canvas_id, "source_role": access.role, "updates_copied": updates_copied, "meta": copy.meta_json() }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    if updates_copied > 0 {
        // The copied document still names the source in its meta; the copy's row is the truth.
        let meta = MetaPatch {
            title: Some(copy.title.clone()),
            icon: Some(copy.icon.clone()),
        };
        // The copy exists either way; a document that cannot load is never materialized
        // either, so its stale meta cannot overwrite the row.
        if let Err(error) = state
            .rooms
            .edit(copy.id, caller.id, BlockEdit::Meta(meta), None, None)
            .await
        {
            tracing::warn!(canvas_id = %copy.id, %error, "the copy's title did not reach its document");
        }
    }
    Ok((StatusCode::CREATED, ApiJson(copy)))
}

/// Deletes a canvas (admin access); one with content needs `?force=true` (else 409).
#[utoipa::path(delete, path = "/api/v1/canvases/{canvas_id}", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), DeleteCanvasParams),
    responses((status = 204, description = "Deleted"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, description = "Has content; pass ?force=true", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<DeleteCanvasParams>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    require_canvas(&mut *tx, caller.id, canvas_id, Access::Admin).await?;
    let canvas = db::find(&mut *tx, canvas_id)
        .await?
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    if !params.force && db::has_content(&mut *tx, canvas_id).await? {
        return Err(ApiError::conflict(
            "canvas_has_content",
            "the canvas has content; delete it with ?force=true",
        ));
    }
    db::delete(&mut *tx, canvas_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("canvas.delete", "canvas", canvas_id)
            .actor(caller.id)
            .before(canvas.meta_json())
            .after(serde_json::json!({ "force": params.force }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the caller may do on the canvas.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/permissions", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "What the caller may do", body = Permissions), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_permissions(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Permissions>> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    Ok(ApiJson(Permissions {
        canvas_id,
        role: found.role.to_owned(),
        access: found.access,
        can_read: found.access >= Access::Read,
        can_comment: found.access >= Access::Comment,
        can_write: found.access >= Access::Write,
        can_admin: found.access >= Access::Admin,
    }))
}

/// Everyone with a role on the canvas: its owner, the workspace's members and direct members.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/members", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of members: the owner, workspace members and direct members", body = Page<CanvasMember>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_canvas_members(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<CanvasMember>>> {
    let page = params.validate()?;
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let rows = db::list_members(&state.db, canvas_id, &page).await?;
    Ok(ApiJson(Page::from_rows(
        rows,
        &page,
        CanvasMember::position,
    )))
}

/// Changes a direct member's role (admin access).
#[utoipa::path(patch, path = "/api/v1/canvases/{canvas_id}/members/{user_id}", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeCanvasRole,
    responses((status = 204, description = "Changed"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn change_canvas_member_role(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((canvas_id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ChangeCanvasRole>,
) -> ApiResult<StatusCode> {
    let role = CanvasRole::parse(&body.role)
        .ok_or_else(|| ApiError::invalid_field("role", "must be editor, commenter or viewer"))?;
    let mut tx = state.db.begin().await?;
    require_canvas(&mut *tx, caller.id, canvas_id, Access::Admin).await?;
    let before =
        db::direct_role(&mut *tx, canvas_id, user_id)
            .await?
            .ok_or(ApiError::NotFound {
                what: "canvas member",
            })?;
    db::upsert_member(&mut *tx, canvas_id, user_id, role.as_str()).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "canvas_member.update",
            "canvas_member",
            format!("{canvas_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": before }))
        .after(serde_json::json!({ "role": role.as_str() }))
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a direct member (admin access; any member may remove themselves).
#[utoipa::path(delete, path = "/api/v1/canvases/{canvas_id}/members/{user_id}", tag = "canvases", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_canvas_member(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((canvas_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let needed = if user_id == caller.id {
        Access::Read
    } else {
        Access::Admin
    };
    let mut tx = state.db.begin().await?;
    require_canvas(&mut *tx, caller.id, canvas_id, needed).await?;
    let before =
        db::direct_role(&mut *tx, canvas_id, user_id)
            .await?
            .ok_or(ApiError::NotFound {
                what: "canvas member",
            })?;
    db::remove_member(&mut *tx, canvas_id, user_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "canvas_member.remove",
            "canvas_member",
            format!("{canvas_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": before }))
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
