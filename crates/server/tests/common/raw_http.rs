//! Raw HTTP/1.1 over TCP for tests that need control the SDK does not give: a chosen local
//! address (another client on 127.0.0.0/8), keep-alive floods, headers, and watching the server
//! close a connection.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP connection to `addr` from the local address `from` (on Linux, any of 127.0.0.0/8
/// reaches a server listening on 127.0.0.1, and counts as another client address).
pub async fn tcp_from(addr: &str, from: IpAddr) -> std::io::Result<TcpStream> {
    let remote: SocketAddr = addr.parse().expect("a socket address");
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(remote).await
}

/// Writes `request` (a whole HTTP/1.1 request) and reads one response with a
/// `Content-Length`: its status and body. `None` if the server closed before a whole response.
/// Any stream: a TCP socket, or TLS over one.
pub async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
) -> Option<(u16, String)> {
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Reads one HTTP/1.1 response with a `Content-Length`; `None` if the stream ends first.
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (i + 4, length);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some((status, body))
}

/// Reads until the server closes the stream (end of stream or reset), at most `within`:
/// the bytes it sent before, or `None` if it was still open then.
pub async fn read_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(got)
}

/// An HTTP response read off a raw connection, headers included.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header lines, lower-cased names: `("retry-after", "1")`.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `code` of an error body.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        Some(v["error"]["code"].as_str()?.to_owned())
    }
}

/// A keep-alive HTTP/1.1 connection from a chosen local address, for clients that send many
/// requests (a login flood).
pub struct HttpConn {
    stream: TcpStream,
    addr: String,
    buf: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr` from local address `from` (any of 127.0.0.0/8).
    pub async fn open_from(addr: &str, from: std::net::IpAddr) -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(from, 0))?;
        let stream = socket.connect(addr.parse().unwrap()).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            addr: addr.to_owned(),
            buf: Vec::new(),
        })
    }

    /// Sends one request and reads its response; `None` if the connection ended.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Option<HttpReply> {
        let body = body.to_string();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.ok()?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut reply = parse_head(&head);
        let len: usize = reply.header("content-length")?.parse().ok()?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        reply.body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).to_string();
        self.buf.drain(..head_end + len);
        Some(reply)
    }

    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }
}

/// The status line and headers of a response (its body left empty).
fn parse_head(head: &str) -> HttpReply {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: String::new(),
    }
}

/// One HTTP/1.1 request on a fresh connection from local address `from` (any of 127.0.0.0/8,
/// to look like another client), read to the end.
pub async fn http_from(
    addr: &str,
    from: std::net::IpAddr,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> HttpReply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    HttpReply {
        body: body.to_owned(),
        ..parse_head(head)
    }
}

/// `POST /v1/sessions` from `from`.
pub async fn login_from(
    addr: &str,
    from: std::net::IpAddr,
    username: &str,
    password: &str,
) -> HttpReply {
    let body = serde_json::json!({"username": username, "password": password});
    http_from(addr, from, "POST", "/v1/sessions", &body).await
}
