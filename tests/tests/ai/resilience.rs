//! Timeouts, retries, the circuit breaker and the concurrency cap, through real clients
//! against the fakes.

use std::time::{Duration, Instant};

use futures::StreamExt;
use potentia_ai::metrics::{Operation, Outcome, ProviderLabel, ProviderLabels, RequestLabels};
use potentia_ai::resilience::BreakerState;
use potentia_ai::settings::ResilienceSettings;
use potentia_ai::{AiError, ChatModel};
use potentia_tests::fake_ai::{FakeGemini, FakeOpenAi, Reply};

use crate::{ask, collect, fast, gemini_chat, openai_chat};

fn status(status: u16, retry_after: Option<&str>, message: &str) -> Reply {
    Reply::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
        message: message.into(),
    }
}

fn unavailable_reason(error: AiError) -> String {
    match error {
        AiError::Unavailable { reason, .. } => reason,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn single_attempt() -> ResilienceSettings {
    ResilienceSettings {
        max_attempts: 1,
        ..fast()
    }
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let fake = FakeOpenAi::start().await;
    fake.script(status(429, Some("1"), "slow down"));
    let (chat, _) = openai_chat(&fake, fast());

    let started = Instant::now();
    let answer = chat.complete(&ask("Hi")).await.unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.text, potentia_tests::fake_ai::DEFAULT_REPLY);
    assert_eq!(fake.chat_calls(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_is_returned_instead_of_waited() {
    let fake = FakeOpenAi::start().await;
    fake.script(status(429, Some("30"), "quota"));
    let (chat, _) = openai_chat(&fake, fast());

    let started = Instant::now();
    let error = chat.complete(&ask("Hi")).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(2));
    match error {
        AiError::Unavailable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(30)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.chat_calls(), 1);
}

#[tokio::test]
async fn a_500_is_retried_and_the_next_answer_returned() {
    let fake = FakeGemini::start().await;
    fake.script(status(500, None, "internal"));
    fake.script(status(503, None, "overloaded"));
    let (chat, _) = gemini_chat(&fake, fast());

    let answer = chat.complete(&ask("Hi")).await.unwrap();

    assert_eq!(answer.text, potentia_tests::fake_ai::DEFAULT_REPLY);
    assert_eq!(fake.chat_calls(), 3);
}

#[tokio::test]
async fn a_400_is_rejected_with_the_providers_message_and_not_retried() {
    let fake = FakeOpenAi::start().await;
    fake.script(status(400, None, "Invalid schema for response_format"));
    let (chat, _) = openai_chat(&fake, fast());

    let error = chat.complete(&ask("Hi")).await.unwrap_err();

    match error {
        AiError::Rejected { reason, .. } => {
            assert_eq!(reason, "Invalid schema for response_format")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(fake.chat_calls(), 1);
}

#[tokio::test]
async fn a_refused_key_is_unavailable_and_not_retried() {
    let fake = FakeGemini::start().await;
    fake.script(status(
        403,
        None,
        "API key not valid. Please pass a valid API key.",
    ));
    let (chat, _) = gemini_chat(&fake, fast());

    let reason = unavailable_reason(chat.complete(&ask("Hi")).await.unwrap_err());

    assert!(reason.contains("refused the configured key"), "{reason}");
    assert_eq!(fake.chat_calls(), 1);
}

#[tokio::test]
async fn a_long_provider_message_is_cut_to_a_short_reason() {
    let fake = FakeOpenAi::start().await;
    fake.script(status(422, None, &"very long explanation ".repeat(100)));
    let (chat, _) = openai_chat(&fake, fast());

    let error = chat.complete(&ask("Hi")).await.unwrap_err();

    let AiError::Rejected { reason, .. } = error else {
        panic!("expected Rejected");
    };
    assert!(reason.chars().count() <= potentia_ai::providers::MAX_REASON_CHARS);
    assert!(reason.starts_with("very long explanation"));
}

#[tokio::test]
async fn a_slow_first_byte_times_out_as_unavailable() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::Delayed(
        Duration::from_secs(5),
        Box::new(Reply::Text("too late".into())),
    ));
    let settings = ResilienceSettings {
        first_byte_timeout: Duration::from_millis(200),
        ..single_attempt()
    };
    let (chat, _) = openai_chat(&fake, settings);

    let started = Instant::now();
    let reason = unavailable_reason(chat.complete(&ask("Hi")).await.unwrap_err());

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(reason.contains("first-byte"), "{reason}");
}

#[tokio::test]
async fn a_stream_whose_first_event_is_late_is_retried() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::StalledStream(Duration::from_secs(5)));
    let settings = ResilienceSettings {
        first_byte_timeout: Duration::from_millis(200),
        ..fast()
    };
    let (chat, _) = openai_chat(&fake, settings);

    let got = collect(chat.stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(got.text, potentia_tests::fake_ai::DEFAULT_REPLY);
    assert_eq!(fake.chat_calls(), 2);
}

#[tokio::test]
async fn malformed_json_is_unavailable_after_the_retries() {
    let fake = FakeGemini::start().await;
    for _ in 0..3 {
        fake.script(Reply::Malformed);
    }
    let (chat, _) = gemini_chat(&fake, fast());

    let reason = unavailable_reason(chat.complete(&ask("Hi")).await.unwrap_err());

    assert!(reason.contains("malformed"), "{reason}");
    assert_eq!(fake.chat_calls(), 3);
}

#[tokio::test]
async fn a_malformed_first_stream_event_is_retried_like_a_malformed_body() {
    let fake = FakeOpenAi::start().await;
    fake.script(Reply::Malformed);
    let (chat, _) = openai_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(got.text, potentia_tests::fake_ai::DEFAULT_REPLY);
    assert_eq!(fake.chat_calls(), 2);
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_ends_with_an_unavailable_item() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("one two three four five six");
    // The role chunk and two words, then the connection is aborted.
    fake.script(Reply::CutStream { after_events: 3 });
    let (chat, resilience) = openai_chat(&fake, fast());

    let got = collect(chat.stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(got.text, "one two ");
    assert!(
        matches!(got.error, Some(AiError::Unavailable { .. })),
        "{:?}",
        got.error
    );
    assert!(got.done.is_none());
    assert_eq!(got.trailing, 0);
    // Handed out, so never retried: the caller decides.
    assert_eq!(fake.chat_calls(), 1);
    let cut = resilience
        .metrics()
        .requests
        .get_or_create(&RequestLabels {
            provider: ProviderLabel::Openai,
            model: "gpt-test".into(),
            operation: Operation::Stream,
            outcome: Outcome::Unavailable,
        })
        .get();
    assert_eq!(cut, 1);
}

#[tokio::test]
async fn dropping_a_stream_disconnects_from_the_provider() {
    let fake = FakeGemini::start().await;
    fake.script(Reply::Endless {
        interval: Duration::from_millis(20),
    });
    let (chat, _) = gemini_chat(&fake, fast());

    let mut stream = chat.stream(&ask("Talk forever")).await.unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    assert_eq!(fake.disconnects(), 0);
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(3);
    while fake.disconnects() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.disconnects(), 1);
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_then_refuses_without_a_request() {
    let fake = FakeOpenAi::start().await;
    fake.fail_with(500, None);
    // A long cooldown, so a slow machine cannot reach the half-open probe during the test.
    let settings = ResilienceSettings {
        breaker_cooldown: Duration::from_secs(30),
        ..single_attempt()
    };
    let (chat, resilience) = openai_chat(&fake, settings);

    for _ in 0..2 {
        chat.complete(&ask("Hi")).await.unwrap_err();
        assert_eq!(resilience.breaker_state(), BreakerState::Closed);
    }
    chat.complete(&ask("Hi")).await.unwrap_err();
    assert_eq!(resilience.breaker_state(), BreakerState::Open);
    assert_eq!(fake.chat_calls(), 3);

    let started = Instant::now();
    let refused = chat.complete(&ask("Hi")).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(fake.chat_calls(), 3);
    match refused {
        AiError::Unavailable { retry_after, .. } => {
            let wait = retry_after.unwrap();
            assert!(
                wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
                "{wait:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let metrics = resilience.metrics();
    let gauge = metrics
        .breaker_state
        .get_or_create(&ProviderLabels {
            provider: ProviderLabel::Openai,
        })
        .get();
    assert_eq!(gauge, 2);
    let refusals = metrics
        .requests
        .get_or_create(&RequestLabels {
            provider: ProviderLabel::Openai,
            model: "gpt-test".into(),
            operation: Operation::Complete,
            outcome: Outcome::BreakerOpen,
        })
        .get();
    assert_eq!(refusals, 1);
}

#[tokio::test]
async fn after_the_cooldown_one_successful_probe_closes_the_breaker() {
    let fake = FakeGemini::start().await;
    fake.fail_with(503, None);
    let (chat, resilience) = gemini_chat(&fake, single_attempt());
    for _ in 0..3 {
        chat.complete(&ask("Hi")).await.unwrap_err();
    }
    assert_eq!(resilience.breaker_state(), BreakerState::Open);

    fake.recover();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(resilience.breaker_state(), BreakerState::HalfOpen);
    chat.complete(&ask("Hi")).await.unwrap();

    assert_eq!(resilience.breaker_state(), BreakerState::Closed);
    let gauge = resilience
        .metrics()
        .breaker_state
        .get_or_create(&ProviderLabels {
            provider: ProviderLabel::Gemini,
        })
        .get();
    assert_eq!(gauge, 0);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let fake = FakeOpenAi::start().await;
    fake.fail_with(500, None);
    let (chat, resilience) = openai_chat(&fake, fast());
    for _ in 0..3 {
        chat.complete(&ask("Hi")).await.unwrap_err();
    }
    let calls_while_closed = fake.chat_calls();
    tokio::time::sleep(Duration::from_millis(350)).await;

    chat.complete(&ask("Hi")).await.unwrap_err();

    // The probe is a single attempt, whatever max_attempts says.
    assert_eq!(fake.chat_calls(), calls_while_closed + 1);
    assert_eq!(resilience.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn a_probe_in_flight_makes_other_calls_wait_their_turn() {
    let fake = FakeOpenAi::start().await;
    fake.fail_with(500, None);
    let (chat, resilience) = openai_chat(&fake, single_attempt());
    for _ in 0..3 {
        chat.complete(&ask("Hi")).await.unwrap_err();
    }
    fake.recover();
    tokio::time::sleep(Duration::from_millis(350)).await;
    fake.script(Reply::Delayed(
        Duration::from_millis(300),
        Box::new(Reply::Text("probe".into())),
    ));

    let request = ask("Hi");
    let probe = chat.complete(&request);
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state = resilience.breaker_state();
        (state, chat.complete(&ask("Hi")).await)
    };
    let (probe, (state_during_probe, other)) = tokio::join!(probe, other);

    assert_eq!(probe.unwrap().text, "probe");
    assert_eq!(state_during_probe, BreakerState::HalfOpen);
    assert!(matches!(other, Err(AiError::Unavailable { .. })));
    assert_eq!(resilience.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn no_more_than_max_concurrency_requests_are_in_flight() {
    let fake = FakeOpenAi::start().await;
    for _ in 0..8 {
        fake.script(Reply::Delayed(
            Duration::from_millis(100),
            Box::new(Reply::Text("ok".into())),
        ));
    }
    let settings = ResilienceSettings {
        max_concurrency: 2,
        ..fast()
    };
    let (chat, _) = openai_chat(&fake, settings);

    let request = ask("Hi");
    let calls = (0..8).map(|_| chat.complete(&request));
    let answers = futures::future::join_all(calls).await;

    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(fake.chat_calls(), 8);
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn usage_and_outcomes_are_recorded_in_the_metrics() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("three words here");
    let (chat, resilience) = openai_chat(&fake, fast());

    chat.complete(&ask("one two")).await.unwrap();
    collect(chat.stream(&ask("one two")).await.unwrap()).await;

    let metrics = resilience.metrics();
    for operation in [Operation::Complete, Operation::Stream] {
        let ok = metrics
            .requests
            .get_or_create(&RequestLabels {
                provider: ProviderLabel::Openai,
                model: "gpt-test".into(),
                operation,
                outcome: Outcome::Ok,
            })
            .get();
        assert_eq!(ok, 1, "{operation:?}");
    }
    let output = metrics
        .tokens
        .get_or_create(&potentia_ai::metrics::TokenLabels {
            provider: ProviderLabel::Openai,
            model: "gpt-test".into(),
            direction: potentia_ai::metrics::TokenDirection::Output,
        })
        .get();
    assert_eq!(output, 6);
}
