//! One WebSocket connection of an authenticated user, from `hello` to close: the request loop.
//!
//! One task per connection runs [`Session::serve`]: it takes decoded requests from its
//! [`Connection`] (socket, framing and buffers, in `connection`), answers them through
//! [`dispatch`], pipelining sends ([`pipeline`]; request futures are boxed, so an idle
//! connection does not carry the largest request's state), drains the bounded outbound queue
//! into the connection's write buffer, sends heartbeat pings and watches for silence. Every way
//! a connection ends goes through its [`Kick`], whose code the close frame carries. The task
//! never waits on a slow peer while holding anything others need: events reach it through the
//! bounded queue, and a queue that stays full is a slow consumer (kicked by the registry).

mod connection;
mod dispatch;
mod frame;
mod pipeline;

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use banter_protocol::{CloseCode, Hello, Limits, PROTOCOL_VERSION, ServerFrame};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use self::connection::{Connection, Io, Step};
use self::pipeline::{Admitting, Pipeline, Ready, Running};
use crate::bus::AttachError;
use crate::outbox::Outbox;
use crate::registry::{ConnHandle, ConnId, Kick};
use crate::services::Caller;
use crate::services::messaging::encode;
use crate::state::App;

/// Most frames taken from the outbound queue at once.
const BATCH: usize = 64;
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
        io: Connection::new(stream, config.max_frame_bytes, Arc::clone(&app.metrics)),
    };
    // The hello is the first bytes written: replies and pushes are queued behind it (the outbox
    // is drained into `out` too), even for requests that came in the upgrade's own write.
    session.io.text(hello);
    let attached = match app.bus.attach(caller.user, session.handle.clone()).await {
        Ok(attached) => attached,
        Err(refused) => {
            // Lost a race with another connection of the same user after the handshake check
            // (4004), or the bus could not count it (1013): say why rather than drop the
            // connection with no close frame.
            let code = match refused {
                AttachError::TooManyConnections => CloseCode::TooManyConnections,
                AttachError::Unavailable => CloseCode::TryAgainLater,
            };
            tracing::debug!(user = caller.user, %refused, "connection refused after upgrade");
            session.io.close(code).await;
            return;
        }
    };
    app.metrics.connection_opened();
    let opened = Instant::now();
    tracing::info!(
        conn = %conn,
        user = caller.user,
        session = caller.session,
        "connection opened"
    );
    // The bus decides first and last under one lock: of two first connections racing, exactly
    // one tells the user's friends.
    if attached.first {
        app.social.presence_changed(caller.user, true).await;
    }
    let code = session.serve(&queue).await;
    queue.close();
    for room in session.rooms.drain(..) {
        _ = app.rooms.leave(conn, &room);
    }
    let last = app.bus.detach(caller.user, conn).await;
    app.metrics.connection_closed();
    if last {
        app.social.presence_changed(caller.user, false).await;
    }
    session.io.close(code).await;
    session.io.out_reported(0);
    tracing::info!(
        conn = %conn,
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

/// The state of one connection.
struct Session<S> {
    app: Arc<App>,
    caller: Caller,
    /// This connection as the registry and rooms know it.
    handle: ConnHandle,
    /// Chatrooms this connection occupies (lent to a request that may change them).
    rooms: Vec<String>,
    /// The socket, its framing and buffers.
    io: Connection<S>,
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
        let mut write_now = self.io.unwritten() > 0;
        let mut requests = Pipeline::default();
        let mut batch = Vec::new();
        loop {
            let backed_up = self.io.unwritten() >= OUT_HIGH_WATER;
            if requests.accepts() && !backed_up {
                match self.io.decode(&mut write_now) {
                    Step::Idle => {}
                    Step::Request(text) => requests.admit(self.admit(text)),
                    Step::Close(code) => {
                        kick.kick(code);
                        self.settle(&mut requests).await;
                        return kick.code().unwrap_or(code);
                    }
                }
            }
            self.io.report_outbound();
            let reading = !self.io.peer_closed() && requests.accepts() && !backed_up;
            let writing = write_now && self.io.unwritten() > 0;
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
                        self.io.text(reply);
                        write_now = true;
                    }
                    Ready::Start(frame) => requests.run(self.start(frame)),
                    Ready::Finished(reply, rooms) => {
                        self.rooms = rooms;
                        self.io.text(reply);
                        write_now = true;
                    }
                    Ready::Admitted => {}
                },
                io = poll_fn(|cx| self.io.poll_io(cx, reading, writing)), if reading || writing => {
                    match io {
                        Io::Read => last_seen = Instant::now(),
                        Io::Written => {
                            write_now = false;
                            flush_armed = false;
                            last_write = Instant::now();
                        }
                        Io::Eof => {
                            self.io.set_peer_closed();
                            kick.kick(CloseCode::Normal);
                        }
                        Io::Failed(e) => {
                            tracing::debug!(error = %e, "socket failed");
                            self.io.set_peer_closed();
                            kick.kick(CloseCode::Normal);
                        }
                    }
                }
                _ = outbox.take(&mut batch, BATCH), if draining => {
                    for frame in batch.drain(..) {
                        self.io.text(frame);
                    }
                    let due = last_write + coalesce;
                    if self.io.unwritten() >= OUT_FLUSH || Instant::now() >= due {
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
                        self.io.ping();
                        write_now = true;
                    }
                }
            }
        }
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
}
