//! The Postgres pool and the embedded migrations from `migrations/`.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Migrations compiled into the binary; `migrations/` is the only place the schema changes.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    BadUrl(sqlx::Error),
    #[error("cannot connect to Postgres: {0}")]
    Connect(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens a pool and checks that the database answers.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let pool = pool_options(max_connections)
        .connect_with(parse_url(url)?)
        .await
        .map_err(DbError::Connect)?;
    Ok(pool)
}

/// A pool that connects on first use: `serve` starts even while Postgres is down (and `/ready`
/// says so) when migrations are skipped.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    Ok(pool_options(max_connections).connect_lazy_with(parse_url(url)?))
}

fn parse_url(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>()
        .map(|options| options.application_name("potentia"))
        .map_err(DbError::BadUrl)
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(600))
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
