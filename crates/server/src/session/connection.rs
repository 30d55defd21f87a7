//! The socket side of a session: the stream, WebSocket framing and both buffers, hidden from
//! the request loop in `session`, which sees decoded requests ([`Step`]), socket news ([`Io`])
//! and a queue of frames to write.
//!
//! Memory: between bursts a connection holds no read or write buffer (both are dropped when
//! empty), which is what keeps an idle connection to a few kilobytes (docs/BENCHMARKS.md).

use std::future::poll_fn;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use banter_protocol::{CloseCode, ErrorCode};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{Decoder, FrameError, Inbound, Outgoing};
use crate::metrics::Metrics;

/// After asking the peer to close, how long to wait for its close reply before dropping.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long the close frame may wait for room in the socket (a slow consumer's buffers are
/// full; when it reads again it still learns why it was closed).
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most slices (a frame is two: header and payload) in one vectored write.
const WRITE_SLICES: usize = 64;
/// Most bytes taken from the socket per read (into a buffer on the stack, so that a
/// connection waiting for data holds none).
const READ_CHUNK: usize = 8192;

/// What the socket did.
pub(super) enum Io {
    /// Bytes were appended to the read buffer.
    Read,
    /// The whole write buffer went out.
    Written,
    /// The peer ended the stream.
    Eof,
    /// The socket failed.
    Failed(std::io::Error),
}

/// What a decoded frame asks of the session.
pub(super) enum Step {
    /// Nothing more to do for now.
    Idle,
    /// Answer this request.
    Request(Bytes),
    /// Close with this code.
    Close(CloseCode),
}

/// One WebSocket connection's socket, framing and buffers.
pub(super) struct Connection<S> {
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
    metrics: Arc<Metrics>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection over `stream` taking frames of at most `max_frame_bytes`.
    pub(super) fn new(stream: S, max_frame_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            stream,
            decoder: Decoder::new(max_frame_bytes),
            inbuf: BytesMut::new(),
            out: Outgoing::default(),
            reported: 0,
            peer_closed: false,
            metrics,
        }
    }

    /// Queues an encoded text frame for writing.
    pub(super) fn text(&mut self, frame: Bytes) {
        self.out.text(frame);
    }

    /// Queues a ping.
    pub(super) fn ping(&mut self) {
        self.out.ping();
    }

    /// Bytes waiting to be written.
    pub(super) fn unwritten(&self) -> usize {
        self.out.len()
    }

    /// Whether the peer closed its side (nothing more will be read).
    pub(super) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Notes that the peer is gone (its stream ended or failed).
    pub(super) fn set_peer_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Brings the outbound-bytes gauge up to date with `out` (one atomic add when it changed).
    pub(super) fn report_outbound(&mut self) {
        self.out_reported(self.out.len());
    }

    /// Tells the gauge that `out` now holds `len` bytes.
    pub(super) fn out_reported(&mut self, len: usize) {
        if len != self.reported {
            let by = i64::try_from(len).unwrap_or(i64::MAX)
                - i64::try_from(self.reported).unwrap_or(i64::MAX);
            self.metrics.outbound_bytes_changed(by);
            self.reported = len;
        }
    }

    /// Decodes buffered frames up to the first request, answering pings on the way.
    pub(super) fn decode(&mut self, write_now: &mut bool) -> Step {
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
                    self.metrics.error(ErrorCode::BadRequest);
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

    /// Writes the write buffer (when `write`) and reads what the socket has (when `read`),
    /// until one of them has news.
    pub(super) fn poll_io(&mut self, cx: &mut Context<'_>, read: bool, write: bool) -> Poll<Io> {
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
    pub(super) async fn close(&mut self, code: CloseCode) {
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
