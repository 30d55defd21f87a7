//! A hand-made WebSocket client ([`RawSocket`]) for clients that misbehave: it frames and
//! parses by hand and never answers anything on its own.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket opened by hand, for clients that misbehave (never answer pings, never read).
/// Frames are parsed here without answering anything.
pub struct RawSocket {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A server frame as read off a [`RawSocket`].
#[derive(Debug)]
pub struct RawFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code, for a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A WebSocket upgrade request for `/v1/ws` authenticated by `token` (the RFC 6455 example key).
pub fn upgrade_request(addr: &str, token: &str) -> String {
    format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
}

impl RawSocket {
    /// Performs the upgrade on `stream` with `token`; panics unless the server switches.
    pub async fn open_on(stream: TcpStream, addr: &str, token: &str) -> Self {
        Self::open_sending(stream, addr, token, &[]).await
    }

    /// Performs the upgrade with `early` bytes (frames) in the same write as the request, as a
    /// client that does not wait for the `101`.
    pub async fn open_sending(
        mut stream: TcpStream,
        addr: &str,
        token: &str,
        early: &[u8],
    ) -> Self {
        let mut request = upgrade_request(addr, token).into_bytes();
        request.extend_from_slice(early);
        stream.write_all(&request).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "server closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "handshake refused: {head}"
        );
        Self {
            stream,
            buf: buf[end..].to_vec(),
        }
    }

    /// Connects to `addr` and upgrades.
    pub async fn open(addr: &str, token: &str) -> Self {
        Self::open_on(TcpStream::connect(addr).await.unwrap(), addr, token).await
    }

    /// Connects, upgrades and reads the `hello`, leaving the socket ready for requests.
    pub async fn open_ready(addr: &str, token: &str) -> Self {
        let mut socket = Self::open(addr, token).await;
        let hello = socket.next_frame().await.expect("hello");
        assert_eq!(hello.opcode, 1, "hello is a text frame");
        assert!(String::from_utf8_lossy(&hello.payload).contains(r#""type":"hello""#));
        socket
    }

    /// Reads the next frame; `None` at end of stream.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until a close frame and returns its code, counting the text frames before.
    pub async fn close_code(&mut self) -> (Option<u16>, usize) {
        let mut texts = 0;
        while let Some(frame) = self.next_frame().await {
            match frame.opcode {
                1 => texts += 1,
                8 => return (frame.close_code(), texts),
                _ => {}
            }
        }
        (None, texts)
    }

    /// Sends a masked, final client frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw(0x80 | opcode, payload, true).await;
    }

    /// Sends a frame with the given first byte (FIN, reserved bits, opcode), masked or not.
    pub async fn send_raw(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut out = Vec::new();
        encode_frame(&mut out, first, payload, masked);
        self.stream.write_all(&out).await.unwrap();
    }

    /// Sends masked, final text frames in one write, as a client that pipelines requests.
    pub async fn send_texts(&mut self, texts: &[String]) {
        let out = Self::encode_texts(texts);
        self.stream.write_all(&out).await.unwrap();
    }

    /// The bytes of masked, final text frames.
    pub fn encode_texts(texts: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for text in texts {
            encode_frame(&mut out, 0x81, text.as_bytes(), true);
        }
        out
    }
}

/// Appends one frame with the given first byte (FIN, reserved bits, opcode) to `out`.
fn encode_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], masked: bool) {
    out.push(first);
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let mask = [1u8, 2, 3, 4];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
}

/// Parses one server frame off the front of `buf`: the frame and the bytes it took.
pub fn parse_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // servers never mask, but be tolerant
    }
    if buf.len() < at + len {
        return None;
    }
    Some((
        RawFrame {
            opcode,
            payload: buf[at..at + len].to_vec(),
        },
        at + len,
    ))
}
