//! Bodies of the JSON HTTP account API (`/v1/...`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ErrorBody;

/// `POST /v1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–32 characters of `[a-z0-9_.-]`; upper-case ASCII letters are accepted and stored
    /// lower-case.
    #[schema(min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// 8–128 bytes of UTF-8 (the schema's bounds count characters; the server counts bytes).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// Invitation code from an operator: required when the server's sign-up policy is
    /// `invite` (else 403 `invite_required`), ignored otherwise. At most 128 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub invite: Option<String>,
}

/// `POST /v1/sessions` (log in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Device label shown in the session list; cut to 64 bytes. Control characters
    /// (U+0000–U+001F, U+007F–U+009F) and bidirectional overrides and isolates
    /// (U+202A–U+202E, U+2066–U+2069) are refused with 400 `invalid_field`.
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]*$")]
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
    /// The new password: 8–128 bytes of UTF-8 (the schema's bounds count characters; the
    /// server counts bytes).
    #[schema(min_length = 8, max_length = 128)]
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
