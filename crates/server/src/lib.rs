//! The Banter server as a library: the binary only parses arguments and calls [`Server`].
//!
//! Layers, data flowing one way: [`transport`] (HTTP, WebSocket) → `session` (per-connection
//! state, heartbeats, outbound queue) → [`services`] (every authorization decision) →
//! [`store`] / [`bus`] → fan-out back through the [`registry`].

pub mod app;
pub mod bus;
pub mod clock;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
mod net;
pub mod outbox;
pub mod registry;
pub mod services;
mod session;
pub mod store;
pub mod transport;

pub use app::{Server, StartError};
pub use config::{Config, Overrides};
pub use transport::tls::{Tls, TlsError};
