//! Workspaces and members: owner protections, ownership transfer, deletion, IDOR, pagination.

use potentia_tests::TestApp;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn the_creator_owns_the_workspace() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("owner")));
    let members = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/members"),
            Some(owner.access_token()),
            None,
        )
        .await
        .1;
    assert_eq!(members["items"][0]["email"], "owner@example.org");
    assert_eq!(members["items"][0]["name"], "Test User");
}

#[tokio::test]
async fn unknown_fields_in_a_workspace_patch_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workspaces/{ws}"),
            Some(owner.access_token()),
            Some(json!({ "plan": "pro" })),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("plan"))
    );
}

#[tokio::test]
async fn a_patch_changes_and_clears_workspace_fields() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let path = format!("/api/v1/workspaces/{ws}");
    let (_, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(owner.access_token()),
            Some(json!({ "icon": "🚀", "description": "Q3 plans" })),
        )
        .await;
    assert_eq!(
        (body["icon"].as_str(), body["name"].as_str()),
        (Some("🚀"), Some("Team"))
    );
    let (_, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(owner.access_token()),
            Some(json!({ "icon": null })),
        )
        .await;
    assert!(body["icon"].is_null());
    assert_eq!(body["description"], "Q3 plans");
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(owner.access_token()),
            Some(json!({ "name": "  " })),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn the_owner_can_be_neither_demoted_nor_removed_nor_leave() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let admin = app.sign_up("admin@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &admin, "admin")
        .await;
    let owner_path = format!("/api/v1/workspaces/{ws}/members/{}", owner.user_id());
    let demote = app
        .call(
            Method::PATCH,
            &owner_path,
            Some(admin.access_token()),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(
        (demote.0, demote.1["code"].as_str()),
        (409, Some("owner_protected"))
    );
    let remove = app
        .call(
            Method::DELETE,
            &owner_path,
            Some(admin.access_token()),
            None,
        )
        .await;
    assert_eq!(remove.0, 409);
    let leave = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/leave"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (leave.0, leave.1["code"].as_str()),
        (409, Some("owner_cannot_leave"))
    );
    let promote = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workspaces/{ws}/members/{}", admin.user_id()),
            Some(owner.access_token()),
            Some(json!({ "role": "owner" })),
        )
        .await;
    assert_eq!(promote.0, 422, "ownership moves only by transfer");
}

#[tokio::test]
async fn transferring_ownership_makes_the_old_owner_an_admin() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let heir = app.sign_up("heir@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &heir, "member")
        .await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/transfer"),
            Some(owner.access_token()),
            Some(json!({ "user_id": heir.user_id() })),
        )
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("owner")));
    let old = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(owner.access_token()),
            None,
        )
        .await
        .1;
    assert_eq!(old["role"], "admin");
    let leave = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/leave"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(leave.0, 204, "the former owner may now leave");
    assert_eq!(app.audit_rows("workspace.transfer").await.len(), 1);
}

#[tokio::test]
async fn deleting_a_workspace_deletes_its_canvases_and_memberships() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(ws), "Plan")
        .await;
    let personal = app.create_canvas(owner.access_token(), None, "Diary").await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/workspaces/{ws}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!((status, body["canvases_deleted"].as_i64()), (200, Some(1)));
    let gone = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{canvas}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(gone.0, 404);
    let kept = app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{personal}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(kept.0, 200, "personal canvases are not the workspace's");
    let members: i64 = sqlx::query_scalar("select count(*) from workspace_members")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(members, 0);
    let audit = app.audit_rows("workspace.delete").await;
    assert_eq!(audit[0].after.as_ref().unwrap()["canvases_deleted"], 1);
}

#[tokio::test]
async fn ids_from_another_workspace_are_not_found() {
    let app = TestApp::spawn().await;
    let alice = app.sign_up("alice@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let mallory = app.sign_up("mallory@example.org").await;
    let mine = app
        .create_workspace(mallory.access_token(), "Mallory's")
        .await;
    let theirs = app.create_workspace(alice.access_token(), "Alice's").await;
    app.add_member(alice.access_token(), theirs, &bob, "member")
        .await;
    let their_canvas = app
        .create_canvas(alice.access_token(), Some(theirs), "Secret")
        .await;
    let t = Some(mallory.access_token());

    // Their member, addressed through my workspace.
    let path = format!("/api/v1/workspaces/{mine}/members/{}", bob.user_id());
    assert_eq!(
        app.call(Method::PATCH, &path, t, Some(json!({ "role": "viewer" })))
            .await
            .0,
        404
    );
    assert_eq!(app.call(Method::DELETE, &path, t, None).await.0, 404);
    // Their workspace in a body.
    let create = app
        .call(
            Method::POST,
            "/api/v1/canvases",
            t,
            Some(json!({ "title": "x", "workspace_id": theirs })),
        )
        .await;
    assert_eq!(create.0, 404);
    // Their member as my new owner.
    let transfer = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{mine}/transfer"),
            t,
            Some(json!({ "user_id": bob.user_id() })),
        )
        .await;
    assert_eq!(transfer.0, 422);
    // Their canvas and its members.
    for (method, path) in [
        (Method::GET, format!("/api/v1/canvases/{their_canvas}")),
        (
            Method::GET,
            format!("/api/v1/canvases/{their_canvas}/members"),
        ),
        (
            Method::POST,
            format!("/api/v1/canvases/{their_canvas}/duplicate"),
        ),
        (
            Method::GET,
            format!("/api/v1/canvases?workspace_id={theirs}"),
        ),
        (Method::GET, format!("/api/v1/workspaces/{theirs}/members")),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        assert_eq!(
            app.call(method.clone(), &path, t, body).await.0,
            404,
            "{method} {path}"
        );
    }
    // Their invite link revoked through my workspace.
    let link = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{theirs}/invite-links"),
            Some(alice.access_token()),
            Some(json!({ "role": "member" })),
        )
        .await
        .1;
    let revoke = format!(
        "/api/v1/workspaces/{mine}/invite-links/{}",
        link["link"]["id"].as_str().unwrap()
    );
    assert_eq!(app.call(Method::DELETE, &revoke, t, None).await.0, 404);
}

#[tokio::test]
async fn a_malformed_id_in_a_path_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/workspaces/not-a-uuid",
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_path_parameter"))
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("must be an id"), "{detail}");
    assert!(!detail.contains("UUID parsing failed"), "{detail}");
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_under_concurrent_inserts() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let mut originals = Vec::new();
    for i in 0..7 {
        originals.push(
            app.create_canvas(owner.access_token(), Some(ws), &format!("c{i}"))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/canvases?workspace_id={ws}&limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app
            .call(Method::GET, &path, Some(owner.access_token()), None)
            .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().parse::<Uuid>().unwrap()),
        );
        // Someone adds a canvas between our page requests.
        app.create_canvas(owner.access_token(), Some(ws), "concurrent")
            .await;
        match page["next_cursor"].as_str() {
            Some(next) if seen.len() < 30 => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no canvas appears twice");
    assert!(
        originals.iter().all(|id| seen.contains(id)),
        "no canvas that existed is skipped"
    );
}

#[tokio::test]
async fn a_limit_out_of_range_or_a_bad_cursor_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    for query in ["limit=0", "limit=101", "cursor=garbage", "limit=abc"] {
        let (status, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/workspaces?{query}"),
                Some(owner.access_token()),
                None,
            )
            .await;
        assert!(status == 400 || status == 422, "{query}: {status}");
    }
}

#[tokio::test]
async fn a_removed_member_loses_the_canvases_they_created_in_the_workspace() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let leaver = app.sign_up("leaver@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    app.add_member(owner.access_token(), ws, &leaver, "member")
        .await;
    let canvas = app
        .create_canvas(leaver.access_token(), Some(ws), "Mine")
        .await;
    let path = format!("/api/v1/canvases/{canvas}");
    assert_eq!(
        app.call(Method::GET, &path, Some(leaver.access_token()), None)
            .await
            .0,
        200
    );
    let remove = format!("/api/v1/workspaces/{ws}/members/{}", leaver.user_id());
    assert_eq!(
        app.call(Method::DELETE, &remove, Some(owner.access_token()), None)
            .await
            .0,
        204
    );
    assert_eq!(
        app.call(Method::GET, &path, Some(leaver.access_token()), None)
            .await
            .0,
        404
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("{path}?force=true"),
            Some(leaver.access_token()),
            None
        )
        .await
        .0,
        404
    );
    // The workspace keeps the canvas.
    assert_eq!(
        app.call(Method::GET, &path, Some(owner.access_token()), None)
            .await
            .0,
        200
    );
}
