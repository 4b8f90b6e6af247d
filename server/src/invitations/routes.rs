//! Invitation and invite-link routes: sending (workspace and canvas admins), listing, accepting
//! and declining (the invitee, or whoever holds the token), revoking, and joining by link.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::db::{
    self, Answer, Invitation, InviteLink, NewInvitation, NewInviteLink, Target,
    PENDING_UNIQUE_INDEXES,
};
use super::limits;
use super::INVITATION_TTL_DAYS;
use crate::access::{self, require_canvas, require_workspace, Access, CanvasRole, WorkspaceRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::canvases::db as canvases_db;
use crate::email::{self, NewEmail, KIND_CANVAS_INVITATION, KIND_WORKSPACE_INVITATION};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::secret;
use crate::state::AppState;
use crate::users::db as users_db;
use crate::users::model::normalize_email;
use crate::validation::FieldErrors;
use crate::workspaces::db as workspaces_db;
use crate::workspaces::Workspace;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "grace@example.org", "role": "member"}))]
pub struct CreateInvitation {
    /// Invite an existing user…
    pub user_id: Option<Uuid>,
    /// …or an email address (the account may not exist yet).
    pub email: Option<String>,
    /// Workspace: `admin`, `member` or `viewer`. Canvas: `editor`, `commenter` or `viewer`.
    #[schema(value_type = crate::access::AnyRole)]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation as recorded.
    pub invitation: Invitation,
    /// The secret that accepts the invitation (`POST /api/v1/invitations/accept`); shown once.
    pub token: String,
    /// Whether an invitation mail was queued. False when the addressee has no address, or
    /// already got 3 invitation mails today (from anyone): share the token's link instead.
    pub email_queued: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "Zk4pN8sQ1wT6yB3mC9vR2xL7hJ5dF0gAeUoKiWnYtMq"}))]
pub struct InvitationToken {
    /// The secret from the invitation (`CreatedInvitation.token`, also in the invitation email).
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "member", "expires_in_secs": 604800, "max_uses": 20}))]
pub struct CreateInviteLink {
    /// `member` or `viewer`.
    #[schema(value_type = crate::access::WorkspaceRole)]
    pub role: String,
    /// Seconds until the link expires; omitted, it never does.
    pub expires_in_secs: Option<i64>,
    /// How many people may join with it; omitted, unlimited.
    pub max_uses: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInviteLink {
    /// The link as recorded.
    pub link: InviteLink,
    /// The code to share (`POST /api/v1/invite-links/join`); shown once.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "Hs7Vb2Qw9XcE4rT1yU8iO3pA6sD5fG0hJkLzMnBvCxN"}))]
pub struct JoinByLink {
    /// The link's code (`CreatedInviteLink.code`).
    pub code: String,
}

/// Who an invitation is addressed to.
enum Addressee {
    User(Uuid),
    /// A normalized email address; the account may not exist yet.
    Email(String),
}

/// The role an invitation to `target` may grant.
fn invitation_role(target: Target, role: &str) -> Result<&'static str, FieldError> {
    match target {
        Target::Workspace(_) => match WorkspaceRole::parse(role) {
            Some(WorkspaceRole::Owner) | None => {
                Err(FieldError::new("role", "must be admin, member or viewer"))
            }
            Some(role) => Ok(role.as_str()),
        },
        Target::Canvas(_) => CanvasRole::parse(role)
            .map(CanvasRole::as_str)
            .ok_or_else(|| FieldError::new("role", "must be editor, commenter or viewer")),
    }
}

fn addressee_of(user_id: Option<Uuid>, email: Option<String>) -> Result<Addressee, FieldError> {
    match (user_id, email) {
        (Some(user_id), None) => Ok(Addressee::User(user_id)),
        (None, Some(email)) => normalize_email(&email).map(Addressee::Email),
        _ => Err(FieldError::new(
            "user_id",
            "send exactly one of user_id and email",
        )),
    }
}

/// Checks the body and the inviter's rights, then records the invitation.
async fn invite(
    state: &AppState,
    caller: &AuthUser,
    request_id: Option<&str>,
    target: Target,
    body: CreateInvitation,
) -> ApiResult<(StatusCode, ApiJson<CreatedInvitation>)> {
    let mut errors = FieldErrors::default();
    let role = errors.check(invitation_role(target, &body.role));
    let addressee = errors.check(addressee_of(body.user_id, body.email));
    errors.into_result()?;
    let (Some(role), Some(addressee)) = (role, addressee) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let mut tx = state.db.begin().await?;
    match target {
        Target::Workspace(id) => {
            require_workspace(&mut *tx, caller.id, id, WorkspaceRole::Admin).await?;
        }
        Target::Canvas(id) => {
            require_canvas(&mut *tx, caller.id, id, Access::Admin).await?;
        }
    }
    limits::check_inviter(&mut tx, caller.id).await?;
    // `deliver_to`: where the invitation email goes, if anywhere.
    let (invitee_id, email, deliver_to) = match addressee {
        Addressee::User(user_id) => {
            let invitee = users_db::find(&mut *tx, user_id)
                .await?
                .ok_or_else(|| ApiError::invalid_field("user_id", "no user has this id"))?;
            (Some(user_id), None, invitee.email)
        }
        Addressee::Email(email) => (None, Some(email.clone()), Some(email)),
    };
    // An address is not tied to an account here: whoever verifies it is the addressee, and the
    // answer is the same whether an account has it or not. Only a member is told apart (the
    // inviter, an admin, sees the members anyway).
    let member_check = match (invitee_id, email.as_deref()) {
        (Some(invitee), _) => Some(invitee),
        (None, Some(email)) => users_db::find_credentials(&mut *tx, email)
            .await?
            .map(|c| c.id),
        (None, None) => None,
    };
    if let Some(invitee) = member_check {
        let already = match target {
            Target::Workspace(id) => access::workspace_access(&mut *tx, invitee, id)
                .await?
                .is_some(),
            Target::Canvas(id) => {
                let found = canvases_db::find(&mut *tx, id).await?;
                found.is_some_and(|c| c.owner_id == invitee)
                    || canvases_db::direct_role(&mut *tx, id, invitee)
                        .await?
                        .is_some()
            }
        };
        if already {
            return Err(ApiError::conflict(
                "already_member",
                "this user is already a member",
            ));
        }
    }
    db::expire_stale(&mut *tx, target).await?;
    let token = secret::generate();
    let id = Uuid::now_v7();
    let inserted = db::insert(
        &mut *tx,
        &NewInvitation {
            id,
            target,
            invitee_id,
            email: email.as_deref(),
            role,
            token_hash: &secret::digest(&token),
            invited_by: caller.id,
            expires_at: Utc::now() + Duration::days(INVITATION_TTL_DAYS),
        },
    )
    .await;
    if let Err(err) = inserted {
        let duplicate = err
            .as_database_error()
            .and_then(|e| e.constraint())
            .is_some_and(|c| PENDING_UNIQUE_INDEXES.contains(&c));
        return Err(if duplicate {
            ApiError::conflict(
                "invitation_pending",
                "a pending invitation for this person already exists",
            )
        } else {
            err.into()
        });
    }
    let invitation = db::find(&mut *tx, id)
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    audit::record(
        &mut *tx,
        AuditEntry::new("invitation.create", "invitation", id)
            .actor(caller.id)
            .after(serde_json::json!({
                "workspace_id": invitation.workspace_id, "canvas_id": invitation.canvas_id,
                "invitee_id": invitation.invitee_id, "email": invitation.email, "role": invitation.role,
            }))
            .request(request_id),
    )
    .await?;
    let mut email_queued = false;
    if let Some(to) = deliver_to {
        if limits::may_mail(&mut tx, &to).await? {
            let inviter = users_db::find(&mut *tx, caller.id).await?;
            let inviter = inviter
                .and_then(|u| u.name.or(u.email))
                .unwrap_or_else(|| "Someone".to_owned());
            let mail = invitation_email(&state.settings.app_url, &inviter, &invitation, &token, to);
            state.outbox.enqueue(&mut *tx, &mail).await?;
            email_queued = true;
        }
    }
    tx.commit().await?;
    // After the commit, or the sender could look before the row is visible.
    state.outbox.wake();
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedInvitation {
            invitation,
            token,
            email_queued,
        }),
    ))
}

/// The email that carries an invitation's accept link. The inviter's name and the target's
/// name are user text: quoted, on one line, cut, with links broken ([`email::user_text`]).
fn invitation_email(
    app_url: &str,
    inviter: &str,
    invitation: &Invitation,
    token: &str,
    to: String,
) -> NewEmail {
    let (kind, what) = match invitation.workspace_id {
        Some(_) => (KIND_WORKSPACE_INVITATION, "the workspace"),
        None => (KIND_CANVAS_INVITATION, "the canvas"),
    };
    let name = if invitation.target_name.is_empty() {
        "Untitled".to_owned()
    } else {
        email::user_text(&invitation.target_name)
    };
    let inviter = email::user_text(inviter);
    NewEmail {
        to_address: to,
        subject: format!("{inviter} invited you to {name}"),
        body_text: format!(
            "{inviter} invited you to join {what} \"{name}\" on Potentia as {role}.\n\n\
             Accept the invitation: {app_url}/invitations/accept?token={token}\n\n\
             The invitation expires on {expires} UTC. If you did not expect it, you can ignore this email.\n",
            role = invitation.role,
            expires = invitation.expires_at.format("%Y-%m-%d %H:%M"),
        ),
        body_html: None,
        kind: kind.to_owned(),
    }
}

/// Invites a user or an email address to the workspace (admins and the owner).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)), request_body = CreateInvitation,
    responses((status = 201, description = "The invitation and its one-time token", body = CreatedInvitation), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Already a member, or already invited", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "The caller sent 50 invitations in the last hour (`rate_limited`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn invite_to_workspace(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, ApiJson<CreatedInvitation>)> {
    invite(
        &state,
        &caller,
        request_id.as_deref(),
        Target::Workspace(workspace_id),
        body,
    )
    .await
}

/// Invites a user or an email address to the canvas (canvas admins).
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)), request_body = CreateInvitation,
    responses((status = 201, description = "The invitation and its one-time token", body = CreatedInvitation), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Already a member, or already invited", body = Problem, content_type = "application/problem+json"),
              (status = 429, description = "The caller sent 50 invitations in the last hour (`rate_limited`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn invite_to_canvas(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, ApiJson<CreatedInvitation>)> {
    invite(
        &state,
        &caller,
        request_id.as_deref(),
        Target::Canvas(canvas_id),
        body,
    )
    .await
}

/// Pending invitations of the workspace (admins and the owner).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of the workspace's invitations, oldest first", body = Page<Invitation>), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_workspace_invitations(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Invitation>>> {
    let page = params.validate()?;
    require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let rows =
        db::list_pending_for_target(&state.db, Target::Workspace(workspace_id), &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, Invitation::position)))
}

/// Pending invitations of the canvas (canvas admins).
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/invitations", tag = "invitations", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of the canvas's invitations, oldest first", body = Page<Invitation>), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_canvas_invitations(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Invitation>>> {
    let page = params.validate()?;
    require_canvas(&state.db, caller.id, canvas_id, Access::Admin).await?;
    let rows = db::list_pending_for_target(&state.db, Target::Canvas(canvas_id), &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, Invitation::position)))
}

/// The caller's pending invitations (addressed to the account or to its email).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "invitations", security(("bearer" = [])),
    params(PageParams), responses((status = 200, description = "One page of invitations the caller can accept", body = Page<Invitation>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json")))]
pub async fn list_my_invitations(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Invitation>>> {
    let page = params.validate()?;
    let rows = db::list_pending_for_user(&state.db, caller.id, &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, Invitation::position)))
}

/// How the caller proves the right to answer an invitation.
enum Proof {
    /// The invitation is addressed to the caller's account or email.
    Invitee,
    /// The caller holds the secret token.
    Token,
}

/// Accepts or declines an invitation in one transaction.
async fn respond(
    state: &AppState,
    caller: &AuthUser,
    request_id: Option<&str>,
    invitation_id: Uuid,
    proof: Proof,
    accept: bool,
) -> ApiResult<ApiJson<Invitation>> {
    let mut tx = state.db.begin().await?;
    let invitation = db::find(&mut *tx, invitation_id)
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    let addressed_to_caller = match proof {
        Proof::Token => true,
        Proof::Invitee => match invitation.invitee_id {
            Some(invitee) => invitee == caller.id,
            None => {
                let me = users_db::find(&mut *tx, caller.id).await?;
                let verified = me.as_ref().is_some_and(|u| u.email_verified);
                let my_email = me.and_then(|u| u.email).map(|e| e.to_lowercase());
                let mine = my_email.is_some()
                    && my_email == invitation.email.as_ref().map(|e| e.to_lowercase());
                // Holding the address is not enough: an unverified sign-up could have taken it.
                if mine && !verified {
                    return Err(ApiError::Forbidden {
                        code: "email_not_verified",
                        detail: "verify your email address to accept invitations sent to it \
                                 (POST /api/v1/auth/verify), or use the invitation's link"
                            .to_owned(),
                    });
                }
                mine
            }
        },
    };
    if !addressed_to_caller {
        return Err(ApiError::NotFound { what: "invitation" });
    }
    if invitation.status != "pending" {
        return Err(ApiError::conflict(
            "invitation_not_pending",
            format!("the invitation is {}", invitation.status),
        ));
    }
    if invitation.is_expired() {
        db::set_status(&mut *tx, invitation_id, "expired").await?;
        tx.commit().await?;
        return Err(ApiError::conflict(
            "invitation_expired",
            "the invitation has expired",
        ));
    }
    let answer = if accept {
        Answer::Accept { by: caller.id }
    } else {
        Answer::Decline
    };
    if let Answer::Accept { by } = answer {
        match (invitation.workspace_id, invitation.canvas_id) {
            (Some(workspace_id), _) => {
                workspaces_db::add_member(&mut *tx, workspace_id, by, &invitation.role).await?;
            }
            (None, Some(canvas_id)) => {
                canvases_db::upsert_member(&mut *tx, canvas_id, by, &invitation.role).await?;
            }
            (None, None) => return Err(ApiError::NotFound { what: "invitation" }),
        }
    }
    db::record_answer(&mut *tx, invitation_id, answer).await?;
    let action = match answer {
        Answer::Accept { .. } => "invitation.accept",
        Answer::Decline => "invitation.decline",
    };
    audit::record(
        &mut *tx,
        AuditEntry::new(action, "invitation", invitation_id)
            .actor(caller.id)
            .before(serde_json::json!({ "status": "pending" }))
            .after(serde_json::json!({
                "status": answer.status(),
                "role": invitation.role,
                "accepted_by": answer.accepted_by(),
                "addressed_to": { "user_id": invitation.invitee_id, "email": invitation.email },
                "proof": match proof { Proof::Invitee => "addressee", Proof::Token => "token" },
            }))
            .request(request_id),
    )
    .await?;
    let updated = db::find(&mut *tx, invitation_id)
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    tx.commit().await?;
    Ok(ApiJson(updated))
}

/// Accepts an invitation addressed to the caller.
#[utoipa::path(post, path = "/api/v1/invitations/{invitation_id}/accept", tag = "invitations", security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path)),
    responses((status = 200, description = "The accepted invitation; the caller now has its role", body = Invitation), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Not pending, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The invitation went to the caller's address, which is not verified yet (`email_not_verified`)", body = Problem, content_type = "application/problem+json")))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(invitation_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Invitation>> {
    respond(
        &state,
        &caller,
        request_id.as_deref(),
        invitation_id,
        Proof::Invitee,
        true,
    )
    .await
}

/// Declines an invitation addressed to the caller.
#[utoipa::path(post, path = "/api/v1/invitations/{invitation_id}/decline", tag = "invitations", security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path)),
    responses((status = 200, description = "The declined invitation", body = Invitation), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The invitation went to the caller's address, which is not verified yet (`email_not_verified`)", body = Problem, content_type = "application/problem+json")))]
pub async fn decline_invitation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(invitation_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Invitation>> {
    respond(
        &state,
        &caller,
        request_id.as_deref(),
        invitation_id,
        Proof::Invitee,
        false,
    )
    .await
}

async fn invitation_by_token(state: &AppState, token: &str) -> ApiResult<Uuid> {
    db::find_id_by_token(&state.db, &secret::digest(token))
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })
}

/// Accepts the invitation whose token the caller holds (the link sent by email or shared).
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "invitations", security(("bearer" = [])),
    request_body = InvitationToken,
    responses((status = 200, description = "The accepted invitation; the caller now has its role", body = Invitation), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn accept_invitation_by_token(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<InvitationToken>,
) -> ApiResult<ApiJson<Invitation>> {
    let id = invitation_by_token(&state, &body.token).await?;
    respond(
        &state,
        &caller,
        request_id.as_deref(),
        id,
        Proof::Token,
        true,
    )
    .await
}

/// Declines the invitation whose token the caller holds.
#[utoipa::path(post, path = "/api/v1/invitations/decline", tag = "invitations", security(("bearer" = [])),
    request_body = InvitationToken,
    responses((status = 200, description = "The declined invitation", body = Invitation), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn decline_invitation_by_token(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<InvitationToken>,
) -> ApiResult<ApiJson<Invitation>> {
    let id = invitation_by_token(&state, &body.token).await?;
    respond(
        &state,
        &caller,
        request_id.as_deref(),
        id,
        Proof::Token,
        false,
    )
    .await
}

/// Revokes a pending invitation (admins of its workspace or canvas).
#[utoipa::path(delete, path = "/api/v1/invitations/{invitation_id}", tag = "invitations", security(("bearer" = [])),
    params(("invitation_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(invitation_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let invitation = db::find(&mut *tx, invitation_id)
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    let checked = match (invitation.workspace_id, invitation.canvas_id) {
        (Some(ws), _) => require_workspace(&mut *tx, caller.id, ws, WorkspaceRole::Admin)
            .await
            .map(|_| ()),
        (None, Some(canvas)) => require_canvas(&mut *tx, caller.id, canvas, Access::Admin)
            .await
            .map(|_| ()),
        (None, None) => Err(ApiError::NotFound { what: "invitation" }),
    };
    // Someone who cannot see the workspace or canvas cannot see its invitations either.
    checked.map_err(|err| match err {
        ApiError::NotFound { .. } => ApiError::NotFound { what: "invitation" },
        other => other,
    })?;
    if invitation.status != "pending" {
        return Err(ApiError::conflict(
            "invitation_not_pending",
            format!("the invitation is {}", invitation.status),
        ));
    }
    db::set_status(&mut *tx, invitation_id, "revoked").await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("invitation.revoke", "invitation", invitation_id)
            .actor(caller.id)
            .before(serde_json::json!({ "status": "pending" }))
            .after(serde_json::json!({ "status": "revoked" }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an invite link (admins and the owner).
#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/invite-links", tag = "invitations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path)), request_body = CreateInviteLink,
    responses((status = 201, description = "The link and its code, shown once", body = CreatedInviteLink), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_invite_link(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateInviteLink>,
) -> ApiResult<(StatusCode, ApiJson<CreatedInviteLink>)> {
    let mut errors = FieldErrors::default();
    let role = match WorkspaceRole::parse(&body.role) {
        Some(role @ (WorkspaceRole::Member | WorkspaceRole::Viewer)) => Some(role),
        _ => {
            errors.push("role", "must be member or viewer");
            None
        }
    };
    if body
        .expires_in_secs
        .is_some_and(|s| !(60..=365 * 24 * 3600).contains(&s))
    {
        errors.push("expires_in_secs", "must be between 60 and 31536000");
    }
    if body.max_uses.is_some_and(|n| n < 1) {
        errors.push("max_uses", "must be at least 1");
    }
    errors.into_result()?;
    let Some(role) = role else {
        return Err(ApiError::invalid_field("role", "must be member or viewer"));
    };
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let code = secret::generate();
    let link = db::insert_link(
        &mut *tx,
        &NewInviteLink {
            id: Uuid::now_v7(),
            workspace_id,
            code_hash: &secret::digest(&code),
            role: role.as_str(),
            created_by: caller.id,
            expires_at: body
                .expires_in_secs
                .map(|s| Utc::now() + Duration::seconds(s)),
            max_uses: body.max_uses,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("invite_link.create", "invite_link", link.id)
            .actor(caller.id)
            .after(serde_json::json!({ "workspace_id": workspace_id, "role": link.role, "expires_at": link.expires_at, "max_uses": link.max_uses }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedInviteLink { link, code }),
    ))
}

/// The workspace's invite links, with their use counts (admins and the owner).
#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/invite-links", tag = "invitations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of the workspace's invite links", body = Page<InviteLink>), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_invite_links(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(workspace_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<InviteLink>>> {
    let page = params.validate()?;
    require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    let rows = db::list_links(&state.db, workspace_id, &page).await?;
    Ok(ApiJson(Page::from_rows(rows, &page, InviteLink::position)))
}

/// Revokes an invite link (admins and the owner).
#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/invite-links/{link_id}", tag = "invitations", security(("bearer" = [])),
    params(("workspace_id" = Uuid, Path), ("link_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_invite_link(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((workspace_id, link_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Admin).await?;
    if !db::revoke_link(&mut *tx, workspace_id, link_id).await? {
        return Err(ApiError::NotFound {
            what: "invite link",
        });
    }
    audit::record(
        &mut *tx,
        AuditEntry::new("invite_link.revoke", "invite_link", link_id)
            .actor(caller.id)
            .after(serde_json::json!({ "workspace_id": workspace_id }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Joins a workspace with an invite link's code. A member already in it is answered with the
/// workspace and the link's use count stays.
#[utoipa::path(post, path = "/api/v1/invite-links/join", tag = "invitations", security(("bearer" = [])),
    request_body = JoinByLink,
    responses((status = 200, description = "The workspace the caller joined", body = Workspace), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "Revoked, expired or used up", body = Problem, content_type = "application/problem+json")))]
pub async fn join_by_link(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<JoinByLink>,
) -> ApiResult<ApiJson<Workspace>> {
    let mut tx = state.db.begin().await?;
    let link = db::find_link_by_code(&mut *tx, &secret::digest(&body.code))
        .await?
        .ok_or(ApiError::NotFound {
            what: "invite link",
        })?;
    if let Some(existing) = workspaces_db::find_for(&mut *tx, link.workspace_id, caller.id).await? {
        return Ok(ApiJson(existing));
    }
    if let Some(reason) = link.unusable_because() {
        return Err(ApiError::conflict("invite_link_unusable", reason));
    }
    workspaces_db::add_member(&mut *tx, link.workspace_id, caller.id, &link.role).await?;
    db::count_link_use(&mut *tx, link.id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "invite_link.join",
            "workspace_member",
            format!("{}/{}", link.workspace_id, caller.id),
        )
        .actor(caller.id)
        .after(serde_json::json!({ "link_id": link.id, "role": link.role }))
        .request(request_id.as_deref()),
    )
    .await?;
    let workspace = workspaces_db::find_for(&mut *tx, link.workspace_id, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "workspace" })?;
    tx.commit().await?;
    Ok(ApiJson(workspace))
}
