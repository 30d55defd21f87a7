//! The `banter` binary: parses arguments, sets up logging, and runs the server library.

mod admin;
mod backup;

use anyhow::Context as _;
use banter_server::{Config, Overrides, Server};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// The version and the git revision it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BANTER_GIT_REV"), ")");

/// Banter: an instant-messaging server.
#[derive(Debug, Parser)]
#[command(name = "banter", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite store by default, no setup needed; or `--store postgres://…`).
    Serve(Box<ServeArgs>),
    /// Print the default configuration as TOML.
    DefaultConfig,
    /// Run a load scenario against a server (started for the run unless `--addr` is given).
    #[command(subcommand)]
    Bench(banter_bench::BenchCommand),
    /// Copy the database to a new file, consistently, while the server runs.
    Backup(backup::BackupArgs),
    /// Put a backup in place as the database of an empty data directory (server stopped).
    Restore(backup::RestoreArgs),
    /// Administer a running server through its admin API (needs its admin token).
    Admin(admin::AdminArgs),
}

/// `banter serve`: the configuration, and how to log.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    overrides: Overrides,
    /// Log lines as text or as one JSON object per line (not in the TOML file: logging starts
    /// before the file is read).
    #[arg(long, env = "BANTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Runs the command; an error is printed once, with each cause the message does not already
/// contain, and exits with status 1 (a backtrace only with `RUST_BACKTRACE=1`).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("error: {message}");
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // The defaults are shown in `serve --help`, rendered from the one place they are defined.
    let defaults = format!("Defaults (TOML):\n{}", Config::default_toml());
    let matches = Cli::command()
        .mut_subcommand("serve", |c| {
            c.after_long_help(defaults.clone()).after_help(defaults)
        })
        .try_get_matches()
        .unwrap_or_else(|e| name_the_variable(e).exit());
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.command {
        Command::DefaultConfig => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Serve(args) => serve(*args),
        Command::Bench(scenario) => bench(scenario),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Admin(args) => admin::run(args),
    }
}

/// A bad value that came from a `BANTER_*` variable, not the command line, is reported under
/// the variable's name (clap names the flag either way, which sends people looking for a flag
/// they never gave).
fn name_the_variable(e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return e;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let Some(flag) = arg
        .split_whitespace()
        .next()
        .filter(|f| f.starts_with("--"))
    else {
        return e;
    };
    let given = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let variable = format!("BANTER_{}", flag[2..].replace('-', "_").to_uppercase());
    match std::env::var(&variable) {
        Ok(value) if !given => {
            let detail = e.to_string();
            let why = detail
                .lines()
                .next()
                .and_then(|l| l.rsplit_once("': ").map(|(_, why)| why.to_owned()))
                .unwrap_or_default();
            clap::Error::raw(
                ErrorKind::InvalidValue,
                format!("invalid value '{value}' in the environment variable {variable}: {why}\n"),
            )
        }
        _ => e,
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let config_file = args.overrides.config.clone();
    let config = Config::load(args.overrides)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("BANTER_GIT_REV"),
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        config = %config_file.as_deref().map_or("none".into(), |p| p.display().to_string()),
        // `sqlite`, or the PostgreSQL URL with any password replaced by `***`.
        store = config.store.redacted().as_str(),
        // `local`, or the NATS URL with any user part replaced by `***`.
        bus = config.bus.redacted().as_str(),
        cluster = config.cluster.as_str(),
        sync = %if config.store.is_set() {
            "postgres".to_owned()
        } else {
            format!("{:?}", config.sqlite_synchronous).to_lowercase()
        },
        "banter starting"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        tokio::spawn(reload_on_hangup(server.tls()));
        server.run(shutdown_signal()).await?;
        Ok(())
    })
}

fn bench(scenario: banter_bench::BenchCommand) -> anyhow::Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(banter_bench::run(command, scenario))?;
    Ok(())
}

/// On each SIGHUP, re-reads the TLS certificate and key; a bad pair is logged and the old one
/// kept. Without TLS there is nothing to reload, but SIGHUP still does not stop the server.
async fn reload_on_hangup(tls: Option<std::sync::Arc<banter_server::Tls>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).expect("install SIGHUP handler");
    while hangup.recv().await.is_some() {
        match &tls {
            Some(tls) => {
                if let Err(e) = tls.reload() {
                    tracing::error!(error = %e, "TLS reload failed; keeping the current certificate");
                }
            }
            None => tracing::info!("SIGHUP: no TLS certificate to reload"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
