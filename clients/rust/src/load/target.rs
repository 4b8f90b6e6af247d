//! The server under test: how to get a canvas (a document) and the WebSocket URL of it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use yrs::Doc;

use crate::SyncClient;

/// Which server speaks at the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Ours: sign-up, canvases over REST, `GET /ws/canvas/{id}?token=`.
    Potentia,
    /// `@y/websocket-server` (npm): any path is a room, no auth, in memory.
    Node,
    /// `y-sweet` (crates.io): `POST /doc/new`, then `/d/{doc}/ws/{doc}`, no auth.
    Ysweet,
}

impl Kind {
    /// Every kind, in the order of the report's columns.
    pub const ALL: [Kind; 3] = [Kind::Potentia, Kind::Node, Kind::Ysweet];

    /// The name used in result lines.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Potentia => "potentia",
            Kind::Node => "node",
            Kind::Ysweet => "ysweet",
        }
    }

    /// The column header of the report.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Potentia => "potentia",
            Kind::Node => "y-websocket-server 0.1.1",
            Kind::Ysweet => "y-sweet 0.9.1",
        }
    }
}

/// A server and, for ours, the signed-up user the clients connect as.
pub struct Target {
    pub kind: Kind,
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Target {
    /// The server at `base` (`http://127.0.0.1:port`). For ours, signs up a fresh user.
    pub async fn open(kind: Kind, base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let token = match kind {
            Kind::Potentia => Some(sign_up(&http, &base).await?),
            Kind::Node | Kind::Ysweet => None,
        };
        Ok(Self {
            kind,
            base,
            http,
            token,
        })
    }

    /// The server at `base`, connecting as the holder of `token` (ours) instead of a new user.
    pub fn with_token(kind: Kind, base: &str, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            kind,
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            token,
        })
    }

    /// Ours: the access token of the bench user.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A new, empty document on the server; answers its id.
    pub async fn new_canvas(&self) -> anyhow::Result<String> {
        match self.kind {
            Kind::Potentia => {
                let token = self.token.as_deref().unwrap_or_default();
                let response = self
                    .http
                    .post(format!("{}/api/v1/canvases", self.base))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "title": "bench" }))
                    .send()
                    .await
                    .context("creating a canvas")?;
                json_field(response, "id").await
            }
            Kind::Ysweet => {
                let response = self
                    .http
                    .post(format!("{}/doc/new", self.base))
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .context("creating a y-sweet document")?;
                json_field(response, "docId").await
            }
            Kind::Node => Ok(uuid::Uuid::new_v4().to_string()),
        }
    }

    /// The WebSocket URL of a document.
    pub fn ws_url(&self, canvas: &str) -> String {
        let ws = self.base.replacen("http", "ws", 1);
        match self.kind {
            Kind::Potentia => format!(
                "{ws}/ws/canvas/{canvas}?token={}",
                self.token.as_deref().unwrap_or_default()
            ),
            // What the stock `WebsocketProvider('ws://…/d/<doc>/ws', '<doc>')` opens.
            Kind::Ysweet => format!("{ws}/d/{canvas}/ws/{canvas}"),
            Kind::Node => format!("{ws}/{canvas}"),
        }
    }

    /// A client of `canvas` holding `doc`, connected and synced.
    pub async fn connect(&self, canvas: &str, doc: Doc) -> anyhow::Result<SyncClient> {
        let mut client = SyncClient::with_doc(self.ws_url(canvas), doc)?;
        client.connect().await?;
        client.wait_synced(Duration::from_secs(60)).await?;
        Ok(client)
    }
}

async fn sign_up(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let email = format!("bench-{}@example.org", uuid::Uuid::new_v4().simple());
    let response = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&serde_json::json!({ "email": email, "password": "bench password 42" }))
        .send()
        .await
        .context("signing up the bench user")?;
    json_field(response, "access_token").await
}

async fn json_field(response: reqwest::Response, field: &str) -> anyhow::Result<String> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    let value: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
    value
        .get(field)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no `{field}` in {body}"))
}
