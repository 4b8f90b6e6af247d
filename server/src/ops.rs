//! Operational endpoints: liveness (`/health`), readiness (`/ready`) and metrics (`/metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::PROBLEM_CONTENT_TYPE;
use crate::state::AppState;

/// How long one dependency may take to answer a readiness probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/health` reports: a process that answers is up.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// What `/ready` reports when it answers 200.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ready,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process runs.
    pub status: HealthStatus,
    /// The server's version.
    pub version: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: HealthStatus::Ok,
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// Whether the dependency answered in time.
    pub ok: bool,
    /// What went wrong, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`: every check passed (a failed check answers 503 instead).
    pub status: ReadyStatus,
    /// One check per dependency: `postgres`, and `redis` when configured.
    pub checks: BTreeMap<&'static str, Check>,
}

/// Postgres and, when configured, Redis answer. 503 (problem+json with `checks`) names what
/// failed.
#[utoipa::path(
    get, path = "/ready", tag = "ops",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "A dependency is unreachable; `checks` says which", content_type = "application/problem+json"),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("postgres", check_postgres(&state).await);
    if let Some(client) = &state.redis {
        checks.insert("redis", check_redis(client).await);
    }
    let failed: Vec<String> = checks
        .iter()
        .filter_map(|(name, c)| c.error.as_ref().map(|e| format!("{name}: {e}")))
        .collect();
    if failed.is_empty() {
        return axum::Json(Readiness {
            status: ReadyStatus::Ready,
            checks,
        })
        .into_response();
    }
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": format!("not ready: {}", failed.join("; ")),
        "code": "not_ready",
        "checks": checks,
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn check_result<E: std::fmt::Display>(
    outcome: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Check {
    match outcome {
        Ok(Ok(())) => Check {
            ok: true,
            error: None,
        },
        Ok(Err(err)) => Check {
            ok: false,
            error: Some(err.to_string()),
        },
        Err(_) => Check {
            ok: false,
            error: Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        },
    }
}

async fn check_postgres(state: &AppState) -> Check {
    let probe = async {
        sqlx::query_scalar!("select 1 as one")
            .fetch_one(&state.db)
            .await
            .map(|_| ())
    };
    check_result(tokio::time::timeout(CHECK_TIMEOUT, probe).await)
}

async fn check_redis(client: &redis::Client) -> Check {
    let probe = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    };
    check_result(tokio::time::timeout(CHECK_TIMEOUT, probe).await)
}

/// Prometheus/OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&state.db),
    )
        .into_response()
}
