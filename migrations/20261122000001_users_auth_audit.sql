-- Users, refresh tokens and the audit log: the foundation every module builds on.

create table users (
    id            uuid primary key,
    email         text,
    name          text,
    -- E.164, validated by the server with libphonenumber rules before it is stored.
    phone         text check (phone ~ '^\+[1-9][0-9]{1,14}$'),
    timezone      text not null default 'UTC',
    locale        text not null default 'en',
    preferences   jsonb not null default '{}'::jsonb check (jsonb_typeof(preferences) = 'object'),
    -- argon2id PHC string; null for users who only sign in with external tokens.
    password_hash text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- Emails are unique regardless of case; users from external tokens may have none.
create unique index users_email_lower_key on users (lower(email)) where email is not null;

create table refresh_tokens (
    id          uuid primary key,
    user_id     uuid not null references users (id) on delete cascade,
    -- All tokens descending from one sign-in share a family; reuse revokes the family.
    family_id   uuid not null,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash  bytea not null unique,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    used_at     timestamptz,
    revoked_at  timestamptz,
    replaced_by uuid references refresh_tokens (id) on delete set null
);

create index refresh_tokens_family_idx on refresh_tokens (family_id);
create index refresh_tokens_user_idx on refresh_tokens (user_id);

create table system_audit (
    id          bigint generated always as identity primary key,
    actor_id    uuid,
    action      text not null,
    target_type text not null,
    target_id   text,
    before      jsonb,
    after       jsonb,
    request_id  text,
    created_at  timestamptz not null default now()
);

create index system_audit_target_idx on system_audit (target_type, target_id, created_at);
create index system_audit_actor_idx on system_audit (actor_id, created_at);
