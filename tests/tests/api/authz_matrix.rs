//! The authorization matrix: every route × every kind of caller → the expected status.
//!
//! Each cell runs against a fresh scenario (inserted with SQL for speed): a workspace with an
//! owner, an admin, a member and a viewer; a canvas in it with a direct editor and a direct
//! viewer; an outsider; and an anonymous caller. The workspace also has a calendar (created by
//! the owner) with a weekly schedule, one exception, an email guest and an ICS feed; the canvas
//! editor holds an `editor` subscription on it and the canvas viewer a `free_busy` one. The
//! owner has a conversation (tied to the workspace) and a memory; the workspace has an AI role of
//! its own. The server has no chat provider, so a turn its owner may take answers 503. The
//! matrix must name every route the router serves, so a new route without a row fails this test.
//!
//! The cross-tenant test builds a second, identical tenant and has the first tenant's owner call
//! every route that takes ids with the second tenant's ids (all of them, or the first tenant's
//! workspace, canvas, calendar and schedule with the second's members, guests, links, blocks…):
//! every answer must be 404.

use std::collections::BTreeSet;

use chrono::Utc;
use jsonwebtoken::{encode, EncodingKey, Header};
use potentia_tests::{TestApp, TEST_AUDIENCE, TEST_JWT_SECRET};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Callers, in the order of each row's expectations.
const ACTORS: [&str; 8] = [
    "owner",
    "admin",
    "member",
    "viewer",
    "canvas_editor",
    "canvas_viewer",
    "outsider",
    "anonymous",
];

#[derive(Clone)]
struct Scenario {
    users: Vec<(Uuid, String)>,
    workspace: Uuid,
    canvas: Uuid,
    invitation: Uuid,
    invitation_token: String,
    link: Uuid,
    link_code: String,
    /// The workspace member whom member routes act on.
    member_target: Uuid,
    /// The direct canvas member whom canvas member routes act on.
    canvas_member_target: Uuid,
    calendar: Uuid,
    schedule: Uuid,
    /// A guest of `schedule` invited by email.
    email_guest: Uuid,
    feed_token: String,
    /// The owner's conversation, tied to the workspace; visible to the owner only.
    conversation: Uuid,
    /// The owner's memory.
    memory: Uuid,
    /// A role the workspace defined.
    ai_role: Uuid,
    /// A block row of the canvas (the matrix's block routes name `Uuid::nil()` instead, since
    /// writing a real block goes through a document; the cross-tenant test names this one).
    block: Uuid,
}

fn token_for(user: Uuid) -> String {
    let claims = json!({ "sub": user.to_string(), "aud": TEST_AUDIENCE, "iss": "potentia",
                         "exp": Utc::now().timestamp() + 600 });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

fn sha256(text: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).to_vec()
}

async fn scenario(db: &PgPool) -> Scenario {
    let mut tx = db.begin().await.unwrap();
    let mut users = Vec::new();
    for name in &ACTORS[..7] {
        let id = Uuid::now_v7();
        let email = format!("{name}-{}@example.org", id.simple());
        sqlx::query("insert into users (id, email, name) values ($1, $2, $3)")
            .bind(id)
            .bind(&email)
            .bind(*name)
            .execute(&mut *tx)
            .await
            .unwrap();
        users.push((id, email));
    }
    let workspace = Uuid::now_v7();
    sqlx::query("insert into workspaces (id, name, created_by) values ($1, 'Matrix', $2)")
        .bind(workspace)
        .bind(users[0].0)
        .execute(&mut *tx)
        .await
        .unwrap();
    for (i, role) in ["owner", "admin", "member", "viewer"].iter().enumerate() {
        sqlx::query(
            "insert into workspace_members (workspace_id, user_id, role) values ($1, $2, $3)",
        )
        .bind(workspace)
        .bind(users[i].0)
        .bind(*role)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let canvas = Uuid::now_v7();
    sqlx::query(
        "insert into canvases (id, workspace_id, owner_id, title) values ($1, $2, $3, 'Plan')",
    )
    .bind(canvas)
    .bind(workspace)
    .bind(users[0].0)
    .execute(&mut *tx)
    .await
    .unwrap();
    for (i, role) in [(4, "editor"), (5, "viewer")] {
        sqlx::query("insert into canvas_members (canvas_id, user_id, role) values ($1, $2, $3)")
            .bind(canvas)
            .bind(users[i].0)
            .bind(role)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let invitation = Uuid::now_v7();
    let invitation_token = format!("inv-{}", Uuid::new_v4());
    sqlx::query(
        "insert into invitations (id, workspace_id, invitee_id, role, token_hash, invited_by, expires_at)
         values ($1, $2, $3, 'member', $4, $5, now() + interval '1 day')",
    )
    .bind(invitation)
    .bind(workspace)
    .bind(users[6].0)
    .bind(sha256(&invitation_token))
    .bind(users[0].0)
    .execute(&mut *tx)
    .await
    .unwrap();
    let link = Uuid::now_v7();
    let link_code = format!("link-{}", Uuid::new_v4());
    sqlx::query(
        "insert into workspace_invite_links (id, workspace_id, code_hash, role, created_by) values ($1, $2, $3, 'member', $4)",
    )
    .bind(link)
    .bind(workspace)
    .bind(sha256(&link_code))
    .bind(users[0].0)
    .execute(&mut *tx)
    .await
    .unwrap();
    let calendar = Uuid::now_v7();
    let feed_token = format!("cal_{}", Uuid::new_v4().simple());
    sqlx::query(
        "insert into calendars (id, workspace_id, owner_id, name, feed_token_hash, feed_token_created_by)
         values ($1, $2, $3, 'Team', $4, $3)",
    )
    .bind(calendar)
    .bind(workspace)
    .bind(users[0].0)
    .bind(sha256(&feed_token))
    .execute(&mut *tx)
    .await
    .unwrap();
    for (i, role) in [(4, "editor"), (5, "free_busy")] {
        sqlx::query(
            "insert into calendar_subscriptions (calendar_id, user_id, role) values ($1, $2, $3)",
        )
        .bind(calendar)
        .bind(users[i].0)
        .bind(role)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let schedule = Uuid::now_v7();
    sqlx::query(
        "insert into schedules (id, calendar_id, uid, title, all_day, start_at, end_at, time_zone, rrule,
                                organizer_id, materialized_from, materialized_until)
         values ($1, $2, $3, 'Weekly', false, '2026-01-05T09:00:00Z', '2026-01-05T10:00:00Z', 'UTC',
                 '{FREQ=WEEKLY}', $4, '2026-01-05T09:00:00Z', '2026-01-06T00:00:00Z')",
    )
    .bind(schedule)
    .bind(calendar)
    .bind(format!("{schedule}@potentia"))
    .bind(users[0].0)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "insert into schedule_exceptions (id, schedule_id, original_start, cancelled) values ($1, $2, '2026-01-19T09:00:00', true)",
    )
    .bind(Uuid::now_v7())
    .bind(schedule)
    .execute(&mut *tx)
    .await
    .unwrap();
    let email_guest = Uuid::now_v7();
    for (id, user, email, organizer, rsvp) in [
        (Uuid::now_v7(), Some(users[0].0), None, true, "accepted"),
        (
            email_guest,
            None,
            Some("guest@example.org"),
            false,
            "needs_action",
        ),
    ] {
        sqlx::query(
            "insert into schedule_guests (id, schedule_id, user_id, email, organizer, rsvp) values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(schedule)
        .bind(user)
        .bind(email)
        .bind(organizer)
        .bind(rsvp)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    let conversation = Uuid::now_v7();
    sqlx::query(
        "insert into conversations (id, user_id, workspace_id, title, title_source, created_at, last_activity_at)
         values ($1, $2, $3, 'Plans', 'user', now(), now())",
    )
    .bind(conversation)
    .bind(users[0].0)
    .bind(workspace)
    .execute(&mut *tx)
    .await
    .unwrap();
    let memory = Uuid::now_v7();
    sqlx::query(
        "insert into memories (id, user_id, kind, text, valid_at, created_at, origin)
         values ($1, $2, 'fact', 'Works on the Matrix plan', now(), now(), 'user')",
    )
    .bind(memory)
    .bind(users[0].0)
    .execute(&mut *tx)
    .await
    .unwrap();
    let ai_role = Uuid::now_v7();
    sqlx::query(
        "insert into ai_roles (id, workspace_id, name, description, prompt)
         values ($1, $2, 'reviewer', 'reviews plans', 'Act as a reviewer.')",
    )
    .bind(ai_role)
    .bind(workspace)
    .execute(&mut *tx)
    .await
    .unwrap();
    let block = Uuid::now_v7();
    sqlx::query(
        "insert into blocks (canvas_id, id, kind, order_key, text, doc_seq) values ($1, $2, 'paragraph', 'a0', 'Matrix', 0)",
    )
    .bind(canvas)
    .bind(block)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Scenario {
        block,
        conversation,
        memory,
        ai_role,
        calendar,
        schedule,
        email_guest,
        feed_token,
        member_target: users[2].0,
        canvas_member_target: users[5].0,
        users,
        workspace,
        canvas,
        invitation,
        invitation_token,
        link,
        link_code,
    }
}

type PathFn = fn(&Scenario) -> String;
type BodyFn = fn(&Scenario) -> Option<Value>;

/// One row: a route, how to call it on a scenario, and the status each caller gets.
struct Row {
    method: Method,
    template: &'static str,
    path: PathFn,
    body: BodyFn,
    expected: [u16; 8],
}

fn no_body(_: &Scenario) -> Option<Value> {
    None
}

/// An `.ics` file; a string body is sent as `text/calendar`.
fn ics_body(_: &Scenario) -> Option<Value> {
    Some(Value::String(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Matrix//EN\r\nBEGIN:VEVENT\r\nUID:matrix-1\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:20260110T100000Z\r\nDTEND:20260110T110000Z\r\n\
         SUMMARY:Imported\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            .to_owned(),
    ))
}

fn rows() -> Vec<Row> {
    use Method as M;
    macro_rules! row {
        ($method:expr, $template:literal, $path:expr, $body:expr, [$($s:expr),*]) => {
            Row { method: $method, template: $template, path: $path, body: $body, expected: [$($s),*] }
        };
    }
    vec![
        // Ops and auth: open to everyone, or to anyone signed in.
        row!(
            M::GET,
            "/health",
            |_| "/health".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 200]
        ),
        row!(
            M::GET,
            "/ready",
            |_| "/ready".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 200]
        ),
        row!(
            M::GET,
            "/metrics",
            |_| "/metrics".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 200]
        ),
        row!(
            M::POST,
            "/api/v1/auth/signup",
            |_| "/api/v1/auth/signup".into(),
            |_| Some(
                json!({ "email": format!("new-{}@example.org", Uuid::new_v4().simple()), "password": "long enough password" })
            ),
            [201, 201, 201, 201, 201, 201, 201, 201]
        ),
        row!(
            M::POST,
            "/api/v1/auth/signin",
            |_| "/api/v1/auth/signin".into(),
            |s| Some(json!({ "email": s.users[0].1, "password": "not the password" })),
            [401, 401, 401, 401, 401, 401, 401, 401]
        ),
        row!(
            M::POST,
            "/api/v1/auth/refresh",
            |_| "/api/v1/auth/refresh".into(),
            |_| Some(json!({ "refresh_token": "unknown" })),
            [401, 401, 401, 401, 401, 401, 401, 401]
        ),
        row!(
            M::POST,
            "/api/v1/auth/signout",
            |_| "/api/v1/auth/signout".into(),
            |_| Some(json!({ "all": true })),
            [204, 204, 204, 204, 204, 204, 204, 401]
        ),
        row!(
            M::POST,
            "/api/v1/auth/verify",
            |_| "/api/v1/auth/verify".into(),
            |_| Some(json!({ "token": "unknown" })),
            [400, 400, 400, 400, 400, 400, 400, 400]
        ),
        row!(
            M::POST,
            "/api/v1/auth/verify/resend",
            |_| "/api/v1/auth/verify/resend".into(),
            no_body,
            [202, 202, 202, 202, 202, 202, 202, 401]
        ),
        row!(
            M::GET,
            "/api/v1/auth/me",
            |_| "/api/v1/auth/me".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/auth/me",
            |_| "/api/v1/auth/me".into(),
            |_| Some(json!({ "locale": "de" })),
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        // Workspaces.
        row!(
            M::POST,
            "/api/v1/workspaces",
            |_| "/api/v1/workspaces".into(),
            |_| Some(json!({ "name": "Mine" })),
            [201, 201, 201, 201, 201, 201, 201, 401]
        ),
        row!(
            M::GET,
            "/api/v1/workspaces",
            |_| "/api/v1/workspaces".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/workspaces/{workspace_id}",
            |s| format!("/api/v1/workspaces/{}", s.workspace),
            no_body,
            [200, 200, 200, 200, 404, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/workspaces/{workspace_id}",
            |s| format!("/api/v1/workspaces/{}", s.workspace),
            |_| Some(json!({ "name": "Renamed" })),
            [200, 200, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}",
            |s| format!("/api/v1/workspaces/{}", s.workspace),
            no_body,
            [200, 403, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/leave",
            |s| format!("/api/v1/workspaces/{}/leave", s.workspace),
            no_body,
            [409, 204, 204, 204, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/transfer",
            |s| format!("/api/v1/workspaces/{}/transfer", s.workspace),
            |s| Some(json!({ "user_id": s.member_target })),
            [200, 403, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/members",
            |s| format!("/api/v1/workspaces/{}/members", s.workspace),
            no_body,
            [200, 200, 200, 200, 404, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/workspaces/{workspace_id}/members/{user_id}",
            |s| format!(
                "/api/v1/workspaces/{}/members/{}",
                s.workspace, s.member_target
            ),
            |_| Some(json!({ "role": "viewer" })),
            [200, 200, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}/members/{user_id}",
            |s| format!(
                "/api/v1/workspaces/{}/members/{}",
                s.workspace, s.member_target
            ),
            no_body,
            [204, 204, 403, 403, 404, 404, 404, 401]
        ),
        // Invitations and invite links.
        row!(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/invitations",
            |s| format!("/api/v1/workspaces/{}/invitations", s.workspace),
            |_| Some(
                json!({ "email": format!("guest-{}@example.org", Uuid::new_v4().simple()), "role": "member" })
            ),
            [201, 201, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/invitations",
            |s| format!("/api/v1/workspaces/{}/invitations", s.workspace),
            no_body,
            [200, 200, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/invite-links",
            |s| format!("/api/v1/workspaces/{}/invite-links", s.workspace),
            |_| Some(json!({ "role": "viewer", "max_uses": 3 })),
            [201, 201, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/invite-links",
            |s| format!("/api/v1/workspaces/{}/invite-links", s.workspace),
            no_body,
            [200, 200, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}/invite-links/{link_id}",
            |s| format!("/api/v1/workspaces/{}/invite-links/{}", s.workspace, s.link),
            no_body,
            [204, 204, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/invite-links/join",
            |_| "/api/v1/invite-links/join".into(),
            |s| Some(json!({ "code": s.link_code })),
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/invitations",
            |_| "/api/v1/invitations".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/invitations/{invitation_id}/accept",
            |s| format!("/api/v1/invitations/{}/accept", s.invitation),
            no_body,
            [404, 404, 404, 404, 404, 404, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/invitations/{invitation_id}/decline",
            |s| format!("/api/v1/invitations/{}/decline", s.invitation),
            no_body,
            [404, 404, 404, 404, 404, 404, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/invitations/accept",
            |_| "/api/v1/invitations/accept".into(),
            |s| Some(json!({ "token": s.invitation_token })),
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/invitations/decline",
            |_| "/api/v1/invitations/decline".into(),
            |s| Some(json!({ "token": s.invitation_token })),
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/invitations/{invitation_id}",
            |s| format!("/api/v1/invitations/{}", s.invitation),
            no_body,
            [204, 204, 403, 403, 404, 404, 404, 401]
        ),
        // Canvases.
        row!(
            M::POST,
            "/api/v1/canvases",
            |_| "/api/v1/canvases".into(),
            |s| Some(json!({ "title": "New", "workspace_id": s.workspace })),
            [201, 201, 201, 403, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases",
            |_| "/api/v1/canvases".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}",
            |s| format!("/api/v1/canvases/{}", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/canvases/{canvas_id}",
            |s| format!("/api/v1/canvases/{}", s.canvas),
            |_| Some(json!({ "title": "Renamed" })),
            [200, 200, 200, 403, 200, 403, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/canvases/{canvas_id}",
            |s| format!("/api/v1/canvases/{}", s.canvas),
            no_body,
            [204, 204, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/archive",
            |s| format!("/api/v1/canvases/{}/archive", s.canvas),
            no_body,
            [200, 200, 200, 403, 200, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/restore",
            |s| format!("/api/v1/canvases/{}/restore", s.canvas),
            no_body,
            [200, 200, 200, 403, 200, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/duplicate",
            |s| format!("/api/v1/canvases/{}/duplicate", s.canvas),
            |_| Some(json!({})),
            [201, 201, 201, 201, 201, 201, 404, 401]
        ),
        // Sync: readers open the socket (a plain GET is told to upgrade) and read the state and
        // presence; writers push updates (this JSON body is refused for its type, after the
        // access check).
        row!(
            M::GET,
            "/ws/canvas/{canvas_id}",
            |s| format!("/ws/canvas/{}", s.canvas),
            no_body,
            [400, 400, 400, 400, 400, 400, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/state",
            |s| format!("/api/v1/canvases/{}/state", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/updates",
            |s| format!("/api/v1/canvases/{}/updates", s.canvas),
            |_| Some(json!({})),
            [415, 415, 415, 403, 415, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/presence",
            |s| format!("/api/v1/canvases/{}/presence", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::PUT,
            "/api/v1/canvases/{canvas_id}/presence",
            |s| format!("/api/v1/canvases/{}/presence", s.canvas),
            |_| Some(json!({ "client_id": 1, "clock": 1, "state": { "user": "matrix" } })),
            [204, 204, 204, 204, 204, 204, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/leave",
            |s| format!("/api/v1/canvases/{}/leave", s.canvas),
            no_body,
            [204, 204, 204, 204, 204, 204, 404, 401]
        ),
        // Blocks: readers list and read, writers write (the block path names no block here,
        // so a writer's write is a 404 while a viewer is refused first with 403).
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/blocks",
            |s| format!("/api/v1/canvases/{}/blocks", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/blocks",
            |s| format!("/api/v1/canvases/{}/blocks", s.canvas),
            |_| Some(json!({ "type": "paragraph", "text": "matrix" })),
            [201, 201, 201, 403, 201, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/blocks/{block_id}",
            |s| format!("/api/v1/canvases/{}/blocks/{}", s.canvas, Uuid::nil()),
            no_body,
            [404, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/canvases/{canvas_id}/blocks/{block_id}",
            |s| format!("/api/v1/canvases/{}/blocks/{}", s.canvas, Uuid::nil()),
            |_| Some(json!({ "text": "matrix" })),
            [404, 404, 404, 403, 404, 403, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/canvases/{canvas_id}/blocks/{block_id}",
            |s| format!("/api/v1/canvases/{}/blocks/{}", s.canvas, Uuid::nil()),
            no_body,
            [404, 404, 404, 403, 404, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/blocks/{block_id}/move",
            |s| format!("/api/v1/canvases/{}/blocks/{}/move", s.canvas, Uuid::nil()),
            |_| Some(json!({ "parent_id": null, "position": "first" })),
            [404, 404, 404, 403, 404, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/blocks/reorder",
            |s| format!("/api/v1/canvases/{}/blocks/reorder", s.canvas),
            |_| Some(json!({ "parent_id": null, "block_ids": [Uuid::nil()] })),
            [422, 422, 422, 403, 422, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/snapshot",
            |s| format!("/api/v1/canvases/{}/snapshot", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/markdown",
            |s| format!("/api/v1/canvases/{}/markdown", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        // The matrix sends JSON: a writer is refused for the media type, after the access check.
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/markdown",
            |s| format!("/api/v1/canvases/{}/markdown", s.canvas),
            |_| Some(json!({})),
            [415, 415, 415, 403, 415, 403, 404, 401]
        ),
        // Search: anyone signed in; each caller's results are filtered to what they can read.
        row!(
            M::GET,
            "/api/v1/search",
            |_| "/api/v1/search?q=plan".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        // One canvas: only those who can read it; others cannot tell it exists.
        row!(
            M::GET,
            "/api/v1/search",
            |s| format!("/api/v1/search?q=plan&mode=hybrid&canvas_id={}", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        // Tasks: anyone signed in, filtered to what they can read; one canvas only for readers.
        row!(
            M::GET,
            "/api/v1/tasks",
            |_| "/api/v1/tasks".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/tasks",
            |s| format!("/api/v1/tasks?canvas_id={}", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        // Usage: anyone signed in, and only their own.
        row!(
            M::GET,
            "/api/v1/ai/usage",
            |_| "/api/v1/ai/usage".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/permissions",
            |s| format!("/api/v1/canvases/{}/permissions", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/members",
            |s| format!("/api/v1/canvases/{}/members", s.canvas),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/canvases/{canvas_id}/members/{user_id}",
            |s| format!(
                "/api/v1/canvases/{}/members/{}",
                s.canvas, s.canvas_member_target
            ),
            |_| Some(json!({ "role": "commenter" })),
            [204, 204, 403, 403, 403, 403, 404, 401]
        ),
        // The target is the canvas viewer, who may remove themselves.
        row!(
            M::DELETE,
            "/api/v1/canvases/{canvas_id}/members/{user_id}",
            |s| format!(
                "/api/v1/canvases/{}/members/{}",
                s.canvas, s.canvas_member_target
            ),
            no_body,
            [204, 204, 403, 403, 403, 204, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/canvases/{canvas_id}/invitations",
            |s| format!("/api/v1/canvases/{}/invitations", s.canvas),
            |_| Some(
                json!({ "email": format!("reader-{}@example.org", Uuid::new_v4().simple()), "role": "viewer" })
            ),
            [201, 201, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/canvases/{canvas_id}/invitations",
            |s| format!("/api/v1/canvases/{}/invitations", s.canvas),
            no_body,
            [200, 200, 403, 403, 403, 403, 404, 401]
        ),
        // Calendars: the owner created it (owner), workspace admin → owner, member → editor,
        // viewer → viewer; the canvas editor subscribes as editor, the canvas viewer as
        // free_busy; the outsider has nothing.
        row!(
            M::POST,
            "/api/v1/calendars",
            |_| "/api/v1/calendars".into(),
            |s| Some(json!({ "name": "New", "workspace_id": s.workspace })),
            [201, 201, 201, 403, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/calendars",
            |_| "/api/v1/calendars".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/calendars/{calendar_id}",
            |s| format!("/api/v1/calendars/{}", s.calendar),
            no_body,
            [200, 200, 200, 200, 200, 200, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/calendars/{calendar_id}",
            |s| format!("/api/v1/calendars/{}", s.calendar),
            |_| Some(json!({ "color": "#112233" })),
            [200, 200, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/calendars/{calendar_id}",
            |s| format!("/api/v1/calendars/{}", s.calendar),
            no_body,
            [204, 204, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/calendars/{calendar_id}/subscriptions",
            |s| format!("/api/v1/calendars/{}/subscriptions", s.calendar),
            |s| Some(json!({ "user_id": s.users[6].0, "role": "viewer" })),
            [201, 201, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/calendars/{calendar_id}/subscriptions",
            |s| format!("/api/v1/calendars/{}/subscriptions", s.calendar),
            no_body,
            [200, 200, 200, 200, 200, 403, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/calendars/{calendar_id}/subscriptions/{user_id}",
            |s| format!(
                "/api/v1/calendars/{}/subscriptions/{}",
                s.calendar, s.users[5].0
            ),
            |_| Some(json!({ "role": "viewer" })),
            [200, 200, 403, 403, 403, 403, 404, 401]
        ),
        // The target is the free_busy subscriber, who may remove themselves.
        row!(
            M::DELETE,
            "/api/v1/calendars/{calendar_id}/subscriptions/{user_id}",
            |s| format!(
                "/api/v1/calendars/{}/subscriptions/{}",
                s.calendar, s.users[5].0
            ),
            no_body,
            [204, 204, 403, 403, 403, 204, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/calendars/{calendar_id}/feed-token",
            |s| format!("/api/v1/calendars/{}/feed-token", s.calendar),
            no_body,
            [201, 201, 403, 403, 403, 403, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/calendars/{calendar_id}/feed-token",
            |s| format!("/api/v1/calendars/{}/feed-token", s.calendar),
            no_body,
            [204, 204, 403, 403, 403, 403, 404, 401]
        ),
        // The secret in the URL is the credential: everyone holding it reads the feed.
        row!(
            M::GET,
            "/api/v1/calendar-feeds/{token}",
            |s| format!("/api/v1/calendar-feeds/{}.ics", s.feed_token),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 200]
        ),
        row!(
            M::POST,
            "/api/v1/calendars/{calendar_id}/import",
            |s| format!("/api/v1/calendars/{}/import", s.calendar),
            ics_body,
            [200, 200, 200, 403, 200, 403, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/calendars/{calendar_id}/schedules",
            |s| format!("/api/v1/calendars/{}/schedules", s.calendar),
            |_| Some(
                json!({ "title": "Lunch", "start": "2026-02-02T12:00:00Z", "end": "2026-02-02T13:00:00Z" })
            ),
            [201, 201, 201, 403, 201, 403, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/calendars/{calendar_id}/schedules",
            |s| format!("/api/v1/calendars/{}/schedules", s.calendar),
            no_body,
            [200, 200, 200, 200, 200, 403, 404, 401]
        ),
        // Schedules: a free_busy subscriber cannot see them (404).
        row!(
            M::GET,
            "/api/v1/schedules/{schedule_id}",
            |s| format!("/api/v1/schedules/{}", s.schedule),
            no_body,
            [200, 200, 200, 200, 200, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/schedules/{schedule_id}",
            |s| format!("/api/v1/schedules/{}", s.schedule),
            |_| Some(json!({ "title": "Renamed" })),
            [200, 200, 200, 403, 200, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/schedules/{schedule_id}",
            |s| format!("/api/v1/schedules/{}", s.schedule),
            no_body,
            [204, 204, 204, 403, 204, 404, 404, 401]
        ),
        row!(
            M::PUT,
            "/api/v1/schedules/{schedule_id}/exceptions",
            |s| format!("/api/v1/schedules/{}/exceptions", s.schedule),
            |_| Some(json!({ "original_start": "2026-01-12T09:00:00", "title": "Moved" })),
            [200, 200, 200, 403, 200, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/schedules/{schedule_id}/exceptions",
            |s| format!("/api/v1/schedules/{}/exceptions", s.schedule),
            no_body,
            [200, 200, 200, 200, 200, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/schedules/{schedule_id}/exceptions/{original_start}",
            |s| format!(
                "/api/v1/schedules/{}/exceptions/2026-01-19T09:00:00",
                s.schedule
            ),
            no_body,
            [204, 204, 204, 403, 204, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/schedules/{schedule_id}/split",
            |s| format!("/api/v1/schedules/{}/split", s.schedule),
            |_| Some(
                json!({ "original_start": "2026-02-02T09:00:00", "changes": { "title": "Later" } })
            ),
            [201, 201, 201, 403, 201, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/schedules/{schedule_id}/guests",
            |s| format!("/api/v1/schedules/{}/guests", s.schedule),
            |_| Some(
                json!({ "email": format!("invitee-{}@example.org", Uuid::new_v4().simple()) })
            ),
            [201, 201, 201, 403, 201, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/schedules/{schedule_id}/guests",
            |s| format!("/api/v1/schedules/{}/guests", s.schedule),
            no_body,
            [200, 200, 200, 200, 200, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/schedules/{schedule_id}/guests/{guest_id}",
            |s| format!("/api/v1/schedules/{}/guests/{}", s.schedule, s.email_guest),
            no_body,
            [204, 204, 204, 403, 204, 404, 404, 401]
        ),
        // Only a guest answers; the owner is the organizer guest.
        row!(
            M::POST,
            "/api/v1/schedules/{schedule_id}/rsvp",
            |s| format!("/api/v1/schedules/{}/rsvp", s.schedule),
            |_| Some(json!({ "response": "tentative" })),
            [200, 403, 403, 403, 403, 404, 404, 401]
        ),
        row!(
            M::PUT,
            "/api/v1/schedules/{schedule_id}/reminders",
            |s| format!("/api/v1/schedules/{}/reminders", s.schedule),
            |_| Some(json!({ "minutes": [5] })),
            [200, 200, 200, 200, 200, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/schedules/{schedule_id}/reminders",
            |s| format!("/api/v1/schedules/{}/reminders", s.schedule),
            no_body,
            [200, 200, 200, 200, 200, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/instances",
            |_| "/api/v1/instances?time_min=2026-01-01T00:00:00Z&time_max=2026-03-01T00:00:00Z"
                .into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/freebusy",
            |_| "/api/v1/freebusy".into(),
            |s| Some(
                json!({ "time_min": "2026-01-01T00:00:00Z", "time_max": "2026-03-01T00:00:00Z",
                             "calendar_ids": [s.calendar], "user_ids": [s.users[0].0] })
            ),
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        // Conversations: anyone signed in starts one; tying it to a workspace or canvas needs
        // read access to it. A conversation is its owner's alone: everyone else gets 404.
        row!(
            M::POST,
            "/api/v1/conversations",
            |_| "/api/v1/conversations".into(),
            |_| Some(json!({})),
            [201, 201, 201, 201, 201, 201, 201, 401]
        ),
        row!(
            M::POST,
            "/api/v1/conversations",
            |_| "/api/v1/conversations".into(),
            |s| Some(json!({ "workspace_id": s.workspace })),
            [201, 201, 201, 201, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/conversations",
            |_| "/api/v1/conversations".into(),
            |s| Some(json!({ "canvas_id": s.canvas })),
            [201, 201, 201, 201, 201, 201, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/conversations",
            |_| "/api/v1/conversations".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::GET,
            "/api/v1/conversations/{conversation_id}",
            |s| format!("/api/v1/conversations/{}", s.conversation),
            no_body,
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/conversations/{conversation_id}",
            |s| format!("/api/v1/conversations/{}", s.conversation),
            |_| Some(json!({ "title": "Renamed" })),
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/conversations/{conversation_id}",
            |s| format!("/api/v1/conversations/{}", s.conversation),
            no_body,
            [204, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/conversations/{conversation_id}/messages",
            |s| format!("/api/v1/conversations/{}/messages", s.conversation),
            no_body,
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        // No chat provider here: the owner is told so (503); the others cannot tell it exists.
        row!(
            M::POST,
            "/api/v1/conversations/{conversation_id}/messages",
            |s| format!("/api/v1/conversations/{}/messages", s.conversation),
            |_| Some(json!({ "text": "hello", "client_message_id": "matrix-1" })),
            [503, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::GET,
            "/api/v1/conversations/{conversation_id}/contexts",
            |s| format!("/api/v1/conversations/{}/contexts", s.conversation),
            no_body,
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        // Memories: each caller's own; another's memory is 404.
        row!(
            M::GET,
            "/api/v1/memories",
            |_| "/api/v1/memories".into(),
            no_body,
            [200, 200, 200, 200, 200, 200, 200, 401]
        ),
        row!(
            M::POST,
            "/api/v1/memories",
            |_| "/api/v1/memories".into(),
            |_| Some(json!({ "kind": "preference", "text": "Likes short meetings" })),
            [201, 201, 201, 201, 201, 201, 201, 401]
        ),
        row!(
            M::GET,
            "/api/v1/memories/{memory_id}",
            |s| format!("/api/v1/memories/{}", s.memory),
            no_body,
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::PATCH,
            "/api/v1/memories/{memory_id}",
            |s| format!("/api/v1/memories/{}", s.memory),
            |_| Some(json!({ "text": "Leads the Matrix plan" })),
            [200, 404, 404, 404, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/memories/{memory_id}",
            |s| format!("/api/v1/memories/{}", s.memory),
            no_body,
            [204, 404, 404, 404, 404, 404, 404, 401]
        ),
        // AI roles of a workspace: any member reads them, admins change them.
        row!(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/ai-roles",
            |s| format!("/api/v1/workspaces/{}/ai-roles", s.workspace),
            no_body,
            [200, 200, 200, 200, 404, 404, 404, 401]
        ),
        row!(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/ai-roles",
            |s| format!("/api/v1/workspaces/{}/ai-roles", s.workspace),
            |_| Some(
                json!({ "name": "translator", "description": "translations between languages", "prompt": "Act as a translator." })
            ),
            [201, 201, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::PUT,
            "/api/v1/workspaces/{workspace_id}/ai-roles/{role_id}",
            |s| format!("/api/v1/workspaces/{}/ai-roles/{}", s.workspace, s.ai_role),
            |_| Some(
                json!({ "name": "reviewer", "description": "reviews plans and drafts", "prompt": "Act as a careful reviewer." })
            ),
            [200, 200, 403, 403, 404, 404, 404, 401]
        ),
        row!(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}/ai-roles/{role_id}",
            |s| format!("/api/v1/workspaces/{}/ai-roles/{}", s.workspace, s.ai_role),
            no_body,
            [204, 204, 403, 403, 404, 404, 404, 401]
        ),
    ]
}

/// Every (method, path) the router serves, from the OpenAPI document built with it.
fn served_routes() -> BTreeSet<(String, String)> {
    let (_, doc) = potentia_server::routes();
    crate::openapi::operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

#[test]
fn the_matrix_covers_every_route_the_router_serves() {
    let covered: BTreeSet<(String, String)> = rows()
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_owned()))
        .collect();
    let served = served_routes();
    let missing: Vec<_> = served.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without a matrix row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

#[test]
fn the_openapi_document_lists_every_status_the_matrix_expects() {
    let (_, doc) = potentia_server::routes();
    let mut undocumented = BTreeSet::new();
    for row in rows() {
        let method = row.method.as_str().to_lowercase();
        let responses = &doc["paths"][row.template][&method]["responses"];
        for status in row.expected {
            if responses.get(status.to_string()).is_none() {
                undocumented.insert(format!("{} {} answers {status}", row.method, row.template));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "statuses a route answers but does not document: {undocumented:#?}"
    );
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let app = TestApp::spawn().await;
    let rows = rows();
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for (i, actor) in ACTORS.iter().enumerate() {
            let scenario = scenario(&app.db).await;
            let mut request = app
                .client
                .request(row.method.clone(), app.url(&(row.path)(&scenario)));
            if i < 7 {
                request = request.bearer_auth(token_for(scenario.users[i].0));
            }
            match (row.body)(&scenario) {
                Some(Value::String(text)) => {
                    request = request.header("content-type", "text/calendar").body(text);
                }
                Some(body) => request = request.json(&body),
                None => {}
            }
            let status = request.send().await.unwrap().status().as_u16();
            cells += 1;
            if status != row.expected[i] {
                failures.push(format!(
                    "{} {} as {actor}: expected {}, got {status}",
                    row.method, row.template, row.expected[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "authorization matrix: {} routes x {} callers = {cells} cells",
        rows.len(),
        ACTORS.len()
    );
}

/// Routes whose path parameter is a secret or a time, not an id of a tenant's resource.
const NOT_ID_ROUTES: [&str; 1] = ["/api/v1/calendar-feeds/{token}"];

/// `a`'s containers (workspace, canvas, calendar, schedule) with `b`'s resources inside them.
fn mixed(a: &Scenario, b: &Scenario) -> Scenario {
    Scenario {
        invitation: b.invitation,
        link: b.link,
        member_target: b.member_target,
        canvas_member_target: b.canvas_member_target,
        email_guest: b.email_guest,
        conversation: b.conversation,
        memory: b.memory,
        ai_role: b.ai_role,
        block: b.block,
        ..a.clone()
    }
}

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_route_that_takes_ids() {
    let app = TestApp::spawn().await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in rows() {
        if !row.template.contains('{') || NOT_ID_ROUTES.contains(&row.template) {
            continue;
        }
        for (mode, foreign) in ["all ids", "inner ids"].into_iter().enumerate() {
            // Fresh tenants each time: a cell that wrongly succeeds must not hide the next one.
            let a = scenario(&app.db).await;
            let b = scenario(&app.db).await;
            let target = if mode == 0 { b.clone() } else { mixed(&a, &b) };
            // The rows name no block (`Uuid::nil()`); here it stands for the other's block.
            let path = (row.path)(&target).replace(&Uuid::nil().to_string(), &b.block.to_string());
            if mode == 1 && path == (row.path)(&a) {
                continue;
            }
            let mut request = app
                .client
                .request(row.method.clone(), app.url(&path))
                .bearer_auth(token_for(a.users[0].0));
            match (row.body)(&target) {
                Some(Value::String(text)) => {
                    request = request.header("content-type", "text/calendar").body(text);
                }
                Some(body) => request = request.json(&body),
                None => {}
            }
            let status = request.send().await.unwrap().status().as_u16();
            cells += 1;
            if status != 404 {
                failures.push(format!("{} {path} ({foreign}): {status}", row.method));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cross-tenant cells are not 404:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("cross-tenant matrix: {cells} cells, all 404");
}
