//! `OpenAiEmbedder` and `GeminiEmbedder` against the fakes.

use potentia_ai::providers::{GeminiEmbedder, OpenAiEmbedder};
use potentia_ai::settings::ProviderKind;
use potentia_ai::{AiError, Embedder, Embedding, Purpose, EMBEDDING_DIMENSIONS};
use potentia_tests::fake_ai::{fake_embedding, FakeGemini, FakeOpenAi, Reply};

use crate::{endpoint, fast, guard, GEMINI_KEY, OPENAI_KEY};

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|t| t.to_string()).collect()
}

fn openai(fake: &FakeOpenAi, dimensions: Option<u32>) -> OpenAiEmbedder {
    OpenAiEmbedder::new(
        endpoint(fake.base_url(), Some(OPENAI_KEY), "text-embedding-test"),
        dimensions,
        guard(ProviderKind::OpenAi, fast()),
    )
    .unwrap()
}

fn gemini(fake: &FakeGemini) -> GeminiEmbedder {
    GeminiEmbedder::new(
        endpoint(fake.base_url(), Some(GEMINI_KEY), "gemini-embedding-test"),
        guard(ProviderKind::Gemini, fast()),
    )
    .unwrap()
}

fn expected(text: &str, dimensions: usize) -> Embedding {
    Embedding::from_model_output(fake_embedding(text, dimensions)).unwrap()
}

fn assert_unit_768(vector: &Embedding) {
    assert_eq!(vector.as_slice().len(), EMBEDDING_DIMENSIONS);
    let norm: f32 = vector.as_slice().iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[tokio::test]
async fn openai_vectors_come_back_in_input_order_normalized_and_padded() {
    let fake = FakeOpenAi::start().await;
    fake.set_reverse_embeddings(true);
    let embedder = openai(&fake, None);
    let input = texts(&["first text", "second text", "third one"]);

    let vectors = embedder.embed(&input, Purpose::Document).await.unwrap();

    assert_eq!(vectors.len(), 3);
    for (vector, text) in vectors.iter().zip(&input) {
        assert_unit_768(vector);
        assert_eq!(vector, &expected(text, 384));
    }
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.body["input"], serde_json::json!(input));
    assert_eq!(sent.body["model"], "text-embedding-test");
    assert!(sent.body.get("dimensions").is_none());
}

#[tokio::test]
async fn openai_sends_the_configured_dimensions() {
    let fake = FakeOpenAi::start().await;
    let embedder = openai(&fake, Some(768));

    let vectors = embedder
        .embed(&texts(&["hello"]), Purpose::Query)
        .await
        .unwrap();

    assert_eq!(fake.last_request().unwrap().body["dimensions"], 768);
    assert_eq!(vectors[0], expected("hello", 768));
}

#[tokio::test]
async fn a_vector_longer_than_768_is_refused_without_retry() {
    let fake = FakeOpenAi::start().await;
    let embedder = openai(&fake, Some(1536));

    let error = embedder
        .embed(&texts(&["hello"]), Purpose::Document)
        .await
        .unwrap_err();

    match error {
        AiError::Unavailable { reason, .. } => assert!(reason.contains("1536"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.embedding_calls(), 1);
}

#[tokio::test]
async fn gemini_sends_the_task_type_for_the_purpose_and_768_dimensions() {
    let fake = FakeGemini::start().await;
    let embedder = gemini(&fake);

    embedder
        .embed(&texts(&["a document", "another"]), Purpose::Document)
        .await
        .unwrap();
    let document = fake.last_request().unwrap();
    embedder
        .embed(&texts(&["a question"]), Purpose::Query)
        .await
        .unwrap();
    let query = fake.last_request().unwrap();

    assert_eq!(
        document.path,
        "/v1beta/models/gemini-embedding-test:batchEmbedContents"
    );
    assert_eq!(document.header("x-goog-api-key"), Some(GEMINI_KEY));
    let requests = document.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0],
        serde_json::json!({
            "model": "models/gemini-embedding-test",
            "content": {"parts": [{"text": "a document"}]},
            "taskType": "RETRIEVAL_DOCUMENT",
            "outputDimensionality": 768,
        })
    );
    assert_eq!(query.body["requests"][0]["taskType"], "RETRIEVAL_QUERY");
}

#[tokio::test]
async fn gemini_vectors_are_renormalized_in_order() {
    let fake = FakeGemini::start().await;
    let embedder = gemini(&fake);
    let input = texts(&["pour-over coffee at 94 degrees", "the quarterly budget"]);

    let vectors = embedder.embed(&input, Purpose::Document).await.unwrap();

    for (vector, text) in vectors.iter().zip(&input) {
        assert_unit_768(vector);
        assert_eq!(vector, &expected(text, 768));
    }
}

#[tokio::test]
async fn texts_sharing_words_are_nearer_than_unrelated_ones() {
    let fake = FakeOpenAi::start().await;
    let embedder = openai(&fake, None);
    let input = texts(&[
        "how do I brew pour-over coffee",
        "brew coffee with a V60 dripper",
        "the quarterly budget review",
    ]);

    let v = embedder.embed(&input, Purpose::Document).await.unwrap();

    assert!(v[0].cosine(&v[1]) > v[0].cosine(&v[2]) + 0.2);
}

#[tokio::test]
async fn an_empty_batch_makes_no_request() {
    let fake = FakeGemini::start().await;

    let vectors = gemini(&fake).embed(&[], Purpose::Document).await.unwrap();

    assert!(vectors.is_empty());
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn a_failed_embedding_call_is_retried() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::Status {
        status: 502,
        retry_after: None,
        message: "bad gateway".into(),
    });
    let embedder = openai(&fake, None);

    let vectors = embedder
        .embed(&texts(&["x"]), Purpose::Document)
        .await
        .unwrap();

    assert_eq!(vectors.len(), 1);
    assert_eq!(fake.embedding_calls(), 2);
}

#[tokio::test]
async fn a_provider_returning_fewer_vectors_than_texts_is_unavailable() {
    let fake = FakeGemini::start().await;
    for _ in 0..3 {
        fake.script(Reply::Json(
            serde_json::json!({"embeddings": [{"values": [1.0, 0.0]}]}),
        ));
    }

    let error = gemini(&fake)
        .embed(&texts(&["a", "b"]), Purpose::Document)
        .await
        .unwrap_err();

    assert!(matches!(error, AiError::Unavailable { .. }), "{error:?}");
}
