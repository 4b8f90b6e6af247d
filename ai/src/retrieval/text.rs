//! Text search: one SQL statement that finds, ranks, pages and highlights.
//!
//! Everything happens in [`search`]'s single statement, so no row of an unreadable canvas ever
//! leaves the database:
//!
//! * `readable`: the canvases the caller can read, from the SQL function `readable_canvases`
//!   (migration `…50_ai`), the one place the rule is written for every retrieval path; archived
//!   canvases only when asked; one canvas only when asked.
//! * `hits`: canvas titles and block texts that match the full-text query
//!   (`websearch_to_tsquery('simple', q)`) or are trigram-similar to `q`
//!   (`text %> q`, i.e. `word_similarity(q, text)` ≥ `pg_trgm.word_similarity_threshold`,
//!   0.6 by default). Both predicates use the GIN indexes of migration `…41_search`.
//! * ranking: a full-text hit ranks `1 + ts_rank_cd(…, 1|32)` in `[1, 2)`,
//!   weighted title (A) > heading (B) > other blocks (D); a trigram-only hit ranks
//!   `word_similarity × (1.0 title, 0.9 heading, 0.8 other)` in `[0, 1]`. Ties break on
//!   `canvas_id`, then `block_id` (the nil UUID for a title), so the order is total.
//! * the page: keyset after the cursor's `(rank, canvas_id, block_id)`, then `limit`.
//! * snippets, only for the page's rows: `ts_headline` over the HTML-escaped text, with the
//!   private-use characters U+E000/U+E001 as highlight delimiters (removed from the text
//!   first); the HTTP layer turns them into `<mark>`/`</mark>`. Titles and texts of up to
//!   240 characters are shown whole, longer texts as up to two fragments of about 30 words. A trigram-only hit is
//!   highlighted on the text's words that are word-similar to one of the query's words.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Opening highlight delimiter in the snippets this module returns.
pub const MARK_START: char = '\u{E000}';
/// Closing highlight delimiter in the snippets this module returns.
pub const MARK_END: char = '\u{E001}';

/// What to look for, and where.
#[derive(Debug, Clone)]
pub struct TextQuery<'a> {
    pub user_id: Uuid,
    pub q: &'a str,
    /// Only this canvas.
    pub canvas_id: Option<Uuid>,
    pub include_archived: bool,
    pub titles: bool,
    pub blocks: bool,
    pub after: Option<After>,
    /// Rows to fetch (the page size plus one, to know whether more follow).
    pub limit: i64,
}

/// The sort key of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct After {
    pub rank: f64,
    pub canvas_id: Uuid,
    /// The nil UUID for a canvas title.
    pub block_id: Uuid,
}

/// One ranked match: a block's text, or a canvas title when `block_kind` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    pub canvas_id: Uuid,
    pub canvas_title: String,
    /// The nil UUID for a canvas title.
    pub block_id: Uuid,
    pub block_kind: Option<String>,
    /// HTML-escaped text with [`MARK_START`]/[`MARK_END`] around the matched words.
    pub snippet: String,
    pub rank: f64,
}

impl TextHit {
    pub fn after(&self) -> After {
        After {
            rank: self.rank,
            canvas_id: self.canvas_id,
            block_id: self.block_id,
        }
    }
}

/// The matches of `query` the caller may read, best first.
pub async fn search<'e>(
    db: impl PgExecutor<'e>,
    query: &TextQuery<'_>,
) -> sqlx::Result<Vec<TextHit>> {
    let after = query.after;
    sqlx::query_as!(
        TextHit,
        r#"with readable as (
               select c.id, c.title
               from canvases c
               where c.id in (select canvas_id from readable_canvases($1))
                 and (c.archived_at is null or $4)
                 and ($3::uuid is null or c.id = $3)
           ),
           hits as (
               select 'canvas' as kind, r.id as canvas_id, r.title as canvas_title,
                      '00000000-0000-0000-0000-000000000000'::uuid as block_id,
                      null::text as block_kind, r.title as body,
                      to_tsvector('simple', r.title) @@ websearch_to_tsquery('simple', $2) as fts_hit,
                      ts_rank_cd(setweight(to_tsvector('simple', r.title), 'A'), websearch_to_tsquery('simple', $2), 1|32)::float8
                          as fts_rank,
                      word_similarity($2, r.title)::float8 as fuzzy,
                      1.0::float8 as weight
               from readable r
               where $5 and (to_tsvector('simple', r.title) @@ websearch_to_tsquery('simple', $2) or r.title %> $2)
               union all
               select 'block', b.canvas_id, r.title, b.id, b.kind, b.text,
                      to_tsvector('simple', b.text) @@ websearch_to_tsquery('simple', $2),
                      ts_rank_cd(setweight(to_tsvector('simple', b.text),
                                           (case when b.kind = 'heading' then 'B' else 'D' end)::"char"),
                                 websearch_to_tsquery('simple', $2), 1|32)::float8,
                      word_similarity($2, b.text)::float8,
                      case when b.kind = 'heading' then 0.9::float8 else 0.8::float8 end
               from blocks b join readable r on r.id = b.canvas_id
               where $6 and (to_tsvector('simple', b.text) @@ websearch_to_tsquery('simple', $2) or b.text %> $2)
           ),
           ranked as (
               select h.*, case when h.fts_hit then 1 + h.fts_rank else h.fuzzy * h.weight end as rank
               from hits h
           ),
           page as (
               select * from ranked
               where $7::float8 is null
                  or rank < $7
                  or (rank = $7 and (canvas_id, block_id) > ($8::uuid, $9::uuid))
               order by rank desc, canvas_id, block_id
               limit $10
           )
           select p.canvas_id as "canvas_id!", p.canvas_title as "canvas_title!",
                  p.block_id as "block_id!", p.block_kind, p.rank as "rank!",
                  ts_headline(
                      'simple',
                      replace(replace(replace(replace(replace(
                          translate(p.body, chr(57344) || chr(57345), ''),
                          '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;'),
                      coalesce(fuzzy.tsq, websearch_to_tsquery('simple', $2)),
                      'StartSel=' || chr(57344) || ', StopSel=' || chr(57345) ||
                      case when p.kind = 'canvas' or length(p.body) <= 240 then ', HighlightAll=true'
                           else ', MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "'
                      end
                  ) as "snippet!"
           from page p
           left join lateral (
               select to_tsquery('simple', string_agg(distinct quote_literal(w), ' | ')) as tsq
               from regexp_split_to_table(lower(p.body), '[^[:alnum:]]+') w
               where length(w) > 1
                 and exists (select 1 from regexp_split_to_table(lower($2), '[^[:alnum:]]+') qw
                             where length(qw) > 1 and word_similarity(qw, w) >= 0.6)
           ) fuzzy on not p.fts_hit
           order by p.rank desc, p.canvas_id, p.block_id"#,
        query.user_id,
        query.q,
        query.canvas_id,
        query.include_archived,
        query.titles,
        query.blocks,
        after.map(|a| a.rank),
        after.map(|a| a.canvas_id),
        after.map(|a| a.block_id),
        query.limit,
    )
    .fetch_all(db)
    .await
}
