//! Turns over Server-Sent Events and their retries: the order of the events, a client that goes
//! away mid-answer, the same `client_message_id` sent twice (stored, still streaming, over
//! SSE), and a specialist that fails and recovers.

use std::time::Duration;

use potentia_tests::expect_problem;
use potentia_tests::fake_ai::Reply;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{Call, Chat};

/// The longest any single event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads `event:`/`data:` frames off a streamed response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "a streamed turn answers 200");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "content type {content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event as `(name, data)`; `None` when the stream has ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = Vec::new();
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                // A comment frame (the keep-alive) has neither.
                if name.is_none() && data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some((name.unwrap_or_else(|| "message".into()), value));
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.response.chunk())
                .await
                .expect("the next SSE bytes in time")
                .expect("the SSE stream");
            match chunk {
                Some(bytes) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                None => return None,
            }
        }
    }

    /// Every remaining event, until the stream ends.
    async fn rest(&mut self) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

fn id_of(message: &Value) -> Uuid {
    message["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a message id in {message}"))
}

fn user_messages_with(messages: &[Value], client_id: &str) -> usize {
    messages
        .iter()
        .filter(|m| m["role"] == "user" && m["client_message_id"] == client_id)
        .count()
}

#[tokio::test]
async fn a_streamed_first_exchange_sends_context_then_deltas_then_the_stored_message_then_the_title(
) {
    let chat = Chat::start().await;
    chat.script().answer = "A medium-fine grind suits a V60 pour-over.".into();
    let conversation = chat.conversation().await;

    let response = chat
        .post_turn(
            conversation,
            "How fine should I grind for a V60?",
            "first",
            true,
        )
        .await;
    let events = SseReader::new(response).rest().await;

    let order = names(&events);
    let deltas = order.iter().filter(|n| **n == "delta").count();
    assert!(deltas >= 1, "no delta in {order:?}");
    let mut expected = vec!["context"];
    expected.extend(std::iter::repeat_n("delta", deltas));
    expected.extend(["message", "title"]);
    assert_eq!(
        order, expected,
        "the events, in order, and nothing after the title"
    );

    let streamed: String = events
        .iter()
        .filter(|(name, _)| name == "delta")
        .map(|(_, data)| data["text"].as_str().unwrap_or_default())
        .collect();
    let (_, context) = &events[0];
    let (_, message) = &events[deltas + 1];
    assert_eq!(message["assistant_message"]["text"], streamed.as_str());
    assert_eq!(streamed, "A medium-fine grind suits a V60 pour-over.");
    assert_eq!(message["assistant_message"]["status"], "complete");
    assert_eq!(message["replayed"], false);
    assert_eq!(
        id_of(&context["user_message"]),
        id_of(&message["user_message"]),
        "the context names the stored user message"
    );
    assert_eq!(events[deltas + 2].1["title"], "Pour-over coffee");

    let stored = chat.messages(conversation).await;
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert_eq!(id_of(&stored[1]), id_of(&message["assistant_message"]));
    assert_eq!(stored[1]["text"], streamed.as_str());
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_leaves_an_interrupted_answer_holding_what_was_produced(
) {
    let chat = Chat::start().await;
    chat.script().specialist_reply = Some(Reply::Endless {
        interval: Duration::from_millis(20),
    });
    let conversation = chat.conversation().await;

    let response = chat
        .post_turn(
            conversation,
            "Tell me everything about coffee",
            "endless",
            true,
        )
        .await;
    let mut reader = SseReader::new(response);
    let mut received = String::new();
    let mut deltas = 0;
    while deltas < 2 {
        let (name, data) = reader.next().await.expect("the stream goes on");
        if name == "delta" {
            deltas += 1;
            received.push_str(data["text"].as_str().unwrap_or_default());
        }
    }
    drop(reader);

    let messages = chat
        .messages_when(conversation, "the interrupted answer", |m| {
            m.iter().any(|m| m["role"] == "assistant")
        })
        .await;
    let answer = messages
        .iter()
        .find(|m| m["role"] == "assistant")
        .expect("an answer");
    assert_eq!(answer["status"], "interrupted");
    let text = answer["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(&received),
        "the stored text {text:?} holds what the client saw ({received:?})"
    );
    for _ in 0..500 {
        if chat.fake.disconnects() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        chat.fake.disconnects(),
        1,
        "the model stream was dropped, which cancels the call"
    );
}

#[tokio::test]
async fn a_retry_with_the_same_client_message_id_replays_the_stored_answer_without_calling_the_model(
) {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    // A first exchange, so the second message is judged.
    chat.say(conversation, "I am learning pour-over coffee")
        .await;
    let judged = chat.calls(Call::Judge).len();
    let answered = chat.calls(Call::Specialist).len();

    let (status, first) = chat
        .say_only(conversation, "Which kettle should I buy?", "kettle")
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["replayed"], false);
    let (status, again) = chat
        .say_only(conversation, "Which kettle should I buy?", "kettle")
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(
        id_of(&again["assistant_message"]),
        id_of(&first["assistant_message"])
    );
    assert_eq!(id_of(&again["user_message"]), id_of(&first["user_message"]));
    assert_eq!(
        again["assistant_message"]["text"],
        first["assistant_message"]["text"]
    );

    assert_eq!(chat.calls(Call::Judge).len() - judged, 1, "one judge call");
    assert_eq!(
        chat.calls(Call::Specialist).len() - answered,
        1,
        "one specialist call"
    );
    let messages = chat.messages(conversation).await;
    assert_eq!(user_messages_with(&messages, "kettle"), 1, "{messages:#?}");
    assert_eq!(messages.len(), 4, "two exchanges: {messages:#?}");
}

#[tokio::test]
async fn a_retry_while_the_first_is_still_answering_waits_for_it_and_gets_the_same_answer() {
    let chat = Chat::start().await;
    chat.script().specialist_reply = Some(Reply::Delayed(
        Duration::from_millis(1500),
        Box::new(Reply::Text("Slow but sure.".into())),
    ));
    let conversation = chat.conversation().await;

    let retry = async {
        // The first request has stored the question and is waiting for the model.
        let messages = chat
            .messages_when(conversation, "the stored question", |m| !m.is_empty())
            .await;
        assert!(
            messages.iter().all(|m| m["role"] == "user"),
            "not answered yet: {messages:#?}"
        );
        chat.say_only(conversation, "Are you there?", "slow").await
    };
    let ((first_status, first), (retry_status, retried)) =
        tokio::join!(chat.say_only(conversation, "Are you there?", "slow"), retry);

    assert_eq!(first_status, 201, "{first}");
    assert_eq!(retry_status, 200, "{retried}");
    assert_eq!(retried["replayed"], true);
    assert_eq!(
        id_of(&retried["assistant_message"]),
        id_of(&first["assistant_message"])
    );
    assert_eq!(retried["assistant_message"]["text"], "Slow but sure.");
    assert_eq!(chat.calls(Call::Specialist).len(), 1);
    let messages = chat.messages(conversation).await;
    assert_eq!(user_messages_with(&messages, "slow"), 1, "{messages:#?}");
}

#[tokio::test]
async fn a_retry_over_sse_of_a_stored_turn_replays_context_then_message() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    let (status, first) = chat
        .say_only(conversation, "Remind me to descale the kettle", "descale")
        .await;
    assert_eq!(status, 201, "{first}");

    let response = chat
        .post_turn(
            conversation,
            "Remind me to descale the kettle",
            "descale",
            true,
        )
        .await;
    let events = SseReader::new(response).rest().await;

    assert_eq!(names(&events), ["context", "message"]);
    let (_, context) = &events[0];
    let (_, message) = &events[1];
    assert_eq!(
        id_of(&context["user_message"]),
        id_of(&first["user_message"])
    );
    assert_eq!(message["replayed"], true);
    assert_eq!(
        id_of(&message["assistant_message"]),
        id_of(&first["assistant_message"])
    );
    assert_eq!(chat.calls(Call::Specialist).len(), 1);
}

#[tokio::test]
async fn a_failing_specialist_answers_503_keeps_the_message_and_a_retry_after_recovery_answers_it()
{
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    chat.say(conversation, "I am learning pour-over coffee")
        .await;
    chat.script().specialist_reply = Some(Reply::Status {
        status: 500,
        retry_after: None,
        message: "the specialist is down".into(),
    });
    let judged = chat.calls(Call::Judge).len();

    let response = chat
        .post_turn(
            conversation,
            "What water temperature?",
            "temperature",
            false,
        )
        .await;
    expect_problem(response, 503, "ai_unavailable").await;
    let messages = chat.messages(conversation).await;
    assert_eq!(
        user_messages_with(&messages, "temperature"),
        1,
        "the question is kept: {messages:#?}"
    );
    assert_eq!(messages.len(), 3, "no answer stored: {messages:#?}");
    let kept = id_of(&messages[2]);

    chat.script().specialist_reply = None;
    chat.script().answer = "About 94 °C.".into();
    let (status, retried) = chat
        .say_only(conversation, "What water temperature?", "temperature")
        .await;
    assert_eq!(status, 201, "{retried}");
    assert_eq!(id_of(&retried["user_message"]), kept);
    assert_eq!(retried["assistant_message"]["text"], "About 94 °C.");
    assert_eq!(
        chat.calls(Call::Judge).len() - judged,
        1,
        "the judge ran for the first attempt only"
    );
    let messages = chat.messages(conversation).await;
    assert_eq!(
        user_messages_with(&messages, "temperature"),
        1,
        "{messages:#?}"
    );
    assert_eq!(messages.len(), 4, "{messages:#?}");
}
