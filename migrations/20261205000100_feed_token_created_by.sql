-- Who turned a calendar's ICS feed on: the feed answers only while that account may still turn
-- it on (owner role on the calendar), so a feed does not outlive its maker's access.
alter table calendars
    add column feed_token_created_by uuid references users (id) on delete set null;

-- Feeds turned on before this column: the calendar's owner stands in for whoever made them.
update calendars set feed_token_created_by = owner_id where feed_token_hash is not null;
