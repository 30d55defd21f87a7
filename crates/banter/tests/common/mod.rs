//! What the tests of the real `banter` binary share: a running `banter serve` process, the
//! flags that make it cheap to test, and test users.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use banter_client::Api;

pub const PASSWORD: &str = "correct horse battery";

/// A running `banter serve` process.
pub struct Process {
    pub child: Child,
    pub addr: String,
    /// Every line the server logged so far (stdout), the ones before it listened included.
    pub logs: Arc<Mutex<Vec<String>>>,
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
        let logs = Arc::new(Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines
                .next()
                .expect("banter exited before listening")
                .unwrap();
            logs.lock().unwrap().push(line.clone());
            // `addr=…` in text logs, `"addr":"…"` in JSON ones.
            if line.contains("banter listening")
                && let Some(rest) = line
                    .split("addr=")
                    .nth(1)
                    .or_else(|| line.split(r#""addr":""#).nth(1))
            {
                let end = rest.find([' ', '"']).unwrap_or(rest.len());
                break rest[..end].to_owned();
            }
        };
        // Keep reading the log so the child never blocks on a full pipe.
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, addr, logs }
    }

    /// The log so far, one string.
    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
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
