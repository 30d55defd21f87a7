//! The server on the PostgreSQL store, end to end: two nodes on one database (no bus) share
//! accounts and messages; and an outage drill on a two-node cluster (NATS between the nodes)
//! over a PostgreSQL instance of the test's own, stopped under traffic and started again, during
//! which sends fail with the retryable `store_unavailable` and `/readyz` answers 503 on both
//! nodes, after which both recover by themselves, having lost no acknowledged message, and the
//! other node's device was pushed each acknowledged message once, in order.
//!
//! Scratch databases are made on `BANTER_TEST_POSTGRES` (default
//! `postgres://root@127.0.0.1:5432/test`); the drill runs `initdb` and `pg_ctl` of
//! PostgreSQL 15 as the `postgres` user. Without them the tests fail; they never skip.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_client::protocol::{ErrorCode, Message};
use banter_client::{Connection, Event, Target};
use common::postgres::{Database, Instance, admin_url};
use common::{TestServer, nats, next_matching, start_with};
use tokio::time::Instant;

/// Starts a test server whose store is the PostgreSQL database at `url`.
async fn start_on(url: &str) -> TestServer {
    start_with(|c| c.store = url.into()).await
}

/// Every entry of `conv` as `conn` reads it through `sync`, page by page.
async fn all_messages(conn: &Connection, conv: &str) -> Vec<Message> {
    let mut all: Vec<Message> = Vec::new();
    loop {
        let after = all.last().map_or(0, |m| m.seq);
        let page = conn.sync(conv, after, None).await.expect("sync");
        all.extend(page.messages);
        if !page.has_more {
            return all;
        }
    }
}

/// Polls `/readyz` until it answers `want`, for at most `within`; returns the last answer.
async fn readyz_becomes(server: &TestServer, want: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let got = server
            .api
            .get_text("/readyz")
            .await
            .expect("/readyz answers");
        if got.0 == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_database_share_accounts_and_messages() {
    let db = Database::create(&admin_url()).await;
    // Both nodes start at once: migrations run under a lock, so neither trips on the other.
    let (one, two) = tokio::join!(start_on(&db.url), start_on(&db.url));
    let alice = one.user("alice").await;
    let bob = one.user("bob").await;
    let a = one.connect(&alice).await;
    let mut b = one.connect(&bob).await;
    let ack = a
        .send_text(&Target::User(bob.id.clone()), "k1", "hello over postgres")
        .await
        .expect("send");
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    let got = next_matching(&mut b, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(
        (got.text.as_str(), got.seq, got.sender.as_str(), &got.id),
        ("hello over postgres", 1, alice.id.as_str(), &ack.message_id)
    );

    // The second node: the accounts made on the first log in there, and it serves the message
    // with the seq the first one gave it.
    let bob_two = two.login("bob").await;
    let b2 = two.connect(&bob_two).await;
    let synced = all_messages(&b2, &ack.conversation).await;
    let history = b2
        .history(&ack.conversation, None, None)
        .await
        .expect("history");
    for page in [&synced, &history.messages] {
        let seen: Vec<_> = page
            .iter()
            .map(|m| {
                (
                    m.seq,
                    m.id.as_str(),
                    m.client_msg_id.as_str(),
                    m.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [(1, ack.message_id.as_str(), "k1", "hello over postgres")]
        );
    }
    // A repeat through the second node is the same message, not a second one.
    let alice_two = two.login("alice").await;
    let a2 = two.connect(&alice_two).await;
    let again = a2
        .send_text(&Target::User(bob.id.clone()), "k1", "hello over postgres")
        .await
        .expect("repeat");
    assert_eq!(
        (again.seq, again.duplicate, &again.message_id),
        (1, true, &ack.message_id)
    );
    // Neither node put anything in its data directory: the SQLite store was never opened.
    for node in [&one, &two] {
        let entries: Vec<_> = std::fs::read_dir(&node.config.data_dir)
            .expect("the data directory")
            .collect();
        assert!(entries.is_empty(), "{entries:?}");
    }
    one.stop().await;
    two.stop().await;
}

/// What the sender saw: acknowledged client_msg_ids with their seqs, and failure codes.
#[derive(Default)]
struct Seen {
    acked: Vec<(String, u64)>,
    failed: Vec<Option<ErrorCode>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_is_retryable_and_the_server_recovers_without_losing_acks() {
    let pg = Instance::start();
    let db = Database::create(&pg.url()).await;
    // Two nodes of a cluster (NATS between them); the sender is on the first.
    let cluster = nats::fresh_cluster();
    let node = || {
        let (url, cluster) = (db.url.clone(), cluster.clone());
        start_with(move |c| {
            c.store = url.as_str().into();
            c.bus = nats::url().as_str().into();
            c.cluster = cluster;
        })
    };
    let (server, other) = tokio::join!(node(), node());
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = Arc::new(server.connect(&alice).await);
    let to_bob = Target::User(bob.id.clone());
    let first = a.send_text(&to_bob, "m0", "m0").await.expect("first send");
    let conv = first.conversation.clone();
    // Bob listens on the other node from the second message on.
    let mut b = other.connect(&bob).await;
    let pushed = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            // The outage lasts a while: longer than `next_matching` waits for one event.
            let event = tokio::time::timeout(Duration::from_secs(60), b.next_event()).await;
            match event.expect("a push within 60 s").expect("open") {
                Event::Message(m) => {
                    seqs.push(m.seq);
                    if m.text == "fence" {
                        return seqs;
                    }
                }
                _ => continue,
            }
        }
    });
    let seen = Arc::new(Mutex::new(Seen {
        acked: vec![("m0".to_owned(), first.seq)],
        failed: Vec::new(),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (a, seen, stop) = (Arc::clone(&a), Arc::clone(&seen), Arc::clone(&stop));
        async move {
            let mut i = 1_u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("m{i}");
                let result = a.send_text(&to_bob, &key, &key).await;
                let mut seen = seen.lock().unwrap();
                match result {
                    Ok(ack) => seen.acked.push((key, ack.seq)),
                    Err(e) => seen.failed.push(e.code()),
                }
                i += 1;
            }
        }
    });
    let acked = || seen.lock().unwrap().acked.len();
    let failed = || seen.lock().unwrap().failed.len();
    let until = |what: &str, deadline: Instant| {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    };

    // Traffic flows.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked() < 50 {
        until("50 acknowledged sends", deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failed(), 0, "no failure while PostgreSQL is up");

    // PostgreSQL goes away: sends fail with the retryable code, and the node is not ready.
    pg.crash();
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed() < 5 {
        until("sends to fail during the outage", deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for node in [&server, &other] {
        let (status, body) = readyz_becomes(node, 503, Duration::from_secs(15)).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("store_unavailable"), "{body}");
    }
    let acked_in_outage = acked();

    // PostgreSQL comes back: the same server, not restarted, takes sends and is ready again.
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked() < acked_in_outage + 20 {
        until("sends to succeed again", deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for node in [&server, &other] {
        let (status, body) = readyz_becomes(node, 200, Duration::from_secs(15)).await;
        assert_eq!(status, 200, "{body}\n{}", pg.log());
    }
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("the sender finishes");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.failed
            .iter()
            .all(|c| *c == Some(ErrorCode::StoreUnavailable)),
        "every failure is the retryable store_unavailable: {:?}",
        seen.failed
    );
    // No acknowledged message was lost: each is in the history once, at its acked seq, and
    // the seqs run from 1 without a gap.
    let stored = all_messages(&a, &conv).await;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
    for m in &stored {
        by_key
            .entry(m.client_msg_id.as_str())
            .or_default()
            .push(m.seq);
    }
    for (key, seq) in &seen.acked {
        assert_eq!(
            by_key.get(key.as_str()),
            Some(&vec![*seq]),
            "acknowledged {key} at seq {seq}"
        );
    }
    assert!(
        seen.acked.len() > acked_in_outage && acked_in_outage >= 50,
        "sends acknowledged before ({acked_in_outage}) and after the outage ({})",
        seen.acked.len()
    );
    // Bob, on the other node, was pushed every acknowledged message once, in order.
    let fence = a
        .send_text(&Target::User(bob.id.clone()), "fence", "fence")
        .await
        .unwrap();
    let mut want: Vec<u64> = seen.acked[1..].iter().map(|(_, seq)| *seq).collect();
    want.push(fence.seq);
    assert_eq!(
        pushed.await.unwrap(),
        want,
        "pushed across nodes, once each, in order"
    );
    server.stop().await;
    other.stop().await;
    nats::remove_clusters(vec![cluster]);
}
