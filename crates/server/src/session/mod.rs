//! One WebSocket connection of an authenticated user, from `hello` to close.
//!
//! Two tasks per connection: this one reads frames, answers requests through the services and
//! watches the heartbeat; [`writer`] owns the socket's write half and drains the bounded
//! outbound queue in batches. Every way a connection ends goes through its [`Kick`]: the writer
//! sends the close frame with the kick's code. The reader never waits on a slow peer: replies
//! and events go through the same bounded queue, and a full queue is a slow consumer.

mod dispatch;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use banter_protocol::{CloseCode, ErrorCode, Hello, Limits, PROTOCOL_VERSION, ServerFrame};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_websockets::{Error as WsError, Message, WebSocketStream};

use crate::app::App;
use crate::registry::{ConnHandle, ConnId, Kick};
use crate::services::Caller;
use crate::services::messaging::encode;

/// After asking the peer to close, how long to wait for its close reply before dropping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs one connection to completion.
pub(crate) async fn run<S>(app: Arc<App>, ws: WebSocketStream<S>, caller: Caller, conn: ConnId)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let caller = Caller {
        conn: Some(conn),
        ..caller
    };
    let config = &app.config;
    let (queue, rx) = mpsc::channel::<Bytes>(config.outbound_queue_frames);
    let kick = Arc::new(Kick::default());
    let hello = encode(&ServerFrame::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        user: caller.user.to_string(),
        session: caller.session.to_string(),
        connection: conn.to_string(),
        server_time: crate::clock::now_ms(),
        limits: Limits {
            max_frame_bytes: config.max_frame_bytes,
            max_text_bytes: config.max_text_bytes,
            send_rate_per_sec: config.send_rate_per_sec,
            max_page: config.max_page,
            max_group_members: config.max_group_members,
            recall_window_secs: config.recall_window_secs,
        },
    }));
    // The queue is fresh, so the hello always fits and goes out first.
    _ = queue.try_send(hello);
    let handle = ConnHandle {
        conn,
        session: caller.session,
        queue: queue.clone(),
        kick: Arc::clone(&kick),
    };
    if app.registry.register(caller.user, handle.clone()).is_err() {
        // Lost a race with another connection of the same user after the handshake check.
        tracing::debug!(user = caller.user, "connection limit reached after upgrade");
        return;
    }
    app.metrics.connection_opened();
    if app.registry.connections_of(caller.user) == 1 {
        app.social.presence_changed(caller.user, true).await;
    }
    let (sink, mut stream) = ws.split();
    let urgent = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn(writer::run(
        sink,
        rx,
        Arc::clone(&kick),
        Arc::clone(&urgent),
        config.heartbeat_interval(),
        Duration::from_micros(config.write_coalesce_us),
    ));
    let mut reader = Reader {
        app: &app,
        caller,
        handle,
        urgent,
        rooms: Vec::new(),
    };
    let code = reader.read_until_closed(&mut stream).await;
    // Ends the writer too (a no-op when the close was a kick already).
    kick.kick(code);
    for room in reader.rooms.drain(..) {
        _ = app.rooms.leave(conn, &room);
    }
    app.registry.unregister(caller.user, conn);
    app.metrics.connection_closed();
    if app.registry.connections_of(caller.user) == 0 {
        app.social.presence_changed(caller.user, false).await;
    }
    // Let the writer send the close frame while we read until the peer answers it.
    let drain = async { while let Some(Ok(_)) = stream.next().await {} };
    let finish = async {
        _ = tokio::join!(writer, tokio::time::timeout(CLOSE_GRACE, drain));
    };
    _ = tokio::time::timeout(writer::CLOSE_WRITE_TIMEOUT + CLOSE_GRACE, finish).await;
    tracing::debug!(
        user = caller.user,
        conn,
        code = code.code(),
        "connection closed"
    );
}

/// The reading half of a connection.
struct Reader<'a> {
    app: &'a Arc<App>,
    caller: Caller,
    /// This connection as the registry and rooms know it.
    handle: ConnHandle,
    /// Chatrooms this connection occupies.
    rooms: Vec<String>,
    /// Tells the writer a reply is queued: write it without coalescing.
    urgent: Arc<AtomicBool>,
}

impl Reader<'_> {
    /// Reads and answers frames until the connection must end; returns why.
    async fn read_until_closed<S>(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocketStream<S>>,
    ) -> CloseCode
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = &self.app.config;
        let timeout = config.heartbeat_timeout();
        let mut last_seen = Instant::now();
        let mut check = tokio::time::interval(config.heartbeat_interval());
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                code = self.handle.kick.kicked() => return code,
                () = self.app.shutdown.cancelled() => self.handle.kick.kick(CloseCode::GoingAway),
                _ = check.tick() => {
                    if last_seen.elapsed() >= timeout {
                        self.handle.kick.kick(CloseCode::HeartbeatTimeout);
                    }
                }
                frame = stream.next() => {
                    last_seen = Instant::now();
                    match frame {
                        Some(Ok(msg)) => self.on_message(msg).await,
                        // The library has queued the matching close frame (1009 / 1002).
                        Some(Err(WsError::PayloadTooLong { .. })) => return CloseCode::TooBig,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "websocket read error");
                            return CloseCode::ProtocolViolation;
                        }
                        None => return CloseCode::Normal,
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: Message) {
        if let Some(text) = msg.as_text() {
            let reply =
                dispatch::handle(self.app, &self.caller, &self.handle, &mut self.rooms, text).await;
            self.urgent.store(true, Ordering::Release);
            if let Err(mpsc::error::TrySendError::Full(_)) = self.handle.queue.try_send(reply) {
                self.app.metrics.queue_overflow();
                self.handle.kick.kick(CloseCode::SlowConsumer);
            }
        } else if msg.is_binary() {
            self.app.metrics.error(ErrorCode::BadRequest);
            self.handle.kick.kick(CloseCode::ProtocolViolation);
        } else if msg.is_close() {
            self.handle.kick.kick(CloseCode::Normal);
        }
        // Pings are answered by the library; pongs only refresh `last_seen`.
    }
}
