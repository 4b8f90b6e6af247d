//! The `potentia` binary: `serve`, `migrate` and `token`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use potentia_server::auth::JwtKeys;
use potentia_server::config::{AuthSettings, DatabaseArgs, JwtArgs, LogArgs, Mode, ServeArgs};
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
}

#[derive(clap::Args)]
struct TokenArgs {
    #[command(flatten)]
    jwt: JwtArgs,
    /// The user id (`sub`); a new random id when omitted.
    #[arg(long)]
    user: Option<Uuid>,
    #[arg(long)]
    email: Option<String>,
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
        access_token_ttl: Duration::from_secs(args.ttl_secs),
        refresh_token_ttl: Duration::from_secs(args.ttl_secs),
        rate_per_ip_per_minute: 1,
        rate_per_account_per_minute: 1,
    };
    let user = args.user.unwrap_or_else(Uuid::new_v4);
    match JwtKeys::new(&settings).issue(user, args.email.as_deref(), settings.access_token_ttl) {
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
