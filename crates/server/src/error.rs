//! The service layer's error: a wire [`ErrorCode`] and a message safe to show the client.
//!
//! Storage failures are logged here, once, where they turn into `internal`; their details never
//! reach the wire. The HTTP status for each code is decided in `transport::http`, the WebSocket
//! error frame in `session`, and nowhere else.

use std::borrow::Cow;

use banter_protocol::{ErrorBody, ErrorCode};

use crate::store::{Refusal, StoreError, UserId};

/// A refusal or failure to report to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// What went wrong, for machines.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: Cow<'static, str>,
    /// For a retryable refusal (`busy`, `rate_limited`): when to try again. HTTP sends it as
    /// `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

/// Result alias for service calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a fixed message.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self {
            code,
            message: Cow::Borrowed(message),
            retry_after: None,
        }
    }

    /// An error with a formatted message.
    pub fn with(code: ErrorCode, message: String) -> Self {
        Self {
            code,
            message: Cow::Owned(message),
            retry_after: None,
        }
    }

    /// The same refusal, telling the client to retry after `wait`.
    #[must_use]
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
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
            StoreError::InvalidInvite => Self::new(
                ErrorCode::InvalidInvite,
                "the invitation code is unknown, expired, revoked or used up",
            ),
            StoreError::TooManyInvites => Self::new(
                ErrorCode::TooManyInvites,
                "too many live invitations; revoke some first",
            ),
            StoreError::Refused { user, why } => refusal(user, why),
            StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Conflict(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the server cannot store data right now; retry later",
                )
            }
            StoreError::NotFound(_)
            | StoreError::Backend(_)
            | StoreError::DataDir(_)
            | StoreError::Locked { .. } => {
                tracing::error!(error = %e, "store failure");
                Self::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

/// The wire error for a user the group rules refused (the id tells a multi-user add which one).
fn refusal(user: UserId, why: Refusal) -> Error {
    let (code, what) = match why {
        Refusal::Blocked => (ErrorCode::Blocked, "one of you has blocked the other"),
        Refusal::BlockedMember => (
            ErrorCode::Blocked,
            "a block stands between them and a member of the group",
        ),
        Refusal::NotFriends => (
            ErrorCode::NotFriends,
            "only friends may be added to a group (group_add_policy)",
        ),
        Refusal::TooManyGroups => (
            ErrorCode::TooManyGroups,
            "in the maximum number of groups (max_groups_per_user)",
        ),
    };
    Error::with(code, format!("user {user}: {what}"))
}

/// Serde's wording for what a derived type expected, longest first, and the plain words that
/// replace it (followed by the Rust type's name, which is not for the client).
const TYPE_PHRASES: [(&str, &str); 11] = [
    ("internally tagged enum ", "a request object"),
    ("adjacently tagged enum ", "an object"),
    ("untagged enum ", "a value of the expected shape"),
    ("struct variant ", "an object"),
    ("tuple variant ", "an array"),
    ("newtype variant ", "a value"),
    ("unit variant ", "a unit value"),
    ("tuple struct ", "an array"),
    ("unit struct ", "null"),
    ("struct ", "an object"),
    ("enum ", "one of the allowed values"),
];

/// A parse error's text with Rust type names taken out: serde says "expected struct
/// RegisterRequest" or "expected internally tagged enum ClientRequest", which names our
/// internals; the client gets "expected an object". What a field expected ("expected u64",
/// "missing field `text`", "unknown variant `x`, expected `admin` or `member`") stays, as does
/// the position.
pub fn plain_parse_error(text: &str) -> String {
    let mut out = text.to_owned();
    for (phrase, plain) in TYPE_PHRASES {
        let mut from = 0;
        while let Some(found) = out[from..].find(phrase) {
            let start = from + found;
            let after_word = out[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let name_at = start + phrase.len();
            let name_len = out[name_at..]
                .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '<' | '>')))
                .unwrap_or(out.len() - name_at);
            let is_type = out[name_at..]
                .chars()
                .next()
                .is_some_and(char::is_uppercase);
            if after_word && is_type && name_len > 0 {
                out.replace_range(start..name_at + name_len, plain);
                from = start + plain.len();
            } else {
                from = name_at;
            }
        }
    }
    // Any other path (`banter_protocol::frames::ClientRequest`) goes too.
    out.split(' ')
        .map(|word| if word.contains("::") { "a value" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::plain_parse_error;

    #[test]
    fn type_names_are_taken_out() {
        for (raw, plain) in [
            (
                "invalid type: sequence, expected struct ClientFrame at line 1 column 0",
                "invalid type: sequence, expected an object at line 1 column 0",
            ),
            (
                "invalid type: string \"x\", expected internally tagged enum ClientRequest",
                "invalid type: string \"x\", expected a request object",
            ),
            (
                "invalid type: integer `1`, expected struct variant ClientRequest::Send",
                "invalid type: integer `1`, expected an object",
            ),
            (
                "expected banter_protocol::frames::ClientRequest here",
                "expected a value here",
            ),
            (
                "invalid type: string \"a\", expected u64 at line 1 column 40",
                "invalid type: string \"a\", expected u64 at line 1 column 40",
            ),
            ("missing field `text`", "missing field `text`"),
            (
                "unknown variant `x`, expected `admin` or `member`",
                "unknown variant `x`, expected `admin` or `member`",
            ),
        ] {
            assert_eq!(plain_parse_error(raw), plain, "{raw}");
        }
    }
}
