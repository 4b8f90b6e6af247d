//! The specialist's tools, run as the user through the REST handlers: what each tool does,
//! refusals the model is told about (a canvas the user may only view, one they cannot read),
//! and the bound on tool rounds.

use potentia_tests::Session;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{Call, Chat};

/// Scripts the specialist to make these tool calls, one per round, then answer.
fn script_tools(chat: &Chat, calls: Vec<(&str, Value)>) {
    chat.script().tool_calls = calls
        .into_iter()
        .map(|(name, arguments)| (name.to_owned(), arguments))
        .collect();
}

/// Sends a message expecting a fresh answer (201); returns the TurnOut.
async fn turn(chat: &Chat, text: &str) -> Value {
    let conversation = chat.conversation().await;
    let (status, body) = chat.say(conversation, text).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The one tool call of a turn.
fn only_call(turn: &Value) -> &Value {
    let calls = turn["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 1, "{calls:#?}");
    &calls[0]
}

async fn blocks(chat: &Chat, token: &str, canvas: Uuid) -> Vec<Value> {
    let (status, body) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{canvas}/blocks"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn import_markdown(chat: &Chat, token: &str, canvas: Uuid, markdown: &str) {
    let response = chat
        .app
        .authed(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/markdown"),
            token,
        )
        .header(reqwest::header::CONTENT_TYPE, "text/markdown")
        .body(markdown.to_owned())
        .send()
        .await
        .expect("import markdown");
    assert!(response.status().is_success(), "{}", response.status());
}

/// Another user's canvas, shared with the chat user as a canvas `role` (none: not shared).
async fn someone_elses_canvas(chat: &Chat, role: Option<&str>) -> (Session, Uuid) {
    let owner = chat
        .app
        .sign_up(&format!("owner-{}@example.com", Uuid::now_v7()))
        .await;
    let canvas = chat
        .app
        .create_canvas(owner.access_token(), None, "Their beans")
        .await;
    import_markdown(chat, owner.access_token(), canvas, "Their own notes\n").await;
    if let Some(role) = role {
        let (status, invited) = chat
            .app
            .call(
                Method::POST,
                &format!("/api/v1/canvases/{canvas}/invitations"),
                Some(owner.access_token()),
                Some(json!({ "user_id": chat.user.user_id(), "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{invited}");
        let id = invited["invitation"]["id"].as_str().expect("invitation id");
        let (status, body) = chat
            .app
            .call(
                Method::POST,
                &format!("/api/v1/invitations/{id}/accept"),
                Some(chat.token()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (owner, canvas)
}

async fn personal_calendar(chat: &Chat) -> Uuid {
    let (status, body) = chat
        .app
        .call(
            Method::POST,
            "/api/v1/calendars",
            Some(chat.token()),
            Some(json!({ "name": "Home", "time_zone": "UTC" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("calendar id")
}

async fn instances(chat: &Chat, from: &str, to: &str) -> Vec<Value> {
    let (status, body) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/instances?time_min={from}&time_max={to}"),
            Some(chat.token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// The `tool` messages of the specialist requests the fake received, their contents parsed.
fn tool_messages_sent(chat: &Chat) -> Vec<Value> {
    chat.calls(Call::Specialist)
        .iter()
        .flat_map(|r| r.body["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            serde_json::from_str(m["content"].as_str().unwrap_or_default()).unwrap_or(Value::Null)
        })
        .collect()
}

#[tokio::test]
async fn add_blocks_appends_markdown_to_the_users_own_canvas_and_the_call_is_stored_on_the_answer()
{
    let chat = Chat::start().await;
    let canvas = chat
        .app
        .create_canvas(chat.token(), None, "Coffee notes")
        .await;
    script_tools(
        &chat,
        vec![(
            "add_blocks",
            json!({"canvas_id": canvas, "markdown": "## Brew ratio\n\n- [ ] weigh 15 g of beans\n"}),
        )],
    );

    let turn = turn(&chat, "Add a brew ratio section to my coffee notes").await;

    let call = only_call(&turn);
    assert_eq!(call["name"], "add_blocks");
    assert_eq!(call["ok"], true, "{call}");
    assert_eq!(call["arguments"]["canvas_id"], canvas.to_string());
    let written: Vec<&str> = call["result"]["block_ids"]
        .as_array()
        .expect("block_ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(written.len(), 2, "{call}");

    let found = blocks(&chat, chat.token(), canvas).await;
    let heading = found
        .iter()
        .find(|b| b["type"] == "heading")
        .expect("a heading block");
    assert_eq!(heading["text"], "Brew ratio");
    let todo = found.iter().find(|b| b["type"] == "todo").expect("a todo");
    assert_eq!(todo["text"], "weigh 15 g of beans");
    assert_eq!(todo["props"]["checked"], false);
    for block in [heading, todo] {
        assert!(written.contains(&block["id"].as_str().unwrap_or_default()));
    }

    let messages = chat
        .messages(
            turn["assistant_message"]["conversation_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("conversation id"),
        )
        .await;
    let stored = &messages[1]["tool_calls"];
    assert_eq!(
        stored, &turn["tool_calls"],
        "the answer stores the call and its result"
    );
    assert_eq!(
        turn["assistant_message"]["text"],
        chat.script().answer.as_str()
    );
}

#[tokio::test]
async fn a_tool_on_a_canvas_the_user_may_only_view_is_refused_and_the_model_is_told_why() {
    let chat = Chat::start().await;
    let (owner, canvas) = someone_elses_canvas(&chat, Some("viewer")).await;
    let before = blocks(&chat, owner.access_token(), canvas).await;
    assert!(!before.is_empty());
    script_tools(
        &chat,
        vec![(
            "add_blocks",
            json!({"canvas_id": canvas, "markdown": "- [ ] steal their beans"}),
        )],
    );

    let turn = turn(&chat, "Add a todo to their canvas").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], false, "{call}");
    assert_eq!(call["result"]["error"], "insufficient_role", "{call}");
    assert!(
        call["result"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("write access")),
        "{call}"
    );
    assert_eq!(turn["assistant_message"]["status"], "complete");

    let told = tool_messages_sent(&chat);
    assert_eq!(
        told,
        [call["result"].clone()],
        "the next specialist request holds the refusal"
    );
    assert_eq!(
        blocks(&chat, owner.access_token(), canvas).await,
        before,
        "nothing is written to the canvas"
    );
}

#[tokio::test]
async fn a_tool_on_a_canvas_the_user_cannot_read_is_refused_as_not_found() {
    let chat = Chat::start().await;
    let (owner, canvas) = someone_elses_canvas(&chat, None).await;
    let before = blocks(&chat, owner.access_token(), canvas).await;
    script_tools(&chat, vec![("read_canvas", json!({"canvas_id": canvas}))]);

    let turn = turn(&chat, "What is on their canvas?").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], false, "{call}");
    assert_eq!(call["result"]["error"], "not_found", "{call}");
    assert!(
        !call["result"].to_string().contains("Their own notes"),
        "nothing of the canvas leaks: {call}"
    );
    assert_eq!(tool_messages_sent(&chat), [call["result"].clone()]);
    assert_eq!(blocks(&chat, owner.access_token(), canvas).await, before);
}

#[tokio::test]
async fn create_todo_adds_a_todo_block_with_its_due_date() {
    let chat = Chat::start().await;
    let canvas = chat.app.create_canvas(chat.token(), None, "Errands").await;
    script_tools(
        &chat,
        vec![(
            "create_todo",
            json!({"canvas_id": canvas, "text": "Buy a burr grinder", "due_at": "2026-12-05"}),
        )],
    );

    let turn = turn(&chat, "Remind me to buy a burr grinder by Saturday").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], true, "{call}");
    let todo = blocks(&chat, chat.token(), canvas)
        .await
        .into_iter()
        .find(|b| b["type"] == "todo")
        .expect("a todo block");
    assert_eq!(todo["text"], "Buy a burr grinder");
    assert_eq!(todo["props"]["due_at"], "2026-12-05");
    assert_eq!(todo["props"]["checked"], false);
    assert_eq!(call["result"]["block"]["id"], todo["id"]);
}

#[tokio::test]
async fn read_canvas_gives_the_model_the_markdown_of_a_readable_canvas() {
    let chat = Chat::start().await;
    let canvas = chat.app.create_canvas(chat.token(), None, "Beans").await;
    import_markdown(
        &chat,
        chat.token(),
        canvas,
        "# Kenyan AA\n\nBright and fruity, brew at 93 °C.\n",
    )
    .await;
    script_tools(&chat, vec![("read_canvas", json!({"canvas_id": canvas}))]);

    let turn = turn(&chat, "What do my bean notes say?").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], true, "{call}");
    let markdown = call["result"]["markdown"].as_str().expect("markdown");
    assert!(markdown.contains("# Kenyan AA"), "{markdown}");
    assert!(
        markdown.contains("Bright and fruity, brew at 93 °C."),
        "{markdown}"
    );
    assert_eq!(call["result"]["truncated"], false);
    assert_eq!(tool_messages_sent(&chat), [call["result"].clone()]);
}

#[tokio::test]
async fn search_finds_a_block_of_the_users_canvases() {
    let chat = Chat::start().await;
    let canvas = chat.app.create_canvas(chat.token(), None, "Grinders").await;
    let (status, block) = chat
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/blocks"),
            Some(chat.token()),
            Some(json!({"type": "paragraph", "text": "The Comandante needs 22 clicks for filter"})),
        )
        .await;
    assert_eq!(status, 201, "{block}");
    chat.settle().await;
    script_tools(
        &chat,
        vec![("search", json!({"query": "Comandante clicks"}))],
    );

    let turn = turn(&chat, "How many clicks on my Comandante?").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], true, "{call}");
    let hits = call["result"]["hits"].as_array().expect("hits");
    let hit = hits
        .iter()
        .find(|h| h["block_id"] == block["id"])
        .unwrap_or_else(|| panic!("the block among {hits:#?}"));
    assert_eq!(hit["canvas_id"], canvas.to_string());
    assert_eq!(hit["text"], "The Comandante needs 22 clicks for filter");
}

#[tokio::test]
async fn agenda_lists_a_schedule_created_through_the_calendar_api() {
    let chat = Chat::start().await;
    let calendar = personal_calendar(&chat).await;
    let (status, body) = chat
        .app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{calendar}/schedules"),
            Some(chat.token()),
            Some(json!({
                "title": "Cupping session",
                "start": "2026-12-03T10:00:00Z", "end": "2026-12-03T11:00:00Z",
                "time_zone": "UTC"
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    script_tools(
        &chat,
        vec![(
            "agenda",
            json!({"from": "2026-12-03T00:00:00Z", "to": "2026-12-04T00:00:00Z"}),
        )],
    );

    let turn = turn(&chat, "What is on tomorrow?").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], true, "{call}");
    let items = call["result"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["title"], "Cupping session");
    assert!(
        items[0]["when"]
            .as_str()
            .is_some_and(|w| w.contains("10:00") && w.contains("11:00")),
        "{items:#?}"
    );
}

#[tokio::test]
async fn create_schedule_creates_an_event_visible_in_the_instances_view() {
    let chat = Chat::start().await;
    personal_calendar(&chat).await;
    script_tools(
        &chat,
        vec![(
            "create_schedule",
            json!({"title": "Barista class", "start_at": "2026-12-04T17:00:00Z", "end_at": "2026-12-04T19:00:00Z"}),
        )],
    );

    let turn = turn(&chat, "Book my barista class on Friday at five").await;

    let call = only_call(&turn);
    assert_eq!(call["ok"], true, "{call}");
    let seen = instances(&chat, "2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z").await;
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["title"], "Barista class");
    assert_eq!(
        seen[0]["start"]
            .as_str()
            .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok()),
        "2026-12-04T17:00:00Z".parse().ok()
    );
    assert_eq!(call["result"]["schedule"]["id"], seen[0]["schedule_id"]);
}

#[tokio::test]
async fn tool_rounds_stop_at_max_tool_rounds_and_the_turn_still_answers() {
    let chat = Chat::start_with(|s| s.ai.assistant.max_tool_rounds = 2).await;
    script_tools(
        &chat,
        (0..10)
            .map(|i| ("search", json!({"query": format!("coffee {i}")})))
            .collect(),
    );

    let turn = turn(&chat, "Search everything about coffee").await;

    let calls = turn["tool_calls"].as_array().expect("tool_calls");
    let queries: Vec<&str> = calls
        .iter()
        .map(|c| c["arguments"]["query"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(queries, ["coffee 0", "coffee 1"]);
    assert_eq!(
        turn["assistant_message"]["text"],
        chat.script().answer.as_str()
    );
    let requests = chat.calls(Call::Specialist);
    assert_eq!(requests.len(), 3, "two tool rounds, then the answer");
    assert!(
        requests[2].body["tools"].is_null(),
        "the last round offers no tools"
    );
}
