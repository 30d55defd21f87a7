//! Errors the SDK reports.

use banter_protocol::{ErrorBody, ErrorCode};

/// What went wrong talking to a Banter server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a typed error.
    #[error("server error {status}: {}: {}", .body.code, .body.message)]
    Api {
        /// HTTP status (0 for WebSocket replies).
        status: u16,
        /// The error.
        body: ErrorBody,
    },
    /// The connection is closed; `code` is the close code the server sent, if any.
    #[error("connection closed (code {code:?})")]
    Closed {
        /// The close code.
        code: Option<u16>,
    },
    /// No reply in time.
    #[error("request timed out")]
    Timeout,
    /// Network failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server said something this SDK cannot understand.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server's error code, if this is a typed server error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// Whether retrying on a new connection may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Closed { .. } | Self::Timeout | Self::Io(_))
    }

    pub(crate) fn protocol(e: impl std::fmt::Display) -> Self {
        Self::Protocol(e.to_string())
    }
}
