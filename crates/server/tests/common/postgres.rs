//! PostgreSQL for tests: scratch databases on the shared server (`BANTER_TEST_POSTGRES`, by
//! default `postgres://root@127.0.0.1:5432/test`), and a private PostgreSQL instance a test
//! may stop and start (for outage drills) without disturbing the shared one. When PostgreSQL
//! cannot be reached or started the test fails, saying so; it never skips.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";
/// Where the PostgreSQL 15 programs are (Debian's layout).
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The shared server's admin URL (for creating and dropping scratch databases).
pub fn admin_url() -> String {
    std::env::var("BANTER_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Connects to `url` or fails the test with what to do about it.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, NoTls).await {
        Ok(pair) => pair,
        Err(e) => panic!(
            "cannot connect to PostgreSQL at {url}: {e} ({})\n\
             start it with `scripts/services.sh` (or point BANTER_TEST_POSTGRES at a server)",
            std::error::Error::source(&e).map_or_else(String::new, ToString::to_string)
        ),
    };
    tokio::spawn(async move {
        _ = connection.await;
    });
    client
}

/// Replaces the database name of a `postgres://…/db` URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, rest) = url.rsplit_once('/').expect("a postgres://host/db URL");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{name}{query}")
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A scratch database, dropped (with any connection left on it) when this value drops.
pub struct Database {
    pub name: String,
    pub url: String,
    admin: String,
}

impl Database {
    /// Creates a fresh database on the server at `admin`.
    pub async fn create(admin: &str) -> Self {
        let client = connect(admin).await;
        let name = format!(
            "banter_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a scratch database on {admin}: {e}"));
        Self {
            url: with_database(admin, &name),
            name,
            admin: admin.to_owned(),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: a thread with its
        // own runtime drops the database and is waited for.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the scratch database");
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&admin, NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop scratch database {}: {dropped:?}", self.url);
        }
    }
}

/// A PostgreSQL instance of this test's own, in a temporary directory, on a free port of
/// 127.0.0.1, run as the `postgres` user. Stopped (immediately) and removed when dropped, also
/// when the test panics.
pub struct Instance {
    dir: tempfile::TempDir,
    port: u16,
}

impl Instance {
    /// Creates (`initdb`, superuser `root`, trust authentication) and starts an instance.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the instance");
        run(Command::new("chown").arg("postgres:").arg(dir.path()));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let this = Self { dir, port };
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args([
                format!("{BIN}/initdb"),
                "-D".into(),
                this.data().display().to_string(),
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "root".into(),
            ]));
        this.resume();
        this
    }

    /// `postgres://root@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the instance at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts the (stopped) instance again on the same port and waits until it accepts.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options]);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(self.data())
            .args(args));
    }

    /// The instance's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let stopped = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{BIN}/pg_ctl"), "-D"])
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Already stopped is fine (pg_ctl exits non-zero then); the `TempDir` goes next.
        drop(stopped);
    }
}

/// Runs a command to completion with no terminal I/O, failing the test with its output.
fn run(command: &mut Command) {
    let what = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
