//! The HTTP account API against a real server: the good paths and every refusal.

mod common;

use std::time::Duration;

use banter_client::protocol::ErrorCode;
use banter_client::{ClientError, Connection, Event};
use common::{PASSWORD, RawFrame, parse_frame, start_server, start_with};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn code(e: &ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { status, body } => (*status, body.code),
        other => panic!("expected a typed API error, got {other:?}"),
    }
}

#[tokio::test]
async fn register_login_me_and_search() {
    let server = start_server().await;
    let alice = server.user("Alice").await;
    assert_eq!(alice.username, "alice", "usernames are lower-cased");
    server.user("alan").await;
    server.user("bob").await;
    let me = server.api.me(&alice.token).await.unwrap();
    assert_eq!(
        (me.id.as_str(), me.username.as_str()),
        (alice.id.as_str(), "alice")
    );
    let found = server.api.search_users(&alice.token, "AL").await.unwrap();
    let names: Vec<_> = found.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alan", "alice"]);
    server.stop().await;
}

#[tokio::test]
async fn registration_refusals() {
    let server = start_server().await;
    server.user("carol").await;
    let taken = server.api.register("CAROL", PASSWORD).await.unwrap_err();
    assert_eq!(code(&taken), (409, ErrorCode::UsernameTaken));
    let bad_name = server
        .api
        .register("no spaces", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(code(&bad_name), (400, ErrorCode::InvalidUsername));
    let short = server.api.register("dave", "short").await.unwrap_err();
    assert_eq!(code(&short), (400, ErrorCode::InvalidPassword));
    let long = server
        .api
        .register("dave", &"p".repeat(129))
        .await
        .unwrap_err();
    assert_eq!(code(&long), (400, ErrorCode::InvalidPassword));
    server.stop().await;
}

#[tokio::test]
async fn login_refusals_and_bad_tokens() {
    let server = start_server().await;
    let erin = server.user("erin").await;
    let wrong = server
        .api
        .login("erin", "wrong password", None)
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), (401, ErrorCode::BadCredentials));
    let nobody = server
        .api
        .login("nobody", PASSWORD, None)
        .await
        .unwrap_err();
    assert_eq!(code(&nobody), (401, ErrorCode::BadCredentials));
    let forged = server.api.me("not-a-token").await.unwrap_err();
    assert_eq!(code(&forged), (401, ErrorCode::Unauthorized));
    let (status, body) = server.api.get_text("/v1/me").await.unwrap();
    assert_eq!(status, 401, "missing header: {body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    // The same refusals apply to the WebSocket endpoint, before any upgrade.
    let ws = Connection::connect(&server.addr, "not-a-token")
        .await
        .err()
        .unwrap();
    assert_eq!(code(&ws), (401, ErrorCode::Unauthorized));
    assert!(server.api.me(&erin.token).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = start_with(|c| c.token_ttl_secs = 0).await;
    let frank = server.user("frank").await;
    let err = server.api.me(&frank.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::TokenExpired));
    let ws = Connection::connect(&server.addr, &frank.token)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&ws), (401, ErrorCode::TokenExpired));
    server.stop().await;
}

/// Every login adds a session: past `max_sessions_per_user` the oldest is revoked (its token
/// refused, its socket closed with 4001), so the session list stays bounded.
#[tokio::test]
async fn a_login_past_the_session_cap_revokes_the_oldest() {
    let server = start_with(|c| c.max_sessions_per_user = 3).await;
    let oldest = server.user("hank").await;
    // Its token is cached (a request before the trim), so the trim must void the cache too.
    server.api.me(&oldest.token).await.unwrap();
    let mut socket = server.connect(&oldest).await;
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(server.login("hank").await);
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), socket.next_event())
        .await
        .expect("the oldest session's socket stayed open");
    assert_eq!(closed, Some(Event::Closed { code: Some(4001) }));
    let err = server.api.me(&oldest.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::Unauthorized));
    let newest = later.last().unwrap();
    let sessions = server.api.sessions(&newest.token).await.unwrap();
    let ids: Vec<_> = sessions.iter().map(|s| s.id.as_str()).collect();
    let kept: Vec<_> = later.iter().map(|u| u.session.as_str()).collect();
    assert_eq!(ids, kept, "the three newest sessions stay, oldest first");
    for user in &later {
        server.api.me(&user.token).await.unwrap();
    }
    // Many more logins: still three.
    for _ in 0..10 {
        server.login("hank").await;
    }
    let sessions = server.api.sessions(&newest.token).await.unwrap_err();
    assert_eq!(code(&sessions), (401, ErrorCode::Unauthorized));
    let last = server.login("hank").await;
    assert_eq!(server.api.sessions(&last.token).await.unwrap().len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn sessions_list_revoke_and_logout() {
    let server = start_server().await;
    let phone = server.user("gina").await;
    let laptop = server.login("gina").await;
    let sessions = server.api.sessions(&phone.token).await.unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().any(|s| s.id == phone.session && s.current));
    assert!(
        sessions
            .iter()
            .any(|s| s.id == laptop.session && !s.current)
    );

    // Revoking the laptop closes its open socket at once, with 4001.
    let mut socket = server.connect(&laptop).await;
    server
        .api
        .revoke(&phone.token, &laptop.session)
        .await
        .unwrap();
    assert_eq!(
        socket.next_event().await,
        Some(Event::Closed { code: Some(4001) })
    );
    let err = server.api.me(&laptop.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::Unauthorized));

    let unknown = server
        .api
        .revoke(&phone.token, &laptop.session)
        .await
        .unwrap_err();
    assert_eq!(code(&unknown), (404, ErrorCode::UnknownSession));
    let garbage = server.api.revoke(&phone.token, "xyz").await.unwrap_err();
    assert_eq!(code(&garbage), (404, ErrorCode::UnknownSession));
    // Someone else's session is as unknown as a missing one.
    let other = server.user("hank").await;
    let foreign = server
        .api
        .revoke(&phone.token, &other.session)
        .await
        .unwrap_err();
    assert_eq!(code(&foreign), (404, ErrorCode::UnknownSession));

    server.api.logout(&phone.token).await.unwrap();
    let err = server.api.sessions(&phone.token).await.unwrap_err();
    assert_eq!(code(&err), (401, ErrorCode::Unauthorized));
    server.stop().await;
}

#[tokio::test]
async fn change_password_revokes_other_sessions() {
    let server = start_server().await;
    let main = server.user("ivy").await;
    let other = server.login("ivy").await;
    let mut socket = server.connect(&other).await;
    let wrong = server
        .api
        .change_password(&main.token, "not it at all", "new password 1")
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), (401, ErrorCode::BadCredentials));
    let weak = server
        .api
        .change_password(&main.token, PASSWORD, "short")
        .await
        .unwrap_err();
    assert_eq!(code(&weak), (400, ErrorCode::InvalidPassword));
    server
        .api
        .change_password(&main.token, PASSWORD, "new password 1")
        .await
        .unwrap();
    assert_eq!(
        socket.next_event().await,
        Some(Event::Closed { code: Some(4001) })
    );
    assert!(
        server.api.me(&main.token).await.is_ok(),
        "the caller's session stays"
    );
    assert!(server.api.me(&other.token).await.is_err());
    let old = server.api.login("ivy", PASSWORD, None).await.unwrap_err();
    assert_eq!(code(&old), (401, ErrorCode::BadCredentials));
    assert!(
        server
            .api
            .login("ivy", "new password 1", None)
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_oversized_and_unknown_requests() {
    let server = start_with(|c| c.max_body_bytes = 1024).await;
    let user = server.user("jack").await;
    // Malformed JSON body.
    let (status, body) = raw_post(&server.addr, "/v1/accounts", "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"bad_request\""), "{body}");
    // Oversized body.
    let big = format!(r#"{{"username":"kate","password":"{}"}}"#, "x".repeat(2000));
    let (status, body) = raw_post(&server.addr, "/v1/accounts", &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"payload_too_large\""), "{body}");
    // Unknown route.
    let (status, body) = server.api.get_text("/v1/nope").await.unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"not_found\""), "{body}");
    // Bad search prefix.
    let err = server.api.search_users(&user.token, "").await.unwrap_err();
    assert_eq!(code(&err), (400, ErrorCode::BadRequest));
    server.stop().await;
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let server = start_server().await;
    assert_eq!(server.api.get_text("/healthz").await.unwrap().0, 200);
    assert_eq!(server.api.get_text("/readyz").await.unwrap().0, 200);
    server
        .api
        .login("nobody", PASSWORD, None)
        .await
        .unwrap_err();
    let (status, metrics) = server.api.get_text("/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("banter_errors_total{code=\"bad_credentials\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("banter_commit_seconds_bucket"),
        "{metrics}"
    );
    let (status, doc) = server.api.get_text("/openapi.json").await.unwrap();
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for path in [
        "/v1/accounts",
        "/v1/sessions",
        "/v1/me/password",
        "/v1/users",
        "/v1/ws",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    server.stop().await;
}

/// POSTs a raw body (the SDK only sends well-formed JSON).
async fn raw_post(addr: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// Upgrades on a fresh connection (headers read byte by byte, so that no frame is lost), then
/// reads the server's first frame: `Err(status)` if the upgrade was refused, `Ok(None)` if the
/// server switched and then ended the stream without a frame.
async fn upgrade_and_first_frame(addr: &str, token: &str) -> Result<Option<RawFrame>, u16> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(common::upgrade_request(addr, token).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "closed in the handshake"
        );
        head.push(byte[0]);
    }
    let status: u16 = String::from_utf8_lossy(&head)[9..12].parse().unwrap();
    if status != 101 {
        return Err(status);
    }
    let mut buf = Vec::new();
    loop {
        if let Some((frame, _)) = parse_frame(&buf) {
            return Ok(Some(frame));
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Upgrades racing for a user's last connection place: each is refused at the handshake
/// (429), admitted (its `hello`), or, having lost the race after the `101`, closed with 4004:
/// never a `101` and then a stream that ends without a close frame (1006, no reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_that_lose_the_per_user_race_close_with_4004() {
    let server = start_with(|c| c.max_connections_per_user = 1).await;
    let ivy = server.user("ivy").await;
    let (mut admitted, mut lost, mut refused) = (0, 0, 0);
    for _round in 0..25 {
        let racers: Vec<_> = (0..24)
            .map(|_| {
                let (addr, token) = (server.addr.clone(), ivy.token.clone());
                tokio::spawn(async move { upgrade_and_first_frame(&addr, &token).await })
            })
            .collect();
        for racer in racers {
            match racer.await.unwrap() {
                Err(status) => {
                    assert_eq!(status, 429);
                    refused += 1;
                }
                Ok(Some(frame)) if frame.opcode == 1 => admitted += 1,
                Ok(Some(frame)) => {
                    assert_eq!(frame.close_code(), Some(4004), "{frame:?}");
                    lost += 1;
                }
                Ok(None) => panic!("a 101 then no close frame"),
            }
        }
        // The admitted sockets were dropped with their tasks: wait until the place is free.
        assert_eq!(
            server
                .metric_becomes("banter_connections", 0, Duration::from_secs(10))
                .await,
            0,
            "a connection stayed open"
        );
    }
    assert!(admitted >= 25, "one per round at least: {admitted}");
    println!("admitted {admitted}, lost the race after the 101 {lost}, refused {refused}");
    server.stop().await;
}

#[tokio::test]
async fn a_json_body_without_its_content_type_is_refused_with_a_hint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start_server().await;
    let body = r#"{"username":"formy","password":"correct horse battery"}"#;
    // curl -d labels its body a form; a browser's cross-origin "simple" request says text/plain.
    for content_type in ["application/x-www-form-urlencoded", "text/plain", ""] {
        let header = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        let req = format!(
            "POST /v1/accounts HTTP/1.1\r\nHost: {}\r\n{header}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            server.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{content_type:?}: {out}");
        assert!(out.contains(r#""code":"bad_request""#), "{out}");
        assert!(
            out.contains("Content-Type: application/json"),
            "the message says what to send: {out}"
        );
    }
    // Nothing was registered.
    let (status, _) = raw_post(&server.addr, "/v1/accounts", body).await;
    assert_eq!(status, 201);
    server.stop().await;
}
