//! Text helpers the pipeline's calls share: flattening what goes into a prompt or a row, and
//! reading a model's JSON answer.

use serde::Deserialize;

/// One line without control characters (NUL included), at most `max_chars` characters, with
/// `…` when cut: for prompts, where the model should see that text was left out.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut line = flat(text, max_chars.saturating_add(1));
    if line.chars().count() > max_chars {
        line = line.chars().take(max_chars).collect();
        line.push('…');
    }
    line
}

/// One line without control characters (NUL included), at most `max_chars` characters, cut
/// without a marker: for stored rows, whose own text (a trailing `…` included) is kept as it is.
pub fn flat(text: &str, max_chars: usize) -> String {
    text.split_whitespace()
        .flat_map(|word| std::iter::once(' ').chain(word.chars()))
        .skip(1)
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
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
        assert_eq!(one_line("abc", 3), "abc");
    }

    #[test]
    fn a_flat_line_is_cut_without_a_marker_and_keeps_its_own_ellipsis() {
        assert_eq!(flat("a\u{0}b\n  c", 10), "ab c");
        assert_eq!(flat("abcdef", 3), "abc");
        assert_eq!(flat("wait for it…", 40), "wait for it…");
    }

    #[test]
    fn json_parses_with_or_without_a_fence() {
        let fenced: Option<serde_json::Value> = parse_json("```json\n{\"a\":1}\n```");
        assert_eq!(fenced, Some(serde_json::json!({"a": 1})));
        assert!(parse_json::<serde_json::Value>("not json").is_none());
    }
}
