//! Banter's load generator, built on the client SDK: `banter bench <scenario>`.
//!
//! Every scenario starts its own server (`banter serve`, as a child process, so that its CPU and
//! memory can be read from `/proc`) unless given `--addr`, prints a summary table, and writes a
//! JSON result and an SVG chart (latency CDF, deliveries per second). Benchmarks are programs
//! that print figures; `docs/BENCHMARKS.md` records what they printed.

pub mod chart;
pub mod cluster;
pub mod commits;
pub mod connections;
pub mod load;
pub mod logins;
pub mod measure;
pub mod media;
pub mod phase;
pub mod population;
pub mod receive;
pub mod scenarios;
pub mod target;

pub use measure::Report;

/// The scenarios.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// M members online in one group, R messages/s in total from S senders.
    Group(scenarios::GroupArgs),
    /// P pairs chatting 1:1 at a total rate: acks/s, deliveries/s, latencies.
    Direct(scenarios::DirectArgs),
    /// A chatroom with K occupants and R broadcasts/s.
    Room(scenarios::RoomArgs),
    /// N idle authenticated connections: connect rate and server memory per connection.
    Connections(connections::ConnectionsArgs),
    /// C concurrent wrong-password logins with default hashing: server RSS, other users'
    /// ping latency, guesses per account.
    Logins(logins::LoginsArgs),
    /// Upload throughput (MiB/s) and the time to thumbnail a 12 MP JPEG.
    Media(media::MediaArgs),
    /// Internal: one process of the `connections` scenario.
    #[command(hide = true)]
    ConnectionsWorker(connections::WorkerArgs),
}

/// Runs a scenario; `command` is the command line, recorded in the report.
pub async fn run(command: String, cmd: BenchCommand) -> anyhow::Result<Option<Report>> {
    Ok(Some(match cmd {
        BenchCommand::Group(a) => scenarios::group(command, a).await?,
        BenchCommand::Direct(a) => scenarios::direct(command, a).await?,
        BenchCommand::Room(a) => scenarios::room(command, a).await?,
        BenchCommand::Connections(a) => connections::run(command, a).await?,
        BenchCommand::Logins(a) => logins::run(command, a).await?,
        BenchCommand::Media(a) => media::run(command, a).await?,
        BenchCommand::ConnectionsWorker(a) => {
            connections::worker(a).await?;
            return Ok(None);
        }
    }))
}
