//! Conversations, their contexts (topics) and messages: the tables `conversations`,
//! `conversation_contexts` and `conversation_messages`.
//!
//! Invariants kept here:
//! * a conversation is its owner's alone: every read and write names the user, and a
//!   conversation of another user is "not found" (`None`), never an error that tells it exists;
//! * every message belongs to one context of its own conversation, and a context's
//!   `message_count` and `last_active_at` move with each message stored in it;
//! * a user message with a `client_message_id` is stored once per conversation; an assistant
//!   message answers exactly one user message (`reply_to`, unique).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::retrieval::semantic::{prepare_hnsw_scan, Plan};

/// Who gave a conversation its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TitleSource {
    None,
    /// Generated after the first exchange.
    Auto,
    /// Renamed by its owner; never overwritten by a generated title.
    User,
}

impl TitleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Auto => "auto",
            Self::User => "user",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "auto" => Self::Auto,
            "user" => Self::User,
            _ => Self::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: Uuid,
    pub user_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub canvas_id: Option<Uuid>,
    pub title: String,
    pub title_source: TitleSource,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
}

/// A topic of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Context {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub summary: String,
    pub started_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
    pub message_count: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    User,
    Assistant,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    fn parse(value: &str) -> Self {
        if value == "assistant" {
            Self::Assistant
        } else {
            Self::User
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Complete,
    /// The client went away mid-answer; what was produced is kept.
    Interrupted,
    /// The model failed part-way; what was produced is kept.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "interrupted" => Self::Interrupted,
            "failed" => Self::Failed,
            _ => Self::Complete,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub context_id: Uuid,
    pub role: MessageRole,
    pub text: String,
    pub status: MessageStatus,
    pub client_message_id: Option<String>,
    pub reply_to: Option<Uuid>,
    /// User messages: the context decision (see `judge::Decision`).
    pub decision: Option<Value>,
    /// Assistant messages: the domain role used.
    pub domain_role: Option<String>,
    /// Assistant messages: the tool calls made, with their results.
    pub tool_calls: Value,
    pub created_at: DateTime<Utc>,
}

struct ConversationRow {
    id: Uuid,
    user_id: Uuid,
    workspace_id: Option<Uuid>,
    canvas_id: Option<Uuid>,
    title: String,
    title_source: String,
    created_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            workspace_id: r.workspace_id,
            canvas_id: r.canvas_id,
            title: r.title,
            title_source: TitleSource::parse(&r.title_source),
            created_at: r.created_at,
            last_activity_at: r.last_activity_at,
        }
    }
}

struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    context_id: Uuid,
    role: String,
    text: String,
    status: String,
    client_message_id: Option<String>,
    reply_to: Option<Uuid>,
    decision: Option<Value>,
    domain_role: Option<String>,
    tool_calls: Value,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            conversation_id: r.conversation_id,
            context_id: r.context_id,
            role: MessageRole::parse(&r.role),
            text: r.text,
            status: MessageStatus::parse(&r.status),
            client_message_id: r.client_message_id,
            reply_to: r.reply_to,
            decision: r.decision,
            domain_role: r.domain_role,
            tool_calls: r.tool_calls,
            created_at: r.created_at,
        }
    }
}

/// A conversation to create.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub user_id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub canvas_id: Option<Uuid>,
    pub title: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn create(db: &mut PgConnection, new: &NewConversation) -> sqlx::Result<Conversation> {
    let (title, source) = match new.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => (title.to_owned(), TitleSource::User),
        _ => (String::new(), TitleSource::None),
    };
    let row = sqlx::query_as!(
        ConversationRow,
        r#"insert into conversations (id, user_id, workspace_id, canvas_id, title, title_source,
                                      created_at, last_activity_at)
           values ($1, $2, $3, $4, $5, $6, $7, $7)
           returning id, user_id, workspace_id, canvas_id, title, title_source, created_at,
                     last_activity_at"#,
        Uuid::now_v7(),
        new.user_id,
        new.workspace_id,
        new.canvas_id,
        title,
        source.as_str(),
        new.at,
    )
    .fetch_one(db)
    .await?;
    Ok(row.into())
}

/// How many conversations `user` has.
pub async fn count<'e>(db: impl PgExecutor<'e>, user: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from conversations where user_id = $1"#,
        user
    )
    .fetch_one(db)
    .await
}

/// `user`'s conversation `id`; `None` when it does not exist or is someone else's.
pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Conversation>> {
    let row = sqlx::query_as!(
        ConversationRow,
        r#"select id, user_id, workspace_id, canvas_id, title, title_source, created_at,
                  last_activity_at
           from conversations where id = $1 and user_id = $2"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// The same, locked for the rest of the transaction: turns of one conversation run one at a
/// time.
pub async fn lock(
    db: &mut PgConnection,
    user: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Conversation>> {
    let row = sqlx::query_as!(
        ConversationRow,
        r#"select id, user_id, workspace_id, canvas_id, title, title_source, created_at,
                  last_activity_at
           from conversations where id = $1 and user_id = $2 for update"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// Where a page of conversations ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityAfter {
    pub last_activity_at: DateTime<Utc>,
    pub id: Uuid,
}

/// `user`'s conversations, most recent activity first, up to `limit` after `after`.
pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    after: Option<ActivityAfter>,
    limit: i64,
) -> sqlx::Result<Vec<Conversation>> {
    let rows = sqlx::query_as!(
        ConversationRow,
        r#"select id, user_id, workspace_id, canvas_id, title, title_source, created_at,
                  last_activity_at
           from conversations
           where user_id = $1
             and ($2::timestamptz is null or (last_activity_at, id) < ($2, $3))
           order by last_activity_at desc, id desc
           limit $4"#,
        user,
        after.map(|a| a.last_activity_at),
        after.map(|a| a.id),
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Renames by hand: the title is the user's from now on.
pub async fn rename(
    db: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    title: &str,
) -> sqlx::Result<Option<Conversation>> {
    let row = sqlx::query_as!(
        ConversationRow,
        r#"update conversations set title = $3, title_source = 'user'
           where id = $1 and user_id = $2
           returning id, user_id, workspace_id, canvas_id, title, title_source, created_at,
                     last_activity_at"#,
        id,
        user,
        title,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// Sets a generated title unless the owner has named the conversation. Returns whether it was set.
pub async fn set_generated_title<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    title: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update conversations set title = $2, title_source = 'auto'
         where id = $1 and title_source = 'none'",
        id,
        title,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a deletion removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub messages: i64,
    /// Memories learned from the conversation that were forgotten (`forget = true`).
    pub memories_forgotten: i64,
}

/// Deletes a conversation with its contexts and messages; memories learned from it stay
/// unless `forget`. `None` when it is not `user`'s.
pub async fn delete(
    db: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    forget: bool,
) -> sqlx::Result<Option<Deleted>> {
    let Some(messages) = sqlx::query_scalar!(
        r#"select count(m.id) as "n!" from conversations c
           left join conversation_messages m on m.conversation_id = c.id
           where c.id = $1 and c.user_id = $2
           group by c.id"#,
        id,
        user,
    )
    .fetch_optional(&mut *db)
    .await?
    else {
        return Ok(None);
    };
    let memories_forgotten = if forget {
        sqlx::query!(
            "delete from memories where user_id = $1 and source_conversation_id = $2",
            user,
            id,
        )
        .execute(&mut *db)
        .await?
        .rows_affected() as i64
    } else {
        0
    };
    sqlx::query!(
        "delete from conversations where id = $1 and user_id = $2",
        id,
        user
    )
    .execute(&mut *db)
    .await?;
    Ok(Some(Deleted {
        messages,
        memories_forgotten,
    }))
}

/// Whether `context` is one of `conversation`'s topics.
pub async fn has_context<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
    context: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from conversation_contexts
                          where id = $1 and conversation_id = $2) as "exists!""#,
        context,
        conversation,
    )
    .fetch_one(db)
    .await
}

/// The conversation's contexts, most recently active first, at most `limit`.
pub async fn contexts<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Context>> {
    sqlx::query_as!(
        Context,
        r#"select id, conversation_id, summary, started_at, last_active_at, message_count
           from conversation_contexts where conversation_id = $1
           order by last_active_at desc, id desc
           limit $2"#,
        conversation,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The similarity of `embedding` (pgvector text form) to each context's stored embedding;
/// contexts without one are left out.
pub async fn context_similarities<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
    embedding: &str,
    model: &str,
) -> sqlx::Result<Vec<(Uuid, f64)>> {
    let rows = sqlx::query!(
        r#"with q as materialized (select $2::text::vector as v)
           select c.id, 1 - (c.embedding <=> q.v) as "similarity!"
           from conversation_contexts c, q
           where c.conversation_id = $1 and c.embedding is not null and c.embedding_model = $3"#,
        conversation,
        embedding,
        model,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.similarity)).collect())
}

pub async fn create_context(
    db: &mut PgConnection,
    conversation: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<Context> {
    sqlx::query_as!(
        Context,
        r#"insert into conversation_contexts (id, conversation_id, started_at, last_active_at)
           values ($1, $2, $3, $3)
           returning id, conversation_id, summary, started_at, last_active_at, message_count"#,
        Uuid::now_v7(),
        conversation,
        at,
    )
    .fetch_one(db)
    .await
}

/// Replaces a context's rolling summary and its embedding (`None`: no embedder).
pub async fn set_summary<'e>(
    db: impl PgExecutor<'e>,
    context: Uuid,
    summary: &str,
    embedding: Option<(&str, &str)>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"update conversation_contexts
           set summary = $2,
               embedding = coalesce($3::text::vector, embedding),
               embedding_model = coalesce($4, embedding_model)
           where id = $1"#,
        context,
        summary,
        embedding.map(|e| e.0),
        embedding.map(|e| e.1),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub conversation: &'a Conversation,
    pub context_id: Uuid,
    pub role: MessageRole,
    pub text: &'a str,
    pub status: MessageStatus,
    pub client_message_id: Option<&'a str>,
    pub reply_to: Option<Uuid>,
    pub decision: Option<Value>,
    pub domain_role: Option<&'a str>,
    pub tool_calls: Value,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub at: DateTime<Utc>,
}

/// Stores a message, moves its context and conversation forward, and queues its embedding.
pub async fn insert_message(db: &mut PgConnection, new: &NewMessage<'_>) -> sqlx::Result<Message> {
    // One statement: the message, its context's count and activity, the conversation's activity.
    let row = sqlx::query_as!(
        MessageRow,
        r#"with inserted as (
               insert into conversation_messages
                   (id, conversation_id, context_id, user_id, role, text, status,
                    client_message_id, reply_to, decision, domain_role, tool_calls, input_tokens,
                    output_tokens, created_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               returning id, conversation_id, context_id, role, text, status, client_message_id,
                         reply_to, decision, domain_role, tool_calls, created_at
           ),
           context as (
               update conversation_contexts
               set message_count = message_count + 1,
                   last_active_at = greatest(last_active_at, $15)
               where id = $3
           ),
           conversation as (
               update conversations set last_activity_at = greatest(last_activity_at, $15)
               where id = $2
           )
           select id as "id!", conversation_id as "conversation_id!", context_id as "context_id!",
                  role as "role!", text as "text!", status as "status!", client_message_id,
                  reply_to, decision, domain_role, tool_calls as "tool_calls!",
                  created_at as "created_at!"
           from inserted"#,
        Uuid::now_v7(),
        new.conversation.id,
        new.context_id,
        new.conversation.user_id,
        new.role.as_str(),
        new.text,
        new.status.as_str(),
        new.client_message_id,
        new.reply_to,
        new.decision,
        new.domain_role,
        new.tool_calls,
        new.input_tokens,
        new.output_tokens,
        new.at,
    )
    .fetch_one(&mut *db)
    .await?;
    if !new.text.trim().is_empty() {
        crate::queue::enqueue(
            &mut *db,
            crate::queue::SourceKind::Message,
            &[(
                new.conversation.id,
                row.id,
                crate::store::content_hash(new.text),
            )],
        )
        .await?;
    }
    Ok(row.into())
}

/// Where a page of messages ends (oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageAfter {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// A conversation's messages in the order they were written.
pub async fn messages<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
    after: Option<MessageAfter>,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let rows = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages
           where conversation_id = $1
             and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id
           limit $4"#,
        conversation,
        after.map(|a| a.created_at),
        after.map(|a| a.id),
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The last `n` messages of a context, oldest first.
pub async fn recent_in_context<'e>(
    db: impl PgExecutor<'e>,
    context: Uuid,
    n: i64,
) -> sqlx::Result<Vec<Message>> {
    let mut rows = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages
           where context_id = $1
           order by created_at desc, id desc
           limit $2"#,
        context,
        n,
    )
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The last `n` messages of each of `contexts`, oldest first, in one statement (the judge reads
/// up to [`MAX_JUDGED_CONTEXTS`](super::turn::MAX_JUDGED_CONTEXTS) topics a turn).
pub async fn recent_in_contexts<'e>(
    db: impl PgExecutor<'e>,
    contexts: &[Uuid],
    n: i64,
) -> sqlx::Result<HashMap<Uuid, Vec<Message>>> {
    let rows = sqlx::query_as!(
        MessageRow,
        r#"select m.id as "id!", m.conversation_id as "conversation_id!",
                  m.context_id as "context_id!", m.role as "role!", m.text as "text!",
                  m.status as "status!", m.client_message_id, m.reply_to, m.decision,
                  m.domain_role, m.tool_calls as "tool_calls!", m.created_at as "created_at!"
           from unnest($1::uuid[]) as c(id)
           cross join lateral (
               select * from conversation_messages
               where context_id = c.id
               order by created_at desc, id desc
               limit $2
           ) m
           order by m.context_id, m.created_at, m.id"#,
        contexts,
        n,
    )
    .fetch_all(db)
    .await?;
    let mut by_context: HashMap<Uuid, Vec<Message>> = HashMap::new();
    for row in rows {
        by_context
            .entry(row.context_id)
            .or_default()
            .push(row.into());
    }
    Ok(by_context)
}

/// The newest message of a conversation.
pub async fn last_message<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
) -> sqlx::Result<Option<Message>> {
    let row = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages
           where conversation_id = $1
           order by created_at desc, id desc
           limit 1"#,
        conversation,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn find_message<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<Message>> {
    let row = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

/// A stored turn found by its `client_message_id`: the user message and, once stored, the answer.
pub async fn find_turn<'e>(
    db: impl PgExecutor<'e> + Copy,
    conversation: Uuid,
    client_message_id: &str,
) -> sqlx::Result<Option<(Message, Option<Message>)>> {
    let Some(question) = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages
           where conversation_id = $1 and client_message_id = $2"#,
        conversation,
        client_message_id,
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let answer = sqlx::query_as!(
        MessageRow,
        r#"select id, conversation_id, context_id, role, text, status, client_message_id,
                  reply_to, decision, domain_role, tool_calls, created_at
           from conversation_messages where reply_to = $1"#,
        question.id,
    )
    .fetch_optional(db)
    .await?;
    Ok(Some((question.into(), answer.map(Into::into))))
}

/// Whether a user message with this `client_message_id` is stored.
pub async fn has_client_message<'e>(
    db: impl PgExecutor<'e>,
    conversation: Uuid,
    client_message_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from conversation_messages
                          where conversation_id = $1 and client_message_id = $2) as "found!""#,
        conversation,
        client_message_id,
    )
    .fetch_one(db)
    .await
}

/// A message from the user's other exchanges, relevant to a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedMessage {
    pub conversation_id: Uuid,
    pub role: MessageRole,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub similarity: f64,
}

/// A user's earlier messages nearest to a vector: what [`related_messages`] looks for.
#[derive(Debug, Clone)]
pub struct RelatedQuery<'a> {
    pub user: Uuid,
    /// The query vector as a pgvector literal (`vectors::literal`).
    pub embedding: &'a str,
    /// The model that made `embedding`; only its vectors are compared.
    pub model: &'a str,
    /// Messages of this context are left out (they are in the prompt's history already).
    pub exclude_context: Option<Uuid>,
    /// Nothing less similar than this (cosine, `[-1, 1]`).
    pub min_similarity: f64,
    pub limit: i64,
}

/// Above this many message vectors of a user, the HNSW index answers instead of an exact scan
/// (an exact scan costs about 3–4 µs a vector: 10,000 took 31–41 ms in the chat benchmark).
pub const EXACT_MESSAGE_SCAN_MAX: i64 = 2_000;

/// Rows the HNSW plan reads beyond `limit`, for those the context and floor filters drop.
const HNSW_SLACK: i64 = 64;

/// The user's messages nearest to the query, most similar first. Two plans, chosen by how
/// many vectors the user has: every vector compared (recall 1) up to
/// [`EXACT_MESSAGE_SCAN_MAX`], the HNSW index with an iterative scan beyond.
pub async fn related_messages(
    db: &PgPool,
    query: &RelatedQuery<'_>,
) -> sqlx::Result<Vec<RelatedMessage>> {
    Ok(related_messages_with_plan(db, query, None).await?.0)
}

/// [`related_messages`], with the plan forced (`Some`) or chosen (`None`), and the plan used.
pub async fn related_messages_with_plan(
    db: &PgPool,
    query: &RelatedQuery<'_>,
    force: Option<Plan>,
) -> sqlx::Result<(Vec<RelatedMessage>, Plan)> {
    let mut tx = db.begin().await?;
    let plan = match force {
        Some(plan) => plan,
        None => {
            let vectors = sqlx::query_scalar!(
                r#"select count(*) as "n!" from (
                       select 1 from message_embeddings where user_id = $1 and model = $2
                       limit $3) s"#,
                query.user,
                query.model,
                EXACT_MESSAGE_SCAN_MAX + 1,
            )
            .fetch_one(&mut *tx)
            .await?;
            Plan::for_candidates(vectors, EXACT_MESSAGE_SCAN_MAX)
        }
    };
    let rows: Vec<(Uuid, String, String, DateTime<Utc>, f64)> = match plan {
        Plan::Exact => sqlx::query!(
            r#"with q as materialized (select $2::text::vector as v),
               near as (
                   select e.message_id, e.embedding <=> q.v as distance
                   from message_embeddings e, q
                   where e.user_id = $1 and e.model = $3
               )
               select m.conversation_id, m.role, m.text, m.created_at,
                      1 - near.distance as "similarity!"
               from near
               join conversation_messages m on m.id = near.message_id
               where ($4::uuid is null or m.context_id <> $4) and 1 - near.distance >= $5
               order by near.distance
               limit $6"#,
            query.user,
            query.embedding,
            query.model,
            query.exclude_context,
            query.min_similarity,
            query.limit,
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.conversation_id,
                r.role,
                r.text,
                r.created_at,
                r.similarity,
            )
        })
        .collect(),
        Plan::Hnsw => {
            prepare_hnsw_scan(&mut tx, query.limit + HNSW_SLACK).await?;
            sqlx::query!(
                r#"with nearest as materialized (
                       select e.message_id, e.embedding <=> $2::text::vector as distance
                       from message_embeddings e
                       where e.user_id = $1 and e.model = $3
                       order by e.embedding <=> $2::text::vector
                       limit $6::int8 + $7::int8
                   )
                   select m.conversation_id, m.role, m.text, m.created_at,
                          1 - n.distance as "similarity!"
                   from nearest n
                   join conversation_messages m on m.id = n.message_id
                   where ($4::uuid is null or m.context_id <> $4) and 1 - n.distance >= $5
                   order by n.distance
                   limit $6"#,
                query.user,
                query.embedding,
                query.model,
                query.exclude_context,
                query.min_similarity,
                query.limit,
                HNSW_SLACK,
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.conversation_id,
                    r.role,
                    r.text,
                    r.created_at,
                    r.similarity,
                )
            })
            .collect()
        }
    };
    tx.commit().await?;
    let related = rows
        .into_iter()
        .map(
            |(conversation_id, role, text, created_at, similarity)| RelatedMessage {
                conversation_id,
                role: MessageRole::parse(&role),
                text,
                created_at,
                similarity,
            },
        )
        .collect();
    Ok((related, plan))
}
