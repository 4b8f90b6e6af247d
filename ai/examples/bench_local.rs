//! Benchmark of the local models (`scripts/bench-ai.sh` runs it beside sentence-transformers):
//!
//! * embedding throughput of all-MiniLM-L6-v2, in texts/s, over generated texts of block-like
//!   lengths, fed to [`Embedder::embed`] 32 at a time in generation order as the worker would;
//! * SmolLM2-135M-Instruct: time to first token and generated tokens/s for a 200-token prompt,
//!   for each [`WeightFormat`] (the Q4_1 file as stored, requantized to Q8_0 and to Q4_0).
//!
//! ```text
//! cargo run --release -p potentia-ai --example bench_local -- [--texts N] [--out DIR] [--no-chat] [--no-embed]
//! ```
//! The model paths come from `POTENTIA_AI_EMBEDDING_MODEL_DIR` and `POTENTIA_AI_CHAT_GGUF`
//! (`eval "$(scripts/models.sh env)"`). The texts are written to `DIR/texts.jsonl` (one JSON
//! string a line) so that the Python side embeds exactly the same ones, and the first vectors
//! to `DIR/vectors.jsonl` so that it can compare them with its own. The last lines of the
//! output are `key=value` figures for the wrapper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use potentia_ai::chat::{ChatMessage, ChatRequest, StreamEvent};
use potentia_ai::local::{MiniLmEmbedder, SmolLmChat, WeightFormat};
use potentia_ai::{AiMetrics, ChatModel, Embedder, Purpose};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 32;
/// Vectors written for the cross-check with sentence-transformers.
const CHECKED_VECTORS: usize = 64;
const PROMPT_TOKENS: usize = 200;
const GENERATED_TOKENS: u32 = 128;
const CHAT_RUNS: usize = 3;

const WORDS: &[&str] = &[
    "the",
    "team",
    "project",
    "meeting",
    "notes",
    "plan",
    "review",
    "budget",
    "design",
    "launch",
    "customer",
    "feedback",
    "draft",
    "schedule",
    "week",
    "deadline",
    "update",
    "roadmap",
    "issue",
    "calendar",
    "sync",
    "coffee",
    "recipe",
    "garden",
    "travel",
    "flight",
    "hotel",
    "Lisbon",
    "Monday",
    "Thursday",
    "quarter",
    "research",
    "paper",
    "chapter",
    "idea",
    "sketch",
    "canvas",
    "block",
    "list",
    "task",
    "done",
    "open",
    "question",
    "answer",
    "because",
    "and",
    "with",
    "for",
    "to",
    "of",
    "in",
    "on",
    "a",
    "we",
    "should",
    "will",
    "could",
    "need",
    "try",
    "move",
    "ship",
    "write",
    "read",
    "call",
    "email",
    "share",
    "link",
    "file",
    "photo",
    "video",
    "music",
    "book",
    "dinner",
    "lunch",
    "groceries",
    "eggs",
    "flour",
    "lemons",
    "run",
    "walk",
    "bike",
    "train",
    "server",
    "database",
    "query",
    "index",
    "latency",
    "error",
    "test",
    "build",
    "release",
    "version",
    "bug",
    "fix",
    "user",
    "account",
    "password",
    "settings",
    "price",
    "invoice",
    "contract",
    "hiring",
    "interview",
    "onboarding",
    "retro",
    "goal",
    "metric",
    "growth",
    "risk",
    "priority",
    "small",
    "large",
    "quick",
    "slow",
    "new",
    "old",
    "first",
    "last",
    "next",
    "early",
    "late",
    "today",
    "tomorrow",
    "yesterday",
    "morning",
    "evening",
    "weekend",
    "holiday",
    "family",
    "friends",
    "birthday",
    "gift",
    "party",
    "weather",
    "rain",
    "sunny",
    "mountain",
    "beach",
    "river",
    "city",
    "café",
    "naïve",
    "résumé",
    "über",
    "señor",
    "2024",
    "15%",
    "3.5",
    "#42",
];

/// Block-like texts: a third headings and list items (3–12 words), about half paragraphs
/// (15–60 words), the rest long notes (80–250 words, past the 256-token cut now and then).
fn generate_texts(count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(20261202);
    (0..count)
        .map(|_| {
            let words = match rng.gen_range(0..100) {
                0..=34 => rng.gen_range(3..=12),
                35..=84 => rng.gen_range(15..=60),
                _ => rng.gen_range(80..=250),
            };
            let mut text = String::new();
            let mut sentence_start = true;
            for i in 0..words {
                let word = WORDS[rng.gen_range(0..WORDS.len())];
                if i > 0 {
                    text.push(' ');
                }
                if sentence_start {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        text.extend(first.to_uppercase());
                        text.push_str(chars.as_str());
                    }
                } else {
                    text.push_str(word);
                }
                sentence_start = rng.gen_range(0..10) == 0 || i + 1 == words;
                if sentence_start {
                    text.push(if rng.gen_range(0..5) == 0 { '?' } else { '.' });
                }
            }
            text
        })
        .collect()
}

fn env_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            eprintln!("{var} is not set: run `eval \"$(scripts/models.sh env)\"` first");
            std::process::exit(2);
        }
    }
}

struct Args {
    texts: usize,
    out: PathBuf,
    chat: bool,
    embed: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        texts: 10_000,
        out: PathBuf::from(".local/bench-ai"),
        chat: true,
        embed: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--texts" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => args.texts = n,
                None => usage(),
            },
            "--out" => match it.next() {
                Some(dir) => args.out = PathBuf::from(dir),
                None => usage(),
            },
            "--no-chat" => args.chat = false,
            "--no-embed" => args.embed = false,
            _ => usage(),
        }
    }
    args
}

fn usage() -> ! {
    eprintln!("usage: bench_local [--texts N] [--out DIR] [--no-chat] [--no-embed]");
    std::process::exit(2);
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.flush()
}

async fn bench_embeddings(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let texts = generate_texts(args.texts);
    std::fs::create_dir_all(&args.out)?;
    let texts_path = args.out.join("texts.jsonl");
    write_lines(
        &texts_path,
        texts
            .iter()
            .map(|t| serde_json::Value::from(t.as_str()).to_string()),
    )?;
    let words: usize = texts.iter().map(|t| t.split(' ').count()).sum();
    println!(
        "embedding: {} texts ({:.1} words on average) written to {}",
        texts.len(),
        words as f64 / texts.len().max(1) as f64,
        texts_path.display()
    );

    let started = Instant::now();
    let embedder = MiniLmEmbedder::load(
        &env_path("POTENTIA_AI_EMBEDDING_MODEL_DIR"),
        AiMetrics::default(),
    )?;
    println!("embedding: model loaded in {:.2?}", started.elapsed());
    // Warm-up: first-touch allocations and caches.
    embedder
        .embed(&texts[..BATCH.min(texts.len())], Purpose::Document)
        .await?;

    let started = Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(BATCH) {
        vectors.extend(embedder.embed(batch, Purpose::Document).await?);
    }
    let elapsed = started.elapsed();
    let rate = texts.len() as f64 / elapsed.as_secs_f64();
    println!(
        "embedding: {} texts in {:.2?}: {rate:.1} texts/s",
        texts.len(),
        elapsed
    );
    write_lines(
        &args.out.join("vectors.jsonl"),
        vectors
            .iter()
            .take(CHECKED_VECTORS)
            .map(|v| serde_json::Value::from(v.as_slice()[..384].to_vec()).to_string()),
    )?;
    println!("local_embed_texts_per_s={rate:.1}");
    Ok(())
}

/// A user message that makes the whole ChatML prompt about [`PROMPT_TOKENS`] long.
fn prompt_of_about(
    chat: &SmolLmChat,
    tokens: usize,
) -> Result<ChatRequest, Box<dyn std::error::Error>> {
    let texts = generate_texts(64);
    let mut message = String::from("Summarize these notes in a few sentences:\n");
    let header = 40; // system turn, turn markers and the assistant header
    for text in texts {
        if chat.tokenizer().encode(&message)?.len() + header >= tokens {
            break;
        }
        message.push_str(&text);
        message.push('\n');
    }
    Ok(ChatRequest {
        messages: vec![ChatMessage::user(message)],
        temperature: Some(0.0),
        max_tokens: Some(GENERATED_TOKENS),
        ..ChatRequest::default()
    })
}

struct ChatRun {
    prompt_tokens: u64,
    output_tokens: u64,
    first_token: Duration,
    tokens_per_s: f64,
}

async fn chat_run(
    chat: &SmolLmChat,
    request: &ChatRequest,
) -> Result<ChatRun, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut stream = chat.stream(request).await?;
    let mut first_token = None;
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(_) => {
                first_token.get_or_insert_with(|| started.elapsed());
            }
            StreamEvent::Done { usage: u, .. } => usage = u,
            StreamEvent::ToolCall(_) => {}
        }
    }
    let total = started.elapsed();
    let usage = usage.ok_or("the stream ended without usage")?;
    let first_token = first_token.ok_or("the stream produced no text")?;
    // Tokens after the first, over the time after the first: the decoding rate.
    let decoding = (total - first_token).as_secs_f64();
    let tokens_per_s = usage.output_tokens.saturating_sub(1) as f64 / decoding.max(1e-9);
    Ok(ChatRun {
        prompt_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        first_token,
        tokens_per_s,
    })
}

async fn bench_chat() -> Result<(), Box<dyn std::error::Error>> {
    let gguf = env_path("POTENTIA_AI_CHAT_GGUF");
    for (format, key) in [
        (WeightFormat::Q8_0, "q8_0"),
        (WeightFormat::Q4_0, "q4_0"),
        (WeightFormat::AsStored, "q4_1"),
    ] {
        let started = Instant::now();
        let chat = SmolLmChat::load_with_weights(&gguf, format, AiMetrics::default())?;
        let loaded = started.elapsed();
        let request = prompt_of_about(&chat, PROMPT_TOKENS)?;
        chat_run(&chat, &request).await?; // warm-up
        let mut runs = Vec::new();
        for _ in 0..CHAT_RUNS {
            runs.push(chat_run(&chat, &request).await?);
        }
        // The median run by decoding rate.
        runs.sort_by(|a, b| a.tokens_per_s.total_cmp(&b.tokens_per_s));
        let run = &runs[runs.len() / 2];
        println!(
            "chat {key}: loaded in {loaded:.2?}; prompt {} tokens, {} generated; first token {:.0} ms; {:.1} tokens/s",
            run.prompt_tokens,
            run.output_tokens,
            run.first_token.as_secs_f64() * 1000.0,
            run.tokens_per_s
        );
        println!(
            "local_chat_{key}_ttft_ms={:.0}",
            run.first_token.as_secs_f64() * 1000.0
        );
        println!("local_chat_{key}_tokens_per_s={:.1}", run.tokens_per_s);
        println!("local_chat_{key}_prompt_tokens={}", run.prompt_tokens);
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let result = async {
        if args.embed {
            bench_embeddings(&args).await?;
        }
        if args.chat {
            bench_chat().await?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("bench_local: {e}");
        std::process::exit(1);
    }
}
