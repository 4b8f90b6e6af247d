//! Semantic and hybrid search through `GET /api/v1/search?mode=`, and `GET /api/v1/ai/usage`:
//! a real server whose embedding worker embeds real rows with a real embedder (the local
//! all-MiniLM-L6-v2 where meaning matters, the fake OpenAI-compatible server elsewhere), and
//! above all access — no mode ever returns a block of a canvas the caller cannot read.

use std::time::{Duration, Instant};

use potentia_ai::settings::{EmbeddingProviderSettings, RemoteEndpoint};
use potentia_tests::fake_ai::FakeOpenAi;
use potentia_tests::{expect_problem, Session, TestApp};
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A server embedding with the fake OpenAI-compatible server.
async fn spawn_with_fake() -> (TestApp, FakeOpenAi) {
    spawn_with_fake_and(|_| {}).await
}

/// [`spawn_with_fake`], with the settings changed by `configure` too.
async fn spawn_with_fake_and(
    configure: impl FnOnce(&mut potentia_server::Settings),
) -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start().await;
    let base_url = fake.base_url();
    let app = TestApp::spawn_with(|s| {
        s.ai.ai.embeddings = Some(EmbeddingProviderSettings::OpenAi {
            endpoint: RemoteEndpoint {
                base_url,
                api_key: None,
                model: "fake-embedding".into(),
            },
            dimensions: None,
        });
        s.ai.ai.worker.poll_interval = Duration::from_millis(50);
        s.ai.ai.resilience.max_attempts = 1;
        s.ai.ai.resilience.breaker_failures = 1000;
        configure(s);
    })
    .await;
    (app, fake)
}

/// A server embedding with the local all-MiniLM-L6-v2 that `scripts/models.sh` provisions.
async fn spawn_with_local_model() -> TestApp {
    let dir = std::env::var("POTENTIA_TEST_EMBEDDING_MODEL_DIR").expect(
        "POTENTIA_TEST_EMBEDDING_MODEL_DIR must name the all-MiniLM-L6-v2 folder (scripts/models.sh embedding-dir); run ./scripts/test.sh",
    );
    TestApp::spawn_with(|s| {
        s.ai.ai.embeddings = Some(EmbeddingProviderSettings::Local {
            model_dir: dir.into(),
        });
        s.ai.ai.worker.poll_interval = Duration::from_millis(50);
        // The first query may wait for a batch of the worker on two busy cores.
        s.ai.retrieval.query_timeout = Duration::from_secs(30);
    })
    .await
}

/// Inserts a block row and queues it for embedding, as the materializer does; returns its id.
async fn add_block(app: &TestApp, canvas: Uuid, text: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into blocks (canvas_id, id, kind, order_key, text, doc_seq)
         values ($1, $2, 'paragraph', $3, $4, 1)",
    )
    .bind(canvas)
    .bind(id)
    .bind(id.to_string())
    .bind(text)
    .execute(&app.db)
    .await
    .expect("insert block");
    sqlx::query(
        "insert into embedding_queue (source_kind, scope_id, source_id, text_hash)
         values ('block', $1, $2, $3)",
    )
    .bind(canvas)
    .bind(id)
    .bind(Sha256::digest(text.as_bytes()).to_vec())
    .execute(&app.db)
    .await
    .expect("queue block");
    id
}

/// Waits until the worker has stored `n` vectors.
async fn wait_embedded(app: &TestApp, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: i64 = sqlx::query_scalar("select count(*) from block_embeddings")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if stored >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {n} blocks embedded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn search(app: &TestApp, who: &Session, query: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/search?{query}"),
            Some(who.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn block_ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["block_id"].as_str().and_then(|id| id.parse().ok()))
        .collect()
}

const COFFEE: &str = "Set up the V60 dripper, water at 94 °C, bloom for thirty seconds";
const BUDGET: &str = "Quarterly budget review with the finance team";
const INSURANCE: &str = "Renew the car insurance before March";

#[tokio::test]
async fn hybrid_finds_a_paraphrase_that_text_search_misses() {
    let app = spawn_with_local_model().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Mornings").await;
    let coffee = add_block(&app, canvas, COFFEE).await;
    add_block(&app, canvas, BUDGET).await;
    add_block(&app, canvas, INSURANCE).await;
    wait_embedded(&app, 3).await;

    let text = search(&app, &me, "q=how+to+brew+pour-over+coffee&mode=text").await;
    assert!(block_ids(&text).is_empty(), "text search: {text}");

    let hybrid = search(&app, &me, "q=how+to+brew+pour-over+coffee").await;
    assert_eq!(hybrid["mode"], "hybrid", "the default with an embedder");
    assert!(hybrid["fallback"].is_null());
    assert_eq!(block_ids(&hybrid).first(), Some(&coffee), "{hybrid}");
    let first = &hybrid["items"][0];
    assert_eq!(first["signals"], serde_json::json!(["semantic"]));
    assert!(first["similarity"].as_f64().unwrap() > 0.2, "{first}");
}

#[tokio::test]
async fn semantic_mode_ranks_blocks_by_meaning() {
    let app = spawn_with_local_model().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Mornings").await;
    let coffee = add_block(&app, canvas, COFFEE).await;
    let budget = add_block(&app, canvas, BUDGET).await;
    wait_embedded(&app, 2).await;

    let page = search(
        &app,
        &me,
        "q=How+do+I+brew+pour-over+coffee%3F&mode=semantic&limit=5",
    )
    .await;

    assert_eq!(page["mode"], "semantic");
    let ids = block_ids(&page);
    assert_eq!(ids.first(), Some(&coffee), "{page}");
    if let Some(position) = ids.iter().position(|id| *id == budget) {
        let similarity = |i: usize| page["items"][i]["similarity"].as_f64().unwrap();
        assert!(similarity(0) > similarity(position));
    }
}

#[tokio::test]
async fn without_an_embedder_the_default_is_text_and_semantic_falls_back() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plans").await;
    let block = add_block(&app, canvas, "The roadmap for spring").await;

    let default = search(&app, &me, "q=roadmap").await;
    assert_eq!(default["mode"], "text");
    assert!(default["fallback"].is_null());
    assert_eq!(block_ids(&default), [block]);

    let semantic = search(&app, &me, "q=roadmap&mode=semantic").await;
    assert_eq!(semantic["mode"], "text");
    assert_eq!(semantic["fallback"], "embedder_not_configured");
    assert_eq!(block_ids(&semantic), [block]);
}

#[tokio::test]
async fn a_failing_embedder_answers_by_text_with_a_flag_never_a_5xx() {
    let (app, fake) = spawn_with_fake().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plans").await;
    let block = add_block(&app, canvas, "The roadmap for spring").await;
    wait_embedded(&app, 1).await;
    fake.fail_with(500, None);

    for mode in ["hybrid", "semantic"] {
        let page = search(&app, &me, &format!("q=roadmap&mode={mode}")).await;
        assert_eq!(page["mode"], "text", "{page}");
        assert_eq!(page["fallback"], "embedder_unavailable");
        assert_eq!(block_ids(&page), [block]);
    }
    assert!(app.metric("potentia_ai_search_fallbacks_total").await >= 2.0);

    fake.recover();
    let page = search(&app, &me, "q=roadmap&mode=hybrid").await;
    assert_eq!(page["mode"], "hybrid");
    assert!(page["fallback"].is_null());
}

#[tokio::test]
async fn a_user_past_the_query_embedding_budget_is_answered_by_text() {
    let (app, fake) = spawn_with_fake_and(|s| s.ai.search_embeds_per_minute = 2).await;
    let me = app.sign_up("me@example.org").await;
    let other = app.sign_up("other@example.org").await;
    for _ in 0..2 {
        let page = search(&app, &me, "q=roadmap&mode=hybrid").await;
        assert_eq!(page["mode"], "hybrid");
    }
    let calls = fake.embedding_calls();

    let page = search(&app, &me, "q=roadmap&mode=hybrid").await;
    assert_eq!(page["mode"], "text");
    assert_eq!(page["fallback"], "rate_limited");
    assert_eq!(fake.embedding_calls(), calls, "no call past the budget");
    // The budget is per user.
    let page = search(&app, &other, "q=roadmap&mode=hybrid").await;
    assert_eq!(page["mode"], "hybrid");
}

#[tokio::test]
async fn semantic_search_of_titles_is_refused_naming_kinds() {
    let (app, _fake) = spawn_with_fake().await;
    let me = app.sign_up("me@example.org").await;
    let response = app
        .authed(
            Method::GET,
            "/api/v1/search?q=plans&mode=semantic&kinds=canvas",
            me.access_token(),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "kinds");

    let response = app
        .authed(
            Method::GET,
            "/api/v1/search?q=plans&mode=vector",
            me.access_token(),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "mode");
}

#[tokio::test]
async fn semantic_and_hybrid_pages_neither_skip_nor_repeat() {
    let (app, _fake) = spawn_with_fake().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plans").await;
    let mut all = Vec::new();
    for i in 0..25 {
        all.push(add_block(&app, canvas, &format!("roadmap item {i} for the launch")).await);
    }
    wait_embedded(&app, 25).await;
    all.sort();

    for mode in ["semantic", "hybrid"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("q=roadmap+launch&mode={mode}&limit=10&cursor={c}"),
                None => format!("q=roadmap+launch&mode={mode}&limit=10"),
            };
            let page = search(&app, &me, &query).await;
            assert_eq!(page["mode"], mode);
            seen.extend(block_ids(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{mode}: a block came twice");
        assert_eq!(sorted, all, "{mode}: every block once");
    }
}

#[tokio::test]
async fn a_cursor_of_another_mode_is_refused() {
    let (app, _fake) = spawn_with_fake().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plans").await;
    for i in 0..3 {
        add_block(&app, canvas, &format!("roadmap {i}")).await;
    }
    wait_embedded(&app, 3).await;
    let page = search(&app, &me, "q=roadmap&mode=semantic&limit=1").await;
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let response = app
        .authed(
            Method::GET,
            &format!("/api/v1/search?q=roadmap&mode=hybrid&limit=1&cursor={cursor}"),
            me.access_token(),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "cursor");
}

/// Every mode, for callers who must see nothing of `canvas` and `personal`.
#[tokio::test]
async fn no_mode_ever_returns_a_block_the_caller_cannot_read() {
    let (app, _fake) = spawn_with_fake().await;
    let owner = app.sign_up("owner@example.org").await;
    let outsider = app.sign_up("outsider@example.org").await;
    let removed = app.sign_up("removed@example.org").await;
    let leaver = app.sign_up("leaver@example.org").await;
    let workspace = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), workspace, &removed, "member")
        .await;
    app.add_member(owner.access_token(), workspace, &leaver, "member")
        .await;
    let shared = app
        .create_canvas(owner.access_token(), Some(workspace), "Team roadmap")
        .await;
    // A canvas the leaver created, then left behind with the workspace.
    let left_behind = app
        .create_canvas(leaver.access_token(), Some(workspace), "Leaver's roadmap")
        .await;
    let personal = app
        .create_canvas(owner.access_token(), None, "Owner's roadmap")
        .await;
    let mut hidden = Vec::new();
    for canvas in [shared, left_behind, personal] {
        for i in 0..3 {
            hidden.push(add_block(&app, canvas, &format!("secret roadmap step {i}")).await);
        }
    }
    let visible_canvas = app
        .create_canvas(outsider.access_token(), None, "My roadmap")
        .await;
    let visible = add_block(&app, visible_canvas, "my own roadmap step").await;
    wait_embedded(&app, 10).await;

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/workspaces/{workspace}/members/{}",
                removed.user_id()
            ),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{workspace}/leave"),
            Some(leaver.access_token()),
            None,
        )
        .await;
    assert!((200..300).contains(&status), "{body}");

    for (who, name) in [
        (&outsider, "outsider"),
        (&removed, "removed member"),
        (&leaver, "owner who left"),
    ] {
        for mode in ["text", "semantic", "hybrid"] {
            let page = search(&app, who, &format!("q=secret+roadmap+step&mode={mode}")).await;
            assert_eq!(page["mode"], mode, "{name} {mode}: {page}");
            let ids = block_ids(&page);
            assert!(
                ids.iter().all(|id| !hidden.contains(id)),
                "{name} saw a hidden block in {mode} mode: {page}"
            );
            let titles: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["canvas_title"].as_str())
                .collect();
            assert!(
                titles
                    .iter()
                    .all(|t| !t.contains("Team") && !t.contains("Owner") && !t.contains("Leaver")),
                "{name} {mode}: {titles:?}"
            );
        }
    }
    // The outsider still finds their own block, so the empty answers above mean something.
    let page = search(&app, &outsider, "q=roadmap+step&mode=semantic").await;
    assert_eq!(block_ids(&page), [visible]);
    // And the owner finds the hidden ones.
    let page = search(&app, &owner, "q=secret+roadmap+step&mode=semantic&limit=50").await;
    let ids = block_ids(&page);
    assert!(ids.iter().any(|id| hidden.contains(id)), "{page}");
}

#[tokio::test]
async fn usage_counts_the_worker_and_the_searches_for_the_caller_only() {
    let (app, _fake) = spawn_with_fake().await;
    let me = app.sign_up("me@example.org").await;
    let other = app.sign_up("other@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plans").await;
    for i in 0..3 {
        add_block(&app, canvas, &format!("roadmap {i}")).await;
    }
    wait_embedded(&app, 3).await;
    search(&app, &me, "q=roadmap&mode=semantic").await;

    // The search's usage is written after the answer: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let (status, report) = app
            .call(
                Method::GET,
                "/api/v1/ai/usage",
                Some(me.access_token()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{report}");
        if report["totals"]["embedded_texts"].as_i64() == Some(4) || Instant::now() > deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(report["totals"]["embedded_texts"], 4, "{report}");
    let item = &report["items"][0];
    assert_eq!(item["provider"], "openai");
    assert_eq!(item["model"], "fake-embedding");
    assert!(item["workspace_id"].is_null());

    let (_, theirs) = app
        .call(
            Method::GET,
            "/api/v1/ai/usage",
            Some(other.access_token()),
            None,
        )
        .await;
    assert_eq!(theirs["items"], serde_json::json!([]));
    assert_eq!(theirs["totals"]["embedded_texts"], 0);
}

#[tokio::test]
async fn a_reversed_or_overlong_usage_range_is_a_422() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    for query in [
        "from=2026-12-02&to=2026-12-01",
        "from=2020-01-01&to=2026-12-01",
    ] {
        let response = app
            .authed(
                Method::GET,
                &format!("/api/v1/ai/usage?{query}"),
                me.access_token(),
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, 422, "validation_failed").await;
    }
    let response = app
        .authed(
            Method::GET,
            "/api/v1/ai/usage?from=yesterday",
            me.access_token(),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "from");
}
