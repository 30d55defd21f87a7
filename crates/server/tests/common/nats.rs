//! NATS for tests: the shared server (`BANTER_TEST_NATS`, by default `nats://127.0.0.1:4222`),
//! a fresh cluster name per test so that tests share nothing, and removal of what a test
//! cluster left on the server. When NATS cannot be reached the test fails, saying so; it never
//! skips.

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

/// Where Debian puts the NATS server.
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A NATS server of the test's own (with JetStream, on a free port, its storage in a temporary
/// directory), which the test may stop and start again without disturbing the shared one.
pub struct Instance {
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Instance {
    /// Starts a fresh server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut this = Self {
            port,
            url: format!("nats://127.0.0.1:{port}"),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
        };
        this.resume();
        this
    }

    /// Starts the server again (same port, same storage) and waits until it accepts.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = std::process::Command::new(NATS_SERVER)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {NATS_SERVER}: {e} (apt install nats-server)"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not accept on port {} within 10 s",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL: nothing flushed, as when it crashes) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            _ = child.kill();
            _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}
