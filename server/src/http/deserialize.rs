//! What a client reads when a body, query or path does not deserialize: the field it concerns
//! and a message in the API's words, never a Rust type name or a parser's internals.

use crate::error::FieldError;

/// The field a serde error concerns and what is wrong with it, from the error's path (as
/// `serde_path_to_error` writes it) and message.
pub fn field_error(path: &str, message: &str) -> FieldError {
    FieldError::new(field_of(path, message), product_message(message))
}

/// For a missing field serde reports the parent path and names the field in the message; for
/// an unknown field the path already ends with it.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => "body".to_owned(),
        (None, path) => path.to_owned(),
    }
}

/// chrono's parse errors, which say nothing of the form expected.
const TIME_PARSE_ERRORS: [&str; 7] = [
    "input is out of range",
    "no possible date and time matching input",
    "input is not enough for unique date and time",
    "input contains invalid characters",
    "premature end of input",
    "trailing input",
    "bad or unsupported format string",
];

const TIME_FORMS: &str =
    "is not a valid time: write an instant as 2026-03-10T09:00:00Z (RFC 3339) and a date as 2026-03-10";
const ID_FORM: &str = "must be an id (a UUID such as 0190e0c4-8f3a-7cc2-9b4e-1d2f3a4b5c6d)";

/// Rust's names for what serde expected, in the API's words.
const EXPECTED_NAMES: [(&str, &str); 17] = [
    ("u8", "a whole number of 0 or more"),
    ("u16", "a whole number of 0 or more"),
    ("u32", "a whole number of 0 or more"),
    ("u64", "a whole number of 0 or more"),
    ("usize", "a whole number of 0 or more"),
    ("i8", "a whole number"),
    ("i16", "a whole number"),
    ("i32", "a whole number"),
    ("i64", "a whole number"),
    ("isize", "a whole number"),
    ("f32", "a number"),
    ("f64", "a number"),
    ("a sequence", "a list"),
    ("a map", "an object"),
    ("unit", "null"),
    ("a borrowed string", "a string"),
    ("char", "a single character"),
];

/// A serde message rewritten for a client: time and id parse errors say which form is
/// expected, Rust type names become JSON words, positions ("at line 1 column 7") go.
pub fn product_message(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    if TIME_PARSE_ERRORS.contains(&message) {
        return TIME_FORMS.to_owned();
    }
    if message.starts_with("UUID parsing failed")
        || message.contains("urn:uuid:")
        || message.starts_with("invalid length: expected length 32")
        || message.starts_with("invalid group")
    {
        return ID_FORM.to_owned();
    }
    let Some((before, expected)) = message.split_once(", expected ") else {
        return message.to_owned();
    };
    let expected = if let Some(name) = expected.strip_prefix("struct ") {
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            "an object"
        } else {
            expected
        }
    } else {
        EXPECTED_NAMES
            .iter()
            .find(|(rust, _)| *rust == expected)
            .map_or(expected, |(_, words)| words)
    };
    format!("{before}, expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_time_names_the_forms_it_takes() {
        assert_eq!(product_message("premature end of input"), TIME_FORMS);
    }

    #[test]
    fn a_bad_id_says_it_must_be_a_uuid() {
        assert_eq!(
            product_message(
                "UUID parsing failed: invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `n` at 1"
            ),
            ID_FORM
        );
    }

    #[test]
    fn rust_type_names_become_json_words() {
        assert_eq!(
            product_message("invalid type: string \"x\", expected u32"),
            "invalid type: string \"x\", expected a whole number of 0 or more"
        );
        assert_eq!(
            product_message("invalid type: integer `3`, expected struct Nested at line 1 column 9"),
            "invalid type: integer `3`, expected an object"
        );
        assert_eq!(
            product_message("invalid type: string \"yes\", expected a boolean"),
            "invalid type: string \"yes\", expected a boolean"
        );
    }

    #[test]
    fn a_missing_field_is_named_under_its_parent() {
        assert_eq!(field_error(".", "missing field `email`").field, "email");
        assert_eq!(
            field_error("nested", "missing field `flag`").field,
            "nested.flag"
        );
    }
}
