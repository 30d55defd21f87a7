//! The store conformance suite, run against the PostgreSQL store on a real server: one test
//! per check, each on a fresh database created for it (and dropped after), opened through two
//! independent handles (two pools, as two nodes would hold) where the check asks for two.
//!
//! The server is `postgres://root@127.0.0.1:5432/test` unless `BANTER_TEST_POSTGRES` names
//! another (a database the user may connect to and create databases from). `scripts/services.sh`
//! starts the local one. When it cannot be reached the tests fail, saying so; they never skip.

// The PostgreSQL helpers for tests (scratch databases), without the rest of `common`.
#[path = "common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

use std::sync::Arc;

use banter_server::metrics::Metrics;
use banter_server::store::conformance::Backend;
use banter_server::store::postgres::{PostgresOptions, PostgresStore};
use banter_server::store::{EntryKind, NewMessage, Store, StoreError};
use postgres::{Database, admin_url, connect};

/// Scratch databases on the server at `admin` ([`admin_url`] by default).
struct Postgres {
    admin: String,
}

impl Default for Postgres {
    fn default() -> Self {
        Self { admin: admin_url() }
    }
}

impl Backend for Postgres {
    type Database = Database;

    async fn create(&self) -> Database {
        Database::create(&self.admin).await
    }

    async fn open(&self, db: &Database) -> Arc<dyn Store> {
        let options = PostgresOptions {
            pool_size: 8,
            ..PostgresOptions::default()
        };
        let store = PostgresStore::open(&db.url, &options, Arc::new(Metrics::default()))
            .await
            .unwrap_or_else(|e| panic!("cannot open the store on {}: {e}", db.url));
        Arc::new(store)
    }
}

banter_server::store_conformance!(Postgres::default());

/// Users alice and bob and their direct conversation; alice's id and the conversation's.
async fn alice_and_bob(store: &dyn Store) -> (i64, i64) {
    let a = store.create_user("alice", "h").await.unwrap().id;
    let b = store.create_user("bob", "h").await.unwrap().id;
    (a, store.direct_conversation(a, b).await.unwrap())
}

fn text(conv: i64, sender: i64, key: &str) -> NewMessage {
    NewMessage {
        conv,
        sender,
        client_msg_id: key.into(),
        text: key.into(),
        kind: EntryKind::Text,
    }
}

/// A value the database refuses (here a NUL in the text, which PostgreSQL's text cannot hold)
/// fails that append only: the appends queued around it, in the same batch, commit with
/// gap-free seqs in queue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_append_fails_alone() {
    let backend = Postgres::default();
    let db = backend.create().await;
    let store = backend.open(&db).await;
    let (a, conv) = alice_and_bob(&*store).await;
    let mut queued = Vec::new();
    for key in ["q1", "bad\0one", "q2", "bad\0two", "q3"] {
        queued.push(store.queue_append(text(conv, a, key)).await.unwrap());
    }
    let mut seqs = Vec::new();
    for pending in queued {
        match pending.await {
            Ok(got) => seqs.push(got.message.seq),
            Err(e) => assert!(matches!(e, StoreError::Backend(_)), "{e}"),
        }
    }
    assert_eq!(seqs, [1, 2, 3], "the refused ones took no seq");
    let next = store.append(text(conv, a, "after")).await.unwrap();
    assert_eq!(next.message.seq, 4);
    store.close().await;
}

/// `close` waits for every queued append, awaited or not; a later handle reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_commits_what_was_queued() {
    let backend = Postgres::default();
    let db = backend.create().await;
    let store = backend.open(&db).await;
    let (a, conv) = alice_and_bob(&*store).await;
    for i in 0..100 {
        drop(
            store
                .queue_append(text(conv, a, &format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    store.close().await;
    assert!(matches!(
        store.append(text(conv, a, "late")).await,
        Err(StoreError::Closed)
    ));
    let again = backend.open(&db).await;
    assert_eq!(again.last_seq(conv).await.unwrap(), 100);
    let all = again
        .messages_after(conv, 0, 1000, usize::MAX)
        .await
        .unwrap();
    let keys: Vec<String> = all.into_iter().map(|m| m.client_msg_id).collect();
    assert_eq!(keys, (0..100).map(|i| format!("m{i}")).collect::<Vec<_>>());
    again.close().await;
}

/// A database that went away makes `writable` (readiness) and writes fail with the
/// retryable `Unavailable`, not a permanent error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable() {
    let backend = Postgres::default();
    let db = backend.create().await;
    let store = backend.open(&db).await;
    let (a, conv) = alice_and_bob(&*store).await;
    store
        .writable()
        .await
        .expect("writable while the database is there");
    let admin = connect(&backend.admin).await;
    admin
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", db.name))
        .await
        .unwrap();
    let err = store.writable().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let err = store.append(text(conv, a, "lost")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    store.close().await;
}

/// Appends queued together share transactions (one commit per batch, not per message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_share_transactions() {
    let backend = Postgres::default();
    let db = backend.create().await;
    let metrics = Arc::new(Metrics::default());
    let options = PostgresOptions::default();
    let store = PostgresStore::open(&db.url, &options, Arc::clone(&metrics))
        .await
        .unwrap();
    let (a, conv) = alice_and_bob(&store).await;
    let mut queued = Vec::new();
    for i in 0..200 {
        queued.push(
            store
                .queue_append(text(conv, a, &format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    for (i, pending) in queued.into_iter().enumerate() {
        assert_eq!(pending.await.unwrap().message.seq, i as u64 + 1);
    }
    let rendered = metrics.render();
    let value = |name: &str| -> f64 {
        rendered
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {rendered}"))
    };
    let (batches, appends) = (
        value("banter_commit_batch_size_count"),
        value("banter_commit_batch_size_sum"),
    );
    assert_eq!(appends, 200.0);
    assert!(
        batches <= 20.0,
        "{appends} appends took {batches} transactions"
    );
    store.close().await;
}

/// A batch's duplicate check probes the key index, however young the table was when the
/// connection planned the statement: a prepared statement's generic plan is made on its sixth
/// run, and on a database that new the planner sees a messages table of a few pages, where
/// hashing all of it is cheapest; that plan would stay until the first autoanalyze, scanning
/// the whole table on every batch while it grows (as the group bench's fresh database did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_never_scan_the_messages_table() {
    const ROUNDS: i64 = 60;
    const APPENDS: i64 = ROUNDS * 8;
    let backend = Postgres::default();
    let db = backend.create().await;
    let store = backend.open(&db).await;
    let (a, conv) = alice_and_bob(&*store).await;
    // Batches of several appends, as a busy group's are.
    for round in 0..ROUNDS {
        let mut queued = Vec::new();
        for i in 0..8 {
            let key = format!("m{round}-{i}");
            queued.push(store.queue_append(text(conv, a, &key)).await.unwrap());
        }
        for pending in queued {
            pending.await.unwrap();
        }
    }
    // A backend reports its table counts when it exits: close the pool, then wait for them.
    store.close().await;
    let client = connect(&db.url).await;
    let counts = "SELECT n_tup_ins, seq_scan FROM pg_stat_user_tables WHERE relname = 'messages'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (inserted, scans) = loop {
        let row = client.query_one(counts, &[]).await.unwrap();
        let (inserted, scans): (i64, i64) = (row.get(0), row.get(1));
        if inserted >= APPENDS || std::time::Instant::now() > deadline {
            break (inserted, scans);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        inserted, APPENDS,
        "the store's backends reported their inserts"
    );
    // Building an index reads the table once: the migrations' builds are the only scans.
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'messages'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        scans - indexes,
        0,
        "sequential scans of messages in {APPENDS} appends (besides {indexes} index builds)"
    );
}
