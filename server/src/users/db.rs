//! SQL over the `users` table.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::model::User;

/// The name of the unique index that makes emails case-insensitively unique.
pub const EMAIL_UNIQUE_INDEX: &str = "users_email_lower_key";

/// Fields of a user created by sign-up.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub timezone: &'a str,
    pub locale: &'a str,
    pub password_hash: &'a str,
}

/// What sign-in needs to check a password.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: Uuid,
    pub email: Option<String>,
    pub password_hash: Option<String>,
}

pub async fn insert<'e>(db: impl PgExecutor<'e>, new: &NewUser<'_>) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"insert into users (id, email, name, timezone, locale, password_hash)
           values ($1, $2, $3, $4, $5, $6)
           returning id, email, email_verified_at is not null as "email_verified!", name, phone, timezone, locale, preferences, created_at, updated_at"#,
        new.id,
        new.email,
        new.name,
        new.timezone,
        new.locale,
        new.password_hash,
    )
    .fetch_one(db)
    .await
}

/// Creates the row of a user first seen through an external token. The email is kept unless
/// another account already holds it (a token must not take over an address). Returns the new
/// row, or `None` when the user already existed.
pub async fn create_external<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    email: Option<&str>,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"insert into users (id, email)
           select $1, case when exists (select 1 from users where lower(email) = lower($2)) then null else $2 end
           on conflict (id) do nothing
           returning id, email, email_verified_at is not null as "email_verified!", name, phone, timezone, locale, preferences, created_at, updated_at"#,
        id,
        email,
    )
    .fetch_optional(db)
    .await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"select id, email, email_verified_at is not null as "email_verified!", name, phone, timezone, locale, preferences, created_at, updated_at
           from users where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The row locked for an update in the caller's transaction.
pub async fn find_for_update<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"select id, email, email_verified_at is not null as "email_verified!", name, phone, timezone, locale, preferences, created_at, updated_at
           from users where id = $1 for update"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn find_credentials<'e>(
    db: impl PgExecutor<'e>,
    email: &str,
) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        "select id, email, password_hash from users where lower(email) = lower($1)",
        email,
    )
    .fetch_optional(db)
    .await
}

/// Marks `user_id`'s address verified, when it is still `email` (the address a link or an
/// external token vouched for) and was not verified yet; answers whether it did.
pub async fn mark_email_verified<'e>(
    db: impl PgExecutor<'e>,
    user_id: Uuid,
    email: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"update users set email_verified_at = now()
           where id = $1 and lower(email) = lower($2) and email_verified_at is null"#,
        user_id,
        email,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Writes the profile fields of `user`.
pub async fn update_profile<'e>(db: impl PgExecutor<'e>, user: &User) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"update users set name = $2, phone = $3, timezone = $4, locale = $5, preferences = $6, updated_at = now()
           where id = $1
           returning id, email, email_verified_at is not null as "email_verified!", name, phone, timezone, locale, preferences, created_at, updated_at"#,
        user.id,
        user.name,
        user.phone,
        user.timezone,
        user.locale,
        user.preferences,
    )
    .fetch_one(db)
    .await
}
