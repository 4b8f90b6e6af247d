//! Search over the block texts and canvas titles the caller can read:
//! `GET /api/v1/search?q=&mode=&limit=&cursor=&canvas_id=&kinds=&include_archived=`.
//!
//! * **Modes.** `text` (below), `semantic` (nearest block vectors) and `hybrid` (Reciprocal
//!   Rank Fusion, k = 60, of both); the default is `hybrid` when an embedder is configured,
//!   `text` otherwise. Each result names the signals that found it. A query that cannot be
//!   embedded is answered by text with `fallback` saying why, never with a 5xx. The queries are
//!   `potentia_ai::retrieval`'s; this module validates, pages and shapes the answer.
//!
//! * **Matching.** Postgres full-text search with the `simple` configuration (no stemming, no
//!   stop words: the same behaviour in every language) on `websearch_to_tsquery(q)`, so users
//!   may write `"exact phrase"`, `-excluded` and `or`; plus `pg_trgm` word similarity
//!   (`word_similarity(q, text)` ≥ 0.6) for typos, plurals and words typed halfway.
//! * **Ranking.** Every full-text hit ranks above every trigram-only hit: a full-text hit's
//!   `rank` is `1 + ts_rank_cd` (normalized into `[0, 1)`, dampened by document length), with a
//!   canvas title weighing 10×, a `heading` block 4× a passing mention in any other block; a
//!   trigram-only hit's `rank` is its word similarity × 1.0 (title), 0.9 (heading) or 0.8
//!   (other blocks), in `[0, 1]`. Equal ranks are ordered by `canvas_id`, then `block_id`
//!   (a title first), so the order is total and deterministic.
//! * **Pagination.** Ranked results have no stable `(created_at, id)` order, so the cursor is
//!   an opaque keyset position after the last item: its exact rank (the `f64` bits), canvas id
//!   and block id, plus a fingerprint of the search (q, canvas, kinds, archived) so a cursor
//!   used with another search is refused (422 `cursor`). Pages neither skip nor repeat while
//!   the data stands still; a block edited meanwhile may move across the page boundary.
//! * **Snippets** are HTML-safe: the text is escaped (`& < > " '`) and only the matched words
//!   are wrapped in `<mark>…</mark>`; a title, or a text of up to 240 characters, is shown
//!   whole; a longer text is cut to at most two fragments of about 30 words joined by ` … `.
//! * **Access.** The SQL itself returns only rows of canvases the caller can read (the SQL
//!   function `readable_canvases`, mirroring [`crate::access::canvas_access`], in every mode);
//!   with `canvas_id`, a canvas the caller cannot read is a 404, as everywhere.
//! * **Archived canvases** are left out unless `include_archived=true`.

pub mod routes;
