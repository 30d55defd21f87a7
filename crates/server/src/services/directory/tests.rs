//! Forces the race between a fill and an invalidation: a fill is held after its store read
//! while a change commits and publishes its invalidation on the bus (applied by the node's
//! receiving side, as in a server), then allowed to insert its (now stale) answer.

use std::future::Future;

use tokio::sync::Notify;

use super::*;
use crate::bus::LocalBus;
use crate::bus::node::Node;
use crate::bus::{Bus, Event};
use crate::config::{DirectMessagePolicy, SqliteSync};
use crate::media::image::ImageLimits;
use crate::media::service::{Media, MediaLimits};
use crate::media::storage::LocalStorage;
use crate::metrics::Metrics;
use crate::registry::NodeId;
use crate::registry::Registry;
use crate::services::Caller;
use crate::services::messaging::{Messaging, MessagingLimits, SendRequest};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{AddRules, GroupChange, NewGroup, SystemEntry};
use banter_protocol::ErrorCode;

/// Holds one fill between its store read and its insert.
#[derive(Default)]
pub(super) struct Gate {
    reached: Notify,
    resume: Notify,
}

impl Gate {
    pub(super) async fn hold(&self) {
        self.reached.notify_one();
        self.resume.notified().await;
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    messaging: Messaging,
    bus: Arc<dyn Bus>,
    users: [UserId; 3],
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let options = SqliteOptions {
        write_batch_max: 64,
        synchronous: SqliteSync::Normal,
        readers: 2,
        quick_check: true,
    };
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), &options, Arc::clone(&metrics)).unwrap());
    let mut users = [0; 3];
    for (i, name) in ["alice", "bob", "carol"].iter().enumerate() {
        users[i] = store.create_user(name, "hash").await.unwrap().id;
    }
    let directory = Arc::new(Directory::new(Arc::clone(&store)));
    // Invalidations travel as in a server: published on the bus, applied by the node's
    // receiving side to its caches.
    let node = Arc::new(Node::new(
        NodeId::random(),
        Registry::new(4, Arc::clone(&metrics)),
        Arc::clone(&directory) as Arc<dyn Caches>,
    ));
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(node));
    let storage = LocalStorage::open(&dir.path().join("media"));
    let media = Arc::new(Media::new(
        Arc::clone(&store),
        Arc::new(storage),
        MediaLimits {
            max_file_bytes: 1024,
            quota_bytes: 1024,
            types: vec!["text/plain".into()],
            unreferenced_ms: 60_000,
            uploads_per_user: 1,
            downloads_per_user: 1,
            image: ImageLimits::default(),
        },
    ));
    let messaging = Messaging::new(
        Arc::clone(&store),
        Arc::clone(&bus),
        metrics,
        Arc::clone(&directory),
        media,
        MessagingLimits {
            max_text_bytes: 1000,
            max_page: 100,
            send_rate_per_sec: 1000,
            send_burst: 1000,
            direct_policy: DirectMessagePolicy::Anyone,
            recall_window_ms: 1000,
            max_page_bytes: 256 * 1024,
            requests: crate::services::budget::BudgetLimits {
                user_rate: 1000,
                user_burst: 1000,
                conn_rate: 1000,
                conn_burst: 1000,
            },
        },
    );
    World {
        _dir: dir,
        store,
        directory,
        messaging,
        bus,
        users,
    }
}

/// Publishes an invalidation as a service does.
fn publish(w: &World, what: Invalidation) {
    w.bus.publish(Event::Invalidate(what)).unwrap();
}

/// Runs `fill` held after its store read, commits and invalidates with `change` meanwhile,
/// then lets the fill finish and returns what it answered.
async fn race<T: Send + 'static>(
    directory: &Directory,
    fill: impl Future<Output = Result<T>> + Send + 'static,
    change: impl Future<Output = ()>,
) -> T {
    let gate = Arc::new(Gate::default());
    *directory.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let fill = tokio::spawn(fill);
    gate.reached.notified().await;
    change.await;
    gate.resume.notify_one();
    fill.await.unwrap().unwrap()
}

fn caller(user: UserId) -> Caller {
    Caller {
        user,
        session: 1,
        conn: None,
        expires_at: i64::MAX,
    }
}

/// The code a send from `user` is refused with.
async fn refused(w: &World, user: UserId, to: Option<UserId>, conv: Option<ConvId>) -> ErrorCode {
    let req = SendRequest {
        to: to.map(|u| u.to_string()),
        conversation: conv.map(|c| c.to_string()),
        client_msg_id: format!("m{user}"),
        text: "hi".into(),
        attachment: None,
        sticker: None,
    };
    match w.messaging.queue_send(&caller(user), req).await {
        Err(e) => e.code,
        Ok(_) => panic!("the send from {user} went through"),
    }
}

async fn group(w: &World) -> ConvId {
    let [a, b, c] = w.users;
    let (g, _) = w
        .store
        .create_group(NewGroup {
            owner: a,
            name: "g".into(),
            description: String::new(),
            public: false,
            members: vec![b, c],
            event: SystemEntry {
                actor: a,
                body: "{}".into(),
            },
            rules: AddRules {
                by: a,
                friends_only: false,
                max_groups: 10,
            },
        })
        .await
        .unwrap();
    g.id
}

fn entry(actor: UserId) -> SystemEntry {
    SystemEntry {
        actor,
        body: "{}".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_relation_fill_is_discarded_and_the_block_holds() {
    let w = world().await;
    let [a, b, _] = w.users;
    let d = Arc::clone(&w.directory);
    let stale = race(&w.directory, async move { d.relation(a, b).await }, async {
        w.store.block(b, a).await.unwrap();
        publish(&w, Invalidation::Relation(b, a));
    })
    .await;
    assert!(
        !stale.b_blocked,
        "the held fill read the store before the block"
    );
    assert!(w.directory.relation(a, b).await.unwrap().b_blocked);
    assert_eq!(refused(&w, a, Some(b), None).await, ErrorCode::Blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_members_fill_is_discarded() {
    let w = world().await;
    let [a, b, _] = w.users;
    let g = group(&w).await;
    let d = Arc::clone(&w.directory);
    let stale = race(&w.directory, async move { d.members(g).await }, async {
        let remove = GroupChange::Remove { user: b };
        w.store.change_group(g, remove, entry(a)).await.unwrap();
        publish(&w, Invalidation::Conversation(g));
    })
    .await;
    assert!(
        stale.contains(&b),
        "the held fill read the store before the removal"
    );
    assert!(!w.directory.members(g).await.unwrap().contains(&b));
    assert_eq!(
        refused(&w, b, None, Some(g)).await,
        ErrorCode::UnknownConversation
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_info_fill_is_discarded() {
    let w = world().await;
    let [a, _, _] = w.users;
    let g = group(&w).await;
    let d = Arc::clone(&w.directory);
    let stale = race(&w.directory, async move { d.info(g).await }, async {
        w.store
            .change_group(g, GroupChange::Dissolve, entry(a))
            .await
            .unwrap();
        publish(&w, Invalidation::Conversation(g));
    })
    .await;
    assert!(
        !stale.dissolved,
        "the held fill read the store before the dissolve"
    );
    assert!(w.directory.info(g).await.unwrap().dissolved);
    assert_eq!(
        refused(&w, a, None, Some(g)).await,
        ErrorCode::GroupDissolved
    );
}

/// A dissolve invalidates every pair of members, one by one (few pairs) or by one scan
/// of the cache (many): either way a fill that raced it is discarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_member_pairs_discards_a_racing_fill() {
    let w = world().await;
    let [a, b, c] = w.users;
    // Unknown ids make the second round name more pairs than are removed one by one.
    let many: Vec<UserId> = (1_000..1_000 + KEYS_ONE_BY_ONE as UserId).collect();
    for extra in [vec![], many] {
        let g = group(&w).await;
        // The last round left the pair cached: the fill below must read the store.
        publish(&w, Invalidation::Relation(a, b));
        let d = Arc::clone(&w.directory);
        let stale = race(&w.directory, async move { d.relation(a, b).await }, async {
            w.store
                .change_group(g, GroupChange::Dissolve, entry(a))
                .await
                .unwrap();
            let mut members = vec![a, b, c];
            members.extend(&extra);
            let members: Arc<[UserId]> = members.into();
            publish(
                &w,
                Invalidation::RelationsBetween {
                    changed: Arc::clone(&members),
                    members,
                },
            );
        })
        .await;
        assert!(stale.share_group, "{} extra", extra.len());
        assert!(!w.directory.relation(a, b).await.unwrap().share_group);
    }
}

/// Only the pairs a change names are forgotten: the rest stay cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_change_keeps_unrelated_pairs_cached() {
    let w = world().await;
    let [a, b, c] = w.users;
    group(&w).await;
    for (x, y) in [(a, b), (a, c), (b, c)] {
        w.directory.relation(x, y).await.unwrap();
    }
    let cached = |x: UserId, y: UserId| {
        let inner = w.directory.relations.inner.lock().unwrap();
        inner.map.contains_key(&(x.min(y), x.max(y)))
    };
    // `c` removed from a group of `a` and `b`.
    publish(
        &w,
        Invalidation::RelationsBetween {
            changed: [c].into(),
            members: [a, b].into(),
        },
    );
    assert!(cached(a, b), "a and b still share what they shared");
    assert!(!cached(a, c) && !cached(b, c));
}
