//! The store conformance suite: what every [`Store`] implementation must do, written against the
//! trait only so that each backend runs it unchanged (see `tests/store_sqlite.rs`).
//!
//! Each check takes a fresh, empty store and panics with a message on a violation.

use std::collections::HashSet;
use std::sync::Arc;

mod consent;

use super::{
    AddRules, Amendment, EntryKind, GroupChange, MemberRole, NewGroup, NewMessage, NewSession,
    ProfilePatch, Store, StoreError, SystemEntry, UserId,
};

/// Names of every check, for backends' test lists.
pub const CHECKS: &[&str] = &[
    "users",
    "sessions",
    "direct_conversations",
    "append_assigns_gap_free_seq",
    "append_is_idempotent",
    "concurrent_appends",
    "queued_appends_commit_in_queue_order",
    "paging",
    "conversation_list_and_read_cursor",
    "social_graph",
    "groups_and_system_entries",
    "recall_and_edit",
    "group_add_rules",
    "contacts_exclude_blocks_and_dissolved_groups",
    "conversation_list_mixes_kinds",
];

/// Runs the check named `name` (one of [`CHECKS`]) on `store`.
pub async fn run(name: &str, store: Arc<dyn Store>) {
    match name {
        "users" => users(&*store).await,
        "sessions" => sessions(&*store).await,
        "direct_conversations" => direct_conversations(&*store).await,
        "append_assigns_gap_free_seq" => append_assigns_gap_free_seq(&*store).await,
        "append_is_idempotent" => append_is_idempotent(&*store).await,
        "concurrent_appends" => concurrent_appends(store).await,
        "queued_appends_commit_in_queue_order" => queued_appends_commit_in_order(&*store).await,
        "paging" => paging(&*store).await,
        "conversation_list_and_read_cursor" => conversation_list_and_read_cursor(&*store).await,
        "social_graph" => social_graph(&*store).await,
        "groups_and_system_entries" => groups_and_system_entries(&*store).await,
        "recall_and_edit" => recall_and_edit(&*store).await,
        "group_add_rules" => consent::group_add_rules(&*store).await,
        "contacts_exclude_blocks_and_dissolved_groups" => {
            consent::contacts_exclude_blocks_and_dissolved_groups(&*store).await;
        }
        "conversation_list_mixes_kinds" => consent::conversation_list(&*store).await,
        other => panic!("no conformance check named {other}"),
    }
}

pub(super) async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(name, "hash")
        .await
        .expect("create user")
        .id
}

fn text(conv: i64, sender: UserId, id: &str) -> NewMessage {
    NewMessage {
        conv,
        sender,
        client_msg_id: id.to_owned(),
        text: format!("text of {id}"),
    }
}

async fn users(store: &dyn Store) {
    let alice = store.create_user("alice", "h1").await.unwrap();
    assert_eq!(alice.username, "alice");
    assert!(matches!(
        store.create_user("alice", "h2").await,
        Err(StoreError::UsernameTaken)
    ));
    for name in ["alan", "bob", "al", "balance"] {
        store.create_user(name, "h").await.unwrap();
    }
    let found = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(found, alice);
    assert_eq!(store.user_by_id(alice.id).await.unwrap().unwrap(), alice);
    assert!(store.user_by_name("nobody").await.unwrap().is_none());
    assert!(store.user_by_id(alice.id + 1000).await.unwrap().is_none());
    let names: Vec<String> = store
        .users_by_prefix("al", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["al", "alan", "alice"]);
    assert_eq!(store.users_by_prefix("al", 2).await.unwrap().len(), 2);
    store.set_password(alice.id, "h3").await.unwrap();
    let changed = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "h3");
    assert!(matches!(
        store.set_password(alice.id + 1000, "x").await,
        Err(StoreError::NotFound)
    ));
}

async fn sessions(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let s = store
            .create_session(NewSession {
                user_id: alice,
                token_hash: [i; 32],
                device: format!("device {i}"),
                created_at: 1,
                expires_at: 2,
            })
            .await
            .unwrap();
        assert_eq!(s.device, format!("device {i}"));
        ids.push(s.id);
    }
    let by_token = store.session_by_token([1; 32]).await.unwrap().unwrap();
    assert_eq!((by_token.id, by_token.user_id), (ids[1], alice));
    assert!(store.session_by_token([9; 32]).await.unwrap().is_none());
    assert_eq!(store.sessions_of(alice).await.unwrap().len(), 3);
    assert!(matches!(
        store.revoke_session(bob, ids[0]).await,
        Err(StoreError::NotFound)
    ));
    store.revoke_session(alice, ids[0]).await.unwrap();
    assert!(matches!(
        store.revoke_session(alice, ids[0]).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.session_by_token([0; 32]).await.unwrap().is_none());
    let revoked = store.revoke_other_sessions(alice, ids[2]).await.unwrap();
    assert_eq!(revoked, vec![ids[1]]);
    let left: Vec<_> = store
        .sessions_of(alice)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![ids[2]]);
}

async fn direct_conversations(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let ab = store.direct_conversation(a, b).await.unwrap();
    assert_eq!(store.direct_conversation(b, a).await.unwrap(), ab);
    let ac = store.direct_conversation(a, c).await.unwrap();
    assert_ne!(ab, ac);
    let mut expected = vec![a, b];
    expected.sort_unstable();
    assert_eq!(store.members(ab).await.unwrap(), expected);
    assert!(matches!(
        store.direct_conversation(a, c + 1000).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.members(ab + 1000).await.unwrap().is_empty());
}

async fn append_assigns_gap_free_seq(store: &dyn Store) {
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

async fn append_is_idempotent(store: &dyn Store) {
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
    assert_eq!(store.count_messages(conv).await.unwrap(), 2);
}

async fn concurrent_appends(store: Arc<dyn Store>) {
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
    assert_eq!(store.count_messages(conv).await.unwrap(), 8 * 40);
}

async fn queued_appends_commit_in_order(store: &dyn Store) {
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
    assert_eq!(store.count_messages(conv).await.unwrap(), 29);
}

async fn paging(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let conv = store.direct_conversation(a, b).await.unwrap();
    for i in 1..=25 {
        store.append(text(conv, a, &format!("m{i}"))).await.unwrap();
    }
    let seqs = |page: Vec<super::StoredMessage>| page.iter().map(|m| m.seq).collect::<Vec<_>>();
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
    let entry = 11 + super::ENTRY_OVERHEAD;
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

async fn conversation_list_and_read_cursor(store: &dyn Store) {
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
    assert_eq!(ab_entry.read_seq, 0);
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
        Err(StoreError::NotFound)
    ));
    let list = store.conversations_of(a).await.unwrap();
    assert_eq!(list.iter().find(|x| x.id == ab).unwrap().read_seq, 2);
    assert_eq!(store.conversations_of(b).await.unwrap().len(), 1);
}

async fn social_graph(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    store.create_friend_request(a, b).await.unwrap();
    store.create_friend_request(a, b).await.unwrap();
    let rel = store.relation(a, b).await.unwrap();
    assert!(rel.a_requested && !rel.b_requested && !rel.friends);
    assert_eq!(store.social(b).await.unwrap().incoming, vec![a]);
    store.make_friends(a, b).await.unwrap();
    let rel = store.relation(b, a).await.unwrap();
    assert!(
        rel.friends && !rel.a_requested && !rel.b_requested,
        "requests cleared"
    );
    assert_eq!(store.social(a).await.unwrap().friends, vec![b]);
    assert_eq!(store.contacts(a).await.unwrap(), vec![b]);
    store.remove_friend(b, a).await.unwrap();
    assert!(matches!(
        store.remove_friend(a, b).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_friend_request(a, c).await,
        Err(StoreError::NotFound)
    ));
    store.make_friends(a, c).await.unwrap();
    store.block(c, a).await.unwrap();
    let rel = store.relation(a, c).await.unwrap();
    assert!(
        rel.b_blocked && !rel.a_blocked && !rel.friends,
        "a block ends the friendship"
    );
    assert_eq!(store.social(c).await.unwrap().blocked, vec![a]);
    store.unblock(c, a).await.unwrap();
    assert!(matches!(
        store.unblock(c, a).await,
        Err(StoreError::NotFound)
    ));
    let p = store
        .update_profile(
            a,
            ProfilePatch {
                display_name: Some("Alice".into()),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (p.display_name.as_str(), p.status_text.as_str()),
        ("Alice", "")
    );
    store.set_last_seen(a, 1234).await.unwrap();
    let got = store.profiles(&[a, 999_999]).await.unwrap();
    assert_eq!((got.len(), got[0].last_seen), (1, Some(1234)));
}

/// Rules that admit anyone not blocked, with room for plenty of groups.
pub(super) fn open_rules(by: UserId) -> AddRules {
    AddRules {
        by,
        friends_only: false,
        max_groups: 1_000,
    }
}

pub(super) fn event(actor: UserId, body: &str) -> SystemEntry {
    SystemEntry {
        actor,
        body: body.to_owned(),
    }
}

async fn groups_and_system_entries(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let (group, created) = store
        .create_group(NewGroup {
            owner: a,
            name: "team".into(),
            description: "d".into(),
            public: false,
            members: vec![b],
            event: event(a, "created"),
            rules: open_rules(a),
        })
        .await
        .unwrap();
    assert_eq!(
        (group.owner, group.member_count, group.dissolved),
        (a, 2, false)
    );
    assert_eq!(
        (created.seq, created.kind, created.text.as_str()),
        (1, EntryKind::System, "created")
    );
    let g = group.id;
    store.append(text(g, b, "hello")).await.unwrap();
    let added = store
        .change_group(
            g,
            GroupChange::Add {
                users: vec![c],
                max: 3,
                rules: open_rules(b),
            },
            event(b, "added"),
        )
        .await
        .unwrap();
    assert_eq!(added.seq, 3);
    let member = store.member(g, c).await.unwrap().unwrap();
    assert_eq!((member.role, member.joined_seq), (MemberRole::Member, 3));
    let full = store
        .change_group(
            g,
            GroupChange::Add {
                users: vec![user(store, "dave").await],
                max: 3,
                rules: open_rules(a),
            },
            event(a, "x"),
        )
        .await;
    assert!(matches!(full, Err(StoreError::GroupFull)));
    assert_eq!(
        store.last_seq(g).await.unwrap(),
        3,
        "a refused change leaves no entry and no gap"
    );
    let next = store.append(text(g, a, "after refusal")).await.unwrap();
    assert_eq!(next.message.seq, 4);
    store
        .change_group(
            g,
            GroupChange::Transfer { from: a, to: b },
            event(a, "transfer"),
        )
        .await
        .unwrap();
    let roles: Vec<(UserId, MemberRole)> = store
        .member_records(g)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(roles[0], (b, MemberRole::Owner));
    assert!(roles.contains(&(a, MemberRole::Admin)));
    store
        .change_group(g, GroupChange::Remove { user: c }, event(a, "removed"))
        .await
        .unwrap();
    assert!(store.member(g, c).await.unwrap().is_none());
    assert!(matches!(
        store
            .change_group(g, GroupChange::Remove { user: c }, event(a, "again"))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .change_group(
            g,
            GroupChange::Update {
                name: Some("renamed".into()),
                description: None,
            },
            event(b, "renamed"),
        )
        .await
        .unwrap();
    store
        .change_group(g, GroupChange::Dissolve, event(b, "dissolved"))
        .await
        .unwrap();
    let after = store.group(g).await.unwrap().unwrap();
    assert_eq!(
        (
            after.name.as_str(),
            after.description.as_str(),
            after.dissolved
        ),
        ("renamed", "d", true)
    );
    assert_eq!(store.groups_of(a).await.unwrap().len(), 1);
    assert!(store.groups_of(c).await.unwrap().is_empty());
    assert_eq!(
        store.count_messages(g).await.unwrap(),
        8,
        "one row per entry"
    );
    let direct = store.direct_conversation(a, b).await.unwrap();
    assert!(store.group(direct).await.unwrap().is_none());
}

async fn recall_and_edit(store: &dyn Store) {
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
            matches!(refused, Err(StoreError::NotFound)),
            "seq {seq} by {who}"
        );
    }
    assert_eq!(store.last_seq(conv).await.unwrap(), 4);
}
