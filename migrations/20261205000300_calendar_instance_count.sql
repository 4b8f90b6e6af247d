-- How many materialized instances each calendar holds, kept by triggers on every insert and
-- delete of schedule_instances (cascades included), so a write can check the per-calendar
-- bound without counting rows. Writers of instances lock the calendar row before any schedule
-- row (the server's `lock_schedule`), so the triggers' updates never deadlock.
alter table calendars add column instance_count bigint not null default 0;

create function count_calendar_instances() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        update calendars as c set instance_count = c.instance_count + changed.n
        from (select calendar_id, count(*) as n from inserted group by calendar_id) as changed
        where changed.calendar_id = c.id;
    else
        update calendars as c set instance_count = c.instance_count - changed.n
        from (select calendar_id, count(*) as n from deleted group by calendar_id) as changed
        where changed.calendar_id = c.id;
    end if;
    return null;
end
$$;

-- Creating a trigger locks the table against writers until the migration commits, so the
-- count below sees every row and the triggers every row after it.
create trigger schedule_instances_count_inserted
    after insert on schedule_instances referencing new table as inserted
    for each statement execute function count_calendar_instances();

create trigger schedule_instances_count_deleted
    after delete on schedule_instances referencing old table as deleted
    for each statement execute function count_calendar_instances();

update calendars as c
set instance_count = counted.n
from (select calendar_id, count(*) as n from schedule_instances group by calendar_id) as counted
where counted.calendar_id = c.id;
