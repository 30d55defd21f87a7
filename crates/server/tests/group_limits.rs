//! Group limits and their edges against a real server: an oversize id list is refused before
//! any id is read, and a removal ends the two users' contact on the very next request.

mod common;

use banter_client::protocol::{ClientRequest as R, ErrorCode, GroupInfo};
use common::{create_group as create, ok, refused, start_with};
use serde_json::Value;

/// An add or create naming more ids than a group holds is refused with `group_full` before
/// any id is read: ids that do not parse and ids of no user would otherwise be
/// `unknown_user`, after a lookup each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_id_list_is_group_full_at_once() {
    const MAX: usize = 8;
    let server = start_with(|c| c.max_group_members = MAX).await;
    let a = server.user("ann").await;
    let ca = server.connect(&a).await;
    let g: GroupInfo = ok(&ca, create("g", &[], false)).await;
    for ids in [
        (0..=MAX)
            .map(|i| format!("{}", 900_000 + i))
            .collect::<Vec<_>>(),
        (0..=MAX).map(|i| format!("not an id {i}")).collect(),
    ] {
        let add = R::GroupAdd {
            group: g.id.clone(),
            users: ids.clone(),
        };
        assert_eq!(refused(&ca, add).await, ErrorCode::GroupFull, "{ids:?}");
        let create = R::GroupCreate {
            name: "big".into(),
            description: None,
            public: false,
            members: ids.clone(),
        };
        assert_eq!(refused(&ca, create).await, ErrorCode::GroupFull, "{ids:?}");
    }
    // As many as fit beside the owner are read: an unknown user.
    let add = R::GroupAdd {
        group: g.id.clone(),
        users: (1..MAX).map(|i| format!("{}", 900_000 + i)).collect(),
    };
    assert_eq!(refused(&ca, add).await, ErrorCode::UnknownUser);
    server.stop().await;
}

/// A removal ends the two users' shared group at once: on the very next request, the removed
/// user sees a former co-member (not a friend) as a stranger does, though the relation was
/// cached while they shared the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_ends_contact_on_the_next_request() {
    let server = start_with(|c| {
        c.group_add_policy = banter_server::config::GroupAddPolicy::Anyone;
    })
    .await;
    let (a, b) = (server.user("ann").await, server.user("ben").await);
    let (ca, cb) = (server.connect(&a).await, server.connect(&b).await);
    let named = R::ProfileUpdate {
        display_name: Some("Ben B".into()),
        avatar_url: None,
        status_text: None,
    };
    let _: Value = ok(&cb, named).await;
    let g: GroupInfo = ok(&ca, create("g", &[&b], false)).await;
    let seen_by_b = || R::Profiles {
        users: vec![a.id.clone()],
    };
    let seen_by_a = || R::Profiles {
        users: vec![b.id.clone()],
    };
    let full = |p: &banter_client::protocol::ProfilesResult| !p.profiles[0].display_name.is_empty();
    let ann = R::ProfileUpdate {
        display_name: Some("Ann A".into()),
        avatar_url: None,
        status_text: None,
    };
    let _: Value = ok(&ca, ann).await;
    for _ in 0..2 {
        assert!(full(&ok(&ca, seen_by_a()).await), "co-members see in full");
        assert!(full(&ok(&cb, seen_by_b()).await));
    }
    let remove = R::GroupRemove {
        group: g.id.clone(),
        user: b.id.clone(),
    };
    let _: Value = ok(&ca, remove).await;
    assert!(!full(&ok(&ca, seen_by_a()).await), "no longer a contact");
    assert!(!full(&ok(&cb, seen_by_b()).await));
    server.stop().await;
}
