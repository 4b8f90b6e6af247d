//! Markdown import and export of a canvas (ARCHITECTURE §2), without I/O: a canvas rendered
//! as CommonMark (with GitHub's `~~strike~~` and `- [ ]` task items), and Markdown parsed into
//! blocks and written into a document through [`schema::insert_block`].
//!
//! # Export
//!
//! [`to_markdown`] writes the canvas title as a level-1 heading (`# title`, only when the title
//! is not empty) followed by the blocks; [`blocks_to_markdown`] writes the blocks alone. Blocks
//! are separated by a blank line, consecutive list items by a single line break.
//!
//! | block `type` | Markdown |
//! |---|---|
//! | `heading` (`props.level` 1–6, default 1) | `## text` |
//! | `paragraph` | `text` |
//! | `bullet` / `numbered` / `todo` (`props.checked`) | `- text` / `1. text` / `- [ ] text`, `- [x] text` |
//! | `quote` | `> text` |
//! | `code` (`props.language`) | a fenced block: ```` ```rust ```` |
//! | `divider` | `---` |
//! | `image` (`props.url`) | `![text](url)` |
//! | any other type | a paragraph of its text |
//!
//! Children of list items and quotes are nested inside them (indented under the item, or
//! inside the `>`); Markdown has no nesting for the other types, so their children follow them
//! at their own level. Numbered items are numbered 1, 2, 3… along each run of consecutive
//! numbered siblings.
//!
//! The rich text delta gives the inline formatting: the attributes `bold` → `**`, `italic` →
//! `_`, `strike` → `~~`, `code` → `` ` `` and `link` (the URL) → `[text](url)`. An attribute
//! counts when its value is truthy (`true`, a non-empty string or object); a link also reads
//! `{"href": …}`. A line break in the text is a hard break (`\` at the end of the line;
//! `&#10;` when it ends the text).
//!
//! Plain text is escaped so that it reads back as the same text: `\`, `` ` ``, `*`, `_` (not
//! between two letters or digits), `~`, `[`, `]`, `<`, `&` (when it would start an entity),
//! `!` (before a link), and at the start of a line `#`, `>`, `-`, `+`, `=` and the `.` or `)` of
//! an ordered-list number; spaces and tabs at the start or end of a line are written as
//! `&#32;` / `&#9;` so that they are not trimmed. Where a delimiter would touch whitespace, or
//! stand between a word character and punctuation (where CommonMark would not take it as a
//! delimiter), that neighbour is written as a numeric entity (`&#97;`), which reads back as
//! the same character. Every block's inline Markdown is parsed back before it is used; in the
//! rare case it does not read back as the same runs, the block's text is written without
//! formatting, so the text itself always survives.
//!
//! # Import
//!
//! [`from_markdown`] parses Markdown into a tree of [`ImportedBlock`]s; [`import_markdown`]
//! inserts that tree at a position of a document and returns the new ids. The mapping is the
//! table above read backwards: headings, paragraphs, list items (task items are `todo` with
//! `checked`, items of ordered lists `numbered`, the others `bullet`), block quotes, fenced and
//! indented code (the info string's first word is the `language`), thematic breaks, and a
//! paragraph holding one image alone (`image` with `url`). The first paragraph of a list item or
//! quote is its text; whatever follows inside it becomes its children. Raw HTML is kept as text.
//! Soft line breaks read as a space, hard breaks (and `<br>`) as a line break. The inline
//! formatting is written as Y.Text attributes with the names above (`true`, and the URL for
//! `link`), the way the export reads them. Input over [`MAX_MARKDOWN_BYTES`], with more than
//! [`MAX_BLOCKS`] blocks or nested deeper than [`MAX_DEPTH`] is refused with a
//! [`MarkdownError`].
//!
//! # What is lossy
//!
//! Exporting a canvas and importing the Markdown again gives the same blocks, except: the ids
//! and order keys are new; children of blocks other than list items and quotes come back as
//! their following siblings; empty paragraphs, and blocks of unknown types with no text, are
//! left out; props other than those in the table are dropped; attributes other than the five
//! above are dropped, formatting of whitespace at the edge of bold, italic, strike or a link is
//! dropped, and so is all formatting of a block in the rare case above; line breaks in headings
//! become spaces and line breaks in inline code end the code; embeds in the text are left out;
//! the start number of an ordered list, link titles, tables (read as text) and images inside a
//! text (only their alt text stays) are not kept. Markdown that went through one import and
//! export comes back identical from the next round trip.

use std::collections::HashMap;
use std::sync::Arc;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::Value;
use yrs::types::Attrs;
use yrs::{Any, Map, Out, ReadTxn, Text, TransactionMut};

use crate::schema::{self, Block, Position, SchemaError};

/// The largest Markdown document [`from_markdown`] accepts, in bytes.
pub const MAX_MARKDOWN_BYTES: usize = 1 << 20;
/// The most blocks one Markdown document may become.
pub const MAX_BLOCKS: usize = 10_000;
/// The deepest nesting of lists and quotes accepted (the deepest any write may nest blocks).
pub const MAX_DEPTH: usize = schema::MAX_DEPTH;

/// Text attribute: bold.
pub const BOLD: &str = "bold";
/// Text attribute: italic.
pub const ITALIC: &str = "italic";
/// Text attribute: inline code.
pub const CODE: &str = "code";
/// Text attribute: strikethrough.
pub const STRIKE: &str = "strike";
/// Text attribute: a link, its value the URL.
pub const LINK: &str = "link";

/// Why Markdown was refused. A refused import changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MarkdownError {
    /// The input is larger than [`MAX_MARKDOWN_BYTES`].
    #[error("markdown of {size} bytes is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The input makes more than [`MAX_BLOCKS`] blocks.
    #[error("markdown makes more than {limit} blocks")]
    TooManyBlocks { limit: usize },
    /// Lists and quotes nested deeper than [`MAX_DEPTH`].
    #[error("markdown nests lists and quotes deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// The blocks could not be inserted (an unknown parent, an anchor that is not a sibling…).
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The inline formatting of a run of text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Marks {
    pub bold: bool,
    pub italic: bool,
    pub code: bool,
    pub strike: bool,
    /// The link URL, if the run is a link.
    pub link: Option<String>,
}

impl Marks {
    /// Whether the run has no formatting.
    pub fn is_plain(&self) -> bool {
        *self == Marks::default()
    }

    /// The marks as Y.Text attributes (only those set).
    pub fn to_attrs(&self) -> Attrs {
        let mut attrs = Attrs::new();
        for (set, name) in [
            (self.bold, BOLD),
            (self.italic, ITALIC),
            (self.code, CODE),
            (self.strike, STRIKE),
        ] {
            if set {
                attrs.insert(Arc::from(name), Any::Bool(true));
            }
        }
        if let Some(link) = &self.link {
            attrs.insert(Arc::from(LINK), Any::from(link.as_str()));
        }
        attrs
    }

    /// The marks of a delta chunk's `attributes`.
    pub fn from_attributes(attributes: Option<&serde_json::Map<String, Value>>) -> Self {
        let Some(attributes) = attributes else {
            return Marks::default();
        };
        let flag = |name: &str| attributes.get(name).is_some_and(truthy);
        let link = attributes.get(LINK).and_then(|link| match link {
            Value::String(url) if !url.is_empty() => Some(url.clone()),
            Value::Object(object) => object
                .get("href")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        });
        Marks {
            bold: flag(BOLD),
            italic: flag(ITALIC),
            code: flag(CODE),
            strike: flag(STRIKE) || flag("strikethrough"),
            link,
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(value) => *value,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(value) => !value.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A run of text with one set of marks; the spans of a block concatenate to its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub text: String,
    pub marks: Marks,
}

/// A block parsed from Markdown, with its children.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedBlock {
    /// The block type (`paragraph`, `heading`, `bullet`, …).
    pub kind: String,
    /// The plain text.
    pub text: String,
    /// The text with its inline formatting.
    pub spans: Vec<Span>,
    /// The block properties (`level`, `checked`, `language`, `url`).
    pub props: serde_json::Map<String, Value>,
    pub children: Vec<ImportedBlock>,
}

impl ImportedBlock {
    fn new(kind: &str) -> Self {
        ImportedBlock {
            kind: kind.to_owned(),
            text: String::new(),
            spans: Vec::new(),
            props: serde_json::Map::new(),
            children: Vec::new(),
        }
    }

    fn set_spans(&mut self, spans: Vec<Span>) {
        self.text = spans.iter().map(|span| span.text.as_str()).collect();
        self.spans = spans;
    }
}

/// Takes the title off blocks parsed from [`to_markdown`]'s output: when the first block is a
/// level-1 heading without children, removes it and returns its text.
pub fn split_title(blocks: &mut Vec<ImportedBlock>) -> Option<String> {
    let first = blocks.first()?;
    let is_title = first.kind == "heading"
        && first.props.get("level").and_then(Value::as_u64) == Some(1)
        && first.children.is_empty();
    if is_title {
        Some(blocks.remove(0).text)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Export

/// The canvas as Markdown: `# title` when the title is not empty, then the blocks.
pub fn to_markdown<T: ReadTxn>(txn: &T) -> String {
    let meta = schema::read_meta(txn);
    let body = blocks_to_markdown(&schema::read_blocks(txn));
    if meta.title.is_empty() {
        return body;
    }
    let mut out = heading_line(1, &meta.title);
    out.push('\n');
    if !body.is_empty() {
        out.push('\n');
        out.push_str(&body);
    }
    out
}

/// Blocks as Markdown, in the order [`schema::read_blocks`] gives them (depth-first, every
/// block after its parent); a block whose parent is not before it is shown at the top level.
pub fn blocks_to_markdown(blocks: &[Block]) -> String {
    let parents = shown_parents(blocks);
    let count = blocks.len();
    // The nearest list item or quote above each block: the block's lines go inside it.
    let mut container: Vec<Option<usize>> = vec![None; count];
    // The prefix of the lines of each container's children.
    let mut child_prefix: Vec<String> = vec![String::new(); count];
    // Per container (None = top level): the number of the last numbered item of the current
    // run of consecutive numbered siblings, 0 after any other block.
    let mut numbering: HashMap<Option<usize>, u64> = HashMap::new();
    let mut previous: Option<usize> = None;
    let mut out = String::new();
    for (index, block) in blocks.iter().enumerate() {
        let holder = parents[index].and_then(|parent| {
            if is_container(&blocks[parent].kind) {
                Some(parent)
            } else {
                container[parent]
            }
        });
        container[index] = holder;
        let prefix = holder
            .map(|holder| child_prefix[holder].clone())
            .unwrap_or_default();
        let number = numbering.entry(holder).or_insert(0);
        let own = render_block(block, number);
        if is_container(&block.kind) {
            child_prefix[index] = format!("{prefix}{}", own.continuation);
        }
        if own.lines.is_empty() {
            continue;
        }
        if let Some(previous) = previous {
            out.push('\n');
            if !tight(blocks, &container, previous, index) {
                out.push_str(prefix.trim_end());
                out.push('\n');
            }
        }
        for (i, line) in own.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if line.is_empty() {
                out.push_str(prefix.trim_end());
            } else {
                out.push_str(&prefix);
                out.push_str(line);
            }
        }
        previous = Some(index);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The index of each block's parent among the blocks, when the parent comes before it on the
/// current depth-first path; `None` (top level) otherwise.
fn shown_parents(blocks: &[Block]) -> Vec<Option<usize>> {
    let mut path: Vec<usize> = Vec::new();
    let mut parents = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        let found = block.parent.as_deref().and_then(|parent| {
            path.iter()
                .rposition(|&ancestor| blocks[ancestor].id == parent)
        });
        match found {
            Some(position) => path.truncate(position + 1),
            None => path.clear(),
        }
        parents.push(path.last().copied());
        path.push(index);
    }
    parents
}

fn is_list_item(kind: &str) -> bool {
    matches!(kind, "bullet" | "numbered" | "todo")
}

fn is_container(kind: &str) -> bool {
    is_list_item(kind) || kind == "quote"
}

/// Whether `next` follows `previous` with a single line break: both are list items and only
/// list items stand between `previous` and the container of `next`.
fn tight(blocks: &[Block], container: &[Option<usize>], previous: usize, next: usize) -> bool {
    if !is_list_item(&blocks[previous].kind) || !is_list_item(&blocks[next].kind) {
        return false;
    }
    let target = container[next];
    let mut current = Some(previous);
    loop {
        if current == target {
            return true;
        }
        match current {
            Some(block) if is_list_item(&blocks[block].kind) => current = container[block],
            _ => return false,
        }
    }
}

/// A block's own lines, without the prefix of its containers.
struct Rendered {
    lines: Vec<String>,
    /// What the lines of its children start with (list items and quotes).
    continuation: String,
}

fn render_block(block: &Block, number: &mut u64) -> Rendered {
    let kind = block.kind.as_str();
    if kind == "numbered" {
        *number += 1;
    } else {
        *number = 0;
    }
    let (marker, continuation) = match kind {
        "bullet" => ("- ".to_owned(), "  ".to_owned()),
        "todo" => {
            let marker = if block.props.get("checked").is_some_and(truthy) {
                "- [x] "
            } else {
                "- [ ] "
            };
            (marker.to_owned(), "  ".to_owned())
        }
        "numbered" => {
            let marker = format!("{number}. ");
            let width = marker.len();
            (marker, " ".repeat(width))
        }
        "quote" => ("> ".to_owned(), "> ".to_owned()),
        _ => (String::new(), String::new()),
    };
    let lines = match kind {
        "heading" => {
            let level = block
                .props
                .get("level")
                .and_then(|level| match level {
                    Value::Number(number) => number.as_f64(),
                    Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                })
                .map_or(1, |level| level.clamp(1.0, 6.0) as usize);
            vec![heading_line(level, &block.text)]
        }
        "code" => code_lines(block),
        "divider" => vec!["---".to_owned()],
        "image" => match block.props.get("url").and_then(Value::as_str) {
            Some(url) if !url.is_empty() => {
                let alt = inline_markdown(&[(block.text.clone(), Marks::default())]);
                vec![format!(
                    "![{}]({})",
                    alt.replace('\n', " "),
                    destination(url)
                )]
            }
            _ => text_lines(block, &marker, &continuation),
        },
        _ => text_lines(block, &marker, &continuation),
    };
    Rendered {
        lines,
        continuation,
    }
}

/// The lines of a text block (paragraph, list item, quote, unknown type); none for an empty
/// paragraph.
fn text_lines(block: &Block, marker: &str, continuation: &str) -> Vec<String> {
    let inline = inline_markdown(&delta_runs(block));
    if inline.is_empty() {
        return if marker.is_empty() {
            Vec::new()
        } else {
            vec![marker.trim_end().to_owned()]
        };
    }
    inline
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            let lead = if i == 0 { marker } else { continuation };
            format!("{lead}{line}")
        })
        .collect()
}

fn heading_line(level: usize, text: &str) -> String {
    let hashes = "#".repeat(level);
    let flat = text.replace(['\n', '\r'], " ");
    let mut inline = inline_markdown(&[(flat, Marks::default())]);
    if inline.ends_with('#') {
        inline.insert(inline.len() - 1, '\\');
    }
    if inline.is_empty() {
        hashes
    } else {
        format!("{hashes} {inline}")
    }
}

fn code_lines(block: &Block) -> Vec<String> {
    let language = block
        .props
        .get("language")
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace(['\n', '\r'], " ");
    let language = language.trim();
    let text = block.text.replace("\r\n", "\n").replace('\r', "\n");
    let fence_char = if language.contains('`') { '~' } else { '`' };
    let longest = longest_run(&text, fence_char);
    let fence: String = std::iter::repeat_n(fence_char, (longest + 1).max(3)).collect();
    let mut lines = vec![format!("{fence}{language}")];
    if !text.is_empty() {
        lines.extend(text.split('\n').map(str::to_owned));
    }
    lines.push(fence);
    lines
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c == wanted {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// A block's text as runs of (text, marks), from its delta (embeds left out).
fn delta_runs(block: &Block) -> Vec<(String, Marks)> {
    let runs: Vec<(String, Marks)> = match &block.rich {
        Value::Array(ops) => ops
            .iter()
            .filter_map(|op| {
                let insert = op.get("insert")?.as_str()?;
                let marks = Marks::from_attributes(op.get("attributes").and_then(Value::as_object));
                Some((insert.to_owned(), marks))
            })
            .collect(),
        _ => Vec::new(),
    };
    if runs.is_empty() && !block.text.is_empty() {
        return vec![(block.text.clone(), Marks::default())];
    }
    runs
}

/// Inline Markdown of formatted runs; `\n` in the result are line breaks of the Markdown.
///
/// The result is parsed back and compared with the runs; where the delimiters could not say
/// what the runs mean (formatting that starts or ends inside a word next to punctuation, in
/// some combinations), the text is written without formatting instead, so the text itself
/// always reads back unchanged.
fn inline_markdown(runs: &[(String, Marks)]) -> String {
    let segments = normalize(runs);
    let formatted = write_inline(&segments);
    if reads_back_as(&formatted, &segments) {
        return formatted;
    }
    let text: String = segments.iter().map(|(text, _)| text.as_str()).collect();
    write_inline(&[(text, Marks::default())])
}

/// Whether `markdown` parses as one paragraph with exactly these runs (or as nothing, for none).
fn reads_back_as(markdown: &str, segments: &[(String, Marks)]) -> bool {
    let Ok(blocks) = from_markdown(markdown) else {
        return false;
    };
    match blocks.as_slice() {
        [] => segments.is_empty(),
        [block] => {
            block.kind == "paragraph"
                && block.children.is_empty()
                && block.spans.len() == segments.len()
                && block
                    .spans
                    .iter()
                    .zip(segments)
                    .all(|(span, (text, marks))| span.text == *text && span.marks == *marks)
        }
        _ => false,
    }
}

fn write_inline(segments: &[(String, Marks)]) -> String {
    let mut writer = InlineWriter::default();
    for (i, (text, marks)) in segments.iter().enumerate() {
        writer.transition(segments, i);
        let next_is_link = segments
            .get(i + 1)
            .is_some_and(|(_, next)| next.link.is_some() && next.link != marks.link);
        let following = segments
            .get(i + 1)
            .and_then(|(text, _)| text.chars().next());
        if marks.code {
            writer.code(text);
        } else {
            writer.text(text, next_is_link, following);
        }
    }
    writer.close_all();
    writer.out
}

/// Runs regrouped so that the Markdown can express them: line breaks are never code, and
/// whitespace at the edges of a bold, italic, strike or link range is taken out of it.
fn normalize(runs: &[(String, Marks)]) -> Vec<(String, Marks)> {
    let mut chars: Vec<(char, Marks)> = Vec::new();
    for (text, marks) in runs {
        for c in text.chars() {
            let mut marks = marks.clone();
            if c == '\n' || c == '\r' {
                marks.code = false;
            }
            chars.push((c, marks));
        }
    }
    trim_edges(&mut chars, |marks| marks.bold, |marks| marks.bold = false);
    trim_edges(
        &mut chars,
        |marks| marks.italic,
        |marks| marks.italic = false,
    );
    trim_edges(
        &mut chars,
        |marks| marks.strike,
        |marks| marks.strike = false,
    );
    let link_boundaries: Vec<bool> = (0..chars.len())
        .map(|i| i == 0 || chars[i - 1].1.link != chars[i].1.link)
        .collect();
    // A link range ends where the next character has another link (or none).
    let mut start = 0;
    while start < chars.len() {
        let mut end = start + 1;
        while end < chars.len() && !link_boundaries[end] {
            end += 1;
        }
        if chars[start].1.link.is_some() {
            let mut low = start;
            while low < end && chars[low].0.is_whitespace() {
                chars[low].1.link = None;
                low += 1;
            }
            let mut high = end;
            while high > low && chars[high - 1].0.is_whitespace() {
                chars[high - 1].1.link = None;
                high -= 1;
            }
        }
        start = end;
    }
    let mut segments: Vec<(String, Marks)> = Vec::new();
    for (c, marks) in chars {
        match segments.last_mut() {
            Some((text, last)) if *last == marks => text.push(c),
            _ => segments.push((c.to_string(), marks)),
        }
    }
    segments
}

/// Takes whitespace at the edges of each range of characters that `has` out of the range.
fn trim_edges(chars: &mut [(char, Marks)], has: fn(&Marks) -> bool, clear: fn(&mut Marks)) {
    let mut start = 0;
    while start < chars.len() {
        if !has(&chars[start].1) {
            start += 1;
            continue;
        }
        let mut end = start;
        while end < chars.len() && has(&chars[end].1) {
            end += 1;
        }
        let mut low = start;
        while low < end && chars[low].0.is_whitespace() {
            clear(&mut chars[low].1);
            low += 1;
        }
        let mut high = end;
        while high > low && chars[high - 1].0.is_whitespace() {
            clear(&mut chars[high - 1].1);
            high -= 1;
        }
        start = end;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    Bold,
    Italic,
    Strike,
    Link(String),
}

impl Mark {
    fn held_by(&self, marks: &Marks) -> bool {
        match self {
            Mark::Bold => marks.bold,
            Mark::Italic => marks.italic,
            Mark::Strike => marks.strike,
            Mark::Link(url) => marks.link.as_deref() == Some(url.as_str()),
        }
    }
}

fn wanted_marks(marks: &Marks) -> Vec<Mark> {
    let mut wanted = Vec::new();
    if let Some(url) = &marks.link {
        wanted.push(Mark::Link(url.clone()));
    }
    if marks.bold {
        wanted.push(Mark::Bold);
    }
    if marks.italic {
        wanted.push(Mark::Italic);
    }
    if marks.strike {
        wanted.push(Mark::Strike);
    }
    wanted
}

#[derive(Default)]
struct InlineWriter {
    out: String,
    open: Vec<Mark>,
    at_line_start: bool,
    started: bool,
    /// An emphasis delimiter just closed after punctuation: a word character right after it
    /// would keep it from closing, so such a character is written as an entity.
    guard_next: bool,
    /// A delimiter just opened: whitespace right after it would keep it from opening, so such
    /// whitespace is written as an entity.
    guard_space: bool,
}

impl InlineWriter {
    /// Closes and opens delimiters so that exactly the marks of segment `index` are open.
    fn transition(&mut self, segments: &[(String, Marks)], index: usize) {
        if !self.started {
            self.started = true;
            self.at_line_start = true;
        }
        let marks = &segments[index].1;
        let keep = self
            .open
            .iter()
            .position(|mark| !mark.held_by(marks))
            .unwrap_or(self.open.len());
        while self.open.len() > keep {
            self.close_one();
        }
        let mut opening: Vec<Mark> = wanted_marks(marks)
            .into_iter()
            .filter(|mark| !self.open.contains(mark))
            .collect();
        // The mark that lasts longest opens first, so that it closes last.
        let lasting = |mark: &Mark| {
            segments[index..]
                .iter()
                .take_while(|(_, marks)| mark.held_by(marks))
                .count()
        };
        opening.sort_by_key(|mark| std::cmp::Reverse(lasting(mark)));
        if let Some(first) = opening.first() {
            // A delimiter after a word character cannot open when punctuation follows it (nor
            // can `_` at all): the word character is written as an entity, which is
            // punctuation in the source.
            let (text, marks) = &segments[index];
            let punct_next = opening.len() > 1
                || marks.code
                || text
                    .chars()
                    .next()
                    .is_some_and(|c| is_punct(c) || c.is_whitespace());
            let needs_entity = match first {
                Mark::Link(_) => false,
                Mark::Italic => true,
                Mark::Bold | Mark::Strike => punct_next,
            };
            if needs_entity {
                self.entity_for_last_word_char();
            }
            self.guard_next = false;
            self.guard_space = true;
        }
        for mark in opening {
            self.out.push_str(match &mark {
                Mark::Bold => "**",
                Mark::Italic => "_",
                Mark::Strike => "~~",
                Mark::Link(_) => "[",
            });
            self.open.push(mark);
            self.at_line_start = false;
        }
    }

    fn close_one(&mut self) {
        if let Some(mark) = self.open.pop() {
            if !matches!(mark, Mark::Link(_)) {
                // A delimiter after whitespace cannot close: write the whitespace as an entity.
                if self.out.ends_with("\\\n") {
                    self.out.truncate(self.out.len() - 2);
                    self.out.push_str("&#10;");
                } else if let Some(last) = self
                    .out
                    .chars()
                    .next_back()
                    .filter(|c| *c == ' ' || *c == '\t')
                {
                    self.out.truncate(self.out.len() - 1);
                    self.out.push_str(&format!("&#{};", u32::from(last)));
                }
            }
            // A closing delimiter followed by a word character needs punctuation before it
            // (`_` cannot close before a word character at all).
            self.guard_next = match mark {
                Mark::Link(_) => false,
                Mark::Italic => true,
                Mark::Bold | Mark::Strike => self.out.chars().next_back().is_some_and(is_punct),
            };
            match mark {
                Mark::Bold => self.out.push_str("**"),
                Mark::Italic => self.out.push('_'),
                Mark::Strike => self.out.push_str("~~"),
                Mark::Link(url) => {
                    self.out.push_str("](");
                    self.out.push_str(&destination(&url));
                    self.out.push(')');
                }
            }
            self.at_line_start = false;
        }
    }

    fn close_all(&mut self) {
        while !self.open.is_empty() {
            self.close_one();
        }
    }

    /// Rewrites the last character written as a numeric entity when it is a word character.
    fn entity_for_last_word_char(&mut self) {
        if let Some(last) = self.out.chars().next_back().filter(|c| is_word(*c)) {
            self.out.truncate(self.out.len() - last.len_utf8());
            self.out.push_str(&format!("&#{};", u32::from(last)));
        }
    }

    fn code(&mut self, text: &str) {
        self.guard_next = false;
        self.guard_space = false;
        let longest = longest_run(text, '`');
        let ticks = "`".repeat(longest + 1);
        let pad = text.starts_with('`')
            || text.ends_with('`')
            || (text.starts_with(' ') && text.ends_with(' ') && text.chars().any(|c| c != ' '));
        self.out.push_str(&ticks);
        if pad {
            self.out.push(' ');
        }
        self.out.push_str(text);
        if pad {
            self.out.push(' ');
        }
        self.out.push_str(&ticks);
        self.at_line_start = false;
    }

    /// Escaped plain text. `next_is_link`: a link opens right after; `following`: the first
    /// character of the next segment.
    fn text(&mut self, text: &str, next_is_link: bool, following: Option<char>) {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let last_of_text = i + 1 == chars.len() && following.is_none();
            if std::mem::take(&mut self.guard_space) && c.is_whitespace() {
                self.out.push_str(&format!("&#{};", u32::from(c)));
                self.at_line_start = false;
                i += 1;
                continue;
            }
            if c == '\n' {
                if last_of_text {
                    // A hard break cannot end a paragraph.
                    self.out.push_str("&#10;");
                } else {
                    self.out.push_str("\\\n");
                    self.at_line_start = true;
                }
                i += 1;
                continue;
            }
            let line_start = self.at_line_start;
            self.at_line_start = false;
            if std::mem::take(&mut self.guard_next) && is_word(c) {
                self.out.push_str(&format!("&#{};", u32::from(c)));
                i += 1;
                continue;
            }
            let line_end = match next {
                Some(next) => next == '\n',
                None => following.is_none_or(|following| following == '\n'),
            };
            match c {
                ' ' | '\t' if line_start || line_end => {
                    self.out.push_str(if c == ' ' { "&#32;" } else { "&#9;" });
                }
                '\r' => self.out.push_str("&#13;"),
                '\\' | '`' | '*' | '~' | '[' | ']' | '<' => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '_' => {
                    // Judged on what was written: a neighbour written as an entity ends in `;`.
                    let before = self.out.chars().next_back();
                    let inside_word = before.is_some_and(char::is_alphanumeric)
                        && next.is_some_and(char::is_alphanumeric);
                    if !inside_word {
                        self.out.push('\\');
                    }
                    self.out.push('_');
                }
                '&' if starts_entity(&chars[i + 1..]) => self.out.push_str("\\&"),
                '!' if next.is_none() && next_is_link => self.out.push_str("\\!"),
                '#' | '>' | '-' | '+' | '=' if line_start => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                '0'..='9' if line_start => {
                    let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let after = chars.get(i + digits).copied();
                    self.out.extend(&chars[i..i + digits]);
                    i += digits;
                    if digits <= 9 && matches!(after, Some('.') | Some(')')) {
                        self.out.push('\\');
                    }
                    continue;
                }
                _ => self.out.push(c),
            }
            i += 1;
        }
    }
}

/// Punctuation as CommonMark's flanking rules see it: ASCII punctuation, and (approximately:
/// Unicode's P and S categories) any other character that is neither alphanumeric nor
/// whitespace.
fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

/// A character that is neither whitespace nor punctuation.
fn is_word(c: char) -> bool {
    !c.is_whitespace() && !is_punct(c)
}

/// Whether the characters after a `&` would make it an entity reference.
fn starts_entity(rest: &[char]) -> bool {
    let name = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '#')
        .count();
    name > 0 && rest.get(name) == Some(&';')
}

/// A link destination as written inside `(…)`.
fn destination(url: &str) -> String {
    let url = url.replace('\n', "%0A").replace('\r', "%0D");
    let needs_brackets = url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control());
    let mut out = String::new();
    if needs_brackets {
        out.push('<');
        for c in url.chars() {
            if matches!(c, '<' | '>' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('>');
    } else {
        for c in url.chars() {
            if matches!(c, '(' | ')' | '\\' | '<' | '>') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Import

/// Parses Markdown into blocks (see the module documentation for the mapping and the limits).
pub fn from_markdown(markdown: &str) -> Result<Vec<ImportedBlock>, MarkdownError> {
    if markdown.len() > MAX_MARKDOWN_BYTES {
        return Err(MarkdownError::TooLarge {
            size: markdown.len(),
            limit: MAX_MARKDOWN_BYTES,
        });
    }
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut builder = TreeBuilder::new();
    for event in Parser::new_ext(markdown, options) {
        builder.event(event)?;
    }
    builder.finish()
}

/// Parses `markdown` and inserts its blocks under `parent` (`None` = top level) at `position`,
/// the top-level blocks of the Markdown one after the other and their children under them.
/// Returns the new ids in document order (depth-first).
///
/// Limits and a parent or anchor that does not exist are checked before anything is written.
pub fn import_markdown(
    txn: &mut TransactionMut,
    markdown: &str,
    parent: Option<&str>,
    position: Position,
) -> Result<Vec<String>, MarkdownError> {
    let blocks = from_markdown(markdown)?;
    insert_blocks(txn, &blocks, parent, position)
}

/// Inserts parsed blocks as [`import_markdown`] does.
pub fn insert_blocks(
    txn: &mut TransactionMut,
    blocks: &[ImportedBlock],
    parent: Option<&str>,
    position: Position,
) -> Result<Vec<String>, MarkdownError> {
    let ids = schema::insert_subtrees(txn, blocks, parent, position)?;
    // `insert_subtrees` returns the ids depth-first, the order this walk visits the blocks in.
    let mut stack: Vec<&ImportedBlock> = blocks.iter().rev().collect();
    for id in &ids {
        let Some(block) = stack.pop() else { break };
        write_spans(txn, id, &block.spans);
        stack.extend(block.children.iter().rev());
    }
    Ok(ids)
}

impl schema::NewSubtree for ImportedBlock {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn props(&self) -> &serde_json::Map<String, Value> {
        &self.props
    }

    fn children(&self) -> &[Self] {
        &self.children
    }
}

/// The spans of one paragraph of inline Markdown (`**bold**`, `*italic*`, `` `code` ``,
/// `~~strike~~`, `[links](https://…)`); `None` when the Markdown makes anything but one
/// paragraph (a heading, a list, two paragraphs). Empty Markdown has no spans.
pub fn inline_spans(markdown: &str) -> Result<Option<Vec<Span>>, MarkdownError> {
    let mut blocks = from_markdown(markdown)?;
    Ok(match blocks.len() {
        0 => Some(Vec::new()),
        1 if blocks[0].kind == "paragraph" && blocks[0].children.is_empty() => {
            blocks.pop().map(|block| block.spans)
        }
        _ => None,
    })
}

/// Replaces the whole text of block `id` with `spans`, each with its attributes.
pub(crate) fn replace_with_spans(txn: &mut TransactionMut, id: &str, spans: &[Span]) {
    let Some(Out::YMap(block)) = txn
        .get_map(schema::BLOCKS)
        .and_then(|blocks| blocks.get(txn, id))
    else {
        return;
    };
    match block.get(txn, schema::TEXT) {
        Some(Out::YText(text)) => {
            let length = text.len(txn);
            text.remove_range(txn, 0, length);
        }
        _ => {
            block.insert(txn, schema::TEXT, yrs::TextPrelim::new(""));
        }
    }
    write_spans(txn, id, spans);
}

/// Appends the spans to the (empty) text of block `id`, each with its attributes.
fn write_spans(txn: &mut TransactionMut, id: &str, spans: &[Span]) {
    let text = match txn
        .get_map(schema::BLOCKS)
        .and_then(|blocks| blocks.get(txn, id))
    {
        Some(Out::YMap(block)) => match block.get(txn, schema::TEXT) {
            Some(Out::YText(text)) => text,
            _ => return,
        },
        _ => return,
    };
    for span in spans {
        let end = text.len(txn);
        text.insert_with_attributes(txn, end, &span.text, span.marks.to_attrs());
    }
}

/// Where the blocks of the current container go.
enum Frame {
    /// The top level.
    Root(Vec<ImportedBlock>),
    /// A list: its items go to the container around it.
    List { ordered: bool },
    /// A list item or block quote; `filled` once its text was taken or a child was added.
    Container { block: ImportedBlock, filled: bool },
}

/// What the inline content being collected becomes.
enum InlineTarget {
    Paragraph,
    /// Text directly in a list item (a tight list).
    Implicit,
    Heading(u8),
    Code(String),
    Html,
}

struct Collector {
    target: InlineTarget,
    spans: Vec<Span>,
    bold: u32,
    italic: u32,
    strike: u32,
    links: Vec<String>,
    images: Vec<String>,
    image_depth: u32,
    /// Content outside any image.
    other_content: bool,
}

impl Collector {
    fn new(target: InlineTarget) -> Self {
        Collector {
            target,
            spans: Vec::new(),
            bold: 0,
            italic: 0,
            strike: 0,
            links: Vec::new(),
            images: Vec::new(),
            image_depth: 0,
            other_content: false,
        }
    }

    fn marks(&self) -> Marks {
        Marks {
            bold: self.bold > 0,
            italic: self.italic > 0,
            code: false,
            strike: self.strike > 0,
            link: self.links.last().cloned(),
        }
    }

    fn push(&mut self, text: &str, marks: Marks) {
        if text.is_empty() {
            return;
        }
        if self.image_depth == 0 {
            self.other_content = true;
        }
        match self.spans.last_mut() {
            Some(last) if last.marks == marks => last.text.push_str(text),
            _ => self.spans.push(Span {
                text: text.to_owned(),
                marks,
            }),
        }
    }

    fn text(&mut self, text: &str) {
        let marks = self.marks();
        self.push(text, marks);
    }
}

struct TreeBuilder {
    frames: Vec<Frame>,
    inline: Option<Collector>,
    blocks: usize,
}

impl TreeBuilder {
    fn new() -> Self {
        TreeBuilder {
            frames: vec![Frame::Root(Vec::new())],
            inline: None,
            blocks: 0,
        }
    }

    fn count_block(&mut self) -> Result<(), MarkdownError> {
        self.blocks += 1;
        if self.blocks > MAX_BLOCKS {
            return Err(MarkdownError::TooManyBlocks { limit: MAX_BLOCKS });
        }
        Ok(())
    }

    fn push_frame(&mut self, frame: Frame) -> Result<(), MarkdownError> {
        if self.frames.len() > MAX_DEPTH {
            return Err(MarkdownError::TooDeep { limit: MAX_DEPTH });
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Adds a finished block to the innermost container (lists pass it outwards).
    fn add_child(&mut self, child: ImportedBlock) {
        for frame in self.frames.iter_mut().rev() {
            match frame {
                Frame::List { .. } => continue,
                Frame::Root(blocks) => {
                    blocks.push(child);
                    return;
                }
                Frame::Container { block, filled } => {
                    *filled = true;
                    block.children.push(child);
                    return;
                }
            }
        }
    }

    fn start_inline(&mut self, target: InlineTarget) -> Result<(), MarkdownError> {
        self.flush_implicit()?;
        self.inline = Some(Collector::new(target));
        Ok(())
    }

    fn collector(&mut self) -> &mut Collector {
        self.inline
            .get_or_insert_with(|| Collector::new(InlineTarget::Implicit))
    }

    fn flush_implicit(&mut self) -> Result<(), MarkdownError> {
        if matches!(
            self.inline,
            Some(Collector {
                target: InlineTarget::Implicit,
                ..
            })
        ) {
            self.finish_inline()?;
        }
        Ok(())
    }

    /// Turns the collected inline content into a block, or into the text of the container.
    fn finish_inline(&mut self) -> Result<(), MarkdownError> {
        let Some(collector) = self.inline.take() else {
            return Ok(());
        };
        match collector.target {
            InlineTarget::Paragraph | InlineTarget::Implicit => {
                if let Some(Frame::Container { block, filled }) = self.frames.last_mut() {
                    if !*filled {
                        *filled = true;
                        block.set_spans(collector.spans);
                        return Ok(());
                    }
                }
                if collector.spans.is_empty() {
                    return Ok(());
                }
                let mut block = ImportedBlock::new("paragraph");
                if let ([url], false) = (collector.images.as_slice(), collector.other_content) {
                    block.kind = "image".to_owned();
                    block
                        .props
                        .insert("url".to_owned(), Value::String(url.clone()));
                }
                block.set_spans(collector.spans);
                self.count_block()?;
                self.add_child(block);
            }
            InlineTarget::Heading(level) => {
                let mut block = ImportedBlock::new("heading");
                block.props.insert("level".to_owned(), Value::from(level));
                block.set_spans(collector.spans);
                self.count_block()?;
                self.add_child(block);
            }
            InlineTarget::Code(language) => {
                let mut block = ImportedBlock::new("code");
                if !language.is_empty() {
                    block
                        .props
                        .insert("language".to_owned(), Value::String(language));
                }
                let mut text: String = collector.spans.into_iter().map(|span| span.text).collect();
                if text.ends_with('\n') {
                    text.pop();
                }
                block.set_spans(plain_spans(text));
                self.count_block()?;
                self.add_child(block);
            }
            InlineTarget::Html => {
                let mut text: String = collector.spans.into_iter().map(|span| span.text).collect();
                while text.ends_with('\n') {
                    text.pop();
                }
                if !text.is_empty() {
                    let mut block = ImportedBlock::new("paragraph");
                    block.set_spans(plain_spans(text));
                    self.count_block()?;
                    self.add_child(block);
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>) -> Result<(), MarkdownError> {
        match event {
            Event::Start(tag) => self.start(tag)?,
            Event::End(tag) => self.end(tag)?,
            Event::Text(text) => {
                let collector = self.collector();
                if matches!(collector.target, InlineTarget::Code(_) | InlineTarget::Html) {
                    collector.push(&text, Marks::default());
                } else {
                    collector.text(&text);
                }
            }
            Event::Code(code) => {
                let collector = self.collector();
                let mut marks = collector.marks();
                marks.code = true;
                collector.push(&code, marks);
            }
            Event::Html(html) => {
                let collector = self.collector();
                collector.push(&html, Marks::default());
            }
            Event::InlineHtml(html) => {
                let collector = self.collector();
                if is_line_break_tag(&html) {
                    collector.text("\n");
                } else {
                    collector.text(&html);
                }
            }
            Event::SoftBreak => self.collector().text(" "),
            Event::HardBreak => self.collector().text("\n"),
            Event::Rule => {
                self.flush_implicit()?;
                self.count_block()?;
                self.add_child(ImportedBlock::new("divider"));
            }
            Event::TaskListMarker(checked) => {
                for frame in self.frames.iter_mut().rev() {
                    if let Frame::Container { block, .. } = frame {
                        if is_list_item(&block.kind) {
                            block.kind = "todo".to_owned();
                            block
                                .props
                                .insert("checked".to_owned(), Value::Bool(checked));
                        }
                        break;
                    }
                }
            }
            Event::InlineMath(text) | Event::DisplayMath(text) => self.collector().text(&text),
            Event::FootnoteReference(label) => self.collector().text(&label),
        }
        Ok(())
    }

    fn start(&mut self, tag: Tag<'_>) -> Result<(), MarkdownError> {
        match tag {
            Tag::Paragraph => self.start_inline(InlineTarget::Paragraph)?,
            Tag::Heading { level, .. } => {
                self.start_inline(InlineTarget::Heading(heading_level(level)))?
            }
            Tag::CodeBlock(kind) => {
                let language = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                self.start_inline(InlineTarget::Code(language))?;
            }
            Tag::HtmlBlock => self.start_inline(InlineTarget::Html)?,
            Tag::BlockQuote(_) => {
                self.flush_implicit()?;
                self.count_block()?;
                self.push_frame(Frame::Container {
                    block: ImportedBlock::new("quote"),
                    filled: false,
                })?;
            }
            Tag::List(start) => {
                self.flush_implicit()?;
                self.push_frame(Frame::List {
                    ordered: start.is_some(),
                })?;
            }
            Tag::Item => {
                self.flush_implicit()?;
                let ordered = matches!(self.frames.last(), Some(Frame::List { ordered: true }));
                self.count_block()?;
                self.push_frame(Frame::Container {
                    block: ImportedBlock::new(if ordered { "numbered" } else { "bullet" }),
                    filled: false,
                })?;
            }
            Tag::Emphasis => self.collector().italic += 1,
            Tag::Strong => self.collector().bold += 1,
            Tag::Strikethrough => self.collector().strike += 1,
            Tag::Link { dest_url, .. } => self.collector().links.push(dest_url.to_string()),
            Tag::Image { dest_url, .. } => {
                let collector = self.collector();
                collector.image_depth += 1;
                collector.images.push(dest_url.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, tag: TagEnd) -> Result<(), MarkdownError> {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::CodeBlock | TagEnd::HtmlBlock => {
                self.finish_inline()?
            }
            TagEnd::BlockQuote(_) | TagEnd::Item => {
                self.flush_implicit()?;
                if let Some(Frame::Container { block, .. }) = self.frames.pop() {
                    self.add_child(block);
                }
            }
            TagEnd::List(_) => {
                self.flush_implicit()?;
                if matches!(self.frames.last(), Some(Frame::List { .. })) {
                    self.frames.pop();
                }
            }
            TagEnd::Emphasis => {
                let collector = self.collector();
                collector.italic = collector.italic.saturating_sub(1);
            }
            TagEnd::Strong => {
                let collector = self.collector();
                collector.bold = collector.bold.saturating_sub(1);
            }
            TagEnd::Strikethrough => {
                let collector = self.collector();
                collector.strike = collector.strike.saturating_sub(1);
            }
            TagEnd::Link => {
                self.collector().links.pop();
            }
            TagEnd::Image => {
                let collector = self.collector();
                collector.image_depth = collector.image_depth.saturating_sub(1);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ImportedBlock>, MarkdownError> {
        self.finish_inline()?;
        // Events are balanced, so only the root is left; close anything left open anyway.
        while self.frames.len() > 1 {
            if let Some(Frame::Container { block, .. }) = self.frames.pop() {
                self.add_child(block);
            }
        }
        match self.frames.pop() {
            Some(Frame::Root(blocks)) => Ok(blocks),
            _ => Ok(Vec::new()),
        }
    }
}

fn plain_spans(text: String) -> Vec<Span> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Span {
            text,
            marks: Marks::default(),
        }]
    }
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// `<br>`, `<br/>` or `<br />`, any case.
fn is_line_break_tag(html: &str) -> bool {
    let tag: String = html
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    tag == "<br>" || tag == "<br/>"
}
