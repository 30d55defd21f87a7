//! Media end to end against a real server: upload, send as an attachment, download with
//! authorization per conversation, dedupe and the pre-check, the sweep, refusals that leave
//! nothing on disk, ranges and the headers of untrusted files.

mod common;

use std::time::{Duration, Instant};

use banter_client::Event;
use banter_client::protocol::{ClientRequest, GroupInfo, Message, SendAck};
use common::media::{self, files_under, jpeg_with_exif, png_declaring, upload};
use common::{TestServer, TestUser, create_group, next_matching, ok, start_with};

/// Stored blobs (the temporary directory not counted).
fn blobs(server: &TestServer) -> Vec<std::path::PathBuf> {
    files_under(&server.config.data_dir.join("media"))
        .into_iter()
        .filter(|p| !p.starts_with(server.config.data_dir.join("media").join("tmp")))
        .collect()
}

fn temp_files(server: &TestServer) -> usize {
    files_under(&server.config.data_dir.join("media").join("tmp")).len()
}

async fn get(server: &TestServer, user: &TestUser, path: &str, extra: &[&str]) -> media::Reply {
    media::get(&server.addr, &user.token, path, extra).await
}

fn attachment_send(
    to: Option<&TestUser>,
    group: Option<&str>,
    key: &str,
    id: &str,
) -> ClientRequest {
    ClientRequest::Send {
        to: to.map(|u| u.id.clone()),
        conversation: group.map(str::to_owned),
        client_msg_id: key.into(),
        text: "look at this".into(),
        attachment: Some(banter_client::protocol::AttachmentRequest {
            kind: banter_client::protocol::AttachmentKind::Image,
            id: id.into(),
            name: None,
            duration_ms: None,
        }),
        sticker: None,
    }
}

async fn next_message(conn: &mut banter_client::Connection) -> Message {
    next_matching(conn, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_sent_downloaded_and_readable_only_by_members() {
    let server = start_with(|_| {}).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let photo = jpeg_with_exif(640, 480);
    let up = upload(&server.addr, &alice.token, Some("cat.jpg"), &photo).await;
    assert_eq!(up.status, 201, "{:?}", String::from_utf8_lossy(&up.body));
    let info = up.json();
    let id = info["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(info["type"], "image/jpeg");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(info["thumbnail"], true);
    assert!(info["color"].as_str().unwrap().starts_with('#'));
    assert_eq!(info["name"], "cat.jpg");

    let a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    let ack: SendAck = ok(&a, attachment_send(Some(&bob), None, "img-1", &id)).await;
    let got = next_message(&mut b).await;
    assert_eq!(got.seq, ack.seq);
    let attachment = got.attachment.expect("the message carries the file");
    assert_eq!(attachment.id, id);
    assert_eq!(attachment.name.as_deref(), Some("cat.jpg"));
    assert_eq!(attachment.caption, "look at this");
    assert_eq!(
        (attachment.width, attachment.height),
        (Some(640), Some(480))
    );
    assert_eq!(
        got.text, "[Image: cat.jpg]\nlook at this",
        "old clients see text"
    );

    // The recipient downloads the original, stripped of its EXIF, and the thumbnail.
    let original = get(&server, &bob, &format!("/v1/media/{id}"), &[]).await;
    assert_eq!(original.status, 200);
    assert_eq!(original.header("content-type"), Some("image/jpeg"));
    // The name is the uploader's to give: the recipient has it from the message.
    assert_eq!(original.header("content-disposition"), Some("inline"));
    let own = get(&server, &alice, &format!("/v1/media/{id}"), &[]).await;
    assert_eq!(
        own.header("content-disposition"),
        Some("inline; filename*=UTF-8''cat.jpg")
    );
    assert_eq!(own.body, original.body);
    let decoded = image::load_from_memory(&original.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(has(&photo, b"GPSLatitude"));
    assert!(!has(&original.body, b"GPSLatitude"), "EXIF is not served");
    let thumb = get(&server, &bob, &format!("/v1/media/{id}/thumbnail"), &[]).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    let decoded = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 240));

    // Not a member of the conversation: as if it did not exist.
    for path in [
        format!("/v1/media/{id}"),
        format!("/v1/media/{id}/thumbnail"),
        format!("/v1/media/{id}/info"),
        format!("/v1/media/{}", "0".repeat(64)),
        "/v1/media/not-a-hash".to_owned(),
    ] {
        let r = get(&server, &carol, &path, &[]).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "unknown_media"),
            "{path}"
        );
    }
    // Nor may a non-member attach it: carol cannot send alice's file to bob.
    let c = server.connect(&carol).await;
    let refused = common::refused(&c, attachment_send(Some(&bob), None, "steal", &id)).await;
    assert_eq!(refused, banter_client::protocol::ErrorCode::UnknownMedia);

    // In a group: members read it, and a removed member loses access.
    let group: GroupInfo = ok(&a, create_group("pics", &[&bob, &carol], false)).await;
    let second = upload(&server.addr, &alice.token, None, &jpeg_with_exif(64, 64)).await;
    assert_eq!(second.status, 201);
    let second = second.json()["id"].as_str().unwrap().to_owned();
    let _: SendAck = ok(&a, attachment_send(None, Some(&group.id), "img-2", &second)).await;
    let path = format!("/v1/media/{second}");
    assert_eq!(get(&server, &carol, &path, &[]).await.status, 200);
    let _: serde_json::Value = ok(
        &a,
        ClientRequest::GroupRemove {
            group: group.id.clone(),
            user: carol.id.clone(),
        },
    )
    .await;
    let after = get(&server, &carol, &path, &[]).await;
    assert_eq!(
        (after.status, after.code().as_str()),
        (404, "unknown_media")
    );
    assert_eq!(get(&server, &bob, &path, &[]).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_bytes_are_stored_once_and_unsent_files_are_swept() {
    let server = start_with(|c| c.media_unreferenced_secs = 1).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let file = b"minutes of the meeting\n".repeat(100);
    let first = upload(&server.addr, &alice.token, Some("minutes.txt"), &file).await;
    assert_eq!(first.status, 201);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let stored = blobs(&server);
    assert_eq!(stored.len(), 1);
    // Bob uploads the same bytes: stored once, counted in his quota too.
    let again = upload(&server.addr, &bob.token, None, &file).await;
    assert_eq!(again.status, 200, "these bytes were stored already");
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(again.json()["used_bytes"], file.len());
    assert_eq!(blobs(&server), stored);
    // The pre-check: alice holds it, so sending it again needs no upload.
    let pre = get(&server, &alice, &format!("/v1/media/{id}/info"), &[]).await;
    assert_eq!(pre.status, 200);
    assert_eq!(pre.json()["name"], "minutes.txt");
    let a = server.connect(&alice).await;
    let _: SendAck = ok(
        &a,
        ClientRequest::Send {
            to: Some(bob.id.clone()),
            conversation: None,
            client_msg_id: "file-1".into(),
            text: String::new(),
            attachment: Some(banter_client::protocol::AttachmentRequest {
                kind: banter_client::protocol::AttachmentKind::File,
                id: id.clone(),
                name: None,
                duration_ms: None,
            }),
            sticker: None,
        },
    )
    .await;
    // A file sent nowhere goes after its age; the one sent stays.
    let unsent = upload(&server.addr, &alice.token, None, b"draft, never sent\n").await;
    assert_eq!(unsent.status, 201);
    let unsent = unsent.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(blobs(&server).len(), 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(&server, &alice, &format!("/v1/media/{unsent}/info"), &[]).await;
        if r.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the unsent file is still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        blobs(&server),
        stored,
        "its bytes are gone, the sent file's stay"
    );
    let kept = get(&server, &bob, &format!("/v1/media/{id}"), &[]).await;
    assert_eq!((kept.status, kept.body.as_slice()), (200, file.as_slice()));
    server.stop().await;
}

/// What is uploaded (a description, a name, the bytes) and the status and code it gets.
type Refusal = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_typed_and_leave_nothing_on_disk() {
    let server = start_with(|c| {
        c.media_max_file_bytes = 64 * 1024;
        c.media_quota_bytes = 100 * 1024;
        c.media_types = "image/png,image/jpeg,image/svg+xml,text/plain".into();
    })
    .await;
    let alice = server.user("alice").await;
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(4096, 0);
    let cases: Vec<Refusal> = vec![
        ("oversize", None, vec![b'a'; 65 * 1024], 413, "media_too_large"),
        ("a disallowed type", Some("report.pdf"), b"%PDF-1.4\n%\xe2\xe3\n1 0 obj".to_vec(), 415, "unsupported_media_type"),
        ("a renamed executable", Some("holiday.jpg"), elf, 415, "unsupported_media_type"),
        ("a decompression bomb", Some("bomb.png"), png_declaring(100_000, 100_000), 400, "invalid_media"),
        ("an SVG with script", Some("logo.svg"), b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>".to_vec(), 415, "unsupported_media_type"),
        ("an SVG with a handler", None, b"<?xml version=\"1.0\"?><svg onload=\"fetch('/x')\"></svg>".to_vec(), 415, "unsupported_media_type"),
        ("a path in the name", Some("../../etc/passwd"), b"hello\n".to_vec(), 400, "invalid_file_name"),
        ("a damaged image", Some("broken.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage".to_vec(), 400, "invalid_media"),
        ("an empty file", None, Vec::new(), 400, "invalid_media"),
    ];
    for (what, name, body, status, code) in cases {
        let r = upload(&server.addr, &alice.token, name, &body).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{what}");
        assert!(blobs(&server).is_empty(), "{what}: nothing stored");
        assert_eq!(temp_files(&server), 0, "{what}: no temporary file left");
    }
    // Oversize without a declared length (chunked): refused once it passes the limit.
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        alice.token
    );
    use tokio::io::AsyncWriteExt;
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'q'; 16 * 1024];
    for _ in 0..8 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    _ = stream.write_all(b"0\r\n\r\n").await;
    let r = media::read_reply(&mut stream).await;
    assert_eq!((r.status, r.code().as_str()), (413, "media_too_large"));
    assert!(blobs(&server).is_empty());
    assert_eq!(temp_files(&server), 0);
    // Over quota: two files fit, the third does not, and leaves nothing.
    for i in 0..2u8 {
        let r = upload(&server.addr, &alice.token, None, &vec![b'a' + i; 40 * 1024]).await;
        assert_eq!(r.status, 201);
    }
    let r = upload(&server.addr, &alice.token, None, &vec![b'z'; 40 * 1024]).await;
    assert_eq!((r.status, r.code().as_str()), (413, "quota_exceeded"));
    assert_eq!(blobs(&server).len(), 2);
    assert_eq!(temp_files(&server), 0);
    // Without a token: 401.
    let r = upload(&server.addr, "nope", None, b"hi\n").await;
    assert_eq!(r.status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_the_headers_of_untrusted_files() {
    let server = start_with(|c| {
        c.media_types = format!(
            "{},image/svg+xml",
            banter_server::config::DEFAULT_MEDIA_TYPES
        );
    })
    .await;
    let alice = server.user("alice").await;
    let text: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    let id = upload(&server.addr, &alice.token, Some("notes é.txt"), &text)
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/media/{id}");
    let whole = get(&server, &alice, &path, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, text);
    assert_eq!(
        whole.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        whole.header("content-disposition"),
        Some("attachment; filename*=UTF-8''notes%20%C3%A9.txt")
    );
    assert_eq!(whole.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        whole.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(
        whole.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").unwrap().to_owned();

    let part = get(&server, &alice, &path, &["Range: bytes=10-19"]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(part.body, &text[10..20]);
    let tail = get(&server, &alice, &path, &["Range: bytes=-5"]).await;
    assert_eq!((tail.status, tail.body.as_slice()), (206, &text[995..]));
    let open = get(&server, &alice, &path, &["Range: bytes=990-"]).await;
    assert_eq!((open.status, open.body.as_slice()), (206, &text[990..]));
    let outside = get(&server, &alice, &path, &["Range: bytes=2000-"]).await;
    assert_eq!(outside.status, 416);
    assert_eq!(outside.header("content-range"), Some("bytes */1000"));
    let several = get(&server, &alice, &path, &["Range: bytes=0-1,5-6"]).await;
    assert_eq!((several.status, several.body.len()), (200, 1000));
    let cached = get(&server, &alice, &path, &[&format!("If-None-Match: {etag}")]).await;
    assert_eq!((cached.status, cached.body.len()), (304, 0));

    // An image is inline; a (harmless) SVG never is.
    let img = upload(&server.addr, &alice.token, None, &jpeg_with_exif(32, 32))
        .await
        .json();
    let img = get(
        &server,
        &alice,
        &format!("/v1/media/{}", img["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(img.header("content-disposition"), Some("inline"));
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"4\" height=\"4\"/></svg>";
    let svg = upload(&server.addr, &alice.token, None, svg).await;
    assert_eq!(svg.status, 201, "{}", String::from_utf8_lossy(&svg.body));
    let svg = get(
        &server,
        &alice,
        &format!("/v1/media/{}", svg.json()["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert_eq!(svg.header("content-disposition"), Some("attachment"));
    assert_eq!(
        svg.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_uploads_checks_sends_and_downloads() {
    let server = start_with(|_| {}).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bytes = bytes::Bytes::from(jpeg_with_exif(100, 50));
    let (info, new) = server
        .api
        .upload_media(&alice.token, Some("pic.jpg"), bytes.clone())
        .await
        .unwrap();
    assert!(new);
    let (_, again) = server
        .api
        .upload_media(&alice.token, None, bytes)
        .await
        .unwrap();
    assert!(!again, "the same bytes are not new");
    let pre = server.api.media_info(&alice.token, &info.id).await.unwrap();
    assert_eq!(pre.id, info.id);
    match server.api.media_info(&bob.token, &info.id).await {
        Err(banter_client::ClientError::Api { status, body }) => {
            assert_eq!(
                (status, body.code),
                (404, banter_client::protocol::ErrorCode::UnknownMedia)
            );
        }
        other => panic!("bob may not see alice's file yet: {other:?}"),
    }
    let a = server.connect(&alice).await;
    let mut b = server.connect(&bob).await;
    a.send_attachment(
        &banter_client::Target::User(bob.id.clone()),
        "sdk-1",
        "",
        banter_client::protocol::AttachmentRequest {
            kind: banter_client::protocol::AttachmentKind::Image,
            id: info.id.clone(),
            name: None,
            duration_ms: None,
        },
    )
    .await
    .unwrap();
    let got = next_message(&mut b).await;
    assert_eq!(
        got.text, "[Image: pic.jpg]",
        "no caption: the fallback line alone"
    );
    let thumb = server
        .api
        .download_media(&bob.token, &info.id, true)
        .await
        .unwrap();
    let decoded = image::load_from_memory(&thumb).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (100, 50),
        "never upscaled"
    );
    server.stop().await;
}
