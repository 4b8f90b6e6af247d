//! The load generator behind `potentia-load` and `scripts/bench-sync.sh` (issue 4, "Benchmark").
//!
//! Every scenario drives real yrs clients ([`crate::SyncClient`]) speaking y-websocket against
//! one server, ours or a peer (`@y/websocket-server`, `y-sweet`), and writes one JSON line of
//! figures; [`report`] turns the lines of every server into one table with the ratios.
//!
//! * [`scenarios::fanout`]: N clients on each of M canvases, each sending small edits at a fixed
//!   rate. Every edit carries its send time (µs since the generator started, under a key of the
//!   `bench` map unique to the edit), so every receiver measures the propagation latency of every
//!   edit it sees; all clients live in one process and share one clock.
//! * [`scenarios::ramp`]: the offered rate on one canvas doubles each step until the p99 latency
//!   passes a bound or the clients see less than they sent.
//! * [`scenarios::memory`]: the server's RSS before and after loading K small idle canvases.
//! * [`trace`]: a real typing trace replayed through one client, one update per keystroke, with
//!   a second client watching.

pub mod report;
pub mod scenarios;
pub mod stats;
pub mod target;
pub mod trace;

use std::sync::OnceLock;
use std::time::Instant;

use yrs::Doc;

/// Microseconds since the generator's clock started (shared by every client of the process).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A fresh document with a random 32-bit client id, as Yjs (the clients these servers really
/// serve) picks them. yrs picks 53-bit ids, and y-sweet 0.9.1 stores those under a different id
/// than the client's own: the client's state never matches the server's again (seen while
/// building this benchmark), so every client here uses Yjs-sized ids.
pub fn new_doc() -> Doc {
    let id = (uuid::Uuid::new_v4().as_u128() as u32).max(1);
    Doc::with_client_id(u64::from(id))
}
