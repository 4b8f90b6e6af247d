//! Provider keys never leave the process: not in the logs (at debug level, even when the provider
//! echoes the key back in its error), not in `--help`, not in `/metrics`, not in answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{listening_addr, potentia, wait_for_line, KillOnDrop, ScratchDb, SECRET};

const EMBEDDING_KEY: &str = "sk-embed-0a1b2c3d4e5f-must-never-be-logged";
const CHAT_KEY: &str = "AIza-chat-9z8y7x6w-must-never-be-logged";

/// A provider that refuses every request with 401 and quotes the credentials it was sent, as
/// some real ones do ("Incorrect API key provided: sk-…"). Returns its base URL and what it saw.
fn start_echoing_provider() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut credentials = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization:") || lower.starts_with("x-goog-api-key:") {
                    credentials.push_str(line.trim_end());
                    credentials.push(' ');
                }
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            record.lock().unwrap().push(credentials.clone());
            let answer = format!(
                r#"{{"error":{{"message":"Incorrect API key provided: {}","code":401}}}}"#,
                credentials.replace('"', "")
            );
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

fn with_ai_keys(command: &mut Command, provider_url: &str) {
    command
        .env("POTENTIA_AI_EMBEDDING_PROVIDER", "openai")
        .env("POTENTIA_AI_EMBEDDING_BASE_URL", provider_url)
        .env("POTENTIA_AI_EMBEDDING_API_KEY", EMBEDDING_KEY)
        .env("POTENTIA_AI_CHAT_PROVIDER", "gemini")
        .env("POTENTIA_AI_CHAT_BASE_URL", provider_url)
        .env("POTENTIA_AI_CHAT_API_KEY", CHAT_KEY)
        .env("POTENTIA_AI_MAX_ATTEMPTS", "1");
}

fn assert_no_key(what: &str, text: &str) {
    for key in [EMBEDDING_KEY, CHAT_KEY] {
        assert!(
            !text.contains(key),
            "{what} contains a provider key:\n{text}"
        );
    }
}

#[test]
fn help_never_shows_a_configured_key() {
    let (url, _) = start_echoing_provider();
    let mut command = potentia();
    command.args(["serve", "--help"]);
    with_ai_keys(&mut command, &url);
    let out = command.output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("POTENTIA_AI_EMBEDDING_API_KEY"), "{help}");
    assert_no_key("--help", &help);
}

#[tokio::test]
async fn keys_never_reach_logs_metrics_or_answers_even_when_the_provider_echoes_them() {
    let (url, seen) = start_echoing_provider();
    let db = ScratchDb::create().await;
    let mut command = potentia();
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .env("DATABASE_URL", &db.url)
        .env("POTENTIA_JWT_SECRET", SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_ai_keys(&mut command, &url);
    let mut child = KillOnDrop(command.spawn().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.0.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.0.stderr.take().unwrap()),
    ] {
        let (log, tx) = (Arc::clone(&log), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
    }
    let listening = wait_for_line(&lines, "listening");
    let addr = listening_addr(&listening);
    let http = reqwest::Client::new();
    let signup: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/auth/signup"))
        .json(&serde_json::json!({"email": "keys@example.org", "password": "long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["access_token"].as_str().expect("an access token");

    let search = http
        .get(format!("http://{addr}/api/v1/search?q=plans&mode=hybrid"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    let body = search.text().await.unwrap();
    assert!(body.contains("embedder_unavailable"), "{body}");
    assert_no_key("the search answer", &body);

    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("potentia_ai_requests"), "{metrics}");
    assert_no_key("/metrics", &metrics);

    // The keys were really sent to the provider (so there was something to leak).
    let sent = seen.lock().unwrap().join(" ");
    assert!(sent.contains(EMBEDDING_KEY), "{sent}");

    let pid = child.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let _ = child.0.wait();
    std::thread::sleep(Duration::from_millis(200));
    let log = log.lock().unwrap().clone();
    assert!(log.contains("search falls back to text"), "{log}");
    assert_no_key("the server's log", &log);
    db.drop_now().await;
}
