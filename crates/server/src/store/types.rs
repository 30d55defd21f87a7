//! Records the store takes and returns. Plain data: no wire format, no SQL.

/// A user's numeric id.
pub type UserId = i64;
/// A conversation's numeric id.
pub type ConvId = i64;
/// A login session's numeric id.
pub type SessionId = i64;

/// A registered account, with its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Unique, lower-case username.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Registration time (UTC ms).
    pub created_at: i64,
    /// Disabled by an operator.
    pub disabled: bool,
    /// Deleted by an operator (a tombstone).
    pub deleted: bool,
}

/// A login session (one device's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Device label.
    pub device: String,
    /// Login time (UTC ms).
    pub created_at: i64,
    /// Expiry (UTC ms).
    pub expires_at: i64,
}

/// A new login session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Owner.
    pub user_id: UserId,
    /// SHA-256 of the bearer token; the token itself is never stored.
    pub token_hash: [u8; 32],
    /// Device label.
    pub device: String,
    /// Login time (UTC ms).
    pub created_at: i64,
    /// Expiry (UTC ms).
    pub expires_at: i64,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Conversation.
    pub conv: ConvId,
    /// Sender.
    pub sender: UserId,
    /// Sender's idempotency key.
    pub client_msg_id: String,
    /// Text, or for an attachment the JSON body (see [`EntryKind::Attachment`]), or a
    /// sticker's id.
    pub text: String,
    /// `Text`, `Attachment` or `Sticker`.
    pub kind: EntryKind,
}

/// A committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Globally unique id.
    pub id: i64,
    /// Conversation.
    pub conv: ConvId,
    /// Gap-free position in the conversation, from 1.
    pub seq: u64,
    /// Sender.
    pub sender: UserId,
    /// Sender's idempotency key (empty for system entries).
    pub client_msg_id: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Text, or the system event as JSON.
    pub text: String,
    /// For recall and edit entries: the seq concerned.
    pub ref_seq: Option<u64>,
    /// When the text was last edited.
    pub edited_at: Option<i64>,
    /// The sender recalled it.
    pub recalled: bool,
    /// Commit time (UTC ms), assigned by the store.
    pub ts: i64,
}

impl StoredMessage {
    /// Whether `amendment` may apply to this entry's kind: a text may be recalled or
    /// edited, a message with a file only recalled (its caption is not editable).
    pub fn amendable(&self, amendment: &Amendment) -> bool {
        match self.kind {
            EntryKind::Text => true,
            EntryKind::Attachment | EntryKind::Sticker => matches!(amendment, Amendment::Recall),
            EntryKind::System | EntryKind::Recall | EntryKind::Edit => false,
        }
    }
}

/// Result of [`Store::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (the original one when `duplicate`).
    pub message: StoredMessage,
    /// True when `(sender, client_msg_id)` had been stored before.
    pub duplicate: bool,
}

/// One of a user's conversations, for the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Conversation.
    pub id: ConvId,
    /// Group name; `None` for a direct conversation.
    pub group_name: Option<String>,
    /// For a direct conversation: the other member's id and username.
    pub peer: Option<(UserId, String)>,
    /// The newest message, if any.
    pub last_message: Option<StoredMessage>,
    /// The user's read cursor.
    pub read_seq: u64,
    /// Last activity (UTC ms): the newest message's time, else creation time.
    pub updated_at: i64,
}

/// What a store can fail with. Services map these to wire errors; `Backend` is never shown to
/// clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The username is already registered.
    #[error("username taken")]
    UsernameTaken,
    /// The referenced row does not exist (or is not live: a revoked session, a disabled user
    /// for a new session, a recalled message for an amendment); says what was missing.
    #[error("{0} not found")]
    NotFound(Missing),
    /// The write lost to a concurrent one (a unique key taken by another writer that is not
    /// an idempotent duplicate). Nothing was written; retrying may succeed.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// The database stayed busy (locked by another connection or process) for longer than the
    /// backend waits. Nothing was written; retrying may succeed.
    #[error("storage busy: {0}")]
    Busy(String),
    /// The invitation code is unknown, expired, revoked or used up.
    #[error("invalid invitation")]
    InvalidInvite,
    /// There are as many live invitations as allowed.
    #[error("too many live invitations")]
    TooManyInvites,
    /// The group would exceed its size limit.
    #[error("group full")]
    GroupFull,
    /// [`AddRules`] refuse to put `user` into a group.
    #[error("user {user} may not be added: {why:?}")]
    Refused {
        /// The user who may not be added.
        user: UserId,
        /// Which rule refused.
        why: Refusal,
    },
    /// The store is shutting down.
    #[error("store closed")]
    Closed,
    /// The database failed for a reason a retry will not fix (a bug, a schema mismatch).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The database files cannot be written or read as they are (I/O error, full or read-only
    /// disk, corruption): every write fails until an operator acts. Retryable for clients.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the data directory's lock (docs/OPERATIONS.md, "Data").
    #[error(
        "data directory {} is in use by another banter process ({}); stop it or pick another \
         --data-dir",
        .dir.display(),
        holder_text(.pid)
    )]
    Locked {
        /// The directory, as configured.
        dir: std::path::PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The data directory failed a check at open; the message says what was found and what to
    /// do (docs/OPERATIONS.md, "Data").
    #[error("data directory check failed: {0}")]
    DataDir(String),
}

impl StoreError {
    /// Whether the same call may succeed if made again later, unchanged: `Busy` and `Conflict`
    /// (a concurrent writer was in the way) and `Unavailable` (once an operator fixed the
    /// disk). Everything else is an answer (`NotFound`, `UsernameTaken`, …) or permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy(_) | Self::Conflict(_) | Self::Unavailable(_)
        )
    }
}

fn holder_text(pid: &Option<u32>) -> String {
    pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
}

/// What a [`StoreError::NotFound`] did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A (live, not deleted; for a new session also not disabled) user.
    User,
    /// A live session of the user.
    Session,
    /// A conversation.
    Conversation,
    /// A group (not a direct conversation).
    Group,
    /// A live text message of the sender, for an amendment.
    Message,
    /// A member of the conversation.
    Member,
    /// A pending friend request.
    FriendRequest,
    /// A friendship.
    Friendship,
    /// A block.
    Block,
    /// A live invitation.
    Invite,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::User => "user",
            Self::Session => "session",
            Self::Conversation => "conversation",
            Self::Group => "group",
            Self::Message => "message",
            Self::Member => "member",
            Self::FriendRequest => "friend request",
            Self::Friendship => "friendship",
            Self::Block => "block",
            Self::Invite => "invitation",
        })
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a conversation entry is (stored as a small integer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryKind {
    /// A text message.
    #[default]
    Text = 0,
    /// A group change; the body is the event as JSON, written by the service.
    System = 1,
    /// A recall of the message at `ref_seq`.
    Recall = 2,
    /// An edit of the message at `ref_seq`; the body is the new text.
    Edit = 3,
    /// A message with a file: the body is `{"text": caption, "attachment": …}` as JSON,
    /// written by the service.
    Attachment = 4,
    /// A built-in sticker: the body is the sticker's id.
    Sticker = 5,
}

impl EntryKind {
    /// From the stored integer (unknown values read as text).
    pub fn from_i64(v: i64) -> Self {
        match v {
            1 => Self::System,
            2 => Self::Recall,
            3 => Self::Edit,
            4 => Self::Attachment,
            5 => Self::Sticker,
            _ => Self::Text,
        }
    }
}

/// A user's profile fields, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRecord {
    /// User id.
    pub id: UserId,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Avatar URL.
    pub avatar_url: String,
    /// Status text.
    pub status_text: String,
    /// When the user's last connection closed (UTC ms).
    pub last_seen: Option<i64>,
}

/// Profile fields to change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Status text.
    pub status_text: Option<String>,
}

/// How two users stand towards each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    /// They are friends.
    pub friends: bool,
    /// `a` asked `b`.
    pub a_requested: bool,
    /// `b` asked `a`.
    pub b_requested: bool,
    /// `a` blocked `b`.
    pub a_blocked: bool,
    /// `b` blocked `a`.
    pub b_blocked: bool,
    /// They are members of at least one common group.
    pub share_group: bool,
}

/// A user's social graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Social {
    /// Friends.
    pub friends: Vec<UserId>,
    /// Users who asked this user.
    pub incoming: Vec<UserId>,
    /// Users this user asked.
    pub outgoing: Vec<UserId>,
    /// Users this user blocked.
    pub blocked: Vec<UserId>,
}

/// A member's role (stored as a small integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberRole {
    /// Plain member.
    Member = 0,
    /// Admin.
    Admin = 1,
    /// Owner.
    Owner = 2,
}

impl MemberRole {
    /// From the stored integer.
    pub fn from_i64(v: i64) -> Self {
        match v {
            2 => Self::Owner,
            1 => Self::Admin,
            _ => Self::Member,
        }
    }
}

/// A conversation member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// User id.
    pub user: UserId,
    /// Role (always `Member` in direct conversations).
    pub role: MemberRole,
    /// Seq of the entry that made them a member (0 for direct conversations): they see entries
    /// from there on.
    pub joined_seq: u64,
    /// Read cursor.
    pub read_seq: u64,
}

/// A group conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Conversation id.
    pub id: ConvId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Open to anyone.
    pub public: bool,
    /// Owner.
    pub owner: UserId,
    /// Member count.
    pub member_count: usize,
    /// Dissolved.
    pub dissolved: bool,
    /// Creation time (UTC ms).
    pub created_at: i64,
}

/// A system entry to append with a group change.
#[derive(Debug, Clone)]
pub struct SystemEntry {
    /// Who caused it.
    pub actor: UserId,
    /// The event, as JSON written by the service.
    pub body: String,
}

/// A new group.
#[derive(Debug, Clone)]
pub struct NewGroup {
    /// Creator, who becomes owner.
    pub owner: UserId,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Open to anyone.
    pub public: bool,
    /// Other initial members.
    pub members: Vec<UserId>,
    /// The creation event.
    pub event: SystemEntry,
    /// Consent and size rules for the owner and every initial member (`by` is the owner).
    pub rules: AddRules,
}

/// The rules a store checks, in the transaction that makes the change, for every user a change
/// puts into a group. Checking them there (and not only in the service) means a block or an
/// unfriending that commits first always wins over an add that was checked before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddRules {
    /// Who adds: the group's creator, the member adding, or the joiner themself.
    pub by: UserId,
    /// Every user other than `by` must be a friend of `by`.
    pub friends_only: bool,
    /// Most live (not dissolved) groups any added user may be in, this one included.
    pub max_groups: usize,
}

/// Why [`AddRules`] refused a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user and the adder: one blocked the other.
    Blocked,
    /// The user and a member of the group (or another user added with them): one blocked the
    /// other.
    BlockedMember,
    /// The rules admit friends only, and the user is not the adder's friend.
    NotFriends,
    /// The user is in `max_groups` live groups already.
    TooManyGroups,
}

/// A change to a group, applied together with its system entry.
#[derive(Debug, Clone)]
pub enum GroupChange {
    /// Add users (existing members are skipped); fails with `GroupFull` beyond `max`, and with
    /// `Refused` when `rules` refuse one of the users.
    Add {
        /// Users.
        users: Vec<UserId>,
        /// Size limit.
        max: usize,
        /// Consent and size rules for each new member.
        rules: AddRules,
    },
    /// Remove a member (leave or removal).
    Remove {
        /// The member.
        user: UserId,
    },
    /// Set a member's role.
    SetRole {
        /// The member.
        user: UserId,
        /// New role.
        role: MemberRole,
    },
    /// Make `to` owner and the current owner `from` an admin.
    Transfer {
        /// Current owner.
        from: UserId,
        /// New owner.
        to: UserId,
    },
    /// Rename and/or describe.
    Update {
        /// New name.
        name: Option<String>,
        /// New description.
        description: Option<String>,
    },
    /// Dissolve.
    Dissolve,
}

/// A recall or an edit of an earlier message (see [`StoredMessage::amendable`]).
#[derive(Debug, Clone)]
pub enum Amendment {
    /// Clear the text and mark the message recalled.
    Recall,
    /// Replace the text.
    Edit(String),
}
