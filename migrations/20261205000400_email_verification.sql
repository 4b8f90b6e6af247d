-- Email verification: an account proves it receives mail at its address before invitations
-- addressed to that address are listed to it or accepted by it by id.
alter table users add column email_verified_at timestamptz;

-- One-time links sent by sign-up and by a resend; only the SHA-256 of the token is kept.
create table email_verifications (
    id          uuid primary key,
    user_id     uuid not null references users (id) on delete cascade,
    -- The address the link went to: it verifies that address only.
    email       text not null,
    token_hash  bytea not null unique,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    used_at     timestamptz
);

create index email_verifications_user_idx on email_verifications (user_id, created_at);

-- An invitation sent to an address no longer names the account that held the address when it
-- was sent (an unverified sign-up could have taken it): the addressee is whoever verifies it.
update invitations set invitee_id = null where email is not null and status = 'pending';
