//! `connections`: N idle authenticated WebSockets, held by several worker processes (one process
//! may hold at most 20,000 open files here), each from its own loopback source address, spread
//! over the nodes with `--nodes`. Reports the connect rate and the server's memory per
//! connection (RSS growth, summed over the nodes, / N).

use std::io::{BufRead as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use banter_client::{Api, Connection};
use futures_util::{StreamExt as _, stream};

use crate::measure::{self, Report, ServerUse};
use crate::population;
use crate::target::{Machine, OutputArgs, Target, TargetArgs};

/// Connections each user holds (the server is started allowing this many per user).
const PER_USER: usize = 100;
/// Connections one worker process holds at most.
const PER_WORKER: usize = 8_000;

/// `banter bench connections`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    /// Idle connections to open.
    #[arg(long, default_value_t = 19_000)]
    pub count: usize,
    /// Connection attempts in flight per worker process (each node's share of the connections
    /// is held by its own workers, at most 8,000 each). On PostgreSQL each attempt in flight
    /// may hold one of the node's (up to 16) database connections.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `banter bench connections-worker` (started by `connections`, not by hand).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Server address.
    #[arg(long)]
    pub addr: String,
    /// File with one token per line.
    #[arg(long)]
    pub tokens_file: std::path::PathBuf,
    /// Connections to open.
    #[arg(long)]
    pub count: usize,
    /// Index of this worker's first connection (selects tokens).
    #[arg(long)]
    pub first: usize,
    /// Local source address.
    #[arg(long)]
    pub source: Ipv4Addr,
    /// Connection attempts in flight.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
}

/// Holds `count` connections until standard input closes.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let tokens: Vec<String> = std::fs::read_to_string(&args.tokens_file)?
        .lines()
        .map(str::to_owned)
        .collect();
    let started = Instant::now();
    let conns: Vec<anyhow::Result<Connection>> = stream::iter(args.first..args.first + args.count)
        .map(|i| {
            let token = tokens[(i / PER_USER) % tokens.len()].clone();
            let addr = args.addr.clone();
            async move {
                Ok(Connection::connect_from(&addr, &token, Some(IpAddr::V4(args.source))).await?)
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .collect()
        .await;
    let ok = conns.iter().filter(|c| c.is_ok()).count();
    if let Some(Err(e)) = conns.iter().find(|c| c.is_err()) {
        eprintln!("worker: {} connections failed, e.g. {e}", args.count - ok);
    }
    println!("ready {ok} {:.3}", started.elapsed().as_secs_f64());
    std::io::stdout().flush()?;
    // Hold the connections until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {}
    })
    .await?;
    drop(conns);
    Ok(())
}

/// Runs the scenario.
pub async fn run(command: String, args: ConnectionsArgs) -> anyhow::Result<Report> {
    let machine = Machine::read();
    let per_node = args.count.div_ceil(usize::from(args.target.nodes));
    if let Some(limit) = open_file_limit() {
        // A node needs a few hundred files besides its connections.
        anyhow::ensure!(
            per_node + 1_000 <= limit,
            "{per_node} connections per node, but a process may open {limit} files here: \
             use more --nodes"
        );
    }
    let target = Target::start(&args.target, PER_USER).await?;
    let api = Api::new(target.addr.clone());
    let users = population::users(
        &api,
        &population::prefix("conn"),
        args.count.div_ceil(PER_USER),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let tokens_file = dir.path().join("tokens");
    std::fs::write(
        &tokens_file,
        users
            .iter()
            .map(|u| u.token.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    // Warm each node's allocator and caches with a few connections (of a user of their own,
    // so the measured ones never meet the per-user limit) before the baseline.
    let warm_user = population::users(&api, &population::prefix("warm"), 1).await?;
    for addr in &target.addrs {
        let warm = population::connect_all(addr, &vec![warm_user[0].token.clone(); 50]).await?;
        drop(warm);
        wait_until_closed(&Api::new(addr.clone())).await?;
    }
    let rss_before = target.node_rss_bytes();
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for (w, (node, first, count)) in plan_workers(args.count, target.addrs.len())
        .into_iter()
        .enumerate()
    {
        let source = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(w).context("too many workers")?);
        let child = Command::new(&exe)
            .args(["bench", "connections-worker", "--addr", target.node(node)])
            .arg("--tokens-file")
            .arg(&tokens_file)
            .args(["--count", &count.to_string(), "--first", &first.to_string()])
            .args(["--source", &source.to_string()])
            .args(["--parallel", &args.parallel.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start a connections worker")?;
        workers.push(child);
    }
    let mut opened = 0;
    let mut slowest: f64 = 0.0;
    for child in &mut workers {
        let out = child.stdout.take().context("worker stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        let mut parts = line.split_whitespace().skip(1);
        opened += parts
            .next()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        slowest = slowest.max(parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0));
    }
    let elapsed = started.elapsed();
    // Let the server settle (tasks parked, buffers released) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = ServerUse::measure(&target, cpu_before, elapsed);
    let rss_after = target.node_rss_bytes();
    for mut child in workers {
        drop(child.stdin.take());
        _ = child.wait();
    }
    let rss_before: Option<u64> = rss_before.iter().copied().sum();
    let rss_after_sum: Option<u64> = rss_after.iter().copied().sum();
    let per_conn = rss_before
        .zip(rss_after_sum)
        .map(|(b, a)| a.saturating_sub(b) as f64 / opened.max(1) as f64);
    let mut figures = vec![
        ("connections requested".to_owned(), args.count as f64),
        ("connections open".to_owned(), opened as f64),
        (
            "connect rate (conn/s)".to_owned(),
            (opened as f64 / slowest.max(1e-9)).round(),
        ),
    ];
    if let (Some(b), Some(a), Some(p)) = (rss_before, rss_after_sum, per_conn) {
        figures.push(("server RSS before (MiB)".into(), b as f64 / 1048576.0));
        figures.push(("server RSS after (MiB)".into(), a as f64 / 1048576.0));
        figures.push(("server RSS per connection (bytes)".into(), p.round()));
    }
    if target.addrs.len() > 1 {
        figures.push(("nodes".into(), target.addrs.len() as f64));
        let most = plan_workers(args.count, target.addrs.len()).iter().fold(
            vec![0; target.addrs.len()],
            |mut per, (node, _, count)| {
                per[*node] += count;
                per
            },
        );
        figures.push((
            "most connections on one node".into(),
            most.iter().copied().max().unwrap_or(0) as f64,
        ));
        for (i, a) in rss_after.iter().enumerate() {
            if let Some(a) = a {
                figures.push((format!("node {i} RSS after (MiB)"), *a as f64 / 1048576.0));
            }
        }
    }
    let report = Report {
        scenario: "connections".into(),
        command,
        params: serde_json::json!({
            "count": args.count,
            "workers": plan_workers(args.count, target.addrs.len()).len(),
            "nodes": target.addrs.len(),
            "store": target.store,
            "parallel": args.parallel,
        }),
        machine,
        server_args: target.args.clone(),
        duration_secs: elapsed.as_secs_f64(),
        figures,
        delivery: None,
        latency: None,
        ack_latency: None,
        timeline: Vec::new(),
        server,
    };
    report.print();
    report.save(&args.output.out)?;
    anyhow::ensure!(
        opened == args.count,
        "only {opened} of {} connections opened",
        args.count
    );
    Ok(report)
}

/// Splits `count` connections round robin over `nodes` (node `k` gets every `nodes`-th one,
/// so shares differ by at most one) and each node's share into workers of at most
/// [`PER_WORKER`]: `(node, first index, count)` per worker. The first index selects tokens,
/// [`PER_USER`] connections per user.
fn plan_workers(count: usize, nodes: usize) -> Vec<(usize, usize, usize)> {
    let mut plan = Vec::new();
    let mut first = 0;
    for node in 0..nodes {
        let share = count / nodes + usize::from(node < count % nodes);
        let workers = share.div_ceil(PER_WORKER);
        for w in 0..workers {
            let n = share / workers + usize::from(w < share % workers);
            plan.push((node, first, n));
            first += n;
        }
    }
    plan
}

/// This process's (and so each node's) soft limit on open files.
fn open_file_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Waits until the server counts no open WebSocket connection (the warm-up ones are gone), so
/// that the baseline does not include them.
async fn wait_until_closed(api: &Api) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = api.get_text("/metrics").await?;
        let open = measure::metric(&metrics, "banter_connections")
            .context("banter_connections in /metrics")? as u64;
        if open == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{open} warm-up connections still open after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::plan_workers;

    #[test]
    fn a_hundred_thousand_on_six_nodes_stay_under_nineteen_thousand_each() {
        let plan = plan_workers(100_000, 6);
        let mut per_node = [0; 6];
        for (node, _, count) in &plan {
            assert!(*count <= super::PER_WORKER);
            per_node[*node] += count;
        }
        assert_eq!(per_node.iter().sum::<usize>(), 100_000);
        assert!(
            per_node.iter().all(|n| (16_666..=16_667).contains(n)),
            "{per_node:?}"
        );
        // Contiguous token ranges, in order.
        let mut next = 0;
        for (_, first, count) in plan {
            assert_eq!(first, next);
            next += count;
        }
        assert_eq!(plan_workers(19_000, 1).len(), 3);
    }
}
