//! Turns for expensive reads: a user runs at most [`TURNS_PER_USER`] of them at once, however
//! many connections they hold, so that one user looping a heavy request (the conversation list
//! of someone in thousands of groups) on every socket occupies one reader and one worker at a
//! time instead of all of them. Waiting for a turn costs nothing but the request's own latency.
//! Each list has its own turns (`conversations` in messaging, `groups` in groups).

use std::hash::{BuildHasher, RandomState};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::store::UserId;

/// Expensive reads one user may run at once.
pub const TURNS_PER_USER: usize = 1;

/// Users hash onto this many stripes (fixed memory; two users share a stripe rarely, and then
/// only take turns with each other).
const STRIPES: usize = 1024;

/// Per-user turns, striped.
pub struct Turns {
    stripes: Vec<Semaphore>,
    hasher: RandomState,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Semaphore::new(TURNS_PER_USER))
                .collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Turns {
    /// Waits for `user`'s turn; the turn ends when the permit drops.
    pub async fn take(&self, user: UserId) -> SemaphorePermit<'_> {
        let i = (self.hasher.hash_one(user) % STRIPES as u64) as usize;
        self.stripes[i]
            .acquire()
            .await
            .expect("turn semaphores are never closed")
    }
}
