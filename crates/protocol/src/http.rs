//! Bodies of the JSON HTTP account API (`/v1/...`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ErrorBody;

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 characters of `[a-z0-9_.-]`.
    pub username: String,
    /// 8–128 bytes.
    pub password: String,
}

/// `POST /v1/sessions` (log in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Free-form device label shown in the session list (at most 64 bytes).
    #[serde(default)]
    pub device: Option<String>,
}

/// Reply to a successful login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Opaque bearer token; send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The session (device) id this token belongs to.
    pub session_id: String,
    /// Token expiry (UTC ms).
    pub expires_at: i64,
    /// The logged-in user.
    pub user: User,
}

/// `PUT /v1/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub old_password: String,
    /// The new password (8–128 bytes).
    pub new_password: String,
}

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Opaque user id.
    pub id: String,
    /// Unique username.
    pub username: String,
    /// Registration time (UTC ms).
    pub created_at: i64,
}

/// One logged-in session (device) of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// Device label given at login.
    pub device: String,
    /// Login time (UTC ms).
    pub created_at: i64,
    /// Expiry (UTC ms).
    pub expires_at: i64,
    /// True for the session making this request.
    pub current: bool,
}

/// Body of every HTTP error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}
