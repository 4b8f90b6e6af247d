//! Tokens and embedded texts per user, workspace and day (`ai_usage`), added to by every chat
//! call and every embedding the worker or a search makes, and read back by
//! `GET /api/v1/ai/usage` for the caller's own rows.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::settings::ProviderKind;

/// What one piece of work cost, to be added to its user's row of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDelta {
    pub user_id: Uuid,
    /// `None` for work outside a workspace (a personal canvas, a private conversation).
    pub workspace_id: Option<Uuid>,
    pub day: NaiveDate,
    pub provider: ProviderKind,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub embedded_texts: i64,
}

/// Adds `deltas` to their rows, creating them as needed, in one statement.
pub async fn record<'e>(db: impl PgExecutor<'e>, deltas: &[UsageDelta]) -> sqlx::Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&UsageDelta) -> i64| deltas.iter().map(f).collect::<Vec<i64>>();
    let users: Vec<Uuid> = deltas.iter().map(|d| d.user_id).collect();
    let workspaces: Vec<Option<Uuid>> = deltas.iter().map(|d| d.workspace_id).collect();
    let days: Vec<NaiveDate> = deltas.iter().map(|d| d.day).collect();
    let providers: Vec<String> = deltas
        .iter()
        .map(|d| d.provider.as_str().to_owned())
        .collect();
    let models: Vec<String> = deltas.iter().map(|d| d.model.clone()).collect();
    // Rows of one statement may share a key: sum them first, or the upsert would hit one row twice.
    sqlx::query!(
        r#"insert into ai_usage (user_id, workspace_id, day, provider, model,
                                 requests, input_tokens, output_tokens, embedded_texts)
           select u, w, d, p, m, sum(r), sum(i), sum(o), sum(e)
           from unnest($1::uuid[], $2::uuid[], $3::date[], $4::text[], $5::text[],
                       $6::int8[], $7::int8[], $8::int8[], $9::int8[]) as t(u, w, d, p, m, r, i, o, e)
           where exists (select 1 from users where users.id = t.u)
           group by u, w, d, p, m
           on conflict (user_id, workspace_id, day, provider, model) do update
           set requests = ai_usage.requests + excluded.requests,
               input_tokens = ai_usage.input_tokens + excluded.input_tokens,
               output_tokens = ai_usage.output_tokens + excluded.output_tokens,
               embedded_texts = ai_usage.embedded_texts + excluded.embedded_texts"#,
        &users,
        &workspaces as &[Option<Uuid>],
        &days,
        &providers,
        &models,
        &column(|d| d.requests),
        &column(|d| d.input_tokens),
        &column(|d| d.output_tokens),
        &column(|d| d.embedded_texts),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One row of a user's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub day: NaiveDate,
    pub workspace_id: Option<Uuid>,
    pub provider: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub embedded_texts: i64,
}

/// `user`'s rows from `from` to `to` (both included), newest day first.
pub async fn for_user<'e>(
    db: impl PgExecutor<'e>,
    user: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<UsageRow>> {
    sqlx::query_as!(
        UsageRow,
        r#"select day, workspace_id, provider, model, requests, input_tokens, output_tokens,
                  embedded_texts
           from ai_usage
           where user_id = $1 and day between $2 and $3
           order by day desc, workspace_id nulls first, provider, model"#,
        user,
        from,
        to
    )
    .fetch_all(db)
    .await
}
