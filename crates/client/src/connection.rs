//! One authenticated WebSocket connection.
//!
//! A reader task parses server frames: replies complete the matching request, events go to a
//! bounded channel the app drains with [`Connection::next_event`]. If the app stops draining,
//! the reader stops reading and the server eventually closes the connection as a slow consumer,
//! exactly as for any other slow client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use banter_protocol::{
    ClientFrame, ClientRequest, ConversationsResult, ErrorBody, Hello, Message, MessagePage,
    ReadResult, SUBPROTOCOL, SendAck, ServerFrame,
};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::Method;
use hyper::header::{
    CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio_websockets::Message as WsMessage;

use crate::api::api_error;
use crate::{Api, ClientError};

/// Events buffered for the app before the reader stops reading.
const EVENT_BUFFER: usize = 8192;
/// Frames buffered for the writer task.
const OUTBOUND_BUFFER: usize = 1024;
/// How long a request waits for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the reader waits for the app to make room for an event before it gives the
/// connection up (replies queue behind events, so a stalled app would stall every request).
const EVENT_STALL: Duration = Duration::from_secs(5);

/// Something the server pushed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new message.
    Message(Message),
    /// A read cursor moved.
    Read {
        /// Conversation id.
        conversation: String,
        /// Reader.
        user: String,
        /// New cursor.
        seq: u64,
    },
    /// A friendship changed.
    Friend {
        /// What happened.
        event: banter_protocol::FriendEvent,
        /// Who acted.
        from: String,
        /// The other party.
        to: String,
    },
    /// A contact's profile changed.
    Profile(banter_protocol::Profile),
    /// A friend came online or went offline.
    Presence {
        /// The user.
        user: String,
        /// Online now.
        online: bool,
        /// Last seen (UTC ms).
        last_seen: Option<i64>,
    },
    /// Someone is typing.
    Typing {
        /// Conversation.
        conversation: String,
        /// Who.
        user: String,
    },
    /// A chatroom message.
    RoomMessage {
        /// Room.
        room: String,
        /// Message.
        message: banter_protocol::RoomMessage,
    },
    /// A chatroom's occupancy changed.
    RoomOccupancy {
        /// Room.
        room: String,
        /// Connections in the room.
        count: usize,
        /// Users who entered.
        joined: Vec<String>,
        /// Users who left.
        left: Vec<String>,
    },
    /// The connection ended; `code` is the server's close code, if it sent one.
    Closed {
        /// Close code.
        code: Option<u16>,
    },
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user (direct conversation).
    User(String),
    /// An existing conversation.
    Conversation(String),
}

type Reply = Result<Box<serde_json::value::RawValue>, ErrorBody>;
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// An authenticated WebSocket session.
pub struct Connection {
    out: mpsc::Sender<WsMessage>,
    events: mpsc::Receiver<Event>,
    pending: Pending,
    next_id: AtomicU64,
    hello: Hello,
}

/// A fresh `Sec-WebSocket-Key`: the base64 encoding of 16 random bytes (RFC 6455 §4.1).
fn websocket_key() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

impl Connection {
    /// Connects to `addr` (`host:port`) with a bearer token.
    pub async fn connect(addr: &str, token: &str) -> Result<Self, ClientError> {
        Self::connect_from(addr, token, None).await
    }

    /// Connects from the given local address (see `Api` for why).
    pub async fn connect_from(
        addr: &str,
        token: &str,
        local: Option<std::net::IpAddr>,
    ) -> Result<Self, ClientError> {
        let api = Api::new(addr);
        let req = api
            .builder(Method::GET, "/v1/ws", Some(token))
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_KEY, websocket_key())
            .header(SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL)
            .body(Full::new(Bytes::new()))
            .map_err(ClientError::protocol)?;
        let response = api.raw_from(req, local).await?;
        if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(ClientError::protocol)?
                .to_bytes();
            return Err(api_error(status, &body));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(ClientError::protocol)?;
        let ws = tokio_websockets::ClientBuilder::new().take_over(TokioIo::new(upgraded));
        let (mut sink, mut stream) = ws.split();
        let hello = match stream.next().await {
            Some(Ok(msg)) => match parse(&msg)? {
                Some(ServerFrame::Hello(hello)) => hello,
                other => {
                    return Err(ClientError::Protocol(format!(
                        "expected hello, got {other:?}"
                    )));
                }
            },
            Some(Err(e)) => return Err(ClientError::protocol(e)),
            None => return Err(ClientError::Closed { code: None }),
        };
        let (out, mut out_rx) = mpsc::channel::<WsMessage>(OUTBOUND_BUFFER);
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let close = msg.is_close();
                if sink.send(msg).await.is_err() || close {
                    return;
                }
            }
            // Every sender is gone: the app dropped its `Connection`. Close the socket (the
            // server answers and the reader then ends) instead of leaving it open until the
            // server's heartbeat gives up on it.
            _ = sink
                .send(WsMessage::close(
                    Some(tokio_websockets::CloseCode::NORMAL_CLOSURE),
                    "",
                ))
                .await;
        });
        tokio::spawn(read_loop(
            stream,
            events_tx,
            Arc::clone(&pending),
            out.downgrade(),
        ));
        Ok(Self {
            out,
            events,
            pending,
            next_id: AtomicU64::new(1),
            hello,
        })
    }

    /// The server's `hello`.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The next pushed event; `None` once the connection has ended: after `Closed`, or without
    /// it when the app stopped reading events for so long that the connection was given up
    /// (then the events buffered until then come first).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event if one has already arrived, without waiting.
    pub fn try_next_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Moves the event stream out, so one task can read events while others make requests.
    /// Dropping the returned receiver discards events from then on. `next_event` returns `None`
    /// afterwards.
    pub fn take_events(&mut self) -> mpsc::Receiver<Event> {
        std::mem::replace(&mut self.events, mpsc::channel(1).1)
    }

    /// Sends a request and waits for its result.
    pub async fn request(&self, request: ClientRequest) -> Result<serde_json::Value, ClientError> {
        self.typed(request).await
    }

    /// Sends a request and decodes its result straight from the reply's raw JSON.
    pub async fn typed<T: DeserializeOwned>(
        &self,
        request: ClientRequest,
    ) -> Result<T, ClientError> {
        let raw = self.round_trip(request).await?;
        serde_json::from_str(raw.get()).map_err(ClientError::protocol)
    }

    async fn round_trip(
        &self,
        request: ClientRequest,
    ) -> Result<Box<serde_json::value::RawValue>, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let text = serde_json::to_string(&ClientFrame {
            id: id.clone(),
            request,
        })
        .map_err(ClientError::protocol)?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .insert(id.clone(), tx);
        if self.out.send(WsMessage::text(text)).await.is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            return Err(ClientError::Closed { code: None });
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(body))) => Err(ClientError::Api { status: 0, body }),
            Ok(Err(_)) => Err(ClientError::Closed { code: None }),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(ClientError::Timeout)
            }
        }
    }

    /// Sends a text message with the given idempotency key.
    pub async fn send_text(
        &self,
        target: &Target,
        client_msg_id: &str,
        text: &str,
    ) -> Result<SendAck, ClientError> {
        self.send(target, client_msg_id, text, None, None).await
    }

    /// A `send` of `text` (with a file, a caption; with a sticker, nothing) to `target`.
    pub(crate) async fn send(
        &self,
        target: &Target,
        client_msg_id: &str,
        text: &str,
        attachment: Option<banter_protocol::AttachmentRequest>,
        sticker: Option<String>,
    ) -> Result<SendAck, ClientError> {
        let (to, conversation) = match target {
            Target::User(u) => (Some(u.clone()), None),
            Target::Conversation(c) => (None, Some(c.clone())),
        };
        self.typed(ClientRequest::Send {
            to,
            conversation,
            client_msg_id: client_msg_id.to_owned(),
            text: text.to_owned(),
            attachment,
            sticker,
        })
        .await
    }

    /// Messages after `after_seq`.
    pub async fn sync(
        &self,
        conversation: &str,
        after_seq: u64,
        limit: Option<u32>,
    ) -> Result<MessagePage, ClientError> {
        self.typed(ClientRequest::Sync {
            conversation: conversation.to_owned(),
            after_seq,
            limit,
        })
        .await
    }

    /// Messages before `before_seq`.
    pub async fn history(
        &self,
        conversation: &str,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<MessagePage, ClientError> {
        self.typed(ClientRequest::History {
            conversation: conversation.to_owned(),
            before_seq,
            limit,
        })
        .await
    }

    /// The conversation list.
    pub async fn conversations(
        &self,
        since_ts: Option<i64>,
    ) -> Result<ConversationsResult, ClientError> {
        self.typed(ClientRequest::Conversations { since_ts }).await
    }

    /// Moves the read cursor.
    pub async fn read(&self, conversation: &str, seq: u64) -> Result<ReadResult, ClientError> {
        self.typed(ClientRequest::Read {
            conversation: conversation.to_owned(),
            seq,
        })
        .await
    }

    /// Sends a raw text frame (for tests of malformed input).
    pub async fn send_raw(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.out
            .send(WsMessage::text(text.into()))
            .await
            .map_err(|_| ClientError::Closed { code: None })
    }

    /// Sends a raw binary frame (for tests of protocol violations).
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<(), ClientError> {
        self.out
            .send(WsMessage::binary(data))
            .await
            .map_err(|_| ClientError::Closed { code: None })
    }

    /// Closes the connection normally.
    pub async fn close(self) {
        _ = self
            .out
            .send(WsMessage::close(
                Some(tokio_websockets::CloseCode::NORMAL_CLOSURE),
                "bye",
            ))
            .await;
    }
}

/// A `message` frame read without serde's buffering of internally tagged enums.
#[derive(serde::Deserialize)]
struct MessageFrame {
    message: banter_protocol::Message,
}

/// An `ok` frame, with its result kept raw (serde cannot read a `RawValue` through the buffering
/// an internally tagged enum needs, so this path is the one that reads replies).
#[derive(serde::Deserialize)]
struct OkFrame {
    id: String,
    result: Box<serde_json::value::RawValue>,
}

/// A `room_message` frame, likewise.
#[derive(serde::Deserialize)]
struct RoomMessageFrame {
    room: String,
    message: banter_protocol::RoomMessage,
}

fn parse(msg: &WsMessage) -> Result<Option<ServerFrame>, ClientError> {
    let Some(text) = msg.as_text() else {
        return Ok(None);
    };
    let bad =
        |e: serde_json::Error| ClientError::Protocol(format!("bad server frame {text:?}: {e}"));
    // Fast paths for the frames that arrive by the million. The server writes the tag first;
    // anything else takes the general path below.
    if text.starts_with(r#"{"type":"ok","#) {
        let f: OkFrame = serde_json::from_str(text).map_err(bad)?;
        return Ok(Some(ServerFrame::Ok {
            id: f.id,
            result: f.result,
        }));
    }
    if text.starts_with(r#"{"type":"message","#) {
        let f: MessageFrame = serde_json::from_str(text).map_err(bad)?;
        return Ok(Some(ServerFrame::Message { message: f.message }));
    }
    if text.starts_with(r#"{"type":"room_message","#) {
        let f: RoomMessageFrame = serde_json::from_str(text).map_err(bad)?;
        return Ok(Some(ServerFrame::RoomMessage {
            room: f.room,
            message: f.message,
        }));
    }
    serde_json::from_str(text).map(Some).map_err(bad)
}

/// Reads frames until the connection ends.
async fn read_loop<S>(
    mut stream: futures_util::stream::SplitStream<tokio_websockets::WebSocketStream<S>>,
    events: mpsc::Sender<Event>,
    pending: Pending,
    // Weak, so that the reader never keeps the writer (and the socket) alive after the app
    // dropped its `Connection`.
    out: mpsc::WeakSender<WsMessage>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut code = None;
    let mut stalled = false;
    while let Some(Ok(msg)) = stream.next().await {
        if let Some((c, _)) = msg.as_close() {
            code = Some(u16::from(c));
            continue;
        }
        let frame = match parse(&msg) {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "dropping unparseable frame");
                continue;
            }
        };
        let event = match frame {
            ServerFrame::Ok { id, result } => {
                complete(&pending, &id, Ok(result));
                continue;
            }
            ServerFrame::Error {
                id: Some(id),
                error,
            } => {
                complete(&pending, &id, Err(error));
                continue;
            }
            ServerFrame::Error { id: None, error } => {
                tracing::warn!(?error, "server error without request id");
                continue;
            }
            ServerFrame::Hello(_) => continue,
            ServerFrame::Message { message } => Event::Message(message),
            ServerFrame::Read {
                conversation,
                user,
                seq,
            } => Event::Read {
                conversation,
                user,
                seq,
            },
            ServerFrame::Friend { event, from, to } => Event::Friend { event, from, to },
            ServerFrame::Profile { profile } => Event::Profile(profile),
            ServerFrame::Presence {
                user,
                online,
                last_seen,
            } => Event::Presence {
                user,
                online,
                last_seen,
            },
            ServerFrame::Typing { conversation, user } => Event::Typing { conversation, user },
            ServerFrame::RoomMessage { room, message } => Event::RoomMessage { room, message },
            ServerFrame::RoomOccupancy {
                room,
                count,
                joined,
                left,
            } => Event::RoomOccupancy {
                room,
                count,
                joined,
                left,
            },
        };
        // Most events find room at once; only a full buffer arms the stall timer (a timer per
        // event cost a clock read and a timer entry on every one of a million pushes).
        let event = match events.try_send(event) {
            // Delivered, or nobody listens any more (events are discarded).
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => continue,
            Err(mpsc::error::TrySendError::Full(event)) => event,
        };
        if tokio::time::timeout(EVENT_STALL, events.send(event))
            .await
            .is_err()
        {
            tracing::warn!("the app has not read events for {EVENT_STALL:?}: closing");
            stalled = true;
            // The writer sends a close frame and stops, so the socket closes once this reader
            // returns, and later requests fail at once.
            if let Some(out) = out.upgrade() {
                _ = out
                    .send(WsMessage::close(
                        Some(tokio_websockets::CloseCode::POLICY_VIOLATION),
                        "events not read",
                    ))
                    .await;
            }
            break;
        }
    }
    // Fail every waiting request: their replies will never come.
    pending.lock().expect("pending lock").clear();
    if stalled {
        // The buffer is still full: `Closed` is delivered only if the app made room.
        _ = events.try_send(Event::Closed { code: None });
    } else {
        _ = events.send(Event::Closed { code }).await;
    }
}

fn complete(pending: &Pending, id: &str, reply: Reply) {
    if let Some(tx) = pending.lock().expect("pending lock").remove(id) {
        _ = tx.send(reply);
    }
}
