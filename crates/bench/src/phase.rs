//! One measured phase of a fan-out scenario: senders on their schedule, receivers checking and
//! timing every delivery, a progress bar, and the figures that come out.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use banter_client::Connection;
use indicatif::{ProgressBar, ProgressStyle};

use crate::load::{Plan, Sender, send_all};
use crate::measure::{Delivery, Latencies, Timeline};
use crate::receive::{Shared, combine, receive};

/// How long receivers may keep receiving after the last scheduled send.
const DRAIN: Duration = Duration::from_secs(10);

/// What a phase measured.
pub struct Outcome {
    /// Correctness.
    pub delivery: Delivery,
    /// End-to-end latency.
    pub latency: Latencies,
    /// Ack latency.
    pub acks: Latencies,
    /// Failed sends.
    pub send_errors: u64,
    /// From the first scheduled send to the last delivery.
    pub elapsed: Duration,
    /// Deliveries per second.
    pub timeline: Vec<u64>,
}

impl Outcome {
    /// Deliveries per second over the phase.
    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivery.received as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs a phase: `expected_each` deliveries are due to every receiver.
pub async fn run(
    receivers: Vec<Connection>,
    senders: Vec<Sender>,
    plan: Plan,
    expected_each: u64,
    epoch: Instant,
    quiet: bool,
) -> (Vec<Connection>, Vec<Sender>, Outcome) {
    let sending =
        Duration::from_secs_f64(plan.per_sender as f64 * senders.len() as f64 / plan.rate);
    // Start a little later so every task is waiting when the first message is due.
    let start = Instant::now() + Duration::from_millis(200);
    let deadline = tokio::time::Instant::from_std(start + sending + DRAIN);
    let shared = Arc::new(Shared {
        epoch,
        timeline: Timeline::new(start, (sending + DRAIN).as_secs() as usize + 2),
        delivered: Default::default(),
    });
    let total = expected_each * receivers.len() as u64;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} deliveries ({per_sec})",
        )
        .expect("valid template"),
    );
    let ticker = {
        let (bar, shared) = (bar.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            loop {
                bar.set_position(shared.delivered.load(Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let receiving: Vec<_> = receivers
        .into_iter()
        .map(|conn| {
            tokio::spawn(receive(
                conn,
                Arc::clone(&shared),
                plan.first_index,
                expected_each,
                deadline,
            ))
        })
        .collect();
    let sent = send_all(senders, plan, epoch, start).await;
    let mut results = Vec::with_capacity(receiving.len());
    for r in receiving {
        results.push(r.await.expect("receiver task"));
    }
    let elapsed = start.elapsed().min(sending + DRAIN);
    ticker.abort();
    bar.set_position(shared.delivered.load(Relaxed));
    bar.finish();
    let (delivery, latency) = combine(&results, expected_each);
    let conns = results.into_iter().map(|r| r.conn).collect();
    (
        conns,
        sent.senders,
        Outcome {
            delivery,
            latency,
            acks: sent.acks,
            send_errors: sent.errors,
            elapsed,
            timeline: shared.timeline.counts(),
        },
    )
}
