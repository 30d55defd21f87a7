//! Bodies of the operator API (`/v1/admin/...`), which takes the server's admin token instead
//! of a user's. `docs/PROTOCOL.md` ("Admin API") lists the calls.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/admin/users`: an account made by an operator (under every sign-up policy).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// The same rules as registration: 3–32 characters of `[a-z0-9_.-]` (upper case is
    /// lower-cased).
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// 8–128 bytes of UTF-8.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// A user as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUser {
    /// User id.
    pub id: String,
    /// Username (`deleted:<id>` once deleted).
    pub username: String,
    /// Registration time (UTC ms).
    pub created_at: i64,
    /// Disabled by an operator: cannot log in, holds no sessions.
    pub disabled: bool,
    /// Deleted by an operator (a tombstone kept so that their messages keep a sender).
    pub deleted: bool,
}

/// `GET /v1/admin/users/{id}`: a user with what they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminUserDetail {
    /// The user.
    pub user: AdminUser,
    /// Live (unrevoked, unexpired) sessions.
    pub sessions: u64,
    /// Open WebSocket connections on the node that answered.
    pub connections: u64,
}

/// One page of users, by username.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    /// Users in username order.
    pub users: Vec<AdminUser>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One live session of a user, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminSession {
    /// Session id.
    pub id: String,
    /// Device label given at login.
    pub device: String,
    /// Login time (UTC ms).
    pub created_at: i64,
    /// Expiry (UTC ms).
    pub expires_at: i64,
}

/// `POST /v1/admin/invites`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateInviteRequest {
    /// Registrations the code admits: 1–1000 (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub uses: Option<u32>,
    /// Seconds until the code expires: 60–31,536,000 (one year; default 604,800, a week).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 31_536_000)]
    pub ttl_secs: Option<u64>,
}

/// A new invitation, the only time its code is shown (the server keeps only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedInvite {
    /// Invitation id (for listing and revoking).
    pub id: String,
    /// The code to hand to the people invited: 24 random bytes, base64url.
    pub code: String,
    /// Registrations it admits.
    pub uses: u32,
    /// Expiry (UTC ms).
    pub expires_at: i64,
}

/// An invitation as listed: never its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InviteInfo {
    /// Invitation id.
    pub id: String,
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

/// One page of invitations, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvitePage {
    /// Invitations, newest first.
    pub invites: Vec<InviteInfo>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/admin/stats`: counts the store and this node can give cheaply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Accounts, deleted ones excluded.
    pub users: u64,
    /// Of those, disabled.
    pub disabled_users: u64,
    /// Live sessions (unrevoked, unexpired).
    pub sessions: u64,
    /// Open WebSocket connections on this node.
    pub connections: u64,
    /// Live (not dissolved) groups.
    pub groups: u64,
    /// Direct conversations and groups.
    pub conversations: u64,
    /// Stored conversation entries (messages and system entries; sum of every last seq).
    pub messages: u64,
    /// Chatrooms open on this node.
    pub rooms: u64,
    /// Invitations that still admit someone (unrevoked, unexpired, uses left).
    pub live_invites: u64,
}
