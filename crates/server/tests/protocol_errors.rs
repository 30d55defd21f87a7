//! Every WebSocket error code and close code, produced against a real server: bad frames, limits,
//! refusals, misbehaving clients (silent, slow), shutdown and storage failure.

mod common;

use std::time::Duration;

use banter_client::protocol::{ClientRequest, ErrorCode};
use banter_client::{ClientError, Connection, Event, Target};
use common::{RawSocket, start_server, start_with};

fn ws_code(e: ClientError) -> ErrorCode {
    match e {
        ClientError::Api { status: 0, body } => body.code,
        other => panic!("expected a WebSocket error reply, got {other:?}"),
    }
}

/// Sends `text` on a raw socket and returns the server's JSON reply.
async fn raw_reply(socket: &mut RawSocket, text: &str) -> serde_json::Value {
    socket.send_frame(1, text.as_bytes()).await;
    let frame = socket.next_frame().await.expect("a reply");
    assert_eq!(frame.opcode, 1);
    serde_json::from_slice(&frame.payload).unwrap()
}

#[tokio::test]
async fn malformed_and_unknown_frames_get_typed_errors_and_keep_the_connection() {
    let server = start_server().await;
    let user = server.user("alice").await;
    let mut socket = RawSocket::open_ready(&server.addr, &user.token).await;

    let reply = raw_reply(&mut socket, "{not json").await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"]["code"], "bad_request");
    assert!(reply["id"].is_null());

    let reply = raw_reply(&mut socket, r#"{"id":"7","type":"teleport"}"#).await;
    assert_eq!(
        (reply["error"]["code"].as_str(), reply["id"].as_str()),
        (Some("unknown_type"), Some("7"))
    );

    let reply = raw_reply(&mut socket, r#"{"id":"8","type":"send","text":"no key"}"#).await;
    assert_eq!(
        (reply["error"]["code"].as_str(), reply["id"].as_str()),
        (Some("bad_request"), Some("8"))
    );

    // Unknown fields are ignored.
    let reply = raw_reply(&mut socket, r#"{"id":"9","type":"ping","extra":true}"#).await;
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_str()),
        (Some("ok"), Some("9"))
    );
    server.stop().await;
}

#[tokio::test]
async fn send_refusals() {
    let server = start_with(|c| c.max_text_bytes = 100).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    let cases = [
        (
            to_bob.clone(),
            "k1",
            "x".repeat(101),
            ErrorCode::TextTooLong,
        ),
        (
            to_bob.clone(),
            "k2",
            "   ".to_owned(),
            ErrorCode::EmptyMessage,
        ),
        (
            to_bob.clone(),
            "",
            "hi".to_owned(),
            ErrorCode::InvalidClientMsgId,
        ),
        (
            to_bob.clone(),
            &"k".repeat(65),
            "hi".to_owned(),
            ErrorCode::InvalidClientMsgId,
        ),
        (
            Target::User("999999".into()),
            "k3",
            "hi".into(),
            ErrorCode::UnknownUser,
        ),
        (
            Target::User("bob".into()),
            "k4",
            "hi".into(),
            ErrorCode::UnknownUser,
        ),
        (
            Target::User(alice.id.clone()),
            "k5",
            "hi".into(),
            ErrorCode::CannotMessageSelf,
        ),
        (
            Target::Conversation("424242".into()),
            "k6",
            "hi".into(),
            ErrorCode::UnknownConversation,
        ),
    ];
    for (target, key, text, expected) in cases {
        let err = a.send_text(&target, key, &text).await.unwrap_err();
        assert_eq!(ws_code(err), expected, "{target:?} {key:?}");
    }
    // Both or neither target.
    let both = a
        .request(ClientRequest::Send {
            to: Some(bob.id.clone()),
            conversation: Some("1".into()),
            client_msg_id: "k7".into(),
            text: "hi".into(),
            attachment: None,
            sticker: None,
        })
        .await
        .unwrap_err();
    assert_eq!(ws_code(both), ErrorCode::BadRequest);

    // A conversation between Alice and Bob is closed to Carol for every request.
    let conv = a
        .send_text(&to_bob, "ok", "hello")
        .await
        .unwrap()
        .conversation;
    let c = server.connect(&carol).await;
    let in_conv = Target::Conversation(conv.clone());
    assert_eq!(
        ws_code(c.send_text(&in_conv, "c", "hi").await.unwrap_err()),
        ErrorCode::UnknownConversation
    );
    assert_eq!(
        ws_code(c.sync(&conv, 0, None).await.unwrap_err()),
        ErrorCode::UnknownConversation
    );
    assert_eq!(
        ws_code(c.history(&conv, None, None).await.unwrap_err()),
        ErrorCode::UnknownConversation
    );
    assert_eq!(
        ws_code(c.read(&conv, 1).await.unwrap_err()),
        ErrorCode::UnknownConversation
    );
    // A read beyond the last message.
    assert_eq!(
        ws_code(a.read(&conv, 5).await.unwrap_err()),
        ErrorCode::InvalidSeq
    );
    // Nothing was stored by any refused send.
    assert_eq!(server.stored_rows(conv.parse().unwrap()), 1);
    server.stop().await;
}

#[tokio::test]
async fn rate_limit_refuses_but_keeps_the_connection() {
    let server = start_with(|c| {
        c.send_rate_per_sec = 1;
        c.send_burst = 3;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    for i in 0..3 {
        a.send_text(&to_bob, &format!("b{i}"), "burst")
            .await
            .unwrap();
    }
    let err = a
        .send_text(&to_bob, "b3", "one too many")
        .await
        .unwrap_err();
    assert_eq!(ws_code(err), ErrorCode::RateLimited);
    a.request(ClientRequest::Ping)
        .await
        .expect("connection kept");
    let conv = a.conversations(None).await.unwrap().conversations[0]
        .id
        .clone();
    assert_eq!(server.stored_rows(conv.parse().unwrap()), 3);
    server.stop().await;
}

#[tokio::test]
async fn connections_per_user_are_limited() {
    let server = start_with(|c| c.max_connections_per_user = 2).await;
    let alice = server.user("alice").await;
    let _one = server.connect(&alice).await;
    let _two = server.connect(&alice).await;
    let err = Connection::connect(&server.addr, &alice.token)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Api { status: 429, body } if body.code == ErrorCode::TooManyConnections),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn oversize_frame_closes_with_1009_binary_with_4000_and_close_with_1000() {
    let server = start_with(|c| {
        c.max_frame_bytes = 4096;
        c.max_text_bytes = 1024;
    })
    .await;
    let user = server.user("alice").await;

    let mut big = RawSocket::open(&server.addr, &user.token).await;
    big.send_frame(1, &vec![b'x'; 5000]).await;
    assert_eq!(big.close_code().await.0, Some(1009));

    let mut binary = RawSocket::open(&server.addr, &user.token).await;
    binary.send_frame(2, b"\x00\x01").await;
    assert_eq!(binary.close_code().await.0, Some(4000));

    let mut polite = RawSocket::open(&server.addr, &user.token).await;
    polite.send_frame(8, &1000u16.to_be_bytes()).await;
    assert_eq!(polite.close_code().await.0, Some(1000));

    // The server is unharmed.
    let conn = server.connect(&user).await;
    conn.request(ClientRequest::Ping).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn websocket_fragments_pings_and_framing_violations() {
    let server = start_server().await;
    let user = server.user("alice").await;

    let mut socket = RawSocket::open_ready(&server.addr, &user.token).await;
    // A ping is answered with a pong carrying its payload.
    socket.send_raw(0x89, b"are you there", true).await;
    let pong = socket.next_frame().await.expect("pong");
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (10, &b"are you there"[..])
    );
    // A request in three fragments, with a ping between them, is reassembled and answered once.
    let request = br#"{"id":"f1","type":"ping"}"#;
    socket.send_raw(0x01, &request[..5], true).await;
    socket.send_raw(0x89, b"p", true).await;
    socket.send_raw(0x00, &request[5..12], true).await;
    socket.send_raw(0x80, &request[12..], true).await;
    let pong = socket.next_frame().await.expect("pong");
    assert_eq!((pong.opcode, &pong.payload[..]), (10, &b"p"[..]));
    let reply = socket.next_frame().await.expect("reply");
    let reply = String::from_utf8_lossy(&reply.payload).to_string();
    assert!(
        reply.starts_with(r#"{"type":"ok","id":"f1""#),
        "reply: {reply}"
    );

    // Each of these breaks RFC 6455 and closes the connection with 4000.
    let violations: [(&str, u8, &[u8], bool); 5] = [
        ("unmasked frame", 0x81, br#"{"type":"ping"}"#, false),
        ("invalid UTF-8", 0x81, b"\xff\xfe", true),
        ("reserved bit", 0xC1, br#"{"type":"ping"}"#, true),
        ("stray continuation", 0x80, b"x", true),
        ("oversize ping", 0x89, &[b'x'; 126], true),
    ];
    for (what, first, payload, masked) in violations {
        let mut socket = RawSocket::open(&server.addr, &user.token).await;
        socket.send_raw(first, payload, masked).await;
        assert_eq!(socket.close_code().await, (Some(4000), 1), "{what}");
    }

    // The server is unharmed.
    let conn = server.connect(&user).await;
    conn.request(ClientRequest::Ping).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_with_4003_and_catches_up_after_reconnect() {
    let server = start_with(|c| {
        c.outbound_queue_frames = 16;
        c.max_text_bytes = 32 * 1024;
        c.max_frame_bytes = 64 * 1024;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bob_reader = server.login("bob").await;
    // Bob's slow device reads nothing; a small receive buffer makes its socket fill quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr.parse().unwrap()).await.unwrap();
    let mut slow = RawSocket::open_on(stream, &server.addr, &bob.token).await;
    let mut healthy = server.connect(&bob_reader).await;

    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    let text = "y".repeat(30 * 1024);
    let total = 300;
    let mut received = 0;
    for i in 0..total {
        a.send_text(&to_bob, &format!("s{i}"), &text).await.unwrap();
        // The healthy device keeps receiving throughout.
        match healthy.next_event().await {
            Some(Event::Message(m)) => {
                assert_eq!(m.seq, i + 1);
                received += 1;
            }
            other => panic!("healthy device got {other:?}"),
        }
    }
    assert_eq!(received, total);
    // The slow device, when it finally reads, finds a 4003 close after what was queued.
    let (code, got) = slow.close_code().await;
    assert_eq!(code, Some(4003));
    assert!(
        got < total as usize,
        "it was cut off before the end ({got} of {total})"
    );
    let (_, metrics) = server.api.get_text("/metrics").await.unwrap();
    assert!(
        !metrics.contains("banter_queue_overflows_total 0"),
        "{metrics}"
    );
    // After reconnecting, sync brings everything.
    let mut messenger = server.messenger(&bob).await;
    for seq in 1..=total {
        assert_eq!(messenger.next_message().await.unwrap().seq, seq);
    }
    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn heartbeat_timeout_closes_a_silent_connection_with_4002() {
    let server = start_with(|c| {
        c.heartbeat_interval_ms = 20_000;
        c.heartbeat_timeout_ms = 60_000;
    })
    .await;
    let alice = server.user("alice").await;
    let healthy_user = server.login("alice").await;
    let mut healthy = server.connect(&healthy_user).await;
    // From here on, time only moves when every task is idle: the silent client never answers
    // the server's pings, and the timeout fires without the test waiting a minute.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let mut silent = RawSocket::open(&server.addr, &alice.token).await;
    let mut pings = 0;
    let code = loop {
        let frame = silent.next_frame().await.expect("a frame");
        match frame.opcode {
            9 => pings += 1,
            8 => break frame.close_code(),
            _ => {}
        }
    };
    assert_eq!(code, Some(4002));
    assert!(pings >= 2, "the server pinged before giving up ({pings})");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited <= Duration::from_secs(90),
        "closed after {waited:?} of silence"
    );
    // The SDK connection answers pings, so it is still open and usable.
    healthy.request(ClientRequest::Ping).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1), healthy.next_event())
            .await
            .is_err(),
        "no close event for the healthy connection"
    );
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_with_1001_and_refuses_new_work() {
    let mut server = start_server().await;
    let alice = server.user("alice").await;
    let mut sdk = server.connect(&alice).await;
    // A raw client that does not answer the close keeps the drain open for a moment.
    let mut raw = RawSocket::open(&server.addr, &alice.token).await;
    server.begin_shutdown();
    assert_eq!(
        sdk.next_event().await,
        Some(Event::Closed { code: Some(1001) })
    );
    let (status, body) = server.api.get_text("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("\"shutting_down\""), "{body}");
    let err = server
        .api
        .login("alice", common::PASSWORD, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 503, body } if body.code == ErrorCode::ShuttingDown),
        "{err:?}"
    );
    assert_eq!(raw.close_code().await.0, Some(1001));
    server.stop().await;
}

#[tokio::test]
async fn storage_failure_is_internal_and_the_connection_survives() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let to_bob = Target::User(bob.id.clone());
    a.send_text(&to_bob, "before", "fine").await.unwrap();
    // Break the database underneath the running server.
    let db = server.config.data_dir.join("banter.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("DROP TABLE messages").unwrap();
    let err = a.send_text(&to_bob, "after", "lost?").await.unwrap_err();
    match err {
        ClientError::Api { body, .. } => {
            assert_eq!(body.code, ErrorCode::Internal);
            assert_eq!(body.message, "internal error", "no internals leak");
        }
        other => panic!("{other:?}"),
    }
    a.request(ClientRequest::Ping)
        .await
        .expect("connection kept");
    server.stop().await;
}
