//! The shared state of a running server: the services, the bus and the counters every handler
//! and session is given. Built by [`Server`](crate::server::Server) (the wiring); knows nothing
//! of sockets, so transport and session depend on it and it on neither.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::ConnId;
use crate::services::accounts::Accounts;
use crate::services::admin::Admin;
use crate::services::groups::Groups;
use crate::services::messaging::Messaging;
use crate::services::rooms::Rooms;
use crate::services::social::Social;
use crate::store::Store;

/// Shared state of a running server, handed to every handler and session.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Accounts service.
    pub accounts: Arc<Accounts>,
    /// The operator's service (`/v1/admin/...`).
    pub admin: Admin,
    /// Messaging service.
    pub messaging: Arc<Messaging>,
    /// Friends, profiles, presence.
    pub social: Social,
    /// Groups.
    pub groups: Arc<Groups>,
    /// Chatrooms.
    pub rooms: Arc<Rooms>,
    /// Media: uploads, downloads, attachments.
    pub media: Arc<crate::media::service::Media>,
    /// The way out of this node: deliveries, presence, the per-user connection limit.
    pub bus: Arc<dyn Bus>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins.
    pub shutdown: CancellationToken,
    /// Tracks upgraded WebSocket sessions, which outlive their HTTP request.
    pub sessions: TaskTracker,
    /// Connections counted per client address.
    pub(crate) admission: Arc<Admission>,
    /// The store, for readiness (`/readyz` asks it whether it can write).
    pub store: Arc<dyn Store>,
    pub(crate) next_conn: AtomicU64,
}

impl App {
    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId {
            node: self.bus.node(),
            local: self.next_conn.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}
