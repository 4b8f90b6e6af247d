//! Every error is problem+json with a request id: extractor rejections, unknown routes,
//! oversized bodies, wrong methods and media types.

use potentia_tests::{error_fields, expect_problem, TestApp};

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("content-type", "application/json")
        .body("{\"email\": \"a@b.co\", ")
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "malformed_json").await;
}

#[tokio::test]
async fn a_wrong_type_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/api/v1/auth/signin",
            &serde_json::json!({ "email": 42, "password": "x" }),
        )
        .await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "email");
}

#[tokio::test]
async fn a_missing_field_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/api/v1/auth/signin",
            &serde_json::json!({ "email": "a@b.co" }),
        )
        .await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "password");
}

#[tokio::test]
async fn a_body_without_json_content_type_is_415() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let huge = format!(
        "{{\"email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(200 * 1024)
    );
    let response = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    expect_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 404, "route_not_found").await;
    assert_eq!(problem["detail"], "no route for GET /api/v1/no-such-thing");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .delete(app.url("/api/v1/auth/signin"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    expect_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
    let app = TestApp::spawn().await;
    let generated = app.client.get(app.url("/health")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let given = app
        .client
        .get(app.url("/api/v1/nope"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-123");
    let problem: serde_json::Value = given.json().await.unwrap();
    assert_eq!(problem["request_id"], "trace-me-123");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = TestApp::spawn().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn dev_mode_allows_loopback_pages_without_credentials() {
    let app =
        TestApp::spawn_with(|s| s.http.cors = potentia_server::config::CorsOrigins::Loopback).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let vite = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(
        vite.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(!vite
        .headers()
        .contains_key("access-control-allow-credentials"));
    let foreign = preflight("http://localhost.evil.example").await.unwrap();
    assert!(!foreign
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn every_invalid_field_of_a_body_is_named_in_product_words() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("fields@example.org").await;
    let response = app
        .authed(reqwest::Method::POST, "/api/v1/canvases", me.access_token())
        .json(&serde_json::json!({ "title": 3, "icon": [1], "workspace_id": "nope", "colour": "red" }))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(
        error_fields(&problem),
        ["colour", "icon", "title", "workspace_id"]
    );
    let text = problem.to_string();
    assert!(text.contains("must be an id"), "{text}");
    assert!(
        !text.contains("UUID parsing failed") && !text.contains("line 1"),
        "{text}"
    );

    let malformed = app
        .authed(reqwest::Method::POST, "/api/v1/canvases", me.access_token())
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    let problem = expect_problem(malformed, 400, "malformed_json").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains("line") && !detail.contains("Error("),
        "{detail}"
    );
}
