//! Validation of user-given text fields shared by the REST modules.

use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, FieldError};
use crate::http::NUL_MESSAGE;

/// Trims and bounds a user-given text; an empty one counts as absent.
pub fn bounded_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(value))
}

/// Like [`bounded_text`], for a field that must not be empty.
pub fn required_text(field: &str, value: String, max: usize) -> Result<String, FieldError> {
    bounded_text(field, Some(value), max)?
        .ok_or_else(|| FieldError::new(field, "must not be empty"))
}

/// A 422 naming the `body` when a text body (Markdown, iCalendar) holds a NUL byte, which no
/// Postgres text can store; the message gives its line.
pub fn storable_body(body: &[u8]) -> Result<(), ApiError> {
    let Some(at) = body.iter().position(|b| *b == 0) else {
        return Ok(());
    };
    let line = 1 + body[..at].iter().filter(|b| **b == b'\n').count();
    Err(ApiError::invalid_fields(vec![FieldError::new(
        "body",
        format!("{NUL_MESSAGE} (line {line})"),
    )]))
}

/// Collects the errors of several independently checked fields into one 422.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// The value, or `None` after recording its error.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }

    /// Records an error of `field`.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.0))
        }
    }
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_a_nul_byte_is_refused_naming_its_line() {
        assert!(storable_body(b"# Plan\n- a").is_ok());
        let Err(ApiError::Validation { errors, .. }) = storable_body(b"# Plan\n\n- a\0b") else {
            panic!("a NUL byte must be refused");
        };
        assert_eq!(errors[0].field, "body");
        assert!(
            errors[0].message.ends_with("(line 3)"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn text_is_trimmed_and_empty_text_is_absent() {
        assert_eq!(
            bounded_text("f", Some("  hi ".into()), 10)
                .unwrap()
                .as_deref(),
            Some("hi")
        );
        assert_eq!(bounded_text("f", Some("   ".into()), 10).unwrap(), None);
        assert!(required_text("f", " ".into(), 10).is_err());
    }

    #[test]
    fn text_over_the_bound_or_with_control_characters_is_refused() {
        assert!(bounded_text("f", Some("abcd".into()), 3).is_err());
        assert!(bounded_text("f", Some("a\u{7}b".into()), 10).is_err());
        assert!(bounded_text("f", Some("line\nnext".into()), 10).is_ok());
    }

    #[test]
    fn every_field_error_is_reported() {
        let mut errors = FieldErrors::default();
        assert_eq!(errors.check(Ok::<_, FieldError>(1)), Some(1));
        errors.check::<()>(Err(FieldError::new("a", "bad")));
        errors.check::<()>(Err(FieldError::new("b", "bad")));
        match errors.into_result().unwrap_err() {
            ApiError::Validation { errors, .. } => assert_eq!(errors.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
