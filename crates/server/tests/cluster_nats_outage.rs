//! NATS goes away under traffic and comes back: two nodes on a NATS server of the test's own
//! (killed and started again on the same port and storage). Meanwhile sends are still
//! acknowledged (the store is fine), `/readyz` says `bus_unavailable` and new connections are
//! refused with it, as are room sends and a room's first join on a node; the nodes reconnect
//! by themselves, and a receiver on the other node ends with every acknowledged message once
//! and in order, by push or by sync. Nobody is marked offline because the nodes could not hear
//! each other.
//!
//! Needs PostgreSQL (`BANTER_TEST_POSTGRES`) and `nats-server` (Debian's); without them the test
//! fails, it never skips.

mod common;

use std::time::Duration;

use banter_client::protocol::{
    ClientRequest as R, ErrorCode, GroupInfo, PresenceResult, RoomJoined,
};
use banter_client::{ClientError, Connection, Target};
use banter_server::bus::nats::presence::NODE_TIMEOUT;
use common::cluster::TestCluster;
use common::{TestServer, create_group, nats, ok, refused};
use tokio::time::Instant;

/// Polls `/readyz` of `node` until it answers `want`; returns the body.
async fn readyz_becomes(node: &TestServer, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = node.api.get_text("/readyz").await.expect("/readyz answers");
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never {want}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bob_online(conn: &Connection, bob: &str) -> bool {
    let got: PresenceResult = ok(
        conn,
        R::Presence {
            users: vec![bob.to_owned()],
        },
    )
    .await;
    got.presence.first().is_some_and(|p| p.online)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restarted_under_traffic_loses_nothing() {
    let mut nats = nats::Instance::start();
    let cluster = TestCluster::start_on(&nats.url, 2, |_| {}).await;
    let (one, two) = (cluster.node(0), cluster.node(1));
    let alice = one.user("alice").await;
    let bob = one.user("bob").await;
    let carol = one.user("carol").await;
    let a = one.connect(&alice).await;
    let group: GroupInfo = ok(&a, create_group("outage", &[&bob], false)).await;
    let to = Target::Conversation(group.id.clone());
    // Bob reads through a messenger on node two only: pushes come over NATS.
    let mut b = two.messenger(&bob).await;
    let mut acked = Vec::new();
    let mut send = async |text: String| {
        let ack = a.send_text(&to, &text, &text).await.expect("acknowledged");
        acked.push(ack.seq);
    };
    for k in 0..20 {
        send(format!("before {k}")).await;
    }
    assert!(bob_online(&a, &bob.id).await);
    let _: RoomJoined = ok(
        &a,
        R::RoomJoin {
            room: "lobby".into(),
        },
    )
    .await;

    nats.stop();
    for node in [one, two] {
        let body = readyz_becomes(node, 503).await;
        assert!(body.contains("bus_unavailable"), "{body}");
    }
    // The store is fine: sends are acknowledged while NATS is away.
    for k in 0..20 {
        send(format!("during {k}")).await;
    }
    // A node that cannot count a connection cluster-wide does not take it.
    let turned_away = Connection::connect(&two.addr, &carol.token).await.err();
    assert!(
        matches!(&turned_away, Some(ClientError::Api { status: 503, body }) if body.code == ErrorCode::BusUnavailable),
        "{turned_away:?}"
    );
    // Nor can it give a room's message a seq, or start a room's order on this node.
    let room_send = R::RoomSend {
        room: "lobby".into(),
        client_msg_id: "r1".into(),
        text: "hi".into(),
    };
    assert_eq!(refused(&a, room_send).await, ErrorCode::BusUnavailable);
    let join = R::RoomJoin {
        room: "hall".into(),
    };
    assert_eq!(refused(&a, join).await, ErrorCode::BusUnavailable);

    nats.resume();
    for node in [one, two] {
        readyz_becomes(node, 200).await;
    }
    for k in 0..20 {
        send(format!("after {k}")).await;
    }
    send("fence".to_owned()).await;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout_at(deadline, b.next_message())
            .await
            .unwrap_or_else(|_| panic!("no fence within 30 s; got {got:?}"))
            .expect("the messenger keeps going");
        if m.conversation == group.id {
            got.push(m.seq);
            if m.text == "fence" {
                break;
            }
        }
    }
    let mut want = vec![1];
    want.extend(&acked);
    assert_eq!(got, want, "every acknowledged message once, in order");
    assert_eq!(want, (1..=62).collect::<Vec<_>>());
    // Over a whole node timeout after NATS came back, Bob (never disconnected) stays online.
    let watched = Instant::now();
    while watched.elapsed() < NODE_TIMEOUT + Duration::from_secs(2) {
        assert!(bob_online(&a, &bob.id).await, "bob marked offline");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New connections are taken again.
    Connection::connect(&two.addr, &carol.token)
        .await
        .expect("connects after the outage");
    drop(b);
    cluster.stop().await;
}
