//! Replies a client can make the server hold: 60 sockets that ask for the largest pages and
//! never read them. Pages are bounded by their encoded bytes (`max_page_bytes`), and a session
//! over its high-water mark builds no further reply, so the memory they hold stays bounded.
//!
//! The server runs in this test's process, so the test measures the process's resident set
//! (the client side here holds next to nothing: raw sockets that are never read) and the
//! server's own count of bytes encoded but not written (`banter_outbound_buffered_bytes`).

mod common;

use std::time::Duration;

use banter_client::Target;
use common::{RawSocket, rss_kib, start_with};

/// Sockets that never read.
const SOCKETS: usize = 60;
/// Sync requests each socket sends at once: their replies are far more than the kernel's
/// socket buffers hold, so every session backs up.
const REQUESTS: usize = 64;
/// Messages stored, each of `max_text_bytes` control characters (six bytes each once
/// escaped: ~96 KiB encoded per message, ~5.6 MiB for a count-bounded page of all of them).
const MESSAGES: usize = 60;
/// The session's high-water mark (`session::OUT_HIGH_WATER`).
const HIGH_WATER: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_sockets_that_never_read_the_largest_pages_hold_little_memory() {
    let server = start_with(|c| {
        c.max_connections_per_user = SOCKETS + 1;
        // A send of 16 KiB of control characters is a ~96 KiB frame.
        c.max_frame_bytes = 128 * 1024;
    })
    .await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let a = server.connect(&alice).await;
    let text = "\u{1}".repeat(server.config.max_text_bytes);
    let mut conv = String::new();
    for i in 0..MESSAGES {
        conv = a
            .send_text(&Target::User(bob.id.clone()), &format!("m{i}"), &text)
            .await
            .unwrap()
            .conversation;
    }
    // Warm up the path once, then take the baseline.
    let b = server.connect(&bob).await;
    let page = b.sync(&conv, 0, None).await.unwrap();
    assert!(page.has_more, "the page was cut by bytes, not by count");
    drop(b);
    let before = rss_kib();

    let request = serde_json::json!({
        "type": "sync", "conversation": conv, "after_seq": 0, "limit": u32::MAX,
    });
    let burst = RawSocket::encode_texts(
        &(0..REQUESTS)
            .map(|i| {
                let mut r = request.clone();
                r["id"] = i.to_string().into();
                r.to_string()
            })
            .collect::<Vec<_>>(),
    );
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut socket = RawSocket::open_ready(&server.addr, &bob.token).await;
        use tokio::io::AsyncWriteExt as _;
        socket.stream.write_all(&burst).await.unwrap();
        sockets.push(socket);
    }
    // Every session backs up: its unwritten bytes pass the high-water mark.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let buffered = loop {
        let buffered = server.metric("banter_outbound_buffered_bytes").await;
        if buffered >= SOCKETS as u64 * HIGH_WATER {
            break buffered;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions did not back up: {buffered} bytes buffered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let growth_mib = rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "bounded replies: {SOCKETS} sockets, {buffered} bytes buffered, RSS growth {growth_mib} MiB"
    );
    assert!(
        growth_mib <= 64,
        "RSS grew by {growth_mib} MiB for {SOCKETS} sockets that never read"
    );
    // Each session holds about the mark plus one bounded reply.
    let per_socket = buffered / SOCKETS as u64;
    let bound = HIGH_WATER + server.config.max_page_bytes as u64 + 64 * 1024;
    assert!(
        per_socket <= bound,
        "{per_socket} bytes per socket (bound {bound})"
    );
    drop(sockets);
    server.stop().await;
}
