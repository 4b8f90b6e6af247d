//! The coffee fixture suite: labelled cases of the judge's decision — greetings after minutes,
//! hours and days, references back to idle topics, topic changes without a gap — run with a
//! judge that answers correctly, one that always says `continue`, one that fails and one that
//! answers garbage. The table is printed; see the assertions for what each mode must get right.

use chrono::Duration;
use reqwest::Method;
use serde_json::Value;

use crate::support::{Call, Chat, Expected, JudgeMode};

struct Case {
    gap: Duration,
    text: &'static str,
    expected: Expected,
    /// Whether the right answer depends on the time since the topic was active.
    time_dependent: bool,
}

fn case(gap: Duration, text: &'static str, expected: Expected, time_dependent: bool) -> Case {
    Case {
        gap,
        text,
        expected,
        time_dependent,
    }
}

fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Storylines of labelled cases; each runs in a conversation of its own.
fn storylines() -> Vec<(&'static str, Vec<Case>)> {
    use Expected::{Continue, New, Switch};
    vec![
        (
            "coffee",
            vec![
                case(
                    minutes(0),
                    "I'm learning to brew pour-over coffee with a V60",
                    New,
                    false,
                ),
                case(
                    minutes(3),
                    "What grind size should I use for the pour-over coffee?",
                    Continue,
                    false,
                ),
                case(days(7), "hi", New, true),
                case(minutes(5), "hi", Continue, true),
                case(
                    days(7),
                    "how did the coffee turn out?",
                    Switch("coffee"),
                    true,
                ),
                case(minutes(2), "thanks!", Continue, true),
                case(hours(10), "good morning", New, true),
                case(
                    minutes(1),
                    "can you remind me of the V60 water temperature?",
                    Switch("V60"),
                    false,
                ),
            ],
        ),
        (
            "lisbon",
            vec![
                case(
                    minutes(0),
                    "Help me plan a weekend trip to Lisbon in March",
                    New,
                    false,
                ),
                case(
                    minutes(10),
                    "Which neighbourhoods in Lisbon are best for food?",
                    Continue,
                    false,
                ),
                case(hours(2), "hey", Continue, true),
                case(
                    minutes(30),
                    "What about day trips from Lisbon to Sintra?",
                    Continue,
                    false,
                ),
                case(days(3), "hello there", New, true),
                case(
                    minutes(20),
                    "back to the Lisbon trip: should I book the Sintra tickets?",
                    Switch("Lisbon"),
                    false,
                ),
                case(hours(9), "How are you?", New, true),
                case(
                    days(8),
                    "Did you find flights to Lisbon for March?",
                    Switch("Lisbon"),
                    true,
                ),
            ],
        ),
        (
            "sourdough",
            vec![
                case(
                    minutes(0),
                    "My sourdough starter smells like acetone, is that normal?",
                    New,
                    false,
                ),
                case(minutes(390), "hi again", New, true),
                case(hours(4), "yo", Continue, true),
                case(
                    days(2),
                    "What should I feed the sourdough starter now?",
                    Switch("sourdough"),
                    true,
                ),
                case(minutes(1), "thank you", Continue, true),
                case(days(30), "good evening", New, true),
                case(minutes(5), "good evening", Continue, true),
                case(
                    days(45),
                    "is the sourdough starter ready for baking?",
                    Switch("sourdough"),
                    true,
                ),
            ],
        ),
        (
            "budget",
            vec![
                case(
                    minutes(0),
                    "Let's track my budget for groceries this month",
                    New,
                    false,
                ),
                case(
                    hours(12),
                    "How much did I spend on groceries so far?",
                    Continue,
                    true,
                ),
                case(hours(13), "hey", New, true),
                case(
                    hours(1),
                    "Add 40 euros of groceries to the budget",
                    Switch("groceries"),
                    false,
                ),
            ],
        ),
        // Topic changes without a gap: only a judge that answers correctly gets these.
        (
            "letter",
            vec![
                case(
                    minutes(0),
                    "I need to write a cover letter for a design job",
                    New,
                    false,
                ),
                case(
                    minutes(1),
                    "Can you make the cover letter opening stronger?",
                    Continue,
                    false,
                ),
                case(
                    minutes(2),
                    "Totally different question: what's a good stretching routine for runners?",
                    New,
                    false,
                ),
                case(
                    minutes(1),
                    "how long should each stretching exercise last?",
                    Continue,
                    false,
                ),
                case(
                    minutes(3),
                    "ok, back to my cover letter: does the closing paragraph work?",
                    Switch("letter"),
                    false,
                ),
            ],
        ),
    ]
}

/// What one case got in one mode.
#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    decision: String,
    correct: bool,
}

async fn summary_of(chat: &Chat, conversation: uuid::Uuid, context: &str) -> String {
    let (_, contexts) = chat
        .app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}/contexts"),
            Some(chat.token()),
            None,
        )
        .await;
    contexts
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == context))
        .and_then(|c| c["summary"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn run_mode(chat: &Chat, mode: JudgeMode) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (_, cases) in storylines() {
        let conversation = chat.conversation().await;
        let mut previous_context: Option<String> = None;
        for case in cases {
            {
                let mut script = chat.script();
                script.judge = mode.clone();
                script.expected = case.expected.clone();
            }
            chat.advance(case.gap);
            let (status, body) = chat.say(conversation, case.text).await;
            let decision = body["decision"]["decision"]
                .as_str()
                .unwrap_or("—")
                .to_owned();
            let context = body["decision"]["context_id"].as_str().map(str::to_owned);
            let correct = status == 201
                && match &case.expected {
                    Expected::New => decision == "new" && context != previous_context,
                    Expected::Continue => decision == "continue" && context == previous_context,
                    Expected::Switch(word) => {
                        let summary =
                            summary_of(chat, conversation, context.as_deref().unwrap_or("")).await;
                        decision == "switch"
                            && summary.to_lowercase().contains(&word.to_lowercase())
                    }
                };
            previous_context = context;
            outcomes.push(Outcome {
                status,
                decision,
                correct,
            });
        }
    }
    outcomes
}

fn expected_word(expected: &Expected) -> String {
    match expected {
        Expected::Continue => "continue".into(),
        Expected::New => "new".into(),
        Expected::Switch(word) => format!("switch ({word})"),
    }
}

fn gap_words(gap: Duration) -> String {
    if gap >= Duration::days(1) {
        format!("{} d", gap.num_days())
    } else if gap >= Duration::hours(1) {
        format!("{:.1} h", gap.num_minutes() as f64 / 60.0)
    } else {
        format!("{} min", gap.num_minutes())
    }
}

fn cell(outcome: &Outcome) -> String {
    if outcome.status != 201 {
        format!("HTTP {}", outcome.status)
    } else if outcome.correct {
        format!("ok {}", outcome.decision)
    } else {
        format!("WRONG {}", outcome.decision)
    }
}

#[tokio::test]
async fn the_labelled_cases_are_decided_by_the_time_rules_whatever_the_judge_answers() {
    let chat = Chat::start().await;
    let modes = [
        JudgeMode::Correct,
        JudgeMode::Adversarial,
        JudgeMode::Failing,
        JudgeMode::Garbage,
    ];
    let mut results = Vec::new();
    for mode in &modes {
        results.push(run_mode(&chat, mode.clone()).await);
    }
    let cases: Vec<(&str, Case)> = storylines()
        .into_iter()
        .flat_map(|(name, cases)| cases.into_iter().map(move |c| (name, c)))
        .collect();
    assert!(cases.len() >= 30, "at least 30 labelled cases");

    println!("\n| # | story | gap | message | expected | time? | correct judge | always continue | judge fails | judge garbage |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (i, (story, case)) in cases.iter().enumerate() {
        println!(
            "| {} | {story} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            gap_words(case.gap),
            case.text,
            expected_word(&case.expected),
            if case.time_dependent { "yes" } else { "no" },
            cell(&results[0][i]),
            cell(&results[1][i]),
            cell(&results[2][i]),
            cell(&results[3][i]),
        );
    }
    let count = |mode: usize, only_time: bool| {
        cases
            .iter()
            .zip(&results[mode])
            .filter(|((_, c), _)| !only_time || c.time_dependent)
            .filter(|(_, o)| o.correct)
            .count()
    };
    let time_cases = cases.iter().filter(|(_, c)| c.time_dependent).count();
    println!(
        "\ncorrect judge: {}/{} · always continue: {}/{} time-dependent ({}/{} all) · judge fails: {}/{} · garbage: {}/{}",
        count(0, false), cases.len(),
        count(1, true), time_cases, count(1, false), cases.len(),
        count(2, false), cases.len(),
        count(3, false), cases.len(),
    );

    for (i, (_, case)) in cases.iter().enumerate() {
        assert!(
            results[0][i].correct,
            "case {} ({:?}) with a correct judge: {:?}",
            i + 1,
            case.text,
            results[0][i]
        );
        if case.time_dependent {
            assert!(
                results[1][i].correct,
                "case {} ({:?}) with an always-continue judge: {:?}",
                i + 1,
                case.text,
                results[1][i]
            );
        }
        for mode in [2, 3] {
            assert_eq!(
                results[mode][i].status,
                201,
                "case {} with {:?}: never a 5xx",
                i + 1,
                modes[mode]
            );
        }
    }
}

#[tokio::test]
async fn a_greeting_a_week_after_coffee_starts_a_new_topic_and_its_prompt_holds_no_coffee() {
    let chat = Chat::start().await;
    chat.script().judge = JudgeMode::Adversarial;
    let conversation = chat.conversation().await;
    chat.say(
        conversation,
        "I'm learning to brew pour-over coffee with a V60",
    )
    .await;
    chat.say(
        conversation,
        "What grind size should I use for the pour-over coffee?",
    )
    .await;
    chat.advance(Duration::days(7));

    let (status, turn) = chat.say(conversation, "hi").await;
    assert_eq!(status, 201, "{turn}");
    assert_eq!(turn["decision"]["decision"], "new");
    let specialist = chat.last_call(Call::Specialist).expect("a specialist call");
    let shown = serde_json::to_string(&specialist.body["messages"])
        .unwrap_or_default()
        .to_lowercase();
    for word in ["coffee", "v60", "grind", "pour-over"] {
        assert!(
            !shown.contains(word),
            "the greeting's prompt mentions {word}: {shown}"
        );
    }
    // It knows how long it has been.
    assert!(shown.contains("7 days ago"), "{shown}");

    chat.advance(Duration::minutes(5));
    let (_, again) = chat.say(conversation, "hi").await;
    assert_eq!(again["decision"]["decision"], "continue");
    assert_eq!(
        again["decision"]["context_id"],
        turn["decision"]["context_id"]
    );

    chat.advance(Duration::days(7));
    let (_, back) = chat.say(conversation, "how did the coffee turn out?").await;
    assert_eq!(back["decision"]["decision"], "switch", "{back}");
    let specialist = chat.last_call(Call::Specialist).expect("a specialist call");
    let shown = serde_json::to_string(&specialist.body["messages"]).unwrap_or_default();
    assert!(
        shown.contains("grind size"),
        "the coffee topic's messages are back in the prompt: {shown}"
    );
}

#[tokio::test]
async fn the_judge_is_shown_the_local_time_the_gap_and_numbered_topics_never_ids() {
    let chat = Chat::start().await;
    let conversation = chat.conversation().await;
    chat.say(
        conversation,
        "I'm learning to brew pour-over coffee with a V60",
    )
    .await;
    chat.advance(Duration::days(7));
    chat.say(conversation, "hi").await;
    let judge = chat.last_call(Call::Judge).expect("a judge call");
    let prompt: String = crate::support::prompt_text(&judge.body);
    assert!(prompt.contains("7 days ago"), "{prompt}");
    assert!(prompt.contains("Wednesday 9 December 2026"), "{prompt}");
    assert!(prompt.contains("1. "), "{prompt}");
    let contexts: Vec<Value> = sqlx::query_scalar("select to_jsonb(id) from conversation_contexts")
        .fetch_all(&chat.app.db)
        .await
        .unwrap_or_default();
    for id in contexts {
        let id = id.as_str().unwrap_or_default().to_owned();
        assert!(!prompt.contains(&id), "a context id reached the judge");
    }
}
