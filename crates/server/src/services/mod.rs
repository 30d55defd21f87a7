//! Services: the domain logic. Every authorization decision is made here.
//!
//! Services know no sockets and no SQL: they take an authenticated [`Caller`], talk to the
//! [`Store`](crate::store::Store) and the [`Bus`](crate::bus::Bus), and return wire types or an
//! [`Error`](crate::error::Error).

pub mod accounts;
pub mod admin;
pub mod budget;
pub mod directory;
mod fields;
pub mod groups;
mod hashing;
pub mod messaging;
mod page;
pub mod rooms;
pub mod social;
pub(crate) mod text;
mod throttle;
mod tokens;
pub mod turns;

use banter_protocol::ErrorCode;

use crate::bus::ConnId;
use crate::error::Error;
use crate::store::{SessionId, UserId};

/// Who is asking: an authenticated session, and (over WebSocket) the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user: UserId,
    /// The login session (device).
    pub session: SessionId,
    /// The WebSocket connection, when the request came over one.
    pub conn: Option<ConnId>,
    /// When the caller's token expires (UTC milliseconds); an open socket closes then (4001).
    pub expires_at: i64,
}

/// Parses an opaque wire id; a malformed id is reported with `code`, as if it did not exist.
pub(crate) fn parse_id(raw: &str, code: ErrorCode, what: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::with(code, format!("no such {what}: {raw:?}")))
}
