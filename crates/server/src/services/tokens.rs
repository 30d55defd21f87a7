//! The token cache: token hash → session, so that authenticating a request does not queue
//! behind heavy reads on the store's shared reader connections.
//!
//! Revocation must hold on the very next request, so the cache is ordered by a generation:
//! a lookup that misses notes the generation *before* reading the store, and its answer is
//! cached only if no revocation bumped the generation meanwhile. A revocation first commits in
//! the store, then bumps the generation and drops the session's entries, before the call that
//! revoked returns. So a read that began before the revocation can never land in the cache
//! after it (it either lands first and is dropped, or finds the generation moved).
//!
//! Entries also expire after [`TTL`] (a revocation on another node of a cluster reaches this
//! one's cache no later than that), and never outlive their token's own expiry. At most
//! [`MAX_ENTRIES`] are held; a full cache first drops expired entries, then empties.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::store::{SessionId, UserId};

/// How long a cached session is trusted without reading the store again.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// Most cached sessions (≈ 100 bytes each).
pub(crate) const MAX_ENTRIES: usize = 65_536;

/// What a token resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CachedSession {
    pub(crate) user: UserId,
    pub(crate) session: SessionId,
    /// Token expiry, UTC milliseconds.
    pub(crate) expires_at: i64,
}

#[derive(Debug)]
struct Entry {
    session: CachedSession,
    cached_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    /// Bumped by every revocation.
    generation: u64,
}

/// The cache. Its lock is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    inner: Mutex<Inner>,
}

/// A generation noted before a store read; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached session of `hash`, if fresh; else the generation to fill under.
    pub(crate) fn get(&self, hash: &[u8; 32]) -> Result<CachedSession, Generation> {
        let mut inner = self.lock();
        match inner.entries.get(hash) {
            Some(e) if e.cached_at.elapsed() < TTL => Ok(e.session),
            Some(_) => {
                inner.entries.remove(hash);
                Err(Generation(inner.generation))
            }
            None => Err(Generation(inner.generation)),
        }
    }

    /// Caches what the store said, unless a revocation happened since `seen` was noted.
    pub(crate) fn fill(&self, seen: Generation, hash: [u8; 32], session: CachedSession) {
        let mut inner = self.lock();
        if inner.generation != seen.0 {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.retain(|_, e| e.cached_at.elapsed() < TTL);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            hash,
            Entry {
                session,
                cached_at: Instant::now(),
            },
        );
    }

    /// Forgets `sessions` (already revoked in the store) and voids fills in flight.
    pub(crate) fn revoked(&self, sessions: &[SessionId]) {
        // Built before locking: every authentication waits on this lock.
        let sessions: HashSet<SessionId> = sessions.iter().copied().collect();
        let mut inner = self.lock();
        inner.generation += 1;
        inner
            .entries
            .retain(|_, e| !sessions.contains(&e.session.session));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: CachedSession = CachedSession {
        user: 1,
        session: 7,
        expires_at: i64::MAX,
    };

    #[test]
    fn a_fill_that_raced_a_revocation_is_not_cached() {
        let cache = TokenCache::default();
        let hash = [1u8; 32];
        // The lookup misses and reads the store, which still has the session...
        let seen = cache.get(&hash).unwrap_err();
        // ...the session is revoked (store, then cache) before the read's answer lands...
        cache.revoked(&[S.session]);
        cache.fill(seen, hash, S);
        // ...so the next lookup reads the store again (and finds it revoked).
        assert!(cache.get(&hash).is_err(), "a revoked session stayed cached");
    }

    #[test]
    fn revocation_drops_cached_entries_and_others_survive() {
        let cache = TokenCache::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let other = CachedSession { session: 8, ..S };
        let seen = cache.get(&a).unwrap_err();
        cache.fill(seen, a, S);
        cache.fill(seen, b, other);
        assert_eq!(cache.get(&a), Ok(S));
        cache.revoked(&[S.session]);
        assert!(cache.get(&a).is_err());
        assert_eq!(cache.get(&b), Ok(other));
    }
}
