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

/// The built-in roles and those of `workspace`, by name (as [`available`]), each with its
/// similarity to `embedding` (pgvector text form): `None` for a role not embedded with `model`.
pub async fn scored<'e>(
    db: impl PgExecutor<'e>,
    workspace: Option<Uuid>,
    embedding: &str,
    model: &str,
) -> sqlx::Result<Vec<(Role, Option<f64>)>> {
    let rows = sqlx::query!(
        r#"with q as materialized (select $2::text::vector as v)
           select r.id, r.workspace_id, r.name, r.description, r.prompt, r.created_at,
                  r.updated_at,
                  case when r.embedding_model = $3 then 1 - (r.embedding <=> q.v) end as similarity
           from ai_roles r, q
           where r.workspace_id is null or r.workspace_id = $1
           order by r.workspace_id nulls first, r.name"#,
        workspace,
        embedding,
        model,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
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
        })
        .collect())
}

/// The text a role is embedded from.
pub fn embedded_text(role: &Role) -> String {
    format!("{}: {}", role.name, role.description)
}

/// The most similar of [`scored`] roles; a workspace's own role wins a tie with a built-in one.
pub fn most_similar(scored: &[(Role, Option<f64>)]) -> Option<(&Role, f64)> {
    scored
        .iter()
        .filter_map(|(role, similarity)| similarity.map(|s| (role, s)))
        .max_by(|(a, sa), (b, sb)| {
            sa.total_cmp(sb)
                .then_with(|| a.workspace_id.is_some().cmp(&b.workspace_id.is_some()))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, workspace: Option<Uuid>) -> Role {
        let now = Utc::now();
        Role {
            id: Uuid::now_v7(),
            workspace_id: workspace,
            name: name.to_owned(),
            description: String::new(),
            prompt: String::new(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_most_similar_role_is_chosen_among_those_with_a_similarity() {
        let scored = vec![
            (role("planner", None), Some(0.4)),
            (role("coach", None), None),
            (role("editor", None), Some(0.7)),
        ];
        assert_eq!(
            most_similar(&scored).map(|(r, _)| r.name.as_str()),
            Some("editor")
        );
        assert!(most_similar(&[(role("coach", None), None)]).is_none());
    }

    #[test]
    fn a_workspace_role_wins_a_tie_with_a_built_in_one() {
        let scored = vec![
            (role("built-in", None), Some(0.5)),
            (role("ours", Some(Uuid::now_v7())), Some(0.5)),
        ];
        assert_eq!(
            most_similar(&scored).map(|(r, _)| r.name.as_str()),
            Some("ours")
        );
    }
}
