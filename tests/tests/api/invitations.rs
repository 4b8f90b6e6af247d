//! Invitations and invite links: the whole lifecycle, expiry, revocation, reuse, duplicates.

use std::time::Duration;

use potentia_tests::smtp::{smtp_settings, SmtpListener};
use potentia_tests::{error_fields, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn invite(app: &TestApp, token: &str, ws: uuid::Uuid, body: Value) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/workspaces/{ws}/invitations"),
        Some(token),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn an_email_invitation_reaches_the_account_that_signs_up_later() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (status, created) = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "New.Person@example.org", "role": "viewer" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["token"].as_str().unwrap().len() >= 40);

    let newcomer = app.sign_up("new.person@example.org").await;
    app.verify_email("new.person@example.org").await;
    let (_, mine) = app
        .call(
            Method::GET,
            "/api/v1/invitations",
            Some(newcomer.access_token()),
            None,
        )
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["target_name"], "Team");
    let id = mine["items"][0]["id"].as_str().unwrap();
    let (status, accepted) = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            Some(newcomer.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("accepted"))
    );
    let ws_view = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(newcomer.access_token()),
            None,
        )
        .await
        .1;
    assert_eq!(ws_view["role"], "viewer");
    assert_eq!(app.audit_rows("invitation.accept").await.len(), 1);
}

#[tokio::test]
async fn a_duplicate_pending_invitation_or_an_existing_member_is_a_conflict() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let member = app.sign_up("member@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &member, "member")
        .await;
    let again = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": member.user_id(), "role": "admin" }),
    )
    .await;
    assert_eq!(
        (again.0, again.1["code"].as_str()),
        (409, Some("already_member"))
    );
    let by_email = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "MEMBER@example.org", "role": "admin" }),
    )
    .await;
    assert_eq!(by_email.0, 409);

    assert_eq!(
        invite(
            &app,
            owner.access_token(),
            ws,
            json!({ "email": "x@example.org", "role": "member" })
        )
        .await
        .0,
        201
    );
    let duplicate = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "X@Example.org", "role": "viewer" }),
    )
    .await;
    assert_eq!(
        (duplicate.0, duplicate.1["code"].as_str()),
        (409, Some("invitation_pending"))
    );
}

#[tokio::test]
async fn an_invitation_needs_exactly_one_invitee_and_a_valid_role() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    for body in [
        json!({ "role": "member" }),
        json!({ "email": "a@example.org", "user_id": owner.user_id(), "role": "member" }),
        json!({ "email": "a@example.org", "role": "owner" }),
        json!({ "email": "not an email", "role": "member" }),
        json!({ "user_id": uuid::Uuid::new_v4(), "role": "member" }),
    ] {
        assert_eq!(
            invite(&app, owner.access_token(), ws, body.clone()).await.0,
            422,
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_invitation_with_a_bad_role_and_a_bad_email_names_both() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (status, problem) = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "not an email", "role": "boss" }),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(error_fields(&problem), ["email", "role"], "{problem}");
}

#[tokio::test]
async fn a_declined_invitation_cannot_then_be_accepted() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "member" }),
    )
    .await
    .1;
    let id = created["invitation"]["id"].as_str().unwrap();
    let declined = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/decline"),
            Some(guest.access_token()),
            None,
        )
        .await;
    assert_eq!(declined.1["status"], "declined");
    let accept = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            Some(guest.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (accept.0, accept.1["code"].as_str()),
        (409, Some("invitation_not_pending"))
    );
    assert_eq!(
        app.call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(guest.access_token()),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_revoked_invitation_cannot_be_accepted_by_token() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "guest@example.org", "role": "member" }),
    )
    .await
    .1;
    let id = created["invitation"]["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/invitations/{id}"),
            Some(owner.access_token()),
            None
        )
        .await
        .0,
        204
    );
    let accept = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(guest.access_token()),
            Some(json!({ "token": created["token"] })),
        )
        .await;
    assert_eq!(accept.0, 409);
    let (_, mine) = app
        .call(
            Method::GET,
            "/api/v1/invitations",
            Some(guest.access_token()),
            None,
        )
        .await;
    assert!(mine["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_works_once() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let first = app.sign_up("first@example.org").await;
    let second = app.sign_up("second@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "someone@example.org", "role": "member" }),
    )
    .await
    .1;
    let body = json!({ "token": created["token"] });
    assert_eq!(
        app.call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(first.access_token()),
            Some(body.clone())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        app.call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(second.access_token()),
            Some(body)
        )
        .await
        .0,
        409
    );
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(second.access_token()),
            Some(json!({ "token": "nope" })),
        )
        .await;
    assert_eq!(unknown.0, 404);
}

#[tokio::test]
async fn an_invitation_accepted_through_its_link_by_someone_else_records_who_accepted() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let holder = app.sign_up("holder@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "addressee@example.org", "role": "member" }),
    )
    .await
    .1;
    assert_eq!(created["invitation"]["accepted_by"], Value::Null);
    let (status, accepted) = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(holder.access_token()),
            Some(json!({ "token": created["token"] })),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["accepted_by"], holder.user_id().to_string());
    assert_eq!(accepted["email"], "addressee@example.org");
    assert!(accepted["responded_at"].is_string(), "{accepted}");
    let audit = app.audit_rows("invitation.accept").await;
    let after = audit[0].after.as_ref().unwrap();
    assert_eq!(audit[0].actor_id, Some(holder.user_id()));
    assert_eq!(after["accepted_by"], holder.user_id().to_string());
    assert_eq!(after["addressed_to"]["email"], "addressee@example.org");
    assert_eq!(after["proof"], "token");
}

#[tokio::test]
async fn a_declined_invitation_has_no_acceptor() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "viewer" }),
    )
    .await
    .1;
    let id = created["invitation"]["id"].as_str().unwrap();
    let (status, declined) = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/decline"),
            Some(guest.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{declined}");
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["accepted_by"], Value::Null);
}

#[tokio::test]
async fn an_expired_invitation_is_refused_and_can_be_sent_again() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("late@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "member" }),
    )
    .await
    .1;
    sqlx::query("update invitations set expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    let id = created["invitation"]["id"].as_str().unwrap();
    let accept = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            Some(guest.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (accept.0, accept.1["code"].as_str()),
        (409, Some("invitation_expired"))
    );
    let again = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "member" }),
    )
    .await;
    assert_eq!(
        again.0, 201,
        "an expired invitation does not block a new one"
    );
}

#[tokio::test]
async fn an_invite_link_stops_at_its_use_limit() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/invite-links"),
            Some(owner.access_token()),
            Some(json!({ "role": "viewer", "max_uses": 1 })),
        )
        .await
        .1;
    let code = json!({ "code": created["code"] });
    let first = app.sign_up("first@example.org").await;
    let joined = app
        .call(
            Method::POST,
            "/api/v1/invite-links/join",
            Some(first.access_token()),
            Some(code.clone()),
        )
        .await;
    assert_eq!((joined.0, joined.1["role"].as_str()), (200, Some("viewer")));
    let rejoin = app
        .call(
            Method::POST,
            "/api/v1/invite-links/join",
            Some(first.access_token()),
            Some(code.clone()),
        )
        .await;
    assert_eq!(rejoin.0, 200, "joining again changes nothing");
    let second = app.sign_up("second@example.org").await;
    let refused = app
        .call(
            Method::POST,
            "/api/v1/invite-links/join",
            Some(second.access_token()),
            Some(code),
        )
        .await;
    assert_eq!(
        (refused.0, refused.1["code"].as_str()),
        (409, Some("invite_link_unusable"))
    );
    let links = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/invite-links"),
            Some(owner.access_token()),
            None,
        )
        .await
        .1;
    assert_eq!(links["items"][0]["uses"], 1);
}

#[tokio::test]
async fn an_expired_or_revoked_invite_link_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let joiner = app.sign_up("joiner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let links_path = format!("/api/v1/workspaces/{ws}/invite-links");
    let make = || {
        app.call(
            Method::POST,
            &links_path,
            Some(owner.access_token()),
            Some(json!({ "role": "member", "expires_in_secs": 3600 })),
        )
    };
    let expiring = make().await.1;
    let revoked = make().await.1;
    sqlx::query(
        "update workspace_invite_links set expires_at = now() - interval '1 second' where id = $1",
    )
    .bind(
        expiring["link"]["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap(),
    )
    .execute(&app.db)
    .await
    .unwrap();
    let revoke_path = format!(
        "/api/v1/workspaces/{ws}/invite-links/{}",
        revoked["link"]["id"].as_str().unwrap()
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &revoke_path,
            Some(owner.access_token()),
            None
        )
        .await
        .0,
        204
    );
    for link in [expiring, revoked] {
        let join = app
            .call(
                Method::POST,
                "/api/v1/invite-links/join",
                Some(joiner.access_token()),
                Some(json!({ "code": link["code"] })),
            )
            .await;
        assert_eq!(join.0, 409, "{}", join.1);
    }
    let bad = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/invite-links"),
            Some(owner.access_token()),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(bad.0, 422, "links cannot make admins");
}

#[tokio::test]
async fn someone_elses_invitation_is_not_found() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let nosy = app.sign_up("nosy@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "member" }),
    )
    .await
    .1;
    let id = created["invitation"]["id"].as_str().unwrap();
    for action in ["accept", "decline"] {
        let r = app
            .call(
                Method::POST,
                &format!("/api/v1/invitations/{id}/{action}"),
                Some(nosy.access_token()),
                None,
            )
            .await;
        assert_eq!(r.0, 404);
    }
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/invitations/{id}"),
            Some(nosy.access_token()),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn an_invitation_email_carries_a_link_that_accepts_it() {
    let smtp = SmtpListener::start().await;
    let app = TestApp::spawn_with(|s| s.smtp = Some(smtp_settings(&smtp.url()))).await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Research").await;
    invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "ada@example.org", "role": "member" }),
    )
    .await;

    // The owner's verification link, then the invitation.
    let mails = smtp.wait_for_mail(2, Duration::from_secs(15)).await;
    let mail = mails
        .iter()
        .find(|m| m.rcpt_to == ["ada@example.org"])
        .expect("the invitation");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Test User invited you to Research")
    );
    let body = mail.body().replace("=\r\n", "").replace("=3D", "=");
    let token = body
        .split("/invitations/accept?token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an accept link in the email");
    assert!(body.contains("https://app.example/invitations/accept?token="));

    let ada = app.sign_up("ada@example.org").await;
    let accepted = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(ada.access_token()),
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(
        (accepted.0, accepted.1["status"].as_str()),
        (200, Some("accepted"))
    );
}

#[tokio::test]
async fn without_smtp_an_invitation_is_queued_and_its_token_still_works() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let created = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "user_id": guest.user_id(), "role": "viewer" }),
    )
    .await
    .1;
    let queued: Vec<(String, String)> = sqlx::query_as(
        "select to_address, status from email_outbox where kind <> 'email_verification'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        queued,
        [("guest@example.org".to_owned(), "pending".to_owned())]
    );
    let accepted = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(guest.access_token()),
            Some(json!({ "token": created["token"] })),
        )
        .await;
    assert_eq!(accepted.0, 200);
}

#[tokio::test]
async fn an_invite_link_with_several_wrong_fields_names_them_all() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/invite-links"),
            Some(owner.access_token()),
            Some(json!({ "role": "owner", "expires_in_secs": 1, "max_uses": 0 })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        error_fields(&problem),
        ["expires_in_secs", "max_uses", "role"]
    );
}

async fn my_invitations(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, page) = app
        .call(Method::GET, "/api/v1/invitations", Some(token), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_invitation_to_an_address_reaches_an_account_only_once_it_verifies_the_address() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    // Someone signs up with the address first, and cannot read its mail.
    let squatter = app.sign_up("ada@example.org").await;
    let (status, created) = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "ada@example.org", "role": "member" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["invitation"]["id"].as_str().unwrap().to_owned();
    assert!(my_invitations(&app, squatter.access_token())
        .await
        .is_empty());
    let (status, problem) = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            Some(squatter.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("email_not_verified"))
    );
    let (_, ws_view) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(squatter.access_token()),
            None,
        )
        .await;
    assert_eq!(ws_view["status"], 404, "not a member: {ws_view}");
    // The address's owner verifies it (the link went to the mailbox), and then it is theirs.
    let profile = app.verify_email("ada@example.org").await;
    assert_eq!(profile["email_verified"], true);
    assert_eq!(my_invitations(&app, squatter.access_token()).await.len(), 1);
    let (status, accepted) = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/accept"),
            Some(squatter.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("accepted"))
    );
}

#[tokio::test]
async fn the_invitations_link_stays_a_proof_without_a_verified_address() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (_, created) = invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "ada@example.org", "role": "viewer" }),
    )
    .await;
    let ada = app.sign_up("someone.else@example.org").await;
    let (status, accepted) = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(ada.access_token()),
            Some(json!({ "token": created["token"] })),
        )
        .await;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("accepted"))
    );
}

#[tokio::test]
async fn an_invitation_to_an_address_answers_the_same_whether_an_account_has_it_or_not() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    app.sign_up("has.account@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let mut answers = Vec::new();
    for email in ["has.account@example.org", "no.account@example.org"] {
        let (status, created) = invite(
            &app,
            owner.access_token(),
            ws,
            json!({ "email": email, "role": "viewer" }),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let invitation = &created["invitation"];
        answers.push((
            invitation["invitee_id"].clone(),
            invitation["email"].clone(),
            invitation
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        ));
    }
    assert_eq!(answers[0].0, Value::Null);
    assert_eq!(answers[0].0, answers[1].0);
    assert_eq!(answers[0].2, answers[1].2);
}

#[tokio::test]
async fn an_inviter_may_send_50_invitations_an_hour() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    for i in 0..50 {
        let (status, body) = invite(
            &app,
            owner.access_token(),
            ws,
            json!({ "email": format!("person{i}@example.org"), "role": "viewer" }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/invitations"),
            owner.access_token(),
        )
        .json(&json!({ "email": "one.more@example.org", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let made: i64 = sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(made, 50);
}

#[tokio::test]
async fn an_address_gets_at_most_3_invitation_mails_a_day_whoever_sends_them() {
    let app = TestApp::spawn().await;
    let mut queued = Vec::new();
    let mut last_token = Value::Null;
    for i in 0..4 {
        let owner = app.sign_up(&format!("owner{i}@example.org")).await;
        let ws = app.create_workspace(owner.access_token(), "Team").await;
        let (status, created) = invite(
            &app,
            owner.access_token(),
            ws,
            json!({ "email": "target@example.org", "role": "viewer" }),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        queued.push(created["email_queued"].as_bool().unwrap());
        last_token = created["token"].clone();
    }
    assert_eq!(queued, [true, true, true, false]);
    let mails: i64 = sqlx::query_scalar(
        "select count(*) from email_outbox where to_address = 'target@example.org'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(mails, 3);
    // The fourth invitation still works through its link.
    let target = app.sign_up("target@example.org").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(target.access_token()),
            Some(json!({ "token": last_token })),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn names_in_an_invitation_mail_are_one_line_with_their_links_broken() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let (status, ws) = app
        .call(
            Method::POST,
            "/api/v1/workspaces",
            Some(owner.access_token()),
            Some(json!({ "name": "Prize\nclaim at https://evil.example/win" })),
        )
        .await;
    assert_eq!(status, 201, "{ws}");
    let ws: uuid::Uuid = ws["id"].as_str().unwrap().parse().unwrap();
    invite(
        &app,
        owner.access_token(),
        ws,
        json!({ "email": "ada@example.org", "role": "viewer" }),
    )
    .await;
    let (subject, body): (String, String) = sqlx::query_as(
        "select subject, body_text from email_outbox where to_address = 'ada@example.org'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(!subject.contains('\n'), "{subject}");
    assert!(!body.contains("https://evil.example"), "{body}");
    assert!(
        body.contains("\"Prize claim at https[:]//evil.example/win\""),
        "{body}"
    );
}

#[tokio::test]
async fn invitations_sent_in_parallel_cannot_pass_the_hourly_limit() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let sends = (0..60).map(|i| {
        invite(
            &app,
            owner.access_token(),
            ws,
            json!({ "email": format!("parallel{i}@example.org"), "role": "viewer" }),
        )
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        50,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );
}
