//! The API's one error type and its mapping to RFC 9457 `application/problem+json` responses.
//!
//! Every handler returns [`ApiError`]; domain errors convert into it. The problem body carries a
//! stable machine `code`, and for validation failures the offending `errors[].field`. The
//! `request_id` is added to every problem by [`crate::http::problem_responses`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use potentia_ai::AiError;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// `Retry-After` of an `ai_unavailable` answer when the provider named no time.
const AI_RETRY_AFTER_SECS: u64 = 5;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request body (`email`, `preferences.theme`) or the parameter name.
    pub field: String,
    /// What is wrong with the field, in words for the person who typed it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document as this API sends it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` plus `code` for most.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type, the HTTP reason phrase.
    pub title: String,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// What went wrong in this request, in plain words.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `invalid_token`.
    pub code: String,
    /// For `validation_failed`: every invalid field, not only the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, also sent as the `x-request-id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For `version_conflict`: the resource as it is now, to merge with and retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub current: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// A 400 that names the offending fields (malformed recurrence, unknown time zone, …).
    #[error("{detail}")]
    InvalidInput {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// Something other than the request body is over its size limit (e.g. a document).
    #[error("{detail}")]
    TooLarge { code: &'static str, detail: String },
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// A write with a stale version: 409 `version_conflict` carrying the current resource.
    #[error("{detail}")]
    VersionConflict {
        detail: String,
        current: serde_json::Value,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A provider or model failure from `potentia-ai`, mapped in [`ApiError::status`].
    #[error(transparent)]
    Ai(#[from] AiError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// A 422 for one invalid field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError::new(field, message)])
    }

    /// A 422 listing every invalid field; the detail names them all.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::Validation { detail, errors }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::VersionConflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } | Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Ai(err) => match err {
                AiError::NotConfigured { .. } | AiError::Unavailable { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                AiError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                AiError::NotFound { .. } => StatusCode::NOT_FOUND,
                AiError::TurnInProgress => StatusCode::CONFLICT,
                AiError::ModelLoad { .. } | AiError::Database(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::InvalidInput { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::TooLarge { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::Validation { .. } => "validation_failed",
            Self::VersionConflict { .. } => "version_conflict",
            Self::NotFound { .. } => "not_found",
            Self::NoRoute { .. } => "route_not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Database(_) | Self::Internal(_) => "internal",
            Self::Ai(err) => match err {
                AiError::NotConfigured { .. } => "ai_not_configured",
                AiError::Unavailable { .. } => "ai_unavailable",
                AiError::Rejected { .. } => "ai_rejected",
                AiError::NotFound { .. } => "not_found",
                AiError::TurnInProgress => "turn_in_progress",
                AiError::ModelLoad { .. } | AiError::Database(_) => "internal",
            },
        }
    }

    /// Whether the detail would show a driver's or the server's internals.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Database(_)
                | Self::Internal(_)
                | Self::Ai(AiError::ModelLoad { .. } | AiError::Database(_))
        )
    }

    fn into_problem(self) -> Problem {
        let status = self.status();
        let code = self.code().to_owned();
        // Never leak driver or internal messages to the client; they are logged instead.
        let detail = if self.is_internal() {
            "the server failed to handle this request".to_owned()
        } else {
            self.to_string()
        };
        let (errors, current) = match self {
            Self::Validation { errors, .. } | Self::InvalidInput { errors, .. } => (errors, None),
            Self::VersionConflict { current, .. } => (Vec::new(), Some(current)),
            _ => (Vec::new(), None),
        };
        Problem {
            type_uri: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code,
            errors,
            request_id: None,
            current,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.is_internal() {
            tracing::error!(error = %self, "request failed");
        }
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Self::Ai(AiError::TurnInProgress) => Some(1),
            // A client should come back when the provider may answer again (at least 1 s).
            Self::Ai(AiError::Unavailable { retry_after, .. }) => Some(
                retry_after
                    .map_or(AI_RETRY_AFTER_SECS, |d| d.as_secs_f64().ceil() as u64)
                    .max(1),
            ),
            _ => None,
        };
        let challenge = matches!(self, Self::Unauthorized { .. });
        let mut response = problem_response(self.into_problem());
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Serializes a problem with its status and content type.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;
