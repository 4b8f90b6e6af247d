-- Workspaces, their members, invitations and invite links; canvases and their direct members.

create table workspaces (
    id          uuid primary key,
    name        text not null check (length(name) between 1 and 200),
    icon        text,
    description text,
    created_by  uuid references users (id) on delete set null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table workspace_members (
    workspace_id uuid not null references workspaces (id) on delete cascade,
    user_id      uuid not null references users (id) on delete cascade,
    role         text not null check (role in ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz not null default now(),
    primary key (workspace_id, user_id)
);

-- Exactly one owner per workspace is kept by the server; at most one by the schema.
create unique index workspace_members_one_owner on workspace_members (workspace_id) where role = 'owner';
create index workspace_members_user_idx on workspace_members (user_id);

create table canvases (
    id           uuid primary key,
    -- null: a personal canvas of its owner.
    workspace_id uuid references workspaces (id) on delete cascade,
    owner_id     uuid not null references users (id) on delete cascade,
    title        text not null default '' check (length(title) <= 500),
    icon         text,
    archived_at  timestamptz,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

create index canvases_workspace_idx on canvases (workspace_id, created_at, id);
create index canvases_owner_personal_idx on canvases (owner_id, created_at, id) where workspace_id is null;

create table canvas_members (
    canvas_id  uuid not null references canvases (id) on delete cascade,
    user_id    uuid not null references users (id) on delete cascade,
    role       text not null check (role in ('editor', 'commenter', 'viewer')),
    created_at timestamptz not null default now(),
    primary key (canvas_id, user_id)
);

create index canvas_members_user_idx on canvas_members (user_id);

-- An invitation to a workspace or to one canvas, addressed to a user or an email address.
create table invitations (
    id           uuid primary key,
    workspace_id uuid references workspaces (id) on delete cascade,
    canvas_id    uuid references canvases (id) on delete cascade,
    invitee_id   uuid references users (id) on delete cascade,
    email        text,
    role         text not null,
    -- SHA-256 of the secret token sent to the invitee; accepting by token needs the secret.
    token_hash   bytea not null unique,
    invited_by   uuid references users (id) on delete set null,
    status       text not null default 'pending'
                 check (status in ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    expires_at   timestamptz not null,
    created_at   timestamptz not null default now(),
    responded_at timestamptz,
    check ((workspace_id is null) <> (canvas_id is null)),
    check (invitee_id is not null or email is not null)
);

-- One pending invitation per invitee and target.
create unique index invitations_pending_user on invitations (coalesce(workspace_id, canvas_id), invitee_id)
    where status = 'pending' and invitee_id is not null;
create unique index invitations_pending_email on invitations (coalesce(workspace_id, canvas_id), lower(email))
    where status = 'pending' and invitee_id is null;
create index invitations_invitee_idx on invitations (invitee_id) where status = 'pending';
create index invitations_email_idx on invitations (lower(email)) where status = 'pending';

-- A shareable code that lets anyone signed in join a workspace, until it expires, is used up or
-- is revoked.
create table workspace_invite_links (
    id           uuid primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    code_hash    bytea not null unique,
    role         text not null check (role in ('admin', 'member', 'viewer')),
    created_by   uuid references users (id) on delete set null,
    expires_at   timestamptz,
    max_uses     integer check (max_uses > 0),
    uses         integer not null default 0,
    revoked_at   timestamptz,
    created_at   timestamptz not null default now()
);

create index workspace_invite_links_workspace_idx on workspace_invite_links (workspace_id);

-- The canvas document's update log (Yjs v1 updates in commit order). The sync server appends
-- to it; deleting a canvas that has any needs ?force=true, duplicating one copies it.
create table canvas_updates (
    canvas_id  uuid not null references canvases (id) on delete cascade,
    seq        bigint not null,
    data       bytea not null,
    created_at timestamptz not null default now(),
    primary key (canvas_id, seq)
);
