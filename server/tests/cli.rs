//! The `potentia` binary as an operator runs it: configuration checks, `token`, and graceful
//! shutdown on SIGTERM that lets an in-flight request finish.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{listening_addr, log_lines, potentia, wait_for_line, KillOnDrop, ScratchDb, SECRET};

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

#[test]
fn production_mode_refuses_to_start_without_a_jwt_secret() {
    let out = potentia()
        .args([
            "serve",
            "--mode",
            "production",
            "--database-url",
            "postgres://u@127.0.0.1:1/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POTENTIA_JWT_SECRET is required in production mode"),
        "{stderr}"
    );
}

#[test]
fn without_a_mode_the_binary_runs_in_production_and_refuses_a_weak_secret() {
    let out = potentia()
        .args([
            "serve",
            "--database-url",
            "postgres://u@127.0.0.1:1/x",
            "--jwt-secret",
            "short",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("POTENTIA_JWT_SECRET must be at least 32 bytes in production mode"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_setting_is_named_at_start() {
    let out = potentia()
        .args([
            "serve",
            "--database-url",
            "mysql://x",
            "--jwt-secret",
            SECRET,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL must start with postgres://")
    );
}

#[test]
fn token_mints_a_jwt_for_the_given_user() {
    let user = "0190e0c4-8f3a-7cc2-9b4e-1d2f3a4b5c6d";
    let out = potentia()
        .args([
            "token",
            "--user",
            user,
            "--email",
            "ops@example.org",
            "--ttl-secs",
            "120",
        ])
        .env("POTENTIA_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    let claims = decode::<serde_json::Value>(
        token.trim(),
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], user);
    assert_eq!(claims["email"], "ops@example.org");
}

fn token_claims(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    decode::<serde_json::Value>(
        token.trim(),
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn token_by_email_names_the_existing_account_or_a_new_one() {
    let db = ScratchDb::create().await;
    let migrated = potentia()
        .args(["migrate"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let account = uuid::Uuid::now_v7();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("insert into users (id, email) values ($1, 'Ada@Example.org')")
        .bind(account)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mint = |email: &str| {
        potentia()
            .args(["token", "--email", email])
            .env("POTENTIA_JWT_SECRET", SECRET)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };

    let existing = mint("ada@example.org");
    assert_eq!(token_claims(&existing)["sub"], account.to_string());
    let fresh = mint("newcomer@example.org");
    let claims = token_claims(&fresh);
    assert_ne!(claims["sub"], account.to_string());
    assert!(String::from_utf8_lossy(&fresh.stderr).contains("no account has newcomer@example.org"));
    db.drop_now().await;
}

#[test]
fn token_without_a_secret_says_what_is_missing() {
    let out = potentia().args(["token"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("POTENTIA_JWT_SECRET must be set"));
}

// Multi-threaded: the test blocks on log lines while the request task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let db = ScratchDb::create().await;
    let child = potentia()
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "human"])
        .env("DATABASE_URL", &db.url)
        .env("POTENTIA_JWT_SECRET", SECRET)
        .env("RUST_LOG", "info,tower_http=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let lines = log_lines(&mut child.0);
    let listening = wait_for_line(&lines, "listening");
    let addr = listening_addr(&listening);

    let signup = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/api/v1/auth/signup"))
            .json(&serde_json::json!({ "email": "drain@example.org", "password": "long enough password" }))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    wait_for_line(&lines, "started processing request");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    assert_eq!(
        signup.await.unwrap().unwrap(),
        201,
        "the in-flight sign-up completes"
    );
    wait_for_line(&lines, "shutting down");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    db.drop_now().await;
}

#[test]
fn help_never_shows_a_configured_redis_password() {
    let out = potentia()
        .args(["serve", "--help"])
        .env(
            "REDIS_URL",
            "redis://:hunter2-redis-password@127.0.0.1:6379",
        )
        .env(
            "DATABASE_URL",
            "postgres://u:hunter2-db-password@127.0.0.1/x",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("REDIS_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

// Multi-threaded: the test blocks on log lines while the request runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_secret_in_the_url_never_reaches_the_logs() {
    let db = ScratchDb::create().await;
    let child = potentia()
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .env("DATABASE_URL", &db.url)
        .env("POTENTIA_JWT_SECRET", SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let lines = log_lines(&mut child.0);
    let listening = wait_for_line(&lines, "listening");
    let addr = listening_addr(&listening);

    let secret = "feedsecret-Zk4pN8sQ1wT6yB3mC9vR2xL7hJ5dF0gA";
    let status = reqwest::get(format!("http://{addr}/api/v1/calendar-feeds/{secret}.ics"))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "no response line:\n{}",
            seen.join("\n")
        );
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let done = line.contains("finished processing request");
        seen.push(line);
        if done {
            break;
        }
    }
    let log = seen.join("\n");
    assert!(!log.contains("feedsecret"), "the secret was logged:\n{log}");
    assert!(
        log.contains("/api/v1/calendar-feeds/{token}"),
        "the request is logged by its route template:\n{log}"
    );
    db.drop_now().await;
}
