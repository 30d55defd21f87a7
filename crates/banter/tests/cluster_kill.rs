//! A node of a 3-node cluster of real `banter serve` processes (one PostgreSQL scratch database,
//! the NATS on this machine) is killed with SIGKILL under continuous load: its clients fail over
//! to the other nodes and resync; not one acknowledged message is lost or delivered twice
//! (counted on every receiver and in the stored history); a user connected only to the dead
//! node goes offline on the others within the documented timeout. The node killed is the
//! group's writer (`bus::nats::appends`): the others append themselves once it is gone.
//!
//! Needs PostgreSQL (`BANTER_TEST_POSTGRES`) and NATS (`BANTER_TEST_NATS`); without them the test
//! fails, it never skips.

mod common;
#[path = "../../server/tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;
#[path = "../../server/tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_client::protocol::{ClientRequest as R, GroupInfo, Message, PresenceResult};
use banter_client::{Api, Connection, Messenger, Target};
use banter_server::bus::NodeId;
use banter_server::bus::nats::appends::writer_among;
use common::{FAST, Process, user};
use postgres::{Database, admin_url};
use tokio::time::Instant;

/// How long a dead node's users may stay online elsewhere: `NODE_TIMEOUT` (5 s) after its last
/// heartbeat, noticed at the next of one's own heartbeats (1 s), plus the removal itself
/// (docs/OPERATIONS.md, "Running a cluster").
const OFFLINE_WITHIN: Duration = Duration::from_secs(8);
/// Acknowledged sends before the kill, and after it.
const BEFORE: usize = 60;
const AFTER: usize = 60;

fn start_node(dir: &std::path::Path, db: &str, cluster: &str) -> Process {
    let nats = nats::url();
    let mut args = FAST.to_vec();
    args.extend([
        "--data-dir",
        dir.to_str().unwrap(),
        "--store",
        db,
        "--bus",
        &nats,
        "--cluster",
        cluster,
        "--register-burst",
        "1000",
        "--group-add-policy",
        "anyone",
    ]);
    Process::start(dir, &args)
}

/// Every message of `conv` a messenger hands to the app, until the one with text `fence`.
async fn receive_until(mut m: Messenger, conv: String, fence: &'static str) -> (Vec<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seqs = Vec::new();
    loop {
        let got: Message = tokio::time::timeout_at(deadline, m.next_message())
            .await
            .unwrap_or_else(|_| panic!("no fence within 60 s; got {seqs:?}"))
            .expect("the messenger keeps going");
        if got.conversation == conv {
            seqs.push(got.seq);
            if got.text == fence {
                return (seqs, m.reconnects());
            }
        }
    }
}

/// Whether `who` is online, asked of the node behind `conn`.
async fn online(conn: &Connection, who: &str) -> bool {
    let got: PresenceResult = conn
        .typed(R::Presence {
            users: vec![who.to_owned()],
        })
        .await
        .expect("presence");
    got.presence.first().is_some_and(|p| p.online)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_and_repeats_nothing() {
    let db = Database::create(&admin_url()).await;
    let cluster = nats::fresh_cluster();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<Process>> = dirs
        .iter()
        .map(|d| Some(start_node(d.path(), &db.url, &cluster)))
        .collect();
    let addrs: Vec<String> = nodes.iter().flatten().map(|p| p.addr.clone()).collect();
    // Each client lists every node, its own first.
    let from = |i: usize| -> Vec<String> { (0..3).map(|k| addrs[(i + k) % 3].clone()).collect() };
    let api = Api::new(addrs[0].clone());
    let names = ["s0", "s2", "r0", "r1", "r2", "ghost", "watcher"].map(|n| format!("kill-{n}"));
    let mut users = Vec::new();
    for name in &names {
        users.push(user(&api, name).await);
    }
    let [s0, s2, r0, r1, r2, ghost, watcher] = users.try_into().unwrap();
    let watch = Connection::connect(&addrs[0], &watcher.1).await.unwrap();
    // The node ids, from each node's `hello`: the group is one whose writer is node 2, so
    // the kill takes the node that appends the group's messages with it.
    let mut ids = Vec::new();
    for addr in &addrs {
        let c = Connection::connect(addr, &watcher.1).await.unwrap();
        let hex = c.hello().connection.split('.').next().unwrap().to_owned();
        ids.push(NodeId(u64::from_str_radix(&hex, 16).unwrap()));
    }
    let mut tries = 0;
    let group = loop {
        let group: GroupInfo = watch
            .typed(R::GroupCreate {
                name: "drill".into(),
                description: None,
                public: false,
                members: [&s0, &s2, &r0, &r1, &r2, &ghost]
                    .iter()
                    .map(|u| u.0.clone())
                    .collect(),
            })
            .await
            .unwrap();
        if writer_among(&ids, group.id.parse().unwrap()) == Some(ids[2]) {
            break group;
        }
        tries += 1;
        assert!(tries < 64, "no group written by node 2 in 64 tries");
    };
    let conv = group.id.clone();
    let to_group = Target::Conversation(conv.clone());

    // Receivers on nodes 0, 1 and 2; the ghost on node 2 only, with no failover.
    let mut receivers = Vec::new();
    for (i, r) in [&r0, &r1, &r2].into_iter().enumerate() {
        let m = Messenger::connect_any(&from(i), &r.1).await.unwrap();
        receivers.push(tokio::spawn(receive_until(m, conv.clone(), "fence")));
    }
    let _ghost = Connection::connect(&addrs[2], &ghost.1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !online(&watch, &ghost.0).await {
        assert!(Instant::now() < deadline, "the ghost never came online");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two senders, on nodes 0 and 2, send until told to stop; every ack is recorded.
    let acks: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for (tag, i, token) in [("a", 0, s0.1.clone()), ("b", 2, s2.1.clone())] {
        let mut m = Messenger::connect_any(&from(i), &token).await.unwrap();
        let (acks, stopping, to) = (Arc::clone(&acks), Arc::clone(&stopping), to_group.clone());
        senders.push(tokio::spawn(async move {
            let mut k = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("{tag}-{k}");
                let ack = m.send_with_id(&to, &id, &id).await.expect("send");
                acks.lock().unwrap().push((id, ack.seq));
                k += 1;
            }
            m.reconnects()
        }));
    }
    let acked = |n: usize| {
        let acks = Arc::clone(&acks);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acks.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "fewer than {n} acks in 60 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // A counter of node 0's `/metrics`.
    let metric = |name: &'static str| {
        let api = Api::new(addrs[0].clone());
        async move {
            let (_, text) = api.get_text("/metrics").await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in /metrics"))
        }
    };
    acked(BEFORE).await;
    // Node 0 forwards to node 2 once it has heard node 2's heartbeat say it serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric("banter_appends_forwarded_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "node 0 never forwarded to the writer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut victim = nodes[2].take().unwrap();
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().unwrap();
    let killed = Instant::now();
    acked(BEFORE + AFTER).await;
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sender_reconnects = Vec::new();
    for s in senders {
        sender_reconnects.push(s.await.unwrap());
    }
    assert!(sender_reconnects[1] > 0, "the sender on node 2 failed over");
    // Node 0 handed the group's appends to node 2 until it died, then made them itself.
    let forwarded = metric("banter_appends_forwarded_total").await;
    let fell_back = metric("banter_append_forward_failures_total").await;
    assert!(
        forwarded > 0,
        "node 0 forwarded to the writer before the kill"
    );
    assert!(
        fell_back > 0,
        "node 0 appended itself once the writer was gone"
    );

    // The ghost goes offline on the surviving nodes.
    while online(&watch, &ghost.0).await {
        assert!(
            killed.elapsed() < OFFLINE_WITHIN,
            "the dead node's user still online after {OFFLINE_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offline_after = killed.elapsed();
    // A user of the dead node who reconnected elsewhere stays online.
    assert!(online(&watch, &r2.0).await, "r2 reconnected and is online");

    let fence = watch.send_text(&to_group, "fence", "fence").await.unwrap();
    let acks = acks.lock().unwrap().clone();
    let mut want: Vec<u64> = acks.iter().map(|(_, seq)| *seq).collect();
    want.sort_unstable();
    let distinct: HashSet<u64> = want.iter().copied().collect();
    assert_eq!(distinct.len(), acks.len(), "no two acks share a seq");
    // Everything: the creation entry, every acked message once, the fence.
    let mut everything = vec![1];
    everything.extend(&want);
    everything.push(fence.seq);
    assert_eq!(
        everything,
        (1..=fence.seq).collect::<Vec<_>>(),
        "gap-free: every stored entry was acknowledged"
    );
    for (i, r) in receivers.into_iter().enumerate() {
        let (seqs, reconnects) = r.await.unwrap();
        assert_eq!(
            seqs, everything,
            "receiver on node {i}: each message once, in order"
        );
        if i == 2 {
            assert!(reconnects > 0, "the receiver on node 2 failed over");
        }
    }
    // The stored history holds each client_msg_id once.
    let page = watch.sync(&conv, 0, Some(500)).await.unwrap();
    let ids: Vec<&str> = page
        .messages
        .iter()
        .map(|m| m.client_msg_id.as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no message stored twice");
    assert_eq!(page.messages.len() as u64, fence.seq);
    eprintln!(
        "killed node 2 (the group's writer) after {BEFORE} acks; {} acks in all; node 0 forwarded \
         {forwarded}, appended {fell_back} itself meanwhile; its user offline elsewhere after \
         {offline_after:?}",
        acks.len()
    );
    nats::remove_clusters(vec![cluster]);
}
