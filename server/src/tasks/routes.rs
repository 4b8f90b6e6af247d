//! `GET /api/v1/tasks`: open (or done) todos across every canvas the caller can read.

use axum::extract::State;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::db::{self, Task, TaskPosition, TaskQuery};
use crate::access::{require_canvas, require_workspace, Access, WorkspaceRole};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Tasks per page: 1–500, default 100.
pub const DEFAULT_TASK_LIMIT: u32 = 100;
pub const MAX_TASK_LIMIT: u32 = 500;

/// Whether a task is still to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not checked (the default).
    #[default]
    Open,
    /// Checked.
    Done,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskParams {
    /// `open` (default) or `done`.
    #[serde(default)]
    pub status: TaskStatus,
    /// Only tasks due at or after this instant (RFC 3339); undated tasks are left out.
    pub due_from: Option<DateTime<Utc>>,
    /// Only tasks due before this instant (RFC 3339); undated tasks are left out.
    pub due_to: Option<DateTime<Utc>>,
    /// One canvas's tasks.
    pub canvas_id: Option<Uuid>,
    /// One workspace's tasks.
    pub workspace_id: Option<Uuid>,
    /// Tasks per page, 1–500 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (with the same filters).
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// By due time (a date counts as its UTC midnight), undated tasks last.
    pub items: Vec<Task>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn encode_cursor(position: &TaskPosition) -> String {
    let due = position
        .due
        .map_or_else(|| "-".to_owned(), |d| d.timestamp_micros().to_string());
    URL_SAFE_NO_PAD.encode(format!(
        "{due}|{}|{}",
        position.canvas_id, position.block_id
    ))
}

fn decode_cursor(cursor: &str) -> Result<TaskPosition, ApiError> {
    let invalid = || ApiError::invalid_field("cursor", "is not a cursor this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.split('|');
    let (Some(due), Some(canvas), Some(block), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let due = match due {
        "-" => None,
        micros => Some(
            DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?)
                .ok_or_else(invalid)?,
        ),
    };
    Ok(TaskPosition {
        due,
        canvas_id: canvas.parse().map_err(|_| invalid())?,
        block_id: block.parse().map_err(|_| invalid())?,
    })
}

/// Open (or done) todo blocks across every canvas the caller can read, by due date, with the
/// canvas, block id and version each needs to be checked off.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])),
    params(TaskParams),
    responses((status = 200, description = "One page of tasks, by due time", body = TaskPage),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "The canvas or workspace is not one the caller can read", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<TaskParams>,
) -> ApiResult<ApiJson<TaskPage>> {
    let limit = params.limit.unwrap_or(DEFAULT_TASK_LIMIT);
    if !(1..=MAX_TASK_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_TASK_LIMIT}"),
        ));
    }
    if let (Some(from), Some(to)) = (params.due_from, params.due_to) {
        if to <= from {
            return Err(ApiError::invalid_field("due_to", "must be after due_from"));
        }
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    if let Some(canvas_id) = params.canvas_id {
        require_canvas(&state.db, caller.id, canvas_id, Access::Read).await?;
    }
    if let Some(workspace_id) = params.workspace_id {
        require_workspace(&state.db, caller.id, workspace_id, WorkspaceRole::Viewer).await?;
    }
    let dated_only = params.due_from.is_some() || params.due_to.is_some();
    let mut items = db::list(
        &state.db,
        &TaskQuery {
            reader: caller.id,
            checked: params.status == TaskStatus::Done,
            due_from: params.due_from,
            due_to: params.due_to,
            dated_only,
            canvas_id: params.canvas_id,
            workspace_id: params.workspace_id,
            after,
            limit: i64::from(limit) + 1,
        },
    )
    .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|task| encode_cursor(&task.position()))
    } else {
        None
    };
    Ok(ApiJson(TaskPage { items, next_cursor }))
}

/// Open tasks due in `[from, to)`, for a calendar view; at most `limit`.
pub async fn due_between(
    state: &AppState,
    reader: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Task>, ApiError> {
    Ok(db::list(
        &state.db,
        &TaskQuery {
            reader,
            checked: false,
            due_from: Some(from),
            due_to: Some(to),
            dated_only: true,
            canvas_id: None,
            workspace_id: None,
            after: None,
            limit,
        },
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_with_and_without_a_due_time() {
        for due in [None, Some(Utc::now())] {
            let position = TaskPosition {
                due: due.map(|d| DateTime::from_timestamp_micros(d.timestamp_micros()).unwrap()),
                canvas_id: Uuid::now_v7(),
                block_id: Uuid::now_v7(),
            };
            assert_eq!(decode_cursor(&encode_cursor(&position)).unwrap(), position);
        }
        assert!(decode_cursor("nope").is_err());
    }
}
