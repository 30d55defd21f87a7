//! Friends, blocks, profiles and presence, against a real server through the SDK, asserting
//! what the other party sees (typing, receipts, recall and edit are in conversation_events.rs).

mod common;

use banter_client::protocol::{
    ClientRequest as R, ErrorCode, FriendEvent, FriendResult, FriendStatus, GroupInfo,
    PresenceResult, Profile, ProfilesResult, SocialResult,
};
use banter_client::{Connection, Event, Target};
use common::{next_matching, ok, refused, start_server, start_with};
use serde_json::Value;

async fn friend_event(conn: &mut Connection) -> (FriendEvent, String, String) {
    next_matching(conn, |e| match e {
        Event::Friend { event, from, to } => Some((event, from, to)),
        _ => None,
    })
    .await
}

fn ids(list: &[Profile]) -> Vec<String> {
    list.iter().map(|p| p.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_lifecycle_with_events_on_both_sides() {
    let server = start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, b) = (server.connect(&alice).await, server.connect(&bob).await);
    // Second devices watch each side: every event must reach both users.
    let mut a2 = server.connect(&server.login("alice").await).await;
    let mut b2 = server.connect(&server.login("bob").await).await;
    let ask = |user: &str| R::FriendRequest { user: user.into() };

    // Request, then decline.
    let r: FriendResult = ok(&a, ask(&bob.id)).await;
    assert_eq!(r.status, FriendStatus::Pending);
    for conn in [&mut a2, &mut b2] {
        assert_eq!(
            friend_event(conn).await,
            (FriendEvent::Requested, alice.id.clone(), bob.id.clone())
        );
    }
    let s: SocialResult = ok(&b, R::Friends).await;
    assert_eq!(ids(&s.incoming), vec![alice.id.clone()]);
    let _: Value = ok(
        &b,
        R::FriendDecline {
            user: alice.id.clone(),
        },
    )
    .await;
    for conn in [&mut a2, &mut b2] {
        assert_eq!(
            friend_event(conn).await,
            (FriendEvent::Declined, bob.id.clone(), alice.id.clone())
        );
    }
    assert_eq!(
        refused(
            &b,
            R::FriendDecline {
                user: alice.id.clone()
            }
        )
        .await,
        ErrorCode::UnknownRequest
    );

    // Request, then cancel.
    let _: FriendResult = ok(&a, ask(&bob.id)).await;
    let _: Value = ok(
        &a,
        R::FriendCancel {
            user: bob.id.clone(),
        },
    )
    .await;
    for conn in [&mut a2, &mut b2] {
        assert_eq!(friend_event(conn).await.0, FriendEvent::Requested);
        assert_eq!(
            friend_event(conn).await,
            (FriendEvent::Cancelled, alice.id.clone(), bob.id.clone())
        );
    }
    assert_eq!(
        refused(
            &a,
            R::FriendAccept {
                user: bob.id.clone()
            }
        )
        .await,
        ErrorCode::UnknownRequest
    );

    // Request, then accept.
    let _: FriendResult = ok(&a, ask(&bob.id)).await;
    let _: Value = ok(
        &b,
        R::FriendAccept {
            user: alice.id.clone(),
        },
    )
    .await;
    for conn in [&mut a2, &mut b2] {
        assert_eq!(friend_event(conn).await.0, FriendEvent::Requested);
        assert_eq!(
            friend_event(conn).await,
            (FriendEvent::Accepted, bob.id.clone(), alice.id.clone())
        );
    }
    let s: SocialResult = ok(&a, R::Friends).await;
    assert_eq!(
        (ids(&s.friends), s.incoming.len(), s.outgoing.len()),
        (vec![bob.id.clone()], 0, 0)
    );
    assert_eq!(refused(&a, ask(&bob.id)).await, ErrorCode::AlreadyFriends);
    assert_eq!(
        refused(&a, ask(&alice.id)).await,
        ErrorCode::CannotMessageSelf
    );
    assert_eq!(refused(&a, ask("99999")).await, ErrorCode::UnknownUser);

    // Remove.
    let _: Value = ok(
        &b,
        R::FriendRemove {
            user: alice.id.clone(),
        },
    )
    .await;
    for conn in [&mut a2, &mut b2] {
        assert_eq!(
            friend_event(conn).await,
            (FriendEvent::Removed, bob.id.clone(), alice.id.clone())
        );
    }
    assert!(ok::<SocialResult>(&a, R::Friends).await.friends.is_empty());
    assert_eq!(
        refused(
            &b,
            R::FriendRemove {
                user: alice.id.clone()
            }
        )
        .await,
        ErrorCode::UnknownUser
    );

    // Mutual requests become a friendship at once.
    let _: FriendResult = ok(&a, ask(&bob.id)).await;
    let r: FriendResult = ok(&b, ask(&alice.id)).await;
    assert_eq!(r.status, FriendStatus::Friends);

    // Block: the friendship ends, no requests or messages get through, in either direction.
    let _: Value = ok(
        &b,
        R::Block {
            user: alice.id.clone(),
        },
    )
    .await;
    assert!(ok::<SocialResult>(&a, R::Friends).await.friends.is_empty());
    assert_eq!(
        ids(&ok::<SocialResult>(&b, R::Friends).await.blocked),
        vec![alice.id.clone()]
    );
    assert_eq!(refused(&a, ask(&bob.id)).await, ErrorCode::Blocked);
    let to_bob = Target::User(bob.id.clone());
    let err = a
        .send_text(&to_bob, "blocked-1", "hello?")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Blocked));
    let err = b
        .send_text(&Target::User(alice.id.clone()), "blocked-2", "hi")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Blocked));
    // Unblock: messages flow again.
    let _: Value = ok(
        &b,
        R::Unblock {
            user: alice.id.clone(),
        },
    )
    .await;
    assert_eq!(
        refused(
            &b,
            R::Unblock {
                user: alice.id.clone()
            }
        )
        .await,
        ErrorCode::UnknownUser
    );
    a.send_text(&to_bob, "after-unblock", "hi again")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_user_cannot_reach_through_an_existing_conversation() {
    let server = start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, b) = (server.connect(&alice).await, server.connect(&bob).await);
    let conv = a
        .send_text(&Target::User(bob.id.clone()), "1", "hi")
        .await
        .unwrap()
        .conversation;
    let _: Value = ok(
        &b,
        R::Block {
            user: alice.id.clone(),
        },
    )
    .await;
    let err = a
        .send_text(&Target::Conversation(conv.clone()), "2", "still?")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Blocked));
    let conv_id: i64 = conv.parse().unwrap();
    assert_eq!(server.stored_rows(conv_id), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_only_policy() {
    let server = start_with(|c| {
        c.direct_message_policy = banter_server::config::DirectMessagePolicy::Friends;
    })
    .await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let (a, b) = (server.connect(&alice).await, server.connect(&bob).await);
    let to_bob = Target::User(bob.id.clone());
    let err = a.send_text(&to_bob, "1", "hi stranger").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFriends));
    let _: FriendResult = ok(
        &a,
        R::FriendRequest {
            user: bob.id.clone(),
        },
    )
    .await;
    let _: Value = ok(
        &b,
        R::FriendAccept {
            user: alice.id.clone(),
        },
    )
    .await;
    assert_eq!(a.send_text(&to_bob, "2", "hi friend").await.unwrap().seq, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_visible_to_contacts_and_changes_are_pushed() {
    let server = start_server().await;
    let (alice, bob, eve) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("eve").await,
    );
    let (a, mut b, e) = (
        server.connect(&alice).await,
        server.connect(&bob).await,
        server.connect(&eve).await,
    );
    let _: FriendResult = ok(
        &a,
        R::FriendRequest {
            user: bob.id.clone(),
        },
    )
    .await;
    let _: Value = ok(
        &b,
        R::FriendAccept {
            user: alice.id.clone(),
        },
    )
    .await;
    let update = R::ProfileUpdate {
        display_name: Some("Alice A.".into()),
        avatar_url: Some("https://example.org/a.png".into()),
        status_text: Some("on holiday".into()),
    };
    let mine: Profile = ok(&a, update).await;
    assert_eq!(mine.display_name, "Alice A.");
    let pushed = next_matching(&mut b, |ev| match ev {
        Event::Profile(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(pushed, mine, "the friend is told");
    let seen_by_bob: ProfilesResult = ok(
        &b,
        R::Profiles {
            users: vec![alice.id.clone()],
        },
    )
    .await;
    assert_eq!(seen_by_bob.profiles, vec![mine.clone()]);
    let seen_by_eve: ProfilesResult = ok(
        &e,
        R::Profiles {
            users: vec![alice.id.clone()],
        },
    )
    .await;
    let p = &seen_by_eve.profiles[0];
    assert_eq!(
        (
            p.username.as_str(),
            p.display_name.as_str(),
            p.status_text.as_str()
        ),
        ("alice", "", "")
    );
    // Partial updates keep the other fields; bad values are refused.
    let partial: Profile = ok(
        &a,
        R::ProfileUpdate {
            display_name: None,
            avatar_url: None,
            status_text: Some("back".into()),
        },
    )
    .await;
    assert_eq!(
        (partial.display_name.as_str(), partial.status_text.as_str()),
        ("Alice A.", "back")
    );
    for bad in [
        R::ProfileUpdate {
            display_name: Some("x".repeat(65)),
            avatar_url: None,
            status_text: None,
        },
        R::ProfileUpdate {
            display_name: None,
            avatar_url: Some("javascript:alert(1)".into()),
            status_text: None,
        },
        R::ProfileUpdate {
            display_name: None,
            avatar_url: None,
            status_text: Some("line\nbreak".into()),
        },
        R::ProfileUpdate {
            display_name: Some("evil\u{202E}nimda".into()),
            avatar_url: None,
            status_text: None,
        },
        R::ProfileUpdate {
            display_name: Some("\u{2067}isolate".into()),
            avatar_url: None,
            status_text: None,
        },
        R::ProfileUpdate {
            display_name: None,
            avatar_url: None,
            status_text: Some("\u{202A}embedded".into()),
        },
        R::ProfileUpdate {
            display_name: Some("nul\0".into()),
            avatar_url: None,
            status_text: None,
        },
    ] {
        assert_eq!(refused(&a, bad).await, ErrorCode::InvalidField);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_pushed_to_friends_and_queryable_for_group_members() {
    let server = start_server().await;
    let (alice, bob, carol, eve) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("carol").await,
        server.user("eve").await,
    );
    let mut a = server.connect(&alice).await;
    let b = server.connect(&bob).await;
    let _: FriendResult = ok(
        &a,
        R::FriendRequest {
            user: bob.id.clone(),
        },
    )
    .await;
    let _: Value = ok(
        &b,
        R::FriendAccept {
            user: alice.id.clone(),
        },
    )
    .await;
    let _: GroupInfo = ok(
        &a,
        R::GroupCreate {
            name: "g".into(),
            description: None,
            public: false,
            members: vec![carol.id.clone()],
        },
    )
    .await;
    // Bob goes offline: Alice is told, with a last-seen time.
    b.close().await;
    let (user, online, last_seen) = next_matching(&mut a, |e| match e {
        Event::Presence {
            user,
            online,
            last_seen,
        } => Some((user, online, last_seen)),
        _ => None,
    })
    .await;
    assert_eq!((user.as_str(), online), (bob.id.as_str(), false));
    assert!(last_seen.is_some());
    // And comes back.
    let _b = server.connect(&bob).await;
    let (user, online) = next_matching(&mut a, |e| match e {
        Event::Presence { user, online, .. } => Some((user, online)),
        _ => None,
    })
    .await;
    assert_eq!((user.as_str(), online), (bob.id.as_str(), true));
    // Carol (fellow group member, offline) and Bob (friend, online) are visible; Eve is not.
    let asked = vec![bob.id.clone(), carol.id.clone(), eve.id.clone()];
    let p: PresenceResult = ok(&a, R::Presence { users: asked }).await;
    let got: Vec<(String, bool)> = p
        .presence
        .iter()
        .map(|x| (x.user.clone(), x.online))
        .collect();
    assert_eq!(got, [(bob.id.clone(), true), (carol.id.clone(), false)]);
    server.stop().await;
}
