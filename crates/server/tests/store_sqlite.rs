//! The store conformance suite, run against the SQLite store (one test per check, each on a
//! fresh database file), plus what only a file-backed store can show: reopening keeps data,
//! and a failed statement on the append path does not poison later appends.

use std::sync::Arc;

use banter_server::config::SqliteSync;
use banter_server::metrics::Metrics;
use banter_server::store::conformance::Backend;
use banter_server::store::sqlite::{DB_FILE, LOCK_FILE, MARKER_FILE, SqliteOptions, SqliteStore};
use banter_server::store::{EntryKind, NewMessage, Store, StoreError};

fn options() -> SqliteOptions {
    SqliteOptions {
        write_batch_max: 256,
        synchronous: SqliteSync::Normal,
        readers: 2,
        quick_check: true,
    }
}

/// Each database is a scratch data directory; every `open` is another `SqliteStore` on it
/// (another writer thread and reader pool on the same file).
struct Sqlite;

impl Backend for Sqlite {
    type Database = tempfile::TempDir;

    async fn create(&self) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    async fn open(&self, db: &tempfile::TempDir) -> Arc<dyn Store> {
        let store = SqliteStore::open(db.path(), &options(), Arc::new(Metrics::default()));
        Arc::new(store.expect("open the store"))
    }
}

banter_server::store_conformance!(Sqlite);

fn text(conv: i64, sender: i64, key: &str) -> NewMessage {
    NewMessage {
        conv,
        sender,
        client_msg_id: key.into(),
        text: key.into(),
        kind: EntryKind::Text,
    }
}

/// A statement that fails on the append path (here a trigger refusing one text; in the field
/// a unique-key clash with another writer) fails that append only: the appends queued around
/// it, in the same batch, and every later one succeed with gap-free seqs. (The writer used to
/// keep a seq cache that such a failure left stale, and every later append then failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_does_not_poison_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
    let a = store.create_user("alice", "h").await.unwrap().id;
    let b = store.create_user("bob", "h").await.unwrap().id;
    let conv = store.direct_conversation(a, b).await.unwrap();
    store.append(text(conv, a, "before")).await.unwrap();
    let other = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    // Another writer appends seq 2 as the schema says (from the counter, in one transaction):
    // a writer that cached "seq 1 is the last" would now clash on (conv_id, seq) forever.
    other
        .execute_batch(&format!(
            "BEGIN IMMEDIATE;
             INSERT INTO messages (conv_id, seq, id, sender, client_msg_id, kind, body, ts)
                 SELECT id, last_seq + 1, 1, {a}, 'other', 0, 'other', 0
                 FROM conversations WHERE id = {conv};
             UPDATE conversations SET last_seq = last_seq + 1 WHERE id = {conv};
             COMMIT;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.body = 'poison'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        ))
        .unwrap();
    let mut queued = Vec::new();
    for key in ["q1", "poison", "q2", "poison", "q3"] {
        queued.push(store.queue_append(text(conv, a, key)).await.unwrap());
    }
    let mut seqs = Vec::new();
    for pending in queued {
        match pending.await {
            Ok(got) => seqs.push(got.message.seq),
            Err(e) => assert!(
                matches!(e, StoreError::Backend(ref why) if why.contains("refused by the test")),
                "{e}"
            ),
        }
    }
    assert_eq!(
        seqs,
        [3, 4, 5],
        "after the other writer's; the refused took no seq"
    );
    for i in 0..5 {
        let got = store
            .append(text(conv, a, &format!("after{i}")))
            .await
            .unwrap();
        assert_eq!(got.message.seq, 6 + i);
    }
    assert_eq!(store.last_seq(conv).await.unwrap(), 10);
    let all = store
        .messages_after(conv, 0, 100, usize::MAX)
        .await
        .unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    store.close().await;
}

/// A database written before the counters existed gets them backfilled: seqs continue after
/// the newest row, message ids after the largest.
#[tokio::test]
async fn the_seq_counter_is_backfilled_from_existing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (conv, a, last_id) = {
        let store =
            SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
        let a = store.create_user("alice", "h").await.unwrap().id;
        let b = store.create_user("bob", "h").await.unwrap().id;
        let conv = store.direct_conversation(a, b).await.unwrap();
        let mut last_id = 0;
        for i in 0..3 {
            last_id = store
                .append(text(conv, a, &format!("m{i}")))
                .await
                .unwrap()
                .message
                .id;
        }
        store.close().await;
        (conv, a, last_id)
    };
    // Back to the schema before the counters (version 4), as an older binary left it.
    let db = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    db.execute_batch(
        "ALTER TABLE conversations DROP COLUMN last_seq; DROP TABLE counters;
         DROP TABLE media; DROP TABLE media_uploads; DROP TABLE media_shares;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    db.close().unwrap();
    let store = SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
    assert_eq!(store.last_seq(conv).await.unwrap(), 3);
    let next = store.append(text(conv, a, "m3")).await.unwrap();
    assert_eq!(next.message.seq, 4);
    assert!(next.message.id > last_id, "ids continue after the largest");
    store.close().await;
}

#[tokio::test]
async fn data_survives_reopen_and_seq_continues() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (conv, a) = {
        let store = SqliteStore::open(dir.path(), &options(), Arc::clone(&metrics)).unwrap();
        let a = store.create_user("alice", "h").await.unwrap().id;
        let b = store.create_user("bob", "h").await.unwrap().id;
        let conv = store.direct_conversation(a, b).await.unwrap();
        for i in 0..3 {
            let m = NewMessage {
                conv,
                sender: a,
                client_msg_id: format!("m{i}"),
                text: "hi".into(),
                kind: EntryKind::Text,
            };
            store.append(m).await.unwrap();
        }
        store.close().await;
        (conv, a)
    };
    let store = SqliteStore::open(dir.path(), &options(), metrics).unwrap();
    assert_eq!(store.last_seq(conv).await.unwrap(), 3);
    let next = store
        .append(NewMessage {
            conv,
            sender: a,
            client_msg_id: "m3".into(),
            text: "again".into(),
            kind: EntryKind::Text,
        })
        .await
        .unwrap();
    assert_eq!(next.message.seq, 4);
    let retry = store
        .append(NewMessage {
            conv,
            sender: a,
            client_msg_id: "m0".into(),
            text: "retry".into(),
            kind: EntryKind::Text,
        })
        .await
        .unwrap();
    assert!(retry.duplicate, "idempotency keys survive a restart");
    assert_eq!(retry.message.seq, 1);
    store.close().await;
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
    store.close().await;
    let err = store.create_user("late", "h").await.unwrap_err();
    assert!(
        matches!(err, banter_server::store::StoreError::Closed),
        "{err}"
    );
}

/// Two handles in one process share the data directory's lock; the directory is marked clean
/// (and the WAL removed) only when the last one closes, so a handle closing early never
/// claims a clean shutdown while the other still writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_of_two_handles_marks_the_directory_clean() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let state = || std::fs::read_to_string(dir.path().join(MARKER_FILE)).unwrap();
    let first = SqliteStore::open(dir.path(), &options(), Arc::clone(&metrics)).unwrap();
    let second = SqliteStore::open(dir.path(), &options(), Arc::clone(&metrics)).unwrap();
    assert!(dir.path().join(LOCK_FILE).exists());
    first.create_user("alice", "h").await.unwrap();
    first.close().await;
    assert!(state().contains("running"), "{}", state());
    second.create_user("bob", "h").await.unwrap();
    assert!(second.user_by_name("alice").await.unwrap().is_some());
    second.close().await;
    assert!(state().contains("clean"), "{}", state());
    assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
}

/// A database another connection keeps write-locked past `busy_timeout` makes writes fail
/// with the retryable `Busy`, not the permanent `Backend`, and does not mark the store
/// unwritable: once the lock is gone the same write succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_locked_out_is_busy_and_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
    store.create_user("alice", "h").await.unwrap();
    let other = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // The writer waits its busy timeout (5 s) for the lock this connection holds.
    let err = store.create_user("bob", "h").await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
    assert!(err.is_retryable());
    other.execute_batch("ROLLBACK").unwrap();
    store.writable().await.expect("busy is not a lasting fault");
    store
        .create_user("bob", "h")
        .await
        .expect("the retry succeeds");
    store.close().await;
}
