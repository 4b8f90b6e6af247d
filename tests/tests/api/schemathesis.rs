//! Schemathesis (the property-based API tester, from PyPI) against the real server and its
//! served OpenAPI document: every operation gets generated requests, valid and invalid, with
//! NUL characters, huge numbers and odd strings, and must answer without a server error and
//! as documented (status, content type and body schema).
//!
//! A signed-in owner's resources are seeded first and named in the run's configuration, so
//! requests reach the handlers instead of 404. The run has two passes over fresh seeds: every
//! operation that keeps its resources, then the ones that remove them (deletes, leave,
//! transfer, archive, sign-out). The chat provider is a fake at the HTTP boundary, so a turn
//! runs for real. The seed is fixed: a run is reproducible, and CI sees the same cases.
//!
//! `POTENTIA_SCHEMATHESIS` names the `schemathesis` executable (`scripts/test.sh` installs a
//! pinned one into `.local/schemathesis`, on CPython 3.13 or later).

use potentia_ai::settings::{ChatProviderSettings, RemoteEndpoint};
use potentia_tests::fake_ai::FakeOpenAi;
use potentia_tests::{Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::process::Command;
use uuid::Uuid;

/// Test cases per operation and phase; bounded so the run takes about a minute.
const MAX_EXAMPLES: &str = "20";
const SEED: &str = "1";
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
/// Operations that remove what the others need; they run in the second pass.
const REMOVING: &str = r"^(DELETE .*|POST /api/v1/workspaces/\{workspace_id\}/(leave|transfer)|POST /api/v1/auth/signout|POST /api/v1/canvases/\{canvas_id\}/archive)$";

/// How much of a failed run's report a failure shows (its failures and summary come last).
const REPORT_LINES: usize = 200;

/// The last `lines` lines of `text`, each cut to 500 characters (a report can quote a whole
/// source file).
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| line.chars().take(500).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn schemathesis() -> String {
    std::env::var("POTENTIA_SCHEMATHESIS").expect(
        "POTENTIA_SCHEMATHESIS must name the schemathesis executable; run ./scripts/test.sh",
    )
}

/// What the seeded resources are called in requests: path parameter name → value.
struct Seed {
    token: String,
    parameters: Vec<(&'static str, String)>,
}

async fn ok(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = app
        .call(method.clone(), path, Some(token), Some(body))
        .await;
    assert!(
        (200..300).contains(&status),
        "seeding {method} {path}: {status} {answer}"
    );
    answer
}

fn id(value: &Value) -> String {
    value.as_str().expect("an id").to_owned()
}

/// An owner with a workspace (a second member), a canvas with a block, a calendar (the member
/// subscribed) with a weekly schedule, an exception, a guest and a feed, a conversation, a
/// memory, an AI role, a pending invitation and an invite link.
async fn seed(app: &TestApp) -> Seed {
    let owner = app
        .sign_up(&format!("owner-{}@example.org", Uuid::now_v7()))
        .await;
    let member: Session = app
        .sign_up(&format!("member-{}@example.org", Uuid::now_v7()))
        .await;
    let token = owner.access_token().to_owned();
    let t = token.as_str();
    let workspace = app.create_workspace(t, "Fuzzed").await;
    app.add_member(t, workspace, &member, "member").await;
    let canvas = app.create_canvas(t, Some(workspace), "Plan").await;
    let block = ok(
        app,
        Method::POST,
        &format!("/api/v1/canvases/{canvas}/blocks"),
        t,
        json!({ "type": "todo", "text": "Book the venue", "props": { "checked": false } }),
    )
    .await;
    let calendar = ok(
        app,
        Method::POST,
        "/api/v1/calendars",
        t,
        json!({ "name": "Work", "workspace_id": workspace }),
    )
    .await;
    let calendar = id(&calendar["id"]);
    ok(
        app,
        Method::POST,
        &format!("/api/v1/calendars/{calendar}/subscriptions"),
        t,
        json!({ "user_id": member.user_id(), "role": "viewer" }),
    )
    .await;
    let schedule = ok(
        app,
        Method::POST,
        &format!("/api/v1/calendars/{calendar}/schedules"),
        t,
        json!({ "title": "Weekly", "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z",
                "time_zone": "UTC", "recurrence": { "rrule": ["FREQ=WEEKLY"] } }),
    )
    .await;
    let schedule = id(&schedule["schedule"]["id"]);
    let original_start = "2026-12-14T09:00:00".to_owned();
    ok(
        app,
        Method::PUT,
        &format!("/api/v1/schedules/{schedule}/exceptions"),
        t,
        json!({ "original_start": original_start, "title": "Weekly (moved)" }),
    )
    .await;
    let guest = ok(
        app,
        Method::POST,
        &format!("/api/v1/schedules/{schedule}/guests"),
        t,
        json!({ "email": "guest@example.org" }),
    )
    .await;
    let feed = ok(
        app,
        Method::POST,
        &format!("/api/v1/calendars/{calendar}/feed-token"),
        t,
        json!({}),
    )
    .await;
    let conversation = ok(
        app,
        Method::POST,
        "/api/v1/conversations",
        t,
        json!({ "workspace_id": workspace }),
    )
    .await;
    let memory = ok(
        app,
        Method::POST,
        "/api/v1/memories",
        t,
        json!({ "text": "Prefers tea in the afternoon" }),
    )
    .await;
    let role = ok(app, Method::POST, &format!("/api/v1/workspaces/{workspace}/ai-roles"), t,
        json!({ "name": "Planner", "description": "Plans launches", "prompt": "You plan launches." })).await;
    let invitation = ok(
        app,
        Method::POST,
        &format!("/api/v1/workspaces/{workspace}/invitations"),
        t,
        json!({ "email": format!("invitee-{}@example.org", Uuid::now_v7()), "role": "viewer" }),
    )
    .await;
    let link = ok(
        app,
        Method::POST,
        &format!("/api/v1/workspaces/{workspace}/invite-links"),
        t,
        json!({ "role": "viewer" }),
    )
    .await;
    Seed {
        token,
        parameters: vec![
            ("workspace_id", workspace.to_string()),
            ("canvas_id", canvas.to_string()),
            ("block_id", id(&block["id"])),
            ("calendar_id", calendar),
            ("schedule_id", schedule),
            ("original_start", original_start),
            ("guest_id", id(&guest["id"])),
            ("token", id(&feed["token"])),
            ("user_id", member.user_id().to_string()),
            ("conversation_id", id(&conversation["id"])),
            ("memory_id", id(&memory["id"])),
            ("role_id", id(&role["id"])),
            ("invitation_id", id(&invitation["invitation"]["id"])),
            ("link_id", id(&link["link"]["id"])),
        ],
    }
}

/// Runs one pass; `filter` is `--include-name-regex` or `--exclude-name-regex` of [`REMOVING`].
async fn pass(app: &TestApp, filter: &str) -> (bool, String) {
    let seed = seed(app).await;
    // Its own directory: schemathesis writes reports and caches beside its configuration.
    let dir = std::env::temp_dir().join(format!("potentia-schemathesis-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let config = dir.join("schemathesis.toml");
    let parameters: String = seed
        .parameters
        .iter()
        .map(|(name, value)| format!("{name} = {}\n", json!(value)))
        .collect();
    std::fs::write(&config, format!("[parameters]\n{parameters}")).expect("config written");
    let output = Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", seed.token)])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--generation-allow-x00", "true"])
        .args([
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "2",
        ])
        .args([filter, REMOVING])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis runs");
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), tail(&report, REPORT_LINES))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_server_error_and_answers_as_documented() {
    let fake = FakeOpenAi::start().await;
    fake.set_reply("Noted.");
    let base_url = fake.base_url();
    let app = TestApp::spawn_with(|s| {
        s.ai.ai.chat = Some(ChatProviderSettings::OpenAi(RemoteEndpoint {
            base_url,
            api_key: None,
            model: "fake-chat".into(),
        }));
        s.ai.turns_per_minute = 100_000;
        s.auth.rate_per_ip_per_minute = 100_000;
        s.auth.rate_per_account_per_minute = 100_000;
    })
    .await;
    for filter in ["--exclude-name-regex", "--include-name-regex"] {
        let (passed, report) = pass(&app, filter).await;
        assert!(
            passed,
            "schemathesis ({filter} removing operations) failed:\n{report}"
        );
    }
}
