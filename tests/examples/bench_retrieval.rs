//! Retrieval and freshness benchmark (issue 10), in process against a real Postgres with the
//! real local embedder (all-MiniLM-L6-v2):
//!
//! 1. **semantic query latency and recall**: `POTENTIA_BENCH_CANVASES` canvases (default 1,000)
//!    of `POTENTIA_BENCH_BLOCKS_PER_CANVAS` blocks (default 100) in 20 workspaces, every block
//!    with a vector in `block_embeddings`. `POTENTIA_BENCH_TEXTS` generated texts (default
//!    5,000) are embedded with the real model; each block takes one of them at random, and its
//!    vector is that text's vector plus gaussian noise (σ = `POTENTIA_BENCH_NOISE` per
//!    component, default 0.02), renormalized and zero-padded like
//!    [`Embedding::from_model_output`]. Readers are members of 1, 2 and 10 of the 20
//!    workspaces (5 %, 10 % and 50 % of the canvases), so `readable_canvases()` decides what
//!    they see. `POTENTIA_BENCH_QUERIES` query texts (default 200) are embedded beforehand; only
//!    the search call is timed. Recall@10 compares the HNSW plan with the exact plan on the same
//!    queries; an `hnsw.ef_search` sweep repeats the HNSW statement with other values. Hybrid
//!    runs every query for the 5 % reader and `POTENTIA_BENCH_HYBRID_QUERIES_WIDE` (default 40)
//!    for the wider readers, whose text signal takes seconds per query on this corpus.
//! 2. **freshness**: a real server with the local embedder (worker polling every 100 ms);
//!    `POTENTIA_BENCH_EDIT_RATE` block edits a second (default 20) through
//!    `PATCH /api/v1/canvases/{id}/blocks/{block_id}` for `POTENTIA_BENCH_FRESHNESS_SECONDS`
//!    (default 30) over 20 blocks in 5 canvases; `block_embeddings` is polled every 20 ms and an
//!    edit is fresh once the row's `content_hash` is the sha-256 of its text. An edit superseded
//!    by a newer edit of its block before its own text was embedded is counted as coalesced.
//!
//! ```sh
//! source scripts/env.sh
//! POTENTIA_TEST_EMBEDDING_MODEL_DIR=$(scripts/models.sh embedding-dir) \
//!   cargo run --release -p potentia-tests --example bench_retrieval
//! ```
//!
//! `POTENTIA_BENCH_PARTS` (default `search,freshness`) runs one part only.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use potentia_ai::embed::{Embedder, Embedding, Purpose};
use potentia_ai::local::{MiniLmEmbedder, MINILM_MODEL_NAME};
use potentia_ai::metrics::AiMetrics;
use potentia_ai::retrieval::hybrid::{self, HybridQuery};
use potentia_ai::retrieval::semantic::{self, Plan, SemanticQuery, EXACT_SCAN_MAX};
use potentia_ai::retrieval::{RetrievalSettings, Scope};
use potentia_ai::settings::EmbeddingProviderSettings;
use potentia_tests::bench::{ms, summary};
use potentia_tests::{TestApp, TestDb};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPoolCopyExt, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

/// all-MiniLM-L6-v2's output width; the stored vectors are zero beyond it.
const MINILM_DIMENSIONS: usize = 384;

/// The canvases are spread over this many workspaces, so one workspace is 5 % of them.
const WORKSPACES: usize = 20;

/// Rows per search, as the search route's default page.
const K: usize = 10;

/// Rows each signal contributes to a hybrid ranking (the server's default).
const HYBRID_DEPTH: i64 = 100;

/// `hnsw.ef_search` values of the sweep.
const EF_SWEEP: [i64; 4] = [40, 100, 200, 400];

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    canvases: usize,
    blocks_per_canvas: usize,
    texts: usize,
    queries: usize,
    /// Hybrid queries of the 10 % and 50 % readers.
    hybrid_queries_wide: usize,
    noise: f64,
    edit_rate: u64,
    freshness_seconds: u64,
}

impl Sizes {
    fn from_env() -> Self {
        Self {
            canvases: env_or("POTENTIA_BENCH_CANVASES", 1_000),
            blocks_per_canvas: env_or("POTENTIA_BENCH_BLOCKS_PER_CANVAS", 100),
            texts: env_or("POTENTIA_BENCH_TEXTS", 5_000),
            queries: env_or("POTENTIA_BENCH_QUERIES", 200),
            hybrid_queries_wide: env_or("POTENTIA_BENCH_HYBRID_QUERIES_WIDE", 40),
            noise: env_or("POTENTIA_BENCH_NOISE", 0.02),
            edit_rate: env_or("POTENTIA_BENCH_EDIT_RATE", 20),
            freshness_seconds: env_or("POTENTIA_BENCH_FRESHNESS_SECONDS", 30),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let model_dir: PathBuf = std::env::var_os("POTENTIA_TEST_EMBEDDING_MODEL_DIR")
        .map(PathBuf::from)
        .context(
            "POTENTIA_TEST_EMBEDDING_MODEL_DIR must name the all-MiniLM-L6-v2 folder \
             (scripts/models.sh embedding-dir)",
        )?;
    let sizes = Sizes::from_env();
    let parts = std::env::var("POTENTIA_BENCH_PARTS").unwrap_or_else(|_| "search,freshness".into());
    let mut report = String::new();
    if parts.contains("search") {
        search_benchmark(&model_dir, &sizes, &mut report).await?;
    }
    if parts.contains("freshness") {
        freshness_benchmark(&model_dir, &sizes, &mut report).await?;
    }
    println!("\n{report}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generated texts

const DOMAINS: [(&[&str], &[&str]); 10] = [
    (
        &[
            "the quarterly budget",
            "travel expenses",
            "the invoice backlog",
            "payroll",
            "the revenue forecast",
            "vendor contracts",
            "the tax filing",
            "cash flow",
        ],
        &[
            "before the board meeting",
            "for the finance team",
            "with the new accounting tool",
            "by the end of the month",
            "after the audit",
            "in euros and dollars",
        ],
    ),
    (
        &[
            "the login page",
            "the database migration",
            "the search index",
            "the deployment pipeline",
            "the memory leak",
            "the API rate limits",
            "the websocket server",
            "the unit tests",
        ],
        &[
            "in the staging environment",
            "before the release",
            "on the production cluster",
            "after the code review",
            "with better logging",
            "for the mobile app",
        ],
    ),
    (
        &[
            "the tomato soup",
            "a sourdough loaf",
            "the pasta sauce",
            "a lemon cake",
            "the vegetable curry",
            "grilled salmon",
            "the Sunday roast",
            "a chocolate mousse",
        ],
        &[
            "for the dinner party",
            "with fresh herbs from the garden",
            "without any dairy",
            "in under thirty minutes",
            "for twelve guests",
            "using the slow cooker",
        ],
    ),
    (
        &[
            "the flight to Lisbon",
            "the hotel in Kyoto",
            "a train through the Alps",
            "the hiking trail",
            "our passports",
            "the rental car",
            "the museum tickets",
            "the beach house",
        ],
        &[
            "for the summer holiday",
            "during the school break",
            "with the whole family",
            "on a tight budget",
            "before prices go up",
            "for the anniversary trip",
        ],
    ),
    (
        &[
            "the marathon training",
            "a morning yoga routine",
            "the knee injury",
            "protein intake",
            "the swimming lessons",
            "sleep habits",
            "the cycling route",
            "strength workouts",
        ],
        &[
            "three times a week",
            "with the physiotherapist",
            "before the race in April",
            "after the doctor's advice",
            "to lose some weight",
            "during the winter months",
        ],
    ),
    (
        &[
            "the product launch",
            "the customer survey",
            "the pricing page",
            "the onboarding emails",
            "the competitor analysis",
            "social media ads",
            "the brand guidelines",
            "the newsletter",
        ],
        &[
            "for the enterprise segment",
            "ahead of the conference",
            "with the design agency",
            "to reduce churn",
            "for the European market",
            "based on user interviews",
        ],
    ),
    (
        &[
            "the new hire",
            "performance reviews",
            "the team offsite",
            "the hiring plan",
            "parental leave",
            "the interview questions",
            "the org chart",
            "remote work rules",
        ],
        &[
            "for the engineering department",
            "starting next quarter",
            "with the HR partner",
            "after the reorganisation",
            "for part-time staff",
            "in the employee handbook",
        ],
    ),
    (
        &[
            "the leaking roof",
            "the kitchen renovation",
            "the garden fence",
            "the heating system",
            "the bathroom tiles",
            "the electricity bill",
            "the moving boxes",
            "the paint colours",
        ],
        &[
            "before winter comes",
            "with the contractor",
            "within the renovation budget",
            "for the spare bedroom",
            "after the inspection",
            "on the weekend",
        ],
    ),
    (
        &[
            "the history essay",
            "the chemistry exam",
            "the reading list",
            "the thesis outline",
            "the statistics homework",
            "the language course",
            "the lab report",
            "the seminar presentation",
        ],
        &[
            "due next Friday",
            "with the study group",
            "for the professor",
            "using the library archive",
            "before the semester ends",
            "in French",
        ],
    ),
    (
        &[
            "the birthday party",
            "the wedding guest list",
            "the concert tickets",
            "the book club",
            "the charity run",
            "the neighbourhood picnic",
            "the photo album",
            "the gift ideas",
        ],
        &[
            "for my sister",
            "next Saturday afternoon",
            "with old school friends",
            "at the community hall",
            "if the weather is good",
            "for about forty people",
        ],
    ),
];

const OPENINGS: [&str; 12] = [
    "We need to review",
    "Remember to finish",
    "Ask Maria about",
    "Draft a plan for",
    "Notes on",
    "Decide who handles",
    "Follow up on",
    "Compare options for",
    "Write a summary of",
    "Double-check",
    "Schedule a call about",
    "Collect feedback on",
];

const QUESTIONS: [&str; 6] = [
    "how do we handle",
    "what is the status of",
    "ideas for",
    "problems with",
    "who is working on",
    "deadline for",
];

/// `n` distinct block texts, a sentence or two each.
fn block_texts(n: usize, rng: &mut StdRng) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (objects, details) = DOMAINS[rng.gen_range(0..DOMAINS.len())];
        let mut text = format!(
            "{} {} {}.",
            OPENINGS[rng.gen_range(0..OPENINGS.len())],
            objects[rng.gen_range(0..objects.len())],
            details[rng.gen_range(0..details.len())]
        );
        // A second sentence, from the same domain or another, makes texts vary in length and
        // mix topics as real notes do.
        if rng.gen_bool(0.6) {
            let (objects, details) = if rng.gen_bool(0.7) {
                (objects, details)
            } else {
                DOMAINS[rng.gen_range(0..DOMAINS.len())]
            };
            let _ = write!(
                text,
                " Also {} {} {}.",
                OPENINGS[rng.gen_range(0..OPENINGS.len())].to_lowercase(),
                objects[rng.gen_range(0..objects.len())],
                details[rng.gen_range(0..details.len())]
            );
        }
        if seen.insert(text.clone()) {
            out.push(text);
        }
    }
    out
}

/// `n` short search queries over the same topics.
fn query_texts(n: usize, rng: &mut StdRng) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (objects, details) = DOMAINS[rng.gen_range(0..DOMAINS.len())];
            let object = objects[rng.gen_range(0..objects.len())];
            match rng.gen_range(0..3) {
                0 => object.trim_start_matches("the ").to_owned(),
                1 => format!("{} {object}", QUESTIONS[rng.gen_range(0..QUESTIONS.len())]),
                _ => format!("{object} {}", details[rng.gen_range(0..details.len())]),
            }
        })
        .collect()
}

async fn embed_all(
    embedder: &MiniLmEmbedder,
    texts: &[String],
    purpose: Purpose,
) -> anyhow::Result<Vec<Embedding>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(embedder.max_batch()) {
        out.extend(embedder.embed(chunk, purpose).await?);
    }
    Ok(out)
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `base` with gaussian noise of `sigma` per model dimension, renormalized and padded.
fn perturbed(base: &Embedding, sigma: f64, rng: &mut StdRng) -> anyhow::Result<Embedding> {
    let raw: Vec<f32> = base.as_slice()[..MINILM_DIMENSIONS]
        .iter()
        .map(|x| (f64::from(*x) + sigma * gaussian(rng)) as f32)
        .collect();
    Embedding::from_model_output(raw).context("a perturbed vector was degenerate")
}

/// pgvector's text form of a vector.
fn vector_literal(embedding: &Embedding) -> String {
    let mut out = String::with_capacity(embedding.as_slice().len() * 8);
    out.push('[');
    for (i, x) in embedding.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
    out
}

/// A value escaped for COPY's text format.
fn copy_field(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

// ---------------------------------------------------------------------------------------------
// Statistics

// ---------------------------------------------------------------------------------------------
// Part 1: semantic and hybrid search

/// A user who reads `workspaces` of the [`WORKSPACES`] workspaces.
struct Reader {
    label: String,
    user: Uuid,
    canvases: Vec<Uuid>,
    /// Vectors in those canvases.
    vectors: i64,
}

struct Corpus {
    readers: Vec<Reader>,
    blocks: usize,
}

async fn search_benchmark(
    model_dir: &Path,
    sizes: &Sizes,
    report: &mut String,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(10);
    eprintln!("loading the model from {}", model_dir.display());
    let embedder = MiniLmEmbedder::load(model_dir, AiMetrics::default())?;
    let texts = block_texts(sizes.texts, &mut rng);
    let queries = query_texts(sizes.queries, &mut rng);
    let started = Instant::now();
    let text_vectors = embed_all(&embedder, &texts, Purpose::Document).await?;
    let embed_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "embedded {} texts in {embed_seconds:.1} s ({:.0}/s)",
        texts.len(),
        texts.len() as f64 / embed_seconds
    );
    anyhow::ensure!(
        text_vectors
            .iter()
            .all(|v| v.as_slice()[MINILM_DIMENSIONS..].iter().all(|x| *x == 0.0)),
        "the model's vectors are wider than {MINILM_DIMENSIONS}"
    );
    let query_vectors = embed_all(&embedder, &queries, Purpose::Query).await?;
    drop(embedder);

    let database = TestDb::create().await;
    let db = PgPoolOptions::new()
        .max_connections(8)
        .connect(&database.url)
        .await?;
    let started = Instant::now();
    let corpus = load_corpus(&db, sizes, &texts, &text_vectors, &mut rng).await?;
    let load_seconds = started.elapsed().as_secs_f64();

    let settings = RetrievalSettings::default();
    let mut rows = Vec::new();
    let mut recalls = Vec::new();
    let mut sweeps = Vec::new();
    for reader in &corpus.readers {
        let chosen =
            time_semantic(&db, reader, &query_vectors, None, settings.min_similarity).await?;
        rows.push(chosen.row(&format!("semantic, chosen plan, {}", reader.label), reader));
        let forced = time_semantic(
            &db,
            reader,
            &query_vectors,
            Some(Plan::Hnsw),
            settings.min_similarity,
        )
        .await?;
        rows.push(forced.row(&format!("semantic, forced HNSW, {}", reader.label), reader));
        // The exact plan without a similarity floor is both a latency row and the ground truth
        // (ten rows per query) of the recall and the sweep.
        let exact = time_semantic(&db, reader, &query_vectors, Some(Plan::Exact), -1.0).await?;
        rows.push(exact.row(
            &format!(
                "semantic, forced exact (no similarity floor), {}",
                reader.label
            ),
            reader,
        ));
        let hnsw = time_semantic(&db, reader, &query_vectors, Some(Plan::Hnsw), -1.0).await?;
        recalls.push(recall_row(reader, &exact.results, &hnsw.results));
        for ef in EF_SWEEP {
            sweeps.push(ef_sweep(&db, reader, &query_vectors, &exact.results, ef).await?);
        }
        for line in rows.iter().chain(&recalls).chain(&sweeps) {
            eprintln!("{line}");
        }
    }
    // Hybrid last: its text signal is the slow part on this corpus, so the semantic figures
    // are in before it starts. Readers beyond the goal's 5 % run a subset of the queries.
    for (i, reader) in corpus.readers.iter().enumerate() {
        let n = if i == 0 {
            queries.len()
        } else {
            queries.len().min(sizes.hybrid_queries_wide)
        };
        let hybrid =
            time_hybrid(&db, reader, &queries[..n], &query_vectors[..n], &settings).await?;
        eprintln!("{hybrid}");
        rows.push(hybrid);
    }

    let _ = writeln!(report, "## Semantic and hybrid search\n");
    let _ = writeln!(
        report,
        "{} blocks with vectors in {} canvases ({} workspaces); {} texts embedded with {MINILM_MODEL_NAME} \
         in {embed_seconds:.0} s; corpus written and indexed in {load_seconds:.0} s; {} queries, k = {K}; \
         min similarity {}; EXACT_SCAN_MAX = {EXACT_SCAN_MAX}.\n",
        corpus.blocks,
        sizes.canvases,
        WORKSPACES,
        texts.len(),
        query_vectors.len(),
        settings.min_similarity,
    );
    let _ = writeln!(
        report,
        "| search | readable vectors | plan used | queries | p50 ms | p95 ms | p99 ms | goal |"
    );
    let _ = writeln!(report, "|---|---:|---|---:|---:|---:|---:|---|");
    for row in &rows {
        let _ = writeln!(report, "{row}");
    }
    let _ = writeln!(
        report,
        "\n| reader | recall@10, HNSW plan vs exact plan | queries | goal |"
    );
    let _ = writeln!(report, "|---|---:|---:|---|");
    for r in &recalls {
        let _ = writeln!(report, "{r}");
    }
    let _ = writeln!(
        report,
        "\n`hnsw.ef_search` sweep: the HNSW statement alone (iterative scan `relaxed_order`, \
         limit k + 16, the reader's canvases passed in), recall@10 against the exact ranking:\n"
    );
    let _ = writeln!(
        report,
        "| reader | ef_search | recall@10 | p50 ms | p95 ms |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    for s in &sweeps {
        let _ = writeln!(report, "{s}");
    }
    let _ = writeln!(report);
    db.close().await;
    drop(database);
    Ok(())
}

/// Users, workspaces, canvases, blocks and vectors, written with COPY and unnest; the HNSW
/// index of the migration rebuilt once the rows are in, then ANALYZE.
async fn load_corpus(
    db: &PgPool,
    sizes: &Sizes,
    texts: &[String],
    text_vectors: &[Embedding],
    rng: &mut StdRng,
) -> anyhow::Result<Corpus> {
    let owner = Uuid::now_v7();
    let reader_shares = [
        (1usize, "5 % reader"),
        (2, "10 % reader"),
        (10, "50 % reader"),
    ];
    let reader_ids: Vec<Uuid> = reader_shares.iter().map(|_| Uuid::now_v7()).collect();
    let mut users = vec![owner];
    users.extend(&reader_ids);
    let emails: Vec<String> = users
        .iter()
        .map(|u| format!("bench-{}@example.org", u.simple()))
        .collect();
    sqlx::query(
        "insert into users (id, email, name) select *, 'Bench' from unnest($1::uuid[], $2::text[])",
    )
    .bind(&users)
    .bind(&emails)
    .execute(db)
    .await?;
    let workspaces: Vec<Uuid> = (0..WORKSPACES).map(|_| Uuid::now_v7()).collect();
    let names: Vec<String> = (0..WORKSPACES).map(|i| format!("Workspace {i}")).collect();
    sqlx::query("insert into workspaces (id, name, created_by) select *, $3 from unnest($1::uuid[], $2::text[])")
        .bind(&workspaces)
        .bind(&names)
        .bind(owner)
        .execute(db)
        .await?;
    sqlx::query("insert into workspace_members (workspace_id, user_id, role) select w, $2, 'owner' from unnest($1::uuid[]) w")
        .bind(&workspaces)
        .bind(owner)
        .execute(db)
        .await?;
    for ((share, _), reader) in reader_shares.iter().zip(&reader_ids) {
        sqlx::query("insert into workspace_members (workspace_id, user_id, role) select w, $2, 'member' from unnest($1::uuid[]) w")
            .bind(&workspaces[..*share])
            .bind(reader)
            .execute(db)
            .await?;
    }
    let canvases: Vec<Uuid> = (0..sizes.canvases).map(|_| Uuid::now_v7()).collect();
    let canvas_workspaces: Vec<Uuid> = (0..sizes.canvases)
        .map(|i| workspaces[i % WORKSPACES])
        .collect();
    let titles: Vec<String> = (0..sizes.canvases)
        .map(|_| {
            let (objects, _) = DOMAINS[rng.gen_range(0..DOMAINS.len())];
            let object = objects[rng.gen_range(0..objects.len())];
            format!("Notes: {}", object.trim_start_matches("the "))
        })
        .collect();
    sqlx::query("insert into canvases (id, workspace_id, owner_id, title) select c, w, $3, t from unnest($1::uuid[], $2::uuid[], $4::text[]) as u(c, w, t)")
        .bind(&canvases)
        .bind(&canvas_workspaces)
        .bind(owner)
        .bind(&titles)
        .execute(db)
        .await?;

    // Which text each block holds, at random so a text's copies land in unrelated canvases.
    let mut assignment: Vec<usize> = (0..sizes.canvases * sizes.blocks_per_canvas)
        .map(|i| i % texts.len())
        .collect();
    assignment.shuffle(rng);
    let block_ids: Vec<Uuid> = assignment.iter().map(|_| Uuid::now_v7()).collect();
    let hashes: Vec<String> = texts.iter().map(|t| hex(&sha256(t))).collect();

    let started = Instant::now();
    let mut copy = db
        .copy_in_raw("copy blocks (canvas_id, id, kind, order_key, text, doc_seq) from stdin")
        .await?;
    let mut chunk = String::new();
    for (i, (text, block)) in assignment.iter().zip(&block_ids).enumerate() {
        let canvas = canvases[i / sizes.blocks_per_canvas];
        let _ = writeln!(
            chunk,
            "{canvas}\t{block}\tparagraph\ta{:05}\t{}\t1",
            i % sizes.blocks_per_canvas,
            copy_field(&texts[*text])
        );
        if chunk.len() > 1 << 20 {
            copy.send(std::mem::take(&mut chunk).into_bytes()).await?;
        }
    }
    copy.send(chunk.into_bytes()).await?;
    copy.finish().await?;
    eprintln!("blocks copied in {:.1} s", started.elapsed().as_secs_f64());

    // The index is rebuilt after the rows are in: one build is much faster than 100,000
    // inserts into the graph, and gives the same index the migration declares.
    sqlx::query("drop index block_embeddings_hnsw")
        .execute(db)
        .await?;
    let started = Instant::now();
    let mut copy = db
        .copy_in_raw("copy block_embeddings (canvas_id, block_id, model, content_hash, embedding) from stdin")
        .await?;
    let mut chunk = String::new();
    for (i, (text, block)) in assignment.iter().zip(&block_ids).enumerate() {
        let canvas = canvases[i / sizes.blocks_per_canvas];
        let vector = perturbed(&text_vectors[*text], sizes.noise, rng)?;
        let _ = writeln!(
            chunk,
            "{canvas}\t{block}\t{MINILM_MODEL_NAME}\t\\\\x{}\t{}",
            hashes[*text],
            vector_literal(&vector)
        );
        if chunk.len() > 4 << 20 {
            copy.send(std::mem::take(&mut chunk).into_bytes()).await?;
        }
    }
    copy.send(chunk.into_bytes()).await?;
    copy.finish().await?;
    eprintln!("vectors copied in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut conn = db.acquire().await?;
    sqlx::query("set maintenance_work_mem = '1GB'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("create index block_embeddings_hnsw on block_embeddings using hnsw (embedding vector_cosine_ops)")
        .execute(&mut *conn)
        .await?;
    drop(conn);
    eprintln!(
        "HNSW index built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sqlx::query(
        "vacuum (analyze) users, workspaces, workspace_members, canvases, blocks, block_embeddings",
    )
    .execute(db)
    .await?;

    let mut readers = Vec::new();
    for ((share, label), user) in reader_shares.iter().zip(reader_ids) {
        let readable: Vec<Uuid> = sqlx::query_scalar("select canvas_id from readable_canvases($1)")
            .bind(user)
            .fetch_all(db)
            .await?;
        anyhow::ensure!(
            readable.len() == sizes.canvases * share / WORKSPACES,
            "{label} reads {} canvases",
            readable.len()
        );
        let vectors: i64 =
            sqlx::query_scalar("select count(*) from block_embeddings where canvas_id = any($1)")
                .bind(&readable)
                .fetch_one(db)
                .await?;
        readers.push(Reader {
            label: (*label).to_owned(),
            user,
            canvases: readable,
            vectors,
        });
    }
    Ok(Corpus {
        readers,
        blocks: assignment.len(),
    })
}

struct Timed {
    latencies: Vec<f64>,
    /// Each query's hits, nearest first.
    results: Vec<Vec<(Uuid, Uuid)>>,
    exact: usize,
    hnsw: usize,
}

impl Timed {
    fn row(&self, label: &str, reader: &Reader) -> String {
        let s = summary(self.latencies.clone());
        let plan = match (self.exact, self.hnsw) {
            (_, 0) => "exact".to_owned(),
            (0, _) => "HNSW".to_owned(),
            (e, h) => format!("exact {e}, HNSW {h}"),
        };
        let goal = if label.starts_with("semantic, chosen") && reader.label.starts_with("5 %") {
            "p95 ≤ 20 ms"
        } else {
            ""
        };
        format!(
            "| {label} | {} | {plan} | {} | {:.1} | {:.1} | {:.1} | {goal} |",
            reader.vectors, s.n, s.p50, s.p95, s.p99
        )
    }
}

fn semantic_query<'a>(
    reader: &Reader,
    embedding: &'a Embedding,
    min_similarity: f64,
) -> SemanticQuery<'a> {
    SemanticQuery {
        user_id: reader.user,
        embedding,
        model: MINILM_MODEL_NAME,
        scope: Scope::default(),
        min_similarity,
        after: None,
        limit: K as i64,
    }
}

/// Each query once, after a few untimed ones that warm the caches.
async fn time_semantic(
    db: &PgPool,
    reader: &Reader,
    queries: &[Embedding],
    plan: Option<Plan>,
    min_similarity: f64,
) -> anyhow::Result<Timed> {
    for embedding in queries.iter().take(10) {
        semantic::search_with_plan(db, &semantic_query(reader, embedding, min_similarity), plan)
            .await?;
    }
    let mut timed = Timed {
        latencies: Vec::with_capacity(queries.len()),
        results: Vec::with_capacity(queries.len()),
        exact: 0,
        hnsw: 0,
    };
    for embedding in queries {
        let started = Instant::now();
        let (hits, used) = semantic::search_with_plan(
            db,
            &semantic_query(reader, embedding, min_similarity),
            plan,
        )
        .await?;
        timed.latencies.push(ms(started.elapsed()));
        timed.results.push(ids(&hits));
        match used {
            Plan::Exact => timed.exact += 1,
            Plan::Hnsw => timed.hnsw += 1,
        }
    }
    Ok(timed)
}

async fn time_hybrid(
    db: &PgPool,
    reader: &Reader,
    queries: &[String],
    vectors: &[Embedding],
    settings: &RetrievalSettings,
) -> anyhow::Result<String> {
    let query = |i: usize| HybridQuery {
        user_id: reader.user,
        q: &queries[i],
        embedding: &vectors[i],
        model: MINILM_MODEL_NAME,
        scope: Scope::default(),
        titles: true,
        min_similarity: settings.min_similarity,
        depth: HYBRID_DEPTH,
        after: None,
        limit: K,
    };
    for i in 0..queries.len().min(3) {
        hybrid::search(db, &query(i)).await?;
    }
    let mut latencies = Vec::with_capacity(queries.len());
    let mut text_found = 0;
    for i in 0..queries.len() {
        let started = Instant::now();
        let hits = hybrid::search(db, &query(i)).await?;
        latencies.push(ms(started.elapsed()));
        if hits.iter().any(|h| h.text_rank.is_some()) {
            text_found += 1;
        }
    }
    let s = summary(latencies);
    Ok(format!(
        "| hybrid (text + semantic, depth {HYBRID_DEPTH}; text matched in {text_found} queries), {} | {} | semantic signal: chosen | {} | {:.1} | {:.1} | {:.1} | {} |",
        reader.label,
        reader.vectors,
        s.n,
        s.p50,
        s.p95,
        s.p99,
        if reader.label.starts_with("5 %") { "p95 ≤ 40 ms" } else { "" }
    ))
}

fn ids(hits: &[semantic::SemanticHit]) -> Vec<(Uuid, Uuid)> {
    hits.iter().map(|h| (h.canvas_id, h.block_id)).collect()
}

fn overlap(exact: &[(Uuid, Uuid)], found: &[(Uuid, Uuid)]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let found: HashSet<_> = found.iter().collect();
    exact.iter().filter(|id| found.contains(id)).count() as f64 / exact.len() as f64
}

/// Mean recall@10 of the HNSW plan against the exact plan on the same queries.
fn recall_row(reader: &Reader, exact: &[Vec<(Uuid, Uuid)>], hnsw: &[Vec<(Uuid, Uuid)>]) -> String {
    let recalls: Vec<f64> = exact.iter().zip(hnsw).map(|(e, h)| overlap(e, h)).collect();
    let worst = recalls.iter().copied().fold(1.0, f64::min);
    format!(
        "| {} ({} canvases, {} vectors) | {:.3} (worst query {:.1}) | {} | ≥ 0.95 |",
        reader.label,
        reader.canvases.len(),
        reader.vectors,
        recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        worst,
        recalls.len()
    )
}

/// The HNSW statement of `semantic::search` with another `hnsw.ef_search`.
async fn ef_sweep(
    db: &PgPool,
    reader: &Reader,
    queries: &[Embedding],
    exact: &[Vec<(Uuid, Uuid)>],
    ef_search: i64,
) -> anyhow::Result<String> {
    let mut latencies = Vec::with_capacity(queries.len());
    let mut total = 0.0;
    for (embedding, exact) in queries.iter().zip(exact) {
        let started = Instant::now();
        let mut tx = db.begin().await?;
        sqlx::query("select set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            .bind(ef_search.to_string())
            .execute(&mut *tx)
            .await?;
        let mut found: Vec<(Uuid, Uuid, f64)> = sqlx::query_as(
            "select canvas_id, block_id, (embedding <=> $2::real[]::vector)::float8 from block_embeddings
             where canvas_id = any($1) and model = $3
             order by embedding <=> $2::real[]::vector limit $4",
        )
        .bind(&reader.canvases)
        .bind(embedding.as_slice())
        .bind(MINILM_MODEL_NAME)
        .bind(K as i64 + 16)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        latencies.push(ms(started.elapsed()));
        // relaxed_order may return rows slightly out of order: re-sort as the search does.
        found.sort_by(|a, b| a.2.total_cmp(&b.2));
        let top: Vec<(Uuid, Uuid)> = found.iter().take(K).map(|(c, b, _)| (*c, *b)).collect();
        total += overlap(exact, &top);
    }
    let s = summary(latencies);
    Ok(format!(
        "| {} | {ef_search} | {:.3} | {:.1} | {:.1} |",
        reader.label,
        total / queries.len() as f64,
        s.p50,
        s.p95
    ))
}

// ---------------------------------------------------------------------------------------------
// Part 2: freshness

/// One PATCH of a block's text.
struct Edit {
    block: usize,
    sent: Instant,
    /// Until the row held this text's hash, or (coalesced) a newer edit's.
    fresh_after: Option<Duration>,
    coalesced: bool,
    status: Option<u16>,
    response: Option<Duration>,
}

async fn freshness_benchmark(
    model_dir: &Path,
    sizes: &Sizes,
    report: &mut String,
) -> anyhow::Result<()> {
    let poll_interval = Duration::from_millis(100);
    let model_dir = model_dir.to_path_buf();
    let app = TestApp::spawn_with(|s| {
        s.ai.ai.embeddings = Some(EmbeddingProviderSettings::Local { model_dir });
        s.ai.ai.worker.poll_interval = poll_interval;
        s.db_max_connections = 16;
        s.auth.rate_per_account_per_minute = 1_000_000;
        s.auth.rate_per_ip_per_minute = 1_000_000;
    })
    .await;
    let user = app.sign_up("fresh@example.org").await;
    let token = user.access_token().to_owned();
    let mut rng = StdRng::seed_from_u64(20);
    let mut blocks: Vec<(Uuid, Uuid)> = Vec::new();
    for c in 0..5 {
        let canvas = app
            .create_canvas(&token, None, &format!("freshness {c}"))
            .await;
        for text in block_texts(4, &mut rng) {
            let (status, body) = app
                .call(
                    Method::POST,
                    &format!("/api/v1/canvases/{canvas}/blocks"),
                    Some(&token),
                    Some(json!({ "type": "paragraph", "text": text })),
                )
                .await;
            anyhow::ensure!(status == 201, "create block: {status} {body}");
            let id = body["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("block id")?;
            blocks.push((canvas, id));
        }
    }
    let canvases: Vec<Uuid> = blocks
        .iter()
        .map(|b| b.0)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // The first vectors also wait for the server to load the model.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored: i64 =
            sqlx::query_scalar("select count(*) from block_embeddings where canvas_id = any($1)")
                .bind(&canvases)
                .fetch_one(&app.db)
                .await?;
        if stored as usize == blocks.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {stored} of {} first vectors stored",
            blocks.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let total_edits = (sizes.edit_rate * sizes.freshness_seconds) as usize;
    let edit_texts = block_texts(total_edits, &mut rng);
    let edits: Arc<Mutex<Vec<Edit>>> = Arc::new(Mutex::new(Vec::with_capacity(total_edits)));
    let by_hash: Arc<Mutex<HashMap<Vec<u8>, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let block_index: HashMap<Uuid, usize> =
        blocks.iter().enumerate().map(|(i, b)| (b.1, i)).collect();

    let poller = {
        let db = app.db.clone();
        let edits = Arc::clone(&edits);
        let by_hash = Arc::clone(&by_hash);
        let canvases = canvases.clone();
        let window = Duration::from_secs(sizes.freshness_seconds);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
                    "select block_id, content_hash from block_embeddings where canvas_id = any($1)",
                )
                .bind(&canvases)
                .fetch_all(&db)
                .await
                .unwrap_or_default();
                let now = Instant::now();
                let by_hash = by_hash.lock().unwrap_or_else(|e| e.into_inner());
                let mut edits = edits.lock().unwrap_or_else(|e| e.into_inner());
                for (block_id, hash) in rows {
                    let Some(&k) = by_hash.get(&hash) else {
                        continue;
                    };
                    if edits[k].fresh_after.is_some() {
                        continue;
                    }
                    let Some(&block) = block_index.get(&block_id) else {
                        continue;
                    };
                    for edit in edits[..=k]
                        .iter_mut()
                        .filter(|e| e.block == block && e.fresh_after.is_none())
                    {
                        edit.fresh_after = Some(now - edit.sent);
                        edit.coalesced = true;
                    }
                    edits[k].coalesced = false;
                }
                let all_sent = edits.len() == total_edits;
                let pending = edits.iter().any(|e| e.fresh_after.is_none());
                drop(edits);
                if (all_sent && !pending) || started.elapsed() > window + Duration::from_secs(60) {
                    break;
                }
            }
        })
    };

    let embedded_before = app.metric("potentia_ai_embedded_texts_total").await;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / sizes.edit_rate.max(1)));
    let mut requests = Vec::with_capacity(total_edits);
    for (i, text) in edit_texts.into_iter().enumerate() {
        tick.tick().await;
        let block = i % blocks.len();
        let (canvas, block_id) = blocks[block];
        let k = {
            let mut edits = edits.lock().unwrap_or_else(|e| e.into_inner());
            edits.push(Edit {
                block,
                sent: Instant::now(),
                fresh_after: None,
                coalesced: false,
                status: None,
                response: None,
            });
            edits.len() - 1
        };
        by_hash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256(&text), k);
        let request = app
            .authed(
                Method::PATCH,
                &format!("/api/v1/canvases/{canvas}/blocks/{block_id}"),
                &token,
            )
            .json(&json!({ "text": text }));
        let edits = Arc::clone(&edits);
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let mut edits = edits.lock().unwrap_or_else(|e| e.into_inner());
            edits[k].status = Some(status);
            edits[k].response = Some(sent.elapsed());
        }));
    }
    let sending = started.elapsed().as_secs_f64();
    for request in requests {
        request.await?;
    }
    poller.await?;
    let embedded = app.metric("potentia_ai_embedded_texts_total").await - embedded_before;

    let edits = std::mem::take(&mut *edits.lock().unwrap_or_else(|e| e.into_inner()));
    let failed = edits.iter().filter(|e| e.status != Some(200)).count();
    let direct: Vec<f64> = edits
        .iter()
        .filter(|e| !e.coalesced)
        .filter_map(|e| e.fresh_after.map(ms))
        .collect();
    let coalesced: Vec<f64> = edits
        .iter()
        .filter(|e| e.coalesced)
        .filter_map(|e| e.fresh_after.map(ms))
        .collect();
    let all: Vec<f64> = edits.iter().filter_map(|e| e.fresh_after.map(ms)).collect();
    let never = edits.iter().filter(|e| e.fresh_after.is_none()).count();
    let responses = summary(edits.iter().filter_map(|e| e.response.map(ms)).collect());

    let _ = writeln!(report, "## Freshness\n");
    let _ = writeln!(
        report,
        "{} edits in {sending:.1} s ({:.1}/s) over {} blocks in {} canvases; worker poll interval {} ms; \
         {failed} PATCHes failed; {never} edits never seen fresh; PATCH response p50 {:.0} ms, p95 {:.0} ms.\n",
        edits.len(),
        edits.len() as f64 / sending,
        blocks.len(),
        canvases.len(),
        poll_interval.as_millis(),
        responses.p50,
        responses.p95,
    );
    let _ = writeln!(
        report,
        "Texts the server embedded during the run (`potentia_ai_embedded_texts_total`): {embedded:.0}.\n"
    );
    let _ = writeln!(
        report,
        "| edits | count | p50 ms | p95 ms | p99 ms | max ms | goal |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---|");
    for (label, values, goal) in [
        ("embedded with their own text", direct, "p95 ≤ 3,000 ms"),
        (
            "coalesced (a newer edit's text was embedded first)",
            coalesced,
            "",
        ),
        ("all", all, ""),
    ] {
        let s = summary(values);
        let _ = writeln!(
            report,
            "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {goal} |",
            s.n, s.p50, s.p95, s.p99, s.max
        );
    }
    let _ = writeln!(report);
    app.stop().await;
    Ok(())
}
