//! The materializer: keeps a canvas's `blocks` rows in step with its document (ARCHITECTURE §5),
//! so that REST readers, search and embeddings read plain rows.
//!
//! A room owns one [`Materializer`]. After the document changes, the room reads its blocks
//! ([`crate::schema::read_blocks`]) and asks for a [`Plan`]: the blocks whose content differs
//! from what the rows hold (by digest) and the rows whose block is gone. [`Materializer::apply`]
//! writes the plan in one transaction:
//!
//! * **Fenced.** `canvas_materializations.seq` is the log position the rows were computed from;
//!   the transaction first moves it forward to the plan's position and gives up when the rows
//!   are already at that position or newer (another node, or a later state, got there first),
//!   so an older document state never overwrites a newer materialization.
//! * **Only what changed.** A changed block is one row written and one `version` more; an
//!   unchanged one is not touched, and the upsert also skips rows whose content already matches
//!   (written by another node), so versions never count a change twice.
//! * **Embeddings.** A block whose text changed is queued in `embedding_queue` with the hash of
//!   its text; a move or a props change does not queue it.
//! * **Meta.** The document's `meta.title` and `meta.icon` (ARCHITECTURE §2) are the canvas
//!   row's title and icon: a change is written to `canvases` in the same fenced transaction,
//!   with a `canvas.update` audit row naming the last writer. Control characters are removed
//!   and the values cut to [`MAX_TITLE_CHARS`] / [`MAX_ICON_CHARS`]; a key the document never
//!   had keeps the row's value (a canvas created over REST has no meta until it is renamed).
//!
//! * **Storable.** Postgres stores no NUL character in text or JSON, and a CRDT client may put
//!   one anywhere. A row holds its block's strings with NUL removed (the document keeps them).
//!   A block whose row Postgres still refuses is skipped, not written, and reported in
//!   [`Applied::Written`]'s `skipped`; the other blocks are written all the same, and the
//!   skipped block is tried again only once its content changes.
//!
//! Materializing is idempotent: on load, a room whose rows are behind its log (a crash between
//! the log commit and the materialization) plans against the rows as they are and catches up.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::error::SyncError;
use crate::schema::{Block, MetaFields, MAX_ICON_CHARS, MAX_TITLE_CHARS};

/// A canvas row's title and icon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowMeta {
    pub title: String,
    pub icon: Option<String>,
}

impl RowMeta {
    fn json(&self) -> Value {
        serde_json::json!({ "title": self.title, "icon": self.icon })
    }
}

/// A meta change to write: the row's new values, its old ones, and who wrote the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaChange {
    pub after: RowMeta,
    pub before: RowMeta,
    pub actor: Option<Uuid>,
}

/// `text` without control characters, trimmed, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(max)
        .collect()
}

/// The row meta the document's `fields` make of `current`.
fn row_meta_of(fields: &MetaFields, current: &RowMeta) -> RowMeta {
    let title = fields
        .title
        .as_deref()
        .map(|t| clean(t, MAX_TITLE_CHARS))
        .unwrap_or_else(|| current.title.clone());
    let icon = match &fields.icon {
        Some(icon) => icon
            .as_deref()
            .map(|i| clean(i, MAX_ICON_CHARS))
            .filter(|i| !i.is_empty()),
        None => current.icon.clone(),
    };
    RowMeta { title, icon }
}

/// What the rows hold for one block: enough to tell whether the document changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowDigest {
    content: [u8; 32],
    text: [u8; 32],
}

/// A block as a row.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRow {
    pub id: Uuid,
    pub parent: Option<Uuid>,
    pub kind: String,
    pub order: String,
    pub text: String,
    pub content: Value,
    pub props: Value,
    digest: RowDigest,
}

impl BlockRow {
    fn new(
        id: Uuid,
        parent: Option<Uuid>,
        kind: String,
        order: String,
        text: String,
        content: Value,
        props: Value,
    ) -> Self {
        let digest = digest_of(parent, &kind, &order, &text, &content, &props);
        Self {
            id,
            parent,
            kind,
            order,
            text,
            content,
            props,
            digest,
        }
    }

    /// The row of a document block, its strings without NUL; `None` when its id is not a
    /// UUID (a foreign client's key that no row can hold). A parent that is not a UUID reads
    /// as the top level.
    pub fn from_block(block: Block) -> Option<Self> {
        let id = Uuid::parse_str(&block.id).ok()?;
        let parent = block
            .parent
            .as_deref()
            .and_then(|p| Uuid::parse_str(p).ok());
        let mut content = block.rich;
        let mut props = Value::Object(block.props);
        without_nul_in_json(&mut content);
        without_nul_in_json(&mut props);
        Some(Self::new(
            id,
            parent,
            without_nul(block.kind),
            without_nul(block.order),
            without_nul(block.text),
            content,
            props,
        ))
    }
}

/// `text` without its NUL characters.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

/// Removes NUL from every string and key under `value`.
fn without_nul_in_json(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', ""),
        Value::Array(items) => items.iter_mut().for_each(without_nul_in_json),
        Value::Object(map) => {
            if map.keys().any(|key| key.contains('\0')) {
                // Two keys that differ only by NUL become one; the later one wins.
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(key, item)| (without_nul(key), item))
                    .collect();
            }
            map.values_mut().for_each(without_nul_in_json);
        }
        _ => {}
    }
}

fn digest_of(
    parent: Option<Uuid>,
    kind: &str,
    order: &str,
    text: &str,
    content: &Value,
    props: &Value,
) -> RowDigest {
    let mut hasher = Sha256::new();
    for part in [
        parent.map(|p| p.to_string()).unwrap_or_default().as_bytes(),
        kind.as_bytes(),
        order.as_bytes(),
        text.as_bytes(),
        content.to_string().as_bytes(),
        props.to_string().as_bytes(),
    ] {
        // Length-prefixed, so that no two different rows hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    RowDigest {
        content: hasher.finalize().into(),
        text: Sha256::digest(text.as_bytes()).into(),
    }
}

/// What one materialization writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The log position of the document state the plan was computed from.
    pub seq: i64,
    /// Blocks that are new or changed.
    pub upserts: Vec<BlockRow>,
    /// Rows whose block is gone.
    pub deletes: Vec<Uuid>,
    /// The canvas's title or icon, when the document changed them.
    pub meta: Option<MetaChange>,
}

impl Plan {
    /// Whether the plan writes no row.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.deletes.is_empty() && self.meta.is_none()
    }
}

/// A block whose row Postgres refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedBlock {
    pub id: Uuid,
    /// Postgres's reason.
    pub error: String,
}

/// What [`Materializer::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The rows now follow the document as of the plan's position, except the blocks
    /// `skipped`.
    Written {
        rows: usize,
        deleted: usize,
        queued: usize,
        skipped: Vec<SkippedBlock>,
    },
    /// The rows were already at that position or newer; nothing was written.
    Stale,
}

/// The rows of one canvas as last written, and how far they follow the log.
#[derive(Debug, Clone)]
pub struct Materializer {
    canvas_id: Uuid,
    rows: HashMap<Uuid, RowDigest>,
    /// Blocks whose row Postgres refused, with the content it refused: not tried again until
    /// it changes.
    refused: HashMap<Uuid, [u8; 32]>,
    /// The canvas row's title and icon as last read or written.
    meta: RowMeta,
    seq: i64,
}

impl Materializer {
    /// Reads the canvas's rows and materialized position.
    pub async fn load(pool: &PgPool, canvas_id: Uuid) -> Result<Self, SyncError> {
        let mut materializer = Self {
            canvas_id,
            rows: HashMap::new(),
            refused: HashMap::new(),
            meta: RowMeta::default(),
            seq: 0,
        };
        materializer.reload(pool).await?;
        Ok(materializer)
    }

    /// Reads the rows again (after another writer got ahead).
    pub async fn reload(&mut self, pool: &PgPool) -> Result<(), SyncError> {
        let mut tx = pool.begin().await?;
        let seq = sqlx::query_scalar!(
            "select seq from canvas_materializations where canvas_id = $1",
            self.canvas_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        let rows = sqlx::query!(
            r#"select id, parent_id, kind, order_key as "order_key: String", text, content, props
               from blocks where canvas_id = $1"#,
            self.canvas_id
        )
        .fetch_all(&mut *tx)
        .await?;
        let meta = sqlx::query_as!(
            RowMeta,
            "select title, icon from canvases where id = $1",
            self.canvas_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_default();
        tx.commit().await?;
        self.seq = seq;
        self.meta = meta;
        self.rows = rows
            .into_iter()
            .map(|r| {
                let digest = digest_of(
                    r.parent_id,
                    &r.kind,
                    &r.order_key,
                    &r.text,
                    &r.content,
                    &r.props,
                );
                (r.id, digest)
            })
            .collect();
        Ok(())
    }

    /// The log position the rows follow.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// How many rows the canvas has.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the canvas has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The writes that bring the rows to `blocks` and `meta`, the document as of `seq`;
    /// `writer` wrote it last (for the audit of a meta change).
    pub fn plan(
        &mut self,
        blocks: Vec<Block>,
        meta: &MetaFields,
        writer: Option<Uuid>,
        seq: i64,
    ) -> Plan {
        let mut seen = HashMap::with_capacity(blocks.len());
        let mut upserts = Vec::new();
        for block in blocks {
            let Some(row) = BlockRow::from_block(block) else {
                continue;
            };
            if seen.insert(row.id, ()).is_some() {
                continue;
            }
            let content = Some(row.digest.content);
            if self.rows.get(&row.id).map(|d| d.content) != content
                && self.refused.get(&row.id).copied() != content
            {
                upserts.push(row);
            }
        }
        let deletes = self
            .rows
            .keys()
            .filter(|id| !seen.contains_key(*id))
            .copied()
            .collect();
        // A refused block that is gone needs no memory of its refusal.
        self.refused.retain(|id, _| seen.contains_key(id));
        let after = row_meta_of(meta, &self.meta);
        let meta = (after != self.meta).then(|| MetaChange {
            after,
            before: self.meta.clone(),
            actor: writer,
        });
        Plan {
            seq,
            upserts,
            deletes,
            meta,
        }
    }

    /// Writes `plan` in one fenced transaction (see the module documentation).
    pub async fn apply(&mut self, pool: &PgPool, plan: Plan) -> Result<Applied, SyncError> {
        let mut tx = pool.begin().await?;
        let moved = sqlx::query_scalar!(
            r#"insert into canvas_materializations (canvas_id, seq) values ($1, $2)
               on conflict (canvas_id) do update set seq = excluded.seq, materialized_at = now()
               where canvas_materializations.seq < excluded.seq
               returning seq"#,
            self.canvas_id,
            plan.seq
        )
        .fetch_optional(&mut *tx)
        .await?;
        if moved.is_none() {
            tx.rollback().await?;
            return Ok(Applied::Stale);
        }
        let (written, skipped) = self.upsert(&mut tx, plan.upserts, plan.seq).await?;
        let mut queued = 0;
        let changed_text: Vec<&BlockRow> = written
            .iter()
            .filter(|r| self.rows.get(&r.id).map(|d| d.text) != Some(r.digest.text))
            .collect();
        if !changed_text.is_empty() {
            let ids: Vec<Uuid> = changed_text.iter().map(|r| r.id).collect();
            let hashes: Vec<Vec<u8>> = changed_text
                .iter()
                .map(|r| r.digest.text.to_vec())
                .collect();
            queued = sqlx::query!(
                r#"insert into embedding_queue (source_kind, scope_id, source_id, text_hash)
                   select 'block', $1, * from unnest($2::uuid[], $3::bytea[])
                   on conflict (source_kind, scope_id, source_id) do update
                   set text_hash = excluded.text_hash, enqueued_at = now(), attempts = 0,
                       next_attempt_at = now(), last_error = null, dead_at = null
                   where embedding_queue.text_hash <> excluded.text_hash"#,
                self.canvas_id,
                &ids,
                &hashes
            )
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        if !plan.deletes.is_empty() {
            sqlx::query!(
                "delete from blocks where canvas_id = $1 and id = any($2)",
                self.canvas_id,
                &plan.deletes
            )
            .execute(&mut *tx)
            .await?;
        }
        if let Some(change) = &plan.meta {
            let changed = sqlx::query!(
                r#"update canvases set title = $2, icon = $3, updated_at = now()
                   where id = $1 and (title, icon) is distinct from ($2, $3)"#,
                self.canvas_id,
                change.after.title,
                change.after.icon,
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                sqlx::query!(
                    r#"insert into system_audit (actor_id, action, target_type, target_id, before, after)
                       values ($1, 'canvas.update', 'canvas', $2, $3, $4)"#,
                    change.actor,
                    self.canvas_id.to_string(),
                    change.before.json(),
                    serde_json::json!({
                        "title": change.after.title,
                        "icon": change.after.icon,
                        "source": "document",
                        "seq": plan.seq,
                    }),
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.seq = plan.seq;
        if let Some(change) = &plan.meta {
            self.meta = change.after.clone();
        }
        for id in &plan.deletes {
            self.rows.remove(id);
        }
        let rows = written.len();
        for row in written {
            self.refused.remove(&row.id);
            self.rows.insert(row.id, row.digest);
        }
        for (row, _) in &skipped {
            self.refused.insert(row.id, row.digest.content);
        }
        Ok(Applied::Written {
            rows,
            deleted: plan.deletes.len(),
            queued,
            skipped: skipped
                .into_iter()
                .map(|(row, error)| SkippedBlock { id: row.id, error })
                .collect(),
        })
    }

    /// Upserts `rows` inside `tx`: all in one statement, or, when Postgres refuses that, one
    /// by one, each behind a savepoint, leaving out those it refuses. Returns the rows written
    /// and the refused ones with Postgres's reason.
    async fn upsert(
        &self,
        tx: &mut sqlx::PgConnection,
        rows: Vec<BlockRow>,
        seq: i64,
    ) -> Result<(Vec<BlockRow>, Vec<(BlockRow, String)>), SyncError> {
        if rows.is_empty() {
            return Ok((rows, Vec::new()));
        }
        let mut batch = tx.begin().await?;
        match upsert_rows(&mut batch, self.canvas_id, &rows, seq).await {
            Ok(()) => {
                batch.commit().await?;
                return Ok((rows, Vec::new()));
            }
            Err(sqlx::Error::Database(error)) if refuses_the_data(error.as_ref()) => {
                batch.rollback().await?
            }
            Err(error) => return Err(error.into()),
        }
        let mut written = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for row in rows {
            let mut one = tx.begin().await?;
            match upsert_rows(&mut one, self.canvas_id, std::slice::from_ref(&row), seq).await {
                Ok(()) => {
                    one.commit().await?;
                    written.push(row);
                }
                Err(sqlx::Error::Database(error)) if refuses_the_data(error.as_ref()) => {
                    one.rollback().await?;
                    refused.push((row, error.message().to_owned()));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok((written, refused))
    }
}

/// Whether Postgres refused a row for what it holds (SQLSTATE classes 22 data exception, 23
/// integrity violation, 54 program limit, such as a search index entry over 1 MB), so that the
/// same content will be refused again. A deadlock, a timeout or a lost connection is none of
/// these: the materialization fails and is retried whole.
fn refuses_the_data(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().is_some_and(|code| {
        ["22", "23", "54"]
            .iter()
            .any(|class| code.starts_with(class))
    })
}

/// Inserts or updates the rows of `rows` (a row whose content already matches is not touched).
async fn upsert_rows(
    conn: &mut sqlx::PgConnection,
    canvas_id: Uuid,
    rows: &[BlockRow],
    seq: i64,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let parents: Vec<Option<Uuid>> = rows.iter().map(|r| r.parent).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let orders: Vec<&str> = rows.iter().map(|r| r.order.as_str()).collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let contents: Vec<&Value> = rows.iter().map(|r| &r.content).collect();
    let props: Vec<&Value> = rows.iter().map(|r| &r.props).collect();
    sqlx::query!(
        r#"insert into blocks (canvas_id, id, parent_id, kind, order_key, text, content, props, doc_seq)
           select $1, * from unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                    $7::jsonb[], $8::jsonb[]), (select $9::bigint)
           on conflict (canvas_id, id) do update
           set parent_id = excluded.parent_id, kind = excluded.kind,
               order_key = excluded.order_key, text = excluded.text,
               content = excluded.content, props = excluded.props,
               doc_seq = excluded.doc_seq, version = blocks.version + 1, updated_at = now()
           where (blocks.parent_id, blocks.kind, blocks.order_key, blocks.text, blocks.content, blocks.props)
                 is distinct from
                 (excluded.parent_id, excluded.kind, excluded.order_key, excluded.text, excluded.content, excluded.props)"#,
        canvas_id,
        &ids,
        &parents as &[Option<Uuid>],
        &kinds as &[&str],
        &orders as &[&str],
        &texts as &[&str],
        &contents as &[&Value],
        &props as &[&Value],
        seq
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use yrs::{Any, Doc, Map, Transact};

    use super::*;
    use crate::schema::{read_meta_fields, META};

    fn current() -> RowMeta {
        RowMeta {
            title: "Plan".into(),
            icon: Some("📋".into()),
        }
    }

    fn meta_of(write: impl FnOnce(&mut yrs::TransactionMut, &yrs::MapRef)) -> MetaFields {
        let doc = Doc::new();
        let meta = doc.get_or_insert_map(META);
        write(&mut doc.transact_mut(), &meta);
        let txn = doc.transact();
        read_meta_fields(&txn)
    }

    #[test]
    fn a_document_without_meta_keeps_the_rows_title_and_icon() {
        let fields = meta_of(|_, _| {});
        assert_eq!(row_meta_of(&fields, &current()), current());
    }

    #[test]
    fn a_title_of_another_type_than_a_string_says_nothing() {
        let fields = meta_of(|txn, meta| {
            meta.insert(txn, "title", 5);
            meta.insert(txn, "icon", true);
        });
        assert_eq!(row_meta_of(&fields, &current()), current());
    }

    #[test]
    fn control_characters_go_and_a_null_icon_removes_it() {
        let fields = meta_of(|txn, meta| {
            meta.insert(txn, "title", "  Q3\u{0}\u{7} plan ");
            meta.insert(txn, "icon", Any::Null);
        });
        assert_eq!(
            row_meta_of(&fields, &current()),
            RowMeta {
                title: "Q3 plan".into(),
                icon: None
            }
        );
    }
}
