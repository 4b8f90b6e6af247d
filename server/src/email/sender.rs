//! The background sender: claims due mail from the outbox, delivers it over SMTP and records the
//! outcome, until its `CancellationToken` is cancelled.
//!
//! It looks at the outbox every poll interval and whenever [`EmailOutbox::wake`] is called, and
//! drains everything due before it sleeps again. Each message is delivered at least once; it is
//! delivered twice only if the sender dies, or loses its database, between the SMTP server's
//! acceptance and the `sent` record. The `Message-ID` is derived from the outbox id, so the copies
//! of a message retried this way share it.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, AttemptOutcome, Backoff, ClaimedEmail};
use super::{EmailError, EmailOutbox, SmtpSettings};
use crate::metrics::Metrics;

/// Messages claimed at once.
const BATCH_SIZE: i64 = 10;

/// The longest one delivery may take, connection included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a claim stays this sender's: longer than a whole batch of deliveries can take, so a
/// live sender never loses a claim to another node.
const LEASE: Duration = Duration::from_secs(15 * 60);
const _: () = assert!(LEASE.as_secs() > BATCH_SIZE as u64 * DELIVERY_TIMEOUT.as_secs());

/// Delivers the outbox over SMTP; see the module documentation.
pub struct OutboxSender {
    db: PgPool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `host:port` of the SMTP server, for logs.
    server: String,
    from: Mailbox,
    poll_interval: Duration,
    retry: Backoff,
    outbox: EmailOutbox,
    metrics: Arc<Metrics>,
}

/// How one delivery ended.
enum Delivery {
    Sent,
    /// Worth trying again later (4xx reply, connection trouble, timeout).
    Transient(String),
    /// Never going to work (5xx reply, a message that cannot be built).
    Permanent(String),
}

impl OutboxSender {
    pub fn new(
        db: PgPool,
        settings: &SmtpSettings,
        outbox: EmailOutbox,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EmailError> {
        Ok(Self {
            db,
            transport: settings.server.transport()?,
            server: format!("{}:{}", settings.server.host, settings.server.port),
            from: settings.from.clone(),
            poll_interval: settings.poll_interval,
            retry: settings.retry,
            outbox,
            metrics,
        })
    }

    /// Delivers due mail until `shutdown` is cancelled. A message being delivered when it is
    /// cancelled is finished; claimed messages not yet attempted are given back.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            server = %self.server,
            poll_secs = self.poll_interval.as_secs_f64(),
            "email sender started"
        );
        loop {
            if let Err(err) = self.send_due(&shutdown).await {
                tracing::warn!(%err, "email sender: cannot work the outbox; trying again later");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.outbox.woken() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
        tracing::info!("email sender stopped");
    }

    /// Claims and delivers batches until nothing is due or `shutdown` is cancelled. Returns the
    /// number of messages attempted.
    pub async fn send_due(&self, shutdown: &CancellationToken) -> Result<usize, EmailError> {
        let mut attempted = 0;
        while !shutdown.is_cancelled() {
            let batch = outbox::claim_due(&self.db, BATCH_SIZE, LEASE).await?;
            let drained = (batch.len() as i64) < BATCH_SIZE;
            let mut batch = batch.into_iter();
            for email in batch.by_ref() {
                let delivery = self.deliver(&email).await;
                self.record(&email, delivery).await?;
                attempted += 1;
                if shutdown.is_cancelled() {
                    break;
                }
            }
            for email in batch {
                outbox::release(&self.db, &email).await?;
            }
            if drained {
                break;
            }
        }
        Ok(attempted)
    }

    async fn deliver(&self, email: &ClaimedEmail) -> Delivery {
        let message = match build_message(&self.from, email) {
            Ok(message) => message,
            Err(reason) => return Delivery::Permanent(reason),
        };
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Delivery::Sent,
            Ok(Err(err)) if err.is_permanent() => Delivery::Permanent(err.to_string()),
            Ok(Err(err)) => Delivery::Transient(err.to_string()),
            Err(_) => Delivery::Transient(format!(
                "delivery took longer than {} s",
                DELIVERY_TIMEOUT.as_secs()
            )),
        }
    }

    async fn record(&self, email: &ClaimedEmail, delivery: Delivery) -> Result<(), EmailError> {
        let (id, kind, attempt) = (email.id, email.kind.as_str(), email.attempt);
        let still_ours = match delivery {
            Delivery::Sent => {
                self.metrics.email_sent(kind);
                tracing::info!(%id, kind, attempt, "email sent");
                outbox::mark_sent(&self.db, email).await?
            }
            Delivery::Transient(error) => {
                self.metrics.email_attempt_failed(kind);
                match outbox::mark_failed_attempt(&self.db, email, &error, &self.retry).await? {
                    Some(AttemptOutcome::RetryAt(at)) => {
                        tracing::warn!(%id, kind, attempt, %error, retry_at = %at, "email not sent; will retry");
                        true
                    }
                    Some(AttemptOutcome::GaveUp) => {
                        self.metrics.email_given_up(kind);
                        tracing::error!(%id, kind, attempt, %error, "email not sent; giving up after the last attempt");
                        true
                    }
                    None => false,
                }
            }
            Delivery::Permanent(error) => {
                self.metrics.email_attempt_failed(kind);
                self.metrics.email_given_up(kind);
                tracing::error!(%id, kind, attempt, %error, "email refused for good; not retrying");
                outbox::mark_undeliverable(&self.db, email, &error).await?
            }
        };
        if !still_ours {
            tracing::warn!(%id, attempt, "email claim was taken over before its outcome was recorded");
        }
        Ok(())
    }
}

/// The MIME message for a claimed email: plain text, with an HTML alternative when there is one.
fn build_message(from: &Mailbox, email: &ClaimedEmail) -> Result<Message, String> {
    let to = email.to_address.parse::<Mailbox>().map_err(|err| {
        format!(
            "recipient {:?} is not a valid address: {err}",
            email.to_address
        )
    })?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.as_str())
        .message_id(Some(format!("<{}@{}>", email.id, from.email.domain())));
    let built = match &email.body_html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            email.body_text.clone(),
            html.clone(),
        )),
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(email.body_text.clone()),
    };
    built.map_err(|err| format!("cannot build the message: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn claimed(to: &str, html: Option<&str>) -> ClaimedEmail {
        ClaimedEmail {
            id: Uuid::nil(),
            to_address: to.to_owned(),
            subject: "Join the team".to_owned(),
            body_text: "Hello".to_owned(),
            body_html: html.map(str::to_owned),
            kind: "test".to_owned(),
            attempt: 1,
            max_attempts: 3,
        }
    }

    fn from() -> Mailbox {
        "Potentia <noreply@potentia.example>".parse().unwrap()
    }

    fn formatted(message: &Message) -> String {
        String::from_utf8(message.formatted()).unwrap()
    }

    #[test]
    fn the_message_id_is_derived_from_the_outbox_id_and_the_sender_domain() {
        let message = build_message(&from(), &claimed("ada@example.org", None)).unwrap();
        assert!(formatted(&message)
            .contains("Message-ID: <00000000-0000-0000-0000-000000000000@potentia.example>"));
    }

    #[test]
    fn a_text_only_message_is_plain_text() {
        let message = build_message(&from(), &claimed("ada@example.org", None)).unwrap();
        let text = formatted(&message);
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        assert!(!text.contains("multipart"), "{text}");
    }

    #[test]
    fn a_message_with_html_is_multipart_alternative() {
        let message =
            build_message(&from(), &claimed("ada@example.org", Some("<p>Hello</p>"))).unwrap();
        let text = formatted(&message);
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/html"), "{text}");
    }

    #[test]
    fn an_invalid_recipient_cannot_be_built() {
        let err = build_message(&from(), &claimed("not an address", None)).unwrap_err();
        assert!(err.contains("not a valid address"), "{err}");
    }
}
