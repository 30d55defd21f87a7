//! The sign-up policies against a real server: `open` (the default), `invite` (codes with uses
//! and an expiry, one use taken in the transaction that inserts the user), `closed`; and that
//! the database keeps only the codes' SHA-256.

mod common;

use banter_client::protocol::ErrorCode;
use banter_client::{AdminApi, ClientError};
use banter_server::config::{AdminToken, SignupPolicy};
use banter_server::store::NewInvite;
use common::{PASSWORD, TestServer, start_with};
use sha2::{Digest, Sha256};

const ADMIN: &str = "an-admin-token-of-at-least-32-bytes!";

fn code(e: &ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { status, body } => (*status, body.code),
        other => panic!("expected a typed API error, got {other:?}"),
    }
}

async fn start(policy: SignupPolicy) -> (TestServer, AdminApi) {
    let server = start_with(|c| {
        c.signup = policy;
        c.admin_token = AdminToken::from(ADMIN);
    })
    .await;
    let admin = AdminApi::new(server.addr.clone(), ADMIN);
    (server, admin)
}

#[tokio::test]
async fn open_is_the_default_and_ignores_codes() {
    let server = common::start_server().await;
    assert_eq!(server.config.signup, SignupPolicy::Open);
    server.api.register("alice", PASSWORD).await.unwrap();
    server
        .api
        .register_invited("bob", PASSWORD, Some("whatever"))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn closed_refuses_registration_but_operators_create_users() {
    let (server, admin) = start(SignupPolicy::Closed).await;
    let refused = server.api.register("alice", PASSWORD).await.unwrap_err();
    assert_eq!(code(&refused), (403, ErrorCode::SignupClosed));
    let with_code = server
        .api
        .register_invited("alice", PASSWORD, Some("code"))
        .await
        .unwrap_err();
    assert_eq!(code(&with_code), (403, ErrorCode::SignupClosed));
    let alice = admin.create_user("Alice", PASSWORD).await.unwrap();
    assert_eq!(alice.username, "alice");
    let login = server.api.login("alice", PASSWORD, None).await.unwrap();
    assert_eq!(login.user.id, alice.id);
    server.stop().await;
}

#[tokio::test]
async fn invite_needs_a_live_code_and_counts_its_uses() {
    let (server, admin) = start(SignupPolicy::Invite).await;
    let missing = server.api.register("alice", PASSWORD).await.unwrap_err();
    assert_eq!(code(&missing), (403, ErrorCode::InviteRequired));
    let empty = server
        .api
        .register_invited("alice", PASSWORD, Some(""))
        .await
        .unwrap_err();
    assert_eq!(code(&empty), (403, ErrorCode::InviteRequired));
    for bad in ["not-a-code".to_owned(), "x".repeat(129)] {
        let err = server
            .api
            .register_invited("alice", PASSWORD, Some(&bad))
            .await
            .unwrap_err();
        assert_eq!(code(&err), (403, ErrorCode::InvalidInvite), "{bad}");
    }

    let invite = admin.create_invite(Some(2), Some(3600)).await.unwrap();
    assert!(invite.code.len() >= 32, "24 random bytes, base64url");
    server
        .api
        .register_invited("alice", PASSWORD, Some(&invite.code))
        .await
        .unwrap();
    // A refused registration (the name is taken) gives its use back.
    let taken = server
        .api
        .register_invited("alice", PASSWORD, Some(&invite.code))
        .await
        .unwrap_err();
    assert_eq!(code(&taken), (409, ErrorCode::UsernameTaken));
    server
        .api
        .register_invited("bob", PASSWORD, Some(&invite.code))
        .await
        .unwrap();
    let used_up = server
        .api
        .register_invited("carol", PASSWORD, Some(&invite.code))
        .await
        .unwrap_err();
    assert_eq!(code(&used_up), (403, ErrorCode::InvalidInvite));
    let listed = admin.invites(None, None).await.unwrap();
    assert_eq!(
        (listed.invites[0].uses, listed.invites[0].uses_left),
        (2, 0)
    );

    // Revoked and expired codes are refused like unknown ones.
    let revoked = admin.create_invite(None, None).await.unwrap();
    admin.revoke_invite(&revoked.id).await.unwrap();
    let expired = "an-expired-code";
    server
        .store
        .create_invite(NewInvite {
            code_hash: Sha256::digest(expired).into(),
            uses: 5,
            expires_at: banter_server::clock::now_ms() - 1,
            max_live: 1000,
        })
        .await
        .unwrap();
    for dead in [revoked.code.as_str(), expired] {
        let err = server
            .api
            .register_invited("carol", PASSWORD, Some(dead))
            .await
            .unwrap_err();
        assert_eq!(code(&err), (403, ErrorCode::InvalidInvite), "{dead}");
    }
    server.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_on_a_one_use_code_admit_exactly_one() {
    let (server, admin) = start(SignupPolicy::Invite).await;
    let invite = admin.create_invite(Some(1), None).await.unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (api, code) = (server.api.clone(), invite.code.clone());
        racers.spawn(async move {
            api.register_invited(&format!("racer{i}"), PASSWORD, Some(&code))
                .await
        });
    }
    let (mut won, mut lost) = (0, 0);
    while let Some(result) = racers.join_next().await {
        match result.unwrap() {
            Ok(_) => won += 1,
            Err(e) => {
                assert_eq!(code(&e), (403, ErrorCode::InvalidInvite));
                lost += 1;
            }
        }
    }
    assert_eq!((won, lost), (1, 7));
    assert_eq!(admin.stats().await.unwrap().users, 1);
    server.stop().await;
}

#[tokio::test]
async fn the_database_keeps_only_the_codes_hash() {
    let (server, admin) = start(SignupPolicy::Invite).await;
    let invite = admin.create_invite(Some(3), None).await.unwrap();
    let db = rusqlite::Connection::open_with_flags(
        server.config.data_dir.join("banter.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored: Vec<u8> = db
        .query_row("SELECT code_hash FROM invites", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, Sha256::digest(&invite.code).to_vec());
    let dump: String = db
        .query_row(
            "SELECT group_concat(quote(code_hash) || uses || created_at) FROM invites",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!dump.contains(&invite.code));
    server.stop().await;
}
