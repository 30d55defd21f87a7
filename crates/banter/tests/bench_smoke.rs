//! A short run of every `banter bench` scenario, so the load generator cannot rot: each must
//! finish, write its JSON and chart, and (at these gentle rates) lose nothing.

use std::path::Path;
use std::process::Command;

/// Runs `banter bench <args>` into `out` and returns the parsed JSON report.
fn bench(out: &Path, args: &[&str]) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_banter"))
        .arg("bench")
        .args(args)
        .args(["--quiet", "--out"])
        .arg(out)
        .status()
        .expect("run banter bench");
    assert!(status.success(), "banter bench {args:?} failed: {status}");
    let json = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON result");
    let svg = json.with_extension("svg");
    let chart = std::fs::read_to_string(&svg).expect("an SVG chart");
    assert!(chart.contains("<svg"), "{} is not an SVG", svg.display());
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

fn figure(report: &serde_json::Value, name: &str) -> f64 {
    report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == name)
        .unwrap_or_else(|| panic!("no figure {name:?} in {report}"))[1]
        .as_f64()
        .unwrap()
}

fn assert_lossless(report: &serde_json::Value, deliveries: u64) {
    let d = &report["delivery"];
    assert_eq!(d["expected"], deliveries, "{report}");
    assert_eq!(d["received"], deliveries, "{report}");
    assert_eq!(
        (d["lost"].as_u64(), d["duplicated"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(report["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["server"]["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn group_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "group",
            "--members",
            "20",
            "--senders",
            "2",
            "--rate",
            "50",
            "--seconds",
            "2",
        ],
    );
    assert_lossless(&r, 20 * 100);
    assert_eq!(figure(&r, "messages sent"), 100.0);
    // One node's store took every send, nothing forwarded.
    let (appends, forwards) = store_totals(&r, 1);
    assert!(appends >= 100.0, "{r}");
    assert_eq!(forwards, 0, "{r}");
}

/// The appends committed and the appends forwarded, summed over the `nodes` nodes the report
/// must list under `server.store`.
fn store_totals(report: &serde_json::Value, nodes: usize) -> (f64, u64) {
    let store = report["server"]["store"].as_array().expect("server.store");
    assert_eq!(store.len(), nodes, "{report}");
    let appends = store
        .iter()
        .map(|s| s["commits"].as_f64().unwrap() * s["appends_per_commit"].as_f64().unwrap_or(0.0))
        .sum::<f64>()
        .round();
    let forwards = store.iter().map(|s| s["forwards"].as_u64().unwrap()).sum();
    (appends, forwards)
}

#[test]
fn direct_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &["direct", "--pairs", "10", "--rate", "100", "--seconds", "2"],
    );
    assert_lossless(&r, 200);
    assert_eq!(figure(&r, "send errors"), 0.0);
}

#[test]
fn pipelined_direct_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "direct",
            "--pairs",
            "5",
            "--window",
            "8",
            "--rate",
            "400",
            "--seconds",
            "2",
        ],
    );
    assert_lossless(&r, 800);
    assert_eq!(figure(&r, "send errors"), 0.0);
    assert_eq!(r["params"]["window"], 8);
}

#[test]
fn room_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "room",
            "--occupants",
            "50",
            "--senders",
            "1",
            "--rate",
            "20",
            "--seconds",
            "2",
        ],
    );
    assert_lossless(&r, 50 * 40);
}

#[test]
fn ramp_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "group",
            "--members",
            "10",
            "--senders",
            "1",
            "--rate",
            "20",
            "--ramp",
            "--step-seconds",
            "1",
            "--p99-ms",
            "5000",
            "--max-steps",
            "2",
            "--warmup-seconds",
            "1",
        ],
    );
    assert!(figure(&r, "highest rate holding the bound (msg/s)") >= 20.0);
}

#[test]
fn connections_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(dir.path(), &["connections", "--count", "300"]);
    assert_eq!(figure(&r, "connections open"), 300.0);
    assert!(figure(&r, "server RSS per connection (bytes)") > 0.0);
}

#[test]
fn logins_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "logins",
            "--concurrency",
            "16",
            "--seconds",
            "2",
            "--pingers",
            "1",
        ],
    );
    // Default throttle: 5 guesses at once, then one after the 1 s backoff.
    assert!(figure(&r, "victim guesses hashed") <= 6.0);
    assert!(figure(&r, "refused rate_limited (throttle)") > 0.0);
    assert!(figure(&r, "most hashes at once") >= 1.0);
    assert!(r["latency"]["samples"].as_u64().unwrap() > 0);
}

#[test]
fn media_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench(
        dir.path(),
        &[
            "media",
            "--megabytes",
            "4",
            "--uploads",
            "2",
            "--images",
            "1",
            "--megapixels",
            "1",
        ],
    );
    assert!(figure(&r, "upload MiB/s, median") > 0.0);
    assert_eq!(figure(&r, "JPEG width"), 1154.0);
    assert!(figure(&r, "JPEG upload to answer (ms), median") > 0.0);
    assert!(figure(&r, "thumbnail alone (ms), median") > 0.0);
}

/// `--store` and `--bus` for the cluster runs: the local PostgreSQL and NATS, or the ones the
/// server's tests are pointed at. When they cannot be reached the bench fails, and so does the
/// test: it never skips.
/// Runs `banter bench` with `args` on the local PostgreSQL and NATS (or those named by
/// `BANTER_TEST_POSTGRES` and `BANTER_TEST_NATS`), writing its results into `out`.
fn cluster_bench(out: &Path, args: &[&str]) -> serde_json::Value {
    let store = std::env::var("BANTER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    let bus =
        std::env::var("BANTER_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let (store, bus) = (format!("--store={store}"), format!("--bus={bus}"));
    let mut all = args.to_vec();
    all.extend([store.as_str(), bus.as_str()]);
    bench(out, &all)
}

#[test]
fn cluster_direct_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = cluster_bench(
        dir.path(),
        &[
            "direct",
            "--nodes",
            "2",
            "--pairs",
            "6",
            "--rate",
            "60",
            "--seconds",
            "2",
        ],
    );
    assert_lossless(&r, 120);
    assert_eq!(figure(&r, "nodes"), 2.0);
    // Every pair's two users are on different nodes.
    assert_eq!(figure(&r, "deliveries crossing nodes (share)"), 1.0);
    assert_eq!(r["server"]["nodes"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["params"]["store"], "postgres");
}

#[test]
fn cluster_group_and_connections_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let r = cluster_bench(
        dir.path(),
        &[
            "group",
            "--nodes",
            "3",
            "--members",
            "9",
            "--senders",
            "3",
            "--rate",
            "30",
            "--seconds",
            "2",
        ],
    );
    assert_lossless(&r, 9 * 60);
    // Sender j and member i on nodes j % 3 and i % 3: two of three deliveries cross.
    let cross = figure(&r, "deliveries crossing nodes (share)");
    assert!((cross - 0.667).abs() < 0.001, "{cross}");
    // The group's writer committed every send; the senders on the two other nodes forwarded
    // theirs to it.
    let (appends, forwards) = store_totals(&r, 3);
    assert!(appends >= 60.0, "{r}");
    assert!(forwards > 0, "{r}");

    let dir = tempfile::tempdir().unwrap();
    let r = cluster_bench(
        dir.path(),
        &["connections", "--nodes", "2", "--count", "200"],
    );
    assert_eq!(figure(&r, "connections open"), 200.0);
    assert_eq!(figure(&r, "most connections on one node"), 100.0);
    assert!(figure(&r, "server RSS per connection (bytes)") > 0.0);
}
