//! Calendars end to end: CRUD and audit, recurrence validation, materialized instances and
//! the horizon, exceptions and splits, guests and RSVP, reminders, free/busy (declined and
//! transparent events, the Redis cache), conflicts, the ICS feed read back by Python's
//! `icalendar`, ICS import of real-world-shaped files, and ids from elsewhere.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{Duration, Utc};
use potentia_tests::{expect_problem, Session, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A server with Redis when `REDIS_URL` is set (as `scripts/test.sh` does).
async fn app() -> TestApp {
    TestApp::spawn_with(|settings| settings.redis_url = std::env::var("REDIS_URL").ok()).await
}

async fn calendar(app: &TestApp, user: &Session, body: Value) -> Uuid {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/calendars",
            Some(user.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

async fn schedule(app: &TestApp, user: &Session, calendar: Uuid, body: Value) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{calendar}/schedules"),
            Some(user.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn id_of(write: &Value) -> Uuid {
    write["schedule"]["id"].as_str().unwrap().parse().unwrap()
}

async fn view(app: &TestApp, user: &Session, from: &str, to: &str) -> Vec<Value> {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?time_min={from}&time_max={to}&limit=2000"),
            Some(user.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn busy(app: &TestApp, user: &Session, calendar: Uuid, from: &str, to: &str) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/freebusy",
            Some(user.access_token()),
            Some(json!({ "time_min": from, "time_max": to, "calendar_ids": [calendar] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["calendars"][calendar.to_string()]["busy"].clone()
}

/// Monday-to-Friday 09:00–09:30 in New York from 2026-03-02 (a DST change on 03-08).
fn standup() -> Value {
    json!({
        "title": "Standup",
        "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T14:30:00Z",
        "time_zone": "America/New_York",
        "recurrence": { "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR" }
    })
}

#[tokio::test]
async fn a_calendar_is_created_listed_patched_and_deleted_with_an_audit_row_each() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let id = calendar(
        &app,
        &ada,
        json!({ "name": "Home", "color": "#AABBCC", "time_zone": "Europe/Paris" }),
    )
    .await;
    let (_, list) = app
        .call(
            Method::GET,
            "/api/v1/calendars",
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(list["items"][0]["color"], "#aabbcc");
    assert_eq!(list["items"][0]["role"], "owner");
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/calendars/{id}"),
            Some(ada.access_token()),
            Some(json!({ "name": "House" })),
        )
        .await;
    assert_eq!((status, patched["name"].as_str()), (200, Some("House")));
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/calendars/{id}"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for action in ["calendar.create", "calendar.update", "calendar.delete"] {
        assert_eq!(app.audit_rows(action).await.len(), 1, "{action}");
    }
}

#[tokio::test]
async fn deleting_a_workspace_deletes_its_calendars_and_their_schedules() {
    let app = app().await;
    let owner = app.sign_up("owner@example.org").await;
    let ws = app.create_workspace(owner.access_token(), "Team").await;
    let cal = calendar(&app, &owner, json!({ "name": "Team", "workspace_id": ws })).await;
    schedule(&app, &owner, cal, standup()).await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/workspaces/{ws}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!((status, body["calendars_deleted"].as_i64()), (200, Some(1)));
    let left: i64 = sqlx::query_scalar("select count(*) from schedule_instances")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/calendars/{cal}"),
            Some(owner.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_bad_rrule_is_a_400_naming_the_recurrence_field_and_writes_nothing() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Home" })).await;
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/schedules"),
            ada.access_token(),
        )
        .json(
            &json!({ "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:00:00Z",
                       "recurrence": { "rrule": "FREQ=WEEKLY;BYDAY=XX" } }),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 400, "invalid_recurrence").await;
    assert_eq!(problem["errors"][0]["field"], "recurrence.rrule");
    assert!(
        problem["detail"].as_str().unwrap().contains("BYDAY"),
        "{problem}"
    );
    let count: i64 = sqlx::query_scalar("select count(*) from schedules")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn an_unknown_time_zone_is_a_400_naming_time_zone() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Home" })).await;
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/schedules"),
            ada.access_token(),
        )
        .json(
            &json!({ "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:00:00Z",
                       "time_zone": "Mars/Olympus_Mons" }),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 400, "unknown_time_zone").await;
    assert_eq!(problem["errors"][0]["field"], "time_zone");
}

#[tokio::test]
async fn a_weekday_series_is_materialized_keeping_nine_am_across_the_dst_change() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    schedule(&app, &ada, cal, standup()).await;
    let items = view(&app, &ada, "2026-03-02T00:00:00Z", "2026-03-14T00:00:00Z").await;
    let starts: Vec<&str> = items.iter().map(|i| i["start"].as_str().unwrap()).collect();
    assert_eq!(starts.len(), 10, "{starts:?}");
    assert_eq!(starts[0], "2026-03-02T14:00:00Z");
    // After 2026-03-08 New York is on EDT: 09:00 is 13:00 UTC.
    assert_eq!(starts[5], "2026-03-09T13:00:00Z");
    assert_eq!(items[5]["original_start"], "2026-03-09T09:00:00");
    assert_eq!(items[5]["end"], "2026-03-09T13:30:00Z");
}

#[tokio::test]
async fn a_view_past_the_horizon_materializes_the_missing_instances_first() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let write = schedule(
        &app,
        &ada,
        cal,
        json!({
        "title": "Weekly", "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:00:00Z",
        "time_zone": "UTC", "recurrence": { "rrule": "FREQ=WEEKLY" } }),
    )
    .await;
    let id = id_of(&write);
    // Four whole weeks from a midnight: exactly four weekly occurrences, whatever today is.
    let far = (Utc::now() + Duration::days(3 * 365))
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let from = far.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let end = far + Duration::days(28);
    let to = end.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let items = view(&app, &ada, &from, &to).await;
    assert_eq!(items.len(), 4, "{items:?}");
    let until: chrono::DateTime<Utc> =
        sqlx::query_scalar("select materialized_until from schedules where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(until >= end - Duration::seconds(1), "{until} < {end}");
}

#[tokio::test]
async fn the_horizon_job_moves_open_series_forward_and_leaves_ended_ones() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let open = id_of(
        &schedule(
            &app,
            &ada,
            cal,
            json!({
        "start": "2026-03-02T14:00:00Z", "end": "2026-03-02T15:00:00Z",
        "recurrence": { "rrule": "FREQ=DAILY" } }),
        )
        .await,
    );
    let ended = id_of(
        &schedule(
            &app,
            &ada,
            cal,
            json!({
        "start": "2026-03-02T16:00:00Z", "end": "2026-03-02T17:00:00Z",
        "recurrence": { "rrule": "FREQ=DAILY;COUNT=3" } }),
        )
        .await,
    );
    let later = Utc::now() + Duration::days(90);
    let ended_until: chrono::DateTime<Utc> =
        sqlx::query_scalar("select materialized_until from schedules where id = $1")
            .bind(ended)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let extended = potentia_server::calendars::materialize::extend_horizons(&app.db, later)
        .await
        .unwrap();
    assert_eq!(extended, 1);
    let until = |id: Uuid| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<Utc>>(
                "select materialized_until from schedules where id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert!(until(open).await >= later + Duration::days(364));
    assert_eq!(until(ended).await, ended_until);
}

#[tokio::test]
async fn cancelling_one_occurrence_removes_only_it_from_the_view() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/schedules/{id}/exceptions"),
            Some(ada.access_token()),
            Some(json!({ "original_start": "2026-03-04T09:00:00", "cancelled": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = view(&app, &ada, "2026-03-02T00:00:00Z", "2026-03-07T00:00:00Z").await;
    let originals: Vec<&str> = items
        .iter()
        .map(|i| i["original_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        originals,
        [
            "2026-03-02T09:00:00",
            "2026-03-03T09:00:00",
            "2026-03-05T09:00:00",
            "2026-03-06T09:00:00"
        ]
    );
}

#[tokio::test]
async fn an_occurrence_is_named_by_the_utc_start_the_view_reports() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let wednesday = view(&app, &ada, "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z").await;
    let start = wednesday[0]["start"].as_str().unwrap().to_owned();
    assert_eq!(start, "2026-03-04T14:00:00Z");
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/schedules/{id}/exceptions"),
            Some(ada.access_token()),
            Some(json!({ "original_start": start, "cancelled": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exception"]["original_start"], "2026-03-04T09:00:00");
    assert!(
        view(&app, &ada, "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z")
            .await
            .is_empty()
    );

    // After the DST change 09:00 New York is 13:00Z, and a split takes that form too.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{id}/split"),
            Some(ada.access_token()),
            Some(json!({ "original_start": "2026-03-09T13:00:00Z" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["before"]["recurrence"]["rrule"][0],
        "FREQ=WEEKLY;UNTIL=20260309T085959;BYDAY=MO,TU,WE,TH,FR"
    );
}

#[tokio::test]
async fn a_bare_date_for_time_min_is_a_422_naming_it() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let response = app
        .authed(
            Method::GET,
            "/api/v1/instances?time_min=2026-03-04&time_max=2026-03-05T00:00:00Z",
            ada.access_token(),
        )
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "time_min");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("2026-03-10T09:00:00Z"), "{message}");
}

#[tokio::test]
async fn editing_one_occurrence_moves_it_and_marks_it_as_an_exception() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/schedules/{id}/exceptions"),
            Some(ada.access_token()),
            Some(
                json!({ "original_start": "2026-03-04T09:00:00", "title": "Late standup",
                         "start": "2026-03-04T18:00:00Z" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = view(&app, &ada, "2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["start"], "2026-03-04T18:00:00Z");
    assert_eq!(items[0]["end"], "2026-03-04T18:30:00Z");
    assert_eq!(items[0]["title"], "Late standup");
    assert_eq!(items[0]["is_exception"], true);
}

#[tokio::test]
async fn an_exception_for_a_time_that_is_not_an_occurrence_is_refused() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let response = app
        .authed(
            Method::PUT,
            &format!("/api/v1/schedules/{id}/exceptions"),
            ada.access_token(),
        )
        .json(&json!({ "original_start": "2026-03-07T09:00:00", "cancelled": true }))
        .send()
        .await
        .unwrap();
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "original_start");
}

#[tokio::test]
async fn splitting_a_series_ends_it_before_the_split_and_starts_the_new_one_there() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{id}/split"),
            Some(ada.access_token()),
            Some(json!({ "original_start": "2026-03-09T09:00:00",
                         "changes": { "title": "Standup v2", "start": "2026-03-09T14:00:00Z" } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["before"]["recurrence"]["rrule"][0],
        "FREQ=WEEKLY;UNTIL=20260309T085959;BYDAY=MO,TU,WE,TH,FR"
    );
    assert_eq!(body["after"]["split_from"], id.to_string());
    let items = view(&app, &ada, "2026-03-02T00:00:00Z", "2026-03-14T00:00:00Z").await;
    let titles: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["title"].as_str().unwrap(), i["start"].as_str().unwrap()))
        .collect();
    assert_eq!(titles.len(), 10, "{titles:?}");
    assert!(
        titles[..5].iter().all(|(t, _)| *t == "Standup"),
        "{titles:?}"
    );
    // The new series starts at 10:00 New York time (14:00Z in EDT) and keeps it.
    assert_eq!(titles[5], ("Standup v2", "2026-03-09T14:00:00Z"));
    assert_eq!(titles[9], ("Standup v2", "2026-03-13T14:00:00Z"));
    assert_eq!(app.audit_rows("schedule.split").await.len(), 1);
}

#[tokio::test]
async fn a_split_carries_the_later_exceptions_to_the_new_series() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    for day in ["2026-03-03T09:00:00", "2026-03-11T09:00:00"] {
        let (status, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/schedules/{id}/exceptions"),
                Some(ada.access_token()),
                Some(json!({ "original_start": day, "cancelled": true })),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (_, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{id}/split"),
            Some(ada.access_token()),
            Some(
                json!({ "original_start": "2026-03-09T09:00:00", "changes": { "title": "Later" } }),
            ),
        )
        .await;
    let after = body["after"]["id"].as_str().unwrap();
    let (_, exceptions) = app
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{after}/exceptions"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(exceptions["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        exceptions["items"][0]["original_start"],
        "2026-03-11T09:00:00"
    );
    let items = view(&app, &ada, "2026-03-02T00:00:00Z", "2026-03-14T00:00:00Z").await;
    assert_eq!(items.len(), 8);
}

#[tokio::test]
async fn a_whole_series_edit_keeps_the_exceptions_that_still_apply() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Work" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    for (day, body) in [
        ("2026-03-04T09:00:00", json!({ "cancelled": true })),
        (
            "2026-03-05T09:00:00",
            json!({ "title": "Thursday special" }),
        ),
    ] {
        let mut body = body;
        body["original_start"] = json!(day);
        let (status, _) = app
            .call(
                Method::PUT,
                &format!("/api/v1/schedules/{id}/exceptions"),
                Some(ada.access_token()),
                Some(body),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Dropping Thursdays removes the edited occurrence; Wednesday's cancellation still applies.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/schedules/{id}"),
            Some(ada.access_token()),
            Some(json!({ "title": "Daily sync", "recurrence": { "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,FR" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dropped_exceptions"], json!(["2026-03-05T09:00:00"]));
    let items = view(&app, &ada, "2026-03-02T00:00:00Z", "2026-03-07T00:00:00Z").await;
    let originals: Vec<&str> = items
        .iter()
        .map(|i| i["original_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        originals,
        [
            "2026-03-02T09:00:00",
            "2026-03-03T09:00:00",
            "2026-03-06T09:00:00"
        ]
    );
    assert!(items.iter().all(|i| i["title"] == "Daily sync"));
}

/// A user's own busy time on 2026-04-01.
async fn user_busy(app: &TestApp, user: &Session) -> Value {
    let query = json!({ "time_min": "2026-04-01T00:00:00Z", "time_max": "2026-04-02T00:00:00Z",
                        "user_ids": [user.user_id()] });
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/freebusy",
            Some(user.access_token()),
            Some(query),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["users"][user.user_id().to_string()]["busy"].clone()
}

#[tokio::test]
async fn declined_and_transparent_events_do_not_block_free_busy() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let ada_cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let bob_cal = calendar(&app, &bob, json!({ "name": "Bob" })).await;
    schedule(
        &app,
        &bob,
        bob_cal,
        json!({ "title": "Focus", "transparency": "transparent",
        "start": "2026-04-01T08:00:00Z", "end": "2026-04-01T09:00:00Z" }),
    )
    .await;
    schedule(
        &app,
        &bob,
        bob_cal,
        json!({ "title": "Gym",
        "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z" }),
    )
    .await;
    let meeting = id_of(
        &schedule(
            &app,
            &ada,
            ada_cal,
            json!({ "title": "1:1",
        "start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z" }),
        )
        .await,
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{meeting}/guests"),
            Some(ada.access_token()),
            Some(json!({ "user_id": bob.user_id() })),
        )
        .await;
    assert_eq!(status, 201);
    let gym = json!({ "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z" });
    // Ada shares no workspace with Bob: her invitation makes him busy only once he accepts.
    assert_eq!(user_busy(&app, &bob).await, json!([gym]));
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{meeting}/rsvp"),
            Some(bob.access_token()),
            Some(json!({ "response": "accepted" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        user_busy(&app, &bob).await,
        json!([gym, { "start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z" }])
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{meeting}/rsvp"),
            Some(bob.access_token()),
            Some(json!({ "response": "declined" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        user_busy(&app, &bob).await,
        json!([{ "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z" }])
    );
}

async fn view_query(app: &TestApp, user: &Session, query: &str) -> Vec<Value> {
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?{query}"),
            Some(user.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_guest_sees_the_meeting_in_their_view_marked_with_their_rsvp() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let ada_cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let bob_cal = calendar(&app, &bob, json!({ "name": "Bob" })).await;
    let mut meetings = Vec::new();
    for (title, start, end) in [
        ("1:1", "2026-04-01T12:00:00Z", "2026-04-01T13:00:00Z"),
        ("Review", "2026-04-01T15:00:00Z", "2026-04-01T16:00:00Z"),
    ] {
        let meeting = id_of(
            &schedule(
                &app,
                &ada,
                ada_cal,
                json!({ "title": title, "start": start, "end": end }),
            )
            .await,
        );
        let (status, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/schedules/{meeting}/guests"),
                Some(ada.access_token()),
                Some(json!({ "user_id": bob.user_id() })),
            )
            .await;
        assert_eq!(status, 201);
        meetings.push(meeting);
    }
    let meeting = meetings[0];
    let range = "time_min=2026-04-01T00:00:00Z&time_max=2026-04-02T00:00:00Z";

    let seen = view_query(&app, &bob, range).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["schedule_id"], meetings[1].to_string());
    assert_eq!(seen[0]["schedule_id"], meeting.to_string());
    assert_eq!(seen[0]["title"], "1:1");
    assert_eq!(seen[0]["as_guest"], true);
    assert_eq!(seen[0]["rsvp"], "needs_action");
    let organizer = view_query(&app, &ada, range).await;
    assert_eq!(organizer[0]["as_guest"], false);

    // `calendar_ids` still means those calendars only.
    let own_only = view_query(&app, &bob, &format!("{range}&calendar_ids={bob_cal}")).await;
    assert!(own_only.is_empty(), "{own_only:?}");

    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{meeting}/rsvp"),
            Some(bob.access_token()),
            Some(json!({ "response": "declined" })),
        )
        .await;
    assert_eq!(status, 200);
    let after_declining = view_query(&app, &bob, range).await;
    assert_eq!(after_declining.len(), 1, "{after_declining:?}");
    assert_eq!(after_declining[0]["title"], "Review");
}

#[tokio::test]
async fn a_guests_view_never_names_other_schedules_of_the_hosts_calendar() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let ada_cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let meeting = id_of(
        &schedule(
            &app,
            &ada,
            ada_cal,
            json!({ "title": "1:1", "start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z" }),
        )
        .await,
    );
    // A rule with more occurrences between the range and its materialized span (a month back
    // from now) than one materialization step holds: hourly for over 7 months.
    let private = id_of(
        &schedule(
            &app,
            &ada,
            ada_cal,
            json!({ "title": "Private", "start": "2026-04-01T00:00:00Z", "end": "2026-04-01T00:01:00Z",
                    "recurrence": { "rrule": "FREQ=HOURLY" } }),
        )
        .await,
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{meeting}/guests"),
            Some(ada.access_token()),
            Some(json!({ "user_id": bob.user_id() })),
        )
        .await;
    assert_eq!(status, 201);
    let range = "time_min=2026-04-01T00:00:00Z&time_max=2026-04-08T00:00:00Z";
    let (status, hosts) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?{range}"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        hosts["incomplete_schedules"]
            .to_string()
            .contains(&private.to_string()),
        "{}",
        hosts["incomplete_schedules"]
    );
    let (status, guests) = app
        .call(
            Method::GET,
            &format!("/api/v1/instances?{range}"),
            Some(bob.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !guests.to_string().contains(&private.to_string()),
        "{}",
        guests["incomplete_schedules"]
    );
    assert!(guests["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["schedule_id"] == meeting.to_string()));
}

#[tokio::test]
async fn free_busy_merges_overlapping_events_in_the_google_shape() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    for (start, end) in [
        ("09:00", "10:00"),
        ("09:30", "11:00"),
        ("11:00", "11:30"),
        ("14:00", "15:00"),
    ] {
        schedule(
            &app,
            &ada,
            cal,
            json!({ "start": format!("2026-04-01T{start}:00Z"),
                                          "end": format!("2026-04-01T{end}:00Z") }),
        )
        .await;
    }
    let hidden = Uuid::new_v4();
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/freebusy",
            Some(ada.access_token()),
            Some(
                json!({ "time_min": "2026-04-01T00:00:00Z", "time_max": "2026-04-01T14:30:00Z",
                           "calendar_ids": [cal, hidden] }),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["time_min"], "2026-04-01T00:00:00Z");
    assert_eq!(
        body["calendars"][cal.to_string()]["busy"],
        json!([{ "start": "2026-04-01T09:00:00Z", "end": "2026-04-01T11:30:00Z" },
               { "start": "2026-04-01T14:00:00Z", "end": "2026-04-01T14:30:00Z" }])
    );
    assert_eq!(
        body["calendars"][hidden.to_string()]["errors"][0]["reason"],
        "not_found"
    );
}

#[tokio::test]
async fn cached_free_busy_changes_after_an_edit() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let day = (Utc::now() + Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    let id = id_of(
        &schedule(
            &app,
            &ada,
            cal,
            json!({
        "start": format!("{day}T09:00:00Z"), "end": format!("{day}T10:00:00Z") }),
        )
        .await,
    );
    let (from, to) = (format!("{day}T00:00:00Z"), format!("{day}T23:00:00Z"));
    let first = busy(&app, &ada, cal, &from, &to).await;
    assert_eq!(first[0]["start"], format!("{day}T09:00:00Z"));
    if let Ok(url) = std::env::var("REDIS_URL") {
        // The first query filled the cache; a second is answered from it.
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let generation: Option<i64> = redis::cmd("GET")
            .arg(format!("potentia:calendar:{cal}:fb_gen"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let window: Option<String> = redis::cmd("GET")
            .arg(format!(
                "potentia:calendar:{cal}:fb:{}:window",
                generation.unwrap_or(0)
            ))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(window.is_some(), "the cache was not filled");
    }
    assert_eq!(busy(&app, &ada, cal, &from, &to).await, first);
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/schedules/{id}"),
            Some(ada.access_token()),
            Some(json!({ "start": format!("{day}T15:00:00Z"), "end": format!("{day}T16:30:00Z") })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        busy(&app, &ada, cal, &from, &to).await,
        json!([{ "start": format!("{day}T15:00:00Z"), "end": format!("{day}T16:30:00Z") }])
    );
}

#[tokio::test]
async fn conflicts_are_reported_and_refused_with_strict() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let existing = id_of(
        &schedule(
            &app,
            &ada,
            cal,
            json!({ "title": "Review",
        "start": "2026-04-01T09:00:00Z", "end": "2026-04-01T10:00:00Z" }),
        )
        .await,
    );
    let write = schedule(
        &app,
        &ada,
        cal,
        json!({ "title": "Overlap",
        "start": "2026-04-01T09:30:00Z", "end": "2026-04-01T10:30:00Z" }),
    )
    .await;
    assert_eq!(write["conflicts"][0]["schedule_id"], existing.to_string());
    let touching = schedule(
        &app,
        &ada,
        cal,
        json!({
        "start": "2026-04-01T10:30:00Z", "end": "2026-04-01T11:00:00Z" }),
    )
    .await;
    assert_eq!(touching["conflicts"], json!([]));
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/schedules"),
            ada.access_token(),
        )
        .json(&json!({ "title": "Strict", "strict": true,
                       "start": "2026-04-01T09:45:00Z", "end": "2026-04-01T09:50:00Z" }))
        .send()
        .await
        .unwrap();
    expect_problem(response, 409, "schedule_conflict").await;
    let strict_rows: i64 =
        sqlx::query_scalar("select count(*) from schedules where title = 'Strict'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(strict_rows, 0);
}

#[tokio::test]
async fn a_guest_can_answer_and_a_reader_who_is_not_a_guest_cannot() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let eve = app.sign_up("eve@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/subscriptions"),
            Some(ada.access_token()),
            Some(json!({ "user_id": eve.user_id(), "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 201);
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    app.verify_email("bob@example.org").await;
    let (status, guest) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{id}/guests"),
            Some(ada.access_token()),
            Some(json!({ "email": "BOB@example.org", "optional": true })),
        )
        .await;
    assert_eq!(status, 201, "{guest}");
    // Tied to Bob's verified account, which Ada (who shares nothing with him) is not told.
    assert_eq!(guest["user_id"], Value::Null);
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{id}/rsvp"),
            Some(bob.access_token()),
            Some(json!({ "response": "tentative" })),
        )
        .await;
    assert_eq!((status, answer["rsvp"].as_str()), (200, Some("tentative")));
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{id}"),
            Some(bob.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "a guest sees the schedule");
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/schedules/{id}/rsvp"),
            eve.access_token(),
        )
        .json(&json!({ "response": "accepted" }))
        .send()
        .await
        .unwrap();
    expect_problem(response, 403, "not_a_guest").await;
}

#[tokio::test]
async fn a_reminder_override_changes_only_that_users_reminders() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let mut body = standup();
    body["reminders"] = json!([30, 10]);
    let id = id_of(&schedule(&app, &ada, cal, body).await);
    app.call(
        Method::POST,
        &format!("/api/v1/schedules/{id}/guests"),
        Some(ada.access_token()),
        Some(json!({ "user_id": bob.user_id() })),
    )
    .await;
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/schedules/{id}/reminders"),
            Some(bob.access_token()),
            Some(json!({ "minutes": [1440] })),
        )
        .await;
    assert_eq!(status, 200);
    let get = |token: String| {
        let request = app.authed(Method::GET, &format!("/api/v1/schedules/{id}"), &token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(
        get(bob.access_token().to_owned()).await["my_reminders"],
        json!([1440])
    );
    assert_eq!(
        get(ada.access_token().to_owned()).await["my_reminders"],
        json!([10, 30])
    );
}

#[tokio::test]
async fn ids_from_another_calendar_or_schedule_are_not_found() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let mallory = app.sign_up("mallory@example.org").await;
    let ada_cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let ada_schedule = id_of(&schedule(&app, &ada, ada_cal, standup()).await);
    let mallory_cal = calendar(&app, &mallory, json!({ "name": "Mallory" })).await;
    let mallory_schedule = id_of(&schedule(&app, &mallory, mallory_cal, standup()).await);
    let (_, guests) = app
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{ada_schedule}/guests"),
            Some(ada.access_token()),
            None,
        )
        .await;
    let ada_guest = guests["items"][0]["id"].as_str().unwrap().to_owned();
    let token = mallory.access_token();
    for (method, path) in [
        (Method::GET, format!("/api/v1/calendars/{ada_cal}")),
        (Method::GET, format!("/api/v1/calendars/{ada_cal}/schedules")),
        (Method::GET, format!("/api/v1/schedules/{ada_schedule}")),
        (Method::DELETE, format!("/api/v1/schedules/{ada_schedule}")),
        // A guest id of Ada's schedule with Mallory's own schedule.
        (Method::DELETE, format!("/api/v1/schedules/{mallory_schedule}/guests/{ada_guest}")),
        (Method::DELETE, format!("/api/v1/calendars/{mallory_cal}/subscriptions/{}", ada.user_id())),
        (Method::GET, format!("/api/v1/instances?time_min=2026-03-01T00:00:00Z&time_max=2026-03-10T00:00:00Z&calendar_ids={ada_cal}")),
        (Method::GET, format!("/api/v1/calendars/{}", Uuid::new_v4())),
        (Method::GET, format!("/api/v1/schedules/{}", Uuid::new_v4())),
    ] {
        let response = app.authed(method.clone(), &path, token).send().await.unwrap();
        expect_problem(response, 404, "not_found").await;
    }
    let own = view(
        &app,
        &mallory,
        "2026-03-01T00:00:00Z",
        "2026-03-10T00:00:00Z",
    )
    .await;
    assert!(own
        .iter()
        .all(|i| i["calendar_id"] == mallory_cal.to_string()));
}

#[tokio::test]
async fn a_deleted_schedule_id_is_stale_and_not_found() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/schedules/{id}"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let response = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/schedules/{id}"),
            ada.access_token(),
        )
        .json(&json!({ "title": "Ghost" }))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn schedule_lists_are_cursor_paginated() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    for hour in 10..13 {
        schedule(
            &app,
            &ada,
            cal,
            json!({ "start": format!("2026-04-01T{hour}:00:00Z"),
                                          "end": format!("2026-04-01T{hour}:30:00Z") }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/calendars/{cal}/schedules?limit=2");
    loop {
        let (status, page) = app
            .call(Method::GET, &path, Some(ada.access_token()), None)
            .await;
        assert_eq!(status, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/calendars/{cal}/schedules?limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
}

/// The feed URL of a calendar (turning the feed on).
async fn feed_path(app: &TestApp, user: &Session, cal: Uuid) -> String {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/feed-token"),
            Some(user.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 201);
    body["path"].as_str().unwrap().to_owned()
}

async fn fetch_feed(app: &TestApp, path: &str) -> (u16, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn imported_alarms_become_reminders_and_the_feed_exports_them() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\n\
               UID:dentist@example.org\r\nDTSTAMP:20260101T000000Z\r\n\
               DTSTART:20260310T090000Z\r\nDTEND:20260310T100000Z\r\nSUMMARY:Dentist\r\n\
               BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Dentist\r\nTRIGGER:-PT15M\r\n\
               END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/import"),
            ada.access_token(),
        )
        .header("content-type", "text/calendar")
        .body(ics)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, schedules) = app
        .call(
            Method::GET,
            &format!("/api/v1/calendars/{cal}/schedules"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(schedules["items"][0]["reminders"], json!([15]));

    let (status, token) = app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/feed-token"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let path = token["path"].as_str().unwrap();
    assert_eq!(token["url"], format!("https://api.example{path}"));
    let (_, feed) = fetch_feed(&app, path).await;
    assert!(
        feed.contains("BEGIN:VALARM\r\nACTION:DISPLAY\r\n"),
        "{feed}"
    );
    assert!(feed.contains("TRIGGER:-PT15M\r\n"), "{feed}");
}

#[tokio::test]
async fn a_rotated_feed_token_retires_the_old_url() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let old = feed_path(&app, &ada, cal).await;
    assert_eq!(fetch_feed(&app, &old).await.0, 200);
    let new = feed_path(&app, &ada, cal).await;
    assert_eq!(fetch_feed(&app, &old).await.0, 404);
    assert_eq!(fetch_feed(&app, &new).await.0, 200);
    app.call(
        Method::DELETE,
        &format!("/api/v1/calendars/{cal}/feed-token"),
        Some(ada.access_token()),
        None,
    )
    .await;
    assert_eq!(fetch_feed(&app, &new).await.0, 404);
}

#[tokio::test]
async fn a_feed_stops_when_its_maker_loses_the_owner_role() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let team = app.create_workspace(ada.access_token(), "Team").await;
    app.add_member(ada.access_token(), team, &bob, "admin")
        .await;
    let cal = calendar(&app, &ada, json!({ "name": "Team", "workspace_id": team })).await;
    // Bob, a workspace admin, owns the team's calendars and turns the feed on.
    let path = feed_path(&app, &bob, cal).await;
    assert_eq!(fetch_feed(&app, &path).await.0, 200);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workspaces/{team}/members/{}", bob.user_id()),
            Some(ada.access_token()),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        fetch_feed(&app, &path).await.0,
        404,
        "a member may not turn a feed on"
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workspaces/{team}/members/{}", bob.user_id()),
            Some(ada.access_token()),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        fetch_feed(&app, &path).await.0,
        200,
        "the role is back, and the feed with it"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/workspaces/{team}/members/{}", bob.user_id()),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        fetch_feed(&app, &path).await.0,
        404,
        "a former member's feed is gone"
    );
}

const PYTHON_READER: &str = r#"
import json, sys
import icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.read())
out = []
for ev in cal.walk("VEVENT"):
    start = ev.decoded("DTSTART")
    rid = ev.get("RECURRENCE-ID")
    out.append({
        "uid": str(ev.get("UID")),
        "summary": str(ev.get("SUMMARY", "")),
        "start": start.isoformat(),
        "utc": start.astimezone(__import__("datetime").timezone.utc).isoformat() if hasattr(start, "hour") else None,
        "rrule": ev.get("RRULE").to_ical().decode() if ev.get("RRULE") else None,
        "exdates": sorted(d.dt.isoformat() for e in (ev.get("EXDATE") if isinstance(ev.get("EXDATE"), list) else [ev.get("EXDATE")] if ev.get("EXDATE") else []) for d in e.dts),
        "recurrence_id": rid.dt.isoformat() if rid else None,
        "attendees": sorted(str(a) for a in (ev.get("ATTENDEE") if isinstance(ev.get("ATTENDEE"), list) else [ev.get("ATTENDEE")] if ev.get("ATTENDEE") else [])),
    })
print(json.dumps(sorted(out, key=lambda e: (e["uid"], e["recurrence_id"] or ""))))
"#;

/// The interpreter with `icalendar`, or `None` (a failure under POTENTIA_REQUIRE_PY_ICALENDAR=1).
fn python() -> Option<String> {
    let python = std::env::var("POTENTIA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let works = Command::new(&python)
        .args(["-c", "import icalendar"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    assert!(
        std::env::var("POTENTIA_REQUIRE_PY_ICALENDAR").as_deref() != Ok("1"),
        "POTENTIA_REQUIRE_PY_ICALENDAR=1 but `{python}` cannot import icalendar"
    );
    eprintln!("skipping the Python icalendar check: `{python}` cannot import icalendar");
    None
}

#[tokio::test]
async fn the_ics_feed_is_read_back_by_python_icalendar() {
    let Some(python) = python() else { return };
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(
        &app,
        &ada,
        json!({ "name": "Ada", "time_zone": "Europe/London" }),
    )
    .await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    app.call(
        Method::PUT,
        &format!("/api/v1/schedules/{id}/exceptions"),
        Some(ada.access_token()),
        Some(json!({ "original_start": "2026-03-04T09:00:00", "cancelled": true })),
    )
    .await;
    app.call(Method::PUT, &format!("/api/v1/schedules/{id}/exceptions"), Some(ada.access_token()),
             Some(json!({ "original_start": "2026-03-05T09:00:00", "title": "Moved", "start": "2026-03-05T20:00:00Z" })))
        .await;
    app.call(
        Method::POST,
        &format!("/api/v1/schedules/{id}/guests"),
        Some(ada.access_token()),
        Some(json!({ "email": "guest@example.org" })),
    )
    .await;
    schedule(
        &app,
        &ada,
        cal,
        json!({ "title": "Holiday", "start_date": "2026-08-03", "end_date": "2026-08-08" }),
    )
    .await;
    let path = feed_path(&app, &ada, cal).await;
    let (status, text) = fetch_feed(&app, &path).await;
    assert_eq!(status, 200);
    let mut child = Command::new(python)
        .args(["-c", PYTHON_READER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Value = serde_json::from_slice(&output.stdout).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    let holiday = events.iter().find(|e| e["summary"] == "Holiday").unwrap();
    assert_eq!(holiday["start"], "2026-08-03");
    let series = events
        .iter()
        .find(|e| e["summary"] == "Standup" && e["recurrence_id"].is_null())
        .unwrap();
    assert_eq!(series["start"], "2026-03-02T09:00:00-05:00");
    assert_eq!(series["rrule"], "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR");
    assert_eq!(series["exdates"], json!(["2026-03-04T09:00:00-05:00"]));
    assert!(series["attendees"]
        .as_array()
        .unwrap()
        .contains(&json!("mailto:guest@example.org")));
    let moved = events.iter().find(|e| e["summary"] == "Moved").unwrap();
    assert_eq!(moved["recurrence_id"], "2026-03-05T09:00:00-05:00");
    assert_eq!(moved["utc"], "2026-03-05T20:00:00+00:00");
}

async fn import(app: &TestApp, user: &Session, cal: Uuid, file: &str) -> (u16, Value) {
    let path = format!(
        "{}/../calendar/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).unwrap();
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/import"),
            user.access_token(),
        )
        .header("content-type", "text/calendar")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_google_export_imports_series_exceptions_and_all_day_events() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(
        &app,
        &ada,
        json!({ "name": "Ada", "time_zone": "Europe/London" }),
    )
    .await;
    let (status, report) = import(&app, &ada, cal, "google_calendar_export.ics").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["created"].as_u64(), report["exceptions"].as_u64()),
        (Some(5), Some(1)),
        "{report}"
    );
    let items = view(&app, &ada, "2024-01-15T00:00:00Z", "2024-01-20T00:00:00Z").await;
    let standups: Vec<(&str, &str)> = items
        .iter()
        .filter(|i| i["title"].as_str().unwrap().starts_with("Standup"))
        .map(|i| {
            (
                i["original_start"].as_str().unwrap(),
                i["start"].as_str().unwrap(),
            )
        })
        .collect();
    // Monday 15th is an EXDATE; Wednesday 17th moved to 11:30; Friday 19th as usual.
    assert_eq!(
        standups,
        [
            ("2024-01-17T10:00:00", "2024-01-17T11:30:00Z"),
            ("2024-01-19T10:00:00", "2024-01-19T10:00:00Z")
        ]
    );
    let yearly = view(&app, &ada, "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z").await;
    assert!(
        yearly
            .iter()
            .any(|i| i["title"] == "Sam's birthday" && i["original_start"] == "2025-06-12"),
        "{yearly:?}"
    );
    let (status, again) = import(&app, &ada, cal, "google_calendar_export.ics").await;
    assert_eq!(
        (status, again["updated"].as_u64(), again["created"].as_u64()),
        (200, Some(5), Some(0))
    );
}

#[tokio::test]
async fn an_outlook_file_with_windows_zone_names_imports_in_iana_zones() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let (status, report) = import(&app, &ada, cal, "outlook_windows_tzids.ics").await;
    assert_eq!(status, 200, "{report}");
    assert!(report["created"].as_u64().unwrap() >= 1, "{report}");
    let (_, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/calendars/{cal}/schedules?limit=100"),
            Some(ada.access_token()),
            None,
        )
        .await;
    for schedule in page["items"].as_array().unwrap() {
        if let Some(zone) = schedule["time_zone"].as_str() {
            assert!(
                zone.contains('/') || zone == "UTC",
                "not an IANA zone: {zone}"
            );
        }
    }
}

#[tokio::test]
async fn an_import_that_is_not_icalendar_is_a_400() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/import"),
            ada.access_token(),
        )
        .header("content-type", "text/calendar")
        .body("this is not a calendar")
        .send()
        .await
        .unwrap();
    expect_problem(response, 400, "invalid_icalendar").await;
}

async fn invite_guest(app: &TestApp, user: &Session, schedule: Uuid, body: Value) -> Value {
    let (status, guest) = app
        .call(
            Method::POST,
            &format!("/api/v1/schedules/{schedule}/guests"),
            Some(user.access_token()),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{guest}");
    guest
}

#[tokio::test]
async fn an_unanswered_invitation_blocks_the_guest_only_when_the_organizer_shares_a_workspace() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let ada_cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let meeting = id_of(
        &schedule(
            &app,
            &ada,
            ada_cal,
            json!({ "title": "1:1", "start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z" }),
        )
        .await,
    );
    invite_guest(&app, &ada, meeting, json!({ "user_id": bob.user_id() })).await;
    assert_eq!(
        user_busy(&app, &bob).await,
        json!([]),
        "a stranger's invitation"
    );
    let team = app.create_workspace(ada.access_token(), "Team").await;
    app.add_member(ada.access_token(), team, &bob, "member")
        .await;
    assert_eq!(
        user_busy(&app, &bob).await,
        json!([{ "start": "2026-04-01T12:00:00Z", "end": "2026-04-01T13:00:00Z" }]),
        "a colleague's invitation"
    );
}

#[tokio::test]
async fn a_guest_invited_by_id_is_answered_without_their_address() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let guest = invite_guest(&app, &ada, id, json!({ "user_id": bob.user_id() })).await;
    assert_eq!(guest["user_id"], bob.user_id().to_string());
    assert_eq!(guest["email"], Value::Null);
    let (_, listed) = app
        .call(
            Method::GET,
            &format!("/api/v1/schedules/{id}/guests"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert!(!listed.to_string().contains("bob@example.org"), "{listed}");
}

#[tokio::test]
async fn inviting_an_address_answers_the_same_whether_an_account_has_it_or_not() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    app.sign_up("bob@example.org").await;
    app.verify_email("bob@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let known = invite_guest(&app, &ada, id, json!({ "email": "bob@example.org" })).await;
    let unknown = invite_guest(&app, &ada, id, json!({ "email": "nobody@example.org" })).await;
    for field in ["user_id", "rsvp", "organizer", "optional", "display_name"] {
        assert_eq!(known[field], unknown[field], "{field}");
    }
    assert_eq!(known["user_id"], Value::Null);
}

#[tokio::test]
async fn an_import_never_answers_for_an_existing_user_nor_names_them_organizer() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    app.verify_email("bob@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let file = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
        UID:forced@test\r\nDTSTART:20260401T120000Z\r\nDTEND:20260401T130000Z\r\nSUMMARY:Forced\r\n\
        ORGANIZER:mailto:bob@example.org\r\n\
        ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.org\r\n\
        ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
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
    let rows: Vec<(Option<Uuid>, Option<String>, String, bool)> = sqlx::query_as(
        "select g.user_id, g.email, g.rsvp, g.organizer from schedule_guests g order by g.email",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                Some(bob.user_id()),
                Some("bob@example.org".into()),
                "needs_action".into(),
                false
            ),
            (
                None,
                Some("carol@example.org".into()),
                "accepted".into(),
                false
            ),
        ]
    );
    let organizer: Option<Uuid> =
        sqlx::query_scalar("select organizer_id from schedules where uid = 'forced@test'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(organizer, None);
    assert_eq!(user_busy(&app, &bob).await, json!([]));
}

#[tokio::test]
async fn subscribing_a_stranger_by_id_reveals_neither_their_address_nor_their_account() {
    let app = app().await;
    let ada = app.sign_up("ada@example.org").await;
    let bob = app.sign_up("bob@example.org").await;
    app.verify_email("bob@example.org").await;
    let cal = calendar(&app, &ada, json!({ "name": "Ada" })).await;
    let (status, subscription) = app
        .call(
            Method::POST,
            &format!("/api/v1/calendars/{cal}/subscriptions"),
            Some(ada.access_token()),
            Some(json!({ "user_id": bob.user_id(), "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 201, "{subscription}");
    assert_eq!(subscription["email"], Value::Null);
    let (_, listed) = app
        .call(
            Method::GET,
            &format!("/api/v1/calendars/{cal}/subscriptions"),
            Some(ada.access_token()),
            None,
        )
        .await;
    assert!(!listed.to_string().contains("bob@example.org"), "{listed}");
    // The subscription Ada made alone is no relation: Bob's account stays unnamed.
    let id = id_of(&schedule(&app, &ada, cal, standup()).await);
    let guest = invite_guest(&app, &ada, id, json!({ "email": "bob@example.org" })).await;
    assert_eq!(guest["user_id"], Value::Null);
    // Bob himself sees his own address.
    let (_, bobs_view) = app
        .call(
            Method::GET,
            &format!("/api/v1/calendars/{cal}/subscriptions"),
            Some(bob.access_token()),
            None,
        )
        .await;
    assert_eq!(bobs_view["items"][0]["email"], "bob@example.org");
}
