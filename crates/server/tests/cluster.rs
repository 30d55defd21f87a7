//! Three real nodes on one PostgreSQL database and NATS, clients spread over all of them: a
//! 1:1 conversation between devices on different nodes and a 500-member group with members on
//! every node get every message on every online device exactly once and in seq order, however
//! the senders on different nodes race; presence agrees on every node.
//!
//! Needs PostgreSQL (`BANTER_TEST_POSTGRES`) and NATS (`BANTER_TEST_NATS`) on this machine;
//! without them the tests fail, they never skip.

mod common;

use std::time::Duration;

use banter_client::protocol::{ClientRequest as R, GroupInfo, PresenceResult, SendAck};
use banter_client::{Connection, Event, Target};
use common::cluster::TestCluster;
use common::{TestUser, create_group, ok};
use tokio::time::Instant;

/// How long a device may take to receive everything.
const PATIENCE: Duration = Duration::from_secs(30);

/// The seqs of `conv` pushed to `conn`, until the one with text `fence` arrived; and `conn`.
async fn until_fence(mut conn: Connection, conv: String, fence: &str) -> (Vec<u64>, Connection) {
    let deadline = Instant::now() + PATIENCE;
    let mut seqs = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, conn.next_event())
            .await
            .unwrap_or_else(|_| panic!("no fence within {PATIENCE:?}; got {seqs:?}"))
            .expect("connection open");
        if let Event::Message(m) = event
            && m.conversation == conv
        {
            seqs.push(m.seq);
            if m.text == fence {
                return (seqs, conn);
            }
        }
    }
}

/// Sends `n` messages to `to` from `conn`, tagged `tag`; returns the acks.
async fn send_many(conn: &Connection, to: &Target, tag: &str, n: usize) -> Vec<SendAck> {
    let mut acks = Vec::with_capacity(n);
    for k in 0..n {
        let ack = conn
            .send_text(to, &format!("{tag}-{k}"), &format!("{tag} {k}"))
            .await
            .expect("send");
        assert!(!ack.duplicate);
        acks.push(ack);
    }
    acks
}

/// What a device that sent none of `all` must have received: every acked seq, in order, each
/// once, then the fence.
fn expected(all: &[SendAck], fence: u64) -> Vec<u64> {
    let mut want: Vec<u64> = all.iter().map(|a| a.seq).collect();
    want.sort_unstable();
    want.push(fence);
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_messages_between_devices_on_three_nodes_arrive_once_in_order() {
    let cluster = TestCluster::start(3).await;
    let alice = cluster.node(0).user("alice").await;
    let bob = cluster.node(1).user("bob").await;
    // Alice on nodes 0 and 2, Bob on nodes 1 and 2.
    let a0 = cluster.node(0).connect(&alice).await;
    let a2 = cluster
        .node(2)
        .connect(&cluster.node(2).login("alice").await)
        .await;
    let b1 = cluster.node(1).connect(&bob).await;
    let b2 = cluster
        .node(2)
        .connect(&cluster.node(2).login("bob").await)
        .await;
    // The conversation's first entry is seen by every node before the race (a node's order
    // for a conversation starts at the first entry it sees).
    let to_bob = Target::User(bob.id.clone());
    let to_alice = Target::User(alice.id.clone());
    let first = a0.send_text(&to_bob, "hello", "hello").await.unwrap();
    let conv = first.conversation.clone();
    let watchers: Vec<_> = [a2, b1, b2]
        .into_iter()
        .map(|c| tokio::spawn(until_fence(c, conv.clone(), "hello")))
        .collect();
    let mut back = Vec::new();
    for w in watchers {
        let (seqs, conn) = w.await.unwrap();
        assert_eq!(seqs, [1]);
        back.push(conn);
    }
    let [a2, b1, b2]: [Connection; 3] = back.try_into().ok().unwrap();
    // Each device but the senders' own records what it is pushed.
    let a2_seen = tokio::spawn(until_fence(a2, conv.clone(), "fence"));
    let b2_seen = tokio::spawn(until_fence(b2, conv.clone(), "fence"));
    // Alice on node 0 and Bob on node 1 send at the same time.
    let (from_alice, from_bob) = tokio::join!(
        send_many(&a0, &to_bob, "a", 100),
        send_many(&b1, &to_alice, "b", 100)
    );
    let fence = a0.send_text(&to_bob, "fence", "fence").await.unwrap();
    let all: Vec<SendAck> = from_alice.iter().chain(&from_bob).cloned().collect();
    let mut seqs: Vec<u64> = all.iter().map(|a| a.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=201).collect::<Vec<_>>(), "gap-free seqs");
    assert_eq!(a2_seen.await.unwrap().0, expected(&all, fence.seq));
    assert_eq!(b2_seen.await.unwrap().0, expected(&all, fence.seq));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_500_member_group_over_three_nodes_gets_every_message_once_in_order() {
    let cluster = TestCluster::start(3).await;
    let mut members: Vec<TestUser> = Vec::with_capacity(500);
    for i in 0..500 {
        members.push(cluster.node(i).user(&format!("m{i:03}")).await);
    }
    // Every member online, on node i % 3.
    let mut conns = Vec::with_capacity(500);
    for (i, m) in members.iter().enumerate() {
        conns.push(cluster.node(i).connect(m).await);
    }
    let others: Vec<&TestUser> = members[1..].iter().collect();
    let group: GroupInfo = ok(&conns[0], create_group("big", &others, false)).await;
    assert_eq!(group.member_count, 500);
    let conv = group.id.clone();
    // The creation entry (seq 1) reaches every other device on every node first (the
    // creator's own gets the reply instead).
    let creator = conns.remove(0);
    let mut conns = {
        let watchers: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let conv = conv.clone();
                tokio::spawn(async move {
                    loop {
                        match tokio::time::timeout(PATIENCE, c.next_event()).await {
                            Ok(Some(Event::Message(m))) if m.conversation == conv => {
                                assert_eq!(m.seq, 1);
                                return c;
                            }
                            Ok(Some(_)) => {}
                            other => panic!("no creation entry: {other:?}"),
                        }
                    }
                })
            })
            .collect();
        let mut back = Vec::new();
        for w in watchers {
            back.push(w.await.unwrap());
        }
        back.insert(0, creator);
        back
    };
    // Three senders, one per node, send 30 each at the same time; everyone else watches.
    let senders: Vec<Connection> = conns.drain(..3).collect();
    let watchers: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(until_fence(c, conv.clone(), "fence")))
        .collect();
    let to_group = Target::Conversation(conv.clone());
    let (s0, s1, s2) = tokio::join!(
        send_many(&senders[0], &to_group, "s0", 30),
        send_many(&senders[1], &to_group, "s1", 30),
        send_many(&senders[2], &to_group, "s2", 30),
    );
    let fence = senders[0]
        .send_text(&to_group, "fence", "fence")
        .await
        .unwrap();
    let all: Vec<SendAck> = s0.iter().chain(&s1).chain(&s2).cloned().collect();
    let want = expected(&all, fence.seq);
    assert_eq!(want.len(), 91);
    assert_eq!(
        *want.last().unwrap(),
        92,
        "gap-free: 1 creation + 90 + fence"
    );
    let mut devices = 0;
    for w in watchers {
        assert_eq!(w.await.unwrap().0, want, "every message once, in seq order");
        devices += 1;
    }
    assert_eq!(devices, 497);
    // One node writes the group; the two others handed it their senders' appends.
    let (mut forwarded, mut written, mut failed, mut writers) = (0, 0, 0, 0);
    for i in 0..3 {
        let node = cluster.node(i);
        forwarded += node.metric("banter_appends_forwarded_total").await;
        failed += node.metric("banter_append_forward_failures_total").await;
        let wrote = node.metric("banter_appends_written_for_peers_total").await;
        written += wrote;
        writers += usize::from(wrote > 0);
    }
    assert!(forwarded >= 60, "{forwarded} appends forwarded");
    assert_eq!((written, failed, writers), (forwarded, 0, 1));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_agrees_on_every_node() {
    let cluster = TestCluster::start(3).await;
    let users: Vec<TestUser> = futures_util::future::join_all(
        ["pal0", "pal1", "pal2", "bob"].map(|name| cluster.node(0).user(name)),
    )
    .await;
    let bob = users[3].clone();
    // One watcher per node, in a group with Bob so that they may see his presence.
    let watchers: Vec<Connection> = futures_util::future::join_all(
        users[..3]
            .iter()
            .enumerate()
            .map(|(i, u)| cluster.node(i).connect(u)),
    )
    .await;
    let members: Vec<&TestUser> = users[1..].iter().collect();
    let _: GroupInfo = ok(&watchers[0], create_group("friends", &members, false)).await;
    let online_everywhere = async |want: bool| {
        for (i, w) in watchers.iter().enumerate() {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let got: PresenceResult = ok(
                    w,
                    R::Presence {
                        users: vec![bob.id.clone()],
                    },
                )
                .await;
                if got.presence.first().map(|p| p.online) == Some(want) {
                    break;
                }
                assert!(Instant::now() < deadline, "node {i}: bob online != {want}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    online_everywhere(false).await;
    // Bob on node 2 only: online on all three.
    let b = cluster.node(2).connect(&bob).await;
    online_everywhere(true).await;
    // A second device on node 1, then the first goes: still online everywhere.
    let b1 = cluster
        .node(1)
        .connect(&cluster.node(1).login("bob").await)
        .await;
    b.close().await;
    online_everywhere(true).await;
    b1.close().await;
    online_everywhere(false).await;
    cluster.stop().await;
}
