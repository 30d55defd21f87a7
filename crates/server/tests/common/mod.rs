//! The one helper every integration test uses: start a real server on `127.0.0.1:0` with a
//! fresh SQLite store, make users, and open raw sockets for misbehaving-client tests (raw HTTP
//! in `raw_http`, a hand-made WebSocket in `raw_ws`, both re-exported here).
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod media;
pub mod nats;
pub mod postgres;
mod raw_http;
mod raw_ws;

// Each test crate uses some of these, none uses all of them.
#[allow(unused_imports)]
pub use raw_http::*;
#[allow(unused_imports)]
pub use raw_ws::*;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use banter_client::{Api, Connection, Messenger};
use banter_server::store::Store;
use banter_server::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Password every test user gets.
pub const PASSWORD: &str = "correct horse battery";

/// A running server and what is needed to talk to it.
pub struct TestServer {
    pub addr: String,
    pub api: Api,
    pub store: Arc<dyn Store>,
    pub config: Config,
    /// The built-in TLS pair, when the config names one (tests reload it without a signal).
    pub tls: Option<Arc<banter_server::Tls>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
    pub session: String,
}

/// The configuration tests start from: cheap password hashing, generous rates, per-address
/// connection caps that thousands of clients on 127.0.0.1 do not meet (tests/admission.rs sets
/// its own), and groups open to adding anyone not blocked (so that tests of groups need not
/// befriend every member first; tests/blocks.rs runs the default `friends` policy). Login and
/// registration throttles are generous too (tests/auth_limits.rs tightens them).
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        group_add_policy: banter_server::config::GroupAddPolicy::Anyone,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        password_memory_kib: 64,
        password_iterations: 1,
        send_rate_per_sec: 100_000,
        send_burst: 100_000,
        request_rate_per_sec: 100_000,
        request_burst: 100_000,
        connection_request_rate_per_sec: 100_000,
        connection_request_burst: 100_000,
        max_pending_per_ip: 10_000,
        max_sessions_per_ip: 100_000,
        // Every test logs in and registers from 127.0.0.1; tests of the throttles tighten these.
        login_failures_per_account: 100_000,
        login_failures_per_address: 100_000,
        register_per_address_per_hour: 1_000_000,
        register_burst: 100_000,
        ..Config::default()
    }
}

/// Starts a server with the test configuration.
pub async fn start_server() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server with the test configuration adjusted by `adjust`.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    let server = Server::bind(config.clone()).await.expect("server binds");
    let addr = server.local_addr().to_string();
    let store = server.store();
    let tls = server.tls();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        _ = stopped.await;
    }));
    TestServer {
        api: Api::new(addr.clone()),
        addr,
        store,
        config,
        tls,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

impl TestServer {
    /// Rows the store holds for `conv`, counted in its database file (a read-only connection
    /// beside the server's): one per entry, whatever the number of members (read diffusion).
    pub fn stored_rows(&self, conv: i64) -> u64 {
        let db = rusqlite::Connection::open_with_flags(
            self.config
                .data_dir
                .join(banter_server::store::sqlite::DB_FILE),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the database read-only");
        db.query_row(
            "SELECT COUNT(*) FROM messages WHERE conv_id = ?1",
            [conv],
            |r| r.get(0),
        )
        .expect("count rows")
    }

    /// The value of the unlabelled metric `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (_, metrics) = self.api.get_text("/metrics").await.unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Polls the metric `name` until it equals `want`, for at most `within`; returns the last
    /// value read (so the caller's assertion shows what it was).
    pub async fn metric_becomes(&self, name: &str, want: u64, within: Duration) -> u64 {
        self.metric_until(name, |now| now == want, within).await
    }

    /// Polls the metric `name` until `done` says so of its value, for at most `within`;
    /// returns the last value read.
    pub async fn metric_until(
        &self,
        name: &str,
        done: impl Fn(u64) -> bool,
        within: Duration,
    ) -> u64 {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let now = self.metric(name).await;
            if done(now) || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Registers and logs in `name`.
    pub async fn user(&self, name: &str) -> TestUser {
        let user = self.api.register(name, PASSWORD).await.expect("register");
        let mut u = self.login(name).await;
        u.id = user.id;
        u
    }

    /// Logs `name` in as another device.
    pub async fn login(&self, name: &str) -> TestUser {
        let login = self
            .api
            .login(name, PASSWORD, Some("test device"))
            .await
            .expect("login");
        TestUser {
            id: login.user.id,
            username: login.user.username,
            token: login.token,
            session: login.session_id,
        }
    }

    /// Opens a WebSocket connection for `user`.
    pub async fn connect(&self, user: &TestUser) -> Connection {
        Connection::connect(&self.addr, &user.token)
            .await
            .expect("connect")
    }

    /// Registers and logs in `name` over connections from the local address `from`.
    pub async fn user_from(&self, name: &str, from: IpAddr) -> TestUser {
        let body = serde_json::json!({ "username": name, "password": PASSWORD }).to_string();
        let (status, user) = self
            .http_from(from, "POST", "/v1/accounts", None, &body)
            .await;
        assert_eq!(status, 201, "register {name}: {user}");
        let body = serde_json::json!({ "username": name, "password": PASSWORD, "device": "test" })
            .to_string();
        let (status, login) = self
            .http_from(from, "POST", "/v1/sessions", None, &body)
            .await;
        assert_eq!(status, 200, "login {name}: {login}");
        let login: serde_json::Value = serde_json::from_str(&login).unwrap();
        let user: serde_json::Value = serde_json::from_str(&user).unwrap();
        TestUser {
            id: user["id"].as_str().unwrap().to_owned(),
            username: name.to_owned(),
            token: login["token"].as_str().unwrap().to_owned(),
            session: login["session_id"].as_str().unwrap().to_owned(),
        }
    }

    /// One HTTP request on a fresh connection from `from`: status and body.
    pub async fn http_from(
        &self,
        from: IpAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut stream = tcp_from(&self.addr, from).await.expect("connect");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        http_on(&mut stream, &request)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: closed without a response"))
    }

    /// Opens a WebSocket connection for `user` from the local address `from`.
    pub async fn connect_from(&self, user: &TestUser, from: IpAddr) -> Connection {
        Connection::connect_from(&self.addr, &user.token, Some(from))
            .await
            .expect("connect")
    }

    /// Opens a reconnecting messenger for `user`.
    pub async fn messenger(&self, user: &TestUser) -> Messenger {
        Messenger::connect(&self.addr, &user.token)
            .await
            .expect("messenger connects")
    }

    /// Begins graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            _ = stop.send(());
        }
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// This process's resident set size in KiB (Linux `/proc/self/status`), 0 where unknown. In
/// tests the server runs in the test's process, so this is the server's memory plus the test's.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sends a request and decodes its result, panicking on an error.
pub async fn ok<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    request: banter_client::protocol::ClientRequest,
) -> T {
    let what = format!("{request:?}");
    conn.typed(request)
        .await
        .unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Sends a request that must fail, and returns its error code.
pub async fn refused(
    conn: &Connection,
    request: banter_client::protocol::ClientRequest,
) -> banter_client::protocol::ErrorCode {
    let what = format!("{request:?}");
    match conn.request(request).await {
        Err(banter_client::ClientError::Api { body, .. }) => body.code,
        other => panic!("{what} should have been refused, got {other:?}"),
    }
}

/// The next event on `conn` that `pick` accepts, skipping the others.
pub async fn next_matching<T>(
    conn: &mut Connection,
    mut pick: impl FnMut(banter_client::Event) -> Option<T>,
) -> T {
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), conn.next_event())
            .await
            .expect("an event within 10 s")
            .expect("connection open");
        if let Some(t) = pick(event) {
            return t;
        }
    }
}

/// The text of a `send` request to user `to`.
pub fn send_request(id: &str, to: &str, client_msg_id: &str, text: &str) -> String {
    serde_json::json!({
        "id": id, "type": "send", "to": to, "client_msg_id": client_msg_id, "text": text,
    })
    .to_string()
}

/// A `group_create` request for a group of `members` (the caller is added as owner).
pub fn create_group(
    name: &str,
    members: &[&TestUser],
    public: bool,
) -> banter_client::protocol::ClientRequest {
    banter_client::protocol::ClientRequest::GroupCreate {
        name: name.into(),
        description: Some("a test group".into()),
        public,
        members: members.iter().map(|u| u.id.clone()).collect(),
    }
}
