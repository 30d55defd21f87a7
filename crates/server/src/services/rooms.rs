//! Chatrooms: public rooms entered by name, without membership records.
//!
//! A room lives in memory on this node: its occupants (connections), a per-room `seq`, and the
//! last `room_history` messages (at most `room_history_bytes` of them, encoded). It is
//! deliberately not a group: nothing is stored on disk, and a reconnecting client gets the
//! recent window, not a complete catch-up (PROTOCOL.md says so).
//!
//! A room exists while it has an occupant: when the last one leaves (or its connection closes)
//! the room is freed at once, history and `seq` with it, and the next join starts it afresh. So
//! memory follows the rooms in use, at most `max_rooms` of them.
//!
//! Messages are published on the bus to the room's audience under the room's lock, so every
//! occupant receives a room's messages in `seq` order, each once; the bus routes them to the
//! occupants' connections (a connection enters the room's route when it joins). Occupancy
//! changes are coalesced: the server's background task calls [`Rooms::flush_occupancy`] once
//! per interval, which sends at most one `room_occupancy` frame per changed room, so ten
//! thousand joins do not cost ten thousand broadcasts to ten thousand occupants.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_protocol::{ErrorCode, RoomAck, RoomJoined, RoomMessage, ServerFrame};
use bytes::Bytes;

use super::fields::{check_client_msg_id, check_text};
use super::messaging::encode;
use super::page::encoded_len;
use crate::bus::{self, Audience, Bus, Delivery, Event};
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
    /// Most rooms at once (each has an occupant; empty rooms are freed).
    pub max_rooms: usize,
    /// Most encoded bytes of recent history kept per room.
    pub history_bytes: usize,
}

#[derive(Default)]
struct RoomState {
    seq: u64,
    /// The recent window, each message with its encoded size.
    recent: VecDeque<(RoomMessage, usize)>,
    /// Sum of the sizes in `recent`.
    recent_bytes: usize,
    /// Who is in, by connection.
    occupants: HashMap<ConnId, UserId>,
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
    bus: Arc<dyn Bus>,
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

/// Publishes `frame` to `room`'s occupants but `except`. Called under the room's lock.
fn broadcast(bus: &dyn Bus, room: &Room, frame: Bytes, except: Option<ConnId>) {
    bus::publish(
        bus,
        Event::Deliver(Delivery {
            audience: Audience::Room(Arc::clone(&room.name)),
            entry: None,
            frame,
            except,
        }),
    );
}

impl RoomState {
    /// Keeps `message` in the recent window, dropping the oldest past either bound (count or
    /// encoded bytes).
    fn remember(&mut self, message: RoomMessage, limits: &RoomLimits) {
        let bytes = encoded_len(&message);
        self.recent.push_back((message, bytes));
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
    /// No rooms yet; messages go out on `bus`.
    pub fn new(limits: RoomLimits, bus: Arc<dyn Bus>, metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: Mutex::default(),
            changed: Mutex::default(),
            bus,
            limits,
            metrics,
            next_id: AtomicU64::new(0),
        }
    }

    /// The room `name`, created if it does not exist and there is room for it.
    fn room(&self, name: &str) -> Result<Arc<Room>> {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(room) = rooms.get(name) {
            return Ok(Arc::clone(room));
        }
        if rooms.len() >= self.limits.max_rooms {
            return Err(Error::new(
                ErrorCode::InvalidRoom,
                "too many chatrooms on this server; join an existing one or retry later",
            ));
        }
        let room = Arc::new(Room {
            name: Arc::from(name),
            state: Mutex::default(),
        });
        rooms.insert(name.to_owned(), Arc::clone(&room));
        self.metrics.rooms_changed(1);
        Ok(room)
    }

    /// Frees `room` if it is still empty. Lock order is the map, then the room (as in
    /// [`Rooms::room`]); a join that got the room before it left the map sees `freed`.
    fn free_if_empty(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let mut state = room.state.lock().expect("room lock");
        if !state.occupants.is_empty() || state.freed {
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
    /// call (the server's background task calls this every `occupancy_interval`).
    pub fn flush_occupancy(&self) {
        let changed = std::mem::take(&mut *self.changed.lock().expect("rooms changed lock"));
        for room in changed {
            let mut state = room.state.lock().expect("room lock");
            state.flush_pending = false;
            if state.freed {
                continue;
            }
            let names = |v: &mut Vec<UserId>| {
                let out: Vec<String> = v
                    .iter()
                    .take(OCCUPANCY_NAMES_MAX)
                    .map(ToString::to_string)
                    .collect();
                v.clear();
                out
            };
            let frame = encode(&ServerFrame::RoomOccupancy {
                room: room.name.to_string(),
                count: state.occupants.len(),
                joined: names(&mut state.joined),
                left: names(&mut state.left),
            });
            broadcast(&*self.bus, &room, frame, None);
        }
    }

    /// Puts a connection in a room and returns the recent window.
    pub fn join(&self, user: UserId, conn: &ConnHandle, name: &str) -> Result<RoomJoined> {
        valid_name(name)?;
        loop {
            let room = self.room(name)?;
            let mut state = room.state.lock().expect("room lock");
            if state.freed {
                // Freed between the lookup and the lock: look the name up again.
                continue;
            }
            let fresh = state.occupants.insert(conn.conn, user).is_none();
            if fresh {
                self.bus.enter_room(name, conn);
                state.joined.push(user);
                self.schedule_occupancy(&room, &mut state);
            }
            return Ok(RoomJoined {
                room: name.to_owned(),
                count: state.occupants.len(),
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
        if state.occupants.is_empty() {
            // Nobody is left to tell; the room goes, with its history.
            drop(state);
            self.free_if_empty(&room);
            return Ok(());
        }
        state.left.push(user);
        self.schedule_occupancy(&room, &mut state);
        Ok(())
    }

    /// Broadcasts a message to a room the connection occupies.
    pub fn send(
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
        let mut state = room.state.lock().expect("room lock");
        if !state.occupants.contains_key(&conn) {
            return Err(not_in_room());
        }
        let sender = user.to_string();
        if let Some((m, _)) = state
            .recent
            .iter()
            .find(|(m, _)| m.sender == sender && m.client_msg_id == client_msg_id)
        {
            return Ok(room_ack(name, m, true));
        }
        state.seq += 1;
        let message = RoomMessage {
            seq: state.seq,
            id: format!("r{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1),
            sender,
            client_msg_id,
            text,
            ts: crate::clock::now_ms(),
        };
        let frame = encode(&ServerFrame::RoomMessage {
            room: name.to_owned(),
            message: message.clone(),
        });
        broadcast(&*self.bus, &room, frame, Some(conn));
        let ack = room_ack(name, &message, false);
        state.remember(message, &self.limits);
        Ok(ack)
    }
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
