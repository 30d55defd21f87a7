//! One HTTP connection's deadline, moved by phase: the request's headers within
//! `http_header_timeout_ms` of the connection's start (or of the first byte of the next
//! request), then its body and response within `http_request_timeout_ms`, then at most
//! `http_idle_timeout_ms` idle. The socket wrapper ([`Watched`]) reports the first byte after
//! an idle spell, the service reports the headers, and the response body ([`Tracked`]) reports
//! its end; the connection task ([`Watchdog::expired`]) closes the socket when the deadline
//! passes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::tls::Socket;
use crate::config::Config;

/// The deadline of one HTTP connection, moved by phase: headers, then request (body, handler
/// and response), then idle until the next request's first byte.
pub(super) struct Watchdog {
    header: Duration,
    request: Duration,
    idle: Duration,
    deadline: Mutex<Instant>,
    /// Idle between requests: the next byte read starts a header deadline.
    waiting: AtomicBool,
    changed: Notify,
}

impl Watchdog {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            header: config.http_header_timeout(),
            request: config.http_request_timeout(),
            idle: config.http_idle_timeout(),
            deadline: Mutex::new(Instant::now() + config.http_header_timeout()),
            waiting: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn set(&self, after: Duration) {
        *self.deadline.lock().expect("deadline lock") = Instant::now() + after;
        // A stored permit if the connection task is not waiting: it re-reads the deadline.
        self.changed.notify_one();
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().expect("deadline lock")
    }

    /// Bytes arrived; if the connection was idle, they begin a request's headers.
    fn saw_bytes(&self) {
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            self.set(self.header);
        }
    }

    /// hyper has the request's headers and calls the router.
    pub(super) fn request_started(&self) {
        self.waiting.store(false, Ordering::Relaxed);
        self.set(self.request);
    }

    /// The response body is written (or dropped); the connection waits for its next request.
    fn response_done(&self) {
        self.set(self.idle);
        self.waiting.store(true, Ordering::Relaxed);
    }

    /// Resolves once the current deadline has passed.
    pub(super) async fn expired(&self) {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= self.deadline() {
                        return;
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// A handler's way to move the request deadline while a long transfer makes progress (media
/// uploads and downloads): each call gives the request another `http_request_timeout_ms`.
/// Callers call it per [`Progress::STEP`] bytes moved, so a client must keep moving at least
/// that much per timeout to keep the connection.
#[derive(Clone)]
pub(crate) struct Progress(Arc<Watchdog>);

impl Progress {
    pub(super) fn new(watch: Arc<Watchdog>) -> Self {
        Self(watch)
    }

    /// Bytes a transfer must move between two calls.
    pub(crate) const STEP: u64 = 64 * 1024;

    /// The transfer moved another [`Progress::STEP`] bytes.
    pub(crate) fn advanced(&self) {
        self.0.set(self.0.request);
    }

    /// A counter of a transfer's bytes that calls [`Progress::advanced`] on `progress` each
    /// time another [`Progress::STEP`] have moved (nothing without a `progress`).
    pub(crate) fn meter(progress: Option<Self>) -> impl FnMut(u64) + Send + 'static {
        let (mut total, mut next) = (0u64, Self::STEP);
        move |moved| {
            total += moved;
            if total >= next {
                next = total + Self::STEP;
                if let Some(p) = &progress {
                    p.advanced();
                }
            }
        }
    }
}

/// Marks the response finished when dropped (hyper drops the body once it is written).
pub(super) struct ResponseDone(pub(super) Arc<Watchdog>);

impl Drop for ResponseDone {
    fn drop(&mut self) {
        self.0.response_done();
    }
}

/// A response body that reports when it is done.
pub(super) struct Tracked {
    pub(super) body: axum::body::Body,
    pub(super) _done: ResponseDone,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket as hyper (and, after an upgrade, the session) sees it: reads tell the watchdog
/// that a request began.
pub(super) struct Watched<S> {
    pub(super) stream: Socket,
    pub(super) watch: Arc<Watchdog>,
    /// Whatever must live as long as the socket.
    pub(super) _guard: S,
}

impl<S: Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.saw_bytes();
        }
        polled
    }
}

impl<S: Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
