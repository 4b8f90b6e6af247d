//! `/api/v1/calendars/*`: calendars, subscriptions and the ICS feed token.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use potentia_calendar::timezone::parse_zone;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::db::{self, CalendarFields, CalendarRecord, SubscriptionRow};
use super::{calendar_error, materialize};
use crate::access::{
    combine_calendar_role, related_users, require_calendar, require_workspace, CalendarRole,
    WorkspaceRole,
};
use crate::audit::{self, AuditEntry};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, FieldError, Problem};
use crate::http::{ApiJson, ApiPath, ApiQuery, RequestId};
use crate::pagination::{Page, PageParams, Position};
use crate::state::AppState;
use crate::validation::{bounded_text, present, required_text, FieldErrors};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const DEFAULT_COLOR: &str = "#4f7cff";

/// A calendar as the caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Calendar {
    /// The calendar's id.
    pub id: Uuid,
    /// The workspace the calendar belongs to; null for a personal calendar.
    pub workspace_id: Option<Uuid>,
    /// The calendar's owner: the user who created it.
    pub owner_id: Uuid,
    /// The calendar's name, 1–200 characters.
    pub name: String,
    /// Free text, at most 2000 characters; null when none.
    pub description: Option<String>,
    /// Display colour, lowercase `#rrggbb`.
    pub color: String,
    /// IANA zone: the default for new schedules; all-day dates are placed in it.
    pub time_zone: String,
    /// The caller's role: `owner`, `editor`, `viewer` or `free_busy`.
    pub role: CalendarRole,
    /// Whether the secret ICS feed URL is on.
    pub feed_enabled: bool,
    /// When the calendar was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the calendar was last changed (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl Calendar {
    pub fn of(record: CalendarRecord, role: CalendarRole) -> Self {
        Self {
            id: record.id,
            workspace_id: record.workspace_id,
            owner_id: record.owner_id,
            name: record.name,
            description: record.description,
            color: record.color,
            time_zone: record.time_zone,
            role,
            feed_enabled: record.feed_enabled,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }

    fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.name, "description": self.description, "color": self.color,
                            "time_zone": self.time_zone, "workspace_id": self.workspace_id })
    }
}

/// A new calendar, owned by the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Team Paris",
    "description": "Meetings and off-sites of the Paris office.",
    "color": "#22aa66",
    "time_zone": "Europe/Paris"
}))]
pub struct CreateCalendar {
    /// The calendar's name, trimmed, 1–200 characters.
    pub name: String,
    /// Free text, trimmed, at most 2000 characters; empty or absent for none.
    pub description: Option<String>,
    /// `#rrggbb` (any case; stored lowercase); default `#4f7cff`.
    pub color: Option<String>,
    /// IANA zone; default the caller's profile zone (`UTC` if that is not a valid zone).
    pub time_zone: Option<String>,
    /// Omit for a personal calendar; workspace members (not viewers) may create one there.
    pub workspace_id: Option<Uuid>,
}

/// Absent fields stay; `null` clears the description.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Team Paris (office)",
    "description": null,
    "color": "#aa3355",
    "time_zone": "Europe/Paris"
}))]
pub struct PatchCalendar {
    /// The new name, trimmed, 1–200 characters; absent or `null` keeps it.
    pub name: Option<String>,
    /// The new description, at most 2000 characters; `null` (or `""`) clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// The new colour, `#rrggbb`; absent or `null` keeps it.
    pub color: Option<String>,
    /// The new IANA zone; all-day schedules are placed in it again. Absent or `null` keeps it.
    pub time_zone: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListCalendars {
    /// Only this workspace's calendars.
    pub workspace_id: Option<Uuid>,
    /// Calendars per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A role on a calendar given to one user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    /// The calendar the role is on.
    pub calendar_id: Uuid,
    /// The user who has the role.
    pub user_id: Uuid,
    /// The user's name; null when their profile has none.
    pub name: Option<String>,
    /// The user's email address; null when their account has none, or when the caller shares
    /// no workspace or canvas with them and they shared no calendar with the caller.
    pub email: Option<String>,
    /// The role the subscription gives.
    #[schema(value_type = CalendarRole)]
    pub role: String,
    /// When the subscription was created (RFC 3339, UTC); a role change keeps it.
    pub created_at: DateTime<Utc>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(row: SubscriptionRow) -> Self {
        Self {
            calendar_id: row.calendar_id,
            user_id: row.user_id,
            name: row.name,
            email: row.email,
            role: row.role,
            created_at: row.created_at,
        }
    }
}

/// A role on the calendar for a user who has none through a subscription yet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "user_id": "0196f1d2-7c3a-7b10-9e4f-2a6b8c0d1e2f", "role": "viewer" }))]
pub struct CreateSubscription {
    /// The user to give the role to; must be an existing user.
    pub user_id: Uuid,
    /// The role to give: `owner`, `editor`, `viewer` or `free_busy`.
    #[schema(value_type = CalendarRole)]
    pub role: String,
}

/// A subscription's new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "role": "editor" }))]
pub struct ChangeSubscription {
    /// The new role: `owner`, `editor`, `viewer` or `free_busy`.
    #[schema(value_type = CalendarRole)]
    pub role: String,
}

/// The calendar's secret feed URL, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedToken {
    /// The secret; shown once. Anyone with the URL can read the calendar.
    pub token: String,
    /// The feed's path: `GET` it without a bearer token.
    pub path: String,
    /// The feed's absolute URL (`POTENTIA_PUBLIC_URL` and the path), for calendar apps.
    pub url: String,
}

fn color_of(color: Option<String>) -> Result<String, FieldError> {
    let Some(color) = color else {
        return Ok(DEFAULT_COLOR.to_owned());
    };
    let color = color.trim().to_ascii_lowercase();
    let valid = color.len() == 7
        && color.starts_with('#')
        && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(color)
    } else {
        Err(FieldError::new("color", "must be a colour like #4f7cff"))
    }
}

fn zone_field(zone: String) -> Result<String, ApiError> {
    parse_zone(&zone)
        .map(|zone| zone.name().to_owned())
        .map_err(|e| calendar_error(e, "time_zone"))
}

/// Creates a calendar owned by the caller, personal or in a workspace.
#[utoipa::path(post, path = "/api/v1/calendars", tag = "calendars", security(("bearer" = [])),
    request_body = CreateCalendar,
    responses((status = 201, description = "The new calendar; the caller is its owner", body = Calendar),
              (status = 400, description = "An unknown `time_zone` (`unknown_time_zone`)", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller is only a viewer of `workspace_id`", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "`workspace_id` names no workspace the caller is a member of", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_calendar(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<CreateCalendar>,
) -> ApiResult<(StatusCode, ApiJson<Calendar>)> {
    let mut errors = FieldErrors::default();
    let name = errors.check(required_text("name", body.name, MAX_NAME_CHARS));
    let description = errors.check(bounded_text(
        "description",
        body.description,
        MAX_DESCRIPTION_CHARS,
    ));
    let color = errors.check(color_of(body.color));
    errors.into_result()?;
    let (Some(name), Some(description), Some(color)) = (name, description, color) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let mut tx = state.db.begin().await?;
    let time_zone = match body.time_zone {
        Some(zone) => zone_field(zone)?,
        None => sqlx::query_scalar!("select timezone from users where id = $1", caller.id)
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|zone| parse_zone(&zone).ok())
            .map_or_else(|| "UTC".to_owned(), |zone| zone.name().to_owned()),
    };
    if let Some(workspace_id) = body.workspace_id {
        require_workspace(&mut *tx, caller.id, workspace_id, WorkspaceRole::Member).await?;
    }
    let record = db::insert_calendar(
        &mut *tx,
        Uuid::now_v7(),
        body.workspace_id,
        caller.id,
        &CalendarFields {
            name: &name,
            description: description.as_deref(),
            color: &color,
            time_zone: &time_zone,
        },
    )
    .await?;
    let calendar = Calendar::of(record, CalendarRole::Owner);
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.create", "calendar", calendar.id)
            .actor(caller.id)
            .after(calendar.audit_json())
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(calendar)))
}

/// The calendars the caller has a role on: personal, through workspaces, and subscribed.
#[utoipa::path(get, path = "/api/v1/calendars", tag = "calendars", security(("bearer" = [])),
    params(ListCalendars),
    responses((status = 200, description = "One page of the caller's calendars, oldest first, each with the caller's role on it", body = Page<Calendar>),
              (status = 404, description = "`workspace_id` names no workspace the caller is a member of", body = Problem, content_type = "application/problem+json")))]
pub async fn list_calendars(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ListCalendars>,
) -> ApiResult<ApiJson<Page<Calendar>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .validate()?;
    if let Some(workspace_id) = params.workspace_id {
        require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Viewer).await?;
    }
    let rows = db::list_calendars(&state.db, caller.id, params.workspace_id, &page).await?;
    let calendars: Vec<Calendar> = rows
        .into_iter()
        .filter_map(|row| {
            let (record, workspace_role, subscription_role) = row.into_record();
            let role = combine_calendar_role(
                caller.id,
                record.owner_id,
                record.workspace_id,
                workspace_role.as_deref(),
                subscription_role.as_deref(),
            )?;
            Some(Calendar::of(record, role))
        })
        .collect();
    Ok(ApiJson(Page::from_rows(
        calendars,
        &page,
        Calendar::position,
    )))
}

async fn load(
    db: impl sqlx::PgExecutor<'_>,
    calendar_id: Uuid,
) -> Result<CalendarRecord, ApiError> {
    db::find_calendar(db, calendar_id)
        .await?
        .ok_or(ApiError::NotFound { what: "calendar" })
}

/// A calendar the caller has any role on, free/busy included.
#[utoipa::path(get, path = "/api/v1/calendars/{calendar_id}", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)),
    responses((status = 200, description = "The calendar, with the caller's role on it", body = Calendar),
              (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
pub async fn get_calendar(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(calendar_id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Calendar>> {
    let access =
        require_calendar(&state.db, caller.id, calendar_id, CalendarRole::FreeBusy).await?;
    let record = load(&state.db, calendar_id).await?;
    let role = access.role.unwrap_or(CalendarRole::FreeBusy);
    Ok(ApiJson(Calendar::of(record, role)))
}

/// Changes name, description, colour or zone (owner).
///
/// A new zone re-places all-day schedules at its midnights.
#[utoipa::path(patch, path = "/api/v1/calendars/{calendar_id}", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)), request_body = PatchCalendar,
    responses((status = 200, description = "The calendar as stored after the change", body = Calendar),
              (status = 400, description = "An unknown `time_zone` (`unknown_time_zone`)", body = Problem, content_type = "application/problem+json"),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "A new `time_zone` would place more than 500,000 stored occurrences (`calendar_full`); nothing is saved", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_calendar(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PatchCalendar>,
) -> ApiResult<ApiJson<Calendar>> {
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    let before = Calendar::of(load(&mut *tx, calendar_id).await?, CalendarRole::Owner);
    let mut errors = FieldErrors::default();
    let name = match body.name {
        Some(name) => errors.check(required_text("name", name, MAX_NAME_CHARS)),
        None => Some(before.name.clone()),
    };
    let description = match body.description {
        Some(description) => errors.check(bounded_text(
            "description",
            description,
            MAX_DESCRIPTION_CHARS,
        )),
        None => Some(before.description.clone()),
    };
    let color = match body.color {
        Some(color) => errors.check(color_of(Some(color))),
        None => Some(before.color.clone()),
    };
    errors.into_result()?;
    let (Some(name), Some(description), Some(color)) = (name, description, color) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let time_zone = match body.time_zone {
        Some(zone) => zone_field(zone)?,
        None => before.time_zone.clone(),
    };
    let record = db::update_calendar(
        &mut *tx,
        calendar_id,
        &CalendarFields {
            name: &name,
            description: description.as_deref(),
            color: &color,
            time_zone: &time_zone,
        },
    )
    .await?;
    let zone_changed = time_zone != before.time_zone;
    if zone_changed {
        let placement = materialize::zone_of(&time_zone);
        let now = Utc::now();
        for schedule_id in db::schedule_ids_of(&mut *tx, calendar_id, true).await? {
            if let Some(schedule) = db::lock_schedule(&mut tx, schedule_id).await? {
                materialize::rematerialize(&mut tx, &schedule, placement, now).await?;
            }
        }
    }
    let after = Calendar::of(record, CalendarRole::Owner);
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.update", "calendar", calendar_id)
            .actor(caller.id)
            .before(before.audit_json())
            .after(after.audit_json())
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    if zone_changed {
        state.calendar_cache.invalidate(&[calendar_id]).await;
    }
    Ok(ApiJson(after))
}

/// Deletes the calendar with its schedules (owner).
#[utoipa::path(delete, path = "/api/v1/calendars/{calendar_id}", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted, with its schedules, subscriptions and feed"),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_calendar(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    let before = Calendar::of(load(&mut *tx, calendar_id).await?, CalendarRole::Owner);
    let schedules = db::delete_calendar(&mut tx, calendar_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.delete", "calendar", calendar_id)
            .actor(caller.id)
            .before(before.audit_json())
            .after(serde_json::json!({ "schedules_deleted": schedules }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    state.calendar_cache.invalidate(&[calendar_id]).await;
    Ok(StatusCode::NO_CONTENT)
}

fn role_field(role: &str) -> Result<CalendarRole, ApiError> {
    CalendarRole::parse(role).ok_or_else(|| {
        ApiError::invalid_field("role", "must be owner, editor, viewer or free_busy")
    })
}

/// Gives a user a role on the calendar (owner).
#[utoipa::path(post, path = "/api/v1/calendars/{calendar_id}/subscriptions", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)), request_body = CreateSubscription,
    responses((status = 201, description = "The new subscription, with the user's name (and email, when the caller may see it)", body = Subscription),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json"),
              (status = 409, description = "The user already has a subscription on the calendar (`already_subscribed`); change its role with PATCH", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "An unknown `role`, or `user_id` names no user", body = Problem, content_type = "application/problem+json")))]
pub async fn create_subscription(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, ApiJson<Subscription>)> {
    let role = role_field(&body.role)?;
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    if !db::user_exists(&mut *tx, body.user_id).await? {
        return Err(ApiError::invalid_field("user_id", "no such user"));
    }
    if db::subscription_role(&mut *tx, calendar_id, body.user_id)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "already_subscribed",
            "the user already has a subscription; change its role instead",
        ));
    }
    db::upsert_subscription(
        &mut *tx,
        calendar_id,
        body.user_id,
        role.as_str(),
        caller.id,
    )
    .await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "calendar_subscription.create",
            "calendar_subscription",
            format!("{calendar_id}/{}", body.user_id),
        )
        .actor(caller.id)
        .after(serde_json::json!({ "role": role.as_str() }))
        .request(request_id.as_deref()),
    )
    .await?;
    let created = subscription(&mut tx, caller.id, calendar_id, body.user_id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// `rows` as `caller` may see them: a subscriber's email only when the two share a workspace
/// or a canvas, or the subscriber shared a calendar of theirs with the caller (an owner who
/// subscribes someone by id learns nothing more than the id).
async fn shown_subscriptions(
    conn: &mut sqlx::PgConnection,
    caller: Uuid,
    rows: Vec<SubscriptionRow>,
) -> Result<Vec<Subscription>, ApiError> {
    let users: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let related = related_users(&mut *conn, caller, &users).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut shown = Subscription::from(row);
            if !related.contains(&shown.user_id) {
                shown.email = None;
            }
            shown
        })
        .collect())
}

async fn subscription(
    conn: &mut sqlx::PgConnection,
    caller: Uuid,
    calendar_id: Uuid,
    user_id: Uuid,
) -> Result<Subscription, ApiError> {
    let row = sqlx::query_as!(
        SubscriptionRow,
        r#"select s.calendar_id, s.user_id, u.name, u.email, s.role, s.created_at
           from calendar_subscriptions s join users u on u.id = s.user_id
           where s.calendar_id = $1 and s.user_id = $2"#,
        calendar_id,
        user_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ApiError::NotFound {
        what: "subscription",
    })?;
    shown_subscriptions(conn, caller, vec![row])
        .await?
        .pop()
        .ok_or(ApiError::NotFound {
            what: "subscription",
        })
}

/// The calendar's subscriptions (viewer).
#[utoipa::path(get, path = "/api/v1/calendars/{calendar_id}/subscriptions", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "One page of the calendar's subscriptions, oldest first; the owner's and workspace members' implicit roles are not listed", body = Page<Subscription>),
              (status = 403, description = "The caller has only the free/busy role on the calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(calendar_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiJson<Page<Subscription>>> {
    let page = params.validate()?;
    require_calendar(&state.db, caller.id, calendar_id, CalendarRole::Viewer).await?;
    let rows = db::list_subscriptions(&state.db, calendar_id, &page).await?;
    let mut conn = state.db.acquire().await?;
    let items = shown_subscriptions(&mut conn, caller.id, rows).await?;
    Ok(ApiJson(Page::from_rows(items, &page, |s| Position {
        created_at: s.created_at,
        id: s.user_id,
    })))
}

/// Changes a subscription's role (owner).
#[utoipa::path(patch, path = "/api/v1/calendars/{calendar_id}/subscriptions/{user_id}", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ChangeSubscription,
    responses((status = 200, description = "The subscription with its new role", body = Subscription),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar visible to the caller, or the user has no subscription on it", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "An unknown `role`", body = Problem, content_type = "application/problem+json")))]
pub async fn change_subscription(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((calendar_id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ChangeSubscription>,
) -> ApiResult<ApiJson<Subscription>> {
    let role = role_field(&body.role)?;
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    let before = db::subscription_role(&mut *tx, calendar_id, user_id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "subscription",
        })?;
    db::upsert_subscription(&mut *tx, calendar_id, user_id, role.as_str(), caller.id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "calendar_subscription.update",
            "calendar_subscription",
            format!("{calendar_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": before }))
        .after(serde_json::json!({ "role": role.as_str() }))
        .request(request_id.as_deref()),
    )
    .await?;
    let changed = subscription(&mut tx, caller.id, calendar_id, user_id).await?;
    tx.commit().await?;
    Ok(ApiJson(changed))
}

/// Removes a subscription (owner; anyone may remove their own).
#[utoipa::path(delete, path = "/api/v1/calendars/{calendar_id}/subscriptions/{user_id}", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "The subscription is someone else's and the caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such calendar visible to the caller, or the user has no subscription on it", body = Problem, content_type = "application/problem+json")))]
pub async fn remove_subscription(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath((calendar_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let needed = if user_id == caller.id {
        CalendarRole::FreeBusy
    } else {
        CalendarRole::Owner
    };
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, needed).await?;
    let before = db::subscription_role(&mut *tx, calendar_id, user_id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "subscription",
        })?;
    db::remove_subscription(&mut *tx, calendar_id, user_id).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new(
            "calendar_subscription.remove",
            "calendar_subscription",
            format!("{calendar_id}/{user_id}"),
        )
        .actor(caller.id)
        .before(serde_json::json!({ "role": before }))
        .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// SHA-256 of a feed secret, the form stored.
pub fn feed_hash(token: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Turns the ICS feed on with a new secret URL, or rotates it (owner).
///
/// The old URL stops working.
#[utoipa::path(post, path = "/api/v1/calendars/{calendar_id}/feed-token", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)),
    responses((status = 201, description = "The new secret and the feed's path and URL; the secret is not shown again", body = FeedToken),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
pub async fn rotate_feed_token(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, ApiJson<FeedToken>)> {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!(
        "cal_{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    let before = load(&mut *tx, calendar_id).await?;
    db::set_feed_token(&mut *tx, calendar_id, Some((&feed_hash(&token), caller.id))).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.feed_token_rotate", "calendar", calendar_id)
            .actor(caller.id)
            .before(serde_json::json!({ "feed_enabled": before.feed_enabled }))
            .after(serde_json::json!({ "feed_enabled": true }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    let path = format!("/api/v1/calendar-feeds/{token}.ics");
    let url = format!("{}{path}", state.settings.public_url);
    Ok((StatusCode::CREATED, ApiJson(FeedToken { token, path, url })))
}

/// Turns the ICS feed off (owner).
#[utoipa::path(delete, path = "/api/v1/calendars/{calendar_id}/feed-token", tag = "calendars", security(("bearer" = [])),
    params(("calendar_id" = Uuid, Path)),
    responses((status = 204, description = "Feed off: its URL stops working"),
              (status = 403, description = "The caller is not an owner of the calendar", body = Problem, content_type = "application/problem+json"), (status = 404, description = "No such calendar, or the caller has no role on it", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_feed_token(
    State(state): State<AppState>,
    caller: AuthUser,
    RequestId(request_id): RequestId,
    ApiPath(calendar_id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    require_calendar(&mut *tx, caller.id, calendar_id, CalendarRole::Owner).await?;
    let before = load(&mut *tx, calendar_id).await?;
    db::set_feed_token(&mut *tx, calendar_id, None).await?;
    audit::record(
        &mut *tx,
        AuditEntry::new("calendar.feed_token_revoke", "calendar", calendar_id)
            .actor(caller.id)
            .before(serde_json::json!({ "feed_enabled": before.feed_enabled }))
            .after(serde_json::json!({ "feed_enabled": false }))
            .request(request_id.as_deref()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
