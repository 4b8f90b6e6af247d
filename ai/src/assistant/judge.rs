//! The judge (call 1 of a turn): which context — topic — a new message belongs to.
//!
//! The model proposes `continue`, `switch` (to a context it names by its small integer id) or
//! `new`; [`decide`] then applies the time rules around it, so that no answer of the model can
//! break them:
//!
//! | situation | outcome |
//! |---|---|
//! | the conversation has no context yet | `new` |
//! | the model fails or answers invalid JSON | as `continue`: after the idle gap that is `new`, unless the message refers to a topic (rows below) |
//! | `continue` on a context idle longer than the idle limit, on small talk | another context the message refers to, else `new` |
//! | `continue` on an idle context the message does not refer to | another context it refers to, else `new` |
//! | `continue` on a fresh context while the message refers only to another context | `switch` to that one |
//! | `switch` to an idle context on small talk | `new` |
//! | `switch` to a context id the model made up | as a failed call |
//! | `new` | `new` |
//!
//! "Refers to" is a similarity of the message to the context's summary (embedded with its
//! latest user messages) of at least [`JudgeSettings::reference_threshold`], or, without
//! embeddings, enough shared content words. Small talk ([`is_small_talk`]) never refers to
//! anything.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::clock::ago_in_words;
use super::text::{one_line, parse_json};
use crate::chat::ChatMessage;
use crate::chat::{ChatRequest, ResponseSchema};

/// What the judge decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Continue,
    Switch,
    New,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Switch => "switch",
            Self::New => "new",
        }
    }
}

/// Where the judge's decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionSource {
    /// The model's answer, kept.
    Model,
    /// The model's answer, overruled by a time or reference rule.
    Rule,
    /// The model failed or answered nonsense; the fallback decided.
    Fallback,
}

/// The decision of a turn, stored on the user message and sent to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: DecisionKind,
    /// The context the message goes to; `None` for `new` until it is created.
    pub context_id: Option<Uuid>,
    pub reason: String,
    pub source: DecisionSource,
    /// What the model proposed, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed: Option<DecisionKind>,
}

/// Settings of the judge's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSettings {
    /// A context idle longer than this is never continued on small talk (default 6 hours).
    pub idle_limit: Duration,
    /// Similarity of a message to a context's summary that counts as a reference (cosine).
    pub reference_threshold: f64,
    /// Without embeddings: content words shared with a context that count as a reference.
    pub reference_min_shared_words: usize,
    /// Messages of the active context shown to the judge.
    pub recent_messages: usize,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        Self {
            idle_limit: Duration::hours(6),
            reference_threshold: 0.45,
            reference_min_shared_words: 1,
            recent_messages: 6,
        }
    }
}

/// A context as the judge sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextView {
    pub id: Uuid,
    pub summary: String,
    pub last_active_at: DateTime<Utc>,
    pub message_count: i32,
    /// The context's latest user messages (for lexical references and the prompt).
    pub recent_user_texts: Vec<String>,
    /// Similarity of the new message to the context, when both are embedded.
    pub similarity: Option<f64>,
}

/// Everything the judge decides on.
#[derive(Debug, Clone)]
pub struct JudgeInput<'a> {
    pub message: &'a str,
    pub now: DateTime<Utc>,
    /// The user's local "now", in words ("Tuesday 2 December 2026, 09:14 (Europe/Paris)").
    pub local_now: &'a str,
    /// When the conversation's last message was written.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Most recently active first; the first is the active context.
    pub contexts: &'a [ContextView],
    /// The active context's last messages, oldest first, as `(role, text)`.
    pub recent: &'a [(String, String)],
}

/// The model's answer, as the schema asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelAnswer {
    pub decision: DecisionKind,
    /// The small integer id of a context (1 is the most recently active).
    #[serde(default)]
    pub context: Option<u32>,
    #[serde(default)]
    pub reason: String,
}

/// The schema of the judge's answer.
pub fn response_schema() -> ResponseSchema {
    ResponseSchema {
        name: "context_decision".into(),
        schema: serde_json::json!({
            "type": "object",
            "properties": {
                "decision": {"type": "string", "enum": ["continue", "switch", "new"]},
                "context": {"type": "integer", "description": "for switch: the number of the context"},
                "reason": {"type": "string"}
            },
            "required": ["decision", "reason"]
        }),
    }
}

/// The judge's prompt. Contexts are numbered from 1 (the active one); ids never reach the model.
pub fn request(input: &JudgeInput<'_>) -> ChatRequest {
    let mut prompt = String::new();
    prompt.push_str(&format!("The user's local time is {}.\n", input.local_now));
    match input.last_message_at {
        Some(at) => prompt.push_str(&format!(
            "Their previous message in this conversation was {}.\n",
            ago_in_words(input.now - at)
        )),
        None => prompt.push_str("This is the first message of the conversation.\n"),
    }
    prompt.push_str("\nTopics of this conversation (1 is the active one):\n");
    for (i, context) in input.contexts.iter().enumerate() {
        let summary = if context.summary.trim().is_empty() {
            context.recent_user_texts.join(" / ")
        } else {
            context.summary.clone()
        };
        prompt.push_str(&format!(
            "{}. {} — last active {}, {} messages\n",
            i + 1,
            one_line(&summary, 400),
            ago_in_words(input.now - context.last_active_at),
            context.message_count
        ));
    }
    if !input.recent.is_empty() {
        prompt.push_str("\nThe active topic's last messages:\n");
        for (role, text) in input.recent {
            prompt.push_str(&format!("{role}: {}\n", one_line(text, 300)));
        }
    }
    prompt.push_str(&format!(
        "\nNew message: {}\n",
        one_line(input.message, 2000)
    ));
    ChatRequest {
        system: Some(JUDGE_SYSTEM.to_owned()),
        messages: vec![ChatMessage::user(prompt)],
        temperature: Some(0.0),
        max_tokens: Some(200),
        response_schema: Some(response_schema()),
        tools: Vec::new(),
    }
}

const JUDGE_SYSTEM: &str = "You route a user's new chat message to a topic. Answer JSON: \
decision \"continue\" (it goes on with topic 1), \"switch\" (it returns to an earlier topic: give \
its number as context) or \"new\" (a new topic), and a short reason. A greeting or small talk \
after a long pause starts a new topic. Return to an earlier topic only when the message refers \
to it.";

/// Parses the model's answer; `None` for anything that is not the schema's JSON.
pub fn parse_answer(text: &str) -> Option<ModelAnswer> {
    parse_json(text)
}

/// Applies the rules of the module's table to the model's answer (`None`: the call failed or
/// the answer was invalid).
pub fn decide(
    input: &JudgeInput<'_>,
    answer: Option<&ModelAnswer>,
    settings: &JudgeSettings,
) -> Decision {
    let Some(active) = input.contexts.first() else {
        return Decision {
            decision: DecisionKind::New,
            context_id: None,
            reason: "the conversation's first topic".into(),
            source: DecisionSource::Rule,
            proposed: answer.map(|a| a.decision),
        };
    };
    let small_talk = is_small_talk(input.message);
    let idle = |c: &ContextView| input.now - c.last_active_at > settings.idle_limit;
    let refers = |c: &ContextView| !small_talk && reference(input.message, c, settings);
    // The context the message refers to most, other than `except`.
    let best_reference = |except: Uuid| -> Option<&ContextView> {
        input
            .contexts
            .iter()
            .filter(|c| c.id != except && refers(c))
            .max_by(|a, b| {
                score(input.message, a)
                    .partial_cmp(&score(input.message, b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    };

    let (proposal, source, model_reason) = match answer {
        None => (None, DecisionSource::Fallback, String::new()),
        Some(a) => {
            let target = match a.decision {
                DecisionKind::Switch => a
                    .context
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|i| input.contexts.get(i as usize)),
                _ => None,
            };
            match (a.decision, target) {
                (DecisionKind::Switch, None) => (None, DecisionSource::Fallback, String::new()),
                (kind, target) => (
                    Some((kind, target)),
                    DecisionSource::Model,
                    a.reason.clone(),
                ),
            }
        }
    };
    // No usable answer: as if the model said `continue`; the rules below then start a new topic
    // after the idle gap unless the message refers to one.
    let (kind, target) = proposal.unwrap_or((DecisionKind::Continue, None));
    let proposed = answer.map(|a| a.decision);
    let made =
        |decision: DecisionKind, context: Option<&ContextView>, reason: String, source| Decision {
            decision,
            context_id: context.map(|c| c.id),
            reason,
            source,
            proposed,
        };
    let kept_reason = |fallback: &str| {
        if model_reason.trim().is_empty() {
            fallback.to_owned()
        } else {
            one_line(&model_reason, 300)
        }
    };
    let fallback_or_rule = if source == DecisionSource::Fallback {
        DecisionSource::Fallback
    } else {
        DecisionSource::Rule
    };

    match kind {
        DecisionKind::New => made(DecisionKind::New, None, kept_reason("a new topic"), source),
        DecisionKind::Switch => {
            let target = target.unwrap_or(active);
            if idle(target) && small_talk {
                made(
                    DecisionKind::New,
                    None,
                    format!(
                        "small talk does not re-open a topic idle since {}",
                        ago_in_words(input.now - target.last_active_at)
                    ),
                    DecisionSource::Rule,
                )
            } else if target.id == active.id {
                made(
                    DecisionKind::Continue,
                    Some(active),
                    kept_reason("same topic"),
                    source,
                )
            } else {
                made(
                    DecisionKind::Switch,
                    Some(target),
                    kept_reason("back to an earlier topic"),
                    source,
                )
            }
        }
        DecisionKind::Continue => {
            if idle(active) && !refers(active) {
                let why = if small_talk {
                    "small talk after"
                } else {
                    "the message does not refer to the topic, idle for"
                };
                let idle_words = ago_in_words(input.now - active.last_active_at);
                match best_reference(active.id) {
                    Some(other) => made(
                        DecisionKind::Switch,
                        Some(other),
                        format!("{why} {idle_words}; it refers to an earlier topic"),
                        fallback_or_rule,
                    ),
                    None => made(
                        DecisionKind::New,
                        None,
                        format!("{why} {idle_words}: a new topic"),
                        fallback_or_rule,
                    ),
                }
            } else if !refers(active) {
                match best_reference(active.id) {
                    Some(other) => made(
                        DecisionKind::Switch,
                        Some(other),
                        "the message refers to an earlier topic, not the active one".into(),
                        fallback_or_rule,
                    ),
                    None => made(
                        DecisionKind::Continue,
                        Some(active),
                        if source == DecisionSource::Fallback {
                            format!(
                                "the judge gave no usable answer; the topic was active {}",
                                ago_in_words(input.now - active.last_active_at)
                            )
                        } else {
                            kept_reason("the same topic")
                        },
                        source,
                    ),
                }
            } else {
                made(
                    DecisionKind::Continue,
                    Some(active),
                    kept_reason("the same topic"),
                    source,
                )
            }
        }
    }
}

/// How strongly the message refers to a context: its embedding similarity, else the share of
/// its content words the context holds.
fn score(message: &str, context: &ContextView) -> f64 {
    match context.similarity {
        Some(s) => s,
        None => {
            let words = content_words(message);
            if words.is_empty() {
                return 0.0;
            }
            let theirs = context_words(context);
            words.intersection(&theirs).count() as f64 / words.len() as f64
        }
    }
}

fn reference(message: &str, context: &ContextView, settings: &JudgeSettings) -> bool {
    let words = content_words(message);
    let shared = words.intersection(&context_words(context)).count();
    let lexical = shared >= settings.reference_min_shared_words.max(1);
    lexical
        || context
            .similarity
            .is_some_and(|s| s >= settings.reference_threshold)
}

fn context_words(context: &ContextView) -> HashSet<String> {
    let mut words = content_words(&context.summary);
    for text in &context.recent_user_texts {
        words.extend(content_words(text));
    }
    words
}

/// Lower-cased words of at least four letters that are not common function words, with a
/// plural `s` dropped.
pub fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 4 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        })
        .collect()
}

const STOP_WORDS: &[&str] = &[
    "about",
    "after",
    "again",
    "also",
    "been",
    "before",
    "being",
    "could",
    "does",
    "doing",
    "done",
    "from",
    "have",
    "having",
    "here",
    "into",
    "just",
    "know",
    "like",
    "make",
    "more",
    "much",
    "need",
    "only",
    "other",
    "over",
    "really",
    "should",
    "some",
    "that",
    "than",
    "thank",
    "thanks",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "thing",
    "things",
    "this",
    "those",
    "today",
    "turn",
    "turned",
    "very",
    "want",
    "well",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "will",
    "with",
    "would",
    "your",
    "yours",
    "going",
    "good",
    "great",
    "tell",
    "help",
    "please",
    "maybe",
    "think",
    "time",
    "week",
    "yesterday",
    "tomorrow",
    "morning",
    "evening",
    "night",
    "hello",
    "there",
];

/// Whether a message is a greeting or small talk: short, and made only of such words.
pub fn is_small_talk(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return true;
    }
    if words.len() > 8 {
        return false;
    }
    words.iter().all(|w| SMALL_TALK_WORDS.contains(w))
}

const SMALL_TALK_WORDS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "heya",
    "hiya",
    "yo",
    "howdy",
    "morning",
    "good",
    "evening",
    "afternoon",
    "night",
    "day",
    "thanks",
    "thank",
    "you",
    "thx",
    "ty",
    "cheers",
    "ok",
    "okay",
    "k",
    "cool",
    "nice",
    "great",
    "awesome",
    "sure",
    "yes",
    "yeah",
    "yep",
    "no",
    "nope",
    "how",
    "are",
    "r",
    "u",
    "doing",
    "is",
    "it",
    "going",
    "what's",
    "whats",
    "up",
    "sup",
    "there",
    "again",
    "bye",
    "goodbye",
    "see",
    "later",
    "ya",
    "lol",
    "haha",
    "hmm",
    "oh",
    "well",
    "i'm",
    "im",
    "fine",
    "all",
    "right",
    "alright",
    "gm",
    "gn",
    "and",
    "so",
    "just",
    "checking",
    "in",
    "back",
    "me",
    "am",
    "everyone",
    "friend",
    "buddy",
    "pal",
    "mate",
    "the",
    "a",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn context(id: u128, summary: &str, idle: Duration, now: DateTime<Utc>) -> ContextView {
        ContextView {
            id: Uuid::from_u128(id),
            summary: summary.into(),
            last_active_at: now - idle,
            message_count: 4,
            recent_user_texts: Vec::new(),
            similarity: None,
        }
    }

    fn input<'a>(
        message: &'a str,
        contexts: &'a [ContextView],
        now: DateTime<Utc>,
    ) -> JudgeInput<'a> {
        JudgeInput {
            message,
            now,
            local_now: "now",
            last_message_at: contexts.first().map(|c| c.last_active_at),
            contexts,
            recent: &[],
        }
    }

    fn always(kind: DecisionKind) -> ModelAnswer {
        ModelAnswer {
            decision: kind,
            context: Some(1),
            reason: "model".into(),
        }
    }

    #[test]
    fn greetings_and_small_talk_are_recognized() {
        for text in [
            "hi",
            "Hello!",
            "hey there",
            "good morning",
            "thanks!",
            "how are you?",
            "what's up",
        ] {
            assert!(is_small_talk(text), "{text}");
        }
        for text in [
            "how did the coffee turn out?",
            "hi, can you plan my week?",
            "I switched to tea",
        ] {
            assert!(!is_small_talk(text), "{text}");
        }
    }

    #[test]
    fn a_greeting_after_a_week_is_a_new_topic_even_when_the_model_says_continue() {
        let now = Utc::now();
        let contexts = [context(
            1,
            "brewing pour-over coffee",
            Duration::days(7),
            now,
        )];
        let d = decide(
            &input("hi", &contexts, now),
            Some(&always(DecisionKind::Continue)),
            &JudgeSettings::default(),
        );
        assert_eq!(d.decision, DecisionKind::New);
        assert_eq!(d.source, DecisionSource::Rule);
    }

    #[test]
    fn a_greeting_after_five_minutes_continues() {
        let now = Utc::now();
        let contexts = [context(1, "", Duration::minutes(5), now)];
        let d = decide(
            &input("hi", &contexts, now),
            Some(&always(DecisionKind::Continue)),
            &JudgeSettings::default(),
        );
        assert_eq!(d.decision, DecisionKind::Continue);
    }

    #[test]
    fn a_reference_to_an_idle_topic_switches_back_to_it() {
        let now = Utc::now();
        let contexts = [
            context(2, "greetings", Duration::days(7), now),
            context(1, "brewing pour-over coffee", Duration::days(14), now),
        ];
        let d = decide(
            &input("how did the coffee turn out?", &contexts, now),
            Some(&always(DecisionKind::Continue)),
            &JudgeSettings::default(),
        );
        assert_eq!(d.decision, DecisionKind::Switch);
        assert_eq!(d.context_id, Some(Uuid::from_u128(1)));
    }

    #[test]
    fn a_failed_judge_falls_back_on_the_gap() {
        let now = Utc::now();
        let stale = [context(1, "coffee", Duration::hours(9), now)];
        let fresh = [context(1, "coffee", Duration::minutes(9), now)];
        let settings = JudgeSettings::default();
        assert_eq!(
            decide(&input("so anyway", &stale, now), None, &settings).decision,
            DecisionKind::New
        );
        assert_eq!(
            decide(&input("so anyway", &fresh, now), None, &settings).decision,
            DecisionKind::Continue
        );
    }

    #[test]
    fn a_made_up_context_number_counts_as_a_failed_call() {
        let now = Utc::now();
        let contexts = [context(1, "coffee", Duration::minutes(1), now)];
        let answer = ModelAnswer {
            decision: DecisionKind::Switch,
            context: Some(9),
            reason: String::new(),
        };
        let d = decide(
            &input("more", &contexts, now),
            Some(&answer),
            &JudgeSettings::default(),
        );
        assert_eq!(d.source, DecisionSource::Fallback);
        assert_eq!(d.decision, DecisionKind::Continue);
    }

    #[test]
    fn answers_parse_with_or_without_a_code_fence() {
        assert!(parse_answer("{\"decision\":\"new\",\"reason\":\"x\"}").is_some());
        assert!(parse_answer(
            "```json\n{\"decision\":\"switch\",\"context\":2,\"reason\":\"x\"}\n```"
        )
        .is_some());
        assert!(parse_answer("continue").is_none());
        assert!(parse_answer("{\"decision\":\"maybe\"}").is_none());
    }
}
