//! Embedding models: the [`Embedder`] trait and the stored vector shape.
//!
//! Every stored embedding has [`EMBEDDING_DIMENSIONS`] components and unit length, whatever the
//! model: a shorter vector is L2-normalized and zero-padded ([`Embedding::from_model_output`]),
//! which keeps cosine similarity exact.

use serde::{Deserialize, Serialize};

use crate::error::AiError;
use crate::settings::ProviderKind;

/// Dimensions of the `vector(768)` column.
pub const EMBEDDING_DIMENSIONS: usize = 768;

/// Characters of a text that are embedded: about 2,000 tokens, within every provider's input
/// limit (Gemini's is 2,048 tokens; the local model reads only the first 256 anyway). A block's
/// meaning is in its beginning; the rest would be refused, not embedded.
pub const MAX_EMBEDDED_CHARS: usize = 8_000;

/// The part of `text` that is embedded: its first [`MAX_EMBEDDED_CHARS`] characters.
pub fn embedded_part(text: &str) -> &str {
    match text.char_indices().nth(MAX_EMBEDDED_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// What the text is for: some providers embed documents and queries differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Document,
    Query,
}

/// A unit vector of [`EMBEDDING_DIMENSIONS`] components.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Normalizes `raw` to unit length and zero-pads it to [`EMBEDDING_DIMENSIONS`]. `None` for
    /// a vector that is empty, longer than that, all zeros or not finite.
    pub fn from_model_output(mut raw: Vec<f32>) -> Option<Self> {
        if raw.is_empty() || raw.len() > EMBEDDING_DIMENSIONS || raw.iter().any(|x| !x.is_finite())
        {
            return None;
        }
        let norm = raw
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return None;
        }
        for x in &mut raw {
            *x = (f64::from(*x) / norm) as f32;
        }
        raw.resize(EMBEDDING_DIMENSIONS, 0.0);
        Some(Self(raw))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Cosine similarity with another unit vector (their dot product).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    fn provider(&self) -> ProviderKind;

    /// The model's name as stored beside each vector (`all-MiniLM-L6-v2`,
    /// `text-embedding-004`): a change of model is a change of this string.
    fn model(&self) -> &str;

    /// The most texts one [`Embedder::embed`] call takes.
    fn max_batch(&self) -> usize;

    /// One unit vector per text, in order. `texts.len()` is at most [`Embedder::max_batch`].
    async fn embed(&self, texts: &[String], purpose: Purpose) -> Result<Vec<Embedding>, AiError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_vector_is_normalized_and_padded() {
        let e = Embedding::from_model_output(vec![3.0, 4.0]).unwrap();
        assert_eq!(e.as_slice().len(), EMBEDDING_DIMENSIONS);
        assert!((e.as_slice()[0] - 0.6).abs() < 1e-6);
        assert!((e.as_slice()[1] - 0.8).abs() < 1e-6);
        assert!(e.as_slice()[2..].iter().all(|x| *x == 0.0));
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn only_the_first_characters_of_a_long_text_are_embedded() {
        assert_eq!(embedded_part("short"), "short");
        let long = "é".repeat(MAX_EMBEDDED_CHARS + 10);
        assert_eq!(embedded_part(&long).chars().count(), MAX_EMBEDDED_CHARS);
    }

    #[test]
    fn degenerate_vectors_are_refused() {
        assert!(Embedding::from_model_output(vec![]).is_none());
        assert!(Embedding::from_model_output(vec![0.0; 4]).is_none());
        assert!(Embedding::from_model_output(vec![f32::NAN, 1.0]).is_none());
        assert!(Embedding::from_model_output(vec![1.0; EMBEDDING_DIMENSIONS + 1]).is_none());
    }
}
