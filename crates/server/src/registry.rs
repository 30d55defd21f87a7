//! The session registry: which connections each user has on this node, and the fan-out that
//! hands an encoded frame to each of them.
//!
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

/// A connection id, unique within this process.
pub type ConnId = u64;

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

/// Connections by user, on this node.
pub struct Registry {
    shards: Box<[Shard]>,
    max_per_user: usize,
    metrics: Arc<Metrics>,
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
            max_per_user,
            metrics,
        }
    }

    fn shard(&self, user: UserId) -> &Shard {
        // Ids are sequential, so the low bits spread users evenly.
        &self.shards[(user as u64 as usize) & (SHARDS - 1)]
    }

    /// Adds a connection, unless the user is at the limit.
    pub fn register(&self, user: UserId, handle: ConnHandle) -> Result<(), TooManyConnections> {
        let mut shard = self.shard(user).lock().expect("registry shard lock");
        let conns = shard.entry(user).or_default();
        if conns.len() >= self.max_per_user {
            return Err(TooManyConnections);
        }
        conns.push(handle);
        Ok(())
    }

    /// Whether the user may open another connection now.
    pub fn has_room(&self, user: UserId) -> bool {
        let shard = self.shard(user).lock().expect("registry shard lock");
        shard.get(&user).map_or(0, Vec::len) < self.max_per_user
    }

    /// Removes a connection.
    pub fn unregister(&self, user: UserId, conn: ConnId) {
        let mut shard = self.shard(user).lock().expect("registry shard lock");
        if let Some(conns) = shard.get_mut(&user) {
            conns.retain(|c| c.conn != conn);
            if conns.is_empty() {
                shard.remove(&user);
            }
        }
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

    /// Closes every connection of `user` that belongs to `session`.
    pub fn kick_session(&self, user: UserId, session: SessionId, code: CloseCode) {
        let shard = self.shard(user).lock().expect("registry shard lock");
        for c in shard.get(&user).into_iter().flatten() {
            if c.session == session {
                c.kick.kick(code);
            }
        }
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
