//! Domain roles (`ai_roles`): prompts the specialist takes on, chosen by the similarity of the
//! message to each role's description. Built-in roles (planner, writing editor, data analyst,
//! coach) have no workspace; a workspace's admins add their own, which only that workspace's
//! conversations use.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::judge::content_words;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    pub id: Uuid,
    /// `None` for a built-in role.
    pub workspace_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub prompt: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The built-in roles and those of `workspace`, by name.
pub async fn available<'e>(
    db: impl PgExecutor<'e>,
    workspace: Option<Uuid>,
) -> sqlx::Result<Vec<Role>> {
    sqlx::query_as!(
        Role,
        r#"select id, workspace_id, name, description, prompt, created_at, updated_at
           from ai_roles where workspace_id is null or workspace_id = $1
           order by workspace_id nulls first, name"#,
        workspace,
    )
    .fetch_all(db)
    .await
}

/// A workspace's own roles, by name.
pub async fn of_workspace<'e>(db: impl PgExecutor<'e>, workspace: Uuid) -> sqlx::Result<Vec<Role>> {
    sqlx::query_as!(
        Role,
        r#"select id, workspace_id, name, description, prompt, created_at, updated_at
           from ai_roles where workspace_id = $1 order by name"#,
        workspace,
    )
    .fetch_all(db)
    .await
}

pub async fn find<'e>(
    db: impl PgExecutor<'e>,
    workspace: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Role>> {
    sqlx::query_as!(
        Role,
        r#"select id, workspace_id, name, description, prompt, created_at, updated_at
           from ai_roles where id = $1 and workspace_id = $2"#,
        id,
        workspace,
    )
    .fetch_optional(db)
    .await
}

/// Another role of the workspace has that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameTaken;

pub async fn create<'e>(
    db: impl PgExecutor<'e>,
    workspace: Uuid,
    name: &str,
    description: &str,
    prompt: &str,
) -> sqlx::Result<Result<Role, NameTaken>> {
    let row = sqlx::query_as!(
        Role,
        r#"insert into ai_roles (id, workspace_id, name, description, prompt)
           values ($1, $2, $3, $4, $5)
           on conflict (workspace_id, name) do nothing
           returning id, workspace_id, name, description, prompt, created_at, updated_at"#,
        Uuid::now_v7(),
        workspace,
        name,
        description,
        prompt,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.ok_or(NameTaken))
}

/// Replaces a role's fields; its embedding is recomputed on next use.
pub async fn update<'e>(
    db: impl PgExecutor<'e>,
    workspace: Uuid,
    id: Uuid,
    name: &str,
    description: &str,
    prompt: &str,
) -> sqlx::Result<Result<Option<Role>, NameTaken>> {
    let result = sqlx::query_as!(
        Role,
        r#"update ai_roles set name = $3, description = $4, prompt = $5, updated_at = now(),
                              embedding = null, embedding_model = null
           where id = $1 and workspace_id = $2
           returning id, workspace_id, name, description, prompt, created_at, updated_at"#,
        id,
        workspace,
        name,
        description,
        prompt,
    )
    .fetch_optional(db)
    .await;
    match result {
        Ok(row) => Ok(Ok(row)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Err(NameTaken)),
        Err(e) => Err(e),
    }
}

pub async fn delete<'e>(db: impl PgExecutor<'e>, workspace: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from ai_roles where id = $1 and workspace_id = $2",
        id,
        workspace
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Roles available to `workspace` without a vector of `model`, to embed.
pub async fn unembedded<'e>(
    db: impl PgExecutor<'e>,
    workspace: Option<Uuid>,
    model: &str,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"select id, name, description from ai_roles
           where (workspace_id is null or workspace_id = $1)
             and (embedding is null or embedding_model is distinct from $2)"#,
        workspace,
        model,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, format!("{}: {}", r.name, r.description)))
        .collect())
}

pub async fn set_embedding<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    embedding: &str,
    model: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update ai_roles set embedding = $2::text::vector, embedding_model = $3 where id = $1",
        id,
        embedding,
        model,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The role most similar to the message, with its similarity, among those with a vector of
/// `model`.
pub async fn nearest<'e>(
    db: impl PgExecutor<'e>,
    workspace: Option<Uuid>,
    embedding: &str,
    model: &str,
) -> sqlx::Result<Option<(Role, f64)>> {
    let row = sqlx::query!(
        r#"with q as materialized (select $2::text::vector as v)
           select r.id, r.workspace_id, r.name, r.description, r.prompt, r.created_at,
                  r.updated_at, 1 - (r.embedding <=> q.v) as "similarity!"
           from ai_roles r, q
           where (r.workspace_id is null or r.workspace_id = $1) and r.embedding_model = $3
             and r.embedding is not null
           order by r.embedding <=> q.v, r.workspace_id nulls last
           limit 1"#,
        workspace,
        embedding,
        model,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        (
            Role {
                id: r.id,
                workspace_id: r.workspace_id,
                name: r.name,
                description: r.description,
                prompt: r.prompt,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            r.similarity,
        )
    }))
}

/// Without embeddings: the role whose description shares the most content words with the
/// message (at least one).
pub fn nearest_by_words<'a>(roles: &'a [Role], message: &str) -> Option<&'a Role> {
    let words = content_words(message);
    roles
        .iter()
        .map(|role| {
            let theirs = content_words(&format!("{} {}", role.name, role.description));
            (role, words.intersection(&theirs).count())
        })
        .filter(|(_, shared)| *shared > 0)
        .max_by_key(|(_, shared)| *shared)
        .map(|(role, _)| role)
}
