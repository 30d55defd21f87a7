//! The receiving side of a node: applies the bus events addressed to it.
//!
//! Whatever bus carries them, events end here: deliveries go to this node's connections (a
//! conversation entry through the ordering [`Gate`] first), kicks close this node's
//! connections of a session, invalidations reach this node's caches.
//!
//! **The ordering gate** ([`Gate`]). Appends commit in seq order, but the tasks that publish
//! them wake in any order, and in a cluster two nodes publish entries of one conversation
//! independently, so entry 6 can arrive after 7. Clients would cope (they sync on a gap), but
//! every reordering costs them a round trip. So every entry a node receives passes through
//! here just before the registry: per conversation, an entry is delivered only once its
//! predecessor has been, and a later one that arrives first waits in a small buffer. Every committed entry is published by the
//! request that committed it, so a gap fills within microseconds; should one never fill (a
//! task died between commit and publish, or a node before it published), [`Gate::sweep`]
//! releases what waited longer than [`GAP_TIMEOUT`], and clients sync the missing entry (a
//! room, which has no sync, waits [`ROOM_GAP_TIMEOUT`]).
//!
//! A conversation's order starts at the first entry the node sees of it (there is nothing to
//! wait for before that) and is forgotten after a minute without entries.
//!
//! **Chatrooms** in a cluster are ordered by the same gate, under a key of their own
//! ([`Key::Room`], the room's name, so no room shares an order with a conversation or another
//! room): a room's sends get their `seq` from one cluster-wide counter. A room's order can be
//! started at a known `seq` ([`Node::expect_room`]: the rooms service does so when a room
//! starts on this node, and keeps it from being forgotten while the room lives). Room messages
//! that passed the gate, and other nodes' room counts, are handed to the rooms service
//! ([`RoomEvents`]), which keeps each room's recent window and cluster-wide count from them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::{OnceLock, Weak};

use bytes::Bytes;

use super::{Audience, Delivery, Event, Invalidation, RoomCounts};
use crate::registry::{NodeId, Registry};
use crate::store::ConvId;

/// Caches that events invalidate (`services::directory` is the one).
pub trait Caches: Send + Sync + 'static {
    /// Drops what `what` made stale.
    fn invalidate(&self, what: &Invalidation);
    /// Drops everything: invalidations may have been missed (the bus was cut off).
    fn invalidate_all(&self);
}

/// What the rooms service learns from the bus (`services::rooms`). Called with the gate's
/// lock of the room held: an implementation never publishes from here.
pub trait RoomEvents: Send + Sync + 'static {
    /// A message of `room` with `seq` (its encoded `room_message` frame) passed the gate.
    fn message(&self, room: &str, seq: u64, frame: &Bytes);
    /// Another node said how many occupants some rooms have there.
    fn counts(&self, counts: &RoomCounts);
}

/// What an ordering is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A conversation's entries.
    Conv(ConvId),
    /// A chatroom's messages.
    Room(Arc<str>),
}

impl Key {
    fn of(delivery: &Delivery, conv: ConvId) -> Self {
        match &delivery.audience {
            Audience::Room(room) => Self::Room(Arc::clone(room)),
            _ => Self::Conv(conv),
        }
    }

    fn shard(&self) -> usize {
        match self {
            Self::Conv(conv) => *conv as u64 as usize,
            Self::Room(room) => room
                .bytes()
                .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into())),
        }
    }
}

/// One node's connections, ordering gate and caches.
pub struct Node {
    id: NodeId,
    registry: Registry,
    gate: Gate,
    caches: Arc<dyn Caches>,
    /// Weak: the rooms service holds this node.
    rooms: OnceLock<Weak<dyn RoomEvents>>,
}

impl Node {
    /// The receiving side of node `id`.
    pub fn new(id: NodeId, registry: Registry, caches: Arc<dyn Caches>) -> Self {
        Self {
            id,
            registry,
            gate: Gate::default(),
            caches,
            rooms: OnceLock::new(),
        }
    }

    /// Hands room messages and other nodes' room counts to `rooms` from now on (once).
    pub fn set_rooms(&self, rooms: &Arc<dyn RoomEvents>) {
        _ = self.rooms.set(Arc::downgrade(rooms));
    }

    fn rooms(&self) -> Option<Arc<dyn RoomEvents>> {
        self.rooms.get().and_then(Weak::upgrade)
    }

    /// Starts `room`'s order at `next` unless it has one, and keeps it from being forgotten.
    pub fn expect_room(&self, room: &Arc<str>, next: u64) {
        self.gate.expect(Key::Room(Arc::clone(room)), next);
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
                Some((conv, seq)) => {
                    let key = Key::of(&delivery, conv);
                    self.gate.pass(key, seq, delivery, |d| self.deliver(d));
                }
                None => self.deliver(&delivery),
            },
            Event::Kick {
                user,
                session,
                code,
            } => self.registry.kick_session(user, session, code),
            Event::Invalidate(what) => self.caches.invalidate(&what),
            Event::RoomCounts(counts) => {
                if counts.node != self.id
                    && let Some(rooms) = self.rooms()
                {
                    rooms.counts(&counts);
                }
            }
        }
    }

    /// Drops every cached answer (a bus calls this when it may have missed invalidations).
    pub fn forget_caches(&self) {
        self.caches.invalidate_all();
    }

    /// Releases entries that waited too long for a predecessor (see [`Gate::sweep`]).
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    /// [`Node::sweep`] as if it were `now`.
    pub(crate) fn sweep_at(&self, now: Instant) {
        self.gate.sweep(now, |d| self.deliver(d));
    }

    fn deliver(&self, d: &Delivery) {
        let except = d.except.filter(|c| c.node == self.id);
        match &d.audience {
            Audience::Users(users) => {
                self.registry.deliver(users, &d.frame, except);
            }
            Audience::Room(room) => {
                self.registry.deliver_to_room(room, &d.frame, except);
                if let (Some((_, seq)), Some(rooms)) = (d.entry, self.rooms()) {
                    rooms.message(room, seq, &d.frame);
                }
            }
            Audience::Session { user, session } => {
                self.registry
                    .deliver_to_session(*user, *session, &d.frame, except);
            }
        }
    }
}

/// How long a conversation's entry waits for its predecessor before it is published anyway
/// (its receivers `sync` what the gap left out).
pub const GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a room's message waits for its predecessor. Longer than a conversation's: a room
/// has no `sync`, so a release puts the late one after its successors for every occupant of
/// this node, and on a node pressed for CPU a send can take over a second from its `seq` to
/// its publication.
pub const ROOM_GAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries that may wait behind one conversation's gap; one more releases them all (the gap is
/// left to `sync`). Well under a connection's outbound queue (`outbound_queue_frames`, 1,024 by
/// default), so that releasing them does not make every reader of a busy conversation a slow
/// consumer, and a bound on what a gap holds.
pub const MAX_WAITING: usize = 256;
/// Conversations idle this long are forgotten (their next entry starts a fresh order).
pub(crate) const IDLE: Duration = Duration::from_secs(60);
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

impl Order {
    /// Passes on every entry waiting, in order, giving up on the gaps before them.
    fn release(&mut self, mut out: impl FnMut(&Delivery)) {
        for (seq, w) in std::mem::take(&mut self.waiting) {
            out(&w.delivery);
            self.next = self.next.max(seq + 1);
        }
    }
}

/// The ordering gate of one node.
pub struct Gate {
    shards: Box<[Mutex<HashMap<Key, Order>>]>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Gate {
    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, Order>> {
        &self.shards[key.shard() & (SHARDS - 1)]
    }

    /// Starts `key`'s order at `next` unless it has one; either way it is touched.
    pub fn expect(&self, key: Key, next: u64) {
        let now = Instant::now();
        let mut shard = self.shard(&key).lock().expect("gate shard lock");
        shard
            .entry(key)
            .or_insert(Order {
                next,
                waiting: BTreeMap::new(),
                touched: now,
            })
            .touched = now;
    }

    /// Passes entry `seq` of `key` to `out` after its predecessors (at once if it is the
    /// next one, with every successor that waited for it). `out` runs under the
    /// conversation's lock, so what it is given for one conversation is in order.
    pub fn pass(&self, key: Key, seq: u64, delivery: Delivery, mut out: impl FnMut(&Delivery)) {
        let now = Instant::now();
        let mut shard = self.shard(&key).lock().expect("gate shard lock");
        let order = shard.entry(key).or_insert(Order {
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
            if order.waiting.len() > MAX_WAITING {
                order.release(out);
            }
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

    /// Releases to `out` the entries that waited longer than [`GAP_TIMEOUT`] at `now` (a
    /// room's, [`ROOM_GAP_TIMEOUT`]), and forgets idle conversations.
    pub fn sweep(&self, now: Instant, mut out: impl FnMut(&Delivery)) {
        for shard in &self.shards {
            let mut shard = shard.lock().expect("gate shard lock");
            for (key, order) in shard.iter_mut() {
                let timeout = match key {
                    Key::Conv(_) => GAP_TIMEOUT,
                    Key::Room(_) => ROOM_GAP_TIMEOUT,
                };
                let stale = order
                    .waiting
                    .values()
                    .next()
                    .is_some_and(|w| now - w.since > timeout);
                if stale {
                    order.release(&mut out);
                }
            }
            shard.retain(|_, o| !o.waiting.is_empty() || now - o.touched < IDLE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Delivery {
        Delivery {
            audience: Audience::Users(Arc::from([])),
            entry: Some((1, seq)),
            frame: Bytes::new(),
            except: None,
        }
    }

    fn seq(d: &Delivery) -> u64 {
        d.entry.expect("an entry").1
    }

    #[test]
    fn a_rooms_gap_waits_longer_than_a_conversations() {
        let gate = Gate::default();
        let room = Key::Room(Arc::from("lobby"));
        let mut out = Vec::new();
        for key in [Key::Conv(1), room.clone()] {
            gate.pass(key.clone(), 1, entry(1), |d| out.push(seq(d)));
            gate.pass(key, 3, entry(3), |d| out.push(seq(d)));
        }
        assert_eq!(out, [1, 1], "3 waits for 2 in both");
        let start = Instant::now();
        let after = |t: Duration| start + t + Duration::from_millis(10);
        gate.sweep(after(GAP_TIMEOUT), |d| out.push(seq(d)));
        assert_eq!(out, [1, 1, 3], "the conversation's gap is given up on");
        gate.sweep(after(ROOM_GAP_TIMEOUT - Duration::from_millis(20)), |d| {
            out.push(seq(d))
        });
        assert_eq!(out, [1, 1, 3], "the room's still waits");
        gate.sweep(after(ROOM_GAP_TIMEOUT), |d| out.push(seq(d)));
        assert_eq!(out, [1, 1, 3, 3]);
    }

    #[test]
    fn a_gap_holds_at_most_max_waiting_entries() {
        let gate = Gate::default();
        let mut out = Vec::new();
        gate.pass(Key::Conv(1), 1, entry(1), |d| out.push(seq(d)));
        // 2 is lost: what follows waits, up to the bound.
        let last = 2 + MAX_WAITING as u64;
        for s in 3..=last {
            gate.pass(Key::Conv(1), s, entry(s), |d| out.push(seq(d)));
        }
        assert_eq!(out, vec![1], "{MAX_WAITING} wait behind the gap");
        gate.pass(Key::Conv(1), last + 1, entry(last + 1), |d| {
            out.push(seq(d))
        });
        assert_eq!(out, [1].into_iter().chain(3..=last + 1).collect::<Vec<_>>());
        // The order goes on from there; the lost one, should it come, still gets out.
        gate.pass(Key::Conv(1), last + 2, entry(last + 2), |d| {
            out.push(seq(d))
        });
        gate.pass(Key::Conv(1), 2, entry(2), |d| out.push(seq(d)));
        assert_eq!(out[out.len() - 2..], [last + 2, 2]);
    }
}
