//! The email outbox and its SMTP sender, against a real SMTP server over TCP and real Postgres.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use potentia_server::email::outbox::{self, OutboxEmail};
use potentia_server::email::{
    Backoff, EmailStatus, NewEmail, SmtpSettings, KIND_WORKSPACE_INVITATION,
};
use potentia_tests::smtp::{smtp_settings, unused_address, Behaviour, SmtpListener};
use potentia_tests::{test_settings, TestApp, TestDb};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(15);

fn invitation(to: &str) -> NewEmail {
    NewEmail {
        to_address: to.to_owned(),
        subject: "You are invited to Research".to_owned(),
        body_text: "Ada invited you to the workspace Research.\nOpen the link to join.".to_owned(),
        body_html: None,
        kind: KIND_WORKSPACE_INVITATION.to_owned(),
    }
}

async fn spawn_with_smtp(configure: impl FnOnce(&mut SmtpSettings), url: &str) -> TestApp {
    let mut smtp = smtp_settings(url);
    configure(&mut smtp);
    TestApp::spawn_with(|settings| settings.smtp = Some(smtp)).await
}

async fn queue(app: &TestApp, email: &NewEmail) -> Uuid {
    let id = app.outbox.enqueue(&app.db, email).await.expect("enqueue");
    app.outbox.wake();
    id
}

async fn row(db: &PgPool, id: Uuid) -> OutboxEmail {
    outbox::find(db, id)
        .await
        .expect("read the outbox")
        .expect("the queued email")
}

/// Polls the row until `done` holds; panics with the last state after [`WAIT`].
async fn wait_for_row(db: &PgPool, id: Uuid, done: impl Fn(&OutboxEmail) -> bool) -> OutboxEmail {
    let deadline = Instant::now() + WAIT;
    loop {
        let email = row(db, id).await;
        if done(&email) {
            return email;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; last state: {email:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_status(db: &PgPool, id: Uuid, status: EmailStatus) -> OutboxEmail {
    wait_for_row(db, id, |email| email.status == status).await
}

async fn pool(database: &TestDb) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .connect(&database.url)
        .await
        .expect("connect to the test database")
}

#[tokio::test]
async fn queued_mail_reaches_the_smtp_server_with_its_from_to_subject_and_body() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    queue(&app, &invitation("Ada Lovelace <ada@example.org>")).await;

    let mails = smtp.wait_for_mail(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.mail_from, "noreply@potentia.test");
    assert_eq!(mail.rcpt_to, ["ada@example.org"]);
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Potentia <noreply@potentia.test>")
    );
    assert_eq!(
        mail.header("To").as_deref(),
        Some("\"Ada Lovelace\" <ada@example.org>")
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("You are invited to Research")
    );
    assert!(mail
        .header("Content-Type")
        .is_some_and(|value| value.starts_with("text/plain")));
    assert_eq!(
        mail.body(),
        "Ada invited you to the workspace Research.\r\nOpen the link to join."
    );
}

#[tokio::test]
async fn delivered_mail_is_marked_sent_after_one_attempt() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let id = queue(&app, &invitation("ada@example.org")).await;

    let email = wait_for_status(&app.db, id, EmailStatus::Sent).await;
    assert_eq!(email.attempts, 1);
    assert!(email.sent_at.is_some());
    assert_eq!(email.last_error, None);
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn mail_with_html_is_sent_as_a_multipart_alternative_of_text_and_html() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let email = NewEmail {
        body_html: Some("<p>Ada invited you to <b>Research</b>.</p>".to_owned()),
        ..invitation("ada@example.org")
    };
    queue(&app, &email).await;

    let mails = smtp.wait_for_mail(1, WAIT).await;
    let mail = &mails[0];
    assert!(
        mail.header("Content-Type")
            .is_some_and(|value| value.starts_with("multipart/alternative")),
        "{}",
        mail.data
    );
    assert!(mail.body().contains("Content-Type: text/plain"));
    assert!(mail
        .body()
        .contains("Ada invited you to the workspace Research."));
    assert!(mail.body().contains("Content-Type: text/html"));
    assert!(mail
        .body()
        .contains("<p>Ada invited you to <b>Research</b>.</p>"));
}

#[tokio::test]
async fn the_message_id_is_derived_from_the_outbox_id() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let id = queue(&app, &invitation("ada@example.org")).await;

    let mails = smtp.wait_for_mail(1, WAIT).await;
    assert_eq!(
        mails[0].header("Message-ID"),
        Some(format!("<{id}@potentia.test>"))
    );
}

#[tokio::test]
async fn waking_the_sender_delivers_without_waiting_for_the_poll() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|s| s.poll_interval = Duration::from_secs(600), &smtp.url()).await;
    // Let the sender finish its first look at the (empty) outbox and go to sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;
    queue(&app, &invitation("ada@example.org")).await;

    smtp.wait_for_mail(1, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_outbox_retries_after_the_smtp_server_was_down() {
    let addr = unused_address();
    let app = spawn_with_smtp(
        |s| {
            s.retry = Backoff {
                base: Duration::from_millis(1500),
                cap: Duration::from_secs(5),
            }
        },
        &format!("smtp://{addr}"),
    )
    .await;
    let id = queue(&app, &invitation("ada@example.org")).await;

    let failed_once = wait_for_row(&app.db, id, |email| {
        email.attempts == 1 && email.status == EmailStatus::Pending
    })
    .await;
    assert!(failed_once.last_error.is_some());
    assert!(
        failed_once.next_attempt_at > Utc::now(),
        "the retry is not scheduled in the future: {failed_once:?}"
    );

    let smtp = SmtpListener::start_on(addr).await;
    let sent = wait_for_status(&app.db, id, EmailStatus::Sent).await;
    assert_eq!(sent.attempts, 2);
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn mail_that_keeps_failing_ends_failed_after_max_attempts() {
    let smtp = SmtpListener::start().await;
    smtp.set_behaviour(Behaviour::RefuseTemporarily);
    let app = spawn_with_smtp(
        |s| {
            s.max_attempts = 3;
            s.retry = Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_millis(200),
            };
        },
        &smtp.url(),
    )
    .await;
    let id = queue(&app, &invitation("ada@example.org")).await;

    let email = wait_for_status(&app.db, id, EmailStatus::Failed).await;
    assert_eq!(email.attempts, 3);
    assert!(
        email
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("451")),
        "{email:?}"
    );
    assert_eq!(email.sent_at, None);
    assert_eq!(smtp.refused(), 3);
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn mail_refused_for_good_fails_without_retrying() {
    let smtp = SmtpListener::start().await;
    smtp.set_behaviour(Behaviour::RejectRecipients);
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let id = queue(&app, &invitation("nobody@example.org")).await;

    let email = wait_for_status(&app.db, id, EmailStatus::Failed).await;
    assert_eq!(email.attempts, 1);
    assert!(
        email
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("550")),
        "{email:?}"
    );
    assert_eq!(smtp.refused(), 1);
}

#[tokio::test]
async fn mail_to_an_invalid_address_fails_without_contacting_the_server() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let id = queue(&app, &invitation("not an address")).await;

    let email = wait_for_status(&app.db, id, EmailStatus::Failed).await;
    assert_eq!(email.attempts, 1);
    assert!(smtp.received().is_empty());
    assert_eq!(smtp.refused(), 0);
}

#[tokio::test]
async fn two_senders_deliver_each_message_exactly_once() {
    const MESSAGES: usize = 40;
    let smtp = SmtpListener::start().await;
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let mut ids = Vec::new();
    for n in 0..MESSAGES {
        let email = NewEmail {
            subject: format!("message {n}"),
            ..invitation(&format!("user{n}@example.org"))
        };
        ids.push(outbox::enqueue(&db, &email, 5).await.expect("enqueue"));
    }

    // Two nodes over the same database, started together on the same backlog.
    let mut settings = test_settings(&database.url);
    settings.smtp = Some(smtp_settings(&smtp.url()));
    let (first, second) = tokio::join!(
        TestApp::start(settings.clone(), db.clone(), None),
        TestApp::start(settings, db.clone(), None),
    );

    let mails = smtp.wait_for_mail(MESSAGES, WAIT).await;
    // Give a duplicate, if any, time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails_after = smtp.received();
    assert_eq!(mails_after.len(), MESSAGES, "duplicates were sent");
    let subjects: HashSet<String> = mails.iter().filter_map(|m| m.header("Subject")).collect();
    assert_eq!(subjects.len(), MESSAGES);
    for id in ids {
        let email = row(&db, id).await;
        assert_eq!((email.status, email.attempts), (EmailStatus::Sent, 1));
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn without_smtp_the_server_runs_and_mail_stays_pending() {
    let app = TestApp::spawn().await;
    let id = queue(&app, &invitation("ada@example.org")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let email = row(&app.db, id).await;
    assert_eq!((email.status, email.attempts), (EmailStatus::Pending, 0));
}

#[tokio::test]
async fn metrics_count_sent_emails_by_kind() {
    let smtp = SmtpListener::start().await;
    let app = spawn_with_smtp(|_| {}, &smtp.url()).await;
    let id = queue(&app, &invitation("ada@example.org")).await;
    wait_for_status(&app.db, id, EmailStatus::Sent).await;

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("potentia_emails_sent_total{kind=\"workspace_invitation\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_count_failed_attempts_and_given_up_emails() {
    let smtp = SmtpListener::start().await;
    smtp.set_behaviour(Behaviour::RefuseTemporarily);
    let app = spawn_with_smtp(
        |s| {
            s.max_attempts = 2;
            s.retry = Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_millis(100),
            };
        },
        &smtp.url(),
    )
    .await;
    let id = queue(&app, &invitation("ada@example.org")).await;
    wait_for_status(&app.db, id, EmailStatus::Failed).await;

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("potentia_email_failed_attempts_total{kind=\"workspace_invitation\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("potentia_emails_given_up_total{kind=\"workspace_invitation\"} 1"),
        "{metrics}"
    );
}

// The outbox's claim protocol, without a sender.

#[tokio::test]
async fn a_claimed_message_is_not_claimed_again_while_its_lease_lasts() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    outbox::enqueue(&db, &invitation("ada@example.org"), 5)
        .await
        .unwrap();

    let first = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let second = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(second.is_empty());
}

#[tokio::test]
async fn a_claim_skips_rows_another_claim_holds_without_waiting() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    for n in 0..3 {
        outbox::enqueue(&db, &invitation(&format!("user{n}@example.org")), 5)
            .await
            .unwrap();
    }

    let mut holder = db.begin().await.unwrap();
    let held = outbox::claim_due(&mut *holder, 2, Duration::from_secs(60))
        .await
        .unwrap();
    // The holder has not committed: its rows still look due, but are locked.
    let other = tokio::time::timeout(
        Duration::from_secs(5),
        outbox::claim_due(&db, 10, Duration::from_secs(60)),
    )
    .await
    .expect("the second claim waited for the first one's locks")
    .unwrap();
    holder.commit().await.unwrap();

    assert_eq!(held.len(), 2);
    assert_eq!(other.len(), 1);
    assert!(held.iter().all(|h| h.id != other[0].id));
}

#[tokio::test]
async fn a_message_whose_lease_ran_out_is_claimed_again_as_a_new_attempt() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let id = outbox::enqueue(&db, &invitation("ada@example.org"), 5)
        .await
        .unwrap();
    outbox::claim_due(&db, 10, Duration::from_millis(100))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (id, 2));
}

#[tokio::test]
async fn a_sender_whose_claim_was_taken_over_cannot_record_its_outcome() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let id = outbox::enqueue(&db, &invitation("ada@example.org"), 5)
        .await
        .unwrap();
    let stale = outbox::claim_due(&db, 10, Duration::from_millis(100))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();

    assert!(!outbox::mark_sent(&db, &stale).await.unwrap());
    assert_eq!(row(&db, id).await.status, EmailStatus::Sending);
}

#[tokio::test]
async fn an_interrupted_last_attempt_ends_failed() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let id = outbox::enqueue(&db, &invitation("ada@example.org"), 1)
        .await
        .unwrap();
    outbox::claim_due(&db, 10, Duration::from_millis(100))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(again.is_empty());
    let email = row(&db, id).await;
    assert_eq!((email.status, email.attempts), (EmailStatus::Failed, 1));
    assert!(email.last_error.is_some());
}

#[tokio::test]
async fn a_released_claim_is_due_at_once_and_does_not_count_as_an_attempt() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let id = outbox::enqueue(&db, &invitation("ada@example.org"), 5)
        .await
        .unwrap();
    let claimed = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);

    assert!(outbox::release(&db, &claimed).await.unwrap());
    let email = row(&db, id).await;
    assert_eq!((email.status, email.attempts), (EmailStatus::Pending, 0));
    let again = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].attempt), (id, 1));
}

#[tokio::test]
async fn a_failed_attempt_schedules_the_retry_within_the_backoff() {
    let database = TestDb::create().await;
    let db = pool(&database).await;
    let id = outbox::enqueue(&db, &invitation("ada@example.org"), 5)
        .await
        .unwrap();
    let claimed = outbox::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let backoff = Backoff {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(3600),
    };

    let before = Utc::now();
    let outcome = outbox::mark_failed_attempt(&db, &claimed, "451 try later", &backoff)
        .await
        .unwrap();
    let after = Utc::now();
    let Some(outbox::AttemptOutcome::RetryAt(at)) = outcome else {
        panic!("expected a retry, got {outcome:?}");
    };
    // Jitter keeps the first retry between 15 s and 30 s away (give the clocks a second).
    assert!(
        at >= before + chrono::Duration::seconds(14),
        "{at} vs {before}"
    );
    assert!(
        at <= after + chrono::Duration::seconds(31),
        "{at} vs {after}"
    );
    let email = row(&db, id).await;
    assert_eq!((email.status, email.attempts), (EmailStatus::Pending, 1));
    assert_eq!(email.last_error.as_deref(), Some("451 try later"));
}
