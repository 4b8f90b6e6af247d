//! `GET /api/v1/ai/usage`: the caller's own AI usage — requests, tokens and embedded texts per
//! day, workspace, provider and model.

use axum::extract::State;
use chrono::{Duration, NaiveDate, Utc};
use potentia_ai::usage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiResult, Problem};
use crate::http::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::validation::FieldErrors;

/// The longest range one request may cover, in days (both ends included).
pub const MAX_USAGE_DAYS: i64 = 366;
/// Days covered when `from` is not given.
pub const DEFAULT_USAGE_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First day (UTC, `YYYY-MM-DD`); default: 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC, included); default: today.
    pub to: Option<NaiveDate>,
}

/// One day's usage in one workspace (or outside any) with one provider and model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageItem {
    pub day: NaiveDate,
    /// Null for work outside a workspace (personal canvases, searches).
    pub workspace_id: Option<Uuid>,
    /// `gemini`, `openai` or `local`.
    pub provider: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub embedded_texts: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub embedded_texts: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Newest day first.
    pub items: Vec<UsageItem>,
    pub totals: UsageTotals,
}

impl UsageParams {
    fn validate(&self, today: NaiveDate) -> ApiResult<(NaiveDate, NaiveDate)> {
        let to = self.to.unwrap_or(today);
        let from = self
            .from
            .unwrap_or(to - Duration::days(DEFAULT_USAGE_DAYS - 1));
        let mut errors = FieldErrors::default();
        if from > to {
            errors.push("from", "must not be after `to`");
        } else if (to - from).num_days() >= MAX_USAGE_DAYS {
            errors.push(
                "to",
                format!("the range may cover at most {MAX_USAGE_DAYS} days"),
            );
        }
        errors.into_result()?;
        Ok((from, to))
    }
}

/// The caller's AI usage by day, newest first, with totals over the range.
#[utoipa::path(get, path = "/api/v1/ai/usage", tag = "ai", security(("bearer" = [])),
    params(UsageParams),
    responses((status = 200, body = UsageReport),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<ApiJson<UsageReport>> {
    let (from, to) = params.validate(Utc::now().date_naive())?;
    let rows = usage::for_user(&state.db, caller.id, from, to).await?;
    let totals = UsageTotals {
        requests: rows.iter().map(|r| r.requests).sum(),
        input_tokens: rows.iter().map(|r| r.input_tokens).sum(),
        output_tokens: rows.iter().map(|r| r.output_tokens).sum(),
        embedded_texts: rows.iter().map(|r| r.embedded_texts).sum(),
    };
    let items = rows
        .into_iter()
        .map(|r| UsageItem {
            day: r.day,
            workspace_id: r.workspace_id,
            provider: r.provider,
            model: r.model,
            requests: r.requests,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            embedded_texts: r.embedded_texts,
        })
        .collect();
    Ok(ApiJson(UsageReport {
        from,
        to,
        items,
        totals,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_range_is_the_last_thirty_days() {
        let (from, to) = UsageParams::default().validate(day("2026-12-02")).unwrap();
        assert_eq!((from, to), (day("2026-11-03"), day("2026-12-02")));
    }

    #[test]
    fn a_reversed_or_overlong_range_is_refused() {
        let reversed = UsageParams {
            from: Some(day("2026-12-02")),
            to: Some(day("2026-12-01")),
        };
        assert!(reversed.validate(day("2026-12-02")).is_err());
        let long = UsageParams {
            from: Some(day("2020-01-01")),
            to: Some(day("2026-12-01")),
        };
        assert!(long.validate(day("2026-12-02")).is_err());
    }
}
