//! The first frames of a connection: `hello` comes first, whatever the client sends before it
//! has read the `101`.

mod common;

use common::{RawSocket, start_server};
use serde_json::Value;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_comes_first_even_for_requests_in_the_upgrade_write() {
    let server = start_server().await;
    let alice = server.user("alice").await;
    // Requests that need no store answer at once: they raced the hello before.
    let early: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"id":"p{i}","type":"ping"}}"#))
        .collect();
    let bytes = RawSocket::encode_texts(&early);
    for attempt in 0..20 {
        let stream = TcpStream::connect(&server.addr).await.unwrap();
        let mut socket = RawSocket::open_sending(stream, &server.addr, &alice.token, &bytes).await;
        let mut kinds = Vec::new();
        while kinds.len() < 6 {
            let frame = socket.next_frame().await.expect("a frame");
            if frame.opcode != 1 {
                continue;
            }
            let v: Value = serde_json::from_slice(&frame.payload).unwrap();
            kinds.push(format!(
                "{}:{}",
                v["type"].as_str().unwrap(),
                v["id"].as_str().unwrap_or("")
            ));
        }
        assert_eq!(
            kinds,
            ["hello:", "ok:p0", "ok:p1", "ok:p2", "ok:p3", "ok:p4"],
            "attempt {attempt}"
        );
    }
    server.stop().await;
}

/// PROTOCOL.md's `hello` example, which documents every announced limit with its default.
fn documented_limits() -> Value {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let start = doc
        .find(r#"{"type": "hello""#)
        .expect("PROTOCOL.md has a hello example");
    let end = start + doc[start..].find("\n```").expect("the example ends");
    let hello: Value = serde_json::from_str(&doc[start..end]).expect("the example is JSON");
    hello["limits"].clone()
}

#[tokio::test]
async fn hello_announces_every_documented_limit_with_its_default() {
    // The real defaults, not the test configuration's generous rates.
    let server = common::start_with(|c| {
        let defaults = banter_server::config::Config::default();
        c.send_rate_per_sec = defaults.send_rate_per_sec;
        c.send_burst = defaults.send_burst;
        c.request_rate_per_sec = defaults.request_rate_per_sec;
        c.request_burst = defaults.request_burst;
        c.connection_request_rate_per_sec = defaults.connection_request_rate_per_sec;
        c.connection_request_burst = defaults.connection_request_burst;
    })
    .await;
    let alice = server.user("alice").await;
    let mut socket = RawSocket::open(&server.addr, &alice.token).await;
    let hello: Value = serde_json::from_slice(&socket.next_frame().await.unwrap().payload).unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["limits"], documented_limits());
    server.stop().await;
}
