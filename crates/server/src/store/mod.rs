//! The `Store` seam: everything Banter persists (accounts, sessions, conversations, messages,
//! read cursors) behind one async trait.
//!
//! Services speak only this trait; SQL lives only in the implementations (`sqlite` and
//! `postgres`), and only [`open`] names one. Every implementation must pass the suite in
//! [`conformance`] unchanged ([`store_conformance!`](crate::store_conformance)).
//!
//! # The contract
//! What every implementation keeps, whatever its engine, however many handles (processes,
//! nodes) write one database at once:
//!
//! - **Durable before visible.** A write returns `Ok` only after it committed; an `Err` means
//!   it did not, except where a method says otherwise.
//! - **Seq.** Every entry of a conversation (text, recall, edit, system entry) gets the next
//!   `seq` of that conversation, from 1, in the transaction that stores it: across every
//!   handle on one database seqs are unique and gap-free per conversation, and commit order is
//!   seq order (an entry whose seq is visible has every smaller seq visible too). A write that
//!   fails leaves no gap. The conversation's counter moves with its entries ([`Store::last_seq`]
//!   reads it); it is never derived by reading the newest row, which another writer may be
//!   about to pass. (PostgreSQL: `UPDATE conversations SET last_seq = last_seq + 1 WHERE id =
//!   $1 RETURNING last_seq` in the inserting transaction serialises writers per conversation
//!   on its row lock and holds the order until commit.)
//! - **Idempotency.** `(sender, client_msg_id)` names at most one entry in the whole database:
//!   a repeat through any handle returns the original with `duplicate = true` and writes
//!   nothing.
//! - **Queued appends** ([`Store::queue_append`]): appends queued one after another by one
//!   caller commit in that order (the later gets the higher seq when they share a
//!   conversation); each queued append commits whether or not anyone awaits or keeps its
//!   future (the session pipeline drops futures of connections that went away); the returned
//!   future resolves only after its commit, with the outcome.
//! - **Errors** say what happened: `NotFound` names what was missing; [`StoreError::is_retryable`]
//!   tells the failures a later retry may get past (`Busy`, `Conflict`, `Unavailable`) from
//!   answers and permanent `Backend` faults.
//! - **One database, one deployment.** A file-backed store refuses a data directory that
//!   another process holds ([`StoreError::Locked`]); handles of one process share it.

mod admin;
mod columns;
pub mod conformance;
mod media;
pub mod postgres;
pub mod sqlite;
mod types;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

pub use admin::{AdminStore, DeletedUser, InviteRecord, NewInvite, StoreStats};
pub use media::{MediaRecord, MediaStore, Upload};
pub use types::*;

use crate::config::Config;
use crate::metrics::Metrics;
use postgres::{PostgresOptions, PostgresStore};
use sqlite::{SqliteOptions, SqliteStore};

/// Which store to open and how, from the configuration ([`StoreConfig::from_config`]).
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded store: one SQLite database in `data_dir`.
    Sqlite {
        /// The data directory (`data_dir`).
        data_dir: PathBuf,
        /// Its tuning (`write_batch_max`, `sqlite_*`).
        options: SqliteOptions,
    },
    /// The cluster store: one PostgreSQL database shared by every node.
    Postgres {
        /// Where it is (`postgres://user@host:port/db`).
        url: String,
        /// Pool size, batch size and timeouts.
        options: PostgresOptions,
    },
}

impl StoreConfig {
    /// The store the configuration asks for: PostgreSQL when `store` names it, else the
    /// embedded SQLite store in `data_dir` (which PostgreSQL mode never touches).
    pub fn from_config(config: &Config) -> Self {
        if config.store.is_set() {
            return Self::Postgres {
                url: config.store.expose().to_owned(),
                options: PostgresOptions {
                    pool_size: config.postgres_pool_size,
                    ..PostgresOptions::default()
                },
            };
        }
        Self::Sqlite {
            data_dir: config.data_dir.clone(),
            options: SqliteOptions {
                write_batch_max: config.write_batch_max,
                synchronous: config.sqlite_synchronous,
                readers: config.sqlite_readers,
                quick_check: config.sqlite_quick_check,
            },
        }
    }
}

/// Opens the configured store (checks, migrations and all), off the async threads.
pub async fn open(config: &StoreConfig, metrics: Arc<Metrics>) -> StoreResult<Arc<dyn Store>> {
    match config {
        StoreConfig::Sqlite { data_dir, options } => {
            let (dir, options) = (data_dir.clone(), options.clone());
            let store =
                tokio::task::spawn_blocking(move || SqliteStore::open(&dir, &options, metrics))
                    .await
                    .map_err(|e| StoreError::Backend(format!("store open task: {e}")))??;
            Ok(Arc::new(store))
        }
        StoreConfig::Postgres { url, options } => {
            Ok(Arc::new(PostgresStore::open(url, options, metrics).await?))
        }
    }
}

/// Bytes counted for an entry besides its text when a page is bounded by bytes: no more than
/// its other fields take encoded, so that a page the store cut by bytes never fits whole in
/// the services' encoded budget (which is how they tell there is more).
pub const ENTRY_OVERHEAD: usize = 64;

/// An append that is queued and resolves once committed (see [`Store::queue_append`]).
pub type PendingAppend = Pin<Box<dyn Future<Output = StoreResult<Appended>> + Send>>;

/// The persistence seam. See the module docs for the invariants every implementation keeps.
#[async_trait]
pub trait Store: AdminStore + MediaStore + Send + Sync + 'static {
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

    /// Stores a login session; `NotFound` if the user is disabled or deleted.
    async fn create_session(&self, session: NewSession) -> StoreResult<SessionRecord>;
    /// The live (unrevoked) session holding this token hash, expired or not.
    async fn session_by_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>>;
    /// A user's live sessions, oldest first.
    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<SessionRecord>>;
    /// Revokes one of `user`'s sessions; `NotFound` if it is not theirs or not live.
    async fn revoke_session(&self, user: UserId, session: SessionId) -> StoreResult<()>;
    /// Revokes `user`'s live sessions but the newest `keep`; returns the revoked ids.
    async fn trim_sessions(&self, user: UserId, keep: u32) -> StoreResult<Vec<SessionId>>;
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
    /// `NotFound(Conversation)` for an unknown conversation (membership is the services'
    /// check).
    async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        self.queue_append(message).await?.await
    }
    /// Queues an append and returns once it is queued, with a future that resolves after its
    /// commit, so a connection can pipeline its sends without reordering them. Appends queued
    /// one after another by one caller commit in that order; a queued append commits whether
    /// or not its future is awaited or kept; an `Err` from the future means it did not commit
    /// and took no seq. (A backend without a writer queue can implement it by starting the
    /// transaction before returning, e.g. on a per-caller ordered task.)
    async fn queue_append(&self, message: NewMessage) -> StoreResult<PendingAppend>;
    /// Messages with `seq > after`, ascending, at most `limit`, and no more once their texts
    /// (plus [`ENTRY_OVERHEAD`] each) pass `max_bytes`: the entry that passes it (after the
    /// first) is the last one returned, so a caller that fits the page into `max_bytes` of
    /// encoded entries always leaves it out and can tell that more exist. Bounds what one page
    /// loads into memory.
    async fn messages_after(
        &self,
        conv: ConvId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// Messages with `min_seq <= seq < before` (no upper bound when `None`), the newest `limit`
    /// of them, ascending, bounded by `max_bytes` from the newest down as in
    /// [`Store::messages_after`].
    async fn messages_before(
        &self,
        conv: ConvId,
        before: Option<u64>,
        min_seq: u64,
        limit: u32,
        max_bytes: usize,
    ) -> StoreResult<Vec<StoredMessage>>;
    /// The entry at `seq`.
    async fn message(&self, conv: ConvId, seq: u64) -> StoreResult<Option<StoredMessage>>;
    /// Appends a recall or edit entry for the message `seq` sent by `sender`, and applies it to
    /// that message, in one transaction. `NotFound` if there is no such live message, or its
    /// kind does not take this amendment ([`StoredMessage::amendable`]).
    /// Idempotent on `(sender, client_msg_id)` like [`Store::append`].
    async fn amend(
        &self,
        conv: ConvId,
        seq: u64,
        sender: UserId,
        client_msg_id: String,
        amendment: Amendment,
    ) -> StoreResult<Appended>;
    /// The conversation's seq counter: the seq of its newest entry (0 when empty or unknown).
    async fn last_seq(&self, conv: ConvId) -> StoreResult<u64>;

    /// A user's conversations with their newest message and read cursor.
    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationRecord>>;
    /// Moves the user's read cursor to `max(current, seq)` and returns the result.
    /// `NotFound` if the user is not a member.
    async fn set_read_cursor(&self, user: UserId, conv: ConvId, seq: u64) -> StoreResult<u64>;

    /// Profiles of the given users (unknown ids are left out).
    async fn profiles(&self, users: &[UserId]) -> StoreResult<Vec<ProfileRecord>>;
    /// Changes a user's profile and returns it.
    async fn update_profile(&self, user: UserId, patch: ProfilePatch)
    -> StoreResult<ProfileRecord>;
    /// Records when the user's last connection closed.
    async fn set_last_seen(&self, user: UserId, ts: i64) -> StoreResult<()>;

    /// How `a` and `b` stand towards each other.
    async fn relation(&self, a: UserId, b: UserId) -> StoreResult<Relation>;
    /// A user's friends, requests and blocks.
    async fn social(&self, user: UserId) -> StoreResult<Social>;
    /// Friends and fellow group members of a user (who see their profile and presence).
    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>>;
    /// Records a request from `from` to `to` (no-op if pending).
    async fn create_friend_request(&self, from: UserId, to: UserId) -> StoreResult<()>;
    /// Deletes the request from `from` to `to`; `NotFound` if none.
    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StoreResult<()>;
    /// Makes `a` and `b` friends and clears requests between them.
    async fn make_friends(&self, a: UserId, b: UserId) -> StoreResult<()>;
    /// Ends a friendship; `NotFound` if they are not friends.
    async fn remove_friend(&self, a: UserId, b: UserId) -> StoreResult<()>;
    /// `blocker` blocks `blocked`: friendship and requests between them end.
    async fn block(&self, blocker: UserId, blocked: UserId) -> StoreResult<()>;
    /// Lifts a block; `NotFound` if there is none.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<()>;

    /// Creates a group, its members and its creation entry.
    async fn create_group(&self, group: NewGroup) -> StoreResult<(GroupRecord, StoredMessage)>;
    /// A group by id (`None` for unknown ids and direct conversations).
    async fn group(&self, conv: ConvId) -> StoreResult<Option<GroupRecord>>;
    /// The groups a user is a member of.
    async fn groups_of(&self, user: UserId) -> StoreResult<Vec<GroupRecord>>;
    /// One member of a conversation.
    async fn member(&self, conv: ConvId, user: UserId) -> StoreResult<Option<MemberRecord>>;
    /// Every member of a conversation with role, join point and read cursor.
    async fn member_records(&self, conv: ConvId) -> StoreResult<Vec<MemberRecord>>;
    /// Applies a group change and appends its system entry, in one transaction.
    async fn change_group(
        &self,
        conv: ConvId,
        change: GroupChange,
        entry: SystemEntry,
    ) -> StoreResult<StoredMessage>;

    /// `Ok` when the store can take writes; `Unavailable` while its last write failed for a
    /// lasting reason (I/O error, full or read-only disk, corruption), until a write succeeds
    /// again (an implementation may try one to find out). Backs `/readyz`.
    async fn writable(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Waits for in-flight writes to commit and stops accepting new ones. A file-backed store
    /// also leaves its files complete and self-contained (SQLite: readers closed, the WAL
    /// checkpointed into the database and removed).
    async fn close(&self);
}
