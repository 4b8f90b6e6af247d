-- Invitations per inviter and invitation mail per recipient are counted over a window, so the
-- server cannot be made to send any one address a stream of mail.
create index invitations_inviter_recent_idx on invitations (invited_by, created_at);
create index email_outbox_recipient_recent_idx on email_outbox (lower(to_address), kind, created_at);
