//! The sending side: senders on a fixed schedule, each message stamped with the time it was
//! *meant* to go out, so latency counts from the schedule, not from whenever a stalled sender got
//! round to it (no coordinated omission).

use std::time::{Duration, Instant};

use banter_client::protocol::{ClientRequest, RoomAck};
use banter_client::{Connection, Target};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::measure::{Latencies, payload};

/// Where a sender's messages go.
#[derive(Debug, Clone)]
pub enum Dest {
    /// A user or conversation.
    Conversation(Target),
    /// A chatroom.
    Room(String),
}

/// One sending connection.
pub struct Sender {
    /// Its connection.
    pub conn: Connection,
    /// Where it sends.
    pub dest: Dest,
}

impl Sender {
    /// A sender; the events pushed to its connection (a sender is often also a member that
    /// receives) are discarded, so they never hold up its acknowledgements.
    pub fn new(mut conn: Connection, dest: Dest) -> Self {
        drop(conn.take_events());
        Self { conn, dest }
    }
}

/// A sending phase.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Messages each sender sends.
    pub per_sender: u64,
    /// Bytes of padding in each text.
    pub pad: usize,
    /// Number messages across all senders (`k * senders + i`) instead of per sender (`k`).
    pub global_index: bool,
    /// Index of the first message of this phase.
    pub first_index: u64,
    /// Sends each sender may have awaiting their acknowledgement (1: wait for each ack before
    /// the next send; more: pipeline, as a client flushing a queue does).
    pub window: usize,
}

/// What the senders saw.
pub struct Sent {
    /// The senders, for the next phase.
    pub senders: Vec<Sender>,
    /// Intended-send-to-ack latencies.
    pub acks: Latencies,
    /// Sends refused or failed.
    pub errors: u64,
}

/// Runs every sender on the schedule, from `start`.
pub async fn send_all(senders: Vec<Sender>, plan: Plan, epoch: Instant, start: Instant) -> Sent {
    let count = senders.len() as u64;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, sender)| tokio::spawn(run_sender(sender, i as u64, count, plan, epoch, start)))
        .collect();
    let mut out = Sent {
        senders: Vec::new(),
        acks: Latencies::default(),
        errors: 0,
    };
    for task in tasks {
        let (sender, acks, errors) = task.await.expect("sender task");
        out.senders.push(sender);
        out.acks.merge(&acks);
        out.errors += errors;
    }
    out
}

async fn run_sender(
    sender: Sender,
    i: u64,
    count: u64,
    plan: Plan,
    epoch: Instant,
    start: Instant,
) -> (Sender, Latencies, u64) {
    let mut acks = Latencies::default();
    let mut errors = 0;
    let mut record = |(ok, latency): (bool, Duration)| {
        if ok {
            acks.record(latency.as_micros() as u64);
        } else {
            errors += 1;
        }
    };
    let mut in_flight = FuturesUnordered::new();
    for k in 0..plan.per_sender {
        let slot = k * count + i;
        let intended = start + Duration::from_secs_f64(slot as f64 / plan.rate);
        // Wait for the schedule (and for room in the window), taking acks meanwhile.
        loop {
            let due = tokio::time::sleep_until(intended.into());
            tokio::select! {
                biased;
                Some(done) = in_flight.next() => record(done),
                () = due, if in_flight.len() < plan.window => break,
            }
        }
        let index = plan.first_index + if plan.global_index { slot } else { k };
        let text = payload(epoch, intended, index, plan.pad);
        in_flight.push(send_one(&sender, format!("{i}-{index}"), text, intended));
    }
    while let Some(done) = in_flight.next().await {
        record(done);
    }
    drop(in_flight);
    (sender, acks, errors)
}

/// Sends one message; whether it was acknowledged, and the time from its intended send to then.
async fn send_one(
    sender: &Sender,
    key: String,
    text: String,
    intended: Instant,
) -> (bool, Duration) {
    let ok = match &sender.dest {
        Dest::Conversation(target) => sender.conn.send_text(target, &key, &text).await.is_ok(),
        Dest::Room(room) => sender
            .conn
            .typed::<RoomAck>(ClientRequest::RoomSend {
                room: room.clone(),
                client_msg_id: key,
                text,
            })
            .await
            .is_ok(),
    };
    (ok, intended.elapsed())
}
