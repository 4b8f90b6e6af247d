//! The specialist's prompt (call 2 of a turn), packed within a token budget by
//! [`ContextPacker`].
//!
//! What the prompt holds, in order: the persona; the user's local date and time and how long
//! since the last exchange; the domain role's prompt; the user's profile and preferences;
//! memories valid now, most relevant first; earlier messages relevant to this one (from any of
//! the user's conversations, dated); canvas blocks the user can read; today's agenda when the
//! message is about time or plans; then the active context's recent messages and the new one.
//!
//! When the whole does not fit the budget, parts are cut in this order until it does:
//! 1. related earlier messages, least similar first;
//! 2. canvas blocks, least relevant first;
//! 3. agenda entries, latest first;
//! 4. memories, least relevant first;
//! 5. the profile's preferences, then the profile;
//! 6. the active context's messages, oldest first — the newest [`KEPT_RECENT`] are never cut.
//!
//! The persona, the time, the role and the new message are never cut. Tokens are estimated as
//! one per four bytes of text (rounded up), a deliberate over-estimate for English that holds
//! for any tokenizer our providers use within a few percent on prose.

use serde::Serialize;

use crate::chat::{ChatMessage, ChatRequest, Role};

/// Messages of the active context that are never cut.
pub const KEPT_RECENT: usize = 4;

/// Estimated tokens of a text.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The persona: who the assistant is, whatever the domain role.
pub const PERSONA: &str = "You are Potentia, the user's personal assistant and thinking partner. \
You are warm, human and supportive, centred on the user and their life, and proactive: you \
notice what matters to them, remember it, and offer the next helpful step without being asked. \
You are not a business strategist, consultant or CEO and never describe yourself as one. Speak \
plainly and briefly. When the user greets you or makes small talk, answer in kind and do not \
bring up old topics unless they do. Use the tools to read and change the user's canvases and \
calendar when that helps; say what you did.";

/// One earlier message relevant to this one.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedItem {
    /// "3 days ago (Saturday 29 November 2026)".
    pub when: String,
    pub role: String,
    pub text: String,
    pub similarity: f64,
}

/// One canvas block relevant to the message.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockItem {
    pub canvas_title: String,
    pub text: String,
    pub score: f64,
}

/// One agenda entry, already in the user's local time.
#[derive(Debug, Clone, PartialEq)]
pub struct AgendaItem {
    /// "09:30–10:00" or "all day".
    pub when: String,
    pub title: String,
}

/// One memory, ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryItem {
    pub kind: String,
    pub text: String,
    pub relevance: Option<f64>,
}

/// Everything the packer may use.
#[derive(Debug, Clone, Default)]
pub struct PromptParts {
    /// "Wednesday 2 December 2026, 09:14 (Europe/Paris)".
    pub local_now: String,
    /// "7 days ago", or `None` for the first message.
    pub since_last: Option<String>,
    /// The chosen domain role: its name and prompt.
    pub role: Option<(String, String)>,
    /// Name, email, time zone, locale.
    pub profile: Vec<(String, String)>,
    /// The profile's preferences as `key: value` lines.
    pub preferences: Vec<String>,
    /// Most relevant first.
    pub memories: Vec<MemoryItem>,
    /// Most similar first.
    pub related: Vec<RelatedItem>,
    /// Most relevant first.
    pub blocks: Vec<BlockItem>,
    /// In time order; `None` when the message is not about time or plans.
    pub agenda: Option<Vec<AgendaItem>>,
    /// The active context's recent messages, oldest first.
    pub history: Vec<ChatMessage>,
    /// The new message.
    pub message: String,
}

/// What was packed and what was cut, per part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackReport {
    pub budget_tokens: usize,
    pub estimated_tokens: usize,
    pub memories: usize,
    pub related: usize,
    pub blocks: usize,
    pub agenda: usize,
    pub history: usize,
    pub cut_memories: usize,
    pub cut_related: usize,
    pub cut_blocks: usize,
    pub cut_agenda: usize,
    pub cut_history: usize,
    pub cut_profile: bool,
}

#[derive(Debug, Clone)]
pub struct ContextPacker {
    pub budget_tokens: usize,
}

impl ContextPacker {
    pub fn new(budget_tokens: usize) -> Self {
        Self { budget_tokens }
    }

    /// The prompt within the budget (or only the parts never cut, when even they exceed it).
    pub fn pack(&self, mut parts: PromptParts) -> (ChatRequest, PackReport) {
        let mut report = PackReport {
            budget_tokens: self.budget_tokens,
            ..PackReport::default()
        };
        loop {
            let request = render(&parts);
            let tokens = request_tokens(&request);
            if tokens <= self.budget_tokens || !cut_one(&mut parts, &mut report) {
                report.estimated_tokens = tokens;
                report.memories = parts.memories.len();
                report.related = parts.related.len();
                report.blocks = parts.blocks.len();
                report.agenda = parts.agenda.as_ref().map_or(0, Vec::len);
                report.history = parts.history.len();
                return (request, report);
            }
        }
    }
}

/// Estimated tokens of a whole request (system, messages, tool specs).
pub fn request_tokens(request: &ChatRequest) -> usize {
    let system = request.system.as_deref().map_or(0, estimate_tokens);
    let messages: usize = request
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content) + 4)
        .sum();
    let tools: usize = request
        .tools
        .iter()
        .map(|t| estimate_tokens(&t.description) + estimate_tokens(&t.parameters.to_string()))
        .sum();
    system + messages + tools
}

/// Cuts the next part in the documented order; false when nothing is left to cut.
fn cut_one(parts: &mut PromptParts, report: &mut PackReport) -> bool {
    if parts.related.pop().is_some() {
        report.cut_related += 1;
    } else if parts.blocks.pop().is_some() {
        report.cut_blocks += 1;
    } else if parts.agenda.as_mut().and_then(Vec::pop).is_some() {
        report.cut_agenda += 1;
    } else if parts.memories.pop().is_some() {
        report.cut_memories += 1;
    } else if parts.preferences.pop().is_some() || parts.profile.pop().is_some() {
        report.cut_profile = true;
    } else if parts.history.len() > KEPT_RECENT {
        parts.history.remove(0);
        report.cut_history += 1;
    } else {
        return false;
    }
    true
}

fn render(parts: &PromptParts) -> ChatRequest {
    let mut system = String::with_capacity(4096);
    system.push_str(PERSONA);
    system.push_str("\n\n## Now\n");
    system.push_str(&format!(
        "The user's local date and time: {}.\n",
        parts.local_now
    ));
    match &parts.since_last {
        Some(since) => system.push_str(&format!("Their previous message was {since}.\n")),
        None => system.push_str("This is the first message of this conversation.\n"),
    }
    if let Some((name, prompt)) = &parts.role {
        system.push_str(&format!(
            "\n## Your role for this message: {name}\n{prompt}\n"
        ));
    }
    if !parts.profile.is_empty() || !parts.preferences.is_empty() {
        system.push_str("\n## The user\n");
        for (key, value) in &parts.profile {
            system.push_str(&format!("- {key}: {value}\n"));
        }
        for line in &parts.preferences {
            system.push_str(&format!("- preference {line}\n"));
        }
    }
    if !parts.memories.is_empty() {
        system.push_str("\n## What you know about the user (true now)\n");
        for memory in &parts.memories {
            system.push_str(&format!("- ({}) {}\n", memory.kind, memory.text));
        }
    }
    if !parts.related.is_empty() {
        system.push_str("\n## Earlier messages that may be relevant\n");
        for item in &parts.related {
            system.push_str(&format!(
                "- {} the {} wrote: {}\n",
                item.when, item.role, item.text
            ));
        }
    }
    if !parts.blocks.is_empty() {
        system.push_str("\n## From the user's canvases\n");
        for block in &parts.blocks {
            system.push_str(&format!("- [{}] {}\n", block.canvas_title, block.text));
        }
    }
    if let Some(agenda) = &parts.agenda {
        system.push_str("\n## Today's agenda\n");
        if agenda.is_empty() {
            system.push_str("- nothing scheduled\n");
        }
        for item in agenda {
            system.push_str(&format!("- {}: {}\n", item.when, item.title));
        }
    }
    let mut messages = parts.history.clone();
    messages.push(ChatMessage::user(parts.message.clone()));
    // Providers want the conversation to start with the user.
    while messages.first().is_some_and(|m| m.role != Role::User) {
        messages.remove(0);
    }
    ChatRequest {
        system: Some(system),
        messages,
        temperature: Some(0.7),
        max_tokens: Some(1024),
        response_schema: None,
        tools: Vec::new(),
    }
}

/// Whether a message is about time or plans (then today's agenda goes into the prompt).
pub fn is_about_time(message: &str) -> bool {
    let lower = message.to_lowercase();
    TIME_WORDS.iter().any(|w| {
        lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == *w)
    })
}

const TIME_WORDS: &[&str] = &[
    "today",
    "tomorrow",
    "tonight",
    "yesterday",
    "week",
    "weekend",
    "morning",
    "afternoon",
    "evening",
    "schedule",
    "calendar",
    "agenda",
    "meeting",
    "meetings",
    "plan",
    "plans",
    "planning",
    "busy",
    "free",
    "when",
    "time",
    "deadline",
    "appointment",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "next",
    "later",
    "soon",
    "due",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(history: usize, memories: usize, related: usize) -> PromptParts {
        PromptParts {
            local_now: "Wednesday 2 December 2026, 09:00 (UTC)".into(),
            since_last: Some("5 minutes ago".into()),
            profile: vec![("name".into(), "Ada".into())],
            memories: (0..memories)
                .map(|i| MemoryItem {
                    kind: "fact".into(),
                    text: format!("memory {i} {}", "x".repeat(200)),
                    relevance: None,
                })
                .collect(),
            related: (0..related)
                .map(|i| RelatedItem {
                    when: "1 day ago".into(),
                    role: "user".into(),
                    text: format!("related {i} {}", "y".repeat(200)),
                    similarity: 0.5,
                })
                .collect(),
            history: (0..history)
                .map(|i| {
                    if i % 2 == 0 {
                        ChatMessage::user(format!("q{i} {}", "z".repeat(200)))
                    } else {
                        ChatMessage::assistant(format!("a{i}"))
                    }
                })
                .collect(),
            message: "what next?".into(),
            ..PromptParts::default()
        }
    }

    #[test]
    fn everything_fits_a_large_budget() {
        let (request, report) = ContextPacker::new(100_000).pack(parts(10, 5, 5));
        assert_eq!(
            (report.memories, report.related, report.history),
            (5, 5, 10)
        );
        assert!(request.system.unwrap_or_default().contains("memory 4"));
        assert_eq!(
            request.messages.last().map(|m| m.content.as_str()),
            Some("what next?")
        );
    }

    #[test]
    fn related_messages_are_cut_before_memories_and_memories_before_history() {
        let full = request_tokens(&ContextPacker::new(usize::MAX).pack(parts(10, 5, 5)).0);
        let (_, report) = ContextPacker::new(full - 20).pack(parts(10, 5, 5));
        assert!(report.cut_related > 0);
        assert_eq!((report.cut_memories, report.cut_history), (0, 0));
        let (_, report) = ContextPacker::new(full - 400).pack(parts(10, 5, 5));
        assert_eq!(report.cut_related, 5);
        assert!(report.cut_memories > 0);
        assert_eq!(report.cut_history, 0);
    }

    #[test]
    fn the_newest_messages_and_the_persona_are_never_cut() {
        let (request, report) = ContextPacker::new(10).pack(parts(10, 5, 5));
        assert_eq!(report.history, KEPT_RECENT);
        assert!(request.system.unwrap_or_default().starts_with(PERSONA));
        assert!(report.estimated_tokens > 10);
    }

    #[test]
    fn messages_about_time_are_recognized() {
        assert!(is_about_time("What's on my calendar tomorrow?"));
        assert!(!is_about_time("hi"));
    }
}
