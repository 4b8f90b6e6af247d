//! The `AuthUser` extractor: a verified bearer token, and the user's row guaranteed to exist
//! (the first request with a valid external token, e.g. from Supabase, creates it).

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::jwt::{TokenError, VerifiedToken};
use crate::audit::{self, AuditEntry};
use crate::error::ApiError;
use crate::http::RequestId;
use crate::state::AppState;
use crate::users;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub email: Option<String>,
}

/// Ids whose rows are known to exist, so most requests skip the existence check.
#[derive(Default)]
pub struct KnownUsers(Mutex<HashSet<Uuid>>);

/// Bound on the cache; past it the set is cleared and refills from traffic.
const KNOWN_USERS_CAPACITY: usize = 100_000;

impl KnownUsers {
    fn contains(&self, id: Uuid) -> bool {
        self.0.lock().map(|set| set.contains(&id)).unwrap_or(false)
    }

    pub fn insert(&self, id: Uuid) {
        if let Ok(mut set) = self.0.lock() {
            if set.len() >= KNOWN_USERS_CAPACITY {
                set.clear();
            }
            set.insert(id);
        }
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    bearer_token_from_headers(&parts.headers)
}

/// The token of an `Authorization: Bearer …` header among `headers`.
pub fn bearer_token_from_headers(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send `Authorization: Bearer <token>`")
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized("invalid_token", "the Authorization header is not ASCII")
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "invalid_token",
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => ApiError::unauthorized("token_expired", err.to_string()),
            TokenError::Signing(_) => ApiError::Internal(err.to_string()),
            _ => ApiError::unauthorized("invalid_token", err.to_string()),
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let RequestId(request_id) = RequestId::from_request_parts(parts, state)
            .await
            .unwrap_or_default();
        AuthUser::from_token(state, bearer_token(parts)?, request_id.as_deref()).await
    }
}

impl AuthUser {
    /// The user a token names, verified; the first token of an external user creates its row.
    /// For callers that cannot send a header (a browser WebSocket passes `?token=`).
    pub async fn from_token(
        state: &AppState,
        token: &str,
        request_id: Option<&str>,
    ) -> Result<Self, ApiError> {
        let verified = state.jwt.verify(token)?;
        Self::from_verified(state, verified, request_id).await
    }

    /// The user of a token already verified (a socket keeps the token's expiry and session).
    pub async fn from_verified(
        state: &AppState,
        verified: VerifiedToken,
        request_id: Option<&str>,
    ) -> Result<Self, ApiError> {
        let user = AuthUser {
            id: verified.user_id,
            email: verified.email,
        };
        if !state.known_users.contains(user.id) {
            ensure_user_row(state, &user, request_id).await?;
            state.known_users.insert(user.id);
        }
        if verified.email_verified && !state.known_verified.contains(user.id) {
            mark_verified_by_token(state, &user, request_id).await?;
            state.known_verified.insert(user.id);
        }
        Ok(user)
    }
}

/// Records that an external token vouched for the user's address, auditing the change.
async fn mark_verified_by_token(
    state: &AppState,
    user: &AuthUser,
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    let Some(email) = user.email.as_deref() else {
        return Ok(());
    };
    let mut tx = state.db.begin().await?;
    if users::db::mark_email_verified(&mut *tx, user.id, email).await? {
        audit::record(
            &mut *tx,
            AuditEntry::new("user.verify_email", "user", user.id)
                .actor(user.id)
                .after(serde_json::json!({ "email": email, "source": "external_token" }))
                .request(request_id),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the row of a user first seen through an external token, auditing the creation.
async fn ensure_user_row(
    state: &AppState,
    user: &AuthUser,
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    if let Some(created) =
        users::db::create_external(&mut *tx, user.id, user.email.as_deref()).await?
    {
        audit::record(
            &mut *tx,
            AuditEntry::new("user.create", "user", user.id)
                .actor(user.id)
                .after(serde_json::json!({ "email": created.email, "source": "external_token" }))
                .request(request_id),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
