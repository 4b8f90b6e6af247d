//! Schedules (events): create, list, get, patch, delete; exceptions (one occurrence edited or
//! cancelled), "this and following" splits, guests and RSVP, per-user reminders.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::schedule::{original_start_text, Series, Timing};
use potentia_calendar::timezone::parse_zone;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::db::{self, ExceptionRecord, GuestRecord, NewGuest, ScheduleFields, ScheduleRecord};
use super::{calendar_error, materialize};
use crate::access::{calendar_access, check_calendar_role, CalendarRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::validation::{bounded_text, present, FieldErrors};

pub const MAX_TITLE_CHARS: usize = 1_000;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
pub const MAX_LOCATION_CHARS: usize = 1_000;
pub const MAX_REMINDERS: usize = 5;
/// Four weeks, in minutes.
pub const MAX_REMINDER_MINUTES: i32 = 40_320;
/// Conflicts reported per write.
pub const MAX_CONFLICTS: i64 = 50;

/// `RRULE`, `RDATE` and `EXDATE` of a series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceBody {
    /// One rule (`FREQ=WEEKLY;BYDAY=MO,WE`) or a list of rules.
    #[serde(default, deserialize_with = "one_or_many")]
    pub rrule: Vec<String>,
    /// Added occurrences: `2026-03-10T09:00:00` (local in the schedule's zone), an instant
    /// (`2026-03-10T14:00:00Z`), or a date for all-day schedules.
    #[serde(default)]
    pub rdate: Vec<String>,
    /// Removed occurrences, keyed by original start, in the same forms.
    #[serde(default)]
    pub exdate: Vec<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(rule)) => vec![rule],
        Some(OneOrMany::Many(rules)) => rules,
    })
}

/// A schedule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub calendar_id: Uuid,
    /// iCalendar UID.
    pub uid: String,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub all_day: bool,
    /// Timed: the first occurrence's start and end (RFC 3339, UTC).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Timed: the IANA zone the series recurs in.
    pub time_zone: Option<String>,
    /// All-day: the first day and the day after the last.
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// `confirmed`, `tentative` or `cancelled`.
    pub status: String,
    /// `opaque` (busy) or `transparent` (free).
    pub transparency: String,
    /// The stored rules and dates (dates as iCalendar values).
    pub recurrence: RecurrenceBody,
    /// Default reminders, minutes before.
    pub reminders: Vec<i32>,
    /// The caller's reminders: their override, or the defaults.
    pub my_reminders: Vec<i32>,
    pub organizer_id: Option<Uuid>,
    pub organizer_email: Option<String>,
    /// The series this one was split from.
    pub split_from: Option<Uuid>,
    pub sequence: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Schedule {
    pub fn of(record: ScheduleRecord, my_reminders: Option<Vec<i32>>) -> Self {
        Self {
            my_reminders: my_reminders.unwrap_or_else(|| record.reminders.clone()),
            id: record.id,
            calendar_id: record.calendar_id,
            uid: record.uid,
            title: record.title,
            description: record.description,
            location: record.location,
            all_day: record.all_day,
            start: record.start_at,
            end: record.end_at,
            time_zone: record.time_zone,
            start_date: record.start_date,
            end_date: record.end_date,
            status: record.status,
            transparency: record.transparency,
            recurrence: RecurrenceBody {
                rrule: record.rrule,
                rdate: record.rdate,
                exdate: record.exdate,
            },
            reminders: record.reminders,
            organizer_id: record.organizer_id,
            organizer_email: record.organizer_email,
            split_from: record.split_from,
            sequence: record.sequence,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    fn audit_json(record: &ScheduleRecord) -> serde_json::Value {
        serde_json::json!({
            "calendar_id": record.calendar_id, "uid": record.uid, "title": record.title,
            "all_day": record.all_day, "start": record.start_at, "end": record.end_at,
            "time_zone": record.time_zone, "start_date": record.start_date, "end_date": record.end_date,
            "status": record.status, "transparency": record.transparency, "rrule": record.rrule,
            "rdate": record.rdate, "exdate": record.exdate, "reminders": record.reminders,
        })
    }
}

/// An occurrence of another schedule on the same calendar that overlaps this one's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conflict {
    pub schedule_id: Uuid,
    pub title: String,
    pub original_start: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Which occurrence of the written schedule it overlaps (original start).
    pub with_original_start: String,
}

/// A written schedule and the conflicts it has.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleWrite {
    pub schedule: Schedule,
    /// Busy occurrences of other schedules on the calendar that overlap this one (at most 50).
    pub conflicts: Vec<Conflict>,
    /// Original starts of exceptions dropped because the edit removed their occurrence.
    pub dropped_exceptions: Vec<String>,
}

/// Fields of a new schedule. Timed: `start` and `end` (instants) and `time_zone` (default:
/// the calendar's). All-day: `start_date` and `end_date` (exclusive; default the next day).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// `confirmed` (default), `tentative` or `cancelled`.
    pub status: Option<String>,
    /// `opaque` (default) or `transparent`.
    pub transparency: Option<String>,
    pub recurrence: Option<RecurrenceBody>,
    /// Minutes before each occurrence, at most 5, each 0–40320.
    pub reminders: Option<Vec<i32>>,
    /// iCalendar UID; generated when absent. Unique within the calendar.
    pub uid: Option<String>,
    /// Refuse (409) instead of reporting conflicts.
    #[serde(default)]
    pub strict: bool,
}

/// Changes to a schedule (a whole series). Absent fields stay; `null` clears description,
/// location and recurrence. Giving `start`/`end` makes it timed, `start_date`/`end_date`
/// all-day. Exceptions whose occurrence still exists are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSchedule {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: Option<String>,
    pub transparency: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RecurrenceBody>)]
    pub recurrence: Option<Option<RecurrenceBody>>,
    pub reminders: Option<Vec<i32>>,
    #[serde(default)]
    pub strict: bool,
}

fn status_field(status: Option<String>, default: &str) -> Result<String, FieldError> {
    let status = status.unwrap_or_else(|| default.to_owned());
    match status.as_str() {
        "confirmed" | "tentative" | "cancelled" => Ok(status),
        _ => Err(FieldError::new(
            "status",
            "must be confirmed, tentative or cancelled",
        )),
    }
}

fn transparency_field(value: Option<String>, default: &str) -> Result<String, FieldError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    match value.as_str() {
        "opaque" | "transparent" => Ok(value),
        _ => Err(FieldError::new(
            "transparency",
            "must be opaque or transparent",
        )),
    }
}

fn reminders_field(reminders: Vec<i32>, field: &str) -> Result<Vec<i32>, FieldError> {
    if reminders.len() > MAX_REMINDERS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_REMINDERS} reminders"),
        ));
    }
    if reminders
        .iter()
        .any(|m| !(0..=MAX_REMINDER_MINUTES).contains(m))
    {
        return Err(FieldError::new(
            field,
            format!("each reminder must be 0–{MAX_REMINDER_MINUTES} minutes before"),
        ));
    }
    let mut reminders = reminders;
    reminders.sort_unstable();
    reminders.dedup();
    Ok(reminders)
}

/// Whichever of timed or all-day the given times make, with defaults from `current`.
#[allow(clippy::too_many_arguments)]
fn timing_field(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    time_zone: Option<String>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    current: Option<&Timing>,
    calendar_zone: Tz,
) -> Result<Timing, ApiError> {
    let timed_given = start.is_some() || end.is_some();
    let dates_given = start_date.is_some() || end_date.is_some();
    let zone = match &time_zone {
        Some(zone) => Some(parse_zone(zone).map_err(|e| calendar_error(e, "time_zone"))?),
        None => None,
    };
    let timing = match (current, timed_given, dates_given) {
        (_, true, true) => {
            return Err(ApiError::invalid_field(
                "start",
                "give either start/end (timed) or start_date/end_date (all-day), not both",
            ))
        }
        (Some(Timing::AllDay { start: s, end: e }), false, _) if zone.is_none() || dates_given => {
            let start = start_date.unwrap_or(*s);
            let end = end_date.unwrap_or_else(|| {
                if start_date.is_some() {
                    start + (*e - *s)
                } else {
                    *e
                }
            });
            Timing::AllDay { start, end }
        }
        (_, false, true) => {
            let start = start_date.ok_or_else(|| {
                ApiError::invalid_field("start_date", "is required with end_date")
            })?;
            Timing::AllDay {
                start,
                end: end_date.unwrap_or(start + chrono::Duration::days(1)),
            }
        }
        (
            Some(Timing::Timed {
                start: s,
                end: e,
                zone: z,
            }),
            _,
            false,
        ) => {
            let new_start = start.unwrap_or(*s);
            let new_end = end.unwrap_or_else(|| new_start + (*e - *s));
            Timing::Timed {
                start: new_start,
                end: new_end,
                zone: zone.unwrap_or(*z),
            }
        }
        (_, _, false) => {
            let start = start.ok_or_else(|| {
                ApiError::invalid_field("start", "is required (or start_date for all-day)")
            })?;
            let end =
                end.ok_or_else(|| ApiError::invalid_field("end", "is required with start"))?;
            Timing::Timed {
                start,
                end,
                zone: zone.unwrap_or(calendar_zone),
            }
        }
    };
    match timing {
        Timing::Timed { start, end, .. } if end < start => {
            Err(ApiError::invalid_field("end", "must not be before start"))
        }
        Timing::AllDay { start, end } if end <= start => Err(ApiError::invalid_field(
            "end_date",
            "must be after start_date (it is exclusive)",
        )),
        timing => Ok(timing),
    }
}

fn timing_columns(timing: &Timing, fields: &mut ScheduleFields) {
    match *timing {
        Timing::Timed { start, end, zone } => {
            fields.all_day = false;
            fields.start_at = Some(start);
            fields.end_at = Some(end);
            fields.time_zone = Some(zone.name().to_owned());
            fields.start_date = None;
            fields.end_date = None;
        }
        Timing::AllDay { start, end } => {
            fields.all_day = true;
            fields.start_at = None;
            fields.end_at = None;
            fields.time_zone = None;
            fields.start_date = Some(start);
            fields.end_date = Some(end);
        }
    }
}

fn series_field(timing: Timing, recurrence: &RecurrenceBody) -> Result<Series, ApiError> {
    Series::new(
        timing,
        &recurrence.rrule,
        &recurrence.rdate,
        &recurrence.exdate,
    )
    .map_err(|e| calendar_error(e, "recurrence"))
}

fn store_series(series: &Series, fields: &mut ScheduleFields) {
    fields.rrule = series.rrule_texts();
    fields.rdate = series.rdate_texts();
    fields.exdate = series.exdate_texts();
}

/// What the caller may do with a schedule: its calendar role, and its guest entry if any.
struct ScheduleAccess {
    record: ScheduleRecord,
    role: Option<CalendarRole>,
    guest: Option<GuestRecord>,
    calendar_zone: Tz,
}

impl ScheduleAccess {
    fn require(&self, needed: CalendarRole) -> Result<(), ApiError> {
        check_calendar_role(self.role, needed)
    }
}

/// The schedule if the caller can see it (calendar viewer or a guest): 404 otherwise.
async fn schedule_access(
    conn: &mut PgConnection,
    user_id: Uuid,
    schedule_id: Uuid,
    lock: bool,
) -> Result<ScheduleAccess, ApiError> {
    let not_found = ApiError::NotFound { what: "schedule" };
    let record = if lock {
        db::lock_schedule(&mut *conn, schedule_id).await?
    } else {
        db::find_schedule(&mut *conn, schedule_id).await?
    }
    .ok_or(not_found)?;
    let access = calendar_access(&mut *conn, user_id, record.calendar_id)
        .await?
        .ok_or(ApiError::NotFound { what: "schedule" })?;
    let guest = db::guest_for_user(&mut *conn, schedule_id, user_id).await?;
    if access.role < Some(CalendarRole::Viewer) && guest.is_none() {
        return Err(ApiError::NotFound { what: "schedule" });
    }
    let calendar_zone = db::find_calendar(&mut *conn, record.calendar_id)
        .await?
        .map_or(Tz::UTC, |c| materialize::zone_of(&c.time_zone));
    Ok(ScheduleAccess {
        record,
        role: access.role,
        guest,
        calendar_zone,
    })
}

async fn conflicts(
    conn: &mut PgConnection,
    schedule_id: Uuid,
    all_day: bool,
) -> Result<Vec<Conflict>, ApiError> {
    let rows = db::conflicts_of(&mut *conn, schedule_id, MAX_CONFLICTS).await?;
    Ok(rows
        .into_iter()
        .map(|row| Conflict {
            schedule_id: row.schedule_id,
            title: row.title,
            original_start: original_start_text(row.original_start, row.all_day),
            start: row.start,
            end: row.end,
            with_original_start: original_start_text(row.own_original_start, all_day),
        })
        .collect())
}

fn refuse_conflicts(found: &[Conflict]) -> ApiError {
    let listed: Vec<String> = found
        .iter()
        .take(5)
        .map(|c| format!("\"{}\" at {}", c.title, c.start.to_rfc3339()))
        .collect();
    ApiError::conflict(
        "schedule_conflict",
        format!(
            "the schedule overlaps {} busy occurrence(s) on the calendar: {}",
            found.len(),
            listed.join(", ")
        ),
    )
}

/// Creates a schedule (calendar editor). Conflicts with other busy schedules on the calendar
/// are reported, or refused with `strict`.
#[utoipa::path(post, path = "/api/v1/calendars/{calendar_id}/schedules", tag = "schedules", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)), request_body = CreateSchedule,
    responses((status = 201, body = ScheduleWrite), (status = 400, description = "Bad recurrence or zone", body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "strict and conflicting", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_schedule(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateSchedule>,
) -> ApiResult<(StatusCode, ApiJson<ScheduleWrite>)> {
    let mut errors = FieldErrors::default();
    let title = errors.check(bounded_text("title", body.title, MAX_TITLE_CHARS));
    let description = errors.check(bounded_text(
        "description",
        body.description,
        MAX_DESCRIPTION_CHARS,
    ));
    let location = errors.check(bounded_text("location", body.location, MAX_LOCATION_CHARS));
    let status = errors.check(status_field(body.status, "confirmed"));
    let transparency = errors.check(transparency_field(body.transparency, "opaque"));
    let reminders = errors.check(reminders_field(
        body.reminders.unwrap_or_default(),
        "reminders",
    ));
    let uid = errors.check(bounded_text("uid", body.uid, MAX_TITLE_CHARS));
    errors.into_result()?;
    let (
        Some(title),
        Some(description),
        Some(location),
        Some(status),
        Some(transparency),
        Some(reminders),
        Some(uid),
    ) = (
        title,
        description,
        location,
        status,
        transparency,
        reminders,
        uid,
    )
    else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let mut tx = state.db.begin().await?;
    let access = calendar_access(&mut *tx, caller.id, calendar_id)
        .await?
        .filter(|a| a.role.is_some())
        .ok_or(ApiError::NotFound { what: "calendar" })?;
    check_calendar_role(access.role, CalendarRole::Editor)?;
    let calendar = db::find_calendar(&mut *tx, calendar_id)
        .await?
        .ok_or(ApiError::NotFound { what: "calendar" })?;
    let calendar_zone = materialize::zone_of(&calendar.time_zone);
    let timing = timing_field(
        body.start,
        body.end,
        body.time_zone,
        body.start_date,
        body.end_date,
        None,
        calendar_zone,
    )?;
    let series = series_field(timing, &body.recurrence.unwrap_or_default())?;
    let id = Uuid::now_v7();
    let uid = uid.unwrap_or_else(|| format!("{id}@potentia"));
    if db::find_schedule_by_uid(&mut *tx, calendar_id, &uid)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "uid_taken",
            "another schedule of this calendar has this uid",
        ));
    }
    let organizer_email = db::user_email(&mut *tx, caller.id).await?;
    let mut fields = ScheduleFields {
        uid,
        title: title.unwrap_or_default(),
        description,
        location,
        all_day: false,
        start_at: None,
        end_at: None,
        time_zone: None,
        start_date: None,
        end_date: None,
        status,
        transparency,
        rrule: Vec::new(),
        rdate: Vec::new(),
        exdate: Vec::new(),
        reminders,
        organizer_id: Some(caller.id),
        organizer_email: organizer_email.clone(),
    };
    timing_columns(&timing, &mut fields);
    store_series(&series, &mut fields);
    let now = Utc::now();
    let window = materialize::initial_window(&series, calendar_zone, now);
    let record =
        db::insert_schedule(&mut *tx, id, calendar_id, &fields, None, window, caller.id).await?;
    db::insert_guest(
        &mut *tx,
        id,
        &NewGuest {
            user_id: Some(caller.id),
            email: organizer_email.as_deref(),
            display_name: None,
            optional: false,
            organizer: true,
            rsvp: "accepted",
        },
    )
    .await?;
    materialize::rematerialize(&mut tx, &record, calendar_zone, now).await?;
    let found = conflicts(&mut tx, id, record.all_day).await?;
    if body.strict && !found.is_empty() {
        return Err(refuse_conflicts(&found));
    }
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule.create", "schedule", id)
            .actor(caller.id)
            .after(Schedule::audit_json(&record))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[calendar_id]).await;
    Ok((
        StatusCode::CREATED,
        ApiJson(ScheduleWrite {
            schedule: Schedule::of(record, None),
            conflicts: found,
            dropped_exceptions: Vec::new(),
        }),
    ))
}

/// The calendar's schedules (series, not instances), oldest first (calendar viewer).
#[utoipa::path(get, path = "/api/v1/calendars/{calendar_id}/schedules", tag = "schedules", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<Schedule>), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_schedules(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(calendar_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Schedule>>> {
    let page = params.validate()?;
    crate::access::require_calendar(&state.db, caller.id, calendar_id, CalendarRole::Viewer)
        .await?;
    let rows = db::list_schedules(&state.db, calendar_id, &page).await?;
    let page = Page::from_rows(rows, &page, ScheduleRecord::position);
    Ok(ApiJson(Page {
        items: page
            .items
            .into_iter()
            .map(|record| Schedule::of(record, None))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A schedule (calendar viewer, or a guest).
#[utoipa::path(get, path = "/api/v1/schedules/{schedule_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)),
    responses((status = 200, body = Schedule), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_schedule(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(schedule_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Schedule>> {
    let mut conn = state.db.acquire().await?;
    let access = schedule_access(&mut conn, caller.id, schedule_id, false).await?;
    let mine = db::reminder_override(&mut *conn, schedule_id, caller.id).await?;
    Ok(ApiJson(Schedule::of(access.record, mine)))
}

/// Applies `changes` to `record`'s fields; returns the new fields and series.
fn apply_changes(
    record: &ScheduleRecord,
    changes: PatchSchedule,
    calendar_zone: Tz,
) -> Result<(ScheduleFields, Series, bool), ApiError> {
    let mut fields = ScheduleFields::of(record);
    let mut errors = FieldErrors::default();
    if let Some(title) = changes.title {
        if let Some(title) = errors.check(bounded_text("title", Some(title), MAX_TITLE_CHARS)) {
            fields.title = title.unwrap_or_default();
        }
    }
    if let Some(description) = changes.description {
        if let Some(description) = errors.check(bounded_text(
            "description",
            description,
            MAX_DESCRIPTION_CHARS,
        )) {
            fields.description = description;
        }
    }
    if let Some(location) = changes.location {
        if let Some(location) = errors.check(bounded_text("location", location, MAX_LOCATION_CHARS))
        {
            fields.location = location;
        }
    }
    if let Some(status) = errors.check(status_field(changes.status, &record.status)) {
        fields.status = status;
    }
    if let Some(transparency) = errors.check(transparency_field(
        changes.transparency,
        &record.transparency,
    )) {
        fields.transparency = transparency;
    }
    if let Some(reminders) = changes.reminders {
        if let Some(reminders) = errors.check(reminders_field(reminders, "reminders")) {
            fields.reminders = reminders;
        }
    }
    errors.into_result()?;
    let current = materialize::timing_of(record)?;
    let timing = timing_field(
        changes.start,
        changes.end,
        changes.time_zone,
        changes.start_date,
        changes.end_date,
        Some(&current),
        calendar_zone,
    )?;
    let recurrence = match changes.recurrence {
        Some(Some(recurrence)) => recurrence,
        Some(None) => RecurrenceBody::default(),
        None => RecurrenceBody {
            rrule: record.rrule.clone(),
            rdate: record.rdate.clone(),
            exdate: record.exdate.clone(),
        },
    };
    let series = series_field(timing, &recurrence)?;
    timing_columns(&timing, &mut fields);
    store_series(&series, &mut fields);
    Ok((fields, series, changes.strict))
}

/// Exceptions whose occurrence `series` no longer has.
fn stale_exceptions(
    exceptions: &[ExceptionRecord],
    series: &Series,
    placement: Tz,
) -> Vec<NaiveDateTime> {
    exceptions
        .iter()
        .filter(|x| series.occurrence_at(x.original_start, placement).is_none())
        .map(|x| x.original_start)
        .collect()
}

/// Changes a whole series (calendar editor). Exceptions whose occurrence still exists are
/// kept; the others are dropped and listed.
#[utoipa::path(patch, path = "/api/v1/schedules/{schedule_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = PatchSchedule,
    responses((status = 200, body = ScheduleWrite), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_schedule(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchSchedule>,
) -> ApiResult<ApiJson<ScheduleWrite>> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    let before = access.record;
    let zone = access.calendar_zone;
    let (fields, series, strict) = apply_changes(&before, body, zone)?;
    let exceptions = db::exceptions_of(&mut *tx, schedule_id).await?;
    let stale = stale_exceptions(&exceptions, &series, zone);
    db::delete_exceptions(&mut *tx, schedule_id, &stale).await?;
    let now = Utc::now();
    let window = materialize::initial_window(&series, zone, now);
    let record = db::update_schedule(&mut *tx, schedule_id, &fields, window).await?;
    materialize::rematerialize(&mut tx, &record, zone, now).await?;
    let found = conflicts(&mut tx, schedule_id, record.all_day).await?;
    if strict && !found.is_empty() {
        return Err(refuse_conflicts(&found));
    }
    let dropped: Vec<String> = stale
        .iter()
        .map(|o| original_start_text(*o, before.all_day))
        .collect();
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule.update", "schedule", schedule_id)
            .actor(caller.id)
            .before(Schedule::audit_json(&before))
            .after(serde_json::json!({ "schedule": Schedule::audit_json(&record), "dropped_exceptions": dropped }))
            .request(request_id.as_deref()),
    )
    .await?;
    let mine = db::reminder_override(&mut *tx, schedule_id, caller.id).await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[record.calendar_id]).await;
    Ok(ApiJson(ScheduleWrite {
        schedule: Schedule::of(record, mine),
        conflicts: found,
        dropped_exceptions: dropped,
    }))
}

/// Deletes a schedule with all its occurrences (calendar editor).
#[utoipa::path(delete, path = "/api/v1/schedules/{schedule_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_schedule(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    db::delete_schedule(&mut *tx, schedule_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule.delete", "schedule", schedule_id)
            .actor(caller.id)
            .before(Schedule::audit_json(&access.record))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state
        .calendar_cache
        .invalidate(&[access.record.calendar_id])
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// --- Exceptions -----------------------------------------------------------------------

/// One occurrence changed or cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct Exception {
    pub id: Uuid,
    pub schedule_id: Uuid,
    /// The occurrence it replaces: `2026-03-10T09:00:00` (local) or `2026-03-10` (all-day).
    pub original_start: String,
    pub cancelled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: Option<String>,
    pub transparency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Exception {
    fn of(record: ExceptionRecord, all_day: bool) -> Self {
        Self {
            id: record.id,
            schedule_id: record.schedule_id,
            original_start: original_start_text(record.original_start, all_day),
            cancelled: record.cancelled,
            title: record.title,
            description: record.description,
            location: record.location,
            start: record.start_at,
            end: record.end_at,
            start_date: record.start_date,
            end_date: record.end_date,
            status: record.status,
            transparency: record.transparency,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// Edit or cancel one occurrence, keyed by its original start. Absent overrides keep the
/// series' values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutException {
    /// The occurrence's original start: `2026-03-10T09:00:00` (local, in the schedule's zone),
    /// an instant such as `2026-03-10T08:00:00Z` (the form `GET /instances` reports starts in),
    /// or `2026-03-10` (all-day).
    pub original_start: String,
    #[serde(default)]
    pub cancelled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: Option<String>,
    pub transparency: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionWrite {
    pub exception: Exception,
    /// Conflicts of the whole schedule after the change (at most 50).
    pub conflicts: Vec<Conflict>,
}

fn original_start_field(
    text: &str,
    series: &Series,
    placement: Tz,
    field: &str,
) -> Result<NaiveDateTime, ApiError> {
    let original = series
        .timing()
        .parse_original_start(text, placement)
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "must be the occurrence's original start: local like 2026-03-10T09:00:00, an \
                 instant like 2026-03-10T08:00:00Z, or a date for all-day schedules",
            )
        })?;
    if series.occurrence_at(original, placement).is_none() {
        return Err(ApiError::invalid_field(
            field,
            format!("{text} is not an occurrence of this schedule"),
        ));
    }
    Ok(original)
}

/// Edits or cancels one occurrence (calendar editor).
#[utoipa::path(put, path = "/api/v1/schedules/{schedule_id}/exceptions", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = PutException,
    responses((status = 200, body = ExceptionWrite), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn put_exception(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PutException>,
) -> ApiResult<ApiJson<ExceptionWrite>> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    let record = &access.record;
    let zone = access.calendar_zone;
    let series = materialize::series_of(record)?;
    let original = original_start_field(&body.original_start, &series, zone, "original_start")?;
    let mut errors = FieldErrors::default();
    let title = errors.check(bounded_text("title", body.title, MAX_TITLE_CHARS));
    let description = errors.check(bounded_text(
        "description",
        body.description,
        MAX_DESCRIPTION_CHARS,
    ));
    let location = errors.check(bounded_text("location", body.location, MAX_LOCATION_CHARS));
    let status = match body.status {
        Some(status) => errors.check(status_field(Some(status), "confirmed").map(Some)),
        None => Some(None),
    };
    let transparency = match body.transparency {
        Some(value) => errors.check(transparency_field(Some(value), "opaque").map(Some)),
        None => Some(None),
    };
    errors.into_result()?;
    let (Some(title), Some(description), Some(location), Some(status), Some(transparency)) =
        (title, description, location, status, transparency)
    else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let (start_at, end_at, start_date, end_date) = if record.all_day {
        if body.start.is_some() || body.end.is_some() {
            return Err(ApiError::invalid_field(
                "start",
                "an all-day schedule's occurrence moves with start_date/end_date",
            ));
        }
        match (body.start_date, body.end_date) {
            (None, None) => (None, None, None, None),
            (Some(start), end) => {
                let days = record
                    .end_date
                    .zip(record.start_date)
                    .map_or(1, |(e, s)| (e - s).num_days());
                let end = end.unwrap_or(start + chrono::Duration::days(days));
                if end <= start {
                    return Err(ApiError::invalid_field(
                        "end_date",
                        "must be after start_date",
                    ));
                }
                (None, None, Some(start), Some(end))
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid_field(
                    "start_date",
                    "is required with end_date",
                ))
            }
        }
    } else {
        if body.start_date.is_some() || body.end_date.is_some() {
            return Err(ApiError::invalid_field(
                "start_date",
                "a timed schedule's occurrence moves with start/end",
            ));
        }
        match (body.start, body.end) {
            (None, None) => (None, None, None, None),
            (Some(start), end) => {
                let length = record
                    .end_at
                    .zip(record.start_at)
                    .map_or(chrono::Duration::zero(), |(e, s)| e - s);
                let end = end.unwrap_or(start + length);
                if end < start {
                    return Err(ApiError::invalid_field("end", "must not be before start"));
                }
                (Some(start), Some(end), None, None)
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid_field("start", "is required with end"))
            }
        }
    };
    let saved = db::upsert_exception(
        &mut *tx,
        &ExceptionRecord {
            id: Uuid::now_v7(),
            schedule_id,
            original_start: original,
            cancelled: body.cancelled,
            title,
            description,
            location,
            start_at,
            end_at,
            start_date,
            end_date,
            status,
            transparency,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        },
    )
    .await?;
    materialize::rematerialize(&mut tx, record, zone, Utc::now()).await?;
    let found = conflicts(&mut tx, schedule_id, record.all_day).await?;
    let exception = Exception::of(saved, record.all_day);
    audit::record(
        &mut *tx,
        AuditEntry::new(
            if exception.cancelled {
                "schedule.occurrence_cancel"
            } else {
                "schedule.occurrence_update"
            },
            "schedule",
            schedule_id,
        )
        .actor(caller.id)
        .after(serde_json::to_value(&exception).unwrap_or_default())
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[record.calendar_id]).await;
    Ok(ApiJson(ExceptionWrite {
        exception,
        conflicts: found,
    }))
}

/// The schedule's exceptions (calendar viewer, or a guest).
#[utoipa::path(get, path = "/api/v1/schedules/{schedule_id}/exceptions", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<Exception>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_exceptions(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Exception>>> {
    let page = params.validate()?;
    let mut conn = state.db.acquire().await?;
    let access = schedule_access(&mut conn, caller.id, schedule_id, false).await?;
    let rows = db::list_exceptions(&mut *conn, schedule_id, &page).await?;
    let page = Page::from_rows(rows, &page, ExceptionRecord::position);
    Ok(ApiJson(Page {
        items: page
            .items
            .into_iter()
            .map(|x| Exception::of(x, access.record.all_day))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Removes an exception: the occurrence is as the series says again (calendar editor).
#[utoipa::path(delete, path = "/api/v1/schedules/{schedule_id}/exceptions/{original_start}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), ("original_start" = String, Path)),
    responses((status = 204, description = "Restored"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_exception(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((schedule_id, original_start)): ApiPath<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    let original = materialize::timing_of(&access.record)?
        .parse_original_start(&original_start, access.calendar_zone)
        .ok_or(ApiError::NotFound { what: "exception" })?;
    if !db::delete_exception(&mut *tx, schedule_id, original).await? {
        return Err(ApiError::NotFound { what: "exception" });
    }
    materialize::rematerialize(&mut tx, &access.record, access.calendar_zone, Utc::now()).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule.occurrence_restore", "schedule", schedule_id)
            .actor(caller.id)
            .before(serde_json::json!({ "original_start": original_start }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state
        .calendar_cache
        .invalidate(&[access.record.calendar_id])
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// --- Split ------------------------------------------------------------------------------

/// "This and following": the series ends before `original_start`, and a new series starts
/// there with the changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSchedule {
    /// The first occurrence of the new series: its original start, local or as an instant
    /// (see `PutException::original_start`).
    pub original_start: String,
    /// Changes for the new series, as in a patch.
    #[serde(default)]
    pub changes: Option<PatchSchedule>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SplitResult {
    /// The original series, now ending before the split.
    pub before: Schedule,
    /// The new series.
    pub after: Schedule,
    /// Conflicts of the new series (at most 50).
    pub conflicts: Vec<Conflict>,
    /// Exceptions that were on the split-off occurrences but no longer match the new series.
    pub dropped_exceptions: Vec<String>,
}

/// Splits a series "this and following" (calendar editor).
#[utoipa::path(post, path = "/api/v1/schedules/{schedule_id}/split", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = SplitSchedule,
    responses((status = 201, body = SplitResult), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn split_schedule(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SplitSchedule>,
) -> ApiResult<(StatusCode, ApiJson<SplitResult>)> {
    let changes = body.changes.unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    let record = access.record;
    let zone = access.calendar_zone;
    let series = materialize::series_of(&record)?;
    let at = original_start_field(&body.original_start, &series, zone, "original_start")?;
    if at == materialize::timing_of(&record)?.first_original_start() {
        return Err(ApiError::invalid_field(
            "original_start",
            "this is the first occurrence; change the whole series with PATCH instead",
        ));
    }
    let (head, tail) = series
        .split(at, zone, None)
        .map_err(|e| calendar_error(e, "original_start"))?;
    // The new series: the old one's fields from the split occurrence on, then the changes.
    let mut tail_record = record.clone();
    let tail_timing = *tail.timing();
    let mut tail_fields = ScheduleFields::of(&record);
    timing_columns(&tail_timing, &mut tail_fields);
    store_series(&tail, &mut tail_fields);
    tail_record.all_day = tail_fields.all_day;
    tail_record.start_at = tail_fields.start_at;
    tail_record.end_at = tail_fields.end_at;
    tail_record.time_zone = tail_fields.time_zone.clone();
    tail_record.start_date = tail_fields.start_date;
    tail_record.end_date = tail_fields.end_date;
    tail_record.rrule = tail_fields.rrule.clone();
    tail_record.rdate = tail_fields.rdate.clone();
    tail_record.exdate = tail_fields.exdate.clone();
    let (mut new_fields, new_series, strict) = apply_changes(&tail_record, changes, zone)?;
    let new_id = Uuid::now_v7();
    new_fields.uid = format!("{new_id}@potentia");
    let now = Utc::now();
    // The first part keeps the occurrences before the split.
    let before = db::truncate_series(
        &mut *tx,
        schedule_id,
        &head.rrule_texts(),
        &head.rdate_texts(),
        &head.exdate_texts(),
    )
    .await?;
    let window = materialize::initial_window(&new_series, zone, now);
    let after = db::insert_schedule(
        &mut *tx,
        new_id,
        record.calendar_id,
        &new_fields,
        Some(schedule_id),
        window,
        caller.id,
    )
    .await?;
    sqlx::query!(
        r#"insert into schedule_guests (id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, responded_at)
           select gen_random_uuid(), $2, user_id, email, display_name, optional, organizer, rsvp, responded_at
           from schedule_guests where schedule_id = $1"#,
        schedule_id,
        new_id,
    )
    .execute(&mut *tx)
    .await?;
    // Exceptions from the split on move to the new series when their occurrence is still in
    // it; the others go.
    let exceptions = db::exceptions_of(&mut *tx, schedule_id).await?;
    let (moving, dropped): (Vec<NaiveDateTime>, Vec<NaiveDateTime>) = exceptions
        .iter()
        .filter(|x| x.original_start >= at)
        .map(|x| x.original_start)
        .partition(|original| new_series.occurrence_at(*original, zone).is_some());
    db::move_exceptions(&mut *tx, schedule_id, new_id, &moving).await?;
    db::delete_exceptions(&mut *tx, schedule_id, &dropped).await?;
    let head_window = materialize::initial_window(&head, zone, now);
    db::set_window(&mut *tx, schedule_id, head_window).await?;
    materialize::rematerialize(&mut tx, &before, zone, now).await?;
    materialize::rematerialize(&mut tx, &after, zone, now).await?;
    let found = conflicts(&mut tx, new_id, after.all_day).await?;
    if strict && !found.is_empty() {
        return Err(refuse_conflicts(&found));
    }
    let dropped: Vec<String> = dropped
        .iter()
        .map(|o| original_start_text(*o, record.all_day))
        .collect();
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule.split", "schedule", schedule_id)
            .actor(caller.id)
            .before(Schedule::audit_json(&record))
            .after(serde_json::json!({ "before": Schedule::audit_json(&before), "after_id": new_id,
                                       "after": Schedule::audit_json(&after), "dropped_exceptions": dropped }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[record.calendar_id]).await;
    Ok((
        StatusCode::CREATED,
        ApiJson(SplitResult {
            before: Schedule::of(before, None),
            after: Schedule::of(after, None),
            conflicts: found,
            dropped_exceptions: dropped,
        }),
    ))
}

// --- Guests -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Guest {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub optional: bool,
    pub organizer: bool,
    /// `needs_action`, `accepted`, `tentative` or `declined`.
    pub rsvp: String,
    pub created_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
}

impl From<GuestRecord> for Guest {
    fn from(g: GuestRecord) -> Self {
        Self {
            id: g.id,
            schedule_id: g.schedule_id,
            user_id: g.user_id,
            email: g.email,
            display_name: g.display_name,
            optional: g.optional,
            organizer: g.organizer,
            rsvp: g.rsvp,
            created_at: g.created_at,
            responded_at: g.responded_at,
        }
    }
}

/// A guest: a user (by id) or anyone (by email; linked to the user with that email if any).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteGuest {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rsvp {
    /// `needs_action`, `accepted`, `tentative` or `declined`.
    pub response: String,
}

/// Invites a guest (calendar editor).
#[utoipa::path(post, path = "/api/v1/schedules/{schedule_id}/guests", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = InviteGuest,
    responses((status = 201, body = Guest), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn invite_guest(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<InviteGuest>,
) -> ApiResult<(StatusCode, ApiJson<Guest>)> {
    let display_name = bounded_text("display_name", body.display_name, 200)
        .map_err(|e| ApiError::invalid_fields(vec![e]))?;
    let email =
        bounded_text("email", body.email, 254).map_err(|e| ApiError::invalid_fields(vec![e]))?;
    if let Some(email) = &email {
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(ApiError::invalid_field("email", "is not an email address"));
        }
    }
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    let (user_id, email) = match (body.user_id, email) {
        (Some(user_id), None) => {
            if !db::user_exists(&mut *tx, user_id).await? {
                return Err(ApiError::invalid_field("user_id", "no such user"));
            }
            (Some(user_id), db::user_email(&mut *tx, user_id).await?)
        }
        (None, Some(email)) => (db::user_id_by_email(&mut *tx, &email).await?, Some(email)),
        _ => {
            return Err(ApiError::invalid_field(
                "user_id",
                "give exactly one of user_id and email",
            ))
        }
    };
    let guest = db::insert_guest(
        &mut *tx,
        schedule_id,
        &NewGuest {
            user_id,
            email: email.as_deref(),
            display_name: display_name.as_deref(),
            optional: body.optional,
            organizer: false,
            rsvp: "needs_action",
        },
    )
    .await?
    .ok_or_else(|| ApiError::conflict("already_a_guest", "this guest is already invited"))?;
    let guest = Guest::from(guest);
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule_guest.invite", "schedule_guest", guest.id)
            .actor(caller.id)
            .after(serde_json::to_value(&guest).unwrap_or_default())
            .request(request_id.as_deref()),
    )
    .await?;
    let calendars = db::calendars_of_guest_change(&mut *tx, schedule_id).await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&calendars).await;
    Ok((StatusCode::CREATED, ApiJson(guest)))
}

/// The schedule's guests (calendar viewer, or a guest).
#[utoipa::path(get, path = "/api/v1/schedules/{schedule_id}/guests", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<Guest>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_guests(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Guest>>> {
    let page = params.validate()?;
    let mut conn = state.db.acquire().await?;
    schedule_access(&mut conn, caller.id, schedule_id, false).await?;
    let rows = db::list_guests(&mut *conn, schedule_id, &page).await?;
    let page = Page::from_rows(rows, &page, GuestRecord::position);
    Ok(ApiJson(Page {
        items: page.items.into_iter().map(Guest::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Removes a guest (calendar editor; a guest may remove themselves).
#[utoipa::path(delete, path = "/api/v1/schedules/{schedule_id}/guests/{guest_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), ("guest_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_guest(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((schedule_id, guest_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    let guest = db::find_guest(&mut *tx, schedule_id, guest_id)
        .await?
        .ok_or(ApiError::NotFound { what: "guest" })?;
    if guest.user_id != Some(caller.id) {
        access.require(CalendarRole::Editor)?;
    }
    let calendars = db::calendars_of_guest_change(&mut *tx, schedule_id).await?;
    db::delete_guest(&mut *tx, guest_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule_guest.remove", "schedule_guest", guest_id)
            .actor(caller.id)
            .before(serde_json::to_value(Guest::from(guest)).unwrap_or_default())
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&calendars).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers an invitation (the guest themselves).
#[utoipa::path(post, path = "/api/v1/schedules/{schedule_id}/rsvp", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = Rsvp,
    responses((status = 200, body = Guest), (status = 403, description = "Not a guest", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rsvp(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Rsvp>,
) -> ApiResult<ApiJson<Guest>> {
    if !["needs_action", "accepted", "tentative", "declined"].contains(&body.response.as_str()) {
        return Err(ApiError::invalid_field(
            "response",
            "must be needs_action, accepted, tentative or declined",
        ));
    }
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    let guest = access.guest.ok_or_else(|| ApiError::Forbidden {
        code: "not_a_guest",
        detail: "only a guest can answer an invitation".into(),
    })?;
    let before = guest.rsvp.clone();
    let updated = Guest::from(db::set_rsvp(&mut *tx, guest.id, &body.response).await?);
    audit::record(
        &mut *tx,
        AuditEntry::new("schedule_guest.rsvp", "schedule_guest", guest.id)
            .actor(caller.id)
            .before(serde_json::json!({ "rsvp": before }))
            .after(serde_json::json!({ "rsvp": updated.rsvp }))
            .request(request_id.as_deref()),
    )
    .await?;
    let calendars = db::calendars_of_guest_change(&mut *tx, schedule_id).await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&calendars).await;
    Ok(ApiJson(updated))
}

// --- Reminders --------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReminders {
    /// Minutes before each occurrence, at most 5, each 0–40320; `[]` for none.
    pub minutes: Vec<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyReminders {
    pub schedule_id: Uuid,
    pub minutes: Vec<i32>,
    /// True when these are the caller's own, false when they are the schedule's defaults.
    pub overridden: bool,
}

/// Sets the caller's own reminders for a schedule they can see.
#[utoipa::path(put, path = "/api/v1/schedules/{schedule_id}/reminders", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = SetReminders,
    responses((status = 200, body = MyReminders), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn set_reminders(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetReminders>,
) -> ApiResult<ApiJson<MyReminders>> {
    let minutes =
        reminders_field(body.minutes, "minutes").map_err(|e| ApiError::invalid_fields(vec![e]))?;
    let mut tx = state.db.begin().await?;
    schedule_access(&mut tx, caller.id, schedule_id, false).await?;
    let before = db::reminder_override(&mut *tx, schedule_id, caller.id).await?;
    db::set_reminder_override(&mut *tx, schedule_id, caller.id, &minutes).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "schedule_reminders.set",
            "schedule_reminders",
            format!("{schedule_id}/{}", caller.id),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "minutes": before }))
        .after(serde_json::json!({ "minutes": minutes }))
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(ApiJson(MyReminders {
        schedule_id,
        minutes,
        overridden: true,
    }))
}

/// Drops the caller's own reminders: the schedule's defaults apply again.
#[utoipa::path(delete, path = "/api/v1/schedules/{schedule_id}/reminders", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)),
    responses((status = 200, body = MyReminders), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn clear_reminders(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<MyReminders>> {
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, false).await?;
    let before = db::reminder_override(&mut *tx, schedule_id, caller.id).await?;
    if db::clear_reminder_override(&mut *tx, schedule_id, caller.id).await? {
        audit::record(
            &mut *tx,
            AuditEntry::new(
                "schedule_reminders.clear",
                "schedule_reminders",
                format!("{schedule_id}/{}", caller.id),
            )
            .actor(caller.id)
            .before(serde_json::json!({ "minutes": before }))
            .request(request_id.as_deref()),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ApiJson(MyReminders {
        schedule_id,
        minutes: access.record.reminders,
        overridden: false,
    }))
}
