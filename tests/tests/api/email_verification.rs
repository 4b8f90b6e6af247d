//! Email verification: sign-up mails a one-time link, the link verifies the address once, a
//! resend is rate-limited, and an external token vouches for an address only when its claims
//! say so.

use chrono::Utc;
use jsonwebtoken::{encode, EncodingKey, Header};
use potentia_tests::{
    expect_problem, TestApp, TEST_AUDIENCE, TEST_EXTERNAL_ISSUER, TEST_JWT_SECRET,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn me(app: &TestApp, token: &str) -> Value {
    let (status, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await;
    assert_eq!(status, 200, "{me}");
    me
}

async fn resend(app: &TestApp, token: &str) -> reqwest::Response {
    app.authed(Method::POST, "/api/v1/auth/verify/resend", token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_up_mails_a_link_that_verifies_the_address_once() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    assert_eq!(ada.0["user"]["email_verified"], false);
    let body: String = sqlx::query_scalar(
        "select body_text from email_outbox where kind = 'email_verification' and to_address = $1",
    )
    .bind("ada@example.org")
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        body.contains("https://app.example/verify-email?token="),
        "{body}"
    );
    let token = app.verification_token("ada@example.org").await;
    let verified = app
        .post_json("/api/v1/auth/verify", &json!({ "token": token }))
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(me(&app, ada.access_token()).await["email_verified"], true);
    assert_eq!(app.audit_rows("user.verify_email").await.len(), 1);
    let again = app
        .post_json("/api/v1/auth/verify", &json!({ "token": token }))
        .await;
    expect_problem(again, 400, "invalid_verification_token").await;
}

#[tokio::test]
async fn an_unknown_or_expired_link_is_refused_and_verifies_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let unknown = app
        .post_json("/api/v1/auth/verify", &json!({ "token": "not-a-token" }))
        .await;
    expect_problem(unknown, 400, "invalid_verification_token").await;
    sqlx::query("update email_verifications set expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let token = app.verification_token("ada@example.org").await;
    let expired = app
        .post_json("/api/v1/auth/verify", &json!({ "token": token }))
        .await;
    expect_problem(expired, 400, "verification_token_expired").await;
    assert_eq!(me(&app, ada.access_token()).await["email_verified"], false);
}

#[tokio::test]
async fn a_resend_waits_a_minute_and_stops_once_verified() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let soon = resend(&app, ada.access_token()).await;
    assert_eq!(soon.status(), 429);
    let retry: u64 = soon.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    sqlx::query("update email_verifications set created_at = now() - interval '2 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(resend(&app, ada.access_token()).await.status(), 202);
    let links: i64 =
        sqlx::query_scalar("select count(*) from email_outbox where kind = 'email_verification'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(links, 2);
    app.verify_email("ada@example.org").await;
    expect_problem(
        resend(&app, ada.access_token()).await,
        409,
        "already_verified",
    )
    .await;
}

#[tokio::test]
async fn at_most_five_links_a_day_are_sent() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    for _ in 0..4 {
        sqlx::query(
            "update email_verifications set created_at = created_at - interval '2 minutes'",
        )
        .execute(&app.db)
        .await
        .unwrap();
        assert_eq!(resend(&app, ada.access_token()).await.status(), 202);
    }
    sqlx::query("update email_verifications set created_at = created_at - interval '2 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    let refused = resend(&app, ada.access_token()).await;
    assert_eq!(refused.status(), 429);
}

fn external_token(sub: Uuid, extra: Value) -> String {
    let mut claims = json!({ "sub": sub.to_string(), "email": "ext@example.org", "aud": TEST_AUDIENCE,
                             "iss": TEST_EXTERNAL_ISSUER, "exp": Utc::now().timestamp() + 600 });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn an_external_token_counts_as_verified_only_when_its_claims_say_so() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    let unconfirmed = external_token(id, json!({ "email_verified": false }));
    assert_eq!(me(&app, &unconfirmed).await["email_verified"], false);
    let confirmed = external_token(id, json!({ "email_confirmed_at": "2026-11-30T10:00:00Z" }));
    assert_eq!(me(&app, &confirmed).await["email_verified"], true);
    let rows = app.audit_rows("user.verify_email").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].after.as_ref().unwrap()["source"], "external_token");
}
