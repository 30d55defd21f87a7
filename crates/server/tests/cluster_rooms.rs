//! Chatrooms across a cluster of three real nodes (one PostgreSQL database, the shared NATS):
//! 2,000 occupants spread over the nodes, senders on every node at once; every occupant gets
//! every message once, in `seq` order, the seqs have no gaps, the occupancy count converges to
//! the cluster-wide number on every node, and a late joiner on any node gets the same window.
//! And a node that stops heartbeating has its occupants dropped from every node's count.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use banter_client::protocol::{ClientRequest as R, RoomAck, RoomJoined};
use banter_client::{Connection, Event};
use banter_server::bus::nats::{presence, settle, wire};
use banter_server::bus::{self, NodeId, RoomCount, RoomCounts};
use banter_server::services::rooms::cluster::STALE;
use common::cluster::TestCluster;
use common::{TestUser, ok};
use futures_util::{StreamExt, stream};
use serde_json::Value;

const NODES: usize = 3;
const USERS: usize = 200;
const DEVICES: usize = 10;
/// Connections that send, spread over the nodes.
const SENDERS: usize = 6;
/// Messages each sender sends.
const EACH: usize = 20;
const ROOM: &str = "lobby";
const DEADLINE: Duration = Duration::from_secs(120);

/// The next event within what is left of `deadline`.
async fn next_event(conn: &mut Connection, deadline: Instant) -> Event {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, conn.next_event())
        .await
        .expect("an event before the deadline")
        .expect("connection open")
}

/// Waits until `conn` is told the room has `want` occupants.
async fn count_becomes(conn: &mut Connection, want: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Event::RoomOccupancy { count, .. } = next_event(conn, deadline).await
            && count == want
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_occupants_on_three_nodes_agree_on_seq_order_window_and_count() {
    let cluster = TestCluster::start_with(NODES, |c| {
        c.room_occupancy_interval_ms = 50;
        c.max_connections_per_user = DEVICES + 1;
    })
    .await;
    let started = Instant::now();
    let node0 = cluster.node(0);
    let users: Vec<TestUser> = stream::iter(0..USERS)
        .map(|u| async move { node0.user(&format!("occupant{u:03}")).await })
        .buffer_unordered(16)
        .collect()
        .await;
    let registered = started.elapsed();

    // Connection k is user k % 200's, on node k % 3 (so one user's devices are on every node,
    // and connections opened at once are different users'); every one joins the room.
    let total = USERS * DEVICES;
    let mut conns: Vec<(usize, Connection)> = stream::iter(0..total)
        .map(|k| {
            let (node, user) = (cluster.node(k), &users[k % USERS]);
            async move {
                let conn = node.connect(user).await;
                let joined: RoomJoined = ok(&conn, R::RoomJoin { room: ROOM.into() }).await;
                assert!(joined.count <= total && joined.recent.is_empty());
                (k, conn)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    conns.sort_by_key(|(k, _)| *k);
    let joined_at = started.elapsed();

    // The count converges to 2,000 on every node (the first connection of each).
    for (_, conn) in conns.iter_mut().take(NODES) {
        count_becomes(conn, total).await;
    }
    let converged = started.elapsed();

    // What the sends cost on NATS: events, counter writes (attempts, the refused included)
    // and counter reads, seen by a bystander subscribed to their subjects.
    let nats = common::nats::connect().await;
    let bucket = banter_server::bus::nats::counter::bucket(&cluster.name);
    let watched = [
        format!("{}.events", cluster.name),
        format!("$KV.{bucket}.>"),
        format!("$JS.API.DIRECT.GET.KV_{bucket}.>"),
    ];
    let mut tallies = Vec::new();
    // Set once every message was delivered: each tally then ends after 3 s of silence.
    let (delivered_all, _) = tokio::sync::watch::channel(false);
    for subject in watched {
        let mut sub = nats.subscribe(subject).await.unwrap();
        let mut done = delivered_all.subscribe();
        tallies.push(tokio::spawn(async move {
            let (mut deliveries, mut all) = (0usize, 0usize);
            loop {
                let quiet = async {
                    _ = done.wait_for(|d| *d).await;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                };
                let m = tokio::select! {
                    m = sub.next() => m.expect("the bystander's subscription stays open"),
                    () = quiet => break,
                };
                all += 1;
                // A room message (with its seq); occupancy notices, which a node also
                // broadcasts when a count changes, are other events.
                let message = matches!(
                    banter_server::bus::nats::wire::decode(m.payload),
                    Ok(banter_server::bus::Event::Deliver(d)) if d.entry.is_some()
                );
                deliveries += usize::from(message);
            }
            (deliveries, all)
        }));
    }
    settle(&nats).await.unwrap();

    // Senders on every node send at once; everyone else (the senders too) reads.
    let senders: Vec<(usize, Connection)> = conns.drain(..SENDERS).collect();
    let n = SENDERS * EACH;
    let readers: Vec<_> = senders
        .into_iter()
        .chain(conns)
        .map(|(k, mut conn)| {
            let sending = k < SENDERS;
            tokio::spawn(async move {
                let deadline = Instant::now() + DEADLINE;
                let mut acks = Vec::new();
                let mut got = Vec::new();
                if sending {
                    for i in 0..EACH {
                        let ack: RoomAck = ok(
                            &conn,
                            R::RoomSend {
                                room: ROOM.into(),
                                client_msg_id: format!("c{k}-{i}"),
                                text: format!("from {k}: {i}"),
                            },
                        )
                        .await;
                        assert!(!ack.duplicate);
                        acks.push(ack.seq);
                    }
                }
                while got.len() + acks.len() < n {
                    if let Event::RoomMessage { message, .. } =
                        next_event(&mut conn, deadline).await
                    {
                        got.push(message.seq);
                    }
                }
                (k, acks, got, conn)
            })
        })
        .collect();
    let mut all_acks = Vec::new();
    let mut conns = Vec::with_capacity(total);
    let expected: BTreeSet<u64> = (1..=n as u64).collect();
    for task in readers {
        let (k, acks, got, conn) = task.await.expect("reader");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "connection {k} (node {}) got messages out of order or twice: {got:?}",
            k % NODES
        );
        let seen: BTreeSet<u64> = got.iter().chain(&acks).copied().collect();
        assert_eq!(
            seen.len(),
            n,
            "connection {k}: a message twice (or its own)"
        );
        assert_eq!(seen, expected, "connection {k} missed a message");
        all_acks.extend(acks);
        conns.push(conn);
    }
    all_acks.sort_unstable();
    assert_eq!(
        all_acks,
        (1..=n as u64).collect::<Vec<_>>(),
        "the room's seqs are given out once each, without gaps"
    );
    let delivered = started.elapsed();
    delivered_all.send_replace(true);
    let mut tallied = Vec::new();
    for t in tallies {
        tallied.push(t.await.unwrap());
    }
    let [(deliveries, events), (_, writes), (_, reads)] = tallied[..] else {
        unreachable!()
    };
    assert_eq!(deliveries, n, "one event per room send");
    eprintln!(
        "{n} sends on NATS: {deliveries} message events (+{} other events), {writes} counter \
         writes (so {} lost races), {reads} counter reads",
        events - deliveries,
        writes - n
    );

    // A late joiner on every node: the cluster-wide count and the same window.
    let late = node0.user("latecomer").await;
    let mut windows = Vec::new();
    for i in 0..NODES {
        let conn = cluster.node(i).connect(&late).await;
        let joined: RoomJoined = ok(&conn, R::RoomJoin { room: ROOM.into() }).await;
        assert_eq!(joined.count, total + i + 1, "room_joined.count on node {i}");
        let window: Vec<(u64, String, String)> = joined
            .recent
            .into_iter()
            .map(|m| (m.seq, m.id, m.text))
            .collect();
        windows.push(window);
        // Every node counts it before the next one joins.
        for conn in conns.iter_mut().take(NODES) {
            count_becomes(conn, total + i + 1).await;
        }
        conns.push(conn);
    }
    let history = windows[0].len();
    assert!(history > 0 && history <= n);
    let tail: Vec<u64> = ((n - history + 1) as u64..=n as u64).collect();
    assert_eq!(windows[0].iter().map(|w| w.0).collect::<Vec<_>>(), tail);
    assert_eq!(windows[1], windows[0], "node 1's window");
    assert_eq!(windows[2], windows[0], "node 2's window");

    // Leaving is counted on every node as well.
    let leaver = conns.pop().expect("the last late joiner");
    let _: Value = ok(&leaver, R::RoomLeave { room: ROOM.into() }).await;
    for conn in conns.iter_mut().take(NODES) {
        count_becomes(conn, total + NODES - 1).await;
    }
    eprintln!(
        "registered {USERS} users in {registered:?}; {total} joined by {joined_at:?}; \
         count converged by {converged:?}; {n} messages to everyone by {delivered:?}"
    );
    drop(conns);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_occupants_are_dropped_from_every_count() {
    let cluster = TestCluster::start_with(2, |c| c.room_occupancy_interval_ms = 50).await;
    let user = cluster.node(0).user("watcher").await;
    let mut conns = Vec::new();
    for i in 0..2 {
        let conn = cluster.node(i).connect(&user).await;
        let _: RoomJoined = ok(&conn, R::RoomJoin { room: ROOM.into() }).await;
        conns.push(conn);
    }
    for conn in &mut conns {
        count_becomes(conn, 2).await;
    }
    // A third node (a bare NATS client speaking the bus's wire) says it is alive and has 100
    // occupants in the room, then falls silent.
    let nats = common::nats::connect().await;
    let ghost = NodeId(0x6057);
    let beat = bytes::Bytes::copy_from_slice(&ghost.0.to_le_bytes());
    nats.publish(format!("{}.heartbeats", cluster.name), beat)
        .await
        .unwrap();
    let counts = bus::Event::RoomCounts(RoomCounts {
        node: ghost,
        rooms: Arc::from([RoomCount {
            room: Arc::from(ROOM),
            count: 100,
            joined: vec![],
            left: vec![],
        }]),
    });
    nats.publish(format!("{}.events", cluster.name), wire::encode(&counts))
        .await
        .unwrap();
    settle(&nats).await.unwrap();
    let silent = Instant::now();
    for conn in &mut conns {
        count_becomes(conn, 102).await;
    }
    // Judged dead after NODE_TIMEOUT: its occupants go, before a stale count would.
    for conn in &mut conns {
        count_becomes(conn, 2).await;
    }
    let gone = silent.elapsed();
    assert!(
        gone >= presence::NODE_TIMEOUT && gone < STALE,
        "dropped after {gone:?}"
    );
    drop(conns);
    cluster.stop().await;
}
