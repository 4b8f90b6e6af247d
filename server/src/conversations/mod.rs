//! `/api/v1/conversations*`: a user's conversations with the assistant, their topics and
//! messages, and the turn (`POST …/messages`, JSON or Server-Sent Events). The pipeline itself
//! lives in `potentia_ai::assistant`; these routes validate, check ownership, call it and map
//! the result. A conversation is visible to its owner only: anyone else gets 404.

pub mod routes;
