//! Conformance checks for what several writers on one database must keep (two handles, as two
//! processes or nodes would hold): seqs unique and gap-free per conversation, idempotency
//! across handles, each handle reading the other's writes. Also the progress rules of queued
//! appends and a failed append leaving no gap.

use std::collections::HashSet;
use std::sync::Arc;

use super::{count_entries, event, open_rules, text, user};
use crate::store::{
    Amendment, ConvId, GroupChange, Missing, NewGroup, Store, StoreError, StoredMessage, UserId,
};

/// Every entry of `conv`, read through `store`.
async fn entries(store: &dyn Store, conv: ConvId) -> Vec<StoredMessage> {
    store
        .messages_after(conv, 0, u32::MAX, usize::MAX)
        .await
        .expect("read the conversation")
}

/// Asserts that `conv` holds exactly the seqs `1..=last_seq`, as both handles see it.
async fn assert_gap_free(first: &dyn Store, second: &dyn Store, conv: ConvId, want: u64) {
    for (name, store) in [("first", first), ("second", second)] {
        let seqs: Vec<u64> = entries(store, conv).await.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=want).collect::<Vec<_>>(),
            "conversation {conv} through the {name} handle: gap-free and complete"
        );
        assert_eq!(store.last_seq(conv).await.unwrap(), want, "{name} handle");
    }
}

/// A future of a queued append that nobody awaits (a connection that went away) must not
/// keep the append from committing.
pub(super) async fn dropped_queued_append_commits(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    let dropped = store.queue_append(text(conv, a, "dropped")).await.unwrap();
    drop(dropped);
    let next = store.append(text(conv, a, "awaited")).await.unwrap();
    assert_eq!(next.message.seq, 2, "the dropped append was queued first");
    let first = store
        .message(conv, 1)
        .await
        .unwrap()
        .expect("seq 1 committed");
    assert_eq!(first.client_msg_id, "dropped");
}

/// An append that fails takes no seq: the next one gets the seq it would have had.
pub(super) async fn failed_append_leaves_no_gap(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    store.append(text(conv, a, "m1")).await.unwrap();
    let unknown = store.append(text(conv + 1000, a, "lost")).await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound(Missing::Conversation))),
        "{unknown:?}"
    );
    let refused = store
        .amend(conv, 99, a, "edit-lost".into(), Amendment::Edit("x".into()))
        .await;
    assert!(matches!(
        refused,
        Err(StoreError::NotFound(Missing::Message))
    ));
    let next = store.append(text(conv, a, "m2")).await.unwrap();
    assert_eq!(next.message.seq, 2);
    assert_eq!(count_entries(store, conv).await, 2);
}

/// Appends through both handles at once, to two conversations: every one acknowledged, seqs
/// unique and gap-free per conversation, ids unique, and each handle reads all of them.
pub(super) async fn two_handles_append_concurrently(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let a = user(&*first, "alice").await;
    let b = user(&*second, "bob").await;
    let c = user(&*first, "carol").await;
    let ab = first.direct_conversation(a, b).await.unwrap();
    assert_eq!(
        second.direct_conversation(b, a).await.unwrap(),
        ab,
        "one direct conversation per pair, whichever handle asks"
    );
    let ac = second.direct_conversation(a, c).await.unwrap();
    const PER_TASK: usize = 30;
    let mut tasks = Vec::new();
    for t in 0..6 {
        let store = Arc::clone(if t % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..PER_TASK {
                let conv = if i % 2 == 0 { ab } else { ac };
                let got = store
                    .append(text(conv, a, &format!("t{t}-{i}")))
                    .await
                    .expect("every append is acknowledged");
                assert!(!got.duplicate);
                acks.push((conv, got.message.seq, got.message.id));
            }
            acks
        }));
    }
    let mut seqs = HashSet::new();
    let mut ids = HashSet::new();
    for task in tasks {
        for (conv, seq, id) in task.await.unwrap() {
            assert!(
                seqs.insert((conv, seq)),
                "seq {seq} of {conv} acknowledged twice"
            );
            assert!(ids.insert(id), "message id {id} assigned twice");
        }
    }
    let per_conv = u64::try_from(6 * PER_TASK / 2).unwrap();
    assert_gap_free(&*first, &*second, ab, per_conv).await;
    assert_gap_free(&*first, &*second, ac, per_conv).await;
}

/// A retry of `(sender, client_msg_id)` through another handle returns the original, also
/// when both handles send it at the same time.
pub(super) async fn retry_through_another_handle(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let a = user(&*first, "alice").await;
    let b = user(&*first, "bob").await;
    let conv = first.direct_conversation(a, b).await.unwrap();
    let original = first.append(text(conv, a, "once")).await.unwrap();
    let retry = second.append(text(conv, a, "once")).await.unwrap();
    assert!(retry.duplicate, "the other handle finds the original");
    assert_eq!(retry.message, original.message);
    for i in 0..10 {
        let key = format!("race-{i}");
        let (x, y) = tokio::join!(
            first.append(text(conv, a, &key)),
            second.append(text(conv, a, &key))
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            x.message, y.message,
            "{key}: one message, whichever handle won"
        );
        assert!(
            x.duplicate != y.duplicate,
            "{key}: exactly one is the original"
        );
    }
    assert_gap_free(&*first, &*second, conv, 11).await;
    // The same key raced into two conversations (a client bug, but one that must neither
    // fail nor leave a gap): one of them stores it, the other answers the original.
    let c = user(&*first, "carol").await;
    let other = first.direct_conversation(a, c).await.unwrap();
    for i in 0..10 {
        let key = format!("across-{i}");
        let (x, y) = tokio::join!(
            first.append(text(conv, a, &key)),
            second.append(text(other, a, &key))
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.message, y.message, "{key}: one message");
        assert!(
            x.duplicate != y.duplicate,
            "{key}: exactly one is the original"
        );
    }
    let stored = count_entries(&*first, conv).await + count_entries(&*first, other).await;
    assert_eq!(stored, 11 + 10, "each raced key stored once");
    assert_eq!(
        first.last_seq(conv).await.unwrap(),
        count_entries(&*first, conv).await
    );
    assert_eq!(
        first.last_seq(other).await.unwrap(),
        count_entries(&*first, other).await
    );
}

/// Group changes through one handle while the other appends and edits in the same group:
/// every entry (text, edit, system) gets a seq, gap-free.
pub(super) async fn change_and_amend_concurrently(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let owner = user(&*first, "owner").await;
    let others: Vec<UserId> = [
        user(&*first, "m1").await,
        user(&*second, "m2").await,
        user(&*second, "m3").await,
    ]
    .to_vec();
    let (group, created) = first
        .create_group(NewGroup {
            owner,
            name: "g".into(),
            description: String::new(),
            public: false,
            members: vec![others[0]],
            event: event(owner, "created"),
            rules: open_rules(owner),
        })
        .await
        .unwrap();
    assert_eq!(created.seq, 1);
    let conv = group.id;
    let changes = {
        let store = Arc::clone(&first);
        let others = others.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let change = match i % 4 {
                    0 => GroupChange::Add {
                        users: vec![others[1 + (i / 4) % 2]],
                        max: 100,
                        rules: open_rules(owner),
                    },
                    1 => GroupChange::Remove {
                        user: others[1 + (i / 4) % 2],
                    },
                    _ => GroupChange::Update {
                        name: Some(format!("name {i}")),
                        description: None,
                    },
                };
                store
                    .change_group(conv, change, event(owner, &format!("change {i}")))
                    .await
                    .expect("group change");
            }
        })
    };
    let amends = {
        let store = Arc::clone(&second);
        let sender = others[0];
        tokio::spawn(async move {
            for i in 0..10 {
                let sent = store
                    .append(super::text(conv, sender, &format!("text {i}")))
                    .await
                    .expect("append");
                store
                    .amend(
                        conv,
                        sent.message.seq,
                        sender,
                        format!("edit {i}"),
                        Amendment::Edit(format!("edited {i}")),
                    )
                    .await
                    .expect("edit");
            }
        })
    };
    changes.await.unwrap();
    amends.await.unwrap();
    assert_gap_free(&*first, &*second, conv, 1 + 20 + 10 * 2).await;
}
