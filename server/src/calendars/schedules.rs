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
use crate::access::{calendar_access, check_calendar_role, related_users, CalendarRole};
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
/// Longest guest display name, in characters.
pub const MAX_GUEST_NAME_CHARS: usize = 200;
/// Longest guest email address, in characters.
pub const MAX_GUEST_EMAIL_CHARS: usize = 254;

/// Whether a schedule (or one occurrence) takes place, as iCalendar `STATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    /// It takes place (the default).
    Confirmed,
    /// Not settled yet; its time still counts as busy.
    Tentative,
    /// Called off: still listed in views, but its time is free and it conflicts with nothing.
    Cancelled,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Tentative => "tentative",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "confirmed" => Some(Self::Confirmed),
            "tentative" => Some(Self::Tentative),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Whether a schedule's time counts as busy, as iCalendar `TRANSP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeTransparency {
    /// Busy: counts in free/busy and in conflict checks (the default).
    Opaque,
    /// Free: shown in views, but never busy and never a conflict.
    Transparent,
}

impl TimeTransparency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Transparent => "transparent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "opaque" => Some(Self::Opaque),
            "transparent" => Some(Self::Transparent),
            _ => None,
        }
    }
}

/// A guest's answer to an invitation, as iCalendar `PARTSTAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RsvpStatus {
    /// Not answered yet (every invited guest starts here).
    NeedsAction,
    /// Will attend (the organizer's own entry starts here).
    Accepted,
    /// May attend.
    Tentative,
    /// Will not attend: it stops counting in the guest's busy time, and leaves their view when
    /// it is on a calendar they cannot otherwise read.
    Declined,
}

impl RsvpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsAction => "needs_action",
            Self::Accepted => "accepted",
            Self::Tentative => "tentative",
            Self::Declined => "declined",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "needs_action" => Some(Self::NeedsAction),
            "accepted" => Some(Self::Accepted),
            "tentative" => Some(Self::Tentative),
            "declined" => Some(Self::Declined),
            _ => None,
        }
    }
}

/// `RRULE`, `RDATE` and `EXDATE` of a series; all three empty for a single event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceBody {
    /// iCalendar `RRULE` values without the `RRULE:` prefix (`FREQ=WEEKLY;BYDAY=MO,WE`); a
    /// request may also give one rule as a plain string. Default: none.
    #[serde(default, deserialize_with = "one_or_many")]
    pub rrule: Vec<String>,
    /// Added occurrences: `2026-03-10T09:00:00` (local in the schedule's zone), an instant
    /// (`2026-03-10T14:00:00Z`), or a date for all-day schedules. Default: none. Responses give
    /// them in iCalendar form (`20260310T090000`, `20260310T140000Z`, `20260310`).
    #[serde(default)]
    pub rdate: Vec<String>,
    /// Removed occurrences, keyed by original start, in the same forms as `rdate`. Default:
    /// none.
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

/// A schedule: a single event or a recurring series, timed or all-day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Schedule {
    /// The schedule's id.
    pub id: Uuid,
    /// The calendar the schedule is on.
    pub calendar_id: Uuid,
    /// iCalendar `UID`, unique within the calendar: given at creation or `{id}@potentia`.
    pub uid: String,
    /// The title; `""` when it has none (at most 1000 characters).
    pub title: String,
    /// Free text, at most 20000 characters; null when none.
    pub description: Option<String>,
    /// Where it takes place, at most 1000 characters; null when none.
    pub location: Option<String>,
    /// True for an all-day schedule (`start_date`/`end_date` set), false for a timed one
    /// (`start`/`end`/`time_zone` set).
    pub all_day: bool,
    /// Timed: the first occurrence's start (RFC 3339, UTC); null for an all-day schedule.
    pub start: Option<DateTime<Utc>>,
    /// Timed: the first occurrence's end (RFC 3339, UTC, not before `start`); null for an
    /// all-day schedule.
    pub end: Option<DateTime<Utc>>,
    /// Timed: the IANA zone the series recurs in (`Europe/Paris`); null for an all-day
    /// schedule.
    pub time_zone: Option<String>,
    /// All-day: the first day (`YYYY-MM-DD`); null for a timed schedule.
    pub start_date: Option<NaiveDate>,
    /// All-day: the day after the last day (exclusive, `YYYY-MM-DD`); null for a timed
    /// schedule.
    pub end_date: Option<NaiveDate>,
    /// Whether it takes place; exceptions may override it per occurrence.
    #[schema(value_type = ScheduleStatus)]
    pub status: String,
    /// Whether its time counts as busy; exceptions may override it per occurrence.
    #[schema(value_type = TimeTransparency)]
    pub transparency: String,
    /// The stored rules and dates, dates as iCalendar values (`20260310T090000`); all empty
    /// for a single event.
    pub recurrence: RecurrenceBody,
    /// Default reminders, in minutes before each occurrence, ascending (at most 5).
    pub reminders: Vec<i32>,
    /// The caller's reminders in minutes before, ascending: their own override if they set
    /// one (`PUT /schedules/{schedule_id}/reminders`), otherwise `reminders`.
    pub my_reminders: Vec<i32>,
    /// The organizer's user id: the creator, or for an import the user with the `ORGANIZER`
    /// email; null when there is no such user.
    pub organizer_id: Option<Uuid>,
    /// The organizer's email address; null when unknown.
    pub organizer_email: Option<String>,
    /// The series this one was split from ("this and following"); null otherwise.
    pub split_from: Option<Uuid>,
    /// iCalendar `SEQUENCE`: 0 when created, one more on every change of the series.
    pub sequence: i32,
    /// When the schedule was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the schedule was last changed (RFC 3339, UTC).
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

/// A busy occurrence of another schedule on the same calendar that overlaps a busy
/// occurrence of the written one (among the occurrences materialized so far, about a year
/// ahead).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conflict {
    /// The other schedule's id.
    pub schedule_id: Uuid,
    /// The other schedule's title (the series' title, `""` when it has none).
    pub title: String,
    /// The other occurrence's key: its local original start (`2026-03-10T09:00:00`, in its
    /// schedule's zone) or a date (`2026-03-10`) for an all-day schedule.
    pub original_start: String,
    /// When the other occurrence starts (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// When the other occurrence ends, exclusive (RFC 3339, UTC).
    pub end: DateTime<Utc>,
    /// Which occurrence of the written schedule it overlaps: that occurrence's original start,
    /// in the same forms as `original_start`.
    pub with_original_start: String,
}

/// A written schedule and the conflicts it has.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleWrite {
    /// The schedule as stored after the write.
    pub schedule: Schedule,
    /// Busy occurrences of other schedules on the calendar that overlap this one's, by start
    /// (at most 50); empty when there are none or this schedule is not busy.
    pub conflicts: Vec<Conflict>,
    /// Original starts of exceptions dropped because the edit removed their occurrence;
    /// always empty on create.
    pub dropped_exceptions: Vec<String>,
}

/// Fields of a new schedule. Timed: `start` and `end` (instants) and `time_zone` (default:
/// the calendar's). All-day: `start_date` and `end_date` (exclusive; default the next day).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Weekly product sync",
    "description": "Roadmap review and blockers.",
    "location": "Room 4.2",
    "start": "2026-03-02T08:00:00Z",
    "end": "2026-03-02T09:00:00Z",
    "time_zone": "Europe/Paris",
    "recurrence": { "rrule": ["FREQ=WEEKLY;BYDAY=MO;COUNT=16"], "exdate": ["2026-04-06T09:00:00"] },
    "reminders": [10, 60]
}))]
pub struct CreateSchedule {
    /// The title, trimmed, at most 1000 characters; default `""`.
    pub title: Option<String>,
    /// Free text, trimmed, at most 20000 characters; empty or absent for none.
    pub description: Option<String>,
    /// Where it takes place, trimmed, at most 1000 characters; empty or absent for none.
    pub location: Option<String>,
    /// Timed: the first occurrence's start (RFC 3339). Required for a timed schedule; not
    /// with `start_date`/`end_date`.
    pub start: Option<DateTime<Utc>>,
    /// Timed: the first occurrence's end (RFC 3339), not before `start`; required with
    /// `start`.
    pub end: Option<DateTime<Utc>>,
    /// Timed: the IANA zone the series recurs in (`Europe/Paris`); default the calendar's
    /// zone. Ignored for an all-day schedule.
    pub time_zone: Option<String>,
    /// All-day: the first day (`YYYY-MM-DD`). Required for an all-day schedule.
    pub start_date: Option<NaiveDate>,
    /// All-day: the day after the last day (exclusive), after `start_date`; default the day
    /// after `start_date`.
    pub end_date: Option<NaiveDate>,
    /// Whether it takes place; default `confirmed`.
    #[schema(value_type = Option<ScheduleStatus>)]
    pub status: Option<String>,
    /// Whether its time counts as busy; default `opaque`.
    #[schema(value_type = Option<TimeTransparency>)]
    pub transparency: Option<String>,
    /// Rules and dates of a recurring series; absent for a single event.
    pub recurrence: Option<RecurrenceBody>,
    /// Default reminders in minutes before each occurrence: at most 5, each 0–40320 (four
    /// weeks); duplicates are dropped. Default none.
    pub reminders: Option<Vec<i32>>,
    /// iCalendar UID, at most 1000 characters, unique within the calendar (409 `uid_taken`
    /// otherwise); default `{id}@potentia`.
    pub uid: Option<String>,
    /// True: refuse with 409 `schedule_conflict` (nothing is saved) instead of answering the
    /// conflicts. Default false.
    #[serde(default)]
    pub strict: bool,
}

/// Changes to a schedule (a whole series). Absent fields stay; `null` clears description,
/// location and recurrence. Giving `start`/`end` makes it timed, `start_date`/`end_date`
/// all-day. Exceptions whose occurrence still exists are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Product & design sync",
    "location": "Room 5.1",
    "reminders": [15]
}))]
pub struct PatchSchedule {
    /// The new title, trimmed, at most 1000 characters; `""` empties it, `null` keeps it.
    pub title: Option<String>,
    /// The new description, at most 20000 characters; `null` (or `""`) clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The new location, at most 1000 characters; `null` (or `""`) clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    /// The first occurrence's new start (RFC 3339). Alone, it keeps the duration; turning an
    /// all-day schedule timed needs `end` too.
    pub start: Option<DateTime<Utc>>,
    /// The first occurrence's new end (RFC 3339), not before the start.
    pub end: Option<DateTime<Utc>>,
    /// The new IANA zone of a timed series (the start instant stays); turning an all-day
    /// schedule timed, default the calendar's zone. Alone on an all-day schedule it is refused.
    pub time_zone: Option<String>,
    /// The new first day (`YYYY-MM-DD`); makes a timed schedule all-day. Alone, an all-day
    /// schedule keeps its number of days and a timed one becomes one day long.
    pub start_date: Option<NaiveDate>,
    /// The new day after the last day (exclusive), after the first day; a timed schedule
    /// needs `start_date` with it.
    pub end_date: Option<NaiveDate>,
    /// The new status; `null` keeps it.
    #[schema(value_type = Option<ScheduleStatus>)]
    pub status: Option<String>,
    /// The new transparency; `null` keeps it.
    #[schema(value_type = Option<TimeTransparency>)]
    pub transparency: Option<String>,
    /// New rules and dates, replacing all three lists; `null` makes it a single event.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RecurrenceBody>)]
    pub recurrence: Option<Option<RecurrenceBody>>,
    /// New default reminders in minutes before: at most 5, each 0–40320; `[]` for none.
    pub reminders: Option<Vec<i32>>,
    /// True: refuse with 409 `schedule_conflict` (nothing is saved) instead of answering the
    /// conflicts. Default false.
    #[serde(default)]
    pub strict: bool,
}

fn status_field(status: Option<String>, default: &str) -> Result<String, FieldError> {
    let status = status.unwrap_or_else(|| default.to_owned());
    match ScheduleStatus::parse(&status) {
        Some(_) => Ok(status),
        None => Err(FieldError::new(
            "status",
            "must be confirmed, tentative or cancelled",
        )),
    }
}

fn transparency_field(value: Option<String>, default: &str) -> Result<String, FieldError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    match TimeTransparency::parse(&value) {
        Some(_) => Ok(value),
        None => Err(FieldError::new(
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

/// The series a request asks to store: valid, and no denser than once an hour.
fn series_field(timing: Timing, recurrence: &RecurrenceBody) -> Result<Series, ApiError> {
    Series::new(
        timing,
        &recurrence.rrule,
        &recurrence.rdate,
        &recurrence.exdate,
    )
    .and_then(|series| series.check_density().map(|()| series))
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

/// Creates a schedule (calendar editor).
///
/// Timed (`start`/`end` in `time_zone`) or all-day (`start_date`/`end_date`), single or
/// recurring. The caller becomes its organizer and first guest (accepted). Conflicts with
/// other busy schedules on the calendar are reported, or refused with `strict`.
#[utoipa::path(post, path = "/api/v1/calendars/{calendar_id}/schedules", tag = "schedules", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)), request_body = CreateSchedule,
    responses((status = 201, description = "The schedule as stored, with the busy occurrences on the calendar it overlaps", body = ScheduleWrite),
              (status = 400, description = "An unknown `time_zone`, or a recurrence rule or date that cannot be parsed (`errors[]` names `recurrence.rrule`, `.rdate`, `.exdate` or `.dtstart`)", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller's role on the calendar is below editor", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "`strict` and the schedule overlaps busy occurrences (`schedule_conflict`), `uid` is taken in the calendar (`uid_taken`), or the calendar is full (`calendar_full`: 20,000 schedules or 500,000 stored occurrences)", body = Problem, content_type = "application/problem+json"),
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
    materialize::check_schedule_count(&mut tx, calendar_id).await?;
    db::insert_guest(
        &mut *tx,
        id,
        &NewGuest {
            user_id: Some(caller.id),
            email: organizer_email.as_deref(),
            display_name: None,
            optional: false,
            organizer: true,
            rsvp: RsvpStatus::Accepted.as_str(),
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
    responses((status = 200, description = "One page of the calendar's schedules, oldest first; `my_reminders` here are each schedule's defaults (`GET /schedules/{schedule_id}` gives the caller's own)", body = Page<Schedule>),
              (status = 403, description = "The caller has only the free/busy role on the calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 200, description = "The schedule, with the caller's own reminders in `my_reminders`", body = Schedule),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar (viewer or more) nor is its guest", body = Problem, content_type = "application/problem+json")))]
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

/// Changes a whole series (calendar editor).
///
/// Exceptions whose occurrence still exists are kept; the others are dropped and listed.
#[utoipa::path(patch, path = "/api/v1/schedules/{schedule_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = PatchSchedule,
    responses((status = 200, description = "The schedule as stored after the change, with its conflicts and the original starts of the exceptions dropped", body = ScheduleWrite),
              (status = 400, description = "An unknown `time_zone`, or a recurrence rule or date that cannot be parsed", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "`strict` and the changed schedule overlaps busy occurrences (`schedule_conflict`), or its occurrences would pass the calendar's 500,000 (`calendar_full`); nothing is saved", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 204, description = "Deleted, with its exceptions, guests and reminders"),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json")))]
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

/// One occurrence changed or cancelled. Null overrides keep the series' values.
#[derive(Debug, Serialize, ToSchema)]
pub struct Exception {
    /// The exception's id.
    pub id: Uuid,
    /// The schedule whose occurrence it changes.
    pub schedule_id: Uuid,
    /// The occurrence it replaces: `2026-03-10T09:00:00` (local) or `2026-03-10` (all-day).
    pub original_start: String,
    /// True: the occurrence is removed from views, free/busy and conflicts.
    pub cancelled: bool,
    /// The occurrence's title; null keeps the series' title.
    pub title: Option<String>,
    /// The occurrence's description; null keeps the series' description.
    pub description: Option<String>,
    /// The occurrence's location; null keeps the series' location.
    pub location: Option<String>,
    /// Timed series: the occurrence's new start (RFC 3339, UTC); null when it keeps its time.
    pub start: Option<DateTime<Utc>>,
    /// Timed series: the occurrence's new end (RFC 3339, UTC); null when it keeps its time.
    pub end: Option<DateTime<Utc>>,
    /// All-day series: the occurrence's new first day; null when it keeps its days.
    pub start_date: Option<NaiveDate>,
    /// All-day series: the day after the occurrence's new last day (exclusive); null when it
    /// keeps its days.
    pub end_date: Option<NaiveDate>,
    /// The occurrence's status; null keeps the series' status.
    #[schema(value_type = Option<ScheduleStatus>)]
    pub status: Option<String>,
    /// The occurrence's transparency; null keeps the series' transparency.
    #[schema(value_type = Option<TimeTransparency>)]
    pub transparency: Option<String>,
    /// When the exception was first created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the exception was last written (RFC 3339, UTC).
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
/// series' values; the body replaces any earlier exception of the same occurrence.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "original_start": "2026-03-16T09:00:00",
    "title": "Weekly product sync (moved)",
    "location": "Room 2.1",
    "start": "2026-03-17T13:00:00Z",
    "end": "2026-03-17T14:00:00Z"
}))]
pub struct PutException {
    /// The occurrence's original start: `2026-03-10T09:00:00` (local, in the schedule's zone),
    /// an instant such as `2026-03-10T08:00:00Z` (the form `GET /instances` reports starts in),
    /// or `2026-03-10` (all-day). It must be an occurrence of the series.
    pub original_start: String,
    /// True: the occurrence is removed from views, free/busy and conflicts. Default false.
    #[serde(default)]
    pub cancelled: bool,
    /// The occurrence's title, trimmed, at most 1000 characters; absent keeps the series'.
    pub title: Option<String>,
    /// The occurrence's description, at most 20000 characters; absent keeps the series'.
    pub description: Option<String>,
    /// The occurrence's location, at most 1000 characters; absent keeps the series'.
    pub location: Option<String>,
    /// Timed series only: the occurrence's new start (RFC 3339). Alone, it keeps the series'
    /// duration.
    pub start: Option<DateTime<Utc>>,
    /// Timed series only: the occurrence's new end (RFC 3339), not before its start; needs
    /// `start`.
    pub end: Option<DateTime<Utc>>,
    /// All-day series only: the occurrence's new first day. Alone, it keeps the series' number
    /// of days.
    pub start_date: Option<NaiveDate>,
    /// All-day series only: the day after the occurrence's new last day (exclusive), after
    /// `start_date`; needs `start_date`.
    pub end_date: Option<NaiveDate>,
    /// The occurrence's status; absent keeps the series'.
    #[schema(value_type = Option<ScheduleStatus>)]
    pub status: Option<String>,
    /// The occurrence's transparency; absent keeps the series'.
    #[schema(value_type = Option<TimeTransparency>)]
    pub transparency: Option<String>,
}

/// A written exception and the schedule's conflicts after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionWrite {
    /// The exception as stored.
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
///
/// The body replaces any earlier exception of the same occurrence.
#[utoipa::path(put, path = "/api/v1/schedules/{schedule_id}/exceptions", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = PutException,
    responses((status = 200, description = "The exception as stored, with the schedule's conflicts after the change", body = ExceptionWrite),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The calendar would hold more than 500,000 stored occurrences (`calendar_full`); nothing is saved", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "`original_start` is not an occurrence of the series, times of the wrong kind (`start`/`end` on an all-day series or the reverse), or another invalid field", body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 200, description = "One page of the schedule's exceptions, in the order they were created", body = Page<Exception>),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 204, description = "Restored: the occurrence follows the series again"),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule visible to the caller, or no exception at `original_start` (also when it cannot be read as an original start)", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The calendar would hold more than 500,000 stored occurrences (`calendar_full`); nothing is saved", body = Problem, content_type = "application/problem+json")))]
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
#[schema(example = json!({
    "original_start": "2026-04-13T09:00:00",
    "changes": {
        "title": "Weekly product sync (afternoon)",
        "start": "2026-04-13T12:00:00Z",
        "end": "2026-04-13T13:00:00Z"
    }
}))]
pub struct SplitSchedule {
    /// The first occurrence of the new series: its original start, local or as an instant
    /// (see `PutException::original_start`). It must be an occurrence, and not the first one.
    pub original_start: String,
    /// Changes for the new series, as in a patch (its `strict` applies to the new series);
    /// absent or `null`: the new series starts unchanged.
    #[serde(default)]
    pub changes: Option<PatchSchedule>,
}

/// The two series a split leaves.
#[derive(Debug, Serialize, ToSchema)]
pub struct SplitResult {
    /// The original series, now ending before the split.
    pub before: Schedule,
    /// The new series, from the split occurrence on, with a new id and UID and `split_from`
    /// set; it has the original's guests.
    pub after: Schedule,
    /// Conflicts of the new series (at most 50).
    pub conflicts: Vec<Conflict>,
    /// Original starts of the exceptions from the split on whose occurrence the new series no
    /// longer has; they were deleted. The others moved to the new series.
    pub dropped_exceptions: Vec<String>,
}

/// Splits a series "this and following" (calendar editor).
///
/// The series ends before `original_start`; a new series (new id and UID, the same guests)
/// starts there with `changes`, and takes the exceptions whose occurrence it still has.
#[utoipa::path(post, path = "/api/v1/schedules/{schedule_id}/split", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = SplitSchedule,
    responses((status = 201, description = "The shortened original series and the new one, with the new series' conflicts", body = SplitResult),
              (status = 400, description = "The series cannot be split at `original_start`, or `changes` has an unknown zone or a recurrence that cannot be parsed", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "`changes.strict` and the new series overlaps busy occurrences (`schedule_conflict`), or the calendar is full (`calendar_full`); nothing is saved", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "`original_start` is not an occurrence, or is the first one (change the whole series with PATCH), or a change is invalid", body = Problem, content_type = "application/problem+json")))]
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
    materialize::check_schedule_count(&mut tx, record.calendar_id).await?;
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

/// Someone invited to a schedule: a user, or an email address of someone without an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Guest {
    /// The guest entry's id.
    pub id: Uuid,
    /// The schedule the guest is invited to.
    pub schedule_id: Uuid,
    /// The guest's user id; null for an email guest with no account of that email.
    pub user_id: Option<Uuid>,
    /// The guest's email address; null for a user without one.
    pub email: Option<String>,
    /// The name to show for the guest, at most 200 characters; null when none was given.
    pub display_name: Option<String>,
    /// True when attendance is optional.
    pub optional: bool,
    /// True for the organizer's own entry (the creator's, added with the schedule; on import,
    /// the attendee whose email is the `ORGANIZER`'s).
    pub organizer: bool,
    /// The guest's answer.
    #[schema(value_type = RsvpStatus)]
    pub rsvp: String,
    /// When the guest was invited (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the guest last answered (RFC 3339, UTC); null until they do.
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
/// Give exactly one of `user_id` and `email`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "marie.dupont@example.com",
    "display_name": "Marie Dupont",
    "optional": true
}))]
pub struct InviteGuest {
    /// The user to invite (an existing user; their email is taken from their profile).
    pub user_id: Option<Uuid>,
    /// The email address to invite, at most 254 characters; linked to the user with that email
    /// if there is one.
    pub email: Option<String>,
    /// The name to show for the guest, trimmed, at most 200 characters.
    pub display_name: Option<String>,
    /// True when attendance is optional. Default false.
    #[serde(default)]
    pub optional: bool,
}

/// The caller's answer to an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "response": "accepted" }))]
pub struct Rsvp {
    /// The answer (`needs_action` takes an earlier one back).
    #[schema(value_type = RsvpStatus)]
    pub response: String,
}

/// Invites a guest (calendar editor).
#[utoipa::path(post, path = "/api/v1/schedules/{schedule_id}/guests", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = InviteGuest,
    responses((status = 201, description = "The guest as invited, not answered yet (`needs_action`)", body = Guest),
              (status = 403, description = "The caller can see the schedule but is not an editor of its calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "This user or email is already a guest (`already_a_guest`)", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Not exactly one of `user_id` and `email`, an unknown `user_id`, or an invalid email or name", body = Problem, content_type = "application/problem+json")))]
pub async fn invite_guest(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<InviteGuest>,
) -> ApiResult<(StatusCode, ApiJson<Guest>)> {
    let display_name = bounded_text("display_name", body.display_name, MAX_GUEST_NAME_CHARS)
        .map_err(|e| ApiError::invalid_fields(vec![e]))?;
    let email = bounded_text("email", body.email, MAX_GUEST_EMAIL_CHARS)
        .map_err(|e| ApiError::invalid_fields(vec![e]))?;
    if let Some(email) = &email {
        if !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(ApiError::invalid_field("email", "is not an email address"));
        }
    }
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    access.require(CalendarRole::Editor)?;
    // A guest invited by id is stored without their address, and one invited by address is tied
    // to the account that verified it: neither answer tells the inviter more than they gave.
    let (user_id, email) = match (body.user_id, email) {
        (Some(user_id), None) => {
            if !db::user_exists(&mut *tx, user_id).await? {
                return Err(ApiError::invalid_field("user_id", "no such user"));
            }
            (Some(user_id), None)
        }
        (None, Some(email)) => (
            db::verified_user_by_email(&mut *tx, &email).await?,
            Some(email),
        ),
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
            rsvp: RsvpStatus::NeedsAction.as_str(),
        },
    )
    .await?
    .ok_or_else(|| ApiError::conflict("already_a_guest", "this guest is already invited"))?;
    let guest = shown_guests(&mut tx, caller.id, vec![guest])
        .await?
        .pop()
        .ok_or(ApiError::NotFound { what: "guest" })?;
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

/// `guests` as `caller` may see them: a guest invited by address keeps the address the inviter
/// typed, and names the account that verified it only to those who share a workspace, canvas
/// or calendar with that account (so an answer never tells whether an address has an account).
async fn shown_guests(
    conn: &mut PgConnection,
    caller: Uuid,
    guests: Vec<GuestRecord>,
) -> Result<Vec<Guest>, ApiError> {
    let linked: Vec<Uuid> = guests
        .iter()
        .filter(|g| g.email.is_some())
        .filter_map(|g| g.user_id)
        .collect();
    let related = related_users(&mut *conn, caller, &linked).await?;
    Ok(guests
        .into_iter()
        .map(|guest| {
            let hidden =
                guest.email.is_some() && guest.user_id.is_some_and(|u| !related.contains(&u));
            let mut shown = Guest::from(guest);
            if hidden {
                shown.user_id = None;
            }
            shown
        })
        .collect())
}

/// The schedule's guests (calendar viewer, or a guest).
#[utoipa::path(get, path = "/api/v1/schedules/{schedule_id}/guests", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of the schedule's guests, the organizer's entry included, in the order they were invited", body = Page<Guest>),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json")))]
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
        items: shown_guests(&mut conn, caller.id, page.items).await?,
        next_cursor: page.next_cursor,
    }))
}

/// Removes a guest (calendar editor; a guest may remove themselves).
#[utoipa::path(delete, path = "/api/v1/schedules/{schedule_id}/guests/{guest_id}", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path), ("guest_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "The guest is someone else and the caller is not an editor of the calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule visible to the caller, or no such guest on it", body = Problem, content_type = "application/problem+json")))]
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
    responses((status = 200, description = "The caller's guest entry with the new answer and `responded_at`", body = Guest),
              (status = 403, description = "The caller can see the schedule but is not one of its guests (`not_a_guest`)", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rsvp(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Rsvp>,
) -> ApiResult<ApiJson<Guest>> {
    let Some(response) = RsvpStatus::parse(&body.response) else {
        return Err(ApiError::invalid_field(
            "response",
            "must be needs_action, accepted, tentative or declined",
        ));
    };
    let mut tx = state.db.begin().await?;
    let access = schedule_access(&mut tx, caller.id, schedule_id, true).await?;
    let guest = access.guest.ok_or_else(|| ApiError::Forbidden {
        code: "not_a_guest",
        detail: "only a guest can answer an invitation".into(),
    })?;
    let before = guest.rsvp.clone();
    let updated = Guest::from(db::set_rsvp(&mut *tx, guest.id, response.as_str()).await?);
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

/// The caller's own reminders for one schedule, replacing its defaults for them only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "minutes": [10, 1440] }))]
pub struct SetReminders {
    /// Minutes before each occurrence, at most 5, each 0–40320 (four weeks); duplicates are
    /// dropped; `[]` for none.
    pub minutes: Vec<i32>,
}

/// The reminders that apply to the caller for one schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyReminders {
    /// The schedule they are for.
    pub schedule_id: Uuid,
    /// Minutes before each occurrence, ascending.
    pub minutes: Vec<i32>,
    /// True when these are the caller's own, false when they are the schedule's defaults.
    pub overridden: bool,
}

/// Sets the caller's own reminders for a schedule they can see.
#[utoipa::path(put, path = "/api/v1/schedules/{schedule_id}/reminders", tag = "schedules", security(("bearer" = [])),
    params(("schedule_id" = Uuid, Path)), request_body = SetReminders,
    responses((status = 200, description = "The caller's reminders as stored, sorted (`overridden` true)", body = MyReminders),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json"),
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
    responses((status = 200, description = "The schedule's default reminders, which apply to the caller again (`overridden` false)", body = MyReminders),
              (status = 404, description = "No such schedule, or the caller neither reads its calendar nor is its guest", body = Problem, content_type = "application/problem+json")))]
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
