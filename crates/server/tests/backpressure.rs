//! How connections end at the edges: a client that does not read its replies, an SDK app that
//! does not read its events, an app that drops its connection. None may make the server buffer
//! or hold a socket without bound, and each ends in a defined way.

mod common;

use std::time::Duration;

use banter_client::protocol::ClientRequest;
use banter_client::{ClientError, Event};
use common::{RawSocket, start_server, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_replies_is_pushed_back_and_then_answered_in_full() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // Requests with a long id, whose replies echo it: 100,000 of them are ~100 MB each way, far
    // more than the socket buffers on both sides hold.
    const REQUESTS: usize = 100_000;
    let server = start_server().await;
    let user = server.user("alice").await;
    let socket = RawSocket::open_ready(&server.addr, &user.token).await;
    let (mut rd, mut wr) = socket.stream.into_split();
    let pad = "p".repeat(1000);
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            let mut chunk = RawSocket::encode_texts(
                &(0..100)
                    .map(|i| format!(r#"{{"id":"{i}-{pad}","type":"ping"}}"#))
                    .collect::<Vec<_>>(),
            );
            for _ in 0..REQUESTS / 100 {
                wr.write_all(&chunk).await.unwrap();
                written.fetch_add(100, Relaxed);
            }
            chunk = RawSocket::encode_texts(&[r#"{"id":"last","type":"ping"}"#.to_owned()]);
            wr.write_all(&chunk).await.unwrap();
            wr
        })
    };
    // While nothing reads the replies, the server must stop reading requests: the writer stops
    // making progress long before it is done. (Progress is sampled; a second without any is a
    // stall, since an unblocked writer moves 100 requests in microseconds.)
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = written.load(Relaxed);
        assert!(
            !writer.is_finished(),
            "all {REQUESTS} requests were taken while no reply was read"
        );
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(last < REQUESTS, "stalled after {last} requests");

    // Reading the replies lets it go on: every request is answered, in order, ending with `last`.
    let mut buf = Vec::new();
    let mut at = 0;
    let mut answered = 0usize;
    loop {
        while let Some((frame, used)) = common::parse_frame(&buf[at..]) {
            at += used;
            if frame.opcode != 1 {
                continue;
            }
            let expected = if answered == REQUESTS {
                "\"id\":\"last\"".to_owned()
            } else {
                format!("\"id\":\"{}-", answered % 100)
            };
            let text = String::from_utf8_lossy(&frame.payload);
            assert!(text.contains(&expected), "reply {answered}: {text:.60}");
            answered += 1;
        }
        if answered == REQUESTS + 1 {
            break;
        }
        buf.drain(..at);
        at = 0;
        let mut chunk = vec![0u8; 256 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk))
            .await
            .expect("replies keep coming")
            .unwrap();
        assert!(n > 0, "server closed after {answered} replies");
        buf.extend_from_slice(&chunk[..n]);
    }
    writer.await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_app_that_stops_reading_events_has_its_connection_closed() {
    const SENDS: usize = 9_000;
    // A queue deep enough that the server never kicks Bob itself: the SDK must give up.
    let server = start_with(|c| c.outbound_queue_frames = 100_000).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut b = server.connect(&bob).await;
    let mut socket = RawSocket::open_ready(&server.addr, &alice.token).await;
    // More messages than the SDK buffers for an app; Bob's app reads none of them.
    for burst in 0..SENDS / 50 {
        let texts: Vec<String> = (0..50)
            .map(|i| {
                let key = format!("{burst}-{i}");
                common::send_request(&key, &bob.id, &key, "x")
            })
            .collect();
        socket.send_texts(&texts).await;
        for _ in 0..50 {
            let frame = socket.next_frame().await.expect("an ack");
            assert!(String::from_utf8_lossy(&frame.payload).contains(r#""type":"ok""#));
        }
    }
    // Within the SDK's stall limit (5 s) and a margin, Bob's socket is closed: the server
    // counts only Alice's connection.
    assert_eq!(
        server
            .metric_becomes("banter_connections", 1, Duration::from_secs(30))
            .await,
        1,
        "the stalled connection is still open"
    );
    // Requests now fail at once, and the app still gets what was buffered, then the end.
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), b.request(ClientRequest::Ping)).await,
        Ok(Err(ClientError::Closed { .. }))
    ));
    let mut buffered = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), b.next_event()).await {
            Ok(Some(Event::Message(_))) => buffered += 1,
            Ok(None) => break,
            other => panic!("after {buffered} messages: {other:?}"),
        }
    }
    assert!(buffered > 0 && buffered < SENDS, "{buffered} buffered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_an_sdk_connection_closes_its_socket() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    let conns = [server.connect(&alice).await, server.connect(&alice).await];
    assert_eq!(server.metric("banter_connections").await, 2);
    drop(conns);
    // The server sees both go (well before any heartbeat timeout).
    assert_eq!(
        server
            .metric_becomes("banter_connections", 0, Duration::from_secs(5))
            .await,
        0,
        "dropped connections are still open"
    );
    server.stop().await;
}
