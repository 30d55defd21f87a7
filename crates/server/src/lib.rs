//! The Banter server as a library: the binary only parses arguments and calls [`Server`].
//!
//! Layers, data flowing one way: [`server`] (wiring) → [`transport`] (HTTP, WebSocket) →
//! `session` (per-connection state, heartbeats, outbound queue) → [`state`] (the shared
//! services) → [`services`] (every authorization decision) → [`store`] / [`bus`]; the bus's
//! receiving side ([`bus::node`]) delivers through the [`registry`].

mod admission;
pub mod bus;
pub mod clock;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod media;
pub mod metrics;
mod net;
pub mod outbox;
pub mod registry;
pub mod server;
pub mod services;
mod session;
pub mod state;
pub mod store;
pub mod transport;

pub use config::{Config, Overrides};
pub use server::{Server, StartError};
pub use transport::tls::{Tls, TlsError};
