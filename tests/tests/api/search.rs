//! Search: full-text and trigram matches over block texts and canvas titles, ranking,
//! highlighted snippets, pagination, validation, and above all access: nothing from a canvas the
//! caller cannot read. Blocks are inserted with SQL (the materializer is tested elsewhere).

use potentia_tests::{expect_problem, Session, TestApp};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

/// Inserts a block row as the materializer would; returns its id.
async fn add_block(app: &TestApp, canvas: Uuid, kind: &str, text: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into blocks (canvas_id, id, kind, order_key, text, doc_seq)
         values ($1, $2, $3, $4, $5, 1)",
    )
    .bind(canvas)
    .bind(id)
    .bind(kind)
    .bind(id.to_string())
    .bind(text)
    .execute(&app.db)
    .await
    .expect("insert block");
    id
}

/// `GET /api/v1/search?{query}` as `who`; asserts 200 and returns the page.
async fn search(app: &TestApp, who: &Session, query: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/search?{query}"),
            Some(who.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

/// The `block_id`s of a page (null for title hits).
fn block_ids(page: &Value) -> Vec<Option<Uuid>> {
    items(page)
        .iter()
        .map(|item| item["block_id"].as_str().and_then(|id| id.parse().ok()))
        .collect()
}

#[tokio::test]
async fn a_block_is_found_by_one_of_its_words() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Notes").await;
    let block = add_block(&app, canvas, "paragraph", "Buy oat milk and espresso beans").await;
    add_block(&app, canvas, "paragraph", "Call the plumber").await;

    let page = search(&app, &me, "q=espresso").await;

    assert_eq!(block_ids(&page), [Some(block)]);
    let hit = &items(&page)[0];
    assert_eq!(hit["kind"], "block");
    assert_eq!(hit["canvas_id"], canvas.to_string());
    assert_eq!(hit["canvas_title"], "Notes");
    assert_eq!(hit["block_kind"], "paragraph");
    assert!(
        hit["rank"].as_f64().unwrap() >= 1.0,
        "a full-text hit: {hit}"
    );
    assert!(page["next_cursor"].is_null());
}

#[tokio::test]
async fn a_title_then_a_heading_rank_above_a_passing_mention() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Roadmap").await;
    let mention = add_block(
        &app,
        canvas,
        "paragraph",
        "We talked about lunch, the weather and briefly the roadmap before leaving for the day",
    )
    .await;
    let heading = add_block(&app, canvas, "heading", "Roadmap for the third quarter").await;

    let page = search(&app, &me, "q=roadmap").await;

    assert_eq!(block_ids(&page), [None, Some(heading), Some(mention)]);
    assert_eq!(items(&page)[0]["kind"], "canvas");
    let ranks: Vec<f64> = items(&page)
        .iter()
        .map(|i| i["rank"].as_f64().unwrap())
        .collect();
    assert!(ranks[0] > ranks[1] && ranks[1] > ranks[2], "{ranks:?}");
}

#[tokio::test]
async fn a_typo_finds_the_word_by_trigram_similarity_below_exact_matches() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Design").await;
    let fuzzy = add_block(
        &app,
        canvas,
        "paragraph",
        "The new architecture of the system",
    )
    .await;
    let exact = add_block(
        &app,
        canvas,
        "paragraph",
        "Spelled architecure, like the query",
    )
    .await;

    let page = search(&app, &me, "q=architecure").await;

    assert_eq!(block_ids(&page), [Some(exact), Some(fuzzy)]);
    let hit = &items(&page)[1];
    assert!(hit["rank"].as_f64().unwrap() < 1.0, "a fuzzy hit: {hit}");
    assert_eq!(
        hit["snippet"], "The new <mark>architecture</mark> of the system",
        "the similar word is highlighted"
    );
}

#[tokio::test]
async fn the_snippet_marks_the_match_and_escapes_the_rest_as_html() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Web").await;
    add_block(
        &app,
        canvas,
        "code",
        r#"Put <script>alert("hi")</script> & check the sandbox"#,
    )
    .await;

    let page = search(&app, &me, "q=sandbox").await;

    assert_eq!(
        items(&page)[0]["snippet"],
        "Put &lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; check the <mark>sandbox</mark>"
    );
}

#[tokio::test]
async fn a_long_text_is_cut_to_fragments_around_the_match() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Essay").await;
    let filler = "lorem ipsum dolor sit amet ".repeat(40);
    add_block(
        &app,
        canvas,
        "paragraph",
        &format!("{filler} the needle is here {filler}"),
    )
    .await;

    let page = search(&app, &me, "q=needle").await;

    let snippet = items(&page)[0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>needle</mark>"), "{snippet}");
    assert!(snippet.split_whitespace().count() <= 40, "{snippet}");
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_results() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Many").await;
    let mut expected = Vec::new();
    for i in 0..23 {
        // Three texts only: many equal ranks, so the tie-break is exercised.
        let text = match i % 3 {
            0 => "alpha".to_owned(),
            1 => "alpha and alpha".to_owned(),
            _ => "beta gamma alpha delta".to_owned(),
        };
        expected.push(add_block(&app, canvas, "paragraph", &text).await);
    }
    let all = search(&app, &me, "q=alpha&limit=100").await;

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("q=alpha&limit=5&cursor={c}"),
            None => "q=alpha&limit=5".to_owned(),
        };
        let page = search(&app, &me, &query).await;
        assert!(items(&page).len() <= 5);
        paged.extend(block_ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    assert_eq!(paged, block_ids(&all), "the same order, page by page");
    let mut unique = paged.clone();
    unique.sort();
    unique.dedup();
    expected.sort();
    assert_eq!(unique, expected.into_iter().map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cursor_of_another_search_is_refused() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Two").await;
    add_block(&app, canvas, "paragraph", "alpha one").await;
    add_block(&app, canvas, "paragraph", "alpha two").await;
    let page = search(&app, &me, "q=alpha&limit=1").await;
    let cursor = page["next_cursor"].as_str().expect("a next page");

    let response = app
        .authed(
            Method::GET,
            &format!("/api/v1/search?q=beta&cursor={cursor}"),
            me.access_token(),
        )
        .send()
        .await
        .unwrap();

    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn kinds_restricts_results_to_titles_or_blocks() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Garden").await;
    let block = add_block(&app, canvas, "paragraph", "Water the garden").await;

    let titles = search(&app, &me, "q=garden&kinds=canvas").await;
    let blocks = search(&app, &me, "q=garden&kinds=block").await;
    let both = search(&app, &me, "q=garden&kinds=block,canvas").await;

    assert_eq!(block_ids(&titles), [None]);
    assert_eq!(block_ids(&blocks), [Some(block)]);
    assert_eq!(items(&both).len(), 2);
}

#[tokio::test]
async fn canvas_id_searches_one_canvas() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let first = app.create_canvas(me.access_token(), None, "First").await;
    let second = app.create_canvas(me.access_token(), None, "Second").await;
    let wanted = add_block(&app, first, "paragraph", "shared word").await;
    add_block(&app, second, "paragraph", "shared word").await;

    let page = search(&app, &me, &format!("q=shared&canvas_id={first}")).await;

    assert_eq!(block_ids(&page), [Some(wanted)]);
}

#[tokio::test]
async fn archived_canvases_are_searched_only_when_asked() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let canvas = app.create_canvas(me.access_token(), None, "Old").await;
    let block = add_block(&app, canvas, "paragraph", "forgotten treasure").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/canvases/{canvas}/archive"),
            Some(me.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let default = search(&app, &me, "q=treasure").await;
    let included = search(&app, &me, "q=treasure&include_archived=true").await;

    assert!(items(&default).is_empty(), "{default}");
    assert_eq!(block_ids(&included), [Some(block)]);
}

// Access: the SQL itself must never return a row of a canvas the caller cannot read.

/// A workspace owned by `owner` with a canvas holding the word `zephyrine` in its title and in
/// a block; returns (workspace, canvas).
async fn secret_workspace_canvas(app: &TestApp, owner: &Session) -> (Uuid, Uuid) {
    let workspace = app.create_workspace(owner.access_token(), "Secret").await;
    let canvas = app
        .create_canvas(owner.access_token(), Some(workspace), "Zephyrine plans")
        .await;
    add_block(app, canvas, "paragraph", "the zephyrine launch date").await;
    (workspace, canvas)
}

/// Asserts that `who` finds nothing for the secret word, exactly or fuzzily, in any kind.
async fn assert_finds_nothing(app: &TestApp, who: &Session) {
    for query in [
        "q=zephyrine",
        "q=zephyrin",
        "q=zephyrine&include_archived=true",
        "q=launch",
    ] {
        let page = search(app, who, query).await;
        assert!(items(&page).is_empty(), "{query}: {page}");
    }
}

#[tokio::test]
async fn an_outsider_finds_nothing_of_a_workspace_canvas() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let outsider = app.sign_up("outsider@example.org").await;
    let (_, canvas) = secret_workspace_canvas(&app, &owner).await;

    assert_finds_nothing(&app, &outsider).await;
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/search?q=zephyrine&canvas_id={canvas}"),
            Some(outsider.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 404, "an unreadable canvas_id is not found");
    assert_eq!(
        items(&search(&app, &owner, "q=zephyrine").await).len(),
        2,
        "the owner finds both"
    );
}

#[tokio::test]
async fn a_removed_workspace_member_finds_nothing_any_more() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let member = app.sign_up("member@example.org").await;
    let (workspace, _) = secret_workspace_canvas(&app, &owner).await;
    app.add_member(owner.access_token(), workspace, &member, "viewer")
        .await;
    assert_eq!(items(&search(&app, &member, "q=zephyrine").await).len(), 2);

    let (status, body) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/workspaces/{workspace}/members/{}",
                member.user_id()
            ),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");

    assert_finds_nothing(&app, &member).await;
}

#[tokio::test]
async fn a_canvas_owner_who_left_the_workspace_finds_nothing_of_it() {
    let app = TestApp::spawn().await;
    let admin = app.sign_up("admin@example.org").await;
    let leaver = app.sign_up("leaver@example.org").await;
    let workspace = app.create_workspace(admin.access_token(), "Team").await;
    app.add_member(admin.access_token(), workspace, &leaver, "member")
        .await;
    let canvas = app
        .create_canvas(leaver.access_token(), Some(workspace), "Zephyrine plans")
        .await;
    add_block(&app, canvas, "paragraph", "the zephyrine launch date").await;
    assert_eq!(items(&search(&app, &leaver, "q=zephyrine").await).len(), 2);

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{workspace}/leave"),
            Some(leaver.access_token()),
            None,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");

    assert_finds_nothing(&app, &leaver).await;
    assert_eq!(
        items(&search(&app, &admin, "q=zephyrine").await).len(),
        2,
        "the workspace still finds it"
    );
}

#[tokio::test]
async fn another_users_personal_canvas_is_never_found() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let other = app.sign_up("other@example.org").await;
    let canvas = app
        .create_canvas(owner.access_token(), None, "Zephyrine plans")
        .await;
    add_block(&app, canvas, "paragraph", "the zephyrine launch date").await;

    assert_finds_nothing(&app, &other).await;
}

#[tokio::test]
async fn a_direct_canvas_viewer_finds_that_canvas_only() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("owner@example.org").await;
    let guest = app.sign_up("guest@example.org").await;
    let (workspace, shared) = secret_workspace_canvas(&app, &owner).await;
    let hidden = app
        .create_canvas(owner.access_token(), Some(workspace), "Zephyrine budget")
        .await;
    add_block(&app, hidden, "paragraph", "zephyrine costs").await;
    sqlx::query("insert into canvas_members (canvas_id, user_id, role) values ($1, $2, 'viewer')")
        .bind(shared)
        .bind(guest.user_id())
        .execute(&app.db)
        .await
        .unwrap();

    let page = search(&app, &guest, "q=zephyrine").await;

    assert_eq!(items(&page).len(), 2, "{page}");
    assert!(items(&page)
        .iter()
        .all(|item| item["canvas_id"] == shared.to_string()));
}

// Validation and authentication.

#[tokio::test]
async fn a_missing_empty_or_too_long_q_is_422_naming_q() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    let too_long = "a".repeat(201);
    for query in [
        String::new(),
        "q=".to_owned(),
        "q=%20%20".to_owned(),
        format!("q={too_long}"),
    ] {
        let response = app
            .authed(
                Method::GET,
                &format!("/api/v1/search?{query}"),
                me.access_token(),
            )
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "q", "{query}: {problem}");
    }
    search(&app, &me, &format!("q={}", "a".repeat(200))).await;
}

#[tokio::test]
async fn a_limit_outside_1_to_100_is_422_naming_limit() {
    let app = TestApp::spawn().await;
    let me = app.sign_up("me@example.org").await;
    for limit in [0, 101] {
        let response = app
            .authed(
                Method::GET,
                &format!("/api/v1/search?q=x&limit={limit}"),
                me.access_token(),
            )
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "limit");
    }
}

#[tokio::test]
async fn an_anonymous_caller_is_401() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .get(app.url("/api/v1/search?q=anything"))
        .send()
        .await
        .unwrap();

    expect_problem(response, 401, "missing_token").await;
}
