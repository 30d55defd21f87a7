//! The service layer's error: a wire [`ErrorCode`] and a message safe to show the client.
//!
//! Storage failures are logged here, once, where they turn into `internal`; their details never
//! reach the wire. The HTTP status for each code is decided in `transport::http`, the WebSocket
//! error frame in `session`, and nowhere else.

use std::borrow::Cow;

use banter_protocol::{ErrorBody, ErrorCode};

use crate::store::StoreError;

/// A refusal or failure to report to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// What went wrong, for machines.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: Cow<'static, str>,
}

/// Result alias for service calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a fixed message.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self {
            code,
            message: Cow::Borrowed(message),
        }
    }

    /// An error with a formatted message.
    pub fn with(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message: Cow::Owned(message),
        }
    }

    /// The wire body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.to_string(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => {
                Self::new(ErrorCode::UsernameTaken, "that username is taken")
            }
            StoreError::Closed => Self::new(ErrorCode::ShuttingDown, "the server is shutting down"),
            StoreError::GroupFull => Self::new(ErrorCode::GroupFull, "the group is full"),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the server cannot store data right now; retry later",
                )
            }
            StoreError::NotFound | StoreError::Backend(_) | StoreError::DataDir(_) => {
                tracing::error!(error = %e, "store failure");
                Self::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}
