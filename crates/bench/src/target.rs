//! The server under load: started as a child process of this binary (`banter serve`), or as
//! `--nodes` of them forming a cluster, or named by address; and the facts every report records
//! about it and about the machine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::cluster::{self, Scratch};

/// Where the server comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Use the server at this address instead of starting one (its CPU and RSS are then read
    /// from `--server-pid`, if given).
    #[arg(long)]
    pub addr: Option<String>,
    /// Pid of the server named by `--addr`, for CPU and memory figures.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Extra `banter serve` flags for the started server, e.g. `--server-arg=--sqlite-synchronous=normal`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Nodes to start: more than one form a cluster on a fresh database of `--store` and a
    /// fresh cluster name on `--bus`, and clients are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// PostgreSQL admin URL: the bench creates a database of its own there for the run and
    /// drops it at the end [default with --nodes > 1: postgres://root@127.0.0.1:5432/test;
    /// with one node and no --store: SQLite].
    #[arg(long)]
    pub store: Option<String>,
    /// NATS URL the nodes of a cluster share (with --nodes > 1).
    #[arg(long, default_value = cluster::DEFAULT_BUS)]
    pub bus: String,
}

/// A CPU reading of every node, in seconds (user + system), for [`Target::cpu_seconds`].
#[derive(Debug, Clone, Default)]
pub struct CpuMark(pub Vec<Option<f64>>);

/// The server (or the nodes of the cluster) the bench talks to.
pub struct Target {
    /// `host:port` of the first node.
    pub addr: String,
    /// `host:port` of every node, in order.
    pub addrs: Vec<String>,
    /// Each node's pid, when known.
    pub pids: Vec<Option<u32>>,
    /// The flags the first node was started with (for the report).
    pub args: Vec<String>,
    /// `sqlite`, `postgres` or `external`.
    pub store: &'static str,
    children: Vec<Child>,
    scratch: Option<Scratch>,
    _dir: Option<tempfile::TempDir>,
}

/// Flags every bench-started server gets: cheap password hashing (registration is not what is
/// measured), limits and throttles that do not hold back the load (the population registers
/// from one address), and groups open to strangers.
fn bench_server_flags(max_conns_per_user: usize) -> Vec<String> {
    [
        "--listen=127.0.0.1:0",
        "--password-memory-kib=64",
        "--password-iterations=1",
        "--send-rate-per-sec=1000000",
        "--send-burst=1000000",
        "--outbound-queue-frames=8192",
        "--max-group-members=100000",
        // Every bench client comes from a few loopback addresses, thousands per address.
        "--max-connections=1000000",
        "--max-pending-per-ip=1000000",
        "--max-sessions-per-ip=1000000",
        // The group scenario puts strangers into one group (the default admits friends only).
        "--group-add-policy=anyone",
        "--register-per-address-per-hour=100000000",
        "--register-burst=1000000",
        "--login-failures-per-account=1000000",
        "--login-failures-per-address=1000000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--max-connections-per-user={max_conns_per_user}")])
    .collect()
}

/// Starts `banter serve` with `flags` and returns it with the address it listens on.
async fn spawn_node(flags: &[String]) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe().context("locate the banter binary")?;
    let mut child = Command::new(exe)
        .arg("serve")
        .args(flags)
        .env("RUST_LOG", "warn,banter_server::server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start banter serve")?;
    let stdout = child.stdout.take().context("server stdout")?;
    // Read the log on a thread: find the listen line, then keep draining so the server
    // never blocks on a full pipe.
    let (found, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut found = Some(found);
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("banter listening")
                && let Some(rest) = line.split("addr=").nth(1)
                && let Some(tx) = found.take()
            {
                _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let addr =
        tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(30))).await?;
    match addr {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            _ = child.kill();
            _ = child.wait();
            anyhow::bail!("a server did not start listening within 30 s")
        }
    }
}

impl Target {
    /// Starts a server or attaches to the given one.
    pub async fn start(args: &TargetArgs, max_conns_per_user: usize) -> anyhow::Result<Self> {
        Self::start_with(args, bench_server_flags(max_conns_per_user)).await
    }

    /// Starts `--nodes` servers with exactly `flags` (plus a data directory, the store and bus
    /// of a PostgreSQL node or cluster, and `--server-arg`s), or attaches to the given one.
    pub async fn start_with(args: &TargetArgs, flags: Vec<String>) -> anyhow::Result<Self> {
        if let Some(addr) = &args.addr {
            anyhow::ensure!(args.nodes == 1, "--addr names one server: drop --nodes");
            return Ok(Self {
                addr: addr.clone(),
                addrs: vec![addr.clone()],
                pids: vec![args.server_pid],
                args: vec![format!("external server at {addr}")],
                store: "external",
                children: Vec::new(),
                scratch: None,
                _dir: None,
            });
        }
        let nodes = usize::from(args.nodes);
        let store = match (&args.store, nodes) {
            (Some(url), _) => Some(url.as_str()),
            (None, 1) => None,
            (None, _) => Some(cluster::DEFAULT_STORE),
        };
        let scratch = match store {
            Some(admin) => {
                Some(Scratch::create(admin, (nodes > 1).then_some(args.bus.as_str())).await?)
            }
            None => None,
        };
        let dir = tempfile::tempdir()?;
        let mut target = Self {
            addr: String::new(),
            addrs: Vec::new(),
            pids: Vec::new(),
            args: Vec::new(),
            store: if scratch.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
            children: Vec::new(),
            scratch,
            _dir: None,
        };
        let per_node: Vec<Vec<String>> = (0..nodes)
            .map(|i| {
                let mut f = flags.clone();
                f.push(format!(
                    "--data-dir={}",
                    dir.path().join(format!("data{i}")).display()
                ));
                if let Some(s) = &target.scratch {
                    f.extend(s.node_flags());
                }
                f.extend(args.server_args.iter().cloned());
                f
            })
            .collect();
        target._dir = Some(dir);
        // All at once, as the nodes of a cluster are started; on an error the nodes already
        // started are stopped (and the database dropped) when `target` drops.
        let started = futures_util::future::join_all(per_node.iter().map(|f| spawn_node(f))).await;
        let mut failure = None;
        for result in started {
            match result {
                Ok((child, addr)) => {
                    target.pids.push(Some(child.id()));
                    target.children.push(child);
                    target.addrs.push(addr);
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        target.addr = target.addrs[0].clone();
        target.args = per_node.into_iter().next().unwrap_or_default();
        Ok(target)
    }

    /// Node `i` (round robin).
    pub fn node(&self, i: usize) -> &str {
        &self.addrs[i % self.addrs.len()]
    }

    /// CPU seconds (user + system) each node has used, where its pid is known.
    pub fn cpu_seconds(&self) -> CpuMark {
        CpuMark(self.pids.iter().map(|p| p.and_then(cpu_seconds)).collect())
    }

    /// Each node's resident memory in bytes.
    pub fn node_rss_bytes(&self) -> Vec<Option<u64>> {
        self.node_status_bytes("VmRSS:")
    }

    /// Each node's peak resident memory in bytes.
    pub fn node_peak_rss_bytes(&self) -> Vec<Option<u64>> {
        self.node_status_bytes("VmHWM:")
    }

    /// Each node's `/proc/<pid>/status` figure `key` (in KiB there), in bytes.
    fn node_status_bytes(&self, key: &str) -> Vec<Option<u64>> {
        self.pids
            .iter()
            .map(|p| p.and_then(|p| proc_status_kib(p, key)).map(|k| k * 1024))
            .collect()
    }

    /// The nodes' resident memory in bytes, summed (none unless known for every node).
    pub fn rss_bytes(&self) -> Option<u64> {
        self.node_rss_bytes().into_iter().sum()
    }

    /// The nodes' peak resident memory in bytes, summed.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.node_peak_rss_bytes().into_iter().sum()
    }

    /// Stops the servers this bench started and removes their database.
    pub fn stop(&mut self) {
        for child in &mut self.children {
            _ = child.kill();
        }
        for mut child in std::mem::take(&mut self.children) {
            _ = child.wait();
        }
        if let Some(scratch) = self.scratch.take() {
            scratch.remove();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn clock_ticks() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream architecture.
    100.0
}

/// The machine and revision a result was produced on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// CPU model.
    pub cpu: String,
    /// `git rev-parse --short HEAD`, when run from a checkout.
    pub git_revision: String,
    /// UTC time of the run.
    pub date: String,
}

impl Machine {
    /// Reads the facts.
    pub fn read() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes: memory_kib * 1024,
            cpu,
            git_revision: command_output("git", &["rev-parse", "--short", "HEAD"]),
            date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        }
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// Where results go.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Directory for the JSON result and the SVG chart.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// No progress bar (for logs and tests).
    #[arg(long)]
    pub quiet: bool,
}
