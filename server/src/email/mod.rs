//! Outgoing email: an outbox table and a background sender that delivers it over SMTP.
//!
//! Mail is queued in `email_outbox` in the same transaction as the change that causes it (an
//! invitation, say), so it is sent if and only if that change commits. [`OutboxSender`] claims due
//! messages, delivers them with lettre, and records each outcome: sent, retried later with
//! exponential backoff, or failed. Without SMTP configured nothing is sent and mail stays
//! `pending` until a node with SMTP comes up.
//!
//! To queue mail from a handler:
//!
//! ```ignore
//! let mut tx = state.db.begin().await?;
//! // … the change itself …
//! state.outbox.enqueue(&mut *tx, &NewEmail { /* … */ }).await?;
//! tx.commit().await?;
//! state.outbox.wake(); // after the commit, or the sender may look before the row is visible
//! ```
//!
//! Waking is per process; senders on other nodes find the mail at their next poll.

pub mod config;
pub mod outbox;
pub mod sender;

use std::sync::Arc;

use tokio::sync::Notify;
use uuid::Uuid;

pub use config::{SmtpArgs, SmtpConfigError, SmtpSettings};
pub use outbox::{
    Backoff, EmailStatus, NewEmail, KIND_CANVAS_INVITATION, KIND_WORKSPACE_INVITATION,
};
pub use sender::OutboxSender;

/// The longest piece of user text (a name, a title) a mail carries.
pub const MAX_QUOTED_CHARS: usize = 100;

/// User-given text (a name, a canvas title) as a mail may carry it: on one line, control
/// characters gone, at most [`MAX_QUOTED_CHARS`] characters, and with anything a mail reader
/// would turn into a link broken (`https[:]//`, `www[.]`), so no one can make an invitation
/// carry a working link of theirs.
pub fn user_text(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut cut: String = one_line.chars().take(MAX_QUOTED_CHARS).collect();
    if one_line.chars().count() > MAX_QUOTED_CHARS {
        cut.push('…');
    }
    cut.replace("://", "[:]//")
        .replace("www.", "www[.]")
        .replace("WWW.", "WWW[.]")
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("email outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Config(#[from] SmtpConfigError),
}

/// The handle request handlers use to queue mail and wake this node's sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmailOutbox {
    wakeup: Arc<Notify>,
    max_attempts: i32,
}

impl EmailOutbox {
    /// An outbox whose messages are each allowed `max_attempts` delivery attempts.
    pub fn new(max_attempts: i32) -> Self {
        Self {
            wakeup: Arc::new(Notify::new()),
            max_attempts,
        }
    }

    /// The outbox of a server with these SMTP settings (the default attempts without SMTP).
    pub fn for_settings(smtp: Option<&SmtpSettings>) -> Self {
        let default = i32::try_from(config::DEFAULT_MAX_ATTEMPTS).unwrap_or(i32::MAX);
        Self::new(smtp.map_or(default, |smtp| smtp.max_attempts))
    }

    /// Queues a message, due at once; call [`EmailOutbox::wake`] once the transaction commits.
    pub async fn enqueue<'e>(
        &self,
        db: impl sqlx::PgExecutor<'e>,
        email: &NewEmail,
    ) -> sqlx::Result<Uuid> {
        outbox::enqueue(db, email, self.max_attempts).await
    }

    /// Makes this node's sender look at the outbox now instead of at its next poll. A wake while
    /// the sender is busy is kept, so mail queued meanwhile is not left for the next poll.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Completes at the next [`EmailOutbox::wake`] (or at once if one is pending).
    pub async fn woken(&self) {
        self.wakeup.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_in_mail_is_one_short_line_without_working_links() {
        assert_eq!(
            user_text("Win\r\nBcc: x@evil.example  https://evil.example/claim www.evil.example"),
            "Win Bcc: x@evil.example https[:]//evil.example/claim www[.]evil.example"
        );
        let long = "a".repeat(300);
        assert_eq!(user_text(&long).chars().count(), MAX_QUOTED_CHARS + 1);
    }
}
