-- Chat (ARCHITECTURE §8): conversations split into contexts (topics), their messages, the
-- memories the assessor learns (bi-temporal, with history), domain roles, and the durable jobs
-- that run after an answer (assessment, titles). Timestamps that the pipeline reasons about
-- come from its clock, never from `now()`, so tests can move time.

create table conversations (
    id               uuid primary key,
    user_id          uuid not null references users (id) on delete cascade,
    -- What the conversation is about, if anything; it stays when the canvas or workspace goes.
    workspace_id     uuid references workspaces (id) on delete set null,
    canvas_id        uuid references canvases (id) on delete set null,
    title            text not null default '',
    -- `none`: untitled; `auto`: generated after the first exchange; `user`: renamed by hand,
    -- never overwritten by a generated title.
    title_source     text not null default 'none' check (title_source in ('none', 'auto', 'user')),
    created_at       timestamptz not null,
    last_activity_at timestamptz not null
);
create index conversations_user_activity on conversations (user_id, last_activity_at desc, id desc);

-- A topic inside a conversation; each message belongs to one.
create table conversation_contexts (
    id              uuid primary key,
    conversation_id uuid not null references conversations (id) on delete cascade,
    -- Rolling summary, rewritten by the assessor after each exchange.
    summary         text not null default '',
    -- The summary and the context's latest user messages, embedded (for re-entry by reference).
    embedding       vector(768),
    embedding_model text,
    started_at      timestamptz not null,
    last_active_at  timestamptz not null,
    message_count   integer not null default 0 check (message_count >= 0)
);
create index conversation_contexts_conversation on conversation_contexts (conversation_id, last_active_at desc);

create table conversation_messages (
    id                uuid primary key,
    conversation_id   uuid not null references conversations (id) on delete cascade,
    context_id        uuid not null references conversation_contexts (id) on delete cascade,
    -- The conversation's owner, kept here so retrieval across conversations needs no join.
    user_id           uuid not null references users (id) on delete cascade,
    role              text not null check (role in ('user', 'assistant')),
    text              text not null,
    -- `interrupted`: the client went away mid-answer, what was produced is kept; `failed`: the
    -- model failed after part of an answer.
    status            text not null default 'complete' check (status in ('complete', 'interrupted', 'failed')),
    -- The client's id of a user message: a retry with the same id returns the stored turn.
    client_message_id text check (length(client_message_id) between 1 and 200),
    -- An assistant message answers one user message.
    reply_to          uuid references conversation_messages (id) on delete cascade,
    -- On the user message: the judge's decision (`continue`/`switch`/`new`, reason, …).
    decision          jsonb,
    -- On the assistant message: the domain role used and the tool calls made.
    domain_role       text,
    tool_calls        jsonb not null default '[]'::jsonb check (jsonb_typeof(tool_calls) = 'array'),
    input_tokens      bigint,
    output_tokens     bigint,
    created_at        timestamptz not null,
    unique (conversation_id, client_message_id)
);
create index conversation_messages_page on conversation_messages (conversation_id, created_at, id);
create index conversation_messages_context on conversation_messages (context_id, created_at desc);
create unique index conversation_messages_one_answer on conversation_messages (reply_to) where reply_to is not null;

-- One vector per message; it goes with the message.
create table message_embeddings (
    message_id   uuid primary key references conversation_messages (id) on delete cascade,
    user_id      uuid not null,
    model        text not null,
    content_hash bytea not null,
    embedding    vector(768) not null,
    embedded_at  timestamptz not null default now()
);
alter table message_embeddings alter column embedding set storage plain;
create index message_embeddings_user on message_embeddings (user_id);

-- What the assistant knows about a user. World time: `valid_at`..`invalid_at` (a contradiction
-- sets `invalid_at`, never deletes). System time: `created_at`..`expired_at` (a row the user
-- edited by hand is expired and replaced).
create table memories (
    id                     uuid primary key,
    user_id                uuid not null references users (id) on delete cascade,
    kind                   text not null check (kind in ('fact', 'preference', 'rule')),
    text                   text not null check (length(text) between 1 and 2000),
    valid_at               timestamptz not null,
    invalid_at             timestamptz,
    created_at             timestamptz not null,
    expired_at             timestamptz,
    -- `assessor`: learned from a message; `user`: stated through the API.
    origin                 text not null check (origin in ('assessor', 'user')),
    source_message_id      uuid references conversation_messages (id) on delete set null,
    source_conversation_id uuid references conversations (id) on delete set null,
    check (invalid_at is null or invalid_at >= valid_at)
);
create index memories_user_current on memories (user_id, created_at desc) where expired_at is null;

create table memory_embeddings (
    memory_id    uuid primary key references memories (id) on delete cascade,
    user_id      uuid not null,
    model        text not null,
    content_hash bytea not null,
    embedding    vector(768) not null,
    embedded_at  timestamptz not null default now()
);
alter table memory_embeddings alter column embedding set storage plain;
create index memory_embeddings_user on memory_embeddings (user_id);

-- What changed in a memory and why (the assessor's reason, or `stated by the user`).
create table memory_history (
    id          bigint generated always as identity primary key,
    memory_id   uuid not null references memories (id) on delete cascade,
    user_id     uuid not null,
    event       text not null check (event in ('add', 'update', 'invalidate', 'edit')),
    old_text    text,
    new_text    text,
    -- The memory that replaced this one, for `update`.
    replaced_by uuid references memories (id) on delete set null,
    reason      text not null default '',
    message_id  uuid references conversation_messages (id) on delete set null,
    at          timestamptz not null
);
create index memory_history_memory on memory_history (memory_id, at);

-- Domain roles the specialist can take, chosen by similarity to the message. Built-in roles
-- have no workspace; a workspace's admins add their own.
create table ai_roles (
    id              uuid primary key,
    workspace_id    uuid references workspaces (id) on delete cascade,
    name            text not null check (length(name) between 1 and 100),
    description     text not null check (length(description) between 1 and 1000),
    prompt          text not null check (length(prompt) between 1 and 8000),
    embedding       vector(768),
    embedding_model text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    unique nulls not distinct (workspace_id, name)
);

insert into ai_roles (id, workspace_id, name, description, prompt) values
    ('01930000-0000-7000-8000-000000000001', null, 'planner',
     'plans, schedules, calendars, agendas, deadlines, todo lists, priorities, time management, meetings and weeks ahead',
     'Act as a planner. Turn what the user wants into concrete steps with dates; check them against the agenda; propose todos and schedule blocks, and say what to do first.'),
    ('01930000-0000-7000-8000-000000000002', null, 'writing editor',
     'writing, editing, drafts, essays, emails, tone, grammar, structure, wording and rewriting text',
     'Act as a writing editor. Keep the user''s voice; point out what is unclear, suggest concrete rewrites, and explain each change in a few words.'),
    ('01930000-0000-7000-8000-000000000003', null, 'data analyst',
     'data, numbers, metrics, spreadsheets, charts, statistics, budgets, trends, comparisons and calculations',
     'Act as a data analyst. State what the numbers say and how sure that is; show the calculation; suggest the next question worth asking of the data.'),
    ('01930000-0000-7000-8000-000000000004', null, 'coach',
     'habits, goals, motivation, feelings, stress, health, learning, hobbies, personal growth and everyday life',
     'Act as a coach. Listen first, reflect what you heard, ask one good question, and offer one small step the user can take today.');

-- Work that runs after an answer is stored, durable so that a crash between the answer and the
-- assessment loses nothing: `assess` (memories and the context summary), `title`.
create table chat_jobs (
    kind            text not null check (kind in ('assess', 'title')),
    -- The assistant message the job is about.
    message_id      uuid not null references conversation_messages (id) on delete cascade,
    conversation_id uuid not null references conversations (id) on delete cascade,
    attempts        integer not null default 0 check (attempts >= 0),
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    dead_at         timestamptz,
    created_at      timestamptz not null default now(),
    primary key (kind, message_id)
);
create index chat_jobs_due on chat_jobs (next_attempt_at) where dead_at is null;
