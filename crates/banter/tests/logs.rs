//! What the server logs at info level: a startup line naming the version, revision, address,
//! data directory, config file, store and sync mode; one line per connection opened and closed;
//! one access line per HTTP request; never a token, a password or message text. And errors
//! printed once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use banter_client::{Api, Connection, Target};
use common::{FAST, PASSWORD, Process};

const SECRET_TEXT: &str = "the-eagle-lands-at-midnight";

/// Waits until the server's log holds `needle` (the log is written by another thread).
fn wait_for_log(server: &Process, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log_text();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn exercise(server: &Process) -> (String, String) {
    let api = Api::new(server.addr.clone());
    api.register("alice", PASSWORD).await.unwrap();
    let bob = api.register("bob", PASSWORD).await.unwrap();
    let login = api.login("alice", PASSWORD, Some("laptop")).await.unwrap();
    let conn = Connection::connect(&server.addr, &login.token)
        .await
        .unwrap();
    conn.send_text(&Target::User(bob.id), "k1", SECRET_TEXT)
        .await
        .unwrap();
    drop(conn);
    (login.token, login.user.id)
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Process {
    let data = dir.join("data");
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend(extra);
    Process::start(dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_name_the_start_connections_and_requests_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let (token, user) = exercise(&server).await;
    let log = wait_for_log(&server, "connection closed");

    let start = log.lines().find(|l| l.contains("banter starting")).unwrap();
    for field in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "revision=\"".to_owned(),
        "listen=127.0.0.1:0".to_owned(),
        format!("data_dir={}", dir.path().join("data").display()),
        "config=none".to_owned(),
        "store=\"sqlite\"".to_owned(),
        "sync=full".to_owned(),
    ] {
        assert!(start.contains(&field), "{field} in {start}");
    }
    for access in [
        "method=POST path=\"/v1/accounts\" status=201",
        "method=POST path=\"/v1/sessions\" status=200",
        "method=GET path=\"/v1/ws\" status=101",
    ] {
        assert!(log.contains(access), "{access} in\n{log}");
    }
    // A connection is named `<node id in hex>.<number on that node>`.
    let opened = log
        .lines()
        .find(|l| l.contains("connection opened"))
        .unwrap();
    let conn = opened
        .split("conn=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let (node, number) = conn.split_once('.').unwrap();
    assert!(
        node.len() == 16 && u64::from_str_radix(node, 16).is_ok(),
        "{opened}"
    );
    assert_eq!(number, "1", "{opened}");
    assert!(opened.contains(&format!("user={user}")), "{opened}");
    assert!(
        log.contains(&format!("connection closed conn={conn}")),
        "{log}"
    );
    for secret in [token.as_str(), PASSWORD, SECRET_TEXT] {
        assert!(!log.contains(secret), "{secret:?} was logged:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--log-format", "json"]);
    let (token, _) = exercise(&server).await;
    let log = wait_for_log(&server, "connection closed");
    let mut messages = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for wanted in [
        "banter starting",
        "banter listening",
        "http",
        "connection opened",
    ] {
        assert!(
            messages.iter().any(|m| m == wanted),
            "{wanted} in {messages:?}"
        );
    }
    assert!(!log.contains(&token) && !log.contains(SECRET_TEXT));
}

#[test]
fn an_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(blocker.join("data"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn a_bad_value_is_reported_under_the_name_it_was_given_by() {
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
        command.args(args);
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let from_env = run(&["serve"], Some(("BANTER_MAX_PAGE", "many")));
    assert!(
        from_env.contains("BANTER_MAX_PAGE") && !from_env.contains("--max-page"),
        "{from_env}"
    );
    let from_flag = run(&["serve", "--max-page", "lots"], None);
    assert!(from_flag.contains("--max-page"), "{from_flag}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("banter.toml");
    std::fs::write(&file, "max_page = \"heaps\"\n").unwrap();
    let from_file = run(&["serve", "--config", file.to_str().unwrap()], None);
    assert!(
        from_file.contains(file.to_str().unwrap()) && from_file.contains("max_page"),
        "{from_file}"
    );
}
