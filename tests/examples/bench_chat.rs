//! Chat benchmark (issue 11), in process against a real Postgres (one fresh migrated test
//! database per part), through `potentia_ai::assistant::Assistant` itself:
//!
//! 1. **pipeline overhead without model time**: one user seeded with bulk SQL (COPY and
//!    unnest) with `POTENTIA_BENCH_MESSAGES` messages (default 10,000) in
//!    `POTENTIA_BENCH_CONVERSATIONS` conversations (default 100) of one to three contexts
//!    (topics) each, every message with a vector in `message_embeddings`, and
//!    `POTENTIA_BENCH_MEMORIES` memories (default 1,000, a tenth of them no longer valid) with
//!    vectors in `memory_embeddings`. The chat model answers at once (the judge `continue`, the
//!    specialist one delta), the embedder is a hashed bag of words (768 dimensions, unit length)
//!    that answers in microseconds, the host runs no tools and writes its audit rows into
//!    `system_audit` in the turn's transaction, as the server's host does. After 5 untimed
//!    warm-up turns in another conversation, `POTENTIA_BENCH_TURNS` turns (default 200) run in
//!    the newest seeded conversation, one after another: blocks of ten (a greeting a day after
//!    the previous block, then nine messages on one topic two minutes apart; every fourth block
//!    returns to the topic of two blocks before). Each turn is timed from `start_turn` until
//!    `TurnEvent::Message` arrives (the answer stored, its jobs queued); the time until
//!    `start_turn` returns (embedding, the judge beside the message-only prompt reads, the user
//!    message stored) is reported too, and the two retrieval statements of a turn are timed
//!    alone on the same messages.
//! 2. **prompt tokens per turn** of the same script: `TurnResult.prompt.estimated_tokens` (the
//!    packed specialist prompt, tool specs excluded) against a naive prompt of the persona, the
//!    conversation's last 50 messages and the new one, both counted by
//!    `packer::request_tokens` (that is `packer::estimate_tokens` per part, plus 4 per message).
//! 3. **recall@10** on a LOCOMO-shaped fixture of our own (`tests/fixtures/chat_locomo.json`:
//!    6 users × 5 dated sessions, 61 questions with their evidence turns). Each session is a
//!    conversation whose messages are stored at the session's date (a `ManualClock`); the
//!    embedding worker then embeds them all with the real local embedder (all-MiniLM-L6-v2).
//!    Each question runs a turn in a new conversation at the user's `asked_at`, with
//!    `AssistantSettings.related_messages = 10` (the default); an evidence turn is
//!    recalled when its text is among the earlier messages of the specialist prompt the fake
//!    model received. Question turns are not embedded, so no question retrieves another.
//!
//! ```sh
//! source scripts/env.sh
//! POTENTIA_TEST_EMBEDDING_MODEL_DIR=$(scripts/models.sh embedding-dir) \
//!   cargo run --release -p potentia-tests --example bench_chat
//! ```
//!
//! Method, goals and figures: `docs/benchmarks/chat.md`.
//!
//! `POTENTIA_BENCH_PARTS` (default `overhead,recall`) runs one part only; `overhead` alone needs
//! no model directory. `POTENTIA_BENCH_KEEP_DB=1` keeps the overhead part's database (its URL is
//! printed) for `EXPLAIN`; drop it by hand afterwards.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use potentia_ai::assistant::conversations::{
    self, MessageRole, MessageStatus, NewConversation, NewMessage, RelatedQuery,
};
use potentia_ai::assistant::packer::{self, AgendaItem, PERSONA};
use potentia_ai::assistant::tools::{AssistantHost, AuditRecord, ToolContext, ToolOutcome};
use potentia_ai::assistant::{
    memories, Assistant, AssistantSettings, Clock, ManualClock, TurnEvent, TurnRequest, TurnResult,
    TurnStart,
};
use potentia_ai::chat::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, StreamEvent,
    ToolCall, Usage,
};
use potentia_ai::embed::{Embedder, Embedding, Purpose, EMBEDDING_DIMENSIONS};
use potentia_ai::error::AiError;
use potentia_ai::local::{MiniLmEmbedder, MINILM_MODEL_NAME};
use potentia_ai::metrics::AiMetrics;
use potentia_ai::retrieval::{RetrievalSettings, Retriever};
use potentia_ai::settings::{ProviderKind, WorkerSettings};
use potentia_ai::store::{content_hash, vector_literal};
use potentia_ai::worker::EmbeddingWorker;
use potentia_tests::bench::{ms, summary, Summary};
use potentia_tests::TestDb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::{PgPoolCopyExt, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The LOCOMO-shaped fixture of part 3.
const FIXTURE: &str = include_str!("../fixtures/chat_locomo.json");

/// The goals of the issue.
const GOAL_P95_MS: f64 = 30.0;
const GOAL_RECALL: f64 = 0.9;

/// Messages of the naive prompt.
const NAIVE_HISTORY: usize = 50;

/// Turns of one topic block in the overhead script (the first is a greeting).
const BLOCK: usize = 10;

/// Untimed turns before the timed ones.
const WARM_UP_TURNS: usize = 5;

/// Related messages offered to the specialist in part 3 (recall@10).
const RECALL_K: usize = 10;

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    messages: usize,
    conversations: usize,
    memories: usize,
    turns: usize,
}

impl Sizes {
    fn from_env() -> Self {
        Self {
            messages: env_or("POTENTIA_BENCH_MESSAGES", 10_000),
            conversations: env_or("POTENTIA_BENCH_CONVERSATIONS", 100).max(2),
            memories: env_or("POTENTIA_BENCH_MEMORIES", 1_000),
            turns: env_or("POTENTIA_BENCH_TURNS", 200).max(1),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sizes = Sizes::from_env();
    let parts = std::env::var("POTENTIA_BENCH_PARTS").unwrap_or_else(|_| "overhead,recall".into());
    let mut report = String::new();
    if parts.contains("overhead") {
        overhead_benchmark(&sizes, &mut report).await?;
    }
    if parts.contains("recall") {
        let model_dir: PathBuf = std::env::var_os("POTENTIA_TEST_EMBEDDING_MODEL_DIR")
            .map(PathBuf::from)
            .context(
                "POTENTIA_TEST_EMBEDDING_MODEL_DIR must name the all-MiniLM-L6-v2 folder \
                 (scripts/models.sh embedding-dir)",
            )?;
        recall_benchmark(&model_dir, &mut report).await?;
    }
    println!("\n{report}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In-process fakes: a chat model and an embedder that answer at once, a host without tools.

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers every call at once: the judge `continue`, the assessor nothing learned, the
/// specialist one delta. Keeps the specialist requests when `record` is set.
struct InstantChat {
    record: bool,
    specialist: Mutex<Vec<ChatRequest>>,
}

impl InstantChat {
    fn new(record: bool) -> Self {
        Self {
            record,
            specialist: Mutex::new(Vec::new()),
        }
    }

    fn take_specialist(&self) -> Vec<ChatRequest> {
        std::mem::take(
            &mut *self
                .specialist
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn answer(request: &ChatRequest) -> String {
        match request.response_schema.as_ref().map(|s| s.name.as_str()) {
            Some("context_decision") => {
                json!({"decision": "continue", "reason": "the same topic"}).to_string()
            }
            Some("memory_extraction") => {
                json!({"memories": [], "summary": "The user talked about their week."}).to_string()
            }
            Some("memory_reconciliation") => {
                json!({"action": "NONE", "reason": "already known"}).to_string()
            }
            Some(_) => "{}".to_owned(),
            None => "A short answer.".to_owned(),
        }
    }

    fn usage(request: &ChatRequest) -> Usage {
        Usage {
            input_tokens: packer::request_tokens(request) as u64,
            output_tokens: 4,
        }
    }
}

impl ChatModel for InstantChat {
    fn provider(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn model(&self) -> &str {
        "bench-instant"
    }

    fn complete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatResponse, AiError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            Ok(ChatResponse {
                text: Self::answer(request),
                tool_calls: Vec::new(),
                usage: Some(Self::usage(request)),
                finish_reason: Some(FinishReason::Stop),
                model: "bench-instant".to_owned(),
            })
        })
    }

    fn stream<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatStream, AiError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if self.record {
                self.specialist
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(request.clone());
            }
            let events = vec![
                Ok(StreamEvent::Delta(Self::answer(request))),
                Ok(StreamEvent::Done {
                    usage: Some(Self::usage(request)),
                    finish_reason: Some(FinishReason::Stop),
                }),
            ];
            let stream: ChatStream = Box::pin(futures::stream::iter(events));
            Ok(stream)
        })
    }
}

/// A hashed bag of words: each lower-cased word adds ±1 to one of 768 components (FNV-1a),
/// normalized by [`Embedding::from_model_output`]. Texts sharing words are similar.
struct HashedEmbedder;

impl HashedEmbedder {
    const MODEL: &'static str = "bench-hashed-bag-of-words";

    fn vector(text: &str) -> Embedding {
        let mut raw = vec![0f32; EMBEDDING_DIMENSIONS];
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in word.to_lowercase().bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            raw[(hash % EMBEDDING_DIMENSIONS as u64) as usize] += sign;
        }
        if raw.iter().all(|x| *x == 0.0) {
            raw[0] = 1.0;
        }
        Embedding::from_model_output(raw).expect("a finite, non-zero vector")
    }
}

impl Embedder for HashedEmbedder {
    fn provider(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn model(&self) -> &str {
        Self::MODEL
    }

    fn max_batch(&self) -> usize {
        64
    }

    fn embed<'life0, 'life1, 'async_trait>(
        &'life0 self,
        texts: &'life1 [String],
        _purpose: Purpose,
    ) -> BoxFuture<'async_trait, Result<Vec<Embedding>, AiError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { Ok(texts.iter().map(|t| Self::vector(t)).collect()) })
    }
}

/// No tools, an empty agenda, audit rows as the server writes them.
struct BenchHost;

impl AssistantHost for BenchHost {
    fn run_tool<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _context: &'life1 ToolContext,
        _call: &'life2 ToolCall,
    ) -> BoxFuture<'async_trait, ToolOutcome>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { ToolOutcome::refused("no_tools", "the benchmark host runs no tools") })
    }

    fn agenda<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _context: &'life1 ToolContext,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> BoxFuture<'async_trait, Result<Vec<AgendaItem>, String>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn audit<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        db: &'life1 mut PgConnection,
        record: AuditRecord<'life2>,
    ) -> BoxFuture<'async_trait, sqlx::Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            sqlx::query(
                "insert into system_audit (actor_id, action, target_type, target_id, after, request_id)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(record.actor_id)
            .bind(record.action)
            .bind(record.target_type)
            .bind(record.target_id.to_string())
            .bind(record.after)
            .bind(record.request_id)
            .execute(db)
            .await?;
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Running a turn

struct TimedTurn {
    /// Until `start_turn` returned: embedding, the judge beside the message-only prompt reads,
    /// the user message stored.
    started: Duration,
    /// Until `TurnEvent::Message`: the whole turn.
    answered: Duration,
    turn: TurnResult,
}

async fn run_turn(
    assistant: &Assistant,
    host: &Arc<dyn AssistantHost>,
    user: Uuid,
    conversation: Uuid,
    text: &str,
    client_message_id: String,
) -> anyhow::Result<TimedTurn> {
    let clock = Instant::now();
    let start = assistant
        .start_turn(
            TurnRequest {
                user_id: user,
                conversation_id: conversation,
                text: text.to_owned(),
                client_message_id,
                time_zone: None,
                request_id: None,
            },
            Arc::clone(host),
        )
        .await?;
    let started = clock.elapsed();
    let TurnStart::Running(mut events) = start else {
        anyhow::bail!("a turn with a new client_message_id was replayed");
    };
    let mut answered = None;
    while let Some(event) = events.recv().await {
        match event {
            TurnEvent::Message { turn } => {
                answered = Some((clock.elapsed(), *turn));
                break;
            }
            TurnEvent::Error { failure, detail } => {
                anyhow::bail!("the turn failed: {}: {detail}", failure.code())
            }
            _ => {}
        }
    }
    // The rest of the task (a title after a first exchange) runs out before the next turn.
    while events.recv().await.is_some() {}
    let (answered, turn) = answered.context("the turn ended without a message")?;
    Ok(TimedTurn {
        started,
        answered,
        turn,
    })
}

async fn insert_user(db: &PgPool, name: &str, zone: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into users (id, email, name, timezone, preferences) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(format!("bench-{}@example.org", id.simple()))
    .bind(name)
    .bind(zone)
    .bind(json!({"tone": "casual", "answers": "short"}))
    .execute(db)
    .await?;
    Ok(id)
}

async fn connect(database: &TestDb) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .connect(&database.url)
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Generated texts of parts 1 and 2

struct Topic {
    objects: &'static [&'static str],
    details: &'static [&'static str],
}

const TOPICS: [Topic; 12] = [
    Topic {
        objects: &[
            "the tomato seedlings",
            "the compost heap",
            "the raised beds",
            "the apple tree",
            "the slugs on the lettuce",
            "the herb pots",
        ],
        details: &[
            "on the balcony",
            "before the first frost",
            "this weekend",
            "after all the rain",
            "with the new fertiliser",
        ],
    },
    Topic {
        objects: &[
            "my 10k training plan",
            "the new running shoes",
            "the interval sessions",
            "my sore calf",
            "the long Sunday run",
            "the park run",
        ],
        details: &[
            "before the race in May",
            "three times a week",
            "in the early morning",
            "after work",
            "with the running club",
        ],
    },
    Topic {
        objects: &[
            "the lentil soup",
            "a birthday cake for Leo",
            "the weekly meal prep",
            "the sourdough starter",
            "the vegetable curry",
            "the lunch boxes",
        ],
        details: &[
            "for six people",
            "without dairy",
            "on a tight budget",
            "in under thirty minutes",
            "for the whole week",
        ],
    },
    Topic {
        objects: &[
            "the trip to Porto",
            "the train tickets to Vienna",
            "the hotel in Kyoto",
            "our passports",
            "the camping gear",
            "the rental car",
        ],
        details: &[
            "for the summer holiday",
            "during the school break",
            "with the kids",
            "before prices go up",
            "for our anniversary",
        ],
    },
    Topic {
        objects: &[
            "the monthly budget",
            "the savings account",
            "the electricity bill",
            "the tax return",
            "the car insurance",
            "the mortgage offer",
        ],
        details: &[
            "before the end of the month",
            "with my partner",
            "after the pay rise",
            "this quarter",
            "without the credit card",
        ],
    },
    Topic {
        objects: &[
            "the quarterly report",
            "the client presentation",
            "the new hire's onboarding",
            "the project deadline",
            "the team offsite",
            "my performance review",
        ],
        details: &[
            "for Friday",
            "with my manager",
            "for the marketing team",
            "before the board meeting",
            "next sprint",
        ],
    },
    Topic {
        objects: &[
            "my sister's wedding",
            "Dad's hospital visit",
            "the kids' swimming lessons",
            "Grandma's ninetieth birthday",
            "the school play",
            "the family reunion",
        ],
        details: &[
            "next Saturday",
            "in the spring",
            "at the community hall",
            "with all the cousins",
            "if the weather holds",
        ],
    },
    Topic {
        objects: &[
            "the novel I'm reading",
            "the book club pick",
            "the history podcast",
            "the poetry collection",
            "the biography of Ada Lovelace",
            "my reading list",
        ],
        details: &[
            "on the commute",
            "before bed",
            "for the book club",
            "this month",
            "in French",
        ],
    },
    Topic {
        objects: &[
            "the guitar chords",
            "the piano piece",
            "the band rehearsal",
            "the choir concert",
            "my singing lessons",
            "the new amplifier",
        ],
        details: &[
            "for the concert in June",
            "every evening",
            "with the metronome",
            "at the studio",
            "with my teacher",
        ],
    },
    Topic {
        objects: &[
            "the leaking tap",
            "the bathroom tiles",
            "the garden fence",
            "the kitchen paint",
            "the heating boiler",
            "the loft insulation",
        ],
        details: &[
            "before winter",
            "with the plumber",
            "within budget",
            "on Saturday",
            "after the inspection",
        ],
    },
    Topic {
        objects: &[
            "my sleep schedule",
            "the physio exercises",
            "my blood pressure",
            "the dentist appointment",
            "the meditation habit",
            "my back pain",
        ],
        details: &[
            "every morning",
            "after the doctor's advice",
            "for two weeks",
            "before the check-up",
            "at lunchtime",
        ],
    },
    Topic {
        objects: &[
            "my Spanish lessons",
            "the Japanese flashcards",
            "the coding course",
            "the photography class",
            "the statistics module",
            "the pottery workshop",
        ],
        details: &[
            "on Tuesday evenings",
            "for the exam",
            "online",
            "with a tutor",
            "before the trip",
        ],
    },
];

const USER_TEMPLATES: [&str; 8] = [
    "I've been thinking about {o} {d}.",
    "Can you help me sort out {o} {d}?",
    "Quick update on {o}: it went better than expected {d}.",
    "What would you do about {o} {d}?",
    "I'm a bit worried about {o}.",
    "Remind me what we said about {o}.",
    "Today I finally dealt with {o} {d}.",
    "Do you think {o} can wait until next month?",
];

const ASSISTANT_TEMPLATES: [&str; 5] = [
    "Let's look at {o} together. One small step {d} would already help.",
    "That sounds like progress on {o}. What's the next step?",
    "For {o}, I'd start with the simplest option and see how it goes.",
    "Noted about {o}. Shall I remind you {d}?",
    "It makes sense to plan {o} {d}.",
];

const MEMORY_TEMPLATES: [(&str, &str); 6] = [
    ("fact", "Is working on {o} {d}."),
    ("fact", "Finds {o} stressful."),
    ("preference", "Prefers to handle {o} {d}."),
    ("preference", "Likes short check-ins about {o}."),
    ("rule", "Wants a reminder about {o} {d}."),
    ("rule", "Never wants {o} brought up at work."),
];

const GREETINGS: [&str; 5] = ["hi", "hello!", "good morning", "hey there", "morning!"];

fn fill(template: &str, topic: &Topic, rng: &mut StdRng) -> String {
    template
        .replace("{o}", topic.objects[rng.gen_range(0..topic.objects.len())])
        .replace("{d}", topic.details[rng.gen_range(0..topic.details.len())])
}

fn user_text(topic: &Topic, rng: &mut StdRng) -> String {
    fill(
        USER_TEMPLATES[rng.gen_range(0..USER_TEMPLATES.len())],
        topic,
        rng,
    )
}

fn assistant_text(topic: &Topic, rng: &mut StdRng) -> String {
    fill(
        ASSISTANT_TEMPLATES[rng.gen_range(0..ASSISTANT_TEMPLATES.len())],
        topic,
        rng,
    )
}

/// A value escaped for COPY's text format.
fn copy_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

// ---------------------------------------------------------------------------------------------
// Part 1 and 2: seeding

struct Seeded {
    user: Uuid,
    /// Oldest first.
    conversations: Vec<Uuid>,
    messages: usize,
    contexts: usize,
    memories: usize,
    invalid_memories: usize,
}

/// A seeded message, as COPY writes it.
struct SeedMessage {
    id: Uuid,
    conversation: Uuid,
    context: Uuid,
    role: &'static str,
    text: String,
    client_message_id: Option<String>,
    reply_to: Option<Uuid>,
    at: DateTime<Utc>,
}

/// One COPY of `rows` (text format) into `statement`, in chunks of a few MiB.
async fn copy_rows(
    db: &PgPool,
    statement: &str,
    rows: impl Iterator<Item = String>,
) -> anyhow::Result<()> {
    let mut copy = db.copy_in_raw(statement).await?;
    let mut chunk = String::new();
    for row in rows {
        chunk.push_str(&row);
        chunk.push('\n');
        if chunk.len() > 4 << 20 {
            copy.send(std::mem::take(&mut chunk).into_bytes()).await?;
        }
    }
    copy.send(chunk.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The user, their conversations, contexts and messages (ending a day before `now`), their
/// memories, and every vector.
async fn seed(
    db: &PgPool,
    sizes: &Sizes,
    now: DateTime<Utc>,
    rng: &mut StdRng,
) -> anyhow::Result<Seeded> {
    let user = insert_user(db, "Ada Bench", "Europe/Paris").await?;
    let n = sizes.conversations;
    let pairs_total = sizes.messages / 2;
    let mut conversation_ids = Vec::with_capacity(n);
    let mut conversation_titles = Vec::with_capacity(n);
    let mut conversation_created = Vec::with_capacity(n);
    let mut conversation_active = Vec::with_capacity(n);
    let mut context_ids = Vec::new();
    let mut context_conversations = Vec::new();
    let mut context_summaries = Vec::new();
    let mut context_vectors = Vec::new();
    let mut context_started = Vec::new();
    let mut context_active = Vec::new();
    let mut context_counts: Vec<i32> = Vec::new();
    let mut messages: Vec<SeedMessage> = Vec::with_capacity(sizes.messages);
    for c in 0..n {
        let conversation = Uuid::now_v7();
        let start = now - chrono::Duration::days(1 + 2 * (n - c) as i64);
        let pairs = pairs_total / n + usize::from(c < pairs_total % n);
        let contexts = 1 + c % 3;
        let mut last = start;
        let mut first_topic = None;
        for j in 0..contexts {
            let context = Uuid::now_v7();
            let topic = &TOPICS[rng.gen_range(0..TOPICS.len())];
            first_topic.get_or_insert(topic);
            let context_start = start + chrono::Duration::hours(9 * j as i64);
            let in_context = pairs / contexts + usize::from(j < pairs % contexts);
            let mut at = context_start;
            for p in 0..in_context {
                at = context_start + chrono::Duration::minutes(2 * p as i64);
                let question = Uuid::now_v7();
                messages.push(SeedMessage {
                    id: question,
                    conversation,
                    context,
                    role: "user",
                    text: user_text(topic, rng),
                    client_message_id: Some(format!("seed-{c}-{j}-{p}")),
                    reply_to: None,
                    at,
                });
                messages.push(SeedMessage {
                    id: Uuid::now_v7(),
                    conversation,
                    context,
                    role: "assistant",
                    text: assistant_text(topic, rng),
                    client_message_id: None,
                    reply_to: Some(question),
                    at: at + chrono::Duration::seconds(20),
                });
            }
            last = last.max(at + chrono::Duration::seconds(20));
            let summary = format!(
                "The user talked about {} and {}.",
                topic.objects[rng.gen_range(0..topic.objects.len())],
                topic.objects[rng.gen_range(0..topic.objects.len())]
            );
            context_ids.push(context);
            context_conversations.push(conversation);
            context_vectors.push(vector_literal(&HashedEmbedder::vector(&summary)));
            context_summaries.push(summary);
            context_started.push(context_start);
            context_active.push(at + chrono::Duration::seconds(20));
            context_counts.push(2 * in_context as i32);
        }
        conversation_ids.push(conversation);
        conversation_titles.push(format!(
            "About {}",
            first_topic.map_or("things", |t| t.objects[0])
        ));
        conversation_created.push(start);
        conversation_active.push(last);
    }

    sqlx::query(
        "insert into conversations (id, user_id, title, title_source, created_at, last_activity_at)
         select id, $2, title, 'auto', created, active
         from unnest($1::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[])
              as t(id, title, created, active)",
    )
    .bind(&conversation_ids)
    .bind(user)
    .bind(&conversation_titles)
    .bind(&conversation_created)
    .bind(&conversation_active)
    .execute(db)
    .await?;
    sqlx::query(
        "insert into conversation_contexts
             (id, conversation_id, summary, embedding, embedding_model, started_at, last_active_at, message_count)
         select id, conversation, summary, vector::vector, $5, started, active, n
         from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $6::timestamptz[],
                     $7::timestamptz[], $8::int4[])
              as t(id, conversation, summary, vector, started, active, n)",
    )
    .bind(&context_ids)
    .bind(&context_conversations)
    .bind(&context_summaries)
    .bind(&context_vectors)
    .bind(HashedEmbedder::MODEL)
    .bind(&context_started)
    .bind(&context_active)
    .bind(&context_counts)
    .execute(db)
    .await?;
    copy_rows(
        db,
        "copy conversation_messages
             (id, conversation_id, context_id, user_id, role, text, client_message_id, reply_to, created_at)
         from stdin",
        messages.iter().map(|m| {
            format!(
                "{}\t{}\t{}\t{user}\t{}\t{}\t{}\t{}\t{}",
                m.id,
                m.conversation,
                m.context,
                m.role,
                copy_text(&m.text),
                m.client_message_id
                    .as_deref()
                    .map_or_else(|| "\\N".to_owned(), copy_text),
                m.reply_to.map_or_else(|| "\\N".to_owned(), |r| r.to_string()),
                m.at.to_rfc3339()
            )
        }),
    )
    .await?;
    copy_rows(
        db,
        "copy message_embeddings (message_id, user_id, model, content_hash, embedding) from stdin",
        messages.iter().map(|m| {
            format!(
                "{}\t{user}\t{}\t\\\\x{}\t{}",
                m.id,
                HashedEmbedder::MODEL,
                hex(&content_hash(&m.text)),
                vector_literal(&HashedEmbedder::vector(&m.text))
            )
        }),
    )
    .await?;

    // Memories learned over the past year; a tenth of them no longer true.
    let mut memory_ids = Vec::with_capacity(sizes.memories);
    let mut kinds = Vec::with_capacity(sizes.memories);
    let mut texts = Vec::with_capacity(sizes.memories);
    let mut valid = Vec::with_capacity(sizes.memories);
    let mut invalid: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(sizes.memories);
    for i in 0..sizes.memories {
        let topic = &TOPICS[rng.gen_range(0..TOPICS.len())];
        let (kind, template) = MEMORY_TEMPLATES[i % MEMORY_TEMPLATES.len()];
        let valid_at = now - chrono::Duration::days(rng.gen_range(2..365));
        memory_ids.push(Uuid::now_v7());
        kinds.push(kind);
        texts.push(fill(template, topic, rng));
        valid.push(valid_at);
        invalid
            .push((i % 10 == 9).then(|| valid_at + chrono::Duration::hours(rng.gen_range(1..24))));
    }
    sqlx::query(
        "insert into memories (id, user_id, kind, text, valid_at, invalid_at, created_at, origin)
         select id, $2, kind, text, valid, invalid, valid, 'user'
         from unnest($1::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
              as t(id, kind, text, valid, invalid)",
    )
    .bind(&memory_ids)
    .bind(user)
    .bind(&kinds)
    .bind(&texts)
    .bind(&valid)
    .bind(&invalid)
    .execute(db)
    .await?;
    copy_rows(
        db,
        "copy memory_embeddings (memory_id, user_id, model, content_hash, embedding) from stdin",
        memory_ids.iter().zip(&texts).map(|(id, text)| {
            format!(
                "{id}\t{user}\t{}\t\\\\x{}\t{}",
                HashedEmbedder::MODEL,
                hex(&content_hash(text)),
                vector_literal(&HashedEmbedder::vector(text))
            )
        }),
    )
    .await?;
    sqlx::query(
        "vacuum (analyze) users, conversations, conversation_contexts, conversation_messages,
                          message_embeddings, memories, memory_embeddings",
    )
    .execute(db)
    .await?;
    Ok(Seeded {
        user,
        conversations: conversation_ids,
        messages: messages.len(),
        contexts: context_ids.len(),
        memories: sizes.memories,
        invalid_memories: invalid.iter().filter(|i| i.is_some()).count(),
    })
}

/// The overhead script: blocks of a greeting a day later, then nine messages two minutes apart
/// on one topic; every fourth block goes back to the topic of two blocks before.
fn script(turns: usize, rng: &mut StdRng) -> Vec<(chrono::Duration, String)> {
    let mut out = Vec::with_capacity(turns);
    let mut block_topics: Vec<usize> = Vec::new();
    while out.len() < turns {
        let b = block_topics.len();
        let topic = if b % 4 == 3 {
            block_topics[b - 2]
        } else {
            rng.gen_range(0..TOPICS.len())
        };
        block_topics.push(topic);
        for i in 0..BLOCK {
            if out.len() == turns {
                break;
            }
            if i == 0 {
                out.push((
                    chrono::Duration::days(1),
                    GREETINGS[rng.gen_range(0..GREETINGS.len())].to_owned(),
                ));
            } else {
                out.push((chrono::Duration::minutes(2), user_text(&TOPICS[topic], rng)));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Rows of equal-width columns as a Markdown table that also reads aligned in a terminal;
/// `align` holds one `l` or `r` per column.
fn table(header: &[&str], align: &str, rows: &[Vec<String>]) -> String {
    let right: Vec<bool> = align.chars().map(|c| c == 'r').collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::from("|");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(out, " {pad}{cell} |");
            } else {
                let _ = write!(out, " {cell}{pad} |");
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if right.get(i).copied().unwrap_or(false) {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        } else {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn latency_row(label: &str, s: &Summary, goal: &str) -> Vec<String> {
    vec![
        label.to_owned(),
        s.n.to_string(),
        format!("{:.1}", s.p50),
        format!("{:.1}", s.p95),
        format!("{:.1}", s.p99),
        format!("{:.1}", s.max),
        goal.to_owned(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Part 1 and 2: overhead and prompt tokens

async fn overhead_benchmark(sizes: &Sizes, report: &mut String) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    let database = TestDb::create().await;
    let db = connect(&database).await?;
    let now = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")?.with_timezone(&Utc);
    let started = Instant::now();
    let seeded = seed(&db, sizes, now, &mut rng).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} messages in {} conversations ({} contexts) and {} memories in {seed_seconds:.1} s",
        seeded.messages,
        seeded.conversations.len(),
        seeded.contexts,
        seeded.memories
    );

    let clock = ManualClock::starting_at(now);
    let embedder: Arc<dyn Embedder> = Arc::new(HashedEmbedder);
    let chat: Arc<dyn ChatModel> = Arc::new(InstantChat::new(false));
    let retriever = Retriever::new(
        db.clone(),
        Some(Arc::clone(&embedder)),
        AiMetrics::default(),
        RetrievalSettings::default(),
    );
    let settings = AssistantSettings::default();
    let assistant = Assistant::new(
        db.clone(),
        Some(chat),
        Some(Arc::clone(&embedder)),
        retriever,
        Arc::new(clock.clone()),
        settings.clone(),
    );
    let host: Arc<dyn AssistantHost> = Arc::new(BenchHost);
    let user = seeded.user;
    let timed_conversation = *seeded.conversations.last().context("no conversation")?;
    let warm_conversation = seeded.conversations[seeded.conversations.len() - 2];

    for (i, (gap, text)) in script(WARM_UP_TURNS, &mut rng).iter().enumerate() {
        clock.advance(*gap);
        run_turn(
            &assistant,
            &host,
            user,
            warm_conversation,
            text,
            format!("warm-{i}"),
        )
        .await?;
    }

    // The timed conversation as the naive prompt reads it: its messages, oldest first.
    let mut transcript: Vec<ChatMessage> =
        conversations::messages(&db, timed_conversation, None, 10_000)
            .await?
            .into_iter()
            .map(|m| match m.role {
                MessageRole::User => ChatMessage::user(m.text),
                MessageRole::Assistant => ChatMessage::assistant(m.text),
            })
            .collect();
    let script = script(sizes.turns, &mut rng);
    let mut started_ms = Vec::with_capacity(script.len());
    let mut answered_ms = Vec::with_capacity(script.len());
    let mut pipeline_tokens = Vec::with_capacity(script.len());
    let mut naive_tokens = Vec::with_capacity(script.len());
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let mut parts_sum = [0usize; 4];
    let run = Instant::now();
    for (i, (gap, text)) in script.iter().enumerate() {
        clock.advance(*gap);
        let timed = run_turn(
            &assistant,
            &host,
            user,
            timed_conversation,
            text,
            format!("turn-{i}"),
        )
        .await?;
        started_ms.push(ms(timed.started));
        answered_ms.push(ms(timed.answered));
        let prompt = timed
            .turn
            .prompt
            .clone()
            .context("a running turn reports its prompt")?;
        pipeline_tokens.push(prompt.estimated_tokens as f64);
        parts_sum[0] += prompt.history;
        parts_sum[1] += prompt.memories;
        parts_sum[2] += prompt.related;
        parts_sum[3] += usize::from(timed.turn.domain_role.is_some());
        *decisions
            .entry(timed.turn.decision.decision.as_str().to_owned())
            .or_default() += 1;

        let mut naive = ChatRequest {
            system: Some(PERSONA.to_owned()),
            messages: transcript[transcript.len().saturating_sub(NAIVE_HISTORY)..].to_vec(),
            ..ChatRequest::default()
        };
        naive.messages.push(ChatMessage::user(text.clone()));
        naive_tokens.push(packer::request_tokens(&naive) as f64);
        transcript.push(ChatMessage::user(text.clone()));
        transcript.push(ChatMessage::assistant(
            timed.turn.assistant_message.text.clone(),
        ));
        if (i + 1) % 50 == 0 {
            eprintln!(
                "{} turns, p50 so far {:.1} ms",
                i + 1,
                summary(answered_ms.clone()).p50
            );
        }
    }
    let run_seconds = run.elapsed().as_secs_f64();

    // The two retrieval statements of a turn, alone, on the same messages.
    let mut related_ms = Vec::new();
    let mut memories_ms = Vec::new();
    let at = clock.now();
    for (_, text) in script
        .iter()
        .filter(|(_, t)| !GREETINGS.contains(&t.as_str()))
    {
        let literal = vector_literal(&HashedEmbedder::vector(text));
        let t = Instant::now();
        conversations::related_messages(
            &db,
            &RelatedQuery {
                user,
                embedding: &literal,
                model: HashedEmbedder::MODEL,
                exclude_context: None,
                min_similarity: settings.related_min_similarity,
                limit: settings.related_messages as i64,
            },
        )
        .await?;
        related_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        memories::relevant(
            &db,
            user,
            at,
            Some((&literal, HashedEmbedder::MODEL)),
            settings.memories as i64,
        )
        .await?;
        memories_ms.push(ms(t.elapsed()));
    }

    let turns = script.len();
    let _ = writeln!(report, "## Pipeline overhead (model time excluded)\n");
    let _ = writeln!(
        report,
        "One user: {} messages with vectors in {} conversations ({} contexts), {} memories with \
         vectors ({} no longer valid); seeded in {seed_seconds:.0} s. In-process chat model and \
         hashed bag-of-words embedder answering at once; {WARM_UP_TURNS} warm-up turns, then \
         {turns} turns in one conversation in {run_seconds:.1} s. Decisions: {}.\n",
        seeded.messages,
        seeded.conversations.len(),
        seeded.contexts,
        seeded.memories,
        seeded.invalid_memories,
        decisions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let rows = vec![
        latency_row(
            "turn: start_turn → Message event",
            &summary(answered_ms),
            &format!("p95 ≤ {GOAL_P95_MS:.0} ms"),
        ),
        latency_row(
            "of which start_turn (embed, judge ∥ memories, blocks, role; store the question)",
            &summary(started_ms),
            "",
        ),
        latency_row(
            &format!(
                "alone: related_messages ({} vectors, k = {})",
                seeded.messages, settings.related_messages
            ),
            &summary(related_ms),
            "",
        ),
        latency_row(
            &format!(
                "alone: memories::relevant ({} memories, k = {})",
                seeded.memories, settings.memories
            ),
            &summary(memories_ms),
            "",
        ),
    ];
    report.push_str(&table(
        &[
            "measure", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "goal",
        ],
        "lrrrrrl",
        &rows,
    ));

    let _ = writeln!(report, "\n## Prompt tokens per turn (same script)\n");
    let _ = writeln!(
        report,
        "Estimated by `packer::request_tokens` (one token per four bytes, 4 per message), tool \
         specs excluded. Pipeline: the packed specialist prompt (budget {} tokens); per turn on \
         average {:.1} history messages, {:.1} memories, {:.1} related messages, a domain role in \
         {} of {turns} turns. Naive: the persona, the conversation's last {NAIVE_HISTORY} \
         messages and the new one.\n",
        settings.prompt_budget_tokens,
        parts_sum[0] as f64 / turns as f64,
        parts_sum[1] as f64 / turns as f64,
        parts_sum[2] as f64 / turns as f64,
        parts_sum[3],
    );
    let pipeline = summary(pipeline_tokens.clone());
    let naive = summary(naive_tokens.clone());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rows = vec![
        vec![
            "pipeline (ContextPacker)".to_owned(),
            format!("{:.0}", pipeline.p50),
            format!("{:.0}", pipeline.p95),
            format!("{:.0}", pipeline.max),
            format!("{:.0}", mean(&pipeline_tokens)),
        ],
        vec![
            format!("naive (persona + last {NAIVE_HISTORY} messages)"),
            format!("{:.0}", naive.p50),
            format!("{:.0}", naive.p95),
            format!("{:.0}", naive.max),
            format!("{:.0}", mean(&naive_tokens)),
        ],
        vec![
            "pipeline / naive".to_owned(),
            format!("{:.2}", pipeline.p50 / naive.p50),
            format!("{:.2}", pipeline.p95 / naive.p95),
            format!("{:.2}", pipeline.max / naive.max),
            format!("{:.2}", mean(&pipeline_tokens) / mean(&naive_tokens)),
        ],
    ];
    report.push_str(&table(
        &["prompt", "median", "p95", "max", "mean"],
        "lrrrr",
        &rows,
    ));
    let _ = writeln!(report);
    db.close().await;
    if env_or("POTENTIA_BENCH_KEEP_DB", 0) == 1 {
        eprintln!(
            "kept the overhead database (drop it by hand): {}",
            database.url
        );
        std::mem::forget(database);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Part 3: recall@10 on the LOCOMO-shaped fixture

#[derive(Deserialize)]
struct Fixture {
    users: Vec<FixtureUser>,
}

#[derive(Deserialize)]
struct FixtureUser {
    name: String,
    time_zone: String,
    asked_at: DateTime<Utc>,
    sessions: Vec<Session>,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Session {
    at: DateTime<Utc>,
    turns: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    user: String,
    assistant: String,
}

#[derive(Deserialize)]
struct Question {
    #[serde(rename = "type")]
    kind: String,
    text: String,
    evidence: Vec<String>,
}

/// The user text of evidence id `D<session>:<turn>`.
fn evidence_text<'a>(user: &'a FixtureUser, id: &str) -> anyhow::Result<&'a str> {
    let (session, turn) = id
        .strip_prefix('D')
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(s, t)| Some((s.parse::<usize>().ok()?, t.parse::<usize>().ok()?)))
        .with_context(|| format!("{}: bad evidence id {id}", user.name))?;
    user.sessions
        .get(session.wrapping_sub(1))
        .and_then(|s| s.turns.get(turn.wrapping_sub(1)))
        .map(|t| t.user.as_str())
        .with_context(|| format!("{}: no turn {id}", user.name))
}

/// The "earlier messages" section of a specialist prompt.
fn related_section(system: &str) -> &str {
    const HEADING: &str = "## Earlier messages that may be relevant\n";
    match system.find(HEADING) {
        Some(start) => {
            let rest = &system[start + HEADING.len()..];
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        }
        None => "",
    }
}

/// One question's outcome.
struct Answered {
    kind: String,
    /// Per evidence turn: whether its text was in the prompt, and its rank (from 0) and
    /// similarity among all the user's messages.
    evidence: Vec<(bool, Option<(usize, f64)>)>,
    /// Related messages in the prompt.
    related: usize,
    /// Similarities of the k nearest messages, most similar first.
    nearest: Vec<f64>,
}

/// Mean over `answers` of the share of their evidence turns in the prompt.
fn recall_in_prompt(answers: &[&Answered]) -> f64 {
    mean(answers.iter().map(|a| {
        a.evidence.iter().filter(|(found, _)| *found).count() as f64 / a.evidence.len() as f64
    }))
}

/// The same had the floor been `floor`: the k nearest at least that similar.
fn recall_at_floor(answers: &[&Answered], floor: f64) -> f64 {
    mean(answers.iter().map(|a| {
        a.evidence
            .iter()
            .filter(|(_, rank)| rank.is_some_and(|(r, s)| r < RECALL_K && s >= floor))
            .count() as f64
            / a.evidence.len() as f64
    }))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

async fn recall_benchmark(model_dir: &std::path::Path, report: &mut String) -> anyhow::Result<()> {
    let fixture: Fixture =
        serde_json::from_str(FIXTURE).context("tests/fixtures/chat_locomo.json")?;
    // Every evidence id names a turn, before anything runs.
    for user in &fixture.users {
        for q in &user.questions {
            for id in &q.evidence {
                evidence_text(user, id)?;
            }
        }
    }
    eprintln!("loading the model from {}", model_dir.display());
    let minilm = Arc::new(MiniLmEmbedder::load(model_dir, AiMetrics::default())?);
    let embedder: Arc<dyn Embedder> = minilm.clone();
    let database = TestDb::create().await;
    let db = connect(&database).await?;
    let clock = ManualClock::starting_at(Utc::now());
    let chat = Arc::new(InstantChat::new(true));
    let settings = AssistantSettings {
        related_messages: RECALL_K,
        ..AssistantSettings::default()
    };
    let assistant = Assistant::new(
        db.clone(),
        Some(chat.clone() as Arc<dyn ChatModel>),
        Some(Arc::clone(&embedder)),
        Retriever::new(
            db.clone(),
            Some(Arc::clone(&embedder)),
            AiMetrics::default(),
            RetrievalSettings::default(),
        ),
        Arc::new(clock.clone()),
        settings.clone(),
    );
    let host: Arc<dyn AssistantHost> = Arc::new(BenchHost);

    // The sessions, stored at their dates.
    let mut user_ids = Vec::new();
    let mut stored = 0usize;
    for user in &fixture.users {
        let id = insert_user(&db, &user.name, &user.time_zone).await?;
        user_ids.push(id);
        for (n, session) in user.sessions.iter().enumerate() {
            let mut tx = db.begin().await?;
            let conversation = conversations::create(
                &mut tx,
                &NewConversation {
                    user_id: id,
                    workspace_id: None,
                    canvas_id: None,
                    title: Some(format!("Session {}", n + 1)),
                    at: session.at,
                },
            )
            .await?;
            let context =
                conversations::create_context(&mut tx, conversation.id, session.at).await?;
            for (t, turn) in session.turns.iter().enumerate() {
                let at = session.at + chrono::Duration::minutes(3 * t as i64);
                let client_message_id = format!("D{}:{}", n + 1, t + 1);
                let question = conversations::insert_message(
                    &mut tx,
                    &NewMessage {
                        conversation: &conversation,
                        context_id: context.id,
                        role: MessageRole::User,
                        text: &turn.user,
                        status: MessageStatus::Complete,
                        client_message_id: Some(&client_message_id),
                        reply_to: None,
                        decision: None,
                        domain_role: None,
                        tool_calls: json!([]),
                        input_tokens: None,
                        output_tokens: None,
                        at,
                    },
                )
                .await?;
                conversations::insert_message(
                    &mut tx,
                    &NewMessage {
                        conversation: &conversation,
                        context_id: context.id,
                        role: MessageRole::Assistant,
                        text: &turn.assistant,
                        status: MessageStatus::Complete,
                        client_message_id: None,
                        reply_to: Some(question.id),
                        decision: None,
                        domain_role: None,
                        tool_calls: json!([]),
                        input_tokens: None,
                        output_tokens: None,
                        at: at + chrono::Duration::seconds(40),
                    },
                )
                .await?;
                stored += 2;
            }
            tx.commit().await?;
        }
    }

    // The embedding worker drains the queue the messages filled.
    let worker = EmbeddingWorker::new(
        db.clone(),
        Arc::clone(&embedder),
        WorkerSettings::default(),
        AiMetrics::default(),
    );
    let started = Instant::now();
    let mut embedded = 0usize;
    loop {
        let batch = worker.run_once().await?;
        anyhow::ensure!(
            batch.outage.is_none() && batch.dead == 0 && batch.retrying == 0,
            "the embedding worker failed a batch: {batch:?}"
        );
        if batch.claimed == 0 {
            break;
        }
        embedded += batch.embedded + batch.reused;
    }
    let embed_seconds = started.elapsed().as_secs_f64();
    let vectors: i64 =
        sqlx::query_scalar("select count(*) from message_embeddings where model = $1")
            .bind(MINILM_MODEL_NAME)
            .fetch_one(&db)
            .await?;
    anyhow::ensure!(
        vectors as usize == stored,
        "{stored} messages stored but {vectors} vectors"
    );
    eprintln!("{stored} messages embedded in {embed_seconds:.1} s");

    let mut answers: Vec<Answered> = Vec::new();
    let mut misses = Vec::new();
    let mut turn_ms = Vec::new();
    for (user, &user_id) in fixture.users.iter().zip(&user_ids) {
        for (i, q) in user.questions.iter().enumerate() {
            clock.set(user.asked_at + chrono::Duration::minutes(10 * i as i64));
            let mut tx = db.begin().await?;
            let conversation = conversations::create(
                &mut tx,
                &NewConversation {
                    user_id,
                    workspace_id: None,
                    canvas_id: None,
                    title: Some("Question".to_owned()),
                    at: clock.now(),
                },
            )
            .await?;
            tx.commit().await?;
            chat.take_specialist();
            let timed = run_turn(
                &assistant,
                &host,
                user_id,
                conversation.id,
                &q.text,
                format!("q{i}"),
            )
            .await?;
            turn_ms.push(ms(timed.answered));
            let requests = chat.take_specialist();
            let prompt = requests
                .last()
                .and_then(|r| r.system.clone())
                .context("the specialist was not called")?;
            let section = related_section(&prompt);

            // Every message of the user ranked, without the similarity floor.
            let query = minilm
                .embed(std::slice::from_ref(&q.text), Purpose::Query)
                .await?
                .pop()
                .context("no query vector")?;
            let literal = vector_literal(&query);
            let ranking = conversations::related_messages(
                &db,
                &RelatedQuery {
                    user: user_id,
                    embedding: &literal,
                    model: MINILM_MODEL_NAME,
                    exclude_context: None,
                    min_similarity: -1.0,
                    limit: 100_000,
                },
            )
            .await?;
            let mut evidence = Vec::new();
            for id in &q.evidence {
                let text = evidence_text(user, id)?;
                let in_prompt = section.contains(text);
                let rank = ranking
                    .iter()
                    .position(|m| m.text == text)
                    .map(|r| (r, ranking[r].similarity));
                if !in_prompt {
                    misses.push(vec![
                        format!("{}: {}", user.name, q.text),
                        q.kind.clone(),
                        id.clone(),
                        rank.map_or("-".to_owned(), |(r, _)| (r + 1).to_string()),
                        rank.map_or("-".to_owned(), |(_, s)| format!("{s:.2}")),
                    ]);
                }
                evidence.push((in_prompt, rank));
            }
            answers.push(Answered {
                kind: q.kind.clone(),
                evidence,
                related: section.lines().filter(|l| l.starts_with("- ")).count(),
                nearest: ranking
                    .iter()
                    .take(RECALL_K)
                    .map(|m| m.similarity)
                    .collect(),
            });
        }
    }

    let kinds: Vec<String> = answers
        .iter()
        .map(|a| a.kind.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let all: Vec<&Answered> = answers.iter().collect();
    let of_kind =
        |kind: &str| -> Vec<&Answered> { answers.iter().filter(|a| a.kind == kind).collect() };
    let floor = settings.related_min_similarity;
    let sessions: usize = fixture.users.iter().map(|u| u.sessions.len()).sum();
    let _ = writeln!(
        report,
        "## Recall@{RECALL_K} on the LOCOMO-shaped fixture\n"
    );
    let _ = writeln!(
        report,
        "{} users, {sessions} dated sessions, {stored} messages embedded with {MINILM_MODEL_NAME} \
         by the embedding worker in {embed_seconds:.1} s ({embedded} texts); {} questions, each a \
         turn in a new conversation with related_messages = {RECALL_K} (the default) and \
         related_min_similarity = {floor} (default). Recall of a question = its evidence turns \
         found among the earlier messages of the specialist prompt / its evidence turns; the \
         figures are means over questions. Turn p50 {:.0} ms.\n",
        fixture.users.len(),
        answers.len(),
        summary(turn_ms).p50,
    );
    let row = |label: &str, group: &[&Answered], goal: &str| -> Vec<String> {
        let evidence: usize = group.iter().map(|a| a.evidence.len()).sum();
        let found: usize = group
            .iter()
            .map(|a| a.evidence.iter().filter(|(f, _)| *f).count())
            .sum();
        vec![
            label.to_owned(),
            group.len().to_string(),
            evidence.to_string(),
            found.to_string(),
            format!("{:.3}", recall_in_prompt(group)),
            format!("{:.1}", mean(group.iter().map(|a| a.related as f64))),
            goal.to_owned(),
        ]
    };
    let mut rows: Vec<Vec<String>> = kinds.iter().map(|k| row(k, &of_kind(k), "")).collect();
    rows.push(row("all", &all, &format!("≥ {GOAL_RECALL}")));
    report.push_str(&table(
        &[
            "question type",
            "questions",
            "evidence turns",
            "in prompt",
            &format!("recall@{RECALL_K}"),
            "related in prompt",
            "goal",
        ],
        "lrrrrrl",
        &rows,
    ));

    // What other floors would give, from the same rankings (the default's row repeats the
    // pipeline's figure: a check that the ranking is the pipeline's).
    let _ = writeln!(
        report,
        "\nrecall@{RECALL_K} by similarity floor, from the ranking of all the user's messages \
         (the {RECALL_K} nearest at least that similar):\n"
    );
    let mut header = vec!["related_min_similarity".to_owned(), "all".to_owned()];
    header.extend(kinds.iter().cloned());
    header.push("related per question".to_owned());
    let mut rows = Vec::new();
    let mut floors = vec![0.35, 0.3, 0.25, 0.2, 0.0];
    if !floors.contains(&floor) {
        floors.insert(0, floor);
    }
    for f in floors {
        let mut row = vec![
            if f == floor {
                format!("{f} (default)")
            } else {
                f.to_string()
            },
            format!("{:.3}", recall_at_floor(&all, f)),
        ];
        row.extend(
            kinds
                .iter()
                .map(|k| format!("{:.3}", recall_at_floor(&of_kind(k), f))),
        );
        row.push(format!(
            "{:.1}",
            mean(
                answers
                    .iter()
                    .map(|a| a.nearest.iter().filter(|s| **s >= f).count() as f64)
            )
        ));
        rows.push(row);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    report.push_str(&table(
        &header,
        &format!("l{}", "r".repeat(header.len() - 1)),
        &rows,
    ));
    if !misses.is_empty() {
        let _ = writeln!(
            report,
            "\nEvidence turns missing from the prompt, with their rank and similarity among all \
             the user's messages:\n"
        );
        report.push_str(&table(
            &["question", "type", "evidence", "rank", "similarity"],
            "llrrr",
            &misses,
        ));
    }
    let _ = writeln!(report);
    let distinct: HashSet<&str> = fixture
        .users
        .iter()
        .flat_map(|u| {
            u.sessions
                .iter()
                .flat_map(|s| s.turns.iter().map(|t| t.user.as_str()))
        })
        .collect();
    anyhow::ensure!(
        distinct.len() * 2 == stored,
        "every user turn of the fixture must be distinct (a recalled text must be one turn)"
    );
    db.close().await;
    drop(database);
    Ok(())
}
