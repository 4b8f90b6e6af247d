-- Canvas blocks materialized from the Yjs documents (ARCHITECTURE §5), for readers that do not
-- speak CRDT. The document is the source of truth; these rows follow it within a bounded lag.
-- Block ids are unique within a canvas (a duplicated canvas keeps its blocks' ids).
create table blocks (
    canvas_id   uuid not null references canvases (id) on delete cascade,
    id          uuid not null,
    parent_id   uuid,
    kind        text not null,
    order_key   text collate "C" not null,
    text        text not null default '',
    content     jsonb not null default '[]',
    props       jsonb not null default '{}',
    -- Incremented by every materialized change of the block.
    version     bigint not null default 1 check (version >= 1),
    -- The log position of the document state this row was last written from.
    doc_seq     bigint not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    updated_by  uuid references users (id) on delete set null,
    primary key (canvas_id, id)
);

create index blocks_siblings on blocks (canvas_id, parent_id, order_key, id);

-- How far each canvas is materialized: a materialization computed from an older document state
-- (a lower sequence number) is refused, so rows never go backwards.
create table canvas_materializations (
    canvas_id       uuid primary key references canvases (id) on delete cascade,
    seq             bigint not null check (seq >= 0),
    materialized_at timestamptz not null default now()
);

-- Blocks whose text changed, waiting to be embedded; `text_hash` (sha-256 of the text) lets the
-- worker skip text it has already embedded.
create table embedding_queue (
    canvas_id   uuid not null,
    block_id    uuid not null,
    text_hash   bytea not null,
    enqueued_at timestamptz not null default now(),
    primary key (canvas_id, block_id),
    foreign key (canvas_id, block_id) references blocks (canvas_id, id) on delete cascade
);
