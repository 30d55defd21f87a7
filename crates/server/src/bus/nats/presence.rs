//! Cluster-wide presence and the per-user connection limit, on a JetStream key-value bucket.
//!
//! **One key per user** holds the list of that user's connections on every node (`wire::
//! encode_conns`). Every change is a compare-and-set on the key's revision (`create` for a
//! key that is not there, `update` with the revision read): of two nodes changing one user at
//! the same moment, one wins and the other re-reads and retries. So "first" (the list was
//! empty), "last" (it became empty) and "full" (it holds the limit) are decided once, for the
//! whole cluster, by whichever change the bucket accepted, never from one node's view.
//!
//! **Every node watches the bucket** and keeps the latest list per user in memory (newer
//! revisions only), which answers `connections` and `has_room` without a round trip; a node's
//! own writes go into it at once.
//!
//! **Nodes send heartbeats** every [`HEARTBEAT`]. A node not heard from for [`NODE_TIMEOUT`]
//! is dead: every live node removes the dead node's connections from the lists it knows of
//! (each removal a compare-and-set, so the one that empties a list is the one that reports the
//! user gone, exactly once). A node that was itself disconnected from NATS waits a whole
//! [`NODE_TIMEOUT`] after reconnecting before it judges anyone, so an outage of NATS does not
//! make every node think the others died. A removal that failed (NATS away) is retried with
//! every heartbeat. After a reconnect, and every [`AUDIT_EVERY`] heartbeats, a node audits its
//! own entries against its connections and fixes what differs: if the others removed its
//! connections while it could not reach NATS (a partition of this node alone), they are
//! counted again and their users reported online.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, Entry, Operation};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{bucket, wire};
use crate::bus::{ConnId, NodeId};
use crate::store::UserId;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is dead and its connections are removed.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// Compare-and-set attempts before a change gives up.
const ATTEMPTS: usize = 64;
/// Dead-node removals (and repairs) running at once.
const PURGE_CONCURRENCY: usize = 32;
/// Every this many heartbeats a node checks that the bucket lists exactly its connections.
const AUDIT_EVERY: u64 = 10;

/// Why presence could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user holds the limit of connections.
    Full,
    /// The bucket could not be reached (or stayed contended).
    Unavailable,
}

/// The latest list of one user's connections this node knows.
struct Known {
    revision: u64,
    conns: Vec<ConnId>,
}

/// This node's side of cluster presence.
pub struct Presence {
    kv: kv::Store,
    node: NodeId,
    limit: usize,
    known: Mutex<HashMap<UserId, Known>>,
    heard: Mutex<HashMap<NodeId, Instant>>,
    /// When this node last (re)connected to NATS.
    since: Arc<Mutex<Instant>>,
    /// Removals that failed, retried with each heartbeat.
    pending: Mutex<Vec<(UserId, ConnId)>>,
    /// Set when NATS reconnected: the next heartbeat audits this node's connections.
    repair: Arc<AtomicBool>,
    ticks: AtomicU64,
    changes: mpsc::UnboundedSender<(UserId, bool)>,
    /// Nodes judged dead, each once (the rooms service drops their room counts).
    deaths: mpsc::UnboundedSender<NodeId>,
}

impl Presence {
    /// Presence on bucket `kv` for `node`, allowing `limit` connections per user. Changes no
    /// `add` or `remove` reported (a dead node's users gone, a retried removal, a connection
    /// of this node counted again by an audit) are sent to `changes`; `since` is when NATS
    /// last connected, `repair` is set when it reconnected.
    pub fn new(
        kv: kv::Store,
        node: NodeId,
        limit: usize,
        since: Arc<Mutex<Instant>>,
        repair: Arc<AtomicBool>,
        changes: mpsc::UnboundedSender<(UserId, bool)>,
        deaths: mpsc::UnboundedSender<NodeId>,
    ) -> Self {
        Self {
            kv,
            node,
            limit,
            known: Mutex::default(),
            heard: Mutex::default(),
            since,
            pending: Mutex::default(),
            repair,
            ticks: AtomicU64::new(0),
            changes,
            deaths,
        }
    }

    /// How many connections `user` has on every node, as far as this node knows.
    pub fn connections(&self, user: UserId) -> usize {
        self.known
            .lock()
            .expect("presence lock")
            .get(&user)
            .map_or(0, |k| k.conns.len())
    }

    /// Whether `user` is below the limit, as far as this node knows.
    pub fn has_room(&self, user: UserId) -> bool {
        self.connections(user) < self.limit
    }

    /// Adds `conn` to `user`'s connections; returns whether it is the first anywhere.
    pub async fn add(&self, user: UserId, conn: ConnId) -> Result<bool, Refused> {
        let limit = self.limit;
        let (before, _) = self
            .change(user, |conns| {
                if conns.contains(&conn) {
                    // An audit counted it already.
                    return Ok(());
                }
                if conns.len() >= limit {
                    return Err(Refused::Full);
                }
                conns.push(conn);
                Ok(())
            })
            .await?;
        Ok(before == 0)
    }

    /// Removes `conn` from `user`'s connections; returns whether that left none anywhere. A
    /// removal that cannot reach the bucket is retried later (and reports the departure then).
    pub async fn remove(&self, user: UserId, conn: ConnId) -> bool {
        match self
            .change(user, |conns| {
                conns.retain(|c| *c != conn);
                Ok(())
            })
            .await
        {
            Ok((before, after)) => before > 0 && after == 0,
            Err(_) => {
                tracing::warn!(user, %conn, "presence unavailable; removal retried later");
                self.pending
                    .lock()
                    .expect("presence lock")
                    .push((user, conn));
                false
            }
        }
    }

    /// Applies `edit` to `user`'s list by compare-and-set; returns the list's length before
    /// and after.
    async fn change(
        &self,
        user: UserId,
        edit: impl Fn(&mut Vec<ConnId>) -> Result<(), Refused>,
    ) -> Result<(usize, usize), Refused> {
        let key = user.to_string();
        for _ in 0..ATTEMPTS {
            let entry = self.kv.entry(key.as_str()).await.map_err(|e| {
                tracing::warn!(error = %e, "presence read failed");
                Refused::Unavailable
            })?;
            let (revision, mut conns) = match entry {
                Some(e) => (Some(e.revision), conns_of(&e)),
                None => (None, Vec::new()),
            };
            let before = conns.len();
            let old = conns.clone();
            edit(&mut conns)?;
            if conns == old {
                return Ok((before, before));
            }
            let value = wire::encode_conns(&conns);
            let written = bucket::write(&self.kv, &key, value, revision).await;
            match written {
                Ok(revision) => {
                    let after = conns.len();
                    self.learn(user, revision, conns);
                    return Ok((before, after));
                }
                // Someone else changed it first: read again.
                Err(bucket::Refused::Conflict) => tokio::task::yield_now().await,
                Err(bucket::Refused::Failed(e)) => {
                    tracing::warn!(error = %e, "presence write failed");
                    return Err(Refused::Unavailable);
                }
            }
        }
        Err(Refused::Unavailable)
    }

    fn learn(&self, user: UserId, revision: u64, conns: Vec<ConnId>) {
        let mut known = self.known.lock().expect("presence lock");
        match known.get(&user) {
            Some(k) if k.revision >= revision => {}
            // An empty list is forgotten; a late older revision may bring it back briefly,
            // until the watch delivers the newer one after it.
            _ if conns.is_empty() => {
                known.remove(&user);
            }
            _ => {
                known.insert(user, Known { revision, conns });
            }
        }
    }

    /// Follows the bucket until `stop`, re-watching after errors.
    pub async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            match self.kv.watch_all().await {
                Ok(mut changes) => loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        change = changes.next() => match change {
                            Some(Ok(entry)) => self.apply(&entry),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "presence watch failed");
                                break;
                            }
                            None => break,
                        },
                    }
                },
                Err(e) => tracing::warn!(error = %e, "presence watch could not start"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
    }

    fn apply(&self, entry: &Entry) {
        let Ok(user) = entry.key.parse::<UserId>() else {
            return;
        };
        self.learn(user, entry.revision, conns_of(entry));
    }

    /// Notes a heartbeat of `node`.
    pub fn heard(&self, node: NodeId) {
        if node != self.node {
            self.heard
                .lock()
                .expect("presence lock")
                .insert(node, Instant::now());
        }
    }

    /// The heartbeat's work: retries failed removals, removes dead nodes' connections, and
    /// now and then (and after a reconnect) audits this node's own, whose list is `local`.
    pub async fn tick(&self, local: impl FnOnce() -> Vec<(UserId, ConnId)>) {
        let retry = std::mem::take(&mut *self.pending.lock().expect("presence lock"));
        futures_util::stream::iter(retry)
            .for_each_concurrent(PURGE_CONCURRENCY, |(user, conn)| async move {
                if self.remove(user, conn).await {
                    _ = self.changes.send((user, false));
                }
            })
            .await;
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        if self.repair.swap(false, Ordering::Relaxed) || tick % AUDIT_EVERY == AUDIT_EVERY - 1 {
            self.audit(local).await;
        }
        let dead = self.dead_nodes();
        if dead.is_empty() {
            return;
        }
        tracing::info!(nodes = ?dead, "removing the connections of nodes not heard from");
        for node in &dead {
            _ = self.deaths.send(*node);
        }
        let users: Vec<UserId> = {
            let known = self.known.lock().expect("presence lock");
            known
                .iter()
                .filter(|(_, k)| k.conns.iter().any(|c| dead.contains(&c.node)))
                .map(|(u, _)| *u)
                .collect()
        };
        let dead = &dead;
        futures_util::stream::iter(users)
            .for_each_concurrent(PURGE_CONCURRENCY, |user| async move {
                let purged = self
                    .change(user, |conns| {
                        conns.retain(|c| !dead.contains(&c.node));
                        Ok(())
                    })
                    .await;
                if let Ok((before, 0)) = purged
                    && before > 0
                {
                    _ = self.changes.send((user, false));
                }
            })
            .await;
        let mut heard = self.heard.lock().expect("presence lock");
        heard.retain(|n, _| !dead.contains(n));
    }

    /// Makes the bucket list exactly `local` for this node, as far as its cache tells: adds
    /// connections missing (removed by nodes that judged this one dead while NATS was away
    /// from it), removes ones of this node that are gone (a removal lost with a crash of the
    /// task). Each fix is a compare-and-set, so a race with `add`/`remove` counts once.
    async fn audit(&self, local: impl FnOnce() -> Vec<(UserId, ConnId)>) {
        // What the bucket lists for this node is read before this node's connections: one
        // attached in between then looks missing (adding it again is harmless), never stale (a
        // live connection must not be removed).
        let listed: HashSet<(UserId, ConnId)> = {
            let known = self.known.lock().expect("presence lock");
            known
                .iter()
                .flat_map(|(u, k)| k.conns.iter().map(move |c| (*u, *c)))
                .filter(|(_, c)| c.node == self.node)
                .collect()
        };
        let mine: HashSet<(UserId, ConnId)> = local().into_iter().collect();
        let missing: Vec<(UserId, ConnId)> = mine.difference(&listed).copied().collect();
        let stale: Vec<(UserId, ConnId)> = listed.difference(&mine).copied().collect();
        if missing.is_empty() && stale.is_empty() {
            return;
        }
        tracing::info!(
            missing = missing.len(),
            stale = stale.len(),
            "presence audit: fixing this node's connections"
        );
        let fixes = missing
            .into_iter()
            .map(|f| (f, true))
            .chain(stale.into_iter().map(|f| (f, false)));
        futures_util::stream::iter(fixes)
            .for_each_concurrent(PURGE_CONCURRENCY, |((user, conn), add)| async move {
                let fixed = self
                    .change(user, |conns| {
                        if add && !conns.contains(&conn) {
                            conns.push(conn);
                        } else if !add {
                            conns.retain(|c| *c != conn);
                        }
                        Ok(())
                    })
                    .await;
                match fixed {
                    Ok((0, after)) if add && after > 0 => _ = self.changes.send((user, true)),
                    Ok((before, 0)) if !add && before > 0 => _ = self.changes.send((user, false)),
                    _ => {}
                }
            })
            .await;
    }

    /// Nodes named in some list, or heard from once, that this node has not heard from for
    /// [`NODE_TIMEOUT`], counted from its own last (re)connection at the earliest.
    fn dead_nodes(&self) -> HashSet<NodeId> {
        let now = Instant::now();
        let since = *self.since.lock().expect("presence lock");
        if now.duration_since(since) < NODE_TIMEOUT {
            return HashSet::new();
        }
        let heard = self.heard.lock().expect("presence lock");
        let known = self.known.lock().expect("presence lock");
        known
            .values()
            .flat_map(|k| k.conns.iter().map(|c| c.node))
            .chain(heard.keys().copied())
            .filter(|n| *n != self.node)
            .filter(|n| {
                let last = heard.get(n).map_or(since, |t| (*t).max(since));
                now.duration_since(last) >= NODE_TIMEOUT
            })
            .collect()
    }
}

/// The connections an entry lists (none for a deleted key or an unreadable value).
fn conns_of(entry: &Entry) -> Vec<ConnId> {
    match entry.operation {
        Operation::Put => wire::decode_conns(entry.value.clone()).unwrap_or_else(|_| {
            tracing::warn!(key = %entry.key, "unreadable presence value; treated as empty");
            Vec::new()
        }),
        Operation::Delete | Operation::Purge => Vec::new(),
    }
}
