//! Caches the hot paths read on every send: who is in a conversation, and whether two users may
//! message each other. Services that change memberships or relations publish an invalidation on
//! the bus right after the change commits; every node's receiving side applies it here (the
//! publishing node's before `publish` returns), so a removed member or a block takes effect at
//! once.
//!
//! Fills and invalidations are ordered by generations, so that a fill can never undo an
//! invalidation: a fill notes its key's generation before it reads the store, and inserts its
//! answer only if the generation is unchanged when the answer arrives; an invalidation bumps the
//! generation and removes the entry, under the same lock. A read that began before a change
//! committed may still answer its own caller with the old state (it raced the change), but it
//! never leaves that state in the cache for the next caller. Invalidation is only "bump and
//! remove", from any task, so it works the same when invalidations arrive over the bus.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

use crate::bus::Invalidation;
use crate::bus::node::Caches;
use crate::error::Result;
use crate::store::{ConvId, Relation, Store, UserId};

/// Entries kept in each cache before it is cleared (a crude but bounded policy).
const CACHE_MAX: usize = 100_000;

/// Generation counters per cache. Keys hash onto stripes: an invalidation of one key only
/// discards the concurrent fills of keys on its stripe, and memory stays fixed however many
/// keys are invalidated.
const STRIPES: usize = 64;

/// Above this many keys, one invalidation bumps every stripe and scans the map once instead
/// of removing the keys one by one (the scan costs at most `CACHE_MAX` checks, however many
/// keys a dissolve of a 1,000-member group names: about 500,000 pairs).
const KEYS_ONE_BY_ONE: usize = 4 * STRIPES;

/// What a fill noted before its store read: the stripe and its generation then.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    stripe: usize,
    generation: u64,
}

struct Inner<K, V> {
    map: HashMap<K, V>,
    generations: [u64; STRIPES],
}

/// A bounded map behind a std mutex (held only for a lookup, an insert or an invalidation;
/// never across an await).
struct Cache<K, V> {
    inner: Mutex<Inner<K, V>>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                generations: [0; STRIPES],
            }),
            hasher: RandomState::new(),
        }
    }

    fn stripe(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// The cached value, or the ticket a fill must present to [`Cache::fill`].
    fn get(&self, key: &K) -> Result<V, Ticket> {
        let stripe = self.stripe(key);
        let inner = self.inner.lock().expect("cache lock");
        match inner.map.get(key) {
            Some(v) => Ok(v.clone()),
            None => Err(Ticket {
                stripe,
                generation: inner.generations[stripe],
            }),
        }
    }

    /// Inserts a value read from the store, unless the key was invalidated since `ticket`.
    fn fill(&self, ticket: Ticket, key: K, value: V) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generations[ticket.stripe] != ticket.generation {
            return;
        }
        if inner.map.len() >= CACHE_MAX {
            inner.map.clear();
        }
        inner.map.insert(key, value);
    }

    /// Inserts a value that never changes once it exists (no invalidation can race it).
    fn put(&self, key: K, value: V) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.map.len() >= CACHE_MAX {
            inner.map.clear();
        }
        inner.map.insert(key, value);
    }

    fn invalidate(&self, key: &K) {
        let stripe = self.stripe(key);
        let mut inner = self.inner.lock().expect("cache lock");
        inner.generations[stripe] += 1;
        inner.map.remove(key);
    }

    /// Invalidates every key.
    fn clear(&self) {
        let mut inner = self.inner.lock().expect("cache lock");
        for g in &mut inner.generations {
            *g += 1;
        }
        inner.map.clear();
    }

    /// Invalidates every key `hit` accepts; `keys` lists them, `count` of them.
    fn invalidate_many(
        &self,
        count: usize,
        keys: impl Iterator<Item = K>,
        hit: impl Fn(&K) -> bool,
    ) {
        let mut inner = self.inner.lock().expect("cache lock");
        if count > KEYS_ONE_BY_ONE {
            for g in &mut inner.generations {
                *g += 1;
            }
            inner.map.retain(|k, _| !hit(k));
            return;
        }
        for key in keys {
            let stripe = self.stripe(&key);
            inner.generations[stripe] += 1;
            inner.map.remove(&key);
        }
    }
}

/// What a send needs to know about a conversation besides its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvInfo {
    /// A group (else a direct conversation).
    pub group: bool,
    /// A dissolved group.
    pub dissolved: bool,
}

/// Cached memberships and relations.
pub struct Directory {
    store: Arc<dyn Store>,
    /// Sorted member ids per conversation.
    members: Cache<ConvId, Arc<[UserId]>>,
    /// Direct conversation per ordered pair (never changes once created).
    direct: Cache<(UserId, UserId), ConvId>,
    /// Relation per ordered pair `(min, max)`, seen from `min`.
    relations: Cache<(UserId, UserId), Relation>,
    /// Kind and state per conversation.
    info: Cache<ConvId, ConvInfo>,
    /// Test hook: pauses the next fill between its store read and its insert.
    #[cfg(test)]
    gate: Mutex<Option<Arc<tests::Gate>>>,
}

impl Directory {
    /// An empty directory over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            members: Cache::new(),
            direct: Cache::new(),
            relations: Cache::new(),
            info: Cache::new(),
            #[cfg(test)]
            gate: Mutex::new(None),
        }
    }

    /// Where a test can hold a fill after its store read (nothing outside tests).
    #[cfg(test)]
    async fn before_fill(&self) {
        let gate = self.gate.lock().expect("gate lock").take();
        if let Some(gate) = gate {
            gate.hold().await;
        }
    }

    #[cfg(not(test))]
    async fn before_fill(&self) {}

    /// Sorted member ids of `conv` (empty when it does not exist).
    pub async fn members(&self, conv: ConvId) -> Result<Arc<[UserId]>> {
        let ticket = match self.members.get(&conv) {
            Ok(m) => return Ok(m),
            Err(ticket) => ticket,
        };
        let m: Arc<[UserId]> = self.store.members(conv).await?.into();
        self.before_fill().await;
        if !m.is_empty() {
            self.members.fill(ticket, conv, Arc::clone(&m));
        }
        Ok(m)
    }

    /// Forgets what is cached about `conv` (call after changing its members or state).
    fn invalidate_conversation(&self, conv: ConvId) {
        self.members.invalidate(&conv);
        self.info.invalidate(&conv);
    }

    /// Whether `conv` is a group, and whether it was dissolved.
    pub async fn info(&self, conv: ConvId) -> Result<ConvInfo> {
        let ticket = match self.info.get(&conv) {
            Ok(info) => return Ok(info),
            Err(ticket) => ticket,
        };
        let group = self.store.group(conv).await?;
        let info = ConvInfo {
            group: group.is_some(),
            dissolved: group.is_some_and(|g| g.dissolved),
        };
        self.before_fill().await;
        self.info.fill(ticket, conv, info);
        Ok(info)
    }

    /// The cached direct conversation of a pair, if known.
    pub fn direct(&self, a: UserId, b: UserId) -> Option<ConvId> {
        self.direct.get(&(a.min(b), a.max(b))).ok()
    }

    /// Forgets the direct conversation of a pair (one of them was deleted), so that the next
    /// send between them asks the store whether the peer still exists.
    fn forget_direct(&self, a: UserId, b: UserId) {
        self.direct.invalidate(&(a.min(b), a.max(b)));
    }

    /// Remembers the direct conversation of a pair.
    pub fn put_direct(&self, a: UserId, b: UserId, conv: ConvId) {
        self.direct.put((a.min(b), a.max(b)), conv);
    }

    /// How `a` stands towards `b`.
    pub async fn relation(&self, a: UserId, b: UserId) -> Result<Relation> {
        let key = (a.min(b), a.max(b));
        let seen = match self.relations.get(&key) {
            Ok(r) => r,
            Err(ticket) => {
                let r = self.store.relation(key.0, key.1).await?;
                self.before_fill().await;
                self.relations.fill(ticket, key, r);
                r
            }
        };
        Ok(if a == key.0 { seen } else { flip(seen) })
    }

    /// Forgets the relation of a pair (call after changing it).
    fn invalidate_relation(&self, a: UserId, b: UserId) {
        self.relations.invalidate(&(a.min(b), a.max(b)));
    }

    /// Forgets the relations of every pair of one user of `changed` and one of `members`
    /// (call after a group change: whom it joins or parts, and the group's members; for a
    /// created or dissolved group both are all its members). Other pairs stay cached.
    fn invalidate_relations_between(&self, changed: &[UserId], members: &[UserId]) {
        let mut changed = changed.to_vec();
        changed.sort_unstable();
        let mut members = members.to_vec();
        members.sort_unstable();
        let pairs = || {
            changed.iter().flat_map(|&x| {
                members
                    .iter()
                    .filter(move |&&y| y != x)
                    .map(move |&y| (x.min(y), x.max(y)))
            })
        };
        let has = |set: &[UserId], u: UserId| set.binary_search(&u).is_ok();
        let hit = |&(x, y): &(UserId, UserId)| {
            (has(&changed, x) && has(&members, y)) || (has(&changed, y) && has(&members, x))
        };
        self.relations
            .invalidate_many(changed.len() * members.len(), pairs(), hit);
    }
}

/// Invalidations arrive from the bus (`bus::node`): services publish them, never call them.
impl Caches for Directory {
    fn invalidate(&self, what: &Invalidation) {
        match what {
            Invalidation::Relation(a, b) => self.invalidate_relation(*a, *b),
            Invalidation::RelationsBetween { changed, members } => {
                self.invalidate_relations_between(changed, members);
            }
            Invalidation::Conversation(conv) => self.invalidate_conversation(*conv),
            Invalidation::Direct(a, b) => self.forget_direct(*a, *b),
        }
    }

    fn invalidate_all(&self) {
        self.members.clear();
        self.info.clear();
        self.direct.clear();
        self.relations.clear();
    }
}

/// The same relation seen from the other side.
fn flip(r: Relation) -> Relation {
    Relation {
        friends: r.friends,
        a_requested: r.b_requested,
        b_requested: r.a_requested,
        a_blocked: r.b_blocked,
        b_blocked: r.a_blocked,
        share_group: r.share_group,
    }
}

#[cfg(test)]
mod tests;
