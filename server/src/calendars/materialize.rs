//! Materialized instances: each schedule's occurrences (exceptions applied) are rows of
//! `schedule_instances`, kept for the span of original starts `[materialized_from,
//! materialized_until)` of its row.
//!
//! * On create and on every edit the span is rebuilt from scratch ([`initial_window`]): from
//!   the first occurrence for a series with an end, from [`LOOKBACK`] before now (or the
//!   series start, if later) for an open one, to [`HORIZON`] after now (and at least past the
//!   first occurrence).
//! * A background job ([`run_horizon_job`]) moves the end of open series forward as time
//!   passes; a query past either end extends that schedule first ([`cover`]).
//! * One step expands at most [`MATERIALIZE_LIMITS`] occurrences; a rule with more in a span
//!   is materialized up to where the cap stopped it, and the rest follows in later steps.
//! * **Bounds.** Nothing is materialized more than [`MAX_DISTANCE`] from now (views and
//!   free/busy may not ask past it either), but the first day of a schedule that starts later, and a calendar holds at most
//!   [`MAX_INSTANCES_PER_CALENDAR`] instances (`calendars.instance_count`, kept by triggers):
//!   a create or edit that would pass it is refused (409 `calendar_full`), and an extension
//!   that would is left undone (the schedule is reported incomplete).
//!
//! [`MATERIALIZE_LIMITS`]: potentia_calendar::schedule::MATERIALIZE_LIMITS

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::schedule::{PlannedInstance, Series, Timing};
use potentia_calendar::timezone::{parse_zone, resolve_local};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::db::{self, ExceptionRecord, InstanceBatch, ScheduleRecord, Window};
use crate::error::ApiError;

/// How far ahead of now instances are kept.
pub const HORIZON: Duration = Duration::days(365);
/// How far before now a new or edited schedule's instances start (older ones are added when a
/// query reaches them).
pub const LOOKBACK: Duration = Duration::days(31);
/// How far from now views, free/busy and materialization reach, either way (about 5 years).
pub const MAX_DISTANCE: Duration = Duration::days(1_830);
/// The most instances one calendar stores.
pub const MAX_INSTANCES_PER_CALENDAR: i64 = 500_000;
/// The most schedules one calendar holds.
pub const MAX_SCHEDULES_PER_CALENDAR: i64 = 20_000;
/// How often the horizon job runs.
pub const HORIZON_JOB_INTERVAL: StdDuration = StdDuration::from_secs(3600);
/// Schedules the horizon job reads per batch (each is extended in its own transaction).
const HORIZON_BATCH: i64 = 200;

/// The zone of a calendar (stored values were validated; UTC should one ever not parse).
pub fn zone_of(name: &str) -> Tz {
    parse_zone(name).unwrap_or(Tz::UTC)
}

/// The stored timing of a schedule.
pub fn timing_of(record: &ScheduleRecord) -> Result<Timing, ApiError> {
    match (
        record.all_day,
        record.start_at,
        record.end_at,
        record.start_date,
        record.end_date,
    ) {
        (false, Some(start), Some(end), _, _) => {
            let zone = parse_zone(record.time_zone.as_deref().unwrap_or("UTC"))
                .map_err(|e| ApiError::Internal(format!("schedule {}: {e}", record.id)))?;
            Ok(Timing::Timed { start, end, zone })
        }
        (true, _, _, Some(start), Some(end)) => Ok(Timing::AllDay { start, end }),
        _ => Err(ApiError::Internal(format!(
            "schedule {} has inconsistent timing columns",
            record.id
        ))),
    }
}

/// The stored series of a schedule.
pub fn series_of(record: &ScheduleRecord) -> Result<Series, ApiError> {
    Series::new(
        timing_of(record)?,
        &record.rrule,
        &record.rdate,
        &record.exdate,
    )
    .map_err(|e| ApiError::Internal(format!("schedule {}: {e}", record.id)))
}

/// The span a new or edited series is materialized over.
///
/// A series with an end (a single event among them) is materialized from its first
/// occurrence, so past events are there for views and conflict checks; an open one from
/// [`LOOKBACK`] before now (older instances are added when a query reaches them).
pub fn initial_window(series: &Series, placement: Tz, now: DateTime<Utc>) -> Window {
    let first = series.first_start(placement);
    let until = (now + HORIZON).max(first + Duration::days(1));
    let series_end = series.series_end(placement);
    let from = if series_end.is_some() {
        first.max(now - MAX_DISTANCE)
    } else {
        first.max(now - LOOKBACK)
    };
    Window {
        from: from.min(until),
        until,
        series_end,
    }
}

/// When an exception's occurrence takes place.
fn exception_period(
    exception: &ExceptionRecord,
    planned: &PlannedInstance,
    placement: Tz,
) -> (DateTime<Utc>, DateTime<Utc>) {
    match (
        exception.start_at,
        exception.end_at,
        exception.start_date,
        exception.end_date,
    ) {
        (Some(start), Some(end), _, _) => (start, end),
        (_, _, Some(start), Some(end)) => (
            resolve_local(start.and_time(NaiveTime::MIN), placement),
            resolve_local(end.and_time(NaiveTime::MIN), placement),
        ),
        _ => (planned.start, planned.end),
    }
}

fn blocks(status: &str, transparency: &str) -> bool {
    status != "cancelled" && transparency == "opaque"
}

/// Rows for `planned` occurrences with `exceptions` applied (cancelled ones left out).
fn batch_for(
    record: &ScheduleRecord,
    planned: &[PlannedInstance],
    exceptions: &HashMap<NaiveDateTime, &ExceptionRecord>,
    placement: Tz,
) -> InstanceBatch {
    let mut batch = InstanceBatch::default();
    for instance in planned {
        match exceptions.get(&instance.original_start) {
            Some(exception) if exception.cancelled => {}
            Some(exception) => {
                let (start, end) = exception_period(exception, instance, placement);
                let status = exception.status.as_deref().unwrap_or(&record.status);
                let transparency = exception
                    .transparency
                    .as_deref()
                    .unwrap_or(&record.transparency);
                batch.push(
                    instance.original_start,
                    start,
                    end,
                    true,
                    blocks(status, transparency),
                );
            }
            None => batch.push(
                instance.original_start,
                instance.start,
                instance.end,
                false,
                blocks(&record.status, &record.transparency),
            ),
        }
    }
    batch
}

/// What a materialization step did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub inserted: u64,
    /// A cap stopped the expansion before the end of the asked span.
    pub truncated: bool,
}

/// The 409 of a calendar whose instances would pass [`MAX_INSTANCES_PER_CALENDAR`].
fn calendar_full() -> ApiError {
    ApiError::conflict(
        "calendar_full",
        format!(
            "the calendar would hold more than {MAX_INSTANCES_PER_CALENDAR} occurrences; \
             delete schedules or give this one an end"
        ),
    )
}

/// Room left in `calendar_id` for instances.
async fn instance_room(conn: &mut PgConnection, calendar_id: Uuid) -> Result<u64, ApiError> {
    let held = db::instance_count(&mut *conn, calendar_id).await?;
    Ok(u64::try_from(MAX_INSTANCES_PER_CALENDAR - held).unwrap_or(0))
}

/// The 409 of a calendar that would hold more than [`MAX_SCHEDULES_PER_CALENDAR`], when it
/// does (checked after the insert, inside the caller's transaction).
pub async fn check_schedule_count(
    conn: &mut PgConnection,
    calendar_id: Uuid,
) -> Result<(), ApiError> {
    if db::schedule_count(&mut *conn, calendar_id).await? > MAX_SCHEDULES_PER_CALENDAR {
        return Err(ApiError::conflict(
            "calendar_full",
            format!("a calendar holds at most {MAX_SCHEDULES_PER_CALENDAR} schedules"),
        ));
    }
    Ok(())
}

/// Rebuilds every instance of `record` (after create or edit): returns the row with its new
/// span. Refused with 409 `calendar_full` when the calendar would pass its instance bound.
pub async fn rematerialize(
    conn: &mut PgConnection,
    record: &ScheduleRecord,
    placement: Tz,
    now: DateTime<Utc>,
) -> Result<Outcome, ApiError> {
    let series = series_of(record)?;
    let mut window = initial_window(&series, placement, now);
    db::delete_instances(&mut *conn, record.id).await?;
    let exceptions = db::exceptions_of(&mut *conn, record.id).await?;
    let by_original: HashMap<NaiveDateTime, &ExceptionRecord> =
        exceptions.iter().map(|x| (x.original_start, x)).collect();
    let planned = series.expand_window(window.from, window.until, placement);
    let mut batch = batch_for(record, &planned.instances, &by_original, placement);
    // Edited occurrences outside the span are stored too: one may have moved into it.
    for exception in exceptions.iter().filter(|x| !x.cancelled) {
        if batch.original_start.contains(&exception.original_start) {
            continue;
        }
        if let Some(instance) = series.occurrence_at(exception.original_start, placement) {
            let one = batch_for(record, &[instance], &by_original, placement);
            for i in 0..one.len() {
                batch.push(
                    one.original_start[i],
                    one.start[i],
                    one.end[i],
                    one.is_exception[i],
                    one.blocks[i],
                );
            }
        }
    }
    if batch.len() as u64 > instance_room(&mut *conn, record.calendar_id).await? {
        return Err(calendar_full());
    }
    let inserted = db::insert_instances(
        &mut *conn,
        record.id,
        record.calendar_id,
        record.all_day,
        &batch,
    )
    .await?;
    if let Some(complete_until) = planned.complete_until {
        window.until = complete_until;
    }
    db::set_window(&mut *conn, record.id, window).await?;
    Ok(Outcome {
        inserted,
        truncated: planned.complete_until.is_some(),
    })
}

/// Extends the materialized span of a locked `record` to cover occurrences starting in
/// `[from, to)`.
pub async fn extend(
    conn: &mut PgConnection,
    record: &ScheduleRecord,
    placement: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Outcome, ApiError> {
    let series = series_of(record)?;
    let mut window = Window {
        from: record.materialized_from,
        until: record.materialized_until,
        series_end: record.series_end,
    };
    let mut outcome = Outcome::default();
    let mut spans = Vec::new();
    let first = series.first_start(placement);
    if from < window.from && first < window.from {
        spans.push((from.max(first), window.from, true));
    }
    let open = record.series_end.is_none_or(|end| end > window.until);
    if to > window.until && open {
        spans.push((window.until, to, false));
    }
    if spans.is_empty() {
        return Ok(outcome);
    }
    let exceptions = db::exceptions_of(&mut *conn, record.id).await?;
    let by_original: HashMap<NaiveDateTime, &ExceptionRecord> =
        exceptions.iter().map(|x| (x.original_start, x)).collect();
    let mut room = instance_room(&mut *conn, record.calendar_id).await?;
    for (span_from, span_to, backwards) in spans {
        let planned = series.expand_window(span_from, span_to, placement);
        let batch = batch_for(record, &planned.instances, &by_original, placement);
        if batch.len() as u64 > room {
            // The calendar is full: this span stays unmaterialized, the schedule incomplete.
            outcome.truncated = true;
            continue;
        }
        room -= batch.len() as u64;
        outcome.inserted += db::insert_instances(
            &mut *conn,
            record.id,
            record.calendar_id,
            record.all_day,
            &batch,
        )
        .await?;
        match (planned.complete_until, backwards) {
            (None, true) => window.from = span_from,
            (None, false) => window.until = span_to,
            // Going back, a gap would remain: the start stays where it was.
            (Some(_), true) => outcome.truncated = true,
            (Some(complete_until), false) => {
                window.until = complete_until.max(window.until);
                outcome.truncated = true;
            }
        }
    }
    db::set_window(&mut *conn, record.id, window).await?;
    Ok(outcome)
}

/// Makes sure every schedule of `calendar_ids` has its instances over `[from, to)`: those
/// whose span falls short are extended, each in its own short transaction with its row
/// locked. Returns the schedules a cap stopped short.
pub async fn cover(
    pool: &PgPool,
    calendar_ids: &[Uuid],
    zones: &HashMap<Uuid, Tz>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Uuid>, ApiError> {
    // Long occurrences that start before `from` overlap it too; a day of slack covers all-day
    // and overnight events, the usual long ones.
    let now = Utc::now();
    let from = (from - Duration::days(1)).max(now - MAX_DISTANCE);
    let to = to.min(now + MAX_DISTANCE);
    if from >= to {
        return Ok(Vec::new());
    }
    let candidates = db::schedules_to_extend(pool, calendar_ids, from, to).await?;
    let mut truncated = Vec::new();
    for candidate in candidates {
        let mut tx = pool.begin().await?;
        let Some(record) = db::lock_schedule(&mut tx, candidate.id).await? else {
            continue;
        };
        let placement = zones.get(&record.calendar_id).copied().unwrap_or(Tz::UTC);
        let outcome = extend(&mut tx, &record, placement, from, to).await?;
        tx.commit().await?;
        if outcome.truncated {
            truncated.push(record.id);
        }
    }
    Ok(truncated)
}

/// Extends every open series towards `now + HORIZON`, in batches, one expansion step per
/// schedule per run (a dense rule that hits the step cap continues on the next run instead of
/// filling the table at once); returns how many schedules were extended.
pub async fn extend_horizons(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, ApiError> {
    let horizon = now + HORIZON;
    let mut done: Vec<Uuid> = Vec::new();
    loop {
        let batch = db::schedules_behind_horizon(pool, horizon, &done, HORIZON_BATCH).await?;
        if batch.is_empty() {
            return Ok(done.len() as u64);
        }
        for id in batch {
            done.push(id);
            // One short transaction each, the calendar's row locked before the schedule's, as
            // every other writer of instances does; another node's extension just waits.
            let mut tx = pool.begin().await?;
            let Some(record) = db::lock_schedule(&mut tx, id).await? else {
                continue;
            };
            if record.materialized_until >= horizon || record.series_end.is_some() {
                continue;
            }
            let placement = db::find_calendar(&mut *tx, record.calendar_id)
                .await?
                .map_or(Tz::UTC, |c| zone_of(&c.time_zone));
            extend(
                &mut tx,
                &record,
                placement,
                record.materialized_from,
                horizon,
            )
            .await?;
            tx.commit().await?;
        }
    }
}

/// The background job: extends horizons now and then every [`HORIZON_JOB_INTERVAL`] until
/// `stop` is cancelled.
pub async fn run_horizon_job(pool: PgPool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HORIZON_JOB_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let run = tokio::select! {
                    () = stop.cancelled() => break,
                    run = extend_horizons(&pool, Utc::now()) => run,
                };
                match run {
                    Ok(0) => {}
                    Ok(extended) => tracing::info!(extended, "calendar horizon extended"),
                    Err(err) => tracing::warn!(error = %err, "calendar horizon job failed"),
                }
            }
        }
    }
}
