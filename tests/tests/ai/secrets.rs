//! API keys never leave through `Debug`, errors or URLs, even when a provider echoes them.

use potentia_ai::settings::{ChatProviderSettings, EmbeddingProviderSettings};
use potentia_ai::ChatModel;
use potentia_tests::fake_ai::{FakeGemini, FakeOpenAi, Reply};

use crate::{ask, endpoint, fast, gemini_chat, openai_chat, GEMINI_KEY, OPENAI_KEY};

#[test]
fn settings_debug_output_hides_the_keys() {
    let base = url::Url::parse("https://example.invalid/v1").unwrap();
    let chat = ChatProviderSettings::OpenAi(endpoint(base.clone(), Some(OPENAI_KEY), "m"));
    let embeddings = EmbeddingProviderSettings::Gemini(endpoint(base, Some(GEMINI_KEY), "m"));

    let printed = format!("{chat:?} {embeddings:?} {chat:#?}");

    assert!(!printed.contains(OPENAI_KEY));
    assert!(!printed.contains(GEMINI_KEY));
    assert!(printed.contains("***"));
}

#[tokio::test]
async fn a_key_echoed_in_a_rejection_is_scrubbed_from_the_error() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::Status {
        status: 400,
        retry_after: None,
        message: format!("Incorrect API key provided: {OPENAI_KEY}."),
    });
    let (chat, _) = openai_chat(&fake, fast());

    let error = chat.complete(&ask("Hi")).await.unwrap_err();

    let printed = format!("{error:?} {error}");
    assert!(!printed.contains(OPENAI_KEY), "{printed}");
    assert!(
        printed.contains("Incorrect API key provided: ***"),
        "{printed}"
    );
}

#[tokio::test]
async fn errors_of_every_kind_carry_neither_the_key_nor_the_prompt() {
    let fake = FakeGemini::start().await;
    let (chat, _) = gemini_chat(&fake, fast());
    let secret_prompt = "my diary entry about the surprise party";
    // (reply, attempts it takes): refusals are not retried, a malformed body is, three times.
    let cases = [
        (
            Reply::Status {
                status: 401,
                retry_after: None,
                message: format!("key {GEMINI_KEY} is invalid"),
            },
            1,
        ),
        (
            Reply::Status {
                status: 404,
                retry_after: None,
                message: "models/gemini-test is not found".into(),
            },
            1,
        ),
        (Reply::Malformed, 3),
    ];

    for (reply, attempts) in cases {
        let calls_before = fake.chat_calls();
        for _ in 0..attempts {
            fake.script(reply.clone());
        }

        let error = chat.complete(&ask(secret_prompt)).await.unwrap_err();

        assert_eq!(fake.chat_calls() - calls_before, attempts, "{reply:?}");
        let printed = format!("{error:?} {error}");
        assert!(!printed.contains(GEMINI_KEY), "{printed}");
        assert!(!printed.contains(secret_prompt), "{printed}");
    }
}
