//! What the tests that run the real `potentia` binary share: the binary, a scratch database,
//! its log lines, and a guard that kills it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

pub const BIN: &str = env!("CARGO_BIN_EXE_potentia");
pub const SECRET: &str = "cli-test-secret-cli-test-secret-cli-test";

pub fn potentia() -> Command {
    let mut command = Command::new(BIN);
    for var in [
        "POTENTIA_JWT_SECRET",
        "POTENTIA_MODE",
        "REDIS_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "POTENTIA_AI_CHAT_PROVIDER",
        "POTENTIA_AI_CHAT_GGUF",
        "POTENTIA_AI_EMBEDDING_PROVIDER",
        "POTENTIA_AI_EMBEDDING_MODEL_DIR",
    ] {
        command.env_remove(var);
    }
    command
}

/// A scratch database for one test, dropped at the end.
pub struct ScratchDb {
    admin: String,
    name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn create() -> Self {
        let admin = std::env::var("DATABASE_URL").expect("DATABASE_URL (run ./scripts/test.sh)");
        let name = format!("potentia_cli_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.split('?').next().unwrap_or(&admin);
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Self { admin, name, url }
    }

    pub async fn drop_now(self) {
        let mut conn = PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// Streams the child's log lines (tracing writes to stdout) into a channel.
pub fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if line.contains(needle) {
                return line;
            }
        }
    }
    panic!("the server never logged {needle:?}");
}

/// The address in the server's `listening` log line, human (`addr=…`) or JSON (`"addr":"…"`).
pub fn listening_addr(line: &str) -> String {
    let human = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next());
    let json = line
        .split("\"addr\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next());
    json.or(human)
        .unwrap_or_else(|| panic!("no address in the listening line: {line}"))
        .to_owned()
}

/// Kills the server if the test fails before it exits by itself.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
