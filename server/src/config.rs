//! Command-line and environment configuration, validated once at start into [`Settings`].
//!
//! Every flag is also an environment variable. [`ServeArgs::validate`] turns raw input into
//! settings or a [`ConfigError`] that says which setting is wrong and why.

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngCore;

use crate::ai::config::{AiArgs, AiConfigError, AiServerSettings};
use crate::canvas_sync::{SyncArgs, SyncSettings};
use crate::email::{SmtpArgs, SmtpConfigError, SmtpSettings};

/// Below this many bytes an HS256 secret is guessable; production refuses it.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Local development: a missing JWT secret is generated (and said so), CORS may be `*`,
    /// and pages on loopback origins may call the server unless origins are listed.
    Dev,
    /// Production: every secret must be given; unsafe settings are refused.
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Flags of `potentia serve` (and, in part, of `migrate` and `token`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Redis for cross-node fan-out; without it the node fans out in process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Address and port to listen on.
    #[arg(long, env = "POTENTIA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// `production` unless told otherwise, so a server nobody configured is not a dev server;
    /// `scripts/serve.sh` runs `dev`.
    #[arg(long, env = "POTENTIA_MODE", value_enum, default_value = "production")]
    pub mode: Mode,

    #[command(flatten)]
    pub jwt: JwtArgs,

    /// Lifetime of access tokens the server issues, in seconds.
    #[arg(long, env = "POTENTIA_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds (default 30 days).
    #[arg(long, env = "POTENTIA_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Longest a sign-in lasts, in seconds, however often it refreshes (default 90 days); its
    /// refresh tokens never expire later than this after the sign-in.
    #[arg(long, env = "POTENTIA_SESSION_MAX_LIFETIME_SECS", default_value_t = 90 * 24 * 3600)]
    pub session_max_lifetime_secs: u64,

    /// How often, in seconds, each node looks for signed-out sessions among its open canvas
    /// sockets (a sign-out on the same node closes them at once).
    #[arg(long, env = "POTENTIA_SESSION_CHECK_SECS", default_value_t = 10)]
    pub session_check_secs: u64,

    /// Seconds a used refresh token still answers with its successor (two tabs refreshing at
    /// once); a use after that revokes the sign-in as theft. `0` turns the window off.
    #[arg(long, env = "POTENTIA_REFRESH_REUSE_GRACE_SECS", default_value_t = 10)]
    pub refresh_reuse_grace_secs: u64,

    /// Maximum request body size in bytes.
    #[arg(long, env = "POTENTIA_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,

    /// Origins allowed by CORS and by the WebSocket `Origin` check, comma-separated; `*` allows
    /// any (dev mode only). Empty: loopback pages (`http://localhost:*`, `http://127.0.0.1:*`)
    /// in dev mode, none in production.
    #[arg(
        long,
        env = "POTENTIA_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Take the client address from the last `X-Forwarded-For` entry (behind a trusted proxy).
    #[arg(long, env = "POTENTIA_TRUST_PROXY_HEADERS", default_value_t = false)]
    pub trust_proxy_headers: bool,

    /// Sign-up, sign-in and refresh requests allowed per client IP per minute.
    #[arg(long, env = "POTENTIA_AUTH_RATE_PER_IP", default_value_t = 30)]
    pub auth_rate_per_ip_per_minute: u32,

    /// Sign-in attempts allowed per account (email) per minute.
    #[arg(long, env = "POTENTIA_AUTH_RATE_PER_ACCOUNT", default_value_t = 10)]
    pub auth_rate_per_account_per_minute: u32,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT before exiting.
    #[arg(long, env = "POTENTIA_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Base URL of the web app, for links in emails (invitations open `<url>/invitations/accept?token=…`).
    #[arg(
        long,
        env = "POTENTIA_APP_URL",
        default_value = "http://localhost:3000"
    )]
    pub app_url: String,

    /// Base URL this server is reached at, for absolute links it hands out (calendar feed
    /// URLs). Default: `http://` and the bind address (a wildcard address reads as 127.0.0.1).
    #[arg(long, env = "POTENTIA_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Do not run pending migrations at start.
    #[arg(long, env = "POTENTIA_NO_MIGRATE", default_value_t = false)]
    pub no_migrate: bool,

    #[command(flatten)]
    pub smtp: SmtpArgs,

    #[command(flatten)]
    pub sync: SyncArgs,

    #[command(flatten)]
    pub ai: AiArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Postgres (with pgvector) connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Size of the connection pool.
    #[arg(long, env = "POTENTIA_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JwtArgs {
    /// HS256 secret for verifying and issuing JWTs (a Supabase project's JWT secret works).
    #[arg(long, env = "POTENTIA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Required `aud` claim.
    #[arg(long, env = "POTENTIA_JWT_AUDIENCE", default_value = "authenticated")]
    pub jwt_audience: String,

    /// `iss` claim of tokens this server issues; a token must carry it or one of
    /// `POTENTIA_JWT_EXTERNAL_ISSUERS`.
    #[arg(long, env = "POTENTIA_JWT_ISSUER", default_value = "potentia")]
    pub jwt_issuer: String,

    /// Other `iss` values accepted, comma-separated: the issuer that shares the secret, e.g.
    /// `https://<project>.supabase.co/auth/v1`. Empty: only this server's own tokens.
    #[arg(long, env = "POTENTIA_JWT_EXTERNAL_ISSUERS", default_value = "")]
    pub jwt_external_issuers: String,
}

impl JwtArgs {
    /// The accepted external issuers, trimmed, without empty entries.
    pub fn external_issuers(&self) -> Vec<String> {
        self.jwt_external_issuers
            .split(',')
            .map(str::trim)
            .filter(|issuer| !issuer.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Logging flags, shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    #[arg(
        long,
        env = "POTENTIA_LOG_FORMAT",
        value_enum,
        default_value = "human",
        global = true
    )]
    pub log_format: LogFormat,

    /// Filter in `tracing` syntax, e.g. `info,potentia_server=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// OTLP/gRPC endpoint for trace export (needs the `otlp` cargo feature).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("POTENTIA_JWT_SECRET is required in production mode")]
    MissingJwtSecret,
    #[error("POTENTIA_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes in production mode (got {0})")]
    WeakJwtSecret(usize),
    #[error("POTENTIA_JWT_SECRET must not be empty")]
    EmptyJwtSecret,
    #[error("POTENTIA_CORS_ORIGINS=* is refused in production mode; list the origins")]
    WildcardCorsInProduction,
    #[error("POTENTIA_CORS_ORIGINS: {0:?} is not an origin like https://app.example.com")]
    BadCorsOrigin(String),
    #[error("{name} must be greater than zero")]
    Zero { name: &'static str },
    #[error("DATABASE_URL must start with postgres:// or postgresql://")]
    BadDatabaseUrl,
    #[error("REDIS_URL must start with redis:// or rediss://")]
    BadRedisUrl,
    #[error("POTENTIA_APP_URL must be an http:// or https:// URL")]
    BadAppUrl,
    #[error("POTENTIA_PUBLIC_URL must be an http:// or https:// URL")]
    BadPublicUrl,
    #[error(transparent)]
    Smtp(#[from] SmtpConfigError),
    #[error(transparent)]
    Ai(#[from] AiConfigError),
}

/// The JWT secret in force and where it came from.
#[derive(Clone)]
pub struct JwtSecret {
    pub bytes: Vec<u8>,
    /// True when dev mode generated it because none was configured.
    pub generated: bool,
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSecret")
            .field("bytes", &"<redacted>")
            .field("generated", &self.generated)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: JwtSecret,
    pub audience: String,
    pub issuer: String,
    /// Other `iss` values accepted (an external issuer sharing the secret).
    pub external_issuers: Vec<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Longest a refresh chain lasts from its sign-in.
    pub session_max_lifetime: Duration,
    /// How often open sockets' sessions are checked for a sign-out on another node.
    pub session_check_interval: Duration,
    pub refresh_reuse_grace: Duration,
    pub rate_per_ip_per_minute: u32,
    pub rate_per_account_per_minute: u32,
}

/// `url` without a trailing slash, when it is an http(s) URL without whitespace.
fn base_url(url: &str) -> Option<String> {
    let url = url.trim_end_matches('/');
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    (scheme_ok && !url.contains(char::is_whitespace)).then(|| url.to_owned())
}

/// `http://` and the bind address, a wildcard address read as loopback.
fn default_public_url(bind: SocketAddr) -> String {
    let host = if bind.ip().is_unspecified() {
        match bind {
            SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], bind.port())),
            SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, bind.port())),
        }
    } else {
        bind
    };
    format!("http://{host}")
}

/// Which browser origins may call the API (CORS) and open a canvas socket (`Origin` check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    /// Pages served from this machine, on any port (dev mode's default).
    Loopback,
    Any,
    List(Vec<String>),
}

impl CorsOrigins {
    /// Whether a page on `origin` (the `Origin` header's value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            CorsOrigins::None => false,
            CorsOrigins::Loopback => is_loopback_origin(origin),
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|allowed| allowed == origin),
        }
    }
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, with an optional port and nothing after it.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && host != "[" => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
                return false;
            }
            host
        }
        _ => authority,
    };
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    pub body_limit_bytes: usize,
    pub cors: CorsOrigins,
    pub trust_proxy_headers: bool,
    pub shutdown_grace: Duration,
}

/// Validated configuration of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub database_url: String,
    pub db_max_connections: u32,
    pub redis_url: Option<String>,
    pub run_migrations: bool,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    /// Outgoing mail; `None` leaves queued mail unsent.
    pub smtp: Option<SmtpSettings>,
    /// Base URL of the web app, without a trailing slash.
    pub app_url: String,
    /// Base URL of this server, without a trailing slash.
    pub public_url: String,
    /// The sync endpoint and the rooms.
    pub sync: SyncSettings,
    /// Chat and embedding providers, the embedding worker, retrieval.
    pub ai: AiServerSettings,
}

impl ServeArgs {
    pub fn validate(self) -> Result<Settings, ConfigError> {
        self.database.validate()?;
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::BadRedisUrl);
            }
        }
        let jwt_secret = self.jwt.secret(self.mode)?;
        for (name, value) in [
            ("POTENTIA_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            (
                "POTENTIA_REFRESH_TOKEN_TTL_SECS",
                self.refresh_token_ttl_secs,
            ),
            (
                "POTENTIA_SESSION_MAX_LIFETIME_SECS",
                self.session_max_lifetime_secs,
            ),
            ("POTENTIA_SESSION_CHECK_SECS", self.session_check_secs),
            ("POTENTIA_BODY_LIMIT_BYTES", self.body_limit_bytes as u64),
            (
                "POTENTIA_AUTH_RATE_PER_IP",
                u64::from(self.auth_rate_per_ip_per_minute),
            ),
            (
                "POTENTIA_AUTH_RATE_PER_ACCOUNT",
                u64::from(self.auth_rate_per_account_per_minute),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { name });
            }
        }
        let cors = parse_cors(&self.cors_origins, self.mode)?;
        let app_url = self.app_url.trim_end_matches('/').to_owned();
        if !(app_url.starts_with("http://") || app_url.starts_with("https://"))
            || app_url.contains(char::is_whitespace)
        {
            return Err(ConfigError::BadAppUrl);
        }
        let public_url = match &self.public_url {
            Some(url) => base_url(url).ok_or(ConfigError::BadPublicUrl)?,
            None => default_public_url(self.bind),
        };
        let smtp = self.smtp.validate()?;
        let sync = self
            .sync
            .validate()
            .map_err(|name| ConfigError::Zero { name })?;
        let ai = self.ai.validate()?;
        Ok(Settings {
            mode: self.mode,
            database_url: self.database.database_url,
            db_max_connections: self.database.db_max_connections,
            redis_url: self.redis_url,
            run_migrations: !self.no_migrate,
            app_url,
            public_url,
            auth: AuthSettings {
                jwt_secret,
                external_issuers: self.jwt.external_issuers(),
                audience: self.jwt.jwt_audience,
                issuer: self.jwt.jwt_issuer,
                access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
                refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_secs),
                session_max_lifetime: Duration::from_secs(self.session_max_lifetime_secs),
                session_check_interval: Duration::from_secs(self.session_check_secs),
                refresh_reuse_grace: Duration::from_secs(self.refresh_reuse_grace_secs),
                rate_per_ip_per_minute: self.auth_rate_per_ip_per_minute,
                rate_per_account_per_minute: self.auth_rate_per_account_per_minute,
            },
            http: HttpSettings {
                bind: self.bind,
                body_limit_bytes: self.body_limit_bytes,
                cors,
                trust_proxy_headers: self.trust_proxy_headers,
                shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            },
            smtp,
            sync,
            ai,
        })
    }
}

impl DatabaseArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.db_max_connections == 0 {
            return Err(ConfigError::Zero {
                name: "POTENTIA_DB_MAX_CONNECTIONS",
            });
        }
        let url = &self.database_url;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(())
        } else {
            Err(ConfigError::BadDatabaseUrl)
        }
    }
}

impl JwtArgs {
    /// The configured secret; in dev mode a random one when none is configured.
    pub fn secret(&self, mode: Mode) -> Result<JwtSecret, ConfigError> {
        match (&self.jwt_secret, mode) {
            (Some(secret), _) if secret.is_empty() => Err(ConfigError::EmptyJwtSecret),
            (Some(secret), Mode::Production) if secret.len() < MIN_JWT_SECRET_BYTES => {
                Err(ConfigError::WeakJwtSecret(secret.len()))
            }
            (Some(secret), _) => Ok(JwtSecret {
                bytes: secret.as_bytes().to_vec(),
                generated: false,
            }),
            (None, Mode::Production) => Err(ConfigError::MissingJwtSecret),
            (None, Mode::Dev) => {
                let mut bytes = vec![0u8; 48];
                rand::thread_rng().fill_bytes(&mut bytes);
                Ok(JwtSecret {
                    bytes,
                    generated: true,
                })
            }
        }
    }
}

fn parse_cors(origins: &[String], mode: Mode) -> Result<CorsOrigins, ConfigError> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(match mode {
            Mode::Dev => CorsOrigins::Loopback,
            Mode::Production => CorsOrigins::None,
        });
    }
    if origins.contains(&"*") {
        return match mode {
            Mode::Dev => Ok(CorsOrigins::Any),
            Mode::Production => Err(ConfigError::WildcardCorsInProduction),
        };
    }
    let mut list = Vec::with_capacity(origins.len());
    for origin in origins {
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.ends_with('/')
            && http::HeaderValue::from_str(origin).is_ok();
        if !valid {
            return Err(ConfigError::BadCorsOrigin(origin.to_owned()));
        }
        list.push(origin.to_owned());
    }
    Ok(CorsOrigins::List(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// Settings from `args`, in dev mode unless `args` name a mode (the binary's default is
    /// production, which would refuse the missing secret most of these tests leave out).
    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["potentia", "--database-url", "postgres://u@127.0.0.1/db"];
        if !args.contains(&"--mode") {
            argv.extend_from_slice(&["--mode", "dev"]);
        }
        argv.extend_from_slice(args);
        Cli::parse_from(argv).serve.validate()
    }

    #[test]
    fn dev_mode_generates_a_secret_when_none_is_given() {
        let settings = parse(&["--mode", "dev"]).unwrap();
        assert!(settings.auth.jwt_secret.generated);
        assert_eq!(settings.auth.jwt_secret.bytes.len(), 48);
    }

    #[test]
    fn production_refuses_to_start_without_a_secret() {
        assert_eq!(
            parse(&["--mode", "production"]).unwrap_err(),
            ConfigError::MissingJwtSecret
        );
    }

    #[test]
    fn production_refuses_a_short_secret() {
        assert_eq!(
            parse(&["--mode", "production", "--jwt-secret", "short"]).unwrap_err(),
            ConfigError::WeakJwtSecret(5)
        );
    }

    #[test]
    fn production_refuses_wildcard_cors() {
        let secret = "x".repeat(40);
        let err = parse(&[
            "--mode",
            "production",
            "--jwt-secret",
            &secret,
            "--cors-origins",
            "*",
        ])
        .unwrap_err();
        assert_eq!(err, ConfigError::WildcardCorsInProduction);
    }

    #[test]
    fn cors_origins_are_parsed_as_a_list() {
        let settings =
            parse(&["--cors-origins", "https://a.example,http://localhost:3000"]).unwrap();
        assert_eq!(
            settings.http.cors,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:3000".into()
            ])
        );
    }

    #[test]
    fn dev_mode_allows_loopback_pages_when_no_origin_is_listed() {
        let settings = parse(&["--mode", "dev"]).unwrap();
        assert_eq!(settings.http.cors, CorsOrigins::Loopback);
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://localhost",
            "https://localhost:8443",
            "http://[::1]:5173",
        ] {
            assert!(settings.http.cors.allows(origin), "{origin}");
        }
    }

    #[test]
    fn the_loopback_default_refuses_look_alike_hosts() {
        for origin in [
            "http://localhost.evil.example",
            "http://evil.example:5173",
            "http://localhost:5173/",
            "http://localhost:51a3",
            "http://127.0.0.1.evil.example:80",
            "null",
            "file://",
        ] {
            assert!(!CorsOrigins::Loopback.allows(origin), "{origin}");
        }
    }

    #[test]
    fn the_public_url_defaults_to_the_bind_address() {
        let settings = parse(&["--bind", "0.0.0.0:9000"]).unwrap();
        assert_eq!(settings.public_url, "http://127.0.0.1:9000");
        let settings = parse(&["--public-url", "https://api.example.com/"]).unwrap();
        assert_eq!(settings.public_url, "https://api.example.com");
        assert!(matches!(
            parse(&["--public-url", "api.example.com"]),
            Err(ConfigError::BadPublicUrl)
        ));
    }

    #[test]
    fn production_allows_no_origin_unless_listed() {
        let secret = "x".repeat(40);
        let settings = parse(&["--mode", "production", "--jwt-secret", &secret]).unwrap();
        assert_eq!(settings.http.cors, CorsOrigins::None);
        assert!(!settings.http.cors.allows("http://localhost:5173"));
    }

    #[test]
    fn a_cors_origin_with_a_path_is_refused() {
        assert!(matches!(
            parse(&["--cors-origins", "https://a.example/"]).unwrap_err(),
            ConfigError::BadCorsOrigin(_)
        ));
    }

    #[test]
    fn a_non_postgres_database_url_is_refused() {
        let err = Cli::parse_from(["potentia", "--database-url", "mysql://x"])
            .serve
            .validate()
            .unwrap_err();
        assert_eq!(err, ConfigError::BadDatabaseUrl);
    }

    #[test]
    fn smtp_is_off_unless_a_url_is_given() {
        assert!(parse(&[]).unwrap().smtp.is_none());
    }

    #[test]
    fn an_invalid_smtp_setting_stops_the_start() {
        assert_eq!(
            parse(&["--smtp-url", "smtp://127.0.0.1:2525"]).unwrap_err(),
            ConfigError::Smtp(SmtpConfigError::MissingFrom)
        );
    }

    #[test]
    fn zero_body_limit_is_refused() {
        assert_eq!(
            parse(&["--body-limit-bytes", "0"]).unwrap_err(),
            ConfigError::Zero {
                name: "POTENTIA_BODY_LIMIT_BYTES"
            }
        );
    }
}
