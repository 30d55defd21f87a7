//! Tests that drive the real `banter` binary: crash safety under SIGKILL, graceful SIGTERM, the
//! README's no-setup `banter serve`, and the data-directory checks (damaged directories refuse
//! to start; a store that cannot write makes `/readyz` answer 503).

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use banter_client::protocol::ErrorCode;
use banter_client::protocol::Message;
use banter_client::{Api, ClientError, Connection, Event, Messenger, Target};

mod common;

use common::{FAST, Process, user};

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
/// It runs in a network namespace of its own (`unshare`), so the test passes while another
/// process holds 8080 on this machine (the README's own server, say), and is asked through
/// that namespace's loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_setup_listens_on_8080_and_creates_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("unshare");
    command
        .args(["--net", "--map-root-user", "sh", "-c"])
        .arg(r#"ip link set lo up && exec "$0" serve"#)
        .arg(env!("CARGO_BIN_EXE_banter"))
        .current_dir(dir.path());
    let server = Process::spawn(command);
    assert_eq!(
        server.addr, "127.0.0.1:8080",
        "the documented default address"
    );
    // An HTTP/1.0 request from inside the namespace, with nothing but bash.
    let out = Command::new("nsenter")
        .args(["--target", &server.child.id().to_string()])
        .args(["--user", "--net", "--preserve-credentials", "bash", "-c"])
        .arg(
            "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 \
             && cat <&3",
        )
        .output()
        .expect("nsenter and bash");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.starts_with("HTTP/1.0 200"),
        "{reply} {:?}",
        out.status
    );
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

/// Runs `banter serve` in `cwd` expecting it to refuse to start; returns its exit status and
/// everything it printed. Panics if it is still running after 30 s (it started instead).
fn refused_start(cwd: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_banter"))
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn banter");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            _ = child.kill();
            panic!("banter started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// Makes `path` (a file or a directory) unwritable, even for root (which ignores permission
/// bits: then the immutable attribute is set too), until dropped.
struct ReadOnly {
    path: std::path::PathBuf,
    immutable: bool,
}

impl ReadOnly {
    fn new(path: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut this = Self {
            path: path.to_path_buf(),
            immutable: false,
        };
        if this.writable() {
            let ok = Command::new("chattr").arg("+i").arg(path).status().unwrap();
            assert!(ok.success(), "chattr +i {}", path.display());
            this.immutable = true;
        }
        assert!(!this.writable(), "{} is still writable", path.display());
        this
    }

    fn writable(&self) -> bool {
        if self.path.is_dir() {
            let probe = self.path.join("probe");
            let ok = std::fs::File::create(&probe).is_ok();
            _ = std::fs::remove_file(probe);
            ok
        } else {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .is_ok()
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.immutable {
            _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        }
        _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o755));
    }
}

/// `FAST` plus the data directory `data`, with fsync off (these tests kill processes, not power).
fn data_args(data: &Path) -> Vec<String> {
    let mut args: Vec<String> = FAST.iter().map(|a| (*a).to_owned()).collect();
    args.extend(["--sqlite-synchronous".into(), "normal".into()]);
    args.extend(["--data-dir".into(), data.to_str().unwrap().to_owned()]);
    args
}

/// Starts the binary on `data`, has alice send `count` acknowledged messages of ~400 bytes to
/// bob over 4 connections, and returns the running process.
async fn server_with_messages(cwd: &Path, data: &Path, count: usize) -> Process {
    let args = data_args(data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Process::start(cwd, &args);
    let api = Api::new(server.addr.clone());
    let (_, alice) = user(&api, "alice").await;
    let (bob, _) = user(&api, "bob").await;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (addr, token, to) = (server.addr.clone(), alice.clone(), bob.clone());
        tasks.push(tokio::spawn(async move {
            let conn = Connection::connect(&addr, &token).await.unwrap();
            for i in 0..count / 4 {
                let key = format!("t{t}-{i}");
                let text = format!("{key} {}", "x".repeat(400));
                conn.send_text(&Target::User(to.clone()), &key, &text)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    server
}

/// SIGTERM, and the exit status once the process is gone.
async fn terminate(server: Process) -> ExitStatus {
    server.signal("TERM");
    let mut server = server;
    tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap()
}

fn count_messages(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM messages WHERE kind = 0", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_every_message_in_the_database_file_and_no_wal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = server_with_messages(dir.path(), &data, 400).await;
    assert!(
        data.join("banter.db-wal").exists(),
        "a running server has a WAL"
    );
    let status = terminate(server).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        !data.join("banter.db-wal").exists(),
        "the WAL is checkpointed and removed"
    );
    assert!(
        !data.join("banter.db-shm").exists(),
        "so is the shared-memory file"
    );
    let marker = std::fs::read_to_string(data.join("banter.id")).unwrap();
    assert!(marker.contains("state = \"clean\""), "{marker}");
    // The database file alone holds every acknowledged message.
    assert_eq!(count_messages(&data.join("banter.db")), 400);
}

/// How a test damages a data directory after a clean shutdown, and what the refusal must say.
enum Damage {
    ReadOnlyDatabase,
    ReadOnlyDirectory,
    CorruptPages,
    DeletedDatabase,
    TruncatedDatabase,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_directory_refuses_to_start_and_says_why() {
    let cases = [
        (Damage::ReadOnlyDatabase, "can only be opened read-only"),
        (Damage::ReadOnlyDirectory, "is not writable"),
        (Damage::CorruptPages, "is damaged"),
        (Damage::DeletedDatabase, "banter.db is missing, but"),
        (Damage::TruncatedDatabase, "is damaged"),
    ];
    for (damage, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = data.join("banter.db");
        let server = server_with_messages(dir.path(), &data, 2000).await;
        assert!(terminate(server).await.success());
        let _guard = match damage {
            Damage::ReadOnlyDatabase => Some(ReadOnly::new(&db)),
            Damage::ReadOnlyDirectory => Some(ReadOnly::new(&data)),
            Damage::CorruptPages => {
                // Four whole pages in the middle of the file, where the messages' B-tree is.
                use std::io::{Seek as _, SeekFrom, Write as _};
                let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
                let pages = file.metadata().unwrap().len() / 4096;
                assert!(pages > 100, "{pages} pages");
                file.seek(SeekFrom::Start(pages / 2 * 4096)).unwrap();
                file.write_all(&[0xA5; 4 * 4096]).unwrap();
                None
            }
            Damage::DeletedDatabase => {
                std::fs::remove_file(&db).unwrap();
                None
            }
            Damage::TruncatedDatabase => {
                let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
                let len = file.metadata().unwrap().len();
                file.set_len(len / 2).unwrap();
                None
            }
        };
        let args = data_args(&data);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, output) = refused_start(dir.path(), &args);
        assert!(!status.success(), "{expected}: exit status {status}");
        assert!(
            output.contains(expected) && output.contains("docs/OPERATIONS.md"),
            "expected {expected:?} in:\n{output}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_deleted_after_sigkill_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = server_with_messages(dir.path(), &data, 200).await;
    // Kill -9 right after the acks: the acknowledged messages are in the WAL only.
    drop(server);
    let wal = data.join("banter.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 200 * 400,
        "the WAL holds the messages"
    );
    std::fs::remove_file(&wal).unwrap();
    let args = data_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = refused_start(dir.path(), &args);
    assert!(!status.success(), "exit status {status}");
    assert!(
        output.contains("did not shut down cleanly") && output.contains("banter.db-wal is missing"),
        "{output}"
    );
}

/// A store that cannot write (here: its files may not grow, as on a full disk) keeps serving
/// reads but `/readyz` answers 503 `store_unavailable`, and writes get the same code rather
/// than `internal`; once the disk takes writes again, readiness comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_store_that_cannot_write_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = data_args(&data);
    // SIGXFSZ is ignored (and stays so across exec), so a write past the limit fails with EFBIG.
    let mut command = Command::new("sh");
    command
        .args(["-c", "trap '' XFSZ; exec \"$0\" serve \"$@\""])
        .arg(env!("CARGO_BIN_EXE_banter"))
        .args(&args)
        .current_dir(dir.path());
    let server = Process::spawn(command);
    let api = Api::new(server.addr.clone());
    let (_, alice) = user(&api, "alice").await;
    let (bob, _) = user(&api, "bob").await;
    assert_eq!(api.get_text("/readyz").await.unwrap().0, 200);

    let pid = server.child.id().to_string();
    let wal = std::fs::metadata(data.join("banter.db-wal")).unwrap().len();
    // Files may not grow past their size now: the next commit cannot append to the WAL (nor
    // can readiness's probe write, which would otherwise fit in the space left).
    let limit = format!("--fsize={wal}:");
    assert!(
        Command::new("prlimit")
            .args(["--pid", &pid, &limit])
            .status()
            .unwrap()
            .success()
    );
    let conn = Connection::connect(&server.addr, &alice).await.unwrap();
    let mut refused = None;
    for i in 0..100 {
        let text = "y".repeat(2000);
        match conn
            .send_text(&Target::User(bob.clone()), &format!("m{i}"), &text)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    match refused {
        Some(ClientError::Api { body, .. }) => assert_eq!(body.code, ErrorCode::StoreUnavailable),
        other => panic!("a write past the limit fails with store_unavailable: {other:?}"),
    }
    let (status, body) = api.get_text("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("store_unavailable"), "{body}");
    // Reads still work.
    assert_eq!(api.get_text("/healthz").await.unwrap().0, 200);

    assert!(
        Command::new("prlimit")
            .args(["--pid", &pid, "--fsize=unlimited:"])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get_text("/readyz").await.unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "/readyz never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn.send_text(
        &Target::User(bob.clone()),
        "after",
        "the disk takes writes again",
    )
    .await
    .unwrap();
}
