//! The SDK's failover across the nodes of a cluster: a `Messenger` given several endpoints
//! moves to another node when its own goes away, catches up there, and misses nothing; it skips
//! an endpoint nobody listens on; and a send retried through another node is stored once.
//!
//! The nodes are two real servers on one PostgreSQL scratch database (`BANTER_TEST_POSTGRES`,
//! by default `postgres://root@127.0.0.1:5432/test`; without it the tests fail, never skip).
//! There is no bus between the nodes yet, so a message taken by one node is pushed live only to
//! connections on that node: a receiver on the other node gets it through `sync`, which the
//! messenger runs after every (re)connect. The tests lean on exactly that, and no more.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_client::protocol::Message;
use banter_client::{Messenger, Target};
use common::postgres::{Database, admin_url};
use common::{TestServer, start_server, start_with};
use tokio::time::Instant;

/// Starts a test server whose store is the PostgreSQL database at `url`.
async fn start_on(url: &str) -> TestServer {
    start_with(|c| c.store = url.into()).await
}

/// A `host:port` on loopback where nobody listens (bound, then released).
fn dead_endpoint() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string()
}

/// Acknowledged sends, in the order they were acknowledged: (client_msg_id, seq).
type Acks = Arc<Mutex<Vec<(String, u64)>>>;

/// Polls `acks` until it holds at least `n`, failing after `within`.
async fn acked_at_least(acks: &Acks, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while acks.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "timed out waiting for {n} acks");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The receiver's next message, failing the test at `deadline` (saying how far it got).
async fn next_before(receiver: &mut Messenger, deadline: Instant, so_far: usize) -> Message {
    tokio::time::timeout_at(deadline, receiver.next_message())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out after {so_far} messages, on {}",
                receiver.endpoint()
            )
        })
        .expect("the receiver keeps going")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_fails_over_to_the_other_node_and_gets_every_message_once_in_order() {
    let db = Database::create(&admin_url()).await;
    let (a, b) = tokio::join!(start_on(&db.url), start_on(&db.url));
    let alice = b.user("alice").await;
    let bob = b.user("bob").await;
    let (a_addr, b_addr) = (a.addr.clone(), b.addr.clone());

    // Bob's receiver is given both nodes and lands on the first, A.
    let mut receiver = Messenger::connect_any(&[&a_addr, &b_addr], &bob.token)
        .await
        .expect("the receiver connects");
    assert_eq!(receiver.endpoint(), a_addr);
    assert_eq!(receiver.endpoints(), [a_addr.clone(), b_addr.clone()]);

    // Alice sends to Bob through B without pause, recording each acknowledgement.
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (conn, acks, stop) = (
            b.connect(&alice).await,
            Arc::clone(&acks),
            Arc::clone(&stop),
        );
        let to_bob = Target::User(bob.id.clone());
        async move {
            let mut i = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("m{i}");
                let ack = conn
                    .send_text(&to_bob, &key, &key)
                    .await
                    .expect("send on B");
                acks.lock().unwrap().push((key, ack.seq));
                i += 1;
                // Pacing, not waiting for anything: a steady stream rather than a flood.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    acked_at_least(&acks, 30, Duration::from_secs(20)).await;

    // A goes away mid-stream (graceful shutdown closes Bob's socket with 1001). Nobody tells
    // the receiver where to go: its next `next_message` reconnects, to B, and syncs.
    let acked_before = acks.lock().unwrap().len();
    let a_stopped = tokio::spawn(a.stop());

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got: Vec<Message> = Vec::new();
    let mut acked_at_failover: Option<usize> = None;
    let total = loop {
        got.push(next_before(&mut receiver, deadline, got.len()).await);
        if receiver.endpoint() != b_addr {
            continue;
        }
        let acked = acks.lock().unwrap().len();
        // Let the stream go on for a while once on B, so its tail arrives as live pushes there
        // (racing the catch-up's sync pages), then stop it: the acks are final.
        if acked >= *acked_at_failover.get_or_insert(acked) + 30 {
            stop.store(true, Ordering::Relaxed);
            sender.await.expect("the sender finishes");
            break acks.lock().unwrap().len();
        }
    };
    while got.len() < total {
        got.push(next_before(&mut receiver, deadline, got.len()).await);
    }
    a_stopped.await.expect("A stops");

    // Every acknowledged message, once each, in seq order, with nothing else in between.
    let acks = acks.lock().unwrap().clone();
    assert!(
        acked_before >= 30 && total > acked_before,
        "sends before ({acked_before}) and after ({total}) A went away"
    );
    let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<Vec<_>>(),
        "in order, gap-free"
    );
    // Alice is the only sender, so her acks run 1..=total too: the two lists are comparable.
    let received: Vec<(String, u64)> = got
        .iter()
        .map(|m| (m.client_msg_id.clone(), m.seq))
        .collect();
    assert_eq!(received, acks, "exactly the acknowledged messages");
    let ids: HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), total, "no message twice");
    assert!(got.iter().all(|m| m.sender == alice.id));
    assert_eq!(receiver.endpoint(), b_addr);
    assert!(receiver.reconnects() >= 1);
    // Its cursor stands at the last acknowledged seq: held by the app, not by the node.
    assert_eq!(
        receiver.cursors().get(&got[0].conversation),
        Some(&(total as u64))
    );
    drop(receiver);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_first_is_skipped_for_the_live_one() {
    let server = start_server().await;
    let bob = server.user("bob").await;
    let dead = dead_endpoint();

    let mut messenger = tokio::time::timeout(
        Duration::from_secs(10),
        Messenger::connect_any(&[&dead, &server.addr], &bob.token),
    )
    .await
    .expect("connects without waiting on the dead endpoint")
    .expect("the live endpoint lets us in");
    assert_eq!(messenger.endpoint(), server.addr);
    assert!(messenger.connection().is_some());

    // It works there: a message Alice sends Bob arrives through it.
    let alice = server.user("alice").await;
    let a = server.connect(&alice).await;
    let ack = a
        .send_text(&Target::User(bob.id.clone()), "k1", "through the live node")
        .await
        .expect("send");
    let got = tokio::time::timeout(Duration::from_secs(10), messenger.next_message())
        .await
        .expect("a message within 10 s")
        .expect("the messenger delivers");
    assert_eq!(
        (got.seq, got.id.as_str()),
        (ack.seq, ack.message_id.as_str())
    );

    // Only dead endpoints: the connect fails (transiently) instead of hanging.
    let failed = tokio::time::timeout(
        Duration::from_secs(10),
        Messenger::connect_any(&[dead_endpoint(), dead_endpoint()], &bob.token),
    )
    .await
    .expect("gives up after one pass");
    assert!(
        matches!(&failed, Err(e) if e.is_transient()),
        "{:?}",
        failed.err()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_retried_after_failover_is_stored_once() {
    let db = Database::create(&admin_url()).await;
    let (a, b) = tokio::join!(start_on(&db.url), start_on(&db.url));
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let b_addr = b.addr.clone();
    let mut sender = Messenger::connect_any(&[&a.addr, &b_addr], &alice.token)
        .await
        .expect("the sender connects");
    let to_bob = Target::User(bob.id.clone());
    let first = sender
        .send_with_id(&to_bob, "k1", "once")
        .await
        .expect("send on A");
    assert!(!first.duplicate);

    // A goes away; the same send again (as after a lost acknowledgement) fails over to B,
    // which finds it in the shared database. (A waits for its sessions to end, and the
    // messenger ends its socket on A only when used: the two run side by side.)
    let a_stopped = tokio::spawn(a.stop());
    // (The messenger retries a dead node for ever, so the deadline is the test's.)
    let again = tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_with_id(&to_bob, "k1", "once"),
    )
    .await
    .unwrap_or_else(|_| panic!("no failover within 20 s, on {}", sender.endpoint()))
    .expect("the retry goes through B");
    assert_eq!(sender.endpoint(), b_addr);
    assert_eq!(
        (again.duplicate, again.seq, &again.message_id),
        (true, first.seq, &first.message_id)
    );
    let next = sender
        .send_with_id(&to_bob, "k2", "twice")
        .await
        .expect("a new send on B");
    assert_eq!((next.duplicate, next.seq), (false, first.seq + 1));
    a_stopped.await.expect("A stops");
    drop(sender);
    b.stop().await;
}
