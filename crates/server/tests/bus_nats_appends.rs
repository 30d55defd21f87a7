//! Group appends forwarded to their writer over NATS (`bus::nats::appends`), between two real
//! NATS buses on the NATS server of this machine (`BANTER_TEST_NATS`), the writer appending to
//! a real SQLite store: outcomes come back in order, each new one delivered by the writer with
//! the sender's connection left out (and the answer says whether it was), a repeat comes back
//! as the duplicate and is not delivered again, and a writer that is not serving (yet, or at
//! all) is refused at once instead of waited for, and is no group's writer until its
//! heartbeats say it serves.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use banter_server::bus::nats::appends::FORWARD_TIMEOUT;
use banter_server::bus::nats::wire;
use banter_server::bus::nats::{NatsBus, settle};
use banter_server::bus::node::{Caches, Node};
use banter_server::bus::{AppendWriter, Audience, Bus, ConnId, Delivery, Event, Invalidation};
use banter_server::config::SqliteSync;
use banter_server::metrics::Metrics;
use banter_server::registry::{NodeId, Registry};
use banter_server::store::sqlite::{SqliteOptions, SqliteStore};
use banter_server::store::{
    Appended, EntryKind, NewMessage, PendingAppend, Store, StoreResult, UserId,
};
use bytes::Bytes;
use futures_util::StreamExt;

use common::nats;

struct NoCaches;
impl Caches for NoCaches {
    fn invalidate(&self, _: &Invalidation) {}
    fn invalidate_all(&self) {}
}

/// Appends to a store, as a node's messaging service does for its peers, and notes what it
/// delivers: every other entry it is asked to.
struct StoreWriter {
    store: Arc<dyn Store>,
    asked: AtomicUsize,
    delivered: Mutex<Vec<(u64, Option<ConnId>)>>,
}

#[async_trait]
impl AppendWriter for StoreWriter {
    async fn queue(&self, message: NewMessage) -> StoreResult<PendingAppend> {
        self.store.queue_append(message).await
    }

    async fn delivery(&self, appended: &Appended, except: Option<ConnId>) -> Option<Event> {
        let seq = appended.message.seq;
        let n = self.asked.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(2) {
            return None;
        }
        self.delivered.lock().unwrap().push((seq, except));
        Some(Event::Deliver(Delivery {
            audience: Audience::Users(Arc::from([])),
            entry: Some((appended.message.conv, seq)),
            frame: Bytes::new(),
            except,
        }))
    }
}

fn text(conv: i64, sender: UserId, key: &str) -> NewMessage {
    NewMessage {
        conv,
        sender,
        client_msg_id: key.to_owned(),
        text: format!("text {key}"),
        kind: EntryKind::Text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_appends_come_back_in_order_and_a_silent_writer_is_refused_at_once() {
    let cluster = nats::fresh_cluster();
    let metrics = Arc::new(Metrics::default());
    let mut buses = Vec::new();
    for _ in 0..2 {
        let node = Arc::new(Node::new(
            NodeId::random(),
            Registry::new(8, Arc::clone(&metrics)),
            Arc::new(NoCaches),
        ));
        let bus = NatsBus::connect(&nats::url(), &cluster, node, 8)
            .await
            .unwrap_or_else(|e| {
                panic!("{e}\nstart NATS with `scripts/services.sh` (or set BANTER_TEST_NATS)")
            });
        buses.push(Arc::new(bus));
    }
    let (a, b) = (&buses[0], &buses[1]);
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        write_batch_max: 256,
        synchronous: SqliteSync::Normal,
        readers: 2,
        quick_check: true,
    };
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path(), &options, Arc::clone(&metrics)).unwrap());
    let alice = store.create_user("alice", "x").await.unwrap().id;
    let bob = store.create_user("bob", "x").await.unwrap().id;
    let conv = store.direct_conversation(alice, bob).await.unwrap();

    // Not serving yet: refused at once, and nothing stored.
    let started = Instant::now();
    let sender = ConnId {
        node: a.node(),
        local: 7,
    };
    let reply = a
        .forward_append(b.node(), &text(conv, alice, "early"), Some(sender))
        .await;
    assert!(
        reply.unwrap().await.is_none(),
        "a writer not serving refuses"
    );
    assert!(
        started.elapsed() < FORWARD_TIMEOUT,
        "refused, not timed out"
    );
    assert_eq!(store.last_seq(conv).await.unwrap(), 0);

    let writer = Arc::new(StoreWriter {
        store: Arc::clone(&store),
        asked: AtomicUsize::new(0),
        delivered: Mutex::default(),
    });
    b.serve_appends(Arc::clone(&writer) as Arc<dyn AppendWriter>);
    // A bystander sees the writer's deliveries and answers in the order they left it.
    let bystander = nats::connect().await;
    let mut seen = bystander.subscribe(format!("{cluster}.>")).await.unwrap();
    settle(&bystander).await.unwrap();
    // Twenty forwards made one after another, awaited only afterwards, commit in that order.
    let mut replies = Vec::new();
    for k in 0..20 {
        let key = format!("k{k}");
        replies.push(
            a.forward_append(b.node(), &text(conv, alice, &key), Some(sender))
                .await
                .unwrap(),
        );
    }
    let (mut seqs, mut said_delivered) = (Vec::new(), Vec::new());
    for r in replies {
        let forwarded = r.await.expect("the writer answers");
        let appended = forwarded.appended;
        assert!(!appended.duplicate);
        assert_eq!(appended.message.conv, conv);
        if forwarded.delivered {
            said_delivered.push((appended.message.seq, Some(sender)));
        }
        seqs.push(appended.message.seq);
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    let mut delivered = writer.delivered.lock().unwrap().clone();
    delivered.sort_unstable();
    assert_eq!(said_delivered.len(), 10, "half the audiences were known");
    assert_eq!(
        delivered, said_delivered,
        "each entry the writer said it delivered, once, but to its sender"
    );
    // Each answer that says "delivered" comes after its delivery.
    let (mut events, mut answers) = (Vec::new(), 0);
    while answers < 20 {
        let m = tokio::time::timeout(Duration::from_secs(5), seen.next())
            .await
            .expect("the bystander sees all twenty answers")
            .unwrap();
        if m.subject.ends_with(".events") {
            if let Ok(Event::Deliver(d)) = wire::decode(m.payload) {
                events.push(d.entry.unwrap().1);
            }
        } else if m.subject.contains(".appended.") {
            answers += 1;
            let answer = wire::decode_appended(m.payload).unwrap();
            if answer.delivered {
                let seq = answer.appended.message.seq;
                assert!(
                    events.contains(&seq),
                    "the answer for {seq} overtook its delivery"
                );
            }
        }
    }
    events.sort_unstable();
    let want: Vec<u64> = said_delivered.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(events, want, "one event per delivered entry");
    // Gone, so that the subjects of nodes nobody serves have no responders again.
    seen.unsubscribe().await.unwrap();
    settle(&bystander).await.unwrap();
    // A repeat comes back as the original.
    let again = a
        .forward_append(b.node(), &text(conv, alice, "k3"), None)
        .await
        .unwrap();
    let again = again.await.expect("answered");
    assert!(!again.delivered, "a repeat is not delivered again");
    assert_eq!(writer.delivered.lock().unwrap().len(), 10);
    let again = again.appended;
    assert!(again.duplicate);
    assert_eq!(
        (again.message.seq, again.message.text.as_str()),
        (4, "text k3")
    );
    assert_eq!(store.last_seq(conv).await.unwrap(), 20);

    // A node nobody serves: NATS says so at once.
    let started = Instant::now();
    let gone = a
        .forward_append(NodeId(0x5eed), &text(conv, alice, "lost"), None)
        .await;
    assert!(gone.unwrap().await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no responders, no wait"
    );

    // A node that does not serve is nobody's writer: until `a` serves, `b` writes everything.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(0..200).all(|c| a.writer(c) == Some(b.node()) && b.writer(c).is_none()) {
        assert!(
            Instant::now() < deadline,
            "b never became every group's writer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.serve_appends(Arc::clone(&writer) as Arc<dyn AppendWriter>);
    // Both nodes name the same writer for every group, once they heard each other serve.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let agree = (0..200).all(|c| match (a.writer(c), b.writer(c)) {
            (Some(w), None) => w == b.node(),
            (None, Some(w)) => w == a.node(),
            _ => false,
        });
        let a_writes = (0..200).filter(|c| a.writer(*c).is_none()).count();
        if agree && (50..150).contains(&a_writes) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed on writers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for bus in &buses {
        bus.close().await;
    }
    store.close().await;
    nats::remove_clusters(vec![cluster]);
}
