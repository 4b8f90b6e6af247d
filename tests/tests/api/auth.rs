//! Sign-up, sign-in, refresh rotation with reuse detection, sign-out and token verification.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{encode, EncodingKey, Header};
use potentia_tests::{
    expect_problem, TestApp, TEST_AUDIENCE, TEST_EXTERNAL_ISSUER, TEST_JWT_SECRET, TEST_PASSWORD,
};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

fn forge(secret: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn valid_claims(sub: Uuid) -> serde_json::Value {
    json!({ "sub": sub.to_string(), "email": "ext@example.org", "aud": TEST_AUDIENCE,
            "iss": TEST_EXTERNAL_ISSUER, "exp": Utc::now().timestamp() + 600, "role": "authenticated" })
}

#[tokio::test]
async fn sign_up_returns_a_session_whose_token_reads_the_profile() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ada@example.org").await;
    assert_eq!(session.0["token_type"], "bearer");
    assert_eq!(session.0["expires_in"], 900);
    assert_eq!(session.0["user"]["email"], "ada@example.org");

    let me = app
        .authed(Method::GET, "/api/v1/auth/me", session.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["id"], session.0["user"]["id"]);
    assert_eq!(me["timezone"], "UTC");
    assert_eq!(me["locale"], "en");
}

#[tokio::test]
async fn sign_up_with_a_taken_email_in_any_case_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.sign_up("grace@example.org").await;
    let again = app
        .post_json(
            "/api/v1/auth/signup",
            &json!({ "email": "GRACE@Example.org", "password": TEST_PASSWORD }),
        )
        .await;
    expect_problem(again, 409, "email_taken").await;
}

#[tokio::test]
async fn sign_up_names_every_invalid_field() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/api/v1/auth/signup",
            &json!({ "email": "not-an-email", "password": "short", "timezone": "Mars/Base" }),
        )
        .await;
    let problem = expect_problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "timezone", "password"]);
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0, "a refused sign-up writes nothing");
}

#[tokio::test]
async fn sign_in_with_the_right_password_starts_a_session() {
    let app = TestApp::spawn().await;
    let signed_up = app.sign_up("linus@example.org").await;
    let response = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": " Linus@Example.org ", "password": TEST_PASSWORD }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let session: serde_json::Value = response.json().await.unwrap();
    assert_eq!(session["user"]["id"], signed_up.0["user"]["id"]);
    assert_ne!(session["refresh_token"], signed_up.0["refresh_token"]);
}

#[tokio::test]
async fn sign_in_with_a_wrong_password_or_unknown_email_is_the_same_401() {
    let app = TestApp::spawn().await;
    app.sign_up("barbara@example.org").await;
    let wrong = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "barbara@example.org", "password": "wrong password" }),
        )
        .await;
    let wrong = expect_problem(wrong, 401, "invalid_credentials").await;
    let unknown = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "nobody@example.org", "password": TEST_PASSWORD }),
        )
        .await;
    let unknown = expect_problem(unknown, 401, "invalid_credentials").await;
    assert_eq!(wrong["detail"], unknown["detail"]);
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("ken@example.org").await;
    let response = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": session.refresh_token() }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let next: serde_json::Value = response.json().await.unwrap();
    assert_ne!(next["refresh_token"], session.0["refresh_token"]);
    let me = app
        .authed(
            Method::GET,
            "/api/v1/auth/me",
            next["access_token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}

/// Moves every use of a refresh token `seconds` into the past, beyond the grace window.
async fn age_refresh_uses(app: &TestApp, seconds: i32) {
    sqlx::query("update refresh_tokens set used_at = used_at - make_interval(secs => $1)")
        .bind(f64::from(seconds))
        .execute(&app.db)
        .await
        .unwrap();
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

async fn refreshed_token(app: &TestApp, token: &str) -> String {
    let response = refresh(app, token).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("dennis@example.org").await;
    let rotated = refreshed_token(&app, session.refresh_token()).await;
    age_refresh_uses(&app, 60).await;

    let replay = refresh(&app, session.refresh_token()).await;
    expect_problem(replay, 401, "refresh_token_reused").await;

    // The legitimate descendant dies with the family.
    let descendant = refresh(&app, &rotated).await;
    expect_problem(descendant, 401, "refresh_token_revoked").await;
    assert_eq!(app.audit_rows("auth.refresh_reuse").await.len(), 1);
}

#[tokio::test]
async fn two_tabs_refreshing_with_one_token_at_once_both_stay_signed_in() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("tabs@example.org").await;
    let (first, second) = tokio::join!(
        refresh(&app, session.refresh_token()),
        refresh(&app, session.refresh_token())
    );
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = second.json().await.unwrap();
    assert!(first["refresh_token"].is_string(), "{first}");
    assert_eq!(first["refresh_token"], second["refresh_token"]);
    assert!(second["access_token"].is_string(), "{second}");
    // The shared successor is an ordinary live token.
    refreshed_token(&app, first["refresh_token"].as_str().unwrap()).await;
    assert!(app.audit_rows("auth.refresh_reuse").await.is_empty());
}

#[tokio::test]
async fn a_replay_within_the_grace_window_answers_the_newest_live_token() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("chain@example.org").await;
    let second = refreshed_token(&app, session.refresh_token()).await;
    let third = refreshed_token(&app, &second).await;
    assert_eq!(refreshed_token(&app, session.refresh_token()).await, third);
}

#[tokio::test]
async fn without_a_grace_window_a_second_use_is_reuse() {
    let app = TestApp::spawn_with(|s| s.auth.refresh_reuse_grace = Duration::ZERO).await;
    let session = app.sign_up("strict@example.org").await;
    refreshed_token(&app, session.refresh_token()).await;
    let replay = refresh(&app, session.refresh_token()).await;
    expect_problem(replay, 401, "refresh_token_reused").await;
}

#[tokio::test]
async fn reuse_of_one_family_leaves_other_sessions_alive() {
    let app = TestApp::spawn().await;
    let phone = app.sign_up("margaret@example.org").await;
    let laptop: serde_json::Value = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "margaret@example.org", "password": TEST_PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    refreshed_token(&app, phone.refresh_token()).await;
    age_refresh_uses(&app, 60).await;
    let reuse = refresh(&app, phone.refresh_token()).await;
    expect_problem(reuse, 401, "refresh_token_reused").await;
    refreshed_token(&app, laptop["refresh_token"].as_str().unwrap()).await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json("/api/v1/auth/refresh", &json!({ "refresh_token": "nope" }))
        .await;
    expect_problem(response, 401, "invalid_refresh_token").await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("alan@example.org").await;
    sqlx::query("update refresh_tokens set expires_at = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let response = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": session.refresh_token() }),
        )
        .await;
    expect_problem(response, 401, "refresh_token_expired").await;
}

#[tokio::test]
async fn sign_out_revokes_that_session_only() {
    let app = TestApp::spawn().await;
    let first = app.sign_up("edsger@example.org").await;
    let second: serde_json::Value = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "edsger@example.org", "password": TEST_PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    let out = app
        .authed(Method::POST, "/api/v1/auth/signout", first.access_token())
        .json(&json!({ "refresh_token": first.refresh_token() }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let dead = refresh(&app, first.refresh_token()).await;
    expect_problem(dead, 401, "refresh_token_revoked").await;
    assert!(app.audit_rows("auth.refresh_reuse").await.is_empty());
    let alive = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": second["refresh_token"] }),
        )
        .await;
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn sign_out_everywhere_revokes_every_session() {
    let app = TestApp::spawn().await;
    let first = app.sign_up("donald@example.org").await;
    let second: serde_json::Value = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "donald@example.org", "password": TEST_PASSWORD }),
        )
        .await
        .json()
        .await
        .unwrap();
    let out = app
        .authed(Method::POST, "/api/v1/auth/signout", first.access_token())
        .json(&json!({ "all": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    for token in [
        first.refresh_token(),
        second["refresh_token"].as_str().unwrap(),
    ] {
        let response = app
            .post_json("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
            .await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test]
async fn sign_out_cannot_revoke_another_users_session() {
    let app = TestApp::spawn().await;
    let victim = app.sign_up("victim@example.org").await;
    let attacker = app.sign_up("attacker@example.org").await;
    let out = app
        .authed(
            Method::POST,
            "/api/v1/auth/signout",
            attacker.access_token(),
        )
        .json(&json!({ "refresh_token": victim.refresh_token() }))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let still_alive = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": victim.refresh_token() }),
        )
        .await;
    assert_eq!(still_alive.status(), 200);
}

#[tokio::test]
async fn sign_out_without_a_scope_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("scope@example.org").await;
    let out = app
        .authed(Method::POST, "/api/v1/auth/signout", session.access_token())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(out, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "refresh_token");
}

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    expect_problem(response, 401, "missing_token").await;
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let app = TestApp::spawn().await;
    let mut claims = valid_claims(Uuid::new_v4());
    claims["exp"] = json!(Utc::now().timestamp() - 3600);
    let response = app
        .authed(
            Method::GET,
            "/api/v1/auth/me",
            &forge(TEST_JWT_SECRET, claims),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "token_expired").await;
}

#[tokio::test]
async fn a_forged_token_is_401() {
    let app = TestApp::spawn().await;
    let token = forge(
        "some-other-secret-some-other-secret",
        valid_claims(Uuid::new_v4()),
    );
    let response = app
        .authed(Method::GET, "/api/v1/auth/me", &token)
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_401() {
    let app = TestApp::spawn().await;
    let mut claims = valid_claims(Uuid::new_v4());
    claims["aud"] = json!("anon");
    let response = app
        .authed(
            Method::GET,
            "/api/v1/auth/me",
            &forge(TEST_JWT_SECRET, claims),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn malformed_tokens_and_headers_are_401() {
    let app = TestApp::spawn().await;
    for header in [
        "Bearer not.a.jwt",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a b c",
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["code"] == "invalid_token" || body["code"] == "missing_token",
            "{header:?}: {body}"
        );
    }
}

#[tokio::test]
async fn the_first_request_with_an_external_token_creates_the_user() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    let token = forge(TEST_JWT_SECRET, valid_claims(id));
    for _ in 0..2 {
        let me = app
            .authed(Method::GET, "/api/v1/auth/me", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me: serde_json::Value = me.json().await.unwrap();
        assert_eq!(me["id"], id.to_string());
        assert_eq!(me["email"], "ext@example.org");
    }
    let created = app.audit_rows("user.create").await;
    assert_eq!(created.len(), 1, "created once");
    assert_eq!(created[0].actor_id, Some(id));
}

#[tokio::test]
async fn an_external_token_cannot_take_over_an_existing_email() {
    let app = TestApp::spawn().await;
    app.sign_up("ext@example.org").await;
    let token = forge(TEST_JWT_SECRET, valid_claims(Uuid::new_v4()));
    let me: serde_json::Value = app
        .authed(Method::GET, "/api/v1/auth/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], serde_json::Value::Null);
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_account() {
    let app = TestApp::spawn_with(|s| s.auth.rate_per_account_per_minute = 3).await;
    app.sign_up("limited@example.org").await;
    for _ in 0..3 {
        let r = app
            .post_json(
                "/api/v1/auth/signin",
                &json!({ "email": "limited@example.org", "password": "wrong pass" }),
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let limited = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "LIMITED@example.org", "password": TEST_PASSWORD }),
        )
        .await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_problem(limited, 429, "rate_limited").await;
    // Another account from the same address is not affected.
    app.sign_up("other@example.org").await;
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_ip() {
    let app = TestApp::spawn_with(|s| s.auth.rate_per_ip_per_minute = 2).await;
    for _ in 0..2 {
        let r = app
            .post_json("/api/v1/auth/refresh", &json!({ "refresh_token": "x" }))
            .await;
        assert_eq!(r.status(), 401);
    }
    let limited = app
        .post_json(
            "/api/v1/auth/signin",
            &json!({ "email": "a@b.co", "password": "whatever1" }),
        )
        .await;
    expect_problem(limited, 429, "rate_limited").await;
}

#[tokio::test]
async fn every_auth_mutation_is_audited_with_its_request_id() {
    let app = TestApp::spawn().await;
    let session = app.sign_up("audit@example.org").await;
    let signin = app
        .client
        .post(app.url("/api/v1/auth/signin"))
        .header("x-request-id", "req-signin-1")
        .json(&json!({ "email": "audit@example.org", "password": TEST_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.headers()["x-request-id"], "req-signin-1");
    app.post_json(
        "/api/v1/auth/refresh",
        &json!({ "refresh_token": session.refresh_token() }),
    )
    .await;
    app.authed(Method::POST, "/api/v1/auth/signout", session.access_token())
        .json(&json!({ "all": true }))
        .send()
        .await
        .unwrap();

    let user = session.user_id();
    for action in ["user.create", "auth.signin", "auth.refresh", "auth.signout"] {
        let rows = app.audit_rows(action).await;
        assert_eq!(rows.len(), 1, "{action}");
        assert_eq!(rows[0].actor_id, Some(user), "{action}");
        assert!(rows[0].request_id.is_some(), "{action} without request id");
    }
    assert_eq!(
        app.audit_rows("auth.signin").await[0].request_id.as_deref(),
        Some("req-signin-1")
    );
    let created = &app.audit_rows("user.create").await[0];
    assert_eq!(
        (created.target_type.as_str(), created.target_id.clone()),
        ("user", Some(user.to_string()))
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_ip_limit_keys_on_the_last_forwarded_hop() {
    let app = TestApp::spawn_with(|s| {
        s.auth.rate_per_ip_per_minute = 1;
        s.http.trust_proxy_headers = true;
    })
    .await;
    let refresh = |forwarded: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/refresh"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "refresh_token": "x" }))
            .send()
    };
    assert_eq!(
        refresh("203.0.113.9, 198.51.100.1").await.unwrap().status(),
        401
    );
    // A spoofed first hop does not buy a fresh bucket: the proxy's hop is what counts.
    assert_eq!(
        refresh("192.0.2.77, 198.51.100.1").await.unwrap().status(),
        429
    );
    assert_eq!(
        refresh("203.0.113.9, 198.51.100.2").await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn a_token_of_an_issuer_not_accepted_or_of_none_is_401() {
    let app = TestApp::spawn().await;
    let mut other = valid_claims(Uuid::new_v4());
    other["iss"] = json!("https://staging.example/auth/v1");
    let mut none = valid_claims(Uuid::new_v4());
    none.as_object_mut().map(|claims| claims.remove("iss"));
    for claims in [other, none] {
        let response = app
            .authed(
                Method::GET,
                "/api/v1/auth/me",
                &forge(TEST_JWT_SECRET, claims),
            )
            .send()
            .await
            .unwrap();
        expect_problem(response, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn a_token_before_its_nbf_is_401() {
    let app = TestApp::spawn().await;
    let mut claims = valid_claims(Uuid::new_v4());
    claims["nbf"] = json!(Utc::now().timestamp() + 3600);
    let response = app
        .authed(
            Method::GET,
            "/api/v1/auth/me",
            &forge(TEST_JWT_SECRET, claims),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn refreshing_never_extends_a_sign_in_past_its_maximum_lifetime() {
    let app = TestApp::spawn_with(|s| s.auth.session_max_lifetime = Duration::from_secs(60)).await;
    let session = app.sign_up("ada@example.org").await;
    let ends = session.0["session_expires_at"].clone();
    // The refresh token's own lifetime (an hour here) is cut to the sign-in's end.
    assert_eq!(session.0["refresh_token_expires_at"], ends);
    let refreshed = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": session.refresh_token() }),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(refreshed["session_expires_at"], ends);
    assert_eq!(refreshed["refresh_token_expires_at"], ends);
    // Once the sign-in is older than its lifetime, its live token no longer refreshes.
    sqlx::query("update refresh_tokens set session_expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let late = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({ "refresh_token": refreshed["refresh_token"] }),
        )
        .await;
    expect_problem(late, 401, "session_expired").await;
}
