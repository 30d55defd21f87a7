//! The things frames carry: messages, profiles, groups, rooms, and each request's result.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// Largest group.
    pub max_group_members: usize,
    /// Seconds after sending during which a message can be recalled.
    pub recall_window_secs: u64,
    /// Sends a user may burst above `send_rate_per_sec`.
    #[serde(default)]
    pub send_burst: u32,
    /// Sustained state-changing requests per second per user (all devices together).
    #[serde(default)]
    pub request_rate_per_sec: u32,
    /// Requests a user may burst above `request_rate_per_sec`.
    #[serde(default)]
    pub request_burst: u32,
    /// Sustained state-changing requests per second on one connection.
    #[serde(default)]
    pub connection_request_rate_per_sec: u32,
    /// Requests one connection may burst above its rate.
    #[serde(default)]
    pub connection_request_burst: u32,
    /// Typing notices per second per user and conversation.
    #[serde(default)]
    pub typing_per_sec: u32,
    /// Typing notices a user may burst per conversation.
    #[serde(default)]
    pub typing_burst: u32,
    /// Most bytes of encoded messages in one `sync` or `history` page.
    #[serde(default)]
    pub max_page_bytes: usize,
    /// Most WebSocket connections of one user at once.
    #[serde(default)]
    pub max_connections_per_user: usize,
    /// Most live groups one user may be a member of.
    #[serde(default)]
    pub max_groups_per_user: usize,
    /// Most chatrooms one connection may be in.
    #[serde(default)]
    pub max_rooms_per_connection: usize,
    /// Recent messages a chatroom keeps.
    #[serde(default)]
    pub room_history: usize,
    /// Most bytes of encoded recent messages a chatroom keeps.
    #[serde(default)]
    pub room_history_bytes: usize,
    /// Interval of the server's WebSocket pings, in ms.
    #[serde(default)]
    pub heartbeat_interval_ms: u64,
    /// A connection silent for this long (ms) is closed with 4002.
    #[serde(default)]
    pub heartbeat_timeout_ms: u64,
}

/// What a conversation entry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A text message.
    #[default]
    Text,
    /// A membership or group change, described by `event`.
    System,
    /// The sender recalled the message at `ref_seq`.
    Recall,
    /// The sender replaced the text of the message at `ref_seq` with `text`.
    Edit,
}

/// A group change recorded in the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    /// The group was created.
    GroupCreated {
        /// Creator.
        by: String,
        /// Name.
        name: String,
        /// Initial members, the creator included.
        members: Vec<String>,
    },
    /// Members were added by a member.
    MembersAdded {
        /// Who added them.
        by: String,
        /// The new members.
        users: Vec<String>,
    },
    /// A user joined a public group.
    MemberJoined {
        /// The user.
        user: String,
    },
    /// A member left.
    MemberLeft {
        /// The user.
        user: String,
    },
    /// A member was removed.
    MemberRemoved {
        /// Who removed them.
        by: String,
        /// The removed user.
        user: String,
    },
    /// A member's role changed.
    RoleChanged {
        /// The owner.
        by: String,
        /// The member.
        user: String,
        /// New role.
        role: Role,
    },
    /// Ownership moved.
    OwnerTransferred {
        /// Old owner (now admin).
        from: String,
        /// New owner.
        to: String,
    },
    /// Name or description changed.
    GroupUpdated {
        /// Who changed it.
        by: String,
        /// New name, if changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// New description, if changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// The group was dissolved.
    GroupDissolved {
        /// The owner.
        by: String,
    },
}

/// An entry of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// Globally unique id.
    pub id: String,
    /// Conversation id.
    pub conversation: String,
    /// Position in the conversation: gap-free, strictly increasing from 1.
    pub seq: u64,
    /// Sender's (or actor's) user id.
    pub sender: String,
    /// The sender's idempotency key (empty for system events).
    pub client_msg_id: String,
    /// What this entry is.
    #[serde(default)]
    pub kind: MessageKind,
    /// Text (for `text` and `edit`; empty for a recalled message).
    pub text: String,
    /// For `recall` and `edit`: the seq of the message concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_seq: Option<u64>,
    /// For `system`: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<SystemEvent>,
    /// When the text was last edited (UTC ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// The sender recalled this message; its text is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// A file sent with the message (its kind stays `text`, and `text` starts with a fallback
    /// line, so that clients that do not know attachments still show something).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Box<crate::Attachment>>,
    /// A sticker of the server's set (its kind stays `text`, and `text` is a fallback line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticker: Option<Box<crate::Sticker>>,
    /// Server commit time (UTC ms).
    pub ts: i64,
}

/// Result of `send`, `recall` and `edit`: where the entry landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendAck {
    /// Conversation id.
    pub conversation: String,
    /// The entry's seq.
    pub seq: u64,
    /// The entry's id.
    pub message_id: String,
    /// Server commit time (UTC ms).
    pub ts: i64,
    /// True when this `client_msg_id` was already stored: this is the original acknowledgement.
    pub duplicate: bool,
}

/// Result of `sync` and `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    /// Entries in ascending seq order.
    pub messages: Vec<Message>,
    /// More entries exist beyond this page in the direction asked.
    pub has_more: bool,
}

/// What kind of conversation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Between two users.
    Direct,
    /// A group.
    Group,
}

/// One entry of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    /// Conversation id.
    pub id: String,
    /// Kind of conversation.
    pub kind: ConversationKind,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For a direct conversation, the other user's id.
    pub peer: Option<String>,
    /// For a direct conversation, the other user's username.
    pub peer_username: Option<String>,
    /// Seq of the newest entry (0 when empty).
    pub last_seq: u64,
    /// The caller's read cursor.
    pub read_seq: u64,
    /// `last_seq - read_seq`.
    pub unread: u64,
    /// Time of the last activity (UTC ms).
    pub updated_at: i64,
    /// The newest entry, if any.
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

/// One member's read cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Member.
    pub user: String,
    /// Their read cursor.
    pub read_seq: u64,
}

/// Result of `receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsResult {
    /// Every member's cursor.
    pub receipts: Vec<Receipt>,
}

/// A user's online state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceInfo {
    /// The user.
    pub user: String,
    /// Any device connected.
    pub online: bool,
    /// When the last device disconnected (UTC ms), if ever.
    pub last_seen: Option<i64>,
}

/// Result of `presence`: entries for the users the caller may see (others are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceResult {
    /// Entries.
    pub presence: Vec<PresenceInfo>,
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// User id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Display name (empty when unset or not visible to the caller).
    pub display_name: String,
    /// Avatar URL (empty when unset or not visible).
    pub avatar_url: String,
    /// Status text (empty when unset or not visible).
    pub status_text: String,
}

/// Result of `profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilesResult {
    /// One per known user asked for.
    pub profiles: Vec<Profile>,
}

/// Where a friend request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FriendStatus {
    /// Waiting for the other user.
    Pending,
    /// They had asked too: now friends.
    Friends,
}

/// Result of `friend_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendResult {
    /// Where it stands.
    pub status: FriendStatus,
}

/// Result of `friends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialResult {
    /// Friends.
    pub friends: Vec<Profile>,
    /// Users who asked the caller.
    pub incoming: Vec<Profile>,
    /// Users the caller asked.
    pub outgoing: Vec<Profile>,
    /// Users the caller blocked.
    pub blocked: Vec<Profile>,
}

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Can send, read, invite and leave.
    Member,
    /// Also renames, describes and removes plain members.
    Admin,
    /// Also removes admins, sets roles, transfers ownership and dissolves. Exactly one.
    Owner,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Group (conversation) id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Open to anyone.
    pub public: bool,
    /// Owner's user id.
    pub owner: String,
    /// Number of members.
    pub member_count: usize,
    /// Dissolved groups accept no messages.
    pub dissolved: bool,
    /// Creation time (UTC ms).
    pub created_at: i64,
}

/// Result of `group_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAddResult {
    /// Users added (those already members are left out).
    pub added: Vec<String>,
}

/// Result of `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsResult {
    /// The caller's groups.
    pub groups: Vec<GroupInfo>,
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// User id.
    pub user: String,
    /// Role.
    pub role: Role,
    /// Seq of the event that made them a member; they see history from there.
    pub joined_seq: u64,
    /// Their read cursor.
    pub read_seq: u64,
}

/// Result of `group_members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResult {
    /// Members, owner first, then by role and id.
    pub members: Vec<MemberInfo>,
}

/// A chatroom message (ephemeral: only a recent window is kept, in memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    /// Per-room sequence, increasing without gaps while the server runs.
    pub seq: u64,
    /// Unique id.
    pub id: String,
    /// Sender.
    pub sender: String,
    /// Sender's idempotency key.
    pub client_msg_id: String,
    /// Text.
    pub text: String,
    /// Server time (UTC ms).
    pub ts: i64,
}

/// Result of `room_join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomJoined {
    /// Room name.
    pub room: String,
    /// Connections in the room, this one included.
    pub count: usize,
    /// The recent window of messages, oldest first.
    pub recent: Vec<RoomMessage>,
}

/// Result of `room_send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAck {
    /// Room name.
    pub room: String,
    /// The message's seq.
    pub seq: u64,
    /// The message's id.
    pub message_id: String,
    /// Server time.
    pub ts: i64,
    /// A retry of a message still in the recent window.
    pub duplicate: bool,
}
