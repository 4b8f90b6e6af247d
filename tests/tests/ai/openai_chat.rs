//! `OpenAiChat` against the fake OpenAI-compatible server.

use potentia_ai::chat::{ChatMessage, ChatRequest, FinishReason, ResponseSchema, Role, Usage};
use potentia_ai::ChatModel;
use potentia_tests::fake_ai::{FakeOpenAi, Reply};
use serde_json::json;

use crate::{ask, collect, fast, openai_chat, weather_tool, OPENAI_KEY};

#[tokio::test]
async fn complete_returns_the_text_usage_and_finish_reason() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("Paris is the capital.");
    let (chat, _) = openai_chat(&fake, fast());

    let answer = chat
        .complete(&ask("What is the capital of France?"))
        .await
        .unwrap();

    assert_eq!(answer.text, "Paris is the capital.");
    assert_eq!(answer.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        answer.usage,
        Some(Usage {
            input_tokens: 6,
            output_tokens: 4
        })
    );
    assert_eq!(answer.model, "gpt-test");
    assert!(answer.tool_calls.is_empty());
}

#[tokio::test]
async fn complete_sends_the_system_prompt_first_and_the_sampling_limits() {
    let fake = FakeOpenAi::start().await;
    let (chat, _) = openai_chat(&fake, fast());
    let request = ChatRequest {
        system: Some("Be brief.".into()),
        messages: vec![
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello!"),
            ChatMessage::user("How are you?"),
        ],
        temperature: Some(0.25),
        max_tokens: Some(64),
        ..ChatRequest::default()
    };

    chat.complete(&request).await.unwrap();

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-test");
    assert_eq!(sent.body["stream"], false);
    assert_eq!(sent.body["temperature"], 0.25);
    assert_eq!(sent.body["max_tokens"], 64);
    assert_eq!(
        sent.body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ])
    );
    assert!(sent.body.get("tools").is_none());
    assert!(sent.body.get("response_format").is_none());
}

#[tokio::test]
async fn structured_output_is_requested_as_a_strict_json_schema() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply(r#"{"title":"Groceries"}"#);
    let (chat, _) = openai_chat(&fake, fast());
    let schema = json!({
        "type": "object",
        "properties": { "title": { "type": "string" } },
        "required": ["title"],
        "additionalProperties": false,
    });
    let request = ChatRequest {
        response_schema: Some(ResponseSchema {
            name: "canvas_title".into(),
            schema: schema.clone(),
        }),
        ..ask("Name this list")
    };

    let answer = chat.complete(&request).await.unwrap();

    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.text).unwrap(),
        json!({"title": "Groceries"})
    );
    assert_eq!(
        fake.last_request().unwrap().body["response_format"],
        json!({
            "type": "json_schema",
            "json_schema": { "name": "canvas_title", "schema": schema, "strict": true },
        })
    );
}

#[tokio::test]
async fn a_tool_call_round_trips_through_the_conversation() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::ToolCall {
        name: "get_weather".into(),
        arguments: json!({"city": "Lyon"}),
    });
    let (chat, _) = openai_chat(&fake, fast());
    let mut request = ChatRequest {
        tools: vec![weather_tool()],
        ..ask("Weather in Lyon?")
    };

    let first = chat.complete(&request).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    let call = first.tool_calls[0].clone();
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, json!({"city": "Lyon"}));
    assert_eq!(
        fake.last_request().unwrap().body["tools"],
        json!([{ "type": "function", "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": weather_tool().parameters,
        }}])
    );

    request.messages.push(ChatMessage {
        role: Role::Assistant,
        tool_calls: vec![call.clone()],
        ..ChatMessage::assistant("")
    });
    request
        .messages
        .push(ChatMessage::tool_result(&call, r#"{"celsius":21}"#));
    fake.set_reply("It is 21 °C in Lyon.");
    let second = chat.complete(&request).await.unwrap();

    assert_eq!(second.text, "It is 21 °C in Lyon.");
    let messages = fake.last_request().unwrap().body["messages"].clone();
    assert_eq!(
        messages[1],
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{ "id": call.id, "type": "function",
                             "function": { "name": "get_weather", "arguments": "{\"city\":\"Lyon\"}" } }],
        })
    );
    assert_eq!(
        messages[2],
        json!({ "role": "tool", "tool_call_id": call.id, "content": "{\"celsius\":21}" })
    );
}

#[tokio::test]
async fn a_stream_yields_the_deltas_then_done_with_the_usage_chunk() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("One two three four.");
    let (chat, _) = openai_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Count")).await.unwrap()).await;

    assert_eq!(got.text, "One two three four.");
    assert_eq!(got.deltas, 4);
    assert_eq!(
        got.done,
        Some((
            Some(Usage {
                input_tokens: 1,
                output_tokens: 4
            }),
            Some(FinishReason::Stop)
        ))
    );
    assert!(got.error.is_none());
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_stream_without_the_done_marker_ends_normally() {
    let fake = FakeOpenAi::start().await;
    fake.set_done_marker(false);
    let (chat, _) = openai_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(got.text, potentia_tests::fake_ai::DEFAULT_REPLY);
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.done.unwrap().1, Some(FinishReason::Stop));
}

#[tokio::test]
async fn usage_null_is_read_as_no_usage() {
    let fake = FakeOpenAi::start().await;
    fake.set_usage_null(true);
    let (chat, _) = openai_chat(&fake, fast());

    let streamed = collect(chat.stream(&ask("Hi")).await.unwrap()).await;
    let completed = chat.complete(&ask("Hi")).await.unwrap();

    assert_eq!(streamed.done, Some((None, Some(FinishReason::Stop))));
    assert_eq!(completed.usage, None);
    assert_eq!(completed.text, potentia_tests::fake_ai::DEFAULT_REPLY);
}

#[tokio::test]
async fn a_missing_finish_reason_is_read_as_none() {
    let fake = FakeOpenAi::start().await;
    fake.set_finish_reason(false);
    let (chat, _) = openai_chat(&fake, fast());

    let streamed = collect(chat.stream(&ask("Hi")).await.unwrap()).await;
    let completed = chat.complete(&ask("Hi")).await.unwrap();

    assert!(streamed.error.is_none(), "{:?}", streamed.error);
    assert_eq!(streamed.done.unwrap().1, None);
    assert_eq!(completed.finish_reason, None);
}

#[tokio::test]
async fn streamed_tool_call_fragments_are_assembled_into_one_call() {
    let fake = FakeOpenAi::start().await;
    let arguments = json!({"city": "Saint-Étienne", "unit": "celsius"});
    fake.script(Reply::ToolCall {
        name: "get_weather".into(),
        arguments: arguments.clone(),
    });
    let (chat, _) = openai_chat(&fake, fast());
    let request = ChatRequest {
        tools: vec![weather_tool()],
        ..ask("Weather?")
    };

    let got = collect(chat.stream(&request).await.unwrap()).await;

    assert_eq!(got.tool_calls.len(), 1);
    assert_eq!(got.tool_calls[0].id, "call_fake_1");
    assert_eq!(got.tool_calls[0].name, "get_weather");
    assert_eq!(got.tool_calls[0].arguments, arguments);
    assert_eq!(got.done.unwrap().1, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn frames_split_into_three_byte_crlf_pieces_decode_the_same() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("Zoë’s café — naïve 😀 text.");
    fake.set_crlf(true);
    fake.set_sse_chunk_size(Some(3));
    let (chat, _) = openai_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(got.text, "Zoë’s café — naïve 😀 text.");
    assert!(got.done.is_some());
}

#[tokio::test]
async fn the_key_is_sent_as_a_bearer_token() {
    let fake = FakeOpenAi::start().await;
    let (chat, _) = openai_chat(&fake, fast());

    chat.complete(&ask("Hi")).await.unwrap();

    let sent = fake.last_request().unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert!(!sent.path.contains(OPENAI_KEY));
}

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    let fake = FakeOpenAi::start().await;
    let resilience = crate::guard(potentia_ai::settings::ProviderKind::OpenAi, fast());
    let chat = potentia_ai::providers::OpenAiChat::new(
        crate::endpoint(fake.base_url(), None, "llama3.2"),
        resilience,
    )
    .unwrap();

    chat.complete(&ask("Hi")).await.unwrap();

    assert_eq!(fake.last_request().unwrap().header("authorization"), None);
}
