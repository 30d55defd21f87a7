//! One WebSocket connection of an authenticated user, from `hello` to close.
//!
//! One task per connection owns the socket: it reads and decodes client frames ([`frame`]),
//! answers requests through [`dispatch`], pipelining sends ([`pipeline`]; request futures are
//! boxed, so an idle connection does not carry the largest request's state), drains the bounded outbound queue into one write
//! buffer, sends heartbeat pings and watches for silence. Every way a connection ends goes
//! through its [`Kick`], whose code the close frame carries. The task never waits on a slow
//! peer while holding anything others need: events reach it through the bounded queue, and a
//! queue that stays full is a slow consumer (kicked by the registry).
//!
//! Memory: between bursts a connection holds no read or write buffer (both are dropped when
//! empty), which is what keeps an idle connection to a few kilobytes (docs/BENCHMARKS.md).

mod dispatch;
mod frame;
mod pipeline;

use std::future::poll_fn;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use banter_protocol::{CloseCode, ErrorCode, Hello, Limits, PROTOCOL_VERSION, ServerFrame};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use self::frame::{Decoder, FrameError, Inbound, Outgoing};
use self::pipeline::{Admitting, Pipeline, Ready, Running};
use crate::app::App;
use crate::outbox::Outbox;
use crate::registry::{ConnHandle, ConnId, Kick};
use crate::services::Caller;
use crate::services::messaging::encode;

/// After asking the peer to close, how long to wait for its close reply before dropping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long the close frame may wait for room in the socket (a slow consumer's buffers are
/// full; when it reads again it still learns why it was closed).
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most frames taken from the outbound queue at once.
const BATCH: usize = 64;
/// Most slices (a frame is two: header and payload) in one vectored write.
const WRITE_SLICES: usize = 64;
/// Most bytes taken from the socket per read (into a buffer on the stack, so that a
/// connection waiting for data holds none).
const READ_CHUNK: usize = 8192;
/// Unwritten bytes past which the queue is no longer drained (the peer is not reading; the
/// queue fills and the registry kicks the connection as a slow consumer), no more requests
/// are read (their replies would pile up here: TCP pushes back on the client instead), and no
/// exclusive request builds its reply. With replies bounded (`max_page_bytes`), a connection
/// holds at most about this plus one reply.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Buffered bytes that are written at once, without waiting out the coalescing window.
const OUT_FLUSH: usize = 32 * 1024;

/// Every limit a client should respect, as `hello` announces them (PROTOCOL.md "Limits").
fn announced_limits(config: &crate::config::Config) -> Limits {
    Limits {
        max_frame_bytes: config.max_frame_bytes,
        max_text_bytes: config.max_text_bytes,
        send_rate_per_sec: config.send_rate_per_sec,
        max_page: config.max_page,
        max_group_members: config.max_group_members,
        recall_window_secs: config.recall_window_secs,
        send_burst: config.send_burst,
        request_rate_per_sec: config.request_rate_per_sec,
        request_burst: config.request_burst,
        connection_request_rate_per_sec: config.connection_request_rate_per_sec,
        connection_request_burst: config.connection_request_burst,
        typing_per_sec: crate::services::messaging::TYPING_PER_SEC,
        typing_burst: crate::services::messaging::TYPING_BURST,
        max_page_bytes: config.max_page_bytes,
        max_connections_per_user: config.max_connections_per_user,
        max_groups_per_user: config.max_groups_per_user,
        max_rooms_per_connection: crate::services::rooms::ROOMS_PER_CONNECTION,
        room_history: config.room_history,
        room_history_bytes: config.room_history_bytes,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        heartbeat_timeout_ms: config.heartbeat_timeout_ms,
    }
}

/// Runs one connection to completion.
pub(crate) async fn run<S>(app: Arc<App>, stream: S, caller: Caller, conn: ConnId)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let caller = Caller {
        conn: Some(conn),
        ..caller
    };
    let config = &app.config;
    let queue = Arc::new(Outbox::new(config.outbound_queue_frames));
    let kick = Arc::new(Kick::default());
    let hello = encode(&ServerFrame::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        user: caller.user.to_string(),
        session: caller.session.to_string(),
        connection: conn.to_string(),
        server_time: crate::clock::now_ms(),
        limits: announced_limits(config),
    }));
    let handle = ConnHandle {
        conn,
        session: caller.session,
        queue: Arc::clone(&queue),
        kick: Arc::clone(&kick),
    };
    let mut session = Session {
        app: Arc::clone(&app),
        caller,
        handle,
        rooms: Vec::new(),
        stream,
        decoder: Decoder::new(config.max_frame_bytes),
        inbuf: BytesMut::new(),
        out: Outgoing::default(),
        reported: 0,
        peer_closed: false,
    };
    // The hello is the first bytes written: replies and pushes are queued behind it (the outbox
    // is drained into `out` too), even for requests that came in the upgrade's own write.
    session.out.text(hello);
    if app
        .registry
        .register(caller.user, session.handle.clone())
        .is_err()
    {
        // Lost a race with another connection of the same user after the handshake check:
        // say why (4004) rather than drop the connection with no close frame.
        tracing::debug!(user = caller.user, "connection limit reached after upgrade");
        session.close(CloseCode::TooManyConnections).await;
        return;
    }
    app.metrics.connection_opened();
    let opened = Instant::now();
    tracing::info!(
        conn,
        user = caller.user,
        session = caller.session,
        "connection opened"
    );
    if app.registry.connections_of(caller.user) == 1 {
        app.social.presence_changed(caller.user, true).await;
    }
    let code = session.serve(&queue).await;
    queue.close();
    for room in session.rooms.drain(..) {
        _ = app.rooms.leave(conn, &room);
    }
    app.registry.unregister(caller.user, conn);
    app.metrics.connection_closed();
    if app.registry.connections_of(caller.user) == 0 {
        app.social.presence_changed(caller.user, false).await;
    }
    session.close(code).await;
    session.out_reported(0);
    tracing::info!(
        conn,
        user = caller.user,
        code = code.code(),
        secs = opened.elapsed().as_secs(),
        "connection closed"
    );
}

/// Time left until `expires_at` (UTC milliseconds).
fn until(expires_at: i64) -> Duration {
    Duration::from_millis(u64::try_from(expires_at - crate::clock::now_ms()).unwrap_or(0))
}

/// What the socket did.
enum Io {
    /// Bytes were appended to the read buffer.
    Read,
    /// The whole write buffer went out.
    Written,
    /// The peer ended the stream.
    Eof,
    /// The socket failed.
    Failed(std::io::Error),
}

/// The state of one connection.
struct Session<S> {
    app: Arc<App>,
    caller: Caller,
    /// This connection as the registry and rooms know it.
    handle: ConnHandle,
    /// Chatrooms this connection occupies (lent to a request that may change them).
    rooms: Vec<String>,
    stream: S,
    decoder: Decoder,
    /// Received bytes not decoded yet; unallocated when empty.
    inbuf: BytesMut,
    /// Frames not written yet.
    out: Outgoing,
    /// `out`'s length as last added to the outbound-bytes gauge.
    reported: usize,
    /// The peer sent its close frame or ended the stream.
    peer_closed: bool,
}

/// What a decoded frame asks of the session.
enum Step {
    /// Nothing more to do for now.
    Idle,
    /// Answer this request.
    Request(Bytes),
    /// Close with this code.
    Close(CloseCode),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Serves the connection until it must close; returns why. Every request in flight has
    /// finished by then, so `rooms` is complete and committed sends are delivered.
    async fn serve(&mut self, outbox: &Outbox) -> CloseCode {
        let config = &self.app.config;
        let coalesce = Duration::from_micros(config.write_coalesce_us);
        let timeout = config.heartbeat_timeout();
        let every = config.heartbeat_interval();
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seen = Instant::now();
        let kick = Arc::clone(&self.handle.kick);
        let kicked = kick.kicked();
        tokio::pin!(kicked);
        let app = Arc::clone(&self.app);
        let shutdown = app.shutdown.cancelled();
        tokio::pin!(shutdown);
        let mut shutdown_seen = false;
        // The token's expiry ends the connection as a revocation would (4001).
        let expiry = tokio::time::sleep(until(self.caller.expires_at));
        tokio::pin!(expiry);
        let mut expired = false;
        // Writes of pushed frames are spaced by `coalesce`: a push arriving sooner after the
        // last write waits for this timer, and whatever joins it meanwhile leaves in the same
        // write. Replies and pings are never held back.
        let flush_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush_timer);
        let mut flush_armed = false;
        let mut last_write = Instant::now()
            .checked_sub(coalesce)
            .unwrap_or_else(Instant::now);
        // Whatever is already buffered (the hello) leaves at once.
        let mut write_now = !self.out.is_empty();
        let mut requests = Pipeline::default();
        let mut batch = Vec::new();
        loop {
            let backed_up = self.out.len() >= OUT_HIGH_WATER;
            if requests.accepts() && !backed_up {
                match self.decode(&mut write_now) {
                    Step::Idle => {}
                    Step::Request(text) => requests.admit(self.admit(text)),
                    Step::Close(code) => {
                        kick.kick(code);
                        self.settle(&mut requests).await;
                        return kick.code().unwrap_or(code);
                    }
                }
            }
            self.report_outbound();
            let reading = !self.peer_closed && requests.accepts() && !backed_up;
            let writing = write_now && !self.out.is_empty();
            let draining = !backed_up;
            tokio::select! {
                biased;
                code = &mut kicked => {
                    self.settle(&mut requests).await;
                    return code;
                }
                () = &mut shutdown, if !shutdown_seen => {
                    shutdown_seen = true;
                    kick.kick(CloseCode::GoingAway);
                }
                () = &mut expiry, if !expired => {
                    expired = true;
                    kick.kick(CloseCode::AuthRevoked);
                }
                // Over the mark no exclusive reply is built (see `pipeline`).
                ready = poll_fn(|cx| requests.poll_ready(cx, !backed_up)) => match ready {
                    Ready::Reply(reply) => {
                        self.out.text(reply);
                        write_now = true;
                    }
                    Ready::Start(frame) => requests.run(self.start(frame)),
                    Ready::Finished(reply, rooms) => {
                        self.rooms = rooms;
                        self.out.text(reply);
                        write_now = true;
                    }
                    Ready::Admitted => {}
                },
                io = poll_fn(|cx| self.poll_io(cx, reading, writing)), if reading || writing => {
                    match io {
                        Io::Read => last_seen = Instant::now(),
                        Io::Written => {
                            write_now = false;
                            flush_armed = false;
                            last_write = Instant::now();
                        }
                        Io::Eof => {
                            self.peer_closed = true;
                            kick.kick(CloseCode::Normal);
                        }
                        Io::Failed(e) => {
                            tracing::debug!(error = %e, "socket failed");
                            self.peer_closed = true;
                            kick.kick(CloseCode::Normal);
                        }
                    }
                }
                _ = outbox.take(&mut batch, BATCH), if draining => {
                    for frame in batch.drain(..) {
                        self.out.text(frame);
                    }
                    let due = last_write + coalesce;
                    if self.out.len() >= OUT_FLUSH || Instant::now() >= due {
                        write_now = true;
                    } else if !write_now && !flush_armed {
                        flush_armed = true;
                        flush_timer.as_mut().reset(due);
                    }
                }
                () = &mut flush_timer, if flush_armed => {
                    flush_armed = false;
                    write_now = true;
                }
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() >= timeout {
                        kick.kick(CloseCode::HeartbeatTimeout);
                    } else {
                        self.out.ping();
                        write_now = true;
                    }
                }
            }
        }
    }

    /// Brings the outbound-bytes gauge up to date with `out` (one atomic add when it changed).
    fn report_outbound(&mut self) {
        self.out_reported(self.out.len());
    }

    /// Tells the gauge that `out` now holds `len` bytes.
    fn out_reported(&mut self, len: usize) {
        if len != self.reported {
            let by = i64::try_from(len).unwrap_or(i64::MAX)
                - i64::try_from(self.reported).unwrap_or(i64::MAX);
            self.app.metrics.outbound_bytes_changed(by);
            self.reported = len;
        }
    }

    /// Decodes buffered frames up to the first request, answering pings on the way.
    fn decode(&mut self, write_now: &mut bool) -> Step {
        let step = loop {
            match self.decoder.decode(&mut self.inbuf) {
                Ok(None) => break Step::Idle,
                Ok(Some(Inbound::Text(text))) => break Step::Request(text),
                Ok(Some(Inbound::Ping(payload))) => {
                    self.out.pong(payload);
                    *write_now = true;
                }
                Ok(Some(Inbound::Pong)) => {}
                Ok(Some(Inbound::Binary)) => {
                    self.app.metrics.error(ErrorCode::BadRequest);
                    break Step::Close(CloseCode::ProtocolViolation);
                }
                Ok(Some(Inbound::Close)) => {
                    self.peer_closed = true;
                    break Step::Close(CloseCode::Normal);
                }
                Err(FrameError::TooBig) => break Step::Close(CloseCode::TooBig),
                Err(FrameError::BadClose(why)) => {
                    // The peer has closed; it is told why its close frame was refused.
                    tracing::debug!(why, "malformed close frame");
                    self.peer_closed = true;
                    break Step::Close(CloseCode::ProtocolError);
                }
                Err(FrameError::Protocol(why)) => {
                    tracing::debug!(why, "websocket protocol violation");
                    break Step::Close(CloseCode::ProtocolViolation);
                }
            }
        };
        if self.inbuf.is_empty() {
            // Idle connections keep no read buffer.
            self.inbuf = BytesMut::new();
        }
        step
    }

    /// Admits a request (see [`dispatch::admit`]); the future owns everything it needs.
    fn admit(&self, text: Bytes) -> Admitting {
        let app = Arc::clone(&self.app);
        let caller = self.caller;
        let handle = self.handle.clone();
        Box::pin(async move {
            let text = std::str::from_utf8(&text).unwrap_or_default();
            dispatch::admit(&app, &caller, &handle, text).await
        })
    }

    /// Starts an exclusive request, lending it the room list.
    fn start(&mut self, frame: banter_protocol::ClientFrame) -> Running {
        let app = Arc::clone(&self.app);
        let caller = self.caller;
        let handle = self.handle.clone();
        let mut rooms = std::mem::take(&mut self.rooms);
        Box::pin(async move {
            let reply = dispatch::handle(&app, &caller, &handle, &mut rooms, frame).await;
            (reply, rooms)
        })
    }

    /// Finishes the requests in flight before the connection closes (see
    /// [`Pipeline::settle`]), taking back a room list that was lent out.
    async fn settle(&mut self, requests: &mut Pipeline) {
        if let Some(rooms) = requests.settle().await {
            self.rooms = rooms;
        }
    }

    /// Writes the write buffer (when `write`) and reads what the socket has (when `read`),
    /// until one of them has news.
    fn poll_io(&mut self, cx: &mut Context<'_>, read: bool, write: bool) -> Poll<Io> {
        if write {
            while !self.out.is_empty() {
                let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
                let n = self.out.slices(&mut slices);
                match Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Io::Failed(std::io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(written)) => self.out.advance(written),
                    Poll::Ready(Err(e)) => return Poll::Ready(Io::Failed(e)),
                    Poll::Pending => break,
                }
            }
            if self.out.is_empty() {
                return Poll::Ready(Io::Written);
            }
        }
        if read {
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Io::Eof),
                Poll::Ready(Ok(())) => {
                    self.inbuf.extend_from_slice(buf.filled());
                    return Poll::Ready(Io::Read);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Failed(e)),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    /// Sends the close frame (after anything already encoded, so no frame is cut), then waits
    /// briefly for the peer's close reply.
    async fn close(&mut self, code: CloseCode) {
        self.out.close(code.code(), code.reason());
        let write = poll_fn(|cx| self.poll_io(cx, false, true));
        if !matches!(
            tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write).await,
            Ok(Io::Written)
        ) || self.peer_closed
        {
            return;
        }
        // Read (and drop) until the peer's close frame or the end of the stream.
        let drain = async {
            loop {
                if !matches!(poll_fn(|cx| self.poll_io(cx, true, false)).await, Io::Read) {
                    return;
                }
                loop {
                    match self.decoder.decode(&mut self.inbuf) {
                        Ok(Some(Inbound::Close)) | Err(_) => return,
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                    }
                }
            }
        };
        _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    }
}
