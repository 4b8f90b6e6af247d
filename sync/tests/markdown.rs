//! Markdown export and import of a canvas: every block kind both ways, nesting, inline
//! formatting both ways, escaping, unknown types, the title, round-trip stability on a corpus,
//! the limits, and imports at a position.

use potentia_sync::markdown::{
    blocks_to_markdown, from_markdown, import_markdown, split_title, to_markdown, ImportedBlock,
    MarkdownError, Marks, Span, MAX_BLOCKS, MAX_DEPTH, MAX_MARKDOWN_BYTES,
};
use potentia_sync::schema::{
    insert_block, read_blocks, set_meta, Block, MetaPatch, NewBlock, Position, SchemaError,
};
use serde_json::{json, Value};
use yrs::types::Attrs;
use yrs::{Any, Doc, Map, Out, ReadTxn, Text, Transact, WriteTxn};

fn props(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Inserts a block at the end of `parent`'s children and returns its id.
fn add(doc: &Doc, parent: Option<&str>, kind: &str, text: &str, block_props: Value) -> String {
    insert_block(
        &mut doc.transact_mut(),
        NewBlock {
            id: None,
            kind: kind.to_owned(),
            parent: parent.map(str::to_owned),
            position: Position::Last,
            text: text.to_owned(),
            props: props(block_props),
        },
    )
    .expect("insert")
}

fn export(doc: &Doc) -> String {
    to_markdown(&doc.transact())
}

fn blocks(doc: &Doc) -> Vec<Block> {
    read_blocks(&doc.transact())
}

/// Imports `markdown` into a new document.
fn imported(markdown: &str) -> Doc {
    let doc = Doc::new();
    import_markdown(&mut doc.transact_mut(), markdown, None, Position::Last).expect("import");
    doc
}

/// Imports `markdown` into a new document and exports it again.
fn round_trip(markdown: &str) -> String {
    export(&imported(markdown))
}

fn parse_one(markdown: &str) -> ImportedBlock {
    let mut blocks = from_markdown(markdown).expect("parse");
    assert_eq!(blocks.len(), 1, "{blocks:#?}");
    blocks.remove(0)
}

fn plain(text: &str) -> Span {
    Span {
        text: text.to_owned(),
        marks: Marks::default(),
    }
}

/// Appends `text` with `attributes` to the text of block `id`.
fn append_formatted(doc: &Doc, id: &str, text: &str, attributes: &[(&str, Any)]) {
    let mut txn = doc.transact_mut();
    let map = txn.get_or_insert_map("blocks");
    let Some(Out::YMap(block)) = map.get(&txn, id) else {
        panic!("no block {id}");
    };
    let Some(Out::YText(ytext)) = block.get(&txn, "text") else {
        panic!("no text");
    };
    let attrs: Attrs = attributes
        .iter()
        .map(|(key, value)| ((*key).into(), value.clone()))
        .collect();
    let end = ytext.len(&txn);
    ytext.insert_with_attributes(&mut txn, end, text, attrs);
}

// ---------------------------------------------------------------------------------------------
// Block kinds, export

#[test]
fn heading_exports_with_its_level() {
    let doc = Doc::new();
    add(&doc, None, "heading", "Top", json!({ "level": 1 }));
    add(&doc, None, "heading", "Deep", json!({ "level": 3 }));
    add(&doc, None, "heading", "Default", json!({}));
    add(&doc, None, "heading", "Clamped", json!({ "level": 9 }));
    assert_eq!(
        export(&doc),
        "# Top\n\n### Deep\n\n# Default\n\n###### Clamped\n"
    );
}

#[test]
fn paragraph_exports_as_text_separated_by_blank_lines() {
    let doc = Doc::new();
    add(&doc, None, "paragraph", "One.", json!({}));
    add(&doc, None, "paragraph", "Two.", json!({}));
    assert_eq!(export(&doc), "One.\n\nTwo.\n");
}

#[test]
fn bullet_numbered_and_todo_items_export_as_lists() {
    let doc = Doc::new();
    add(&doc, None, "bullet", "apples", json!({}));
    add(&doc, None, "bullet", "pears", json!({}));
    add(&doc, None, "paragraph", "then", json!({}));
    add(&doc, None, "numbered", "first", json!({}));
    add(&doc, None, "numbered", "second", json!({}));
    add(&doc, None, "todo", "open", json!({ "checked": false }));
    add(&doc, None, "todo", "done", json!({ "checked": true }));
    add(&doc, None, "todo", "unset", json!({}));
    assert_eq!(
        export(&doc),
        "- apples\n- pears\n\nthen\n\n1. first\n2. second\n- [ ] open\n- [x] done\n- [ ] unset\n"
    );
}

#[test]
fn numbering_restarts_after_a_block_that_is_not_numbered() {
    let doc = Doc::new();
    add(&doc, None, "numbered", "a", json!({}));
    add(&doc, None, "numbered", "b", json!({}));
    add(&doc, None, "paragraph", "break", json!({}));
    add(&doc, None, "numbered", "c", json!({}));
    assert_eq!(export(&doc), "1. a\n2. b\n\nbreak\n\n1. c\n");
}

#[test]
fn quote_exports_with_a_marker_on_every_line() {
    let doc = Doc::new();
    add(&doc, None, "quote", "To be\nor not", json!({}));
    assert_eq!(export(&doc), "> To be\\\n> or not\n");
}

#[test]
fn code_exports_fenced_with_its_language() {
    let doc = Doc::new();
    add(
        &doc,
        None,
        "code",
        "fn main() {\n    println!(\"*hi*\");\n}",
        json!({ "language": "rust" }),
    );
    add(&doc, None, "code", "plain", json!({}));
    assert_eq!(
        export(&doc),
        "```rust\nfn main() {\n    println!(\"*hi*\");\n}\n```\n\n```\nplain\n```\n"
    );
}

#[test]
fn code_fence_is_longer_than_any_backtick_run_in_the_code() {
    let doc = Doc::new();
    add(
        &doc,
        None,
        "code",
        "```\nnested\n```",
        json!({ "language": "md" }),
    );
    let markdown = export(&doc);
    assert_eq!(markdown, "````md\n```\nnested\n```\n````\n");
    let block = parse_one(&markdown);
    assert_eq!(block.text, "```\nnested\n```");
}

#[test]
fn divider_exports_as_a_thematic_break() {
    let doc = Doc::new();
    add(&doc, None, "paragraph", "above", json!({}));
    add(&doc, None, "divider", "", json!({}));
    add(&doc, None, "paragraph", "below", json!({}));
    assert_eq!(export(&doc), "above\n\n---\n\nbelow\n");
}

#[test]
fn image_exports_as_an_image_with_its_text_as_alt() {
    let doc = Doc::new();
    add(
        &doc,
        None,
        "image",
        "A cat",
        json!({ "url": "https://example.com/cat.png" }),
    );
    assert_eq!(export(&doc), "![A cat](https://example.com/cat.png)\n");
}

#[test]
fn unknown_types_export_as_paragraphs_of_their_text() {
    let doc = Doc::new();
    add(&doc, None, "callout", "Heads up", json!({ "emoji": "!" }));
    add(&doc, None, "image", "no url", json!({}));
    add(&doc, None, "kanban", "", json!({}));
    assert_eq!(export(&doc), "Heads up\n\nno url\n");
}

#[test]
fn empty_paragraphs_are_left_out() {
    let doc = Doc::new();
    add(&doc, None, "paragraph", "a", json!({}));
    add(&doc, None, "paragraph", "", json!({}));
    add(&doc, None, "paragraph", "b", json!({}));
    assert_eq!(export(&doc), "a\n\nb\n");
}

#[test]
fn title_exports_as_a_level_one_heading_and_splits_off_again() {
    let doc = Doc::new();
    set_meta(
        &mut doc.transact_mut(),
        MetaPatch {
            title: Some("Plan *A*".to_owned()),
            icon: None,
        },
    );
    add(&doc, None, "paragraph", "Body", json!({}));
    let markdown = export(&doc);
    assert_eq!(markdown, "# Plan \\*A\\*\n\nBody\n");

    let mut parsed = from_markdown(&markdown).expect("parse");
    assert_eq!(split_title(&mut parsed).as_deref(), Some("Plan *A*"));
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].text, "Body");
}

#[test]
fn empty_title_writes_no_heading() {
    let doc = Doc::new();
    add(&doc, None, "paragraph", "Body", json!({}));
    assert_eq!(export(&doc), "Body\n");
    assert_eq!(export(&Doc::new()), "");
}

// ---------------------------------------------------------------------------------------------
// Block kinds, import

#[test]
fn heading_imports_with_its_level() {
    let parsed = from_markdown("# One\n\n### Three\n\nSetext\n======\n").expect("parse");
    let summary: Vec<(String, String, Value)> = parsed
        .into_iter()
        .map(|block| (block.kind, block.text, Value::Object(block.props)))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("heading".into(), "One".into(), json!({ "level": 1 })),
            ("heading".into(), "Three".into(), json!({ "level": 3 })),
            ("heading".into(), "Setext".into(), json!({ "level": 1 })),
        ]
    );
}

#[test]
fn paragraph_imports_with_soft_breaks_as_spaces_and_hard_breaks_as_newlines() {
    let block = parse_one("one\ntwo\\\nthree  \nfour\n");
    assert_eq!(block.kind, "paragraph");
    assert_eq!(block.text, "one two\nthree\nfour");
}

#[test]
fn list_items_import_as_bullet_numbered_and_todo() {
    let parsed = from_markdown("- a\n* b\n\n3. c\n4) d\n\n- [ ] e\n- [x] f\n").expect("parse");
    let summary: Vec<(String, String, Value)> = parsed
        .into_iter()
        .map(|block| (block.kind, block.text, Value::Object(block.props)))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bullet".into(), "a".into(), json!({})),
            ("bullet".into(), "b".into(), json!({})),
            ("numbered".into(), "c".into(), json!({})),
            ("numbered".into(), "d".into(), json!({})),
            ("todo".into(), "e".into(), json!({ "checked": false })),
            ("todo".into(), "f".into(), json!({ "checked": true })),
        ]
    );
}

#[test]
fn quote_imports_with_its_first_paragraph_as_text() {
    let block = parse_one("> said\n> it\n>\n> more\n");
    assert_eq!(block.kind, "quote");
    assert_eq!(block.text, "said it");
    assert_eq!(block.children.len(), 1);
    assert_eq!(block.children[0].kind, "paragraph");
    assert_eq!(block.children[0].text, "more");
}

#[test]
fn code_imports_with_its_language_and_exact_text() {
    let block = parse_one("```python title=x\ndef f():\n    return \"*\"\n\n```\n");
    assert_eq!(block.kind, "code");
    assert_eq!(block.text, "def f():\n    return \"*\"\n");
    assert_eq!(Value::Object(block.props), json!({ "language": "python" }));

    let indented = parse_one("    indented\n");
    assert_eq!(indented.kind, "code");
    assert_eq!(indented.text, "indented");
    assert!(indented.props.is_empty());
}

#[test]
fn divider_imports_from_any_thematic_break() {
    let parsed = from_markdown("---\n\n***\n\n_ _ _\n").expect("parse");
    assert_eq!(parsed.len(), 3);
    assert!(parsed.iter().all(|block| block.kind == "divider"));
}

#[test]
fn image_alone_in_a_paragraph_imports_as_an_image_block() {
    let block = parse_one("![A cat](https://example.com/cat.png)\n");
    assert_eq!(block.kind, "image");
    assert_eq!(block.text, "A cat");
    assert_eq!(
        Value::Object(block.props),
        json!({ "url": "https://example.com/cat.png" })
    );
    let inline = parse_one("see ![A cat](cat.png) here\n");
    assert_eq!(inline.kind, "paragraph");
    assert_eq!(inline.text, "see A cat here");
}

#[test]
fn raw_html_is_kept_as_text() {
    let parsed = from_markdown("<div>\nhello\n</div>\n\na <b>b</b>\n").expect("parse");
    assert_eq!(parsed[0].text, "<div>\nhello\n</div>");
    assert_eq!(parsed[1].text, "a <b>b</b>");
    let doc = imported("a <b>b</b>\n");
    assert_eq!(export(&doc), "a \\<b>b\\</b>\n");
}

#[test]
fn imported_blocks_are_written_to_the_document() {
    let doc = imported("# Title\n\n- [x] done\n\n```sh\nls\n```\n");
    let written: Vec<(String, String, Value)> = blocks(&doc)
        .into_iter()
        .map(|block| (block.kind, block.text, Value::Object(block.props)))
        .collect();
    assert_eq!(
        written,
        vec![
            ("heading".into(), "Title".into(), json!({ "level": 1 })),
            ("todo".into(), "done".into(), json!({ "checked": true })),
            ("code".into(), "ls".into(), json!({ "language": "sh" })),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Nesting

#[test]
fn children_of_list_items_export_indented() {
    let doc = Doc::new();
    let a = add(&doc, None, "bullet", "a", json!({}));
    let a1 = add(&doc, Some(&a), "numbered", "a1", json!({}));
    add(&doc, Some(&a1), "todo", "a1x", json!({ "checked": true }));
    add(&doc, Some(&a), "numbered", "a2", json!({}));
    add(&doc, Some(&a), "paragraph", "note", json!({}));
    add(&doc, None, "bullet", "b", json!({}));
    assert_eq!(
        export(&doc),
        "- a\n  1. a1\n     - [x] a1x\n  2. a2\n\n  note\n\n- b\n"
    );
}

#[test]
fn nested_lists_import_as_children() {
    let parsed =
        from_markdown("- a\n  1. a1\n     - [x] a1x\n  2. a2\n\n  note\n- b\n").expect("parse");
    assert_eq!(parsed.len(), 2);
    let a = &parsed[0];
    assert_eq!((a.kind.as_str(), a.text.as_str()), ("bullet", "a"));
    let children: Vec<(&str, &str)> = a
        .children
        .iter()
        .map(|child| (child.kind.as_str(), child.text.as_str()))
        .collect();
    assert_eq!(
        children,
        vec![
            ("numbered", "a1"),
            ("numbered", "a2"),
            ("paragraph", "note")
        ]
    );
    assert_eq!(a.children[0].children[0].kind, "todo");
    assert_eq!(a.children[0].children[0].text, "a1x");
    assert_eq!(parsed[1].text, "b");
}

#[test]
fn nesting_is_written_to_the_document_as_parents() {
    let doc = imported("- a\n  - b\n    - c\n- d\n");
    let written = blocks(&doc);
    let id_of = |text: &str| {
        written
            .iter()
            .find(|block| block.text == text)
            .map(|block| block.id.clone())
    };
    let parents: Vec<(String, Option<String>)> = written
        .iter()
        .map(|block| (block.text.clone(), block.parent.clone()))
        .collect();
    assert_eq!(
        parents,
        vec![
            ("a".to_owned(), None),
            ("b".to_owned(), id_of("a")),
            ("c".to_owned(), id_of("b")),
            ("d".to_owned(), None),
        ]
    );
}

#[test]
fn children_of_quotes_stay_inside_the_quote() {
    let doc = Doc::new();
    let quote = add(&doc, None, "quote", "quoted", json!({}));
    add(&doc, Some(&quote), "bullet", "point", json!({}));
    add(&doc, Some(&quote), "code", "x", json!({}));
    add(&doc, None, "paragraph", "after", json!({}));
    let markdown = export(&doc);
    assert_eq!(
        markdown,
        "> quoted\n>\n> - point\n>\n> ```\n> x\n> ```\n\nafter\n"
    );
    let parsed = from_markdown(&markdown).expect("parse");
    assert_eq!(parsed.len(), 2);
    let kinds: Vec<&str> = parsed[0]
        .children
        .iter()
        .map(|child| child.kind.as_str())
        .collect();
    assert_eq!(kinds, vec!["bullet", "code"]);
}

#[test]
fn children_of_other_blocks_export_after_them_at_their_level() {
    let doc = Doc::new();
    let item = add(&doc, None, "bullet", "item", json!({}));
    let para = add(&doc, Some(&item), "paragraph", "para", json!({}));
    add(&doc, Some(&para), "bullet", "under para", json!({}));
    let heading = add(&doc, None, "heading", "H", json!({ "level": 2 }));
    add(
        &doc,
        Some(&heading),
        "paragraph",
        "under heading",
        json!({}),
    );
    assert_eq!(
        export(&doc),
        "- item\n\n  para\n\n  - under para\n\n## H\n\nunder heading\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Inline formatting

#[test]
fn inline_formatting_exports_from_text_attributes() {
    let doc = Doc::new();
    let id = add(&doc, None, "paragraph", "", json!({}));
    let yes = || Any::Bool(true);
    append_formatted(&doc, &id, "plain ", &[]);
    append_formatted(&doc, &id, "bold", &[("bold", yes())]);
    append_formatted(&doc, &id, " ", &[]);
    append_formatted(&doc, &id, "italic", &[("italic", yes())]);
    append_formatted(&doc, &id, " ", &[]);
    append_formatted(&doc, &id, "x = 1", &[("code", yes())]);
    append_formatted(&doc, &id, " ", &[]);
    append_formatted(&doc, &id, "gone", &[("strike", yes())]);
    append_formatted(&doc, &id, " ", &[]);
    append_formatted(&doc, &id, "site", &[("link", Any::from("https://x.io/a"))]);
    assert_eq!(
        export(&doc),
        "plain **bold** _italic_ `x = 1` ~~gone~~ [site](https://x.io/a)\n"
    );
}

#[test]
fn overlapping_formatting_nests_its_delimiters() {
    let doc = Doc::new();
    let id = add(&doc, None, "paragraph", "", json!({}));
    let yes = || Any::Bool(true);
    append_formatted(&doc, &id, "all ", &[("bold", yes())]);
    append_formatted(&doc, &id, "of", &[("bold", yes()), ("italic", yes())]);
    append_formatted(&doc, &id, " it", &[("bold", yes())]);
    append_formatted(&doc, &id, " and ", &[]);
    append_formatted(
        &doc,
        &id,
        "linked code",
        &[("link", Any::from("u")), ("code", yes())],
    );
    append_formatted(&doc, &id, "in", &[]);
    append_formatted(&doc, &id, "word", &[("italic", yes())]);
    let markdown = export(&doc);
    assert_eq!(
        markdown,
        "**all _of_ it** and [`linked code`](u)i&#110;_word_\n"
    );
    let block = parse_one(&markdown);
    let bold_italic = Marks {
        bold: true,
        italic: true,
        ..Marks::default()
    };
    assert!(block
        .spans
        .iter()
        .any(|span| span.text == "of" && span.marks == bold_italic));
    assert!(block
        .spans
        .iter()
        .any(|span| span.text == "word" && span.marks.italic));
}

#[test]
fn whitespace_at_the_edge_of_bold_is_moved_outside_the_delimiters() {
    let doc = Doc::new();
    let id = add(&doc, None, "paragraph", "", json!({}));
    append_formatted(&doc, &id, "a", &[]);
    append_formatted(&doc, &id, " bold ", &[("bold", Any::Bool(true))]);
    append_formatted(&doc, &id, "b", &[]);
    assert_eq!(export(&doc), "a **bold** b\n");
}

#[test]
fn link_attribute_as_an_object_with_href_exports_as_a_link() {
    let doc = Doc::new();
    let id = add(&doc, None, "paragraph", "", json!({}));
    let href = Any::from(std::collections::HashMap::from([(
        "href".to_owned(),
        Any::from("https://a.b/c d"),
    )]));
    append_formatted(&doc, &id, "spaced", &[("link", href)]);
    assert_eq!(export(&doc), "[spaced](<https://a.b/c d>)\n");
}

#[test]
fn inline_formatting_imports_as_spans() {
    let block = parse_one("a **b** _c_ *d* `e` ~~f~~ [g](https://g.io) ***h***\n");
    let marks = |bold, italic, code, strike, link: Option<&str>| Marks {
        bold,
        italic,
        code,
        strike,
        link: link.map(str::to_owned),
    };
    assert_eq!(
        block.spans,
        vec![
            plain("a "),
            Span {
                text: "b".into(),
                marks: marks(true, false, false, false, None)
            },
            plain(" "),
            Span {
                text: "c".into(),
                marks: marks(false, true, false, false, None)
            },
            plain(" "),
            Span {
                text: "d".into(),
                marks: marks(false, true, false, false, None)
            },
            plain(" "),
            Span {
                text: "e".into(),
                marks: marks(false, false, true, false, None)
            },
            plain(" "),
            Span {
                text: "f".into(),
                marks: marks(false, false, false, true, None)
            },
            plain(" "),
            Span {
                text: "g".into(),
                marks: marks(false, false, false, false, Some("https://g.io"))
            },
            plain(" "),
            Span {
                text: "h".into(),
                marks: marks(true, true, false, false, None)
            },
        ]
    );
}

#[test]
fn inline_formatting_imports_as_text_attributes() {
    let doc = imported("x **b** [l](https://l.io) `c`\n");
    let block = blocks(&doc).remove(0);
    assert_eq!(block.text, "x b l c");
    assert_eq!(
        block.rich,
        json!([
            { "insert": "x " },
            { "insert": "b", "attributes": { "bold": true } },
            { "insert": " " },
            { "insert": "l", "attributes": { "link": "https://l.io" } },
            { "insert": " " },
            { "insert": "c", "attributes": { "code": true } },
        ])
    );
}

#[test]
fn inline_code_with_backticks_uses_a_longer_delimiter() {
    let doc = Doc::new();
    let id = add(&doc, None, "paragraph", "", json!({}));
    append_formatted(&doc, &id, "a `tick`", &[("code", Any::Bool(true))]);
    let markdown = export(&doc);
    assert_eq!(markdown, "`` a `tick` ``\n");
    assert_eq!(parse_one(&markdown).spans[0].text, "a `tick`");
}

// ---------------------------------------------------------------------------------------------
// Escaping

#[test]
fn special_characters_in_plain_text_are_escaped_and_read_back_unchanged() {
    let texts = [
        "2 * 3 * 4 = 24",
        "snake_case and _leading",
        "a [link](not) <b>html</b> `code` ~strike~ \\ back",
        "# not a heading",
        "- not a list",
        "+ not a list",
        "> not a quote",
        "1. not numbered",
        "2) nor this",
        "= not setext",
        "AT&T &amp; &#42; entities",
        "bang![x](y)",
        "***",
        "    leading spaces",
        "trailing spaces  ",
        "C#",
    ];
    for text in texts {
        let doc = Doc::new();
        add(&doc, None, "paragraph", text, json!({}));
        add(&doc, None, "bullet", text, json!({}));
        add(&doc, None, "heading", text, json!({ "level": 2 }));
        let markdown = export(&doc);
        let parsed = from_markdown(&markdown).expect("parse");
        let read: Vec<(&str, &str)> = parsed
            .iter()
            .map(|block| (block.kind.as_str(), block.text.as_str()))
            .collect();
        assert_eq!(
            read,
            vec![("paragraph", text), ("bullet", text), ("heading", text)],
            "{markdown}"
        );
        assert!(parsed
            .iter()
            .all(|block| block.spans.len() == 1 && block.spans[0].marks.is_plain()));
    }
}

#[test]
fn escaping_leaves_ordinary_text_alone() {
    let doc = Doc::new();
    add(
        &doc,
        None,
        "paragraph",
        "Hello, world! It's 5 - 3 = 2 (really), snake_case & co.",
        json!({}),
    );
    assert_eq!(
        export(&doc),
        "Hello, world! It's 5 - 3 = 2 (really), snake_case & co.\n"
    );
}

#[test]
fn line_breaks_in_text_survive_a_round_trip() {
    let texts = ["a\nb", "a\n\nb", "trailing\n", "\nleading", "- a\n- b"];
    for text in texts {
        let doc = Doc::new();
        add(&doc, None, "paragraph", text, json!({}));
        add(&doc, None, "todo", text, json!({ "checked": true }));
        let markdown = export(&doc);
        let parsed = from_markdown(&markdown).expect("parse");
        let read: Vec<&str> = parsed.iter().map(|block| block.text.as_str()).collect();
        assert_eq!(read, vec![text, text], "{markdown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

const CORPUS: &[&str] = &[
    "# Weekly plan\n\nSome **bold** and _italic_ text with `code` and a [link](https://example.com).\n\n## Tasks\n\n- [ ] write the spec\n- [x] ship it\n  - [ ] nested todo\n\n1. one\n2. two\n   1. two-a\n\n> A quote\n> that wraps\n\n```rust\nfn main() {}\n```\n\n---\n\nThe end.\n",
    "* star list\n+ plus list\n\n10. ten\n11. eleven\n\nText with * and _ and ` and [brackets] and <angle> & ampersands &amp;.\n",
    "Setext Heading\n==============\n\nAnother\n-------\n\n    indented code\n\n~~~\ntilde fence\n~~~\n",
    "- a\n\n  paragraph in item\n\n  ```js\n  let x = 1;\n  ```\n- b\n  > quote in item\n",
    "> quote\n>\n> - list in quote\n>   - deeper\n>\n> > nested quote\n",
    "***bold italic*** **bold _both_ bold** ~~strike **bold**~~ [**bold link**](u) `a``b`\n",
    "line one  \nline two\\\nline three\nsoft\n",
    "![image](https://example.com/i.png)\n\ntext ![inline](x.png) image\n\n<div>html block</div>\n\n<!-- comment -->\n",
    "# Title with `code` and #hash #\n\n### *emph* heading ###\n\n- [ ] \n- [x]\n-\n\n1.\n",
    "Unicode: café — naïve ☃ 日本語 😀\n\n- émoji 🎉 **gras**\n",
    "a*b*c intra_word_underscores __strong__ _em_ \\* literal \\_\n\n<https://autolink.example>\n",
    "1) paren\n2) list\n\n- [ ] todo\n- bullet\n1. numbered\n",
    "Hard break at end\\\n\nTrailing spaces   \n\n&#32; entity space\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "- level 1\n  - level 2\n    - level 3\n      - level 4\n        1. ordered 5\n           - [x] todo 6\n",
];

#[test]
fn round_trip_is_stable_on_a_corpus() {
    for source in CORPUS {
        let first = round_trip(source);
        let second = round_trip(&first);
        assert_eq!(first, second, "source:\n{source}\nfirst:\n{first}");
    }
}

#[test]
fn exported_canvas_imports_to_the_same_blocks() {
    let doc = Doc::new();
    add(&doc, None, "heading", "Plan", json!({ "level": 2 }));
    let item = add(
        &doc,
        None,
        "todo",
        "first [step]",
        json!({ "checked": true }),
    );
    add(&doc, Some(&item), "bullet", "detail *", json!({}));
    add(&doc, None, "numbered", "n", json!({}));
    add(&doc, None, "quote", "q\nq2", json!({}));
    add(&doc, None, "code", "x\n\ny", json!({ "language": "py" }));
    add(&doc, None, "divider", "", json!({}));
    let again = imported(&export(&doc));
    let shape = |doc: &Doc| -> Vec<(String, String, Value, bool)> {
        blocks(doc)
            .into_iter()
            .map(|block| {
                (
                    block.kind,
                    block.text,
                    Value::Object(block.props),
                    block.parent.is_some(),
                )
            })
            .collect()
    };
    assert_eq!(shape(&again), shape(&doc));
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn input_over_the_size_limit_is_refused() {
    let markdown = "a".repeat(MAX_MARKDOWN_BYTES + 1);
    assert_eq!(
        from_markdown(&markdown),
        Err(MarkdownError::TooLarge {
            size: MAX_MARKDOWN_BYTES + 1,
            limit: MAX_MARKDOWN_BYTES
        })
    );
    let doc = Doc::new();
    let result = import_markdown(&mut doc.transact_mut(), &markdown, None, Position::Last);
    assert!(matches!(result, Err(MarkdownError::TooLarge { .. })));
    assert!(blocks(&doc).is_empty());
}

#[test]
fn input_with_too_many_blocks_is_refused() {
    let markdown = "---\n\n".repeat(MAX_BLOCKS + 1);
    assert_eq!(
        from_markdown(&markdown),
        Err(MarkdownError::TooManyBlocks { limit: MAX_BLOCKS })
    );
    let exactly = "---\n\n".repeat(MAX_BLOCKS);
    assert_eq!(
        from_markdown(&exactly).map(|blocks| blocks.len()),
        Ok(MAX_BLOCKS)
    );
}

#[test]
fn input_nested_too_deep_is_refused() {
    let markdown = format!("{} deep\n", ">".repeat(MAX_DEPTH + 1));
    assert_eq!(
        from_markdown(&markdown),
        Err(MarkdownError::TooDeep { limit: MAX_DEPTH })
    );
    let within = format!("{} ok\n", ">".repeat(MAX_DEPTH - 1));
    assert!(from_markdown(&within).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Positions

#[test]
fn import_after_a_block_keeps_the_imported_blocks_together_in_order() {
    let doc = Doc::new();
    let first = add(&doc, None, "paragraph", "first", json!({}));
    add(&doc, None, "paragraph", "last", json!({}));
    let ids = import_markdown(
        &mut doc.transact_mut(),
        "- one\n  - one.a\n- two\n\nthree\n",
        None,
        Position::After(first),
    )
    .expect("import");
    assert_eq!(ids.len(), 4);
    let written = blocks(&doc);
    let texts: Vec<&str> = written.iter().map(|block| block.text.as_str()).collect();
    assert_eq!(texts, vec!["first", "one", "one.a", "two", "three", "last"]);
    let written_ids: Vec<&str> = written[1..5]
        .iter()
        .map(|block| block.id.as_str())
        .collect();
    assert_eq!(
        written_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn import_under_a_parent_appends_to_its_children() {
    let doc = Doc::new();
    let parent = add(&doc, None, "bullet", "parent", json!({}));
    add(&doc, Some(&parent), "bullet", "existing", json!({}));
    import_markdown(
        &mut doc.transact_mut(),
        "- new\n- newer\n",
        Some(&parent),
        Position::Last,
    )
    .expect("import");
    assert_eq!(export(&doc), "- parent\n  - existing\n  - new\n  - newer\n");
}

#[test]
fn import_at_an_unknown_anchor_is_refused_and_changes_nothing() {
    let doc = Doc::new();
    add(&doc, None, "paragraph", "only", json!({}));
    let missing = "00000000-0000-4000-8000-000000000001".to_owned();
    let result = import_markdown(
        &mut doc.transact_mut(),
        "- a\n- b\n",
        None,
        Position::After(missing.clone()),
    );
    assert!(
        matches!(result, Err(MarkdownError::Schema(_))),
        "{result:?}"
    );
    let unknown_parent = import_markdown(
        &mut doc.transact_mut(),
        "x\n",
        Some(&missing),
        Position::Last,
    );
    assert_eq!(
        unknown_parent,
        Err(MarkdownError::Schema(SchemaError::UnknownBlock(missing)))
    );
    assert_eq!(export(&doc), "only\n");
}

#[test]
fn blocks_to_markdown_needs_no_document() {
    let doc = imported("- a\n  - b\n");
    let read = blocks(&doc);
    assert_eq!(blocks_to_markdown(&read), "- a\n  - b\n");
    assert_eq!(blocks_to_markdown(&[]), "");
}

#[test]
fn empty_markdown_imports_nothing() {
    let doc = Doc::new();
    let ids = import_markdown(&mut doc.transact_mut(), "", None, Position::Last).expect("import");
    assert!(ids.is_empty());
    assert!(from_markdown("\n\n   \n").expect("parse").is_empty());
    let _ = doc.transact().get_map("blocks");
}

#[test]
fn random_formatted_text_reads_back_with_the_same_text_and_marks() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    const ALPHABET: &[char] = &[
        'a', 'b', 'Z', '1', '9', ' ', ' ', '\n', '*', '_', '`', '~', '[', ']', '(', ')', '<', '>',
        '#', '-', '+', '=', '!', '&', ';', '\\', '.', '|', '\t', 'é',
    ];
    let mut unformatted = 0;
    let mut formatted_input = 0;
    let mut rng = StdRng::seed_from_u64(5);
    for round in 0..2000 {
        let doc = Doc::new();
        let kind = ["paragraph", "bullet", "numbered", "todo", "quote"][round % 5];
        let id = add(&doc, None, kind, "", json!({}));
        let mut expected: Vec<(char, Marks)> = Vec::new();
        for _ in 0..rng.gen_range(1..6) {
            let text: String = (0..rng.gen_range(1..6))
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect();
            let marks = Marks {
                bold: rng.gen_bool(0.3),
                italic: rng.gen_bool(0.3),
                code: rng.gen_bool(0.15),
                strike: rng.gen_bool(0.2),
                link: rng.gen_bool(0.2).then(|| "https://x.io/(a)".to_owned()),
            };
            let attrs: Vec<(&str, Any)> = [
                ("bold", marks.bold),
                ("italic", marks.italic),
                ("code", marks.code),
                ("strike", marks.strike),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| (name, Any::Bool(true)))
            .chain(
                marks
                    .link
                    .iter()
                    .map(|url| ("link", Any::from(url.as_str()))),
            )
            .collect();
            append_formatted(&doc, &id, &text, &attrs);
            expected.extend(text.chars().map(|c| (c, marks.clone())));
        }
        let has_formatting = expected
            .iter()
            .any(|(c, marks)| !c.is_whitespace() && !marks.is_plain());
        if has_formatting {
            formatted_input += 1;
        }
        let markdown = export(&doc);
        let parsed = from_markdown(&markdown).expect("parse");
        let text: String = expected.iter().map(|(c, _)| *c).collect();
        assert_eq!(parsed.len(), 1, "{text:?}\n{markdown}\n{parsed:#?}");
        assert_eq!(parsed[0].text, text, "{markdown}");
        // Marks survive on every character that is not whitespace (code survives on spaces too).
        let read: Vec<(char, Marks)> = parsed[0]
            .spans
            .iter()
            .flat_map(|span| span.text.chars().map(|c| (c, span.marks.clone())))
            .collect();
        // When the delimiters cannot say it, a block is written without formatting.
        if has_formatting && read.iter().all(|(_, marks)| marks.is_plain()) {
            unformatted += 1;
        } else {
            for ((c, want), (_, got)) in expected.iter().zip(&read) {
                if !c.is_whitespace() {
                    assert_eq!(want, got, "{c:?} in {text:?}\n{markdown}");
                }
            }
        }
        assert_eq!(round_trip(&markdown), markdown);
    }
    // Formatting that the delimiters cannot express is rare even with this alphabet.
    assert!(
        unformatted * 100 < formatted_input,
        "{unformatted} of {formatted_input} written without formatting"
    );
}
