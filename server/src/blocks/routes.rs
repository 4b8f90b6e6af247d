//! The block routes: thin handlers over `potentia_sync::blocks` (reads) and
//! `potentia_sync::Rooms::edit` (writes through the document).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use potentia_sync::blocks::{self as rows, BlockRecord};
use potentia_sync::markdown::{inline_spans, Marks, Span};
use potentia_sync::props::prop_problems;
use potentia_sync::room::{BlockEdit, EditOutcome};
use potentia_sync::store::AuditNote;
use potentia_sync::{BlockPatch, NewBlock, Position, SchemaError, SyncError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{require_canvas, Access, CanvasAccess};
use crate::auth::AuthUser;
use crate::canvases::db as canvas_db;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::Page;
use crate::state::AppState;
use crate::validation::{storable_body, FieldErrors};

/// Longest block text accepted through REST, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Longest block type name.
pub const MAX_TYPE_CHARS: usize = 64;
/// Most blocks one reorder may move.
pub const MAX_REORDER: usize = 1000;
/// Largest page of blocks.
pub const MAX_PAGE: u32 = 500;

/// Where a block goes among its siblings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PositionSpec {
    First,
    Last,
    /// Right after this sibling.
    After(Uuid),
    /// Right before this sibling.
    Before(Uuid),
}

impl From<PositionSpec> for Position {
    fn from(spec: PositionSpec) -> Self {
        match spec {
            PositionSpec::First => Position::First,
            PositionSpec::Last => Position::Last,
            PositionSpec::After(id) => Position::After(id.to_string()),
            PositionSpec::Before(id) => Position::Before(id.to_string()),
        }
    }
}

/// A run of formatted text, for writing a block's text with its formatting.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextRun {
    /// The run's text.
    pub text: String,
    /// Bold (default false).
    #[serde(default)]
    pub bold: bool,
    /// Italic (default false).
    #[serde(default)]
    pub italic: bool,
    /// Inline code (default false).
    #[serde(default)]
    pub code: bool,
    /// Struck through (default false).
    #[serde(default)]
    pub strike: bool,
    /// An `http://`, `https://` or `mailto:` URL the run links to.
    pub link: Option<String>,
}

/// Most runs one block's text may be written in.
pub const MAX_RUNS: usize = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "todo", "markdown": "Book the **venue**", "props": {"checked": false, "due_at": "2026-12-10"}, "position": "last"}))]
pub struct CreateBlock {
    /// `paragraph`, `heading`, `todo`, `bullet`, `numbered`, `quote`, `code`, `divider`, … (any
    /// type is kept).
    #[serde(rename = "type")]
    pub kind: String,
    /// Plain text. Give at most one of `text`, `markdown` and `runs`.
    #[serde(default)]
    pub text: String,
    /// The text as inline Markdown: `**bold**`, `*italic*`, `` `code` ``, `~~strike~~`,
    /// `[a link](https://example.org)`; one paragraph.
    pub markdown: Option<String>,
    /// The text as formatted runs.
    pub runs: Option<Vec<TextRun>>,
    /// Free-form, except for the known types: `heading.level` 1–6, `todo.checked` a boolean,
    /// `todo.due_at` an RFC 3339 instant or a date, `code.language` a short name, `image.url`
    /// an http(s) URL; a wrong value is a 422 naming `props.<name>`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub props: Map<String, Value>,
    /// The parent block; omitted or `null` for the top level.
    pub parent_id: Option<Uuid>,
    /// Defaults to `last`.
    pub position: Option<PositionSpec>,
    /// An id the client chose (a UUID; default: the server picks one). It makes a retried
    /// create harmless: sending the same block again answers 200 with the block the first
    /// request made; another block under that id is a 409 `block_exists`.
    pub id: Option<Uuid>,
}

/// Absent fields stay. `props` is merged: a `null` value removes that property.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"props": {"checked": true}, "version": 3}))]
pub struct PatchBlock {
    /// A new type, 1 to 64 characters; the props are checked against it.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Replaces the plain text by its smallest edit (formatting outside it survives). Give at
    /// most one of `text`, `markdown` and `runs`.
    pub text: Option<String>,
    /// Replaces the whole text, formatted, from inline Markdown (as in `CreateBlock`).
    pub markdown: Option<String>,
    /// Replaces the whole text with formatted runs.
    pub runs: Option<Vec<TextRun>>,
    /// Merged; checked against the block's type (the new one when `type` changes) as in
    /// `CreateBlock::props`.
    #[schema(value_type = Option<Object>)]
    pub props: Option<Map<String, Value>>,
    /// The version the change is based on (or send `If-Match`); a stale one is a 409.
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"parent_id": null, "position": {"after": "0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e70"}, "version": 4}))]
pub struct MoveBlock {
    /// The new parent; `null` for the top level.
    pub parent_id: Option<Uuid>,
    /// Where among the new parent's children it goes.
    pub position: PositionSpec,
    /// The version the move is based on (or send `If-Match`); a stale one is a 409.
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"parent_id": null, "block_ids": ["0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e70", "0192f4a8-7c1e-7d3a-9b52-3f1c2a4d5e71"], "position": "first"}))]
pub struct ReorderBlocks {
    /// The parent whose children these become; `null` for the top level.
    pub parent_id: Option<Uuid>,
    /// The blocks, in the order they should have; they end up next to each other.
    pub block_ids: Vec<Uuid>,
    /// Where the run goes; defaults to `first`.
    pub position: Option<PositionSpec>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListBlocks {
    /// Only the blocks under this one (its subtree, without it).
    pub under: Option<Uuid>,
    /// 1–500, default 100.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// The version the delete is based on (or send `If-Match`).
    pub version: Option<i64>,
}

/// A block row as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Block {
    /// The block's id, its key in the document's `blocks` map.
    pub id: Uuid,
    /// The canvas it belongs to.
    pub canvas_id: Uuid,
    /// The parent block; null at the top level.
    pub parent_id: Option<Uuid>,
    /// `paragraph`, `heading`, `todo`, `bullet`, `numbered`, `quote`, `code`, `divider`,
    /// `image`, or any other type a client wrote.
    #[serde(rename = "type")]
    pub kind: String,
    /// The fractional order key among its siblings (compared byte-wise, ties by id).
    pub order: String,
    /// The plain text.
    pub text: String,
    /// The rich text as a delta: `[{"insert": "…", "attributes": {"bold": true}}]`.
    #[schema(value_type = Vec<Object>)]
    pub content: Value,
    /// The block's properties (`level`, `checked`, `due_at`, `language`, `url`, …).
    #[schema(value_type = Object)]
    pub props: Value,
    /// Counts the block's materialized changes; send it back (or `If-Match`) to write safely.
    pub version: i64,
    /// When it was first materialized.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The last materialized change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Who made the last change through REST or a socket, when known.
    pub updated_by: Option<Uuid>,
}

impl From<BlockRecord> for Block {
    fn from(r: BlockRecord) -> Self {
        Self {
            id: r.id,
            canvas_id: r.canvas_id,
            parent_id: r.parent_id,
            kind: r.kind,
            order: r.order,
            text: r.text,
            content: r.content,
            props: r.props,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            updated_by: r.updated_by,
        }
    }
}

/// A canvas for readers and exports: its meta and every block in document order.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanvasSnapshot {
    /// The canvas's id.
    pub canvas_id: Uuid,
    /// The canvas's title.
    pub title: String,
    /// The canvas's icon; null when it has none.
    pub icon: Option<String>,
    /// Its workspace; null for a personal canvas.
    pub workspace_id: Option<Uuid>,
    /// Every block, parents before children, siblings in order.
    pub blocks: Vec<Block>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reordered {
    /// The blocks moved, in their new order.
    pub block_ids: Vec<Uuid>,
}

fn validate_kind(kind: &str, errors: &mut FieldErrors) {
    if kind.trim().is_empty() || kind.chars().count() > MAX_TYPE_CHARS {
        errors.push("type", format!("1 to {MAX_TYPE_CHARS} characters"));
    }
}

/// The formatted text `markdown` or `runs` give, checked; `None` when neither is given.
fn rich_text(
    has_text: bool,
    markdown: Option<String>,
    runs: Option<Vec<TextRun>>,
    errors: &mut FieldErrors,
) -> Option<Vec<Span>> {
    let given =
        usize::from(has_text) + usize::from(markdown.is_some()) + usize::from(runs.is_some());
    if given > 1 {
        let field = if markdown.is_some() {
            "markdown"
        } else {
            "runs"
        };
        errors.push(field, "give only one of text, markdown and runs");
        return None;
    }
    let spans = match (markdown, runs) {
        (Some(markdown), _) => match inline_spans(&markdown) {
            Ok(Some(spans)) => spans,
            Ok(None) => {
                errors.push(
                    "markdown",
                    "only inline Markdown (bold, italic, code, strike, links) in one paragraph",
                );
                return None;
            }
            Err(error) => {
                errors.push("markdown", error.to_string());
                return None;
            }
        },
        (None, Some(runs)) => {
            if runs.len() > MAX_RUNS {
                errors.push("runs", format!("at most {MAX_RUNS} runs"));
                return None;
            }
            let mut spans = Vec::with_capacity(runs.len());
            for (index, run) in runs.into_iter().enumerate() {
                if let Some(link) = &run.link {
                    let scheme_ok = ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|scheme| link.starts_with(scheme));
                    if !scheme_ok || link.chars().any(char::is_whitespace) {
                        errors.push(
                            &format!("runs[{index}].link"),
                            "must be an http://, https:// or mailto: URL",
                        );
                    }
                }
                spans.push(Span {
                    text: run.text,
                    marks: Marks {
                        bold: run.bold,
                        italic: run.italic,
                        code: run.code,
                        strike: run.strike,
                        link: run.link,
                    },
                });
            }
            spans
        }
        (None, None) => return None,
    };
    let plain: String = spans.iter().map(|span| span.text.as_str()).collect();
    validate_text(&plain, errors);
    Some(spans)
}

/// Records every property that breaks its type's rule, as `props.<name>`.
fn validate_props(kind: &str, props: &Map<String, Value>, errors: &mut FieldErrors) {
    for problem in prop_problems(kind, props) {
        errors.push(&format!("props.{}", problem.prop), problem.message);
    }
}

fn validate_text(text: &str, errors: &mut FieldErrors) {
    if text.chars().count() > MAX_TEXT_CHARS {
        errors.push("text", format!("at most {MAX_TEXT_CHARS} characters"));
    }
}

/// The expected version from the body or the `If-Match` header (`"3"`, `W/"3"` or `3`).
fn expected_version(body: Option<i64>, headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let header = match headers.get(header::IF_MATCH) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim();
            let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            Some(text.parse::<i64>().map_err(|_| {
                ApiError::invalid_field("If-Match", "the block's version, e.g. \"3\"")
            })?)
        }
    };
    match (body, header) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid_field(
            "version",
            "differs from If-Match; send one of them",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn with_etag(block: Block, status: StatusCode) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", block.version)).ok();
    let mut response = (status, ApiJson(block)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn written_block(outcome: EditOutcome) -> Result<Block, ApiError> {
    outcome
        .block
        .map(Block::from)
        .ok_or(ApiError::NotFound { what: "block" })
}

/// The audit row of a block write, written by the room in the commit that logs the write (so
/// a write that is live is always audited, and a refused one never is).
fn audit_note(
    caller: &AuthUser,
    action: &str,
    block_id: Uuid,
    found: &CanvasAccess,
    detail: Value,
    request_id: Option<&str>,
) -> AuditNote {
    AuditNote {
        actor: caller.id,
        action: action.to_owned(),
        target_type: "block".to_owned(),
        target_id: block_id.to_string(),
        after: serde_json::json!({ "canvas_id": found.canvas_id, "change": detail }),
        request_id: request_id.map(str::to_owned),
    }
}

/// How many blocks `blocks` make, their children included.
fn count_blocks(blocks: &[potentia_sync::ImportedBlock]) -> usize {
    let mut count = 0;
    let mut stack: Vec<&potentia_sync::ImportedBlock> = blocks.iter().collect();
    while let Some(block) = stack.pop() {
        count += 1;
        stack.extend(block.children.iter());
    }
    count
}

/// The canvas's blocks in document order (depth-first, siblings by order key), a page at a time.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/blocks", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ListBlocks),
    responses((status = 200, description = "One page of blocks, parents before children, siblings in order", body = Page<Block>), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_blocks(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ListBlocks>,
) -> ApiResult<ApiJson<Page<Block>>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("1 to {MAX_PAGE}")));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|cursor| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor from this list"))
        })
        .transpose()?;
    if let Some(under) = params.under {
        rows::get(&state.db, canvas_id, under)
            .await?
            .ok_or_else(|| ApiError::invalid_field("under", "no such block in this canvas"))?;
    }
    let (records, next) = rows::list(
        &state.db,
        canvas_id,
        params.under,
        after.as_deref(),
        i64::from(limit),
    )
    .await?;
    Ok(ApiJson(Page {
        items: records.into_iter().map(Block::from).collect(),
        next_cursor: next.map(|path| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path)),
    }))
}

/// One block, with its version as the `ETag`.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/blocks/{block_id}", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("block_id" = Uuid, Path)),
    responses((status = 200, description = "The block", body = Block), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_block(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((canvas_id, block_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let record = rows::get(&state.db, canvas_id, block_id)
        .await?
        .ok_or(ApiError::NotFound { what: "block" })?;
    Ok(with_etag(record.into(), StatusCode::OK))
}

/// Creates a block at a position (default: last under its parent), through the document.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/blocks", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)), request_body = CreateBlock,
    responses((status = 201, description = "The new block, as materialized", body = Block),
        (status = 200, description = "A retry: the block with this `id` that an earlier, identical create made", body = Block),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A different block already has this `id` (`block_exists`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_block(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateBlock>,
) -> ApiResult<Response> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let mut errors = FieldErrors::default();
    validate_kind(&body.kind, &mut errors);
    validate_text(&body.text, &mut errors);
    validate_props(&body.kind, &body.props, &mut errors);
    let spans = rich_text(!body.text.is_empty(), body.markdown, body.runs, &mut errors);
    errors.into_result()?;
    let id = body.id.unwrap_or_else(Uuid::now_v7);
    // The text the block will hold, to tell a retry from another block under the same id.
    let plain: String = match &spans {
        Some(spans) => spans.iter().map(|span| span.text.as_str()).collect(),
        None => body.text.clone(),
    };
    let asked_props: Map<String, Value> = body
        .props
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let audit = audit_note(
        &caller,
        "block.create",
        id,
        &found,
        serde_json::json!({ "type": body.kind }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Create {
        block: NewBlock {
            id: Some(id.to_string()),
            kind: body.kind.clone(),
            parent: body.parent_id.map(|p| p.to_string()),
            position: body.position.map_or(Position::Last, Position::from),
            text: body.text,
            props: body.props,
        },
        spans,
    };
    match state
        .rooms
        .edit(canvas_id, caller.id, edit, None, Some(audit))
        .await
    {
        Ok(outcome) => Ok(with_etag(written_block(outcome)?, StatusCode::CREATED)),
        // A retry of a create that went through: the block it made, once.
        Err(SyncError::Schema(SchemaError::DuplicateId(_))) if body.id.is_some() => {
            let existing = rows::get(&state.db, canvas_id, id)
                .await?
                .ok_or_else(|| ApiError::conflict("block_exists", "a block has this id"))?;
            let same = existing.kind == body.kind
                && existing.text == plain
                && existing.parent_id == body.parent_id
                && existing.props == Value::Object(asked_props);
            if !same {
                return Err(ApiError::conflict(
                    "block_exists",
                    "a different block already has this id",
                ));
            }
            Ok(with_etag(Block::from(existing), StatusCode::OK))
        }
        Err(error) => Err(error.into()),
    }
}

/// Changes a block's type, text or props, through the document.
#[utoipa::path(patch, path = "/api/v1/canvases/{canvas_id}/blocks/{block_id}", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("block_id" = Uuid, Path)), request_body = PatchBlock,
    responses((status = 200, description = "The block as changed, with its new version", body = Block), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "stale version; `current` holds the block", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_block(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((canvas_id, block_id)): ApiPath<(Uuid, Uuid)>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchBlock>,
) -> ApiResult<Response> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let version = expected_version(body.version, &headers)?;
    let mut errors = FieldErrors::default();
    if let Some(kind) = &body.kind {
        validate_kind(kind, &mut errors);
    }
    if let Some(text) = &body.text {
        validate_text(text, &mut errors);
    }
    let spans = rich_text(body.text.is_some(), body.markdown, body.runs, &mut errors);
    if let Some(props) = &body.props {
        // The rule is the type's after the patch: the new one, or the block's own.
        let kind = match &body.kind {
            Some(kind) => Some(kind.clone()),
            None => rows::get(&state.db, canvas_id, block_id)
                .await?
                .map(|row| row.kind),
        };
        if let Some(kind) = kind {
            validate_props(&kind, props, &mut errors);
        }
    }
    errors.into_result()?;
    let changed: Vec<&str> = [
        ("type", body.kind.is_some()),
        ("text", body.text.is_some() || spans.is_some()),
        ("props", body.props.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let audit = audit_note(
        &caller,
        "block.update",
        block_id,
        &found,
        serde_json::json!({ "fields": changed, "based_on_version": version }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Patch {
        id: block_id.to_string(),
        patch: BlockPatch {
            kind: body.kind,
            text: body.text,
            props: body.props,
        },
        spans,
    };
    let outcome = state
        .rooms
        .edit(canvas_id, caller.id, edit, version, Some(audit))
        .await?;
    Ok(with_etag(written_block(outcome)?, StatusCode::OK))
}

/// Moves a block (with its subtree) under a parent at a position: only its order key and
/// parent change.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/blocks/{block_id}/move", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("block_id" = Uuid, Path)), request_body = MoveBlock,
    responses((status = 200, description = "The block at its new place, with its new version", body = Block), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn move_block(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((canvas_id, block_id)): ApiPath<(Uuid, Uuid)>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MoveBlock>,
) -> ApiResult<Response> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let version = expected_version(body.version, &headers)?;
    let audit = audit_note(
        &caller,
        "block.move",
        block_id,
        &found,
        serde_json::json!({ "parent_id": body.parent_id }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Move {
        id: block_id.to_string(),
        parent: body.parent_id.map(|p| p.to_string()),
        position: body.position.into(),
    };
    let outcome = state
        .rooms
        .edit(canvas_id, caller.id, edit, version, Some(audit))
        .await?;
    Ok(with_etag(written_block(outcome)?, StatusCode::OK))
}

/// Deletes a block and its subtree, through the document.
#[utoipa::path(delete, path = "/api/v1/canvases/{canvas_id}/blocks/{block_id}", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ("block_id" = Uuid, Path), DeleteParams),
    responses((status = 204, description = "Deleted, with its children"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_block(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath((canvas_id, block_id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(params): ApiQuery<DeleteParams>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let version = expected_version(params.version, &headers)?;
    let audit = audit_note(
        &caller,
        "block.delete",
        block_id,
        &found,
        serde_json::json!({ "with_children": true }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Delete {
        id: block_id.to_string(),
    };
    state
        .rooms
        .edit(canvas_id, caller.id, edit, version, Some(audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts several blocks next to each other, in the given order, under a parent.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/blocks/reorder", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)), request_body = ReorderBlocks,
    responses((status = 200, description = "The blocks in their new order", body = Reordered), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn reorder_blocks(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<ReorderBlocks>,
) -> ApiResult<ApiJson<Reordered>> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    if body.block_ids.is_empty() || body.block_ids.len() > MAX_REORDER {
        return Err(ApiError::invalid_field(
            "block_ids",
            format!("1 to {MAX_REORDER} ids"),
        ));
    }
    let audit = audit_note(
        &caller,
        "block.reorder",
        body.parent_id.unwrap_or(canvas_id),
        &found,
        serde_json::json!({ "block_ids": body.block_ids }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Reorder {
        ids: body.block_ids.iter().map(Uuid::to_string).collect(),
        parent: body.parent_id.map(|p| p.to_string()),
        position: body.position.map_or(Position::First, Position::from),
    };
    state
        .rooms
        .edit(canvas_id, caller.id, edit, None, Some(audit))
        .await?;
    Ok(ApiJson(Reordered {
        block_ids: body.block_ids,
    }))
}

/// The canvas as JSON: its title and icon and every block in document order (for AI readers
/// and exports).
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/snapshot", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "The canvas's meta and every block in document order", body = CanvasSnapshot), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<CanvasSnapshot>> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let canvas = canvas_db::find(&state.db, canvas_id)
        .await?
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    let blocks = rows::all(&state.db, canvas_id).await?;
    Ok(ApiJson(CanvasSnapshot {
        canvas_id,
        title: canvas.title,
        icon: canvas.icon,
        workspace_id: canvas.workspace_id,
        blocks: blocks.into_iter().map(Block::from).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// The parent of the imported blocks; omitted for the top level.
    pub parent_id: Option<Uuid>,
    /// Insert right after this sibling; omitted, at the end.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// The new blocks, in document order (nested ones after their parent).
    pub block_ids: Vec<Uuid>,
}

/// The canvas as Markdown (`text/markdown`): the title as a heading, then the blocks.
#[utoipa::path(get, path = "/api/v1/canvases/{canvas_id}/markdown", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path)),
    responses((status = 200, description = "Markdown", content_type = "text/markdown", body = String),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn export_markdown(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    let canvas = canvas_db::find(&state.db, canvas_id)
        .await?
        .ok_or(ApiError::NotFound { what: "canvas" })?;
    let blocks: Vec<potentia_sync::Block> = rows::all(&state.db, canvas_id)
        .await?
        .into_iter()
        .map(|r| potentia_sync::Block {
            id: r.id.to_string(),
            kind: r.kind,
            order: r.order,
            parent: r.parent_id.map(|p| p.to_string()),
            text: r.text,
            rich: r.content,
            props: match r.props {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        })
        .collect();
    let mut markdown = String::new();
    if !canvas.title.trim().is_empty() {
        markdown.push_str(&format!("# {}\n\n", canvas.title.trim()));
    }
    markdown.push_str(&potentia_sync::markdown::blocks_to_markdown(&blocks));
    Ok((
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        markdown,
    )
        .into_response())
}

/// Imports Markdown (`text/markdown` body) as blocks, through the document: headings,
/// paragraphs, bulleted / numbered / todo lists, quotes, code, dividers and inline formatting.
#[utoipa::path(post, path = "/api/v1/canvases/{canvas_id}/markdown", tag = "blocks", security(("bearer" = [])),
    params(("canvas_id" = Uuid, Path), ImportParams),
    request_body(content = String, content_type = "text/markdown"),
    responses((status = 201, description = "The blocks the Markdown became", body = Imported), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn import_markdown(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(canvas_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<ImportParams>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, ApiJson<Imported>)> {
    let found = require_canvas(&state.db, caller.id, canvas_id, Access::Write).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.starts_with("text/markdown") || content_type.starts_with("text/plain")) {
        return Err(ApiError::UnsupportedMediaType {
            detail: "send the Markdown as text/markdown".into(),
        });
    }
    let markdown = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_markdown", "the body is not UTF-8"))?;
    storable_body(markdown.as_bytes())?;
    let blocks = potentia_sync::markdown::from_markdown(markdown)
        .map_err(|e| ApiError::from(potentia_sync::SyncError::Markdown(e)))?;
    let audit = audit_note(
        &caller,
        "block.import_markdown",
        params.parent_id.unwrap_or(canvas_id),
        &found,
        serde_json::json!({ "blocks": count_blocks(&blocks), "bytes": body.len() }),
        request_id.as_deref(),
    );
    let edit = BlockEdit::Import {
        blocks,
        parent: params.parent_id.map(|p| p.to_string()),
        position: params
            .after
            .map_or(Position::Last, |after| Position::After(after.to_string())),
    };
    let outcome = state
        .rooms
        .edit(canvas_id, caller.id, edit, None, Some(audit))
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Imported {
            block_ids: outcome.written,
        }),
    ))
}
