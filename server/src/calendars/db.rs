//! SQL over `calendars`, `calendar_subscriptions`, `schedules`, `schedule_exceptions`,
//! `schedule_guests`, `schedule_reminder_overrides` and `schedule_instances`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::pagination::{PageRequest, Position};

#[derive(Debug, Clone)]
pub struct CalendarRecord {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub color: String,
    pub time_zone: String,
    pub feed_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A calendar with the role columns of one user, from a list.
#[derive(Debug, Clone)]
pub struct CalendarListRow {
    pub id: Uuid,
    pub workspace_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub color: String,
    pub time_zone: String,
    pub feed_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_role: Option<String>,
    pub subscription_role: Option<String>,
}

impl CalendarListRow {
    pub fn into_record(self) -> (CalendarRecord, Option<String>, Option<String>) {
        (
            CalendarRecord {
                id: self.id,
                workspace_id: self.workspace_id,
                owner_id: self.owner_id,
                name: self.name,
                description: self.description,
                color: self.color,
                time_zone: self.time_zone,
                feed_enabled: self.feed_enabled,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            self.workspace_role,
            self.subscription_role,
        )
    }
}

#[derive(Debug, Clone)]
pub struct CalendarFields<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub color: &'a str,
    pub time_zone: &'a str,
}

pub async fn insert_calendar<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    workspace_id: Option<Uuid>,
    owner_id: Uuid,
    fields: &CalendarFields<'_>,
) -> sqlx::Result<CalendarRecord> {
    sqlx::query_as!(
        CalendarRecord,
        r#"insert into calendars (id, workspace_id, owner_id, name, description, color, time_zone)
           values ($1, $2, $3, $4, $5, $6, $7)
           returning id, workspace_id, owner_id, name, description, color, time_zone,
                     feed_token_hash is not null as "feed_enabled!", created_at, updated_at"#,
        id,
        workspace_id,
        owner_id,
        fields.name,
        fields.description,
        fields.color,
        fields.time_zone,
    )
    .fetch_one(db)
    .await
}

pub async fn find_calendar<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<CalendarRecord>> {
    sqlx::query_as!(
        CalendarRecord,
        r#"select id, workspace_id, owner_id, name, description, color, time_zone,
                  feed_token_hash is not null as "feed_enabled!", created_at, updated_at
           from calendars where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The calendars `user_id` has a role on (personal, through a workspace, or subscribed),
/// optionally only one workspace's.
pub async fn list_calendars<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    workspace_id: Option<Uuid>,
    page: &PageRequest,
) -> sqlx::Result<Vec<CalendarListRow>> {
    sqlx::query_as!(
        CalendarListRow,
        r#"select c.id, c.workspace_id, c.owner_id, c.name, c.description, c.color, c.time_zone,
                  c.feed_token_hash is not null as "feed_enabled!", c.created_at, c.updated_at,
                  wm.role as "workspace_role?", cs.role as "subscription_role?"
           from calendars c
           left join workspace_members wm on wm.workspace_id = c.workspace_id and wm.user_id = $1
           left join calendar_subscriptions cs on cs.calendar_id = c.id and cs.user_id = $1
           where ((c.owner_id = $1 and c.workspace_id is null) or wm.user_id is not null or cs.user_id is not null)
             and ($2::uuid is null or c.workspace_id = $2)
             and ($3::timestamptz is null or (c.created_at, c.id) > ($3, $4))
           order by c.created_at, c.id
           limit $5"#,
        user_id,
        workspace_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// Every calendar id `user_id` has a role on, for views across calendars (at most `limit`).
pub async fn readable_calendar_rows<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<CalendarListRow>> {
    sqlx::query_as!(
        CalendarListRow,
        r#"select c.id, c.workspace_id, c.owner_id, c.name, c.description, c.color, c.time_zone,
                  c.feed_token_hash is not null as "feed_enabled!", c.created_at, c.updated_at,
                  wm.role as "workspace_role?", cs.role as "subscription_role?"
           from calendars c
           left join workspace_members wm on wm.workspace_id = c.workspace_id and wm.user_id = $1
           left join calendar_subscriptions cs on cs.calendar_id = c.id and cs.user_id = $1
           where (c.owner_id = $1 and c.workspace_id is null) or wm.user_id is not null or cs.user_id is not null
           order by c.created_at, c.id
           limit $2"#,
        user_id,
        limit,
    )
    .fetch_all(db)
    .await
}

pub async fn update_calendar<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    fields: &CalendarFields<'_>,
) -> sqlx::Result<CalendarRecord> {
    sqlx::query_as!(
        CalendarRecord,
        r#"update calendars set name = $2, description = $3, color = $4, time_zone = $5, updated_at = now()
           where id = $1
           returning id, workspace_id, owner_id, name, description, color, time_zone,
                     feed_token_hash is not null as "feed_enabled!", created_at, updated_at"#,
        id,
        fields.name,
        fields.description,
        fields.color,
        fields.time_zone,
    )
    .fetch_one(db)
    .await
}

/// Deletes the calendar; its subscriptions, schedules and instances go with it. Returns how
/// many schedules went.
pub async fn delete_calendar(conn: &mut sqlx::PgConnection, id: Uuid) -> sqlx::Result<i64> {
    let schedules = sqlx::query_scalar!(
        r#"select count(*) as "count!" from schedules where calendar_id = $1"#,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("delete from calendars where id = $1", id)
        .execute(&mut *conn)
        .await?;
    Ok(schedules)
}

/// The ids of a workspace's calendars.
pub async fn workspace_calendar_ids<'e>(
    db: impl PgExecutor<'e>,
    workspace_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select id from calendars where workspace_id = $1",
        workspace_id
    )
    .fetch_all(db)
    .await
}

/// Turns the feed on with `hash` (made by `created_by`), or off with `None`.
pub async fn set_feed_token<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    feed: Option<(&[u8], Uuid)>,
) -> sqlx::Result<()> {
    let (hash, created_by) = feed.unzip();
    sqlx::query!(
        "update calendars set feed_token_hash = $2, feed_token_created_by = $3, updated_at = now()
         where id = $1",
        id,
        hash,
        created_by,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The calendar whose feed secret hashes to `hash`.
pub struct FeedCalendar {
    pub calendar_id: Uuid,
    /// Who turned the feed on; `None` once that account is gone.
    pub created_by: Option<Uuid>,
}

pub async fn find_feed<'e>(
    db: impl PgExecutor<'e>,
    hash: &[u8],
) -> sqlx::Result<Option<FeedCalendar>> {
    sqlx::query_as!(
        FeedCalendar,
        r#"select id as calendar_id, feed_token_created_by as created_by
           from calendars where feed_token_hash = $1"#,
        hash,
    )
    .fetch_optional(db)
    .await
}

// --- Subscriptions ---------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    pub calendar_id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

pub async fn subscription_role<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select role from calendar_subscriptions where calendar_id = $1 and user_id = $2",
        calendar_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn upsert_subscription<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    user_id: Uuid,
    role: &str,
    created_by: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into calendar_subscriptions (calendar_id, user_id, role, created_by) values ($1, $2, $3, $4)
           on conflict (calendar_id, user_id) do update set role = excluded.role"#,
        calendar_id,
        user_id,
        role,
        created_by,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn list_subscriptions<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<SubscriptionRow>> {
    sqlx::query_as!(
        SubscriptionRow,
        r#"select s.calendar_id, s.user_id, u.name, u.email, s.role, s.created_at
           from calendar_subscriptions s join users u on u.id = s.user_id
           where s.calendar_id = $1
             and ($2::timestamptz is null or (s.created_at, s.user_id) > ($2, $3))
           order by s.created_at, s.user_id
           limit $4"#,
        calendar_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

pub async fn remove_subscription<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from calendar_subscriptions where calendar_id = $1 and user_id = $2",
        calendar_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn user_exists<'e>(db: impl PgExecutor<'e>, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from users where id = $1) as "exists!""#,
        user_id
    )
    .fetch_one(db)
    .await
}

/// The account that verified `email`, if one did: an address is tied to an account only once
/// that account proved it receives its mail.
pub async fn verified_user_by_email<'e>(
    db: impl PgExecutor<'e>,
    email: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select id from users where lower(email) = lower($1) and email_verified_at is not null",
        email
    )
    .fetch_optional(db)
    .await
}

pub async fn user_email<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> sqlx::Result<Option<String>> {
    Ok(
        sqlx::query_scalar!("select email from users where id = $1", user_id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

/// Whether two users share a workspace (which lets one see the other's free/busy).
pub async fn share_a_workspace<'e>(
    db: impl PgExecutor<'e>,
    a: Uuid,
    b: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (
               select 1 from workspace_members x join workspace_members y on y.workspace_id = x.workspace_id
               where x.user_id = $1 and y.user_id = $2) as "exists!""#,
        a,
        b,
    )
    .fetch_one(db)
    .await
}

// --- Schedules ------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ScheduleRecord {
    pub id: Uuid,
    pub calendar_id: Uuid,
    pub uid: String,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub all_day: bool,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: String,
    pub transparency: String,
    pub rrule: Vec<String>,
    pub rdate: Vec<String>,
    pub exdate: Vec<String>,
    pub reminders: Vec<i32>,
    pub organizer_id: Option<Uuid>,
    pub organizer_email: Option<String>,
    pub split_from: Option<Uuid>,
    pub sequence: i32,
    pub materialized_from: DateTime<Utc>,
    pub materialized_until: DateTime<Utc>,
    pub series_end: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRecord {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// What a schedule's row holds besides its bookkeeping.
#[derive(Debug, Clone)]
pub struct ScheduleFields {
    pub uid: String,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub all_day: bool,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub time_zone: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: String,
    pub transparency: String,
    pub rrule: Vec<String>,
    pub rdate: Vec<String>,
    pub exdate: Vec<String>,
    pub reminders: Vec<i32>,
    pub organizer_id: Option<Uuid>,
    pub organizer_email: Option<String>,
}

impl ScheduleFields {
    pub fn of(record: &ScheduleRecord) -> Self {
        Self {
            uid: record.uid.clone(),
            title: record.title.clone(),
            description: record.description.clone(),
            location: record.location.clone(),
            all_day: record.all_day,
            start_at: record.start_at,
            end_at: record.end_at,
            time_zone: record.time_zone.clone(),
            start_date: record.start_date,
            end_date: record.end_date,
            status: record.status.clone(),
            transparency: record.transparency.clone(),
            rrule: record.rrule.clone(),
            rdate: record.rdate.clone(),
            exdate: record.exdate.clone(),
            reminders: record.reminders.clone(),
            organizer_id: record.organizer_id,
            organizer_email: record.organizer_email.clone(),
        }
    }
}

/// Materialization bookkeeping written with the row.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub series_end: Option<DateTime<Utc>>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_schedule<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    calendar_id: Uuid,
    fields: &ScheduleFields,
    split_from: Option<Uuid>,
    window: Window,
    created_by: Uuid,
) -> sqlx::Result<ScheduleRecord> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"insert into schedules (id, calendar_id, uid, title, description, location, all_day, start_at, end_at,
                                  time_zone, start_date, end_date, status, transparency, rrule, rdate, exdate,
                                  reminders, organizer_id, organizer_email, split_from, materialized_from,
                                  materialized_until, series_end, created_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                   $21, $22, $23, $24, $25)
           returning id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                     start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                     organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                     created_by, created_at, updated_at"#,
        id,
        calendar_id,
        fields.uid,
        fields.title,
        fields.description,
        fields.location,
        fields.all_day,
        fields.start_at,
        fields.end_at,
        fields.time_zone,
        fields.start_date,
        fields.end_date,
        fields.status,
        fields.transparency,
        &fields.rrule,
        &fields.rdate,
        &fields.exdate,
        &fields.reminders,
        fields.organizer_id,
        fields.organizer_email,
        split_from,
        window.from,
        window.until,
        window.series_end,
        created_by,
    )
    .fetch_one(db)
    .await
}

pub async fn update_schedule<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    fields: &ScheduleFields,
    window: Window,
) -> sqlx::Result<ScheduleRecord> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"update schedules set uid = $2, title = $3, description = $4, location = $5, all_day = $6, start_at = $7,
                  end_at = $8, time_zone = $9, start_date = $10, end_date = $11, status = $12, transparency = $13,
                  rrule = $14, rdate = $15, exdate = $16, reminders = $17, organizer_id = $18,
                  organizer_email = $19, materialized_from = $20, materialized_until = $21, series_end = $22,
                  sequence = sequence + 1, updated_at = now()
           where id = $1
           returning id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                     start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                     organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                     created_by, created_at, updated_at"#,
        id,
        fields.uid,
        fields.title,
        fields.description,
        fields.location,
        fields.all_day,
        fields.start_at,
        fields.end_at,
        fields.time_zone,
        fields.start_date,
        fields.end_date,
        fields.status,
        fields.transparency,
        &fields.rrule,
        &fields.rdate,
        &fields.exdate,
        &fields.reminders,
        fields.organizer_id,
        fields.organizer_email,
        window.from,
        window.until,
        window.series_end,
    )
    .fetch_one(db)
    .await
}

pub async fn find_schedule<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The schedule, its row locked for the rest of the transaction.
/// Locks schedule `id` for the caller's transaction, its calendar's row first: every writer of
/// instances takes the calendar row (the instance count's triggers update it), so taking it
/// before the schedule keeps one lock order everywhere and no two writers deadlock.
pub async fn lock_schedule(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<ScheduleRecord>> {
    let Some(calendar_id) =
        sqlx::query_scalar!("select calendar_id from schedules where id = $1", id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    lock_calendar(&mut *conn, calendar_id).await?;
    lock_schedule_row(&mut *conn, id).await
}

/// Locks a calendar's row for the caller's transaction (see [`lock_schedule`]).
pub async fn lock_calendar<'e>(db: impl PgExecutor<'e>, calendar_id: Uuid) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        "select id from calendars where id = $1 for update",
        calendar_id
    )
    .fetch_optional(db)
    .await?;
    Ok(())
}

async fn lock_schedule_row<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules where id = $1 for update"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn find_schedule_by_uid<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    uid: &str,
) -> sqlx::Result<Option<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules where calendar_id = $1 and uid = $2"#,
        calendar_id,
        uid,
    )
    .fetch_optional(db)
    .await
}

pub async fn list_schedules<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules
           where calendar_id = $1 and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id
           limit $4"#,
        calendar_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

/// Every schedule of a calendar (for export), oldest first, at most `limit`.
pub async fn all_schedules<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules where calendar_id = $1 order by created_at, id limit $2"#,
        calendar_id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Schedules of `calendar_ids` whose materialized span does not cover `[from, to)` (and that
/// have occurrences there to add).
pub async fn schedules_to_extend<'e>(
    db: impl PgExecutor<'e>,
    calendar_ids: &[Uuid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<ScheduleRecord>> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"select id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                  start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                  organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                  created_by, created_at, updated_at
           from schedules
           where calendar_id = any($1)
             and ((materialized_until < $3 and (series_end is null or series_end > materialized_until))
                  or (materialized_from > $2 and coalesce(start_at, start_date::timestamptz - interval '1 day') < materialized_from))"#,
        calendar_ids,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

/// Open series whose instances stop before `horizon`, except `done`, the furthest behind first
/// (each is then locked on its own, calendar first: see [`lock_schedule`]).
pub async fn schedules_behind_horizon<'e>(
    db: impl PgExecutor<'e>,
    horizon: DateTime<Utc>,
    done: &[Uuid],
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"select id from schedules
           where series_end is null and materialized_until < $1 and id <> all($2)
           order by materialized_until
           limit $3"#,
        horizon,
        done,
        limit,
    )
    .fetch_all(db)
    .await
}

pub async fn set_window<'e>(db: impl PgExecutor<'e>, id: Uuid, window: Window) -> sqlx::Result<()> {
    sqlx::query!(
        "update schedules set materialized_from = $2, materialized_until = $3, series_end = $4 where id = $1",
        id,
        window.from,
        window.until,
        window.series_end,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the recurrence and the first occurrence of a series (the first part of a split).
pub async fn truncate_series<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    rrule: &[String],
    rdate: &[String],
    exdate: &[String],
) -> sqlx::Result<ScheduleRecord> {
    sqlx::query_as!(
        ScheduleRecord,
        r#"update schedules set rrule = $2, rdate = $3, exdate = $4, sequence = sequence + 1, updated_at = now()
           where id = $1
           returning id, calendar_id, uid, title, description, location, all_day, start_at, end_at, time_zone,
                     start_date, end_date, status, transparency, rrule, rdate, exdate, reminders, organizer_id,
                     organizer_email, split_from, sequence, materialized_from, materialized_until, series_end,
                     created_by, created_at, updated_at"#,
        id,
        rrule,
        rdate,
        exdate,
    )
    .fetch_one(db)
    .await
}

pub async fn delete_schedule<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from schedules where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// All schedule ids of a calendar (for re-materializing after a zone change).
pub async fn schedule_ids_of<'e>(
    db: impl PgExecutor<'e>,
    calendar_id: Uuid,
    all_day_only: bool,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select id from schedules where calendar_id = $1 and (not $2 or all_day)",
        calendar_id,
        all_day_only,
    )
    .fetch_all(db)
    .await
}

// --- Exceptions -----------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ExceptionRecord {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub original_start: NaiveDateTime,
    pub cancelled: bool,
    pub title: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub status: Option<String>,
    pub transparency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ExceptionRecord {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

pub async fn upsert_exception<'e>(
    db: impl PgExecutor<'e>,
    exception: &ExceptionRecord,
) -> sqlx::Result<ExceptionRecord> {
    sqlx::query_as!(
        ExceptionRecord,
        r#"insert into schedule_exceptions (id, schedule_id, original_start, cancelled, title, description, location,
                                            start_at, end_at, start_date, end_date, status, transparency)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           on conflict (schedule_id, original_start) do update set
               cancelled = excluded.cancelled, title = excluded.title, description = excluded.description,
               location = excluded.location, start_at = excluded.start_at, end_at = excluded.end_at,
               start_date = excluded.start_date, end_date = excluded.end_date, status = excluded.status,
               transparency = excluded.transparency, updated_at = now()
           returning id, schedule_id, original_start, cancelled, title, description, location, start_at, end_at,
                     start_date, end_date, status, transparency, created_at, updated_at"#,
        exception.id,
        exception.schedule_id,
        exception.original_start,
        exception.cancelled,
        exception.title,
        exception.description,
        exception.location,
        exception.start_at,
        exception.end_at,
        exception.start_date,
        exception.end_date,
        exception.status,
        exception.transparency,
    )
    .fetch_one(db)
    .await
}

pub async fn exceptions_of<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
) -> sqlx::Result<Vec<ExceptionRecord>> {
    sqlx::query_as!(
        ExceptionRecord,
        r#"select id, schedule_id, original_start, cancelled, title, description, location, start_at, end_at,
                  start_date, end_date, status, transparency, created_at, updated_at
           from schedule_exceptions where schedule_id = $1 order by original_start"#,
        schedule_id,
    )
    .fetch_all(db)
    .await
}

pub async fn list_exceptions<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<ExceptionRecord>> {
    sqlx::query_as!(
        ExceptionRecord,
        r#"select id, schedule_id, original_start, cancelled, title, description, location, start_at, end_at,
                  start_date, end_date, status, transparency, created_at, updated_at
           from schedule_exceptions
           where schedule_id = $1 and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id
           limit $4"#,
        schedule_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

pub async fn delete_exception<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    original_start: NaiveDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from schedule_exceptions where schedule_id = $1 and original_start = $2",
        schedule_id,
        original_start,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_exceptions<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    originals: &[NaiveDateTime],
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from schedule_exceptions where schedule_id = $1 and original_start = any($2)",
        schedule_id,
        originals,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Moves exceptions from one series to another (the second part of a split).
pub async fn move_exceptions<'e>(
    db: impl PgExecutor<'e>,
    from: Uuid,
    to: Uuid,
    originals: &[NaiveDateTime],
) -> sqlx::Result<()> {
    sqlx::query!(
        "update schedule_exceptions set schedule_id = $2, updated_at = now() where schedule_id = $1 and original_start = any($3)",
        from,
        to,
        originals,
    )
    .execute(db)
    .await?;
    Ok(())
}

// --- Guests and reminders --------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct GuestRecord {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub optional: bool,
    pub organizer: bool,
    pub rsvp: String,
    pub created_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
}

impl GuestRecord {
    pub fn position(&self) -> Position {
        Position {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewGuest<'a> {
    pub user_id: Option<Uuid>,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub optional: bool,
    pub organizer: bool,
    pub rsvp: &'a str,
}

/// Adds a guest; `None` when the user or address is already a guest.
pub async fn insert_guest<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    guest: &NewGuest<'_>,
) -> sqlx::Result<Option<GuestRecord>> {
    sqlx::query_as!(
        GuestRecord,
        r#"insert into schedule_guests (id, schedule_id, user_id, email, display_name, optional, organizer, rsvp)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict do nothing
           returning id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at"#,
        Uuid::now_v7(),
        schedule_id,
        guest.user_id,
        guest.email,
        guest.display_name,
        guest.optional,
        guest.organizer,
        guest.rsvp,
    )
    .fetch_optional(db)
    .await
}

pub async fn list_guests<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    page: &PageRequest,
) -> sqlx::Result<Vec<GuestRecord>> {
    sqlx::query_as!(
        GuestRecord,
        r#"select id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at
           from schedule_guests
           where schedule_id = $1 and ($2::timestamptz is null or (created_at, id) > ($2, $3))
           order by created_at, id
           limit $4"#,
        schedule_id,
        page.after_created_at(),
        page.after_id(),
        page.fetch_limit(),
    )
    .fetch_all(db)
    .await
}

pub async fn all_guests<'e>(
    db: impl PgExecutor<'e>,
    schedule_ids: &[Uuid],
) -> sqlx::Result<Vec<GuestRecord>> {
    sqlx::query_as!(
        GuestRecord,
        r#"select id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at
           from schedule_guests where schedule_id = any($1) order by created_at, id"#,
        schedule_ids,
    )
    .fetch_all(db)
    .await
}

pub async fn find_guest<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    guest_id: Uuid,
) -> sqlx::Result<Option<GuestRecord>> {
    sqlx::query_as!(
        GuestRecord,
        r#"select id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at
           from schedule_guests where schedule_id = $1 and id = $2"#,
        schedule_id,
        guest_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn guest_for_user<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<GuestRecord>> {
    sqlx::query_as!(
        GuestRecord,
        r#"select id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at
           from schedule_guests where schedule_id = $1 and user_id = $2"#,
        schedule_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn delete_guest<'e>(db: impl PgExecutor<'e>, guest_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("delete from schedule_guests where id = $1", guest_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn set_rsvp<'e>(
    db: impl PgExecutor<'e>,
    guest_id: Uuid,
    rsvp: &str,
) -> sqlx::Result<GuestRecord> {
    sqlx::query_as!(
        GuestRecord,
        r#"update schedule_guests set rsvp = $2, responded_at = now() where id = $1
           returning id, schedule_id, user_id, email, display_name, optional, organizer, rsvp, created_at, responded_at"#,
        guest_id,
        rsvp,
    )
    .fetch_one(db)
    .await
}

/// Calendars whose free/busy depends on a guest's answer: the schedule's own calendar and the
/// guest's personal calendars.
pub async fn calendars_of_guest_change<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"select calendar_id as "id!" from schedules where id = $1
           union
           select c.id from schedule_guests g join calendars c on c.owner_id = g.user_id and c.workspace_id is null
           where g.schedule_id = $1"#,
        schedule_id,
    )
    .fetch_all(db)
    .await
}

pub async fn reminder_override<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<Vec<i32>>> {
    sqlx::query_scalar!(
        "select minutes from schedule_reminder_overrides where schedule_id = $1 and user_id = $2",
        schedule_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn set_reminder_override<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    user_id: Uuid,
    minutes: &[i32],
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"insert into schedule_reminder_overrides (schedule_id, user_id, minutes) values ($1, $2, $3)
           on conflict (schedule_id, user_id) do update set minutes = excluded.minutes, updated_at = now()"#,
        schedule_id,
        user_id,
        minutes,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn clear_reminder_override<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from schedule_reminder_overrides where schedule_id = $1 and user_id = $2",
        schedule_id,
        user_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

// --- Instances ------------------------------------------------------------------------

/// Instances to store for one schedule, as parallel columns.
#[derive(Debug, Clone, Default)]
pub struct InstanceBatch {
    pub original_start: Vec<NaiveDateTime>,
    pub start: Vec<DateTime<Utc>>,
    pub end: Vec<DateTime<Utc>>,
    pub is_exception: Vec<bool>,
    pub blocks: Vec<bool>,
}

impl InstanceBatch {
    pub fn push(
        &mut self,
        original_start: NaiveDateTime,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        is_exception: bool,
        blocks: bool,
    ) {
        self.original_start.push(original_start);
        self.start.push(start);
        self.end.push(end);
        self.is_exception.push(is_exception);
        // An occurrence that takes no time blocks none.
        self.blocks.push(blocks && end > start);
    }

    pub fn len(&self) -> usize {
        self.original_start.len()
    }

    pub fn is_empty(&self) -> bool {
        self.original_start.is_empty()
    }
}

/// Stores instances; ones already stored (same original start) are kept.
pub async fn insert_instances<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    calendar_id: Uuid,
    all_day: bool,
    batch: &InstanceBatch,
) -> sqlx::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        r#"insert into schedule_instances (schedule_id, calendar_id, original_start, during, all_day, is_exception, blocks)
           select $1, $2, t.o, case when t.s = t.e then tstzrange(t.s, t.e, '[]') else tstzrange(t.s, t.e) end,
                  $3, t.x, t.b
           from unnest($4::timestamp[], $5::timestamptz[], $6::timestamptz[], $7::bool[], $8::bool[]) as t(o, s, e, x, b)
           on conflict (schedule_id, original_start) do nothing"#,
        schedule_id,
        calendar_id,
        all_day,
        &batch.original_start,
        &batch.start,
        &batch.end,
        &batch.is_exception,
        &batch.blocks,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// How many instances the calendar holds now.
pub async fn instance_count<'e>(db: impl PgExecutor<'e>, calendar_id: Uuid) -> sqlx::Result<i64> {
    Ok(sqlx::query_scalar!(
        "select instance_count from calendars where id = $1",
        calendar_id
    )
    .fetch_optional(db)
    .await?
    .unwrap_or(0))
}

/// How many schedules the calendar holds now.
pub async fn schedule_count<'e>(db: impl PgExecutor<'e>, calendar_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from schedules where calendar_id = $1"#,
        calendar_id
    )
    .fetch_one(db)
    .await
}

pub async fn delete_instances<'e>(db: impl PgExecutor<'e>, schedule_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from schedule_instances where schedule_id = $1",
        schedule_id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete_instance<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    original_start: NaiveDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from schedule_instances where schedule_id = $1 and original_start = $2",
        schedule_id,
        original_start,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One instance of the view, with what a reader needs of its schedule.
#[derive(Debug, Clone)]
pub struct ViewRow {
    pub schedule_id: Uuid,
    pub calendar_id: Uuid,
    pub original_start: NaiveDateTime,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    pub is_exception: bool,
    pub title: String,
    pub location: Option<String>,
    pub status: String,
    pub transparency: String,
    pub recurring: bool,
    /// The viewer's answer when they are a guest (or the organizer) of the schedule.
    pub rsvp: Option<String>,
    /// The viewer is a guest of the schedule, not its organizer.
    pub as_guest: bool,
}

/// What one page of the instances view reads.
#[derive(Debug, Clone)]
pub struct ViewQuery<'a> {
    /// Whose view it is: their RSVP is reported on schedules they are a guest of.
    pub viewer: Uuid,
    pub calendar_ids: &'a [Uuid],
    /// Schedules shown wherever their calendar is (the viewer is a guest of them).
    pub guest_schedule_ids: &'a [Uuid],
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The keyset (start, schedule id, original start) to continue after.
    pub after: Option<(DateTime<Utc>, Uuid, NaiveDateTime)>,
    pub limit: i64,
}

/// Instances of the query's calendars and guest schedules overlapping `[from, to)`, by start,
/// at most `limit`. Exceptions' overrides are applied.
pub async fn view<'e>(
    db: impl PgExecutor<'e>,
    query: &ViewQuery<'_>,
) -> sqlx::Result<Vec<ViewRow>> {
    let (after_start, after_schedule, after_original) = match query.after {
        Some((start, schedule, original)) => (Some(start), Some(schedule), Some(original)),
        None => (None, None, None),
    };
    sqlx::query_as!(
        ViewRow,
        r#"select i.schedule_id, i.calendar_id, i.original_start, lower(i.during) as "start!", upper(i.during) as "end!",
                  i.all_day, i.is_exception, coalesce(x.title, s.title) as "title!", coalesce(x.location, s.location) as location,
                  coalesce(x.status, s.status) as "status!", coalesce(x.transparency, s.transparency) as "transparency!",
                  (cardinality(s.rrule) > 0 or cardinality(s.rdate) > 0) as "recurring!",
                  me.rsvp as "rsvp?", coalesce(not me.organizer, false) as "as_guest!"
           from schedule_instances i
           join schedules s on s.id = i.schedule_id
           left join schedule_exceptions x on i.is_exception and x.schedule_id = i.schedule_id and x.original_start = i.original_start
           left join schedule_guests me on me.schedule_id = i.schedule_id and me.user_id = $8
           where (i.calendar_id = any($1) or i.schedule_id = any($9)) and i.during && tstzrange($2, $3)
             and ($4::timestamptz is null or (lower(i.during), i.schedule_id, i.original_start) > ($4, $5, $6))
           order by lower(i.during), i.schedule_id, i.original_start
           limit $7"#,
        query.calendar_ids,
        query.from,
        query.to,
        after_start,
        after_schedule,
        after_original,
        query.limit,
        query.viewer,
        query.guest_schedule_ids,
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct GuestScheduleRow {
    pub schedule_id: Uuid,
    pub calendar_id: Uuid,
    pub time_zone: String,
}

/// Schedules `user_id` is a guest of and has not declined, newest invitation first, at most
/// `limit`.
pub async fn guest_schedules<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<GuestScheduleRow>> {
    sqlx::query_as!(
        GuestScheduleRow,
        r#"select g.schedule_id, s.calendar_id, c.time_zone
           from schedule_guests g
           join schedules s on s.id = g.schedule_id
           join calendars c on c.id = s.calendar_id
           where g.user_id = $1 and g.rsvp <> 'declined'
           order by g.created_at desc, g.id
           limit $2"#,
        user_id,
        limit,
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct BusyRow {
    pub calendar_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The merged busy intervals of each of `calendar_ids` within `[from, to)` (clipped), by
/// calendar and start: blocking instances, merged in Postgres (`range_agg`), so only the
/// merged intervals cross the wire. An instance does not block a personal calendar whose owner
/// declined it as a guest.
pub async fn busy_of_calendars<'e>(
    db: impl PgExecutor<'e>,
    calendar_ids: &[Uuid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<BusyRow>> {
    sqlx::query_as!(
        BusyRow,
        r#"select a.calendar_id as "calendar_id!", lower(r) as "start!", upper(r) as "end!"
           from (select i.calendar_id, range_agg(i.during) * tstzmultirange(tstzrange($2, $3)) as busy
                 from schedule_instances i
                 where i.calendar_id = any($1) and i.during && tstzrange($2, $3) and i.blocks
                   -- One hashed set of (calendar, schedule) pairs the owner declined, not a
                   -- probe per instance.
                   and (i.calendar_id, i.schedule_id) not in (
                       select c.id, g.schedule_id from calendars c
                       join schedule_guests g on g.user_id = c.owner_id and g.rsvp = 'declined'
                       where c.id = any($1) and c.workspace_id is null)
                 group by i.calendar_id) a
           cross join lateral unnest(a.busy) as r
           order by 1, 2"#,
        calendar_ids,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

/// A user's merged busy intervals within `[from, to)`: blocking instances of their personal
/// calendars and of schedules they are a guest of, except those they declined. A guest who has
/// not answered is busy only when the organizer shares a workspace with them, so that no
/// stranger can fill someone's free/busy with invitations.
pub async fn busy_of_user<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<BusyPeriod>> {
    sqlx::query_as!(
        BusyPeriod,
        r#"select lower(r) as "start!", upper(r) as "end!"
           from (select range_agg(i.during) * tstzmultirange(tstzrange($2, $3)) as busy
                 from schedule_instances i
                 where i.during && tstzrange($2, $3) and i.blocks
                   and (i.calendar_id in (select id from calendars where owner_id = $1 and workspace_id is null)
                        -- An invitation makes its guest busy once answered, or at once when
                        -- the organizer shares a workspace with the guest.
                        or exists (select 1 from schedule_guests g join schedules s on s.id = g.schedule_id
                                   where g.schedule_id = i.schedule_id and g.user_id = $1
                                     and (g.rsvp in ('accepted', 'tentative')
                                          or (g.rsvp = 'needs_action'
                                              and exists (select 1 from workspace_members o
                                                          join workspace_members m using (workspace_id)
                                                          where o.user_id = s.organizer_id and m.user_id = $1)))))
                   and not exists (select 1 from schedule_guests g
                                   where g.schedule_id = i.schedule_id and g.user_id = $1 and g.rsvp = 'declined')) a
           cross join lateral unnest(a.busy) as r
           order by 1"#,
        user_id,
        from,
        to,
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct BusyPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Schedules calendar ids that a user's busy time reads (for lazily materializing them).
pub async fn calendars_of_user_busy<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"select id as "id!" from calendars where owner_id = $1 and workspace_id is null
           union
           select s.calendar_id from schedule_guests g join schedules s on s.id = g.schedule_id where g.user_id = $1"#,
        user_id,
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone)]
pub struct ConflictRow {
    pub schedule_id: Uuid,
    pub title: String,
    pub original_start: NaiveDateTime,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    pub own_original_start: NaiveDateTime,
}

/// Blocking instances of other schedules on the same calendar that overlap a blocking
/// instance of `schedule_id`, at most `limit`.
pub async fn conflicts_of<'e>(
    db: impl PgExecutor<'e>,
    schedule_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<ConflictRow>> {
    sqlx::query_as!(
        ConflictRow,
        r#"select o.schedule_id, s.title, o.original_start, lower(o.during) as "start!", upper(o.during) as "end!",
                  o.all_day, n.original_start as own_original_start
           from schedule_instances n
           join schedule_instances o on o.calendar_id = n.calendar_id and o.during && n.during
                                    and o.schedule_id <> n.schedule_id and o.blocks
           join schedules s on s.id = o.schedule_id
           join calendars c on c.id = o.calendar_id
           where n.schedule_id = $1 and n.blocks
             and not exists (select 1 from schedule_guests g
                             where g.schedule_id = o.schedule_id and c.workspace_id is null
                               and g.user_id = c.owner_id and g.rsvp = 'declined')
           order by lower(n.during), lower(o.during), o.schedule_id
           limit $2"#,
        schedule_id,
        limit,
    )
    .fetch_all(db)
    .await
}
