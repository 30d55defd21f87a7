//! A 200 MB upload streams to disk: the server's memory does not grow with the file. Alone in
//! its test binary, so that the process's peak RSS is this upload's (the server runs in the
//! test's process).

mod common;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const SIZE: usize = 200 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// This process's `VmRSS` and `VmHWM` (peak) in KiB.
fn rss_and_peak() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_upload_streams_in_bounded_memory() {
    let server = common::start_with(|c| {
        c.media_max_file_bytes = 256 * 1024 * 1024;
    })
    .await;
    let alice = server.user("alice").await;
    // A PDF by its first bytes (allowed by default), then zeros and a counter.
    let mut chunk = vec![0u8; CHUNK];
    chunk[..9].copy_from_slice(b"%PDF-1.4\n");
    let mut hasher = Sha256::new();
    // Warm up: one small upload, so that first-use allocations are not counted.
    let warm = common::media::upload(&server.addr, &alice.token, None, b"%PDF-1.4\nwarm").await;
    assert_eq!(warm.status, 201);

    // Reset the peak to the current RSS (Linux: "5" to clear_refs), then upload.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = rss_and_peak();
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /v1/media?name=big.pdf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Length: {SIZE}\r\n\r\n",
        alice.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for i in 0..SIZE / CHUNK {
        if i > 0 {
            chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        hasher.update(&chunk);
        stream.write_all(&chunk).await.unwrap();
    }
    let reply = common::media::read_reply(&mut stream).await;
    let elapsed = started.elapsed();
    let (_, peak) = rss_and_peak();
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let info = reply.json();
    let id: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(info["id"], id.as_str(), "the id is the bytes' SHA-256");
    assert_eq!(info["size"], SIZE);
    assert_eq!(info["type"], "application/pdf");
    let stored = server
        .config
        .data_dir
        .join("media")
        .join(&id[..2])
        .join(&id);
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), SIZE as u64);
    let growth_kib = peak.saturating_sub(before);
    println!(
        "200 MiB upload: {:.1} s, {:.0} MiB/s, peak RSS growth {} KiB",
        elapsed.as_secs_f64(),
        200.0 / elapsed.as_secs_f64(),
        growth_kib
    );
    assert!(
        growth_kib < 32 * 1024,
        "the process's peak RSS grew by {growth_kib} KiB during the upload"
    );
    server.stop().await;
}
