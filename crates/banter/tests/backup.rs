//! `banter backup` and `banter restore` on the real binary: a backup taken while senders are
//! writing holds every message acknowledged before it started, gap-free, and a restored data
//! directory serves them; refusals (an existing destination, a non-empty data directory, a file
//! that is not a database, a PostgreSQL store) change nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use banter_client::protocol::SendAck;
use banter_client::{Api, Connection, Target};
use common::{FAST, Process, user};

fn banter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(args)
        .output()
        .expect("run banter")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn start(cwd: &Path, data: &Path) -> Process {
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap()]);
    Process::start(cwd, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(dir.path(), &data);
    let api = Api::new(server.addr.clone());
    let (_, alice) = user(&api, "alice").await;
    let (bob, _) = user(&api, "bob").await;

    // Four senders write until told to stop, keeping every acknowledgement.
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..4 {
        let (addr, token, to, stop) = (
            server.addr.clone(),
            alice.clone(),
            bob.clone(),
            Arc::clone(&stop),
        );
        senders.push(tokio::spawn(async move {
            let conn = Connection::connect(&addr, &token).await.unwrap();
            let mut acks: Vec<(String, SendAck)> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) || acks.len() < 50 {
                let key = format!("t{t}-{i}");
                let ack = conn
                    .send_text(
                        &Target::User(to.clone()),
                        &key,
                        &format!("{key} {}", "x".repeat(200)),
                    )
                    .await
                    .unwrap();
                acks.push((key, ack));
                i += 1;
            }
            acks
        }));
    }
    // Let the senders get going: wait until the database holds messages.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&data.join("banter.db")) < 200 {
        assert!(std::time::Instant::now() < deadline, "no messages stored");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The backup runs while they write; what was acknowledged before it started must be in it.
    let before = count(&data.join("banter.db"));
    let backup = dir.path().join("backup.db");
    let data_arg = data.to_str().unwrap().to_owned();
    let backup_arg = backup.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        banter(&["backup", &backup_arg, "--data-dir", &data_arg])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backed up"), "{}", text(&out));
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    drop(server);

    // The backup is one consistent snapshot: seqs 1..=n with no gap, at least what was stored
    // before the backup began, and each message the one acknowledged under its seq.
    let in_backup = messages(&backup);
    let n = in_backup.len() as u64;
    assert!(
        n >= before,
        "{n} messages in the backup, {before} stored before it"
    );
    assert_eq!(
        in_backup.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    let by_seq: BTreeMap<u64, &str> = acked.iter().map(|(k, a)| (a.seq, k.as_str())).collect();
    for (seq, key) in &in_backup {
        assert_eq!(by_seq.get(seq).copied(), Some(key.as_str()), "seq {seq}");
    }
    assert!(
        (acked.len() as u64) > n,
        "the senders went on writing during the backup ({} acked, {n} in it)",
        acked.len()
    );

    // Restored into an empty directory, a server serves exactly those messages.
    let restored = dir.path().join("restored");
    let out = banter(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let server = start(dir.path(), &restored);
    let api = Api::new(server.addr.clone());
    let login = api.login("bob", common::PASSWORD, None).await.unwrap();
    let conn = Connection::connect(&server.addr, &login.token)
        .await
        .unwrap();
    let list = conn.conversations(None).await.unwrap().conversations;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].last_seq, n);
    let mut seen = 0;
    let mut after = 0;
    loop {
        let page = conn.sync(&list[0].id, after, None).await.unwrap();
        for m in &page.messages {
            assert_eq!(
                Some(m.client_msg_id.as_str()),
                in_backup.get(&m.seq).map(String::as_str)
            );
            seen += 1;
            after = m.seq;
        }
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, n);
}

#[test]
fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // No database to back up.
    let out = banter(&["backup", &path("b.db"), "--data-dir", &path("none")]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no database"), "{}", text(&out));
    // Not a database.
    std::fs::write(
        dir.path().join("junk.db"),
        b"not sqlite at all, just some bytes......",
    )
    .unwrap();
    let out = banter(&["restore", &path("junk.db"), "--data-dir", &path("r")]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a sound Banter database"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("r/banter.db").exists());
    // An existing destination is never overwritten, and a data directory with a database is
    // never restored over.
    std::fs::create_dir(dir.path().join("full")).unwrap();
    std::fs::write(dir.path().join("full/banter.db"), b"keep me").unwrap();
    let out = banter(&[
        "backup",
        &path("full/banter.db"),
        "--data-dir",
        &path("full"),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exists"), "{}", text(&out));
    let out = banter(&["restore", &path("junk.db"), "--data-dir", &path("full")]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exists"), "{}", text(&out));
    assert_eq!(
        std::fs::read(dir.path().join("full/banter.db")).unwrap(),
        b"keep me"
    );
}

/// With a PostgreSQL store configured (flag, variable or file), backup and restore refuse,
/// naming PostgreSQL's own tools, without touching the data directory or printing the password.
#[test]
fn backup_and_restore_refuse_a_postgres_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let url = "postgres://root:hunter2@127.0.0.1:5432/banter";
    let out = banter(&[
        "backup",
        &path("b.db"),
        "--data-dir",
        &path("d"),
        "--store",
        url,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
    assert!(text(&out).contains("root:***@"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    std::fs::write(path("banter.toml"), format!("store = \"{url}\"\n")).unwrap();
    let out = banter(&["restore", &path("b.db"), "--config", &path("banter.toml")]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_restore"), "{}", text(&out));
    assert!(!text(&out).contains("hunter2"), "{}", text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["backup", &path("b.db"), "--data-dir", &path("d")])
        .env("BANTER_STORE", url)
        .output()
        .expect("run banter");
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
    assert!(!dir.path().join("b.db").exists() && !dir.path().join("d").exists());
}

/// Messages in a database file, by count (read-only, beside a running server).
fn count(db: &Path) -> u64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .unwrap_or(0)
}

/// seq → client_msg_id of every message in a database file.
fn messages(db: &Path) -> BTreeMap<u64, String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT seq, client_msg_id FROM messages")
        .unwrap();
    s.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
