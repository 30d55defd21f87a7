//! Conformance checks for the message log: gap-free, idempotent and ordered appends (also
//! under concurrency and when queued), paging by count and bytes, the conversation list with
//! read cursors, and recall and edit.

use std::collections::HashSet;
use std::sync::Arc;

use super::{count_entries, text, user};
use crate::store::{
    Amendment, ENTRY_OVERHEAD, EntryKind, Missing, Store, StoreError, StoredMessage,
};

pub(super) async fn append_assigns_gap_free_seq(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    let other = store
        .direct_conversation(a, user(store, "carol").await)
        .await
        .unwrap();
    let mut last_id = 0;
    for i in 1..=20u64 {
        let sender = if i % 2 == 0 { a } else { b };
        let got = store
            .append(text(conv, sender, &format!("m{i}")))
            .await
            .unwrap();
        assert!(!got.duplicate);
        assert_eq!(got.message.seq, i, "seq is gap-free from 1");
        assert!(got.message.id > last_id, "ids increase");
        assert!(got.message.ts > 0);
        last_id = got.message.id;
    }
    let first_other = store.append(text(other, a, "o1")).await.unwrap();
    assert_eq!(first_other.message.seq, 1, "seq is per conversation");
    assert_eq!(store.last_seq(conv).await.unwrap(), 20);
    assert_eq!(store.last_seq(other).await.unwrap(), 1);
}

pub(super) async fn append_is_idempotent(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    let first = store.append(text(conv, a, "same")).await.unwrap();
    let again = store.append(text(conv, a, "same")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, first.message, "the original is returned");
    let other_sender = store.append(text(conv, b, "same")).await.unwrap();
    assert!(!other_sender.duplicate, "keys are per sender");
    assert_eq!(other_sender.message.seq, 2);
    assert_eq!(count_entries(store, conv).await, 2);
}

pub(super) async fn concurrent_appends(store: Arc<dyn Store>) {
    let a = user(&*store, "alice").await;
    let b = user(&*store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                // Every fifth send is a retry of the previous one.
                let key = format!("t{t}-{}", i - usize::from(i % 5 == 4));
                let got = store.append(text(conv, a, &key)).await.unwrap();
                assert_eq!(got.duplicate, i % 5 == 4);
                seqs.push(got.message.seq);
            }
            seqs
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        for seq in task.await.unwrap() {
            all.insert(seq);
        }
    }
    let expected: HashSet<u64> = (1..=8 * 40).collect();
    assert_eq!(all, expected, "seqs are exactly 1..=N with no gap");
    assert_eq!(count_entries(&*store, conv).await, 8 * 40);
}

pub(super) async fn queued_appends_commit_in_order(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    // Queue them all before waiting for any: the order of queueing is the order of seqs.
    let mut pending = Vec::new();
    for i in 0..30 {
        // A retry of an earlier key, queued in the same burst, is still a duplicate.
        let key = if i == 20 {
            "q3".to_owned()
        } else {
            format!("q{i}")
        };
        pending.push(store.queue_append(text(conv, a, &key)).await.unwrap());
    }
    let mut seqs = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let got = p.await.unwrap();
        assert_eq!(got.duplicate, i == 20, "entry {i}");
        seqs.push(got.message.seq);
    }
    let mut expected: Vec<u64> = (1..=29).collect();
    expected.insert(20, 4);
    assert_eq!(seqs, expected, "seqs follow the order of queueing");
    assert_eq!(count_entries(store, conv).await, 29);
}

/// A key is the sender's, not the conversation's: sent again into another conversation, in
/// the middle of a burst there, it is a duplicate of the original and takes no seq.
pub(super) async fn key_reused_in_another_conversation(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let first = store.direct_conversation(a, b).await.unwrap();
    let second = store.direct_conversation(a, c).await.unwrap();
    let original = store.append(text(first, a, "k")).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..9 {
        let key = if i == 4 {
            "k".to_owned()
        } else {
            format!("r{i}")
        };
        pending.push(store.queue_append(text(second, a, &key)).await.unwrap());
    }
    let mut seqs = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        let got = p.await.unwrap();
        if i == 4 {
            assert!(got.duplicate, "entry {i}");
            assert_eq!(got.message, original.message, "the original is returned");
        } else {
            assert!(!got.duplicate, "entry {i}");
            assert_eq!(got.message.conv, second);
            seqs.push(got.message.seq);
        }
    }
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<u64>>(),
        "no seq taken by the duplicate"
    );
    assert_eq!(count_entries(store, second).await, 8);
    assert_eq!(store.last_seq(second).await.unwrap(), 8);
}

pub(super) async fn paging(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    for i in 1..=25 {
        store.append(text(conv, a, &format!("m{i}"))).await.unwrap();
    }
    let seqs = |page: Vec<StoredMessage>| page.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.messages_after(conv, 0, 10, usize::MAX).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(
            store
                .messages_after(conv, 20, 10, usize::MAX)
                .await
                .unwrap()
        ),
        (21..=25).collect::<Vec<_>>()
    );
    assert!(
        store
            .messages_after(conv, 25, 10, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        seqs(
            store
                .messages_before(conv, None, 0, 5, usize::MAX)
                .await
                .unwrap()
        ),
        (21..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(
            store
                .messages_before(conv, Some(21), 0, 5, usize::MAX)
                .await
                .unwrap()
        ),
        (16..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(
            store
                .messages_before(conv, Some(3), 2, 5, usize::MAX)
                .await
                .unwrap()
        ),
        vec![2],
        "min_seq bounds the page from below"
    );
    let m = &store.messages_after(conv, 4, 1, usize::MAX).await.unwrap()[0];
    assert_eq!((m.seq, m.sender, m.text.as_str()), (5, a, "text of m5"));
    // A byte bound stops a page after the entry that passes it, the first never counting
    // ("text of m11" is 11 bytes).
    let entry = 11 + ENTRY_OVERHEAD;
    assert_eq!(
        seqs(store.messages_after(conv, 10, 10, 2 * entry).await.unwrap()),
        vec![11, 12, 13],
        "two entries fit, the third passes the bound and ends the page"
    );
    assert_eq!(
        seqs(
            store
                .messages_before(conv, None, 0, 10, entry)
                .await
                .unwrap()
        ),
        vec![24, 25],
        "from the newest down"
    );
    assert_eq!(
        seqs(store.messages_after(conv, 0, 10, 0).await.unwrap()),
        vec![1, 2],
        "a page holds at least one entry, and the next that passes the bound"
    );
}

pub(super) async fn conversation_list_and_read_cursor(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let ab = store.direct_conversation(a, b).await.unwrap();
    let ac = store.direct_conversation(a, c).await.unwrap();
    store.append(text(ab, a, "1")).await.unwrap();
    store.append(text(ab, b, "2")).await.unwrap();
    store.append(text(ac, c, "3")).await.unwrap();
    let list = store.conversations_of(a).await.unwrap();
    assert_eq!(list.len(), 2);
    let ab_entry = list.iter().find(|x| x.id == ab).unwrap();
    assert_eq!(ab_entry.peer, Some((b, "bob".to_owned())));
    assert_eq!(ab_entry.last_message.as_ref().unwrap().seq, 2);
    assert_eq!(
        ab_entry.read_seq, 1,
        "her own entry is read by her, bob's is not"
    );
    let ac_entry = list.iter().find(|x| x.id == ac).unwrap();
    assert_eq!(ac_entry.read_seq, 0);
    assert!(list[0].updated_at >= list[1].updated_at, "newest first");
    assert_eq!(store.set_read_cursor(a, ab, 1).await.unwrap(), 1);
    assert_eq!(
        store.set_read_cursor(a, ab, 0).await.unwrap(),
        1,
        "cursors never move back"
    );
    assert_eq!(store.set_read_cursor(a, ab, 2).await.unwrap(), 2);
    assert!(matches!(
        store.set_read_cursor(c, ab, 1).await,
        Err(StoreError::NotFound(Missing::Member))
    ));
    let list = store.conversations_of(a).await.unwrap();
    assert_eq!(list.iter().find(|x| x.id == ab).unwrap().read_seq, 2);
    assert_eq!(store.conversations_of(b).await.unwrap().len(), 1);
}

pub(super) async fn recall_and_edit(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    store.append(text(conv, a, "m1")).await.unwrap();
    store.append(text(conv, a, "m2")).await.unwrap();
    let edit = store
        .amend(conv, 1, a, "e1".into(), Amendment::Edit("new".into()))
        .await
        .unwrap();
    assert_eq!(
        (edit.message.seq, edit.message.kind, edit.message.ref_seq),
        (3, EntryKind::Edit, Some(1))
    );
    let recall = store
        .amend(conv, 2, a, "r2".into(), Amendment::Recall)
        .await
        .unwrap();
    assert_eq!(
        (recall.message.seq, recall.message.kind),
        (4, EntryKind::Recall)
    );
    let again = store
        .amend(conv, 2, a, "r2".into(), Amendment::Recall)
        .await
        .unwrap();
    assert!(again.duplicate);
    let m1 = store.message(conv, 1).await.unwrap().unwrap();
    assert_eq!((m1.text.as_str(), m1.edited_at.is_some()), ("new", true));
    let m2 = store.message(conv, 2).await.unwrap().unwrap();
    assert_eq!((m2.text.as_str(), m2.recalled), ("", true));
    for (seq, who, key) in [(2, a, "r3"), (1, b, "r4"), (3, a, "r5"), (9, a, "r6")] {
        let refused = store
            .amend(conv, seq, who, key.into(), Amendment::Recall)
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotFound(Missing::Message))),
            "seq {seq} by {who}"
        );
    }
    assert_eq!(store.last_seq(conv).await.unwrap(), 4);
}
