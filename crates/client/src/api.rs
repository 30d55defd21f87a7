//! The HTTP account API, over plain HTTP/1.1 with hyper (one connection per call: account calls
//! are rare, and this keeps the SDK free of a pooling client).

use banter_protocol::{
    ChangePasswordRequest, ErrorResponse, LoginRequest, LoginResponse, RegisterRequest,
    SessionInfo, User,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::ClientError;

/// Client of one server's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `host:port` of the server.
    addr: String,
    /// Local source address of every request, if set.
    local: Option<std::net::IpAddr>,
}

impl Api {
    /// A client for the server at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            local: None,
        }
    }

    /// The same client, sending every request from local address `ip` (e.g. one of 127.0.0.0/8,
    /// to look like many clients, as servers throttle per source address).
    #[must_use]
    pub fn from_local(mut self, ip: std::net::IpAddr) -> Self {
        self.local = Some(ip);
        self
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and returns the raw response (used for the WebSocket upgrade too).
    pub(crate) async fn raw(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        self.raw_from(req, self.local).await
    }

    /// Like `raw`, from the given local address (to spread many connections over several
    /// loopback addresses, past the 64 k ports of one).
    pub(crate) async fn raw_from(
        &self,
        req: Request<Full<Bytes>>,
        local: Option<std::net::IpAddr>,
    ) -> Result<Response<hyper::body::Incoming>, ClientError> {
        let stream = match local {
            None => TcpStream::connect(&self.addr).await?,
            Some(ip) => {
                let remote = tokio::net::lookup_host(&self.addr)
                    .await?
                    .find(|a| a.is_ipv4() == ip.is_ipv4())
                    .ok_or_else(|| {
                        ClientError::Protocol(format!("cannot resolve {}", self.addr))
                    })?;
                let socket = if ip.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()?
                } else {
                    tokio::net::TcpSocket::new_v6()?
                };
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
                socket.connect(remote).await?
            }
        };
        stream.set_nodelay(true)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::protocol)?;
        tokio::spawn(conn.with_upgrades());
        sender
            .send_request(req)
            .await
            .map_err(ClientError::protocol)
    }

    /// A request builder with the host and, if given, the bearer token.
    pub(crate) fn builder(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.addr);
        if let Some(token) = token {
            b = b.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        b
    }

    /// Sends `req` and reads its whole body, whatever the status.
    async fn read(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.raw(req).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(ClientError::protocol)?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends `req` and reads its whole body: the status and the bytes of a success, the
    /// typed error of a failure.
    pub(crate) async fn fetch(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (status, bytes) = self.read(req).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        Ok((status, bytes))
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> Result<Option<T>, ClientError> {
        let mut b = self.builder(method, path, token);
        let payload = match body {
            Some(body) => {
                b = b.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(body).map_err(ClientError::protocol)?)
            }
            None => Bytes::new(),
        };
        let req = b.body(Full::new(payload)).map_err(ClientError::protocol)?;
        let (status, bytes) = self.fetch(req).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(ClientError::protocol)
    }

    pub(crate) async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.call(method, path, token, body)
            .await?
            .ok_or_else(|| ClientError::Protocol("empty response body".into()))
    }

    /// Registers an account.
    pub async fn register(&self, username: &str, password: &str) -> Result<User, ClientError> {
        self.register_invited(username, password, None).await
    }

    /// Registers an account with an invitation code (servers whose sign-up policy is `invite`).
    pub async fn register_invited(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
    ) -> Result<User, ClientError> {
        let body = RegisterRequest {
            username: username.into(),
            password: password.into(),
            invite: invite.map(Into::into),
        };
        self.call_json(Method::POST, "/v1/accounts", None, Some(&body))
            .await
    }

    /// Logs in as a new device.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device: Option<&str>,
    ) -> Result<LoginResponse, ClientError> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
            device: device.map(Into::into),
        };
        self.call_json(Method::POST, "/v1/sessions", None, Some(&body))
            .await
    }

    /// The caller's account.
    pub async fn me(&self, token: &str) -> Result<User, ClientError> {
        self.call_json(Method::GET, "/v1/me", Some(token), None::<&()>)
            .await
    }

    /// The caller's sessions.
    pub async fn sessions(&self, token: &str) -> Result<Vec<SessionInfo>, ClientError> {
        self.call_json(Method::GET, "/v1/sessions", Some(token), None::<&()>)
            .await
    }

    /// Revokes the caller's own session.
    pub async fn logout(&self, token: &str) -> Result<(), ClientError> {
        self.call::<()>(
            Method::DELETE,
            "/v1/sessions/current",
            Some(token),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// Revokes one of the caller's sessions.
    pub async fn revoke(&self, token: &str, session: &str) -> Result<(), ClientError> {
        let path = format!("/v1/sessions/{session}");
        self.call::<()>(Method::DELETE, &path, Some(token), None::<&()>)
            .await
            .map(drop)
    }

    /// Changes the password (other sessions are revoked).
    pub async fn change_password(
        &self,
        token: &str,
        old: &str,
        new: &str,
    ) -> Result<(), ClientError> {
        let body = ChangePasswordRequest {
            old_password: old.into(),
            new_password: new.into(),
        };
        self.call::<()>(Method::PUT, "/v1/me/password", Some(token), Some(&body))
            .await
            .map(drop)
    }

    /// Users whose name starts with `prefix`.
    pub async fn search_users(&self, token: &str, prefix: &str) -> Result<Vec<User>, ClientError> {
        let path = format!("/v1/users?prefix={}", urlencode(prefix));
        self.call_json(Method::GET, &path, Some(token), None::<&()>)
            .await
    }

    /// GET a path and return status and body text (for health, metrics and tests).
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), ClientError> {
        let req = self
            .builder(Method::GET, path, None)
            .body(Full::new(Bytes::new()))
            .map_err(ClientError::protocol)?;
        let (status, bytes) = self.read(req).await?;
        Ok((
            status.as_u16(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    }
}

/// Turns an error response into a typed error.
pub(crate) fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            body: e.error,
        },
        Err(_) => ClientError::Protocol(format!(
            "HTTP {status} without an error body: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
