//! `banter serve --store postgres://…` on the real binary: it serves from PostgreSQL (a
//! scratch database on `BANTER_TEST_POSTGRES`, default `postgres://root@127.0.0.1:5432/test`),
//! logs the store's URL with its password as `***`, never creates the data directory; and a
//! store that is not a PostgreSQL URL is refused, naming the key.

mod common;
// The server crate's PostgreSQL helpers for tests (scratch databases), shared by path.
#[path = "../../server/tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

use std::process::Command;

use banter_client::{Api, Connection, Target};
use common::{FAST, Process, user};
use postgres::{Database, admin_url};

/// `url` with a password in its user part: the one it has, or a made-up one (which a server
/// trusting local connections ignores). Returns the URL and the password.
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (user_info, host) = rest.split_once('@').expect("a user in the URL");
    match user_info.split_once(':') {
        Some((_, password)) => (url.to_owned(), password.to_owned()),
        None => {
            let password = "not-a-real-secret-7f3a".to_owned();
            (
                format!("{scheme}://{user_info}:{password}@{host}"),
                password,
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_postgres_store_logs_the_url_without_its_password() {
    let db = Database::create(&admin_url()).await;
    let (url, password) = with_password(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = FAST.to_vec();
    args.extend(["--data-dir", data.to_str().unwrap(), "--store", &url]);
    let server = Process::start(dir.path(), &args);

    // It serves, from the database: what it acknowledged is in PostgreSQL.
    let api = Api::new(server.addr.clone());
    let (_, alice) = user(&api, "alice").await;
    let (bob, _) = user(&api, "bob").await;
    let conn = Connection::connect(&server.addr, &alice).await.unwrap();
    let ack = conn
        .send_text(&Target::User(bob), "k1", "stored in postgres")
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    let client = postgres::connect(&db.url).await;
    let row = client
        .query_one(
            "SELECT count(*) FROM messages WHERE client_msg_id = 'k1'",
            &[],
        )
        .await
        .expect("count the message in PostgreSQL");
    assert_eq!(row.get::<_, i64>(0), 1);

    let log = server.log_text();
    let start = log
        .lines()
        .find(|l| l.contains("banter starting"))
        .unwrap_or_else(|| panic!("no start line in\n{log}"));
    let shown = url.replace(&format!(":{password}@"), ":***@");
    assert!(
        start.contains(&format!("store=\"{shown}\"")),
        "store={shown:?} in {start}"
    );
    assert!(
        !log.contains(&password),
        "the password is in the log:\n{log}"
    );
    assert!(!data.exists(), "the data directory was created");
    drop(server);
    // Dropped after the server: nothing holds a connection any more.
    drop(db);
}

#[test]
fn a_store_that_is_not_a_postgres_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "mysql://root@db/banter",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run banter");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid configuration: store must be"),
        "{stderr}"
    );
    assert!(!dir.path().join("banter-data").exists());
}
