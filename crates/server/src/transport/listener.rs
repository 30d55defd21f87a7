//! Connection admission: the accept loop and every limit a TCP connection meets before, and
//! while, it speaks HTTP (in the spirit of mini-redis's `Listener`).
//!
//! - A global cap (`max_connections`): each admitted connection holds an owned semaphore permit
//!   for as long as its socket lives, through a WebSocket upgrade too. Past it, a few more
//!   connections (`health_reserve_connections`) are admitted to answer only `/healthz`,
//!   `/readyz` and `/metrics`, so probes and scrapes still see a full server.
//! - Per-address caps ([`Admission`]): connections that are not authenticated WebSocket
//!   sessions (`max_pending_per_ip`) are counted here at accept; sessions
//!   (`max_sessions_per_ip`) are counted by the upgrade in `ws.rs`.
//! - A refused connection gets a canned 429 `too_many_connections` written without waiting
//!   (best effort) and is closed at once, so a flood costs one accept and one write per socket.
//! - Deadlines by phase (`deadline.rs`): headers within `http_header_timeout_ms` of the
//!   connection's start (or of the first byte of the next request), then body and response
//!   within `http_request_timeout_ms`, then at most `http_idle_timeout_ms` idle before the next
//!   request. A connection past its deadline is closed without a response.
//! - With built-in TLS (`tls.rs`) the handshake runs after admission, under the header
//!   deadline: a client that never finishes it is cut like one that never sends headers. A
//!   refused connection is then closed without the 429 (a TLS client could not read it).
//! - Accept errors (out of file descriptors, …) back off exponentially instead of spinning.
//!
//! hyper is driven here directly, with a timer, because axum's `serve` builds it without one.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response};
use axum::response::IntoResponse as _;
use banter_protocol::{ErrorCode, ErrorResponse};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::deadline::{Progress, ResponseDone, Tracked, Watchdog, Watched};
use super::tls::{Socket, Tls};
use super::{ApiError, status_of};
use crate::admission::IpPermit;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::state::App;

/// First pause after a failed accept; it doubles on each failure in a row.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause after a failed accept.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The only paths a connection admitted on the health reserve may ask.
const HEALTH_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The accept loop and the connections it admitted.
pub(crate) struct Listener {
    tcp: TcpListener,
    app: Arc<App>,
    router: Router,
    /// `max_connections` permits.
    full: Arc<Semaphore>,
    /// `health_reserve_connections` permits, used only once `full` has none.
    reserve: Arc<Semaphore>,
    /// The HTTP connection tasks (upgraded sessions are tracked by `App::sessions`).
    connections: TaskTracker,
    /// Built-in TLS, if configured: every connection must then speak it.
    tls: Option<Arc<Tls>>,
    refused_per_ip: Bytes,
    refused_full: Bytes,
}

impl Listener {
    /// A listener serving `router` on `tcp` under the limits of `app.config`, over TLS if `tls`
    /// is given.
    pub(crate) fn new(
        tcp: TcpListener,
        app: Arc<App>,
        router: Router,
        tls: Option<Arc<Tls>>,
    ) -> Self {
        let config = &app.config;
        Self {
            full: Arc::new(Semaphore::new(config.max_connections)),
            reserve: Arc::new(Semaphore::new(config.health_reserve_connections)),
            refused_per_ip: refusal(format!(
                "at most {} connections from one address",
                config.max_pending_per_ip
            )),
            refused_full: refusal(format!(
                "the server holds its maximum of {} connections",
                config.max_connections
            )),
            tcp,
            app,
            router,
            connections: TaskTracker::new(),
            tls,
        }
    }

    /// Accepts until `drained` is cancelled, then tells every connection to finish its request
    /// and close, and waits for them.
    pub(crate) async fn run(self, drained: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                () = drained.cancelled() => break,
                accepted = self.accept() => accepted,
            };
            self.admit(stream, peer, &drained);
        }
        let Self {
            tcp, connections, ..
        } = self;
        // New connections are refused by the kernel from here on.
        drop(tcp);
        connections.close();
        connections.wait().await;
    }

    /// The next connection. Errors tied to one connection (it died in the backlog) are skipped;
    /// any other (EMFILE, ENFILE, ENOBUFS…) pauses the loop, longer each time in a row.
    async fn accept(&self) -> (TcpStream, SocketAddr) {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            match self.tcp.accept().await {
                Ok(accepted) => return accepted,
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    self.app.metrics.accept_error();
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis(), "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    /// Counts the connection against its address and the global cap, and serves it, or
    /// refuses it at once.
    fn admit(&self, stream: TcpStream, peer: SocketAddr, drained: &CancellationToken) {
        let metrics = &self.app.metrics;
        let Some(ip) = self.app.admission.pending(peer.ip()) else {
            metrics.refused_per_ip();
            self.refuse(&stream, &self.refused_per_ip);
            return;
        };
        let (permit, health_only) = match Arc::clone(&self.full).try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match Arc::clone(&self.reserve).try_acquire_owned() {
                Ok(permit) => (permit, true),
                Err(_) => {
                    metrics.refused_full();
                    self.refuse(&stream, &self.refused_full);
                    return;
                }
            },
        };
        // Replies and pushes are small frames written as they are ready: Nagle's algorithm
        // would hold each behind the peer's delayed ACK (up to 40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = Conn {
            app: Arc::clone(&self.app),
            router: self.router.clone(),
            peer,
            health_only,
            tls: self.tls.clone(),
        };
        let slot = Slot::new(permit, Arc::clone(metrics));
        self.connections
            .spawn(conn.serve(stream, slot, ip, drained.clone()));
    }

    /// Writes the refusal if the socket takes it now, and closes. Never waits: a flood is
    /// refused at the pace of accept. A failed write changes nothing (the socket closes either
    /// way). Over TLS nothing is written: the client expects a handshake, not HTTP.
    fn refuse(&self, stream: &TcpStream, response: &[u8]) {
        if self.tls.is_some() {
            return;
        }
        if let Err(e) = stream.try_write(response) {
            tracing::trace!(error = %e, "refusal not written");
        }
    }
}

/// Whether an accept error concerns only the connection being accepted.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A whole HTTP/1.1 429 `too_many_connections` response that closes the connection.
fn refusal(message: String) -> Bytes {
    let code = ErrorCode::TooManyConnections;
    let body = serde_json::to_string(&ErrorResponse {
        error: Error::with(code, message).body(),
    })
    .expect("an error body serializes");
    let status = status_of(code);
    Bytes::from(format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
    ))
}

/// A place under the global cap, held by the socket for its whole life (an upgraded
/// WebSocket keeps it).
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.tcp_connection(1);
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.tcp_connection(-1);
    }
}

/// One admitted connection's HTTP side.
struct Conn {
    app: Arc<App>,
    router: Router,
    peer: SocketAddr,
    health_only: bool,
    tls: Option<Arc<Tls>>,
}

impl Conn {
    /// Serves HTTP/1.1 requests (and at most one upgrade) until the peer leaves, a deadline
    /// passes, or a drain finishes the current request. The address's pending count is held
    /// until then; an upgraded session counts as a session instead (ws.rs).
    async fn serve(self, stream: TcpStream, slot: Slot, ip: IpPermit, drained: CancellationToken) {
        let app = Arc::clone(&self.app);
        let config = &app.config;
        let watch = Arc::new(Watchdog::new(config));
        let Some(stream) = self.handshake(stream, &watch, &drained).await else {
            return;
        };
        // The slot lives as long as the socket, through an upgrade too.
        let io = TokioIo::new(Watched {
            stream,
            watch: Arc::clone(&watch),
            _guard: slot,
        });
        let this = Arc::new(self);
        let service = {
            let watch = Arc::clone(&watch);
            hyper::service::service_fn(move |req| {
                Arc::clone(&this).respond(Arc::clone(&watch), req)
            })
        };
        let mut builder = http1::Builder::new();
        // Our watchdog enforces the deadlines; hyper's header timer (which restarts when a
        // kept-alive connection goes idle) is only a backstop that can never fire first.
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(config.http_header_timeout() + config.http_idle_timeout());
        let conn = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "http connection ended");
                    }
                    break;
                }
                () = watch.expired() => {
                    app.metrics.timed_out();
                    tracing::debug!("http connection closed at its deadline");
                    break;
                }
                () = drained.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(ip);
    }

    /// The connection's byte stream: the TCP socket itself, or TLS over it once the handshake
    /// is done. The handshake races the header deadline (set when the watchdog was made) and a
    /// drain; `None` if it fails or loses.
    async fn handshake(
        &self,
        stream: TcpStream,
        watch: &Watchdog,
        drained: &CancellationToken,
    ) -> Option<Socket> {
        let Some(tls) = &self.tls else {
            return Some(Socket::Plain(stream));
        };
        tokio::select! {
            accepted = tls.acceptor().accept(stream) => match accepted {
                Ok(stream) => Some(Socket::Tls(Box::new(stream))),
                Err(e) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    None
                }
            },
            () = watch.expired() => {
                self.app.metrics.timed_out();
                tracing::debug!("TLS handshake not done by the header deadline");
                None
            }
            () = drained.cancelled() => None,
        }
    }

    /// Answers one request through the router, with the peer's address as `ConnectInfo`.
    async fn respond(
        self: Arc<Self>,
        watch: Arc<Watchdog>,
        mut req: Request<Incoming>,
    ) -> Result<Response<Tracked>, Infallible> {
        watch.request_started();
        req.extensions_mut()
            .insert(Progress::new(Arc::clone(&watch)));
        let done = ResponseDone(watch);
        let response = if self.health_only && !HEALTH_PATHS.contains(&req.uri().path()) {
            let code = ErrorCode::TooManyConnections;
            self.app.metrics.error(code);
            let mut response = ApiError(Error::new(
                code,
                "the server is at its connection limit; this connection may only ask /healthz, /readyz or /metrics",
            ))
            .into_response();
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        } else {
            req.extensions_mut().insert(ConnectInfo(self.peer));
            let router = self.router.clone();
            match router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        Ok(response.map(|body| Tracked { body, _done: done }))
    }
}
