//! A Server-Sent Events decoder (the subset providers use: `data:` fields, comments, blank-line
//! dispatch), fed with byte chunks split anywhere — inside a line, inside a UTF-8 character,
//! between the `\r` and `\n` of a line ending.
//!
//! Only `data` matters to the providers; `event`, `id` and `retry` fields are read and ignored.

/// Decodes a byte stream into the `data` of each event (multi-line data joined with `\n`).
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The data lines of the event being assembled.
    data: Option<String>,
    /// The previous chunk ended with `\r`: a `\n` opening the next one belongs to that ending.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            let ending = rest[end];
            rest = &rest[end + 1..];
            if ending == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.take_line(&line) {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// Whether bytes of an unfinished event are buffered (a stream ending now was cut).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.data.is_some()
    }

    fn take_line(&mut self, line: &[u8]) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        if line.first() == Some(&b':') {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            events.extend(decoder.feed(chunk));
        }
        events
    }

    #[test]
    fn events_are_the_same_whatever_the_chunk_boundaries() {
        let input = "data: {\"a\":1}\r\n\r\n: keep-alive\r\n\r\nevent: x\r\ndata: é€😀\r\n\r\ndata: [DONE]\r\n\r\n";
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(input.as_bytes(), piece),
                vec!["{\"a\":1}", "é€😀", "[DONE]"],
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn lf_and_lone_cr_line_endings_are_accepted() {
        assert_eq!(
            decode_in_pieces(b"data: one\n\ndata: two\r\rdata: three\n\n", 3),
            vec!["one", "two", "three"]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(
            decode_in_pieces(b"data: {\"a\":\ndata: 1}\n\n", 100),
            vec!["{\"a\":\n1}"]
        );
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        assert_eq!(
            decode_in_pieces(b": hello\nid: 7\nretry: 100\nevent: message\n\n", 5),
            Vec::<String>::new()
        );
    }

    #[test]
    fn data_without_a_space_or_value_is_kept() {
        assert_eq!(decode_in_pieces(b"data:x\n\ndata\n\n", 2), vec!["x", ""]);
    }

    #[test]
    fn an_unterminated_event_is_partial() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.feed(b"data: {\"cut\":").is_empty());
        assert!(decoder.has_partial_event());
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.feed(b"data: 1\n\n"), vec!["1"]);
        assert!(!decoder.has_partial_event());
    }
}
