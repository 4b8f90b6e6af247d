//! The work that follows an answer, durable in `chat_jobs`: `assess` (memories and the context
//! summary, [`super::assessor`]) and `title` (a conversation's title after its first exchange).
//!
//! A job is queued in the transaction that stores the answer, so a crash between the answer and
//! its assessment loses nothing. [`ChatJobWorker`] claims due jobs with `FOR UPDATE SKIP
//! LOCKED`, leasing them by moving `next_attempt_at` forward (no transaction stays open during
//! a model call), runs them, and deletes them; a failure backs off (doubling from 5 s, capped at
//! 10 minutes) and after [`MAX_ATTEMPTS`] the job is a dead letter (`dead_at`).

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::assessor;
use super::conversations;
use super::turn::Assistant;
use crate::chat::{ChatMessage, ChatRequest};
use crate::error::AiError;

/// Attempts before a job is a dead letter.
pub const MAX_ATTEMPTS: i32 = 6;
/// How long a claimed job stays invisible to other workers.
pub const LEASE: Duration = Duration::from_secs(300);
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Assess,
    Title,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assess => "assess",
            Self::Title => "title",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "assess" => Some(Self::Assess),
            "title" => Some(Self::Title),
            _ => None,
        }
    }
}

/// Queues a job about assistant message `message`, due now.
pub async fn enqueue(
    db: &mut PgConnection,
    kind: JobKind,
    message: Uuid,
    conversation: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into chat_jobs (kind, message_id, conversation_id) values ($1, $2, $3)
         on conflict do nothing",
        kind.as_str(),
        message,
        conversation,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kind: JobKind,
    pub message_id: Uuid,
    pub attempts: i32,
}

/// Takes up to `limit` due jobs and leases them.
pub async fn claim<'e>(db: impl PgExecutor<'e>, limit: i64) -> sqlx::Result<Vec<Job>> {
    let rows = sqlx::query!(
        r#"update chat_jobs j set next_attempt_at = now() + make_interval(secs => $2)
           from (select kind, message_id from chat_jobs
                 where dead_at is null and next_attempt_at <= now()
                 order by next_attempt_at limit $1 for update skip locked) due
           where j.kind = due.kind and j.message_id = due.message_id
           returning j.kind, j.message_id, j.attempts"#,
        limit,
        LEASE.as_secs_f64(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Job {
                kind: JobKind::parse(&r.kind)?,
                message_id: r.message_id,
                attempts: r.attempts,
            })
        })
        .collect())
}

/// Removes a finished job.
pub async fn complete<'e>(
    db: impl PgExecutor<'e>,
    kind: JobKind,
    message: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from chat_jobs where kind = $1 and message_id = $2",
        kind.as_str(),
        message
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failure: backoff, or a dead letter after [`MAX_ATTEMPTS`]. `transient` failures
/// (the provider is down) do not count as attempts.
pub async fn fail<'e>(
    db: impl PgExecutor<'e>,
    job: &Job,
    reason: &str,
    transient: bool,
) -> sqlx::Result<()> {
    let attempts = if transient {
        job.attempts
    } else {
        job.attempts + 1
    };
    let delay = (5.0 * 2f64.powi(attempts.clamp(0, 7))).min(600.0);
    let reason: String = reason.chars().take(500).collect();
    sqlx::query!(
        r#"update chat_jobs set attempts = $3::int, last_error = $4,
               next_attempt_at = now() + make_interval(secs => $5),
               dead_at = case when $3::int >= $6::int then now() end
           where kind = $1 and message_id = $2"#,
        job.kind.as_str(),
        job.message_id,
        attempts,
        reason,
        delay,
        MAX_ATTEMPTS,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Jobs waiting (not dead) and dead.
pub async fn counts<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"select count(*) filter (where dead_at is null) as "waiting!",
                  count(*) filter (where dead_at is not null) as "dead!"
           from chat_jobs"#
    )
    .fetch_one(db)
    .await?;
    Ok((row.waiting, row.dead))
}

/// Runs the chat jobs until stopped.
pub struct ChatJobWorker {
    assistant: Assistant,
    poll_interval: Duration,
}

impl ChatJobWorker {
    pub fn new(assistant: Assistant, poll_interval: Duration) -> Self {
        Self {
            assistant,
            poll_interval,
        }
    }

    pub async fn run(self, stop: CancellationToken) {
        let notify = self.assistant.jobs_notifier();
        loop {
            let busy = tokio::select! {
                () = stop.cancelled() => break,
                ran = self.run_once() => match ran {
                    Ok(n) => n > 0,
                    Err(err) => {
                        tracing::warn!(error = %err, "chat jobs could not be claimed");
                        false
                    }
                },
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.poll_interval) => {}
                () = notify.notified() => {}
            }
        }
    }

    /// Claims and runs one batch; returns how many jobs it took.
    pub async fn run_once(&self) -> Result<usize, AiError> {
        let db = self.assistant.db();
        let jobs = claim(db, 4).await?;
        for job in &jobs {
            let outcome = match job.kind {
                JobKind::Assess => assessor::assess(&self.assistant, job.message_id)
                    .await
                    .map(|_| ()),
                JobKind::Title => title_job(&self.assistant, job.message_id).await,
            };
            match outcome {
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(kind = job.kind.as_str(), error = %err, "a chat job failed");
                    fail(db, job, &err.to_string(), err.is_transient()).await?;
                }
            }
        }
        Ok(jobs.len())
    }
}

async fn title_job(assistant: &Assistant, message: Uuid) -> Result<(), AiError> {
    // The turn may have made the title itself and removed the job; nothing left then.
    generate_title(assistant, message).await.map(|_| ())
}

/// Generates the title of the conversation of assistant message `message` and removes its
/// `title` job. `Ok(None)` when there is nothing to do: the job is gone (done elsewhere) or the
/// owner renamed the conversation first (a manual title always wins).
pub async fn generate_title(
    assistant: &Assistant,
    message: Uuid,
) -> Result<Option<String>, AiError> {
    let db = assistant.db();
    let Some(answer) = conversations::find_message(db, message).await? else {
        complete(db, JobKind::Title, message).await?;
        return Ok(None);
    };
    let question = match answer.reply_to {
        Some(id) => conversations::find_message(db, id).await?,
        None => None,
    };
    let Some(question) = question else {
        complete(db, JobKind::Title, message).await?;
        return Ok(None);
    };
    let chat = assistant
        .chat()
        .cloned()
        .ok_or(AiError::NotConfigured { what: "chat" })?;
    let request = ChatRequest {
        system: Some(
            "Give this conversation a short title of at most six words, in the user's language. \
             Answer with the title only, no quotes."
                .to_owned(),
        ),
        messages: vec![ChatMessage::user(format!(
            "User: {}\nAssistant: {}",
            cut(&question.text, 1000),
            cut(&answer.text, 1000)
        ))],
        temperature: Some(0.2),
        max_tokens: Some(24),
        response_schema: None,
        tools: Vec::new(),
    };
    let response = chat.complete(&request).await?;
    let title = clean_title(&response.text);
    let mut tx = db.begin().await?;
    let still_queued = sqlx::query_scalar!(
        "delete from chat_jobs where kind = 'title' and message_id = $1 returning message_id",
        message
    )
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    let set = still_queued
        && !title.is_empty()
        && conversations::set_generated_title(&mut *tx, answer.conversation_id, &title).await?;
    tx.commit().await?;
    Ok(set.then_some(title))
}

/// One line, no quotes or trailing period, at most [`MAX_TITLE_CHARS`] characters, no control
/// characters (NUL included).
pub fn clean_title(raw: &str) -> String {
    let line = raw.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line
        .trim()
        .trim_start_matches(|c: char| c == '#' || c == '*' || c.is_whitespace())
        .trim_matches(|c| c == '"' || c == '\'' || c == '“' || c == '”' || c == '*')
        .trim()
        .trim_end_matches('.');
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    cut(clean.trim(), MAX_TITLE_CHARS)
}

fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_clean_line() {
        assert_eq!(
            clean_title("\"Pour-over coffee.\"\nmore"),
            "Pour-over coffee"
        );
        assert_eq!(clean_title("## **Weekly plan**"), "Weekly plan");
        assert_eq!(clean_title("a\u{0}b"), "ab");
        assert_eq!(
            clean_title(&"x".repeat(200)).chars().count(),
            MAX_TITLE_CHARS
        );
    }
}
