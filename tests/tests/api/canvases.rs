//! Canvases: personal and workspace canvases, archive, duplicate, delete with content,
//! permissions, and the combined member list.

use potentia_tests::TestApp;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

async fn store_update(app: &TestApp, canvas: Uuid, seq: i64) {
    sqlx::query(
        "insert into canvas_updates (canvas_id, seq, data) values ($1, $2, '\\x0000'::bytea)",
    )
    .bind(canvas)
    .bind(seq)
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn personal_and_workspace_canvases_are_listed_apart() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let ws = app.create_workspace(me.access_token(), "Team").await;
    let personal = app.create_canvas(me.access_token(), None, "Diary").await;
    let shared = app
        .create_canvas(me.access_token(), Some(ws), "Roadmap")
        .await;
    let mine = app
        .call(
            Method::GET,
            "/api/v1/canvases",
            Some(me.access_token()),
            None,
        )
        .await
        .1;
    let team = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases?workspace_id={ws}"),
            Some(me.access_token()),
            None,
        )
        .await
        .1;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["items"][0]["id"], personal.to_string());
    assert_eq!(team["items"][0]["id"], shared.to_string());
}

#[tokio::test]
async fn an_archived_canvas_leaves_the_list_until_restored() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Old").await;
    let t = Some(me.access_token());
    let archived = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/archive"),
            t,
            None,
        )
        .await
        .1;
    assert!(archived["archived_at"].is_string());
    assert!(
        app.call(Method::GET, "/api/v1/canvases", t, None).await.1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let listed = app
        .call(Method::GET, "/api/v1/canvases?archived=true", t, None)
        .await
        .1;
    assert_eq!(listed["items"][0]["id"], canvas.to_string());
    app.call(
        Method::POST,
        &format!("/api/v1/canvases/{canvas}/restore"),
        t,
        None,
    )
    .await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/canvases", t, None).await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_canvas_with_content_is_deleted_only_with_force() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let empty = app.create_canvas(me.access_token(), None, "Empty").await;
    let full = app.create_canvas(me.access_token(), None, "Full").await;
    store_update(&app, full, 1).await;
    let t = Some(me.access_token());
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/canvases/{empty}"),
            t,
            None
        )
        .await
        .0,
        204
    );
    let refused = app
        .call(Method::DELETE, &format!("/api/v1/canvases/{full}"), t, None)
        .await;
    assert_eq!(
        (refused.0, refused.1["code"].as_str()),
        (409, Some("canvas_has_content"))
    );
    assert_eq!(
        app.call(Method::GET, &format!("/api/v1/canvases/{full}"), t, None)
            .await
            .0,
        200,
        "nothing was deleted"
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/canvases/{full}?force=true"),
            t,
            None
        )
        .await
        .0,
        204
    );
    let left: i64 = sqlx::query_scalar("select count(*) from canvas_updates")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_duplicate_copies_meta_and_content() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let source = app.create_canvas(me.access_token(), None, "Plan").await;
    store_update(&app, source, 1).await;
    store_update(&app, source, 2).await;
    let (status, copy) = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{source}/duplicate"),
            Some(me.access_token()),
            Some(json!({})),
        )
        .await;
    assert_eq!((status, copy["title"].as_str()), (201, Some("Plan (copy)")));
    let copy_id: Uuid = copy["id"].as_str().unwrap().parse().unwrap();
    let copied: i64 =
        sqlx::query_scalar("select count(*) from canvas_updates where canvas_id = $1")
            .bind(copy_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // The two copied updates, then the copy's own title written into its document's meta.
    assert_eq!(copied, 3);
}

#[tokio::test]
async fn a_direct_member_duplicates_a_workspace_canvas_into_their_own_canvases() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(ws), "Plan")
        .await;
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/invitations"),
            Some(owner.access_token()),
            Some(json!({ "user_id": guest.user_id(), "role": "viewer" })),
        )
        .await
        .1;
    let id = invited["invitation"]["id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/api/v1/invitations/{id}/accept"),
        Some(guest.access_token()),
        None,
    )
    .await;
    let copy = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/duplicate"),
            Some(guest.access_token()),
            Some(json!({ "title": "Mine" })),
        )
        .await
        .1;
    assert!(copy["workspace_id"].is_null());
    assert_eq!(copy["owner_id"], guest.user_id().to_string());
}

#[tokio::test]
async fn permissions_reflect_the_strongest_role() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let viewer = app.sign_up("viewer@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &viewer, "viewer")
        .await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(ws), "Plan")
        .await;
    let path = format!("/api/v1/canvases/{canvas}/permissions");
    let as_viewer = app
        .call(Method::GET, &path, Some(viewer.access_token()), None)
        .await
        .1;
    assert_eq!(
        as_viewer,
        json!({ "canvas_id": canvas, "role": "viewer", "access": "read", "can_read": true, "can_comment": false, "can_write": false, "can_admin": false })
    );
    // A direct editor role on top of the workspace viewer role wins.
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/invitations"),
            Some(owner.access_token()),
            Some(json!({ "user_id": viewer.user_id(), "role": "editor" })),
        )
        .await
        .1;
    let id = invited["invitation"]["id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/api/v1/invitations/{id}/accept"),
        Some(viewer.access_token()),
        None,
    )
    .await;
    let now = app
        .call(Method::GET, &path, Some(viewer.access_token()), None)
        .await
        .1;
    assert_eq!(
        (now["role"].as_str(), now["can_write"].as_bool()),
        (Some("editor"), Some(true))
    );
    let as_owner = app
        .call(Method::GET, &path, Some(owner.access_token()), None)
        .await
        .1;
    assert_eq!(
        (as_owner["role"].as_str(), as_owner["can_admin"].as_bool()),
        (Some("owner"), Some(true))
    );
}

#[tokio::test]
async fn the_member_list_combines_owner_workspace_and_direct_members() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let colleague = app.sign_up("colleague@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &colleague, "member")
        .await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(ws), "Plan")
        .await;
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/invitations"),
            Some(owner.access_token()),
            Some(json!({ "email": "guest@example.org", "role": "commenter" })),
        )
        .await
        .1;
    app.call(
        Method::POST,
        "/api/v1/invitations/accept",
        Some(guest.access_token()),
        Some(json!({ "token": invited["token"] })),
    )
    .await;
    let list = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{canvas}/members"),
            Some(guest.access_token()),
            None,
        )
        .await
        .1;
    let mut entries: Vec<(String, String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
                m["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            (
                "colleague@example.org".into(),
                "member".into(),
                "workspace".into()
            ),
            (
                "guest@example.org".into(),
                "commenter".into(),
                "canvas".into()
            ),
            ("owner@example.org".into(), "owner".into(), "owner".into()),
            (
                "owner@example.org".into(),
                "owner".into(),
                "workspace".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_canvas_title_is_bounded_and_unknown_fields_refused() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Plan").await;
    let path = format!("/api/v1/canvases/{canvas}");
    let long = app
        .call(
            Method::PATCH,
            &path,
            Some(me.access_token()),
            Some(json!({ "title": "x".repeat(501) })),
        )
        .await;
    assert_eq!(
        (long.0, long.1["errors"][0]["field"].as_str()),
        (422, Some("title"))
    );
    let unknown = app
        .call(
            Method::PATCH,
            &path,
            Some(me.access_token()),
            Some(json!({ "owner_id": Uuid::new_v4() })),
        )
        .await;
    assert_eq!(unknown.0, 422);
    let ok = app
        .call(
            Method::PATCH,
            &path,
            Some(me.access_token()),
            Some(json!({ "title": "Q3", "icon": "📈" })),
        )
        .await
        .1;
    assert_eq!(
        (ok["title"].as_str(), ok["icon"].as_str()),
        (Some("Q3"), Some("📈"))
    );
    assert_eq!(app.audit_rows("canvas.update").await.len(), 1);
}

async fn list(app: &TestApp, token: &str, query: &str) -> serde_json::Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases?{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn scope_all_lists_every_readable_canvas_with_its_workspace_and_nothing_else() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let other = app.sign_up("other@example.org").await;
    let ws = app.create_workspace(me.access_token(), "Team").await;
    let personal = app.create_canvas(me.access_token(), None, "Diary").await;
    let team = app
        .create_canvas(me.access_token(), Some(ws), "Roadmap")
        .await;
    let shared = app
        .create_canvas(other.access_token(), None, "Shared with me")
        .await;
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{shared}/invitations"),
            Some(other.access_token()),
            Some(json!({ "email": "me@example.org", "role": "viewer" })),
        )
        .await
        .1;
    app.call(
        Method::POST,
        "/api/v1/invitations/accept",
        Some(me.access_token()),
        Some(json!({ "token": invited["token"] })),
    )
    .await;
    let hidden = app
        .create_canvas(other.access_token(), None, "Private")
        .await;

    let all = list(&app, me.access_token(), "scope=all").await;
    let mut expected = vec![personal.to_string(), team.to_string(), shared.to_string()];
    expected.sort();
    let mut got = ids(&all);
    got.sort();
    assert_eq!(got, expected);
    assert!(!got.contains(&hidden.to_string()));
    let roadmap = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == team.to_string())
        .unwrap();
    assert_eq!(roadmap["workspace_name"], "Team");
    assert!(roadmap["last_activity_at"].is_string());

    // Pages of one neither skip nor repeat.
    let first = list(&app, me.access_token(), "scope=all&limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(
        &app,
        me.access_token(),
        &format!("scope=all&limit=2&cursor={cursor}"),
    )
    .await;
    let mut paged = [ids(&first), ids(&second)].concat();
    paged.sort();
    assert_eq!(paged, expected);
}

#[tokio::test]
async fn the_last_activity_order_puts_the_latest_edit_first() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let older = app.create_canvas(me.access_token(), None, "Older").await;
    let newer = app.create_canvas(me.access_token(), None, "Newer").await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/canvases/{older}"),
            Some(me.access_token()),
            Some(json!({ "title": "Older, edited" })),
        )
        .await;
    assert_eq!(status, 200);
    let by_activity = list(&app, me.access_token(), "scope=all&sort=last_activity").await;
    assert_eq!(ids(&by_activity), [older.to_string(), newer.to_string()]);
    let first = list(
        &app,
        me.access_token(),
        "scope=all&sort=last_activity&limit=1",
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(
        &app,
        me.access_token(),
        &format!("scope=all&sort=last_activity&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second), [newer.to_string()]);
}

#[tokio::test]
async fn scope_all_with_a_workspace_is_a_422_naming_scope() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let ws = app.create_workspace(me.access_token(), "Team").await;
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases?scope=all&workspace_id={ws}"),
            Some(me.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "scope");
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/canvases?scope=everything",
            Some(me.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "scope");
}
