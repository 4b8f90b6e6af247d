//! What every embedding test starts from: a migrated database with one user and one personal
//! canvas whose blocks are written by the real materializer (so jobs are queued exactly as
//! the sync server queues them), a fake OpenAI-compatible server, and the real
//! `OpenAiEmbedder` behind the real `Resilience`.

use std::sync::Arc;
use std::time::Duration;

use potentia_ai::metrics::AiMetrics;
use potentia_ai::providers::OpenAiEmbedder;
use potentia_ai::resilience::Resilience;
use potentia_ai::settings::{ProviderKind, RemoteEndpoint, ResilienceSettings, WorkerSettings};
use potentia_ai::worker::EmbeddingWorker;
use potentia_sync::materialize::Materializer;
use potentia_sync::Block;
use potentia_tests::fake_ai::FakeOpenAi;
use potentia_tests::TestDb;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

pub const MODEL: &str = "fake-embed-1";

/// Quick to fail and to recover, so that outages last seconds rather than minutes.
pub fn resilience_settings() -> ResilienceSettings {
    ResilienceSettings {
        connect_timeout: Duration::from_secs(2),
        first_byte_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        breaker_failures: 2,
        breaker_cooldown: Duration::from_millis(400),
        max_concurrency: 4,
    }
}

pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        batch_size: 8,
        poll_interval: Duration::from_millis(50),
        max_attempts: 3,
        retry_backoff: Duration::from_millis(20),
    }
}

pub struct Fixture {
    /// Kept for its `Drop`, which drops the test's database.
    _db: TestDb,
    pub pool: PgPool,
    pub user: Uuid,
    pub canvas: Canvas,
    pub fake: FakeOpenAi,
    pub metrics: AiMetrics,
    pub resilience: Arc<Resilience>,
    pub embedder: Arc<OpenAiEmbedder>,
}

pub async fn fixture() -> Fixture {
    let db = TestDb::create().await;
    let pool = PgPool::connect(&db.url)
        .await
        .expect("connect to the test database");
    let user = Uuid::now_v7();
    sqlx::query("insert into users (id, email, name) values ($1, $2, 'Ada')")
        .bind(user)
        .bind(format!("ada-{}@example.org", user.simple()))
        .execute(&pool)
        .await
        .expect("insert the user");
    let canvas = Canvas::create(&pool, user, None).await;
    let fake = FakeOpenAi::start().await;
    let metrics = AiMetrics::default();
    let resilience = Arc::new(Resilience::new(
        ProviderKind::OpenAi,
        resilience_settings(),
        metrics.clone(),
    ));
    let embedder = embedder_for(&fake, MODEL, &resilience);
    Fixture {
        _db: db,
        pool,
        user,
        canvas,
        fake,
        metrics,
        resilience,
        embedder,
    }
}

/// The real OpenAI-compatible client of `model` at the fake.
pub fn embedder_for(
    fake: &FakeOpenAi,
    model: &str,
    resilience: &Arc<Resilience>,
) -> Arc<OpenAiEmbedder> {
    let endpoint = RemoteEndpoint {
        base_url: fake.base_url(),
        api_key: None,
        model: model.to_owned(),
    };
    Arc::new(OpenAiEmbedder::new(endpoint, None, Arc::clone(resilience)).expect("the embedder"))
}

impl Fixture {
    pub fn worker(&self) -> EmbeddingWorker {
        self.worker_with(worker_settings())
    }

    pub fn worker_with(&self, settings: WorkerSettings) -> EmbeddingWorker {
        EmbeddingWorker::new(
            self.pool.clone(),
            self.embedder.clone(),
            settings,
            self.metrics.clone(),
        )
    }

    /// Runs batches until one claims nothing; panics if that takes more than `limit`.
    pub async fn drain(&self, worker: &EmbeddingWorker, limit: usize) {
        for _ in 0..limit {
            let report = worker.run_once().await.expect("a batch");
            assert!(report.outage.is_none(), "unexpected outage: {report:?}");
            if report.claimed == 0 {
                return;
            }
        }
        panic!("the queue did not drain in {limit} batches");
    }

    /// The texts of every embeddings request the fake received, in order.
    pub fn texts_sent(&self) -> Vec<String> {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/embeddings"))
            .flat_map(|r| match &r.body["input"] {
                Value::Array(items) => items
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
                Value::String(text) => vec![text.clone()],
                _ => Vec::new(),
            })
            .collect()
    }
}

/// A canvas whose document is a list of blocks, written to rows by the real materializer.
pub struct Canvas {
    pub id: Uuid,
    pool: PgPool,
    materializer: Materializer,
    blocks: Vec<Block>,
    seq: i64,
}

impl Canvas {
    pub async fn create(pool: &PgPool, owner: Uuid, workspace: Option<Uuid>) -> Self {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into canvases (id, workspace_id, owner_id, title) values ($1, $2, $3, 'Notes')",
        )
        .bind(id)
        .bind(workspace)
        .bind(owner)
        .execute(pool)
        .await
        .expect("insert the canvas");
        let materializer = Materializer::load(pool, id)
            .await
            .expect("load the materializer");
        Self {
            id,
            pool: pool.clone(),
            materializer,
            blocks: Vec::new(),
            seq: 0,
        }
    }

    /// Adds a paragraph at the end and materializes the document.
    pub async fn add(&mut self, text: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.add_with_id(id, text).await;
        id
    }

    pub async fn add_with_id(&mut self, id: Uuid, text: &str) {
        self.blocks.push(Block {
            id: id.to_string(),
            kind: "paragraph".to_owned(),
            order: format!("a{:04}", self.blocks.len()),
            parent: None,
            text: text.to_owned(),
            rich: serde_json::json!([{ "insert": text }]),
            props: serde_json::Map::new(),
        });
        self.materialize().await;
    }

    pub async fn set_text(&mut self, id: Uuid, text: &str) {
        let block = self
            .blocks
            .iter_mut()
            .find(|b| b.id == id.to_string())
            .expect("a block of this canvas");
        block.text = text.to_owned();
        block.rich = serde_json::json!([{ "insert": text }]);
        self.materialize().await;
    }

    pub async fn delete(&mut self, id: Uuid) {
        self.blocks.retain(|b| b.id != id.to_string());
        self.materialize().await;
    }

    async fn materialize(&mut self) {
        self.seq += 1;
        let plan = self.materializer.plan(
            self.blocks.clone(),
            &potentia_sync::schema::MetaFields::default(),
            None,
            self.seq,
        );
        self.materializer
            .apply(&self.pool, plan)
            .await
            .expect("materialize the document");
    }
}

/// The model and hash of the vector stored for a block.
pub async fn stored(pool: &PgPool, canvas: Uuid, block: Uuid) -> Option<(String, Vec<u8>)> {
    sqlx::query_as(
        "select model, content_hash from block_embeddings where canvas_id = $1 and block_id = $2",
    )
    .bind(canvas)
    .bind(block)
    .fetch_optional(pool)
    .await
    .expect("read block_embeddings")
}

pub async fn embeddings_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from block_embeddings")
        .fetch_one(pool)
        .await
        .expect("count block_embeddings")
}

pub async fn queued(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from embedding_queue")
        .fetch_one(pool)
        .await
        .expect("count embedding_queue")
}

pub fn sha256(text: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).to_vec()
}
