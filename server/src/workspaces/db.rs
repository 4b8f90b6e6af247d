//! SQL over `workspaces` and `workspace_members`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pagination::{PageRequest, Position};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Workspace {
    /// The workspace's id.
    pub id: Uuid,
    /// Its name, 1 to 200 characters.
    pub name: String,
    /// An emoji or an image URL, at most 2,048 characters.
    pub icon: Option<String>,
    /// What the workspace is for, at most 2,000 characters.
    pub description: Option<String>,
    /// The caller's role in it.
    #[schema(value_type = crate::access::WorkspaceRole)]
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name, icon or description last changed.
    pub updated_at: DateTime<Utc>,
}

/// A member with the name and email others see.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's display name.
    pub name: Option<String>,
    /// The member's email address.
    pub email: Option<String>,
    /// The member's role: `owner` (exactly one), `admin`, `member` or `viewer`.
    #[schema(value_type = crate::access::WorkspaceRole)]
    pub role: String,
    /// When they joined.
    pub created_at: DateTime<Utc>,
}

impl Member {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.user_id,
        }
    }
}

impl Workspace {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// Fields of a new or changed workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceFields {
    pub name: String,
    pub icon: Option<String>,
    pub description: Option<String>,
}

/// Creates a workspace with `owner` as its owner.
pub async fn insert(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    owner: Uuid,
    fields: &WorkspaceFields,
) -> sqlx::Result<Workspace> {
    sqlx::query!(
        "insert into workspaces (id, name, icon, description, created_by) values ($1, $2, $3, $4, $5)",
        id,
        fields.name,
        fields.icon,
        fields.description,
        owner,
    )
    .execute(&mut *conn)
    .await?;
    add_member(&mut *conn, id, owner, "owner").await?;
    find_for(&mut *conn, id, owner)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The workspace as `user_id` sees it, if a member.
pub async fn find_for<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<Workspace>> {
    sqlx::query_as!(
        Workspace,
        r#"select w.id, w.name, w.icon, w.description, m.role, w.created_at, w.updated_at
           from workspaces w join workspace_members m on m.workspace_id = w.id and m.user_id = $2
           where w.id = $1"#,
        id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// The workspaces `user_id` belongs to, oldest first.
pub async fn list_for<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<Workspace>> {
    sqlx::query_as!(
        Workspace,
        r#"select w.id, w.name, w.icon, w.description, m.role, w.created_at, w.updated_at
           from workspaces w join workspace_members m on m.workspace_id = w.id and m.user_id = $1
           where $2::timestamptz is null or (w.created_at, w.id) > ($2, $3)
           order by w.created_at, w.id
           limit $4"#,
        user_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

pub async fn update<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    fields: &WorkspaceFields,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update workspaces set name = $2, icon = $3, description = $4, updated_at = now() where id = $1",
        id,
        fields.name,
        fields.icon,
        fields.description,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes the workspace; its members, invitations, links and canvases go with it (cascade).
/// Returns how many canvases were deleted.
pub async fn delete(conn: &mut sqlx::PgConnection, id: Uuid) -> sqlx::Result<i64> {
    let canvases = sqlx::query_scalar!(
        r#"select count(*) as "count!" from canvases where workspace_id = $1"#,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("delete from workspaces where id = $1", id)
        .execute(&mut *conn)
        .await?;
    Ok(canvases)
}

pub async fn add_member<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into workspace_members (workspace_id, user_id, role) values ($1, $2, $3) on conflict do nothing",
        workspace_id,
        user_id,
        role,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn member<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<Member>> {
    sqlx::query_as!(
        Member,
        r#"select m.user_id, u.name, u.email, m.role, m.created_at
           from workspace_members m join users u on u.id = m.user_id
           where m.workspace_id = $1 and m.user_id = $2"#,
        workspace_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn list_members<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        r#"select m.user_id, u.name, u.email, m.role, m.created_at
           from workspace_members m join users u on u.id = m.user_id
           where m.workspace_id = $1
             and ($2::timestamptz is null or (m.created_at, m.user_id) > ($2, $3))
           order by m.created_at, m.user_id
           limit $4"#,
        workspace_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

pub async fn set_role<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update workspace_members set role = $3 where workspace_id = $1 and user_id = $2",
        workspace_id,
        user_id,
        role,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn remove_member<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from workspace_members where workspace_id = $1 and user_id = $2",
        workspace_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Locks the workspace row so membership changes on it serialize (the owner checks hold).
pub async fn lock<'e>(db: impl PgExecutor<'e>, workspace_id: Uuid) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "select id from workspaces where id = $1 for update",
        workspace_id
    )
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}
