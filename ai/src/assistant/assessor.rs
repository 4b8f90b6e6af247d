//! The assessor (call 3 of a turn), run as a durable job after the answer is stored.
//!
//! 1. Small talk teaches nothing: no model call, no memory; a greeting context's summary
//!    says so.
//! 2. Otherwise one call extracts the facts, preferences and rules the **user** stated in the
//!    exchange and rewrites the context's rolling summary (skipped extraction when the user's
//!    `memory_extraction` preference is off).
//! 3. For each extracted memory, the similar memories valid now are fetched; an exact repeat is
//!    `NONE` without a call, no similar memory is `ADD` without a call, else the model decides
//!    `ADD` / `UPDATE` / `DELETE` / `NONE`, seeing the candidates under small integer ids
//!    (never UUIDs). `UPDATE` writes the new memory and ends the old one's validity
//!    (`invalid_at`, a history row with the reason); `DELETE` ends it; a contradiction is never
//!    kept side by side.
//! 4. Memory changes, the summary and the job's removal commit in one transaction.

use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::conversations::{self, MessageRole};
use super::jobs::{self, JobKind};
use super::judge::{content_words, is_small_talk};
use super::memories::{self, Memory, MemoryKind, NewMemory, Origin, MAX_MEMORY_CHARS};
use super::text::{flat, parse_json};
use super::turn::Assistant;
use crate::chat::{ChatMessage, ChatRequest, ResponseSchema};
use crate::embed::Purpose;
use crate::error::AiError;
use crate::store::vector_literal;

/// The longest rolling summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1200;
/// Memories extracted from one exchange, at most.
pub const MAX_EXTRACTED: usize = 8;
/// Similar memories shown to the model per extracted one.
pub const CANDIDATES: i64 = 5;
/// Similarity from which an existing memory is a candidate to update.
pub const CANDIDATE_SIMILARITY: f64 = 0.3;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Extracted {
    pub kind: MemoryKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Extraction {
    #[serde(default)]
    memories: Vec<Extracted>,
    #[serde(default)]
    summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Add,
    Update,
    Delete,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Reconciliation {
    action: Action,
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    reason: String,
}

/// What one assessment did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssessReport {
    pub added: usize,
    pub updated: usize,
    pub invalidated: usize,
    pub unchanged: usize,
    pub summary_updated: bool,
}

/// A change decided before the transaction.
enum Change {
    Add {
        memory: Extracted,
        reason: String,
    },
    Replace {
        old: Uuid,
        memory: Extracted,
        reason: String,
    },
    Invalidate {
        old: Uuid,
        reason: String,
    },
}

/// Assesses the exchange ending with assistant message `message` and removes its job.
pub async fn assess(assistant: &Assistant, message: Uuid) -> Result<AssessReport, AiError> {
    let db = assistant.db();
    let mut report = AssessReport::default();
    let Some(answer) = conversations::find_message(db, message).await? else {
        jobs::complete(db, JobKind::Assess, message).await?;
        return Ok(report);
    };
    let question = match answer.reply_to {
        Some(id) => conversations::find_message(db, id).await?,
        None => None,
    };
    let Some(question) = question else {
        jobs::complete(db, JobKind::Assess, message).await?;
        return Ok(report);
    };
    let user: Uuid = sqlx::query_scalar!(
        "select user_id from conversations where id = $1",
        answer.conversation_id
    )
    .fetch_optional(db)
    .await?
    .ok_or(AiError::NotFound {
        what: "conversation",
    })?;
    let summary_before: String = sqlx::query_scalar!(
        "select summary from conversation_contexts where id = $1",
        question.context_id
    )
    .fetch_optional(db)
    .await?
    .unwrap_or_default();
    let now = assistant.now().max(answer.created_at);

    let (summary, changes) = if is_small_talk(&question.text) {
        let summary = if summary_before.trim().is_empty() {
            "Greetings and small talk.".to_owned()
        } else {
            summary_before.clone()
        };
        (summary, Vec::new())
    } else {
        let chat = assistant
            .chat()
            .cloned()
            .ok_or(AiError::NotConfigured { what: "chat" })?;
        let extract = memories::extraction_enabled(db, user).await?;
        let response = chat
            .complete(&extraction_request(
                &summary_before,
                &question.text,
                &answer.text,
                extract,
            ))
            .await?;
        let parsed = parse_json::<Extraction>(&response.text).unwrap_or(Extraction {
            memories: Vec::new(),
            summary: String::new(),
        });
        let summary = if parsed.summary.trim().is_empty() {
            fallback_summary(&summary_before, &question.text)
        } else {
            flat(&parsed.summary, MAX_SUMMARY_CHARS)
        };
        let mut changes = Vec::new();
        // A user at the cap learns nothing more until they forget something.
        let room = memories::count(db, user).await? < memories::MAX_MEMORIES_PER_USER;
        if extract && room {
            let mut seen = Vec::new();
            for memory in parsed.memories.into_iter().take(MAX_EXTRACTED) {
                let text = flat(&memory.text, MAX_MEMORY_CHARS);
                if text.is_empty() || seen.contains(&text.to_lowercase()) {
                    continue;
                }
                seen.push(text.to_lowercase());
                let memory = Extracted {
                    kind: memory.kind,
                    text,
                };
                match reconcile(assistant, chat.as_ref(), user, memory, now).await? {
                    Some(change) => changes.push(change),
                    None => report.unchanged += 1,
                }
            }
        }
        (summary, changes)
    };

    // The context's embedding: its summary with its latest user messages.
    let context_text = {
        let recent = conversations::recent_in_context(db, question.context_id, 6).await?;
        let mut text = summary.clone();
        for m in recent.iter().filter(|m| m.role == MessageRole::User) {
            text.push('\n');
            text.push_str(&m.text);
        }
        text
    };
    let context_vector = match assistant.embedder() {
        Some(embedder) if !is_small_talk(&question.text) || summary_before.is_empty() => {
            match embedder.embed(&[context_text], Purpose::Document).await {
                Ok(mut vectors) => vectors
                    .pop()
                    .map(|v| (vector_literal(&v), embedder.model().to_owned())),
                Err(err) => {
                    tracing::info!(error = %err, "the context summary is stored without its embedding");
                    None
                }
            }
        }
        _ => None,
    };

    let mut tx = db.begin().await?;
    for change in changes {
        match change {
            Change::Add { memory, reason } => {
                memories::add(&mut tx, &new_memory(user, &memory, &question, &reason, now)).await?;
                report.added += 1;
            }
            Change::Replace {
                old,
                memory,
                reason,
            } => {
                let added =
                    memories::add(&mut tx, &new_memory(user, &memory, &question, &reason, now))
                        .await?;
                memories::invalidate(
                    &mut tx,
                    user,
                    old,
                    now,
                    Some(added.id),
                    &reason,
                    Some(question.id),
                )
                .await?;
                report.updated += 1;
            }
            Change::Invalidate { old, reason } => {
                if memories::invalidate(&mut tx, user, old, now, None, &reason, Some(question.id))
                    .await?
                {
                    report.invalidated += 1;
                }
            }
        }
    }
    conversations::set_summary(
        &mut *tx,
        question.context_id,
        &summary,
        context_vector
            .as_ref()
            .map(|(v, m)| (v.as_str(), m.as_str())),
    )
    .await?;
    report.summary_updated = summary != summary_before;
    jobs::complete(&mut *tx, JobKind::Assess, message).await?;
    tx.commit().await?;
    Ok(report)
}

fn new_memory<'a>(
    user: Uuid,
    memory: &'a Extracted,
    question: &conversations::Message,
    reason: &'a str,
    now: chrono::DateTime<chrono::Utc>,
) -> NewMemory<'a> {
    NewMemory {
        user_id: user,
        kind: memory.kind,
        text: &memory.text,
        valid_at: question.created_at.min(now),
        origin: Origin::Assessor,
        source_message_id: Some(question.id),
        source_conversation_id: Some(question.conversation_id),
        reason,
        at: now,
    }
}

/// Decides what an extracted memory does to the stored ones; `None` for nothing.
async fn reconcile(
    assistant: &Assistant,
    chat: &dyn crate::chat::ChatModel,
    user: Uuid,
    memory: Extracted,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Change>, AiError> {
    let db = assistant.db();
    let vector = match assistant.embedder() {
        Some(embedder) => match embedder
            .embed(std::slice::from_ref(&memory.text), Purpose::Query)
            .await
        {
            Ok(mut v) => v
                .pop()
                .map(|v| (vector_literal(&v), embedder.model().to_owned())),
            Err(_) => None,
        },
        None => None,
    };
    let valid = memories::relevant(
        db,
        user,
        now,
        vector.as_ref().map(|(v, m)| (v.as_str(), m.as_str())),
        if vector.is_some() { CANDIDATES } else { 200 },
    )
    .await?;
    let normalized = memory.text.to_lowercase();
    if valid
        .iter()
        .any(|(m, _)| m.text.to_lowercase() == normalized)
    {
        return Ok(None);
    }
    let words = content_words(&memory.text);
    let candidates: Vec<&Memory> = valid
        .iter()
        .filter(|(m, similarity)| {
            similarity.is_some_and(|s| s >= CANDIDATE_SIMILARITY)
                || words.intersection(&content_words(&m.text)).count() > 0
        })
        .map(|(m, _)| m)
        .take(CANDIDATES as usize)
        .collect();
    if candidates.is_empty() {
        return Ok(Some(Change::Add {
            memory,
            reason: "a new memory".into(),
        }));
    }
    let response = chat
        .complete(&reconcile_request(&memory, &candidates))
        .await?;
    let Some(decision) = parse_json::<Reconciliation>(&response.text) else {
        // An unusable answer must not lose what the user said; nor may it contradict silently.
        return Ok(Some(Change::Add {
            memory,
            reason: "a new memory (the reconciliation answer was unusable)".into(),
        }));
    };
    let target = decision
        .id
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| candidates.get(i as usize))
        .map(|m| m.id);
    let reason = flat(&decision.reason, 300);
    let text = decision
        .text
        .map(|t| flat(&t, MAX_MEMORY_CHARS))
        .filter(|t| !t.is_empty());
    Ok(match (decision.action, target) {
        (Action::None, _) => None,
        (Action::Add, _) | (Action::Update | Action::Delete, None) => Some(Change::Add {
            memory: Extracted {
                kind: memory.kind,
                text: text.unwrap_or(memory.text),
            },
            reason: if reason.is_empty() {
                "a new memory".into()
            } else {
                reason
            },
        }),
        (Action::Update, Some(old)) => Some(Change::Replace {
            old,
            memory: Extracted {
                kind: memory.kind,
                text: text.unwrap_or(memory.text),
            },
            reason: if reason.is_empty() {
                "updated by a newer statement".into()
            } else {
                reason
            },
        }),
        (Action::Delete, Some(old)) => Some(Change::Invalidate {
            old,
            reason: if reason.is_empty() {
                "no longer true".into()
            } else {
                reason
            },
        }),
    })
}

fn extraction_request(summary: &str, question: &str, answer: &str, extract: bool) -> ChatRequest {
    let task = if extract {
        "From the exchange below, list the durable facts about the user, their preferences and the \
         rules they set for you, each as one short sentence in the third person (\"Prefers tea \
         over coffee\"). Only what the user stated about themselves; nothing from greetings, \
         small talk, questions or the assistant's suggestions. Then rewrite the topic's summary \
         in at most three sentences, including the new exchange."
    } else {
        "Rewrite the topic's summary in at most three sentences, including the exchange below. \
         List no memories."
    };
    ChatRequest {
        system: Some(format!(
            "You maintain an assistant's memory. {task} Answer JSON."
        )),
        messages: vec![ChatMessage::user(format!(
            "Topic summary so far: {}\n\nUser: {}\nAssistant: {}",
            if summary.trim().is_empty() {
                "(none)"
            } else {
                summary
            },
            flat(question, 4000),
            flat(answer, 4000)
        ))],
        temperature: Some(0.0),
        max_tokens: Some(600),
        response_schema: Some(ResponseSchema {
            name: "memory_extraction".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "memories": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string", "enum": ["fact", "preference", "rule"]},
                            "text": {"type": "string"}
                        },
                        "required": ["kind", "text"]
                    }},
                    "summary": {"type": "string"}
                },
                "required": ["memories", "summary"]
            }),
        }),
        tools: Vec::new(),
    }
}

fn reconcile_request(memory: &Extracted, candidates: &[&Memory]) -> ChatRequest {
    let mut listed = String::new();
    for (i, m) in candidates.iter().enumerate() {
        listed.push_str(&format!("{}. ({}) {}\n", i + 1, m.kind.as_str(), m.text));
    }
    ChatRequest {
        system: Some(
            "You keep an assistant's memories of a user consistent. Given a new memory and the \
             similar stored ones (numbered), answer JSON with action ADD (it is new), UPDATE (it \
             replaces stored memory `id`, e.g. a changed preference; give the new text), DELETE \
             (it says stored memory `id` is no longer true and adds nothing) or NONE (it is \
             already known), and a short reason."
                .to_owned(),
        ),
        messages: vec![ChatMessage::user(format!(
            "Stored memories:\n{listed}\nNew memory: ({}) {}",
            memory.kind.as_str(),
            memory.text
        ))],
        temperature: Some(0.0),
        max_tokens: Some(200),
        response_schema: Some(ResponseSchema {
            name: "memory_reconciliation".into(),
            schema: json!({
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NONE"]},
                    "id": {"type": "integer"},
                    "text": {"type": "string"},
                    "reason": {"type": "string"}
                },
                "required": ["action", "reason"]
            }),
        }),
        tools: Vec::new(),
    }
}

/// Without a usable summary from the model: the old one with the new question appended, cut.
fn fallback_summary(before: &str, question: &str) -> String {
    let joined = if before.trim().is_empty() {
        question.to_owned()
    } else {
        format!("{before} {question}")
    };
    let chars: Vec<char> = flat(&joined, usize::MAX).chars().collect();
    let start = chars.len().saturating_sub(MAX_SUMMARY_CHARS);
    chars[start..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_answers_parse() {
        let parsed: Option<Extraction> = parse_json(
            r#"{"memories":[{"kind":"preference","text":"Prefers tea"}],"summary":"Tea."}"#,
        );
        assert_eq!(parsed.map(|p| p.memories.len()), Some(1));
        let parsed: Option<Reconciliation> =
            parse_json(r#"{"action":"UPDATE","id":1,"text":"Prefers tea","reason":"switched"}"#);
        assert_eq!(parsed.map(|p| p.action), Some(Action::Update));
        assert!(parse_json::<Reconciliation>("UPDATE 1").is_none());
    }

    #[test]
    fn a_fallback_summary_keeps_the_latest_text() {
        let long = "x".repeat(MAX_SUMMARY_CHARS);
        let summary = fallback_summary(&long, "the end");
        assert!(summary.ends_with("the end"));
        assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS);
    }
}
