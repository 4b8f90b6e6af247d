//! Access control in one place: what a user may do on a canvas, a workspace or a calendar.
//!
//! [`canvas_access`] and [`workspace_access`] each answer with one query; every handler, the
//! WebSocket upgrade and the AI readers go through them. A resource the caller cannot see is
//! reported as not found (404), one the caller can see but not change as forbidden (403).
//!
//! | source of the right | access |
//! |---|---|
//! | canvas owner, workspace owner or admin | admin |
//! | workspace member, canvas editor | write |
//! | canvas commenter | comment |
//! | workspace viewer, canvas viewer | read |
//!
//! A user holding several rights gets the highest. Owning a canvas in a workspace grants
//! nothing once the owner has left the workspace or been removed from it.

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

/// What a user may do, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    Read,
    Comment,
    Write,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(role: &str) -> Option<Self> {
        match role {
            "viewer" => Some(Self::Viewer),
            "member" => Some(Self::Member),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// What this workspace role grants on the workspace's canvases.
    pub fn canvas_access(self) -> Access {
        match self {
            Self::Owner | Self::Admin => Access::Admin,
            Self::Member => Access::Write,
            Self::Viewer => Access::Read,
        }
    }
}

/// Any role a person holds on a workspace or a canvas, as member lists, permissions and
/// invitations name it: the workspace roles and the canvas roles together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnyRole {
    /// Owns the workspace, or created the canvas.
    Owner,
    /// Workspace admin.
    Admin,
    /// Workspace member: may create and edit canvases.
    Member,
    /// Canvas editor.
    Editor,
    /// Canvas commenter.
    Commenter,
    /// Reads only (a workspace or a canvas role).
    Viewer,
}

/// Roles given directly on one canvas (its owner is `canvases.owner_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanvasRole {
    Viewer,
    Commenter,
    Editor,
}

impl CanvasRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Commenter => "commenter",
            Self::Editor => "editor",
        }
    }

    pub fn parse(role: &str) -> Option<Self> {
        match role {
            "viewer" => Some(Self::Viewer),
            "commenter" => Some(Self::Commenter),
            "editor" => Some(Self::Editor),
            _ => None,
        }
    }

    pub fn access(self) -> Access {
        match self {
            Self::Editor => Access::Write,
            Self::Commenter => Access::Comment,
            Self::Viewer => Access::Read,
        }
    }
}

/// A user's rights on one canvas and where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvasAccess {
    pub canvas_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub access: Access,
    /// The role that grants `access`: `owner`, `admin` (of the workspace), `editor`, `member`
    /// (of the workspace), `commenter` or `viewer`; `none` without access.
    pub role: &'static str,
}

/// Rights of `user_id` on `canvas_id`; `None` when the canvas does not exist.
pub async fn canvas_access<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    canvas_id: Uuid,
) -> sqlx::Result<Option<CanvasAccess>> {
    let row = sqlx::query!(
        r#"select c.workspace_id, c.owner_id, wm.role as "workspace_role?", cm.role as "canvas_role?"
           from canvases c
           left join workspace_members wm on wm.workspace_id = c.workspace_id and wm.user_id = $2
           left join canvas_members cm on cm.canvas_id = c.id and cm.user_id = $2
           where c.id = $1"#,
        canvas_id,
        user_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| {
        let mut grants: Vec<(Access, &'static str)> = vec![(Access::None, "none")];
        if let Some(role) = row.workspace_role.as_deref().and_then(WorkspaceRole::parse) {
            let name = match role {
                WorkspaceRole::Owner | WorkspaceRole::Admin => "admin",
                WorkspaceRole::Member => "member",
                WorkspaceRole::Viewer => "viewer",
            };
            grants.push((role.canvas_access(), name));
        }
        if let Some(role) = row.canvas_role.as_deref().and_then(CanvasRole::parse) {
            grants.push((role.access(), role.as_str()));
        }
        // Owning a workspace canvas counts only while still in the workspace: a removed
        // member must not keep the canvases they created there.
        let owner_still_belongs = row.workspace_id.is_none() || row.workspace_role.is_some();
        if row.owner_id == user_id && owner_still_belongs {
            grants.push((Access::Admin, "owner"));
        }
        // On equal access the later, more specific grant names the role (max_by_key keeps
        // the last maximum): canvas owner over workspace admin, canvas role over workspace role.
        let (access, role) = grants
            .into_iter()
            .max_by_key(|(access, _)| *access)
            .unwrap_or((Access::None, "none"));
        CanvasAccess {
            canvas_id,
            workspace_id: row.workspace_id,
            access,
            role,
        }
    }))
}

/// The canvas if the user has at least `needed` on it: 404 when the user cannot even read it
/// (or it does not exist), 403 when the user can read it but `needed` is more.
pub async fn require_canvas<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    canvas_id: Uuid,
    needed: Access,
) -> Result<CanvasAccess, ApiError> {
    let found = canvas_access(db, user_id, canvas_id)
        .await?
        .filter(|a| a.access >= Access::Read)
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    if found.access < needed {
        return Err(ApiError::Forbidden {
            code: "insufficient_role",
            detail: format!(
                "this needs {needed:?} access to the canvas; you have {:?}",
                found.access
            )
            .to_lowercase(),
        });
    }
    Ok(found)
}

/// The user's role in a workspace, `None` when not a member (or no such workspace).
pub async fn workspace_access<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    workspace_id: Uuid,
) -> sqlx::Result<Option<WorkspaceRole>> {
    let role = sqlx::query_scalar!(
        "select role from workspace_members where workspace_id = $1 and user_id = $2",
        workspace_id,
        user_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(role.as_deref().and_then(WorkspaceRole::parse))
}

/// The user's role if it is at least `needed`: 404 for non-members, 403 for a lower role.
pub async fn require_workspace<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    workspace_id: Uuid,
    needed: WorkspaceRole,
) -> Result<WorkspaceRole, ApiError> {
    let role = workspace_access(db, user_id, workspace_id)
        .await?
        .ok_or(ApiError::NotFound { what: "workspace" })?;
    if role < needed {
        return Err(ApiError::Forbidden {
            code: "insufficient_role",
            detail: format!(
                "this needs the {} role in the workspace; you are {}",
                needed.as_str(),
                role.as_str()
            ),
        });
    }
    Ok(role)
}

/// Roles on a calendar, in increasing order. `free_busy` sees only busy times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalendarRole {
    FreeBusy,
    Viewer,
    Editor,
    Owner,
}

impl CalendarRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FreeBusy => "free_busy",
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Owner => "owner",
        }
    }

    pub fn parse(role: &str) -> Option<Self> {
        match role {
            "free_busy" => Some(Self::FreeBusy),
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// What a workspace role grants on the workspace's calendars.
    pub fn from_workspace(role: WorkspaceRole) -> Self {
        match role {
            WorkspaceRole::Owner | WorkspaceRole::Admin => Self::Owner,
            WorkspaceRole::Member => Self::Editor,
            WorkspaceRole::Viewer => Self::Viewer,
        }
    }
}

/// A user's role on one calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarAccess {
    pub calendar_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub owner_id: Uuid,
    /// `None`: the user has no role on the calendar.
    pub role: Option<CalendarRole>,
}

/// The role of `user_id` on `calendar_id`; `None` when the calendar does not exist.
///
/// | source | role |
/// |---|---|
/// | owner of a personal calendar; creator of a workspace calendar while in the workspace; workspace owner or admin | owner |
/// | workspace member | editor |
/// | workspace viewer | viewer |
/// | a subscription | its role (`owner`, `editor`, `viewer`, `free_busy`) |
///
/// The highest applies.
pub async fn calendar_access<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    calendar_id: Uuid,
) -> sqlx::Result<Option<CalendarAccess>> {
    let row = sqlx::query!(
        r#"select c.workspace_id, c.owner_id, wm.role as "workspace_role?", cs.role as "subscription_role?"
           from calendars c
           left join workspace_members wm on wm.workspace_id = c.workspace_id and wm.user_id = $2
           left join calendar_subscriptions cs on cs.calendar_id = c.id and cs.user_id = $2
           where c.id = $1"#,
        calendar_id,
        user_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| CalendarAccess {
        calendar_id,
        workspace_id: row.workspace_id,
        owner_id: row.owner_id,
        role: combine_calendar_role(
            user_id,
            row.owner_id,
            row.workspace_id,
            row.workspace_role.as_deref(),
            row.subscription_role.as_deref(),
        ),
    }))
}

/// The role the rules of [`calendar_access`] give, from the calendar's owner and workspace and
/// the user's workspace role and subscription role (as stored).
pub fn combine_calendar_role(
    user_id: Uuid,
    owner_id: Uuid,
    workspace_id: Option<Uuid>,
    workspace_role: Option<&str>,
    subscription_role: Option<&str>,
) -> Option<CalendarRole> {
    let workspace_role = workspace_role.and_then(WorkspaceRole::parse);
    let mut role = subscription_role.and_then(CalendarRole::parse);
    if let Some(workspace_role) = workspace_role {
        role = role.max(Some(CalendarRole::from_workspace(workspace_role)));
    }
    // Creating a workspace calendar counts only while still in the workspace.
    if owner_id == user_id && (workspace_id.is_none() || workspace_role.is_some()) {
        role = Some(CalendarRole::Owner);
    }
    role
}

/// The calendar if the user's role is at least `needed`: 404 when the user has no role on it
/// (or it does not exist), 403 when the role is lower.
pub async fn require_calendar<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    calendar_id: Uuid,
    needed: CalendarRole,
) -> Result<CalendarAccess, ApiError> {
    let found = calendar_access(db, user_id, calendar_id)
        .await?
        .filter(|a| a.role.is_some())
        .ok_or(ApiError::NotFound { what: "calendar" })?;
    check_calendar_role(found.role, needed)?;
    Ok(found)
}

/// 403 unless `role` is at least `needed`.
pub fn check_calendar_role(
    role: Option<CalendarRole>,
    needed: CalendarRole,
) -> Result<(), ApiError> {
    if role >= Some(needed) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "insufficient_role",
        detail: format!(
            "this needs the {} role on the calendar; you have {}",
            needed.as_str(),
            role.map_or("none", CalendarRole::as_str)
        ),
    })
}

/// Those of `users` whose email `caller` may be shown: the caller, whoever shares a workspace
/// or a canvas with them (both joined by accepting), and whoever shared a calendar of theirs
/// with the caller. A calendar subscription the caller made for someone else does not count:
/// it needs no consent. Anyone else's address (and, for a guest invited by address, whether an
/// account holds it) stays hidden.
pub async fn related_users<'e>(
    db: impl PgExecutor<'e>,
    caller: Uuid,
    users: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, ApiError> {
    if users.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let related = sqlx::query_scalar!(
        r#"select u as "u!" from unnest($2::uuid[]) as u
           where u = $1
              or exists (select 1 from workspace_members a join workspace_members b using (workspace_id)
                         where a.user_id = $1 and b.user_id = u)
              or exists (select 1 from canvases c
                         left join canvas_members a on a.canvas_id = c.id and a.user_id = $1
                         left join canvas_members b on b.canvas_id = c.id and b.user_id = u
                         where (c.owner_id = $1 or a.user_id is not null)
                           and (c.owner_id = u or b.user_id is not null)
                           and (a.user_id is not null or b.user_id is not null))
              or exists (select 1 from calendars c
                         join calendar_subscriptions s on s.calendar_id = c.id
                         where c.owner_id = u and s.user_id = $1)"#,
        caller,
        users,
    )
    .fetch_all(db)
    .await?;
    Ok(related.into_iter().collect())
}
