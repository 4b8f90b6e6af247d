//! The local models on their real files: all-MiniLM-L6-v2 (embeddings) and
//! SmolLM2-135M-Instruct (chat), as `scripts/models.sh` provisions them. `scripts/test.sh`
//! exports their paths; without them these tests fail rather than skip.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use potentia_ai::chat::{ChatMessage, ChatRequest, FinishReason, StreamEvent, ToolSpec};
use potentia_ai::local::{GgufTokenizer, MiniLmEmbedder, SmolLmChat, MINILM_MODEL_NAME};
use potentia_ai::metrics::{ProviderLabel, TokenDirection, TokenLabels};
use potentia_ai::{
    AiError, AiMetrics, ChatModel, Embedder, Embedding, Purpose, EMBEDDING_DIMENSIONS,
};

fn path_from_env(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set: run ./scripts/test.sh, which provisions the models with \
             scripts/models.sh and exports their paths (`scripts/models.sh embedding-dir`, \
             `scripts/models.sh chat-gguf`)"
        ),
    }
}

fn embedder() -> &'static MiniLmEmbedder {
    static EMBEDDER: OnceLock<MiniLmEmbedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = path_from_env("POTENTIA_TEST_EMBEDDING_MODEL_DIR");
        MiniLmEmbedder::load(&dir, AiMetrics::default()).expect("all-MiniLM-L6-v2 loads")
    })
}

/// The chat model and the metrics it reports into.
fn chat() -> &'static (SmolLmChat, AiMetrics) {
    static CHAT: OnceLock<(SmolLmChat, AiMetrics)> = OnceLock::new();
    CHAT.get_or_init(|| {
        let gguf = path_from_env("POTENTIA_TEST_CHAT_GGUF");
        let metrics = AiMetrics::default();
        let chat = SmolLmChat::load(&gguf, metrics.clone()).expect("SmolLM2 loads");
        (chat, metrics)
    })
}

async fn embed(texts: &[&str], purpose: Purpose) -> Vec<Embedding> {
    let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    embedder().embed(&texts, purpose).await.unwrap()
}

async fn embed_one(text: &str, purpose: Purpose) -> Embedding {
    embed(&[text], purpose).await.remove(0)
}

fn max_difference(a: &Embedding, b: &Embedding) -> f32 {
    a.as_slice()
        .iter()
        .zip(b.as_slice())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn question(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user(text)],
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..ChatRequest::default()
    }
}

fn generated_tokens(metrics: &AiMetrics) -> u64 {
    metrics
        .tokens
        .get_or_create(&TokenLabels {
            provider: ProviderLabel::Local,
            model: "smollm2-135m-instruct".into(),
            direction: TokenDirection::Output,
        })
        .get()
}

// ----- all-MiniLM-L6-v2 ---------------------------------------------------------------------

#[tokio::test]
async fn the_embedder_names_its_model_and_takes_batches_of_32() {
    assert_eq!(embedder().model(), MINILM_MODEL_NAME);
    assert_eq!(embedder().max_batch(), 32);
}

#[tokio::test]
async fn embeddings_have_768_dimensions_and_unit_length() {
    for e in embed(
        &["A short note.", "", "Ünïcödé ☕ and 数字 123"],
        Purpose::Document,
    )
    .await
    {
        assert_eq!(e.as_slice().len(), EMBEDDING_DIMENSIONS);
        let norm = e.as_slice().iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        // 384 dimensions of model output, zero-padded.
        assert!(e.as_slice()[384..].iter().all(|x| *x == 0.0));
        assert!(e.as_slice()[..384].iter().any(|x| *x != 0.0));
    }
}

#[tokio::test]
async fn the_same_text_embeds_identically_twice() {
    let text = "Meeting notes: ship the calendar sync on Thursday.";
    let first = embed_one(text, Purpose::Document).await;
    let second = embed_one(text, Purpose::Document).await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_batch_embeds_like_its_texts_one_at_a_time() {
    let texts = [
        "Tiny.",
        "A medium sentence about planning the quarterly offsite in Lisbon.",
        &"A much longer paragraph that keeps going, with clauses and commas, ".repeat(12),
        "Another short one.",
        "Groceries: eggs, flour, butter, sugar, vanilla, and two lemons.",
    ];
    let batch = embed(&texts, Purpose::Document).await;
    assert_eq!(batch.len(), texts.len());
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = embed_one(text, Purpose::Document).await;
        let difference = max_difference(&alone, in_batch);
        assert!(difference < 1e-5, "{text:?}: differs by {difference}");
    }
}

#[tokio::test]
async fn a_text_longer_than_256_tokens_is_embedded_from_its_first_256() {
    let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
    let long = words.join(" ");
    let longer = format!("{long} and then a completely different ending about volcanoes");
    let a = embed_one(&long, Purpose::Document).await;
    let b = embed_one(&longer, Purpose::Document).await;
    let difference = max_difference(&a, &b);
    assert!(
        difference < 1e-5,
        "the tail changed the vector by {difference}"
    );
}

#[tokio::test]
async fn more_texts_than_one_batch_each_get_a_vector() {
    let texts: Vec<String> = (0..45).map(|i| format!("Note number {i}")).collect();
    let embeddings = embedder().embed(&texts, Purpose::Document).await.unwrap();
    assert_eq!(embeddings.len(), 45);
    let last_alone = embed_one("Note number 44", Purpose::Document).await;
    assert!(max_difference(&embeddings[44], &last_alone) < 1e-5);
}

#[tokio::test]
async fn a_coffee_question_is_nearer_to_a_coffee_block_than_to_a_budget_block() {
    let query = embed_one("How do I brew pour-over coffee?", Purpose::Query).await;
    let documents = embed(
        &[
            "Use a V60 dripper at 94 °C: bloom the grounds for 30 seconds, then pour slowly in circles.",
            "The quarterly budget: marketing spend is up 12% and travel is frozen until March.",
        ],
        Purpose::Document,
    )
    .await;
    let coffee = query.cosine(&documents[0]);
    let budget = query.cosine(&documents[1]);
    assert!(coffee > budget + 0.1, "coffee {coffee}, budget {budget}");
}

#[tokio::test]
async fn a_folder_without_the_model_is_a_model_load_error_naming_the_file() {
    let empty = std::env::temp_dir().join(format!("potentia-no-model-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let error = MiniLmEmbedder::load(&empty, AiMetrics::default())
        .err()
        .expect("an empty folder does not load");
    match error {
        AiError::ModelLoad { path, .. } => assert!(path.ends_with("config.json"), "{path}"),
        other => panic!("expected ModelLoad, got {other:?}"),
    }
}

// ----- SmolLM2's GGUF tokenizer --------------------------------------------------------------

fn gguf_tokenizer() -> &'static GgufTokenizer {
    chat().0.tokenizer()
}

#[test]
fn the_gguf_tokenizer_reads_smollm2_vocabulary_and_turn_markers() {
    let tokenizer = gguf_tokenizer();
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert_eq!(tokenizer.special_token_id("<|im_start|>"), Some(1));
    assert_eq!(tokenizer.special_token_id("<|im_end|>"), Some(2));
    assert_eq!(tokenizer.eos_id(), 2);
}

#[test]
fn the_gguf_tokenizer_round_trips_ascii_accents_and_emoji() {
    let tokenizer = gguf_tokenizer();
    for text in [
        "The capital of France is Paris. 1234 + 5678 = 6912\n\tdone",
        "Crème brûlée, São Paulo, Ærøskøbing, naïve café",
        "Coffee ☕, laptop 👩🏽‍💻, flag 🇫🇷, 東京",
    ] {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids), text);
    }
}

#[test]
fn the_gguf_tokenizer_merges_common_words_into_single_tokens() {
    let tokenizer = gguf_tokenizer();
    let ids = tokenizer.encode("Hello world").unwrap();
    let pieces: Vec<&[u8]> = ids.iter().map(|id| tokenizer.token_bytes(*id)).collect();
    assert_eq!(pieces, [b"Hello".as_slice(), b" world".as_slice()]);
}

#[test]
fn the_gguf_tokenizer_encodes_turn_markers_as_single_ids() {
    let tokenizer = gguf_tokenizer();
    let ids = tokenizer
        .encode_with_special_tokens("<|im_start|>user\nHi<|im_end|>\n")
        .unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|id| **id == 2).count(), 1);
    assert_eq!(tokenizer.decode(&ids), "user\nHi\n");
    // Plain encoding keeps the marker's text as text.
    assert!(!tokenizer.encode("<|im_end|>").unwrap().contains(&2));
}

// ----- SmolLM2-135M-Instruct ------------------------------------------------------------------

#[tokio::test]
async fn the_chat_model_knows_the_capital_of_france() {
    let (chat, _) = chat();
    let answer = chat
        .complete(&question("What is the capital of France?", 24))
        .await
        .unwrap();
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
    assert_eq!(answer.model, "smollm2-135m-instruct");
    let usage = answer.usage.unwrap();
    assert!(
        usage.input_tokens > 10 && usage.output_tokens > 0,
        "{usage:?}"
    );
}

#[tokio::test]
async fn streamed_deltas_concatenate_to_the_completed_text() {
    let (chat, _) = chat();
    let request = question("Name three colors of the rainbow.", 20);
    let completed = chat.complete(&request).await.unwrap();
    let mut stream = chat.stream(&request).await.unwrap();
    let mut streamed = String::new();
    let mut deltas = 0;
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            StreamEvent::Delta(text) => {
                streamed.push_str(&text);
                deltas += 1;
            }
            StreamEvent::Done {
                usage,
                finish_reason,
            } => done = Some((usage, finish_reason)),
            StreamEvent::ToolCall(call) => panic!("unexpected tool call {call:?}"),
        }
    }
    assert_eq!(streamed, completed.text);
    assert!(deltas > 1, "one delta per token or so, got {deltas}");
    assert_eq!(done, Some((completed.usage, completed.finish_reason)));
}

#[tokio::test]
async fn generation_stops_at_max_tokens() {
    let (chat, _) = chat();
    let answer = chat
        .complete(&question(
            "Write a long story about a dragon who learns to bake bread.",
            5,
        ))
        .await
        .unwrap();
    assert_eq!(answer.usage.unwrap().output_tokens, 5);
    assert_eq!(answer.finish_reason, Some(FinishReason::Length));
}

#[tokio::test]
async fn dropping_the_stream_stops_generation() {
    let (chat, metrics) = chat();
    let before = generated_tokens(metrics);
    let mut stream = chat
        .stream(&question(
            "Write a long story about a dragon who learns to bake bread.",
            400,
        ))
        .await
        .unwrap();
    for _ in 0..3 {
        match stream.next().await {
            Some(Ok(StreamEvent::Delta(_))) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    drop(stream);
    // The next call waits for the model, so it starts after the dropped generation ended.
    let after_drop = tokio::time::timeout(
        Duration::from_secs(120),
        chat.complete(&question("Say hi.", 1)),
    )
    .await
    .expect("the model is free again")
    .unwrap();
    let spent = generated_tokens(metrics) - before - after_drop.usage.unwrap().output_tokens;
    // 3 read, at most a channel's worth (16) ahead, a token or two in flight: far below 400.
    assert!(
        spent < 3 + 16 + 4,
        "the dropped stream generated {spent} tokens"
    );
}

#[tokio::test]
async fn a_request_with_tools_is_rejected() {
    let (chat, _) = chat();
    let mut request = question("What's the weather in Paris?", 10);
    request.tools = vec![ToolSpec {
        name: "weather".into(),
        description: "The weather in a city".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }];
    match chat.complete(&request).await {
        Err(AiError::Rejected { reason, .. }) => assert!(reason.contains("function"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(matches!(
        chat.stream(&request).await.err(),
        Some(AiError::Rejected { .. })
    ));
}
