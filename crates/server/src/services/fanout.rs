//! Publishes conversation entries in `seq` order.
//!
//! Appends commit in seq order, but the tasks that asked for them wake in any order, so two
//! entries of one conversation could be pushed 6-before-5. Clients would cope (they sync on a
//! gap), but every reordering costs them a round trip. So every entry is published through here:
//! per conversation, an entry is delivered only once its predecessor has been, and a later one
//! that arrives first waits in a small buffer. Every committed entry is published by the request
//! that committed it, so a gap fills within microseconds; should one never fill (a task died
//! between commit and publish), [`Fanout::sweep`] releases what waited longer than
//! [`GAP_TIMEOUT`], and clients sync the missing entry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bus::Bus;
use crate::registry::ConnId;
use crate::store::{ConvId, UserId};

/// How long an entry waits for its predecessor before it is published anyway.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// Conversations idle this long are forgotten (their next entry starts a fresh order).
const IDLE: Duration = Duration::from_secs(60);
/// Shards of the ordering state (a power of two).
const SHARDS: usize = 16;

struct Waiting {
    frame: Bytes,
    users: Arc<[UserId]>,
    except: Option<ConnId>,
    since: Instant,
}

struct Order {
    /// The seq to publish next.
    next: u64,
    waiting: BTreeMap<u64, Waiting>,
    touched: Instant,
}

/// The ordered publisher.
pub struct Fanout {
    bus: Arc<dyn Bus>,
    shards: Box<[Mutex<HashMap<ConvId, Order>>]>,
}

impl Fanout {
    /// A publisher over `bus`.
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self {
            bus,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, conv: ConvId) -> &Mutex<HashMap<ConvId, Order>> {
        &self.shards[(conv as u64 as usize) & (SHARDS - 1)]
    }

    /// Publishes entry `seq` of `conv` to `users` (but `except`), after its predecessors.
    pub fn publish(
        &self,
        conv: ConvId,
        seq: u64,
        frame: Bytes,
        users: Arc<[UserId]>,
        except: Option<ConnId>,
    ) {
        let now = Instant::now();
        let mut shard = self.shard(conv).lock().expect("fanout shard lock");
        let order = shard.entry(conv).or_insert(Order {
            next: seq,
            waiting: BTreeMap::new(),
            touched: now,
        });
        order.touched = now;
        if seq > order.next {
            order.waiting.insert(
                seq,
                Waiting {
                    frame,
                    users,
                    except,
                    since: now,
                },
            );
            return;
        }
        // The next one (or a straggler released late by a sweep): publish, then its successors.
        self.bus.publish(&users, &frame, except);
        order.next = order.next.max(seq + 1);
        while let Some(w) = order.waiting.remove(&order.next) {
            self.bus.publish(&w.users, &w.frame, w.except);
            order.next += 1;
        }
    }

    /// Releases entries that waited longer than [`GAP_TIMEOUT`] and forgets idle conversations.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut shard = shard.lock().expect("fanout shard lock");
            for order in shard.values_mut() {
                let stale = order
                    .waiting
                    .values()
                    .next()
                    .is_some_and(|w| now - w.since > GAP_TIMEOUT);
                if stale {
                    for (seq, w) in std::mem::take(&mut order.waiting) {
                        self.bus.publish(&w.users, &w.frame, w.except);
                        order.next = order.next.max(seq + 1);
                    }
                }
            }
            shard.retain(|_, o| !o.waiting.is_empty() || now - o.touched < IDLE);
        }
    }
}
