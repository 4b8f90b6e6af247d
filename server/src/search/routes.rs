//! `GET /api/v1/search`: validation, the mode, the cursor, and the answer's shape (see
//! [`super`]). The queries themselves are `potentia_ai::retrieval`'s.

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use potentia_ai::retrieval::hybrid::{self, HybridAfter, HybridHit, HybridQuery};
use potentia_ai::retrieval::semantic::{self, SemanticAfter, SemanticHit, SemanticQuery};
use potentia_ai::retrieval::text::{self, After, TextHit, TextQuery, MARK_END, MARK_START};
use potentia_ai::retrieval::{excerpt, QueryVector, Scope};
use potentia_ai::AiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{require_canvas, Access};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::validation::{required_text, FieldErrors};

/// Longest accepted `q`, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Full text and trigram similarity over block texts and canvas titles.
    Text,
    /// Nearest block vectors to the query's (blocks only: titles have no vectors).
    Semantic,
    /// Reciprocal Rank Fusion of text and semantic.
    Hybrid,
}

impl SearchMode {
    fn tag(self) -> &'static str {
        match self {
            Self::Text => "s1",
            Self::Semantic => "v1",
            Self::Hybrid => "h1",
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for, 1–200 characters. Web-search syntax for text: `"a phrase"`, `-excluded`, `or`.
    pub q: Option<String>,
    /// `text`, `semantic` or `hybrid`; default `hybrid` when an embedder is configured, else `text`.
    pub mode: Option<SearchMode>,
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page of the same search.
    pub cursor: Option<String>,
    /// Search one canvas only (404 if the caller cannot read it).
    pub canvas_id: Option<Uuid>,
    /// Comma-separated kinds of result: `block`, `canvas` (default: both; semantic: blocks).
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

/// Which ranking found a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Full-text or trigram match.
    Text,
    /// Vector similarity.
    Semantic,
}

/// One search result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchHit {
    /// `block` for a match in a block's text, `canvas` for a match in the title.
    pub kind: HitKind,
    /// The canvas the match is in.
    pub canvas_id: Uuid,
    /// That canvas's title.
    pub canvas_title: String,
    /// The matching block; null for a title match.
    pub block_id: Option<Uuid>,
    /// The block's type (`paragraph`, `heading`, …); null for a title match.
    pub block_kind: Option<String>,
    /// HTML-safe text around the match, the matched words in `<mark>…</mark>`.
    pub snippet: String,
    /// Higher is better. Text: `[1, 2)` full-text, `[0, 1]` fuzzy. Semantic: cosine similarity.
    /// Hybrid: the fused score `Σ 1/(60 + rank)`.
    pub rank: f64,
    /// The rankings that found it.
    pub signals: Vec<Signal>,
    /// Cosine similarity to the query, when the semantic signal found it.
    pub similarity: Option<f64>,
}

/// Why a semantic or hybrid search was answered by text alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// No embedding provider is configured.
    EmbedderNotConfigured,
    /// The embedder failed or timed out; retry later for semantic results.
    EmbedderUnavailable,
    /// The caller used up this minute's query embeddings (`POTENTIA_AI_SEARCH_EMBEDS_PER_MINUTE`).
    RateLimited,
}

/// A page of results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchPage {
    /// The results, best first.
    pub items: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The mode that answered (`text` when it fell back).
    pub mode: SearchMode,
    /// Set when a semantic or hybrid search fell back to text.
    pub fallback: Option<FallbackReason>,
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
struct SearchRequest {
    q: String,
    mode: SearchMode,
    limit: u32,
    scope: Scope,
    titles: bool,
    blocks: bool,
    after: Option<Cursor>,
}

/// Where the previous page ended, in the ranking that answered it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    Text(After),
    Semantic(SemanticAfter),
    Hybrid(HybridAfter),
}

impl SearchParams {
    fn validate(self, default_mode: SearchMode) -> ApiResult<SearchRequest> {
        let mut errors = FieldErrors::default();
        let q = errors.check(match self.q {
            Some(q) => required_text("q", q, MAX_QUERY_CHARS),
            None => Err(FieldError::new("q", "is required")),
        });
        let mode = self.mode.unwrap_or(default_mode);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push("limit", format!("must be between 1 and {MAX_LIMIT}"));
        }
        let kinds = errors.check(parse_kinds(self.kinds.as_deref(), mode));
        errors.into_result()?;
        let (Some(q), Some((titles, blocks))) = (q, kinds) else {
            // Unreachable: a missing value has recorded its error above.
            return Err(ApiError::invalid_field("q", "is required"));
        };
        let mut request = SearchRequest {
            q,
            mode,
            limit,
            scope: Scope {
                canvas_id: self.canvas_id,
                include_archived: self.include_archived,
            },
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
fn parse_kinds(kinds: Option<&str>, mode: SearchMode) -> Result<(bool, bool), FieldError> {
    let (mut titles, mut blocks) = (false, false);
    match kinds {
        None => (titles, blocks) = (mode != SearchMode::Semantic, true),
        Some(kinds) => {
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
        }
    }
    if mode == SearchMode::Semantic && titles {
        return Err(FieldError::new(
            "kinds",
            "semantic search finds blocks only (titles have no vectors): use `block`, or mode `hybrid`",
        ));
    }
    if mode == SearchMode::Hybrid && !blocks {
        return Err(FieldError::new(
            "kinds",
            "hybrid search ranks blocks: include `block`, or use mode `text` for titles alone",
        ));
    }
    Ok((titles, blocks))
}

impl SearchRequest {
    /// Identifies the search a cursor belongs to (FNV-1a: stable across nodes and builds).
    fn fingerprint(&self) -> u64 {
        let canvas = self
            .scope
            .canvas_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        let flags =
            [self.scope.include_archived, self.titles, self.blocks].map(|f| u8::from(f) + b'0');
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .q
            .bytes()
            .chain([0])
            .chain(canvas.bytes())
            .chain([0])
            .chain(flags)
            .chain(self.mode.tag().bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    fn text_query(&self, user_id: Uuid, after: Option<After>) -> TextQuery<'_> {
        TextQuery {
            user_id,
            q: &self.q,
            canvas_id: self.scope.canvas_id,
            include_archived: self.scope.include_archived,
            titles: self.titles,
            blocks: self.blocks,
            after,
            limit: self.fetch_limit(),
        }
    }
}

fn encode_cursor(mode: SearchMode, key: f64, canvas: Uuid, block: Uuid, print: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{:016x}|{canvas}|{block}|{print:016x}",
        mode.tag(),
        key.to_bits(),
    ))
}

impl Cursor {
    fn encode(&self, print: u64) -> String {
        match self {
            Self::Text(a) => {
                encode_cursor(SearchMode::Text, a.rank, a.canvas_id, a.block_id, print)
            }
            Self::Semantic(a) => encode_cursor(
                SearchMode::Semantic,
                a.distance,
                a.canvas_id,
                a.block_id,
                print,
            ),
            Self::Hybrid(a) => {
                encode_cursor(SearchMode::Hybrid, a.score, a.canvas_id, a.block_id, print)
            }
        }
    }
}

fn decode_cursor(cursor: &str, fingerprint: u64) -> ApiResult<Cursor> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this search returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split('|').collect();
    let [tag, key, canvas_id, block_id, print] = parts.as_slice() else {
        return Err(invalid());
    };
    let print = u64::from_str_radix(print, 16).map_err(|_| invalid())?;
    if print != fingerprint {
        return Err(ApiError::invalid_field(
            "cursor",
            "belongs to another search (q, mode, canvas_id, kinds or include_archived changed)",
        ));
    }
    let key = f64::from_bits(u64::from_str_radix(key, 16).map_err(|_| invalid())?);
    if !key.is_finite() {
        return Err(invalid());
    }
    let canvas_id: Uuid = canvas_id.parse().map_err(|_| invalid())?;
    let block_id: Uuid = block_id.parse().map_err(|_| invalid())?;
    match *tag {
        "s1" => Ok(Cursor::Text(After {
            rank: key,
            canvas_id,
            block_id,
        })),
        "v1" => Ok(Cursor::Semantic(SemanticAfter {
            distance: key,
            canvas_id,
            block_id,
        })),
        "h1" => Ok(Cursor::Hybrid(HybridAfter {
            score: key,
            canvas_id,
            block_id,
        })),
        _ => Err(invalid()),
    }
}

/// Turns the database's highlight delimiters into `<mark>` tags; the rest is already escaped.
fn marked(snippet: &str) -> String {
    snippet
        .replace(MARK_START, "<mark>")
        .replace(MARK_END, "</mark>")
}

impl HitKind {
    /// A title match has no block kind (and the nil UUID for a block id).
    fn of(block_kind: Option<&String>) -> Self {
        match block_kind {
            Some(_) => Self::Block,
            None => Self::Canvas,
        }
    }

    /// The block id the answer shows: none for a title.
    fn block_id(self, id: Uuid) -> Option<Uuid> {
        (self == Self::Block).then_some(id)
    }
}

impl From<TextHit> for SearchHit {
    fn from(hit: TextHit) -> Self {
        let kind = HitKind::of(hit.block_kind.as_ref());
        Self {
            kind,
            canvas_id: hit.canvas_id,
            canvas_title: hit.canvas_title,
            block_id: kind.block_id(hit.block_id),
            block_kind: hit.block_kind,
            snippet: marked(&hit.snippet),
            rank: hit.rank,
            signals: vec![Signal::Text],
            similarity: None,
        }
    }
}

impl From<SemanticHit> for SearchHit {
    fn from(hit: SemanticHit) -> Self {
        let similarity = hit.similarity();
        Self {
            kind: HitKind::Block,
            canvas_id: hit.canvas_id,
            canvas_title: hit.canvas_title,
            block_id: Some(hit.block_id),
            block_kind: Some(hit.block_kind),
            snippet: excerpt(&hit.text),
            rank: similarity,
            signals: vec![Signal::Semantic],
            similarity: Some(similarity),
        }
    }
}

impl From<HybridHit> for SearchHit {
    fn from(hit: HybridHit) -> Self {
        let kind = HitKind::of(hit.block_kind.as_ref());
        let signals = [
            (hit.text_rank.is_some(), Signal::Text),
            (hit.semantic_rank.is_some(), Signal::Semantic),
        ]
        .into_iter()
        .filter_map(|(found, signal)| found.then_some(signal))
        .collect();
        Self {
            kind,
            canvas_id: hit.canvas_id,
            canvas_title: hit.canvas_title,
            block_id: kind.block_id(hit.block_id),
            block_kind: hit.block_kind,
            snippet: marked(&hit.snippet),
            rank: hit.score,
            signals,
            similarity: hit.similarity,
        }
    }
}

/// The page's items and the cursor of its last one, from `rows` fetched one past the page.
fn into_page<T, H: From<T>>(
    mut rows: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> Cursor,
    fingerprint: u64,
) -> (Vec<H>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = rows
        .last()
        .filter(|_| more)
        .map(|last| cursor_of(last).encode(fingerprint));
    (rows.into_iter().map(H::from).collect(), next)
}

/// Searches the block texts and canvas titles the caller can read, best match first.
///
/// A semantic or hybrid search whose query cannot be embedded (no embedder, a failing or slow
/// one) is answered by text alone, with `fallback` saying why: never a 5xx for that.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, description = "One page of results, best first", body = SearchPage),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<ApiJson<SearchPage>> {
    let retriever = &state.ai.retriever;
    let default_mode = if retriever.has_embedder() {
        SearchMode::Hybrid
    } else {
        SearchMode::Text
    };
    let request = params.validate(default_mode)?;
    if let Some(canvas_id) = request.scope.canvas_id {
        require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    }
    let print = request.fingerprint();
    let mut fallback = None;
    let text_after = match request.ranking()? {
        Ranking::Text(after) => after,
        Ranking::Vector(_)
            if retriever.has_embedder() && !state.ai.take_query_embedding(caller.id) =>
        {
            fallback = Some(FallbackReason::RateLimited);
            None
        }
        Ranking::Vector(ranking) => match retriever.embed_query(caller.id, &request.q).await {
            Ok(vector) => return ranked(&state, caller.id, &request, ranking, &vector).await,
            Err(err) => {
                fallback = Some(fallback_reason(&state, &err));
                None
            }
        },
    };
    if fallback.is_none() && request.mode != SearchMode::Text {
        // Paging on after a fallback: still by text, and still flagged.
        fallback = Some(if retriever.has_embedder() {
            FallbackReason::EmbedderUnavailable
        } else {
            FallbackReason::EmbedderNotConfigured
        });
    }
    let rows = text::search(&state.db, &request.text_query(caller.id, text_after)).await?;
    let (items, next_cursor) = into_page(
        rows,
        request.limit,
        |h: &TextHit| Cursor::Text(h.after()),
        print,
    );
    Ok(ApiJson(SearchPage {
        items,
        next_cursor,
        mode: SearchMode::Text,
        fallback,
    }))
}

/// Which ranking answers a request, and where its previous page ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ranking {
    Text(Option<After>),
    Vector(VectorRanking),
}

/// A ranking that needs the query's vector.
#[derive(Debug, Clone, Copy, PartialEq)]
enum VectorRanking {
    Semantic(Option<SemanticAfter>),
    Hybrid(Option<HybridAfter>),
}

impl SearchRequest {
    /// A text cursor continues by text (its first page fell back), whatever the mode.
    fn ranking(&self) -> ApiResult<Ranking> {
        match (self.mode, self.after) {
            (_, Some(Cursor::Text(after))) => Ok(Ranking::Text(Some(after))),
            (SearchMode::Text, None) => Ok(Ranking::Text(None)),
            (SearchMode::Semantic, None) => Ok(Ranking::Vector(VectorRanking::Semantic(None))),
            (SearchMode::Semantic, Some(Cursor::Semantic(after))) => {
                Ok(Ranking::Vector(VectorRanking::Semantic(Some(after))))
            }
            (SearchMode::Hybrid, None) => Ok(Ranking::Vector(VectorRanking::Hybrid(None))),
            (SearchMode::Hybrid, Some(Cursor::Hybrid(after))) => {
                Ok(Ranking::Vector(VectorRanking::Hybrid(Some(after))))
            }
            (_, Some(Cursor::Semantic(_) | Cursor::Hybrid(_))) => Err(ApiError::invalid_field(
                "cursor",
                "belongs to a search of another mode",
            )),
        }
    }
}

fn fallback_reason(state: &AppState, err: &AiError) -> FallbackReason {
    match err {
        AiError::NotConfigured { .. } => FallbackReason::EmbedderNotConfigured,
        AiError::Unavailable { .. }
        | AiError::Rejected { .. }
        | AiError::ModelLoad { .. }
        | AiError::NotFound { .. }
        | AiError::TurnInProgress
        | AiError::Database(_) => {
            tracing::warn!(error = %err, "search falls back to text: the query could not be embedded");
            state.ai.metrics.search_fallbacks.inc();
            FallbackReason::EmbedderUnavailable
        }
    }
}

/// A semantic or hybrid page for an embedded query.
async fn ranked(
    state: &AppState,
    user_id: Uuid,
    request: &SearchRequest,
    ranking: VectorRanking,
    vector: &QueryVector,
) -> ApiResult<ApiJson<SearchPage>> {
    let settings = state.ai.retriever.settings();
    let print = request.fingerprint();
    let (items, next_cursor) = match ranking {
        VectorRanking::Semantic(after) => {
            let rows = semantic::search(
                &state.db,
                &SemanticQuery {
                    user_id,
                    embedding: &vector.embedding,
                    model: &vector.model,
                    scope: request.scope,
                    min_similarity: settings.min_similarity,
                    after,
                    limit: request.fetch_limit(),
                },
            )
            .await?;
            into_page(
                rows,
                request.limit,
                |h: &SemanticHit| Cursor::Semantic(h.after()),
                print,
            )
        }
        VectorRanking::Hybrid(after) => {
            let rows = hybrid::search(
                &state.db,
                &HybridQuery {
                    user_id,
                    q: &request.q,
                    embedding: &vector.embedding,
                    model: &vector.model,
                    scope: request.scope,
                    titles: request.titles,
                    min_similarity: settings.min_similarity,
                    depth: settings.hybrid_depth,
                    after,
                    limit: request.limit as usize + 1,
                },
            )
            .await?;
            into_page(
                rows,
                request.limit,
                |h: &HybridHit| Cursor::Hybrid(h.after()),
                print,
            )
        }
    };
    Ok(ApiJson(SearchPage {
        items,
        next_cursor,
        mode: request.mode,
        fallback: None,
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
        let request = params("roadmap").validate(SearchMode::Text).unwrap();
        let after = Cursor::Text(After {
            rank: 1.0 + 0.1_f64.sqrt(),
            canvas_id: Uuid::now_v7(),
            block_id: Uuid::nil(),
        });
        let cursor = after.encode(request.fingerprint());
        assert_eq!(
            decode_cursor(&cursor, request.fingerprint()).unwrap(),
            after
        );
        let hybrid = Cursor::Hybrid(HybridAfter {
            score: 1.0 / 61.0,
            canvas_id: Uuid::now_v7(),
            block_id: Uuid::now_v7(),
        });
        let cursor = hybrid.encode(request.fingerprint());
        assert_eq!(
            decode_cursor(&cursor, request.fingerprint()).unwrap(),
            hybrid
        );
    }

    #[test]
    fn a_cursor_of_another_search_is_refused() {
        let first = params("roadmap").validate(SearchMode::Text).unwrap();
        let other = params("budget").validate(SearchMode::Text).unwrap();
        let same_q_other_mode = params("roadmap").validate(SearchMode::Hybrid).unwrap();
        let after = Cursor::Text(After {
            rank: 0.5,
            canvas_id: Uuid::nil(),
            block_id: Uuid::nil(),
        });
        let cursor = after.encode(first.fingerprint());
        assert!(decode_cursor(&cursor, other.fingerprint()).is_err());
        assert!(decode_cursor(&cursor, same_q_other_mode.fingerprint()).is_err());
        for garbage in ["", "abc", &URL_SAFE_NO_PAD.encode("s1|x|y|z|0")] {
            assert!(decode_cursor(garbage, first.fingerprint()).is_err());
        }
    }

    #[test]
    fn kinds_are_parsed_and_unknown_ones_refused() {
        assert_eq!(parse_kinds(None, SearchMode::Text).unwrap(), (true, true));
        assert_eq!(
            parse_kinds(Some("canvas"), SearchMode::Text).unwrap(),
            (true, false)
        );
        assert_eq!(
            parse_kinds(Some("block, canvas"), SearchMode::Hybrid).unwrap(),
            (true, true)
        );
        assert!(parse_kinds(Some("comment"), SearchMode::Text).is_err());
        assert!(parse_kinds(Some(""), SearchMode::Text).is_err());
    }

    #[test]
    fn semantic_search_covers_blocks_only() {
        assert_eq!(
            parse_kinds(None, SearchMode::Semantic).unwrap(),
            (false, true)
        );
        assert!(parse_kinds(Some("canvas"), SearchMode::Semantic).is_err());
        assert!(parse_kinds(Some("canvas"), SearchMode::Hybrid).is_err());
    }

    #[test]
    fn marks_replace_the_delimiters_only() {
        assert_eq!(
            marked("a &lt;b&gt; \u{E000}road\u{E001}"),
            "a &lt;b&gt; <mark>road</mark>"
        );
    }
}
