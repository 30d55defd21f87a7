//! WebSocket frames: one JSON envelope per text frame, tagged by `type`.
//!
//! Client requests carry an `id` that the server's `ok` or `error` reply echoes. Server events
//! (`hello`, `message`, `read`) carry no request id. Unknown fields are ignored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ErrorBody;

/// A request from the client: the `id` to echo and the typed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Client-chosen request id, echoed in the reply.
    pub id: String,
    /// The request itself, tagged by `type`.
    #[serde(flatten)]
    pub request: ClientRequest,
}

/// The requests a client can make over the WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientRequest {
    /// Send a text message, to a user (`to`, opening the direct conversation) or into an existing
    /// conversation (`conversation`). Replied to with a [`SendAck`].
    Send {
        /// Recipient user id, for a direct message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Conversation id, when the conversation is already known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
        /// Idempotency key chosen by the client, unique per sender.
        client_msg_id: String,
        /// The message text.
        text: String,
    },
    /// Messages of one conversation with `seq > after_seq`, oldest first. Replied to with a
    /// [`MessagePage`].
    Sync {
        /// Conversation id.
        conversation: String,
        /// The last seq the client holds (0 for none).
        #[serde(default)]
        after_seq: u64,
        /// Page size; the server clamps it to its maximum.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Messages with `seq < before_seq` (or the newest when absent), returned oldest first.
    /// Replied to with a [`MessagePage`] whose `has_more` says older ones exist.
    History {
        /// Conversation id.
        conversation: String,
        /// Exclusive upper bound; absent for the newest page.
        #[serde(default)]
        before_seq: Option<u64>,
        /// Page size; the server clamps it to its maximum.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The caller's conversations, most recently active first, optionally only those with
    /// activity after `since_ts`. Replied to with [`ConversationsResult`].
    Conversations {
        /// Server timestamp (ms); only conversations updated after it are listed.
        #[serde(default)]
        since_ts: Option<i64>,
    },
    /// Move the caller's read cursor forward. Replied to with [`ReadResult`].
    Read {
        /// Conversation id.
        conversation: String,
        /// The highest seq the caller has read.
        seq: u64,
    },
    /// Application-level round trip; replied to with an empty result.
    Ping,
}

impl ClientRequest {
    /// The wire `type` of the request.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Sync { .. } => "sync",
            Self::History { .. } => "history",
            Self::Conversations { .. } => "conversations",
            Self::Read { .. } => "read",
            Self::Ping => "ping",
        }
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello(Hello),
    /// Successful reply to request `id`.
    Ok {
        /// The request id.
        id: String,
        /// Request-specific result.
        result: serde_json::Value,
    },
    /// Failed reply to request `id` (absent when the request could not be parsed far enough).
    Error {
        /// The request id, when known.
        #[serde(default)]
        id: Option<String>,
        /// What went wrong.
        error: ErrorBody,
    },
    /// A new message in one of the user's conversations.
    Message {
        /// The message.
        message: Message,
    },
    /// A read cursor moved (the user's own, from another device).
    Read {
        /// Conversation id.
        conversation: String,
        /// The reader.
        user: String,
        /// The new read cursor.
        seq: u64,
    },
}

/// Sent once when the connection is established.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version (see `PROTOCOL_VERSION`).
    pub protocol: u32,
    /// The authenticated user's id.
    pub user: String,
    /// The session (device) this connection belongs to.
    pub session: String,
    /// This connection's id, for support and logs.
    pub connection: String,
    /// Server time (UTC ms).
    pub server_time: i64,
    /// Limits the client should respect.
    pub limits: Limits,
}

/// Server limits announced in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Maximum WebSocket frame payload in bytes.
    pub max_frame_bytes: usize,
    /// Maximum message text length in bytes.
    pub max_text_bytes: usize,
    /// Sustained sends per second per user.
    pub send_rate_per_sec: u32,
    /// Largest page `sync` and `history` return.
    pub max_page: u32,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Globally unique message id.
    pub id: String,
    /// Conversation id.
    pub conversation: String,
    /// Position in the conversation: gap-free, strictly increasing from 1.
    pub seq: u64,
    /// Sender's user id.
    pub sender: String,
    /// The sender's idempotency key.
    pub client_msg_id: String,
    /// Message text.
    pub text: String,
    /// Server commit time (UTC ms).
    pub ts: i64,
}

/// Result of `send`: where the message landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    /// Conversation id.
    pub conversation: String,
    /// The message's seq in the conversation.
    pub seq: u64,
    /// The message id.
    pub message_id: String,
    /// Server commit time (UTC ms).
    pub ts: i64,
    /// True when this `client_msg_id` was already stored: this is the original acknowledgement.
    pub duplicate: bool,
}

/// Result of `sync` and `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    /// Messages in ascending seq order.
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked.
    pub has_more: bool,
}

/// What kind of conversation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A 1:1 conversation between two users.
    Direct,
}

/// One entry of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// Conversation id.
    pub id: String,
    /// Kind of conversation.
    pub kind: ConversationKind,
    /// For a direct conversation, the other user's id.
    pub peer: Option<String>,
    /// For a direct conversation, the other user's username.
    pub peer_username: Option<String>,
    /// Seq of the newest message (0 when empty).
    pub last_seq: u64,
    /// The caller's read cursor.
    pub read_seq: u64,
    /// `last_seq - read_seq`.
    pub unread: u64,
    /// Time of the last activity (UTC ms).
    pub updated_at: i64,
    /// The newest message, if any.
    pub last_message: Option<Message>,
}

/// Result of `conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationsResult {
    /// Conversations, most recently active first.
    pub conversations: Vec<ConversationSummary>,
}

/// Result of `read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResult {
    /// The read cursor after the update (never moves backwards).
    pub read_seq: u64,
}
