//! NATS for tests: the shared server (`BANTER_TEST_NATS`, by default `nats://127.0.0.1:4222`),
//! a fresh cluster name per test so that tests share nothing, and removal of what a test
//! cluster left on the server. When NATS cannot be reached the test fails, saying so; it never
//! skips.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The shared NATS server.
pub fn url() -> String {
    std::env::var("BANTER_TEST_NATS").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A cluster name no other test (of this or another run) uses.
pub fn fresh_cluster() -> String {
    format!(
        "test-{}-{}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    )
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Connects to the shared NATS or fails the test with what to do about it.
pub async fn connect() -> async_nats::Client {
    let url = url();
    match async_nats::connect(&url).await {
        Ok(client) => client,
        Err(e) => panic!(
            "cannot connect to NATS at {url}: {e}\n\
             start it with `scripts/services.sh` (or point BANTER_TEST_NATS at a server)"
        ),
    }
}

/// Deletes what the clusters named `clusters` keep on the shared NATS (their presence and rooms buckets).
/// Runs on a thread of its own, so that it can be called from `Drop` inside a test's runtime.
pub fn remove_clusters(clusters: Vec<String>) {
    if clusters.is_empty() {
        return;
    }
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let js = async_nats::jetstream::new(connect().await);
            for cluster in clusters {
                let buckets = [
                    banter_server::bus::nats::bucket(&cluster),
                    banter_server::bus::nats::counter::bucket(&cluster),
                ];
                for bucket in buckets {
                    if let Err(e) = js.delete_key_value(&bucket).await {
                        eprintln!("could not delete test bucket {bucket}: {e}");
                    }
                }
            }
        });
    })
    .join()
    .expect("cleanup thread");
}
