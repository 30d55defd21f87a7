//! Chatrooms: public rooms entered by name, without membership records.
//!
//! A room lives in memory: its occupants (connections), a `seq`, and the last `room_history`
//! messages (at most `room_history_bytes` of them, encoded). It is deliberately not a group:
//! nothing is stored on disk, and a reconnecting client gets the recent window, not a complete
//! catch-up (PROTOCOL.md says so). Memory follows the rooms in use: a node hosts at most
//! `max_rooms` rooms with occupants of its own.
//!
//! **On one node** ([`LocalBus`](crate::bus::LocalBus)) a room exists while it has an
//! occupant: when the last one leaves (or its connection closes) the room is freed at once,
//! history and `seq` with it, and the next join starts it afresh. Messages are published on the
//! bus to the room's audience under the room's lock, so every occupant receives a room's
//! messages in `seq` order, each once.
//!
//! **In a cluster** (see [`cluster`]) every node keeps its own copy of the rooms that have
//! occupants anywhere, and the copies agree:
//! - the `seq` of a send comes from one counter per room that the bus keeps for the whole
//!   cluster ([`Bus::next_room_seq`]); the message is published with that `seq` as its entry,
//!   and every node's ordering gate (keyed by the room's name) passes a room's messages in
//!   `seq` order, whichever node they were sent on;
//! - the recent window is filled from what passes the gate ([`RoomEvents::message`]), this
//!   node's own sends included, so every node holds the same window;
//! - each node announces its own occupant counts (and who joined and left) on the bus, once
//!   per occupancy interval for the rooms that changed and all of them every
//!   [`cluster::REFRESH`]; every node sums the latest count of every live node. A node judged
//!   dead has its counts dropped; so has a count not refreshed for a few refresh periods.
//!
//! A room's copy on a node is freed when nobody occupies it anywhere, as far as the node
//! knows; the cluster's counter is not, so `seq` goes on where it was.
//!
//! Occupancy changes are coalesced: the server's background task calls
//! [`Rooms::flush_occupancy`] once per interval, which sends at most one `room_occupancy`
//! frame per changed room, so ten thousand joins do not cost ten thousand broadcasts to ten
//! thousand occupants.

pub mod cluster;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::{ErrorCode, RoomAck, RoomJoined, RoomMessage, ServerFrame};
use bytes::Bytes;

use self::cluster::Announcements;
use super::fields::{check_client_msg_id, check_text};
use super::messaging::encode;
use super::page::encoded_len;
use crate::bus::node::{Node, RoomEvents};
use crate::bus::{self, Audience, Bus, Delivery, Event, NodeId};
use crate::bus::{ConnHandle, ConnId};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::UserId;

/// Users named in one occupancy frame; beyond this only the count changes.
const OCCUPANCY_NAMES_MAX: usize = 50;
/// Rooms one connection may occupy at once.
pub const ROOMS_PER_CONNECTION: usize = 32;

/// Room settings.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Messages of recent history kept per room.
    pub history: usize,
    /// How often occupancy changes are broadcast, at most.
    pub occupancy_interval: Duration,
    /// Largest text in bytes.
    pub max_text_bytes: usize,
    /// Most rooms at once with occupants on this node (empty rooms are freed).
    pub max_rooms: usize,
    /// Most encoded bytes of recent history kept per room.
    pub history_bytes: usize,
}

#[derive(Default)]
struct RoomState {
    /// The last `seq`: given out here (one node); in a cluster, passed by the gate, or the
    /// cluster's last when the room started on this node.
    seq: u64,
    /// The recent window, each message with its encoded size, in `seq` order.
    recent: VecDeque<(RoomMessage, usize)>,
    /// Sum of the sizes in `recent`.
    recent_bytes: usize,
    /// Who is in on this node, by connection.
    occupants: HashMap<ConnId, UserId>,
    /// Occupants on other nodes, as they last said, and when.
    remote: HashMap<NodeId, (u32, Instant)>,
    /// Who joined and left (here or elsewhere) since the last occupancy frame; a few only.
    joined: Vec<UserId>,
    left: Vec<UserId>,
    flush_pending: bool,
    /// The room was freed (it emptied and left the map); a join that still holds it must look
    /// the name up again.
    freed: bool,
}

/// One room.
struct Room {
    name: Arc<str>,
    state: Mutex<RoomState>,
}

/// Every room on this node.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Rooms whose occupancy changed since the last flush.
    changed: Mutex<Vec<Arc<Room>>>,
    /// Rooms with occupants on this node.
    hosted: AtomicUsize,
    bus: Arc<dyn Bus>,
    node: Arc<Node>,
    /// Whether other nodes share the rooms (the bus reaches a cluster).
    clustered: bool,
    announcements: Announcements,
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
}

fn valid_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidRoom,
            "a room name is 1 to 64 of a-z, 0-9, '_', '-'",
        ))
    }
}

/// Publishes `frame` to `room`'s occupants but `except`, ordered by `seq` if it has one.
fn broadcast(
    bus: &dyn Bus,
    room: &Arc<str>,
    frame: Bytes,
    seq: Option<u64>,
    except: Option<ConnId>,
) {
    bus::publish(
        bus,
        Event::Deliver(Delivery {
            audience: Audience::Room(Arc::clone(room)),
            entry: seq.map(|s| (0, s)),
            frame,
            except,
        }),
    );
}

/// Notes `user` in a bounded list of names.
fn note(names: &mut Vec<UserId>, user: UserId) {
    if names.len() < OCCUPANCY_NAMES_MAX {
        names.push(user);
    }
}

impl RoomState {
    /// Occupants on every node.
    fn count(&self) -> usize {
        self.occupants.len()
            + self
                .remote
                .values()
                .map(|&(n, _)| n as usize)
                .sum::<usize>()
    }

    /// Keeps `message` in the recent window (in `seq` order, once), dropping the oldest past
    /// either bound (count or encoded bytes).
    fn remember(&mut self, message: RoomMessage, limits: &RoomLimits) {
        let at = self.recent.partition_point(|(m, _)| m.seq < message.seq);
        if self
            .recent
            .get(at)
            .is_some_and(|(m, _)| m.seq == message.seq)
        {
            return;
        }
        self.seq = self.seq.max(message.seq);
        let bytes = encoded_len(&message);
        self.recent.insert(at, (message, bytes));
        self.recent_bytes += bytes;
        while self.recent.len() > limits.history
            || (self.recent_bytes > limits.history_bytes && !self.recent.is_empty())
        {
            if let Some((_, gone)) = self.recent.pop_front() {
                self.recent_bytes -= gone;
            }
        }
    }
}

impl Rooms {
    /// No rooms yet; messages go out on `bus`, and come in (in a cluster) through `node`.
    pub fn new(
        limits: RoomLimits,
        bus: Arc<dyn Bus>,
        node: Arc<Node>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let rooms = Arc::new(Self {
            rooms: Mutex::default(),
            changed: Mutex::default(),
            hosted: AtomicUsize::new(0),
            clustered: bus.clustered(),
            announcements: Announcements::new(limits.max_rooms),
            bus,
            node,
            limits,
            metrics,
            next_id: AtomicU64::new(0),
        });
        rooms
            .node
            .set_rooms(&(Arc::clone(&rooms) as Arc<dyn RoomEvents>));
        rooms
    }

    /// The room `name`, created if it does not exist (and, when `hosting`, there is room for
    /// it; rooms known only from other nodes are bounded by their announcements).
    fn room(&self, name: &str, hosting: bool) -> Result<Arc<Room>> {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(room) = rooms.get(name) {
            return Ok(Arc::clone(room));
        }
        if hosting && self.hosted.load(Ordering::Relaxed) >= self.limits.max_rooms {
            return Err(too_many_rooms());
        }
        let room = Arc::new(Room {
            name: Arc::from(name),
            state: Mutex::default(),
        });
        rooms.insert(name.to_owned(), Arc::clone(&room));
        self.metrics.rooms_changed(1);
        Ok(room)
    }

    /// Frees `room` if nobody occupies it anywhere. Lock order is the map, then the room (as
    /// in [`Rooms::room`]); a join that got the room before it left the map sees `freed`.
    fn free_if_empty(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let mut state = room.state.lock().expect("room lock");
        if state.count() > 0 || state.freed {
            return;
        }
        state.freed = true;
        state.recent = VecDeque::new();
        state.recent_bytes = 0;
        if rooms.get(&*room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&*room.name);
            self.metrics.rooms_changed(-1);
        }
    }

    fn existing(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.lock().expect("rooms lock").get(name).cloned()
    }

    /// Marks `room`'s occupancy as changed, for the next [`Rooms::flush_occupancy`].
    fn schedule_occupancy(&self, room: &Arc<Room>, state: &mut RoomState) {
        if state.flush_pending {
            return;
        }
        state.flush_pending = true;
        self.changed
            .lock()
            .expect("rooms changed lock")
            .push(Arc::clone(room));
    }

    /// How often [`Rooms::flush_occupancy`] should run.
    pub fn occupancy_interval(&self) -> Duration {
        self.limits.occupancy_interval
    }

    /// Sends one `room_occupancy` frame to each room whose occupancy changed since the last
    /// call (the server's background task calls this every `occupancy_interval`); in a
    /// cluster, first announces this node's changed counts.
    pub fn flush_occupancy(&self) {
        if self.clustered {
            self.announce();
        }
        let changed = std::mem::take(&mut *self.changed.lock().expect("rooms changed lock"));
        for room in changed {
            let mut state = room.state.lock().expect("room lock");
            state.flush_pending = false;
            if state.freed || state.occupants.is_empty() {
                // Nobody here to tell.
                state.joined.clear();
                state.left.clear();
                continue;
            }
            let names = |v: &mut Vec<UserId>| {
                let out: Vec<String> = v.iter().map(ToString::to_string).collect();
                v.clear();
                out
            };
            let frame = encode(&ServerFrame::RoomOccupancy {
                room: room.name.to_string(),
                count: state.count(),
                joined: names(&mut state.joined),
                left: names(&mut state.left),
            });
            broadcast(&*self.bus, &room.name, frame, None, None);
        }
    }

    /// Puts a connection in a room and returns the recent window.
    pub async fn join(&self, user: UserId, conn: &ConnHandle, name: &str) -> Result<RoomJoined> {
        valid_name(name)?;
        let hosted = self
            .existing(name)
            .is_some_and(|r| !r.state.lock().expect("room lock").occupants.is_empty());
        // The room starts on this node: its order here starts after the cluster's last seq
        // (unless the gate already follows it), so that two messages sent on two nodes at once
        // reach this node's occupants in order from the first on. Without that seq the order
        // would start at whichever message came first, so a join that cannot read it is
        // refused (retryable). From here on each refresh keeps the order (`announce`).
        let last = if self.clustered && !hosted {
            let last = self.bus.room_seq(name).await.map_err(|e| {
                tracing::warn!(error = %e, room = name, "room seq unknown");
                unreachable_room()
            })?;
            let last = last.unwrap_or(0);
            self.node.expect_room(&Arc::from(name), last + 1);
            Some(last)
        } else {
            None
        };
        loop {
            let room = self.room(name, true)?;
            let mut state = room.state.lock().expect("room lock");
            if state.freed {
                // Freed between the lookup and the lock: look the name up again.
                continue;
            }
            if let Some(last) = last {
                state.seq = state.seq.max(last);
            }
            if !state.occupants.contains_key(&conn.conn) {
                if state.occupants.is_empty() {
                    if self.hosted.fetch_add(1, Ordering::Relaxed) >= self.limits.max_rooms {
                        self.hosted.fetch_sub(1, Ordering::Relaxed);
                        drop(state);
                        self.free_if_empty(&room);
                        return Err(too_many_rooms());
                    }
                    if self.clustered {
                        // Before any message of ours: other nodes learn of the room (and keep
                        // its window) from the first one on.
                        self.announce_now(&room.name, 1, user);
                    }
                }
                state.occupants.insert(conn.conn, user);
                self.bus.enter_room(name, conn);
                note(&mut state.joined, user);
                self.schedule_occupancy(&room, &mut state);
                if self.clustered {
                    self.announcements
                        .changed(&room.name, state.occupants.len(), Some(user), None);
                }
            }
            return Ok(RoomJoined {
                room: name.to_owned(),
                count: state.count(),
                recent: state.recent.iter().map(|(m, _)| m.clone()).collect(),
            });
        }
    }

    /// Takes a connection out of a room.
    pub fn leave(&self, conn: ConnId, name: &str) -> Result<()> {
        let room = self.existing(name).ok_or_else(not_in_room)?;
        let mut state = room.state.lock().expect("room lock");
        let user = state.occupants.remove(&conn).ok_or_else(not_in_room)?;
        self.bus.leave_room(name, conn);
        if self.clustered {
            self.announcements
                .changed(&room.name, state.occupants.len(), None, Some(user));
        }
        if state.occupants.is_empty() {
            self.hosted.fetch_sub(1, Ordering::Relaxed);
            // Nobody is left here to tell; the room goes, with its history, unless others
            // occupy it elsewhere.
            drop(state);
            self.free_if_empty(&room);
            return Ok(());
        }
        note(&mut state.left, user);
        self.schedule_occupancy(&room, &mut state);
        Ok(())
    }

    /// Broadcasts a message to a room the connection occupies.
    pub async fn send(
        &self,
        user: UserId,
        conn: ConnId,
        name: &str,
        client_msg_id: String,
        text: String,
    ) -> Result<RoomAck> {
        check_client_msg_id(&client_msg_id)?;
        check_text(&text, self.limits.max_text_bytes)?;
        let room = self.existing(name).ok_or_else(not_in_room)?;
        let sender = user.to_string();
        {
            let mut state = room.state.lock().expect("room lock");
            if !state.occupants.contains_key(&conn) {
                return Err(not_in_room());
            }
            if let Some((m, _)) = state
                .recent
                .iter()
                .find(|(m, _)| m.sender == sender && m.client_msg_id == client_msg_id)
            {
                return Ok(room_ack(name, m, true));
            }
            if !self.clustered {
                // One node: sequenced and published under the room's lock.
                state.seq += 1;
                let seq = state.seq;
                let message = self.message(seq, sender, client_msg_id, text);
                let frame = room_frame(name, &message);
                broadcast(&*self.bus, &room.name, frame, None, Some(conn));
                let ack = room_ack(name, &message, false);
                state.remember(message, &self.limits);
                return Ok(ack);
            }
        }
        // A cluster: the seq comes from the cluster's counter (no lock held while it is
        // asked), and every node's gate orders the message; this node's own copy of the room
        // keeps it when it passes this node's gate, before `publish` returns.
        let seq = match self.bus.next_room_seq(name).await {
            Ok(Some(seq)) => seq,
            Ok(None) | Err(_) => return Err(unreachable_room()),
        };
        let message = self.message(seq, sender, client_msg_id, text);
        let frame = room_frame(name, &message);
        let ack = room_ack(name, &message, false);
        broadcast(&*self.bus, &room.name, frame, Some(seq), Some(conn));
        Ok(ack)
    }

    fn message(
        &self,
        seq: u64,
        sender: String,
        client_msg_id: String,
        text: String,
    ) -> RoomMessage {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        RoomMessage {
            seq,
            // Unique in the cluster: the node's id in front of its own count.
            id: if self.clustered {
                format!("r{:x}-{n}", self.node.id().0)
            } else {
                format!("r{n}")
            },
            sender,
            client_msg_id,
            text,
            ts: crate::clock::now_ms(),
        }
    }
}

fn room_frame(name: &str, message: &RoomMessage) -> Bytes {
    encode(&ServerFrame::RoomMessage {
        room: name.to_owned(),
        message: message.clone(),
    })
}

/// The acknowledgement of `message` in room `room`.
fn room_ack(room: &str, message: &RoomMessage, duplicate: bool) -> RoomAck {
    RoomAck {
        room: room.to_owned(),
        seq: message.seq,
        message_id: message.id.clone(),
        ts: message.ts,
        duplicate,
    }
}

fn not_in_room() -> Error {
    Error::new(ErrorCode::NotInRoom, "you have not joined that room")
}

/// A cluster's room whose counter this node cannot reach now (NATS is away).
fn unreachable_room() -> Error {
    Error::new(
        ErrorCode::BusUnavailable,
        "the room cannot be reached now; retry later",
    )
}

fn too_many_rooms() -> Error {
    Error::new(
        ErrorCode::InvalidRoom,
        "too many chatrooms on this server; join an existing one or retry later",
    )
}
