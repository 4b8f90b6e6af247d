-- The AI foundation (ARCHITECTURE §8): vectors of block texts, a generic embedding queue, the
-- access rule that every retrieval path shares, and usage per user, workspace and day.

create extension if not exists vector;

-- The canvases a user may read, by the rules of `canvas_access` in server/src/access.rs: the
-- owner of a personal canvas; any member of the canvas's workspace (a workspace canvas's owner
-- counts only while a member); any direct canvas member. Text, semantic and hybrid search all
-- select from this one function, so the rule is written once for every retrieval path.
create function readable_canvases(p_user uuid) returns table (canvas_id uuid)
language sql stable parallel safe as $$
    select own.id from canvases own
    where own.workspace_id is null and own.owner_id = p_user
    union
    select ws.id from workspace_members wm
    join canvases ws on ws.workspace_id = wm.workspace_id
    where wm.user_id = p_user
    union
    select cm.canvas_id from canvas_members cm where cm.user_id = p_user
$$;

-- The queue becomes generic over what is embedded: a block of a canvas now; messages of a
-- conversation and memories of a user later. One row per source coalesces repeated edits, and
-- the worker re-reads the source's current text, so a job never embeds a stale version.
alter table embedding_queue drop constraint embedding_queue_canvas_id_block_id_fkey;
alter table embedding_queue drop constraint embedding_queue_pkey;
alter table embedding_queue rename column canvas_id to scope_id;
alter table embedding_queue rename column block_id to source_id;
alter table embedding_queue
    add column source_kind text not null default 'block'
        check (source_kind in ('block', 'message', 'memory')),
    -- Failed attempts so far; reset when the source's text changes.
    add column attempts integer not null default 0 check (attempts >= 0),
    -- The worker takes a job once this is due (later after a failure: backoff).
    add column next_attempt_at timestamptz not null default now(),
    add column last_error text,
    -- Set when the job ran out of attempts (a dead letter); a new text revives it.
    add column dead_at timestamptz;
alter table embedding_queue alter column source_kind drop default;
alter table embedding_queue add primary key (source_kind, scope_id, source_id);
comment on column embedding_queue.scope_id is
    'the canvas of a block, the conversation of a message, the user of a memory';
create index embedding_queue_due on embedding_queue (next_attempt_at) where dead_at is null;

-- One vector per block, from the configured model; a deleted block takes its vector with it.
create table block_embeddings (
    canvas_id    uuid not null,
    block_id     uuid not null,
    -- The embedding model's name; a change of model is re-embedded by `potentia ai reindex`.
    model        text not null,
    -- sha-256 of the text the vector was computed from.
    content_hash bytea not null,
    -- Unit length; models with fewer dimensions are zero-padded (cosine stays exact).
    embedding    vector(768) not null,
    embedded_at  timestamptz not null default now(),
    primary key (canvas_id, block_id),
    foreign key (canvas_id, block_id) references blocks (canvas_id, id) on delete cascade
);
-- Kept in the row (3 KiB fits a page): exact scans read vectors without detoasting them.
alter table block_embeddings alter column embedding set storage plain;
create index block_embeddings_hnsw on block_embeddings using hnsw (embedding vector_cosine_ops);
-- The same text under the same model is embedded once (duplicated canvases, repeated lines).
create index block_embeddings_reuse on block_embeddings (model, content_hash);

-- Where `potentia ai reindex` got to, per model, so an interrupted run resumes.
create table ai_reindex_progress (
    model           text primary key,
    last_canvas_id  uuid not null,
    last_block_id   uuid not null,
    done            bigint not null default 0,
    updated_at      timestamptz not null default now()
);

-- Tokens and embedded texts per user, workspace (null: personal) and day, per provider and
-- model. Kept when a workspace goes (no foreign key), gone with the user.
create table ai_usage (
    user_id        uuid not null references users (id) on delete cascade,
    workspace_id   uuid,
    day            date not null,
    provider       text not null,
    model          text not null,
    requests       bigint not null default 0,
    input_tokens   bigint not null default 0,
    output_tokens  bigint not null default 0,
    embedded_texts bigint not null default 0,
    unique nulls not distinct (user_id, workspace_id, day, provider, model)
);
create index ai_usage_user_day on ai_usage (user_id, day);
