//! `scripts/cluster.sh` starts a local cluster of three real nodes (one PostgreSQL scratch
//! database, the NATS on this machine) on the ports it is given: a message sent on one node is
//! pushed to a device on another, and stopping the script stops every node.
//!
//! Needs PostgreSQL (`BANTER_TEST_POSTGRES`) and NATS (`BANTER_TEST_NATS`); without them the test
//! fails, it never skips.

mod common;
#[path = "../../server/tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;
#[path = "../../server/tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use banter_client::{Api, Connection, Event, Target};
use common::user;
use postgres::{Database, admin_url};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_script_starts_three_nodes_that_deliver_to_each_other() {
    let db = Database::create(&admin_url()).await;
    let cluster = nats::fresh_cluster();
    let logs = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster.sh");
    let mut child = Command::new(script)
        .args(["--ports", &list])
        .env("BANTER_BIN", env!("CARGO_BIN_EXE_banter"))
        .env("BANTER_STORE", &db.url)
        .env("BANTER_BUS", nats::url())
        .env("BANTER_CLUSTER", &cluster)
        .env("CLUSTER_DIR", logs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run scripts/cluster.sh");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addrs = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("the script ended before the cluster was ready")
            .unwrap();
        if let Some(url) = line.split(": http://").nth(1) {
            addrs.push(url.to_owned());
        }
        if line.starts_with("cluster ready") {
            break;
        }
    }
    let want: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert_eq!(addrs, want, "one node per port, in order");

    let (_, alice) = user(&Api::new(addrs[0].clone()), "alice").await;
    let (bob_id, bob) = user(&Api::new(addrs[1].clone()), "bob").await;
    let a = Connection::connect(&addrs[0], &alice).await.unwrap();
    let mut b = Connection::connect(&addrs[2], &bob).await.unwrap();
    let ack = a
        .send_text(&Target::User(bob_id), "k1", "across nodes")
        .await
        .unwrap();
    let pushed = loop {
        match tokio::time::timeout(Duration::from_secs(10), b.next_event()).await {
            Ok(Some(Event::Message(m))) => break m,
            Ok(Some(_)) => {}
            other => panic!("no push on node 2: {other:?}"),
        }
    };
    assert_eq!(
        (pushed.seq, pushed.text.as_str()),
        (ack.seq, "across nodes")
    );

    // SIGTERM to the script stops every node.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    for port in ports {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "node on port {port} still up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nats::remove_clusters(vec![cluster]);
}
