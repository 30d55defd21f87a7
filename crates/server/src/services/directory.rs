//! Caches the hot paths read on every send: who is in a conversation, and whether two users may
//! message each other. Services that change memberships or relations invalidate the entries here
//! in the same call that commits the change, so a removed member or a block takes effect at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::store::{ConvId, Relation, Store, UserId};

/// Entries kept in each cache before it is cleared (a crude but bounded policy).
const CACHE_MAX: usize = 100_000;

/// A bounded map behind a std mutex (held only for a lookup or an insert).
struct Cache<K, V>(Mutex<HashMap<K, V>>);

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K) -> Option<V> {
        self.0.lock().expect("cache lock").get(key).cloned()
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.0.lock().expect("cache lock");
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, value);
    }

    fn remove(&self, key: &K) {
        self.0.lock().expect("cache lock").remove(key);
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
        }
    }

    /// Sorted member ids of `conv` (empty when it does not exist).
    pub async fn members(&self, conv: ConvId) -> Result<Arc<[UserId]>> {
        if let Some(m) = self.members.get(&conv) {
            return Ok(m);
        }
        let m: Arc<[UserId]> = self.store.members(conv).await?.into();
        if !m.is_empty() {
            self.members.put(conv, Arc::clone(&m));
        }
        Ok(m)
    }

    /// Forgets what is cached about `conv` (call after changing its members or state).
    pub fn invalidate_conversation(&self, conv: ConvId) {
        self.members.remove(&conv);
        self.info.remove(&conv);
    }

    /// Whether `conv` is a group, and whether it was dissolved.
    pub async fn info(&self, conv: ConvId) -> Result<ConvInfo> {
        if let Some(info) = self.info.get(&conv) {
            return Ok(info);
        }
        let group = self.store.group(conv).await?;
        let info = ConvInfo {
            group: group.is_some(),
            dissolved: group.is_some_and(|g| g.dissolved),
        };
        self.info.put(conv, info);
        Ok(info)
    }

    /// The cached direct conversation of a pair, if known.
    pub fn direct(&self, a: UserId, b: UserId) -> Option<ConvId> {
        self.direct.get(&(a.min(b), a.max(b)))
    }

    /// Remembers the direct conversation of a pair.
    pub fn put_direct(&self, a: UserId, b: UserId, conv: ConvId) {
        self.direct.put((a.min(b), a.max(b)), conv);
    }

    /// How `a` stands towards `b`.
    pub async fn relation(&self, a: UserId, b: UserId) -> Result<Relation> {
        let key = (a.min(b), a.max(b));
        let seen = match self.relations.get(&key) {
            Some(r) => r,
            None => {
                let r = self.store.relation(key.0, key.1).await?;
                self.relations.put(key, r);
                r
            }
        };
        Ok(if a == key.0 { seen } else { flip(seen) })
    }

    /// Forgets the relation of a pair (call after changing it).
    pub fn invalidate_relation(&self, a: UserId, b: UserId) {
        self.relations.remove(&(a.min(b), a.max(b)));
    }

    /// Forgets every cached relation (group membership changes affect `share_group`).
    pub fn invalidate_relations(&self) {
        self.relations.0.lock().expect("cache lock").clear();
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
