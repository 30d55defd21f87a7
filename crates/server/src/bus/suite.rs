//! The Bus delivery suite: what every [`Bus`] must do, written against the trait only, so that
//! each implementation runs it unchanged. A backend's test file invokes
//! [`bus_delivery_suite!`](crate::bus_delivery_suite) once with a [`Harness`] (see
//! `tests/bus_local.rs`); it expands to one test per check.
//!
//! Checks spread their connections over as many nodes as the bus allows (up to three) and
//! publish from every node. A check never waits for an absence: to show that a connection got
//! a frame exactly once, it publishes a fence to everyone afterwards and counts what arrived
//! before the fence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use banter_protocol::CloseCode;
use bytes::Bytes;

use super::node::{Caches, Node};
use super::{Audience, Bus, Delivery, Event, Invalidation};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::registry::{ConnHandle, ConnId, Kick, NodeId, Registry};
use crate::store::{SessionId, UserId};

/// How long a check waits for a frame or a state before it fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// The per-user connection limit the checks' nodes enforce.
pub const MAX_PER_USER: usize = 4;

/// Forms clusters of one bus implementation for the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Most nodes one cluster of this bus may have (1 for the in-process bus).
    fn max_nodes(&self) -> usize;
    /// Joins the receiving sides `nodes` into one fresh cluster (sharing nothing with any other
    /// cluster it formed) and returns each node's bus, in order.
    async fn open(&self, nodes: &[Arc<Node>]) -> Vec<Arc<dyn Bus>>;
}

/// Runs the whole suite as one test per check. `$harness` is an expression of a type that
/// implements [`Harness`]; it is evaluated once per check.
#[macro_export]
macro_rules! bus_delivery_suite {
    ($harness:expr) => {
        $crate::bus_delivery_suite!(@checks $harness;
            users_audience_reaches_every_connection_once,
            except_skips_only_that_connection,
            session_audience,
            the_gate_orders_entries_published_out_of_order,
            concurrent_publishers_are_ordered,
            a_gap_that_never_fills_is_released,
            room_occupants,
            presence_first_and_last,
            racing_first_connections_make_one_first,
            kicks_close_one_session_everywhere,
            a_full_queue_is_kicked_and_counted,
            invalidations_reach_every_node,
            the_connection_limit_holds,
        );
    };
    (@checks $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::bus::suite::$check(&$harness).await;
            }
        )*
    };
}

/// Records the invalidations a node received.
#[derive(Default)]
struct Recorder(Mutex<Vec<Invalidation>>);

impl Caches for Recorder {
    fn invalidate(&self, what: &Invalidation) {
        self.0.lock().expect("recorder lock").push(what.clone());
    }

    fn invalidate_all(&self) {}
}

/// A cluster formed for one check.
struct Cluster {
    nodes: Vec<Arc<Node>>,
    buses: Vec<Arc<dyn Bus>>,
    caches: Vec<Arc<Recorder>>,
    metrics: Arc<Metrics>,
    next: Mutex<u64>,
}

/// A connection the suite plays.
struct Conn {
    handle: ConnHandle,
    seen: Vec<Bytes>,
}

async fn cluster(harness: &dyn Harness, want: usize) -> Cluster {
    let n = want.min(harness.max_nodes()).max(1);
    let metrics = Arc::new(Metrics::default());
    let caches: Vec<Arc<Recorder>> = (0..n).map(|_| Arc::default()).collect();
    let nodes: Vec<Arc<Node>> = caches
        .iter()
        .map(|c| {
            Arc::new(Node::new(
                NodeId::random(),
                Registry::new(MAX_PER_USER, Arc::clone(&metrics)),
                Arc::clone(c) as Arc<dyn Caches>,
            ))
        })
        .collect();
    let buses = harness.open(&nodes).await;
    assert_eq!(buses.len(), n, "one bus per node");
    Cluster {
        nodes,
        buses,
        caches,
        metrics,
        next: Mutex::new(0),
    }
}

/// A connection handle of `session` on node `i`, with a queue of `queue` frames.
fn handle(c: &Cluster, i: usize, session: SessionId, queue: usize) -> ConnHandle {
    let local = {
        let mut next = c.next.lock().expect("suite lock");
        *next += 1;
        *next
    };
    ConnHandle {
        conn: ConnId {
            node: c.nodes[i % c.nodes.len()].id(),
            local,
        },
        session,
        queue: Arc::new(Outbox::new(queue)),
        kick: Arc::new(Kick::default()),
    }
}

impl Cluster {
    /// The bus of node `i` (wrapping around).
    fn bus(&self, i: usize) -> &dyn Bus {
        &*self.buses[i % self.buses.len()]
    }

    /// A connection of `user`'s `session` on node `i`, attached, with a queue of `queue`.
    async fn connect_with(&self, i: usize, user: UserId, session: SessionId, queue: usize) -> Conn {
        let handle = handle(self, i, session, queue);
        self.bus(i)
            .attach(user, handle.clone())
            .await
            .expect("under the connection limit");
        Conn {
            handle,
            seen: Vec::new(),
        }
    }

    async fn connect(&self, i: usize, user: UserId, session: SessionId) -> Conn {
        self.connect_with(i, user, session, 1024).await
    }

    fn publish(&self, i: usize, event: Event) {
        self.bus(i).publish(event).expect("published");
    }
}

fn frame(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn to_users(users: &[UserId], text: &str, except: Option<ConnId>) -> Event {
    Event::to_users(users.to_vec(), frame(text), except)
}

fn entry(users: &[UserId], conv: i64, seq: u64) -> Event {
    Event::Deliver(Delivery {
        audience: Audience::Users(users.into()),
        entry: Some((conv, seq)),
        frame: frame(&format!("{conv}:{seq}")),
        except: None,
    })
}

impl Conn {
    /// Reads frames until `fence` arrives; returns what came before it.
    async fn until(&mut self, fence: &str) -> Vec<String> {
        self.until_n(fence, 1).await
    }

    /// Reads frames until `fence` arrived `n` times; returns the other frames before the
    /// last one.
    async fn until_n(&mut self, fence: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let nth = self
                .seen
                .iter()
                .enumerate()
                .filter(|(_, f)| *f == fence.as_bytes())
                .nth(n - 1);
            if let Some((at, _)) = nth {
                let before: Vec<Bytes> = self.seen.drain(..=at).collect();
                return before
                    .iter()
                    .filter(|f| *f != fence.as_bytes())
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
            }
            let mut batch = Vec::new();
            let took = tokio::time::timeout_at(deadline, self.handle.queue.take(&mut batch, 64));
            assert!(
                took.await.is_ok(),
                "{fence:?} ×{n} did not arrive within {PATIENCE:?}; got {:?}",
                self.seen
            );
            self.seen.extend(batch);
        }
    }
}

impl Cluster {
    /// Publishes `fence` to `users` from every node. A node's events reach each connection in
    /// the order it published them, but two nodes' events may interleave in any order, so a
    /// connection has everything published before on any node once it has every copy.
    fn fence(&self, users: &[UserId], fence: &str) {
        for i in 0..self.nodes.len() {
            self.publish(i, to_users(users, fence, None));
        }
    }

    /// What `conn` got before every copy of `fence` (see [`Cluster::fence`]).
    async fn fenced(&self, conn: &mut Conn, fence: &str) -> Vec<String> {
        conn.until_n(fence, self.nodes.len()).await
    }
}

/// Waits until `cond` holds, checking every few milliseconds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every connection of each user in a `Users` audience gets the frame once; others none.
pub async fn users_audience_reaches_every_connection_once(h: &dyn Harness) {
    let c = cluster(h, 3).await;
    let (a, b, outsider) = (1, 2, 3);
    let mut conns = vec![
        c.connect(0, a, 10).await,
        c.connect(1, a, 11).await,
        c.connect(2, a, 12).await,
        c.connect(1, b, 20).await,
    ];
    let mut other = c.connect(0, outsider, 30).await;
    for i in 0..c.nodes.len() {
        c.publish(i, to_users(&[a, b], &format!("hello from {i}"), None));
    }
    c.fence(&[a, b, outsider], "fence");
    for conn in &mut conns {
        let mut got = c.fenced(conn, "fence").await;
        got.sort();
        let want: Vec<String> = (0..c.nodes.len())
            .map(|i| format!("hello from {i}"))
            .collect();
        assert_eq!(got, want, "each publish once, on every connection");
    }
    assert!(
        c.fenced(&mut other, "fence").await.is_empty(),
        "not in the audience"
    );
}

/// `except` names one connection, on whichever node: it alone is skipped.
pub async fn except_skips_only_that_connection(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    let mut sender = c.connect(0, a, 10).await;
    let mut sibling = c.connect(1, a, 11).await;
    let skip = Some(sender.handle.conn);
    // Published from the other node than the skipped connection's, too.
    c.publish(1, to_users(&[a], "not for the sender", skip));
    c.fence(&[a], "fence");
    assert!(c.fenced(&mut sender, "fence").await.is_empty());
    assert_eq!(
        c.fenced(&mut sibling, "fence").await,
        ["not for the sender"]
    );
}

/// A `Session` audience reaches that login session's connections only.
pub async fn session_audience(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    let mut mine = [c.connect(0, a, 10).await, c.connect(1, a, 10).await];
    let mut other = c.connect(1, a, 11).await;
    c.publish(
        1,
        Event::Deliver(Delivery {
            audience: Audience::Session {
                user: a,
                session: 10,
            },
            entry: None,
            frame: frame("to session 10"),
            except: None,
        }),
    );
    c.fence(&[a], "fence");
    for conn in &mut mine {
        assert_eq!(c.fenced(conn, "fence").await, ["to session 10"]);
    }
    assert!(c.fenced(&mut other, "fence").await.is_empty());
}

/// Entries of one conversation published out of order, by two publishers on different nodes,
/// reach every connection in seq order.
pub async fn the_gate_orders_entries_published_out_of_order(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let (a, b) = (1, 2);
    let mut conns = [c.connect(0, a, 10).await, c.connect(1, b, 20).await];
    let conv = 7;
    // A node's order starts at the first entry it sees (see `node`): let every node see 1.
    c.publish(0, entry(&[a, b], conv, 1));
    for conn in &mut conns {
        assert!(conn.until("7:1").await.is_empty());
    }
    c.publish(1, entry(&[a, b], conv, 3));
    c.publish(0, entry(&[a, b], conv, 4));
    c.publish(1, entry(&[a, b], conv, 2));
    c.publish(0, entry(&[a, b], conv, 5));
    for conn in &mut conns {
        assert_eq!(
            conn.until("7:5").await,
            ["7:2", "7:3", "7:4"],
            "in seq order, once each"
        );
    }
}

/// Two publishers on different nodes racing, one with the odd seqs and one with the even ones,
/// each in descending runs, after the conversation's first entry: every connection still gets
/// every entry in order, once each. (A node's order for a conversation starts at the first entry
/// it sees, so the race starts once every node has seen one.)
pub async fn concurrent_publishers_are_ordered(h: &dyn Harness) {
    let c = Arc::new(cluster(h, 2).await);
    let (a, b) = (1, 2);
    let mut conns = [c.connect(0, a, 10).await, c.connect(1, b, 20).await];
    let conv = 9;
    c.publish(0, entry(&[a, b], conv, 1));
    for conn in &mut conns {
        assert!(conn.until("9:1").await.is_empty());
    }
    let publishers: Vec<_> = [0u64, 1]
        .into_iter()
        .map(|parity| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                for run in (0..200u64).step_by(20) {
                    // This publisher's seqs of the run (2..=21, 22..=41, ...), highest first.
                    for k in (0..10).rev() {
                        let seq = 2 + run + parity + 2 * k;
                        c.publish(parity as usize, entry(&[a, b], conv, seq));
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    c.publish(0, entry(&[a, b], conv, 202));
    let want: Vec<String> = (2..=201).map(|seq| format!("{conv}:{seq}")).collect();
    for conn in &mut conns {
        assert_eq!(conn.until("9:202").await, want, "in seq order, once each");
    }
}

/// An entry whose predecessor never comes is released by the sweep after the gap timeout.
pub async fn a_gap_that_never_fills_is_released(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    let mut conn = c.connect(1, a, 10).await;
    c.publish(0, entry(&[a], 8, 1));
    c.publish(0, entry(&[a], 8, 3));
    c.publish(0, to_users(&[a], "fence", None));
    assert_eq!(conn.until("fence").await, ["8:1"], "3 waits for 2");
    let started = std::time::Instant::now();
    let mut released = Vec::new();
    while released.is_empty() {
        for node in &c.nodes {
            node.sweep();
        }
        let mut batch = Vec::new();
        if let Ok(n) = tokio::time::timeout(
            Duration::from_millis(50),
            conn.handle.queue.take(&mut batch, 8),
        )
        .await
        {
            assert!(n > 0);
            released = batch;
        }
        assert!(started.elapsed() < PATIENCE, "the gap was never released");
    }
    assert_eq!(released, [frame("8:3")]);
    assert!(
        started.elapsed() >= super::node::GAP_TIMEOUT / 2,
        "released only after waiting for the gap"
    );
}

/// A room's deliveries reach the connections that entered it, on every node, until they
/// leave or close.
pub async fn room_occupants(h: &dyn Harness) {
    let c = cluster(h, 3).await;
    let (a, b) = (1, 2);
    let mut inside = [c.connect(0, a, 10).await, c.connect(2, b, 20).await];
    let mut outside = c.connect(1, a, 11).await;
    let mut leaving = c.connect(1, b, 21).await;
    for conn in inside.iter().chain([&leaving]) {
        let i = c.nodes.iter().position(|n| n.id() == conn.handle.conn.node);
        c.bus(i.expect("its node"))
            .enter_room("lobby", &conn.handle);
    }
    let room = |text: &str, except| {
        Event::Deliver(Delivery {
            audience: Audience::Room(Arc::from("lobby")),
            entry: None,
            frame: frame(text),
            except,
        })
    };
    c.publish(1, room("one", None));
    c.bus(1).leave_room("lobby", leaving.handle.conn);
    c.publish(2, room("two", Some(inside[0].handle.conn)));
    c.fence(&[a, b], "fence");
    assert_eq!(c.fenced(&mut inside[0], "fence").await, ["one"]);
    // Published on two nodes, without an entry: in either order.
    let mut both = c.fenced(&mut inside[1], "fence").await;
    both.sort();
    assert_eq!(both, ["one", "two"]);
    assert_eq!(c.fenced(&mut leaving, "fence").await, ["one"]);
    assert!(c.fenced(&mut outside, "fence").await.is_empty());
}

/// The first connection of a user anywhere is `first`, the last one to go is `last`, and
/// every node sees the user's connections.
pub async fn presence_first_and_last(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    let (one, two) = (handle(&c, 0, 10, 8), handle(&c, 1, 10, 8));
    assert!(c.bus(0).attach(a, one.clone()).await.unwrap().first);
    assert!(!c.bus(1).attach(a, two.clone()).await.unwrap().first);
    for i in 0..c.nodes.len() {
        eventually("every node counts both", || c.bus(i).connections(a) == 2).await;
    }
    assert!(
        !c.bus(0).detach(a, one.conn).await,
        "one connection is left"
    );
    assert!(c.bus(1).detach(a, two.conn).await, "the last one");
    for i in 0..c.nodes.len() {
        eventually("every node counts none", || c.bus(i).connections(a) == 0).await;
    }
}

/// Of several first connections of one user attached at the same moment (on different
/// nodes), exactly one is `first`; of their detaches at the same moment, exactly one is `last`.
pub async fn racing_first_connections_make_one_first(h: &dyn Harness) {
    let c = Arc::new(cluster(h, 2).await);
    for round in 0..50 {
        let user = 100 + round;
        let handles: Vec<ConnHandle> = (0..MAX_PER_USER).map(|k| handle(&c, k, 10, 8)).collect();
        let attaches: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(k, handle)| {
                let (c, handle) = (Arc::clone(&c), handle.clone());
                tokio::spawn(async move { c.bus(k).attach(user, handle).await.unwrap().first })
            })
            .collect();
        let mut first = 0;
        for t in attaches {
            first += usize::from(t.await.unwrap());
        }
        assert_eq!(first, 1, "round {round}: exactly one attach is the first");
        let detaches: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(k, handle)| {
                let (c, conn) = (Arc::clone(&c), handle.conn);
                tokio::spawn(async move { c.bus(k).detach(user, conn).await })
            })
            .collect();
        let mut last = 0;
        for t in detaches {
            last += usize::from(t.await.unwrap());
        }
        assert_eq!(last, 1, "round {round}: exactly one detach is the last");
    }
}

/// A kick closes every connection of that session, on every node, and no other.
pub async fn kicks_close_one_session_everywhere(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    let kicked = [c.connect(0, a, 10).await, c.connect(1, a, 10).await];
    let kept = c.connect(1, a, 11).await;
    c.publish(
        1,
        Event::Kick {
            user: a,
            session: 10,
            code: CloseCode::AuthRevoked,
        },
    );
    for conn in &kicked {
        let kick = Arc::clone(&conn.handle.kick);
        tokio::time::timeout(PATIENCE, kick.kicked())
            .await
            .expect("kicked");
        assert_eq!(kick.code(), Some(CloseCode::AuthRevoked));
    }
    let mut kept = kept;
    c.publish(0, to_users(&[a], "fence", None));
    kept.until("fence").await;
    assert_eq!(kept.handle.kick.code(), None, "another session stays open");
}

/// A connection whose queue is full is kicked as a slow consumer and counted; the others
/// still get everything.
pub async fn a_full_queue_is_kicked_and_counted(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let (a, b) = (1, 2);
    let slow = c.connect_with(1, a, 10, 2).await;
    let mut fast = c.connect(0, b, 20).await;
    for k in 0..3 {
        c.publish(0, to_users(&[a, b], &format!("m{k}"), None));
    }
    c.publish(0, to_users(&[b], "fence", None));
    assert_eq!(fast.until("fence").await, ["m0", "m1", "m2"]);
    let kick = Arc::clone(&slow.handle.kick);
    tokio::time::timeout(PATIENCE, kick.kicked())
        .await
        .expect("the slow consumer was kicked");
    assert_eq!(kick.code(), Some(CloseCode::SlowConsumer));
    assert!(
        c.metrics
            .render()
            .contains("banter_queue_overflows_total 1"),
        "the overflow is counted"
    );
}

/// An invalidation reaches every node's caches; the publishing node's before `publish`
/// returns (a request's own next read sees its change).
pub async fn invalidations_reach_every_node(h: &dyn Harness) {
    let c = cluster(h, 3).await;
    let what = Invalidation::Relation(1, 2);
    c.publish(1, Event::Invalidate(what.clone()));
    let seen = |i: usize| c.caches[i].0.lock().expect("recorder lock").clone();
    assert_eq!(
        seen(1 % c.nodes.len()),
        std::slice::from_ref(&what),
        "at once on the publisher"
    );
    for i in 0..c.nodes.len() {
        eventually("every node invalidates", || !seen(i).is_empty()).await;
        assert_eq!(
            seen(i),
            std::slice::from_ref(&what),
            "node {i}: once, and nothing else"
        );
    }
}

/// The per-user connection limit counts every node's connections.
pub async fn the_connection_limit_holds(h: &dyn Harness) {
    let c = cluster(h, 2).await;
    let a = 1;
    for k in 0..MAX_PER_USER {
        c.connect(k, a, 10).await;
    }
    for i in 0..c.nodes.len() {
        eventually("every node counts them", || {
            c.bus(i).connections(a) == MAX_PER_USER
        })
        .await;
        assert!(!c.bus(i).has_room(a), "full on node {i}");
        let extra = handle(&c, i, 10, 8);
        assert!(
            c.bus(i).attach(a, extra).await.is_err(),
            "refused on node {i}"
        );
    }
}
