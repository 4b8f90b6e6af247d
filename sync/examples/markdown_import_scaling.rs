//! Times a Markdown import into a document, for growing imports and documents: the import
//! reads the document's shape once, so its time per block stays flat as either grows. Beside
//! it, the same blocks inserted one `insert_block` at a time (how the import worked before
//! issue 14), each of which reads the whole document again.
//!
//! `cargo run -p potentia-sync --release --example markdown_import_scaling`
//!
//! Each row: a document already holding `existing` top-level paragraphs receives a Markdown
//! file of `imported` blocks (a list of items, every tenth with a nested item), in one
//! transaction, as `POST /api/v1/canvases/{id}/markdown` does. Best of three runs (one for
//! the quadratic column).

use std::time::{Duration, Instant};

use potentia_sync::markdown::{from_markdown, insert_blocks, ImportedBlock};
use potentia_sync::schema::{insert_block, read_blocks};
use potentia_sync::{NewBlock, Position};
use yrs::{Doc, Transact};

fn document(existing: usize) -> Doc {
    let doc = Doc::new();
    {
        let mut txn = doc.transact_mut();
        let mut previous: Option<String> = None;
        for i in 0..existing {
            let id = insert_block(
                &mut txn,
                NewBlock {
                    id: None,
                    kind: "paragraph".into(),
                    parent: None,
                    position: previous.map_or(Position::Last, Position::After),
                    text: format!("paragraph {i}"),
                    props: Default::default(),
                },
            )
            .expect("insert");
            previous = Some(id);
        }
    }
    doc
}

fn markdown(blocks: usize) -> String {
    let mut text = String::new();
    let mut made = 0;
    while made < blocks {
        text.push_str(&format!("- item **{made}**\n"));
        made += 1;
        if made % 10 == 0 && made < blocks {
            text.push_str(&format!("  - nested {made}\n"));
            made += 1;
        }
    }
    text
}

/// Inserts `blocks` depth-first, one `insert_block` each.
fn insert_one_by_one(txn: &mut yrs::TransactionMut, blocks: &[ImportedBlock]) -> usize {
    let mut count = 0;
    let mut stack: Vec<(&[ImportedBlock], usize, Option<String>, Position)> =
        vec![(blocks, 0, None, Position::Last)];
    while let Some((siblings, index, parent, position)) = stack.pop() {
        let Some(block) = siblings.get(index) else {
            continue;
        };
        let id = insert_block(
            txn,
            NewBlock {
                id: None,
                kind: block.kind.clone(),
                parent: parent.clone(),
                position,
                text: block.text.clone(),
                props: block.props.clone(),
            },
        )
        .expect("insert");
        stack.push((siblings, index + 1, parent, Position::After(id.clone())));
        stack.push((&block.children, 0, Some(id), Position::Last));
        count += 1;
    }
    count
}

fn best_of(runs: usize, existing: usize, import: impl Fn(&Doc) -> usize) -> Duration {
    (0..runs)
        .map(|_| {
            let doc = document(existing);
            let started = Instant::now();
            let imported = import(&doc);
            let elapsed = started.elapsed();
            assert_eq!(read_blocks(&doc.transact()).len(), existing + imported);
            elapsed
        })
        .min()
        .unwrap_or_default()
}

fn ms(elapsed: Duration) -> String {
    format!("{:.1} ms", elapsed.as_secs_f64() * 1e3)
}

fn main() {
    println!("| existing blocks | imported blocks | import | per imported block | one insert_block each | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (existing, imported) in [
        (0, 1_000),
        (0, 2_500),
        (0, 5_000),
        (0, 10_000),
        (10_000, 1_000),
        (10_000, 10_000),
    ] {
        let parsed = from_markdown(&markdown(imported)).expect("markdown");
        let import = best_of(3, existing, |doc| {
            insert_blocks(&mut doc.transact_mut(), &parsed, None, Position::Last)
                .expect("import")
                .len()
        });
        // Quadratic: one run.
        let one_by_one = best_of(1, existing, |doc| {
            insert_one_by_one(&mut doc.transact_mut(), &parsed)
        });
        println!(
            "| {existing} | {imported} | {} | {:.1} µs | {} | {:.0}× |",
            ms(import),
            import.as_secs_f64() * 1e6 / imported as f64,
            ms(one_by_one),
            one_by_one.as_secs_f64() / import.as_secs_f64()
        );
    }
}
