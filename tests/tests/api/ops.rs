//! `/health`, `/ready`, `/metrics` and the OpenAPI document.

use potentia_server::db;
use potentia_tests::{expect_problem, test_settings, TestApp};
use serde_json::Value;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::spawn().await;
    let body: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_checks_postgres_and_redis() {
    let app = TestApp::spawn_with(|s| s.redis_url = Some(redis_url())).await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"]["ok"], true);
    assert_eq!(body["checks"]["redis"]["ok"], true);
}

#[tokio::test]
async fn ready_is_503_naming_postgres_when_the_database_is_unreachable() {
    let url = "postgres://potentia@127.0.0.1:1/nowhere";
    let pool = db::connect_lazy(url, 1).unwrap();
    let app = TestApp::start(test_settings(url), pool, None).await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    let problem = expect_problem(response, 503, "not_ready").await;
    assert_eq!(problem["checks"]["postgres"]["ok"], false);
    assert!(problem["detail"].as_str().unwrap().contains("postgres"));
    // Liveness does not depend on the database.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn ready_is_503_naming_redis_when_redis_is_unreachable() {
    let app = TestApp::spawn_with(|s| s.redis_url = Some("redis://127.0.0.1:1".to_owned())).await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    let problem = expect_problem(response, 503, "not_ready").await;
    assert_eq!(problem["checks"]["postgres"]["ok"], true);
    assert_eq!(problem["checks"]["redis"]["ok"], false);
}

fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.client.get(app.url("/health")).send().await.unwrap();
    }
    app.client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &text,
            r#"potentia_http_requests_total{method="GET",route="/health",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"potentia_http_requests_total{method="GET",route="/api/v1/auth/me",status="401"}"#
        ),
        Some(1.0)
    );
    assert!(text.contains(r#"potentia_http_request_duration_seconds_bucket{"#));
    assert!(sample(&text, "potentia_db_pool_max_connections").is_some());
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_the_routes() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/signin",
        "/api/v1/auth/refresh",
        "/api/v1/auth/signout",
        "/api/v1/auth/me",
        "/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/api/v1/auth/me"]["patch"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
