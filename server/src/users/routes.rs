//! `GET` and `PATCH /api/v1/auth/me`: the caller's own profile.

use axum::extract::State;

use super::{db, ProfilePatch, User};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, RequestId};
use crate::state::AppState;

/// The caller's profile.
#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<ApiJson<User>> {
    let user = db::find(&state.db, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    Ok(ApiJson(user))
}

/// Changes name, phone, time zone, locale or preferences; audited with before and after.
#[utoipa::path(
    patch, path = "/api/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    request_body = ProfilePatch,
    responses(
        (status = 200, description = "The profile as changed", body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid field, named in `errors`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_me(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> ApiResult<ApiJson<User>> {
    let mut tx = state.db.begin().await?;
    let before = db::find_for_update(&mut *tx, caller.id)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })?;
    let changed = patch.apply(before.clone())?;
    let after = db::update_profile(&mut *tx, &changed).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("user.update", "user", caller.id)
            .actor(caller.id)
            .before(profile_json(&before))
            .after(profile_json(&after))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(after))
}

/// The audited fields of a profile.
fn profile_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "name": user.name,
        "phone": user.phone,
        "timezone": user.timezone,
        "locale": user.locale,
        "preferences": user.preferences,
    })
}
