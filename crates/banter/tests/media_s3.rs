//! Media on S3: the real `banter serve` with `--media-store s3://…` against an S3-compatible
//! server (moto's, started by `scripts/s3-test-server.py` on a free port; `scripts/services.sh`
//! installs it). Exercises what only S3 has: request signing, multipart uploads in 5 MiB parts,
//! ranged gets, deletes by the sweep, and configuration from the `AWS_*` environment.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use banter_client::protocol::{AttachmentKind, AttachmentRequest, SendAck};
use banter_client::{Api, Connection, Target};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{PASSWORD, Process};

const MOTO_VERSION: &str = "5.2.5";

/// The Python that has moto: `BANTER_S3_PYTHON`, or where `scripts/services.sh` installs it.
fn moto_python() -> PathBuf {
    if let Some(p) = std::env::var_os("BANTER_S3_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    cache
        .join("banter-tests")
        .join(format!("moto-{MOTO_VERSION}"))
        .join("bin")
        .join("python")
}

/// The S3-compatible server, stopped when dropped (its standard input closes).
struct S3 {
    child: Child,
    addr: String,
}

impl S3 {
    fn start() -> Self {
        let python = moto_python();
        assert!(
            python.exists(),
            "{} is missing: run scripts/services.sh, which installs moto {MOTO_VERSION}",
            python.display()
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/s3-test-server.py"
        );
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the S3 test server");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port: u16 = port
            .trim()
            .parse()
            .expect("the S3 test server prints its port");
        Self {
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// One unsigned request (moto takes them): status and body.
    async fn call(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let status = reply[9..12].parse().unwrap();
        (status, reply)
    }

    /// The keys stored in `bucket`.
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.call("GET", &format!("/{bucket}?list-type=2")).await;
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .map(|s| s.split("</Key>").next().unwrap().to_owned())
            .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_lives_in_s3_when_media_store_names_a_bucket() {
    let s3 = S3::start();
    assert_eq!(
        s3.call("PUT", "/banter-media").await.0,
        200,
        "bucket created"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--password-memory-kib", "64", "--password-iterations", "1"])
        .args(["--media-store", "s3://banter-media/uploads"])
        .args(["--media-unreferenced-secs", "3"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("AWS_ENDPOINT", format!("http://{}", s3.addr))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "banter-test")
        .env("AWS_SECRET_ACCESS_KEY", "banter-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env_remove("BANTER_CONFIG");
    let server = Process::spawn(command);
    let api = Api::new(server.addr.clone());
    let mut tokens = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let user = api.register(name, PASSWORD).await.unwrap();
        let login = api.login(name, PASSWORD, None).await.unwrap();
        tokens.push((user.id, login.token));
    }
    let [(_, alice), (bob_id, bob), (_, carol)] = <[_; 3]>::try_from(tokens).unwrap();

    // 11 MiB and a bit of text: three parts of a multipart upload.
    let mut file = Vec::new();
    let mut i = 0u64;
    while file.len() < 11 * 1024 * 1024 + 99 {
        file.extend_from_slice(format!("entry {i}\n").as_bytes());
        i += 1;
    }
    let (info, new) = api
        .upload_media(&alice, Some("journal.txt"), Bytes::from(file.clone()))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(info.size, file.len() as u64);
    assert_eq!(
        s3.keys("banter-media").await,
        [format!("uploads/{}", info.id)]
    );

    let conn = Connection::connect(&server.addr, &alice).await.unwrap();
    let attachment = AttachmentRequest {
        kind: AttachmentKind::File,
        id: info.id.clone(),
        name: None,
        duration_ms: None,
    };
    let _: SendAck = conn
        .send_attachment(&Target::User(bob_id), "journal", "", attachment)
        .await
        .unwrap();
    let got = api.download_media(&bob, &info.id, false).await.unwrap();
    assert!(got == file, "bob downloads the bytes alice uploaded");
    assert!(api.download_media(&carol, &info.id, false).await.is_err());

    // Identical bytes again: nothing new in the bucket. A file sent nowhere leaves it after
    // its age; the sent one stays.
    let (_, new) = api
        .upload_media(&bob, None, Bytes::from(file.clone()))
        .await
        .unwrap();
    assert!(!new);
    let (draft, _) = api
        .upload_media(&alice, None, Bytes::from_static(b"a draft\n"))
        .await
        .unwrap();
    assert_eq!(s3.keys("banter-media").await.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s3.keys("banter-media").await.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the draft {} is still stored",
            draft.id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        s3.keys("banter-media").await,
        [format!("uploads/{}", info.id)]
    );
    // Every multipart upload was completed: none is left holding parts.
    let (status, uploads) = s3.call("GET", "/banter-media?uploads").await;
    assert_eq!(status, 200, "{uploads}");
    assert!(!uploads.contains("<Upload>"), "{uploads}");
    drop(server);
}
