//! `/api/v1/auth/*`: sign-up (which sends the first email verification link), sign-in,
//! refresh, sign-out and email verification.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::password::{self, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use super::refresh::{self, IssuedRefreshToken, Rotation, RotationPolicy};
use super::verification::{self, ResendRefusal, Verified};
use super::AuthUser;
use crate::audit::{self, AuditEntry};
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ClientIp, RequestId};
use crate::state::AppState;
use crate::users::db::{self as users_db, NewUser, EMAIL_UNIQUE_INDEX};
use crate::users::model::{normalize_email, normalize_name, validate_locale, validate_timezone};
use crate::users::User;
use crate::validation::FieldErrors;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.org", "password": "correct horse battery staple", "name": "Ada Lovelace", "timezone": "Europe/London", "locale": "en-GB"}))]
pub struct SignUpRequest {
    /// Sign-in address, unique across accounts (compared case-insensitively).
    pub email: String,
    /// 8 to 256 characters.
    pub password: String,
    /// Display name, up to 200 characters.
    pub name: Option<String>,
    /// IANA zone; defaults to UTC.
    pub timezone: Option<String>,
    /// BCP 47 tag; defaults to `en`.
    pub locale: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.org", "password": "correct horse battery staple"}))]
pub struct SignInRequest {
    /// The address the account signed up with.
    pub email: String,
    /// The account's password.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "q3Jx9Wm0bT7uYc2dKf8LrZs5nA1vHeP4oGiX6tBwQyE"}))]
pub struct RefreshRequest {
    /// The refresh token of the last session answer; it rotates on each use.
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "q3Jx9Wm0bT7uYc2dKf8LrZs5nA1vHeP4oGiX6tBwQyE"}))]
pub struct SignOutRequest {
    /// Revokes this token's family (this device's session).
    pub refresh_token: Option<String>,
    /// Revokes every session of the caller.
    #[serde(default)]
    pub all: bool,
}

/// Tokens for a signed-in session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// A JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /auth/refresh`; a second use outside the grace window revokes the session.
    pub refresh_token: String,
    /// When the refresh token stops working; sign in again after it.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// When the sign-in ends however often it refreshes (`POTENTIA_SESSION_MAX_LIFETIME_SECS`
    /// after it); sign in again then.
    pub session_expires_at: DateTime<Utc>,
    /// The signed-in user's profile.
    pub user: User,
}

fn session(state: &AppState, user: User, refresh: IssuedRefreshToken) -> ApiResult<Session> {
    let access_token =
        state
            .jwt
            .issue_access_token(user.id, user.email.as_deref(), refresh.family_id)?;
    Ok(Session {
        access_token,
        token_type: "bearer",
        expires_in: state.jwt.access_ttl().as_secs(),
        refresh_token: refresh.token,
        refresh_token_expires_at: refresh.expires_at,
        session_expires_at: refresh.session_expires_at,
        user,
    })
}

fn check_password_rules(password: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(FieldError::new(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Creates an account with a password and signs it in.
#[utoipa::path(
    post, path = "/api/v1/auth/signup", tag = "auth",
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "The account, signed in", body = Session),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SignUpRequest>,
) -> ApiResult<(StatusCode, ApiJson<Session>)> {
    state.auth_limits.check_ip(ip)?;
    let mut errors = FieldErrors::default();
    let email = errors.check(normalize_email(&body.email));
    let name = errors
        .check(body.name.as_deref().map(normalize_name).transpose())
        .flatten();
    let timezone = errors.check(validate_timezone(body.timezone.as_deref().unwrap_or("UTC")));
    let locale = errors.check(validate_locale(body.locale.as_deref().unwrap_or("en")));
    errors.check(check_password_rules(&body.password));
    errors.into_result()?;
    let (Some(email), Some(timezone), Some(locale)) = (email, timezone, locale) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    let password_hash = password::hash_password(body.password)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let new = NewUser {
        id: Uuid::now_v7(),
        email: &email,
        name: name.as_deref(),
        timezone: &timezone,
        locale: &locale,
        password_hash: &password_hash,
    };
    let mut tx = state.db.begin().await?;
    let user = users_db::insert(&mut *tx, &new).await.map_err(|err| {
        let taken = err
            .as_database_error()
            .and_then(|e| e.constraint())
            .is_some_and(|c| c == EMAIL_UNIQUE_INDEX);
        if taken {
            ApiError::conflict("email_taken", "an account with this email already exists")
        } else {
            err.into()
        }
    })?;
    let auth = &state.settings.auth;
    let refresh = refresh::issue(
        &mut *tx,
        user.id,
        auth.refresh_token_ttl,
        auth.session_max_lifetime,
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("user.create", "user", user.id)
            .actor(user.id)
            .after(
                serde_json::json!({ "email": user.email, "name": user.name, "source": "signup" }),
            )
            .request(request_id.as_deref()),
    )
    .await?;
    verification::send_link(
        &mut tx,
        &state.outbox,
        &state.settings.app_url,
        user.id,
        &email,
    )
    .await?;
    tx.commit().await?;
    state.outbox.wake();
    state.known_users.insert(user.id);
    Ok((
        StatusCode::CREATED,
        ApiJson(session(&state, user, refresh)?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "b3Jx9Wm0bT7uYc2dKf8LrZs5nA1vHeP4oGiX6tBwQyE"}))]
pub struct VerifyEmailRequest {
    /// The `token` of the link in the verification email.
    pub token: String,
}

/// Verifies the account's email address with the token of a verification link. The token is
/// the proof: no bearer is needed, so the link works in any browser.
#[utoipa::path(
    post, path = "/api/v1/auth/verify", tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "The profile, its address verified", body = User),
        (status = 400, description = "The token is unknown or used (`invalid_verification_token`), expired (`verification_token_expired`), or the account's address changed since it was sent (`email_changed`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> ApiResult<ApiJson<User>> {
    state.auth_limits.check_ip(ip)?;
    let mut tx = state.db.begin().await?;
    let (user_id, email, newly) = match verification::verify(&mut tx, &body.token).await? {
        Verified::Verified {
            user_id,
            email,
            newly,
        } => (user_id, email, newly),
        Verified::Unknown => {
            return Err(ApiError::bad_request(
                "invalid_verification_token",
                "this link is not valid or was already used; ask for a new one",
            ))
        }
        Verified::Expired => {
            return Err(ApiError::bad_request(
                "verification_token_expired",
                "this link has expired; ask for a new one",
            ))
        }
        Verified::AddressChanged => {
            tx.commit().await?;
            return Err(ApiError::bad_request(
                "email_changed",
                "the account's address changed since this link was sent",
            ));
        }
    };
    if newly {
        audit::record(
            &mut *tx,
            AuditEntry::new("user.verify_email", "user", user_id)
                .actor(user_id)
                .after(serde_json::json!({ "email": email }))
                .request(request_id.as_deref()),
        )
        .await?;
    }
    let user = users_db::find(&mut *tx, user_id)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    tx.commit().await?;
    Ok(ApiJson(user))
}

/// Sends the caller a new verification link (one a minute, five a day).
#[utoipa::path(
    post, path = "/api/v1/auth/verify/resend", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A new link is queued for the account's address"),
        (status = 409, description = "The address is already verified (`already_verified`), or the account has none (`no_email`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A link was sent less than a minute ago, or five today (`rate_limited`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_verification(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let user = users_db::find_for_update(&mut *tx, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    if user.email_verified {
        return Err(ApiError::conflict(
            "already_verified",
            "the address is already verified",
        ));
    }
    let Some(email) = user.email else {
        return Err(ApiError::conflict("no_email", "the account has no address"));
    };
    if let Err(ResendRefusal::TooSoon { retry_after_secs }) =
        verification::resend_allowed(&mut tx, caller.id).await?
    {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    verification::send_link(
        &mut tx,
        &state.outbox,
        &state.settings.app_url,
        caller.id,
        &email,
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("user.verification_sent", "user", caller.id)
            .actor(caller.id)
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.outbox.wake();
    Ok(StatusCode::ACCEPTED)
}

/// Signs in with email and password; starts a new refresh-token family.
#[utoipa::path(
    post, path = "/api/v1/auth/signin", tag = "auth",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "A new session", body = Session),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SignInRequest>,
) -> ApiResult<ApiJson<Session>> {
    state.auth_limits.check_ip(ip)?;
    let email = body.email.trim().to_lowercase();
    state.auth_limits.check_account(&email)?;
    let credentials = users_db::find_credentials(&state.db, &email).await?;
    let (user_id, stored_hash) = match credentials {
        Some(c) => (Some(c.id), c.password_hash),
        None => (None, None),
    };
    let valid = password::verify_password(body.password, stored_hash)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(user_id) = user_id.filter(|_| valid) else {
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "wrong email or password",
        ));
    };
    let mut tx = state.db.begin().await?;
    let user = users_db::find(&mut *tx, user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_credentials", "wrong email or password"))?;
    let auth = &state.settings.auth;
    let refresh = refresh::issue(
        &mut *tx,
        user.id,
        auth.refresh_token_ttl,
        auth.session_max_lifetime,
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("auth.signin", "user", user.id)
            .actor(user.id)
            .after(serde_json::json!({ "refresh_family": refresh.family_id, "ip": ip.to_string() }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(session(&state, user, refresh)?))
}

/// Exchanges a refresh token for a new session. Each refresh token works once: a second use
/// within `POTENTIA_REFRESH_REUSE_GRACE_SECS` (two tabs refreshing at once) answers the same
/// new refresh token; a later one revokes every token of its sign-in (reuse detection).
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new session: a new access token and the next refresh token", body = Session),
        (status = 401, description = "Unknown (`invalid_refresh_token`), expired (`refresh_token_expired`), past the sign-in's maximum lifetime (`session_expired`), revoked by a sign-out (`refresh_token_revoked`) or reused after the grace window (`refresh_token_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<ApiJson<Session>> {
    state.auth_limits.check_ip(ip)?;
    let mut tx = state.db.begin().await?;
    let auth = &state.settings.auth;
    let policy = RotationPolicy {
        key: &auth.jwt_secret.bytes,
        ttl: auth.refresh_token_ttl,
        grace: auth.refresh_reuse_grace,
    };
    let rotation = refresh::rotate(&mut tx, &body.refresh_token, &policy).await?;
    match rotation {
        Rotation::Unknown => Err(ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is not valid",
        )),
        Rotation::Expired => Err(ApiError::unauthorized(
            "refresh_token_expired",
            "the refresh token has expired; sign in again",
        )),
        Rotation::SessionExpired => Err(ApiError::unauthorized(
            "session_expired",
            "this sign-in reached its maximum lifetime (POTENTIA_SESSION_MAX_LIFETIME_SECS); sign in again",
        )),
        Rotation::Revoked => Err(ApiError::unauthorized(
            "refresh_token_revoked",
            "this sign-in was revoked (signed out, or its refresh token was reused); sign in again",
        )),
        Rotation::Reused { user_id, family_id } => {
            audit::record(
                &mut *tx,
                AuditEntry::new("auth.refresh_reuse", "refresh_family", family_id)
                    .actor(user_id)
                    .after(serde_json::json!({ "revoked": true, "ip": ip.to_string() }))
                    .request(request_id.as_deref()),
            )
            .await?;
            tx.commit().await?;
            state.sessions.end(family_id);
            tracing::warn!(%user_id, %family_id, "refresh token reused; family revoked");
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; every session from the same sign-in is revoked",
            ))
        }
        Rotation::Rotated { user_id, next } => {
            refreshed(&state, tx, user_id, next, false, request_id.as_deref()).await
        }
        Rotation::Replayed { user_id, next } => {
            refreshed(&state, tx, user_id, next, true, request_id.as_deref()).await
        }
    }
}

/// The session answering a successful refresh, audited in its transaction.
async fn refreshed(
    state: &AppState,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: Uuid,
    next: IssuedRefreshToken,
    within_grace: bool,
    request_id: Option<&str>,
) -> ApiResult<ApiJson<Session>> {
    let user = users_db::find(&mut *tx, user_id).await?.ok_or_else(|| {
        ApiError::unauthorized("invalid_refresh_token", "the account no longer exists")
    })?;
    audit::record(
        &mut *tx,
        AuditEntry::new("auth.refresh", "refresh_family", next.family_id)
            .actor(user_id)
            .after(serde_json::json!({ "within_grace": within_grace }))
            .request(request_id),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(session(state, user, next)?))
}

/// Revokes the session of one refresh token, or with `all` every session of the caller.
#[utoipa::path(
    post, path = "/api/v1/auth/signout", tag = "auth",
    security(("bearer" = [])),
    request_body = SignOutRequest,
    responses(
        (status = 204, description = "Signed out; the canvas sockets opened with the session's access tokens close with 4001"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither `refresh_token` nor `all`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_out(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<SignOutRequest>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let (scope, revoked, family) = match (body.all, body.refresh_token.as_deref()) {
        (true, _) => (
            "all",
            refresh::revoke_all_of_user(&mut *tx, caller.id).await?,
            None,
        ),
        (false, Some(token)) => match refresh::family_of(&mut *tx, token, caller.id).await? {
            Some(family) => (
                "session",
                refresh::revoke_family(&mut *tx, family).await?,
                Some(family),
            ),
            // Someone else's or an unknown token: nothing of the caller's to revoke.
            None => ("session", 0, None),
        },
        (false, None) => {
            return Err(ApiError::invalid_field(
                "refresh_token",
                "send the session's refresh_token, or all: true",
            ))
        }
    };
    audit::record(
        &mut *tx,
        AuditEntry::new("auth.signout", "user", caller.id)
            .actor(caller.id)
            .after(serde_json::json!({ "scope": scope, "revoked_tokens": revoked }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    // This node's sockets close now; other nodes' at their next session check.
    match family {
        Some(family) => state.sessions.end(family),
        None if body.all => state.sessions.end_user(caller.id),
        None => {}
    }
    Ok(StatusCode::NO_CONTENT)
}
