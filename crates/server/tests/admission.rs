//! Connection admission against a real server: a flood of connections that never finish their
//! request, trickled headers, a body that never comes, idle keep-alive, the global cap and its
//! health reserve, per-address caps, the WebSocket key check, and malformed close frames.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use banter_client::protocol::{ClientRequest, ErrorCode};
use banter_client::{ClientError, Connection, Event, Target};
use common::{
    RawSocket, TestServer, http_on, next_matching, read_response, read_until_closed, start_with,
    tcp_from,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const FLOODER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const THIRD: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

/// Connections in the flood, all from 127.0.0.1.
const FLOOD: usize = 20_000;
/// Flood connections open at once on the client side (the test process also holds the
/// server's sockets: both stay far below the 20,000 open files a process may hold).
const IN_FLIGHT: usize = 256;
/// The flood's per-address cap and header deadline.
const FLOOD_CAP: usize = 64;
const FLOOD_DEADLINE: Duration = Duration::from_millis(2000);
/// A refusal "at once" comes well before the deadline (typically within a millisecond; this
/// much leaves room for a busy machine).
const AT_ONCE: Duration = Duration::from_millis(1000);
/// Slack for a busy two-core machine.
const MARGIN: Duration = Duration::from_millis(1000);

/// A request that never finishes: headers with no end.
const UNFINISHED: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Slow: ";

/// What happened to one flood connection.
enum Outcome {
    /// Closed by the server this long after connecting.
    Closed(Duration),
    /// Still open at the deadline plus the margin.
    Held,
    /// `connect` failed.
    ConnectFailed(std::io::Error),
}

async fn flood_one(addr: String) -> Outcome {
    let mut stream = match TcpStream::connect(&addr).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::ConnectFailed(e),
    };
    let connected = Instant::now();
    // A refused connection may be closed before this write: then reading sees it closed too.
    if stream.write_all(UNFINISHED).await.is_ok() {
        _ = stream.flush().await;
    }
    match read_until_closed(&mut stream, FLOOD_DEADLINE + MARGIN).await {
        Some(_) => Outcome::Closed(connected.elapsed()),
        None => Outcome::Held,
    }
}

#[derive(Debug, Default)]
struct Tally {
    refused_at_once: usize,
    closed_at_deadline: usize,
    /// Closed after "at once" but before the deadline: neither refused nor timed out.
    in_between: usize,
    held: usize,
    connect_failed: usize,
    slowest_refusal: Duration,
    slowest_deadline_close: Duration,
}

/// Opens `FLOOD` never-finishing connections, `IN_FLIGHT` at a time; each is dropped as soon
/// as the server closes it.
async fn flood(addr: String) -> (Tally, Duration) {
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let permit = Arc::clone(&gate).acquire_owned().await.unwrap();
        let addr = addr.clone();
        tasks.spawn(async move {
            let outcome = flood_one(addr).await;
            drop(permit);
            outcome
        });
    }
    let mut tally = Tally::default();
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Outcome::Closed(after) if after < AT_ONCE => {
                tally.refused_at_once += 1;
                tally.slowest_refusal = tally.slowest_refusal.max(after);
            }
            Outcome::Closed(after) if after >= FLOOD_DEADLINE - Duration::from_millis(50) => {
                tally.closed_at_deadline += 1;
                tally.slowest_deadline_close = tally.slowest_deadline_close.max(after);
            }
            Outcome::Closed(_) => tally.in_between += 1,
            Outcome::Held => tally.held += 1,
            Outcome::ConnectFailed(e) => {
                eprintln!("flood connect failed: {e}");
                tally.connect_failed += 1;
            }
        }
    }
    (tally, started.elapsed())
}

/// A message from `from` to `to` and its delivery: the round trip.
async fn chat_round(from: &Connection, to: &mut Connection, to_id: &str, n: usize) -> Duration {
    let started = Instant::now();
    let id = format!("flood-{n}");
    from.send_text(&Target::User(to_id.to_owned()), &id, "still here")
        .await
        .expect("send during the flood");
    next_matching(to, |e| match e {
        Event::Message(m) if m.client_msg_id == id => Some(()),
        _ => None,
    })
    .await;
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Done-when 2 of issue 9: 20,000 connections that never finish their request, from one
/// address. The per-address cap refuses most at once, the rest are closed at the header
/// deadline, none is held past it, and a second address registers, logs in, connects and
/// chats throughout. Run with `--nocapture` to see the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_refused_or_cut_while_another_chats() {
    let server = start_with(|c| {
        c.max_pending_per_ip = FLOOD_CAP;
        c.http_header_timeout_ms = FLOOD_DEADLINE.as_millis() as u64;
    })
    .await;
    let alice = server.user_from("alice", OTHER).await;
    let bob = server.user_from("bob", OTHER).await;
    let a = server.connect_from(&alice, OTHER).await;
    let mut b = server.connect_from(&bob, OTHER).await;

    let flooding = tokio::spawn(flood(server.addr.clone()));
    let mut latencies = Vec::new();
    let mut newcomers = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    while !flooding.is_finished() {
        pace.tick().await;
        let n = latencies.len();
        latencies.push(chat_round(&a, &mut b, &bob.id, n).await);
        if n % 50 == 0 {
            // A newcomer from the second address: registers, logs in, connects and pings.
            let started = Instant::now();
            let user = server.user_from(&format!("newcomer{n}"), OTHER).await;
            let conn = server.connect_from(&user, OTHER).await;
            conn.request(ClientRequest::Ping).await.expect("ping");
            newcomers.push(started.elapsed());
        }
    }
    let (tally, took) = flooding.await.unwrap();

    latencies.sort_unstable();
    newcomers.sort_unstable();
    println!(
        "flood of {FLOOD} from {FLOODER} in {took:.2?}: {tally:?}; chat from {OTHER}: {} rounds, \
         p50 {:.1?}, p99 {:.1?}, max {:.1?}; newcomers (register + login + connect + ping): {}, \
         max {:.1?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        newcomers.len(),
        newcomers.last().unwrap(),
    );
    assert_eq!(tally.connect_failed, 0);
    assert_eq!(tally.held, 0, "no connection is held past the deadline");
    assert_eq!(
        tally.in_between, 0,
        "each is refused at once or cut at the deadline"
    );
    assert_eq!(tally.refused_at_once + tally.closed_at_deadline, FLOOD);
    assert!(
        tally.refused_at_once >= FLOOD * 9 / 10,
        "most are refused at once: {tally:?}"
    );
    assert!(tally.slowest_deadline_close <= FLOOD_DEADLINE + MARGIN);
    // The server agrees: every flood connection was refused at accept or closed at its deadline.
    let refused = server
        .metric("banter_connections_refused_per_ip_total")
        .await;
    let timed_out = server.metric("banter_http_timeouts_total").await;
    assert_eq!(refused + timed_out, FLOOD as u64);
    assert!(latencies.len() >= 10, "the chat went on throughout");
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(2),
        "every message arrived within 2 s"
    );
    server.stop().await;
}

/// Connects from 127.0.0.1 and writes `bytes`.
async fn connect_and_send(server: &TestServer, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(bytes).await.unwrap();
    (stream, started)
}

/// Asserts the server closes `stream` between `at` (minus a little) and `at` plus the margin,
/// without a response; returns when it closed.
async fn assert_closed_at(stream: &mut TcpStream, started: Instant, at: Duration, what: &str) {
    let got = read_until_closed(stream, at + MARGIN)
        .await
        .unwrap_or_else(|| panic!("{what}: still open after {:?}", at + MARGIN));
    let after = started.elapsed();
    assert!(
        after >= at - Duration::from_millis(50) && after <= at + MARGIN,
        "{what}: closed after {after:?}, not at its deadline {at:?}"
    );
    assert!(
        got.is_empty(),
        "{what}: closed without a response, got {got:?}"
    );
}

#[tokio::test]
async fn silent_and_trickled_headers_are_cut_at_the_header_deadline() {
    let server = start_with(|c| {
        c.http_header_timeout_ms = 1000;
        c.http_idle_timeout_ms = 10_000;
    })
    .await;
    let (mut silent, started) = connect_and_send(&server, b"").await;
    assert_closed_at(&mut silent, started, Duration::from_secs(1), "silent").await;

    // A byte every 100 ms: the headers would take 4 s.
    let request = b"GET /healthz HTTP/1.1\r\nHost: trickle\r\nX-Pad: 0123456789\r\n\r\n";
    let (mut trickle, started) = connect_and_send(&server, b"").await;
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    for byte in request {
        pace.tick().await;
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
    }
    assert_closed_at(&mut trickle, started, Duration::from_secs(1), "trickle").await;
    assert!(server.metric("banter_http_timeouts_total").await >= 2);

    // The same request in one piece is answered.
    let mut whole = TcpStream::connect(&server.addr).await.unwrap();
    let request = String::from_utf8(request.to_vec()).unwrap();
    assert_eq!(http_on(&mut whole, &request).await.unwrap().0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_promised_body_that_never_comes_is_cut_at_the_request_deadline() {
    let server = start_with(|c| {
        c.http_header_timeout_ms = 5000;
        c.http_request_timeout_ms = 1000;
    })
    .await;
    let head = "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"username\"";
    let (mut stream, started) = connect_and_send(&server, head.as_bytes()).await;
    assert_closed_at(&mut stream, started, Duration::from_secs(1), "body").await;

    // A body that does come is answered.
    let body = r#"{"username":"nobody","password":"wrong password"}"#;
    let (status, reply) = server
        .http_from(FLOODER, "POST", "/v1/sessions", None, body)
        .await;
    assert_eq!(status, 401, "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_deadline() {
    let server = start_with(|c| {
        c.http_header_timeout_ms = 5000;
        c.http_idle_timeout_ms = 1000;
    })
    .await;
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    // Kept alive: two requests on one connection.
    assert_eq!(http_on(&mut stream, &request).await.unwrap().0, 200);
    assert_eq!(http_on(&mut stream, &request).await.unwrap().0, 200);
    let idle_from = Instant::now();
    assert_closed_at(&mut stream, idle_from, Duration::from_secs(1), "idle").await;
    server.stop().await;
}

#[tokio::test]
async fn the_global_cap_refuses_at_once_and_keeps_a_reserve_for_health() {
    let server = start_with(|c| {
        c.max_connections = 3;
        c.health_reserve_connections = 1;
    })
    .await;
    // Three connections that say nothing fill the server (accepted in order).
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    // The fourth is on the reserve: health answers, nothing else.
    let mut reserve = TcpStream::connect(&server.addr).await.unwrap();
    assert_eq!(
        http_on(&mut reserve, &get("/healthz")).await.unwrap().0,
        200
    );
    let (status, body) = http_on(&mut reserve, &get("/v1/me")).await.unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(
        read_until_closed(&mut reserve, MARGIN).await.is_some(),
        "a refused request on the reserve closes the connection"
    );
    // While the reserve is held, one more is refused at once.
    let mut held = TcpStream::connect(&server.addr).await.unwrap();
    assert_eq!(http_on(&mut held, &get("/readyz")).await.unwrap().0, 200);
    let mut refused = TcpStream::connect(&server.addr).await.unwrap();
    let started = Instant::now();
    let (status, body) = read_response(&mut refused).await.expect("a canned refusal");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(started.elapsed() < AT_ONCE);
    let (_, metrics) = http_on(&mut held, &get("/metrics")).await.unwrap();
    assert!(
        metrics.contains("\nbanter_connections_refused_full_total 1\n"),
        "/metrics answers on the reserve and counts the refusal"
    );
    drop(held);
    // A freed place serves everything again (once the server has seen the peer leave).
    drop(silent.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh = TcpStream::connect(&server.addr).await.unwrap();
        if let Some((404, _)) = http_on(&mut fresh, &get("/v1/nowhere")).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never reused"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn per_address_caps_count_pending_connections_and_sessions_apart() {
    let server = start_with(|c| {
        c.max_pending_per_ip = 2;
        c.max_sessions_per_ip = 2;
    })
    .await;
    let user = server.user("carol").await;
    // Two sessions from 127.0.0.3; each was pending only until its upgrade.
    let _one = server.connect_from(&user, THIRD).await;
    let _two = server.connect_from(&user, THIRD).await;
    // So two plain connections still fit, and a third is refused at once.
    let _p1 = tcp_from(&server.addr, THIRD).await.unwrap();
    let _p2 = tcp_from(&server.addr, THIRD).await.unwrap();
    let mut over = tcp_from(&server.addr, THIRD).await.unwrap();
    let (status, body) = read_response(&mut over).await.expect("a canned refusal");
    assert_eq!(
        (status, body.contains("too_many_connections")),
        (429, true),
        "{body}"
    );
    drop((_p1, _p2));
    // A third session is refused at the upgrade; from another address it is fine.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        match Connection::connect_from(&server.addr, &user.token, Some(THIRD)).await {
            Err(ClientError::Api { body, .. }) if body.message.contains("sessions") => break body,
            // Refused at accept: the server has not yet seen the plain connections leave.
            Err(_) if Instant::now() < deadline => {}
            Err(e) => panic!("expected too_many_connections at the upgrade, got {e:?}"),
            Ok(_) => panic!("a third session from one address was admitted"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused.code, ErrorCode::TooManyConnections);
    let _other = server.connect_from(&user, OTHER).await;
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_key_must_be_base64_of_sixteen_bytes() {
    let server = start_with(|_| {}).await;
    let user = server.user("dave").await;
    let upgrade = |key: &str| {
        format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
             Authorization: Bearer {}\r\n\r\n",
            server.addr, user.token
        )
    };
    for key in [
        "abc",
        "dGhlIHNhbXBsZSBub25j",
        "dGhlIHNhbXBsZSBub25jZXM=",
        "!!!!!!!!!!!!!!!!!!!!!!==",
    ] {
        let mut stream = TcpStream::connect(&server.addr).await.unwrap();
        let (status, body) = http_on(&mut stream, &upgrade(key)).await.unwrap();
        assert_eq!(status, 400, "{key}: {body}");
        assert!(
            body.contains("bad_request") && body.contains("16 bytes"),
            "{body}"
        );
    }
    // The RFC's example key upgrades.
    RawSocket::open_ready(&server.addr, &user.token).await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_close_frames_are_answered_with_1002_and_valid_ones_with_1000() {
    let server = start_with(|_| {}).await;
    let user = server.user("erin").await;
    let mut bad: Vec<(String, Vec<u8>)> =
        [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]
            .iter()
            .map(|c| (format!("code {c}"), c.to_be_bytes().to_vec()))
            .collect();
    bad.push(("one byte".into(), vec![0x03]));
    bad.push(("reason not UTF-8".into(), vec![0x03, 0xe8, 0xff, 0xfe]));
    for (what, payload) in bad {
        let mut socket = RawSocket::open_ready(&server.addr, &user.token).await;
        socket.send_frame(8, &payload).await;
        assert_eq!(socket.close_code().await.0, Some(1002), "{what}");
    }
    for code in [1000u16, 1001, 1003, 1011, 3000, 4999] {
        let mut socket = RawSocket::open_ready(&server.addr, &user.token).await;
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice("bye".as_bytes());
        socket.send_frame(8, &payload).await;
        assert_eq!(socket.close_code().await.0, Some(1000), "code {code}");
    }
    let mut empty = RawSocket::open_ready(&server.addr, &user.token).await;
    empty.send_frame(8, b"").await;
    assert_eq!(empty.close_code().await.0, Some(1000), "empty close");
    server.stop().await;
}

/// Set in the child process of [`accept_errors_back_off_instead_of_spinning`].
const FD_CHILD: &str = "BANTER_ADMISSION_FD_CHILD";
/// Open files the child may hold: a few dozen connections past its own descriptors.
const FD_LIMIT: u32 = 96;

/// The server half of [`accept_errors_back_off_instead_of_spinning`], run in a child process
/// whose open-file limit is `FD_LIMIT`: serves until its standard input closes.
#[tokio::test]
#[ignore = "run in its own process by accept_errors_back_off_instead_of_spinning"]
async fn fd_limited_server() {
    if std::env::var_os(FD_CHILD).is_none() {
        return;
    }
    let server = start_with(|c| c.http_header_timeout_ms = 2000).await;
    println!("addr={}", server.addr);
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await
    .unwrap();
    server.stop().await;
}

/// CPU time (user + system, in clock ticks of 10 ms) of process `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Out of file descriptors, `accept` fails with EMFILE for as long as connections wait: the
/// listener must back off (a few failures a second at most, next to no CPU) and serve again
/// once descriptors are free.
#[tokio::test]
async fn accept_errors_back_off_instead_of_spinning() {
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--nofile={FD_LIMIT}:{FD_LIMIT}"))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "fd_limited_server", "--ignored", "--nocapture"])
        .env(FD_CHILD, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the server half");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (found, address) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = lines
            .find_map(|l| l.unwrap().strip_prefix("addr=").map(str::to_owned))
            .expect("the child prints its address");
        found.send(addr).unwrap();
        // Keep draining, so the child never writes into a closed pipe.
        for _ in lines {}
    });
    let addr = address.await.unwrap();
    // Twice as many silent connections as the child has descriptors: the kernel completes
    // them all, and the rest wait in the listen backlog.
    let mut held = Vec::new();
    for _ in 0..2 * FD_LIMIT {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() < FD_LIMIT as usize - 1 {
        assert!(
            Instant::now() < deadline,
            "the child never ran out of descriptors"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One second out of descriptors (the admitted ones are cut only at 2 s).
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_ticks(pid) - before;
    drop(held);
    // Served again once the deadline frees descriptors and the backlog is gone.
    let api = banter_client::Api::new(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Ok((200, text)) = api.get_text("/metrics").await {
            break text;
        }
        assert!(Instant::now() < deadline, "the server never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("banter_accept_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    println!("out of descriptors: {spent} CPU ticks in 1 s, {errors} failed accepts");
    assert!(
        spent <= 30,
        "the accept loop spun: {spent} ticks of CPU in 1 s"
    );
    assert!(
        (1..=40).contains(&errors),
        "accept failed {errors} times: backoff should allow a few a second"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
