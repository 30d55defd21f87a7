//! Tests that drive the real `banter` binary: crash safety under SIGKILL, graceful SIGTERM, and
//! the README's no-setup `banter serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use banter_client::protocol::Message;
use banter_client::{Api, Connection, Event, Messenger, Target};

const PASSWORD: &str = "correct horse battery";

/// A running `banter serve` process.
struct Process {
    child: Child,
    addr: String,
}

impl Process {
    /// Starts the binary in `cwd` with `args` after `serve`, and waits for its listen line.
    fn start(cwd: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_banter"))
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn banter");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("banter exited before listening")
                .unwrap();
            if let Some(rest) = line.split("addr=").nth(1)
                && line.contains("banter listening")
            {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

const FAST: &[&str] = &[
    "--listen",
    "127.0.0.1:0",
    "--password-memory-kib",
    "64",
    "--password-iterations",
    "1",
    "--send-rate-per-sec",
    "100000",
    "--send-burst",
    "100000",
];

async fn user(api: &Api, name: &str) -> (String, String) {
    let user = api.register(name, PASSWORD).await.unwrap();
    let login = api.login(name, PASSWORD, None).await.unwrap();
    (user.id, login.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap()]);
    let first = Process::start(dir.path(), &args);
    let api = Api::new(first.addr.clone());
    let (_, alice_token) = user(&api, "alice").await;
    let (bob_id, bob_token) = user(&api, "bob").await;

    // Eight connections send concurrently, so acks come out of shared group commits.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (addr, token, to) = (first.addr.clone(), alice_token.clone(), bob_id.clone());
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&addr, &token).await.unwrap();
            let mut acks = Vec::new();
            for i in 0..50 {
                let key = format!("t{t}-{i}");
                let ack = conn
                    .send_text(&Target::User(to.clone()), &key, &format!("text {key}"))
                    .await
                    .unwrap();
                acks.push((key, ack));
            }
            acks
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    // Kill -9 the moment the last ack is in: no shutdown, no flush.
    drop(first);

    let second = Process::start(dir.path(), &args);
    let mut bob = Messenger::connect(&second.addr, &bob_token).await.unwrap();
    let mut stored: Vec<Message> = Vec::new();
    while stored.len() < acked.len() {
        stored.push(
            tokio::time::timeout(Duration::from_secs(10), bob.next_message())
                .await
                .expect("every acknowledged message is there")
                .unwrap(),
        );
    }
    for (key, ack) in &acked {
        let m = &stored[ack.seq as usize - 1];
        assert_eq!(
            (&m.client_msg_id, &m.id, m.ts, &m.text),
            (key, &ack.message_id, ack.ts, &format!("text {key}")),
            "message at seq {} matches its ack",
            ack.seq
        );
    }
    // Retrying after the crash returns the original acknowledgement.
    let alice = Connection::connect(&second.addr, &alice_token)
        .await
        .unwrap();
    let (key, original) = &acked[0];
    let retry = alice
        .send_text(&Target::User(bob_id.clone()), key, "retry")
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        (retry.seq, &retry.message_id),
        (original.seq, &original.message_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1001_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap()]);
    let mut server = Process::start(dir.path(), &args);
    let api = Api::new(server.addr.clone());
    let (_, token) = user(&api, "alice").await;
    let mut conn = Connection::connect(&server.addr, &token).await.unwrap();
    server.signal("TERM");
    assert_eq!(
        conn.next_event().await,
        Some(Event::Closed { code: Some(1001) })
    );
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

/// The README's server command: no flags, no config, data under ./banter-data, port 8080.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_setup_listens_on_8080_and_creates_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(dir.path(), &[]);
    assert_eq!(
        server.addr, "127.0.0.1:8080",
        "the documented default address"
    );
    let (status, _) = Api::new(server.addr.clone())
        .get_text("/healthz")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(dir.path().join("banter-data/banter.db").exists());
    server.signal("INT");
}

#[test]
fn serve_help_documents_every_option_and_its_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let defaults = banter_server::Config::default_toml();
    for line in defaults.lines() {
        let key = line.split(" = ").next().unwrap();
        let flag = format!("--{}", key.replace('_', "-"));
        assert!(help.contains(&flag), "--help lacks {flag}");
        assert!(help.contains(line), "--help lacks the default {line}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["serve", "--max-page", "zero"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "a malformed flag is refused");
}
