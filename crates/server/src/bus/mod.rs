//! The `Bus` seam: carries events to whichever node holds a user's connections.
//!
//! In embedded mode ([`local::LocalBus`]) that is this process, so the bus hands frames straight
//! to the [`Registry`](crate::registry::Registry). A clustered implementation publishes to the
//! other nodes as well. Frames travel already encoded: fan-out never re-serializes.
//!
//! Calls are synchronous and must never block: an implementation that talks to a network
//! enqueues on a bounded buffer and reports overflow, so that callers can publish in order while
//! holding an ordering lock (see `services::fanout`).

pub mod local;

use banter_protocol::CloseCode;
use bytes::Bytes;

use crate::registry::ConnId;
use crate::store::{SessionId, UserId};

/// Cross-node delivery of events to users' connections.
pub trait Bus: Send + Sync + 'static {
    /// Delivers `frame` to every connection of `users`, except the connection `except`.
    fn publish(&self, users: &[UserId], frame: &Bytes, except: Option<ConnId>);
    /// Closes every connection of `user`'s `session` with `code`, wherever it is.
    fn kick_session(&self, user: UserId, session: SessionId, code: CloseCode);
}
