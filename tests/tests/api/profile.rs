//! `GET`/`PATCH /api/v1/auth/me`: profile fields, phone numbers from many countries, auditing.

use potentia_tests::{expect_problem, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn patch_me(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.authed(Method::PATCH, "/api/v1/auth/me", session.access_token())
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Valid numbers (libphonenumber's example numbers) as typed, and their E.164 form.
const VALID_PHONES: &[(&str, &str, &str)] = &[
    ("US", "+1 201-555-0123", "+12015550123"),
    ("GB", "+44 7400 123456", "+447400123456"),
    ("FR", "+33 1 23 45 67 89", "+33123456789"),
    ("DE", "+49 30 123456", "+4930123456"),
    ("JP", "+81 3-1234-5678", "+81312345678"),
    ("IN", "+91 81234 56789", "+918123456789"),
    ("BR", "+55 11 96123-4567", "+5511961234567"),
    ("AU", "+61 412 345 678", "+61412345678"),
    ("NG", "+234 802 123 4567", "+2348021234567"),
    ("ZA", "+27 71 123 4567", "+27711234567"),
];

/// Numbers that are not valid for their country (too short, impossible prefixes, unknown codes).
const INVALID_PHONES: &[(&str, &str)] = &[
    ("US", "+1 123 456 7890"),
    ("GB", "+44 12345"),
    ("FR", "+33 12 34"),
    ("DE", "+49 1"),
    ("JP", "+81 12"),
    ("IN", "+91 12"),
    ("BR", "+55 11 1234"),
    ("AU", "+61 1234"),
    ("unknown country code", "+999 123456789"),
    ("no country code", "2015550123"),
    ("letters", "+1 call me"),
];

#[tokio::test]
async fn valid_phone_numbers_from_ten_countries_are_stored_in_e164() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("phones@example.org").await;
    for (country, typed, e164) in VALID_PHONES {
        let response = patch_me(&app, &session, json!({ "phone": typed })).await;
        assert_eq!(response.status(), 200, "{country} {typed}");
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["phone"], *e164, "{country}");
    }
}

#[tokio::test]
async fn invalid_phone_numbers_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("badphones@example.org").await;
    patch_me(&app, &session, json!({ "phone": "+12015550123" })).await;
    for (case, typed) in INVALID_PHONES {
        let response = patch_me(&app, &session, json!({ "phone": typed })).await;
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "phone", "{case}");
    }
    let stored: Option<String> = sqlx::query_scalar("select phone from users where id = $1")
        .bind(session.user_id())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("+12015550123"),
        "refused patches change nothing"
    );
}

#[tokio::test]
async fn a_patch_changes_only_the_fields_it_names() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("partial@example.org").await;
    let first: Value = patch_me(
        &app,
        &session,
        json!({ "timezone": "Europe/Paris", "locale": "fr-FR" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (first["timezone"].as_str(), first["locale"].as_str()),
        (Some("Europe/Paris"), Some("fr-FR"))
    );
    let second: Value = patch_me(
        &app,
        &session,
        json!({ "preferences": { "theme": "dark" } }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(second["timezone"], "Europe/Paris");
    assert_eq!(second["name"], "Test User");
    assert_eq!(second["preferences"], json!({ "theme": "dark" }));
}

#[tokio::test]
async fn null_clears_name_and_phone() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("clear@example.org").await;
    patch_me(&app, &session, json!({ "phone": "+447400123456" })).await;
    let cleared: Value = patch_me(&app, &session, json!({ "phone": null, "name": null }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["phone"], Value::Null);
    assert_eq!(cleared["name"], Value::Null);
}

#[tokio::test]
async fn every_invalid_field_is_reported_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("many@example.org").await;
    let response = patch_me(
        &app,
        &session,
        json!({ "name": "Valid Name", "timezone": "Nowhere/City", "locale": "english", "preferences": [1, 2] }),
    )
    .await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["timezone", "locale", "preferences"]);
    let name: Option<String> = sqlx::query_scalar("select name from users where id = $1")
        .bind(session.user_id())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("Test User"));
}

#[tokio::test]
async fn unknown_profile_fields_are_refused() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("unknown@example.org").await;
    let response = patch_me(&app, &session, json!({ "email": "new@example.org" })).await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "email");
}

#[tokio::test]
async fn a_profile_update_is_audited_with_before_and_after() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("audited@example.org").await;
    patch_me(&app, &session, json!({ "timezone": "Asia/Tokyo" })).await;
    let rows = app.audit_rows("user.update").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor_id, Some(session.user_id()));
    assert_eq!(rows[0].before.as_ref().unwrap()["timezone"], "UTC");
    assert_eq!(rows[0].after.as_ref().unwrap()["timezone"], "Asia/Tokyo");
}
