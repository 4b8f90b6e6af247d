//! SQL over `canvases`, `canvas_members` and the canvas's stored document (`canvas_updates`,
//! `canvas_documents`; the sync crate appends and compacts it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pagination::{PageRequest, Position};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Canvas {
    /// The canvas's id (also the room name of its WebSocket, `/ws/canvas/{id}`).
    pub id: Uuid,
    /// The workspace it belongs to; null for a personal canvas.
    pub workspace_id: Option<Uuid>,
    /// Who created it; the owner of a personal canvas.
    pub owner_id: Uuid,
    /// The title, at most 500 characters; the document's `meta.title`.
    pub title: String,
    /// An emoji or an image URL, at most 2,048 characters; the document's `meta.icon`.
    pub icon: Option<String>,
    /// When it was archived; null while active.
    pub archived_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The last change of title, icon or archive state.
    pub updated_at: DateTime<Utc>,
}

impl Canvas {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }

    pub fn meta_json(&self) -> serde_json::Value {
        serde_json::json!({ "title": self.title, "icon": self.icon, "archived_at": self.archived_at })
    }
}

/// Where a canvas member's role comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// They own the canvas.
    Owner,
    /// Their role in the canvas's workspace.
    Workspace,
    /// A role given on the canvas itself.
    Canvas,
}

/// One entry of a canvas's combined member list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CanvasMember {
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's display name.
    pub name: Option<String>,
    /// The member's email address.
    pub email: Option<String>,
    /// `owner`; a workspace role (`owner`, `admin`, `member`, `viewer`); or a canvas role
    /// (`editor`, `commenter`, `viewer`).
    #[schema(value_type = crate::access::AnyRole)]
    pub role: String,
    /// `owner`, `workspace` or `canvas`: where the role comes from.
    #[schema(value_type = RoleSource)]
    pub source: String,
    /// When the role was given.
    pub created_at: DateTime<Utc>,
}

impl CanvasMember {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.user_id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewCanvas<'a> {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub title: &'a str,
    pub icon: Option<&'a str>,
}

pub async fn insert<'e>(db: impl PgExecutor<'e>, new: &NewCanvas<'_>) -> sqlx::Result<Canvas> {
    sqlx::query_as!(
        Canvas,
        r#"insert into canvases (id, workspace_id, owner_id, title, icon) values ($1, $2, $3, $4, $5)
           returning id, workspace_id, owner_id, title, icon, archived_at, created_at, updated_at"#,
        new.id,
        new.workspace_id,
        new.owner_id,
        new.title,
        new.icon,
    )
    .fetch_one(db)
    .await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<Canvas>> {
    sqlx::query_as!(
        Canvas,
        r#"select id, workspace_id, owner_id, title, icon, archived_at, created_at, updated_at
           from canvases where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// Which canvases a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's own canvases outside any workspace.
    Personal(Uuid),
    Workspace(Uuid),
    /// Every canvas the user can read (`readable_canvases`).
    Readable(Uuid),
}

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanvasOrder {
    /// Oldest first.
    #[default]
    Created,
    /// Most recently edited first (a document update, a title or icon change).
    LastActivity,
}

/// A canvas in a list: with its workspace's name and when it last changed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListedCanvas {
    /// The canvas (its fields appear at the top level).
    #[serde(flatten)]
    pub canvas: Canvas,
    /// The workspace's name; null for a personal canvas.
    pub workspace_name: Option<String>,
    /// The last document update or title/icon change.
    pub last_activity_at: DateTime<Utc>,
}

impl ListedCanvas {
    /// The key of `order` (the cursor's position).
    pub fn position(&self, order: CanvasOrder) -> Position {
        Position {
            created_at: match order {
                CanvasOrder::Created => self.canvas.created_at,
                CanvasOrder::LastActivity => self.last_activity_at,
            },
            id: self.canvas.id,
        }
    }
}

struct ListedRow {
    id: Uuid,
    workspace_id: Option<Uuid>,
    owner_id: Uuid,
    title: String,
    icon: Option<String>,
    archived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    workspace_name: Option<String>,
    last_activity_at: DateTime<Utc>,
}

impl From<ListedRow> for ListedCanvas {
    fn from(row: ListedRow) -> Self {
        Self {
            canvas: Canvas {
                id: row.id,
                workspace_id: row.workspace_id,
                owner_id: row.owner_id,
                title: row.title,
                icon: row.icon,
                archived_at: row.archived_at,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            workspace_name: row.workspace_name,
            last_activity_at: row.last_activity_at,
        }
    }
}

/// One page of `scope`'s active or archived canvases, in `order` (created: ascending; last
/// activity: newest first), keyset-paginated.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    scope: Scope,
    archived: bool,
    order: CanvasOrder,
    page: &PageRequest,
) -> sqlx::Result<Vec<ListedCanvas>> {
    let (owner, workspace, reader) = match scope {
        Scope::Personal(owner) => (Some(owner), None, None),
        Scope::Workspace(workspace) => (None, Some(workspace), None),
        Scope::Readable(reader) => (None, None, Some(reader)),
    };
    let by_activity = order == CanvasOrder::LastActivity;
    let rows = sqlx::query_as!(
        ListedRow,
        r#"select id as "id!", workspace_id as "workspace_id?", owner_id as "owner_id!", title as "title!",
                  icon as "icon?", archived_at as "archived_at?", created_at as "created_at!", updated_at as "updated_at!",
                  workspace_name as "workspace_name?", last_activity_at as "last_activity_at!"
           from (select c.*, w.name as workspace_name,
                        greatest(c.updated_at, d.updated_at) as last_activity_at
                 from canvases c
                 left join workspaces w on w.id = c.workspace_id
                 left join canvas_documents d on d.canvas_id = c.id
                 where (($1::uuid is not null and c.owner_id = $1 and c.workspace_id is null)
                        or ($2::uuid is not null and c.workspace_id = $2)
                        or ($3::uuid is not null and c.id in (select canvas_id from readable_canvases($3))))
                   and (c.archived_at is not null) = $4) listed
           where $5::timestamptz is null
              or (not $8 and (created_at, id) > ($5, $6))
              or ($8 and (last_activity_at, id) < ($5, $6))
           order by case when $8 then last_activity_at end desc,
                    case when $8 then id end desc,
                    created_at, id
           limit $7"#,
        owner,
        workspace,
        reader,
        archived,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
        by_activity,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(ListedCanvas::from).collect())
}

pub async fn set_archived<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    archived: bool,
) -> sqlx::Result<Canvas> {
    sqlx::query_as!(
        Canvas,
        r#"update canvases
           set archived_at = case when $2 then coalesce(archived_at, now()) else null end, updated_at = now()
           where id = $1
           returning id, workspace_id, owner_id, title, icon, archived_at, created_at, updated_at"#,
        id,
        archived,
    )
    .fetch_one(db)
    .await
}

/// Whether the canvas's document holds anything: a snapshot or any logged update.
pub async fn has_content<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from canvas_updates where canvas_id = $1)
               or exists (select 1 from canvas_documents where canvas_id = $1 and snapshot is not null)
               as "exists!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Copies the stored document of `from` (snapshot, sequence head and log, read in one
/// statement so they agree) into `to`; returns how many log rows were copied.
pub async fn copy_content<'e>(db: impl PgExecutor<'e>, from: Uuid, to: Uuid) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"with head as (
               insert into canvas_documents (canvas_id, last_seq, snapshot, snapshot_seq)
               select $2, last_seq, snapshot, snapshot_seq from canvas_documents where canvas_id = $1
           )
           insert into canvas_updates (canvas_id, seq, data)
           select $2, seq, data from canvas_updates where canvas_id = $1"#,
        from,
        to,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from canvases where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// Owner, workspace members and direct members of a canvas, in one query.
pub async fn list_members<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<CanvasMember>> {
    sqlx::query_as!(
        CanvasMember,
        r#"select user_id as "user_id!", name, email, role as "role!", source as "source!", created_at as "created_at!"
           from (
               select u.id as user_id, u.name, u.email, 'owner' as role, 'owner' as source, c.created_at
               from canvases c join users u on u.id = c.owner_id where c.id = $1
               union all
               select u.id, u.name, u.email, wm.role, 'workspace', wm.created_at
               from canvases c join workspace_members wm on wm.workspace_id = c.workspace_id
               join users u on u.id = wm.user_id where c.id = $1
               union all
               select u.id, u.name, u.email, cm.role, 'canvas', cm.created_at
               from canvas_members cm join users u on u.id = cm.user_id where cm.canvas_id = $1
           ) m
           where $2::timestamptz is null or (created_at, user_id) > ($2, $3)
           order by created_at, user_id, source
           limit $4"#,
        id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// Adds a direct member, or changes the role of an existing one.
pub async fn upsert_member<'e>(
    db: impl PgExecutor<'e>,
    canvas_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into canvas_members (canvas_id, user_id, role) values ($1, $2, $3)
           on conflict (canvas_id, user_id) do update set role = excluded.role"#,
        canvas_id,
        user_id,
        role,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A direct member's role, if any.
pub async fn direct_role<'e>(
    db: impl PgExecutor<'e>,
    canvas_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select role from canvas_members where canvas_id = $1 and user_id = $2",
        canvas_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn remove_member<'e>(
    db: impl PgExecutor<'e>,
    canvas_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from canvas_members where canvas_id = $1 and user_id = $2",
        canvas_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
