//! Reading time: the instances view across calendars, and free/busy.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use chrono_tz::Tz;
use potentia_calendar::freebusy::{merge_periods, TimePeriod};
use potentia_calendar::schedule::original_start_text;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::cache::Lookup;
use super::db::{self, ViewRow};
use super::materialize;
use super::schedules::{RsvpStatus, ScheduleStatus, TimeTransparency};
use crate::access::{calendar_access, combine_calendar_role, CalendarRole};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::tasks::routes::due_between;
use crate::tasks::Task;
use crate::validation::FieldErrors;

/// The longest span a view or a free/busy query may cover.
pub const MAX_RANGE_DAYS: i64 = 400;
/// Instances per page of the view: 1–2000, default 500.
pub const DEFAULT_VIEW_LIMIT: u32 = 500;
pub const MAX_VIEW_LIMIT: u32 = 2_000;
/// Calendars plus users in one free/busy query.
pub const MAX_FREEBUSY_ITEMS: usize = 50;
/// Calendars one view reads at most.
const MAX_VIEW_CALENDARS: i64 = 500;
/// Schedules on others' calendars one view shows because the caller is their guest, at most
/// (the newest invitations).
pub const MAX_VIEW_GUEST_SCHEDULES: i64 = 2_000;

/// A view or free/busy range: non-empty, at most [`MAX_RANGE_DAYS`] long, and within
/// [`materialize::MAX_DISTANCE`] of now at both ends.
fn range_field(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), ApiError> {
    if to <= from {
        return Err(ApiError::invalid_field(
            "time_max",
            "must be after time_min",
        ));
    }
    let now = Utc::now();
    let far = materialize::MAX_DISTANCE;
    let distance = format!("must be within {} days (5 years) of now", far.num_days());
    let mut errors = FieldErrors::default();
    if from < now - far {
        errors.push("time_min", distance.clone());
    }
    if to > now + far {
        errors.push("time_max", distance);
    }
    errors.into_result()?;
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::invalid_field(
            "time_max",
            format!("the range may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// Start of the range (RFC 3339).
    pub time_min: DateTime<Utc>,
    /// End of the range, exclusive; at most 400 days after `time_min`.
    pub time_max: DateTime<Utc>,
    /// Comma-separated calendar ids; default every calendar the caller can read, plus the
    /// schedules on other calendars the caller is a guest of (and has not declined).
    pub calendar_ids: Option<String>,
    /// Instances per page, 1–2000 (default 500).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, with the same range and calendars.
    pub cursor: Option<String>,
    /// `tasks`: also the open todo blocks due in the range (first page only), in `tasks`.
    pub include: Option<ViewInclude>,
}

/// What a view may carry besides instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewInclude {
    /// Open todo blocks with a due date in the range, from every canvas the caller can read.
    Tasks,
}

/// Tasks one view carries at most; `GET /api/v1/tasks` pages through the rest.
pub const MAX_VIEW_TASKS: i64 = 500;

/// One occurrence in a view.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instance {
    /// The schedule this is an occurrence of.
    pub schedule_id: Uuid,
    /// The schedule's calendar.
    pub calendar_id: Uuid,
    /// The occurrence's key: local original start, or a date for all-day schedules.
    pub original_start: String,
    /// When it starts (after any exception's change).
    pub start: DateTime<Utc>,
    /// When it ends, exclusive.
    pub end: DateTime<Utc>,
    /// An all-day occurrence: `start` and `end` are midnights in the calendar's zone.
    pub all_day: bool,
    /// An exception changed this occurrence.
    pub is_exception: bool,
    /// The schedule repeats (an `RRULE` or `RDATE`).
    pub recurring: bool,
    /// The title, the exception's when it changed it.
    pub title: String,
    /// The location, the exception's when it changed it.
    pub location: Option<String>,
    /// Whether it takes place: the exception's status when it changed it, else the series'.
    #[schema(value_type = ScheduleStatus)]
    pub status: String,
    /// Whether its time is busy: the exception's transparency when it changed it, else the
    /// series'.
    #[schema(value_type = TimeTransparency)]
    pub transparency: String,
    /// The caller is a guest of this schedule (not its organizer); it may be on a calendar
    /// they cannot otherwise read.
    pub as_guest: bool,
    /// The caller's answer as a guest or organizer; null when the caller is neither.
    #[schema(value_type = Option<RsvpStatus>)]
    pub rsvp: Option<String>,
}

impl From<ViewRow> for Instance {
    fn from(row: ViewRow) -> Self {
        Self {
            schedule_id: row.schedule_id,
            calendar_id: row.calendar_id,
            original_start: original_start_text(row.original_start, row.all_day),
            start: row.start,
            end: row.end,
            all_day: row.all_day,
            is_exception: row.is_exception,
            recurring: row.recurring,
            title: row.title,
            location: row.location,
            status: row.status,
            transparency: row.transparency,
            as_guest: row.as_guest,
            rsvp: row.rsvp,
        }
    }
}

/// One page of a view.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstancePage {
    /// Occurrences overlapping the range, by start.
    pub items: Vec<Instance>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Schedules with more occurrences in the range than one expansion step holds (a
    /// sub-daily rule, say): their list is complete only up to a point; ask again later.
    pub incomplete_schedules: Vec<Uuid>,
    /// With `include=tasks`, on the first page: open todos due in the range, by due time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    /// With `include=tasks`: more tasks are due in the range than `tasks` holds (500); page
    /// through them with `GET /api/v1/tasks?due_from=&due_to=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_tasks: Option<bool>,
}

fn encode_cursor(row: &ViewRow) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}|{}",
        row.start.timestamp_micros(),
        row.schedule_id,
        row.original_start.and_utc().timestamp_micros()
    ))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid, NaiveDateTime), ApiError> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    let (Some(start), Some(schedule), Some(original), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let start = DateTime::from_timestamp_micros(start.parse().map_err(|_| invalid())?)
        .ok_or_else(invalid)?;
    let original = DateTime::from_timestamp_micros(original.parse().map_err(|_| invalid())?)
        .ok_or_else(invalid)?
        .naive_utc();
    Ok((start, schedule.parse().map_err(|_| invalid())?, original))
}

/// Calendars the caller reads with at least `needed`, with their zones.
async fn readable(
    state: &AppState,
    caller: Uuid,
    needed: CalendarRole,
) -> Result<HashMap<Uuid, Tz>, ApiError> {
    let rows = db::readable_calendar_rows(&state.db, caller, MAX_VIEW_CALENDARS).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let role = combine_calendar_role(
                caller,
                row.owner_id,
                row.workspace_id,
                row.workspace_role.as_deref(),
                row.subscription_role.as_deref(),
            );
            (role >= Some(needed)).then(|| (row.id, materialize::zone_of(&row.time_zone)))
        })
        .collect())
}

/// Occurrences in a range across the caller's calendars and invitations.
///
/// Covers the calendars the caller can read (viewer or more), and the schedules on other
/// calendars the caller is a guest of (unless declined; `as_guest` and `rsvp` mark them), in
/// one call. Instances past the materialized span are materialized first.
#[utoipa::path(get, path = "/api/v1/instances", tag = "schedules", security(("bearer" = [])),
    params(ViewParams),
    responses((status = 200, description = "One page of the occurrences overlapping the range, by start; with `include=tasks`, the first page also carries the open tasks due in it", body = InstancePage),
              (status = 404, description = "`calendar_ids` names a calendar the caller cannot read (no role, or only free/busy)", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "An empty range or one over 400 days, a `limit` outside 1–2000, a malformed `cursor`, or a `calendar_ids` entry that is not a UUID", body = Problem, content_type = "application/problem+json")))]
pub async fn view_instances(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ViewParams>,
) -> ApiResult<ApiJson<InstancePage>> {
    range_field(params.time_min, params.time_max)?;
    let limit = params.limit.unwrap_or(DEFAULT_VIEW_LIMIT);
    if !(1..=MAX_VIEW_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_VIEW_LIMIT}"),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut calendars = readable(&state, caller.id, CalendarRole::Viewer).await?;
    if let Some(ids) = &params.calendar_ids {
        let mut chosen = HashMap::new();
        for id in ids.split(',').filter(|s| !s.trim().is_empty()) {
            let id: Uuid = id.trim().parse().map_err(|_| {
                ApiError::invalid_field("calendar_ids", format!("`{id}` is not a calendar id"))
            })?;
            let zone = calendars
                .get(&id)
                .copied()
                .ok_or(ApiError::NotFound { what: "calendar" })?;
            chosen.insert(id, zone);
        }
        calendars = chosen;
    }
    let mut shown: Vec<Uuid> = calendars.keys().copied().collect();
    shown.sort_unstable();
    // Without `calendar_ids`, schedules on others' calendars that the caller is a guest of
    // join the view; their calendars are materialized with the rest.
    let mut guest_schedule_ids = Vec::new();
    let mut guest_calendars = Vec::new();
    if params.calendar_ids.is_none() {
        for guest in db::guest_schedules(&state.db, caller.id, MAX_VIEW_GUEST_SCHEDULES).await? {
            if shown.binary_search(&guest.calendar_id).is_err() {
                guest_schedule_ids.push(guest.schedule_id);
                if !calendars.contains_key(&guest.calendar_id) {
                    guest_calendars.push(guest.calendar_id);
                }
                calendars
                    .entry(guest.calendar_id)
                    .or_insert_with(|| materialize::zone_of(&guest.time_zone));
            }
        }
    }
    let (from, to) = (params.time_min, params.time_max);
    let mut incomplete = materialize::cover(&state.db, &shown, &calendars, from, to).await?;
    if !guest_calendars.is_empty() {
        // Of the calendars the caller cannot read, only their own meetings may be named.
        let guests = materialize::cover(&state.db, &guest_calendars, &calendars, from, to).await?;
        incomplete.extend(
            guests
                .into_iter()
                .filter(|id| guest_schedule_ids.contains(id)),
        );
    }
    let mut rows = db::view(
        &state.db,
        &db::ViewQuery {
            viewer: caller.id,
            calendar_ids: &shown,
            guest_schedule_ids: &guest_schedule_ids,
            from: params.time_min,
            to: params.time_max,
            after,
            limit: i64::from(limit) + 1,
        },
    )
    .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(encode_cursor)
    } else {
        None
    };
    let (tasks, more_tasks) = match (params.include, after) {
        (Some(ViewInclude::Tasks), None) => {
            let mut tasks = due_between(
                &state,
                caller.id,
                params.time_min,
                params.time_max,
                MAX_VIEW_TASKS + 1,
            )
            .await?;
            let more = tasks.len() > MAX_VIEW_TASKS as usize;
            tasks.truncate(MAX_VIEW_TASKS as usize);
            (Some(tasks), Some(more))
        }
        _ => (None, None),
    };
    Ok(ApiJson(InstancePage {
        items: rows.into_iter().map(Instance::from).collect(),
        next_cursor,
        incomplete_schedules: incomplete,
        tasks,
        more_tasks,
    }))
}

/// A free/busy query, as Google's `freeBusy.query` in snake_case. At most 50 calendars and
/// users together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "time_min": "2026-03-02T00:00:00Z",
    "time_max": "2026-03-09T00:00:00Z",
    "calendar_ids": ["0196f1d2-6a10-7c55-8e21-3f4a5b6c7d8e"],
    "user_ids": ["0196f1d2-7c3a-7b10-9e4f-2a6b8c0d1e2f"]
}))]
pub struct FreeBusyQuery {
    /// Start of the range (RFC 3339).
    pub time_min: DateTime<Utc>,
    /// End of the range, exclusive; after `time_min` and at most 400 days after it.
    pub time_max: DateTime<Utc>,
    /// Calendars to ask about (free/busy role or more). Default none.
    #[serde(default)]
    pub calendar_ids: Vec<Uuid>,
    /// People to ask about: yourself or someone sharing a workspace with you. Their busy time
    /// is their personal calendars plus the schedules they are a guest of. Default none.
    #[serde(default)]
    pub user_ids: Vec<Uuid>,
}

/// Why a calendar or person of a free/busy query has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FreeBusyErrorReason {
    /// No such calendar or person, or not visible to the caller (a calendar without at least
    /// the free/busy role, a person sharing no workspace with the caller).
    NotFound,
}

/// Why one entry of a free/busy answer is empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreeBusyError {
    /// What went wrong.
    pub reason: FreeBusyErrorReason,
}

/// One merged busy interval, `[start, end)`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusyInterval {
    /// When the busy time starts (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// When it ends, exclusive (RFC 3339, UTC).
    pub end: DateTime<Utc>,
}

/// The busy time of one calendar or person.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BusyTimes {
    /// Merged busy intervals, sorted, clipped to the range.
    #[schema(value_type = Vec<BusyInterval>)]
    pub busy: Vec<TimePeriod>,
    /// Present (one entry) only when the calendar or person could not be answered; `busy` is
    /// then empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FreeBusyError>,
}

impl BusyTimes {
    fn not_found() -> Self {
        Self {
            busy: Vec::new(),
            errors: vec![FreeBusyError {
                reason: FreeBusyErrorReason::NotFound,
            }],
        }
    }
}

/// The answer to a free/busy query.
#[derive(Debug, Serialize, ToSchema)]
pub struct FreeBusyAnswer {
    /// The range's start, as asked.
    pub time_min: DateTime<Utc>,
    /// The range's end, as asked.
    pub time_max: DateTime<Utc>,
    /// By calendar id: one entry for every id in `calendar_ids`.
    pub calendars: BTreeMap<String, BusyTimes>,
    /// By user id: one entry for every id in `user_ids`.
    pub users: BTreeMap<String, BusyTimes>,
}

/// A calendar's merged busy intervals over `window`: from the cache when it has them,
/// otherwise from Postgres (filling the cache on the way).
pub async fn calendar_busy(
    state: &AppState,
    calendar_id: Uuid,
    zone: Tz,
    window: &TimePeriod,
) -> Result<Vec<TimePeriod>, ApiError> {
    let zones = HashMap::from([(calendar_id, zone)]);
    match state.calendar_cache.lookup(calendar_id, window).await {
        Some(Lookup::Hit(busy)) => Ok(merge_periods(busy, window)),
        Some(Lookup::Miss {
            generation,
            window: fill,
        }) => {
            materialize::cover(&state.db, &[calendar_id], &zones, fill.start, fill.end).await?;
            let rows =
                db::busy_of_calendars(&state.db, &[calendar_id], fill.start, fill.end).await?;
            let busy = merge_periods(
                rows.into_iter().map(|r| TimePeriod::new(r.start, r.end)),
                &fill,
            );
            state
                .calendar_cache
                .fill(calendar_id, generation, &fill, &busy)
                .await;
            Ok(merge_periods(busy, window))
        }
        Some(Lookup::Bypass) | None => {
            materialize::cover(&state.db, &[calendar_id], &zones, window.start, window.end).await?;
            let rows =
                db::busy_of_calendars(&state.db, &[calendar_id], window.start, window.end).await?;
            Ok(merge_periods(
                rows.into_iter().map(|r| TimePeriod::new(r.start, r.end)),
                window,
            ))
        }
    }
}

/// Merged busy intervals of several calendars and people over a range.
///
/// Declined and transparent occurrences never count; cancelled ones neither. A calendar or
/// person the caller may not see is answered in place with a `not_found` error, not a 404.
#[utoipa::path(post, path = "/api/v1/freebusy", tag = "schedules", security(("bearer" = [])),
    request_body = FreeBusyQuery,
    responses((status = 200, description = "Busy intervals of every calendar and person asked about, keyed by id; those that cannot be answered carry `errors` instead", body = FreeBusyAnswer),
              (status = 422, description = "An empty range or one over 400 days, or more than 50 calendars and users together", body = Problem, content_type = "application/problem+json")))]
pub async fn free_busy(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(query): ApiJson<FreeBusyQuery>,
) -> ApiResult<ApiJson<FreeBusyAnswer>> {
    range_field(query.time_min, query.time_max)?;
    if query.calendar_ids.len() + query.user_ids.len() > MAX_FREEBUSY_ITEMS {
        return Err(ApiError::invalid_field(
            "calendar_ids",
            format!("at most {MAX_FREEBUSY_ITEMS} calendars and users together"),
        ));
    }
    let window = TimePeriod::new(query.time_min, query.time_max);
    let mut calendars = BTreeMap::new();
    for calendar_id in &query.calendar_ids {
        let access = calendar_access(&state.db, caller.id, *calendar_id).await?;
        let answer = match access {
            Some(access) if access.role >= Some(CalendarRole::FreeBusy) => {
                let zone = db::find_calendar(&state.db, *calendar_id)
                    .await?
                    .map_or(Tz::UTC, |c| materialize::zone_of(&c.time_zone));
                BusyTimes {
                    busy: calendar_busy(&state, *calendar_id, zone, &window).await?,
                    errors: Vec::new(),
                }
            }
            _ => BusyTimes::not_found(),
        };
        calendars.insert(calendar_id.to_string(), answer);
    }
    let mut users = BTreeMap::new();
    for user_id in &query.user_ids {
        let visible =
            *user_id == caller.id || db::share_a_workspace(&state.db, caller.id, *user_id).await?;
        let answer = if visible && db::user_exists(&state.db, *user_id).await? {
            let ids = db::calendars_of_user_busy(&state.db, *user_id).await?;
            let zones: HashMap<Uuid, Tz> = {
                let mut zones = HashMap::new();
                for id in &ids {
                    if let Some(calendar) = db::find_calendar(&state.db, *id).await? {
                        zones.insert(*id, materialize::zone_of(&calendar.time_zone));
                    }
                }
                zones
            };
            materialize::cover(&state.db, &ids, &zones, window.start, window.end).await?;
            let rows = db::busy_of_user(&state.db, *user_id, window.start, window.end).await?;
            BusyTimes {
                busy: merge_periods(
                    rows.into_iter().map(|r| TimePeriod::new(r.start, r.end)),
                    &window,
                ),
                errors: Vec::new(),
            }
        } else {
            BusyTimes::not_found()
        };
        users.insert(user_id.to_string(), answer);
    }
    Ok(ApiJson(FreeBusyAnswer {
        time_min: query.time_min,
        time_max: query.time_max,
        calendars,
        users,
    }))
}
