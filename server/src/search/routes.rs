//! `GET /api/v1/search`: validation, the cursor, and the answer's shape (see [`super`]).

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::db::{self, After, Hit, SearchQuery, MARK_END, MARK_START};
use crate::access::{require_canvas, Access};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::pagination::Page;
use crate::state::AppState;
use crate::validation::{required_text, FieldErrors};

/// Longest accepted `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for, 1–200 characters. Web-search syntax: `"a phrase"`, `-excluded`, `or`.
    pub q: Option<String>,
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of the same search.
    pub cursor: Option<String>,
    /// Search one canvas only (404 if the caller cannot read it).
    pub canvas_id: Option<Uuid>,
    /// Comma-separated kinds of result: `block`, `canvas` (default: both).
    pub kinds: Option<String>,
    /// Also search archived canvases (default false).
    #[serde(default)]
    pub include_archived: bool,
}

/// What matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A block's text.
    Block,
    /// The canvas title.
    Canvas,
}

/// One search result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    pub kind: HitKind,
    pub canvas_id: Uuid,
    pub canvas_title: String,
    /// The matching block; null for a title match.
    pub block_id: Option<Uuid>,
    /// The block's type (`paragraph`, `heading`, …); null for a title match.
    pub block_kind: Option<String>,
    /// HTML-safe text around the match, the matched words in `<mark>…</mark>`.
    pub snippet: String,
    /// Higher is better: `[1, 2)` for full-text matches, `[0, 1]` for fuzzy (trigram) ones.
    pub rank: f64,
}

impl From<Hit> for SearchHit {
    fn from(hit: Hit) -> Self {
        let is_block = hit.kind == "block";
        Self {
            kind: if is_block {
                HitKind::Block
            } else {
                HitKind::Canvas
            },
            canvas_id: hit.canvas_id,
            canvas_title: hit.canvas_title,
            block_id: is_block.then_some(hit.block_id),
            block_kind: hit.block_kind,
            snippet: marked(&hit.snippet),
            rank: hit.rank,
        }
    }
}

/// Turns the database's highlight delimiters into `<mark>` tags; the rest is already escaped.
fn marked(snippet: &str) -> String {
    snippet
        .replace(MARK_START, "<mark>")
        .replace(MARK_END, "</mark>")
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
struct SearchRequest {
    q: String,
    limit: u32,
    canvas_id: Option<Uuid>,
    include_archived: bool,
    titles: bool,
    blocks: bool,
    after: Option<After>,
}

impl SearchParams {
    fn validate(self) -> ApiResult<SearchRequest> {
        let mut errors = FieldErrors::default();
        let q = errors.check(match self.q {
            Some(q) => required_text("q", q, MAX_QUERY_CHARS),
            None => Err(FieldError::new("q", "is required")),
        });
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.check::<()>(Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            )));
        }
        let kinds = errors.check(parse_kinds(self.kinds.as_deref()));
        errors.into_result()?;
        let (Some(q), Some((titles, blocks))) = (q, kinds) else {
            // Unreachable: a missing value has recorded its error above.
            return Err(ApiError::invalid_field("q", "is required"));
        };
        let mut request = SearchRequest {
            q,
            limit,
            canvas_id: self.canvas_id,
            include_archived: self.include_archived,
            titles,
            blocks,
            after: None,
        };
        if let Some(cursor) = self.cursor.as_deref() {
            request.after = Some(decode_cursor(cursor, request.fingerprint())?);
        }
        Ok(request)
    }
}

/// `(titles, blocks)` from a comma-separated list of `canvas` and `block`.
fn parse_kinds(kinds: Option<&str>) -> Result<(bool, bool), FieldError> {
    let Some(kinds) = kinds else {
        return Ok((true, true));
    };
    let (mut titles, mut blocks) = (false, false);
    for kind in kinds.split(',').map(str::trim) {
        match kind {
            "canvas" => titles = true,
            "block" => blocks = true,
            _ => {
                return Err(FieldError::new(
                    "kinds",
                    "must be a comma-separated list of `block` and `canvas`",
                ))
            }
        }
    }
    Ok((titles, blocks))
}

impl SearchRequest {
    /// Identifies the search a cursor belongs to (FNV-1a: stable across nodes and builds).
    fn fingerprint(&self) -> u64 {
        let canvas = self.canvas_id.map(|id| id.to_string()).unwrap_or_default();
        let flags = [self.include_archived, self.titles, self.blocks].map(|f| u8::from(f) + b'0');
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .q
            .bytes()
            .chain([0])
            .chain(canvas.bytes())
            .chain([0])
            .chain(flags)
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    fn query(&self, user_id: Uuid) -> SearchQuery<'_> {
        SearchQuery {
            user_id,
            q: &self.q,
            canvas_id: self.canvas_id,
            include_archived: self.include_archived,
            titles: self.titles,
            blocks: self.blocks,
            after: self.after,
            limit: i64::from(self.limit) + 1,
        }
    }
}

fn encode_cursor(after: &After, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "s1|{:016x}|{}|{}|{:016x}",
        after.rank.to_bits(),
        after.canvas_id,
        after.block_id,
        fingerprint
    ))
}

fn decode_cursor(cursor: &str, fingerprint: u64) -> ApiResult<After> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this search returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split('|').collect();
    let ["s1", rank, canvas_id, block_id, print] = parts.as_slice() else {
        return Err(invalid());
    };
    let print = u64::from_str_radix(print, 16).map_err(|_| invalid())?;
    if print != fingerprint {
        return Err(ApiError::invalid_field(
            "cursor",
            "belongs to another search (q, canvas_id, kinds or include_archived changed)",
        ));
    }
    let rank = f64::from_bits(u64::from_str_radix(rank, 16).map_err(|_| invalid())?);
    if !rank.is_finite() {
        return Err(invalid());
    }
    Ok(After {
        rank,
        canvas_id: canvas_id.parse().map_err(|_| invalid())?,
        block_id: block_id.parse().map_err(|_| invalid())?,
    })
}

/// Searches the block texts and canvas titles the caller can read, best match first.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = Page<SearchHit>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<ApiJson<Page<SearchHit>>> {
    let request = params.validate()?;
    if let Some(canvas_id) = request.canvas_id {
        require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    }
    let mut hits = db::search(&state.db, &request.query(caller.id)).await?;
    let more = hits.len() > request.limit as usize;
    hits.truncate(request.limit as usize);
    let next_cursor = hits
        .last()
        .filter(|_| more)
        .map(|last| encode_cursor(&last.after(), request.fingerprint()));
    Ok(ApiJson(Page {
        items: hits.into_iter().map(SearchHit::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> SearchParams {
        SearchParams {
            q: Some(q.to_owned()),
            ..SearchParams::default()
        }
    }

    #[test]
    fn a_cursor_round_trips_exactly() {
        let request = params("roadmap").validate().unwrap();
        let after = After {
            rank: 1.0 + 0.1_f64.sqrt(),
            canvas_id: Uuid::now_v7(),
            block_id: Uuid::nil(),
        };
        let cursor = encode_cursor(&after, request.fingerprint());
        assert_eq!(
            decode_cursor(&cursor, request.fingerprint()).unwrap(),
            after
        );
    }

    #[test]
    fn a_cursor_of_another_search_is_refused() {
        let first = params("roadmap").validate().unwrap();
        let other = params("budget").validate().unwrap();
        let after = After {
            rank: 0.5,
            canvas_id: Uuid::nil(),
            block_id: Uuid::nil(),
        };
        let cursor = encode_cursor(&after, first.fingerprint());
        assert!(decode_cursor(&cursor, other.fingerprint()).is_err());
        for garbage in ["", "abc", &URL_SAFE_NO_PAD.encode("s1|x|y|z|0")] {
            assert!(decode_cursor(garbage, first.fingerprint()).is_err());
        }
    }

    #[test]
    fn kinds_are_parsed_and_unknown_ones_refused() {
        assert_eq!(parse_kinds(None).unwrap(), (true, true));
        assert_eq!(parse_kinds(Some("canvas")).unwrap(), (true, false));
        assert_eq!(parse_kinds(Some("block, canvas")).unwrap(), (true, true));
        assert!(parse_kinds(Some("comment")).is_err());
        assert!(parse_kinds(Some("")).is_err());
    }

    #[test]
    fn marks_replace_the_delimiters_only() {
        assert_eq!(
            marked("a &lt;b&gt; \u{E000}road\u{E001}"),
            "a &lt;b&gt; <mark>road</mark>"
        );
    }
}
