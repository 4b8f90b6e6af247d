//! What the known block types' properties must hold when a block is written through REST.
//!
//! | type | property | holds |
//! |---|---|---|
//! | `heading` | `level` | a whole number 1–6 |
//! | `todo` | `checked` | `true` or `false` |
//! | `todo` | `due_at` | an RFC 3339 instant (`2026-03-10T09:00:00Z`) or a date (`2026-03-10`) |
//! | `code` | `language` | a name of 1–32 characters without spaces (`rust`, `c++`) |
//! | `image` | `url` | an `http://` or `https://` URL of at most 2,048 characters |
//!
//! Unknown types and unknown properties are kept as they are (ARCHITECTURE §2), and `null`
//! removes a property, so neither is checked. Documents edited by CRDT clients are never
//! refused: readers treat a value that breaks these rules as absent.

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};

/// Longest `code.language`.
pub const MAX_LANGUAGE_CHARS: usize = 32;
/// Longest `image.url`.
pub const MAX_URL_CHARS: usize = 2_048;

/// One property that breaks its type's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropProblem {
    /// The property's name (`level`).
    pub prop: String,
    /// What it must be, in the API's words.
    pub message: String,
}

/// Every property of `props` that breaks the rule of a block of type `kind`.
pub fn prop_problems(kind: &str, props: &Map<String, Value>) -> Vec<PropProblem> {
    props
        .iter()
        .filter(|(_, value)| !value.is_null())
        .filter_map(|(prop, value)| {
            let message = problem(kind, prop, value)?;
            Some(PropProblem {
                prop: prop.clone(),
                message: message.to_owned(),
            })
        })
        .collect()
}

fn problem(kind: &str, prop: &str, value: &Value) -> Option<&'static str> {
    let ok = match (kind, prop) {
        ("heading", "level") => value.as_u64().is_some_and(|level| (1..=6).contains(&level)),
        ("todo", "checked") => value.is_boolean(),
        ("todo", "due_at") => value.as_str().is_some_and(is_instant_or_date),
        ("code", "language") => value.as_str().is_some_and(is_language),
        ("image", "url") => value.as_str().is_some_and(is_web_url),
        _ => return None,
    };
    if ok {
        return None;
    }
    Some(match prop {
        "level" => "must be a whole number from 1 to 6",
        "checked" => "must be true or false",
        "due_at" => {
            "must be an RFC 3339 instant such as 2026-03-10T09:00:00Z or a date such as 2026-03-10"
        }
        "language" => "must be a language name of 1 to 32 characters without spaces",
        _ => "must be an http:// or https:// URL of at most 2048 characters",
    })
}

fn is_instant_or_date(text: &str) -> bool {
    DateTime::parse_from_rfc3339(text).is_ok()
        || NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn is_language(text: &str) -> bool {
    let chars = text.chars().count();
    (1..=MAX_LANGUAGE_CHARS).contains(&chars)
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_web_url(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    text.chars().count() <= MAX_URL_CHARS
        && !host.is_empty()
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(kind: &str, props: Value) -> Vec<String> {
        let Value::Object(props) = props else {
            panic!("props must be an object")
        };
        prop_problems(kind, &props)
            .into_iter()
            .map(|p| p.prop)
            .collect()
    }

    #[test]
    fn the_known_properties_of_known_types_are_checked() {
        assert_eq!(problems("heading", json!({ "level": 7 })), ["level"]);
        assert_eq!(problems("heading", json!({ "level": "1" })), ["level"]);
        assert!(problems("heading", json!({ "level": 6 })).is_empty());
        assert_eq!(problems("todo", json!({ "checked": "yes" })), ["checked"]);
        assert_eq!(
            problems("todo", json!({ "due_at": "tomorrow" })),
            ["due_at"]
        );
        assert!(problems("todo", json!({ "checked": true, "due_at": "2026-03-10" })).is_empty());
        assert!(problems("todo", json!({ "due_at": "2026-03-10T09:00:00+01:00" })).is_empty());
        assert_eq!(problems("code", json!({ "language": "a b" })), ["language"]);
        assert!(problems("code", json!({ "language": "c++" })).is_empty());
        assert_eq!(
            problems("image", json!({ "url": "javascript:alert(1)" })),
            ["url"]
        );
        assert_eq!(problems("image", json!({ "url": "https://" })), ["url"]);
        assert!(problems("image", json!({ "url": "https://example.org/a.png" })).is_empty());
    }

    #[test]
    fn every_broken_property_is_reported() {
        let mut found = problems("todo", json!({ "checked": 1, "due_at": 3 }));
        found.sort();
        assert_eq!(found, ["checked", "due_at"]);
    }

    #[test]
    fn unknown_types_unknown_properties_and_removals_pass() {
        assert!(problems("callout", json!({ "level": 99 })).is_empty());
        assert!(problems("heading", json!({ "colour": [1, 2] })).is_empty());
        assert!(problems("heading", json!({ "level": null })).is_empty());
    }
}
