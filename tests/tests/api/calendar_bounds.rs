//! Calendar storage has bounds: views and free/busy reach at most 5 years from now (and so does
//! materialization), rules repeat at most hourly, and a calendar holds at most so many
//! schedules and stored occurrences. Each bound is a clear 4xx that stores nothing.

use chrono::{Duration, SecondsFormat, Utc};
use potentia_tests::{error_fields, expect_problem, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn calendar(app: &TestApp, user: &Session) -> Uuid {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/calendars",
            Some(user.access_token()),
            Some(json!({ "name": "Work", "time_zone": "Europe/Paris" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

fn daily(rule: &str) -> Value {
    json!({
        "title": "Check-in",
        "start": "2026-03-02T08:00:00Z", "end": "2026-03-02T08:15:00Z",
        "time_zone": "Europe/Paris",
        "recurrence": { "rrule": rule }
    })
}

async fn create(app: &TestApp, user: &Session, calendar: Uuid, body: Value) -> (u16, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/calendars/{calendar}/schedules"),
        Some(user.access_token()),
        Some(body),
    )
    .await
}

async fn stored_instances(app: &TestApp, calendar: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "select (select count(*) from schedule_instances where calendar_id = $1),
                (select instance_count from calendars where id = $1)",
    )
    .bind(calendar)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

fn at(offset: Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_view_or_free_busy_more_than_5_years_away_is_a_422_and_materializes_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    let (status, body) = create(&app, &ada, cal, daily("FREQ=DAILY")).await;
    assert_eq!(status, 201, "{body}");
    let before = stored_instances(&app, cal).await;
    let (far_min, far_max) = (at(Duration::days(6 * 365)), at(Duration::days(6 * 365 + 7)));
    let (status, problem) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?time_min={far_min}&time_max={far_max}"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["time_max"]);
    let (old_min, old_max) = (
        at(-Duration::days(6 * 365)),
        at(-Duration::days(6 * 365 - 7)),
    );
    let (status, problem) = app
        .call(
            Method::POST,
            "/api/v1/freebusy",
            Some(ada.access_token()),
            Some(json!({ "time_min": old_min, "time_max": old_max, "calendar_ids": [cal] })),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(error_fields(&problem), ["time_min"]);
    assert_eq!(stored_instances(&app, cal).await, before);
}

#[tokio::test]
async fn rules_repeating_more_often_than_hourly_are_a_400_naming_the_recurrence() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    for rule in [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;INTERVAL=15",
        "FREQ=HOURLY;BYMINUTE=0,30",
    ] {
        let (status, problem) = create(&app, &ada, cal, daily(rule)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid_recurrence")),
            "{rule}: {problem}"
        );
    }
    let (status, body) = create(&app, &ada, cal, daily("FREQ=HOURLY;BYHOUR=9,12,17")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_imported_minutely_event_is_skipped_with_its_reason() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    let file = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
        BEGIN:VEVENT\r\nUID:every-minute@test\r\nDTSTART:20260302T080000Z\r\nDTEND:20260302T080100Z\r\n\
        RRULE:FREQ=MINUTELY\r\nSUMMARY:Ping\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:weekly@test\r\nDTSTART:20260302T080000Z\r\nDTEND:20260302T083000Z\r\n\
        RRULE:FREQ=WEEKLY\r\nSUMMARY:Review\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/import"),
            ada.access_token(),
        )
        .header("content-type", "text/calendar")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["created"], 1, "{result}");
    assert_eq!(result["skipped"][0]["uid"], "every-minute@test", "{result}");
    assert_eq!(
        result["skipped"][0]["reason"], "invalid_recurrence",
        "{result}"
    );
}

#[tokio::test]
async fn the_stored_occurrence_count_follows_every_insert_and_delete() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    let (_, body) = create(&app, &ada, cal, daily("FREQ=DAILY")).await;
    let (rows, counted) = stored_instances(&app, cal).await;
    assert!(rows > 300, "a daily series a year ahead: {rows}");
    assert_eq!(counted, rows);
    let id = body["schedule"]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/schedules/{id}"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(stored_instances(&app, cal).await, (0, 0));
}

#[tokio::test]
async fn a_schedule_that_would_pass_the_calendars_occurrence_bound_is_a_409_and_saves_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    // As if the calendar held all but ten of its 500,000 occurrences.
    sqlx::query("update calendars set instance_count = 500000 - 10 where id = $1")
        .bind(cal)
        .execute(&app.db)
        .await
        .unwrap();
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/schedules"),
            ada.access_token(),
        )
        .json(&daily("FREQ=DAILY"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 409, "calendar_full").await;
    let schedules: i64 =
        sqlx::query_scalar("select count(*) from schedules where calendar_id = $1")
            .bind(cal)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(schedules, 0);
    // A single event still fits.
    let (status, body) = create(
        &app,
        &ada,
        cal,
        json!({ "title": "One", "start": "2026-03-02T08:00:00Z", "end": "2026-03-02T09:00:00Z",
                "time_zone": "Europe/Paris" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_calendar_holds_at_most_20000_schedules() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada).await;
    let (_, body) = create(
        &app,
        &ada,
        cal,
        json!({ "title": "Seed", "start": "2026-03-02T08:00:00Z", "end": "2026-03-02T09:00:00Z",
                "time_zone": "Europe/Paris" }),
    )
    .await;
    let seed = body["schedule"]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    // 19,999 more copies of the seed, straight into the table.
    sqlx::query(
        "insert into schedules (id, calendar_id, uid, title, all_day, start_at, end_at, time_zone,
                                materialized_from, materialized_until, series_end)
         select gen_random_uuid(), calendar_id, uid || '-' || n, title, all_day, start_at, end_at,
                time_zone, materialized_from, materialized_until, series_end
         from schedules, generate_series(1, 19999) as n where id = $1",
    )
    .bind(seed)
    .execute(&app.db)
    .await
    .unwrap();
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/schedules"),
            ada.access_token(),
        )
        .json(
            &json!({ "title": "One too many", "start": "2026-03-03T08:00:00Z",
                       "end": "2026-03-03T09:00:00Z", "time_zone": "Europe/Paris" }),
        )
        .send()
        .await
        .unwrap();
    expect_problem(response, 409, "calendar_full").await;
}
