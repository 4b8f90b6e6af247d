//! SQL over `invitations` and `workspace_invite_links`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::pagination::{PageRequest, Position};

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Sent, not answered, not expired.
    Pending,
    /// Accepted: the role is granted.
    Accepted,
    /// Declined by the addressee.
    Declined,
    /// Withdrawn by an admin before an answer.
    Revoked,
    /// Not answered before `expires_at`.
    Expired,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    /// The invitation's id.
    pub id: Uuid,
    /// The workspace it invites to; null for a canvas invitation.
    pub workspace_id: Option<Uuid>,
    /// The canvas it invites to; null for a workspace invitation.
    pub canvas_id: Option<Uuid>,
    /// Name of the workspace or title of the canvas.
    pub target_name: String,
    /// The account it is addressed to, when it was sent to a user by id; null for one sent to
    /// an email (whichever account verifies that address may accept it).
    pub invitee_id: Option<Uuid>,
    /// The email it was sent to, when it was sent by email.
    pub email: Option<String>,
    /// The role it grants: `admin`, `member` or `viewer` (workspace), `editor`, `commenter` or
    /// `viewer` (canvas).
    #[schema(value_type = crate::access::AnyRole)]
    pub role: String,
    /// Who sent it; null once that account is gone.
    pub invited_by: Option<Uuid>,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    #[schema(value_type = InvitationStatus)]
    pub status: String,
    /// The account that accepted it: the addressee, or whoever used the token link.
    pub accepted_by: Option<Uuid>,
    /// When it was accepted or declined.
    pub responded_at: Option<DateTime<Utc>>,
    /// After this it can no longer be accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

impl Invitation {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }

    pub fn is_expired(&self) -> bool {
        self.expires_at <= Utc::now()
    }
}

/// Where an invitation leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Workspace(Uuid),
    Canvas(Uuid),
}

impl Target {
    pub fn workspace_id(self) -> Option<Uuid> {
        match self {
            Self::Workspace(id) => Some(id),
            Self::Canvas(_) => None,
        }
    }

    pub fn canvas_id(self) -> Option<Uuid> {
        match self {
            Self::Canvas(id) => Some(id),
            Self::Workspace(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub target: Target,
    pub invitee_id: Option<Uuid>,
    pub email: Option<&'a str>,
    pub role: &'a str,
    pub token_hash: &'a [u8],
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// The unique indexes that forbid a second pending invitation for the same invitee.
pub const PENDING_UNIQUE_INDEXES: [&str; 2] =
    ["invitations_pending_user", "invitations_pending_email"];

/// Marks pending invitations past their expiry as expired, so they stop blocking new ones.
pub async fn expire_stale<'e>(db: impl PgExecutor<'e>, target: Target) -> sqlx::Result<()> {
    sqlx::query!(
        r#"update invitations set status = 'expired'
           where status = 'pending' and expires_at <= now()
             and (workspace_id = $1 or canvas_id = $2)"#,
        target.workspace_id(),
        target.canvas_id(),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn insert<'e>(db: impl PgExecutor<'e>, new: &NewInvitation<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into invitations (id, workspace_id, canvas_id, invitee_id, email, role, token_hash, invited_by, expires_at)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        new.id,
        new.target.workspace_id(),
        new.target.canvas_id(),
        new.invitee_id,
        new.email,
        new.role,
        new.token_hash,
        new.invited_by,
        new.expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One invitation, its row locked until the caller's transaction ends (answers change its status).
pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"select i.id, i.workspace_id, i.canvas_id,
                  coalesce(w.name, c.title, '') as "target_name!",
                  i.invitee_id, i.email, i.role, i.invited_by, i.status,
                  i.accepted_by, i.responded_at, i.expires_at, i.created_at
           from invitations i
           left join workspaces w on w.id = i.workspace_id
           left join canvases c on c.id = i.canvas_id
           where i.id = $1
           for update of i"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn find_id_by_token<'e>(
    db: impl PgExecutor<'e>,
    token_hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select id from invitations where token_hash = $1",
        token_hash
    )
    .fetch_optional(db)
    .await
}

/// Pending, unexpired invitations addressed to the user (by id, or by the user's email once
/// it is verified).
pub async fn list_pending_for_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"select i.id, i.workspace_id, i.canvas_id,
                  coalesce(w.name, c.title, '') as "target_name!",
                  i.invitee_id, i.email, i.role, i.invited_by, i.status,
                  i.accepted_by, i.responded_at, i.expires_at, i.created_at
           from invitations i
           left join workspaces w on w.id = i.workspace_id
           left join canvases c on c.id = i.canvas_id
           where i.status = 'pending' and i.expires_at > now()
             and (i.invitee_id = $1
                  or (i.invitee_id is null
                      and lower(i.email) = (select lower(email) from users
                                            where id = $1 and email_verified_at is not null)))
             and ($2::timestamptz is null or (i.created_at, i.id) > ($2, $3))
           order by i.created_at, i.id
           limit $4"#,
        user_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// Pending, unexpired invitations of one workspace or canvas.
pub async fn list_pending_for_target<'e>(
    db: impl PgExecutor<'e>,
    target: Target,
    page: &PageRequest,
) -> sqlx::Result<Vec<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"select i.id, i.workspace_id, i.canvas_id,
                  coalesce(w.name, c.title, '') as "target_name!",
                  i.invitee_id, i.email, i.role, i.invited_by, i.status,
                  i.accepted_by, i.responded_at, i.expires_at, i.created_at
           from invitations i
           left join workspaces w on w.id = i.workspace_id
           left join canvases c on c.id = i.canvas_id
           where i.status = 'pending' and i.expires_at > now()
             and (i.workspace_id = $1 or i.canvas_id = $2)
             and ($3::timestamptz is null or (i.created_at, i.id) > ($3, $4))
           order by i.created_at, i.id
           limit $5"#,
        target.workspace_id(),
        target.canvas_id(),
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// An invitee's answer to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Accepted by this account: the addressee, or whoever holds the token link.
    Accept {
        by: Uuid,
    },
    Decline,
}

impl Answer {
    pub fn status(self) -> &'static str {
        match self {
            Answer::Accept { .. } => "accepted",
            Answer::Decline => "declined",
        }
    }

    pub fn accepted_by(self) -> Option<Uuid> {
        match self {
            Answer::Accept { by } => Some(by),
            Answer::Decline => None,
        }
    }
}

pub async fn record_answer<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    answer: Answer,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update invitations set status = $2, accepted_by = $3, responded_at = now() where id = $1",
        id,
        answer.status(),
        answer.accepted_by(),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_status<'e>(db: impl PgExecutor<'e>, id: Uuid, status: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update invitations set status = $2, responded_at = now() where id = $1",
        id,
        status,
    )
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InviteLink {
    /// The link's id.
    pub id: Uuid,
    /// The workspace it joins.
    pub workspace_id: Uuid,
    /// The role it grants: `member` or `viewer`.
    #[schema(value_type = crate::access::WorkspaceRole)]
    pub role: String,
    /// Who made it; null once that account is gone.
    pub created_by: Option<Uuid>,
    /// After this it no longer works; null when it never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many people may join with it; null for unlimited.
    pub max_uses: Option<i32>,
    /// How many have joined with it.
    pub uses: i32,
    /// When it was revoked; null while active.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl InviteLink {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }

    /// Why the link can no longer be used, if it cannot.
    pub fn unusable_because(&self) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the invite link was revoked")
        } else if self.expires_at.is_some_and(|at| at <= Utc::now()) {
            Some("the invite link has expired")
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            Some("the invite link has been used up")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewInviteLink<'a> {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub code_hash: &'a [u8],
    pub role: &'a str,
    pub created_by: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
}

pub async fn insert_link<'e>(
    db: impl PgExecutor<'e>,
    new: &NewInviteLink<'_>,
) -> sqlx::Result<InviteLink> {
    sqlx::query_as!(
        InviteLink,
        r#"insert into workspace_invite_links (id, workspace_id, code_hash, role, created_by, expires_at, max_uses)
           values ($1, $2, $3, $4, $5, $6, $7)
           returning id, workspace_id, role, created_by, expires_at, max_uses, uses, revoked_at, created_at"#,
        new.id,
        new.workspace_id,
        new.code_hash,
        new.role,
        new.created_by,
        new.expires_at,
        new.max_uses,
    )
    .fetch_one(db)
    .await
}

pub async fn list_links<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<InviteLink>> {
    sqlx::query_as!(
        InviteLink,
        r#"select id, workspace_id, role, created_by, expires_at, max_uses, uses, revoked_at, created_at
           from workspace_invite_links
           where workspace_id = $1 and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id
           limit $4"#,
        workspace_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// The link with this code, locked so concurrent joins count uses exactly.
pub async fn find_link_by_code<'e>(
    db: impl PgExecutor<'e>,
    code_hash: &[u8],
) -> sqlx::Result<Option<InviteLink>> {
    sqlx::query_as!(
        InviteLink,
        r#"select id, workspace_id, role, created_by, expires_at, max_uses, uses, revoked_at, created_at
           from workspace_invite_links where code_hash = $1 for update"#,
        code_hash,
    )
    .fetch_optional(db)
    .await
}

pub async fn count_link_use<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update workspace_invite_links set uses = uses + 1 where id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes a link of `workspace_id`; false when there is no such link there.
pub async fn revoke_link<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update workspace_invite_links set revoked_at = coalesce(revoked_at, now()) where id = $1 and workspace_id = $2",
        id,
        workspace_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
