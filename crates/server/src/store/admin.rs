//! The operator's part of the [`Store`](super::Store) seam: invitations, disabling and deleting
//! accounts, listings and counts. A supertrait of `Store`, so that `Arc<dyn Store>` carries it
//! and every backend must implement it; split out only to keep each file about one concern.

use async_trait::async_trait;

use super::{SessionId, StoreResult, UserId, UserRecord};

/// A new invitation (its code is never stored, only its SHA-256).
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// Registrations it admits.
    pub uses: u32,
    /// Expiry (UTC ms).
    pub expires_at: i64,
    /// Most live invitations (unrevoked, unexpired, with uses left) there may be, this one
    /// included: beyond it, `StoreError::TooManyInvites`.
    pub max_live: u32,
}

/// A stored invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRecord {
    /// Id.
    pub id: i64,
    /// Registrations it admitted at creation.
    pub uses: u32,
    /// Registrations it still admits.
    pub uses_left: u32,
    /// Creation time (UTC ms).
    pub created_at: i64,
    /// Expiry (UTC ms).
    pub expires_at: i64,
    /// Revoked by an operator.
    pub revoked: bool,
}

/// What deleting a user touched, for the caches and sockets of the caller.
#[derive(Debug, Clone, Default)]
pub struct DeletedUser {
    /// Sessions revoked (their sockets must close).
    pub sessions: Vec<SessionId>,
    /// Users whose relation to the deleted one changed (friends, requests, blocks) or who
    /// shared a direct conversation with them.
    pub peers: Vec<UserId>,
}

/// Counts for `GET /v1/admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Accounts not deleted.
    pub users: u64,
    /// Of those, disabled.
    pub disabled_users: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Live groups.
    pub groups: u64,
    /// Conversations of every kind.
    pub conversations: u64,
    /// Conversation entries (the sum of every conversation's last seq: seqs are gap-free).
    pub entries: u64,
    /// Invitations that still admit someone.
    pub live_invites: u64,
}

/// The operator's store calls. See [`super::Store`] for the invariants every backend keeps.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Registers a user and uses one use of the invitation `code_hash`, in one transaction:
    /// `InvalidInvite` (and no user) if the code is unknown, expired, revoked or used up, so
    /// that two registrations racing for a code's last use cannot both succeed.
    async fn create_user_invited(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: [u8; 32],
    ) -> StoreResult<UserRecord>;
    /// Users by username after `after` (exclusive) whose username starts with `prefix`,
    /// deleted ones included, at most `limit`.
    async fn list_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<UserRecord>>;
    /// Disables (revoking every session, returned) or enables a user; `NotFound` for an
    /// unknown or deleted user. New sessions of a disabled user are refused by
    /// [`super::Store::create_session`] (`NotFound`), in the same writer, so a login racing a
    /// disable cannot leave a live session behind.
    async fn set_disabled(&self, user: UserId, disabled: bool) -> StoreResult<Vec<SessionId>>;
    /// Deletes a user, keeping a tombstone row (`deleted:<id>`, no password) so that their
    /// messages keep a sender: revokes their sessions, removes friendships, requests, blocks
    /// and any group membership left, in one transaction. `NotFound` if unknown or deleted.
    async fn delete_user(&self, user: UserId) -> StoreResult<DeletedUser>;
    /// A user's live (unrevoked, unexpired at `now`) sessions.
    async fn live_sessions(&self, user: UserId, now: i64) -> StoreResult<u64>;
    /// Stores an invitation.
    async fn create_invite(&self, invite: NewInvite) -> StoreResult<InviteRecord>;
    /// Invitations with id below `before` (all when `None`), newest first, at most `limit`.
    async fn invites(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<InviteRecord>>;
    /// Revokes an invitation; `NotFound` if unknown or revoked already.
    async fn revoke_invite(&self, id: i64) -> StoreResult<()>;
    /// Counts at `now`.
    async fn stats(&self, now: i64) -> StoreResult<StoreStats>;
}
