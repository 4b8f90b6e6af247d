//! `GeminiChat` against the fake Gemini API.

use potentia_ai::chat::{ChatMessage, ChatRequest, FinishReason, ResponseSchema, Role, Usage};
use potentia_ai::{AiError, ChatModel};
use potentia_tests::fake_ai::{FakeGemini, Reply, FAKE_THOUGHT, FAKE_THOUGHT_SIGNATURE};
use serde_json::json;

use crate::{ask, collect, fast, gemini_chat, weather_tool, GEMINI_KEY};

#[tokio::test]
async fn complete_returns_the_text_usage_and_model_version() {
    let fake = FakeGemini::start().await;
    fake.set_reply("Paris is the capital.");
    let (chat, _) = gemini_chat(&fake, fast());

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
    assert_eq!(answer.model, "gemini-test");
    assert_eq!(
        fake.last_request().unwrap().path,
        "/v1beta/models/gemini-test:generateContent"
    );
}

#[tokio::test]
async fn the_request_uses_system_instruction_model_roles_and_generation_config() {
    let fake = FakeGemini::start().await;
    let (chat, _) = gemini_chat(&fake, fast());
    let request = ChatRequest {
        system: Some("Be brief.".into()),
        messages: vec![
            ChatMessage::user("Hi"),
            ChatMessage::assistant("Hello!"),
            ChatMessage::user("How are you?"),
        ],
        temperature: Some(0.5),
        max_tokens: Some(100),
        ..ChatRequest::default()
    };

    chat.complete(&request).await.unwrap();

    let body = fake.last_request().unwrap().body;
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "How are you?"}]},
        ])
    );
    assert_eq!(
        body["generationConfig"],
        json!({"temperature": 0.5, "maxOutputTokens": 100})
    );
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn structured_output_is_requested_with_a_json_mime_type_and_schema() {
    let fake = FakeGemini::start().await;
    fake.set_reply(r#"{"title":"Groceries"}"#);
    let (chat, _) = gemini_chat(&fake, fast());
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}});
    let request = ChatRequest {
        response_schema: Some(ResponseSchema {
            name: "title".into(),
            schema: schema.clone(),
        }),
        ..ask("Name this list")
    };

    let answer = chat.complete(&request).await.unwrap();

    assert_eq!(answer.text, r#"{"title":"Groceries"}"#);
    assert_eq!(
        fake.last_request().unwrap().body["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": schema})
    );
}

#[tokio::test]
async fn a_function_call_round_trips_with_its_thought_signature() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::ToolCall {
        name: "get_weather".into(),
        arguments: json!({"city": "Lyon"}),
    });
    let (chat, _) = gemini_chat(&fake, fast());
    let mut request = ChatRequest {
        tools: vec![weather_tool()],
        ..ask("Weather in Lyon?")
    };

    let first = chat.complete(&request).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    let call = first.tool_calls[0].clone();
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, json!({"city": "Lyon"}));
    assert!(!call.id.is_empty());
    assert_eq!(
        fake.last_request().unwrap().body["tools"],
        json!([{ "functionDeclarations": [{
            "name": "get_weather",
            "description": "The current weather in a city",
            "parametersJsonSchema": weather_tool().parameters,
        }]}])
    );

    request.messages.push(ChatMessage {
        role: Role::Assistant,
        tool_calls: vec![call.clone()],
        ..ChatMessage::assistant("")
    });
    request
        .messages
        .push(ChatMessage::tool_result(&call, r#"{"celsius":21}"#));
    fake.set_reply("It is 21 °C.");
    let second = chat.complete(&request).await.unwrap();

    assert_eq!(second.text, "It is 21 °C.");
    let contents = fake.last_request().unwrap().body["contents"].clone();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{
            "functionCall": {"name": "get_weather", "args": {"city": "Lyon"}},
            "thoughtSignature": FAKE_THOUGHT_SIGNATURE,
        }]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{
            "functionResponse": {"name": "get_weather", "response": {"celsius": 21}},
        }]})
    );
}

#[tokio::test]
async fn thought_parts_are_never_part_of_the_answer() {
    let fake = FakeGemini::start().await;
    fake.set_thoughts(true);
    fake.set_reply("Forty-two.");
    let (chat, _) = gemini_chat(&fake, fast());

    let completed = chat.complete(&ask("Meaning of life?")).await.unwrap();
    let streamed = collect(chat.stream(&ask("Meaning of life?")).await.unwrap()).await;

    assert_eq!(completed.text, "Forty-two.");
    assert_eq!(streamed.text, "Forty-two.");
    assert!(!streamed.text.contains(FAKE_THOUGHT));
    // Thinking is billed as output.
    assert_eq!(completed.usage.unwrap().output_tokens, 1 + 3);
}

#[tokio::test]
async fn a_stream_uses_alt_sse_and_takes_the_usage_from_the_last_frame() {
    let fake = FakeGemini::start().await;
    fake.set_reply("One two three.");
    let (chat, _) = gemini_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Count to three")).await.unwrap()).await;

    assert_eq!(
        fake.last_request().unwrap().path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
    assert_eq!(got.text, "One two three.");
    assert_eq!(got.deltas, 3);
    assert_eq!(
        got.done,
        Some((
            Some(Usage {
                input_tokens: 3,
                output_tokens: 3
            }),
            Some(FinishReason::Stop)
        ))
    );
    assert_eq!(got.trailing, 0);
}

#[tokio::test]
async fn a_streamed_function_call_is_one_tool_call_event() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::ToolCall {
        name: "get_weather".into(),
        arguments: json!({"city": "Oslo"}),
    });
    let (chat, _) = gemini_chat(&fake, fast());
    let request = ChatRequest {
        tools: vec![weather_tool()],
        ..ask("Weather?")
    };

    let got = collect(chat.stream(&request).await.unwrap()).await;

    assert_eq!(got.tool_calls.len(), 1);
    assert_eq!(got.tool_calls[0].arguments, json!({"city": "Oslo"}));
    assert_eq!(got.done.unwrap().1, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn a_blocked_prompt_is_rejected_without_retry() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::Json(json!({
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
    })));
    let (chat, _) = gemini_chat(&fake, fast());

    let error = chat.complete(&ask("Something unsafe")).await.unwrap_err();

    match error {
        AiError::Rejected { reason, .. } => assert!(reason.contains("SAFETY"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(fake.chat_calls(), 1);
}

#[tokio::test]
async fn a_safety_stop_in_a_stream_is_a_rejected_item() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::Sse(vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Well, "}]}, "index": 0}]}).to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "index": 0}]}).to_string(),
    ]));
    let (chat, _) = gemini_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hmm")).await.unwrap()).await;

    assert_eq!(got.text, "Well, ");
    assert!(
        matches!(got.error, Some(AiError::Rejected { .. })),
        "{:?}",
        got.error
    );
    assert!(got.done.is_none());
}

#[tokio::test]
async fn a_stream_that_closes_before_the_final_frame_is_an_error_item() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::Sse(vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Half "}]}, "index": 0}]}).to_string(),
    ]));
    let (chat, _) = gemini_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hmm")).await.unwrap()).await;

    assert_eq!(got.text, "Half ");
    assert!(
        matches!(got.error, Some(AiError::Unavailable { .. })),
        "{:?}",
        got.error
    );
    assert!(got.done.is_none());
}

#[tokio::test]
async fn the_key_is_sent_in_x_goog_api_key_and_not_in_the_url() {
    let fake = FakeGemini::start().await;
    let (chat, _) = gemini_chat(&fake, fast());

    chat.complete(&ask("Hi")).await.unwrap();

    let sent = fake.last_request().unwrap();
    assert_eq!(sent.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(!sent.path.contains(GEMINI_KEY));
    assert_eq!(sent.header("authorization"), None);
}
