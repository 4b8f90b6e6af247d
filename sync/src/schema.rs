//! The typed canvas document (ARCHITECTURE §2): blocks and meta read from and written to a
//! [`yrs`] document exactly as a JavaScript client shapes them, one implementation shared by
//! the server's REST writes, the materializer and the Rust client.
//!
//! ```text
//! doc.getMap("blocks")   Y.Map<blockId, Y.Map>   type, order, parent, text (Y.Text), props (Y.Map)
//! doc.getMap("meta")     Y.Map                    title, icon
//! ```
//!
//! Reading is lenient, because any client may have written the document: unknown block types
//! and unknown keys are kept, a missing `type` reads as [`DEFAULT_KIND`], a missing `order` as
//! the empty key (first), a `text` or `props` written as a plain JSON value instead of a shared
//! type is still read, and entries of `blocks` that are not maps are skipped. Writing is strict:
//! ids must be UUIDs, anchors must exist and be siblings, and a move may not make a cycle; every
//! refusal is a [`SchemaError`] and leaves the document untouched.
//!
//! # The shown tree
//!
//! Siblings are sorted by `(order, id)`, byte-wise. Concurrent edits can leave a block whose
//! `parent` was deleted (an orphan) or two blocks moved under each other (a cycle); such blocks
//! are never lost: an orphan is shown at the top level, and of each cycle the member first by
//! `(order, id)` is shown at the top level with the rest of the cycle under it. This rule is a
//! pure function of the document, so every replica shows the same tree; [`ordered`] applies
//! it, and positions ([`Position`]) and cycle checks refer to that shown tree.
//!
//! # Writes
//!
//! * [`insert_block`] gives the new block a key between its neighbours; no other block changes.
//! * [`move_blocks`] / [`move_block`] write only `order` (and `parent` when it changes).
//! * Only when the neighbours' keys cannot frame a new key (two tied keys left by concurrent
//!   inserts, or a key that is not valid) is the short run of tied or invalid siblings next to
//!   the gap re-keyed with it, in the same transaction.
//! * [`delete_block`] removes the block and its whole subtree, so no children are left behind
//!   as orphans (a child added concurrently on another replica still survives as an orphan).
//! * [`update_block`] writes only the fields that change; the text is replaced by its smallest
//!   edit (common prefix and suffix kept), so formatting and concurrent edits outside the
//!   changed span survive.
//! * [`rebalance_children`] gives a parent's children short keys, for keys grown past
//!   [`order::REBALANCE_LEN`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;
use yrs::types::ToJson;
use yrs::{
    Any, GetString, Map, MapPrelim, MapRef, Number, OffsetKind, Out, ReadTxn, Text, TextPrelim,
    TextRef, TransactionMut, WriteTxn,
};

use crate::order::{self, OrderError};

/// The root map of the blocks.
pub const BLOCKS: &str = "blocks";
/// The root map of the canvas meta.
pub const META: &str = "meta";
/// Key of a block's type.
pub const TYPE: &str = "type";
/// Key of a block's order key.
pub const ORDER: &str = "order";
/// Key of a block's parent id.
pub const PARENT: &str = "parent";
/// Key of a block's rich text (Y.Text).
pub const TEXT: &str = "text";
/// Key of a block's properties (Y.Map).
pub const PROPS: &str = "props";
/// Key of the canvas title in `meta`.
pub const TITLE: &str = "title";
/// Key of the canvas icon in `meta`.
pub const ICON: &str = "icon";
/// The type a block without a `type` reads as.
pub const DEFAULT_KIND: &str = "paragraph";

/// One block as read from the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    /// The block id, the key in `blocks` (a lowercase UUID when written by a well-behaved client).
    pub id: String,
    /// The block type (`type`), kept as written, known or not.
    pub kind: String,
    /// The fractional order key among its siblings.
    pub order: String,
    /// The parent block id as stored; `None` at the top level.
    pub parent: Option<String>,
    /// The plain text (embeds left out).
    pub text: String,
    /// The text as a Quill-style delta: `[{"insert": "…", "attributes": {…}}, …]`.
    pub rich: Value,
    /// The block properties.
    pub props: serde_json::Map<String, Value>,
}

/// The canvas meta (`doc.getMap("meta")`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CanvasMeta {
    /// The title; empty when none was set.
    pub title: String,
    /// The icon, if any.
    pub icon: Option<String>,
}

/// A change of the canvas meta: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaPatch {
    pub title: Option<String>,
    /// `Some(None)` removes the icon.
    pub icon: Option<Option<String>>,
}

/// Where a block goes among the children of its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Before every sibling.
    First,
    /// After every sibling.
    Last,
    /// Right after this sibling.
    After(String),
    /// Right before this sibling.
    Before(String),
}

/// A block to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBlock {
    /// The id to give the block; `None` generates a UUIDv7.
    pub id: Option<String>,
    pub kind: String,
    /// The parent block; `None` = top level.
    pub parent: Option<String>,
    /// The place among the parent's children.
    pub position: Position,
    pub text: String,
    /// Initial properties; `null` values are left out.
    pub props: serde_json::Map<String, Value>,
}

/// A change of a block: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockPatch {
    pub kind: Option<String>,
    /// Replaces the plain text (by its smallest edit).
    pub text: Option<String>,
    /// Merged into the properties: a `null` value deletes the property.
    pub props: Option<serde_json::Map<String, Value>>,
}

/// Why a write was refused. A refused write changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// An id that is not a UUID.
    #[error("invalid block id {0:?}: not a UUID")]
    InvalidId(String),
    /// No block with this id.
    #[error("no block {0}")]
    UnknownBlock(String),
    /// A new block with the id of an existing one.
    #[error("block {0} already exists")]
    DuplicateId(String),
    /// A position relative to a block that is not a child of the target parent.
    #[error("block {anchor} is not a child of {}", parent.as_deref().unwrap_or("the top level"))]
    AnchorNotSibling {
        anchor: String,
        parent: Option<String>,
    },
    /// A position relative to one of the blocks being moved.
    #[error("block {0} cannot be positioned relative to itself")]
    AnchorIsMoved(String),
    /// A block moved under itself.
    #[error("block {0} cannot be moved under itself")]
    MoveUnderItself(String),
    /// A block moved under one of its descendants.
    #[error("moving block {block} under its descendant {parent} would make a cycle")]
    ParentCycle { block: String, parent: String },
    /// The same block listed twice in one move.
    #[error("block {0} is listed twice")]
    DuplicateInMove(String),
    /// A write that would nest blocks deeper than [`MAX_DEPTH`].
    #[error("blocks may nest at most {max} levels deep")]
    TooDeep { max: usize },
    /// A key could not be generated (not expected with valid keys; see [`OrderError`]).
    #[error(transparent)]
    Order(#[from] OrderError),
}

/// The deepest a write may nest blocks (a top-level block is at depth 1), as the Markdown
/// import does: readers build a block's path through its parent chain. Documents that other
/// clients nested deeper are still read.
pub const MAX_DEPTH: usize = 64;

/// Checks that `id` is a UUID and returns it in the canonical lowercase hyphenated form.
pub fn normalize_id(id: &str) -> Result<String, SchemaError> {
    Uuid::parse_str(id)
        .map(|uuid| uuid.hyphenated().to_string())
        .map_err(|_| SchemaError::InvalidId(id.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Every block of the document, in document order: depth-first, siblings by `(order, id)`.
pub fn read_blocks<T: ReadTxn>(txn: &T) -> Vec<Block> {
    let Some(blocks) = txn.get_map(BLOCKS) else {
        return Vec::new();
    };
    let unordered = blocks
        .iter(txn)
        .filter_map(|(id, value)| match value {
            Out::YMap(block) => Some(read_block_map(txn, id, &block)),
            _ => None,
        })
        .collect();
    ordered(unordered)
}

/// One block by id (any spelling of the UUID).
pub fn read_block<T: ReadTxn>(txn: &T, id: &str) -> Result<Block, SchemaError> {
    let id = normalize_id(id)?;
    txn.get_map(BLOCKS)
        .and_then(|blocks| match blocks.get(txn, &id) {
            Some(Out::YMap(block)) => Some(read_block_map(txn, &id, &block)),
            _ => None,
        })
        .ok_or(SchemaError::UnknownBlock(id))
}

/// The longest canvas title kept in the `canvases` row, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// The longest canvas icon kept in the `canvases` row, in characters.
pub const MAX_ICON_CHARS: usize = 2048;

/// What the document's meta says, field by field: `None` where it says nothing (a document
/// that never had the key, or holds something other than a string there), so a reader can
/// keep what it had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaFields {
    pub title: Option<String>,
    /// `Some(None)`: the icon was removed.
    pub icon: Option<Option<String>>,
}

/// The meta keys the document holds, as [`MetaFields`].
pub fn read_meta_fields<T: ReadTxn>(txn: &T) -> MetaFields {
    let Some(meta) = txn.get_map(META) else {
        return MetaFields::default();
    };
    // A value of another type than a string says nothing (a client's mistake must not blank
    // the title); only an explicit `null` removes the icon.
    let icon = match meta.get(txn, ICON) {
        Some(Out::Any(Any::Null)) => Some(None),
        value => string_value(value).map(Some),
    };
    MetaFields {
        title: string_value(meta.get(txn, TITLE)),
        icon,
    }
}

/// The canvas meta.
pub fn read_meta<T: ReadTxn>(txn: &T) -> CanvasMeta {
    let Some(meta) = txn.get_map(META) else {
        return CanvasMeta::default();
    };
    CanvasMeta {
        title: string_value(meta.get(txn, TITLE)).unwrap_or_default(),
        icon: string_value(meta.get(txn, ICON)),
    }
}

/// Sorts blocks into the shown tree's depth-first order: siblings by `(order, id)`, every block
/// after its parent and before its parent's next sibling, orphans and cycles placed as the
/// module documentation says. No block is dropped.
pub fn ordered(blocks: Vec<Block>) -> Vec<Block> {
    let outline = Outline::new(blocks.iter().map(|block| {
        (
            block.id.as_str(),
            block.order.as_str(),
            block.parent.as_deref(),
        )
    }));
    let order = outline.depth_first();
    let mut slots: Vec<Option<Block>> = blocks.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|index| slots.get_mut(index).and_then(Option::take))
        .collect()
}

fn read_block_map<T: ReadTxn>(txn: &T, id: &str, block: &MapRef) -> Block {
    let (text, rich) = match block.get(txn, TEXT) {
        Some(Out::YText(text)) => (text.get_string(txn), rich_text(txn, &text)),
        Some(Out::Any(Any::String(plain))) => (
            plain.to_string(),
            Value::Array(vec![serde_json::json!({ "insert": plain.as_ref() })]),
        ),
        _ => (String::new(), Value::Array(Vec::new())),
    };
    let props = match block.get(txn, PROPS) {
        Some(Out::YMap(props)) => props
            .iter(txn)
            .map(|(key, value)| (key.to_owned(), out_to_json(txn, value)))
            .collect(),
        Some(Out::Any(Any::Map(props))) => props
            .iter()
            .map(|(key, value)| (key.clone(), any_to_json(value)))
            .collect(),
        _ => serde_json::Map::new(),
    };
    Block {
        id: id.to_owned(),
        kind: string_value(block.get(txn, TYPE)).unwrap_or_else(|| DEFAULT_KIND.to_owned()),
        order: string_value(block.get(txn, ORDER)).unwrap_or_default(),
        parent: parent_value(block.get(txn, PARENT)),
        text,
        rich,
        props,
    }
}

fn rich_text<T: ReadTxn>(txn: &T, text: &TextRef) -> Value {
    let chunks = text
        .diff(txn, |_| ())
        .into_iter()
        .map(|chunk| {
            let mut op = serde_json::Map::new();
            op.insert("insert".to_owned(), out_to_json(txn, chunk.insert));
            if let Some(attributes) = chunk.attributes.filter(|attributes| !attributes.is_empty()) {
                let attributes = attributes
                    .iter()
                    .map(|(key, value)| (key.to_string(), any_to_json(value)))
                    .collect();
                op.insert("attributes".to_owned(), Value::Object(attributes));
            }
            Value::Object(op)
        })
        .collect();
    Value::Array(chunks)
}

fn string_value(value: Option<Out>) -> Option<String> {
    match value {
        Some(Out::Any(Any::String(value))) => Some(value.to_string()),
        _ => None,
    }
}

/// A parent id: a non-empty string; null, missing or anything else is the top level.
fn parent_value(value: Option<Out>) -> Option<String> {
    string_value(value).filter(|parent| !parent.is_empty())
}

// ---------------------------------------------------------------------------------------------
// The shown tree

/// The shape of the blocks: ids, keys and parents, with the effective parent of each block
/// (orphans and cycles resolved) and the sorted children of each parent.
struct Outline<'a> {
    ids: Vec<&'a str>,
    keys: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
    /// The parent in the shown tree; `None` = top level.
    effective_parent: Vec<Option<usize>>,
    /// Children of each block, sorted by `(order, id)`.
    children: Vec<Vec<usize>>,
    /// Top-level blocks, sorted by `(order, id)`.
    roots: Vec<usize>,
}

impl<'a> Outline<'a> {
    fn new(entries: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>) -> Self {
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        let mut parents = Vec::new();
        for (id, key, parent) in entries {
            ids.push(id);
            keys.push(key);
            parents.push(parent);
        }
        let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut effective_parent: Vec<Option<usize>> = parents
            .iter()
            .enumerate()
            .map(|(i, parent)| {
                parent
                    .and_then(|parent| index.get(parent).copied())
                    .filter(|&parent| parent != i)
            })
            .collect();
        let count = ids.len();
        let by_position = |a: &usize, b: &usize| (keys[*a], ids[*a]).cmp(&(keys[*b], ids[*b]));

        // Blocks that reach the top level through their parents; the others are in, or under,
        // a cycle. Cycles are cut at their first member by (order, id), visiting candidates in
        // that order, so every replica cuts the same edges.
        let mut children = vec![Vec::new(); count];
        for (i, parent) in effective_parent.iter().enumerate() {
            if let Some(parent) = parent {
                children[*parent].push(i);
            }
        }
        let mut reached = vec![false; count];
        let mut stack: Vec<usize> = (0..count)
            .filter(|&i| effective_parent[i].is_none())
            .collect();
        mark_reached(&mut stack, &children, &mut reached);
        let mut candidates: Vec<usize> = (0..count).filter(|&i| !reached[i]).collect();
        candidates.sort_by(by_position);
        for candidate in candidates {
            if reached[candidate] {
                continue;
            }
            // Walk up until a block repeats: that block is on the cycle.
            let mut seen = HashSet::new();
            let mut current = candidate;
            while seen.insert(current) {
                match effective_parent[current] {
                    Some(parent) => current = parent,
                    None => break,
                }
            }
            let mut cycle = vec![current];
            let mut member = effective_parent[current];
            while let Some(next) = member.filter(|&next| next != current) {
                cycle.push(next);
                member = effective_parent[next];
            }
            let Some(&cut) = cycle.iter().min_by(|a, b| by_position(a, b)) else {
                continue;
            };
            if let Some(parent) = effective_parent[cut].take() {
                children[parent].retain(|&child| child != cut);
            }
            stack.push(cut);
            mark_reached(&mut stack, &children, &mut reached);
        }

        for siblings in &mut children {
            siblings.sort_by(by_position);
        }
        let mut roots: Vec<usize> = (0..count)
            .filter(|&i| effective_parent[i].is_none())
            .collect();
        roots.sort_by(by_position);
        Outline {
            ids,
            keys,
            index,
            effective_parent,
            children,
            roots,
        }
    }

    /// Indexes in depth-first order (iterative, so deep nesting cannot overflow the stack).
    fn depth_first(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.ids.len());
        let mut stack: Vec<usize> = self.roots.iter().rev().copied().collect();
        while let Some(block) = stack.pop() {
            order.push(block);
            stack.extend(self.children[block].iter().rev());
        }
        order
    }

    /// The sorted children of `parent` (`None` = top level).
    fn children_of(&self, parent: Option<usize>) -> &[usize] {
        match parent {
            Some(parent) => &self.children[parent],
            None => &self.roots,
        }
    }

    /// Whether `ancestor` is `block` or one of its ancestors in the shown tree.
    fn is_ancestor_or_self(&self, ancestor: usize, block: usize) -> bool {
        let mut current = Some(block);
        while let Some(node) = current {
            if node == ancestor {
                return true;
            }
            current = self.effective_parent[node];
        }
        false
    }

    /// `block` and all its descendants in the shown tree, the block first.
    fn subtree(&self, block: usize) -> Vec<usize> {
        let mut found = Vec::new();
        let mut stack = vec![block];
        while let Some(node) = stack.pop() {
            found.push(node);
            stack.extend(self.children[node].iter().rev());
        }
        found
    }

    /// How deep `block` is in the shown tree: 1 at the top level, 0 for the top level itself.
    fn depth(&self, block: Option<usize>) -> usize {
        let mut depth = 0;
        let mut current = block;
        while let Some(node) = current {
            depth += 1;
            current = self.effective_parent[node];
        }
        depth
    }

    /// How many levels `block`'s subtree spans: 1 for a block without children.
    fn height(&self, block: usize) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(block, 1)];
        while let Some((node, level)) = stack.pop() {
            deepest = deepest.max(level);
            stack.extend(self.children[node].iter().map(|&child| (child, level + 1)));
        }
        deepest
    }

    /// A write's target parent (`None` = top level): its canonical id and its index.
    fn parent(&self, id: Option<&str>) -> Result<(Option<String>, Option<usize>), SchemaError> {
        let id = id.map(normalize_id).transpose()?;
        let index = id.as_deref().map(|id| self.lookup(id)).transpose()?;
        Ok((id, index))
    }

    fn lookup(&self, id: &str) -> Result<usize, SchemaError> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| SchemaError::UnknownBlock(id.to_owned()))
    }
}

fn mark_reached(stack: &mut Vec<usize>, children: &[Vec<usize>], reached: &mut [bool]) {
    while let Some(block) = stack.pop() {
        if !reached[block] {
            reached[block] = true;
            stack.extend(children[block].iter().copied());
        }
    }
}

/// The id, order key and stored parent of every block map, the input of an `Outline`.
struct Shape {
    entries: Vec<(String, String, Option<String>)>,
}

impl Shape {
    fn read<T: ReadTxn>(txn: &T, blocks: &MapRef) -> Self {
        let entries = blocks
            .iter(txn)
            .filter_map(|(id, value)| match value {
                Out::YMap(block) => Some((
                    id.to_owned(),
                    string_value(block.get(txn, ORDER)).unwrap_or_default(),
                    parent_value(block.get(txn, PARENT)),
                )),
                _ => None,
            })
            .collect();
        Shape { entries }
    }

    fn outline(&self) -> Outline<'_> {
        Outline::new(
            self.entries
                .iter()
                .map(|(id, key, parent)| (id.as_str(), key.as_str(), parent.as_deref())),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Placing blocks

/// The keys that place `count` blocks in the gap before `siblings[gap]`: one key per placed
/// block, and the new keys of any neighbours that had to be re-keyed with them.
struct Placement {
    keys: Vec<String>,
    rekeyed: Vec<(usize, String)>,
}

/// `siblings` are (order key, block index) pairs sorted by `(order, id)`, without the blocks
/// being placed. Normally the new keys fall between the two neighbours and nothing else
/// changes; when the neighbours cannot frame a key (equal keys from concurrent inserts, or an
/// invalid key), the invalid run before the gap and the tied or invalid run after it are
/// re-keyed together with the new blocks, between the nearest usable keys.
fn place(siblings: &[(&str, usize)], gap: usize, count: usize) -> Result<Placement, OrderError> {
    let mut low = gap;
    while low > 0 && !order::is_valid_key(siblings[low - 1].0) {
        low -= 1;
    }
    let lower = low.checked_sub(1).map(|i| siblings[i].0);
    let mut high = gap;
    while high < siblings.len() {
        let key = siblings[high].0;
        if order::is_valid_key(key) && lower.is_none_or(|lower| key > lower) {
            break;
        }
        high += 1;
    }
    let upper = siblings.get(high).map(|sibling| sibling.0);
    let total = (gap - low) + count + (high - gap);
    let mut keys = if total == 1 {
        // The common case; an empty list starts at `order::FIRST_KEY`, as JavaScript clients do.
        vec![order::key_between(lower, upper)?]
    } else {
        order::keys_between(lower, upper, total)?
    };
    let after: Vec<String> = keys.split_off(gap - low + count);
    let placed: Vec<String> = keys.split_off(gap - low);
    let rekeyed = siblings[low..gap]
        .iter()
        .map(|sibling| sibling.1)
        .zip(keys)
        .chain(
            siblings[gap..high]
                .iter()
                .map(|sibling| sibling.1)
                .zip(after),
        )
        .collect();
    Ok(Placement {
        keys: placed,
        rekeyed,
    })
}

/// Resolves a position among `parent`'s children (without `moving`) to a gap index.
fn resolve_gap(
    outline: &Outline<'_>,
    siblings: &[(&str, usize)],
    parent: Option<usize>,
    position: &Position,
    moving: &HashSet<usize>,
) -> Result<usize, SchemaError> {
    let anchor_gap = |anchor: &str, after: bool| -> Result<usize, SchemaError> {
        let anchor_id = normalize_id(anchor)?;
        let anchor = outline.lookup(&anchor_id)?;
        if moving.contains(&anchor) {
            return Err(SchemaError::AnchorIsMoved(anchor_id));
        }
        let found = siblings.iter().position(|sibling| sibling.1 == anchor);
        match found {
            Some(index) => Ok(if after { index + 1 } else { index }),
            None => Err(SchemaError::AnchorNotSibling {
                anchor: anchor_id,
                parent: parent.map(|parent| outline.ids[parent].to_owned()),
            }),
        }
    };
    match position {
        Position::First => Ok(0),
        Position::Last => Ok(siblings.len()),
        Position::After(anchor) => anchor_gap(anchor, true),
        Position::Before(anchor) => anchor_gap(anchor, false),
    }
}

fn sibling_keys<'o>(
    outline: &'o Outline<'_>,
    parent: Option<usize>,
    moving: &HashSet<usize>,
) -> Vec<(&'o str, usize)> {
    outline
        .children_of(parent)
        .iter()
        .filter(|child| !moving.contains(child))
        .map(|&child| (outline.keys[child], child))
        .collect()
}

fn blocks_map(txn: &mut TransactionMut) -> MapRef {
    txn.get_or_insert_map(BLOCKS)
}

fn block_map(txn: &TransactionMut, blocks: &MapRef, id: &str) -> Option<MapRef> {
    match blocks.get(txn, id) {
        Some(Out::YMap(block)) => Some(block),
        _ => None,
    }
}

fn nullable_string(value: Option<&str>) -> Any {
    value.map_or(Any::Null, Any::from)
}

/// Writes the re-keyed neighbours of a placement.
fn write_rekeyed(
    txn: &mut TransactionMut,
    blocks: &MapRef,
    outline: &Outline<'_>,
    rekeyed: &[(usize, String)],
) {
    for (sibling, key) in rekeyed {
        if let Some(block) = block_map(txn, blocks, outline.ids[*sibling]) {
            block.insert(txn, ORDER, key.as_str());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Inserts a block at `block.position` under `block.parent` and returns its id. Only the new
/// block is written, unless tied or invalid neighbour keys had to be re-keyed (see the module
/// documentation).
pub fn insert_block(txn: &mut TransactionMut, block: NewBlock) -> Result<String, SchemaError> {
    let id = match &block.id {
        Some(id) => normalize_id(id)?,
        None => Uuid::now_v7().to_string(),
    };
    let blocks = blocks_map(txn);
    if blocks.contains_key(txn, &id) {
        return Err(SchemaError::DuplicateId(id));
    }
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let (parent_id, parent) = outline.parent(block.parent.as_deref())?;
    if outline.depth(parent) >= MAX_DEPTH {
        return Err(SchemaError::TooDeep { max: MAX_DEPTH });
    }
    let nothing_moves = HashSet::new();
    let siblings = sibling_keys(&outline, parent, &nothing_moves);
    let gap = resolve_gap(&outline, &siblings, parent, &block.position, &nothing_moves)?;
    let placement = place(&siblings, gap, 1)?;
    let key = placement.keys.into_iter().next().unwrap_or_default();

    write_rekeyed(txn, &blocks, &outline, &placement.rekeyed);
    let new_block = write_new_block(
        txn,
        &blocks,
        &id,
        &block.kind,
        key,
        parent_id.as_deref(),
        &block.props,
    );
    new_block.insert(txn, TEXT, TextPrelim::new(block.text));
    Ok(id)
}

/// Writes a new block map with an empty text (a shared type from the start, so clients edit
/// it), its props, and the given place.
fn write_new_block(
    txn: &mut TransactionMut,
    blocks: &MapRef,
    id: &str,
    kind: &str,
    key: String,
    parent: Option<&str>,
    props: &serde_json::Map<String, Value>,
) -> MapRef {
    let props: MapPrelim = props
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.as_str(), json_to_any(value)))
        .collect();
    let fields = MapPrelim::from([
        (TYPE, Any::from(kind)),
        (ORDER, Any::from(key)),
        (PARENT, nullable_string(parent)),
    ]);
    let new_block = blocks.insert(txn, id, fields);
    new_block.insert(txn, PROPS, props);
    new_block
}

/// A block to insert with its children, for [`insert_subtrees`].
pub trait NewSubtree: Sized {
    fn kind(&self) -> &str;
    fn props(&self) -> &serde_json::Map<String, Value>;
    fn children(&self) -> &[Self];
}

/// Inserts `roots` next to each other at `position` under `parent`, each with its children,
/// reading the document's shape once: an import of n blocks costs O(n + document), not
/// O(n × document). The texts are left empty. Returns the new ids depth-first, as the
/// document orders them. Nothing is written when the parent, the anchor or the depth is
/// refused.
pub fn insert_subtrees<S: NewSubtree>(
    txn: &mut TransactionMut,
    roots: &[S],
    parent: Option<&str>,
    position: Position,
) -> Result<Vec<String>, SchemaError> {
    let blocks = blocks_map(txn);
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let (parent_id, parent) = outline.parent(parent)?;
    let nothing_moves = HashSet::new();
    let siblings = sibling_keys(&outline, parent, &nothing_moves);
    let gap = resolve_gap(&outline, &siblings, parent, &position, &nothing_moves)?;
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let height = roots.iter().map(subtree_height).max().unwrap_or(0);
    if outline.depth(parent) + height > MAX_DEPTH {
        return Err(SchemaError::TooDeep { max: MAX_DEPTH });
    }
    let placement = place(&siblings, gap, roots.len())?;
    write_rekeyed(txn, &blocks, &outline, &placement.rekeyed);

    let mut ids = Vec::new();
    // (block, its parent's id, its key), popped in document order.
    let mut stack: Vec<(&S, Option<String>, String)> = roots
        .iter()
        .zip(placement.keys)
        .rev()
        .map(|(block, key)| (block, parent_id.clone(), key))
        .collect();
    while let Some((block, parent, key)) = stack.pop() {
        let id = Uuid::now_v7().to_string();
        let new_block = write_new_block(
            txn,
            &blocks,
            &id,
            block.kind(),
            key,
            parent.as_deref(),
            block.props(),
        );
        new_block.insert(txn, TEXT, TextPrelim::new(""));
        let children = block.children();
        if !children.is_empty() {
            // A new parent has no other children: the keys are those of an empty list.
            let keys = place(&[], 0, children.len())?.keys;
            for (child, key) in children.iter().zip(keys).rev() {
                stack.push((child, Some(id.clone()), key));
            }
        }
        ids.push(id);
    }
    Ok(ids)
}

/// How many levels `block`'s subtree spans.
fn subtree_height<S: NewSubtree>(block: &S) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(block, 1)];
    while let Some((node, level)) = stack.pop() {
        deepest = deepest.max(level);
        stack.extend(node.children().iter().map(|child| (child, level + 1)));
    }
    deepest
}

/// Applies `patch` to block `id`, writing only what changes. Returns whether anything changed.
pub fn update_block(
    txn: &mut TransactionMut,
    id: &str,
    patch: BlockPatch,
) -> Result<bool, SchemaError> {
    let id = normalize_id(id)?;
    let blocks = blocks_map(txn);
    let block =
        block_map(txn, &blocks, &id).ok_or_else(|| SchemaError::UnknownBlock(id.clone()))?;
    let mut changed = false;
    if let Some(kind) = patch.kind {
        if string_value(block.get(txn, TYPE)).as_deref() != Some(kind.as_str()) {
            block.insert(txn, TYPE, kind);
            changed = true;
        }
    }
    if let Some(text) = patch.text {
        changed |= replace_text(txn, &block, &text);
    }
    if let Some(props) = patch.props {
        changed |= merge_props(txn, &block, &props);
    }
    Ok(changed)
}

/// Moves one block to `position` under `parent`, writing only its `order` (and `parent` when
/// it changes). Returns whether anything changed: a block already at that place is not
/// rewritten.
pub fn move_block(
    txn: &mut TransactionMut,
    id: &str,
    parent: Option<&str>,
    position: Position,
) -> Result<bool, SchemaError> {
    move_blocks(txn, &[id], parent, position)
}

/// Moves `ids`, in this order, to one contiguous run at `position` under `parent` (a bulk
/// reorder): each moved block gets a new `order` (and `parent`), spread evenly over the gap.
/// Returns whether anything changed.
pub fn move_blocks(
    txn: &mut TransactionMut,
    ids: &[&str],
    parent: Option<&str>,
    position: Position,
) -> Result<bool, SchemaError> {
    let blocks = blocks_map(txn);
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let (parent_id, parent) = outline.parent(parent)?;
    let mut moving_ids = Vec::with_capacity(ids.len());
    let mut moving = HashSet::with_capacity(ids.len());
    for id in ids {
        let id = normalize_id(id)?;
        let block = outline.lookup(&id)?;
        if !moving.insert(block) {
            return Err(SchemaError::DuplicateInMove(id));
        }
        if let Some(parent) = parent {
            if parent == block {
                return Err(SchemaError::MoveUnderItself(id));
            }
            if outline.is_ancestor_or_self(block, parent) {
                return Err(SchemaError::ParentCycle {
                    block: id,
                    parent: outline.ids[parent].to_owned(),
                });
            }
        }
        moving_ids.push((id, block));
    }
    if moving_ids.is_empty() {
        return Ok(false);
    }
    let height = moving_ids
        .iter()
        .map(|(_, block)| outline.height(*block))
        .max()
        .unwrap_or(0);
    if outline.depth(parent) + height > MAX_DEPTH {
        return Err(SchemaError::TooDeep { max: MAX_DEPTH });
    }
    let siblings = sibling_keys(&outline, parent, &moving);
    let gap = resolve_gap(&outline, &siblings, parent, &position, &moving)?;
    if let [(_, block)] = moving_ids.as_slice() {
        if already_placed(
            &outline,
            &shape,
            *block,
            parent_id.as_deref(),
            &siblings,
            gap,
        ) {
            return Ok(false);
        }
    }
    let placement = place(&siblings, gap, moving_ids.len())?;

    write_rekeyed(txn, &blocks, &outline, &placement.rekeyed);
    for ((id, block), key) in moving_ids.iter().zip(placement.keys) {
        let Some(map) = block_map(txn, &blocks, id) else {
            continue;
        };
        if outline.keys[*block] != key {
            map.insert(txn, ORDER, key);
        }
        if shape.entries[*block].2.as_deref() != parent_id.as_deref() {
            map.insert(txn, PARENT, nullable_string(parent_id.as_deref()));
        }
    }
    Ok(true)
}

/// Whether `block` already sits in `gap` of `siblings` under the stored `parent`, with a valid
/// key: then moving it there changes nothing.
fn already_placed(
    outline: &Outline<'_>,
    shape: &Shape,
    block: usize,
    parent: Option<&str>,
    siblings: &[(&str, usize)],
    gap: usize,
) -> bool {
    let key = outline.keys[block];
    if shape.entries[block].2.as_deref() != parent || !order::is_valid_key(key) {
        return false;
    }
    let position = (key, outline.ids[block]);
    let after_lower = gap
        .checked_sub(1)
        .map(|i| siblings[i])
        .is_none_or(|(lower, index)| (lower, outline.ids[index]) < position);
    let before_upper = siblings
        .get(gap)
        .is_none_or(|&(upper, index)| position < (upper, outline.ids[index]));
    after_lower && before_upper
}

/// Deletes block `id` and its whole subtree; returns the deleted ids, the block first.
pub fn delete_block(txn: &mut TransactionMut, id: &str) -> Result<Vec<String>, SchemaError> {
    let id = normalize_id(id)?;
    let blocks = blocks_map(txn);
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let block = outline.lookup(&id)?;
    let deleted: Vec<String> = outline
        .subtree(block)
        .into_iter()
        .map(|index| outline.ids[index].to_owned())
        .collect();
    for deleted_id in &deleted {
        blocks.remove(txn, deleted_id);
    }
    Ok(deleted)
}

/// Applies `patch` to the canvas meta, writing only what changes. Returns whether anything
/// changed.
pub fn set_meta(txn: &mut TransactionMut, patch: MetaPatch) -> bool {
    let meta = txn.get_or_insert_map(META);
    let current = read_meta(txn);
    let mut changed = false;
    if let Some(title) = patch.title {
        if title != current.title || !meta.contains_key(txn, TITLE) {
            meta.insert(txn, TITLE, title);
            changed = true;
        }
    }
    if let Some(icon) = patch.icon {
        if icon != current.icon || !meta.contains_key(txn, ICON) {
            meta.insert(txn, ICON, nullable_string(icon.as_deref()));
            changed = true;
        }
    }
    changed
}

/// Gives the children of `parent` (`None` = top level) short evenly spaced keys
/// ([`order::rebalance`]) in their current order, in this one transaction. Returns how many keys
/// changed.
///
/// A block inserted concurrently on another replica keeps the key it was given between the old
/// keys, so it may land elsewhere among the rebalanced siblings; every replica still shows the
/// same order.
pub fn rebalance_children(
    txn: &mut TransactionMut,
    parent: Option<&str>,
) -> Result<usize, SchemaError> {
    let blocks = blocks_map(txn);
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let parent = parent
        .map(normalize_id)
        .transpose()?
        .map(|parent| outline.lookup(&parent))
        .transpose()?;
    let children = outline.children_of(parent);
    let keys = order::rebalance(children.len());
    let mut changed = 0;
    for (&child, key) in children.iter().zip(keys) {
        if outline.keys[child] != key {
            if let Some(map) = block_map(txn, &blocks, outline.ids[child]) {
                map.insert(txn, ORDER, key);
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// The parents (`None` = top level) with a child whose key is longer than `max_len` bytes or
/// not valid: the sibling lists a server should [`rebalance_children`].
pub fn parents_needing_rebalance<T: ReadTxn>(txn: &T, max_len: usize) -> Vec<Option<String>> {
    let Some(blocks) = txn.get_map(BLOCKS) else {
        return Vec::new();
    };
    let shape = Shape::read(txn, &blocks);
    let outline = shape.outline();
    let mut parents: Vec<Option<String>> = (0..outline.ids.len())
        .filter(|&i| outline.keys[i].len() > max_len || !order::is_valid_key(outline.keys[i]))
        .map(|i| outline.effective_parent[i].map(|parent| outline.ids[parent].to_owned()))
        .collect();
    parents.sort();
    parents.dedup();
    parents
}

/// Replaces the block's text by the smallest edit; returns whether it changed.
fn replace_text(txn: &mut TransactionMut, block: &MapRef, new: &str) -> bool {
    let text = match block.get(txn, TEXT) {
        Some(Out::YText(text)) => text,
        _ => {
            block.insert(txn, TEXT, TextPrelim::new(new));
            return true;
        }
    };
    let old = text.get_string(txn);
    if old == new {
        return false;
    }
    let has_embeds = text
        .diff(txn, |_| ())
        .iter()
        .any(|chunk| !matches!(chunk.insert, Out::Any(Any::String(_))));
    if has_embeds {
        // Offsets count embeds that the plain text leaves out: replace the whole text.
        let length = text.len(txn);
        text.remove_range(txn, 0, length);
        text.insert(txn, 0, new);
        return true;
    }
    let prefix: usize = old
        .chars()
        .zip(new.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let (old_rest, new_rest) = (&old[prefix..], &new[prefix..]);
    let suffix: usize = old_rest
        .chars()
        .rev()
        .zip(new_rest.chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .sum();
    let removed = &old_rest[..old_rest.len() - suffix];
    let inserted = &new_rest[..new_rest.len() - suffix];
    let offset_kind = txn.doc().offset_kind();
    let index = text_length(&old[..prefix], offset_kind);
    if !removed.is_empty() {
        text.remove_range(txn, index, text_length(removed, offset_kind));
    }
    if !inserted.is_empty() {
        text.insert(txn, index, inserted);
    }
    true
}

fn text_length(text: &str, offset_kind: OffsetKind) -> u32 {
    let length = match offset_kind {
        OffsetKind::Bytes => text.len(),
        OffsetKind::Utf16 => text.encode_utf16().count(),
    };
    u32::try_from(length).unwrap_or(u32::MAX)
}

/// Merges `props` into the block's props (`null` deletes); returns whether anything changed.
fn merge_props(
    txn: &mut TransactionMut,
    block: &MapRef,
    props: &serde_json::Map<String, Value>,
) -> bool {
    let map = match block.get(txn, PROPS) {
        Some(Out::YMap(map)) => map,
        other => {
            // No props yet, or props written as a plain JSON value: make them a Y.Map.
            let existing: Vec<(String, Any)> = match other {
                Some(Out::Any(Any::Map(existing))) => existing
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let prelim: MapPrelim = existing.into_iter().collect();
            block.insert(txn, PROPS, prelim)
        }
    };
    let mut changed = false;
    for (key, value) in props {
        let current = map.get(txn, key).map(|current| out_to_json(txn, current));
        if value.is_null() {
            if current.is_some() {
                map.remove(txn, key);
                changed = true;
            }
        } else if current.as_ref() != Some(value) {
            map.insert(txn, key.as_str(), json_to_any(value));
            changed = true;
        }
    }
    changed
}

// ---------------------------------------------------------------------------------------------
// JSON ↔ Any

fn out_to_json<T: ReadTxn>(txn: &T, value: Out) -> Value {
    match value {
        Out::Any(any) => any_to_json(&any),
        shared => any_to_json(&shared.to_json(txn)),
    }
}

/// Largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A yrs value as JSON: integral numbers as integers, `undefined` as `null`, binary as an array
/// of byte values.
pub fn any_to_json(value: &Any) -> Value {
    match value {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(value) => Value::Bool(*value),
        Any::Number(Number::Int(value)) => Value::from(*value),
        Any::Number(Number::Float(value)) => {
            if value.fract() == 0.0 && value.abs() <= MAX_SAFE_INTEGER as f64 {
                Value::from(*value as i64)
            } else {
                serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number)
            }
        }
        Any::String(value) => Value::String(value.to_string()),
        Any::Buffer(bytes) => Value::Array(bytes.iter().map(|&byte| Value::from(byte)).collect()),
        Any::Array(items) => Value::Array(items.iter().map(any_to_json).collect()),
        Any::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), any_to_json(value)))
                .collect(),
        ),
    }
}

/// JSON as a yrs value, numbers as a JavaScript client would write them: safe integers as
/// integers, everything else as a double.
pub fn json_to_any(value: &Value) -> Any {
    match value {
        Value::Null => Any::Null,
        Value::Bool(value) => Any::Bool(*value),
        Value::Number(number) => match number.as_i64() {
            Some(integer) if integer.abs() <= MAX_SAFE_INTEGER => Any::Number(Number::Int(integer)),
            _ => Any::Number(Number::Float(number.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(value) => Any::String(Arc::from(value.as_str())),
        Value::Array(items) => Any::Array(items.iter().map(json_to_any).collect()),
        Value::Object(entries) => Any::Map(Arc::new(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), json_to_any(value)))
                .collect(),
        )),
    }
}
