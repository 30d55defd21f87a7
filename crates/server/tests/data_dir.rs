//! The SQLite store's data-directory checks at open, case by case: what a clean close leaves,
//! and each way a directory can have lost its database, its WAL or its identity. (The binary's
//! tests in crates/banter/tests/binary.rs show the same refusals end to end, with exit codes,
//! and `/readyz` on a store that cannot write.)

use std::path::Path;
use std::sync::Arc;

use banter_server::config::SqliteSync;
use banter_server::metrics::Metrics;
use banter_server::store::sqlite::{DB_FILE, LOCK_FILE, MARKER_FILE, SqliteOptions, SqliteStore};
use banter_server::store::{Store, StoreError};

fn options(quick_check: bool) -> SqliteOptions {
    SqliteOptions {
        write_batch_max: 256,
        synchronous: SqliteSync::Normal,
        readers: 2,
        quick_check,
    }
}

fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(dir, &options(true), Arc::new(Metrics::default()))
}

/// The refusal's message; panics if the store opened or failed otherwise.
fn refusal(dir: &Path) -> String {
    match open(dir) {
        Err(StoreError::DataDir(why)) => why,
        Err(other) => panic!("expected a data directory refusal, got {other}"),
        Ok(_) => panic!("the store opened"),
    }
}

/// Creates `dir` with `users` users (each row ~1 KiB) and closes it cleanly.
async fn populated(dir: &Path, users: usize) {
    let store = open(dir).unwrap();
    for i in 0..users {
        store
            .create_user(&format!("user{i}"), &"h".repeat(1000))
            .await
            .unwrap();
    }
    store.close().await;
}

fn marker(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(MARKER_FILE)).unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_clean_close_leaves_the_database_and_its_marker_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    store.create_user("alice", "h").await.unwrap();
    assert!(marker(dir.path()).contains("state = \"running\""));
    assert!(dir.path().join("banter.db-wal").exists());
    store.close().await;
    // The lock file stays: removing it would race with a process taking it.
    assert_eq!(files(dir.path()), [DB_FILE, MARKER_FILE, LOCK_FILE]);
    assert!(marker(dir.path()).contains("state = \"clean\""));
    // The database file alone holds the data.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
    drop(conn);
    let again = open(dir.path()).unwrap();
    assert!(again.user_by_name("alice").await.unwrap().is_some());
    again.close().await;
}

#[tokio::test]
async fn a_wal_without_its_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("banter.db-wal"), b"frames").unwrap();
    let why = refusal(dir.path());
    assert!(why.contains("banter.db is missing but"), "{why}");
    assert!(!dir.path().join(DB_FILE).exists(), "nothing was created");
}

#[tokio::test]
async fn a_deleted_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 3).await;
    std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    let why = refusal(dir.path());
    assert!(why.contains("banter.db is missing, but"), "{why}");
    assert!(
        !dir.path().join(DB_FILE).exists(),
        "no empty database was created"
    );
}

#[tokio::test]
async fn an_emptied_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 3).await;
    std::fs::File::create(dir.path().join(DB_FILE)).unwrap();
    let why = refusal(dir.path());
    assert!(why.contains("is empty or new"), "{why}");
}

/// A copy taken while the server ran (or a crash) without its WAL: the WAL held writes the
/// database lacks. The documented override (`state = "clean"`) starts it with what it has.
#[tokio::test]
async fn a_database_without_the_wal_of_its_unclean_run_is_refused() {
    let running = tempfile::tempdir().unwrap();
    let store = open(running.path()).unwrap();
    store.create_user("alice", "h").await.unwrap();
    let copy = tempfile::tempdir().unwrap();
    for name in [DB_FILE, MARKER_FILE] {
        std::fs::copy(running.path().join(name), copy.path().join(name)).unwrap();
    }
    store.close().await;
    let why = refusal(copy.path());
    assert!(
        why.contains("did not shut down cleanly") && why.contains("banter.db-wal is missing"),
        "{why}"
    );
    let marker_path = copy.path().join(MARKER_FILE);
    let text = marker(copy.path()).replace("\"running\"", "\"clean\"");
    std::fs::write(&marker_path, text).unwrap();
    let accepted = open(copy.path()).unwrap();
    accepted.close().await;
}

#[tokio::test]
async fn a_database_from_another_directory_is_refused_until_its_marker_goes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    populated(a.path(), 1).await;
    populated(b.path(), 2).await;
    std::fs::copy(a.path().join(DB_FILE), b.path().join(DB_FILE)).unwrap();
    let why = refusal(b.path());
    assert!(why.contains("comes from another data directory"), "{why}");
    // Deleting the marker accepts the database (a restore from elsewhere), which then names it.
    std::fs::remove_file(b.path().join(MARKER_FILE)).unwrap();
    let store = open(b.path()).unwrap();
    store.close().await;
    let id = |dir: &Path| {
        marker(dir)
            .lines()
            .find(|l| l.starts_with("store_id"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(id(a.path()), id(b.path()));
}

#[tokio::test]
async fn an_unreadable_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 1).await;
    std::fs::write(dir.path().join(MARKER_FILE), "not toml {").unwrap();
    let why = refusal(dir.path());
    assert!(why.contains("banter.id cannot be read"), "{why}");
}

/// A directory written before markers existed (schema version 2, no `banter.id`) is adopted.
#[tokio::test]
async fn a_directory_from_before_markers_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 2).await;
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    // Undo every migration after the second.
    conn.execute_batch(
        "DROP TABLE banter_meta; DROP TABLE invites; ALTER TABLE users DROP COLUMN disabled_at;
         ALTER TABLE users DROP COLUMN deleted_at; ALTER TABLE conversations DROP COLUMN last_seq;
         DROP TABLE counters; DROP TABLE media; DROP TABLE media_uploads;
         DROP TABLE media_shares; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    std::fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
    let store = open(dir.path()).unwrap();
    assert!(store.user_by_name("user1").await.unwrap().is_some());
    store.close().await;
    assert!(marker(dir.path()).contains("store_id"));
}

/// Damaged pages are found by the quick check at open; `sqlite_quick_check = false` skips it
/// (and the damage surfaces only when a query reads those pages).
#[tokio::test]
async fn damaged_pages_are_refused_unless_the_check_is_off() {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 1000).await;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(DB_FILE))
        .unwrap();
    let pages = file.metadata().unwrap().len() / 4096;
    assert!(pages > 200, "{pages} pages");
    file.seek(SeekFrom::Start(pages / 2 * 4096)).unwrap();
    file.write_all(&[0xA5; 4 * 4096]).unwrap();
    drop(file);
    let why = refusal(dir.path());
    assert!(why.contains("banter.db is damaged"), "{why}");
    let unchecked =
        SqliteStore::open(dir.path(), &options(false), Arc::new(Metrics::default())).unwrap();
    unchecked.close().await;
}

#[tokio::test]
async fn a_healthy_store_is_writable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    store.writable().await.unwrap();
    store.close().await;
}

/// Dropped without `close` (a start that failed after the store opened, a test): the directory
/// is still left clean, or the next start would find `running` and no WAL and refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_dropped_without_close_leaves_a_clean_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    store.create_user("alice", "h").await.unwrap();
    drop(store);
    // The lock file stays: removing it would race with a process taking it.
    assert_eq!(files(dir.path()), [DB_FILE, MARKER_FILE, LOCK_FILE]);
    assert!(marker(dir.path()).contains("state = \"clean\""));
    let again = open(dir.path()).unwrap();
    assert!(again.user_by_name("alice").await.unwrap().is_some());
    again.close().await;
}

/// The common failed start: the store opens, then the port is taken. Starting again works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_bind_leaves_the_directory_startable() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = banter_server::Config {
        data_dir: dir.path().to_path_buf(),
        listen: banter_server::config::Listen(taken.local_addr().unwrap()),
        ..banter_server::Config::default()
    };
    let failed = banter_server::Server::bind(config.clone()).await;
    assert!(
        matches!(failed, Err(banter_server::StartError::Bind { .. })),
        "the port is taken"
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = banter_server::Server::bind(config).await.expect("starts");
    server.store().close().await;
}
