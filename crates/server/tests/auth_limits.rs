//! Password hashing as a bounded resource and what guards it, against a real server: the busy
//! refusal of a full hashing queue, the login backoff per account and per address, the
//! registration throttle, the token cache's revocation, token expiry on open sockets, device
//! labels, and a wrong-password flood with the default Argon2 parameters.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use banter_client::protocol::{ClientRequest, ErrorCode};
use banter_client::{ClientError, Connection};
use common::{HttpConn, PASSWORD, RawSocket, http_from, login_from, start_with, tcp_from};
use tokio::io::AsyncWriteExt as _;

/// The flood test measures latency: it runs alone (write), the other tests of this file
/// together (read).
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn api_code(e: &ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { status, body } => (*status, body.code),
        other => panic!("expected a typed API error, got {other:?}"),
    }
}

#[tokio::test]
async fn failed_logins_back_off_per_account_before_any_hashing() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| {
        c.login_failures_per_account = 3;
        c.login_backoff_ms = 300;
        c.login_backoff_max_ms = 300;
    })
    .await;
    server.user("alice").await;
    let from = ip(127, 0, 0, 2);
    for _ in 0..3 {
        let r = login_from(&server.addr, from, "alice", "wrong password").await;
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (401, Some("bad_credentials"))
        );
    }
    let hashes = server.metric("banter_password_hashes_total").await;
    // Even the right password waits out the backoff, and is refused without hashing.
    let r = login_from(&server.addr, from, "alice", PASSWORD).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (429, Some("rate_limited")),
        "{r:?}"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(server.metric("banter_password_hashes_total").await, hashes);
    assert_eq!(server.metric("banter_logins_throttled_total").await, 1);
    // Another account from the same address is not held back.
    server.api.register("bert", PASSWORD).await.unwrap();
    let r = login_from(&server.addr, from, "bert", PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Once the backoff has passed, the right password logs in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = login_from(&server.addr, from, "alice", PASSWORD).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.error_code().as_deref(), Some("rate_limited"), "{r:?}");
        assert!(Instant::now() < deadline, "still throttled after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The success cleared the account's failures: two more are plain refusals again.
    for _ in 0..2 {
        let r = login_from(&server.addr, from, "alice", "wrong password").await;
        assert_eq!(r.error_code().as_deref(), Some("bad_credentials"));
    }
    server.stop().await;
}

#[tokio::test]
async fn failed_logins_back_off_per_address_across_accounts() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| {
        c.login_failures_per_address = 4;
        c.login_backoff_ms = 60_000;
        c.login_backoff_max_ms = 60_000;
    })
    .await;
    server.api.register("carol", PASSWORD).await.unwrap();
    let attacker = ip(127, 0, 0, 3);
    for name in ["ghost1", "ghost2", "carol", "ghost3"] {
        let r = login_from(&server.addr, attacker, name, "wrong password").await;
        assert_eq!(r.error_code().as_deref(), Some("bad_credentials"), "{name}");
    }
    let r = login_from(&server.addr, attacker, "carol", PASSWORD).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (429, Some("rate_limited"))
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "Retry-After {wait}");
    // Carol herself, from her own address, is not locked out by the attacker's address.
    let r = login_from(&server.addr, ip(127, 0, 0, 4), "carol", PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.stop().await;
}

/// A login whose client goes away once its hash job is queued still counts against its
/// address: refunding it let one address keep every hashing worker busy, never backing off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_still_count_towards_the_address_backoff() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| {
        c.password_hash_workers = 1;
        c.password_hash_queue = 64;
        c.password_memory_kib = 19_456;
        c.password_iterations = 4;
        c.login_failures_per_address = 3;
        c.login_backoff_ms = 60_000;
        c.login_backoff_max_ms = 60_000;
    })
    .await;
    server.api.register("erin", PASSWORD).await.unwrap();
    let accepted = async || {
        server.metric("banter_password_hashes_total").await
            + server.metric("banter_password_hash_queue").await
    };
    let before = accepted().await;
    // Two logins from other addresses hold the only worker, so the attacker's jobs wait.
    let blockers: Vec<_> = (11..13)
        .map(|d| {
            let addr = server.addr.clone();
            tokio::spawn(
                async move { login_from(&addr, ip(127, 0, 0, d), "erin", "nope nope").await },
            )
        })
        .collect();
    let attacker = ip(127, 0, 0, 10);
    let body = serde_json::json!({"username": "erin", "password": "wrong password"}).to_string();
    let request = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let mut abandoned = Vec::new();
    for _ in 0..3 {
        let mut stream = tcp_from(&server.addr, attacker).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        abandoned.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while accepted().await < before + 5 {
        assert!(Instant::now() < deadline, "the hash jobs were never queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The attacker goes away while its jobs wait.
    drop(abandoned);
    for blocker in blockers {
        let r = blocker.await.unwrap();
        assert_eq!(r.error_code().as_deref(), Some("bad_credentials"), "{r:?}");
    }
    while server.metric("banter_password_hash_queue").await > 0
        || server.metric("banter_password_hashing").await > 0
    {
        assert!(Instant::now() < deadline, "the hashing queue never drained");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = login_from(&server.addr, attacker, "erin", "wrong password").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (429, Some("rate_limited")),
        "three abandoned attempts were refunded: {r:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn registrations_are_throttled_per_address() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| {
        c.register_burst = 2;
        c.register_per_address_per_hour = 1;
    })
    .await;
    let register = |name: &str, from| {
        let body = serde_json::json!({"username": name, "password": PASSWORD});
        let addr = server.addr.clone();
        async move { http_from(&addr, from, "POST", "/v1/accounts", &body).await }
    };
    let from = ip(127, 0, 0, 5);
    assert_eq!(register("reg1", from).await.status, 201);
    assert_eq!(register("reg2", from).await.status, 201);
    let r = register("reg3", from).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (429, Some("rate_limited"))
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 3000, "one registration per hour: Retry-After {wait}");
    assert_eq!(register("reg3", ip(127, 0, 0, 6)).await.status, 201);
    assert_eq!(
        server.metric("banter_registrations_throttled_total").await,
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_is_refused_with_busy() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| {
        c.password_hash_workers = 1;
        c.password_hash_queue = 2;
        c.password_memory_kib = 19_456;
        c.password_iterations = 2;
    })
    .await;
    let attempts = (0..32).map(|i| {
        let addr = server.addr.clone();
        tokio::spawn(async move {
            login_from(
                &addr,
                ip(127, 0, 0, 7),
                &format!("nobody{i}"),
                "wrong password",
            )
            .await
        })
    });
    let mut busy = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        let r = attempt.await.unwrap();
        match (r.status, r.error_code().as_deref()) {
            (401, Some("bad_credentials")) => {}
            (503, Some("busy")) => {
                assert_eq!(r.header("retry-after"), Some("1"));
                busy += 1;
            }
            other => panic!("unexpected answer {other:?}: {r:?}"),
        }
    }
    assert!(busy > 0, "32 concurrent logins fit a queue of 2");
    assert_eq!(
        server.metric("banter_password_hash_refusals_total").await,
        busy
    );
    assert_eq!(server.metric("banter_password_hashing_max").await, 1);
    assert_eq!(server.metric("banter_password_hash_queue").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn revoked_tokens_are_refused_on_the_very_next_request() {
    let _shared = ALONE.read().await;
    let server = start_with(|_| {}).await;
    let alice = server.user("dora").await;
    server.api.me(&alice.token).await.unwrap();
    let hits = server.metric("banter_token_cache_hits_total").await;
    server.api.me(&alice.token).await.unwrap();
    assert!(
        server.metric("banter_token_cache_hits_total").await > hits,
        "cached"
    );
    // Logout: the cached token is refused at once.
    server.api.logout(&alice.token).await.unwrap();
    let e = server.api.me(&alice.token).await.unwrap_err();
    assert_eq!(api_code(&e), (401, ErrorCode::Unauthorized));
    // Revoking another session, and changing the password, likewise.
    let (a, b, c) = (
        server.login("dora").await,
        server.login("dora").await,
        server.login("dora").await,
    );
    for t in [&a.token, &b.token, &c.token] {
        server.api.me(t).await.unwrap();
        server.api.me(t).await.unwrap();
    }
    server.api.revoke(&a.token, &b.session).await.unwrap();
    let e = server.api.me(&b.token).await.unwrap_err();
    assert_eq!(api_code(&e), (401, ErrorCode::Unauthorized));
    server
        .api
        .change_password(&a.token, PASSWORD, "a new password")
        .await
        .unwrap();
    let e = server.api.me(&c.token).await.unwrap_err();
    assert_eq!(api_code(&e), (401, ErrorCode::Unauthorized));
    server.api.me(&a.token).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn open_sockets_close_with_4001_when_their_token_expires() {
    let _shared = ALONE.read().await;
    let server = start_with(|c| c.token_ttl_secs = 2).await;
    server.api.register("erin", PASSWORD).await.unwrap();
    let login = server.api.login("erin", PASSWORD, None).await.unwrap();
    let mut socket = RawSocket::open_ready(&server.addr, &login.token).await;
    let (code, _) = tokio::time::timeout(Duration::from_secs(10), socket.close_code())
        .await
        .expect("the socket closes within 10 s");
    assert_eq!(code, Some(4001));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(now >= login.expires_at, "closed before the token expired");
    let e = server.api.me(&login.token).await.unwrap_err();
    assert_eq!(api_code(&e), (401, ErrorCode::TokenExpired));
    server.stop().await;
}

#[tokio::test]
async fn device_labels_with_control_or_bidi_characters_are_refused() {
    let _shared = ALONE.read().await;
    let server = start_with(|_| {}).await;
    let fay = server.user("fay").await;
    for bad in [
        "a\0b",
        "\u{1b}[2J",
        "two\nlines",
        "x\u{202E}fdp.exe",
        "\u{2067}z",
        "rtl\u{200F}mark",
        "\u{061C}alm",
    ] {
        let e = server
            .api
            .login("fay", PASSWORD, Some(bad))
            .await
            .unwrap_err();
        assert_eq!(api_code(&e), (400, ErrorCode::InvalidField), "{bad:?}");
    }
    server
        .api
        .login("fay", PASSWORD, Some("Fay’s phone ✓"))
        .await
        .unwrap();
    let sessions = server.api.sessions(&fay.token).await.unwrap();
    let devices: Vec<_> = sessions.iter().map(|s| s.device.as_str()).collect();
    assert_eq!(devices, ["test device", "Fay’s phone ✓"]);
    server.stop().await;
}

/// The resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// What the flood's attackers were answered.
#[derive(Default)]
struct Tally {
    /// `bad_credentials` on the victim: guesses that were hashed.
    guesses: AtomicU64,
    /// `rate_limited`.
    throttled: AtomicU64,
}

/// Attacker `i` of the flood: from 127.0.1.(i + 1), on one keep-alive connection (opened again
/// whenever the server ends it), retrying at once (ignoring Retry-After) until `until`. Even
/// ones guess the victim's password; odd ones a new unknown name each time (the same hash for
/// the server, and only the per-address throttle applies).
async fn attack(addr: String, i: usize, until: Instant, tally: Arc<Tally>) {
    let from = ip(127, 0, 1, u8::try_from(i + 1).unwrap());
    let on_victim = i.is_multiple_of(2);
    let mut conn: Option<HttpConn> = None;
    for n in 0u32.. {
        if Instant::now() >= until {
            return;
        }
        let name = if on_victim {
            "victim".to_owned()
        } else {
            format!("ghost{i}x{n}")
        };
        let body = serde_json::json!({"username": name, "password": "wrong password"});
        let attempt = async {
            if conn.is_none() {
                conn = HttpConn::open_from(&addr, from).await.ok();
            }
            conn.as_mut()?.request("POST", "/v1/sessions", &body).await
        };
        let Ok(reply) = tokio::time::timeout_at(until.into(), attempt).await else {
            return;
        };
        let Some(r) = reply else {
            conn = None;
            continue;
        };
        match (r.status, r.error_code().as_deref()) {
            (401, Some("bad_credentials")) if on_victim => {
                tally.guesses.fetch_add(1, Ordering::Relaxed);
            }
            (401, Some("bad_credentials")) | (503, Some("busy")) => {}
            (429, Some("rate_limited")) => {
                tally.throttled.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("unexpected answer {other:?}: {r:?}"),
        }
        // 128 tight loops in this test process must not starve its pingers of the runtime.
        tokio::task::yield_now().await;
    }
}

/// Pings every 20 ms until `until`; the round trips.
async fn pings(conn: Connection, until: Instant) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        conn.request(ClientRequest::Ping).await.unwrap();
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// Done-when 1, short: 128 concurrent wrong-password logins for 5 s against the default Argon2
/// parameters, throttles and pool. (`banter bench logins` runs the 30 s version.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_stays_bounded_and_others_stay_fast() {
    let _alone = ALONE.write().await;
    const ATTACKERS: usize = 128;
    const FLOOD: Duration = Duration::from_secs(5);
    let defaults = banter_server::Config::default();
    let server = start_with(|c| {
        c.password_memory_kib = defaults.password_memory_kib;
        c.password_iterations = defaults.password_iterations;
        c.password_hash_workers = defaults.password_hash_workers;
        c.password_hash_queue = defaults.password_hash_queue;
        c.login_failures_per_account = defaults.login_failures_per_account;
        c.login_failures_per_address = defaults.login_failures_per_address;
        c.login_backoff_ms = defaults.login_backoff_ms;
        c.login_backoff_max_ms = defaults.login_backoff_max_ms;
    })
    .await;
    server.user("victim").await;
    let pingers = [server.user("pinger1").await, server.user("pinger2").await];
    let mut conns = Vec::new();
    for p in &pingers {
        conns.push(Connection::connect(&server.addr, &p.token).await.unwrap());
    }
    let rss_before = rss_bytes();
    let until = Instant::now() + FLOOD;
    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> = (0..ATTACKERS)
        .map(|i| tokio::spawn(attack(server.addr.clone(), i, until, Arc::clone(&tally))))
        .collect();
    let pings: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(pings(conn, until)))
        .collect();
    let mut rss_max = rss_before;
    while Instant::now() < until {
        rss_max = rss_max.max(rss_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for p in pings {
        latencies.extend(p.await.unwrap());
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let guesses = tally.guesses.load(Ordering::Relaxed);
    let throttled = tally.throttled.load(Ordering::Relaxed);
    let workers = std::thread::available_parallelism().unwrap().get() as u64;
    let hashing_max = server.metric("banter_password_hashing_max").await;
    let growth = rss_max.saturating_sub(rss_before) >> 20;
    eprintln!(
        "flood: victim guesses {guesses}, throttled {}, hashes {}, busy {}, most at once \
         {hashing_max}, ping p99 {p99:?} of {}, RSS growth {growth} MiB",
        throttled,
        server.metric("banter_password_hashes_total").await,
        server.metric("banter_password_hash_refusals_total").await,
        latencies.len(),
    );
    // 5 guesses, then one after each backoff that ends within the flood (1 s, then 2 s).
    assert!(guesses <= 7, "{guesses} guesses on one account in 5 s");
    assert!(throttled > 0);
    assert!(hashing_max <= workers, "{hashing_max} hashes at once");
    assert!(growth <= 256, "RSS grew by {growth} MiB");
    // A debug build sharing two cores with 128 attackers and the hashing threads: 15–35 ms on
    // a quiet host, 50 ms seen while other work loaded it; starved pings take seconds.
    assert!(p99 <= Duration::from_millis(100), "ping p99 {p99:?}");
    server.stop().await;
}
