//! The in-process bus: every user's connections are on this node.

use std::sync::Arc;

use banter_protocol::CloseCode;
use bytes::Bytes;

use super::Bus;
use crate::registry::{ConnId, Registry};
use crate::store::{SessionId, UserId};

/// Delivers straight into this node's registry.
pub struct LocalBus {
    registry: Arc<Registry>,
}

impl LocalBus {
    /// A bus over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Bus for LocalBus {
    fn publish(&self, users: &[UserId], frame: &Bytes, except: Option<ConnId>) {
        self.registry.deliver(users, frame, except);
    }

    fn kick_session(&self, user: UserId, session: SessionId, code: CloseCode) {
        self.registry.kick_session(user, session, code);
    }
}
