//! iCalendar: the secret-URL `.ics` feed of a calendar, and `.ics` import into one.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::event::{AttendeeRole, EventStatus, ParticipationStatus, Transparency};
use potentia_calendar::ical::{self, Attendee, Event, EventEnd, Organizer, RecurrenceId};
use potentia_calendar::recurrence::{Occurrence, OriginalStart, SeriesStart};
use potentia_calendar::schedule::{original_start_text, Series, Timing};
use potentia_calendar::timezone::resolve_local;
use potentia_calendar::CalendarError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::db::{self, ExceptionRecord, NewGuest, ScheduleFields, ScheduleRecord};
use super::routes::feed_hash;
use super::schedules::{
    RsvpStatus, ScheduleStatus, TimeTransparency, MAX_DESCRIPTION_CHARS, MAX_LOCATION_CHARS,
    MAX_REMINDERS, MAX_REMINDER_MINUTES, MAX_TITLE_CHARS,
};
use super::{calendar_error, materialize};
use crate::access::{calendar_access, require_calendar, CalendarRole};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiPath, RequestId};
use crate::state::AppState;
use crate::validation::storable_body;

/// The most schedules a feed holds.
pub const MAX_FEED_SCHEDULES: i64 = 20_000;

fn text_limited(text: Option<String>, max: usize) -> Option<String> {
    text.map(|t| {
        t.chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .take(max)
            .collect::<String>()
    })
    .filter(|t| !t.trim().is_empty())
}

/// An event's alarms as a schedule's reminders: within the schedules' limits, the nearest kept.
fn imported_reminders(minutes: &[u32]) -> Vec<i32> {
    minutes
        .iter()
        .filter_map(|m| i32::try_from(*m).ok())
        .filter(|m| *m <= MAX_REMINDER_MINUTES)
        .take(MAX_REMINDERS)
        .collect()
}

fn status_text(status: Option<EventStatus>) -> &'static str {
    match status {
        Some(EventStatus::Tentative) => ScheduleStatus::Tentative,
        Some(EventStatus::Cancelled) => ScheduleStatus::Cancelled,
        Some(EventStatus::Confirmed) | None => ScheduleStatus::Confirmed,
    }
    .as_str()
}

fn status_of(text: &str) -> EventStatus {
    match ScheduleStatus::parse(text) {
        Some(ScheduleStatus::Tentative) => EventStatus::Tentative,
        Some(ScheduleStatus::Cancelled) => EventStatus::Cancelled,
        Some(ScheduleStatus::Confirmed) | None => EventStatus::Confirmed,
    }
}

fn transparency_of(text: &str) -> Transparency {
    match TimeTransparency::parse(text) {
        Some(TimeTransparency::Transparent) => Transparency::Transparent,
        Some(TimeTransparency::Opaque) | None => Transparency::Opaque,
    }
}

fn transparency_text(value: Transparency) -> &'static str {
    match value {
        Transparency::Opaque => TimeTransparency::Opaque,
        Transparency::Transparent => TimeTransparency::Transparent,
    }
    .as_str()
}

fn participation_of(rsvp: &str) -> ParticipationStatus {
    match RsvpStatus::parse(rsvp) {
        Some(RsvpStatus::Accepted) => ParticipationStatus::Accepted,
        Some(RsvpStatus::Tentative) => ParticipationStatus::Tentative,
        Some(RsvpStatus::Declined) => ParticipationStatus::Declined,
        Some(RsvpStatus::NeedsAction) | None => ParticipationStatus::NeedsAction,
    }
}

fn rsvp_of(status: ParticipationStatus) -> &'static str {
    match status {
        ParticipationStatus::Accepted => RsvpStatus::Accepted,
        ParticipationStatus::Tentative => RsvpStatus::Tentative,
        ParticipationStatus::Declined => RsvpStatus::Declined,
        ParticipationStatus::NeedsAction | ParticipationStatus::Delegated => {
            RsvpStatus::NeedsAction
        }
    }
    .as_str()
}

/// `SeriesStart` of an instant in a zone.
fn zoned(at: chrono::DateTime<Utc>, zone: Tz) -> SeriesStart {
    SeriesStart::Zoned {
        local: at.with_timezone(&zone).naive_local(),
        zone,
    }
}

fn export_event(
    record: &ScheduleRecord,
    exceptions: &[&ExceptionRecord],
    guests: &[&db::GuestRecord],
    placement: Tz,
) -> Result<Vec<Event>, ApiError> {
    let timing = materialize::timing_of(record)?;
    // Cancelled occurrences are written as EXDATEs of the series.
    let mut exdates = record.exdate.clone();
    for exception in exceptions.iter().filter(|x| x.cancelled) {
        exdates.push(if record.all_day {
            exception.original_start.format("%Y%m%d").to_string()
        } else {
            exception.original_start.format("%Y%m%dT%H%M%S").to_string()
        });
    }
    let series = Series::new(timing, &record.rrule, &record.rdate, &exdates)
        .map_err(|e| ApiError::Internal(format!("schedule {}: {e}", record.id)))?;
    let (start, end) = match timing {
        Timing::Timed { start, end, zone } => (zoned(start, zone), zoned(end, zone)),
        Timing::AllDay { start, end } => (SeriesStart::AllDay(start), SeriesStart::AllDay(end)),
    };
    let mut master = Event::new(record.uid.clone(), start);
    master.sequence = u32::try_from(record.sequence).unwrap_or(0);
    master.summary = Some(record.title.clone()).filter(|t| !t.is_empty());
    master.description = record.description.clone();
    master.location = record.location.clone();
    master.end = Some(EventEnd::At(end));
    master.status = Some(status_of(&record.status));
    master.transparency = transparency_of(&record.transparency);
    if series.is_recurring() || !exdates.is_empty() {
        master.recurrence = Some(series.recurrence().clone());
    }
    master.reminders = record
        .reminders
        .iter()
        .filter_map(|minutes| u32::try_from(*minutes).ok())
        .collect();
    master.organizer = record.organizer_email.as_ref().map(|email| Organizer {
        address: format!("mailto:{email}"),
        common_name: None,
    });
    master.attendees = guests
        .iter()
        .filter_map(|guest| {
            let email = guest.email.as_ref()?;
            let mut attendee = Attendee::new(format!("mailto:{email}"));
            attendee.common_name = guest.display_name.clone();
            attendee.participation = participation_of(&guest.rsvp);
            attendee.role = if guest.organizer {
                AttendeeRole::Chair
            } else if guest.optional {
                AttendeeRole::Optional
            } else {
                AttendeeRole::Required
            };
            Some(attendee)
        })
        .collect();
    let mut events = vec![master.clone()];
    for exception in exceptions.iter().filter(|x| !x.cancelled) {
        let Some(occurrence) = series.occurrence_at(exception.original_start, placement) else {
            continue;
        };
        let mut event = master.clone();
        event.recurrence = None;
        event.recurrence_id = Some(RecurrenceId {
            original_start: if record.all_day {
                OriginalStart::Date(exception.original_start.date())
            } else {
                OriginalStart::DateTime(exception.original_start)
            },
            this_and_future: false,
        });
        match (
            timing,
            exception.start_at,
            exception.end_at,
            exception.start_date,
            exception.end_date,
        ) {
            (Timing::Timed { zone, .. }, Some(s), Some(e), _, _) => {
                event.start = zoned(s, zone);
                event.end = Some(EventEnd::At(zoned(e, zone)));
            }
            (Timing::AllDay { .. }, _, _, Some(s), Some(e)) => {
                event.start = SeriesStart::AllDay(s);
                event.end = Some(EventEnd::At(SeriesStart::AllDay(e)));
            }
            (Timing::Timed { zone, .. }, ..) => {
                event.start = zoned(occurrence.start, zone);
                event.end = Some(EventEnd::At(zoned(occurrence.end, zone)));
            }
            (Timing::AllDay { start, end }, ..) => {
                let day = exception.original_start.date();
                event.start = SeriesStart::AllDay(day);
                event.end = Some(EventEnd::At(SeriesStart::AllDay(day + (end - start))));
            }
        }
        if let Some(title) = &exception.title {
            event.summary = Some(title.clone());
        }
        if exception.description.is_some() {
            event.description = exception.description.clone();
        }
        if exception.location.is_some() {
            event.location = exception.location.clone();
        }
        if let Some(status) = &exception.status {
            event.status = Some(status_of(status));
        }
        if let Some(transparency) = &exception.transparency {
            event.transparency = transparency_of(transparency);
        }
        events.push(event);
    }
    Ok(events)
}

/// The calendar as iCalendar text.
pub async fn export_calendar(state: &AppState, calendar_id: Uuid) -> Result<String, ApiError> {
    let calendar = db::find_calendar(&state.db, calendar_id)
        .await?
        .ok_or(ApiError::NotFound { what: "calendar" })?;
    let placement = materialize::zone_of(&calendar.time_zone);
    let schedules = db::all_schedules(&state.db, calendar_id, MAX_FEED_SCHEDULES).await?;
    let ids: Vec<Uuid> = schedules.iter().map(|s| s.id).collect();
    let guests = db::all_guests(&state.db, &ids).await?;
    let mut guests_of: HashMap<Uuid, Vec<&db::GuestRecord>> = HashMap::new();
    for guest in &guests {
        guests_of.entry(guest.schedule_id).or_default().push(guest);
    }
    let mut exceptions = Vec::new();
    for schedule in &schedules {
        exceptions.extend(db::exceptions_of(&state.db, schedule.id).await?);
    }
    let mut exceptions_of: HashMap<Uuid, Vec<&ExceptionRecord>> = HashMap::new();
    for exception in &exceptions {
        exceptions_of
            .entry(exception.schedule_id)
            .or_default()
            .push(exception);
    }
    let mut events = Vec::new();
    for schedule in &schedules {
        events.extend(export_event(
            schedule,
            exceptions_of
                .get(&schedule.id)
                .map_or(&[][..], Vec::as_slice),
            guests_of.get(&schedule.id).map_or(&[][..], Vec::as_slice),
            placement,
        )?);
    }
    let feed = ical::Calendar {
        name: Some(calendar.name),
        time_zone: Some(placement),
        events,
    };
    Ok(ical::export(&feed, Utc::now()))
}

/// The calendar's `.ics` feed, read with its secret URL.
///
/// No bearer token: the secret in the URL is the credential (`…/calendar-feeds/{token}.ics`,
/// from `POST /calendars/{id}/feed-token`).
#[utoipa::path(get, path = "/api/v1/calendar-feeds/{token}", tag = "calendars",
    params(("token" = String, Path, description = "The feed secret, optionally followed by `.ics`")),
    responses((status = 200, description = "The whole calendar as iCalendar text (at most 20000 schedules, with their exceptions and guests)", content_type = "text/calendar"),
              (status = 400, description = "The token is not valid UTF-8 once percent-decoded (`invalid_path_parameter`)", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No calendar has this feed secret: the feed is off, the secret was rotated, or whoever turned it on no longer has the owner role", body = Problem, content_type = "application/problem+json")))]
pub async fn calendar_feed(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Response> {
    let token = token.strip_suffix(".ics").unwrap_or(&token);
    let not_found = || ApiError::NotFound { what: "feed" };
    let feed = db::find_feed(&state.db, &feed_hash(token))
        .await?
        .ok_or_else(not_found)?;
    // A feed lives only as long as its maker may still turn it on.
    let maker = feed.created_by.ok_or_else(not_found)?;
    let maker_role = calendar_access(&state.db, maker, feed.calendar_id)
        .await?
        .and_then(|access| access.role);
    if maker_role < Some(CalendarRole::Owner) {
        return Err(not_found());
    }
    let text = export_calendar(&state, feed.calendar_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        text,
    )
        .into_response())
}

/// Why an event of an imported file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportSkipReason {
    /// An `RRULE`, `RDATE`, `EXDATE` or `DTSTART` that is malformed or inconsistent.
    InvalidRecurrence,
    /// A time zone name that is not an IANA zone.
    UnknownTimeZone,
    /// A `TZID` that names no recognisable zone (custom `VTIMEZONE` rules are not read).
    UnrecognizedTzid,
    /// The event cannot be read: a missing `UID` or `DTSTART`, a malformed value, or a
    /// duplicate of an event with the same `UID` and a higher or equal `SEQUENCE`.
    InvalidIcalendar,
    /// Over one of the import limits (a whole file over one is refused with a 400 instead).
    IcalendarLimitExceeded,
    /// An exception (`RECURRENCE-ID`) whose series is not in the file, or was skipped itself.
    SeriesNotInFile,
    /// An exception (`RECURRENCE-ID`) naming no occurrence of its series.
    NotAnOccurrence,
}

impl ImportSkipReason {
    fn of(error: &CalendarError) -> Self {
        match error {
            CalendarError::InvalidRecurrence { .. } => Self::InvalidRecurrence,
            CalendarError::UnknownTimeZone { .. } => Self::UnknownTimeZone,
            CalendarError::UnrecognizedTzid { .. } => Self::UnrecognizedTzid,
            CalendarError::InvalidIcal { .. } => Self::InvalidIcalendar,
            CalendarError::IcalLimitExceeded { .. } => Self::IcalendarLimitExceeded,
        }
    }
}

/// An event of the file that was not imported.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedImport {
    /// The line of the event's `BEGIN:VEVENT` (1-based); 0 when it was left out after reading
    /// (its series or occurrence did not fit).
    pub line: usize,
    /// The event's `UID`; null when it had none.
    pub uid: Option<String>,
    /// Why it was left out.
    pub reason: ImportSkipReason,
    /// The same in words for the user, naming the property or value at fault.
    pub detail: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// Schedules created.
    pub created: usize,
    /// Schedules replaced (same UID already in the calendar); their earlier exceptions are
    /// dropped.
    pub updated: usize,
    /// Exceptions (`RECURRENCE-ID` events) stored.
    pub exceptions: usize,
    /// Events left out, with why.
    pub skipped: Vec<SkippedImport>,
    /// Ignored lines and other things worth telling the user, as `line 12: …` or `UID …: …`;
    /// at most 100 from reading the file.
    pub warnings: Vec<String>,
}

fn timing_of_event(event: &Event, placement: Tz) -> Result<Timing, String> {
    match event.start {
        SeriesStart::AllDay(date) => {
            let days = match event.end {
                None => 1,
                Some(EventEnd::At(end)) => (end.local_start().date() - date).num_days().max(1),
                Some(EventEnd::Duration(duration)) => i64::from(duration.days.max(1)),
            };
            Ok(Timing::AllDay {
                start: date,
                end: date + Duration::days(days),
            })
        }
        SeriesStart::Zoned { local, zone } => {
            let start = resolve_local(local, zone);
            let period = event.occurrence_period(
                &Occurrence::Timed {
                    original_start: local,
                    start,
                },
                placement,
            );
            Ok(Timing::Timed {
                start,
                end: period.end.max(start),
                zone,
            })
        }
        // Floating: read once, in the calendar's zone.
        SeriesStart::Floating(local) => {
            let start = resolve_local(local, placement);
            let period = event.occurrence_period(
                &Occurrence::Timed {
                    original_start: local,
                    start,
                },
                placement,
            );
            Ok(Timing::Timed {
                start,
                end: period.end.max(start),
                zone: placement,
            })
        }
    }
}

/// Imports an `.ics` file into the calendar (editor).
///
/// Send the file as the body with `Content-Type: text/calendar`. Each `VEVENT` becomes a
/// schedule (one with a UID already in the calendar is replaced), events with
/// `RECURRENCE-ID` become exceptions of their series. Floating times are read in the
/// calendar's zone. Events that cannot be imported are listed in `skipped`; the rest are
/// imported.
#[utoipa::path(post, path = "/api/v1/calendars/{calendar_id}/import", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)),
    request_body(content = String, content_type = "text/calendar", description = "The iCalendar file"),
    responses((status = 200, description = "What was created, replaced and skipped", body = ImportResult),
              (status = 400, description = "The body is not iCalendar, or is over an import limit (`invalid_icalendar`, `icalendar_limit_exceeded`)", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller's role on the calendar is below editor", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The import would make the calendar hold more than 20,000 schedules or 500,000 stored occurrences (`calendar_full`); nothing is imported", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "The body holds a NUL byte (`body`)", body = Problem, content_type = "application/problem+json"),
              (status = 413, description = "The file is over the server's body limit (`POTENTIA_BODY_LIMIT_BYTES`, 1 MiB by default)", body = Problem, content_type = "application/problem+json"),
              (status = 415, description = "The `Content-Type` is not `text/calendar`", body = Problem, content_type = "application/problem+json")))]
pub async fn import_calendar(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ApiJson<ImportResult>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Editor).await?;
    // Before any schedule row, as every writer of instances (see `db::lock_schedule`).
    db::lock_calendar(&mut *tx, calendar_id).await?;
    if content_type != "text/calendar" {
        return Err(ApiError::UnsupportedMediaType {
            detail: "expected an iCalendar body with `Content-Type: text/calendar`".into(),
        });
    }
    storable_body(&body)?;
    let report = ical::import(&body).map_err(|e| calendar_error(e, "body"))?;
    let calendar = db::find_calendar(&mut *tx, calendar_id)
        .await?
        .ok_or(ApiError::NotFound { what: "calendar" })?;
    let placement = materialize::zone_of(&calendar.time_zone);
    let importer_email = db::user_email(&mut *tx, caller.id).await?;
    let mut result = ImportResult {
        created: 0,
        updated: 0,
        exceptions: 0,
        skipped: report
            .skipped
            .iter()
            .map(|s| SkippedImport {
                line: s.line,
                uid: s.uid.clone(),
                reason: ImportSkipReason::of(&s.reason),
                detail: s.reason.to_string(),
            })
            .collect(),
        warnings: report
            .warnings
            .iter()
            .map(|w| format!("line {}: {}", w.line, w.message))
            .collect(),
    };
    let now = Utc::now();
    let mut touched: HashMap<String, ScheduleRecord> = HashMap::new();
    for event in report
        .calendar
        .events
        .iter()
        .filter(|e| e.recurrence_id.is_none())
    {
        let timing = match timing_of_event(event, placement) {
            Ok(timing) => timing,
            Err(detail) => {
                result.skipped.push(SkippedImport {
                    line: 0,
                    uid: Some(event.uid.clone()),
                    reason: ImportSkipReason::InvalidIcalendar,
                    detail,
                });
                continue;
            }
        };
        let series = match &event.recurrence {
            Some(recurrence) => Series::from_recurrence(timing, recurrence.clone()),
            None => Series::new(timing, &[] as &[String], &[], &[]),
        }
        .and_then(|series| series.check_density().map(|()| series));
        let series = match series {
            Ok(series) => series,
            Err(err) => {
                result.skipped.push(SkippedImport {
                    line: 0,
                    uid: Some(event.uid.clone()),
                    reason: ImportSkipReason::of(&err),
                    detail: err.to_string(),
                });
                continue;
            }
        };
        let uid: String = event.uid.chars().take(MAX_TITLE_CHARS).collect();
        let mut fields = ScheduleFields {
            uid: uid.clone(),
            title: text_limited(event.summary.clone(), MAX_TITLE_CHARS).unwrap_or_default(),
            description: text_limited(event.description.clone(), MAX_DESCRIPTION_CHARS),
            location: text_limited(event.location.clone(), MAX_LOCATION_CHARS),
            all_day: false,
            start_at: None,
            end_at: None,
            time_zone: None,
            start_date: None,
            end_date: None,
            status: status_text(event.status).to_owned(),
            transparency: transparency_text(event.transparency).to_owned(),
            rrule: series.rrule_texts(),
            rdate: series.rdate_texts(),
            exdate: series.exdate_texts(),
            reminders: imported_reminders(&event.reminders),
            organizer_id: None,
            organizer_email: event
                .organizer
                .as_ref()
                .and_then(|o| o.email())
                .map(str::to_owned),
        };
        match timing {
            Timing::Timed { start, end, zone } => {
                fields.start_at = Some(start);
                fields.end_at = Some(end);
                fields.time_zone = Some(zone.name().to_owned());
            }
            Timing::AllDay { start, end } => {
                fields.all_day = true;
                fields.start_date = Some(start);
                fields.end_date = Some(end);
            }
        }
        // The file's ORGANIZER names an account only when it is the importer's own address: an
        // import must not make someone else the organizer of anything.
        fields.organizer_id = fields
            .organizer_email
            .as_deref()
            .filter(|email| {
                importer_email
                    .as_deref()
                    .is_some_and(|mine| mine.eq_ignore_ascii_case(email))
            })
            .map(|_| caller.id);
        let window = materialize::initial_window(&series, placement, now);
        let record = match db::find_schedule_by_uid(&mut *tx, calendar_id, &uid).await? {
            Some(existing) => {
                result.updated += 1;
                sqlx::query!(
                    "delete from schedule_exceptions where schedule_id = $1",
                    existing.id
                )
                .execute(&mut *tx)
                .await?;
                db::update_schedule(&mut *tx, existing.id, &fields, window).await?
            }
            None => {
                result.created += 1;
                db::insert_schedule(
                    &mut *tx,
                    Uuid::now_v7(),
                    calendar_id,
                    &fields,
                    None,
                    window,
                    caller.id,
                )
                .await?
            }
        };
        for attendee in &event.attendees {
            let Some(email) = attendee.email() else {
                continue;
            };
            let user_id = db::verified_user_by_email(&mut *tx, email).await?;
            // A file speaks for no one else with an account: their answer is theirs to give.
            let rsvp = match user_id {
                Some(user) if user != caller.id => RsvpStatus::NeedsAction.as_str(),
                _ => rsvp_of(attendee.participation),
            };
            db::insert_guest(
                &mut *tx,
                record.id,
                &NewGuest {
                    user_id,
                    email: Some(email),
                    display_name: attendee.common_name.as_deref(),
                    optional: attendee.role == AttendeeRole::Optional,
                    // Only the importer, or someone without an account, may be named organizer.
                    organizer: event.organizer.as_ref().and_then(|o| o.email()) == Some(email)
                        && user_id.is_none_or(|user| user == caller.id),
                    rsvp,
                },
            )
            .await?;
        }
        touched.insert(record.uid.clone(), record);
    }
    for event in report
        .calendar
        .events
        .iter()
        .filter(|e| e.recurrence_id.is_some())
    {
        let Some(recurrence_id) = event.recurrence_id else {
            continue;
        };
        let Some(master) = touched.get(&event.uid) else {
            result.skipped.push(SkippedImport {
                line: 0,
                uid: Some(event.uid.clone()),
                reason: ImportSkipReason::SeriesNotInFile,
                detail: "an exception (RECURRENCE-ID) whose series is not in the file".into(),
            });
            continue;
        };
        let original = match recurrence_id.original_start {
            OriginalStart::DateTime(local) => local,
            OriginalStart::Date(date) => date.and_time(NaiveTime::MIN),
        };
        let series = materialize::series_of(master)?;
        if series.occurrence_at(original, placement).is_none() {
            result.skipped.push(SkippedImport {
                line: 0,
                uid: Some(event.uid.clone()),
                reason: ImportSkipReason::NotAnOccurrence,
                detail: format!(
                    "RECURRENCE-ID {} is not an occurrence of its series",
                    original_start_text(original, master.all_day)
                ),
            });
            continue;
        }
        if recurrence_id.this_and_future {
            result.warnings.push(format!(
                "UID {}: RANGE=THISANDFUTURE is applied to the one occurrence only",
                event.uid
            ));
        }
        let cancelled = event.status == Some(EventStatus::Cancelled);
        let (start_at, end_at, start_date, end_date) = match timing_of_event(event, placement) {
            Ok(Timing::Timed { start, end, .. }) if !master.all_day => {
                (Some(start), Some(end), None, None)
            }
            Ok(Timing::AllDay { start, end }) if master.all_day => {
                (None, None, Some(start), Some(end))
            }
            _ => (None, None, None, None),
        };
        db::upsert_exception(
            &mut *tx,
            &ExceptionRecord {
                id: Uuid::now_v7(),
                schedule_id: master.id,
                original_start: original,
                cancelled,
                title: text_limited(event.summary.clone(), MAX_TITLE_CHARS),
                description: text_limited(event.description.clone(), MAX_DESCRIPTION_CHARS),
                location: text_limited(event.location.clone(), MAX_LOCATION_CHARS),
                start_at,
                end_at,
                start_date,
                end_date,
                status: if cancelled {
                    None
                } else {
                    event.status.map(|s| status_text(Some(s)).to_owned())
                },
                transparency: Some(transparency_text(event.transparency).to_owned()),
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        result.exceptions += 1;
    }
    for record in touched.values() {
        materialize::rematerialize(&mut tx, record, placement, now).await?;
    }
    materialize::check_schedule_count(&mut tx, calendar_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.import", "calendar", calendar_id)
            .actor(caller.id)
            .after(serde_json::json!({ "created": result.created, "updated": result.updated,
                                       "exceptions": result.exceptions, "skipped": result.skipped.len() }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[calendar_id]).await;
    Ok(ApiJson(result))
}
