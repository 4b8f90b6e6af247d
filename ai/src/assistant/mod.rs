//! The assistant: conversations, their contexts (topics) and messages, and the three model calls
//! of a turn — the [`judge`] (which topic), the specialist (the answer, with [`tools`], from the
//! prompt the [`packer`] builds) and the [`assessor`] (memories and summaries, a durable job).
//!
//! * [`turn`]: [`Assistant`], the pipeline: idempotent turns, streaming events, cancellation.
//! * [`conversations`], [`memories`], [`roles`]: the tables and their invariants.
//! * [`jobs`]: `chat_jobs`, the durable work after an answer, and its worker.
//! * [`clock`]: the pipeline's injected "now"; [`vectors`]: message and memory embeddings.

pub mod assessor;
pub mod clock;
pub mod conversations;
pub mod jobs;
pub mod judge;
pub mod memories;
pub mod packer;
pub mod roles;
pub mod text;
pub mod tools;
pub mod turn;
pub mod vectors;

pub use clock::{Clock, ManualClock, SystemClock};
pub use turn::{
    Assistant, AssistantSettings, TurnEvent, TurnFailure, TurnRequest, TurnResult, TurnStart,
};
