//! A real SMTP server for tests, on a loopback port: it speaks enough of RFC 5321 for a real
//! client (greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP, QUIT),
//! records every message it accepts, and can be told to refuse mail temporarily (451) or for good
//! (550). Stopping it closes the port and every open connection, so a client sees the server
//! down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use potentia_server::email::config::SmtpServer;
use potentia_server::email::{Backoff, SmtpSettings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How the server answers mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and records every message.
    Accept,
    /// Answers `MAIL FROM` with `451`: try again later.
    RefuseTemporarily,
    /// Answers `RCPT TO` with `550`: no such mailbox, do not try again.
    RejectRecipients,
}

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, lines joined with CRLF.
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for line in self.data.split("\r\n") {
            if line.is_empty() {
                break;
            }
            let continues = line.starts_with(' ') || line.starts_with('\t');
            match (&mut found, continues) {
                (Some(value), true) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                (Some(_), false) => break,
                (None, true) => {}
                (None, false) => {
                    if let Some((key, value)) = line.split_once(':') {
                        if key.eq_ignore_ascii_case(name) {
                            found = Some(value.trim().to_owned());
                        }
                    }
                }
            }
        }
        found
    }

    /// Everything after the header section.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<ReceivedMail>>,
    refused: AtomicUsize,
}

/// A running SMTP server; dropping it stops it.
pub struct SmtpListener {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// A loopback address nothing listens on (at the time of the call).
pub fn unused_address() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    probe.local_addr().expect("probe address")
}

impl SmtpListener {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a server on `addr`, e.g. one a client is already configured for.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the SMTP test server");
        let addr = listener.local_addr().expect("SMTP test server address");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Accept),
            received: Mutex::new(Vec::new()),
            refused: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `POTENTIA_SMTP_URL` of this server.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.shared.behaviour) = behaviour;
    }

    /// Every message accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.received).clone()
    }

    /// How many mail transactions were refused (451 or 550) so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` messages were accepted; panics after `timeout`.
    pub async fn wait_for_mail(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "SMTP test server received {} of {count} messages within {timeout:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the port and every open connection.
    pub async fn stop(mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for SmtpListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Accepts connections; aborting it drops the `JoinSet`, which aborts every connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(err) => eprintln!("SMTP test server: accept failed: {err}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The envelope of the mail transaction in progress.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if let Err(err) = converse(stream, &shared).await {
        eprintln!("SMTP test server: connection ended: {err}");
    }
}

async fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    reply(&mut write, "220 potentia-test ESMTP ready").await?;
    let mut envelope = Envelope::default();
    while let Some(line) = read_line(&mut read).await? {
        let command = line.to_ascii_uppercase();
        let behaviour = *lock(&shared.behaviour);
        if command.starts_with("EHLO") {
            reply(
                &mut write,
                "250-potentia-test\r\n250-8BITMIME\r\n250 SIZE 10485760",
            )
            .await?;
        } else if command.starts_with("HELO") {
            reply(&mut write, "250 potentia-test").await?;
        } else if command.starts_with("MAIL FROM:") {
            envelope = Envelope::default();
            if behaviour == Behaviour::RefuseTemporarily {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                reply(&mut write, "451 4.3.0 Mail server temporarily unavailable").await?;
            } else {
                envelope.from = Some(path(&line["MAIL FROM:".len()..]));
                reply(&mut write, "250 2.1.0 OK").await?;
            }
        } else if command.starts_with("RCPT TO:") {
            if envelope.from.is_none() {
                reply(&mut write, "503 5.5.1 MAIL first").await?;
            } else if behaviour == Behaviour::RejectRecipients {
                shared.refused.fetch_add(1, Ordering::SeqCst);
                reply(&mut write, "550 5.1.1 No such mailbox").await?;
            } else {
                envelope.to.push(path(&line["RCPT TO:".len()..]));
                reply(&mut write, "250 2.1.5 OK").await?;
            }
        } else if command == "DATA" {
            let Some(from) = envelope.from.take().filter(|_| !envelope.to.is_empty()) else {
                reply(&mut write, "503 5.5.1 RCPT first").await?;
                continue;
            };
            reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
            let Some(data) = read_data(&mut read).await? else {
                return Ok(());
            };
            lock(&shared.received).push(ReceivedMail {
                mail_from: from,
                rcpt_to: std::mem::take(&mut envelope.to),
                data,
            });
            reply(&mut write, "250 2.0.0 OK queued").await?;
        } else if command == "RSET" {
            envelope = Envelope::default();
            reply(&mut write, "250 2.0.0 OK").await?;
        } else if command.starts_with("NOOP") {
            reply(&mut write, "250 2.0.0 OK").await?;
        } else if command == "QUIT" {
            reply(&mut write, "221 2.0.0 Bye").await?;
            return Ok(());
        } else {
            reply(&mut write, "502 5.5.2 Command not implemented").await?;
        }
    }
    Ok(())
}

async fn reply(write: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.write_all(b"\r\n").await?;
    write.flush().await
}

/// One line without its line ending; `None` at the end of the stream.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if read.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The message after `DATA`, up to the line holding a single dot.
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut lines = Vec::new();
    while let Some(line) = read_line(read).await? {
        if line == "." {
            return Ok(Some(lines.join("\r\n")));
        }
        let unstuffed = line.strip_prefix('.').unwrap_or(&line);
        lines.push(unstuffed.to_owned());
    }
    Ok(None)
}

/// The address inside `<…>` of a `MAIL FROM`/`RCPT TO` argument, parameters dropped.
fn path(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(open), Some(close)) if open < close => argument[open + 1..close].to_owned(),
        _ => argument
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// SMTP settings for a test: quick polls and a backoff in milliseconds.
pub fn smtp_settings(url: &str) -> SmtpSettings {
    SmtpSettings {
        server: SmtpServer::parse(url).expect("SMTP URL of the test server"),
        from: "Potentia <noreply@potentia.test>"
            .parse()
            .expect("from address"),
        poll_interval: Duration::from_millis(100),
        max_attempts: 5,
        retry: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn headers_are_found_case_insensitively_and_unfolded() {
        let mail = mail("Subject: a long\r\n subject line\r\nTo: ada@example.org\r\n\r\nbody");
        assert_eq!(
            mail.header("subject").as_deref(),
            Some("a long subject line")
        );
        assert_eq!(mail.header("TO").as_deref(), Some("ada@example.org"));
        assert_eq!(mail.header("From"), None);
        assert_eq!(mail.body(), "body");
    }

    #[test]
    fn envelope_paths_drop_brackets_and_parameters() {
        assert_eq!(
            path("<noreply@potentia.test> BODY=8BITMIME"),
            "noreply@potentia.test"
        );
        assert_eq!(path(" ada@example.org"), "ada@example.org");
    }
}
