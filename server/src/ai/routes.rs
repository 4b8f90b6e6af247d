//! `GET /api/v1/ai/usage`: the caller's own AI usage — requests, tokens and embedded texts per
//! day, workspace, provider and model.

use axum::extract::State;
use chrono::{Duration, NaiveDate, Utc};
use potentia_ai::settings::ProviderKind;
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
    /// First day of the range (UTC, `YYYY-MM-DD`, included); default: 29 days before `to`. The
    /// range may cover at most 366 days and must not start after `to`.
    pub from: Option<NaiveDate>,
    /// Last day of the range (UTC, `YYYY-MM-DD`, included); default: today.
    pub to: Option<NaiveDate>,
}

/// The AI provider that did the work: `gemini`, `openai` (or an OpenAI-compatible server) or
/// `local` (a model this server runs itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AiProvider {
    /// Google Gemini.
    Gemini,
    /// OpenAI, or an OpenAI-compatible server (e.g. Ollama).
    #[serde(rename = "openai")]
    OpenAi,
    /// A model run by this server itself.
    Local,
}

impl From<ProviderKind> for AiProvider {
    fn from(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Gemini => Self::Gemini,
            ProviderKind::OpenAi => Self::OpenAi,
            ProviderKind::Local => Self::Local,
        }
    }
}

/// One day's usage in one workspace (or outside any) with one provider and model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageItem {
    /// The day (UTC, `YYYY-MM-DD`).
    pub day: NaiveDate,
    /// The workspace the work was for; null for work outside a workspace (personal canvases,
    /// private conversations, searches).
    pub workspace_id: Option<Uuid>,
    /// The provider that did the work.
    #[schema(value_type = AiProvider)]
    pub provider: String,
    /// The provider's model name, e.g. `gemini-2.5-flash` or `text-embedding-3-small`.
    pub model: String,
    /// Calls counted: one per answered chat turn and one per embedding request or batch.
    pub requests: i64,
    /// Prompt tokens of chat calls, as the provider reported them; 0 for embeddings.
    pub input_tokens: i64,
    /// Answer tokens of chat calls, as the provider reported them; 0 for embeddings.
    pub output_tokens: i64,
    /// Texts embedded (blocks, messages, memories, search queries); 0 for chat.
    pub embedded_texts: i64,
}

/// Usage summed over every item of the report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageTotals {
    /// The sum of the items' `requests`.
    pub requests: i64,
    /// The sum of the items' `input_tokens`.
    pub input_tokens: i64,
    /// The sum of the items' `output_tokens`.
    pub output_tokens: i64,
    /// The sum of the items' `embedded_texts`.
    pub embedded_texts: i64,
}

/// The caller's AI usage over a range of days.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReport {
    /// First day covered (UTC, included), as resolved from the query.
    pub from: NaiveDate,
    /// Last day covered (UTC, included), as resolved from the query.
    pub to: NaiveDate,
    /// One item per day, workspace, provider and model that saw any use; newest day first.
    /// Days without use have no item.
    pub items: Vec<UsageItem>,
    /// The items summed.
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
    responses((status = 200, description = "The usage rows of the range and their totals", body = UsageReport),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "`from` is after `to`, or the range covers more than 366 days", body = Problem, content_type = "application/problem+json")))]
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
    fn providers_are_named_as_the_usage_rows_store_them() {
        for kind in [
            ProviderKind::Gemini,
            ProviderKind::OpenAi,
            ProviderKind::Local,
        ] {
            assert_eq!(
                serde_json::to_value(AiProvider::from(kind)).unwrap(),
                kind.as_str()
            );
        }
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
