//! What a client may ask for and how often: the request budget on every state-changing
//! request type (per user and per connection), out-of-range numbers that must be
//! `bad_request` and never `internal`, and parse errors that name no Rust type.

mod common;

use banter_client::protocol::{ClientRequest as R, ErrorCode, GroupInfo, Profile, SendAck};
use banter_client::{Connection, Target};
use common::{RawSocket, TestServer, ok, refused, start_with};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn profile(n: usize) -> R {
    R::ProfileUpdate {
        display_name: None,
        avatar_url: None,
        status_text: Some(format!("status {n}")),
    }
}

/// Sends `make(i)` until it is refused; returns how many were answered and the refusal.
async fn until_refused(conn: &Connection, mut make: impl FnMut(usize) -> R) -> (usize, ErrorCode) {
    for i in 0..1_000 {
        match conn.request(make(i)).await {
            Ok(_) => {}
            Err(banter_client::ClientError::Api { body, .. }) => return (i, body.code),
            Err(e) => panic!("request {i}: {e}"),
        }
    }
    panic!("1,000 requests and none refused");
}

/// A server whose request budget is `burst` per user (and `conn_burst` per connection), with
/// a sustained rate too slow to refill during the test.
async fn budget_server(burst: u32, conn_burst: u32) -> TestServer {
    start_with(|c| {
        c.request_rate_per_sec = 1;
        c.request_burst = burst;
        c.connection_request_rate_per_sec = 1;
        c.connection_request_burst = conn_burst;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_request_type_spends_the_budget() {
    const BURST: u32 = 20;
    let server = budget_server(BURST, 1_000).await;
    let alice = server.user("alice").await;
    let a = server.connect(&alice).await;
    // A flood of profile updates (each would fan out to every contact) is cut at the burst
    // (the rate refills one a second: allow one more for a slow machine).
    let (answered, code) = until_refused(&a, profile).await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(
        (BURST as usize..=BURST as usize + 1).contains(&answered),
        "{answered} answered"
    );
    // The connection stays, and sends have their own budget.
    let bob = server.user("bob").await;
    let sent: SendAck = ok(
        &a,
        R::Send {
            to: Some(bob.id.clone()),
            conversation: None,
            client_msg_id: "m1".into(),
            text: "still here".into(),
            attachment: None,
            sticker: None,
        },
    )
    .await;
    assert_eq!(sent.seq, 1);
    // Group creation and friend requests, each from a fresh user.
    let carol = server.user("carol").await;
    let c = server.connect(&carol).await;
    let (answered, code) = until_refused(&c, |i| R::GroupCreate {
        name: format!("g{i}"),
        description: None,
        public: false,
        members: Vec::new(),
    })
    .await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(answered >= BURST as usize && answered <= BURST as usize + 1);
    let dave = server.user("dave").await;
    let d = server.connect(&dave).await;
    let mut others = Vec::new();
    for i in 0..=BURST + 1 {
        others.push(server.user(&format!("user{i}")).await.id);
    }
    let (answered, code) = until_refused(&d, |i| R::FriendRequest {
        user: others[i % others.len()].clone(),
    })
    .await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(answered >= BURST as usize && answered <= BURST as usize + 1);
    // The budget is per user: another device of dave's is refused as well.
    let d2 = server.connect(&server.login("dave").await).await;
    assert_eq!(refused(&d2, profile(0)).await, ErrorCode::RateLimited);
    // Reads are not budgeted.
    let _: Value = ok(&d2, R::Friends).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_cannot_spend_the_whole_users_budget() {
    let server = budget_server(1_000, 5).await;
    let alice = server.user("alice").await;
    let a = server.connect(&alice).await;
    let (answered, code) = until_refused(&a, profile).await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!((5..=6).contains(&answered), "{answered} answered");
    // Alice's other device still has its own.
    let phone = server.connect(&server.login("alice").await).await;
    let p: Profile = ok(&phone, profile(99)).await;
    assert_eq!(p.status_text, "status 99");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_from_two_to_the_63_are_bad_requests_not_internal_errors() {
    let server = common::start_server().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let a = server.connect(&alice).await;
    let sent = a
        .send_text(&Target::User(bob.id.clone()), "m1", "hi")
        .await
        .unwrap();
    let conv = sent.conversation;
    for seq in [1u64 << 63, u64::MAX] {
        let requests = [
            R::Sync {
                conversation: conv.clone(),
                after_seq: seq,
                limit: None,
            },
            R::History {
                conversation: conv.clone(),
                before_seq: Some(seq),
                limit: Some(u32::MAX),
            },
            R::Recall {
                conversation: conv.clone(),
                seq,
                client_msg_id: None,
            },
            R::Edit {
                conversation: conv.clone(),
                seq,
                text: "x".into(),
                client_msg_id: Some("e1".into()),
            },
            R::Read {
                conversation: conv.clone(),
                seq,
            },
        ];
        for request in requests {
            let what = format!("{request:?}");
            assert_eq!(refused(&a, request).await, ErrorCode::BadRequest, "{what}");
        }
    }
    // The largest seq that fits is an ordinary request.
    let page = a
        .sync(&conv, i64::MAX as u64, Some(u32::MAX))
        .await
        .unwrap();
    assert!(page.messages.is_empty() && !page.has_more);
    let internal = server
        .api
        .get_text("/metrics")
        .await
        .unwrap()
        .1
        .lines()
        .any(|l| l == "banter_errors_total{code=\"internal\"} 0");
    assert!(internal, "no request ended as `internal`");
    server.stop().await;
}

/// Whether an error message names a Rust type.
fn names_a_type(message: &str) -> bool {
    [
        "struct ",
        "enum ",
        "::",
        "ClientFrame",
        "ClientRequest",
        "Request`",
        "banter_",
    ]
    .iter()
    .any(|t| message.contains(t))
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
async fn http(addr: &str, head: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_messages_name_no_rust_type() {
    let server = common::start_server().await;
    let alice = server.user("alice").await;
    let mut socket = RawSocket::open_ready(&server.addr, &alice.token).await;
    for text in [
        "[1]",
        "\"send\"",
        "7",
        r#"{"id":"1","type":"send","client_msg_id":5,"text":"x"}"#,
        r#"{"id":"2","type":"group_role","group":"1","user":"1","role":7}"#,
        r#"{"id":"3","type":"sync","conversation":"1","after_seq":"a"}"#,
        r#"{"id":"4","type":"friends","extra":[1,2]}x"#,
        r#"{"id":"5","type":["send"]}"#,
        r#"{"id":"6","type":"presence","users":"nope"}"#,
    ] {
        socket.send_frame(1, text.as_bytes()).await;
        let frame = socket.next_frame().await.expect("a reply");
        let reply: Value = serde_json::from_slice(&frame.payload).unwrap();
        assert_eq!(reply["error"]["code"], "bad_request", "{text}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(!names_a_type(message), "{text}: {message}");
    }
    let token = format!("Authorization: Bearer {}", alice.token);
    for (head, body) in [
        ("POST /v1/accounts HTTP/1.1", "[]"),
        (
            "POST /v1/accounts HTTP/1.1",
            r#"{"username":1,"password":"x"}"#,
        ),
        ("POST /v1/sessions HTTP/1.1", "\"alice\""),
        (
            &format!("PUT /v1/me/password HTTP/1.1\r\n{token}") as &str,
            "{}",
        ),
        (
            &format!("GET /v1/users?prefix=a&limit=x HTTP/1.1\r\n{token}"),
            "",
        ),
        (&format!("GET /v1/users HTTP/1.1\r\n{token}"), ""),
    ] {
        let (status, body) = http(&server.addr, head, body).await;
        assert_eq!(status, 400, "{head}: {body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["error"]["code"], "bad_request", "{head}: {body}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(!names_a_type(message), "{head}: {message}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_share_one_budget() {
    let server = budget_server(2, 1_000).await;
    let owner = server.user("owner").await;
    let o = server.connect(&owner).await;
    let g: GroupInfo = ok(
        &o,
        R::GroupCreate {
            name: "big".into(),
            description: None,
            public: false,
            members: Vec::new(),
        },
    )
    .await;
    let _: Value = ok(
        &o,
        R::GroupUpdate {
            group: g.id.clone(),
            name: Some("bigger".into()),
            description: None,
        },
    )
    .await;
    assert_eq!(
        refused(&o, R::GroupDissolve { group: g.id }).await,
        ErrorCode::RateLimited
    );
    server.stop().await;
}

/// `profiles` and `presence` name at most 200 ids (`LOOKUP_MAX`): 200 are answered, 201 are
/// `bad_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_and_presence_take_at_most_two_hundred_ids() {
    let server = start_with(|_| {}).await;
    let alice = server.user("alice").await;
    let a = server.connect(&alice).await;
    let ids = |n: usize| -> Vec<String> {
        let mut v = vec![alice.id.clone()];
        v.extend((1..n).map(|i| format!("{}", 900_000 + i)));
        v
    };
    let at_cap: banter_client::protocol::ProfilesResult =
        ok(&a, R::Profiles { users: ids(200) }).await;
    assert_eq!(at_cap.profiles.len(), 1, "unknown ids are left out");
    let _: banter_client::protocol::PresenceResult = ok(&a, R::Presence { users: ids(200) }).await;
    for over in [
        R::Profiles { users: ids(201) },
        R::Presence { users: ids(201) },
    ] {
        assert_eq!(refused(&a, over).await, ErrorCode::BadRequest);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_that_cost_the_server_spend_the_same_user_budget() {
    let server = budget_server(4, 4).await;
    let alice = server.user("alice").await;
    // The user budget is shared by every device and by HTTP: searches spend it...
    for i in 0..4 {
        let found = server.api.search_users(&alice.token, "ali").await;
        assert!(found.is_ok(), "search {i}: {found:?}");
    }
    let code = |r: Result<(), banter_client::ClientError>| match r {
        Err(banter_client::ClientError::Api { body, .. }) => body.code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let refused = server.api.search_users(&alice.token, "ali").await.map(drop);
    assert_eq!(code(refused), ErrorCode::RateLimited);
    // ...and so do the session changes, which are refused before they change anything.
    let other = server.login("alice").await;
    assert_eq!(
        code(server.api.revoke(&alice.token, &other.session).await),
        ErrorCode::RateLimited
    );
    assert_eq!(
        code(server.api.logout(&alice.token).await),
        ErrorCode::RateLimited
    );
    assert!(
        server.api.me(&other.token).await.is_ok(),
        "the refused revoke left the session alive"
    );
    // Another user's budget is untouched.
    let bob = server.user("bob").await;
    assert!(server.api.search_users(&bob.token, "ali").await.is_ok());
    server.stop().await;
}
