//! The server under load: started as a child process of this binary (`banter serve`) or named by
//! address, and the facts every report records about it and about the machine.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

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
}

/// The server the bench talks to.
pub struct Target {
    /// `host:port`.
    pub addr: String,
    /// Its pid, when known.
    pub pid: Option<u32>,
    /// The flags it was started with (for the report).
    pub args: Vec<String>,
    child: Option<Child>,
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

impl Target {
    /// Starts a server or attaches to the given one.
    pub async fn start(args: &TargetArgs, max_conns_per_user: usize) -> anyhow::Result<Self> {
        Self::start_with(args, bench_server_flags(max_conns_per_user)).await
    }

    /// Starts a server with exactly `flags` (plus a data directory and `--server-arg`s), or
    /// attaches to the given one.
    pub async fn start_with(args: &TargetArgs, flags: Vec<String>) -> anyhow::Result<Self> {
        if let Some(addr) = &args.addr {
            return Ok(Self {
                addr: addr.clone(),
                pid: args.server_pid,
                args: vec![format!("external server at {addr}")],
                child: None,
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let mut flags = flags;
        flags.push(format!("--data-dir={}", dir.path().join("data").display()));
        flags.extend(args.server_args.iter().cloned());
        let exe = std::env::current_exe().context("locate the banter binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .args(&flags)
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
            tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(30)))
                .await?
                .context("the server did not start listening within 30 s")?;
        Ok(Self {
            addr,
            pid: Some(child.id()),
            args: flags,
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// CPU seconds (user + system) the server has used, if its pid is known.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / clock_ticks())
    }

    /// The server's resident memory in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid?, "VmRSS:").map(|k| k * 1024)
    }

    /// The server's peak resident memory in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        proc_status_kib(self.pid?, "VmHWM:").map(|k| k * 1024)
    }

    /// Stops a server this bench started.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            _ = child.kill();
            _ = child.wait();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
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
