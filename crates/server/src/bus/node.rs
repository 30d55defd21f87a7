//! The receiving side of a node: applies the bus events addressed to it.
//!
//! Whatever bus carries them, events end here: deliveries go to this node's connections (a
//! conversation entry through the ordering [`Gate`] first), kicks close this node's
//! connections of a session, invalidations reach this node's caches.
//!
//! **The ordering gate** ([`Gate`]). Appends commit in seq order, but the tasks that publish
//! them wake in any order, and in a cluster two nodes publish entries of one conversation
//! independently, so entry 6 can arrive after 7. Clients would cope (they sync on a gap), but
//! every reordering costs them a round trip. So every entry a node receives passes through here just before the registry: per
//! conversation, an entry is delivered only once its predecessor has been, and a later one
//! that arrives first waits in a small buffer. Every committed entry is published by the
//! request that committed it, so a gap fills within microseconds; should one never fill (a
//! task died between commit and publish, or a node before it published), [`Gate::sweep`]
//! releases what waited longer than [`GAP_TIMEOUT`], and clients sync the missing entry.
//!
//! A conversation's order starts at the first entry the node sees of it (there is nothing to
//! wait for before that) and is forgotten after a minute without entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Audience, Delivery, Event, Invalidation};
use crate::registry::{NodeId, Registry};
use crate::store::ConvId;

/// Caches that events invalidate (`services::directory` is the one).
pub trait Caches: Send + Sync + 'static {
    /// Drops what `what` made stale.
    fn invalidate(&self, what: &Invalidation);
    /// Drops everything: invalidations may have been missed (the bus was cut off).
    fn invalidate_all(&self);
}

/// One node's connections, ordering gate and caches.
pub struct Node {
    id: NodeId,
    registry: Registry,
    gate: Gate,
    caches: Arc<dyn Caches>,
}

impl Node {
    /// The receiving side of node `id`.
    pub fn new(id: NodeId, registry: Registry, caches: Arc<dyn Caches>) -> Self {
        Self {
            id,
            registry,
            gate: Gate::default(),
            caches,
        }
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's connections.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Applies an event that arrived for this node.
    pub fn receive(&self, event: Event) {
        match event {
            Event::Deliver(delivery) => match delivery.entry {
                Some((conv, seq)) => self.gate.pass(conv, seq, delivery, |d| self.deliver(d)),
                None => self.deliver(&delivery),
            },
            Event::Kick {
                user,
                session,
                code,
            } => self.registry.kick_session(user, session, code),
            Event::Invalidate(what) => self.caches.invalidate(&what),
        }
    }

    /// Drops every cached answer (a bus calls this when it may have missed invalidations).
    pub fn forget_caches(&self) {
        self.caches.invalidate_all();
    }

    /// Releases entries that waited too long for a predecessor (see [`Gate::sweep`]).
    pub fn sweep(&self) {
        self.gate.sweep(|d| self.deliver(d));
    }

    fn deliver(&self, d: &Delivery) {
        let except = d.except.filter(|c| c.node == self.id);
        match &d.audience {
            Audience::Users(users) => self.registry.deliver(users, &d.frame, except),
            Audience::Room(room) => self.registry.deliver_to_room(room, &d.frame, except),
            Audience::Session { user, session } => self
                .registry
                .deliver_to_session(*user, *session, &d.frame, except),
        };
    }
}

/// How long an entry waits for its predecessor before it is published anyway.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// Conversations idle this long are forgotten (their next entry starts a fresh order).
const IDLE: Duration = Duration::from_secs(60);
/// Shards of the ordering state (a power of two).
const SHARDS: usize = 16;

struct Waiting {
    delivery: Delivery,
    since: Instant,
}

struct Order {
    /// The seq to publish next.
    next: u64,
    waiting: BTreeMap<u64, Waiting>,
    touched: Instant,
}

/// The ordering gate of one node.
pub struct Gate {
    shards: Box<[Mutex<HashMap<ConvId, Order>>]>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Gate {
    fn shard(&self, conv: ConvId) -> &Mutex<HashMap<ConvId, Order>> {
        &self.shards[(conv as u64 as usize) & (SHARDS - 1)]
    }

    /// Passes entry `seq` of `conv` to `out` after its predecessors (at once if it is the
    /// next one, with every successor that waited for it). `out` runs under the
    /// conversation's lock, so what it is given for one conversation is in order.
    pub fn pass(&self, conv: ConvId, seq: u64, delivery: Delivery, mut out: impl FnMut(&Delivery)) {
        let now = Instant::now();
        let mut shard = self.shard(conv).lock().expect("gate shard lock");
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
                    delivery,
                    since: now,
                },
            );
            return;
        }
        // The next one (or a straggler released late by a sweep): out, then its successors.
        out(&delivery);
        order.next = order.next.max(seq + 1);
        while let Some(w) = order.waiting.remove(&order.next) {
            out(&w.delivery);
            order.next += 1;
        }
    }

    /// Releases to `out` the entries that waited longer than [`GAP_TIMEOUT`], and forgets
    /// idle conversations.
    pub fn sweep(&self, mut out: impl FnMut(&Delivery)) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut shard = shard.lock().expect("gate shard lock");
            for order in shard.values_mut() {
                let stale = order
                    .waiting
                    .values()
                    .next()
                    .is_some_and(|w| now - w.since > GAP_TIMEOUT);
                if stale {
                    for (seq, w) in std::mem::take(&mut order.waiting) {
                        out(&w.delivery);
                        order.next = order.next.max(seq + 1);
                    }
                }
            }
            shard.retain(|_, o| !o.waiting.is_empty() || now - o.touched < IDLE);
        }
    }
}
