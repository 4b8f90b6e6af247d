//! Content lines (RFC 5545 §3.1): unfolding, splitting into name, parameters and value,
//! `TEXT` escaping (§3.3.11), parameter quoting (with RFC 6868 `^` escapes), and folding
//! at 75 octets on output.
//!
//! Reading is tolerant: `LF` line ends as well as `CRLF`, a continuation may start with a
//! space or a tab, folding may split a UTF-8 character (lines are unfolded as bytes and only
//! then decoded), names are case-insensitive, and unknown `TEXT` escapes keep the escaped
//! character.

use crate::CalendarError;

use super::MAX_LINE_BYTES;

/// One unfolded line, still as bytes, with the physical line it started on (1-based).
#[derive(Debug)]
pub(crate) struct UnfoldedLine {
    pub(crate) number: usize,
    pub(crate) bytes: Vec<u8>,
}

/// Unfolds `input` into logical lines, dropping blank ones (also whitespace-only lines that
/// cannot continue anything). Fails when a logical line is longer than [`MAX_LINE_BYTES`].
pub(crate) fn unfold(input: &[u8]) -> Result<Vec<UnfoldedLine>, CalendarError> {
    let mut lines: Vec<UnfoldedLine> = Vec::new();
    for (index, raw) in input.split(|byte| *byte == b'\n').enumerate() {
        let physical = raw.strip_suffix(b"\r").unwrap_or(raw);
        let number = index + 1;
        let blank = physical.iter().all(|byte| matches!(byte, b' ' | b'\t'));
        match (physical.first(), lines.last_mut()) {
            (Some(b' ' | b'\t'), Some(current)) => current.bytes.extend_from_slice(&physical[1..]),
            _ if blank => continue,
            _ => lines.push(UnfoldedLine {
                number,
                bytes: physical.to_vec(),
            }),
        }
        if let Some(current) = lines.last() {
            if current.bytes.len() > MAX_LINE_BYTES {
                return Err(CalendarError::IcalLimitExceeded {
                    message: format!(
                        "line {}: the content line is longer than {MAX_LINE_BYTES} bytes once \
                         unfolded",
                        current.number
                    ),
                });
            }
        }
    }
    Ok(lines)
}

/// One parameter of a content line: its upper-cased name and its values, unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameter {
    pub(crate) name: String,
    pub(crate) values: Vec<String>,
}

/// A parsed content line: `NAME;PARAM=VALUE,VALUE;PARAM="QUOTED":value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentLine {
    /// The physical line the content line started on (1-based).
    pub(crate) line: usize,
    /// The property name, upper-cased.
    pub(crate) name: String,
    pub(crate) parameters: Vec<Parameter>,
    /// The raw value: not yet unescaped, since only `TEXT` values use `TEXT` escapes.
    pub(crate) value: String,
}

impl ContentLine {
    /// The first value of parameter `name` (upper case), if present.
    pub(crate) fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|parameter| parameter.name == name)
            .and_then(|parameter| parameter.values.first())
            .map(String::as_str)
    }

    /// True when parameter `name` has the value `value` (case-insensitive).
    pub(crate) fn parameter_is(&self, name: &str, value: &str) -> bool {
        self.parameter(name)
            .is_some_and(|given| given.trim().eq_ignore_ascii_case(value))
    }

    /// The value read as `TEXT`: escapes undone.
    pub(crate) fn text(&self) -> String {
        unescape_text(&self.value)
    }
}

/// Splits one unfolded line into name, parameters and value. The error is a message for the
/// sender; the caller adds the line number.
pub(crate) fn parse_content_line(line: usize, text: &str) -> Result<ContentLine, String> {
    let whole = || excerpt(text);
    let name_end = text
        .find([';', ':'])
        .ok_or_else(|| format!("`{}` is not a content line (NAME:value)", whole()))?;
    let name = &text[..name_end];
    if name.is_empty()
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(format!(
            "`{}` is not a content line: `{}` is not a property name",
            whole(),
            excerpt(name)
        ));
    }
    let mut parameters = Vec::new();
    let mut rest = &text[name_end..];
    while let Some(after_semicolon) = rest.strip_prefix(';') {
        let equals = after_semicolon.find('=').ok_or_else(|| {
            format!(
                "`{}`: a parameter has no `=` (expected NAME=value)",
                whole()
            )
        })?;
        let parameter_name = after_semicolon[..equals].trim();
        if parameter_name.is_empty() || parameter_name.contains([':', ';', '"']) {
            return Err(format!("`{}`: a parameter has no valid name", whole()));
        }
        let mut values = Vec::new();
        rest = &after_semicolon[equals + 1..];
        loop {
            let (value, after_value) = if let Some(quoted) = rest.strip_prefix('"') {
                let close = quoted.find('"').ok_or_else(|| {
                    format!(
                        "`{}`: the quoted value of parameter {parameter_name} is never closed",
                        whole()
                    )
                })?;
                (&quoted[..close], &quoted[close + 1..])
            } else {
                let end = rest.find([',', ';', ':']).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            values.push(decode_parameter_value(value));
            rest = after_value;
            match rest.strip_prefix(',') {
                Some(next) => rest = next,
                None => break,
            }
        }
        parameters.push(Parameter {
            name: parameter_name.to_ascii_uppercase(),
            values,
        });
    }
    let value = rest.strip_prefix(':').ok_or_else(|| {
        format!(
            "`{}`: expected `:` before the value of {}",
            whole(),
            name.to_ascii_uppercase()
        )
    })?;
    Ok(ContentLine {
        line,
        name: name.to_ascii_uppercase(),
        parameters,
        value: value.to_owned(),
    })
}

/// The first 60 characters of `text`, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    const SHOWN: usize = 60;
    let mut shown: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    shown
}

/// RFC 6868: `^n` is a newline, `^'` a double quote, `^^` a caret; any other `^` stays.
fn decode_parameter_value(value: &str) -> String {
    let mut decoded = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            match chars.peek() {
                Some('n' | 'N') => {
                    decoded.push('\n');
                    chars.next();
                }
                Some('\'') => {
                    decoded.push('"');
                    chars.next();
                }
                Some('^') => {
                    decoded.push('^');
                    chars.next();
                }
                _ => decoded.push('^'),
            }
        } else {
            decoded.push(c);
        }
    }
    decoded
}

/// Undoes `TEXT` escapes: `\\`, `\;`, `\,`, `\n`/`\N`; any other escaped character is kept
/// without its backslash, and a trailing lone backslash is kept.
pub(crate) fn unescape_text(value: &str) -> String {
    let mut text = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => text.push('\n'),
            Some(other) => text.push(other),
            None => text.push('\\'),
        }
    }
    text
}

/// Escapes a `TEXT` value: backslash, `;`, `,` and newlines (`CRLF`, `CR` and `LF` all
/// become `\n`); other control characters, which `TEXT` cannot hold, are dropped.
pub(crate) fn escape_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                escaped.push_str("\\n");
            }
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push('\t'),
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// Writes a parameter value: quoted when it holds `:`, `;` or `,`; a double quote, caret or
/// newline written with RFC 6868 escapes; other control characters dropped.
pub(crate) fn encode_parameter_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len() + 2);
    let mut needs_quotes = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '^' => encoded.push_str("^^"),
            '"' => encoded.push_str("^'"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                encoded.push_str("^n");
            }
            '\n' => encoded.push_str("^n"),
            ':' | ';' | ',' => {
                needs_quotes = true;
                encoded.push(c);
            }
            '\t' => encoded.push(c),
            c if c.is_control() => {}
            c => encoded.push(c),
        }
    }
    if needs_quotes {
        format!("\"{encoded}\"")
    } else {
        encoded
    }
}

/// Drops control characters from a value that has no escapes of its own (a URI).
pub(crate) fn strip_controls(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// Longest physical line, in octets, without its `CRLF` (RFC 5545 §3.1).
pub(crate) const FOLD_AT_OCTETS: usize = 75;

/// Appends `line` to `out` folded at [`FOLD_AT_OCTETS`] octets, never inside a UTF-8
/// character, each physical line ending in `CRLF` and each continuation starting with a space.
pub(crate) fn write_folded(out: &mut String, line: &str) {
    let mut rest = line;
    let mut room = FOLD_AT_OCTETS;
    loop {
        if rest.len() <= room {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        // The leading space of a continuation counts towards its 75 octets.
        room = FOLD_AT_OCTETS - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<(usize, String)> {
        unfold(input.as_bytes())
            .expect("unfolds")
            .into_iter()
            .map(|line| {
                (
                    line.number,
                    String::from_utf8(line.bytes).expect("valid UTF-8"),
                )
            })
            .collect()
    }

    #[test]
    fn unfolding_joins_continuations_after_crlf_or_lf_with_space_or_tab() {
        let lines = texts("  \r\nA:one\r\n two\r\n\tthree\nB:x\n\r\n\nC:y");
        assert_eq!(
            lines,
            [
                (2, "A:onetwothree".to_owned()),
                (5, "B:x".to_owned()),
                (8, "C:y".to_owned()),
            ]
        );
    }

    #[test]
    fn unfolding_rejoins_a_utf8_character_split_across_lines() {
        let bytes = "SUMMARY:caf\u{e9}".as_bytes();
        let (head, tail) = bytes.split_at(bytes.len() - 1);
        let mut input = head.to_vec();
        input.extend_from_slice(b"\r\n ");
        input.extend_from_slice(tail);
        let lines = unfold(&input).expect("unfolds");
        assert_eq!(lines[0].bytes, "SUMMARY:caf\u{e9}".as_bytes());
    }

    #[test]
    fn a_logical_line_over_the_limit_is_refused() {
        let mut input = String::from("DESCRIPTION:");
        for _ in 0..(MAX_LINE_BYTES / 70 + 2) {
            input.push_str(&"x".repeat(70));
            input.push_str("\r\n ");
        }
        let error = unfold(input.as_bytes()).expect_err("too long");
        assert_eq!(error.code(), "icalendar_limit_exceeded");
        assert!(error.to_string().contains("line 1"), "{error}");
    }

    #[test]
    fn parameters_with_quotes_lists_and_caret_escapes_are_split() {
        let line = parse_content_line(
            3,
            "attendee;CN=\"Doe, Jane\";MEMBER=\"mailto:a@x\",\"mailto:b@x\";X-NOTE=say ^'hi^' ^n ok:mailto:jane@example.com",
        )
        .expect("parses");
        assert_eq!(line.name, "ATTENDEE");
        assert_eq!(line.parameter("CN"), Some("Doe, Jane"));
        assert_eq!(
            line.parameters[1].values,
            ["mailto:a@x".to_owned(), "mailto:b@x".to_owned()]
        );
        assert_eq!(line.parameter("X-NOTE"), Some("say \"hi\" \n ok"));
        assert_eq!(line.value, "mailto:jane@example.com");
    }

    #[test]
    fn the_value_starts_at_the_first_colon_outside_quotes() {
        let line = parse_content_line(1, "DTSTART;TZID=\"a:b\":20240101T090000").expect("parses");
        assert_eq!(line.parameter("TZID"), Some("a:b"));
        assert_eq!(line.value, "20240101T090000");
        let line = parse_content_line(1, "URL:https://example.com/a:b").expect("parses");
        assert_eq!(line.value, "https://example.com/a:b");
    }

    #[test]
    fn malformed_content_lines_are_refused_with_a_message() {
        for text in [
            "just some words",
            "SUMMARY",
            "BAD NAME:x",
            ":value",
            "X;PARAM:value",
            "X;P=\"unclosed:value",
            "X;P:a=b",
        ] {
            let message = parse_content_line(1, text).expect_err(text);
            assert!(!message.is_empty());
        }
    }

    #[test]
    fn text_escapes_round_trip() {
        let original = "a\\b; c, d\nnext line";
        let escaped = escape_text(original);
        assert_eq!(escaped, "a\\\\b\\; c\\, d\\nnext line");
        assert_eq!(unescape_text(&escaped), original);
        assert_eq!(unescape_text("x\\Ny\\:z\\"), "x\ny:z\\");
        assert_eq!(escape_text("one\r\ntwo\rthree\u{7}"), "one\\ntwo\\nthree");
    }

    #[test]
    fn parameter_values_are_quoted_only_when_needed() {
        assert_eq!(encode_parameter_value("Jane Doe"), "Jane Doe");
        assert_eq!(encode_parameter_value("Doe, Jane"), "\"Doe, Jane\"");
        assert_eq!(encode_parameter_value("say \"hi\"^"), "say ^'hi^'^^");
    }

    #[test]
    fn folding_keeps_every_physical_line_within_75_octets_and_characters_whole() {
        let line = format!("SUMMARY:{}", "h\u{e9}llo w\u{f6}rld \u{1f600} ".repeat(20));
        let mut out = String::new();
        write_folded(&mut out, &line);
        let physical: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(physical.len() > 1);
        for (index, part) in physical.iter().enumerate() {
            assert!(part.len() <= FOLD_AT_OCTETS, "{} octets", part.len());
            if index > 0 {
                assert!(part.starts_with(' '));
            }
        }
        let unfolded = texts(&out);
        assert_eq!(unfolded, [(1, line)]);
    }
}
