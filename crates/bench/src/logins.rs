//! `logins`: a wrong-password flood against a server with the default password hashing and
//! throttles, while other users ping over their WebSockets. Reports the server's RSS (sampled
//! every 100 ms, and its peak), the other users' `ping` latency, how many guesses per second
//! one account received, and the server's hashing and refusal counters.
//!
//! Half the attackers guess one victim's password, half guess a new unknown username each time
//! (which costs the server the same hash, and escapes the per-account throttle); each attacker sends from its own loopback address (127.0.1.x),
//! as a botnet would, so that the per-address throttle does not stop them all at once. They
//! ignore `Retry-After` and retry at once, as an attacker would.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use banter_client::protocol::{ClientRequest, ErrorCode};
use banter_client::{Api, ClientError};
use tokio::sync::Mutex;

use crate::measure::{self, Latencies, Report, ServerUse};
use crate::population;
use crate::target::{Machine, OutputArgs, Target, TargetArgs};

/// How often each pinger sends a `ping`.
const PING_EVERY: Duration = Duration::from_millis(20);
/// How often the server's RSS is read.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// `banter bench logins`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginsArgs {
    /// Concurrent wrong-password logins.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Seconds of flooding.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Other users pinging over WebSockets meanwhile.
    #[arg(long, default_value_t = 4)]
    pub pingers: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Answers the attackers got, by kind.
#[derive(Default)]
struct Tally {
    by_kind: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Verdicts (`bad_credentials`) on the victim account: guesses that were hashed.
    victim_guesses: AtomicU64,
}

impl Tally {
    fn count(&self, kind: String) {
        *self
            .by_kind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }
}

/// The server flags: the defaults that matter here (hashing, throttles) left alone.
fn flags() -> Vec<String> {
    ["--listen=127.0.0.1:0", "--max-connections-per-user=10"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Runs the scenario.
pub async fn run(command: String, args: LoginsArgs) -> anyhow::Result<Report> {
    let machine = Machine::read();
    let target = Target::start_with(&args.target, flags()).await?;
    let api = Api::new(target.addr.clone());
    let prefix = population::prefix("logins");
    let users = population::users(&api, &prefix, args.pingers + 1).await?;
    let tokens: Vec<String> = users[1..].iter().map(|u| u.token.clone()).collect();
    let pingers = population::connect_all(&target.addr, &tokens).await?;
    let rss_before = target.rss_bytes();
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let tally = Arc::new(Tally::default());
    let attackers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let attacker = Attacker {
                api: Api::new(target.addr.clone()).from_local(source(i)),
                victim: i.is_multiple_of(2).then(|| users[0].username.clone()),
                ghost: format!("{prefix}-ghost-{i}"),
                tally: Arc::clone(&tally),
            };
            tokio::spawn(attacker.run(until))
        })
        .collect();
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let ping_tasks: Vec<_> = pingers
        .into_iter()
        .map(|conn| tokio::spawn(ping(conn, until, Arc::clone(&latencies))))
        .collect();
    let mut rss_max = 0u64;
    while Instant::now() < until {
        rss_max = rss_max.max(target.rss_bytes().unwrap_or(0));
        tokio::time::sleep(RSS_EVERY).await;
    }
    for task in attackers {
        task.await?;
    }
    for task in ping_tasks {
        task.await?.context("a pinger failed")?;
    }
    let elapsed = started.elapsed();
    let server = ServerUse::measure(&target, cpu_before, elapsed);
    let (_, metrics) = api.get_text("/metrics").await?;
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut figures = vec![
        (
            "concurrent wrong-password logins".to_owned(),
            args.concurrency as f64,
        ),
        (
            "server RSS before (MiB)".into(),
            mib(rss_before.unwrap_or(0)),
        ),
        ("server RSS max, sampled (MiB)".into(), mib(rss_max)),
    ];
    figures.extend(tally.figures(&metrics, elapsed));
    let report = Report {
        scenario: "logins".into(),
        command,
        params: serde_json::json!({
            "concurrency": args.concurrency, "seconds": args.seconds, "pingers": args.pingers,
        }),
        machine,
        server_args: target.args.clone(),
        duration_secs: elapsed.as_secs_f64(),
        figures,
        delivery: None,
        latency: Some(latencies.lock().await.summary()),
        ack_latency: None,
        timeline: Vec::new(),
        server,
    };
    report.print();
    println!("  (latency is the other users' `ping` round trip)");
    report.save(&args.output.out)?;
    Ok(report)
}

/// The loopback source address of attacker `i`: 127.0.1.1, 127.0.1.2, …
fn source(i: usize) -> IpAddr {
    let host = u8::try_from(i % 250 + 1).unwrap_or(1);
    let net = u8::try_from(1 + i / 250).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 0, net, host))
}

/// One attacker: guesses the victim's password, or (without a victim) a new unknown username
/// each time, so that only the per-address throttle applies.
struct Attacker {
    api: Api,
    victim: Option<String>,
    ghost: String,
    tally: Arc<Tally>,
}

impl Attacker {
    async fn run(self, until: Instant) {
        for n in 0u64.. {
            if Instant::now() >= until {
                break;
            }
            let name = match &self.victim {
                Some(victim) => victim.clone(),
                None => format!("{}-{n}", self.ghost),
            };
            let kind = match self.api.login(&name, "wrong password!", None).await {
                Ok(_) => "logged in (!)".to_owned(),
                Err(ClientError::Api { status, body }) => {
                    if self.victim.is_some() && body.code == ErrorCode::BadCredentials {
                        self.tally.victim_guesses.fetch_add(1, Ordering::Relaxed);
                    }
                    format!("{status} {}", body.code)
                }
                Err(e) => format!(
                    "client error: {}",
                    e.to_string().split(':').next().unwrap_or("?")
                ),
            };
            self.tally.count(kind);
        }
    }
}

/// Pings every [`PING_EVERY`] until `until`, then adds its latencies to `all`.
async fn ping(
    conn: banter_client::Connection,
    until: Instant,
    all: Arc<Mutex<Latencies>>,
) -> anyhow::Result<()> {
    let mut mine = Latencies::default();
    let mut next = Instant::now();
    while Instant::now() < until {
        let sent = Instant::now();
        conn.request(ClientRequest::Ping).await?;
        mine.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        next += PING_EVERY;
        tokio::time::sleep_until(next.into()).await;
    }
    all.lock().await.merge(&mine);
    Ok(())
}

impl Tally {
    /// The attack's figures, with the server's counters from its `/metrics` text.
    fn figures(&self, metrics: &str, elapsed: Duration) -> Vec<(String, f64)> {
        let metric = |name: &str| measure::metric(metrics, name).unwrap_or(f64::NAN);
        let guesses = self.victim_guesses.load(Ordering::Relaxed) as f64;
        let mut figures = vec![
            ("victim guesses hashed".to_owned(), guesses),
            (
                "victim guesses per second".into(),
                guesses / elapsed.as_secs_f64(),
            ),
            (
                "hashes computed".into(),
                metric("banter_password_hashes_total"),
            ),
            (
                "most hashes at once".into(),
                metric("banter_password_hashing_max"),
            ),
            (
                "refused busy (queue full)".into(),
                metric("banter_password_hash_refusals_total"),
            ),
            (
                "refused rate_limited (throttle)".into(),
                metric("banter_logins_throttled_total"),
            ),
        ];
        let by_kind = self
            .by_kind
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, n) in by_kind.iter() {
            figures.push((format!("answers: {kind}"), *n as f64));
        }
        figures
    }
}
