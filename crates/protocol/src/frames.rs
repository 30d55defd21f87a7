//! WebSocket frames: one JSON envelope per text frame, tagged by `type`.
//!
//! Client requests carry an `id` that the server's `ok` or `error` reply echoes. Server events
//! carry no request id. Unknown fields are ignored.

use serde::{Deserialize, Serialize};

use crate::ErrorBody;
use crate::model::{Hello, Message, Profile, Role, RoomMessage};

/// A request from the client: the `id` to echo and the typed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Client-chosen request id, echoed in the reply.
    pub id: String,
    /// The request itself, tagged by `type`.
    #[serde(flatten)]
    pub request: ClientRequest,
}

/// The requests a client can make over the WebSocket. Each variant's doc names its result type
/// (in [`crate::model`]); `docs/PROTOCOL.md` has an example of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientRequest {
    /// Send a text message to a user (`to`) or into a conversation. → `SendAck`.
    Send {
        /// Recipient user id, for a direct message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Conversation id (direct or group).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
        /// Idempotency key chosen by the client, unique per sender.
        client_msg_id: String,
        /// The message text (the caption, with an attachment; may then be empty).
        #[serde(default)]
        text: String,
        /// A file uploaded with `POST /v1/media` to send with the text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<crate::AttachmentRequest>,
        /// A sticker of `GET /v1/stickers` to send (then `text` is empty and there is no
        /// attachment).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sticker: Option<String>,
    },
    /// Messages with `seq > after_seq`, oldest first. → `MessagePage`.
    Sync {
        /// Conversation id.
        conversation: String,
        /// The last seq the client holds (0 for none).
        #[serde(default)]
        after_seq: u64,
        /// Page size; clamped to the server's maximum.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Messages with `seq < before_seq` (the newest when absent), oldest first. → `MessagePage`.
    History {
        /// Conversation id.
        conversation: String,
        /// Exclusive upper bound.
        #[serde(default)]
        before_seq: Option<u64>,
        /// Page size; clamped to the server's maximum.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The caller's conversations, newest activity first. → `ConversationsResult`.
    Conversations {
        /// Only conversations updated after this server time (ms).
        #[serde(default)]
        since_ts: Option<i64>,
    },
    /// Move the caller's read cursor forward. → `ReadResult`.
    Read {
        /// Conversation id.
        conversation: String,
        /// The highest seq read.
        seq: u64,
    },
    /// Per-member read cursors of a conversation. → `ReceiptsResult`.
    Receipts {
        /// Conversation id.
        conversation: String,
    },
    /// Recall one of the caller's messages (within the recall window). → `SendAck` of the event.
    Recall {
        /// Conversation id.
        conversation: String,
        /// Seq of the message to recall.
        seq: u64,
        /// Idempotency key of this recall, unique per sender (like a send's). A retry with the
        /// same key answers the original acknowledgement; absent, the recall of one message is
        /// its own key (recalling twice is idempotent anyway).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// Replace the text of one of the caller's messages. → `SendAck` of the event.
    Edit {
        /// Conversation id.
        conversation: String,
        /// Seq of the message to edit.
        seq: u64,
        /// The new text.
        text: String,
        /// Idempotency key of this edit, unique per sender (like a send's): a retry with the
        /// same key answers the original acknowledgement, a new key is a new edit (even back to
        /// an earlier text). Absent, the server picks a fresh key, so the edit is never taken
        /// for an earlier one, but a retry of it is a second edit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
    /// Tell the other members the caller is typing (never stored). → empty.
    Typing {
        /// Conversation id.
        conversation: String,
    },
    /// Online state and last-seen of friends and fellow group members. → `PresenceResult`.
    Presence {
        /// User ids.
        users: Vec<String>,
    },
    /// Change the caller's profile; absent fields stay. → `Profile`.
    ProfileUpdate {
        /// Display name (at most 64 bytes).
        #[serde(default)]
        display_name: Option<String>,
        /// Avatar URL (http or https, at most 512 bytes).
        #[serde(default)]
        avatar_url: Option<String>,
        /// Status text (at most 140 bytes).
        #[serde(default)]
        status_text: Option<String>,
    },
    /// Profiles of users; full for the caller, friends and fellow group members, the public part
    /// (id, username) for others. → `ProfilesResult`.
    Profiles {
        /// User ids.
        users: Vec<String>,
    },
    /// Ask a user to be friends (accepts at once if they asked first). → `FriendResult`.
    FriendRequest {
        /// The user.
        user: String,
    },
    /// Accept a user's friend request. → empty.
    FriendAccept {
        /// The requester.
        user: String,
    },
    /// Decline a user's friend request. → empty.
    FriendDecline {
        /// The requester.
        user: String,
    },
    /// Withdraw the caller's request to a user. → empty.
    FriendCancel {
        /// The user asked.
        user: String,
    },
    /// End a friendship. → empty.
    FriendRemove {
        /// The friend.
        user: String,
    },
    /// Block a user: ends friendship and requests; they can no longer message or befriend the
    /// caller. → empty.
    Block {
        /// The user.
        user: String,
    },
    /// Lift a block. → empty.
    Unblock {
        /// The user.
        user: String,
    },
    /// Friends, pending requests both ways, and blocked users. → `SocialResult`.
    Friends,
    /// Create a group with the caller as owner. → `GroupInfo`.
    GroupCreate {
        /// Name (1–64 bytes).
        name: String,
        /// Description (at most 512 bytes).
        #[serde(default)]
        description: Option<String>,
        /// Whether anyone may join without an invitation.
        #[serde(default)]
        public: bool,
        /// Initial members besides the caller.
        #[serde(default)]
        members: Vec<String>,
    },
    /// Add users to a group; any member may, for the users the server's `group_add_policy`
    /// admits (friends of the adder by default; never across a block). → `GroupAddResult`.
    GroupAdd {
        /// Group (conversation) id.
        group: String,
        /// Users to add.
        users: Vec<String>,
    },
    /// Join a public group. → `GroupInfo`.
    GroupJoin {
        /// Group id.
        group: String,
    },
    /// Leave a group (an owner must transfer ownership first). → empty.
    GroupLeave {
        /// Group id.
        group: String,
    },
    /// Remove a member (owner: anyone; admin: plain members). → empty.
    GroupRemove {
        /// Group id.
        group: String,
        /// The member.
        user: String,
    },
    /// Make a member an admin or a plain member (owner only). → empty.
    GroupRole {
        /// Group id.
        group: String,
        /// The member.
        user: String,
        /// `admin` or `member`.
        role: Role,
    },
    /// Hand ownership to another member; the old owner becomes admin. → empty.
    GroupTransfer {
        /// Group id.
        group: String,
        /// The new owner.
        user: String,
    },
    /// Rename or describe a group (owner or admin). → `GroupInfo`.
    GroupUpdate {
        /// Group id.
        group: String,
        /// New name.
        #[serde(default)]
        name: Option<String>,
        /// New description.
        #[serde(default)]
        description: Option<String>,
    },
    /// End a group for good (owner only): no more messages; history stays readable. → empty.
    GroupDissolve {
        /// Group id.
        group: String,
    },
    /// The caller's groups. → `GroupsResult`.
    Groups,
    /// A group's members with roles and read cursors. → `MembersResult`.
    GroupMembers {
        /// Group id.
        group: String,
    },
    /// Enter a chatroom (created on first use). → `RoomJoined`.
    RoomJoin {
        /// Room name: 1–64 of `a-z 0-9 _ -`.
        room: String,
    },
    /// Leave a chatroom. → empty.
    RoomLeave {
        /// Room name.
        room: String,
    },
    /// Broadcast text to a chatroom's occupants. → `RoomAck`.
    RoomSend {
        /// Room name.
        room: String,
        /// Idempotency key (deduplicated while it is in the room's recent history).
        client_msg_id: String,
        /// The text.
        text: String,
    },
    /// Application-level round trip. → empty.
    Ping,
}

impl ClientRequest {
    /// Every request `type`, for telling unknown types from malformed requests.
    pub const TYPES: &'static [&'static str] = &[
        "send",
        "sync",
        "history",
        "conversations",
        "read",
        "receipts",
        "recall",
        "edit",
        "typing",
        "presence",
        "profile_update",
        "profiles",
        "friend_request",
        "friend_accept",
        "friend_decline",
        "friend_cancel",
        "friend_remove",
        "block",
        "unblock",
        "friends",
        "group_create",
        "group_add",
        "group_join",
        "group_leave",
        "group_remove",
        "group_role",
        "group_transfer",
        "group_update",
        "group_dissolve",
        "groups",
        "group_members",
        "room_join",
        "room_leave",
        "room_send",
        "ping",
    ];
}

/// What happened to a friendship, in a `friend` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FriendEvent {
    /// `from` asked `to`.
    Requested,
    /// `to` accepted `from`'s request: they are friends.
    Accepted,
    /// `to` declined `from`'s request.
    Declined,
    /// `from` withdrew the request to `to`.
    Cancelled,
    /// `from` ended the friendship with `to`.
    Removed,
}

/// A frame from the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello(Hello),
    /// Successful reply to request `id`.
    Ok {
        /// The request id.
        id: String,
        /// Request-specific result, kept as raw JSON so that it is serialized once on the server
        /// and decoded once, straight into its type, by the client.
        result: Box<serde_json::value::RawValue>,
    },
    /// Failed reply to request `id` (absent when the request could not be parsed far enough).
    Error {
        /// The request id, when known.
        #[serde(default)]
        id: Option<String>,
        /// What went wrong.
        error: ErrorBody,
    },
    /// A new entry in one of the user's conversations: a message, a system event, a recall or
    /// an edit.
    Message {
        /// The entry.
        message: Message,
    },
    /// A read cursor moved: the user's own (from another device), or the peer's in a direct
    /// conversation.
    Read {
        /// Conversation id.
        conversation: String,
        /// The reader.
        user: String,
        /// The new read cursor.
        seq: u64,
    },
    /// A friendship changed; sent to both parties.
    Friend {
        /// What happened.
        event: FriendEvent,
        /// Who acted.
        from: String,
        /// The other party.
        to: String,
    },
    /// A friend or fellow member changed their profile.
    Profile {
        /// The new profile.
        profile: Profile,
    },
    /// A friend came online or went offline.
    Presence {
        /// The user.
        user: String,
        /// Any device connected.
        online: bool,
        /// When the last device disconnected (UTC ms), if ever.
        last_seen: Option<i64>,
    },
    /// Someone is typing in a conversation.
    Typing {
        /// Conversation id.
        conversation: String,
        /// Who.
        user: String,
    },
    /// A message broadcast in a chatroom the connection occupies.
    RoomMessage {
        /// Room name.
        room: String,
        /// The message.
        message: RoomMessage,
    },
    /// A chatroom's occupancy changed (coalesced: at most one per room per interval).
    RoomOccupancy {
        /// Room name.
        room: String,
        /// Connections in the room now.
        count: usize,
        /// Users who entered since the last update (at most 50 listed).
        joined: Vec<String>,
        /// Users who left since the last update (at most 50 listed).
        left: Vec<String>,
    },
}
