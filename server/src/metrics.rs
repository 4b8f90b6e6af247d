//! Prometheus metrics: HTTP requests and latency by route and status, DB pool gauges, and the
//! email outbox's deliveries by kind.
//! Rendered as OpenMetrics text at `GET /metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/api/v1/canvases/{id}`), never the raw path, to bound cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// The outbox `kind` (`workspace_invitation`, …): a fixed set named in code.
    pub kind: String,
}

type HistogramFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily,
    db_pool_size: Gauge,
    db_pool_idle: Gauge,
    db_pool_max: Gauge,
    emails_sent: Family<EmailLabels, Counter>,
    email_failed_attempts: Family<EmailLabels, Counter>,
    emails_given_up: Family<EmailLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    pub fn new(sync: &potentia_sync::SyncMetrics, ai: &potentia_ai::AiMetrics) -> Self {
        let mut registry = Registry::with_prefix("potentia");
        sync.register(&mut registry);
        ai.register(&mut registry);
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let db_pool_size = Gauge::default();
        let db_pool_idle = Gauge::default();
        let db_pool_max = Gauge::default();
        let emails_sent = Family::<EmailLabels, Counter>::default();
        let email_failed_attempts = Family::<EmailLabels, Counter>::default();
        let emails_given_up = Family::<EmailLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            http_duration.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open connections in the Postgres pool",
            db_pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle connections in the Postgres pool",
            db_pool_idle.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Configured maximum of the Postgres pool",
            db_pool_max.clone(),
        );
        registry.register(
            "emails_sent",
            "Emails the SMTP server accepted, by kind",
            emails_sent.clone(),
        );
        registry.register(
            "email_failed_attempts",
            "Email delivery attempts that failed, transiently or for good, by kind",
            email_failed_attempts.clone(),
        );
        registry.register(
            "emails_given_up",
            "Emails marked failed: refused for good or out of attempts, by kind",
            emails_given_up.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            db_pool_size,
            db_pool_idle,
            db_pool_max,
            emails_sent,
            email_failed_attempts,
            emails_given_up,
        }
    }

    pub fn observe_request(&self, labels: HttpLabels, seconds: f64) {
        self.http_duration.get_or_create(&labels).observe(seconds);
        self.http_requests.get_or_create(&labels).inc();
    }

    pub fn email_sent(&self, kind: &str) {
        self.emails_sent.get_or_create(&email_labels(kind)).inc();
    }

    pub fn email_attempt_failed(&self, kind: &str) {
        self.email_failed_attempts
            .get_or_create(&email_labels(kind))
            .inc();
    }

    pub fn email_given_up(&self, kind: &str) {
        self.emails_given_up
            .get_or_create(&email_labels(kind))
            .inc();
    }

    /// Samples the pool gauges and renders every metric as OpenMetrics text.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        self.db_pool_size.set(i64::from(pool.size()));
        self.db_pool_idle.set(pool.num_idle() as i64);
        self.db_pool_max
            .set(i64::from(pool.options().get_max_connections()));
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%err, "encoding metrics failed");
        }
        out
    }
}

fn email_labels(kind: &str) -> EmailLabels {
    EmailLabels {
        kind: kind.to_owned(),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(
            &potentia_sync::SyncMetrics::default(),
            &potentia_ai::AiMetrics::default(),
        )
    }
}

/// Middleware recording every request's count and latency.
pub async fn track_http_metrics(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state
        .metrics
        .observe_request(labels, started.elapsed().as_secs_f64());
    response
}
