//! The embedding queue, worker and reindex against a real migrated Postgres and a fake
//! OpenAI-compatible server (faked only at the HTTP boundary): jobs are queued by the real
//! materializer and embedded by the real `OpenAiEmbedder` behind the real `Resilience`.

mod failures;
mod reindex;
mod retrieval;
mod support;
mod worker;
