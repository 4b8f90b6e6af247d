-- The vector columns are stored `plain` (kept in the heap row, so a scan never reads TOAST). A
-- row of a 768-dimension vector (about 3 KiB) can then never shrink under the 2 KiB TOAST
-- threshold, and Postgres moves every other `extended` value longer than a TOAST pointer out of
-- line instead: the model name and the content hash, which every vector search filters on,
-- cost three more buffer reads a row (1,000 memory vectors filtered by model: 5.3 ms and 3,552
-- buffers before, 1.0 ms and 500 buffers after). `main` keeps them in the row unless it
-- outgrows a page.
--
-- New rows take the new layout; rows written before keep theirs until they are rewritten (a
-- re-embedding, or `VACUUM FULL` on the table).
alter table block_embeddings
    alter column model set storage main,
    alter column content_hash set storage main;
alter table message_embeddings
    alter column model set storage main,
    alter column content_hash set storage main;
alter table memory_embeddings
    alter column model set storage main,
    alter column content_hash set storage main;

-- Every read of a user's vectors names the model too: with both in the index, counting a
-- user's vectors to choose a plan is an index-only scan (2,001 message vectors: 1.6 ms before,
-- 0.5 ms after).
create index message_embeddings_user_model on message_embeddings (user_id, model);
drop index message_embeddings_user;
create index memory_embeddings_user_model on memory_embeddings (user_id, model);
drop index memory_embeddings_user;
