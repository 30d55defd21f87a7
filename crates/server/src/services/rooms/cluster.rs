//! Rooms across the nodes of a cluster: what a node announces of its own occupants, and what
//! it learns from the bus (other nodes' counts, and every room message that passed its gate).
//!
//! **Announcements.** A node's occupant counts per room go out as [`Event::RoomCounts`]: the
//! rooms whose count changed, once per occupancy interval (coalesced, with a few names of who
//! joined and left), and all of its rooms every [`REFRESH`] (so that a node that started late
//! learns them, and a lost announcement is repaired). A room's first occupant on a node is
//! announced at once, before that node can send anything to the room, so that every node
//! knows the room (and keeps its window) from its first message on. What a node announces is
//! bounded by its `max_rooms`, and one event carries at most [`CHUNK`] rooms.
//!
//! **Counts.** A node keeps the latest count of every other node per room and shows their sum
//! plus its own occupants. A node's counts are dropped when the bus judges it dead, and a
//! count not refreshed for [`STALE`] is dropped too. Rooms known only from other nodes are
//! bounded by `max_rooms` times [`NODES_MAX`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::ServerFrame;
use bytes::Bytes;

use super::{OCCUPANCY_NAMES_MAX, Room, Rooms, note};
use crate::bus::node::RoomEvents;
use crate::bus::{self, Event, NodeId, RoomCount, RoomCounts};
use crate::store::UserId;

/// How often a node announces all of its rooms' counts.
pub const REFRESH: Duration = Duration::from_secs(5);
/// A count not refreshed for this long is dropped.
pub const STALE: Duration = Duration::from_secs(16);
/// Rooms in one announcement.
pub const CHUNK: usize = 500;
/// Nodes whose rooms one node keeps copies of, at most (in `max_rooms` units).
pub const NODES_MAX: usize = 16;

/// Count changes of this node, waiting for the next announcement.
pub(super) struct Announcements {
    max: usize,
    pending: Mutex<HashMap<Arc<str>, RoomCount>>,
    refreshed: Mutex<Instant>,
}

impl Announcements {
    pub(super) fn new(max_rooms: usize) -> Self {
        Self {
            max: max_rooms,
            pending: Mutex::default(),
            refreshed: Mutex::new(Instant::now()),
        }
    }

    /// Notes that `room` has `count` occupants here now (`joined` or `left` one). Beyond
    /// `max_rooms` rooms a change waits for the next refresh.
    pub(super) fn changed(
        &self,
        room: &Arc<str>,
        count: usize,
        joined: Option<UserId>,
        left: Option<UserId>,
    ) {
        let mut pending = self.pending.lock().expect("announcements lock");
        if pending.len() >= self.max && !pending.contains_key(room) {
            return;
        }
        let entry = pending
            .entry(Arc::clone(room))
            .or_insert_with(|| RoomCount {
                room: Arc::clone(room),
                count: 0,
                joined: Vec::new(),
                left: Vec::new(),
            });
        entry.count = u32::try_from(count).unwrap_or(u32::MAX);
        if let Some(u) = joined {
            note(&mut entry.joined, u);
        }
        if let Some(u) = left {
            note(&mut entry.left, u);
        }
    }

    fn take(&self) -> HashMap<Arc<str>, RoomCount> {
        std::mem::take(&mut *self.pending.lock().expect("announcements lock"))
    }

    /// Whether a refresh is due (and, if so, it counts as done).
    fn refresh_due(&self) -> bool {
        let mut refreshed = self.refreshed.lock().expect("announcements lock");
        if refreshed.elapsed() < REFRESH {
            return false;
        }
        *refreshed = Instant::now();
        true
    }
}

impl Rooms {
    /// Announces `room` with `count` occupants here, `user` having joined, at once.
    pub(super) fn announce_now(&self, room: &Arc<str>, count: u32, user: UserId) {
        self.publish_counts(vec![RoomCount {
            room: Arc::clone(room),
            count,
            joined: vec![user],
            left: Vec::new(),
        }]);
    }

    fn publish_counts(&self, mut rooms: Vec<RoomCount>) {
        while !rooms.is_empty() {
            let rest = rooms.split_off(rooms.len().min(CHUNK));
            bus::publish(
                &*self.bus,
                Event::RoomCounts(RoomCounts {
                    node: self.node.id(),
                    rooms: rooms.into(),
                }),
            );
            rooms = rest;
        }
    }

    fn all(&self) -> Vec<Arc<Room>> {
        self.rooms
            .lock()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect()
    }

    /// Announces this node's changed counts (all of them when a refresh is due); on a refresh,
    /// also drops stale counts of other nodes and keeps every live room's order in the gate.
    pub(super) fn announce(&self) {
        self.announce_changes(self.announcements.refresh_due());
    }

    /// [`Rooms::announce`], refreshing if `refresh`.
    pub(super) fn announce_changes(&self, refresh: bool) {
        let mut pending = self.announcements.take();
        if refresh {
            let now = Instant::now();
            for room in self.all() {
                let (count, seq, emptied) = {
                    let mut state = room.state.lock().expect("room lock");
                    let before = state.remote.len();
                    state
                        .remote
                        .retain(|_, (_, at)| now.duration_since(*at) < STALE);
                    if state.remote.len() != before {
                        self.schedule_occupancy(&room, &mut state);
                    }
                    (state.occupants.len(), state.seq, state.count() == 0)
                };
                if emptied {
                    self.free_if_empty(&room);
                    continue;
                }
                // A room hosted here keeps its order even before its first message (its
                // join read where the order starts), or the gate would forget it after a
                // quiet minute and start it again at whichever message came first.
                if seq > 0 || count > 0 {
                    self.node.expect_room(&room.name, seq + 1);
                }
                if count > 0 {
                    pending
                        .entry(Arc::clone(&room.name))
                        .or_insert_with(|| RoomCount {
                            room: Arc::clone(&room.name),
                            count: u32::try_from(count).unwrap_or(u32::MAX),
                            joined: Vec::new(),
                            left: Vec::new(),
                        });
                }
            }
        }
        self.publish_counts(pending.into_values().collect());
    }

    /// Drops the counts of `node` (judged dead by the bus).
    pub fn node_gone(&self, node: NodeId) {
        for room in self.all() {
            let emptied = {
                let mut state = room.state.lock().expect("room lock");
                if state.remote.remove(&node).is_none() {
                    continue;
                }
                self.schedule_occupancy(&room, &mut state);
                state.count() == 0
            };
            if emptied {
                self.free_if_empty(&room);
            }
        }
    }

    /// Takes in `count` from `node`.
    fn remote_count(&self, node: NodeId, count: &RoomCount) {
        let now = Instant::now();
        loop {
            let room = match self.existing(&count.room) {
                Some(room) => room,
                None if count.count == 0 => return,
                None => {
                    let known = self.rooms.lock().expect("rooms lock").len();
                    if known >= self.limits.max_rooms.saturating_mul(NODES_MAX) {
                        return;
                    }
                    match self.room(&count.room, false) {
                        Ok(room) => room,
                        Err(_) => return,
                    }
                }
            };
            let emptied = {
                let mut state = room.state.lock().expect("room lock");
                if state.freed {
                    continue;
                }
                let before = state.remote.get(&node).map(|&(n, _)| n);
                if count.count == 0 {
                    state.remote.remove(&node);
                } else {
                    state.remote.insert(node, (count.count, now));
                }
                let names = count.joined.len() + count.left.len();
                if before != Some(count.count) || names > 0 {
                    for &u in count.joined.iter().take(OCCUPANCY_NAMES_MAX) {
                        note(&mut state.joined, u);
                    }
                    for &u in count.left.iter().take(OCCUPANCY_NAMES_MAX) {
                        note(&mut state.left, u);
                    }
                    self.schedule_occupancy(&room, &mut state);
                }
                state.count() == 0
            };
            if emptied {
                self.free_if_empty(&room);
            }
            return;
        }
    }
}

impl RoomEvents for Rooms {
    fn message(&self, room: &str, _seq: u64, frame: &Bytes) {
        let Some(room) = self.existing(room) else {
            return;
        };
        let Ok(ServerFrame::RoomMessage { message, .. }) = serde_json::from_slice(frame) else {
            tracing::warn!(room = %room.name, "unreadable room message from the bus");
            return;
        };
        let mut state = room.state.lock().expect("room lock");
        if !state.freed {
            state.remember(message, &self.limits);
        }
    }

    fn counts(&self, counts: &RoomCounts) {
        for count in counts.rooms.iter().take(CHUNK) {
            self.remote_count(counts.node, count);
        }
    }
}
