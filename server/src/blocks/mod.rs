//! `/api/v1/canvases/{canvas_id}/blocks*` and `/snapshot`: a canvas's blocks for readers that do
//! not speak CRDT (ARCHITECTURE §5). Reads come from the materialized rows; writes are applied
//! to the Yjs document through the canvas's room, so connected clients see them live, and then
//! materialized. A write that carries a version (`If-Match` or `version`) is refused with 409 and
//! the current block when the block has changed since.

pub mod routes;
