//! What the tests of the real `banter` binary share: a running `banter serve` process, the
//! flags that make it cheap to test, and test users.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use banter_client::Api;

pub const PASSWORD: &str = "correct horse battery";

/// A running `banter serve` process.
pub struct Process {
    pub child: Child,
    pub addr: String,
}

impl Process {
    /// Starts the binary in `cwd` with `args` after `serve`, and waits for its listen line.
    pub fn start(cwd: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
        command.arg("serve").args(args).current_dir(cwd);
        Self::spawn(command)
    }

    /// Runs `command` (which must end up exec'ing `banter serve`) and waits for its listen line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
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

    pub fn signal(&self, name: &str) {
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

pub const FAST: &[&str] = &[
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

pub async fn user(api: &Api, name: &str) -> (String, String) {
    let user = api.register(name, PASSWORD).await.unwrap();
    let login = api.login(name, PASSWORD, None).await.unwrap();
    (user.id, login.token)
}
