//! HTTP fallbacks of the sync protocol for clients without a WebSocket (ARCHITECTURE §3):
//! fetch the document (`GET …/state`), push an update (`POST …/updates`, committed before it
//! is broadcast, like a socket's), read and set presence, and leave.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use potentia_sync::store::AuditNote;
use potentia_sync::{AwarenessEntry, EncodedStateVector, EncodedUpdate, PresenceEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{require_canvas, Access};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::state::AppState;
use crate::validation::FieldErrors;

const BINARY: &str = "application/octet-stream";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// The client's state vector (v1, base64 or base64url): answer only what it lacks.
    pub sv: Option<String>,
}

/// The document as one v1 update (`application/octet-stream`): all of it, or with `sv` what a
/// client with that state vector lacks. Apply it with `Y.applyUpdate`.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/state", tag = "sync", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), StateParams),
    responses(
        (status = 200, description = "A v1 update", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn get_state(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<StateParams>,
) -> ApiResult<Response> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let state_vector = params.sv.as_deref().map(decode_state_vector).transpose()?;
    let update = state.rooms.state(canvas_id, state_vector).await?;
    Ok(([(header::CONTENT_TYPE, BINARY)], update).into_response())
}

fn decode_state_vector(text: &str) -> Result<yrs::StateVector, ApiError> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| ApiError::invalid_field("sv", "not base64"))?;
    EncodedStateVector::decode(&bytes)
        .map(EncodedStateVector::into_state_vector)
        .map_err(|e| ApiError::invalid_field("sv", e.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushedUpdate {
    /// The update's sequence number in the canvas's log; `null` for an empty update (nothing
    /// to store).
    pub seq: Option<i64>,
}

/// Applies one v1 update (`application/octet-stream` body) to the document: validated,
/// committed to the log, then broadcast to connected clients. Needs write access.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/updates", tag = "sync", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The update is durable and broadcast to connected clients", body = PushedUpdate),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json")))]
pub async fn push_update(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ApiJson<PushedUpdate>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(BINARY) {
        return Err(ApiError::UnsupportedMediaType {
            detail: format!("send the update as {BINARY}"),
        });
    }
    let update = EncodedUpdate::decode(&body)
        .map_err(|e| ApiError::bad_request("invalid_update", e.to_string()))?;
    if update.is_empty() {
        return Ok(ApiJson(PushedUpdate { seq: None }));
    }
    // Audited in the commit that logs the update (the room adds its `seq`).
    let audit = AuditNote {
        actor: caller.id,
        action: "canvas.update_pushed".to_owned(),
        target_type: "canvas".to_owned(),
        target_id: canvas_id.to_string(),
        after: serde_json::json!({ "bytes": body.len() }),
        request_id,
    };
    let seq = state
        .rooms
        .push_update(canvas_id, caller.id, update, Some(audit))
        .await?;
    Ok(ApiJson(PushedUpdate { seq: Some(seq) }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Presence {
    /// Every present awareness state of the canvas (WebSocket and HTTP clients).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<PresenceEntry>,
}

/// Who is on the canvas now: the awareness states of its clients.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/presence", tag = "sync", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "Who is on the canvas now, with their awareness states", body = Presence), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_presence(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Presence>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let items = state.rooms.presence(canvas_id).await?;
    Ok(ApiJson(Presence { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"client_id": 314159265, "clock": 7, "state": {"user": {"name": "Ada", "color": "#4f7cff"}, "cursor": {"block_id": "0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e70", "offset": 12}}}))]
pub struct SetPresence {
    /// The client's awareness id (a Yjs client id, at most 2^53 − 1).
    pub client_id: u64,
    /// Increase it with every change; a lower clock than the last one is ignored.
    pub clock: u64,
    /// Any JSON object (cursor, user name, colour…); `null` removes the client.
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
}

/// Sets an HTTP client's awareness state; connected clients see it like a socket client's.
/// It expires unless renewed within the awareness timeout (30 s).
#[utoipa::path(put, path = "/api/v1/canvases/{canvas_id}/presence", tag = "sync", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    request_body = SetPresence,
    responses(
        (status = 204, description = "Presence recorded and broadcast"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_presence(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetPresence>,
) -> ApiResult<StatusCode> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let limits = state.rooms.config().connection.protocol;
    let json = body.state.to_string();
    let mut errors = FieldErrors::default();
    if json.len() > limits.max_awareness_bytes {
        errors.push(
            "state",
            format!("at most {} bytes of JSON", limits.max_awareness_bytes),
        );
    }
    let state_json = (!body.state.is_null()).then_some(json.as_str());
    let entry = errors.check(
        AwarenessEntry::new(body.client_id, body.clock, state_json)
            .map_err(|e| FieldError::new("client_id", e.to_string())),
    );
    errors.into_result()?;
    let Some(entry) = entry else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    state
        .rooms
        .set_presence(canvas_id, caller.id, entry)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves the canvas: removes every awareness state the caller set over HTTP.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/leave", tag = "sync", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 204, description = "The client's presence is gone"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn leave(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    state.rooms.leave(canvas_id, caller.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
