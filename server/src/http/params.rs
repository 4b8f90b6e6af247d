//! Path and query extractors whose rejections are problem responses naming what is wrong.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::deserialize::{field_error, product_message};
use super::json::NUL_MESSAGE;
use crate::error::{ApiError, FieldError};

/// Path parameters; a malformed one (say, an id that is not a UUID) is a 400 saying which.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| {
                ApiError::bad_request("invalid_path_parameter", path_problem(&rejection))
            })
    }
}

/// The longest piece of a client's path echoed back in a problem.
const ECHOED_CHARS: usize = 80;

fn path_problem(rejection: &PathRejection) -> String {
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        return "the path parameters could not be read".to_owned();
    };
    let echoed = |value: &str| value.chars().take(ECHOED_CHARS).collect::<String>();
    match error.kind() {
        ErrorKind::ParseErrorAtKey { key, value, .. } => {
            format!("`{}` is not a valid {key}", echoed(value))
        }
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => format!(
            "`{}` is not a valid {key}: it {}",
            echoed(value),
            product_message(message)
        ),
        ErrorKind::ParseError { value, .. } | ErrorKind::ParseErrorAtIndex { value, .. } => {
            format!("`{}` in the path is not valid", echoed(value))
        }
        ErrorKind::InvalidUtf8InPathParam { key } => format!("{key} is not valid UTF-8"),
        ErrorKind::Message(message) => {
            format!("a path parameter {}", product_message(message))
        }
        // `ErrorKind` is non-exhaustive; what remains are the router's own mistakes.
        _ => "the path parameters could not be read".to_owned(),
    }
}

/// Query parameters; a malformed one is a 422 naming it in `errors[].field`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Self)
    }
}

/// Parses a query string, turning serde's error into a problem that names the parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // Postgres stores no NUL character, so no parameter may hold one (`%00`).
    let nul: Vec<FieldError> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| FieldError::new(key, NUL_MESSAGE))
        .collect();
    if !nul.is_empty() {
        return Err(ApiError::invalid_fields(nul));
    }
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let mut error = field_error(&path, &err.into_inner().to_string());
        if error.field == "body" {
            error.field = "query".to_owned();
        }
        ApiError::invalid_fields(vec![error])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Range {
        time_min: DateTime<Utc>,
        limit: Option<u32>,
    }

    fn field_error_of(query: &str) -> (String, String) {
        match parse_query::<Range>(query).unwrap_err() {
            ApiError::Validation { errors, .. } => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_date_for_an_instant_is_named_with_the_forms_it_takes() {
        let (field, message) = field_error_of("time_min=2026-03-10");
        assert_eq!(field, "time_min");
        assert!(message.contains("2026-03-10T09:00:00Z"), "{message}");
    }

    #[test]
    fn a_parameter_holding_a_nul_is_named() {
        let (field, message) = field_error_of("time_min=2026-03-10T00:00:00Z&q=a%00b");
        assert_eq!(field, "q");
        assert!(message.contains("NUL"), "{message}");
    }

    #[test]
    fn a_missing_or_mistyped_parameter_is_named() {
        assert_eq!(field_error_of("limit=3").0, "time_min");
        let (field, message) = field_error_of("time_min=2026-03-10T00:00:00Z&limit=lots");
        assert_eq!(field, "limit");
        assert!(!message.contains("u32"), "{message}");
    }
}
