//! The receiving side shared by the fan-out scenarios: each receiver connection drains its
//! events, checks every bench message arrives once and in order, and records latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use banter_client::{Connection, Event};

use crate::measure::{Delivery, Latencies, Timeline, parse_payload};

/// State shared by every receiver of a run.
pub struct Shared {
    /// The bench's time origin (payload timestamps are relative to it).
    pub epoch: Instant,
    /// Deliveries per second.
    pub timeline: Timeline,
    /// Deliveries so far, for the progress bar.
    pub delivered: AtomicU64,
}

/// What one receiver saw.
pub struct Received {
    /// Correctness counts (without `expected`/`lost`, filled in by the caller).
    pub delivery: Delivery,
    /// Latencies.
    pub latencies: Latencies,
    /// The connection, for the next phase.
    pub conn: Connection,
}

/// Receives until `expected` distinct bench messages arrived or `deadline` passes. Messages are
/// identified by the payload index; `first_index` is the lowest index of this phase.
pub async fn receive(
    mut conn: Connection,
    shared: Arc<Shared>,
    first_index: u64,
    expected: u64,
    deadline: tokio::time::Instant,
) -> Received {
    let mut seen = vec![0u64; expected.div_ceil(64) as usize];
    let mut delivery = Delivery::default();
    let mut latencies = Latencies::default();
    let mut last_seq = 0u64;
    // Counted locally and published in batches: hundreds of receivers bumping shared atomics on
    // every message would cost the bench more than it measures.
    let mut per_second: Vec<u64> = Vec::new();
    let mut unreported = 0u64;
    while delivery.received < expected {
        // Events arrive in bursts (the server coalesces pushes): take what is there before
        // arming a timer to wait for more.
        let event = match conn.try_next_event() {
            Some(e) => e,
            None => match tokio::time::timeout_at(deadline, conn.next_event()).await {
                Ok(Some(e)) => e,
                Ok(None) | Err(_) => break,
            },
        };
        let (text, seq) = match &event {
            Event::Message(m) => (m.text.as_str(), m.seq),
            Event::RoomMessage { message, .. } => (message.text.as_str(), message.seq),
            Event::Closed { .. } => break,
            _ => continue,
        };
        let Some((intended_us, index)) = parse_payload(text) else {
            continue;
        };
        let now = Instant::now();
        let now_us = now.duration_since(shared.epoch).as_micros() as u64;
        if index < first_index || index >= first_index + expected {
            continue;
        }
        let slot = (index - first_index) as usize;
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if seen[word] & bit != 0 {
            delivery.duplicated += 1;
            continue;
        }
        seen[word] |= bit;
        if seq < last_seq {
            delivery.out_of_order += 1;
        }
        last_seq = last_seq.max(seq);
        delivery.received += 1;
        latencies.record(now_us.saturating_sub(intended_us));
        let second = shared.timeline.second_of(now);
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += 1;
        unreported += 1;
        if unreported == 256 {
            shared.delivered.fetch_add(unreported, Relaxed);
            unreported = 0;
        }
    }
    shared.delivered.fetch_add(unreported, Relaxed);
    shared.timeline.add(&per_second);
    Received {
        delivery,
        latencies,
        conn,
    }
}

/// Sums receivers' results; `expected_each` deliveries were due to each.
pub fn combine(results: &[Received], expected_each: u64) -> (Delivery, Latencies) {
    let mut total = Delivery::default();
    let mut lat = Latencies::default();
    for r in results {
        total.expected += expected_each;
        total.received += r.delivery.received;
        total.duplicated += r.delivery.duplicated;
        total.out_of_order += r.delivery.out_of_order;
        lat.merge(&r.latencies);
    }
    total.lost = total.expected - total.received;
    (total, lat)
}
