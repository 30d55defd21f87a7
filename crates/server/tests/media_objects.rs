//! Media on an object store (`media_store`) against a real server: the same upload, send,
//! download, range and sweep behaviour as on the local directory, with the bytes in the
//! object store's own layout (object_store's local file system here, and its in-memory store;
//! S3 goes through the same code with another builder).

mod common;

use std::time::{Duration, Instant};

use banter_client::protocol::{AttachmentKind, SendAck};
use common::media::{file_send, files_under, get, jpeg_with_exif, upload};
use common::{ok, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_media_flow_runs_on_an_object_store() {
    let objects = tempfile::tempdir().unwrap();
    let url = format!("file://{}", objects.path().display());
    let server = start_with(|c| {
        c.media_store = url;
        // Long enough for the sends below to come first on a loaded machine, short enough
        // for the test to see the sweep.
        c.media_unreferenced_secs = 3;
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;

    let photo = jpeg_with_exif(640, 480);
    let up = upload(&server.addr, &alice.token, Some("cat.jpg"), &photo).await;
    assert_eq!(up.status, 201, "{:?}", String::from_utf8_lossy(&up.body));
    let id = up.json()["id"].as_str().unwrap().to_owned();
    // The original and its thumbnail are objects; nothing but temporary space is local.
    let stored = files_under(objects.path());
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().any(|p| p.ends_with(&id)));
    let local = server.config.data_dir.join("media");
    assert!(
        files_under(&local)
            .iter()
            .all(|p| p.starts_with(local.join("tmp"))),
        "{:?}",
        files_under(&local)
    );

    let a = server.connect(&alice).await;
    let _: SendAck = ok(&a, file_send(&bob.id, "img", &id, AttachmentKind::Image)).await;
    let original = get(&server.addr, &bob.token, &format!("/v1/media/{id}"), &[]).await;
    assert_eq!(original.status, 200);
    let decoded = image::load_from_memory(&original.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(!has(&original.body, b"GPSLatitude"), "served stripped");
    let thumb = get(
        &server.addr,
        &bob.token,
        &format!("/v1/media/{id}/thumbnail"),
        &[],
    )
    .await;
    assert_eq!(thumb.status, 200);
    assert_eq!(image::load_from_memory(&thumb.body).unwrap().width(), 320);
    let part = get(
        &server.addr,
        &bob.token,
        &format!("/v1/media/{id}"),
        &["Range: bytes=100-199"],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, original.body[100..200]);
    let tail = get(
        &server.addr,
        &bob.token,
        &format!("/v1/media/{id}"),
        &["Range: bytes=-10"],
    )
    .await;
    assert_eq!(tail.body, original.body[original.body.len() - 10..]);
    assert_eq!(
        get(&server.addr, &carol.token, &format!("/v1/media/{id}"), &[])
            .await
            .status,
        404
    );

    // Identical bytes are stored once; a file sent nowhere leaves the object store after its
    // age, the sent one stays.
    let again = upload(&server.addr, &bob.token, None, &photo).await;
    assert_eq!(
        (again.status, again.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert_eq!(files_under(objects.path()), stored);
    let draft = upload(&server.addr, &alice.token, None, b"draft, never sent\n").await;
    assert_eq!(draft.status, 201);
    let draft = draft.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(files_under(objects.path()).len(), 3);
    // The sweep removes the record, then the bytes: wait for the bytes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_under(objects.path()) != stored {
        assert!(Instant::now() < deadline, "the unsent file is still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = get(
        &server.addr,
        &alice.token,
        &format!("/v1/media/{draft}/info"),
        &[],
    )
    .await;
    assert_eq!(info.status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_several_parts_round_trips_through_the_in_memory_store() {
    let server = start_with(|c| c.media_store = "memory://".into()).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // 12 MiB and a bit (text, an allowed type): three parts of an upload (5 MiB each, the
    // last one shorter).
    let mut file = Vec::new();
    let mut i = 0u64;
    while file.len() < 12 * 1024 * 1024 + 4321 {
        file.extend_from_slice(format!("line {i}\n").as_bytes());
        i += 1;
    }
    let up = upload(&server.addr, &alice.token, Some("log.txt"), &file).await;
    assert_eq!(up.status, 201, "{:?}", String::from_utf8_lossy(&up.body));
    let id = up.json()["id"].as_str().unwrap().to_owned();
    let a = server.connect(&alice).await;
    let _: SendAck = ok(&a, file_send(&bob.id, "bin", &id, AttachmentKind::File)).await;
    let whole = get(&server.addr, &bob.token, &format!("/v1/media/{id}"), &[]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == file, "the bytes come back unchanged");
    // A range across the first part boundary.
    let (first, last) = (5 * 1024 * 1024 - 7, 5 * 1024 * 1024 + 8);
    let range = format!("Range: bytes={first}-{last}");
    let part = get(
        &server.addr,
        &bob.token,
        &format!("/v1/media/{id}"),
        &[&range],
    )
    .await;
    assert_eq!(part.status, 206);
    assert!(part.body == file[first..=last]);
    server.stop().await;
}
