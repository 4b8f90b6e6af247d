//! A full turn with the local models `scripts/models.sh` provisions — SmolLM2-135M-Instruct
//! for chat, all-MiniLM-L6-v2 for embeddings: the judge (whose answer a 135M model rarely makes
//! valid JSON, so the fallback decides), the specialist, then the assessor in the background.
//!
//! The judge only runs when the conversation already has a topic, so a first exchange is made
//! by a fake chat provider (at no model time); the server then restarts with the local model
//! for the turn under test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use potentia_ai::settings::{ChatProviderSettings, EmbeddingProviderSettings, RemoteEndpoint};
use potentia_tests::fake_ai::FakeOpenAi;
use potentia_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn path_from_env(name: &str, what: &str) -> PathBuf {
    std::env::var(name)
        .unwrap_or_else(|_| {
            panic!("{name} must name {what} (scripts/models.sh); run ./scripts/test.sh")
        })
        .into()
}

/// Posts a turn and asserts it was answered with a complete, non-empty message.
async fn turn(app: &TestApp, token: &str, conversation: &str, text: &str) -> Value {
    let started = Instant::now();
    let (status, turn) = app
        .call(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(token),
            Some(json!({"text": text, "client_message_id": Uuid::now_v7().to_string()})),
        )
        .await;
    println!("turn {text:?}: {status} in {:.1?}", started.elapsed());
    assert_eq!(status, 201, "{turn}");
    assert_eq!(turn["user_message"]["text"], text);
    assert_eq!(turn["assistant_message"]["status"], "complete", "{turn}");
    assert!(
        !turn["assistant_message"]["text"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .is_empty(),
        "{turn}"
    );
    turn
}

/// Waits until no chat job is waiting and none is dead.
async fn wait_for_chat_jobs(app: &TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (waiting, dead): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where dead_at is null), count(*) filter (where dead_at is not null)
             from chat_jobs",
        )
        .fetch_one(&app.db)
        .await
        .expect("count chat jobs");
        assert_eq!(dead, 0, "a chat job failed for good");
        if waiting == 0 {
            return;
        }
        let errors: Vec<Option<String>> =
            sqlx::query_scalar("select last_error from chat_jobs where last_error is not null")
                .fetch_all(&app.db)
                .await
                .expect("job errors");
        assert!(
            Instant::now() < deadline,
            "{waiting} chat jobs still waiting (errors: {errors:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_full_turn_with_the_local_chat_model_completes_and_stores_its_messages() {
    let gguf = path_from_env(
        "POTENTIA_TEST_CHAT_GGUF",
        "the SmolLM2 GGUF file (scripts/models.sh chat-gguf)",
    );
    let model_dir = path_from_env(
        "POTENTIA_TEST_EMBEDDING_MODEL_DIR",
        "the all-MiniLM-L6-v2 folder (scripts/models.sh embedding-dir)",
    );
    let fake = FakeOpenAi::start().await;
    let base_url = fake.base_url();
    let mut app = TestApp::spawn_with(|s| {
        s.ai.ai.chat = Some(ChatProviderSettings::OpenAi(RemoteEndpoint {
            base_url,
            api_key: None,
            model: "fake-chat".into(),
        }));
        s.ai.ai.embeddings = Some(EmbeddingProviderSettings::Local { model_dir });
        s.ai.ai.worker.poll_interval = Duration::from_millis(50);
        // The first query may wait for a batch of the worker on two busy cores.
        s.ai.retrieval.query_timeout = Duration::from_secs(30);
    })
    .await;
    let user = app
        .sign_up(&format!("local-{}@example.com", Uuid::now_v7()))
        .await;
    let token = user.access_token();
    let (status, conversation) = app
        .call(
            Method::POST,
            "/api/v1/conversations",
            Some(token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"]
        .as_str()
        .expect("conversation id")
        .to_owned();
    let first = turn(
        &app,
        token,
        &conversation,
        "I grow tomatoes on my balcony in Lyon.",
    )
    .await;
    wait_for_chat_jobs(&app, Duration::from_secs(30)).await;
    let fake_calls = fake.chat_calls();
    let summary_before = summary_of(&app, token, &conversation, &first).await;

    app.settings.ai.ai.chat = Some(ChatProviderSettings::Local { gguf });
    let app = app.restart().await;
    let started = Instant::now();
    let local = turn(
        &app,
        token,
        &conversation,
        "How often should I water the tomatoes?",
    )
    .await;
    wait_for_chat_jobs(&app, Duration::from_secs(300)).await;
    println!("the turn and its assessment: {:.1?}", started.elapsed());
    assert_eq!(
        fake.chat_calls(),
        fake_calls,
        "the fake was not asked again"
    );
    // The judge and the assessor's extraction complete; the specialist streams.
    let local_calls = |operation: &str| {
        format!(
            "potentia_ai_requests_total{{provider=\"Local\",model=\"smollm2-135m-instruct\",operation=\"{operation}\",outcome=\"Ok\"}}"
        )
    };
    assert!(app.metric(&local_calls("Complete")).await >= 2.0);
    assert_eq!(app.metric(&local_calls("Stream")).await, 1.0);
    let decision = local["decision"]["decision"].as_str().unwrap_or_default();
    assert!(
        ["continue", "new", "switch"].contains(&decision),
        "{}",
        local["decision"]
    );
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}/messages?limit=50"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let stored: Vec<(String, String)> = page["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [&first, &local]
        .iter()
        .flat_map(|t| {
            ["user_message", "assistant_message"].map(|m| {
                (
                    t[m]["role"].as_str().unwrap_or_default().to_owned(),
                    t[m]["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
        })
        .collect();
    assert_eq!(stored, expected);
    // The assessor (the local model) rewrote the topic's summary.
    let summary = summary_of(&app, token, &conversation, &local).await;
    assert!(!summary.trim().is_empty());
    if local["decision"]["context_id"] == first["decision"]["context_id"] {
        assert_ne!(summary, summary_before);
    }
}

/// The summary of the context of `turn`'s user message.
async fn summary_of(app: &TestApp, token: &str, conversation: &str, turn: &Value) -> String {
    let (status, contexts) = app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}/contexts"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{contexts}");
    let context = &turn["user_message"]["context_id"];
    contexts
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == *context))
        .map(|c| c["summary"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no context {context} in {contexts}"))
}
