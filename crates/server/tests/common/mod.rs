//! The one helper every integration test uses: start a real server on `127.0.0.1:0` with a
//! fresh SQLite store, make users, and open raw sockets for misbehaving-client tests.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use banter_client::{Api, Connection, Messenger};
use banter_server::store::Store;
use banter_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        _ = stopped.await;
    }));
    TestServer {
        api: Api::new(addr.clone()),
        addr,
        store,
        config,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

impl TestServer {
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

/// A TCP connection to `addr` from the local address `from` (on Linux, any of 127.0.0.0/8
/// reaches a server listening on 127.0.0.1, and counts as another client address).
pub async fn tcp_from(addr: &str, from: IpAddr) -> std::io::Result<TcpStream> {
    let remote: SocketAddr = addr.parse().expect("a socket address");
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(remote).await
}

/// Writes `request` (a whole HTTP/1.1 request) and reads one response with a
/// `Content-Length`: its status and body. `None` if the server closed before a whole response.
pub async fn http_on(stream: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Reads one HTTP/1.1 response with a `Content-Length`; `None` if the stream ends first.
pub async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (i + 4, length);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some((status, body))
}

/// Reads until the server closes the stream (end of stream or reset), at most `within`:
/// the bytes it sent before, or `None` if it was still open then.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(got)
}

/// A WebSocket opened by hand, for clients that misbehave (never answer pings, never read).
/// Frames are parsed here without answering anything.
pub struct RawSocket {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A server frame as read off a [`RawSocket`].
#[derive(Debug)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code, for a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawSocket {
    /// Performs the upgrade on `stream` with `token`; panics unless the server switches.
    pub async fn open_on(mut stream: TcpStream, addr: &str, token: &str) -> Self {
        let request = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "handshake refused: {head}"
        );
        Self {
            stream,
            buf: buf[end..].to_vec(),
        }
    }

    /// Connects to `addr` and upgrades.
    pub async fn open(addr: &str, token: &str) -> Self {
        Self::open_on(TcpStream::connect(addr).await.unwrap(), addr, token).await
    }

    /// Connects, upgrades and reads the `hello`, leaving the socket ready for requests.
    pub async fn open_ready(addr: &str, token: &str) -> Self {
        let mut socket = Self::open(addr, token).await;
        let hello = socket.next_frame().await.expect("hello");
        assert_eq!(hello.opcode, 1, "hello is a text frame");
        assert!(String::from_utf8_lossy(&hello.payload).contains(r#""type":"hello""#));
        socket
    }

    /// Reads the next frame; `None` at end of stream.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until a close frame and returns its code, counting the text frames before.
    pub async fn close_code(&mut self) -> (Option<u16>, usize) {
        let mut texts = 0;
        while let Some(frame) = self.next_frame().await {
            match frame.opcode {
                1 => texts += 1,
                8 => return (frame.close_code(), texts),
                _ => {}
            }
        }
        (None, texts)
    }

    /// Sends a masked, final client frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw(0x80 | opcode, payload, true).await;
    }

    /// Sends a frame with the given first byte (FIN, reserved bits, opcode), masked or not.
    pub async fn send_raw(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut out = Vec::new();
        encode_frame(&mut out, first, payload, masked);
        self.stream.write_all(&out).await.unwrap();
    }

    /// Sends masked, final text frames in one write, as a client that pipelines requests.
    pub async fn send_texts(&mut self, texts: &[String]) {
        let out = Self::encode_texts(texts);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The bytes of masked, final text frames.
    pub fn encode_texts(texts: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for text in texts {
            encode_frame(&mut out, 0x81, text.as_bytes(), true);
        }
        out
    }
}

/// Appends one frame with the given first byte (FIN, reserved bits, opcode) to `out`.
fn encode_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], masked: bool) {
    out.push(first);
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let mask = [1u8, 2, 3, 4];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
}

/// Parses one server frame off the front of `buf`: the frame and the bytes it took.
pub fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // servers never mask, but be tolerant
    }
    if buf.len() < at + len {
        return None;
    }
    Some((
        RawFrame {
            opcode,
            payload: buf[at..at + len].to_vec(),
        },
        at + len,
    ))
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

/// An HTTP response read off a raw connection, headers included.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header lines, lower-cased names: `("retry-after", "1")`.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `code` of an error body.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        Some(v["error"]["code"].as_str()?.to_owned())
    }
}

/// A keep-alive HTTP/1.1 connection from a chosen local address, for clients that send many
/// requests (a login flood).
pub struct HttpConn {
    stream: TcpStream,
    addr: String,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr` from local address `from` (any of 127.0.0.0/8).
    pub async fn open_from(addr: &str, from: std::net::IpAddr) -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(from, 0))?;
        let stream = socket.connect(addr.parse().unwrap()).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            addr: addr.to_owned(),
            buf: Vec::new(),
        })
    }

    /// Sends one request and reads its response; `None` if the connection ended.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Option<HttpReply> {
        let body = body.to_string();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.ok()?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut reply = parse_head(&head);
        let len: usize = reply.header("content-length")?.parse().ok()?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        reply.body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).to_string();
        self.buf.drain(..head_end + len);
        Some(reply)
    }

    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }
}

/// The status line and headers of a response (its body left empty).
fn parse_head(head: &str) -> HttpReply {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: String::new(),
    }
}

/// One HTTP/1.1 request on a fresh connection from local address `from` (any of 127.0.0.0/8,
/// to look like another client), read to the end.
pub async fn http_from(
    addr: &str,
    from: std::net::IpAddr,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> HttpReply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    HttpReply {
        body: body.to_owned(),
        ..parse_head(head)
    }
}

/// `POST /v1/sessions` from `from`.
pub async fn login_from(
    addr: &str,
    from: std::net::IpAddr,
    username: &str,
    password: &str,
) -> HttpReply {
    let body = serde_json::json!({"username": username, "password": password});
    http_from(addr, from, "POST", "/v1/sessions", &body).await
}
