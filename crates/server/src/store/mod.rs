//! The `Store` seam: everything Banter persists (accounts, sessions, conversations, messages,
//! read cursors) behind one async trait.
//!
//! Services speak only this trait; SQL lives only in the implementations (`sqlite`, and later
//! `postgres`). Every implementation must pass the suite in [`conformance`], unchanged.
//! Implementations must uphold the message invariants of DESIGN.md: `append` returns only
//! after the message is committed; `seq` is gap-free per conversation; a repeated
//! `(sender, client_msg_id)` returns the original message with `duplicate = true`.

pub mod conformance;
pub mod sqlite;

use async_trait::async_trait;

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
    /// Text.
    pub text: String,
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
    /// Sender's idempotency key.
    pub client_msg_id: String,
    /// Text.
    pub text: String,
    /// Commit time (UTC ms), assigned by the store.
    pub ts: i64,
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
    /// The referenced row does not exist.
    #[error("not found")]
    NotFound,
    /// The store is shutting down.
    #[error("store closed")]
    Closed,
    /// The database failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The persistence seam. See the module docs for the invariants every implementation keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Registers a user; `UsernameTaken` if the name exists.
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<UserRecord>;
    /// Looks a user up by exact username.
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Looks a user up by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    /// Users whose username starts with `prefix`, by username, at most `limit`.
    async fn users_by_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<UserRecord>>;
    /// Replaces a user's password hash.
    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()>;

    /// Stores a login session.
    async fn create_session(&self, session: NewSession) -> StoreResult<SessionRecord>;
    /// The live (unrevoked) session holding this token hash, expired or not.
    async fn session_by_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>>;
    /// A user's live sessions, oldest first.
    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one of `user`'s sessions; `NotFound` if it is not theirs or not live.
    async fn revoke_session(&self, user: UserId, session: SessionId) -> StoreResult<()>;
    /// Revokes all of `user`'s sessions except `keep`; returns the revoked ids.
    async fn revoke_other_sessions(
        &self,
        user: UserId,
        keep: SessionId,
    ) -> StoreResult<Vec<SessionId>>;

    /// The direct conversation between two distinct users, created on first use.
    async fn direct_conversation(&self, a: UserId, b: UserId) -> StoreResult<ConvId>;
    /// Member ids of a conversation (empty if it does not exist).
    async fn members(&self, conv: ConvId) -> StoreResult<Vec<UserId>>;

    /// Appends a message, assigning `seq`, `id` and `ts` at commit. Returns after commit.
    async fn append(&self, message: NewMessage) -> StoreResult<Appended>;
    /// Messages with `seq > after`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        conv: ConvId,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// Messages with `seq < before` (all when `None`), the newest `limit` of them, ascending.
    async fn messages_before(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// Seq of the newest message (0 when empty).
    async fn last_seq(&self, conv: ConvId) -> StoreResult<u64>;

    /// A user's conversations with their newest message and read cursor.
    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationRecord>>;
    /// Moves the user's read cursor to `max(current, seq)` and returns the result.
    /// `NotFound` if the user is not a member.
    async fn set_read_cursor(&self, user: UserId, conv: ConvId, seq: u64) -> StoreResult<u64>;

    /// Counts stored rows holding messages of `conv` (for tests of read diffusion and
    /// idempotency; not used on hot paths).
    async fn count_messages(&self, conv: ConvId) -> StoreResult<u64>;
    /// Waits for in-flight writes to commit and stops accepting new ones.
    async fn close(&self);
}
