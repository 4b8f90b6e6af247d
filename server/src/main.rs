//! The `potentia` binary: `serve`, `migrate` and `token`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use potentia_ai::{queue, reindex, AiMetrics, Providers};
use potentia_server::ai::config::AiArgs;
use potentia_server::auth::JwtKeys;
use potentia_server::config::{AuthSettings, DatabaseArgs, JwtArgs, LogArgs, Mode, ServeArgs};
use potentia_server::users::db as users_db;
use potentia_server::{db, telemetry};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "potentia",
    version,
    about = "Potentia: the backend of a proactive assistant"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP and WebSocket server (runs pending migrations first unless --no-migrate).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print a signed access token for a user, for local use and scripts.
    Token(TokenArgs),
    /// AI maintenance: the embedding queue and its dead letters, re-embedding after a model change.
    Ai {
        #[command(subcommand)]
        command: AiCommand,
    },
}

#[derive(Subcommand)]
enum AiCommand {
    /// Print the embedding queue, dead letters, embeddings per model and reindex progress.
    Status {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-embed every block whose vector is missing or from another model, with the configured
    /// embedder; an interrupted run resumes where it stopped.
    Reindex {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        ai: Box<AiArgs>,
        /// Blocks per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Put the dead letters back in the queue (after fixing what made them fail).
    RetryDead {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    jwt: JwtArgs,
    /// The user id (`sub`). Without it, the account with `--email` in the database, or a new
    /// id (the first request with the token then creates the account).
    #[arg(long)]
    user: Option<Uuid>,
    /// The account's email: an existing account is looked up in `DATABASE_URL`.
    #[arg(long)]
    email: Option<String>,
    /// Where `--email` is looked up; without it, a new account is assumed.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Token(args) = &cli.command {
        return print_token(args);
    }
    let _telemetry = match telemetry::init(&cli.log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("potentia: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("potentia: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => {
                let settings = args.validate()?;
                potentia_server::serve(settings).await
            }
            Command::Migrate(args) => {
                args.validate()?;
                let pool = db::connect(&args.database_url, 1).await?;
                db::migrate(&pool).await?;
                tracing::info!("migrations are up to date");
                Ok(())
            }
            Command::Token(_) => Ok(()),
            Command::Ai { command } => run_ai_command(command).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("potentia: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_ai_command(command: AiCommand) -> anyhow::Result<()> {
    match command {
        AiCommand::Status { database, json } => {
            database.validate()?;
            let pool = db::connect(&database.database_url, 1).await?;
            let status = reindex::status(&pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", reindex::render_status(&status));
            }
            Ok(())
        }
        AiCommand::Reindex {
            database,
            ai,
            batch,
        } => {
            database.validate()?;
            let settings = ai.validate()?;
            let providers = Providers::from_settings(&settings.ai, &AiMetrics::default())?;
            let embedder = providers.embedder.ok_or_else(|| {
                anyhow::anyhow!(
                    "no embedding provider is configured (POTENTIA_AI_EMBEDDING_PROVIDER, or POTENTIA_AI_EMBEDDING_MODEL_DIR for the local model)"
                )
            })?;
            let pool = db::connect(&database.database_url, 2).await?;
            let terminal = std::io::stderr().is_terminal();
            let report = reindex::reindex(&pool, embedder.as_ref(), batch, |progress| {
                let line = reindex::render_progress(&progress);
                if terminal {
                    eprint!("\r{line}");
                } else {
                    eprintln!("{line}");
                }
            })
            .await?;
            if terminal {
                eprintln!();
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        AiCommand::RetryDead { database } => {
            database.validate()?;
            let pool = db::connect(&database.database_url, 1).await?;
            let revived = queue::retry_dead(&pool).await?;
            println!("{revived} dead letters are back in the queue");
            Ok(())
        }
    }
}

/// Whom a minted token names: `--user`, else the account that has `--email`, else a new id.
fn token_subject(args: &TokenArgs) -> anyhow::Result<Uuid> {
    if let Some(user) = args.user {
        return Ok(user);
    }
    let (Some(email), Some(database_url)) = (&args.email, &args.database_url) else {
        return Ok(Uuid::new_v4());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let existing = runtime.block_on(async {
        let pool = db::connect(database_url, 1).await?;
        let found = users_db::find_credentials(&pool, email).await?;
        pool.close().await;
        anyhow::Ok(found.map(|account| account.id))
    })?;
    Ok(match existing {
        Some(id) => {
            eprintln!("potentia: a token for the existing account {id} ({email})");
            id
        }
        None => {
            let id = Uuid::new_v4();
            eprintln!(
                "potentia: no account has {email} yet; the first request with this token creates {id}"
            );
            id
        }
    })
}

fn print_token(args: &TokenArgs) -> ExitCode {
    if args.jwt.jwt_secret.is_none() {
        eprintln!(
            "potentia: POTENTIA_JWT_SECRET must be set to mint a token the server will accept"
        );
        return ExitCode::from(2);
    }
    let secret = match args.jwt.secret(Mode::Dev) {
        Ok(secret) => secret,
        Err(err) => {
            eprintln!("potentia: {err}");
            return ExitCode::from(2);
        }
    };
    let settings = AuthSettings {
        jwt_secret: secret,
        audience: args.jwt.jwt_audience.clone(),
        issuer: args.jwt.jwt_issuer.clone(),
        external_issuers: args.jwt.external_issuers(),
        access_token_ttl: Duration::from_secs(args.ttl_secs),
        refresh_token_ttl: Duration::from_secs(args.ttl_secs),
        session_max_lifetime: Duration::from_secs(args.ttl_secs),
        session_check_interval: Duration::from_secs(10),
        refresh_reuse_grace: Duration::ZERO,
        rate_per_ip_per_minute: 1,
        rate_per_account_per_minute: 1,
    };
    let user = match token_subject(args) {
        Ok(user) => user,
        Err(err) => {
            eprintln!("potentia: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match JwtKeys::new(&settings).issue(
        user,
        args.email.as_deref(),
        None,
        settings.access_token_ttl,
    ) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("potentia: {err}");
            ExitCode::FAILURE
        }
    }
}
