//! Fair reads: one user in the most groups the server allows, asking for their conversation list
//! in a loop on every socket they may open, must not slow another user's `GET /v1/me`; and the
//! per-user group cap refuses creating or being added to one group more.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use banter_client::Api;
use banter_client::protocol::{ClientRequest as R, ConversationsResult, ErrorCode, GroupInfo};
use banter_server::store::{AddRules, NewGroup, SystemEntry};
use common::{RawSocket, ok, refused, start_with};
use futures_util::{StreamExt, TryStreamExt, stream};

/// Groups the heavy user ends up in (the cap is set to this; the default is 500).
const GROUPS: usize = 5_000;
/// `GET /v1/me` requests measured.
const SAMPLES: usize = 200;
/// Their pace, so that the measurement spans many lists of the heavy user (about 2 s).
const PACE: Duration = Duration::from_millis(10);
/// The bound on their p99 (issue #9).
const P99_BOUND: Duration = Duration::from_millis(20);

/// Loops `conversations` on `socket` until `stop`, counting replies.
async fn hammer(mut socket: RawSocket, stop: Arc<AtomicBool>, replies: Arc<AtomicU64>) {
    let request = r#"{"id":"c","type":"conversations"}"#.to_owned();
    while !stop.load(Ordering::Relaxed) {
        socket.send_texts(std::slice::from_ref(&request)).await;
        loop {
            let frame = socket.next_frame().await.expect("socket open");
            if frame.opcode == 1 && frame.payload.starts_with(br#"{"type":"ok""#) {
                break;
            }
        }
        replies.fetch_add(1, Ordering::Relaxed);
    }
}

/// Latencies of `SAMPLES` sequential `GET /v1/me`, one per [`PACE`], measured on a thread and
/// runtime of their own so that the load's client tasks do not delay the measuring client.
fn measure_me(addr: String, token: String) -> Vec<Duration> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let api = Api::new(addr);
            let mut out = Vec::with_capacity(SAMPLES);
            let mut pace = tokio::time::interval(PACE);
            for _ in 0..SAMPLES {
                pace.tick().await;
                let t = Instant::now();
                api.me(&token).await.expect("me");
                out.push(t.elapsed());
            }
            out
        })
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_of_a_user_at_the_group_cap_leave_others_fast() {
    let server = start_with(|c| c.max_groups_per_user = GROUPS).await;
    let (heavy, other) = (server.user("heavy").await, server.user("other").await);
    let h = heavy.id.parse().unwrap();

    // All but one group straight through the store (faster than the API, same rows), the last
    // through the API; then the cap refuses one more, whether created or added to.
    let setup = Instant::now();
    let rules = AddRules {
        by: h,
        friends_only: false,
        max_groups: GROUPS,
    };
    stream::iter(0..GROUPS - 1)
        .map(|i| {
            server.store.create_group(NewGroup {
                owner: h,
                name: format!("group {i}"),
                description: String::new(),
                public: false,
                members: vec![],
                event: SystemEntry {
                    actor: h,
                    body: r#"{"type":"group_created"}"#.into(),
                },
                rules,
            })
        })
        .buffer_unordered(64)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap();
    let (ch, co) = (server.connect(&heavy).await, server.connect(&other).await);
    let create = |name: &str| R::GroupCreate {
        name: name.into(),
        description: None,
        public: false,
        members: vec![],
    };
    let _: GroupInfo = ok(&ch, create("the last one")).await;
    let setup = setup.elapsed();
    assert_eq!(
        refused(&ch, create("one too many")).await,
        ErrorCode::TooManyGroups
    );
    let theirs: GroupInfo = ok(&co, create("theirs")).await;
    let add = R::GroupAdd {
        group: theirs.id.clone(),
        users: vec![heavy.id.clone()],
    };
    assert_eq!(refused(&co, add).await, ErrorCode::TooManyGroups);
    let t = Instant::now();
    let list: ConversationsResult = ok(&ch, R::Conversations { since_ts: None }).await;
    let one_list = t.elapsed();
    assert_eq!(list.conversations.len(), GROUPS);
    ch.close().await;

    // Every socket the heavy user may open loops the full list.
    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let mut loaders = Vec::new();
    for _ in 0..server.config.max_connections_per_user {
        let socket = RawSocket::open_ready(&server.addr, &heavy.token).await;
        loaders.push(tokio::spawn(hammer(
            socket,
            Arc::clone(&stop),
            Arc::clone(&replies),
        )));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while replies.load(Ordering::Relaxed) < loaders.len() as u64 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = replies.load(Ordering::Relaxed);
    let measured = Instant::now();
    let mut me = tokio::task::spawn_blocking({
        let (addr, token) = (server.addr.clone(), other.token.clone());
        move || measure_me(addr, token)
    })
    .await
    .unwrap();
    let lists = replies.load(Ordering::Relaxed) - before;
    let window = measured.elapsed();
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    me.sort_unstable();
    let pct = |p: usize| me[(SAMPLES * p / 100).min(SAMPLES - 1)];
    let p99 = me[SAMPLES * 99 / 100 - 1];
    println!(
        "setup of {GROUPS} groups {setup:?}; one list alone {one_list:?}; {} sockets returned {lists} lists of {GROUPS} in \
         {window:?} ({:.1}/s); GET /v1/me over {SAMPLES}: p50 {:?} p90 {:?} p99 {p99:?} max {:?}",
        server.config.max_connections_per_user,
        lists as f64 / window.as_secs_f64(),
        pct(50),
        pct(90),
        me[SAMPLES - 1],
    );
    assert!(lists > 0, "the lists kept coming while /v1/me was measured");
    assert!(p99 <= P99_BOUND, "GET /v1/me p99 {p99:?} > {P99_BOUND:?}");
    server.stop().await;
}
