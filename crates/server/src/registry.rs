//! The session registry: which connections each user has on this node and which rooms each
//! connection occupies, and the fan-out that hands an encoded frame to each of them.
//!
//! Only the receiving side of the bus (`bus::node`) delivers through it: services never see it.
//! Sharded by user id so that fan-out to different users never contends on one lock. A shard's
//! lock is a std mutex held only for non-blocking `try_send`s, never across an `.await`.
//! Overflow policy: a connection whose bounded queue is full is a slow consumer; it is kicked
//! with close code 4003 and the frame is not queued for it (it will `sync` after reconnecting).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use banter_protocol::CloseCode;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::outbox::{Outbox, Refused};
use crate::store::{SessionId, UserId};

/// Number of registry shards (a power of two).
const SHARDS: usize = 64;

/// Names one node (process) of a cluster; drawn at random when the process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

/// Shown as `<node in hex>.<number>` (the `connection` of `hello`).
impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}.{}", self.node.0, self.local)
    }
}

impl NodeId {
    /// A fresh random id for this process.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

/// A connection, named the same way on every node: the node it is on and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The node holding the socket.
    pub node: NodeId,
    /// Unique among that node's connections.
    pub local: u64,
}

/// Asks a connection to close with a code; set once, from any thread. A kick wakes every
/// waiter.
#[derive(Debug, Default)]
pub struct Kick {
    code: AtomicU16,
    notify: Notify,
}

impl Kick {
    /// Requests the close. The first code wins.
    pub fn kick(&self, code: CloseCode) {
        if self
            .code
            .compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_waiters();
        }
    }

    /// The close code, once kicked.
    pub fn code(&self) -> Option<CloseCode> {
        CloseCode::from_code(self.code.load(Ordering::Acquire))
    }

    /// Waits until kicked and returns the code.
    pub async fn kicked(&self) -> CloseCode {
        loop {
            // Register interest before checking, so a kick between the check and the wait is
            // not missed (`notify_waiters` stores no permit).
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(code) = CloseCode::from_code(self.code.load(Ordering::Acquire)) {
                return code;
            }
            notified.await;
        }
    }
}

/// What the registry keeps for one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub conn: ConnId,
    /// The login session the connection authenticated with.
    pub session: SessionId,
    /// The connection's bounded outbound queue of encoded text frames.
    pub queue: Arc<Outbox>,
    /// How to close it.
    pub kick: Arc<Kick>,
}

type Shard = Mutex<HashMap<UserId, Vec<ConnHandle>>>;

/// A room's connections on this node.
type RoomRoute = Mutex<HashMap<ConnId, ConnHandle>>;

/// Connections by user, and room occupants, on this node.
pub struct Registry {
    shards: Box<[Shard]>,
    /// The connections in each room that has one here (each room with its own lock, so that
    /// a broadcast to one room holds the map's lock only for the lookup).
    rooms: Mutex<HashMap<Arc<str>, Arc<RoomRoute>>>,
    max_per_user: usize,
    metrics: Arc<Metrics>,
}

/// A connection was added: whether it is the user's first here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The user had no other connection on this node.
    pub first: bool,
}

/// The user already has the maximum number of connections.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyConnections;

impl ConnHandle {
    /// Queues `frame` (shared, never copied) on this connection. The slow-consumer policy lives
    /// here: a full queue kicks the connection (close 4003, counted as an overflow) instead of
    /// waiting, and a closed one is skipped, as it is already going away and its reconnect will
    /// sync. Returns whether the frame was queued.
    pub fn offer(&self, frame: &Bytes, metrics: &Metrics) -> bool {
        match self.queue.push(frame.clone()) {
            Ok(()) => true,
            Err(Refused::Full) => {
                metrics.queue_overflow();
                self.kick.kick(CloseCode::SlowConsumer);
                false
            }
            Err(Refused::Closed) => false,
        }
    }
}

impl Registry {
    /// An empty registry allowing `max_per_user` connections per user.
    pub fn new(max_per_user: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            rooms: Mutex::default(),
            max_per_user,
            metrics,
        }
    }

    fn shard(&self, user: UserId) -> &Shard {
        // Ids are sequential, so the low bits spread users evenly.
        &self.shards[(user as u64 as usize) & (SHARDS - 1)]
    }

    /// Adds a connection, unless the user is at the limit. Whether it is the first is decided
    /// under the same lock, so of two first connections racing exactly one is first.
    pub fn register(
        &self,
        user: UserId,
        handle: ConnHandle,
    ) -> Result<Registered, TooManyConnections> {
        let mut shard = self.shard(user).lock().expect("registry shard lock");
        let conns = shard.entry(user).or_default();
        if conns.len() >= self.max_per_user {
            return Err(TooManyConnections);
        }
        conns.push(handle);
        Ok(Registered {
            first: conns.len() == 1,
        })
    }

    /// Whether the user may open another connection now.
    pub fn has_room(&self, user: UserId) -> bool {
        let shard = self.shard(user).lock().expect("registry shard lock");
        shard.get(&user).map_or(0, Vec::len) < self.max_per_user
    }

    /// Removes a connection; returns whether it was the user's last one here, decided under
    /// the lock as in [`Registry::register`]. Its rooms are left before (`services::rooms`).
    pub fn unregister(&self, user: UserId, conn: ConnId) -> bool {
        let mut shard = self.shard(user).lock().expect("registry shard lock");
        let Some(conns) = shard.get_mut(&user) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| c.conn != conn);
        let removed = conns.len() < before;
        if conns.is_empty() {
            shard.remove(&user);
        }
        removed && !shard.contains_key(&user)
    }

    /// Queues `frame` on every connection of `users` except `except`. Returns how many
    /// connections it was queued on.
    pub fn deliver(&self, users: &[UserId], frame: &Bytes, except: Option<ConnId>) -> u64 {
        let mut queued = 0;
        for &user in users {
            let shard = self.shard(user).lock().expect("registry shard lock");
            let Some(conns) = shard.get(&user) else {
                continue;
            };
            for c in conns.iter().filter(|c| Some(c.conn) != except) {
                queued += u64::from(c.offer(frame, &self.metrics));
            }
        }
        self.metrics.delivered(queued);
        queued
    }

    /// Queues `frame` on every connection of `user`'s `session` except `except`.
    pub fn deliver_to_session(
        &self,
        user: UserId,
        session: SessionId,
        frame: &Bytes,
        except: Option<ConnId>,
    ) -> u64 {
        let shard = self.shard(user).lock().expect("registry shard lock");
        let queued = shard
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|c| c.session == session && Some(c.conn) != except)
            .map(|c| u64::from(c.offer(frame, &self.metrics)))
            .sum();
        self.metrics.delivered(queued);
        queued
    }

    /// Queues `frame` on every connection in `room` here except `except`.
    pub fn deliver_to_room(&self, room: &str, frame: &Bytes, except: Option<ConnId>) -> u64 {
        let Some(route) = self
            .rooms
            .lock()
            .expect("registry rooms lock")
            .get(room)
            .cloned()
        else {
            return 0;
        };
        let occupants = route.lock().expect("registry room lock");
        let queued = occupants
            .values()
            .filter(|c| Some(c.conn) != except)
            .map(|c| u64::from(c.offer(frame, &self.metrics)))
            .sum();
        self.metrics.delivered(queued);
        queued
    }

    /// Puts a connection of this node in `room` (no-op if it is there).
    pub fn enter_room(&self, room: &str, conn: &ConnHandle) {
        let mut rooms = self.rooms.lock().expect("registry rooms lock");
        let route = rooms.entry(Arc::from(room)).or_default();
        route
            .lock()
            .expect("registry room lock")
            .insert(conn.conn, conn.clone());
    }

    /// Takes a connection out of `room`; the room's route goes with its last connection here.
    pub fn leave_room(&self, room: &str, conn: ConnId) {
        let mut rooms = self.rooms.lock().expect("registry rooms lock");
        if let Some(route) = rooms.get(room) {
            let mut occupants = route.lock().expect("registry room lock");
            occupants.remove(&conn);
            if occupants.is_empty() {
                drop(occupants);
                rooms.remove(room);
            }
        }
    }

    /// Closes every connection of `user` that belongs to `session`.
    pub fn kick_session(&self, user: UserId, session: SessionId, code: CloseCode) {
        let shard = self.shard(user).lock().expect("registry shard lock");
        for c in shard.get(&user).into_iter().flatten() {
            if c.session == session {
                c.kick.kick(code);
            }
        }
    }

    /// Every connection on this node, with its user (a snapshot).
    pub fn all(&self) -> Vec<(UserId, ConnId)> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().expect("registry shard lock");
            for (user, conns) in shard.iter() {
                all.extend(conns.iter().map(|c| (*user, c.conn)));
            }
        }
        all
    }

    /// Number of connections `user` has on this node.
    pub fn connections_of(&self, user: UserId) -> usize {
        let shard = self.shard(user).lock().expect("registry shard lock");
        shard.get(&user).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kick_wakes_every_waiter() {
        let kick = Arc::new(Kick::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let kick = Arc::clone(&kick);
                tokio::spawn(async move { kick.kicked().await })
            })
            .collect();
        tokio::task::yield_now().await;
        kick.kick(CloseCode::SlowConsumer);
        kick.kick(CloseCode::Normal);
        for w in waiters {
            assert_eq!(
                w.await.unwrap(),
                CloseCode::SlowConsumer,
                "the first code wins"
            );
        }
        assert_eq!(
            kick.kicked().await,
            CloseCode::SlowConsumer,
            "late waiters see it too"
        );
    }
}
