//! Test harness for end-to-end tests: a real `potentia` server on a loopback port, over its own
//! freshly migrated Postgres database, driven through real HTTP.
//!
//! `DATABASE_URL` must name the provisioned Postgres (the README's test command sets it). Each
//! test gets a database cloned from a template migrated once per migration set, and dropped when
//! the test ends. [`smtp`] is a real SMTP server for the email outbox's tests.

pub mod bench;
pub mod fake_ai;
pub mod smtp;

use std::net::SocketAddr;
use std::time::Duration;

use potentia_server::ai::config::AiServerSettings;
use potentia_server::canvas_sync::SyncSettings;
use potentia_server::config::{AuthSettings, CorsOrigins, HttpSettings, JwtSecret, Mode, Settings};
use potentia_server::db::MIGRATOR;
use potentia_server::email::EmailOutbox;
use potentia_server::AppState;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The JWT secret every test server uses, so tests can forge and mint tokens.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";
pub const TEST_AUDIENCE: &str = "authenticated";
/// The external issuer test servers accept (a Supabase project's `iss`).
pub const TEST_EXTERNAL_ISSUER: &str = "https://project.supabase.example/auth/v1";
pub const TEST_PASSWORD: &str = "correct horse battery staple";

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at the provisioned Postgres; run ./scripts/test.sh")
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..]
        .find('/')
        .map_or(base.len(), |i| authority_end + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A name that changes whenever any migration changes.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in MIGRATOR.iter() {
        for byte in migration
            .checksum
            .iter()
            .chain(&migration.version.to_le_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("potentia_template_{hash:016x}")
}

/// Creates and migrates the template database once; concurrent test processes wait on an
/// advisory lock instead of racing.
async fn ensure_template(admin: &str) -> String {
    let name = template_name();
    let mut conn = PgConnection::connect(admin)
        .await
        .expect("connect to DATABASE_URL");
    sqlx::query("select pg_advisory_lock(4242001)")
        .execute(&mut conn)
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("query pg_database");
    if !exists {
        let building = format!("{name}_building");
        sqlx::query(&format!("drop database if exists {building} with (force)"))
            .execute(&mut conn)
            .await
            .expect("drop a half-built template");
        sqlx::query(&format!("create database {building}"))
            .execute(&mut conn)
            .await
            .expect("create template database");
        let mut migrating = PgConnection::connect(&with_database(admin, &building))
            .await
            .expect("connect to template");
        MIGRATOR
            .run(&mut migrating)
            .await
            .expect("migrate the template");
        migrating.close().await.expect("close the template");
        publish_template(&mut conn, &building, &name).await;
    }
    sqlx::query("select pg_advisory_unlock(4242001)")
        .execute(&mut conn)
        .await
        .expect("advisory unlock");
    name
}

/// Renames the built template into place. The migrating connection's backend may still be
/// exiting when the rename runs (55006 "being accessed by other users"): wait for it a little, then fail.
async fn publish_template(conn: &mut PgConnection, building: &str, name: &str) {
    let rename = format!("alter database {building} rename to {name}");
    for attempt in 1.. {
        match sqlx::query(&rename).execute(&mut *conn).await {
            Ok(_) => return,
            Err(sqlx::Error::Database(err))
                if err.code().as_deref() == Some("55006") && attempt < 100 =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(err) => panic!("publish template: {err}"),
        }
    }
}

/// A migrated database of one test's own, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    name: String,
    admin: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = admin_url();
        let template = ensure_template(&admin).await;
        let name = format!("potentia_test_{}", Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("connect to DATABASE_URL");
        let mut attempt = 0;
        loop {
            let created = sqlx::query(&format!("create database {name} template {template}"))
                .execute(&mut conn)
                .await;
            match created {
                Ok(_) => break,
                // Another process may still be closing its connection to the template.
                Err(err) if attempt < 20 => {
                    attempt += 1;
                    wait_before_retry(&err).await;
                }
                Err(err) => panic!("create test database: {err}"),
            }
        }
        Self {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }
}

async fn wait_before_retry(err: &sqlx::Error) {
    eprintln!("retrying test database creation: {err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread of its own may block on I/O.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("drop database if exists {name} with (force)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Settings of a test server: dev mode, a known JWT secret, small limits.
pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        mode: Mode::Dev,
        database_url: database_url.to_owned(),
        db_max_connections: 5,
        redis_url: None,
        run_migrations: false,
        auth: AuthSettings {
            jwt_secret: JwtSecret {
                bytes: TEST_JWT_SECRET.as_bytes().to_vec(),
                generated: false,
            },
            audience: TEST_AUDIENCE.to_owned(),
            issuer: "potentia".to_owned(),
            external_issuers: vec![TEST_EXTERNAL_ISSUER.to_owned()],
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            session_max_lifetime: Duration::from_secs(24 * 3600),
            session_check_interval: Duration::from_secs(1),
            refresh_reuse_grace: Duration::from_secs(10),
            rate_per_ip_per_minute: 1000,
            rate_per_account_per_minute: 1000,
        },
        http: HttpSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            body_limit_bytes: 64 * 1024,
            cors: CorsOrigins::List(vec!["https://app.example".to_owned()]),
            trust_proxy_headers: false,
            shutdown_grace: Duration::from_secs(5),
        },
        smtp: None,
        app_url: "https://app.example".to_owned(),
        public_url: "https://api.example".to_owned(),
        sync: SyncSettings::default(),
        ai: AiServerSettings::default(),
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// A pool on the server's database, for asserting on rows.
    pub db: PgPool,
    pub client: reqwest::Client,
    /// The server's email outbox handle: queue mail and wake its sender.
    pub outbox: EmailOutbox,
    /// The settings the server started with.
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _database: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server whose settings `configure` may change first.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let database = TestDb::create().await;
        let mut settings = test_settings(&database.url);
        configure(&mut settings);
        let pool = PgPoolOptions::new()
            .max_connections(settings.db_max_connections)
            .connect(&database.url)
            .await
            .expect("connect to the test database");
        Self::start(settings, pool, Some(database)).await
    }

    /// Starts a server over a pool the caller made (e.g. one that cannot connect).
    pub async fn start(settings: Settings, pool: PgPool, database: Option<TestDb>) -> Self {
        let listener = tokio::net::TcpListener::bind(settings.http.bind)
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let state = AppState::new(settings.clone(), pool.clone()).expect("app state");
        let outbox = state.outbox.clone();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(potentia_server::run(listener, state, async {
            let _ = shutdown_rx.await;
        }));
        Self {
            addr,
            db: pool,
            client: reqwest::Client::new(),
            outbox,
            settings,
            shutdown: Some(shutdown_tx),
            server: Some(server),
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The value of one sample of `/metrics` (the first line starting with `name`), 0 if absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let body = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        body.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    /// The y-websocket URL of a canvas, as the stock provider builds it.
    pub fn ws_url(&self, canvas: Uuid, token: &str) -> String {
        format!("ws://{}/ws/canvas/{canvas}?token={token}", self.addr)
    }

    /// A second server on the same database (another node), with this one's settings changed
    /// by `configure`.
    pub async fn spawn_node(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        TestApp::start(settings, self.db.clone(), None).await
    }

    /// Stops the server (draining it) and starts a new one on the same database and settings;
    /// the new one listens on another port.
    pub async fn restart(mut self) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let database = self._database.take();
        TestApp::start(self.settings.clone(), self.db.clone(), database).await
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Signs up a new account with [`TEST_PASSWORD`] and returns the session JSON.
    pub async fn sign_up(&self, email: &str) -> Session {
        let response = self
            .post_json(
                "/api/v1/auth/signup",
                &json!({ "email": email, "password": TEST_PASSWORD, "name": "Test User" }),
            )
            .await;
        assert_eq!(response.status(), 201, "sign-up of {email} failed");
        Session(response.json().await.expect("session json"))
    }

    /// The token of the latest verification link mailed to `address` (read from the outbox,
    /// as the recipient would from the mail).
    pub async fn verification_token(&self, address: &str) -> String {
        let body: String = sqlx::query_scalar(
            "select body_text from email_outbox
             where kind = 'email_verification' and lower(to_address) = lower($1)
             order by created_at desc limit 1",
        )
        .bind(address)
        .fetch_one(&self.db)
        .await
        .expect("a verification mail");
        body.split("verify-email?token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a link in the mail")
            .to_owned()
    }

    /// Verifies `address` through the link mailed to it; answers the profile.
    pub async fn verify_email(&self, address: &str) -> Value {
        let token = self.verification_token(address).await;
        let response = self
            .post_json("/api/v1/auth/verify", &json!({ "token": token }))
            .await;
        assert_eq!(response.status(), 200, "verifying {address} failed");
        response.json().await.expect("profile json")
    }

    /// Sends an authenticated request.
    pub fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Sends a request (with a token and a JSON body when given) and returns status and body
    /// (`Null` for an empty body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    /// Creates a workspace as the holder of `token`; returns its id.
    pub async fn create_workspace(&self, token: &str, name: &str) -> Uuid {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/workspaces",
                Some(token),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("workspace id")
    }

    /// Invites `invitee` to the workspace with `role` and has them accept; the way every member
    /// joins.
    pub async fn add_member(
        &self,
        admin_token: &str,
        workspace: Uuid,
        invitee: &Session,
        role: &str,
    ) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/workspaces/{workspace}/invitations"),
                Some(admin_token),
                Some(json!({ "user_id": invitee.user_id(), "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["invitation"]["id"]
            .as_str()
            .expect("invitation id")
            .to_owned();
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/invitations/{id}/accept"),
                Some(invitee.access_token()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Creates a canvas as the holder of `token`, personal or in a workspace; returns its id.
    pub async fn create_canvas(&self, token: &str, workspace: Option<Uuid>, title: &str) -> Uuid {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/canvases",
                Some(token),
                Some(json!({ "title": title, "workspace_id": workspace })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("canvas id")
    }

    /// Audit rows with `action`, oldest first.
    pub async fn audit_rows(&self, action: &str) -> Vec<AuditRow> {
        sqlx::query_as::<_, AuditRow>(
            "select actor_id, action, target_type, target_id, before, after, request_id
             from system_audit where action = $1 order by id",
        )
        .bind(action)
        .fetch_all(&self.db)
        .await
        .expect("audit rows")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A session as returned by sign-up, sign-in and refresh.
#[derive(Debug, Clone)]
pub struct Session(pub Value);

impl Session {
    pub fn access_token(&self) -> &str {
        self.0["access_token"].as_str().expect("access_token")
    }

    pub fn refresh_token(&self) -> &str {
        self.0["refresh_token"].as_str().expect("refresh_token")
    }

    pub fn user_id(&self) -> Uuid {
        self.0["user"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user.id")
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
}

/// The `errors[].field` of a problem, sorted: which fields a 422 named, in any order.
pub fn error_fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors[] in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    fields.sort_unstable();
    fields
}

/// Asserts a problem+json response and returns its body.
pub async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        content_type, "application/problem+json",
        "not a problem response"
    );
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status, "problem status: {body}");
    assert_eq!(body["code"], code, "problem code: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(
        body["request_id"].is_string(),
        "problem without request_id: {body}"
    );
    body
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5/potentia", "t1"),
            "postgres://u:p@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "t2"),
            "postgres://u@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t3"), "postgres://u@h/t3");
    }
}
