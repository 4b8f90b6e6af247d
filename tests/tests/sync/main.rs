//! End-to-end tests of canvas sync: real servers over real Postgres (and Redis for several
//! nodes), real WebSocket connections, yrs clients speaking y-websocket.

mod access;
mod awareness;
mod blocks_rest;
mod convergence;
mod durability;
mod http_fallbacks;
mod limits;
mod malformed;
mod materialize;
mod meta;
mod support;
