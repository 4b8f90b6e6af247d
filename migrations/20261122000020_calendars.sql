-- Calendars, subscriptions, schedules (events) with recurrence, their exceptions, guests,
-- per-user reminder overrides, and the materialized instances free/busy and views read.
--
-- Times: a timed schedule stores its first occurrence as an instant (`start_at`/`end_at`) plus
-- the IANA zone its recurrence is expanded in; an all-day one stores dates with an exclusive
-- end. Occurrences are keyed by their original local start (`timestamp`, no zone), the value
-- the rule produced before any DST shift; an all-day occurrence's key is its date at midnight.

-- (calendar_id, during) in one GiST index needs btree_gist for the uuid column. Provisioning
-- creates it in template1; a server given by DATABASE_URL may not have done so.
create extension if not exists btree_gist;

create table calendars (
    id              uuid primary key,
    -- null: a personal calendar of its owner.
    workspace_id    uuid references workspaces (id) on delete cascade,
    owner_id        uuid not null references users (id) on delete cascade,
    name            text not null check (length(name) between 1 and 200),
    description     text check (length(description) <= 2000),
    -- #rrggbb
    color           text not null default '#4f7cff' check (color ~ '^#[0-9a-f]{6}$'),
    -- IANA zone: default for new schedules; all-day dates are placed at its midnight.
    time_zone       text not null default 'UTC',
    -- SHA-256 of the secret of the ICS feed URL; null when the feed is off.
    feed_token_hash bytea unique,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

create index calendars_workspace_idx on calendars (workspace_id, created_at, id);
create index calendars_owner_personal_idx on calendars (owner_id, created_at, id) where workspace_id is null;

-- Roles given on one calendar to one user (the owner of a personal calendar and a workspace's
-- members have theirs implicitly).
create table calendar_subscriptions (
    calendar_id uuid not null references calendars (id) on delete cascade,
    user_id     uuid not null references users (id) on delete cascade,
    role        text not null check (role in ('owner', 'editor', 'viewer', 'free_busy')),
    created_by  uuid references users (id) on delete set null,
    created_at  timestamptz not null default now(),
    primary key (calendar_id, user_id)
);

create index calendar_subscriptions_user_idx on calendar_subscriptions (user_id, created_at, calendar_id);

create table schedules (
    id                 uuid primary key,
    calendar_id        uuid not null references calendars (id) on delete cascade,
    -- iCalendar UID: stable across export and re-import.
    uid                text not null check (length(uid) between 1 and 1000),
    title              text not null default '' check (length(title) <= 1000),
    description        text check (length(description) <= 20000),
    location           text check (length(location) <= 1000),
    all_day            boolean not null,
    -- Timed: the first occurrence, and the zone the series lives in.
    start_at           timestamptz,
    end_at             timestamptz,
    time_zone          text,
    -- All-day: the first day and the day after the last (exclusive).
    start_date         date,
    end_date           date,
    status             text not null default 'confirmed' check (status in ('confirmed', 'tentative', 'cancelled')),
    transparency       text not null default 'opaque' check (transparency in ('opaque', 'transparent')),
    -- Recurrence in iCalendar form: RRULE values and RDATE/EXDATE values (YYYYMMDD,
    -- YYYYMMDDTHHMMSS in the series' zone, or YYYYMMDDTHHMMSSZ).
    rrule              text[] not null default '{}',
    rdate              text[] not null default '{}',
    exdate             text[] not null default '{}',
    -- Default reminders, minutes before each occurrence.
    reminders          integer[] not null default '{}',
    organizer_id       uuid references users (id) on delete set null,
    organizer_email    text,
    -- The series this one was split from ("this and following").
    split_from         uuid references schedules (id) on delete set null,
    sequence           integer not null default 0,
    -- The span of original starts whose instances are in schedule_instances.
    materialized_from  timestamptz not null,
    materialized_until timestamptz not null,
    -- Last possible instance end, null for an infinite series; the horizon job skips ended ones.
    series_end         timestamptz,
    created_by         uuid references users (id) on delete set null,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    unique (calendar_id, uid),
    check (
        (not all_day and start_at is not null and end_at is not null and end_at >= start_at
             and time_zone is not null and start_date is null and end_date is null)
        or (all_day and start_date is not null and end_date is not null and end_date > start_date
             and start_at is null and end_at is null and time_zone is null)
    )
);

create index schedules_calendar_idx on schedules (calendar_id, created_at, id);
-- The horizon job: open series whose instances stop before the horizon.
create index schedules_horizon_idx on schedules (materialized_until) where series_end is null;

-- One occurrence edited or cancelled, keyed by its original start.
create table schedule_exceptions (
    id             uuid primary key,
    schedule_id    uuid not null references schedules (id) on delete cascade,
    original_start timestamp not null,
    cancelled      boolean not null default false,
    -- Overrides; null keeps the series' value.
    title          text check (length(title) <= 1000),
    description    text check (length(description) <= 20000),
    location       text check (length(location) <= 1000),
    start_at       timestamptz,
    end_at         timestamptz,
    start_date     date,
    end_date       date,
    status         text check (status in ('confirmed', 'tentative', 'cancelled')),
    transparency   text check (transparency in ('opaque', 'transparent')),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    unique (schedule_id, original_start),
    check ((start_at is null) = (end_at is null) and (start_date is null) = (end_date is null))
);

create index schedule_exceptions_page_idx on schedule_exceptions (schedule_id, created_at, id);

create table schedule_guests (
    id           uuid primary key,
    schedule_id  uuid not null references schedules (id) on delete cascade,
    user_id      uuid references users (id) on delete cascade,
    email        text,
    display_name text,
    optional     boolean not null default false,
    organizer    boolean not null default false,
    rsvp         text not null default 'needs_action'
                 check (rsvp in ('needs_action', 'accepted', 'tentative', 'declined')),
    created_at   timestamptz not null default now(),
    responded_at timestamptz,
    check (user_id is not null or email is not null)
);

create unique index schedule_guests_user_key on schedule_guests (schedule_id, user_id) where user_id is not null;
create unique index schedule_guests_email_key on schedule_guests (schedule_id, lower(email)) where user_id is null;
create index schedule_guests_user_idx on schedule_guests (user_id) where user_id is not null;
create index schedule_guests_page_idx on schedule_guests (schedule_id, created_at, id);

-- A user's own reminders for one schedule, replacing its defaults for them.
create table schedule_reminder_overrides (
    schedule_id uuid not null references schedules (id) on delete cascade,
    user_id     uuid not null references users (id) on delete cascade,
    minutes     integer[] not null,
    updated_at  timestamptz not null default now(),
    primary key (schedule_id, user_id)
);

-- Occurrences, materialized from each schedule's recurrence and exceptions.
create table schedule_instances (
    schedule_id    uuid not null references schedules (id) on delete cascade,
    calendar_id    uuid not null references calendars (id) on delete cascade,
    original_start timestamp not null,
    -- UTC, half-open [start, end); all-day dates placed at the calendar zone's midnight.
    during         tstzrange not null,
    all_day        boolean not null,
    -- True when an exception changed this occurrence.
    is_exception   boolean not null default false,
    -- Opaque and not cancelled: the occurrence makes its time busy.
    blocks         boolean not null,
    primary key (schedule_id, original_start)
);

create index schedule_instances_during_idx on schedule_instances using gist (calendar_id, during);
