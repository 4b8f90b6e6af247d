//! The tasks view: todo blocks across every readable canvas, by due date, filtered, paginated,
//! checked off through the block, and beside the calendar view.

use potentia_tests::{Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn todo(app: &TestApp, user: &Session, canvas: Uuid, text: &str, props: Value) -> Value {
    let (status, block) = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/blocks"),
            Some(user.access_token()),
            Some(json!({ "type": "todo", "text": text, "props": props, "position": "last" })),
        )
        .await;
    assert_eq!(status, 201, "{block}");
    block
}

async fn tasks(app: &TestApp, user: &Session, query: &str) -> Value {
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks?{query}"),
            Some(user.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn texts(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn open_todos_of_every_readable_canvas_come_by_due_date_undated_last() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let stranger = app.sign_up("stranger@example.org").await;
    let ws = app.create_workspace(me.access_token(), "Team").await;
    let home = app.create_canvas(me.access_token(), None, "Home").await;
    let work = app.create_canvas(me.access_token(), Some(ws), "Work").await;
    let theirs = app
        .create_canvas(stranger.access_token(), None, "Theirs")
        .await;
    todo(&app, &me, home, "someday", json!({ "checked": false })).await;
    todo(
        &app,
        &me,
        home,
        "taxes",
        json!({ "checked": false, "due_at": "2026-04-15" }),
    )
    .await;
    todo(
        &app,
        &me,
        work,
        "ship",
        json!({ "checked": false, "due_at": "2026-03-10T09:00:00Z" }),
    )
    .await;
    todo(
        &app,
        &me,
        work,
        "done already",
        json!({ "checked": true, "due_at": "2026-03-01" }),
    )
    .await;
    todo(
        &app,
        &stranger,
        theirs,
        "not mine",
        json!({ "checked": false, "due_at": "2026-03-02" }),
    )
    .await;

    let open = tasks(&app, &me, "").await;
    assert_eq!(texts(&open), ["ship", "taxes", "someday"]);
    let ship = &open["items"][0];
    assert_eq!(ship["canvas_id"], work.to_string());
    assert_eq!(ship["canvas_title"], "Work");
    assert_eq!(ship["workspace_id"], ws.to_string());
    assert_eq!(ship["version"], 1);
    assert_eq!(ship["due"], "2026-03-10T09:00:00Z");
    assert_eq!(
        texts(&tasks(&app, &me, "status=done").await),
        ["done already"]
    );
    assert_eq!(
        texts(&tasks(&app, &me, &format!("canvas_id={home}")).await),
        ["taxes", "someday"]
    );
    assert_eq!(
        texts(&tasks(&app, &me, &format!("workspace_id={ws}")).await),
        ["ship"]
    );
    let march = tasks(
        &app,
        &me,
        "due_from=2026-03-01T00:00:00Z&due_to=2026-04-01T00:00:00Z",
    )
    .await;
    assert_eq!(texts(&march), ["ship"]);
}

#[tokio::test]
async fn pages_of_tasks_neither_skip_nor_repeat() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "List").await;
    for (text, due) in [
        ("a", Some("2026-03-01")),
        ("b", Some("2026-03-02")),
        ("c", None),
        ("d", None),
    ] {
        let props = match due {
            Some(due) => json!({ "checked": false, "due_at": due }),
            None => json!({ "checked": false }),
        };
        todo(&app, &me, canvas, text, props).await;
    }
    let mut seen = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let page = tasks(&app, &me, &query).await;
        seen.extend(texts(&page).into_iter().map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen[..2], ["a", "b"]);
    let mut undated = seen[2..].to_vec();
    undated.sort();
    assert_eq!(undated, ["c", "d"]);
}

#[tokio::test]
async fn checking_a_task_through_its_block_moves_it_to_done() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "List").await;
    let block = todo(&app, &me, canvas, "call mum", json!({ "checked": false })).await;
    let task = &tasks(&app, &me, "").await["items"][0];
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!(
                "/api/v1/canvases/{canvas}/blocks/{}",
                task["block_id"].as_str().unwrap()
            ),
            Some(me.access_token()),
            Some(json!({ "props": { "checked": true }, "version": task["version"] })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["id"], block["id"]);
    assert!(texts(&tasks(&app, &me, "").await).is_empty());
    assert_eq!(texts(&tasks(&app, &me, "status=done").await), ["call mum"]);
}

#[tokio::test]
async fn a_foreign_canvas_or_a_bad_parameter_is_refused() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let stranger = app.sign_up("stranger@example.org").await;
    let theirs = app
        .create_canvas(stranger.access_token(), None, "Theirs")
        .await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks?canvas_id={theirs}"),
            Some(me.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    for (query, field) in [
        ("status=maybe", "status"),
        ("due_from=2026-03-10", "due_from"),
        ("limit=0", "limit"),
        (
            "due_from=2026-03-10T00:00:00Z&due_to=2026-03-01T00:00:00Z",
            "due_to",
        ),
        ("cursor=nope", "cursor"),
    ] {
        let (status, problem) = app
            .call(
                Method::GET,
                &format!("/api/v1/tasks?{query}"),
                Some(me.access_token()),
                None,
            )
            .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_calendar_view_can_carry_the_tasks_due_in_its_range() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "List").await;
    todo(
        &app,
        &me,
        canvas,
        "in range",
        json!({ "checked": false, "due_at": "2026-03-10T09:00:00Z" }),
    )
    .await;
    todo(
        &app,
        &me,
        canvas,
        "later",
        json!({ "checked": false, "due_at": "2026-05-01" }),
    )
    .await;
    let range = "time_min=2026-03-01T00:00:00Z&time_max=2026-04-01T00:00:00Z";
    let (status, view) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?{range}&include=tasks"),
            Some(me.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let carried: Vec<&str> = view["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(carried, ["in range"]);
    assert_eq!(view["more_tasks"], false);
    let (_, plain) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?{range}"),
            Some(me.access_token()),
            None,
        )
        .await;
    assert!(plain.get("tasks").is_none(), "{plain}");
}

#[tokio::test]
async fn an_unreadable_due_date_from_a_document_client_lists_the_task_as_undated() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "List").await;
    todo(
        &app,
        &me,
        canvas,
        "dated",
        json!({ "checked": false, "due_at": "2026-03-01" }),
    )
    .await;
    let odd = todo(&app, &me, canvas, "odd", json!({ "checked": false })).await;
    // What a Yjs client may write into props, which REST refuses.
    for due in ["next tuesday", "2026-13-45", "2026-03-10T09:00:00"] {
        sqlx::query("update blocks set props = jsonb_set(props, '{due_at}', to_jsonb($1::text)) where id = $2")
            .bind(due)
            .bind(odd["id"].as_str().unwrap().parse::<Uuid>().unwrap())
            .execute(&app.db)
            .await
            .unwrap();
        let page = tasks(&app, &me, "").await;
        assert_eq!(texts(&page), ["dated", "odd"], "{due}");
        assert_eq!(page["items"][1]["due"], Value::Null, "{due}");
        assert_eq!(page["items"][1]["due_at"], due);
    }
}
