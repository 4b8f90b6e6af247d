//! The REST surface of chat, through HTTP: conversations (create, list, get, rename, delete),
//! their messages and titles, what a turn refuses, the turn budget, chat without a provider,
//! memories, workspace AI roles, and the audit trail of every mutation.

use std::collections::HashSet;
use std::time::Duration;

use potentia_tests::{expect_problem, Session};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::Chat;

const COFFEE: &str = "I always brew pour-over coffee in the morning";
const COFFEE_MEMORY: &str = "Prefers pour-over coffee";

/// Calls the API as the chat's user.
async fn call(chat: &Chat, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    chat.app.call(method, path, Some(chat.token()), body).await
}

/// Calls the API as `session`.
async fn call_as(
    chat: &Chat,
    session: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    chat.app
        .call(method, path, Some(session.access_token()), body)
        .await
}

fn id_of(body: &Value) -> Uuid {
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id in {body}"))
}

async fn someone_else(chat: &Chat) -> Session {
    chat.app
        .sign_up(&format!("other-{}@example.com", Uuid::now_v7()))
        .await
}

async fn count(chat: &Chat, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&chat.app.db)
        .await
        .expect("a count")
}

async fn conversation_rows(chat: &Chat) -> i64 {
    count(chat, "select count(*) from conversations").await
}

async fn message_rows(chat: &Chat) -> i64 {
    count(chat, "select count(*) from conversation_messages").await
}

async fn memory_rows(chat: &Chat) -> i64 {
    count(chat, "select count(*) from memories").await
}

/// The fields a 422 names.
fn invalid_fields(status: u16, problem: &Value) -> Vec<String> {
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Follows `next_cursor` from the page of `path` (which has a query already) at `cursor` to the
/// last page.
async fn all_pages(chat: &Chat, path: &str, cursor: Option<String>) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = cursor;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (status, page) = call(chat, Method::GET, &url, None).await;
        assert_eq!(status, 200, "{page}");
        pages.push(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 50, "the pages never end");
    }
}

fn ids(items: &[Value]) -> Vec<Uuid> {
    items.iter().map(id_of).collect()
}

async fn get_conversation(chat: &Chat, conversation: Uuid) -> Value {
    let (status, body) = call(
        chat,
        Method::GET,
        &format!("/api/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn rename(chat: &Chat, conversation: Uuid, title: &str) -> (u16, Value) {
    call(
        chat,
        Method::PATCH,
        &format!("/api/v1/conversations/{conversation}"),
        Some(json!({ "title": title })),
    )
    .await
}

/// Polls the conversation until its title is generated.
async fn auto_title(chat: &Chat, conversation: Uuid) -> Value {
    for _ in 0..250 {
        let body = get_conversation(chat, conversation).await;
        if body["title_source"] == "auto" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no title was generated for {conversation}");
}

async fn post_turn(chat: &Chat, conversation: Uuid, body: Value) -> (u16, Value) {
    call(
        chat,
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        Some(body),
    )
    .await
}

async fn memories(chat: &Chat, query: &str) -> Vec<Value> {
    let (status, page) = call(chat, Method::GET, &format!("/api/v1/memories{query}"), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn state_memory(chat: &Chat, kind: &str, text: &str) -> Value {
    let (status, body) = call(
        chat,
        Method::POST,
        "/api/v1/memories",
        Some(json!({ "kind": kind, "text": text })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Has the assessor learn [`COFFEE_MEMORY`] from a turn in `conversation`; returns its id.
async fn learn_coffee(chat: &Chat, conversation: Uuid) -> Uuid {
    chat.script().extract = vec![("preference".into(), COFFEE_MEMORY.into())];
    let (status, turn) = chat.say(conversation, COFFEE).await;
    assert_eq!(status, 201, "{turn}");
    chat.script().extract.clear();
    let learned = memories(chat, "").await;
    let memory = learned
        .iter()
        .find(|m| m["text"] == COFFEE_MEMORY)
        .unwrap_or_else(|| panic!("the assessor learned nothing: {learned:?}"));
    assert_eq!(memory["origin"], "assessor");
    assert_eq!(memory["source_conversation_id"], conversation.to_string());
    id_of(memory)
}

// Conversations.

#[tokio::test]
async fn a_new_conversation_is_untitled_and_its_owner_reads_it_back() {
    let chat = Chat::start().await;
    let (status, created) = call(
        &chat,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "");
    assert_eq!(created["title_source"], "none");
    assert!(created["workspace_id"].is_null() && created["canvas_id"].is_null());
    assert_eq!(get_conversation(&chat, id_of(&created)).await, created);
}

#[tokio::test]
async fn a_conversation_created_with_a_title_has_a_user_title() {
    let chat = Chat::start().await;
    let (status, created) = call(
        &chat,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({ "title": "  Morning routine " })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "Morning routine");
    assert_eq!(created["title_source"], "user");
}

#[tokio::test]
async fn a_conversation_tied_to_a_workspace_and_a_canvas_the_caller_reads_keeps_both() {
    let chat = Chat::start().await;
    let workspace = chat.app.create_workspace(chat.token(), "Home").await;
    let canvas = chat
        .app
        .create_canvas(chat.token(), Some(workspace), "Groceries")
        .await;
    let (status, created) = call(
        &chat,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({ "workspace_id": workspace, "canvas_id": canvas })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["workspace_id"], workspace.to_string());
    assert_eq!(created["canvas_id"], canvas.to_string());
}

#[tokio::test]
async fn conversations_are_listed_by_most_recent_activity_first() {
    let chat = Chat::start().await;
    let first = chat.conversation().await;
    chat.advance(chrono::Duration::minutes(1));
    let second = chat.conversation().await;
    chat.advance(chrono::Duration::minutes(1));
    let third = chat.conversation().await;
    chat.advance(chrono::Duration::minutes(1));
    let (status, turn) = chat.say(first, COFFEE).await;
    assert_eq!(status, 201, "{turn}");

    let (status, page) = call(&chat, Method::GET, "/api/v1/conversations", None).await;
    assert_eq!(status, 200, "{page}");
    let listed = ids(page["items"].as_array().expect("items"));
    assert_eq!(listed, vec![first, third, second]);
    assert!(page["next_cursor"].is_null(), "{page}");
}

#[tokio::test]
async fn conversation_pages_neither_skip_nor_repeat_even_when_one_is_created_between_pages() {
    let chat = Chat::start().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(chat.conversation().await);
        chat.advance(chrono::Duration::minutes(1));
    }
    let (_, first_page) = call(&chat, Method::GET, "/api/v1/conversations?limit=2", None).await;
    let cursor = first_page["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    // A newer conversation sorts before the first page: later pages do not shift.
    let newer = chat.conversation().await;
    let rest = all_pages(&chat, "/api/v1/conversations?limit=2", Some(cursor)).await;

    let mut seen = ids(first_page["items"].as_array().expect("items"));
    for page in &rest {
        assert!(page.len() <= 2);
        seen.extend(ids(page));
    }
    let newest_first: Vec<Uuid> = created.iter().rev().copied().collect();
    assert_eq!(seen, newest_first, "every conversation once, in order");
    assert!(!seen.contains(&newer));
    assert_eq!(rest.len(), 2, "pages of 2, 1 after the first");
}

#[tokio::test]
async fn a_rename_sets_the_title_and_marks_it_the_users() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, renamed) = rename(&chat, conversation, "Coffee notes").await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["title"], "Coffee notes");
    assert_eq!(renamed["title_source"], "user");
    assert_eq!(get_conversation(&chat, conversation).await, renamed);
}

#[tokio::test]
async fn an_empty_or_overlong_title_is_refused_and_the_title_stays() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    for title in [
        "   ".to_owned(),
        "t".repeat(201),
        "bad\u{0}title".to_owned(),
    ] {
        let (status, problem) = rename(&chat, conversation, &title).await;
        assert_eq!(invalid_fields(status, &problem), vec!["title"]);
    }
    let (status, problem) = call(
        &chat,
        Method::PATCH,
        &format!("/api/v1/conversations/{conversation}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(invalid_fields(status, &problem), vec!["title"]);
    let stored = get_conversation(&chat, conversation).await;
    assert_eq!(stored["title"], "");
    assert_eq!(stored["title_source"], "none");
}

#[tokio::test]
async fn deleting_a_conversation_removes_its_messages_and_keeps_its_memories() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let memory = learn_coffee(&chat, conversation).await;
    assert_eq!(message_rows(&chat).await, 2);

    let path = format!("/api/v1/conversations/{conversation}");
    let (status, body) = call(&chat, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = call(&chat, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(message_rows(&chat).await, 0);
    assert_eq!(
        count(&chat, "select count(*) from conversation_contexts").await,
        0
    );

    let kept = memories(&chat, "").await;
    assert_eq!(ids(&kept), vec![memory], "{kept:?}");
    assert!(kept[0]["source_conversation_id"].is_null(), "{kept:?}");
}

#[tokio::test]
async fn deleting_a_conversation_with_forget_removes_the_memories_learned_from_it() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let learned = learn_coffee(&chat, conversation).await;
    let stated = id_of(&state_memory(&chat, "fact", "Lives in Lisbon").await);

    let (status, body) = call(
        &chat,
        Method::DELETE,
        &format!("/api/v1/conversations/{conversation}?forget=true"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let left = ids(&memories(&chat, "?include_invalid=true").await);
    assert_eq!(left, vec![stated], "only the stated memory stays");
    let (status, _) = call(
        &chat,
        Method::GET,
        &format!("/api/v1/memories/{learned}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn another_users_conversation_is_not_found_on_every_route_and_stays_as_it_was() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, _) = chat.say(conversation, COFFEE).await;
    assert_eq!(status, 201);
    // The turn's assessor job calls the model too: let it finish before counting calls.
    chat.settle().await;
    let before = get_conversation(&chat, conversation).await;
    let calls_before = chat.fake.requests().len();
    let stranger = someone_else(&chat).await;

    let path = format!("/api/v1/conversations/{conversation}");
    let attempts = [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({ "title": "Mine now" })),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::DELETE, format!("{path}?forget=true"), None),
        (Method::GET, format!("{path}/messages"), None),
        (Method::GET, format!("{path}/contexts"), None),
        (
            Method::POST,
            format!("{path}/messages"),
            Some(json!({ "text": "hello", "client_message_id": "stranger-1" })),
        ),
    ];
    for (method, url, body) in attempts {
        let response = chat
            .app
            .authed(method.clone(), &url, stranger.access_token());
        let response = match body {
            Some(body) => response.json(&body),
            None => response,
        };
        let problem =
            expect_problem(response.send().await.expect("request"), 404, "not_found").await;
        assert!(
            !problem.to_string().contains(COFFEE),
            "{method} {url} leaks: {problem}"
        );
    }
    assert_eq!(get_conversation(&chat, conversation).await, before);
    assert_eq!(message_rows(&chat).await, 2);
    assert_eq!(chat.fake.requests().len(), calls_before, "no model call");
    let (_, theirs) = call_as(&chat, &stranger, Method::GET, "/api/v1/conversations", None).await;
    assert_eq!(theirs["items"], json!([]));
}

#[tokio::test]
async fn a_conversation_tied_to_a_workspace_or_canvas_the_caller_cannot_read_is_not_found() {
    let chat = Chat::start().await;
    let stranger = someone_else(&chat).await;
    let workspace = chat
        .app
        .create_workspace(stranger.access_token(), "Theirs")
        .await;
    let canvas = chat
        .app
        .create_canvas(stranger.access_token(), None, "Private")
        .await;
    let missing = Uuid::now_v7();
    for body in [
        json!({ "workspace_id": workspace }),
        json!({ "canvas_id": canvas }),
        json!({ "workspace_id": missing }),
        json!({ "canvas_id": missing }),
    ] {
        let (status, problem) = call(
            &chat,
            Method::POST,
            "/api/v1/conversations",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 404, "{body}: {problem}");
        assert_eq!(problem["code"], "not_found");
    }
    assert_eq!(conversation_rows(&chat).await, 0);
}

// Messages and titles.

#[tokio::test]
async fn messages_are_listed_oldest_first_in_pages_that_neither_skip_nor_repeat() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let questions = [
        "How hot should the water be for pour-over coffee?",
        "And how long should the pour-over coffee take?",
        "Which pour-over coffee filter do you recommend?",
    ];
    for question in questions {
        let (status, turn) = chat.say(conversation, question).await;
        assert_eq!(status, 201, "{turn}");
        chat.advance(chrono::Duration::minutes(2));
    }

    let pages = all_pages(
        &chat,
        &format!("/api/v1/conversations/{conversation}/messages?limit=4"),
        None,
    )
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2]);
    let messages: Vec<Value> = pages.into_iter().flatten().collect();
    let unique: HashSet<Uuid> = ids(&messages).into_iter().collect();
    assert_eq!(unique.len(), 6, "no message twice");
    for (i, pair) in messages.chunks(2).enumerate() {
        assert_eq!(pair[0]["role"], "user");
        assert_eq!(pair[0]["text"], questions[i]);
        assert_eq!(pair[1]["role"], "assistant");
        assert_eq!(pair[1]["reply_to"], pair[0]["id"]);
        assert_eq!(pair[1]["status"], "complete");
    }
}

#[tokio::test]
async fn the_first_exchange_gets_a_generated_title() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, turn) = chat.say_only(conversation, COFFEE, "first").await;
    assert_eq!(status, 201, "{turn}");
    let titled = auto_title(&chat, conversation).await;
    assert_eq!(titled["title"], "Pour-over coffee");
}

#[tokio::test]
async fn a_title_given_before_the_first_exchange_is_never_replaced() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, _) = rename(&chat, conversation, "Brewing log").await;
    assert_eq!(status, 200);
    let (status, turn) = chat.say(conversation, COFFEE).await;
    assert_eq!(status, 201, "{turn}");
    let stored = get_conversation(&chat, conversation).await;
    assert_eq!(stored["title"], "Brewing log");
    assert_eq!(stored["title_source"], "user");
}

#[tokio::test]
async fn a_rename_after_the_generated_title_is_kept_through_later_turns() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    chat.say(conversation, COFFEE).await;
    auto_title(&chat, conversation).await;
    let (status, renamed) = rename(&chat, conversation, "My V60").await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["title_source"], "user");

    let (status, _) = chat
        .say(conversation, "What grind size for the pour-over coffee?")
        .await;
    assert_eq!(status, 201);
    let stored = get_conversation(&chat, conversation).await;
    assert_eq!(stored["title"], "My V60");
    assert_eq!(stored["title_source"], "user");
}

// What a turn refuses.

#[tokio::test]
async fn a_turn_with_an_invalid_field_is_refused_naming_it_and_nothing_is_stored() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let cases = [
        (json!({ "text": "", "client_message_id": "a" }), "text"),
        (json!({ "text": "   ", "client_message_id": "a" }), "text"),
        (
            json!({ "text": "x".repeat(8001), "client_message_id": "a" }),
            "text",
        ),
        (
            json!({ "text": "coffee\u{0}beans", "client_message_id": "a" }),
            "text",
        ),
        (json!({ "text": "hello" }), "client_message_id"),
        (
            json!({ "text": "hello", "client_message_id": "" }),
            "client_message_id",
        ),
        (
            json!({ "text": "hello", "client_message_id": "c".repeat(201) }),
            "client_message_id",
        ),
        (
            json!({ "text": "hello", "client_message_id": "a", "time_zone": "Mars/Olympus" }),
            "time_zone",
        ),
        (
            json!({ "text": "hello", "client_message_id": "a", "colour": "blue" }),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = post_turn(&chat, conversation, body.clone()).await;
        let fields = invalid_fields(status, &problem);
        assert_eq!(fields, vec![field], "{body}: {problem}");
    }
    assert_eq!(message_rows(&chat).await, 0);
    assert_eq!(
        count(&chat, "select count(*) from conversation_contexts").await,
        0
    );
    assert!(chat.fake.requests().is_empty(), "no model was called");
}

#[tokio::test]
async fn a_turn_at_the_length_limit_is_answered() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, turn) = post_turn(
        &chat,
        conversation,
        json!({ "text": "é".repeat(8000), "client_message_id": "c".repeat(200), "time_zone": "Europe/Lisbon" }),
    )
    .await;
    assert_eq!(status, 201, "{turn}");
    assert_eq!(
        turn["user_message"]["text"]
            .as_str()
            .map(|t| t.chars().count()),
        Some(8000)
    );
}

#[tokio::test]
async fn a_conversation_with_an_unknown_field_is_refused_and_not_stored() {
    let chat = Chat::start().await;
    let (status, problem) = call(
        &chat,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({ "title": "Plans", "topic": "coffee" })),
    )
    .await;
    assert_eq!(invalid_fields(status, &problem), vec!["topic"]);
    assert_eq!(conversation_rows(&chat).await, 0);
}

#[tokio::test]
async fn without_a_chat_provider_a_turn_is_503_ai_not_configured() {
    let chat = Chat::start_with(|s| s.ai.ai.chat = None).await;
    let conversation = chat.conversation().await;
    let response = chat
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            chat.token(),
        )
        .json(&json!({ "text": COFFEE, "client_message_id": "one" }))
        .send()
        .await
        .expect("request");
    let problem = expect_problem(response, 503, "ai_not_configured").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("chat") && detail.contains("configured"),
        "{detail}"
    );
    assert_eq!(message_rows(&chat).await, 0);
}

#[tokio::test]
async fn without_a_chat_provider_conversations_messages_and_memories_still_work() {
    let chat = Chat::start_with(|s| s.ai.ai.chat = None).await;
    let conversation = chat.conversation().await;
    let (status, _) = rename(&chat, conversation, "Offline notes").await;
    assert_eq!(status, 200);
    let (status, page) = call(&chat, Method::GET, "/api/v1/conversations", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(page["items"].as_array().expect("items")),
        vec![conversation]
    );
    let (status, page) = call(
        &chat,
        Method::GET,
        &format!("/api/v1/conversations/{conversation}/messages"),
        None,
    )
    .await;
    assert_eq!((status, page["items"].clone()), (200, json!([])));
    let (status, contexts) = call(
        &chat,
        Method::GET,
        &format!("/api/v1/conversations/{conversation}/contexts"),
        None,
    )
    .await;
    assert_eq!((status, contexts), (200, json!([])));

    let memory = id_of(&state_memory(&chat, "rule", "Never book meetings before 10").await);
    assert_eq!(ids(&memories(&chat, "").await), vec![memory]);
    let (status, _) = call(
        &chat,
        Method::DELETE,
        &format!("/api/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn the_turn_over_the_minute_budget_is_429_with_retry_after_and_other_users_go_on() {
    let chat = Chat::start_with(|s| s.ai.turns_per_minute = 2).await;
    let conversation = chat.conversation().await;
    for n in 0..2 {
        let (status, turn) = chat
            .say(conversation, &format!("Pour-over coffee question {n}"))
            .await;
        assert_eq!(status, 201, "{turn}");
    }
    let response = chat
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            chat.token(),
        )
        .json(&json!({ "text": "One more about coffee", "client_message_id": "third" }))
        .send()
        .await
        .expect("request");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(response, 429, "rate_limited").await;
    assert_eq!(
        message_rows(&chat).await,
        4,
        "the refused turn stored nothing"
    );

    let other = someone_else(&chat).await;
    let (status, created) = call_as(
        &chat,
        &other,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, turn) = call_as(
        &chat,
        &other,
        Method::POST,
        &format!("/api/v1/conversations/{}/messages", id_of(&created)),
        Some(json!({ "text": "Hello, tea drinker here", "client_message_id": "mine" })),
    )
    .await;
    assert_eq!(status, 201, "{turn}");
}

// Memories.

#[tokio::test]
async fn a_stated_memory_is_created_and_listed_while_valid() {
    let chat = Chat::start().await;
    let memory = state_memory(&chat, "preference", "Prefers tea in the afternoon").await;
    assert_eq!(memory["kind"], "preference");
    assert_eq!(memory["origin"], "user");
    assert!(memory["invalid_at"].is_null());
    assert_eq!(memories(&chat, "").await, vec![memory]);
}

#[tokio::test]
async fn a_memory_whose_validity_ended_is_listed_only_with_include_invalid() {
    let chat = Chat::start().await;
    let memory = state_memory(&chat, "fact", "Lives in Porto").await;
    let id = id_of(&memory);
    let (status, ended) = call(
        &chat,
        Method::PATCH,
        &format!("/api/v1/memories/{id}"),
        Some(json!({ "invalid_at": memory["valid_at"] })),
    )
    .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(id_of(&ended), id, "the same memory");
    assert!(ended["invalid_at"].is_string(), "{ended}");

    assert!(memories(&chat, "").await.is_empty());
    assert_eq!(
        ids(&memories(&chat, "?include_invalid=true").await),
        vec![id]
    );
}

#[tokio::test]
async fn a_memory_shows_its_history() {
    let chat = Chat::start().await;
    let memory = state_memory(&chat, "rule", "Answer in English").await;
    let (status, body) = call(
        &chat,
        Method::GET,
        &format!("/api/v1/memories/{}", id_of(&memory)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "Answer in English");
    let history = body["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{body}");
    assert_eq!(history[0]["event"], "add");
    assert_eq!(history[0]["reason"], "stated by the user");
}

#[tokio::test]
async fn a_new_text_replaces_the_memory_with_a_new_id_and_the_old_one_keeps_the_history() {
    let chat = Chat::start().await;
    let old = id_of(&state_memory(&chat, "fact", "Works at Acme").await);
    let (status, edited) = call(
        &chat,
        Method::PATCH,
        &format!("/api/v1/memories/{old}"),
        Some(json!({ "text": "Works at Globex" })),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let new = id_of(&edited);
    assert_ne!(new, old);
    assert_eq!(edited["text"], "Works at Globex");
    assert_eq!(edited["origin"], "user");

    assert_eq!(
        ids(&memories(&chat, "?include_invalid=true").await),
        vec![new]
    );
    let (status, before) = call(&chat, Method::GET, &format!("/api/v1/memories/{old}"), None).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["text"], "Works at Acme");
    let edit = before["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["event"] == "edit"))
        .unwrap_or_else(|| panic!("no edit in {before}"));
    assert_eq!(edit["old_text"], "Works at Acme");
    assert_eq!(edit["new_text"], "Works at Globex");
    assert_eq!(edit["replaced_by"], new.to_string());
    let (_, after) = call(&chat, Method::GET, &format!("/api/v1/memories/{new}"), None).await;
    assert!(
        after["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["old_text"] == "Works at Acme")),
        "{after}"
    );
}

#[tokio::test]
async fn forgetting_a_memory_deletes_it_and_its_embedding() {
    let chat = Chat::start().await;
    let id = id_of(&state_memory(&chat, "preference", "Likes long walks").await);
    chat.settle().await;
    let embeddings = |chat: &Chat| {
        let db = chat.app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from memory_embeddings where memory_id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .expect("a count")
        }
    };
    assert_eq!(embeddings(&chat).await, 1, "the memory was embedded");

    let path = format!("/api/v1/memories/{id}");
    let (status, body) = call(&chat, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = call(&chat, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&chat, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(embeddings(&chat).await, 0);
    assert_eq!(
        count(&chat, "select count(*) from memory_history").await,
        0,
        "its history goes too"
    );
}

#[tokio::test]
async fn another_users_memory_is_not_found_and_stays_as_it_was() {
    let chat = Chat::start().await;
    let memory = state_memory(&chat, "fact", "Has a cat named Miso").await;
    let stranger = someone_else(&chat).await;
    let path = format!("/api/v1/memories/{}", id_of(&memory));
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({ "text": "Has a dog" }))),
        (
            Method::PATCH,
            Some(json!({ "invalid_at": memory["valid_at"] })),
        ),
        (Method::DELETE, None),
    ] {
        let (status, problem) = call_as(&chat, &stranger, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method}: {problem}");
        assert_eq!(problem["code"], "not_found");
    }
    let (_, theirs) = call_as(&chat, &stranger, Method::GET, "/api/v1/memories", None).await;
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(memories(&chat, "").await, vec![memory]);
}

#[tokio::test]
async fn a_memory_with_an_unknown_kind_or_bad_text_is_refused_and_not_stored() {
    let chat = Chat::start().await;
    let cases = [
        (json!({ "kind": "opinion", "text": "Likes jazz" }), "kind"),
        (json!({ "kind": "fact", "text": "Likes\u{0}jazz" }), "text"),
        (json!({ "kind": "fact", "text": "" }), "text"),
        (json!({ "kind": "fact", "text": "j".repeat(2001) }), "text"),
        (json!({ "kind": "fact" }), "text"),
        (json!({ "text": "Likes jazz", "mood": "good" }), "mood"),
    ];
    for (body, field) in cases {
        let (status, problem) =
            call(&chat, Method::POST, "/api/v1/memories", Some(body.clone())).await;
        assert_eq!(invalid_fields(status, &problem), vec![field], "{body}");
    }
    assert_eq!(memory_rows(&chat).await, 0);

    let memory = state_memory(&chat, "fact", "Likes jazz").await;
    let path = format!("/api/v1/memories/{}", id_of(&memory));
    for (body, field) in [
        (json!({ "kind": "opinion" }), "kind"),
        (json!({ "text": "Likes\u{0}blues" }), "text"),
    ] {
        let (status, problem) = call(&chat, Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(invalid_fields(status, &problem), vec![field], "{body}");
    }
    assert_eq!(memories(&chat, "?include_invalid=true").await, vec![memory]);
    assert_eq!(memory_rows(&chat).await, 1);
}

// Workspace AI roles.

struct Team {
    workspace: Uuid,
    admin: Session,
    member: Session,
    outsider: Session,
}

/// A workspace the chat's user owns, with an admin, a member, and someone outside it.
async fn team(chat: &Chat) -> Team {
    let workspace = chat.app.create_workspace(chat.token(), "Studio").await;
    let admin = someone_else(chat).await;
    let member = someone_else(chat).await;
    chat.app
        .add_member(chat.token(), workspace, &admin, "admin")
        .await;
    chat.app
        .add_member(chat.token(), workspace, &member, "member")
        .await;
    Team {
        workspace,
        admin,
        member,
        outsider: someone_else(chat).await,
    }
}

fn role_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "recipes, cooking, ingredients and kitchen techniques",
        "prompt": "Act as a chef. Suggest one recipe and explain each step.",
    })
}

fn names(roles: &Value) -> Vec<String> {
    roles
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn workspace_roles(chat: &Chat, session: &Session, workspace: Uuid) -> (u16, Value) {
    call_as(
        chat,
        session,
        Method::GET,
        &format!("/api/v1/workspaces/{workspace}/ai-roles"),
        None,
    )
    .await
}

async fn ai_role_rows(chat: &Chat) -> i64 {
    count(
        chat,
        "select count(*) from ai_roles where workspace_id is not null",
    )
    .await
}

#[tokio::test]
async fn a_member_lists_the_built_in_roles_and_the_workspaces_own() {
    let chat = Chat::start().await;
    let team = team(&chat).await;
    let (status, created) = call_as(
        &chat,
        &team.admin,
        Method::POST,
        &format!("/api/v1/workspaces/{}/ai-roles", team.workspace),
        Some(role_body("chef")),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let (status, roles) = workspace_roles(&chat, &team.member, team.workspace).await;
    assert_eq!(status, 200, "{roles}");
    let listed = names(&roles);
    for built_in in ["planner", "writing editor", "data analyst", "coach"] {
        assert!(
            listed.iter().any(|n| n == built_in),
            "{built_in}: {listed:?}"
        );
    }
    assert!(listed.iter().any(|n| n == "chef"), "{listed:?}");
    let chef = roles
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "chef"))
        .expect("the chef role");
    assert_eq!(chef["workspace_id"], team.workspace.to_string());

    // Another workspace sees the built-in roles, not this one's.
    let other = chat.app.create_workspace(chat.token(), "Elsewhere").await;
    let (_, elsewhere) = workspace_roles(&chat, &chat.user, other).await;
    assert!(!names(&elsewhere).iter().any(|n| n == "chef"));
    assert_eq!(names(&elsewhere).len(), 4, "{elsewhere}");
}

#[tokio::test]
async fn a_member_who_is_not_an_admin_cannot_add_a_role() {
    let chat = Chat::start().await;
    let team = team(&chat).await;
    let response = chat
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/workspaces/{}/ai-roles", team.workspace),
            team.member.access_token(),
        )
        .json(&role_body("chef"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    assert_eq!(ai_role_rows(&chat).await, 0);
}

#[tokio::test]
async fn an_admin_creates_replaces_and_deletes_a_role() {
    let chat = Chat::start().await;
    let team = team(&chat).await;
    let base = format!("/api/v1/workspaces/{}/ai-roles", team.workspace);
    let (status, created) = call_as(
        &chat,
        &team.admin,
        Method::POST,
        &base,
        Some(role_body("chef")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "chef");
    let role = id_of(&created);

    let replacement = json!({
        "name": "pastry chef",
        "description": "baking, pastry, desserts and bread",
        "prompt": "Act as a pastry chef. Weigh everything.",
    });
    let (status, replaced) = call_as(
        &chat,
        &team.admin,
        Method::PUT,
        &format!("{base}/{role}"),
        Some(replacement),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(id_of(&replaced), role);
    assert_eq!(replaced["name"], "pastry chef");
    assert_eq!(
        replaced["prompt"],
        "Act as a pastry chef. Weigh everything."
    );
    let (_, roles) = workspace_roles(&chat, &team.member, team.workspace).await;
    assert!(names(&roles).iter().any(|n| n == "pastry chef"));
    assert!(!names(&roles).iter().any(|n| n == "chef"));

    let (status, _) = call_as(
        &chat,
        &team.admin,
        Method::DELETE,
        &format!("{base}/{role}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call_as(
        &chat,
        &team.admin,
        Method::DELETE,
        &format!("{base}/{role}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(ai_role_rows(&chat).await, 0);
}

#[tokio::test]
async fn a_duplicate_role_name_in_a_workspace_is_409_role_name_taken() {
    let chat = Chat::start().await;
    let team = team(&chat).await;
    let base = format!("/api/v1/workspaces/{}/ai-roles", team.workspace);
    let (status, chef) = call_as(
        &chat,
        &team.admin,
        Method::POST,
        &base,
        Some(role_body("chef")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, baker) = call_as(
        &chat,
        &team.admin,
        Method::POST,
        &base,
        Some(role_body("baker")),
    )
    .await;
    assert_eq!(status, 201);

    let response = chat
        .app
        .authed(Method::POST, &base, team.admin.access_token())
        .json(&role_body("chef"))
        .send()
        .await
        .expect("request");
    expect_problem(response, 409, "role_name_taken").await;
    let response = chat
        .app
        .authed(
            Method::PUT,
            &format!("{base}/{}", id_of(&baker)),
            team.admin.access_token(),
        )
        .json(&role_body("chef"))
        .send()
        .await
        .expect("request");
    expect_problem(response, 409, "role_name_taken").await;

    assert_eq!(ai_role_rows(&chat).await, 2);
    let (_, roles) = workspace_roles(&chat, &team.member, team.workspace).await;
    let own: Vec<&Value> = roles
        .as_array()
        .map(|r| r.iter().filter(|r| !r["workspace_id"].is_null()).collect())
        .unwrap_or_default();
    assert_eq!(own.len(), 2);
    assert!(own.iter().any(|r| r["id"] == chef["id"]));
    assert!(own
        .iter()
        .any(|r| r["id"] == baker["id"] && r["name"] == "baker"));
}

#[tokio::test]
async fn an_outsider_gets_404_for_the_workspace_roles() {
    let chat = Chat::start().await;
    let team = team(&chat).await;
    let base = format!("/api/v1/workspaces/{}/ai-roles", team.workspace);
    let (status, created) = call_as(
        &chat,
        &team.admin,
        Method::POST,
        &base,
        Some(role_body("chef")),
    )
    .await;
    assert_eq!(status, 201);
    let role = format!("{base}/{}", id_of(&created));

    for (method, path, body) in [
        (Method::GET, base.clone(), None),
        (Method::POST, base.clone(), Some(role_body("spy"))),
        (Method::PUT, role.clone(), Some(role_body("spy"))),
        (Method::DELETE, role.clone(), None),
    ] {
        let (status, problem) = call_as(&chat, &team.outsider, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {problem}");
    }
    assert_eq!(ai_role_rows(&chat).await, 1);
}

// The audit trail.

#[tokio::test]
async fn every_mutation_writes_an_audit_row_with_its_actor_and_target() {
    let chat = Chat::start().await;
    let me = chat.user.user_id();
    let conversation = chat.conversation().await;
    let (status, _) = rename(&chat, conversation, "Coffee").await;
    assert_eq!(status, 200);
    let (status, _) = chat.say(conversation, COFFEE).await;
    assert_eq!(status, 201);
    let memory = id_of(&state_memory(&chat, "fact", "Owns a V60").await);
    let (status, edited) = call(
        &chat,
        Method::PATCH,
        &format!("/api/v1/memories/{memory}"),
        Some(json!({ "text": "Owns a V60 and a Chemex" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &chat,
        Method::DELETE,
        &format!("/api/v1/memories/{}", id_of(&edited)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let workspace = chat.app.create_workspace(chat.token(), "Kitchen").await;
    let (status, role) = call(
        &chat,
        Method::POST,
        &format!("/api/v1/workspaces/{workspace}/ai-roles"),
        Some(role_body("chef")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &chat,
        Method::DELETE,
        &format!("/api/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(status, 204);

    let conversation = conversation.to_string();
    let memory = memory.to_string();
    let expected = [
        ("conversation.create", "conversation", conversation.clone()),
        ("conversation.rename", "conversation", conversation.clone()),
        ("conversation.message", "conversation", conversation.clone()),
        ("conversation.answer", "conversation", conversation.clone()),
        ("conversation.delete", "conversation", conversation),
        ("memory.create", "memory", memory.clone()),
        ("memory.update", "memory", memory),
        ("memory.forget", "memory", id_of(&edited).to_string()),
        ("ai_role.create", "ai_role", id_of(&role).to_string()),
    ];
    for (action, target_type, target) in expected {
        let rows = chat.app.audit_rows(action).await;
        assert_eq!(rows.len(), 1, "{action}: {rows:?}");
        assert_eq!(rows[0].actor_id, Some(me), "{action}");
        assert_eq!(rows[0].target_type, target_type, "{action}");
        assert_eq!(
            rows[0].target_id.as_deref(),
            Some(target.as_str()),
            "{action}"
        );
        assert!(
            rows[0].request_id.is_some(),
            "{action} without a request id"
        );
    }
}

#[tokio::test]
async fn a_user_at_the_memory_cap_is_refused_a_new_memory_until_one_is_forgotten() {
    let chat = Chat::start().await;
    let user = chat.user.user_id();
    sqlx::query(
        "insert into memories (id, user_id, kind, text, valid_at, created_at, origin)
         select gen_random_uuid(), $1, 'fact', 'filler ' || n, now(), now(), 'user'
         from generate_series(1, $2) n",
    )
    .bind(user)
    .bind(potentia_ai::assistant::memories::MAX_MEMORIES_PER_USER - 1)
    .execute(&chat.app.db)
    .await
    .expect("fill memories");
    let last = state_memory(&chat, "fact", "The last one that fits").await;
    let (status, problem) = call(
        &chat,
        Method::POST,
        "/api/v1/memories",
        Some(json!({"text": "One too many"})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("too_many_memories")),
        "{problem}"
    );
    let (status, _) = call(
        &chat,
        Method::DELETE,
        &format!("/api/v1/memories/{}", id_of(&last)),
        None,
    )
    .await;
    assert_eq!(status, 204);
    state_memory(&chat, "fact", "Room again").await;
}

#[tokio::test]
async fn a_user_at_the_conversation_cap_is_refused_a_new_conversation() {
    let chat = Chat::start().await;
    sqlx::query(
        "insert into conversations (id, user_id, created_at, last_activity_at)
         select gen_random_uuid(), $1, now(), now() from generate_series(1, $2)",
    )
    .bind(chat.user.user_id())
    .bind(potentia_server::conversations::routes::MAX_CONVERSATIONS_PER_USER)
    .execute(&chat.app.db)
    .await
    .expect("fill conversations");
    let before = conversation_rows(&chat).await;
    let (status, problem) = call(
        &chat,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("too_many_conversations")),
        "{problem}"
    );
    assert_eq!(conversation_rows(&chat).await, before);
}

#[tokio::test]
async fn a_retry_of_an_answered_turn_costs_no_budget() {
    let chat = Chat::start_with(|s| s.ai.turns_per_minute = 1).await;
    let conversation = chat.conversation().await;
    let (status, first) = chat
        .say_only(conversation, "Pour-over coffee ratio?", "only-once")
        .await;
    assert_eq!(status, 201, "{first}");
    // The budget is spent; the same message again is answered from what is stored.
    let (status, again) = chat
        .say_only(conversation, "Pour-over coffee ratio?", "only-once")
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["assistant_message"], first["assistant_message"]);
    let (status, problem) = chat
        .say_only(conversation, "And the grind?", "a-new-one")
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (429, Some("rate_limited"))
    );
}
