//! The `banter` binary: parses arguments, sets up logging, and runs the server library.

mod admin;

use anyhow::Context as _;
use banter_server::{Config, Overrides, Server};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// Banter: an instant-messaging server.
#[derive(Debug, Parser)]
#[command(name = "banter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded SQLite store by default; no setup needed).
    Serve(Box<Overrides>),
    /// Print the default configuration as TOML.
    DefaultConfig,
    /// Run a load scenario against a server (started for the run unless `--addr` is given).
    #[command(subcommand)]
    Bench(banter_bench::BenchCommand),
    /// Administer a running server through its admin API (needs its admin token).
    Admin(admin::AdminArgs),
}

fn main() -> anyhow::Result<()> {
    // The defaults are shown in `serve --help`, rendered from the one place they are defined.
    let defaults = format!("Defaults (TOML):\n{}", Config::default_toml());
    let matches = Cli::command()
        .mut_subcommand("serve", |c| {
            c.after_long_help(defaults.clone()).after_help(defaults)
        })
        .get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.command {
        Command::DefaultConfig => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Serve(overrides) => serve(*overrides),
        Command::Bench(scenario) => bench(scenario),
        Command::Admin(args) => admin::run(args),
    }
}

fn serve(overrides: Overrides) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::load(overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
