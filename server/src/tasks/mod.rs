//! Tasks: the todo blocks of every canvas a user can read, in one list ordered by due date
//! (`GET /api/v1/tasks`), and the dated ones beside a calendar view
//! (`GET /api/v1/instances?include=tasks`). A task is checked through the block itself
//! (`PATCH /api/v1/canvases/{canvas_id}/blocks/{block_id}` with `props.checked`).

pub mod db;
pub mod routes;

pub use db::Task;
