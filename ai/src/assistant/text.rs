//! Text helpers the pipeline's calls share: flattening what goes into a prompt or a row, and
//! reading a model's JSON answer.

use serde::Deserialize;

/// One line without control characters (NUL included), at most `max_chars` characters, with
/// `…` when cut.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let mut cut: String = flat.chars().take(max_chars).collect();
        cut.push('…');
        cut
    }
}

/// A model's JSON answer, with or without a Markdown code fence around it; `None` for anything
/// that is not `T`.
pub fn parse_json<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    let trimmed = text.trim();
    let json = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(json.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_flat_clean_and_cut_with_an_ellipsis() {
        assert_eq!(one_line("a\u{0}b\n  c", 10), "ab c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn json_parses_with_or_without_a_fence() {
        let fenced: Option<serde_json::Value> = parse_json("```json\n{\"a\":1}\n```");
        assert_eq!(fenced, Some(serde_json::json!({"a": 1})));
        assert!(parse_json::<serde_json::Value>("not json").is_none());
    }
}
