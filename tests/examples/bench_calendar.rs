//! Calendar benchmark against a real Postgres (and Redis when `REDIS_URL` is set):
//!
//! 1. materialize 10 000 recurring schedules (a mix of daily, weekday, weekly, monthly and
//!    yearly rules in five zones) into `schedule_instances` up to the 12-month horizon, timed;
//! 2. free/busy over 20 calendars for a year through the HTTP API, p50/p99 over repeated
//!    queries, uncached (a server without Redis) and cached (a server with Redis, after the
//!    first query filled it).
//!
//! ```sh
//! source scripts/env.sh
//! cargo run --release -p potentia-tests --example bench_calendar [-- --schedules 10000 --queries 50]
//! ```
//!
//! The expansion-versus-python-dateutil ratio is `calendar/examples/bench_expansion.rs`.

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use chrono_tz::Tz;
use potentia_calendar::schedule::{Series, Timing};
use potentia_server::calendars::db::ScheduleFields;
use potentia_server::calendars::{db, materialize};
use potentia_tests::{test_settings, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const ZONES: [Tz; 5] = [
    Tz::UTC,
    Tz::Europe__London,
    Tz::America__New_York,
    Tz::America__Sao_Paulo,
    Tz::Asia__Tokyo,
];

const RULES: [&str; 10] = [
    "FREQ=WEEKLY;BYDAY=MO",
    "FREQ=WEEKLY;BYDAY=TU,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR",
    "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=DAILY",
    "FREQ=MONTHLY;BYDAY=2TU",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=YEARLY",
    "FREQ=WEEKLY;BYDAY=FR;COUNT=40",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let schedules = arg("--schedules", 10_000);
    let queries = arg("--queries", 50);
    let calendars_n = 20;

    let app = TestApp::spawn().await;
    let user = app.sign_up("bench@example.org").await;
    let token = user.access_token().to_owned();
    let mut calendars = Vec::new();
    for i in 0..calendars_n {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/calendars",
                Some(&token),
                Some(json!({ "name": format!("Calendar {i}"), "time_zone": ZONES[i % ZONES.len()].name() })),
            )
            .await;
        anyhow::ensure!(status == 201, "calendar: {body}");
        calendars.push(body["id"].as_str().unwrap_or_default().parse::<Uuid>()?);
    }

    // 1. Materialization.
    let now = Utc::now();
    let base = now.date_naive() - Duration::days(60);
    let started = Instant::now();
    let mut instances = 0u64;
    let mut tx = app.db.begin().await?;
    for i in 0..schedules {
        let calendar = calendars[i % calendars.len()];
        let zone = ZONES[i % ZONES.len()];
        let placement = ZONES[(i % calendars.len()) % ZONES.len()];
        let day = base + Duration::days((i % 28) as i64);
        let hour = 8 + (i % 10) as u32;
        let local = day
            .and_hms_opt(hour, if i % 2 == 0 { 0 } else { 30 }, 0)
            .unwrap_or_default();
        let start = potentia_calendar::timezone::resolve_local(local, zone);
        let timing = Timing::Timed {
            start,
            end: start + Duration::minutes(30 + 15 * (i % 4) as i64),
            zone,
        };
        let series = Series::new(timing, &[RULES[i % RULES.len()]], &[], &[])?;
        let fields = ScheduleFields {
            uid: format!("bench-{i}"),
            title: format!("Event {i}"),
            description: None,
            location: None,
            all_day: false,
            start_at: Some(start),
            end_at: timing_end(&timing),
            time_zone: Some(zone.name().to_owned()),
            start_date: None,
            end_date: None,
            status: "confirmed".into(),
            transparency: "opaque".into(),
            rrule: series.rrule_texts(),
            rdate: Vec::new(),
            exdate: Vec::new(),
            reminders: vec![10],
            organizer_id: Some(user.user_id()),
            organizer_email: None,
        };
        let window = materialize::initial_window(&series, placement, now);
        let record = db::insert_schedule(
            &mut *tx,
            Uuid::now_v7(),
            calendar,
            &fields,
            None,
            window,
            user.user_id(),
        )
        .await?;
        instances += materialize::rematerialize(&mut tx, &record, placement, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .inserted;
        if i % 500 == 499 {
            tx.commit().await?;
            tx = app.db.begin().await?;
        }
    }
    tx.commit().await?;
    let materialize_time = started.elapsed();
    sqlx::query("analyze").execute(&app.db).await?;
    println!("materialize: {schedules} recurring schedules over 20 calendars -> {instances} instances in {:.2} s ({:.0} schedules/s, {:.0} instances/s)",
        materialize_time.as_secs_f64(),
        schedules as f64 / materialize_time.as_secs_f64(),
        instances as f64 / materialize_time.as_secs_f64());

    // 2. Free/busy over the 20 calendars for a year.
    let time_min = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let time_max = time_min + Duration::days(364);
    let body = json!({ "time_min": time_min, "time_max": time_max, "calendar_ids": calendars });
    let run = |server: &TestApp, label: &'static str| {
        let request = server
            .authed(Method::POST, "/api/v1/freebusy", &token)
            .json(&body);
        async move {
            let mut samples = Vec::with_capacity(queries);
            let mut intervals = 0;
            for _ in 0..queries {
                let request = request
                    .try_clone()
                    .ok_or_else(|| anyhow::anyhow!("clone"))?;
                let started = Instant::now();
                let response = request.send().await?;
                anyhow::ensure!(response.status() == 200, "{label}: {}", response.status());
                let answer: serde_json::Value = response.json().await?;
                samples.push(started.elapsed());
                intervals = answer["calendars"].as_object().map_or(0, |c| {
                    c.values()
                        .map(|v| v["busy"].as_array().map_or(0, Vec::len))
                        .sum::<usize>()
                });
            }
            samples.sort();
            println!(
                "free/busy {label}: 20 calendars x 364 days, {intervals} merged busy intervals; p50 {:.1} ms, p99 {:.1} ms (n={queries})",
                ms(percentile(&samples, 50.0)),
                ms(percentile(&samples, 99.0))
            );
            anyhow::Ok(())
        }
    };
    run(&app, "uncached (Postgres)").await?;
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            let mut settings = test_settings(&database_url(&app).await?);
            settings.redis_url = Some(url);
            let cached = TestApp::start(settings, app.db.clone(), None).await;
            // The first query fills the cache.
            let warm = Instant::now();
            cached
                .authed(Method::POST, "/api/v1/freebusy", &token)
                .json(&body)
                .send()
                .await?;
            println!(
                "free/busy cache fill (first query): {:.1} ms",
                ms(warm.elapsed())
            );
            run(&cached, "cached (Redis)").await?;
        }
        Err(_) => println!("free/busy cached: skipped (REDIS_URL is not set)"),
    }
    Ok(())
}

fn timing_end(timing: &Timing) -> Option<chrono::DateTime<Utc>> {
    match timing {
        Timing::Timed { end, .. } => Some(*end),
        Timing::AllDay { .. } => None,
    }
}

/// The URL of the database the app runs on.
async fn database_url(app: &TestApp) -> anyhow::Result<String> {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&app.db)
        .await?;
    let admin = std::env::var("DATABASE_URL")?;
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').unwrap_or(base.len());
    Ok(match query {
        Some(query) => format!("{}/{name}?{query}", &base[..cut]),
        None => format!("{}/{name}", &base[..cut]),
    })
}
