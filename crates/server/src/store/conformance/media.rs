//! Conformance checks for media metadata: dedupe by hash, quotas, who may read a file, and
//! the sweep of files sent nowhere.

use super::user;
use crate::store::{
    Amendment, EntryKind, MediaRecord, Missing, NewMessage, Store, StoreError, Upload,
};

fn file(hash_digit: char, size: u64) -> MediaRecord {
    MediaRecord {
        hash: std::iter::repeat_n(hash_digit, 64).collect(),
        mime: "image/png".into(),
        size,
        width: Some(640),
        height: Some(480),
        thumbnail: Some("image/jpeg".into()),
        color: Some("#102030".into()),
    }
}

fn recorded(upload: Upload) -> (MediaRecord, bool, u64) {
    match upload {
        Upload::Recorded {
            record,
            new,
            used_bytes,
        } => (record, new, used_bytes),
        Upload::OverQuota { used_bytes } => panic!("over quota at {used_bytes}"),
    }
}

pub(super) async fn uploads_quotas_and_access(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let one = file('a', 1000);
    assert_eq!(store.media(&one.hash).await.unwrap(), None);

    let (stored, new, used) = recorded(
        store
            .add_upload(one.clone(), a, Some("cat.png".into()), 5000)
            .await
            .unwrap(),
    );
    assert!(new, "first copy of these bytes");
    assert_eq!((stored.clone(), used), (one.clone(), 1000));
    assert_eq!(store.media(&one.hash).await.unwrap(), Some(one.clone()));
    assert_eq!(
        store.upload_name(a, &one.hash).await.unwrap(),
        Some(Some("cat.png".into()))
    );

    // The same bytes again, by the same user: no quota, not new.
    let (_, new, used) = recorded(store.add_upload(one.clone(), a, None, 5000).await.unwrap());
    assert!(!new);
    assert_eq!(used, 1000);
    // By another user: stored once, counted in their quota too, and the stored record wins.
    let claimed = MediaRecord {
        mime: "text/plain".into(),
        ..one.clone()
    };
    let (record, new, used) = recorded(store.add_upload(claimed, b, None, 5000).await.unwrap());
    assert!(!new, "identical bytes are stored once");
    assert_eq!(record, one, "the first upload's record stands");
    assert_eq!(used, 1000);

    // Over quota: refused, nothing recorded.
    let big = file('b', 4500);
    assert_eq!(
        store.add_upload(big.clone(), a, None, 5000).await.unwrap(),
        Upload::OverQuota { used_bytes: 1000 }
    );
    assert_eq!(store.media(&big.hash).await.unwrap(), None);
    assert_eq!(store.upload_name(a, &big.hash).await.unwrap(), None);
    assert_eq!(store.media_usage(a).await.unwrap(), 1000);

    // Readers: the uploaders, then the members of a conversation it was sent into.
    assert!(store.may_read_media(a, &one.hash).await.unwrap());
    assert!(store.may_read_media(b, &one.hash).await.unwrap());
    assert!(!store.may_read_media(c, &one.hash).await.unwrap());
    let only_a = file('c', 10);
    store
        .add_upload(only_a.clone(), a, None, 5000)
        .await
        .unwrap();
    assert!(!store.may_read_media(c, &only_a.hash).await.unwrap());
    let conv = store.direct_conversation(a, c).await.unwrap();
    store.share_media(conv, &only_a.hash).await.unwrap();
    store.share_media(conv, &only_a.hash).await.unwrap();
    assert!(store.may_read_media(c, &only_a.hash).await.unwrap());
    assert!(!store.may_read_media(b, &only_a.hash).await.unwrap());
    assert!(!store.may_read_media(c, &file('d', 1).hash).await.unwrap());
}

pub(super) async fn sweep_removes_what_was_sent_nowhere(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let kept = file('1', 100);
    let dropped = file('2', 200);
    for f in [&kept, &dropped] {
        store.add_upload(f.clone(), a, None, 10_000).await.unwrap();
    }
    let conv = store.direct_conversation(a, b).await.unwrap();
    store.share_media(conv, &kept.hash).await.unwrap();
    assert_eq!(store.media_usage(a).await.unwrap(), 300);

    // Nothing is old enough yet.
    let past = crate::clock::now_ms() - 60_000;
    assert_eq!(
        store.sweep_media(past, 100).await.unwrap(),
        Vec::<String>::new()
    );
    let future = crate::clock::now_ms() + 60_000;
    let swept = store.sweep_media(future, 100).await.unwrap();
    assert_eq!(
        swept,
        vec![dropped.hash.clone()],
        "only the file sent nowhere"
    );
    assert_eq!(store.media(&dropped.hash).await.unwrap(), None);
    assert_eq!(store.upload_name(a, &dropped.hash).await.unwrap(), None);
    assert_eq!(
        store.media_usage(a).await.unwrap(),
        100,
        "its quota is given back"
    );
    assert_eq!(store.media(&kept.hash).await.unwrap(), Some(kept.clone()));
    assert_eq!(
        store.sweep_media(future, 100).await.unwrap(),
        Vec::<String>::new()
    );
}

/// An entry with a file keeps its kind and body through the store, like a system entry's; it
/// may be recalled, not edited.
pub(super) async fn attachment_entries(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    let body = r#"{"text":"look","attachment":{"kind":"image"}}"#;
    let sent = store
        .append(NewMessage {
            conv,
            sender: a,
            client_msg_id: "file-1".into(),
            text: body.into(),
            kind: EntryKind::Attachment,
        })
        .await
        .unwrap()
        .message;
    assert_eq!(
        (sent.kind, sent.text.as_str(), sent.seq),
        (EntryKind::Attachment, body, 1)
    );
    let read = store.message(conv, 1).await.unwrap().unwrap();
    assert_eq!(read, sent);
    let edit = store
        .amend(
            conv,
            1,
            a,
            "edit-1".into(),
            Amendment::Edit("new caption".into()),
        )
        .await;
    assert!(
        matches!(edit, Err(StoreError::NotFound(Missing::Message))),
        "{edit:?}"
    );
    let recall = store
        .amend(conv, 1, a, "recall-1".into(), Amendment::Recall)
        .await
        .unwrap();
    assert_eq!(
        (recall.message.kind, recall.message.seq),
        (EntryKind::Recall, 2)
    );
    let recalled = store.message(conv, 1).await.unwrap().unwrap();
    assert!(recalled.recalled);
    assert_eq!(
        recalled.text, "",
        "the body, with the file's description, is gone"
    );
}
