//! The store conformance suite: what every [`Store`] implementation must do, written against the
//! trait only so that each backend runs it unchanged. A backend's test file implements
//! [`Backend`] and invokes [`store_conformance!`](crate::store_conformance) once, which makes
//! one test per check (see `tests/store_sqlite.rs`).
//!
//! Each check gets a fresh, empty database, one handle on it or two (as two processes or nodes
//! would have), and panics with a message on a violation.

use std::future::Future;
use std::sync::Arc;

mod consent;
mod media;
mod messages;
mod shared;

use super::{
    AddRules, ConvId, EntryKind, GroupChange, MemberRole, Missing, NewGroup, NewMessage,
    NewSession, ProfilePatch, Store, StoreError, SystemEntry, UserId,
};

/// How the suite gets databases from a backend.
pub trait Backend: Send + Sync + 'static {
    /// One database, which lives (and is removed, if it is a scratch one) with this value.
    type Database: Send + Sync + 'static;
    /// Creates a new, empty database.
    fn create(&self) -> impl Future<Output = Self::Database> + Send;
    /// Opens a handle on `db`. Every call opens another handle, as another process or node
    /// would: the suite writes through two at once.
    fn open(&self, db: &Self::Database) -> impl Future<Output = Arc<dyn Store>> + Send;
}

/// Makes one `#[tokio::test]` per conformance check, each on a fresh database of `$backend`
/// (an expression whose value implements [`Backend`]). The invoking crate needs `tokio` with
/// the `macros` and `rt-multi-thread` features.
///
/// ```ignore
/// banter_server::store_conformance!(SqliteBackend::default());
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($backend:expr) => {
        $crate::store_conformance!(@each $backend;
            users, sessions, direct_conversations, append_assigns_gap_free_seq,
            append_is_idempotent, concurrent_appends, queued_appends_commit_in_queue_order,
            key_reused_in_another_conversation, media_uploads_quotas_and_access,
            media_sweep_removes_what_was_sent_nowhere, attachment_entries,
            dropped_queued_append_commits, failed_append_leaves_no_gap, paging,
            conversation_list_and_read_cursor, social_graph, groups_and_system_entries,
            recall_and_edit, group_add_rules, contacts_exclude_blocks_and_dissolved_groups,
            conversation_list_mixes_kinds, two_handles_append_concurrently,
            retry_through_another_handle_is_a_duplicate, two_handles_change_and_amend_concurrently,
        );
    };
    (@each $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::store::conformance::checks::$check(&$backend).await;
            }
        )*
    };
}

/// Runs `check` on one handle of a fresh database, then closes it.
async fn one<B, F, Fut>(backend: &B, check: F)
where
    B: Backend,
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = backend.create().await;
    let store = backend.open(&db).await;
    check(Arc::clone(&store)).await;
    store.close().await;
}

/// Runs `check` on two handles of one fresh database, then closes both.
async fn two<B, F, Fut>(backend: &B, check: F)
where
    B: Backend,
    F: FnOnce(Arc<dyn Store>, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = backend.create().await;
    let first = backend.open(&db).await;
    let second = backend.open(&db).await;
    check(Arc::clone(&first), Arc::clone(&second)).await;
    first.close().await;
    second.close().await;
}

/// The checks, one function each, for [`store_conformance!`](crate::store_conformance). A new
/// check goes here and in the macro's list.
pub mod checks {
    use super::{Backend, consent, media, messages, one, shared, two};

    macro_rules! on_one_handle {
        ($($name:ident => $check:expr;)*) => {
            $(
                #[doc = concat!("The `", stringify!($name), "` check, on one handle.")]
                pub async fn $name(backend: &impl Backend) {
                    one(backend, |store| async move { $check(&*store).await }).await;
                }
            )*
        };
    }

    on_one_handle! {
        users => super::users;
        sessions => super::sessions;
        direct_conversations => super::direct_conversations;
        append_assigns_gap_free_seq => messages::append_assigns_gap_free_seq;
        append_is_idempotent => messages::append_is_idempotent;
        queued_appends_commit_in_queue_order => messages::queued_appends_commit_in_order;
        key_reused_in_another_conversation => messages::key_reused_in_another_conversation;
        media_uploads_quotas_and_access => media::uploads_quotas_and_access;
        media_sweep_removes_what_was_sent_nowhere => media::sweep_removes_what_was_sent_nowhere;
        attachment_entries => media::attachment_entries;
        dropped_queued_append_commits => shared::dropped_queued_append_commits;
        failed_append_leaves_no_gap => shared::failed_append_leaves_no_gap;
        paging => messages::paging;
        conversation_list_and_read_cursor => messages::conversation_list_and_read_cursor;
        social_graph => super::social_graph;
        groups_and_system_entries => super::groups_and_system_entries;
        recall_and_edit => messages::recall_and_edit;
        group_add_rules => consent::group_add_rules;
        contacts_exclude_blocks_and_dissolved_groups =>
            consent::contacts_exclude_blocks_and_dissolved_groups;
        conversation_list_mixes_kinds => consent::conversation_list;
    }

    /// Concurrent appends from many tasks on one handle.
    pub async fn concurrent_appends(backend: &impl Backend) {
        one(backend, messages::concurrent_appends).await;
    }

    /// Concurrent appends through two handles on one database.
    pub async fn two_handles_append_concurrently(backend: &impl Backend) {
        two(backend, shared::two_handles_append_concurrently).await;
    }

    /// A retry through the other handle returns the original.
    pub async fn retry_through_another_handle_is_a_duplicate(backend: &impl Backend) {
        two(backend, shared::retry_through_another_handle).await;
    }

    /// Group changes and amendments through two handles keep seqs gap-free.
    pub async fn two_handles_change_and_amend_concurrently(backend: &impl Backend) {
        two(backend, shared::change_and_amend_concurrently).await;
    }
}

/// Entries stored in `conv`, read back through the trait.
pub(super) async fn count_entries(store: &dyn Store, conv: ConvId) -> u64 {
    let all = store
        .messages_after(conv, 0, u32::MAX, usize::MAX)
        .await
        .expect("read the conversation");
    u64::try_from(all.len()).expect("a count fits u64")
}

pub(super) async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(name, "hash")
        .await
        .expect("create user")
        .id
}

pub(super) fn text(conv: i64, sender: UserId, id: &str) -> NewMessage {
    NewMessage {
        conv,
        sender,
        client_msg_id: id.to_owned(),
        text: format!("text of {id}"),
        kind: EntryKind::Text,
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
        Err(StoreError::NotFound(Missing::User))
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
        Err(StoreError::NotFound(Missing::Session))
    ));
    store.revoke_session(alice, ids[0]).await.unwrap();
    assert!(matches!(
        store.revoke_session(alice, ids[0]).await,
        Err(StoreError::NotFound(Missing::Session))
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
        Err(StoreError::NotFound(Missing::User))
    ));
    assert!(store.members(ab + 1000).await.unwrap().is_empty());
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
        Err(StoreError::NotFound(Missing::Friendship))
    ));
    assert!(matches!(
        store.delete_friend_request(a, c).await,
        Err(StoreError::NotFound(Missing::FriendRequest))
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
        Err(StoreError::NotFound(Missing::Block))
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
        Err(StoreError::NotFound(Missing::Member))
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
    assert_eq!(count_entries(store, g).await, 8, "one row per entry");
    let direct = store.direct_conversation(a, b).await.unwrap();
    assert!(store.group(direct).await.unwrap().is_none());
}
