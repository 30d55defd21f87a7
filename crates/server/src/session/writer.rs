//! The write half of a connection: drains the bounded outbound queue in batches (many frames,
//! one flush, so one vectored write per batch when the socket keeps up), sends heartbeat pings,
//! and sends the close frame when the connection is kicked.

use std::sync::Arc;
use std::time::Duration;

use banter_protocol::CloseCode;
use bytes::Bytes;
use futures_util::SinkExt as _;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_websockets::{Message, Payload, WebSocketStream};

use crate::registry::Kick;

/// Most frames taken from the queue per flush.
const BATCH: usize = 256;
/// How long the close frame may wait for room in the socket (a slow consumer's buffers are
/// full; when it reads again it still learns why it was closed).
pub(super) const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// Runs until the connection is kicked or the socket fails. `coalesce` is how long a write may
/// wait for more frames to join it (zero: write as soon as anything is queued).
pub(super) async fn run<S>(
    mut sink: Sink<S>,
    mut rx: mpsc::Receiver<Bytes>,
    kick: Arc<Kick>,
    ping_every: Duration,
    coalesce: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let code = loop {
        tokio::select! {
            biased;
            code = kick.kicked() => break code,
            _ = ping.tick() => {
                if sink.send(Message::ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            written = write_batch(&mut sink, &mut rx, &mut batch, coalesce) => {
                if !written {
                    return;
                }
            }
        }
    };
    let close = Message::close(Some(to_ws(code)), code.reason());
    _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(close)).await;
}

/// Waits for queued frames, lets more join for up to `coalesce`, and writes up to [`BATCH`] of
/// them with one flush. False when the queue is closed or the socket failed.
///
/// Why wait at all: in a busy group every member's connection gets a frame every few
/// milliseconds, one at a time; writing each alone costs a system call on the server and one on
/// the client per frame, which is what bounds fan-out on a small machine. A short window turns
/// those into one call per several frames at a bounded cost in latency.
async fn write_batch<S>(
    sink: &mut Sink<S>,
    rx: &mut mpsc::Receiver<Bytes>,
    batch: &mut Vec<Bytes>,
    coalesce: Duration,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if rx.recv_many(batch, BATCH).await == 0 {
        return false;
    }
    if !coalesce.is_zero() {
        let deadline = tokio::time::Instant::now() + coalesce;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    for frame in batch.drain(..) {
        if sink
            .feed(Message::text(Payload::from(frame)))
            .await
            .is_err()
        {
            return false;
        }
    }
    sink.flush().await.is_ok()
}

fn to_ws(code: CloseCode) -> tokio_websockets::CloseCode {
    tokio_websockets::CloseCode::try_from(code.code()).expect("our close codes are valid")
}
