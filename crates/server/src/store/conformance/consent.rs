//! Conformance checks for who may be put into a group ([`AddRules`]), for who counts as a
//! contact, and for the conversation list over every kind of conversation.

use super::{event, open_rules, text, user};
use crate::store::{AddRules, GroupChange, NewGroup, Refusal, Store, StoreError, UserId};

fn new_group(owner: UserId, members: Vec<UserId>, rules: AddRules) -> NewGroup {
    NewGroup {
        owner,
        name: "g".into(),
        description: String::new(),
        public: false,
        members,
        event: event(owner, "created"),
        rules,
    }
}

fn refused(result: Result<impl std::fmt::Debug, StoreError>, who: UserId, why: Refusal) {
    match result {
        Err(StoreError::Refused { user, why: got }) => assert_eq!((user, got), (who, why)),
        other => panic!("expected user {who} refused ({why:?}), got {other:?}"),
    }
}

async fn add(
    store: &dyn Store,
    conv: i64,
    users: Vec<UserId>,
    rules: AddRules,
) -> Result<(), StoreError> {
    let change = GroupChange::Add {
        users,
        max: 100,
        rules,
    };
    store
        .change_group(conv, change, event(rules.by, "added"))
        .await
        .map(drop)
}

pub(super) async fn group_add_rules(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let friends_only = AddRules {
        friends_only: true,
        ..open_rules(a)
    };
    refused(
        store
            .create_group(new_group(a, vec![b], friends_only))
            .await,
        b,
        Refusal::NotFriends,
    );
    store.make_friends(a, b).await.unwrap();
    let (g, _) = store
        .create_group(new_group(a, vec![b], friends_only))
        .await
        .unwrap();
    refused(
        add(store, g.id, vec![c], friends_only).await,
        c,
        Refusal::NotFriends,
    );
    add(store, g.id, vec![c], open_rules(a)).await.unwrap();
    // A block either way refuses, under either rule, at create and at add.
    let d = user(store, "dave").await;
    store.block(d, a).await.unwrap();
    refused(
        store
            .create_group(new_group(a, vec![d], open_rules(a)))
            .await,
        d,
        Refusal::Blocked,
    );
    refused(
        add(store, g.id, vec![d], open_rules(a)).await,
        d,
        Refusal::Blocked,
    );
    let e = user(store, "erin").await;
    store.block(a, e).await.unwrap();
    refused(
        add(store, g.id, vec![e], open_rules(a)).await,
        e,
        Refusal::Blocked,
    );
    // ... and so may no third member while a is in the group (see `blocks_among_members`).
    refused(
        add(store, g.id, vec![e], open_rules(c)).await,
        e,
        Refusal::BlockedMember,
    );
    assert_eq!(
        store.last_seq(g.id).await.unwrap(),
        2,
        "refusals leave no entry"
    );

    // The group cap counts live groups, the one being created included; dissolving frees one.
    let capped = AddRules {
        max_groups: 2,
        ..open_rules(b)
    };
    let (h, _) = store
        .create_group(new_group(b, vec![], capped))
        .await
        .unwrap();
    refused(
        store.create_group(new_group(b, vec![], capped)).await,
        b,
        Refusal::TooManyGroups,
    );
    let one = AddRules {
        max_groups: 1,
        ..capped
    };
    refused(
        add(store, h.id, vec![a], one).await,
        a,
        Refusal::TooManyGroups,
    );
    store
        .change_group(h.id, GroupChange::Dissolve, event(b, "dissolved"))
        .await
        .unwrap();
    store
        .create_group(new_group(b, vec![], capped))
        .await
        .unwrap();
    // A join is the joiner's own add: the cap applies, and so do blocks with members (d
    // blocked a, and owns the group).
    let (open, _) = store
        .create_group(new_group(d, vec![], open_rules(d)))
        .await
        .unwrap();
    refused(
        add(store, open.id, vec![a], open_rules(a)).await,
        a,
        Refusal::BlockedMember,
    );
    refused(
        add(store, open.id, vec![b], AddRules { by: b, ..capped }).await,
        b,
        Refusal::TooManyGroups,
    );
    blocks_among_members(store).await;
}

/// A block between two users keeps them out of one group whoever adds them: at create between
/// any two initial members, and at an add between the added user and any member or any user
/// added alongside. A block made later between two members leaves the group as it is.
async fn blocks_among_members(store: &dyn Store) {
    let t = user(store, "trent").await;
    let x = user(store, "xavier").await;
    let y = user(store, "yvonne").await;
    let z = user(store, "zoe").await;
    store.block(y, x).await.unwrap();
    // Whichever comes second in the request is the one refused.
    for (members, second) in [(vec![x, y], y), (vec![y, x], x), (vec![z, x, y], y)] {
        refused(
            store
                .create_group(new_group(t, members, open_rules(t)))
                .await,
            second,
            Refusal::BlockedMember,
        );
    }
    assert!(
        store.groups_of(t).await.unwrap().is_empty(),
        "a refused create leaves no group"
    );
    let (with_x, _) = store
        .create_group(new_group(t, vec![x], open_rules(t)))
        .await
        .unwrap();
    refused(
        add(store, with_x.id, vec![z, y], open_rules(t)).await,
        y,
        Refusal::BlockedMember,
    );
    assert!(
        store.member(with_x.id, z).await.unwrap().is_none(),
        "a refused add adds no one"
    );
    let (with_y, _) = store
        .create_group(new_group(t, vec![y], open_rules(t)))
        .await
        .unwrap();
    refused(
        add(store, with_y.id, vec![x], open_rules(t)).await,
        x,
        Refusal::BlockedMember,
    );
    // Two users added together who block each other.
    let (alone, _) = store
        .create_group(new_group(t, vec![], open_rules(t)))
        .await
        .unwrap();
    refused(
        add(store, alone.id, vec![x, y], open_rules(t)).await,
        y,
        Refusal::BlockedMember,
    );
    // A block between members made after they joined refuses nobody new.
    let (later, _) = store
        .create_group(new_group(t, vec![x, z], open_rules(t)))
        .await
        .unwrap();
    store.block(z, x).await.unwrap();
    let w = user(store, "walter").await;
    add(store, later.id, vec![w], open_rules(t)).await.unwrap();
}

pub(super) async fn contacts_exclude_blocks_and_dissolved_groups(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let c = user(store, "carol").await;
    let (g, _) = store
        .create_group(new_group(a, vec![b, c], open_rules(a)))
        .await
        .unwrap();
    assert_eq!(store.contacts(a).await.unwrap(), vec![b, c]);
    assert!(store.relation(a, b).await.unwrap().share_group);
    store.block(b, a).await.unwrap();
    assert_eq!(
        store.contacts(a).await.unwrap(),
        vec![c],
        "a block either way ends contact"
    );
    assert_eq!(store.contacts(b).await.unwrap(), vec![c]);
    let rel = store.relation(a, b).await.unwrap();
    assert!(!rel.share_group && rel.b_blocked, "{rel:?}");
    assert!(store.relation(a, c).await.unwrap().share_group);
    store
        .change_group(g.id, GroupChange::Dissolve, event(a, "dissolved"))
        .await
        .unwrap();
    assert!(
        store.contacts(a).await.unwrap().is_empty(),
        "a dissolved group shares nothing"
    );
    assert!(!store.relation(a, c).await.unwrap().share_group);
}

pub(super) async fn conversation_list(store: &dyn Store) {
    let a = user(store, "alice").await;
    let b = user(store, "bob").await;
    let ab = store.direct_conversation(a, b).await.unwrap();
    let (quiet, _) = store
        .create_group(new_group(a, vec![], open_rules(a)))
        .await
        .unwrap();
    let (busy, _) = store
        .create_group(new_group(a, vec![b], open_rules(a)))
        .await
        .unwrap();
    store.append(text(busy.id, b, "1")).await.unwrap();
    store.set_read_cursor(a, busy.id, 2).await.unwrap();
    store.append(text(busy.id, b, "2")).await.unwrap();
    let list = store.conversations_of(a).await.unwrap();
    assert_eq!(list.len(), 3);
    let direct = list.iter().find(|x| x.id == ab).unwrap();
    assert_eq!(
        (
            &direct.peer,
            &direct.group_name,
            direct.last_message.is_none()
        ),
        (&Some((b, "bob".to_owned())), &None, true)
    );
    let q = list.iter().find(|x| x.id == quiet.id).unwrap();
    assert_eq!(
        (q.peer.is_none(), q.group_name.as_deref()),
        (true, Some("g"))
    );
    assert_eq!(
        q.last_message.as_ref().map(|m| m.seq),
        Some(1),
        "the creation entry"
    );
    assert_eq!(q.read_seq, 1, "made by its creator, so read by her");
    let busy_entry = list.iter().find(|x| x.id == busy.id).unwrap();
    let last = busy_entry.last_message.as_ref().unwrap();
    assert_eq!(
        (last.seq, last.text.as_str(), last.sender),
        (3, "text of 2", b)
    );
    assert_eq!(busy_entry.read_seq, 2);
    assert_eq!(busy_entry.updated_at, last.ts);
    assert_eq!(store.conversations_of(b).await.unwrap().len(), 2);
}
