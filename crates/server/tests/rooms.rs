//! Chatrooms against a real server: 2,000 occupants, ordered delivery to all, coalesced
//! occupancy broadcasts, the recent window (bounded by count and bytes), idempotent sends and
//! refusals, and empty rooms freed with their history.

mod common;

use banter_client::protocol::{ClientRequest as R, ErrorCode, RoomAck, RoomJoined, RoomMessage};
use banter_client::{Connection, Event};
use common::{next_matching, ok, refused, start_with};
use serde_json::Value;

const USERS: usize = 200;
const DEVICES: usize = 10;

async fn room_message(conn: &mut Connection) -> RoomMessage {
    next_matching(conn, |e| match e {
        Event::RoomMessage { message, .. } => Some(message),
        _ => None,
    })
    .await
}

/// Waits for an occupancy update with `count` occupants; returns who it says joined and left.
async fn occupancy(conn: &mut Connection, count: usize) -> (Vec<String>, Vec<String>) {
    next_matching(conn, |e| match e {
        Event::RoomOccupancy {
            count: c,
            joined,
            left,
            ..
        } if c == count => Some((joined, left)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_occupants_get_every_message_in_order() {
    let server = start_with(|c| {
        c.room_occupancy_interval_ms = 50;
        c.max_connections_per_user = DEVICES;
    })
    .await;
    let mut conns = Vec::with_capacity(USERS * DEVICES);
    for u in 0..USERS {
        let user = server.user(&format!("occupant{u:03}")).await;
        for _ in 0..DEVICES {
            conns.push((user.id.clone(), server.connect(&user).await));
        }
    }
    let total = conns.len();
    for (_, conn) in &conns {
        let joined: RoomJoined = ok(
            conn,
            R::RoomJoin {
                room: "lobby".into(),
            },
        )
        .await;
        assert!(joined.count <= total);
    }
    // Everyone eventually sees the full room.
    let (_, mut first) = conns.remove(0);
    occupancy(&mut first, total).await;

    // Three messages from one occupant reach the other 1,999, in order, once each.
    let texts = ["one", "two", "three"];
    for (i, text) in texts.iter().enumerate() {
        let ack: RoomAck = ok(
            &first,
            R::RoomSend {
                room: "lobby".into(),
                client_msg_id: format!("k{i}"),
                text: (*text).into(),
            },
        )
        .await;
        assert_eq!((ack.seq, ack.duplicate), (i as u64 + 1, false));
    }
    let retry: RoomAck = ok(
        &first,
        R::RoomSend {
            room: "lobby".into(),
            client_msg_id: "k0".into(),
            text: "one".into(),
        },
    )
    .await;
    assert!(
        retry.duplicate && retry.seq == 1,
        "a retry is not broadcast again"
    );
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(_, mut conn)| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..3 {
                    let m = room_message(&mut conn).await;
                    got.push((m.seq, m.text));
                }
                (got, conn)
            })
        })
        .collect();
    let expected: Vec<(u64, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u64 + 1, (*t).to_owned()))
        .collect();
    let mut others = Vec::new();
    for task in tasks {
        let (got, conn) = task.await.unwrap();
        assert_eq!(got, expected);
        others.push(conn);
    }
    assert_eq!(others.len(), total - 1);

    // One occupant leaves: the others learn the new count and who left.
    let leaver = others.pop().unwrap();
    let _: Value = ok(
        &leaver,
        R::RoomLeave {
            room: "lobby".into(),
        },
    )
    .await;
    let (_, left) = occupancy(&mut others[0], total - 1).await;
    assert_eq!(left.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_window_ordering_and_refusals() {
    let server = start_with(|c| {
        c.room_history = 2;
        c.room_occupancy_interval_ms = 20;
    })
    .await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, mut b) = (server.connect(&alice).await, server.connect(&bob).await);
    let send = |key: &str, text: &str| R::RoomSend {
        room: "den".into(),
        client_msg_id: key.into(),
        text: text.into(),
    };
    assert_eq!(
        refused(&a, send("k", "not in yet")).await,
        ErrorCode::NotInRoom
    );
    assert_eq!(
        refused(
            &a,
            R::RoomJoin {
                room: "Bad Name!".into()
            }
        )
        .await,
        ErrorCode::InvalidRoom
    );
    assert_eq!(
        refused(&a, R::RoomLeave { room: "den".into() }).await,
        ErrorCode::NotInRoom
    );
    let _: RoomJoined = ok(&a, R::RoomJoin { room: "den".into() }).await;
    for i in 1..=3 {
        let _: RoomAck = ok(&a, send(&format!("k{i}"), &format!("m{i}"))).await;
    }
    assert_eq!(refused(&a, send("k4", "")).await, ErrorCode::EmptyMessage);
    // A late joiner gets the recent window only: a chatroom is not a group.
    let joined: RoomJoined = ok(&b, R::RoomJoin { room: "den".into() }).await;
    let recent: Vec<u64> = joined.recent.iter().map(|m| m.seq).collect();
    assert_eq!((recent, joined.count), (vec![2, 3], 2));
    let _: RoomAck = ok(&a, send("k5", "live")).await;
    let m = room_message(&mut b).await;
    assert_eq!(
        (m.seq, m.text.as_str(), m.sender.as_str()),
        (4, "live", alice.id.as_str())
    );
    // Closing the connection leaves the room.
    a.close().await;
    let (_, left) = occupancy(&mut b, 1).await;
    assert_eq!(left, vec![alice.id.clone()]);
    server.stop().await;
}

/// Fills `rooms` (a connection's share each) with `history` messages of `text`, then leaves
/// them all: the first half of the connections by `room_leave`, the rest by closing. Returns
/// the connections still open.
async fn fill_and_leave(
    server: &common::TestServer,
    user: &common::TestUser,
    round: usize,
    history: usize,
    text: &str,
) -> Vec<Connection> {
    let mut conns = Vec::new();
    for _ in 0..ROOMS.div_ceil(PER_CONN) {
        conns.push(server.connect(user).await);
    }
    let room = |r: usize| format!("round{round}-{r}");
    let fill = conns.iter().enumerate().map(|(c, conn)| async move {
        for r in (c * PER_CONN..ROOMS).take(PER_CONN) {
            let _: RoomJoined = ok(conn, R::RoomJoin { room: room(r) }).await;
            for i in 0..history {
                let send = R::RoomSend {
                    room: room(r),
                    client_msg_id: format!("k{i}"),
                    text: text.to_owned(),
                };
                let _: RoomAck = ok(conn, send).await;
            }
        }
    });
    futures_util::future::join_all(fill).await;
    assert_eq!(server.metric("banter_rooms").await, ROOMS as u64);
    let closing = conns.split_off(conns.len() / 2);
    for (c, conn) in conns.iter().enumerate() {
        for r in (c * PER_CONN..ROOMS).take(PER_CONN) {
            let _: Value = ok(conn, R::RoomLeave { room: room(r) }).await;
        }
    }
    for conn in closing {
        conn.close().await;
    }
    assert_eq!(
        server
            .metric_becomes("banter_rooms", 0, std::time::Duration::from_secs(10))
            .await,
        0,
        "every room freed"
    );
    conns
}

/// Rooms in the freeing test, on connections of 32 rooms each (the most one may occupy).
const ROOMS: usize = 1_000;
const PER_CONN: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_rooms_are_freed_with_their_history() {
    // 1,000 rooms, each with a full recent window (5 messages of 8 KB), left by everyone;
    // twice, under new names. Without freeing, the second round would add as much memory as
    // the first (the allocator keeps freed memory for reuse, so RSS does not shrink; it stops
    // growing).
    const HISTORY: usize = 5;
    let server = start_with(|c| {
        c.room_history = HISTORY;
        c.max_connections_per_user = 2 * ROOMS.div_ceil(PER_CONN);
        c.room_occupancy_interval_ms = 20;
    })
    .await;
    let alice = server.user("alice").await;
    let text = "x".repeat(8000);
    let rss_before = common::rss_kib();
    let first = fill_and_leave(&server, &alice, 1, HISTORY, &text).await;
    let rss_first = common::rss_kib();
    let second = fill_and_leave(&server, &alice, 2, HISTORY, &text).await;
    let rss_second = common::rss_kib();
    eprintln!(
        "rooms: RSS {rss_before} KiB before, {rss_first} KiB after 1,000 full rooms were \
         freed, {rss_second} KiB after 1,000 more"
    );
    drop(first);
    // A freed room starts afresh: no history, seq from 1.
    let joined: RoomJoined = ok(
        &second[0],
        R::RoomJoin {
            room: "round1-0".into(),
        },
    )
    .await;
    assert!(joined.recent.is_empty(), "the history went with the room");
    let ack: RoomAck = ok(
        &second[0],
        R::RoomSend {
            room: "round1-0".into(),
            client_msg_id: "k0".into(),
            text: "again".into(),
        },
    )
    .await;
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_window_is_bounded_by_bytes_and_rooms_by_count() {
    const BYTES: usize = 16 * 1024;
    let server = start_with(|c| {
        c.room_history_bytes = BYTES;
        c.max_rooms = 2;
    })
    .await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, b) = (server.connect(&alice).await, server.connect(&bob).await);
    let _: RoomJoined = ok(&a, R::RoomJoin { room: "den".into() }).await;
    // Control characters escape to six bytes each: 2,000 of them take 12 KB encoded.
    let text = "\u{1}".repeat(2_000);
    for i in 0..10 {
        let send = R::RoomSend {
            room: "den".into(),
            client_msg_id: format!("k{i}"),
            text: text.clone(),
        };
        let _: RoomAck = ok(&a, send).await;
    }
    let joined: RoomJoined = ok(&b, R::RoomJoin { room: "den".into() }).await;
    let encoded: usize = joined
        .recent
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap().len())
        .sum();
    let seqs: Vec<u64> = joined.recent.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        vec![10],
        "one 12 KB message fits in 16 KB, two do not"
    );
    assert!(encoded <= BYTES, "{encoded} bytes of history");
    // `max_rooms` caps the rooms in memory.
    let _: RoomJoined = ok(&a, R::RoomJoin { room: "two".into() }).await;
    assert_eq!(
        refused(
            &a,
            R::RoomJoin {
                room: "three".into()
            }
        )
        .await,
        ErrorCode::InvalidRoom
    );
    server.stop().await;
}
