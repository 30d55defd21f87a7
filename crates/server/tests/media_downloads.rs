//! Downloads in progress are bounded per user (`media_downloads_per_user`): readers that never
//! read hold their slots, one more download is `rate_limited`, and a slot comes back when its
//! connection goes.

mod common;

use std::time::{Duration, Instant};

use common::media::{request, upload};
use common::start_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_in_progress_are_bounded_per_user() {
    let server = start_with(|c| c.media_downloads_per_user = 2).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // Far larger than what the socket buffers below hold, so a reader that never reads keeps
    // its download in progress. A PDF by its first bytes (allowed by default).
    let mut file = b"%PDF-1.4\n".to_vec();
    file.resize(48 * 1024 * 1024, b'x');
    let up = upload(&server.addr, &alice.token, Some("big.pdf"), &file).await;
    assert_eq!(up.status, 201, "{:?}", String::from_utf8_lossy(&up.body));
    let id = up.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/media/{id}");

    // Two stalled downloads: each answered 200 (so it holds its slot), then never read further.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        // A small receive buffer (set before connecting, so the kernel does not grow it):
        // the server's sends stall after a few MiB, far from the file's end.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut s = socket.connect(server.addr.parse().unwrap()).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            alice.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut status = [0u8; 12];
        s.read_exact(&mut status).await.unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
        stalled.push(s);
    }
    // A third download while both are in progress is refused at once.
    let refused = request(
        &server.addr,
        "GET",
        &path,
        &alice.token,
        &["Range: bytes=0-9"],
        b"",
    )
    .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"]["code"], "rate_limited");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // The bound is per user: bob's request gets its own answer (he may not read this file),
    // not a refusal for alice's slots.
    let other = request(&server.addr, "GET", &path, &bob.token, &[], b"").await;
    assert_eq!(other.status, 404);

    // One stalled reader goes away: its slot comes back.
    drop(stalled.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(
            &server.addr,
            "GET",
            &path,
            &alice.token,
            &["Range: bytes=0-8"],
            b"",
        )
        .await;
        if r.status == 206 {
            assert_eq!(r.body, b"%PDF-1.4\n");
            break;
        }
        assert_eq!(r.status, 429);
        assert!(
            Instant::now() < deadline,
            "the slot of a closed connection never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stalled);
    server.stop().await;
}

/// One response on a kept-alive connection: its status and body (by `Content-Length`).
async fn exchange(s: &mut tokio::net::TcpStream, request: &str) -> (u16, Vec<u8>) {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_download_gives_its_slot_back_on_a_kept_alive_connection() {
    let server = start_with(|c| c.media_downloads_per_user = 2).await;
    let alice = server.user("alice").await;
    let up = upload(&server.addr, &alice.token, Some("a.txt"), b"kept alive\n").await;
    assert_eq!(up.status, 201);
    let id = up.json()["id"].as_str().unwrap().to_owned();
    // More downloads than the bound, one after another on one connection (as a browser does):
    // each gives its slot back when its body ends, not when the connection closes.
    let mut s = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /v1/media/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        alice.token
    );
    for i in 0..5 {
        let (status, body) = exchange(&mut s, &request).await;
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"kept alive\n"[..]),
            "download {i}"
        );
    }
    server.stop().await;
}
