//! What the specialist's prompt retrieves beyond the active topic: earlier messages from any of
//! the user's conversations (dated), blocks of canvases the user can read (never others),
//! today's agenda for a message about time or plans, the domain role, and the prompt budget.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use potentia_ai::assistant::conversations::{
    recent_in_context, recent_in_contexts, related_messages_with_plan, RelatedMessage,
    RelatedQuery, EXACT_MESSAGE_SCAN_MAX,
};
use potentia_ai::retrieval::semantic::Plan;
use potentia_tests::Session;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{Call, Chat};

/// Says `text` and asserts the turn was answered.
async fn say(chat: &Chat, conversation: Uuid, text: &str) -> Value {
    let (status, turn) = chat.say(conversation, text).await;
    assert_eq!(status, 201, "{turn}");
    turn
}

/// The system prompt of the last specialist call.
fn specialist_system(chat: &Chat) -> String {
    let call = chat.last_call(Call::Specialist).expect("a specialist call");
    call.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The lines of the prompt section headed `## {title}` (empty when absent).
fn section<'a>(prompt: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    prompt
        .lines()
        .skip_while(|l| !l.starts_with(&heading))
        .skip(1)
        .take_while(|l| !l.starts_with("## ") && !l.is_empty())
        .collect()
}

fn id_of(body: &Value) -> Uuid {
    body["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id in {body}"))
}

async fn post(chat: &Chat, token: &str, path: &str, body: Value) -> Value {
    let (status, out) = chat
        .app
        .call(Method::POST, path, Some(token), Some(body))
        .await;
    assert_eq!(status, 201, "POST {path}: {out}");
    out
}

async fn add_block(chat: &Chat, who: &Session, canvas: Uuid, text: &str) {
    post(
        chat,
        who.access_token(),
        &format!("/api/v1/canvases/{canvas}/blocks"),
        json!({"type": "paragraph", "text": text}),
    )
    .await;
}

/// Waits until `n` blocks have their vectors.
async fn wait_for_block_embeddings(chat: &Chat, n: i64) {
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let stored: i64 = sqlx::query_scalar("select count(*) from block_embeddings")
            .fetch_one(&chat.app.db)
            .await
            .expect("count block embeddings");
        if stored >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {n} blocks embedded"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_fact_stated_in_one_conversation_is_in_the_prompt_of_a_later_one_that_asks_about_it() {
    let chat = Chat::start().await;
    let earlier = chat.conversation().await;
    say(
        &chat,
        earlier,
        "My sister Marta lives in Porto and works as an architect",
    )
    .await;
    chat.advance(Duration::days(3));

    let later = chat.conversation().await;
    say(
        &chat,
        later,
        "What do you remember about my sister Marta in Porto?",
    )
    .await;
    let prompt = specialist_system(&chat);
    let related = section(&prompt, "Earlier messages that may be relevant");
    assert!(
        related.iter().any(|line| line.contains(
            "3 days ago (Wednesday 2 December 2026) the user wrote: My sister Marta lives in Porto and works as an architect"
        )),
        "{prompt}"
    );
}

#[tokio::test]
async fn an_unrelated_earlier_message_is_not_retrieved() {
    let chat = Chat::start().await;
    let earlier = chat.conversation().await;
    say(
        &chat,
        earlier,
        "My sister Marta lives in Porto and works as an architect",
    )
    .await;
    chat.advance(Duration::days(3));
    let later = chat.conversation().await;
    say(&chat, later, "Suggest a recipe using chickpeas").await;
    let prompt = specialist_system(&chat);
    assert!(!prompt.contains("Marta"), "{prompt}");
}

#[tokio::test]
async fn a_block_of_a_canvas_the_user_cannot_read_is_never_in_any_prompt() {
    let chat = Chat::start().await;
    let bob = chat
        .app
        .sign_up(&format!("bob-{}@example.com", Uuid::now_v7()))
        .await;
    let vault = chat
        .app
        .create_canvas(bob.access_token(), None, "Bob's vault")
        .await;
    add_block(
        &chat,
        &bob,
        vault,
        "The vault combination is hidden under the quokka statue: QX-7731-SECRET",
    )
    .await;
    let garden = chat
        .app
        .create_canvas(chat.token(), None, "Garden notes")
        .await;
    add_block(
        &chat,
        &chat.user,
        garden,
        "The quokka statue in the garden needs repainting before spring",
    )
    .await;
    wait_for_block_embeddings(&chat, 2).await;

    let conversation = chat.conversation().await;
    say(
        &chat,
        conversation,
        "Where is the combination hidden under the quokka statue?",
    )
    .await;

    let prompt = specialist_system(&chat);
    let blocks = section(&prompt, "From the user's canvases");
    assert!(
        blocks.iter().any(|line| line.contains(
            "[Garden notes] The quokka statue in the garden needs repainting before spring"
        )),
        "the user's own block is retrieved: {prompt}"
    );
    let chat_requests: Vec<String> = chat
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| r.body.to_string())
        .collect();
    assert!(!chat_requests.is_empty());
    for body in &chat_requests {
        assert!(
            !body.contains("QX-7731") && !body.contains("Bob's vault"),
            "another user's block reached the model: {body}"
        );
    }
}

#[tokio::test]
async fn todays_agenda_is_in_the_prompt_of_a_message_about_plans_only() {
    let chat = Chat::start().await;
    let calendar = id_of(
        &post(
            &chat,
            chat.token(),
            "/api/v1/calendars",
            json!({"name": "Home", "time_zone": "UTC"}),
        )
        .await,
    );
    let schedules = format!("/api/v1/calendars/{calendar}/schedules");
    // The clock reads Wednesday 2 December 2026, 09:00 UTC.
    post(
        &chat,
        chat.token(),
        &schedules,
        json!({"title": "Dentist appointment with Dr Quill",
               "start": "2026-12-02T14:00:00Z", "end": "2026-12-02T15:00:00Z",
               "time_zone": "UTC"}),
    )
    .await;
    post(
        &chat,
        chat.token(),
        &schedules,
        json!({"title": "Team offsite",
               "start": "2026-12-03T09:00:00Z", "end": "2026-12-03T17:00:00Z",
               "time_zone": "UTC"}),
    )
    .await;

    let conversation = chat.conversation().await;
    say(&chat, conversation, "what's on my calendar today?").await;
    let prompt = specialist_system(&chat);
    let agenda = section(&prompt, "Today's agenda");
    assert_eq!(
        agenda,
        ["- Wed 2 Dec 14:00–15:00: Dentist appointment with Dr Quill"],
        "{prompt}"
    );

    chat.advance(Duration::minutes(5));
    say(&chat, conversation, "Tell me a fun fact about octopuses").await;
    let prompt = specialist_system(&chat);
    assert!(!prompt.contains("Today's agenda"), "{prompt}");
    assert!(!prompt.contains("Dentist"), "{prompt}");
}

#[tokio::test]
async fn a_planning_message_takes_the_planner_role_and_a_greeting_takes_none() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let turn = say(
        &chat,
        conversation,
        "Help me plan my schedules, deadlines and meetings for the weeks ahead",
    )
    .await;
    assert_eq!(turn["domain_role"], "planner", "{turn}");
    assert_eq!(turn["assistant_message"]["domain_role"], "planner");
    assert!(
        specialist_system(&chat)
            .contains("## Your role for this message: planner\nAct as a planner."),
        "{}",
        specialist_system(&chat)
    );

    chat.advance(Duration::minutes(5));
    let turn = say(&chat, conversation, "hi").await;
    assert!(turn["domain_role"].is_null(), "{turn}");
    assert!(!specialist_system(&chat).contains("Your role for this message"));
}

#[tokio::test]
async fn a_workspace_role_is_chosen_only_in_conversations_of_its_workspace() {
    let chat = Chat::start().await;
    let workspace = chat.app.create_workspace(chat.token(), "Wine club").await;
    post(
        &chat,
        chat.token(),
        &format!("/api/v1/workspaces/{workspace}/ai-roles"),
        json!({
            "name": "sommelier",
            "description": "wine, grapes, vintages, cellars, tasting notes and pairing wine with food",
            "prompt": "Act as a sommelier. Recommend wines by name and say why they suit the dish.",
        }),
    )
    .await;
    let question = "Which wine grapes and vintages go with pairing food?";

    let in_workspace = id_of(
        &post(
            &chat,
            chat.token(),
            "/api/v1/conversations",
            json!({"workspace_id": workspace}),
        )
        .await,
    );
    let turn = say(&chat, in_workspace, question).await;
    assert_eq!(turn["domain_role"], "sommelier", "{turn}");
    assert!(specialist_system(&chat)
        .contains("## Your role for this message: sommelier\nAct as a sommelier."));

    let personal = chat.conversation().await;
    let turn = say(&chat, personal, question).await;
    assert_ne!(turn["domain_role"], "sommelier", "{turn}");
    assert!(!specialist_system(&chat).contains("sommelier"));
}

#[tokio::test]
async fn over_the_prompt_budget_the_oldest_messages_are_cut_and_the_newest_kept() {
    let chat = Chat::start_with(|s| s.ai.assistant.prompt_budget_tokens = 900).await;
    let conversation = chat.conversation().await;
    let filler = "The quick brown fox jumps over the lazy dog while the band plays on. ".repeat(5);
    for i in 0..10 {
        say(&chat, conversation, &format!("Entry {i:02}: {filler}")).await;
        chat.advance(Duration::minutes(1));
    }
    let turn = say(&chat, conversation, &format!("Entry 10: {filler}")).await;

    let report = &turn["prompt"];
    assert_eq!(report["budget_tokens"], 900, "{report}");
    assert!(
        report["cut_history"].as_u64().unwrap_or_default() > 0,
        "{report}"
    );
    assert!(
        report["estimated_tokens"].as_u64().unwrap_or(u64::MAX) <= 900,
        "{report}"
    );
    let call = chat.last_call(Call::Specialist).expect("a specialist call");
    let messages: Vec<&str> = call.body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .skip(1)
                .map(|m| m["content"].as_str().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    // The history the report counts (less an assistant message left leading), then the new one.
    assert!(
        messages.len() as u64 <= report["history"].as_u64().unwrap_or_default() + 1,
        "{report}"
    );
    assert!(messages.last().is_some_and(|m| m.starts_with("Entry 10")));
    assert!(
        messages.iter().any(|m| m.starts_with("Entry 09")),
        "the newest history is kept: {messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.starts_with("Entry 00")),
        "the oldest history is cut: {messages:?}"
    );
}

/// Inserts `count` messages with random vectors of model `bench-model` into a new context of
/// `conversation`, their first component raised by `lean` (towards the query `[1, 0, …]`);
/// returns the context. Made in the database: only the plan matters here.
async fn seed_vectors(chat: &Chat, conversation: Uuid, count: i64, lean: f64) -> Uuid {
    let db = &chat.app.db;
    let context: Uuid = sqlx::query_scalar(
        "insert into conversation_contexts (id, conversation_id, started_at, last_active_at)
         values (gen_random_uuid(), $1, now(), now()) returning id",
    )
    .bind(conversation)
    .fetch_one(db)
    .await
    .expect("insert a context");
    sqlx::query(
        "insert into conversation_messages
             (id, conversation_id, context_id, user_id, role, text, created_at)
         select gen_random_uuid(), $1, $2, $3, 'user', 'seeded message ' || i || ' of ' || $2::text,
                now() - make_interval(secs => i)
         from generate_series(1, $4) i",
    )
    .bind(conversation)
    .bind(context)
    .bind(chat.user.user_id())
    .bind(count)
    .execute(db)
    .await
    .expect("insert messages");
    sqlx::query(
        "insert into message_embeddings (message_id, user_id, model, content_hash, embedding)
         select m.id, m.user_id, 'bench-model', '\\x00',
                (select array_agg((random() - 0.5 + case when g = 1 then $2::float8 else 0 end)::real
                                  order by g)
                 from generate_series(1, 768) g where m.id is not null)::vector
         from conversation_messages m where m.context_id = $1",
    )
    .bind(context)
    .bind(lean)
    .execute(db)
    .await
    .expect("insert vectors");
    sqlx::query("analyze message_embeddings")
        .execute(db)
        .await
        .expect("analyze");
    context
}

#[tokio::test]
async fn past_the_exact_limit_related_messages_come_from_the_index_and_match_the_exact_ranking() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    seed_vectors(&chat, conversation, EXACT_MESSAGE_SCAN_MAX + 500, 0.0).await;
    // Ten messages clearly nearest to the query: the exact answer.
    let nearest = seed_vectors(&chat, conversation, 10, 10.0).await;
    let query_vector = format!("[1{}]", ",0".repeat(767));
    let query = RelatedQuery {
        user: chat.user.user_id(),
        embedding: &query_vector,
        model: "bench-model",
        exclude_context: None,
        min_similarity: -1.0,
        limit: 10,
    };
    let db = &chat.app.db;
    let (from_index, chosen) = related_messages_with_plan(db, &query, None)
        .await
        .expect("related messages");
    assert_eq!(
        chosen,
        Plan::Hnsw,
        "more than EXACT_MESSAGE_SCAN_MAX vectors"
    );
    let (exact, _) = related_messages_with_plan(db, &query, Some(Plan::Exact))
        .await
        .expect("related messages, exact");
    let texts = |found: &[RelatedMessage]| found.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&from_index), texts(&exact), "the exact ranking");
    let suffix = format!(" of {nearest}");
    assert!(exact.iter().all(|m| m.text.ends_with(&suffix)));
}

#[tokio::test]
async fn the_index_plan_leaves_out_the_active_context_and_still_fills_the_limit() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let older = seed_vectors(&chat, conversation, EXACT_MESSAGE_SCAN_MAX, 0.0).await;
    // The active topic's 40 messages are the nearest of all: the index must read past them.
    let active = seed_vectors(&chat, conversation, 40, 10.0).await;
    let query_vector = format!("[1{}]", ",0".repeat(767));
    let (related, plan) = related_messages_with_plan(
        &chat.app.db,
        &RelatedQuery {
            user: chat.user.user_id(),
            embedding: &query_vector,
            model: "bench-model",
            exclude_context: Some(active),
            min_similarity: -1.0,
            limit: 10,
        },
        None,
    )
    .await
    .expect("related messages");
    assert_eq!(plan, Plan::Hnsw);
    assert_eq!(related.len(), 10);
    let suffix = format!(" of {older}");
    assert!(
        related.iter().all(|m| m.text.ends_with(&suffix)),
        "none from the active context"
    );
}

#[tokio::test]
async fn the_judges_one_read_of_several_topics_gives_each_its_last_messages_oldest_first() {
    let chat = Chat::start().await;
    let first = chat.conversation().await;
    let second = chat.conversation().await;
    let mut contexts = Vec::new();
    for (conversation, texts) in [
        (
            first,
            [
                "Plan the garden beds",
                "Tomatoes by the fence",
                "Basil near the door",
            ],
        ),
        (
            second,
            [
                "Book the dentist",
                "Tuesday morning works",
                "Remind me the day before",
            ],
        ),
    ] {
        let mut context = None;
        for text in texts {
            let turn = say(&chat, conversation, text).await;
            context = turn["user_message"]["context_id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok());
            chat.advance(Duration::minutes(2));
        }
        contexts.push(context.expect("a context id"));
    }
    let unknown = Uuid::now_v7();
    let db = &chat.app.db;
    let mut all = contexts.clone();
    all.push(unknown);

    let by_context = recent_in_contexts(db, &all, 4).await.expect("one read");

    assert!(
        !by_context.contains_key(&unknown),
        "a topic without messages has none"
    );
    for context in contexts {
        let alone = recent_in_context(db, context, 4).await.expect("one topic");
        let ids = |messages: &[potentia_ai::assistant::conversations::Message]| {
            messages.iter().map(|m| m.id).collect::<Vec<_>>()
        };
        let stored: i64 =
            sqlx::query_scalar("select count(*) from conversation_messages where context_id = $1")
                .bind(context)
                .fetch_one(db)
                .await
                .expect("count the topic's messages");
        assert_eq!(alone.len() as i64, stored.min(4), "the last four at most");
        assert_eq!(ids(&by_context[&context]), ids(&alone));
        assert!(alone.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    }
}
