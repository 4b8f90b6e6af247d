-- The durable head of each canvas's Yjs document (ARCHITECTURE §4). `canvas_updates` is the
-- append-only log; this row hands out its sequence numbers (the row lock serializes appenders
-- on every node) and holds the latest snapshot, which covers every logged update with
-- seq <= snapshot_seq. Compaction replaces the snapshot and deletes the rows it covers in one
-- transaction, and only ever moves snapshot_seq forward.
create table canvas_documents (
    canvas_id      uuid primary key references canvases (id) on delete cascade,
    last_seq       bigint not null default 0 check (last_seq >= 0),
    snapshot       bytea,
    snapshot_seq   bigint not null default 0,
    compactions    bigint not null default 0,
    compacted_at   timestamptz,
    updated_at     timestamptz not null default now(),
    check (snapshot_seq >= 0 and snapshot_seq <= last_seq),
    check ((snapshot is null) = (snapshot_seq = 0))
);

comment on table canvas_documents is
    'Sequence head and latest snapshot of each canvas''s Yjs document; the log is canvas_updates';
