//! The assessor (call 3 of a turn), end to end: what it learns from the user, how a
//! contradiction replaces the old memory (bi-temporal, with a history row), what it never learns
//! (small talk, repeats, a user who turned extraction off), the rolling summary it keeps, and
//! that its durable job survives a crash between the answer and the assessment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use potentia_tests::fake_ai::Reply;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{call_of, prompt_text, Call, Chat};

/// The caller's memories, newest first (`include_invalid`: also those no longer true).
async fn memories(chat: &Chat, include_invalid: bool) -> Vec<Value> {
    let (status, page) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/memories?include_invalid={include_invalid}&limit=100"),
            Some(chat.token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// One memory with its history.
async fn memory(chat: &Chat, id: &str) -> Value {
    let (status, body) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/memories/{id}"),
            Some(chat.token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn texts(memories: &[Value]) -> Vec<&str> {
    memories
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect()
}

fn find<'a>(memories: &'a [Value], text: &str) -> &'a Value {
    memories
        .iter()
        .find(|m| m["text"] == text)
        .unwrap_or_else(|| panic!("no memory {text:?} in {memories:?}"))
}

fn instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

/// Whether `text` holds anything shaped like a UUID.
fn has_uuid(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .any(|token| token.len() >= 32 && Uuid::parse_str(token).is_ok())
}

/// Says `text` and asserts the turn was answered.
async fn say(chat: &Chat, conversation: Uuid, text: &str) -> Value {
    let (status, turn) = chat.say(conversation, text).await;
    assert_eq!(status, 201, "{turn}");
    turn
}

/// Scripts what the assessor extracts from the next message and how it reconciles it.
fn next_assessment(chat: &Chat, extract: &[(&str, &str)], reconcile: Option<(&str, Option<u32>)>) {
    let mut script = chat.script();
    script.extract = extract
        .iter()
        .map(|(kind, text)| ((*kind).to_owned(), (*text).to_owned()))
        .collect();
    script.reconcile = reconcile.map(|(action, id)| (action.to_owned(), id));
}

/// A conversation where the user said they prefer coffee, learned as one memory.
async fn coffee_lover(chat: &Chat) -> Uuid {
    let conversation = chat.conversation().await;
    next_assessment(chat, &[("preference", "Prefers coffee")], None);
    say(
        chat,
        conversation,
        "I love coffee, I brew a pour-over every morning",
    )
    .await;
    assert_eq!(texts(&memories(chat, false).await), ["Prefers coffee"]);
    chat.advance(Duration::minutes(10));
    conversation
}

#[tokio::test]
async fn switching_to_tea_invalidates_the_coffee_preference_with_a_history_row_and_adds_tea() {
    let chat = Chat::start().await;
    let conversation = coffee_lover(&chat).await;
    next_assessment(
        &chat,
        &[("preference", "Prefers tea")],
        Some(("UPDATE", Some(1))),
    );
    let turn = say(&chat, conversation, "I've switched to tea").await;

    let now: Vec<Value> = memories(&chat, false).await;
    assert_eq!(texts(&now), ["Prefers tea"], "only tea is true now");
    let all = memories(&chat, true).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let coffee = find(&all, "Prefers coffee");
    let tea = find(&all, "Prefers tea");
    assert!(tea["invalid_at"].is_null(), "{tea}");
    assert!(!coffee["invalid_at"].is_null(), "{coffee}");
    // No gap and no overlap: coffee stopped being true when tea started.
    assert_eq!(instant(&coffee["invalid_at"]), instant(&tea["valid_at"]));
    assert_eq!(
        instant(&tea["valid_at"]),
        instant(&turn["user_message"]["created_at"])
    );

    let history = memory(&chat, coffee["id"].as_str().unwrap_or_default()).await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let update = history
        .iter()
        .find(|h| h["event"] == "update")
        .unwrap_or_else(|| panic!("no update row in {history:?}"));
    assert_eq!(update["replaced_by"], tea["id"]);
    assert_eq!(update["reason"], "as scripted");
    assert_eq!(update["old_text"], "Prefers coffee");
    assert_eq!(update["message_id"], turn["user_message"]["id"]);
}

#[tokio::test]
async fn the_reconciliation_call_numbers_the_stored_memories_and_never_shows_a_uuid() {
    let chat = Chat::start().await;
    let conversation = coffee_lover(&chat).await;
    next_assessment(
        &chat,
        &[("preference", "Prefers tea")],
        Some(("UPDATE", Some(1))),
    );
    say(&chat, conversation, "I've switched to tea").await;

    let calls = chat.calls(Call::Reconciliation);
    assert_eq!(
        calls.len(),
        1,
        "one reconciliation for one extracted memory"
    );
    let prompt = prompt_text(&calls[0].body);
    assert!(
        prompt.contains("1. (preference) Prefers coffee"),
        "{prompt}"
    );
    assert!(
        prompt.contains("New memory: (preference) Prefers tea"),
        "{prompt}"
    );
    assert!(!has_uuid(&prompt), "a UUID reached the model: {prompt}");
}

#[tokio::test]
async fn a_delete_decision_invalidates_the_old_memory_and_adds_nothing() {
    let chat = Chat::start().await;
    let conversation = coffee_lover(&chat).await;
    next_assessment(
        &chat,
        &[("preference", "Has stopped drinking coffee")],
        Some(("DELETE", Some(1))),
    );
    let turn = say(
        &chat,
        conversation,
        "I've stopped drinking coffee altogether",
    )
    .await;

    assert!(
        memories(&chat, false).await.is_empty(),
        "nothing is true now"
    );
    let all = memories(&chat, true).await;
    assert_eq!(texts(&all), ["Prefers coffee"], "nothing was added");
    assert!(!all[0]["invalid_at"].is_null(), "{}", all[0]);
    let history = memory(&chat, all[0]["id"].as_str().unwrap_or_default()).await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let events: Vec<&str> = history
        .iter()
        .map(|h| h["event"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(events, ["add", "invalidate"], "{history:?}");
    assert!(history[1]["replaced_by"].is_null(), "{history:?}");
    assert_eq!(history[1]["reason"], "as scripted");
    assert_eq!(history[1]["message_id"], turn["user_message"]["id"]);
}

#[tokio::test]
async fn greetings_and_small_talk_yield_no_memory_and_no_extraction_call() {
    let chat = Chat::start().await;
    // Whatever the model would extract, it is never asked.
    next_assessment(&chat, &[("fact", "Is a morning person")], None);
    let conversation = chat.conversation().await;
    for text in ["hi", "thanks!", "good morning"] {
        say(&chat, conversation, text).await;
        chat.advance(Duration::minutes(2));
    }
    assert!(
        memories(&chat, true).await.is_empty(),
        "small talk taught something"
    );
    assert!(chat.calls(Call::Extraction).is_empty());
    assert!(chat.calls(Call::Reconciliation).is_empty());
    let count: i64 = sqlx::query_scalar("select count(*) from memories")
        .fetch_one(&chat.app.db)
        .await
        .expect("count memories");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn an_exact_repeat_of_a_fact_adds_no_memory_and_asks_no_model() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    next_assessment(&chat, &[("fact", "Has a dog named Biscuit")], None);
    say(&chat, conversation, "My dog is called Biscuit").await;
    chat.advance(Duration::minutes(5));
    say(&chat, conversation, "As I said, my dog is called Biscuit").await;

    assert_eq!(
        texts(&memories(&chat, true).await),
        ["Has a dog named Biscuit"]
    );
    assert_eq!(chat.calls(Call::Extraction).len(), 2);
    assert!(
        chat.calls(Call::Reconciliation).is_empty(),
        "an exact repeat needs no model to decide"
    );
}

#[tokio::test]
async fn a_paraphrase_the_model_calls_known_adds_no_memory() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    next_assessment(&chat, &[("fact", "Has a dog named Biscuit")], None);
    say(&chat, conversation, "My dog is called Biscuit").await;
    chat.advance(Duration::minutes(5));
    next_assessment(
        &chat,
        &[("fact", "Owns a dog called Biscuit")],
        Some(("NONE", None)),
    );
    say(&chat, conversation, "Biscuit, my dog, says hello").await;

    assert_eq!(
        texts(&memories(&chat, true).await),
        ["Has a dog named Biscuit"]
    );
    let calls = chat.calls(Call::Reconciliation);
    assert_eq!(calls.len(), 1);
    assert!(prompt_text(&calls[0].body).contains("1. (fact) Has a dog named Biscuit"));
}

#[tokio::test]
async fn the_memory_extraction_preference_turned_off_stops_learning_but_not_the_summary() {
    let chat = Chat::start().await;
    let (status, profile) = chat
        .app
        .call(
            Method::PATCH,
            "/api/v1/auth/me",
            Some(chat.token()),
            Some(json!({"preferences": {"memory_extraction": false}})),
        )
        .await;
    assert_eq!(status, 200, "{profile}");
    next_assessment(&chat, &[("fact", "Is allergic to peanuts")], None);
    let conversation = chat.conversation().await;
    say(
        &chat,
        conversation,
        "I'm allergic to peanuts, keep that in mind",
    )
    .await;

    assert!(memories(&chat, true).await.is_empty(), "nothing learned");
    let extraction = chat.last_call(Call::Extraction).expect("a summary call");
    assert!(
        prompt_text(&extraction.body).contains("List no memories"),
        "the model is not asked for memories"
    );
    let contexts = contexts(&chat, conversation).await;
    assert_eq!(contexts.len(), 1);
    assert!(
        contexts[0]["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("allergic to peanuts"),
        "{contexts:?}"
    );
}

async fn contexts(chat: &Chat, conversation: Uuid) -> Vec<Value> {
    let (status, body) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}/contexts"),
            Some(chat.token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_context_summary_is_rewritten_after_each_turn() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    say(&chat, conversation, "I'm training for a marathon in April").await;
    let first = contexts(&chat, conversation).await;
    assert_eq!(first.len(), 1);
    let summary = first[0]["summary"].as_str().unwrap_or_default().to_owned();
    assert!(summary.contains("marathon in April"), "{summary}");

    chat.advance(Duration::minutes(5));
    say(
        &chat,
        conversation,
        "Which long runs should I do each week?",
    )
    .await;
    let second = contexts(&chat, conversation).await;
    let rewritten = second[0]["summary"].as_str().unwrap_or_default();
    assert_ne!(rewritten, summary);
    assert!(
        rewritten.contains("marathon in April") && rewritten.contains("long runs"),
        "the summary keeps the topic and adds the new exchange: {rewritten}"
    );
    // The assessor was shown the summary it rewrites.
    let extraction = chat
        .last_call(Call::Extraction)
        .expect("an extraction call");
    assert!(prompt_text(&extraction.body).contains(&format!("Topic summary so far: {summary}")));
}

#[tokio::test]
async fn a_learned_memory_keeps_its_source_message_and_conversation() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    next_assessment(
        &chat,
        &[("fact", "Is training for a marathon in April")],
        None,
    );
    let turn = say(&chat, conversation, "I'm training for a marathon in April").await;

    let learned = memories(&chat, false).await;
    assert_eq!(texts(&learned), ["Is training for a marathon in April"]);
    assert_eq!(learned[0]["origin"], "assessor");
    assert_eq!(learned[0]["source_message_id"], turn["user_message"]["id"]);
    assert_eq!(
        learned[0]["source_conversation_id"],
        json!(conversation.to_string())
    );
}

#[tokio::test]
async fn a_crash_between_the_answer_and_the_assessment_loses_nothing() {
    let chat = Chat::start().await;
    // The first extraction hangs, so the server stops while the assessment is under way.
    let first = Arc::new(AtomicBool::new(true));
    let extraction = json!({
        "memories": [{"kind": "preference", "text": "Prefers tea"}],
        "summary": "The user drinks tea.",
    })
    .to_string();
    chat.fake.set_responder(move |body| {
        Some(match call_of(body) {
            Call::Extraction if first.swap(false, Ordering::SeqCst) => Reply::Delayed(
                StdDuration::from_secs(120),
                Box::new(Reply::Text(extraction.clone())),
            ),
            Call::Extraction => Reply::Text(extraction.clone()),
            Call::Title => Reply::Text("Tea".into()),
            _ => Reply::Text("Noted.".into()),
        })
    });
    let conversation = chat.conversation().await;
    let (status, turn) = chat
        .say_only(
            conversation,
            "I drink tea every afternoon",
            &Uuid::now_v7().to_string(),
        )
        .await;
    assert_eq!(status, 201, "{turn}");
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while chat.calls(Call::Extraction).is_empty() {
        assert!(Instant::now() < deadline, "the assessment never started");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }

    let Chat {
        app,
        fake,
        clock,
        script,
        user,
    } = chat;
    let app = app.restart().await;
    let chat = Chat {
        app,
        fake,
        clock,
        script,
        user,
    };
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from chat_jobs where kind = 'assess' and message_id = $1",
    )
    .bind(
        turn["assistant_message"]["id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok()),
    )
    .fetch_one(&chat.app.db)
    .await
    .expect("count jobs");
    assert_eq!(queued, 1, "the assessment job outlived the server");
    assert!(memories(&chat, true).await.is_empty());

    // The leases the stopped workers took run out (as they would after `jobs::LEASE`): the
    // assessment's, and the message embedding's if the embedding worker had claimed it.
    for table in ["chat_jobs", "embedding_queue"] {
        sqlx::query(&format!("update {table} set next_attempt_at = now()"))
            .execute(&chat.app.db)
            .await
            .expect("expire the leases");
    }
    chat.settle().await;
    let learned = memories(&chat, false).await;
    assert_eq!(texts(&learned), ["Prefers tea"]);
    assert_eq!(learned[0]["source_message_id"], turn["user_message"]["id"]);
    assert_eq!(
        chat.calls(Call::Extraction).len(),
        2,
        "assessed again, once"
    );
    let summary = contexts(&chat, conversation).await[0]["summary"].clone();
    assert_eq!(summary, "The user drinks tea.");
}

#[tokio::test]
async fn the_specialist_is_shown_memories_true_now_and_not_those_invalidated() {
    let chat = Chat::start().await;
    let conversation = coffee_lover(&chat).await;
    next_assessment(
        &chat,
        &[("preference", "Prefers tea")],
        Some(("UPDATE", Some(1))),
    );
    say(&chat, conversation, "I've switched to tea").await;
    chat.advance(Duration::minutes(10));
    next_assessment(&chat, &[], None);
    say(&chat, conversation, "What should I drink with breakfast?").await;

    let specialist = chat.last_call(Call::Specialist).expect("a specialist call");
    let system = specialist.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        system.contains("## What you know about the user (true now)\n- (preference) Prefers tea"),
        "{system}"
    );
    assert!(!system.contains("Prefers coffee"), "{system}");
}
