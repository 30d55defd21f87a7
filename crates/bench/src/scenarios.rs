//! The fan-out scenarios: `group`, `direct` and `room`, each a setup followed by one measured
//! phase, or by a ramp of phases that finds the highest rate whose p99 stays under a bound.

use std::time::Instant;

use anyhow::Context as _;
use banter_client::protocol::{ClientRequest, GroupInfo, RoomJoined};
use banter_client::{Api, Connection, Target as To};

use crate::commits;
use crate::load::{Dest, Plan, Sender};
use crate::measure::{Report, ServerUse};
use crate::phase::{self, Outcome};
use crate::population::{self, BenchUser};
use crate::target::{CpuMark, Machine, OutputArgs, Target, TargetArgs};

/// Each fan-out scenario's default `--rate` and `--seconds` (the help text of [`LoadArgs`] names
/// them; a test checks that it does).
const DEFAULTS: [(&str, (f64, u64)); 3] = [
    ("group", (500.0, 40)),
    ("direct", (10_000.0, 20)),
    ("room", (100.0, 20)),
];

/// Options every fan-out scenario shares.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Messages per second, all senders together [default: group 500, direct 10000, room 100].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of sending (the seed's "rounds" of one second each) [default: group 40, direct
    /// 20, room 20].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Bytes of padding in each message text.
    #[arg(long, default_value_t = 32)]
    pub pad: usize,
    /// Sends each sender may have awaiting acknowledgement: 1 waits for each ack before the
    /// next send; more pipelines them, as a client flushing its outbox does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub window: u16,
    /// Instead of one run: raise the rate by 25 % per step until p99 exceeds `--p99-ms` or a
    /// message is lost, and report the highest rate that held.
    #[arg(long)]
    pub ramp: bool,
    /// The p99 bound for `--ramp`, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub p99_ms: f64,
    /// Seconds per `--ramp` step.
    #[arg(long, default_value_t = 5)]
    pub step_seconds: u64,
    /// Most `--ramp` steps (the ramp also ends at the first step over the bound).
    #[arg(long, default_value_t = 30)]
    pub max_steps: u32,
    /// Seconds of unmeasured load at the starting rate before the ramp's first step: the first
    /// seconds after connecting carry a start-up transient (allocations, caches, idle workers
    /// waking) that would otherwise end the ramp at its first step.
    #[arg(long, default_value_t = 5)]
    pub warmup_seconds: u64,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `group`: M members online in one group, R messages/s from S senders.
#[derive(Debug, Clone, clap::Args)]
pub struct GroupArgs {
    /// Group members, all online.
    #[arg(long, default_value_t = 500)]
    pub members: usize,
    /// Sending connections (separate sessions of the first members).
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `direct`: P pairs, each sender messaging its partner.
#[derive(Debug, Clone, clap::Args)]
pub struct DirectArgs {
    /// Sender/receiver pairs.
    #[arg(long, default_value_t = 500)]
    pub pairs: usize,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `room`: K occupants of one chatroom, R broadcasts/s.
#[derive(Debug, Clone, clap::Args)]
pub struct RoomArgs {
    /// Occupying connections (ten per user).
    #[arg(long, default_value_t = 10_000)]
    pub occupants: usize,
    /// Sending connections (separate users, in the room too).
    #[arg(long, default_value_t = 2)]
    pub senders: usize,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// A prepared scenario: who receives, who sends, and how to describe it.
struct Setup {
    name: &'static str,
    receivers: Vec<Connection>,
    senders: Vec<Sender>,
    /// Every receiver gets every sender's messages (group, room), rather than only its own
    /// sender's (direct pairs).
    fanout: bool,
    /// The share of deliveries whose sender and receiver are on different nodes.
    cross: f64,
    params: serde_json::Value,
}

/// The share of (sender, receiver) connection pairs on different nodes, when sender `j` is on
/// node `j % nodes` and receiver `i` on node `(i + offset) % nodes`.
fn cross_share(nodes: usize, senders: usize, receivers: usize, offset: usize) -> f64 {
    let crossing = (0..senders)
        .flat_map(|j| (0..receivers).map(move |i| (j, i)))
        .filter(|(j, i)| j % nodes != (i + offset) % nodes)
        .count();
    crossing as f64 / (senders * receivers).max(1) as f64
}

async fn tokens(api: &Api, users: &[BenchUser]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(population::second_session(api, u).await?);
    }
    Ok(out)
}

async fn setup_group(args: &GroupArgs, target: &Target) -> anyhow::Result<Setup> {
    let api = Api::new(target.addr.clone());
    let users = population::users(&api, &population::prefix("group"), args.members).await?;
    // Members round robin over the nodes: with N nodes, (N - 1) / N of deliveries cross.
    let receivers = population::connect_spread(
        &target.addrs,
        &users.iter().map(|u| u.token.clone()).collect::<Vec<_>>(),
        0,
    )
    .await?;
    let group: GroupInfo = receivers[0]
        .typed(ClientRequest::GroupCreate {
            name: "bench".into(),
            description: None,
            public: false,
            members: users[1..].iter().map(|u| u.id.clone()).collect(),
        })
        .await
        .context("create the group")?;
    let sender_tokens = tokens(&api, &users[..args.senders.min(users.len())]).await?;
    let senders_len = sender_tokens.len();
    let senders = population::connect_spread(&target.addrs, &sender_tokens, 0)
        .await?
        .into_iter()
        .map(|conn| Sender::new(conn, Dest::Conversation(To::Conversation(group.id.clone()))))
        .collect();
    Ok(Setup {
        name: "group",
        receivers,
        senders,
        fanout: true,
        cross: cross_share(target.addrs.len(), senders_len, args.members, 0),
        params: serde_json::json!({"members": args.members, "senders": args.senders}),
    })
}

async fn setup_direct(args: &DirectArgs, target: &Target) -> anyhow::Result<Setup> {
    let api = Api::new(target.addr.clone());
    let users = population::users(&api, &population::prefix("direct"), args.pairs * 2).await?;
    let (from, to) = users.split_at(args.pairs);
    let tokens = |list: &[BenchUser]| list.iter().map(|u| u.token.clone()).collect::<Vec<_>>();
    // Pair i: sender on node i, receiver on node i + 1, so with more than one node every
    // delivery crosses nodes.
    let receivers = population::connect_spread(&target.addrs, &tokens(to), 1).await?;
    let senders = population::connect_spread(&target.addrs, &tokens(from), 0)
        .await?
        .into_iter()
        .zip(to)
        .map(|(conn, peer)| Sender::new(conn, Dest::Conversation(To::User(peer.id.clone()))))
        .collect();
    Ok(Setup {
        name: "direct",
        receivers,
        senders,
        fanout: false,
        cross: if target.addrs.len() > 1 { 1.0 } else { 0.0 },
        params: serde_json::json!({"pairs": args.pairs}),
    })
}

async fn setup_room(args: &RoomArgs, target: &Target) -> anyhow::Result<Setup> {
    const PER_USER: usize = 10;
    let api = Api::new(target.addr.clone());
    let prefix = population::prefix("room");
    let users = population::users(&api, &prefix, args.occupants.div_ceil(PER_USER)).await?;
    let mut tokens = Vec::with_capacity(args.occupants);
    for u in &users {
        tokens.push(u.token.clone());
        for _ in 1..PER_USER {
            if tokens.len() < args.occupants {
                tokens.push(population::second_session(&api, u).await?);
            }
        }
    }
    tokens.truncate(args.occupants);
    let receivers = population::connect_spread(&target.addrs, &tokens, 0).await?;
    let room = "bench".to_owned();
    for conn in &receivers {
        let _: RoomJoined = conn
            .typed(ClientRequest::RoomJoin { room: room.clone() })
            .await?;
    }
    let sender_users = population::users(&api, &format!("{prefix}s"), args.senders).await?;
    let sender_tokens: Vec<String> = sender_users.iter().map(|u| u.token.clone()).collect();
    let mut senders = Vec::new();
    for conn in population::connect_spread(&target.addrs, &sender_tokens, 0).await? {
        let _: RoomJoined = conn
            .typed(ClientRequest::RoomJoin { room: room.clone() })
            .await?;
        senders.push(Sender::new(conn, Dest::Room(room.clone())));
    }
    Ok(Setup {
        name: "room",
        receivers,
        senders,
        fanout: true,
        cross: cross_share(target.addrs.len(), args.senders, args.occupants, 0),
        params: serde_json::json!({"occupants": args.occupants, "senders": args.senders}),
    })
}

/// Runs a phase at `rate` for `seconds` (padding, window and quietness from `load`).
async fn phase_at(
    setup: &mut Setup,
    load: &LoadArgs,
    rate: f64,
    seconds: u64,
    first_index: u64,
    epoch: Instant,
) -> Outcome {
    let senders = setup.senders.len() as u64;
    let total = (rate * seconds as f64).round() as u64;
    let per_sender = total.div_ceil(senders).max(1);
    let plan = Plan {
        rate,
        per_sender,
        pad: load.pad,
        global_index: setup.fanout,
        first_index,
        window: usize::from(load.window),
    };
    let expected_each = if setup.fanout {
        per_sender * senders
    } else {
        per_sender
    };
    let receivers = std::mem::take(&mut setup.receivers);
    let senders = std::mem::take(&mut setup.senders);
    let (receivers, senders, outcome) = phase::run(
        receivers,
        senders,
        plan,
        expected_each,
        epoch,
        load.output.quiet,
    )
    .await;
    setup.receivers = receivers;
    setup.senders = senders;
    outcome
}

/// Warms up, then raises the rate by 25 % per step from `rate` until a step loses a message or
/// its p99 exceeds the bound. Returns the highest step that held (or the failing first step, then
/// reported at rate 0), and the server's CPU reading and the time when measuring began.
async fn ramp(
    setup: &mut Setup,
    load: &LoadArgs,
    target: &Target,
    mut rate: f64,
    epoch: Instant,
    figures: &mut Vec<(String, f64)>,
) -> anyhow::Result<(Outcome, CpuMark, Instant)> {
    let mut first_index = 0;
    let mut step = async |setup: &mut Setup, rate: f64, seconds: u64| {
        let o = phase_at(setup, load, rate, seconds, first_index, epoch).await;
        first_index += o.delivery.expected + 1_000_000;
        o
    };
    if load.warmup_seconds > 0 {
        let o = step(setup, rate, load.warmup_seconds).await;
        println!(
            "  ramp: warm-up at {rate:.0} msg/s → p99 {:.2} ms, lost {} (not counted)",
            o.latency.summary().p99_ms,
            o.delivery.lost
        );
    }
    // Server CPU is counted over the measured steps only.
    let (cpu_before, started) = (target.cpu_seconds(), Instant::now());
    let mut best: Option<(f64, Outcome)> = None;
    let mut failed: Option<Outcome> = None;
    let mut steps = 0u32;
    for _ in 0..load.max_steps {
        steps += 1;
        let o = step(setup, rate, load.step_seconds).await;
        let held = o.delivery.lost == 0 && o.latency.summary().p99_ms <= load.p99_ms;
        println!(
            "  ramp: {rate:.0} msg/s → {:.0} deliveries/s, p99 {:.2} ms, lost {} → {}",
            o.deliveries_per_sec(),
            o.latency.summary().p99_ms,
            o.delivery.lost,
            if held { "held" } else { "over the bound" }
        );
        if !held {
            failed = Some(o);
            break;
        }
        best = Some((rate, o));
        rate *= 1.25;
    }
    figures.push(("ramp steps run".to_owned(), f64::from(steps)));
    let (rate, o) = match (best, failed) {
        (Some(b), _) => b,
        (None, Some(o)) => (0.0, o),
        (None, None) => anyhow::bail!("the ramp ran no step"),
    };
    figures.push((
        "highest rate holding the bound (msg/s)".to_owned(),
        rate.round(),
    ));
    Ok((o, cpu_before, started))
}

/// Runs a scenario end to end and saves its report.
async fn execute(
    command: String,
    load: &LoadArgs,
    default_rate: f64,
    default_seconds: u64,
    max_conns_per_user: usize,
    prepare: impl AsyncFnOnce(&Target) -> anyhow::Result<Setup>,
) -> anyhow::Result<Report> {
    let machine = Machine::read();
    let target = Target::start(&load.target, max_conns_per_user).await?;
    let mut setup = prepare(&target).await?;
    let epoch = Instant::now();
    let rate = load.rate.unwrap_or(default_rate);
    let seconds = load.seconds.unwrap_or(default_seconds);
    let mut figures = Vec::new();
    let (outcome, cpu_before, started, store_before) = if load.ramp {
        let (outcome, cpu_before, started) =
            ramp(&mut setup, load, &target, rate, epoch, &mut figures).await?;
        (outcome, cpu_before, started, None)
    } else {
        let store_before = commits::read(&target).await;
        let (cpu_before, started) = (target.cpu_seconds(), Instant::now());
        let outcome = phase_at(&mut setup, load, rate, seconds, 0, epoch).await;
        (outcome, cpu_before, started, Some(store_before))
    };
    let mut server = ServerUse::measure(&target, cpu_before, started.elapsed());
    if let Some(before) = store_before {
        server.store = commits::since(&target, &before, &commits::read(&target).await);
    }
    let sent = outcome.acks.summary().samples;
    figures.push(("messages sent".into(), sent as f64));
    figures.push(("send errors".into(), outcome.send_errors as f64));
    figures.push(("deliveries".into(), outcome.delivery.received as f64));
    figures.push(("elapsed (s)".into(), outcome.elapsed.as_secs_f64()));
    figures.push(("deliveries/s".into(), outcome.deliveries_per_sec().round()));
    if target.addrs.len() > 1 {
        figures.push(("nodes".into(), target.addrs.len() as f64));
        figures.push((
            "deliveries crossing nodes (share)".into(),
            (setup.cross * 1000.0).round() / 1000.0,
        ));
    }
    figures.push((
        "acks/s".into(),
        (sent as f64 / outcome.elapsed.as_secs_f64()).round(),
    ));
    let mut params = setup.params.clone();
    params["rate"] = rate.into();
    params["seconds"] = seconds.into();
    params["pad"] = load.pad.into();
    params["window"] = load.window.into();
    params["ramp"] = load.ramp.into();
    params["nodes"] = target.addrs.len().into();
    params["store"] = target.store.into();
    let report = Report {
        scenario: setup.name.to_owned(),
        command,
        params,
        machine,
        server_args: target.args.clone(),
        duration_secs: outcome.elapsed.as_secs_f64(),
        figures,
        delivery: Some(outcome.delivery.clone()),
        latency: Some(outcome.latency.summary()),
        ack_latency: Some(outcome.acks.summary()),
        timeline: outcome.timeline.clone(),
        server,
    };
    report.print();
    report.save(&load.output.out)?;
    Ok(report)
}

/// `banter bench group`.
pub async fn group(command: String, args: GroupArgs) -> anyhow::Result<Report> {
    let (rate, seconds) = DEFAULTS[0].1;
    execute(command, &args.load, rate, seconds, 4, async |t: &Target| {
        setup_group(&args, t).await
    })
    .await
}

/// `banter bench direct`.
pub async fn direct(command: String, args: DirectArgs) -> anyhow::Result<Report> {
    let (rate, seconds) = DEFAULTS[1].1;
    execute(command, &args.load, rate, seconds, 4, async |t: &Target| {
        setup_direct(&args, t).await
    })
    .await
}

/// `banter bench room`.
pub async fn room(command: String, args: RoomArgs) -> anyhow::Result<Report> {
    let (rate, seconds) = DEFAULTS[2].1;
    execute(
        command,
        &args.load,
        rate,
        seconds,
        10,
        async |t: &Target| setup_room(&args, t).await,
    )
    .await
}

#[cfg(test)]
mod defaults_tests {
    use clap::Args as _;

    #[test]
    fn the_help_names_every_scenario_default() {
        let command = super::LoadArgs::augment_args(clap::Command::new("bench"));
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_help().unwrap().to_string().replace('\n', " ")
        };
        for (name, (rate, seconds)) in super::DEFAULTS {
            assert!(
                help("rate").contains(&format!("{name} {rate}")),
                "{name} rate"
            );
            assert!(
                help("seconds").contains(&format!("{name} {seconds}")),
                "{name} seconds"
            );
        }
    }
}
