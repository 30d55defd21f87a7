//! Two connections on one node pipeline sends to one group while the group's writer, another
//! node, shuts down (`services::messaging::writers`): each connection's sends commit in the
//! order it sent them, every acknowledged send is stored once, and the group's seqs stay
//! gap-free through the change of writer.
//!
//! Needs PostgreSQL (`BANTER_TEST_POSTGRES`) and NATS (`BANTER_TEST_NATS`) on this machine;
//! without them the test fails, it never skips.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use banter_client::protocol::{GroupInfo, SendAck};
use banter_client::{Connection, Target};
use common::cluster::TestCluster;
use common::{create_group, ok};
use tokio::time::Instant;

/// Sends a connection keeps in flight.
const WINDOW: usize = 8;
/// How long the senders go on after the writer stopped: past the 3 s in which the others
/// still count it (`HEARD_WITHIN`) and the 3 s a writer that failed a forward is shunned.
const AFTER_STOP: Duration = Duration::from_secs(7);

/// Sends rounds of `WINDOW` pipelined messages tagged `tag` from `conn` until `AFTER_STOP`
/// after `stopped` is set; returns the acks in the order sent, and how many were acknowledged
/// when it saw `stopped`.
async fn pipeline(
    mut conn: Connection,
    to: Target,
    tag: &str,
    stopped: Arc<AtomicBool>,
) -> (Vec<SendAck>, usize) {
    // The other sender's pushes are read, or the connection would stall and close.
    let mut events = conn.take_events();
    let last = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&last);
    let reader = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let mut l = seen.lock().unwrap();
            l.push(format!("{e:?}").chars().take(300).collect());
            if l.len() > 3 {
                l.remove(0);
            }
        }
    });
    let mut acks = Vec::new();
    let mut stop_seen: Option<(Instant, usize)> = None;
    while stop_seen.is_none_or(|(at, _)| at.elapsed() < AFTER_STOP) {
        if stop_seen.is_none() && stopped.load(Ordering::Relaxed) {
            stop_seen = Some((Instant::now(), acks.len()));
        }
        let base = acks.len();
        // Made in order, polled first in order: written in order on the one socket.
        let sends = (0..WINDOW).map(|k| {
            let (conn, to) = (&conn, &to);
            let key = format!("{tag}-{}", base + k);
            async move { conn.send_text(to, &key, &key).await }
        });
        for ack in futures_util::future::join_all(sends).await {
            let ack = ack.unwrap_or_else(|e| {
                panic!(
                    "{tag}'s send {} after {:?} of the stop: {e}; last events {:?}",
                    acks.len(),
                    stop_seen.map(|(at, _)| at.elapsed()),
                    last.lock().unwrap()
                )
            });
            assert!(!ack.duplicate);
            acks.push(ack);
        }
    }
    reader.abort();
    (acks, stop_seen.map_or(0, |(_, n)| n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_sends_keep_each_connections_order_through_a_change_of_writer() {
    let mut cluster = TestCluster::start(3).await;
    let alice = cluster.node(0).user("alice").await;
    let bob = cluster.node(0).user("bob").await;
    let carol = cluster.node(1).user("carol").await;
    let a0 = cluster.node(0).connect(&alice).await;
    // A group that node 2 writes: node 0 hands node 2 its appends.
    // The nodes agree on writers once they heard each other's first heartbeats.
    let (mut tries, deadline) = (0, Instant::now() + Duration::from_secs(15));
    let (group, conv) = loop {
        tries += 1;
        assert!(
            tries <= 300 && Instant::now() < deadline,
            "no group written by node 2 in {tries}"
        );
        let group: GroupInfo = ok(
            &a0,
            create_group(&format!("g{tries}"), &[&bob, &carol], false),
        )
        .await;
        let conv: i64 = group.id.parse().unwrap();
        let before = cluster
            .node(2)
            .metric("banter_appends_written_for_peers_total")
            .await;
        let probe = format!("probe-{tries}");
        a0.send_text(&Target::Conversation(group.id.clone()), &probe, &probe)
            .await
            .unwrap();
        let after = cluster
            .node(2)
            .metric("banter_appends_written_for_peers_total")
            .await;
        if after > before {
            break (group, conv);
        }
    };
    let b0 = cluster.node(0).connect(&bob).await;
    let to = Target::Conversation(group.id.clone());
    let stopped = Arc::new(AtomicBool::new(false));
    let senders = [("a", a0), ("b", b0)].map(|(tag, conn)| {
        let (to, stopped) = (to.clone(), Arc::clone(&stopped));
        tokio::spawn(async move { (tag, pipeline(conn, to, tag, stopped).await) })
    });
    // Node 2 stops once both are under way through it.
    let forwarded = cluster
        .node(0)
        .metric("banter_appends_forwarded_total")
        .await;
    let goal = forwarded + 4 * WINDOW as u64;
    let within = Duration::from_secs(20);
    let now = cluster
        .node(0)
        .metric_until("banter_appends_forwarded_total", |n| n >= goal, within)
        .await;
    assert!(now >= goal, "node 0 forwarded only {now} of {goal} appends");
    let mut nodes = std::mem::take(&mut cluster.nodes);
    let writer = nodes.pop().expect("node 2");
    let written_by_2 = writer
        .metric("banter_appends_written_for_peers_total")
        .await;
    writer.stop().await;
    stopped.store(true, Ordering::Relaxed);
    let mut acks: HashMap<&str, Vec<SendAck>> = HashMap::new();
    for s in senders {
        let (tag, (got, before_stop)) = s.await.unwrap();
        assert!(
            got.len() >= before_stop + 2 * WINDOW,
            "{tag}: {} of its sends acknowledged after the writer stopped",
            got.len() - before_stop
        );
        acks.insert(tag, got);
    }
    // Each connection's sends committed in the order it made them.
    for (tag, got) in &acks {
        let seqs: Vec<u64> = got.iter().map(|a| a.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{tag}'s sends committed out of order: {seqs:?}"
        );
    }
    // Stored once each, gap-free: the creation entry, the probes, then these.
    let store = &nodes[0].store;
    let last = store.last_seq(conv).await.unwrap();
    let stored = store
        .messages_after(conv, 0, 100_000, usize::MAX)
        .await
        .unwrap();
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<u64>>(), "gap-free");
    let mut by_key: HashMap<&str, u64> = HashMap::new();
    for m in stored.iter().filter(|m| !m.client_msg_id.is_empty()) {
        let first = by_key.insert(&m.client_msg_id, m.seq);
        assert_eq!(first, None, "{} stored twice", m.client_msg_id);
    }
    let sent = acks.values().map(Vec::len).sum::<usize>();
    assert_eq!(
        last as usize,
        2 + sent,
        "the creation, the probe, every acknowledged send"
    );
    for (tag, got) in &acks {
        for (k, ack) in got.iter().enumerate() {
            assert_eq!(by_key.get(format!("{tag}-{k}").as_str()), Some(&ack.seq));
        }
    }
    // Node 2 wrote what came before its stop; the rest was written elsewhere.
    assert!(written_by_2 > 4 * WINDOW as u64);
    assert!(written_by_2 < 1 + sent as u64, "the writer changed");
    for node in nodes {
        node.stop().await;
    }
}
