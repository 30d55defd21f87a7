//! HTTP for media tests: binary bodies and response headers, over a fresh connection each.

use std::io::Cursor;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response with its raw body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One request: `extra` header lines (`"Range: bytes=0-1"`), `body` as is.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    extra: &[&str],
    body: &[u8],
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may refuse before reading the whole body (and close): that is an answer too.
    _ = stream.write_all(body).await;
    read_reply(&mut stream).await
}

/// A `GET` of `path` as the holder of `token`, with `extra` header lines.
pub async fn get(addr: &str, token: &str, path: &str, extra: &[&str]) -> Reply {
    request(addr, "GET", path, token, extra, b"").await
}

/// A `send` of the uploaded file `id`, as `kind`, to the user `to`, without a caption.
pub fn file_send(
    to: &str,
    key: &str,
    id: &str,
    kind: banter_client::protocol::AttachmentKind,
) -> banter_client::protocol::ClientRequest {
    banter_client::protocol::ClientRequest::Send {
        to: Some(to.to_owned()),
        conversation: None,
        client_msg_id: key.into(),
        text: String::new(),
        attachment: Some(banter_client::protocol::AttachmentRequest {
            kind,
            id: id.into(),
            name: None,
            duration_ms: None,
        }),
        sticker: None,
    }
}

/// Reads one response to the end of the connection.
pub async fn read_reply(stream: &mut tokio::net::TcpStream) -> Reply {
    let mut raw = Vec::new();
    _ = stream.read_to_end(&mut raw).await;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// Uploads `bytes` named `name`.
pub async fn upload(addr: &str, token: &str, name: Option<&str>, bytes: &[u8]) -> Reply {
    let path = match name {
        Some(n) => format!("/v1/media?name={}", encode(n)),
        None => "/v1/media".to_owned(),
    };
    request(
        addr,
        "POST",
        &path,
        token,
        &["Content-Type: application/octet-stream"],
        bytes,
    )
    .await
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A `w` × `h` JPEG of a smooth gradient (so it does not compress to nothing), with an EXIF
/// segment holding "GPSLatitude" right after its start.
pub fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    let jpeg = out.into_inner();
    let payload = b"Exif\0\0GPSLatitude 52.37 N, a secret place";
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut with = jpeg[..2].to_vec();
    with.extend_from_slice(&[0xff, 0xe1]);
    with.extend_from_slice(&len.to_be_bytes());
    with.extend_from_slice(payload);
    with.extend_from_slice(&jpeg[2..]);
    with
}

/// A PNG of a few hundred bytes whose header declares `w` × `h` pixels (a decompression bomb).
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes: far less than the canvas needs.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Files under `dir` (recursively).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
