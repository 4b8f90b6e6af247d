-- Search over block text and canvas titles (ARCHITECTURE §7, `GET /api/v1/search`).
--
-- Full-text search uses the `simple` configuration: no stemming and no stop words, so it
-- behaves the same for every language our users write in (an `english` stemmer would mangle
-- German or French text and drop words like "it" or "a" from every query). Trigram similarity
-- (pg_trgm) covers what stemming would have given, and more: plural/singular, prefixes typed
-- so far, and typos. The expression indexes below must stay byte-identical to the expressions
-- in `server/src/search/db.rs` (`to_tsvector('simple', …)`, `… %> q`), or the planner will not
-- use them.

create extension if not exists pg_trgm;

create index blocks_text_fts on blocks using gin (to_tsvector('simple', text));
create index blocks_text_trgm on blocks using gin (text gin_trgm_ops);

create index canvases_title_fts on canvases using gin (to_tsvector('simple', title));
create index canvases_title_trgm on canvases using gin (title gin_trgm_ops);
