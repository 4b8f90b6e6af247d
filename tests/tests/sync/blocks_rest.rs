//! The block REST API goes through the document: connected clients see REST writes live, REST
//! readers see client edits, versions guard concurrent writes.

use std::time::Duration;

use potentia_sync::schema::{insert_block, read_blocks};
use potentia_sync::{NewBlock, Position};
use potentia_tests::{error_fields, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use yrs::Transact;

use crate::support::{connected, fixture, Fixture, WAIT};

async fn create(f: &Fixture, body: Value) -> Value {
    let (status, block) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{block}");
    block
}

async fn list(f: &Fixture, query: &str) -> Value {
    let (status, page) = f
        .app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{}/blocks{query}", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn texts(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn block_path(f: &Fixture, id: &Value) -> String {
    format!(
        "/api/v1/canvases/{}/blocks/{}",
        f.canvas,
        id.as_str().expect("id")
    )
}

#[tokio::test]
async fn a_rest_write_is_seen_live_by_a_connected_client() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let block = create(
        &f,
        json!({ "type": "todo", "text": "buy milk", "props": { "checked": false } }),
    )
    .await;
    assert_eq!(block["version"], 1);
    let id = block["id"].as_str().expect("id").to_owned();
    client
        .wait_for(WAIT, |_, doc| {
            read_blocks(&doc.transact())
                .iter()
                .any(|b| b.id == id && b.text == "buy milk" && b.kind == "todo")
        })
        .await
        .expect("the client sees the REST write");
}

#[tokio::test]
async fn a_client_edit_is_seen_through_rest() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    {
        let doc = client.doc();
        let mut txn = doc.transact_mut();
        insert_block(
            &mut txn,
            NewBlock {
                id: None,
                kind: "heading".into(),
                parent: None,
                position: Position::Last,
                text: "From the client".into(),
                props: Default::default(),
            },
        )
        .expect("insert");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if texts(&list(&f, "").await) == vec!["From the client"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never materialized");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn blocks_are_created_at_positions_and_listed_in_document_order() {
    let f = fixture().await;
    let b = create(&f, json!({ "type": "paragraph", "text": "b" })).await;
    create(
        &f,
        json!({ "type": "paragraph", "text": "a", "position": "first" }),
    )
    .await;
    create(
        &f,
        json!({ "type": "paragraph", "text": "c", "position": { "after": b["id"] } }),
    )
    .await;
    create(
        &f,
        json!({ "type": "bullet", "text": "b.1", "parent_id": b["id"] }),
    )
    .await;
    create(
        &f,
        json!({ "type": "bullet", "text": "b.0", "parent_id": b["id"], "position": "first" }),
    )
    .await;
    assert_eq!(
        texts(&list(&f, "").await),
        vec!["a", "b", "b.0", "b.1", "c"]
    );
    let under = format!("?under={}", b["id"].as_str().expect("id"));
    assert_eq!(texts(&list(&f, &under).await), vec!["b.0", "b.1"]);
    // Pages neither skip nor repeat.
    let first = list(&f, "?limit=2").await;
    let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
    let second = list(&f, &format!("?limit=2&cursor={cursor}")).await;
    let cursor = second["next_cursor"].as_str().expect("cursor").to_owned();
    let third = list(&f, &format!("?limit=2&cursor={cursor}")).await;
    let all: Vec<String> = [first, second, third.clone()]
        .iter()
        .flat_map(texts)
        .collect();
    assert_eq!(all, vec!["a", "b", "b.0", "b.1", "c"]);
    assert!(third["next_cursor"].is_null());
}

#[tokio::test]
async fn a_stale_version_is_a_409_with_the_current_block_and_changes_nothing() {
    let f = fixture().await;
    let block = create(&f, json!({ "type": "paragraph", "text": "v1" })).await;
    let path = block_path(&f, &block["id"]);
    let (status, patched) = f
        .app
        .call(
            Method::PATCH,
            &path,
            Some(f.owner.access_token()),
            Some(json!({ "text": "v2", "version": 1 })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 2);
    let (status, problem) = f
        .app
        .call(
            Method::PATCH,
            &path,
            Some(f.owner.access_token()),
            Some(json!({ "text": "lost update", "version": 1 })),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "version_conflict");
    assert_eq!(problem["current"]["text"], "v2");
    assert_eq!(problem["current"]["version"], 2);
    let (_, now) = f
        .app
        .call(Method::GET, &path, Some(f.owner.access_token()), None)
        .await;
    assert_eq!(
        (now["text"].clone(), now["version"].clone()),
        (json!("v2"), json!(2))
    );
}

#[tokio::test]
async fn if_match_carries_the_version_too() {
    let f = fixture().await;
    let block = create(&f, json!({ "type": "paragraph", "text": "x" })).await;
    let path = block_path(&f, &block["id"]);
    let response = f
        .app
        .client
        .patch(f.app.url(&path))
        .bearer_auth(f.owner.access_token())
        .header("if-match", "\"7\"")
        .json(&json!({ "text": "y" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 409);
    let response = f
        .app
        .client
        .get(f.app.url(&path))
        .bearer_auth(f.owner.access_token())
        .send()
        .await
        .expect("get");
    assert_eq!(response.headers()["etag"], "\"1\"");
}

#[tokio::test]
async fn of_two_concurrent_writes_with_one_version_exactly_one_wins() {
    let f = fixture().await;
    let block = create(&f, json!({ "type": "paragraph", "text": "start" })).await;
    let path = block_path(&f, &block["id"]);
    let writes = (0..6).map(|i| {
        let path = path.clone();
        let app: &TestApp = &f.app;
        let token = f.owner.access_token().to_owned();
        async move {
            app.call(
                Method::PATCH,
                &path,
                Some(&token),
                Some(json!({ "text": format!("writer {i}"), "version": 1 })),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(writes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        5,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn moves_reorders_and_deletes_go_through_the_document() {
    let f = fixture().await;
    let a = create(&f, json!({ "type": "paragraph", "text": "a" })).await;
    let b = create(&f, json!({ "type": "paragraph", "text": "b" })).await;
    let c = create(&f, json!({ "type": "paragraph", "text": "c" })).await;
    let token = Some(f.owner.access_token());
    let (status, moved) = f
        .app
        .call(
            Method::POST,
            &format!("{}/move", block_path(&f, &c["id"])),
            token,
            Some(json!({ "parent_id": a["id"], "position": "first", "version": 1 })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["parent_id"], a["id"]);
    assert_eq!(texts(&list(&f, "").await), vec!["a", "c", "b"]);
    let (status, body) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks/reorder", f.canvas),
            token,
            Some(json!({ "parent_id": null, "block_ids": [b["id"], a["id"]] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(texts(&list(&f, "").await), vec!["b", "a", "c"]);
    let (status, _) = f
        .app
        .call(Method::DELETE, &block_path(&f, &a["id"]), token, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        texts(&list(&f, "").await),
        vec!["b"],
        "the subtree goes with its block"
    );
    let (status, _) = f
        .app
        .call(Method::GET, &block_path(&f, &c["id"]), token, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(f.app.audit_rows("block.delete").await.len(), 1);
}

#[tokio::test]
async fn the_snapshot_has_the_meta_and_every_block() {
    let f = fixture().await;
    create(
        &f,
        json!({ "type": "heading", "text": "Goals", "props": { "level": 1 } }),
    )
    .await;
    create(
        &f,
        json!({ "type": "todo", "text": "ship", "props": { "checked": true } }),
    )
    .await;
    let (status, snapshot) = f
        .app
        .call(
            Method::GET,
            &format!("/api/v1/canvases/{}/snapshot", f.canvas),
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{snapshot}");
    assert_eq!(snapshot["title"], "Plan");
    assert_eq!(snapshot["blocks"][0]["props"]["level"], 1);
    assert_eq!(snapshot["blocks"][1]["props"]["checked"], true);
}

#[tokio::test]
async fn a_block_of_another_canvas_is_not_found_here() {
    let f = fixture().await;
    let other_canvas = f
        .app
        .create_canvas(f.owner.access_token(), None, "Other")
        .await;
    let (status, foreign) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{other_canvas}/blocks"),
            Some(f.owner.access_token()),
            Some(json!({ "type": "paragraph", "text": "elsewhere" })),
        )
        .await;
    assert_eq!(status, 201);
    let path = block_path(&f, &foreign["id"]);
    let (status, _) = f
        .app
        .call(Method::GET, &path, Some(f.owner.access_token()), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = f
        .app
        .call(
            Method::PATCH,
            &path,
            Some(f.owner.access_token()),
            Some(json!({ "text": "hijack" })),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(
                json!({ "type": "paragraph", "text": "x", "position": { "after": foreign["id"] } }),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

async fn import(f: &Fixture, query: &str, markdown: &str) -> (u16, Value) {
    let response = f
        .app
        .client
        .post(
            f.app
                .url(&format!("/api/v1/canvases/{}/markdown{query}", f.canvas)),
        )
        .bearer_auth(f.owner.access_token())
        .header("content-type", "text/markdown")
        .body(markdown.to_owned())
        .send()
        .await
        .expect("import");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn markdown_imports_as_blocks_through_the_document_and_exports_back() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    let markdown = "## Goals\n\nShip the **sync** server.\n\n- [ ] write tests\n- [x] read the spec\n\n```rust\nfn main() {}\n```\n";
    let (status, body) = import(&f, "", markdown).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["block_ids"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        texts(&list(&f, "").await),
        vec![
            "Goals",
            "Ship the sync server.",
            "write tests",
            "read the spec",
            "fn main() {}"
        ]
    );
    client
        .wait_for(WAIT, |_, doc| read_blocks(&doc.transact()).len() == 5)
        .await
        .expect("the client sees the imported blocks");
    let response = f
        .app
        .client
        .get(
            f.app
                .url(&format!("/api/v1/canvases/{}/markdown", f.canvas)),
        )
        .bearer_auth(f.owner.access_token())
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.expect("text"),
        format!("# Plan\n\n{markdown}")
    );
}

#[tokio::test]
async fn markdown_imported_after_a_block_lands_right_after_it() {
    let f = fixture().await;
    let a = create(&f, json!({ "type": "paragraph", "text": "a" })).await;
    create(&f, json!({ "type": "paragraph", "text": "z" })).await;
    let query = format!("?after={}", a["id"].as_str().expect("id"));
    let (status, body) = import(&f, &query, "b\n\nc\n").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(texts(&list(&f, "").await), vec!["a", "b", "c", "z"]);
}

#[tokio::test]
async fn markdown_over_the_limit_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let huge = "x".repeat(potentia_sync::markdown::MAX_MARKDOWN_BYTES + 1);
    let response = f
        .app
        .client
        .post(
            f.app
                .url(&format!("/api/v1/canvases/{}/markdown", f.canvas)),
        )
        .bearer_auth(f.owner.access_token())
        .header("content-type", "text/markdown")
        .body(huge)
        .send()
        .await
        .expect("import");
    // The body limit (1 MiB) or the Markdown limit answers first; either way a 413.
    assert_eq!(response.status(), 413);
    assert_eq!(texts(&list(&f, "").await), Vec::<String>::new());
}

#[tokio::test]
async fn known_properties_with_wrong_values_are_a_422_naming_each_and_store_nothing() {
    let f = fixture().await;
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "type": "todo", "text": "pay", "props": { "checked": "yes", "due_at": "soon" } })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["props.checked", "props.due_at"]);
    for (kind, props, field) in [
        ("heading", json!({ "level": 9 }), "props.level"),
        ("code", json!({ "language": "two words" }), "props.language"),
        (
            "image",
            json!({ "url": "javascript:alert(1)" }),
            "props.url",
        ),
    ] {
        let (status, problem) = f
            .app
            .call(
                Method::POST,
                &format!("/api/v1/canvases/{}/blocks", f.canvas),
                Some(f.owner.access_token()),
                Some(json!({ "type": kind, "props": props })),
            )
            .await;
        assert_eq!(
            (status, error_fields(&problem)),
            (422, vec![field.to_owned()]),
            "{kind}"
        );
    }
    assert!(texts(&list(&f, "").await).is_empty());
}

#[tokio::test]
async fn a_patch_is_checked_against_the_blocks_own_type() {
    let f = fixture().await;
    let block = create(
        &f,
        json!({ "type": "todo", "text": "pay", "props": { "checked": false } }),
    )
    .await;
    let (status, problem) = f
        .app
        .call(
            Method::PATCH,
            &block_path(&f, &block["id"]),
            Some(f.owner.access_token()),
            Some(json!({ "props": { "checked": "yes" } })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["props.checked"]);
    let (status, patched) = f
        .app
        .call(
            Method::PATCH,
            &block_path(&f, &block["id"]),
            Some(f.owner.access_token()),
            Some(json!({ "props": { "checked": true, "due_at": "2026-03-10T09:00:00Z" } })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["props"]["checked"], true);
}

#[tokio::test]
async fn unknown_types_and_properties_stay_free() {
    let f = fixture().await;
    let block = create(
        &f,
        json!({ "type": "callout", "props": { "level": "loud", "checked": "maybe", "emoji": "💡" } }),
    )
    .await;
    assert_eq!(block["props"]["level"], "loud");
    let heading = create(
        &f,
        json!({ "type": "heading", "props": { "level": 2, "anchor": [1] } }),
    )
    .await;
    assert_eq!(heading["props"]["anchor"], json!([1]));
}

#[tokio::test]
async fn a_block_can_be_written_as_inline_markdown_or_as_runs() {
    let f = fixture().await;
    let block = create(
        &f,
        json!({ "type": "paragraph", "markdown": "Buy **oat** milk at [the shop](https://shop.example)" }),
    )
    .await;
    assert_eq!(block["text"], "Buy oat milk at the shop");
    let content = block["content"].to_string();
    assert!(content.contains(r#""bold":true"#), "{content}");
    assert!(content.contains("https://shop.example"), "{content}");

    let runs = create(
        &f,
        json!({ "type": "paragraph", "runs": [
            { "text": "plain " }, { "text": "loud", "bold": true, "italic": true }, { "text": " code", "code": true }
        ] }),
    )
    .await;
    assert_eq!(runs["text"], "plain loud code");
    assert!(
        runs["content"].to_string().contains(r#""italic":true"#),
        "{}",
        runs["content"]
    );

    let (status, patched) = f
        .app
        .call(
            Method::PATCH,
            &block_path(&f, &runs["id"]),
            Some(f.owner.access_token()),
            Some(json!({ "markdown": "~~gone~~ now" })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["text"], "gone now");
    assert!(
        patched["content"].to_string().contains(r#""strike":true"#),
        "{}",
        patched["content"]
    );
}

#[tokio::test]
async fn rich_text_that_is_not_inline_or_is_given_twice_is_a_422() {
    let f = fixture().await;
    for (body, field) in [
        (
            json!({ "type": "paragraph", "markdown": "# A heading" }),
            "markdown",
        ),
        (
            json!({ "type": "paragraph", "markdown": "one\n\ntwo" }),
            "markdown",
        ),
        (
            json!({ "type": "paragraph", "text": "x", "markdown": "*x*" }),
            "markdown",
        ),
        (
            json!({ "type": "paragraph", "runs": [{ "text": "x", "link": "javascript:alert(1)" }] }),
            "runs[0].link",
        ),
    ] {
        let (status, problem) = f
            .app
            .call(
                Method::POST,
                &format!("/api/v1/canvases/{}/blocks", f.canvas),
                Some(f.owner.access_token()),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (status, error_fields(&problem)),
            (422, vec![field.to_owned()]),
            "{body}"
        );
    }
    assert!(texts(&list(&f, "").await).is_empty());
}

#[tokio::test]
async fn text_type_or_props_holding_a_nul_are_a_422_naming_each_and_store_nothing() {
    let f = fixture().await;
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(
                json!({ "type": "to\u{0}do", "text": "pay\u{0}", "props": { "note": "a\u{0}b" } }),
            ),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["props.note", "text", "type"]);
    let block = create(&f, json!({ "type": "paragraph", "text": "kept" })).await;
    let (status, problem) = f
        .app
        .call(
            Method::PATCH,
            &block_path(&f, &block["id"]),
            Some(f.owner.access_token()),
            Some(json!({ "runs": [{ "text": "ok" }, { "text": "\u{0}" }] })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["runs[1].text"]);
    let page = list(&f, "").await;
    assert_eq!(texts(&page), vec!["kept"]);
    assert_eq!(page["items"][0]["version"], 1);
}

#[tokio::test]
async fn markdown_holding_a_nul_is_a_422_naming_the_body_and_changes_nothing() {
    let f = fixture().await;
    let (status, problem) = import(&f, "", "# Plan\n\n- [ ] pay\u{0}\n").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["body"]);
    assert!(texts(&list(&f, "").await).is_empty());
}

#[tokio::test]
async fn a_query_parameter_holding_a_nul_is_a_422_naming_it() {
    let f = fixture().await;
    let (status, problem) = f
        .app
        .call(
            Method::GET,
            "/api/v1/search?q=pay%00day",
            Some(f.owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["q"]);
}

#[tokio::test]
async fn blocks_nest_at_most_64_deep_through_rest_and_a_deeper_write_changes_nothing() {
    let f = fixture().await;
    let max = potentia_sync::schema::MAX_DEPTH;
    let mut parent = Value::Null;
    let mut chain = Vec::new();
    for depth in 1..=max {
        let block = create(
            &f,
            json!({ "type": "bullet", "text": format!("level {depth}"), "parent_id": parent }),
        )
        .await;
        parent = block["id"].clone();
        chain.push(parent.clone());
    }
    let deepest = &chain[max - 1];
    let refused = |problem: &Value| error_fields(problem) == ["parent_id"];
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "type": "bullet", "text": "too deep", "parent_id": deepest })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(refused(&problem), "{problem}");
    // A block with a child moved under level 63 would put the child at 65.
    let top = create(&f, json!({ "type": "bullet", "text": "top" })).await;
    create(
        &f,
        json!({ "type": "bullet", "text": "child", "parent_id": top["id"] }),
    )
    .await;
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("{}/move", block_path(&f, &top["id"])),
            Some(f.owner.access_token()),
            Some(json!({ "parent_id": chain[max - 2], "position": "last" })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(refused(&problem), "{problem}");
    let query = format!("?parent_id={}", deepest.as_str().expect("id"));
    let (status, problem) = import(&f, &query, "- too deep\n").await;
    assert_eq!(status, 422, "{problem}");
    assert!(refused(&problem), "{problem}");
    assert_eq!(
        list(&f, "?limit=100").await["items"]
            .as_array()
            .map(Vec::len),
        Some(max + 2)
    );
}

#[tokio::test]
async fn a_retried_create_with_a_client_chosen_id_makes_one_block() {
    let f = fixture().await;
    let id = uuid::Uuid::now_v7();
    let body = json!({ "id": id, "type": "todo", "text": "pay rent" });
    let first = create(&f, body.clone()).await;
    assert_eq!(first["id"], id.to_string());
    let (status, again) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first);
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "id": id, "type": "todo", "text": "something else" })),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("block_exists"))
    );
    let (status, _) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "id": id, "type": "todo", "text": "pay rent", "props": { "checked": true } })),
        )
        .await;
    assert_eq!(status, 409, "other props make another block");
    assert_eq!(texts(&list(&f, "").await), vec!["pay rent"]);
    assert_eq!(f.app.audit_rows("block.create").await.len(), 1);
}

#[tokio::test]
async fn a_block_write_is_audited_in_the_commit_that_logs_it() {
    let f = fixture().await;
    let block = create(&f, json!({ "type": "paragraph", "text": "logged" })).await;
    let rows = f.app.audit_rows("block.create").await;
    assert_eq!(rows.len(), 1);
    let after = rows[0].after.clone().expect("after");
    assert_eq!(rows[0].target_id.as_deref(), block["id"].as_str());
    let seq = after["seq"].as_i64().expect("the update's seq");
    let logged: bool = sqlx::query_scalar(
        "select exists (select 1 from canvas_updates where canvas_id = $1 and seq = $2)
             or (select snapshot_seq >= $2 from canvas_documents where canvas_id = $1)",
    )
    .bind(f.canvas)
    .bind(seq)
    .fetch_one(&f.app.db)
    .await
    .expect("log");
    assert!(logged, "the audited seq is in the log");
}

#[tokio::test]
async fn a_write_whose_audit_row_fails_is_not_committed_nor_seen() {
    let f = fixture().await;
    let client = connected(&f.app, f.canvas, f.owner.access_token()).await;
    // Postgres refuses this one audit row, as a full disk or a broken constraint would.
    sqlx::raw_sql(
        "create function refuse_block_audit() returns trigger language plpgsql as $$
         begin if new.action = 'block.create' then raise exception 'audit refused'; end if;
         return new; end $$;
         create trigger refuse_block_audit before insert on system_audit
         for each row execute function refuse_block_audit();",
    )
    .execute(&f.app.db)
    .await
    .expect("trigger");
    let (status, problem) = f
        .app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{}/blocks", f.canvas),
            Some(f.owner.access_token()),
            Some(json!({ "type": "paragraph", "text": "never live" })),
        )
        .await;
    assert!(status >= 500, "{status}: {problem}");
    sqlx::raw_sql("drop trigger refuse_block_audit on system_audit")
        .execute(&f.app.db)
        .await
        .expect("drop trigger");
    let logged: i64 =
        sqlx::query_scalar("select count(*) from canvas_updates where canvas_id = $1")
            .bind(f.canvas)
            .fetch_one(&f.app.db)
            .await
            .expect("log");
    assert_eq!(logged, 0, "nothing was committed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        read_blocks(&client.doc().transact()).is_empty(),
        "a connected client never saw it"
    );
    // The canvas works again once audit rows can be written.
    create(&f, json!({ "type": "paragraph", "text": "live" })).await;
    assert_eq!(texts(&list(&f, "").await), vec!["live"]);
}
