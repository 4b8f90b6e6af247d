//! A chat turn: the judge, the specialist with its tools, and the jobs that follow.
//!
//! [`Assistant::start_turn`] does what can fail with a status before anything streams: the
//! replay of a stored turn, the judge, storing the user message. It then spawns the rest and
//! hands back a channel of [`TurnEvent`]s: `Context`, `Delta`…, `ToolCall`/`ToolResult`,
//! `Message`, then `Title` after a first exchange. The spawned task owns the model call: when
//! the receiver goes away (a client that disconnected) the model stream is dropped, which
//! cancels it, and what was produced is stored with status `interrupted`.
//!
//! Idempotency: a user message is stored once per `client_message_id` (a unique key). A retry
//! finds it: with its answer, the stored turn is replayed; while this node is still answering
//! it, the retry waits for the answer; with no answer and nobody answering (a crash, or a model
//! failure before any text), the specialist runs for the stored message — the judge never runs
//! twice and no second user message is written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use super::clock::{ago_in_words, Clock};
use super::conversations::{
    self, Conversation, Message, MessageRole, MessageStatus, NewMessage, RelatedQuery,
};
use super::judge::{
    self, ContextView, Decision, DecisionKind, DecisionSource, JudgeInput, JudgeSettings,
};
use super::memories;
use super::packer::{
    self, AgendaItem, BlockItem, ContextPacker, MemoryItem, PackReport, PromptParts, RelatedItem,
};
use super::roles;
use super::tools::{self, AssistantHost, AuditRecord, ToolContext, ToolRecord};
use crate::chat::{ChatMessage, ChatModel, ChatRequest, StreamEvent, ToolCall, Usage};
use crate::embed::{Embedder, Purpose};
use crate::error::AiError;
use crate::retrieval::{semantic, Retriever, Scope};
use crate::store::vector_literal;

/// Topics of a conversation shown to the judge, the most recently active first.
pub const MAX_JUDGED_CONTEXTS: usize = 20;

/// Settings of the pipeline, with their documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantSettings {
    pub judge: JudgeSettings,
    /// The specialist prompt's budget, in estimated tokens.
    pub prompt_budget_tokens: usize,
    /// Tool rounds (a model answer with tool calls, then their results) per turn.
    pub max_tool_rounds: usize,
    /// Messages of the active context offered to the specialist.
    pub max_history: usize,
    /// Earlier messages retrieved into the prompt, and how similar they must be.
    pub related_messages: usize,
    pub related_min_similarity: f64,
    /// Canvas blocks retrieved into the prompt.
    pub blocks: usize,
    /// Memories offered to the specialist.
    pub memories: usize,
    /// A domain role is taken only when the message is at least this similar to it.
    pub role_min_similarity: f64,
    /// How long a retry waits for the answer another request is producing.
    pub replay_wait: Duration,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        Self {
            judge: JudgeSettings::default(),
            prompt_budget_tokens: 6_000,
            max_tool_rounds: 4,
            max_history: 50,
            related_messages: 10,
            related_min_similarity: 0.25,
            blocks: 5,
            memories: 20,
            role_min_similarity: 0.3,
            replay_wait: Duration::from_secs(60),
        }
    }
}

/// A turn to run.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    pub text: String,
    pub client_message_id: String,
    /// Sent with the request; else the profile's zone.
    pub time_zone: Option<Tz>,
    pub request_id: Option<String>,
}

/// The outcome of a turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnResult {
    pub user_message: Message,
    pub assistant_message: Message,
    pub decision: Decision,
    pub domain_role: Option<String>,
    pub tool_calls: Vec<ToolRecord>,
    /// Whether this is a stored turn replayed for a retry.
    pub replayed: bool,
    /// What the specialist prompt held (absent on a replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PackReport>,
}

/// What a running turn reports, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TurnEvent {
    /// The judge's decision and the stored user message.
    Context {
        decision: Decision,
        user_message: Message,
    },
    Delta {
        text: String,
    },
    ToolCall {
        call: ToolCall,
    },
    ToolResult {
        result: ToolRecord,
    },
    /// The stored assistant message, with the whole turn.
    Message {
        turn: Box<TurnResult>,
    },
    /// The generated title, after a first exchange.
    Title {
        title: String,
    },
    /// The specialist failed; the user message is stored, and a retry with the same
    /// `client_message_id` answers it.
    Error {
        failure: TurnFailure,
        detail: String,
    },
}

/// Why a running turn failed: a closed set, so every caller maps each kind on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnFailure {
    NotConfigured,
    Unavailable,
    Rejected,
    NotFound {
        what: &'static str,
    },
    TurnInProgress,
    /// The server's own failure (a model that does not load, the database).
    Internal,
}

impl Serialize for TurnFailure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl TurnFailure {
    /// The code clients read (`ai_unavailable`, …), as in the API's problems.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotConfigured => "ai_not_configured",
            Self::Unavailable => "ai_unavailable",
            Self::Rejected => "ai_rejected",
            Self::NotFound { .. } => "not_found",
            Self::TurnInProgress => "turn_in_progress",
            Self::Internal => "internal",
        }
    }
}

/// How a turn starts.
pub enum TurnStart {
    /// The turn was answered before: the stored answer.
    Replay(Box<TurnResult>),
    /// The turn runs; its events follow.
    Running(mpsc::Receiver<TurnEvent>),
}

/// The chat pipeline; cheap to clone.
#[derive(Clone)]
pub struct Assistant {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    chat: Option<Arc<dyn ChatModel>>,
    embedder: Option<Arc<dyn Embedder>>,
    retriever: Retriever,
    clock: Arc<dyn Clock>,
    settings: AssistantSettings,
    /// Turns this node is answering, by conversation and client message id.
    running: Mutex<HashSet<(Uuid, String)>>,
    /// Poked when jobs are queued.
    jobs: Arc<Notify>,
}

/// Removes a turn from the running set when the task ends, however it ends.
struct RunningGuard {
    inner: Arc<Inner>,
    key: (Uuid, String),
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.inner.running_set().remove(&self.key);
    }
}

impl Inner {
    fn running_set(&self) -> std::sync::MutexGuard<'_, HashSet<(Uuid, String)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The message embedded once per turn, for every similarity of the turn.
#[derive(Clone)]
struct MessageVector {
    literal: String,
    model: String,
    embedding: crate::embed::Embedding,
}

impl Assistant {
    pub fn new(
        db: PgPool,
        chat: Option<Arc<dyn ChatModel>>,
        embedder: Option<Arc<dyn Embedder>>,
        retriever: Retriever,
        clock: Arc<dyn Clock>,
        settings: AssistantSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                chat,
                embedder,
                retriever,
                clock,
                settings,
                running: Mutex::new(HashSet::new()),
                jobs: Arc::new(Notify::new()),
            }),
        }
    }

    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    pub fn settings(&self) -> &AssistantSettings {
        &self.inner.settings
    }

    pub fn chat(&self) -> Option<&Arc<dyn ChatModel>> {
        self.inner.chat.as_ref()
    }

    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.inner.embedder.as_ref()
    }

    /// Poked when chat jobs are queued; the job worker waits on it.
    pub fn jobs_notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.jobs)
    }

    /// The stored answer of a turn already taken with `client_message_id`, if any: what a retry
    /// gets without spending the caller's turn budget.
    pub async fn replay(
        &self,
        user_id: Uuid,
        conversation_id: Uuid,
        client_message_id: &str,
    ) -> Result<Option<TurnStart>, AiError> {
        let Some(conversation) =
            conversations::find(&self.inner.db, user_id, conversation_id).await?
        else {
            return Err(AiError::NotFound {
                what: "conversation",
            });
        };
        self.stored_turn(&conversation, client_message_id).await
    }

    /// Starts a turn (see the module doc). Errors come before anything is stored or streamed,
    /// except a specialist failure, which arrives as [`TurnEvent::Error`].
    pub async fn start_turn(
        &self,
        request: TurnRequest,
        host: Arc<dyn AssistantHost>,
    ) -> Result<TurnStart, AiError> {
        let chat = self
            .inner
            .chat
            .clone()
            .ok_or(AiError::NotConfigured { what: "chat" })?;
        let db = &self.inner.db;
        let conversation = conversations::find(db, request.user_id, request.conversation_id)
            .await?
            .ok_or(AiError::NotFound {
                what: "conversation",
            })?;
        let key = (conversation.id, request.client_message_id.clone());

        // A retry of a stored turn.
        if let Some(start) = self
            .stored_turn(&conversation, &request.client_message_id)
            .await?
        {
            return Ok(start);
        }
        if !self.inner.running_set().insert(key.clone()) {
            return self
                .wait_for_answer(&conversation, &request.client_message_id)
                .await;
        }
        let guard = RunningGuard {
            inner: Arc::clone(&self.inner),
            key,
        };
        // Stored between the check and the insert above, by another node: replay it.
        let stored =
            conversations::find_turn(db, conversation.id, &request.client_message_id).await?;
        if let Some((question, Some(answer))) = stored {
            return Ok(TurnStart::Replay(Box::new(replayed(question, answer))));
        }

        let (profile, vector) = tokio::join!(
            profile(db, request.user_id),
            self.embed_message(request.user_id, &request.text)
        );
        let profile = profile?;
        let zone = request.time_zone.unwrap_or(profile.zone);
        let now = self.inner.clock.now();

        let (question, early) = match stored {
            // Stored by an attempt that died before answering: answer it now.
            Some((question, _)) => (question, None),
            None => {
                // What depends on the message alone is read while the judge decides.
                let scope = MessageScope {
                    user: request.user_id,
                    workspace: conversation.workspace_id,
                    text: &request.text,
                    at: now,
                    vector: vector.as_ref(),
                };
                let (stored, early) = tokio::join!(
                    async {
                        let decision = self
                            .judge(
                                chat.as_ref(),
                                &conversation,
                                &request.text,
                                zone,
                                now,
                                vector.as_ref(),
                            )
                            .await?;
                        self.store_question(&conversation, &request, decision, now, host.as_ref())
                            .await
                    },
                    self.message_parts(&scope),
                );
                match stored? {
                    Some(question) => (question, Some(early?)),
                    None => {
                        drop(guard);
                        return self
                            .wait_for_answer(&conversation, &request.client_message_id)
                            .await;
                    }
                }
            }
        };
        let decision = decision_of(&question);

        let (events, receiver) = mpsc::channel(64);
        let this = self.clone();
        let context = ToolContext {
            user_id: request.user_id,
            conversation_id: conversation.id,
            time_zone: zone,
            request_id: request.request_id.clone(),
        };
        tokio::spawn(async move {
            let _ = events
                .send(TurnEvent::Context {
                    decision: decision.clone(),
                    user_message: question.clone(),
                })
                .await;
            let answered = this
                .answer(Answer {
                    chat,
                    host,
                    conversation,
                    question,
                    decision,
                    profile,
                    context,
                    vector,
                    early,
                    events: events.clone(),
                })
                .await;
            if let Err(err) = answered {
                tracing::warn!(error = %err, "a chat turn failed");
                let (failure, detail) = match &err {
                    AiError::NotConfigured { .. } => (TurnFailure::NotConfigured, err.to_string()),
                    AiError::Unavailable { .. } => (TurnFailure::Unavailable, err.to_string()),
                    AiError::Rejected { .. } => (TurnFailure::Rejected, err.to_string()),
                    AiError::NotFound { what } => (TurnFailure::NotFound { what }, err.to_string()),
                    AiError::TurnInProgress => (TurnFailure::TurnInProgress, err.to_string()),
                    AiError::ModelLoad { .. } | AiError::Database(_) => (
                        TurnFailure::Internal,
                        "the server failed to answer this message".to_owned(),
                    ),
                };
                // Done before the client hears of the failure: a retry it sends at once answers
                // the stored question instead of waiting for this turn (409 turn_in_progress).
                drop(guard);
                let _ = events.send(TurnEvent::Error { failure, detail }).await;
            }
        });
        Ok(TurnStart::Running(receiver))
    }

    /// The stored answer of `client_message_id`, if it has one.
    async fn stored_turn(
        &self,
        conversation: &Conversation,
        client_message_id: &str,
    ) -> Result<Option<TurnStart>, AiError> {
        let found =
            conversations::find_turn(&self.inner.db, conversation.id, client_message_id).await?;
        Ok(match found {
            Some((question, Some(answer))) => {
                Some(TurnStart::Replay(Box::new(replayed(question, answer))))
            }
            _ => None,
        })
    }

    /// Waits for the answer another request is producing.
    async fn wait_for_answer(
        &self,
        conversation: &Conversation,
        client_message_id: &str,
    ) -> Result<TurnStart, AiError> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.replay_wait;
        loop {
            if let Some(start) = self.stored_turn(conversation, client_message_id).await? {
                return Ok(start);
            }
            let running = self
                .inner
                .running_set()
                .contains(&(conversation.id, client_message_id.to_owned()));
            if !running || tokio::time::Instant::now() >= deadline {
                return Err(AiError::TurnInProgress);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn embed_message(&self, user: Uuid, text: &str) -> Option<MessageVector> {
        if !self.inner.retriever.has_embedder() {
            return None;
        }
        match self.inner.retriever.embed_query(user, text).await {
            Ok(vector) => Some(MessageVector {
                literal: vector_literal(&vector.embedding),
                model: vector.model,
                embedding: vector.embedding,
            }),
            Err(err) => {
                tracing::warn!(error = %err, "the message could not be embedded; the turn goes on without similarities");
                None
            }
        }
    }

    /// Call 1: the judge, with the time rules around it. Never fails on the model's account.
    async fn judge(
        &self,
        chat: &dyn ChatModel,
        conversation: &Conversation,
        text: &str,
        zone: Tz,
        now: DateTime<Utc>,
        vector: Option<&MessageVector>,
    ) -> Result<Decision, AiError> {
        let db = &self.inner.db;
        let settings = &self.inner.settings.judge;
        let (contexts, similarities, last_message) = tokio::try_join!(
            conversations::contexts(db, conversation.id, MAX_JUDGED_CONTEXTS as i64),
            async {
                match vector {
                    Some(v) => {
                        conversations::context_similarities(
                            db,
                            conversation.id,
                            &v.literal,
                            &v.model,
                        )
                        .await
                    }
                    None => Ok(Vec::new()),
                }
            },
            conversations::last_message(db, conversation.id),
        )?;
        let ids: Vec<Uuid> = contexts.iter().map(|c| c.id).collect();
        let mut recent_by_context =
            conversations::recent_in_contexts(db, &ids, settings.recent_messages as i64).await?;
        let mut views = Vec::with_capacity(contexts.len());
        let mut recent = Vec::new();
        // The most recently active topics; older ones are re-entered only through retrieval.
        for (i, context) in contexts.iter().enumerate() {
            let messages = recent_by_context.remove(&context.id).unwrap_or_default();
            if i == 0 {
                recent = messages
                    .iter()
                    .map(|m| (m.role.as_str().to_owned(), m.text.clone()))
                    .collect();
            }
            views.push(ContextView {
                id: context.id,
                summary: context.summary.clone(),
                last_active_at: context.last_active_at,
                message_count: context.message_count,
                recent_user_texts: messages
                    .iter()
                    .filter(|m| m.role == MessageRole::User)
                    .map(|m| m.text.clone())
                    .collect(),
                similarity: similarities
                    .iter()
                    .find(|(id, _)| *id == context.id)
                    .map(|(_, s)| *s),
            });
        }
        let last_message_at = last_message.map(|m| m.created_at);
        let local_now = local_time_words(now, zone);
        let input = JudgeInput {
            message: text,
            now,
            local_now: &local_now,
            last_message_at,
            contexts: &views,
            recent: &recent,
        };
        let answer = if views.is_empty() {
            None
        } else {
            match chat.complete(&judge::request(&input)).await {
                Ok(response) => judge::parse_answer(&response.text),
                Err(err) => {
                    tracing::info!(error = %err, "the judge call failed; the fallback decides");
                    None
                }
            }
        };
        Ok(judge::decide(&input, answer.as_ref(), settings))
    }

    /// Stores the user message in the decided context (a new one for `new`), audited. `None`
    /// when another request stored the same `client_message_id` first.
    async fn store_question(
        &self,
        conversation: &Conversation,
        request: &TurnRequest,
        mut decision: Decision,
        now: DateTime<Utc>,
        host: &dyn AssistantHost,
    ) -> Result<Option<Message>, AiError> {
        let mut tx = self.inner.db.begin().await?;
        let Some(conversation) =
            conversations::lock(&mut tx, conversation.user_id, conversation.id).await?
        else {
            return Err(AiError::NotFound {
                what: "conversation",
            });
        };
        if conversations::has_client_message(&mut *tx, conversation.id, &request.client_message_id)
            .await?
        {
            return Ok(None);
        }
        let chosen = match decision.context_id {
            Some(id) if conversations::has_context(&mut *tx, conversation.id, id).await? => {
                Some(id)
            }
            _ => None,
        };
        let context_id = match chosen {
            Some(id) => id,
            None => {
                // `new`, or a context deleted meanwhile.
                let context = conversations::create_context(&mut tx, conversation.id, now).await?;
                if decision.decision != DecisionKind::New {
                    decision.decision = DecisionKind::New;
                    decision.reason = "the topic is gone; a new one".into();
                    decision.source = DecisionSource::Rule;
                }
                context.id
            }
        };
        decision.context_id = Some(context_id);
        let question = conversations::insert_message(
            &mut tx,
            &NewMessage {
                conversation: &conversation,
                context_id,
                role: MessageRole::User,
                text: &request.text,
                status: MessageStatus::Complete,
                client_message_id: Some(&request.client_message_id),
                reply_to: None,
                decision: serde_json::to_value(&decision).ok(),
                domain_role: None,
                tool_calls: json!([]),
                input_tokens: None,
                output_tokens: None,
                at: now,
            },
        )
        .await?;
        host.audit(
            &mut tx,
            AuditRecord {
                actor_id: conversation.user_id,
                action: "conversation.message",
                target_type: "conversation",
                target_id: conversation.id,
                after: json!({
                    "message_id": question.id,
                    "context_id": context_id,
                    "decision": decision.decision.as_str(),
                    "chars": request.text.chars().count(),
                }),
                request_id: request.request_id.as_deref(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(question))
    }

    /// Call 2 and what follows: packs the prompt, runs the specialist with its tools, stores the
    /// answer with its jobs, then the title.
    async fn answer(&self, mut a: Answer) -> Result<(), AiError> {
        let early = a.early.take();
        let (mut request, report, role_name) = self.pack(&a, early).await?;
        if a.chat.supports_tools() {
            request.tools = tools::specs();
        }
        let mut text = String::new();
        let mut records: Vec<ToolRecord> = Vec::new();
        let mut usage = Usage::default();
        let mut status = MessageStatus::Complete;
        let mut rounds = 0usize;
        let mut failure: Option<AiError> = None;
        'rounds: loop {
            let offer_tools =
                rounds < self.inner.settings.max_tool_rounds && !request.tools.is_empty();
            if !offer_tools {
                request.tools.clear();
            }
            let mut stream = match a.chat.stream(&request).await {
                Ok(stream) => stream,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            let mut calls: Vec<ToolCall> = Vec::new();
            let mut round_text = String::new();
            loop {
                let next = tokio::select! {
                    () = a.events.closed() => None,
                    next = stream.next() => Some(next),
                };
                let Some(next) = next else {
                    // The client went away: dropping the stream cancels the model call.
                    status = MessageStatus::Interrupted;
                    text.push_str(&round_text);
                    break 'rounds;
                };
                match next {
                    Some(Ok(StreamEvent::Delta(delta))) => {
                        // Postgres refuses NUL in text: a model that sends one must not lose the turn.
                        let delta = storable_text(&delta);
                        round_text.push_str(&delta);
                        if a.events
                            .send(TurnEvent::Delta { text: delta })
                            .await
                            .is_err()
                        {
                            status = MessageStatus::Interrupted;
                            text.push_str(&round_text);
                            break 'rounds;
                        }
                    }
                    Some(Ok(StreamEvent::ToolCall(call))) => calls.push(call),
                    Some(Ok(StreamEvent::Done { usage: u, .. })) => {
                        if let Some(u) = u {
                            usage.input_tokens += u.input_tokens;
                            usage.output_tokens += u.output_tokens;
                        }
                        break;
                    }
                    Some(Err(err)) => {
                        text.push_str(&round_text);
                        failure = Some(err);
                        break 'rounds;
                    }
                    None => break,
                }
            }
            text.push_str(&round_text);
            if calls.is_empty() || !offer_tools {
                break;
            }
            rounds += 1;
            request.messages.push(ChatMessage {
                role: crate::chat::Role::Assistant,
                content: round_text,
                tool_calls: calls.clone(),
                tool_call_id: None,
                tool_name: None,
            });
            for call in calls {
                let _ = a
                    .events
                    .send(TurnEvent::ToolCall { call: call.clone() })
                    .await;
                let outcome = a.host.run_tool(&a.context, &call).await;
                let record = ToolRecord {
                    id: storable_text(&call.id),
                    name: storable_text(&call.name),
                    arguments: storable(call.arguments.clone()),
                    ok: outcome.ok,
                    result: storable(outcome.content.clone()),
                };
                let _ = a
                    .events
                    .send(TurnEvent::ToolResult {
                        result: record.clone(),
                    })
                    .await;
                request
                    .messages
                    .push(ChatMessage::tool_result(&call, outcome.content.to_string()));
                records.push(record);
            }
        }
        if let Some(err) = failure {
            if text.trim().is_empty() && records.is_empty() {
                // Nothing to keep: a retry with the same id answers the stored question.
                return Err(err);
            }
            tracing::warn!(error = %err, "the specialist failed part-way; what it produced is kept");
            status = MessageStatus::Failed;
        }
        let answer = self
            .store_answer(&a, &text, status, role_name.as_deref(), &records, usage)
            .await?;
        self.inner.jobs.notify_one();
        let turn = TurnResult {
            user_message: a.question.clone(),
            assistant_message: answer.message.clone(),
            decision: a.decision.clone(),
            domain_role: role_name,
            tool_calls: records,
            replayed: false,
            prompt: Some(report),
        };
        let _ = a
            .events
            .send(TurnEvent::Message {
                turn: Box::new(turn),
            })
            .await;
        if answer.title_queued {
            match super::jobs::generate_title(self, answer.message.id).await {
                Ok(Some(title)) => {
                    let _ = a.events.send(TurnEvent::Title { title }).await;
                }
                Ok(None) => {}
                Err(err) => tracing::info!(error = %err, "the title will be generated later"),
            }
        }
        Ok(())
    }

    async fn store_answer(
        &self,
        a: &Answer,
        text: &str,
        status: MessageStatus,
        role: Option<&str>,
        records: &[ToolRecord],
        usage: Usage,
    ) -> Result<StoredAnswer, AiError> {
        let now = self.inner.clock.now().max(a.question.created_at);
        let mut tx = self.inner.db.begin().await?;
        let message = conversations::insert_message(
            &mut tx,
            &NewMessage {
                conversation: &a.conversation,
                context_id: a.question.context_id,
                role: MessageRole::Assistant,
                text,
                status,
                client_message_id: None,
                reply_to: Some(a.question.id),
                decision: None,
                domain_role: role,
                tool_calls: serde_json::to_value(records).unwrap_or_else(|_| json!([])),
                input_tokens: Some(usage.input_tokens as i64),
                output_tokens: Some(usage.output_tokens as i64),
                at: now,
            },
        )
        .await?;
        super::jobs::enqueue(
            &mut tx,
            super::jobs::JobKind::Assess,
            message.id,
            a.conversation.id,
        )
        .await?;
        let first_exchange = a.conversation.title_source == conversations::TitleSource::None
            && sqlx::query_scalar!(
                r#"select count(*) as "n!" from conversation_messages where conversation_id = $1"#,
                a.conversation.id
            )
            .fetch_one(&mut *tx)
            .await?
                <= 2;
        if first_exchange {
            super::jobs::enqueue(
                &mut tx,
                super::jobs::JobKind::Title,
                message.id,
                a.conversation.id,
            )
            .await?;
        }
        a.host
            .audit(
                &mut tx,
                AuditRecord {
                    actor_id: a.conversation.user_id,
                    action: "conversation.answer",
                    target_type: "conversation",
                    target_id: a.conversation.id,
                    after: json!({
                        "message_id": message.id,
                        "status": status.as_str(),
                        "domain_role": role,
                        "tool_calls": records.iter().map(|r| json!({"name": r.name, "ok": r.ok})).collect::<Vec<_>>(),
                    }),
                    request_id: a.context.request_id.as_deref(),
                },
            )
            .await?;
        // Counted with the answer it paid for, in the same commit.
        let delta = crate::usage::UsageDelta {
            user_id: a.conversation.user_id,
            workspace_id: a.conversation.workspace_id,
            day: now.date_naive(),
            provider: a.chat.provider(),
            model: a.chat.model().to_owned(),
            requests: 1,
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
            embedded_texts: 0,
        };
        crate::usage::record(&mut *tx, &[delta]).await?;
        tx.commit().await?;
        Ok(StoredAnswer {
            message,
            title_queued: first_exchange,
        })
    }

    /// Gathers the prompt's parts and packs them: those of the message alone from `early` when
    /// they were read during the judge, the rest now. The parts are read concurrently, each on
    /// its own pooled connection, so a turn waits for its slowest read rather than their sum.
    async fn pack(
        &self,
        a: &Answer,
        early: Option<MessageParts>,
    ) -> Result<(ChatRequest, PackReport, Option<String>), AiError> {
        let settings = &self.inner.settings;
        let now = a.question.created_at;
        let text = a.question.text.as_str();
        let scope = MessageScope {
            user: a.conversation.user_id,
            workspace: a.conversation.workspace_id,
            text,
            at: now,
            vector: a.vector.as_ref(),
        };
        let (history, previous, related, agenda, parts) = tokio::try_join!(
            self.history(a),
            self.previous_message_at(a),
            self.related(a),
            async { Ok::<_, AiError>(self.agenda(a).await) },
            async {
                match early {
                    Some(parts) => Ok(parts),
                    None => self.message_parts(&scope).await,
                }
            },
        )?;
        let MessageParts {
            memories,
            blocks,
            role,
        } = parts;
        let parts = PromptParts {
            local_now: local_time_words(now, a.context.time_zone),
            since_last: previous.map(|at| ago_in_words(now - at)),
            role: role.as_ref().map(|r| (r.name.clone(), r.prompt.clone())),
            profile: a.profile.lines.clone(),
            preferences: a.profile.preferences.clone(),
            memories,
            related,
            blocks,
            agenda,
            history,
            message: text.to_owned(),
        };
        // A small context (a local model) holds the answer too: a quarter of it, and an eighth
        // spare because the estimate is not the model's tokenizer.
        let (budget, max_tokens) = match a.chat.context_tokens() {
            Some(window) => {
                let answer = (window / 4).min(1024);
                (
                    settings
                        .prompt_budget_tokens
                        .min(window - answer - window / 8),
                    answer,
                )
            }
            None => (settings.prompt_budget_tokens, 1024),
        };
        let (mut request, report) = ContextPacker::new(budget).pack(parts);
        request.max_tokens = Some(max_tokens as u32);
        Ok((request, report, role.map(|r| r.name)))
    }

    /// The active context's last messages before the question, oldest first.
    async fn history(&self, a: &Answer) -> Result<Vec<ChatMessage>, AiError> {
        let max = self.inner.settings.max_history;
        let now = a.question.created_at;
        let mut history: Vec<ChatMessage> =
            conversations::recent_in_context(&self.inner.db, a.question.context_id, max as i64 + 1)
                .await?
                .into_iter()
                .filter(|m| m.id != a.question.id && m.created_at <= now)
                .map(|m| match m.role {
                    MessageRole::User => ChatMessage::user(m.text),
                    MessageRole::Assistant => ChatMessage::assistant(m.text),
                })
                .collect();
        if history.len() > max {
            history.drain(..history.len() - max);
        }
        Ok(history)
    }

    /// When the conversation's message before the question was written.
    async fn previous_message_at(&self, a: &Answer) -> Result<Option<DateTime<Utc>>, AiError> {
        Ok(sqlx::query_scalar!(
            r#"select max(created_at) from conversation_messages
               where conversation_id = $1 and created_at < $2 and id <> $3"#,
            a.conversation.id,
            a.question.created_at,
            a.question.id,
        )
        .fetch_one(&self.inner.db)
        .await?)
    }

    /// The parts of the prompt that depend on the message alone, read concurrently.
    async fn message_parts(&self, scope: &MessageScope<'_>) -> Result<MessageParts, AiError> {
        let (memories, blocks, role) = tokio::try_join!(
            self.memories(scope),
            self.blocks(scope),
            self.choose_role(scope.workspace, scope.text, scope.vector),
        )?;
        Ok(MessageParts {
            memories,
            blocks,
            role,
        })
    }

    /// The user's memories valid at the message's time, nearest to it first.
    async fn memories(&self, scope: &MessageScope<'_>) -> Result<Vec<MemoryItem>, AiError> {
        let memories = memories::relevant(
            &self.inner.db,
            scope.user,
            scope.at,
            scope.vector.map(|v| (v.literal.as_str(), v.model.as_str())),
            self.inner.settings.memories as i64,
        )
        .await?;
        Ok(memories
            .into_iter()
            .map(|(m, relevance)| MemoryItem {
                kind: m.kind.as_str().to_owned(),
                text: m.text,
                relevance,
            })
            .collect())
    }

    /// The user's earlier messages of other topics near the question; none for small talk.
    async fn related(&self, a: &Answer) -> Result<Vec<RelatedItem>, AiError> {
        let Some(v) = retrieval_vector(a.vector.as_ref(), &a.question.text) else {
            return Ok(Vec::new());
        };
        let query = RelatedQuery {
            user: a.conversation.user_id,
            embedding: &v.literal,
            model: &v.model,
            exclude_context: Some(a.question.context_id),
            min_similarity: self.inner.settings.related_min_similarity,
            limit: self.inner.settings.related_messages as i64,
        };
        let now = a.question.created_at;
        let zone = a.context.time_zone;
        Ok(conversations::related_messages(&self.inner.db, &query)
            .await?
            .into_iter()
            .map(|m| RelatedItem {
                when: format!(
                    "{} ({})",
                    ago_in_words(now - m.created_at),
                    local_date_words(m.created_at, zone)
                ),
                role: m.role.as_str().to_owned(),
                text: m.text,
                similarity: m.similarity,
            })
            .collect())
    }

    /// Canvas blocks the user can read near the message; none for small talk.
    async fn blocks(&self, scope: &MessageScope<'_>) -> Result<Vec<BlockItem>, AiError> {
        let Some(v) = retrieval_vector(scope.vector, scope.text) else {
            return Ok(Vec::new());
        };
        let query = semantic::SemanticQuery {
            user_id: scope.user,
            embedding: &v.embedding,
            model: &v.model,
            scope: Scope::default(),
            min_similarity: self.inner.retriever.settings().min_similarity,
            after: None,
            limit: self.inner.settings.blocks as i64,
        };
        Ok(semantic::search(&self.inner.db, &query)
            .await?
            .into_iter()
            .map(|h| BlockItem {
                score: h.similarity(),
                canvas_title: h.canvas_title,
                text: h.text,
            })
            .collect())
    }

    /// Today's agenda in the user's zone when the message is about time; `None` otherwise, or
    /// when the host cannot read it (the answer goes on without).
    async fn agenda(&self, a: &Answer) -> Option<Vec<AgendaItem>> {
        if !packer::is_about_time(&a.question.text) {
            return None;
        }
        let now = a.question.created_at;
        let zone = a.context.time_zone;
        let start = now
            .with_timezone(&zone)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|d| d.and_local_timezone(zone).earliest())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(now);
        match a
            .host
            .agenda(&a.context, start, start + chrono::Duration::days(1))
            .await
        {
            Ok(items) => Some(items),
            Err(reason) => {
                tracing::info!(%reason, "the agenda is left out of the prompt");
                None
            }
        }
    }

    /// The domain role for a message: the nearest by meaning above the threshold, else by
    /// shared words; `None` for small talk or when nothing is close.
    async fn choose_role(
        &self,
        workspace: Option<Uuid>,
        text: &str,
        vector: Option<&MessageVector>,
    ) -> Result<Option<roles::Role>, AiError> {
        if judge::is_small_talk(text) {
            return Ok(None);
        }
        let db = &self.inner.db;
        let available = match (vector, self.inner.embedder.as_ref()) {
            (Some(v), Some(embedder)) => {
                let mut scored = roles::scored(db, workspace, &v.literal, &v.model).await?;
                if self.embed_roles(embedder.as_ref(), &scored).await? {
                    scored = roles::scored(db, workspace, &v.literal, &v.model).await?;
                }
                if let Some((role, similarity)) = roles::most_similar(&scored) {
                    if similarity >= self.inner.settings.role_min_similarity {
                        return Ok(Some(role.clone()));
                    }
                }
                scored.into_iter().map(|(role, _)| role).collect()
            }
            _ => roles::available(db, workspace).await?,
        };
        Ok(roles::nearest_by_words(&available, text).cloned())
    }

    /// Embeds the roles of `scored` without a vector of the embedder's model (new or edited
    /// ones); whether any was stored. A failure leaves them to be chosen by words.
    async fn embed_roles(
        &self,
        embedder: &dyn Embedder,
        scored: &[(roles::Role, Option<f64>)],
    ) -> Result<bool, AiError> {
        let missing: Vec<&roles::Role> = scored
            .iter()
            .filter(|(_, similarity)| similarity.is_none())
            .map(|(role, _)| role)
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        let texts: Vec<String> = missing.iter().map(|r| roles::embedded_text(r)).collect();
        match embedder.embed(&texts, Purpose::Document).await {
            Ok(vectors) => {
                for (role, vector) in missing.iter().zip(vectors) {
                    roles::set_embedding(
                        &self.inner.db,
                        role.id,
                        &vector_literal(&vector),
                        embedder.model(),
                    )
                    .await?;
                }
                Ok(true)
            }
            Err(err) => {
                tracing::info!(error = %err, "roles could not be embedded; chosen by words");
                Ok(false)
            }
        }
    }
}

/// Everything the spawned part of a turn needs.
struct Answer {
    chat: Arc<dyn ChatModel>,
    host: Arc<dyn AssistantHost>,
    conversation: Conversation,
    question: Message,
    decision: Decision,
    profile: Profile,
    context: ToolContext,
    vector: Option<MessageVector>,
    /// The parts of the prompt read during the judge; `None` for a recovered question.
    early: Option<MessageParts>,
    events: mpsc::Sender<TurnEvent>,
}

/// What the parts of a prompt that depend on the message alone are read for.
struct MessageScope<'a> {
    user: Uuid,
    workspace: Option<Uuid>,
    text: &'a str,
    /// The message's time: memories valid then.
    at: DateTime<Utc>,
    vector: Option<&'a MessageVector>,
}

/// The parts of a prompt that depend on the message alone.
struct MessageParts {
    memories: Vec<MemoryItem>,
    blocks: Vec<BlockItem>,
    role: Option<roles::Role>,
}

struct StoredAnswer {
    message: Message,
    title_queued: bool,
}

/// The message's vector, unless the message is small talk, which retrieves nothing.
fn retrieval_vector<'a>(
    vector: Option<&'a MessageVector>,
    text: &str,
) -> Option<&'a MessageVector> {
    vector.filter(|_| !judge::is_small_talk(text))
}

/// The decision stored on a user message; one that does not parse reads as a fallback
/// `continue` in the message's own context.
fn decision_of(question: &Message) -> Decision {
    question
        .decision
        .clone()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or(Decision {
            decision: DecisionKind::Continue,
            context_id: Some(question.context_id),
            reason: String::new(),
            source: DecisionSource::Fallback,
            proposed: None,
        })
}

fn replayed(question: Message, answer: Message) -> TurnResult {
    let decision = decision_of(&question);
    let tool_calls = tool_records(&answer.tool_calls);
    TurnResult {
        domain_role: answer.domain_role.clone(),
        user_message: question,
        assistant_message: answer,
        decision,
        tool_calls,
        replayed: true,
        prompt: None,
    }
}

/// `text` without NUL, which Postgres refuses in `text` and `jsonb`.
pub fn storable_text(text: &str) -> String {
    text.replace('\0', "")
}

/// `value` with every NUL removed from its strings and keys.
pub fn storable(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(storable_text(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (storable_text(&k), storable(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The tool records stored on a message.
pub fn tool_records(stored: &Value) -> Vec<ToolRecord> {
    stored
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolRecord {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: c["arguments"].clone(),
                    ok: c["ok"].as_bool().unwrap_or(false),
                    result: c["result"].clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The profile as the specialist reads it.
#[derive(Debug, Clone)]
struct Profile {
    zone: Tz,
    lines: Vec<(String, String)>,
    preferences: Vec<String>,
}

async fn profile(db: &PgPool, user: Uuid) -> Result<Profile, AiError> {
    let row = sqlx::query!(
        "select name, timezone, locale, preferences from users where id = $1",
        user
    )
    .fetch_optional(db)
    .await?
    .ok_or(AiError::NotFound { what: "user" })?;
    let zone: Tz = row.timezone.parse().unwrap_or(Tz::UTC);
    let mut lines = Vec::new();
    if let Some(name) = row.name.filter(|n| !n.trim().is_empty()) {
        lines.push(("name".to_owned(), name));
    }
    lines.push(("time zone".to_owned(), zone.name().to_owned()));
    lines.push(("language".to_owned(), row.locale));
    let preferences = match row.preferences {
        Value::Object(map) => map
            .into_iter()
            .take(30)
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                format!("{k}: {}", value.chars().take(200).collect::<String>())
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Profile {
        zone,
        lines,
        preferences,
    })
}

/// "Wednesday 2 December 2026, 09:14 (Europe/Paris)".
pub fn local_time_words(at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    format!("{} ({})", local.format("%A %-d %B %Y, %H:%M"), zone.name())
}

fn local_date_words(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%A %-d %B %Y").to_string()
}
