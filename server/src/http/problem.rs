//! Makes every error response a problem document: fills in `request_id` on our own problems and
//! converts the plain-text errors axum and tower produce (405, 413, …) into problem+json.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::REQUEST_ID_HEADER;
use crate::error::{ApiError, PROBLEM_CONTENT_TYPE};

/// Error bodies larger than this are not ours to rewrite; they pass through unchanged.
const MAX_REWRITTEN_BODY: usize = 64 * 1024;

pub async fn problem_responses(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_REWRITTEN_BODY).await else {
        return (status, "error body too large to describe").into_response();
    };
    let mut problem = if is_problem {
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(value) => value,
            Err(_) => return Response::from_parts(parts, Body::from(bytes)),
        }
    } else {
        plain_error_as_problem(status, &bytes)
    };
    if let (Some(id), Some(object)) = (request_id, problem.as_object_mut()) {
        object.insert("request_id".into(), id.into());
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    Response::from_parts(parts, Body::from(body))
}

fn plain_error_as_problem(status: StatusCode, body: &[u8]) -> serde_json::Value {
    let title = status.canonical_reason().unwrap_or("Error");
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let detail = if text.is_empty() {
        title.to_owned()
    } else {
        text
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type".to_owned(),
        StatusCode::REQUEST_TIMEOUT => "timeout".to_owned(),
        other => format!("http_{}", other.as_u16()),
    };
    serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    })
}

/// The router's fallback: a 404 problem naming the method and path.
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
