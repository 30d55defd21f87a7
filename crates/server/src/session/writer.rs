//! The write half of a connection: drains the bounded outbound queue in batches (many frames,
//! one flush, so one vectored write per batch when the socket keeps up), sends heartbeat pings,
//! and sends the close frame when the connection is kicked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Runs until the connection is kicked or the socket fails. Pushed frames may wait up to
/// `coalesce` for more to join their write (zero: write whenever anything is queued); when the
/// reader queued a reply it sets `urgent`, and the write goes out at once.
///
/// Why wait at all: in a busy group every member's connection gets a frame every few
/// milliseconds, one at a time; writing each alone costs a system call on the server and one on
/// the client per frame, which is what bounds fan-out on a small machine. A short window turns
/// those into one call per several frames at a bounded cost in push latency, and replies (which a
/// client is waiting for) are not delayed.
///
/// Only a kick may interrupt the gathering or the writing of a batch: frames taken from the
/// queue are never dropped by a timer (a heartbeat ping is written with the next batch).
pub(super) async fn run<S>(
    mut sink: Sink<S>,
    mut rx: mpsc::Receiver<Bytes>,
    kick: Arc<Kick>,
    urgent: Arc<AtomicBool>,
    ping_every: Duration,
    coalesce: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::with_capacity(BATCH);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut ping_due = false;
    let code = 'run: loop {
        // Wait for frames or for the heartbeat. `recv_many` is cancel-safe.
        tokio::select! {
            biased;
            code = kick.kicked() => break 'run code,
            _ = ping.tick() => ping_due = true,
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
            }
        }
        // Let more pushed frames join, for at most `coalesce` after the first; a reply to a
        // request (`urgent`) is never held back.
        if !coalesce.is_zero() && !batch.is_empty() && !urgent.swap(false, Ordering::AcqRel) {
            let deadline = tokio::time::Instant::now() + coalesce;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                tokio::select! {
                    biased;
                    code = kick.kicked() => break 'run code,
                    more = tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)) => {
                        match more {
                            Ok(0) | Err(_) => break,
                            Ok(_) if urgent.swap(false, Ordering::AcqRel) => break,
                            Ok(_) => {}
                        }
                    }
                }
            }
        }
        let ping_now = std::mem::take(&mut ping_due);
        let write = write_batch(&mut sink, &mut batch, ping_now);
        tokio::select! {
            biased;
            code = kick.kicked() => break 'run code,
            written = write => {
                if !written {
                    return;
                }
            }
        }
    };
    let close = Message::close(Some(to_ws(code)), code.reason());
    _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(close)).await;
}

/// Writes a ping (if due) and every frame of `batch` with one flush. False when the socket
/// failed.
async fn write_batch<S>(sink: &mut Sink<S>, batch: &mut Vec<Bytes>, ping: bool) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if ping && sink.feed(Message::ping(Bytes::new())).await.is_err() {
        return false;
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
