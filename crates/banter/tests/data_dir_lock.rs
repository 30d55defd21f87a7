//! One data directory, one process, on the real binary: a second `banter serve` on a directory
//! a running server holds exits non-zero naming the directory and the holder's pid, and leaves
//! the first one serving; `banter backup` still copies the database meanwhile; once the holder
//! is gone (even killed) the directory can be served again.

mod common;

use std::process::Command;

use banter_client::Api;
use common::{FAST, Process, user};

fn args(data: &str) -> Vec<&str> {
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_held_data_dir_refuses_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Process::start(dir.path(), &args("banter-data"));
    let api = Api::new(first.addr.clone());
    user(&api, "alice").await;

    let second = Command::new(env!("CARGO_BIN_EXE_banter"))
        .arg("serve")
        .args(args("banter-data"))
        .current_dir(dir.path())
        .output()
        .expect("run a second banter serve");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second server started: {stderr}"
    );
    let expected = format!(
        "data directory banter-data is in use by another banter process (pid {}); stop it or \
         pick another --data-dir",
        first.child.id()
    );
    assert!(stderr.contains(&expected), "stderr: {stderr}");

    // The first server is untouched by the attempt, and a backup runs beside it.
    user(&api, "bob").await;
    let backup = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["backup", "copy.db", "--data-dir", "banter-data"])
        .current_dir(dir.path())
        .output()
        .expect("run banter backup");
    assert!(
        backup.status.success(),
        "backup beside a running server: {}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(dir.path().join("copy.db").exists());

    // A holder that was killed leaves its lock file, but not its lock.
    drop(first);
    let third = Process::start(dir.path(), &args("banter-data"));
    let api = Api::new(third.addr.clone());
    let again = api.login("alice", common::PASSWORD, None).await;
    assert!(again.is_ok(), "the data survived: {again:?}");
}
