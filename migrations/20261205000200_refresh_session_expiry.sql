-- A sign-in's absolute end: POTENTIA_SESSION_MAX_LIFETIME_SECS after the sign-in, however often
-- its refresh tokens rotate. Every token of a family carries it; none expires later.
alter table refresh_tokens add column session_expires_at timestamptz;

-- Sign-ins made before this migration end 90 days (the default lifetime) after they began.
update refresh_tokens as token
set session_expires_at = family.started + interval '90 days'
from (select family_id, min(created_at) as started from refresh_tokens group by family_id) as family
where family.family_id = token.family_id;

alter table refresh_tokens alter column session_expires_at set not null;
