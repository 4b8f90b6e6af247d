-- A todo block's due time as an instant, for the tasks view and the calendar: an RFC 3339
-- instant as written, a bare date as its UTC midnight. Null when absent or unreadable: a CRDT
-- client may write anything into props, and one bad value must not fail a whole list.
create function block_due_at(props jsonb) returns timestamptz
language plpgsql immutable parallel safe as $$
declare
    raw text := props->>'due_at';
begin
    if raw is null then
        return null;
    end if;
    if raw ~ '^\d{4}-\d{2}-\d{2}$' then
        return raw::date::timestamp at time zone 'UTC';
    end if;
    -- Only forms that carry their offset, so the value never depends on the session's zone.
    if raw ~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)$' then
        return raw::timestamptz;
    end if;
    return null;
exception when others then
    return null;
end
$$;

-- Whether a todo block is checked: only a JSON `true` counts.
create function block_checked(props jsonb) returns boolean
language sql immutable parallel safe as $$
    select coalesce(props->'checked' = 'true'::jsonb, false)
$$;

create index blocks_todos_due on blocks (canvas_id, block_due_at(props)) where kind = 'todo';
