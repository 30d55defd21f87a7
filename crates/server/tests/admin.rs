//! The admin API against a real server: the token guard, every call, their bounds and bad
//! ids, disabling (sockets closed with 4001, logins refused), session revocation, invitations,
//! deletion and its policy, and the counts.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use banter_client::protocol::{
    ClientRequest, ErrorCode, GroupInfo, MembersResult, MessagePage, Role, SendAck, SocialResult,
};
use banter_client::{AdminApi, ClientError, Event};
use banter_server::config::AdminToken;
use banter_server::store::NewInvite;
use common::{PASSWORD, TestServer, create_group, ok, refused, start_with};

const ADMIN: &str = "an-admin-token-of-at-least-32-bytes!";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn code(e: &ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { status, body } => (*status, body.code),
        other => panic!("expected a typed API error, got {other:?}"),
    }
}

async fn start() -> (TestServer, AdminApi) {
    let server = start_with(|c| c.admin_token = AdminToken::from(ADMIN)).await;
    let admin = AdminApi::new(server.addr.clone(), ADMIN);
    (server, admin)
}

fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn without_a_configured_token_the_admin_api_does_not_exist() {
    let server = common::start_server().await;
    for token in [None, Some(ADMIN), Some("")] {
        let (status, body) = server
            .http_from(LOCAL, "GET", "/v1/admin/stats", token, "")
            .await;
        assert_eq!((status, error_code(&body).as_str()), (404, "not_found"));
    }
    let err = AdminApi::new(server.addr.clone(), ADMIN)
        .stats()
        .await
        .unwrap_err();
    assert_eq!(code(&err), (404, ErrorCode::NotFound));
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused() {
    let (server, _admin) = start().await;
    let user = server.user("alice").await;
    let almost = format!("{}x", &ADMIN[..ADMIN.len() - 1]);
    for token in [
        None,
        Some(""),
        Some(almost.as_str()),
        Some(user.token.as_str()),
    ] {
        for (method, path) in [
            ("GET", "/v1/admin/stats"),
            ("GET", "/v1/admin/users"),
            ("POST", "/v1/admin/invites"),
            ("DELETE", &format!("/v1/admin/users/{}", user.id) as &str),
        ] {
            let (status, body) = server.http_from(LOCAL, method, path, token, "{}").await;
            assert_eq!(
                (status, error_code(&body).as_str()),
                (401, "unauthorized"),
                "{method} {path} with {token:?}"
            );
        }
    }
    // Nothing was done.
    server.api.me(&user.token).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn users_are_created_listed_searched_and_shown() {
    let (server, admin) = start().await;
    for name in ["carol", "alice", "alan", "bob"] {
        admin.create_user(name, PASSWORD).await.unwrap();
    }
    let taken = admin.create_user("ALICE", PASSWORD).await.unwrap_err();
    assert_eq!(code(&taken), (409, ErrorCode::UsernameTaken));
    let bad = admin.create_user("no spaces", PASSWORD).await.unwrap_err();
    assert_eq!(code(&bad), (400, ErrorCode::InvalidUsername));
    let short = admin.create_user("dave", "short").await.unwrap_err();
    assert_eq!(code(&short), (400, ErrorCode::InvalidPassword));

    // Pages of two, by username, until `next` is absent.
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = admin.users(None, after.as_deref(), Some(2)).await.unwrap();
        names.extend(page.users.iter().map(|u| u.username.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["alan", "alice", "bob", "carol"]);
    let found = admin.users(Some("AL"), None, None).await.unwrap();
    let found: Vec<_> = found.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(found, ["alan", "alice"]);
    // Limits are brought into 1–200.
    assert_eq!(
        admin.users(None, None, Some(0)).await.unwrap().users.len(),
        1
    );
    assert_eq!(
        admin
            .users(None, None, Some(u32::MAX))
            .await
            .unwrap()
            .users
            .len(),
        4
    );
    let long = admin
        .users(Some(&"a".repeat(33)), None, None)
        .await
        .unwrap_err();
    assert_eq!(code(&long), (400, ErrorCode::BadRequest));
    let long = admin
        .users(None, Some(&"a".repeat(65)), None)
        .await
        .unwrap_err();
    assert_eq!(code(&long), (400, ErrorCode::BadRequest));

    let alice = server.login("alice").await;
    server.login("alice").await;
    let _socket = server.connect(&alice).await;
    let shown = admin.user(&alice.id).await.unwrap();
    assert_eq!(
        (
            shown.user.username.as_str(),
            shown.sessions,
            shown.connections
        ),
        ("alice", 2, 1)
    );
    assert!(!shown.user.disabled && !shown.user.deleted);
    for bad in ["0", "-1", "abc", "999999", &"9".repeat(30)] {
        let err = admin.user(bad).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownUser), "{bad}");
        let err = admin.set_disabled(bad, true).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownUser), "{bad}");
        let err = admin.delete_user(bad).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownUser), "{bad}");
        let err = admin.sessions(bad).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownUser), "{bad}");
    }
    server.stop().await;
}

#[tokio::test]
async fn disabling_closes_sockets_refuses_logins_and_tokens_until_enabled() {
    let (server, admin) = start().await;
    let alice = server.user("alice").await;
    let mut socket = server.connect(&alice).await;
    let disabled = admin.set_disabled(&alice.id, true).await.unwrap();
    assert!(disabled.disabled);
    assert_eq!(
        socket.next_event().await,
        Some(Event::Closed { code: Some(4001) })
    );
    let old = server.api.me(&alice.token).await.unwrap_err();
    assert_eq!(code(&old), (401, ErrorCode::Unauthorized));
    let login = server.api.login("alice", PASSWORD, None).await.unwrap_err();
    assert_eq!(code(&login), (403, ErrorCode::AccountDisabled));
    // A wrong password still says only that.
    let wrong = server
        .api
        .login("alice", "wrong password", None)
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), (401, ErrorCode::BadCredentials));
    assert_eq!(admin.user(&alice.id).await.unwrap().sessions, 0);
    // Disabling twice is harmless.
    admin.set_disabled(&alice.id, true).await.unwrap();
    assert_eq!(admin.stats().await.unwrap().disabled_users, 1);

    let enabled = admin.set_disabled(&alice.id, false).await.unwrap();
    assert!(!enabled.disabled);
    let again = server.login("alice").await;
    server.api.me(&again.token).await.unwrap();
    let old = server.api.me(&alice.token).await.unwrap_err();
    assert_eq!(
        code(&old),
        (401, ErrorCode::Unauthorized),
        "old sessions stay revoked"
    );
    server.stop().await;
}

#[tokio::test]
async fn sessions_are_listed_and_revoked() {
    let (server, admin) = start().await;
    let alice = server.user("alice").await;
    let laptop = server.login("alice").await;
    let bob = server.user("bob").await;
    let listed = admin.sessions(&alice.id).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [alice.session.as_str(), laptop.session.as_str()]);
    assert_eq!(listed[0].device, "test device");

    let mut socket = server.connect(&laptop).await;
    admin
        .revoke_session(&alice.id, &laptop.session)
        .await
        .unwrap();
    assert_eq!(
        socket.next_event().await,
        Some(Event::Closed { code: Some(4001) })
    );
    let err = server.api.me(&laptop.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::Unauthorized));
    server.api.me(&alice.token).await.unwrap();
    // Revoked already, another user's, or not an id.
    for (user, session) in [
        (&alice.id, laptop.session.as_str()),
        (&alice.id, bob.session.as_str()),
        (&alice.id, "x"),
        (&alice.id, "0"),
    ] {
        let err = admin.revoke_session(user, session).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownSession), "{session}");
    }
    let err = admin.revoke_session("999", &bob.session).await.unwrap_err();
    assert_eq!(code(&err), (404, ErrorCode::UnknownUser));
    server.api.me(&bob.token).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn invitations_are_created_listed_without_codes_and_revoked() {
    let (server, admin) = start().await;
    let first = admin.create_invite(None, None).await.unwrap();
    assert_eq!(first.uses, 1);
    let week = banter_server::clock::now_ms() + 7 * 24 * 3600 * 1000;
    assert!(
        (first.expires_at - week).abs() < 60_000,
        "a week by default"
    );
    let second = admin.create_invite(Some(1000), Some(60)).await.unwrap();
    assert_ne!(first.code, second.code);
    for (uses, ttl) in [
        (Some(0), None),
        (Some(1001), None),
        (None, Some(59)),
        (None, Some(31_536_001)),
    ] {
        let err = admin.create_invite(uses, ttl).await.unwrap_err();
        assert_eq!(
            code(&err),
            (400, ErrorCode::InvalidField),
            "{uses:?} {ttl:?}"
        );
    }
    let page = admin.invites(None, None).await.unwrap();
    let ids: Vec<_> = page.invites.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()], "newest first");
    let (status, raw) = server
        .http_from(LOCAL, "GET", "/v1/admin/invites", Some(ADMIN), "")
        .await;
    assert_eq!(status, 200);
    assert!(
        !raw.contains(&first.code) && !raw.contains(&second.code),
        "{raw}"
    );
    let paged = admin.invites(None, Some(1)).await.unwrap();
    let rest = admin.invites(paged.next.as_deref(), Some(1)).await.unwrap();
    assert_eq!(rest.invites[0].id, first.id);
    let bad = admin.invites(Some("x"), None).await.unwrap_err();
    assert_eq!(code(&bad), (400, ErrorCode::BadRequest));

    admin.revoke_invite(&first.id).await.unwrap();
    assert!(admin.invites(None, None).await.unwrap().invites[1].revoked);
    for bad in [first.id.as_str(), "999", "x"] {
        let err = admin.revoke_invite(bad).await.unwrap_err();
        assert_eq!(code(&err), (404, ErrorCode::UnknownInvite), "{bad}");
    }
    assert_eq!(admin.stats().await.unwrap().live_invites, 1);
    server.stop().await;
}

#[tokio::test]
async fn live_invitations_are_bounded() {
    let (server, admin) = start().await;
    let mut fill = tokio::task::JoinSet::new();
    for i in 0..999u32 {
        let store = std::sync::Arc::clone(&server.store);
        fill.spawn(async move {
            let mut code_hash = [0u8; 32];
            code_hash[..4].copy_from_slice(&i.to_be_bytes());
            store
                .create_invite(NewInvite {
                    code_hash,
                    uses: 1,
                    expires_at: i64::MAX,
                    max_live: 1000,
                })
                .await
                .unwrap();
        });
    }
    while fill.join_next().await.is_some() {}
    let last = admin.create_invite(None, None).await.unwrap();
    let err = admin.create_invite(None, None).await.unwrap_err();
    assert_eq!(code(&err), (409, ErrorCode::TooManyInvites));
    admin.revoke_invite(&last.id).await.unwrap();
    admin.create_invite(None, None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_user_keeps_their_messages_and_hands_over_their_groups() {
    let (server, admin) = start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let a = server.connect(&alice).await;
    let b = server.connect(&bob).await;
    let c = server.connect(&carol).await;
    // A group alice owns (carol an admin, bob a member), and one she is alone in.
    let shared: GroupInfo = ok(&a, create_group("shared", &[&bob, &carol], false)).await;
    let _alone: GroupInfo = ok(&a, create_group("alone", &[], false)).await;
    let _: serde_json::Value = ok(
        &a,
        ClientRequest::GroupRole {
            group: shared.id.clone(),
            user: carol.id.clone(),
            role: Role::Admin,
        },
    )
    .await;
    let _: serde_json::Value = ok(
        &a,
        ClientRequest::FriendRequest {
            user: bob.id.clone(),
        },
    )
    .await;
    let _: serde_json::Value = ok(
        &b,
        ClientRequest::FriendAccept {
            user: alice.id.clone(),
        },
    )
    .await;
    let sent: SendAck = ok(
        &a,
        ClientRequest::Send {
            to: Some(bob.id.clone()),
            conversation: None,
            client_msg_id: "m1".into(),
            text: "hello bob".into(),
            attachment: None,
            sticker: None,
        },
    )
    .await;

    admin.delete_user(&alice.id).await.unwrap();

    let shown = admin.user(&alice.id).await.unwrap();
    assert!(shown.user.deleted && shown.user.disabled);
    assert_eq!(shown.user.username, format!("deleted:{}", alice.id));
    assert_eq!(shown.sessions, 0);
    let err = server.api.me(&alice.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::Unauthorized));
    let err = server.api.login("alice", PASSWORD, None).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::BadCredentials));
    // The group passed to its admin; alice is no member; the solo group is dissolved.
    let members: MembersResult = ok(
        &c,
        ClientRequest::GroupMembers {
            group: shared.id.clone(),
        },
    )
    .await;
    let owner = members
        .members
        .iter()
        .find(|m| m.role == Role::Owner)
        .unwrap();
    assert_eq!(owner.user, carol.id);
    assert!(members.members.iter().all(|m| m.user != alice.id));
    let stats = admin.stats().await.unwrap();
    assert_eq!(stats.groups, 1, "{stats:?}");
    // Friendship gone, message kept with alice's id as its sender.
    let social: SocialResult = ok(&b, ClientRequest::Friends).await;
    assert!(social.friends.is_empty());
    let page: MessagePage = ok(
        &b,
        ClientRequest::History {
            conversation: sent.conversation.clone(),
            before_seq: None,
            limit: None,
        },
    )
    .await;
    let kept = page.messages.iter().find(|m| m.seq == sent.seq).unwrap();
    assert_eq!(
        (kept.sender.as_str(), kept.text.as_str()),
        (alice.id.as_str(), "hello bob")
    );
    // New messages to her are refused; her name is free; she cannot be deleted twice.
    let code_to = refused(
        &b,
        ClientRequest::Send {
            to: Some(alice.id.clone()),
            conversation: None,
            client_msg_id: "m2".into(),
            text: "still there?".into(),
            attachment: None,
            sticker: None,
        },
    )
    .await;
    assert_eq!(code_to, ErrorCode::UnknownUser);
    let err = admin.set_disabled(&alice.id, false).await.unwrap_err();
    assert_eq!(code(&err), (404, ErrorCode::UnknownUser));
    let err = admin.delete_user(&alice.id).await.unwrap_err();
    assert_eq!(code(&err), (404, ErrorCode::UnknownUser));
    let again = server.api.register("alice", PASSWORD).await.unwrap();
    assert_ne!(again.id, alice.id);
    let found = server
        .api
        .search_users(&bob.token, "deleted")
        .await
        .unwrap();
    assert!(found.is_empty(), "tombstones are not searchable: {found:?}");
    let err = admin
        .create_user(&format!("deleted:{}", alice.id), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(code(&err), (400, ErrorCode::InvalidUsername));
    server.stop().await;
}

#[tokio::test]
async fn stats_count_what_exists() {
    let (server, admin) = start().await;
    let empty = admin.stats().await.unwrap();
    assert_eq!((empty.users, empty.messages, empty.connections), (0, 0, 0));
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let _b = server.connect(&bob).await;
    for i in 0..3 {
        let _: SendAck = ok(
            &a,
            ClientRequest::Send {
                to: Some(bob.id.clone()),
                conversation: None,
                client_msg_id: format!("m{i}"),
                text: "hi".into(),
                attachment: None,
                sticker: None,
            },
        )
        .await;
    }
    let _: GroupInfo = ok(&a, create_group("g", &[&bob], false)).await;
    let _: serde_json::Value = ok(
        &a,
        ClientRequest::RoomJoin {
            room: "lobby".into(),
        },
    )
    .await;
    admin.create_invite(None, None).await.unwrap();
    let stats = admin.stats().await.unwrap();
    assert_eq!(
        (
            stats.users,
            stats.sessions,
            stats.connections,
            stats.groups,
            stats.conversations
        ),
        (2, 2, 2, 1, 2),
        "{stats:?}"
    );
    assert_eq!(
        (stats.messages, stats.rooms, stats.live_invites),
        (4, 1, 1),
        "3 messages + the group's creation entry: {stats:?}"
    );
    server.stop().await;
}

/// The store's half of the guarantee the HTTP tests rely on: a name is never reused by a
/// tombstone and listing includes deleted users, marked.
#[tokio::test]
async fn listings_mark_deleted_users() {
    let (server, admin) = start().await;
    let zed = admin.create_user("zed", PASSWORD).await.unwrap();
    admin.delete_user(&zed.id).await.unwrap();
    let page = admin.users(None, None, None).await.unwrap();
    assert_eq!(page.users.len(), 1);
    assert!(page.users[0].deleted);
    assert_eq!(server.store.user_by_name("zed").await.unwrap(), None);
    assert_eq!(admin.stats().await.unwrap().users, 0);
    server.stop().await;
}
