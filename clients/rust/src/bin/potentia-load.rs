//! `potentia-load`: the load generator of the sync benchmark (`scripts/bench-sync.sh`, issue 4).
//!
//! Each scenario subcommand drives yrs clients speaking y-websocket against one server (ours,
//! `@y/websocket-server` or `y-sweet`, already running) and appends one JSON line of figures to
//! `--out`; `report` prints the side-by-side table of such files. See `docs/benchmarks/sync.md`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use potentia_client::load::report::{self, ResultLine};
use potentia_client::load::scenarios::{self, FanoutOptions, RampOptions};
use potentia_client::load::stats::{Observed, PgProcesses};
use potentia_client::load::target::{Kind, Target};
use potentia_client::load::trace::{self, TraceOptions};

#[derive(Parser)]
#[command(
    name = "potentia-load",
    about = "Load generator and side-by-side benchmark of canvas sync servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// N clients on each of M canvases, each sending small edits at a fixed rate.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1)]
        canvases: usize,
        /// Clients per canvas.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Edits per second per client.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 5)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value_t = 10)]
        drain_secs: u64,
    },
    /// Doubles the offered rate on one canvas until latency or delivery fails.
    Ramp {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Total edits/s of the first step.
        #[arg(long, default_value_t = 250.0)]
        start_rate: f64,
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        #[arg(long, default_value_t = 64_000.0)]
        max_rate: f64,
        #[arg(long, default_value_t = 8)]
        step_secs: u64,
        #[arg(long, default_value_t = 1000)]
        p99_limit_ms: u64,
        #[arg(long, default_value_t = 0.99)]
        min_delivered: f64,
    },
    /// Loads K small canvases with one idle client each; RSS growth per canvas.
    Memory {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 200)]
        canvases: usize,
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
        /// One client at a time, gone before the next canvas: documents without connections.
        #[arg(long)]
        sequential: bool,
    },
    /// Replays a typing trace through one client with a second one watching.
    Trace {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        trace: PathBuf,
        /// Most updates in flight (sent, not yet seen by the watcher).
        #[arg(long, default_value_t = 4096)]
        window: usize,
        /// Ours: the server's database (durability and stored bytes).
        #[arg(long)]
        database_url: Option<String>,
        /// y-sweet: its store directory (stored bytes).
        #[arg(long)]
        ysweet_store: Option<PathBuf>,
        #[arg(long)]
        state_file: PathBuf,
        #[arg(long, default_value_t = 90)]
        settle_secs: u64,
        /// Longest replay; a slower one is reported as incomplete, with how far it got.
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
    },
    /// After a restart: a fresh client checks the replayed text.
    TraceVerify {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        state_file: PathBuf,
    },
    /// Creates an empty database (the benchmark's fresh database for our server).
    CreateDb {
        /// A URL of the cluster (any database on it).
        #[arg(long)]
        admin_url: String,
        #[arg(long)]
        name: String,
    },
    /// Drops a database created by `create-db`.
    DropDb {
        #[arg(long)]
        admin_url: String,
        #[arg(long)]
        name: String,
    },
    /// Prints the side-by-side table of result files.
    Report {
        /// JSON Lines files written by the scenarios' `--out`.
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct Common {
    /// Which server listens at `--url`.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Its base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    url: String,
    /// The server's process id (CPU and RSS from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Ours: its OpenMetrics endpoint (persist latency, commits).
    #[arg(long)]
    metrics_url: Option<String>,
    /// Ours: the Postgres data directory, to count its processes' CPU …
    #[arg(long, requires = "pg_database")]
    pg_data: Option<PathBuf>,
    /// … serving this database.
    #[arg(long)]
    pg_database: Option<String>,
    /// The scenario's name in the result line.
    #[arg(long)]
    scenario: String,
    /// Appends the result line here (and prints it).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Common {
    fn observed(&self) -> Observed {
        Observed {
            server_pid: self.server_pid,
            pg: self
                .pg_data
                .as_ref()
                .zip(self.pg_database.as_ref())
                .map(|(data_dir, database)| PgProcesses {
                    data_dir: data_dir.canonicalize().unwrap_or_else(|_| data_dir.clone()),
                    database: database.clone(),
                }),
            metrics_url: self.metrics_url.clone(),
        }
    }

    fn emit(&self, figures: impl serde::Serialize) -> anyhow::Result<()> {
        let line = ResultLine {
            kind: self.kind,
            scenario: self.scenario.clone(),
            figures: serde_json::to_value(figures)?,
        };
        let text = serde_json::to_string(&line)?;
        println!("{text}");
        if let Some(path) = &self.out {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}", path.display()))?;
            writeln!(file, "{text}")?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("potentia-load: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("potentia-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Fanout {
            common,
            canvases,
            clients,
            rate,
            warmup_secs,
            secs,
            drain_secs,
        } => {
            let target = Target::open(common.kind, &common.url).await?;
            let options = FanoutOptions {
                canvases,
                clients_per_canvas: clients,
                rate_per_client: rate,
                warmup: Duration::from_secs(warmup_secs),
                duration: Duration::from_secs(secs),
                drain: Duration::from_secs(drain_secs),
            };
            let figures = scenarios::fanout(&target, &common.observed(), &options).await?;
            common.emit(figures)
        }
        Command::Ramp {
            common,
            clients,
            start_rate,
            factor,
            max_rate,
            step_secs,
            p99_limit_ms,
            min_delivered,
        } => {
            anyhow::ensure!(factor > 1.0, "--factor must be above 1");
            let target = Target::open(common.kind, &common.url).await?;
            let options = RampOptions {
                clients,
                start_rate,
                factor,
                max_rate,
                step: Duration::from_secs(step_secs),
                p99_limit: Duration::from_millis(p99_limit_ms),
                min_delivered_ratio: min_delivered,
            };
            let figures = scenarios::ramp(&target, &common.observed(), &options).await?;
            common.emit(figures)
        }
        Command::Memory {
            common,
            canvases,
            settle_secs,
            sequential,
        } => {
            let target = Target::open(common.kind, &common.url).await?;
            let figures = scenarios::memory(
                &target,
                &common.observed(),
                canvases,
                Duration::from_secs(settle_secs),
                sequential,
            )
            .await?;
            common.emit(figures)
        }
        Command::Trace {
            common,
            trace: path,
            window,
            database_url,
            ysweet_store,
            state_file,
            settle_secs,
            max_secs,
        } => {
            let target = Target::open(common.kind, &common.url).await?;
            let options = TraceOptions {
                trace: path,
                window: window.max(1),
                database_url,
                ysweet_store,
                state_file,
                settle_timeout: Duration::from_secs(settle_secs),
                max_duration: Duration::from_secs(max_secs),
            };
            let figures = trace::replay(&target, &common.observed(), &options).await?;
            common.emit(figures)
        }
        Command::TraceVerify { common, state_file } => {
            let figures = trace::verify(&common.url, &state_file).await?;
            common.emit(figures)
        }
        Command::CreateDb { admin_url, name } => {
            let pool = admin_pool(&admin_url).await?;
            sqlx::query(&format!("create database {}", db_identifier(&name)?))
                .execute(&pool)
                .await
                .with_context(|| format!("create database {name}"))?;
            Ok(())
        }
        Command::DropDb { admin_url, name } => {
            let pool = admin_pool(&admin_url).await?;
            sqlx::query(&format!(
                "drop database if exists {} with (force)",
                db_identifier(&name)?
            ))
            .execute(&pool)
            .await
            .with_context(|| format!("drop database {name}"))?;
            Ok(())
        }
        Command::Report { files } => {
            let mut lines = Vec::new();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}", file.display()))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    lines.push(serde_json::from_str::<ResultLine>(line)?);
                }
            }
            print!("{}", report::table(&lines));
            Ok(())
        }
    }
}

async fn admin_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .context("connecting to the database cluster")
}

/// A database name the benchmark creates: lowercase letters, digits and `_` only.
fn db_identifier(name: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "database names of the benchmark are [a-z0-9_]+, not {name:?}"
    );
    Ok(name)
}
