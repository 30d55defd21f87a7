//! The sweep removes stored bytes no record names (left by a process that stopped between
//! storing an upload and recording it), on the local directory and on an object store, and
//! leaves every file a record names, and anything that is not a media key, alone.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use banter_client::protocol::{AttachmentKind, SendAck};
use common::media::{file_send, files_under, get, jpeg_with_exif, upload};
use common::{TestServer, ok, start_with};

/// Uploads an image (original and thumbnail) and a text file, sends both so the sweep keeps
/// them, and returns their ids.
async fn kept_files(server: &TestServer) -> (String, String, common::TestUser) {
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let a = server.connect(&alice).await;
    let mut ids = Vec::new();
    for (name, bytes, kind) in [
        ("cat.jpg", jpeg_with_exif(64, 48), AttachmentKind::Image),
        ("notes.txt", b"kept notes\n".to_vec(), AttachmentKind::File),
    ] {
        let up = upload(&server.addr, &alice.token, Some(name), &bytes).await;
        assert_eq!(up.status, 201);
        let id = up.json()["id"].as_str().unwrap().to_owned();
        let _: SendAck = ok(&a, file_send(&bob.id, name, &id, kind)).await;
        ids.push(id);
    }
    let text = ids.pop().unwrap();
    (ids.pop().unwrap(), text, bob)
}

/// Waits until none of `gone` exists, then checks that every one of `kept` does.
async fn swept(gone: &[PathBuf], kept: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gone.iter().any(|p| p.exists()) {
        assert!(Instant::now() < deadline, "never swept: {gone:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in kept {
        assert!(p.exists(), "{} was removed", p.display());
    }
}

/// Writes a file stored, by its time, an hour ago (older than the retention).
fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    path.to_owned()
}

/// The retention of the tests below: long enough for their uploads to be sent first on a
/// loaded machine (the sweep of bytes no record names runs every retention period).
const RETENTION_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_no_record_names_are_swept_from_the_media_directory() {
    let server = start_with(|c| c.media_unreferenced_secs = RETENTION_SECS).await;
    let (image, text, bob) = kept_files(&server).await;
    let media = server.config.data_dir.join("media");
    let before = files_under(&media);
    let stray = "ab".repeat(32);
    let gone = [
        write(&media.join("ab").join(&stray), b"left by a crash"),
        // A thumbnail for a file that has none.
        write(&media.join(&text[..2]).join(format!("{text}.thumb")), b"no"),
    ];
    // Not media keys, or not in their shard: not the server's to remove.
    let mut kept = before.clone();
    for (dir, name) in [
        ("ab", "README"),
        ("ab", "notes"),
        ("ab", "cafe"),
        ("cd", stray.as_str()),
    ] {
        kept.push(write(&media.join(dir).join(name), b"an operator's"));
    }
    swept(&gone, &kept).await;
    // The listing goes through the shards in order: once a stray file in the last one is
    // gone, a whole pass ran after the first removals, and the kept files are still there.
    let last = write(&media.join("ff").join("ff".repeat(32)), b"left by a crash");
    swept(&[last], &kept).await;
    for id in [&image, &text] {
        let r = get(&server.addr, &bob.token, &format!("/v1/media/{id}"), &[]).await;
        assert_eq!(r.status, 200, "{id} is still served");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_no_record_names_are_swept_from_an_object_store() {
    let objects = tempfile::tempdir().unwrap();
    let url = format!("file://{}", objects.path().display());
    let server = start_with(|c| {
        c.media_store = url;
        c.media_unreferenced_secs = RETENTION_SECS;
    })
    .await;
    let (image, _text, bob) = kept_files(&server).await;
    let before = files_under(objects.path());
    assert_eq!(
        before.len(),
        3,
        "an image, its thumbnail and a text file: {before:?}"
    );
    let gone = [write(
        &objects.path().join("cd".repeat(32)),
        b"left by a crash",
    )];
    // Not ours: an object below another path, and objects not named like media keys.
    let mut kept = before.clone();
    for name in ["elsewhere/efef", "notes.txt", "cafe"] {
        kept.push(write(&objects.path().join(name), b"other"));
    }
    kept.push(write(
        &objects.path().join("elsewhere").join("ef".repeat(32)),
        b"other",
    ));
    swept(&gone, &kept).await;
    let r = get(
        &server.addr,
        &bob.token,
        &format!("/v1/media/{image}/thumbnail"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    server.stop().await;
}
