//! The store conformance suite, run against the SQLite store (one test per check, each on a
//! fresh database file), plus what only a file-backed store can show: reopening keeps data.

use std::sync::Arc;

use banter_server::config::SqliteSync;
use banter_server::metrics::Metrics;
use banter_server::store::sqlite::{SqliteOptions, SqliteStore};
use banter_server::store::{NewMessage, Store, conformance};

fn options() -> SqliteOptions {
    SqliteOptions {
        write_batch_max: 256,
        synchronous: SqliteSync::Normal,
        readers: 2,
        quick_check: true,
    }
}

async fn check(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &options(), Arc::new(Metrics::default())).unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    conformance::run(name, Arc::clone(&store)).await;
    store.close().await;
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                check(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_check_is_run() {
            let ran = [$(stringify!($name)),*];
            assert_eq!(ran.as_slice(), conformance::CHECKS);
        }
    };
}

conformance_tests!(
    users,
    sessions,
    direct_conversations,
    append_assigns_gap_free_seq,
    append_is_idempotent,
    concurrent_appends,
    queued_appends_commit_in_queue_order,
    paging,
    conversation_list_and_read_cursor,
    social_graph,
    groups_and_system_entries,
    recall_and_edit,
    group_add_rules,
    contacts_exclude_blocks_and_dissolved_groups,
    conversation_list_mixes_kinds,
);

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
