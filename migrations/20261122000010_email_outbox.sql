-- The email outbox: mail is queued here in the transaction of the change that causes it (an
-- invitation, say) and delivered over SMTP by a background sender on any node.
--
-- Life of a row: `pending` → claimed by a sender (`sending`, `attempts` + 1, `next_attempt_at`
-- becomes the end of the sender's lease) → `sent`, or back to `pending` with a later
-- `next_attempt_at` after a transient failure, or `failed` after a permanent failure or the
-- last allowed attempt. A `sending` row whose lease has run out belongs to a sender that died;
-- the next claim takes it again.

create table email_outbox (
    id              uuid primary key,
    to_address      text not null,
    subject         text not null,
    body_text       text not null,
    body_html       text,
    -- What the mail is for, e.g. `workspace_invitation`; for logs and metrics.
    kind            text not null,
    status          text not null default 'pending'
                    check (status in ('pending', 'sending', 'sent', 'failed')),
    -- Delivery attempts started so far (a claim counts as one).
    attempts        integer not null default 0 check (attempts >= 0),
    max_attempts    integer not null check (max_attempts > 0),
    -- `pending`: not before this time. `sending`: the claim's lease runs out at this time.
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    created_at      timestamptz not null default now(),
    sent_at         timestamptz,
    check ((status = 'sent') = (sent_at is not null))
);

-- The sender's claim: due rows among the unfinished ones, oldest due first.
create index email_outbox_due_idx on email_outbox (next_attempt_at)
    where status in ('pending', 'sending');
