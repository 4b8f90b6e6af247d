//! `ApiJson<T>`: a JSON body extractor whose every rejection is a problem response that names
//! the offending field, and a JSON response wrapper.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use super::deserialize::{field_error, product_message};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// A JSON request body (or response). Rejections: 415 without a JSON content type, 413 over the
/// body limit, 400 for malformed JSON, 422 naming the field for wrong types, missing or unknown
/// fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType {
                detail: "expected a request body with `Content-Type: application/json`".into(),
            });
        }
        let limit = state.settings.http.body_limit_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Most fields one problem names; past that a body is more wrong than a list helps with.
const MAX_FIELD_ERRORS: usize = 20;

/// Parses a JSON body, turning serde's errors into a problem that names every wrong field.
///
/// serde stops at the first error, so the body is read as a JSON value and deserialized again
/// without each field that was wrong, until it goes through. A required field removed that
/// way is then missing: the object holding it goes too, and when that cannot be done the list
/// ends. A field inside an array is the last one named (indices would shift).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|err| describe_json_error(".", err))?;
    refuse_nul(bytes, &value)?;
    let first = match serde_path_to_error::deserialize::<_, T>(&value) {
        Ok(parsed) => return Ok(parsed),
        Err(err) => err,
    };
    let mut errors = Vec::new();
    let mut next = Some(first);
    while let Some(err) = next.take() {
        let error = field_error(&err.path().to_string(), &err.inner().to_string());
        if errors.iter().any(|e: &FieldError| e.field == error.field) {
            // A field named already is now missing: without the object that holds it (when
            // that one is optional) the rest of the body can still be checked.
            if !remove_at(&mut value, err.path()) {
                break;
            }
        } else {
            errors.push(error);
            if errors.len() == MAX_FIELD_ERRORS || !remove_at(&mut value, err.path()) {
                break;
            }
        }
        next = serde_path_to_error::deserialize::<_, T>(&value).err();
    }
    Err(ApiError::invalid_fields(errors))
}

/// What a field holding a NUL character is told.
pub const NUL_MESSAGE: &str =
    "must not contain the NUL character (\\u0000), which cannot be stored";

/// A 422 naming every string (value or key) of the body that holds a NUL character: Postgres
/// stores neither text nor JSON with one, so no route could keep it.
fn refuse_nul(bytes: &[u8], value: &Value) -> Result<(), ApiError> {
    // In JSON text a NUL can only be written `\u0000`; most bodies skip the walk.
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let mut fields = Vec::new();
    nul_fields(value, String::new(), &mut fields);
    if fields.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields(
        fields
            .into_iter()
            .take(MAX_FIELD_ERRORS)
            .map(|field| FieldError::new(&field, NUL_MESSAGE))
            .collect(),
    ))
}

/// The paths (`props.note`, `runs[2].text`) of the strings under `value` that hold a NUL.
fn nul_fields(value: &Value, path: String, fields: &mut Vec<String>) {
    let field = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => fields.push(field(&path)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                nul_fields(item, format!("{path}[{index}]"), fields);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.contains('\0') {
                    fields.push(field(&inner));
                } else {
                    nul_fields(item, inner, fields);
                }
            }
        }
        _ => {}
    }
}

/// Removes the object key `path` ends with; false when the path does not end in one (the
/// body itself, an array element, an enum variant).
fn remove_at(value: &mut Value, path: &Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = value;
    for segment in parents {
        current = match (segment, current) {
            (Segment::Map { key }, Value::Object(map)) => match map.get_mut(key) {
                Some(inner) => inner,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        Value::Object(map) => map.remove(key).is_some(),
        _ => false,
    }
}

fn describe_json_error(path: &str, err: serde_json::Error) -> ApiError {
    let message = product_message(&err.to_string());
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
            "malformed_json",
            format!("request body is not valid JSON: {message}"),
        ),
        Category::Data => ApiError::invalid_fields(vec![field_error(path, &err.to_string())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        age: u32,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        flag: bool,
    }

    fn field_error(json: &str) -> (String, String) {
        match parse_json::<Body>(json.as_bytes()).unwrap_err() {
            ApiError::Validation { errors, .. } => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        assert_eq!(field_error(r#"{"age": 3}"#).0, "email");
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        assert_eq!(field_error(r#"{"email": "a", "age": "x"}"#).0, "age");
        assert_eq!(
            field_error(r#"{"email": "a", "age": 1, "nested": {"flag": 3}}"#).0,
            "nested.flag"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        assert_eq!(
            field_error(r#"{"email": "a", "age": 1, "role": "x"}"#).0,
            "role"
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let err = parse_json::<Body>(b"{\"email\": ").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn trailing_garbage_is_a_bad_request() {
        let err = parse_json::<Body>(br#"{"email": "a", "age": 1} x"#).unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn every_wrong_field_is_named_not_only_the_first() {
        let err = parse_json::<Body>(br#"{"email": 3, "age": "old", "role": "x"}"#).unwrap_err();
        let ApiError::Validation { errors, .. } = err else {
            panic!("expected a validation error")
        };
        let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["age", "email", "role"]);
    }

    #[test]
    fn a_nested_wrong_field_and_a_missing_one_are_both_named() {
        let err = parse_json::<Body>(br#"{"age": 1, "nested": {"flag": 3}}"#).unwrap_err();
        let ApiError::Validation { errors, .. } = err else {
            panic!("expected a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["nested.flag", "email"]);
    }

    #[test]
    fn messages_do_not_carry_line_and_column() {
        assert!(!field_error(r#"{"age": 3}"#).1.contains("line"));
    }

    fn fields_of(json: &str) -> Vec<String> {
        match parse_json::<Value>(json.as_bytes()).unwrap_err() {
            ApiError::Validation { errors, .. } => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn every_string_holding_a_nul_is_named_by_its_path() {
        assert_eq!(
            fields_of(
                r#"{"text": "a\u0000b", "props": {"note": "\u0000", "ok": "x"}, "runs": [{"text": "y"}, {"text": "\u0000"}]}"#
            ),
            ["props.note", "runs[1].text", "text"]
        );
    }

    #[test]
    fn a_key_holding_a_nul_is_named_and_a_bare_string_is_the_body() {
        assert_eq!(fields_of(r#"{"props": {"a\u0000": 1}}"#), ["props.a\u{0}"]);
        assert_eq!(fields_of(r#""\u0000""#), ["body"]);
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_not_a_nul() {
        let value: Value = parse_json(br#"{"text": "C:\\u0000"}"#).unwrap();
        assert_eq!(value["text"], "C:\\u0000");
    }
}
