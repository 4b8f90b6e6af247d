//! Retrieval over the blocks a user may read: text ([`text`]), semantic ([`semantic`]) and hybrid
//! ([`hybrid`]). Every path selects from the SQL function `readable_canvases`, so the access
//! rule is written once, in the migration, and no row of an unreadable canvas leaves the
//! database.
//!
//! [`Retriever`] is the library API the chat pipeline and agent access call: it embeds the
//! query with the configured embedder (bounded by a timeout) and runs the search; the HTTP
//! search route uses the same pieces and falls back to text when the embedder fails.

pub mod hybrid;
pub mod semantic;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::embed::{Embedder, Embedding, Purpose};
use crate::error::AiError;
use crate::metrics::AiMetrics;
use crate::usage::{self, UsageDelta};

/// Where to look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only this canvas.
    pub canvas_id: Option<Uuid>,
    pub include_archived: bool,
}

/// Characters of a block's text shown when no words were matched to highlight.
pub const EXCERPT_CHARS: usize = 240;

/// The first [`EXCERPT_CHARS`] characters of `text`, HTML-escaped like the text search's
/// snippets (and without the highlight delimiters, which only the search may place).
pub fn excerpt(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text
        .chars()
        .filter(|c| *c != text::MARK_START && *c != text::MARK_END);
    for c in chars.by_ref().take(EXCERPT_CHARS) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Settings of [`Retriever`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalSettings {
    /// How long embedding a query may take before the search goes on without it.
    pub query_timeout: Duration,
    /// Semantic matches below this cosine similarity are left out.
    pub min_similarity: f64,
    /// Rows each signal contributes to a hybrid ranking.
    pub hybrid_depth: i64,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_secs(3),
            min_similarity: 0.2,
            hybrid_depth: 100,
        }
    }
}

/// Embeds queries and searches; cheap to clone.
#[derive(Clone)]
pub struct Retriever {
    db: PgPool,
    embedder: Option<Arc<dyn Embedder>>,
    metrics: AiMetrics,
    settings: RetrievalSettings,
}

/// A query embedded by [`Retriever::embed_query`], with the model that embedded it.
#[derive(Debug, Clone)]
pub struct QueryVector {
    pub embedding: Embedding,
    pub model: String,
}

impl Retriever {
    pub fn new(
        db: PgPool,
        embedder: Option<Arc<dyn Embedder>>,
        metrics: AiMetrics,
        settings: RetrievalSettings,
    ) -> Self {
        Self {
            db,
            embedder,
            metrics,
            settings,
        }
    }

    pub fn settings(&self) -> &RetrievalSettings {
        &self.settings
    }

    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    /// `q` embedded for `user` (counted in their usage), within the query timeout.
    pub async fn embed_query(&self, user: Uuid, q: &str) -> Result<QueryVector, AiError> {
        let embedder = self
            .embedder
            .as_ref()
            .ok_or(AiError::NotConfigured { what: "embeddings" })?;
        let texts = [q.to_owned()];
        let embedded = tokio::time::timeout(
            self.settings.query_timeout,
            embedder.embed(&texts, Purpose::Query),
        )
        .await
        .map_err(|_| {
            AiError::unavailable(
                embedder.provider(),
                format!(
                    "embedding the query took longer than {} ms",
                    self.settings.query_timeout.as_millis()
                ),
            )
        })??;
        let embedding = embedded.into_iter().next().ok_or_else(|| {
            AiError::unavailable(embedder.provider(), "the embedder returned no vector")
        })?;
        self.metrics.embedded_texts.inc();
        let delta = UsageDelta {
            user_id: user,
            workspace_id: None,
            day: chrono::Utc::now().date_naive(),
            provider: embedder.provider(),
            model: embedder.model().to_owned(),
            requests: 1,
            input_tokens: 0,
            output_tokens: 0,
            embedded_texts: 1,
        };
        // Usage is bookkeeping: the search must not wait for it, nor fail with it.
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(err) = usage::record(&db, &[delta]).await {
                tracing::warn!(%err, "could not record a query embedding's usage");
            }
        });
        Ok(QueryVector {
            embedding,
            model: embedder.model().to_owned(),
        })
    }

    /// The `k` blocks nearest in meaning to `query` that `user` may read.
    pub async fn semantic_blocks(
        &self,
        user: Uuid,
        query: &str,
        k: usize,
        scope: Scope,
    ) -> Result<Vec<semantic::SemanticHit>, AiError> {
        let vector = self.embed_query(user, query).await?;
        let hits = semantic::search(
            &self.db,
            &semantic::SemanticQuery {
                user_id: user,
                embedding: &vector.embedding,
                model: &vector.model,
                scope,
                min_similarity: self.settings.min_similarity,
                after: None,
                limit: k as i64,
            },
        )
        .await?;
        Ok(hits)
    }

    /// The `k` best blocks and titles for `query` by both signals that `user` may read.
    pub async fn hybrid_blocks(
        &self,
        user: Uuid,
        query: &str,
        k: usize,
        scope: Scope,
    ) -> Result<Vec<hybrid::HybridHit>, AiError> {
        let vector = self.embed_query(user, query).await?;
        let hits = hybrid::search(
            &self.db,
            &hybrid::HybridQuery {
                user_id: user,
                q: query,
                embedding: &vector.embedding,
                model: &vector.model,
                scope,
                titles: true,
                min_similarity: self.settings.min_similarity,
                depth: self.settings.hybrid_depth.max(k as i64),
                after: None,
                limit: k,
            },
        )
        .await?;
        Ok(hits)
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_escaped_and_cut_on_a_character() {
        assert_eq!(
            excerpt("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        let long: String = "é".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt("a\u{E000}b\u{E001}c"), "abc");
    }
}
