//! Chat end to end: a real server and Postgres, the fake OpenAI-compatible provider at the HTTP
//! boundary answering as judge, specialist and assessor, and a clock the tests move.

mod api;
mod assessor;
mod coffee;
mod local_model;
mod retrieval;
mod streaming;
mod support;
mod tools;
