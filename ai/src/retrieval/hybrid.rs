//! Hybrid search: Reciprocal Rank Fusion (k = 60) of the text ranking ([`super::text`]) and the
//! vector ranking ([`super::semantic`]).
//!
//! Each signal contributes its best [`HybridQuery::depth`] rows; a row's score is
//! `Σ 1 / (60 + rank)` over the signals that found it (rank from 1), so agreement between the two
//! lifts a row above either alone, and no signal's raw scale matters. Titles come from the text
//! signal only (they have no vectors). Pages are keyset on `(score, canvas_id, block_id)` over the
//! fused list, so a search pages through at most `2 × depth` rows.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::semantic::{self, SemanticQuery};
use super::text::{self, TextQuery};
use super::{excerpt, Scope};
use crate::embed::Embedding;

/// The `k` of Reciprocal Rank Fusion: 60, as in Cormack, Clarke and Büttcher (SIGIR 2009).
pub const RRF_K: f64 = 60.0;

#[derive(Debug, Clone)]
pub struct HybridQuery<'a> {
    pub user_id: Uuid,
    pub q: &'a str,
    pub embedding: &'a Embedding,
    pub model: &'a str,
    pub scope: Scope,
    /// Include canvas-title matches (text signal only).
    pub titles: bool,
    pub min_similarity: f64,
    /// Rows each signal contributes.
    pub depth: i64,
    pub after: Option<HybridAfter>,
    pub limit: usize,
}

/// The sort key of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridAfter {
    pub score: f64,
    pub canvas_id: Uuid,
    /// The nil UUID for a canvas title.
    pub block_id: Uuid,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HybridHit {
    pub canvas_id: Uuid,
    pub canvas_title: String,
    /// The nil UUID for a canvas title.
    pub block_id: Uuid,
    /// `None` for a canvas title.
    pub block_kind: Option<String>,
    /// As [`text::TextHit::snippet`]: HTML-escaped, matches between the mark delimiters.
    pub snippet: String,
    pub score: f64,
    /// 1-based position in the text ranking, when the text signal found the row.
    pub text_rank: Option<u32>,
    /// 1-based position in the vector ranking, when the semantic signal found the row.
    pub semantic_rank: Option<u32>,
    pub similarity: Option<f64>,
}

impl HybridHit {
    pub fn after(&self) -> HybridAfter {
        HybridAfter {
            score: self.score,
            canvas_id: self.canvas_id,
            block_id: self.block_id,
        }
    }
}

/// The fused ranking's page after `query.after`.
pub async fn search(db: &PgPool, query: &HybridQuery<'_>) -> sqlx::Result<Vec<HybridHit>> {
    let text_query = TextQuery {
        user_id: query.user_id,
        q: query.q,
        canvas_id: query.scope.canvas_id,
        include_archived: query.scope.include_archived,
        titles: query.titles,
        blocks: true,
        after: None,
        limit: query.depth,
    };
    let semantic_query = SemanticQuery {
        user_id: query.user_id,
        embedding: query.embedding,
        model: query.model,
        scope: query.scope,
        min_similarity: query.min_similarity,
        after: None,
        limit: query.depth,
    };
    let (texts, nearest) = tokio::try_join!(
        text::search(db, &text_query),
        semantic::search(db, &semantic_query)
    )?;
    Ok(page(fuse(texts, nearest), query.after, query.limit))
}

/// Both rankings fused, best first.
fn fuse(texts: Vec<text::TextHit>, nearest: Vec<semantic::SemanticHit>) -> Vec<HybridHit> {
    let mut fused: HashMap<(Uuid, Uuid), HybridHit> = HashMap::new();
    for (rank, hit) in (1u32..).zip(texts) {
        fused.insert(
            (hit.canvas_id, hit.block_id),
            HybridHit {
                canvas_id: hit.canvas_id,
                canvas_title: hit.canvas_title,
                block_id: hit.block_id,
                block_kind: hit.block_kind,
                snippet: hit.snippet,
                score: rrf(rank),
                text_rank: Some(rank),
                semantic_rank: None,
                similarity: None,
            },
        );
    }
    for (rank, hit) in (1u32..).zip(nearest) {
        let similarity = hit.similarity();
        let entry = fused
            .entry((hit.canvas_id, hit.block_id))
            .or_insert_with(|| HybridHit {
                snippet: excerpt(&hit.text),
                canvas_id: hit.canvas_id,
                canvas_title: hit.canvas_title,
                block_id: hit.block_id,
                block_kind: Some(hit.block_kind),
                score: 0.0,
                text_rank: None,
                semantic_rank: None,
                similarity: None,
            });
        entry.score += rrf(rank);
        entry.semantic_rank = Some(rank);
        entry.similarity = Some(similarity);
    }
    let mut hits: Vec<HybridHit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.canvas_id.cmp(&b.canvas_id))
            .then(a.block_id.cmp(&b.block_id))
    });
    hits
}

fn rrf(rank: u32) -> f64 {
    1.0 / (RRF_K + f64::from(rank))
}

/// The `limit` hits after `after` in the fused order.
fn page(hits: Vec<HybridHit>, after: Option<HybridAfter>, limit: usize) -> Vec<HybridHit> {
    let start = match after {
        None => 0,
        Some(after) => hits
            .iter()
            .position(|h| {
                h.score < after.score
                    || (h.score == after.score
                        && (h.canvas_id, h.block_id) > (after.canvas_id, after.block_id))
            })
            .unwrap_or(hits.len()),
    };
    hits.into_iter().skip(start).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_hit(canvas: Uuid, block: Uuid) -> text::TextHit {
        text::TextHit {
            canvas_id: canvas,
            canvas_title: "t".into(),
            block_id: block,
            block_kind: Some("paragraph".into()),
            snippet: "s".into(),
            rank: 1.0,
        }
    }

    fn near_hit(canvas: Uuid, block: Uuid, distance: f64) -> semantic::SemanticHit {
        semantic::SemanticHit {
            canvas_id: canvas,
            canvas_title: "t".into(),
            block_id: block,
            block_kind: "paragraph".into(),
            text: "a <b> text".into(),
            distance,
        }
    }

    #[test]
    fn a_row_both_signals_found_outranks_rows_found_by_one() {
        let canvas = Uuid::nil();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let fused = fuse(
            vec![text_hit(canvas, a), text_hit(canvas, b)],
            vec![near_hit(canvas, c, 0.1), near_hit(canvas, b, 0.2)],
        );
        assert_eq!(fused[0].block_id, b);
        assert_eq!(fused[0].text_rank, Some(2));
        assert_eq!(fused[0].semantic_rank, Some(2));
        assert!((fused[0].score - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(fused.len(), 3);
    }

    #[test]
    fn a_semantic_only_row_gets_an_escaped_excerpt() {
        let fused = fuse(vec![], vec![near_hit(Uuid::nil(), Uuid::from_u128(1), 0.3)]);
        assert_eq!(fused[0].snippet, "a &lt;b&gt; text");
        assert_eq!(fused[0].text_rank, None);
        assert!((fused[0].similarity.unwrap() - 0.7).abs() < 1e-12);
    }

    #[test]
    fn pages_neither_skip_nor_repeat() {
        let canvas = Uuid::nil();
        let hits = fuse(
            (1..=5)
                .map(|i| text_hit(canvas, Uuid::from_u128(i)))
                .collect(),
            (3..=8)
                .map(|i| near_hit(canvas, Uuid::from_u128(i), 0.1))
                .collect(),
        );
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = page(hits.clone(), after, 3);
            if page.is_empty() {
                break;
            }
            after = page.last().map(HybridHit::after);
            seen.extend(page.into_iter().map(|h| h.block_id));
        }
        let all: Vec<Uuid> = hits.iter().map(|h| h.block_id).collect();
        assert_eq!(seen, all);
    }
}
