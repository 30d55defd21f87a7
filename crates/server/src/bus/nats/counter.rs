//! Chatroom `seq` counters for the whole cluster, on a JetStream key-value bucket
//! (`<cluster>-rooms`, one key per room holding its last `seq`).
//!
//! A send takes the next `seq` by compare-and-set on the key's revision: `create` with 1 for a
//! room that has none, `update` from the revision last seen otherwise. Of two nodes taking a
//! `seq` at the same moment one wins, the other re-reads and retries, so every `seq` is given
//! out once and a room's seqs have no gaps (but for a send whose node failed between taking
//! its `seq` and publishing the message: receivers release the gap after
//! [`ROOM_GAP_TIMEOUT`](crate::bus::node::ROOM_GAP_TIMEOUT)). Each node remembers the
//! revision and value it last saw per room, so a send costs one round trip to NATS when no
//! other node sent to the room since.
//!
//! Counters outlive their rooms (a room that empties keeps counting where it was); the bucket
//! forgets a counter after [`IDLE`] without a send, and keeps at most [`ROOMS_MAX`] of them,
//! the least recently used going first, so what hostile clients make NATS hold is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream;
use async_nats::jetstream::{self};
use bytes::Bytes;

use super::bucket::Refused;
use crate::bus::BusError;

/// A counter without sends for this long is forgotten (the room's `seq` then starts from 1).
pub const IDLE: Duration = Duration::from_secs(24 * 3600);
/// Most counters the bucket keeps.
pub const ROOMS_MAX: i64 = 1_000_000;
/// Revisions a node remembers before it forgets them all (it re-reads then).
const REMEMBERED: usize = 65_536;
/// Compare-and-set attempts before a send gives up.
const ATTEMPTS: usize = 256;

/// The rooms bucket of cluster `prefix`.
pub fn bucket(prefix: &str) -> String {
    format!("{prefix}-rooms")
}

/// Opens (creating it if needed) the rooms bucket of cluster `prefix`.
pub async fn open(js: &jetstream::Context, prefix: &str) -> Result<kv::Store, async_nats::Error> {
    let limits = stream::Config {
        max_messages: ROOMS_MAX,
        max_age: IDLE,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    super::bucket::open(
        js,
        &bucket(prefix),
        "banter: the last seq of every chatroom",
        limits,
    )
    .await
}

/// This node's side of the room counters.
pub struct Counters {
    kv: kv::Store,
    /// Per room, the revision and value this node last saw.
    seen: Mutex<HashMap<String, (u64, u64)>>,
}

impl Counters {
    /// Counters on bucket `kv`.
    pub fn new(kv: kv::Store) -> Self {
        Self {
            kv,
            seen: Mutex::default(),
        }
    }

    fn remember(&self, room: &str, revision: u64, value: u64) {
        let mut seen = self.seen.lock().expect("counters lock");
        if seen.len() >= REMEMBERED && !seen.contains_key(room) {
            seen.clear();
        }
        seen.insert(room.to_owned(), (revision, value));
    }

    /// Reads `room`'s counter: its revision (none if it has no counter) and last `seq`.
    pub async fn read(&self, room: &str) -> Result<(Option<u64>, u64), BusError> {
        let entry = self.kv.entry(room).await.map_err(|e| {
            tracing::warn!(error = %e, "room counter read failed");
            BusError::Unavailable
        })?;
        Ok(match entry {
            Some(e) if e.operation == Operation::Put => {
                let value = decode(&e.value).unwrap_or_else(|| {
                    tracing::warn!(room, "unreadable room counter; counted from 0");
                    0
                });
                self.remember(room, e.revision, value);
                (Some(e.revision), value)
            }
            Some(e) => (Some(e.revision), 0),
            None => (None, 0),
        })
    }

    /// Takes the next `seq` of `room`.
    pub async fn next(&self, room: &str) -> Result<u64, BusError> {
        let mut guess = self
            .seen
            .lock()
            .expect("counters lock")
            .get(room)
            .map(|&(r, v)| (Some(r), v));
        for _ in 0..ATTEMPTS {
            let (revision, value) = match guess {
                Some(g) => g,
                None => self.read(room).await?,
            };
            let next = value + 1;
            let bytes = Bytes::copy_from_slice(&next.to_le_bytes());
            let written = super::bucket::write(&self.kv, room, bytes, revision).await;
            match written {
                Ok(revision) => {
                    self.remember(room, revision, next);
                    return Ok(next);
                }
                // Another node sent first: read again.
                Err(Refused::Conflict) => guess = None,
                Err(Refused::Failed(e)) => {
                    tracing::warn!(error = %e, "room counter write failed");
                    return Err(BusError::Unavailable);
                }
            }
        }
        tracing::warn!(room, "room counter stayed contended");
        Err(BusError::Unavailable)
    }
}

fn decode(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.try_into().ok()?))
}
