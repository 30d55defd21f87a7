//! Banter's Rust SDK.
//!
//! - [`Api`]: the HTTP account calls (register, login, sessions, password, user search).
//! - [`AdminApi`]: the operator API (`/v1/admin/...`) with the server's admin token.
//! - [`Connection`]: one authenticated WebSocket: typed requests with replies matched by id
//!   (several may be in flight: sends are pipelined by the server), and a stream of server
//!   events. Replies are read behind events, so an app must keep reading events: one that leaves
//!   its event buffer full for seconds has its connection closed and its requests failed.
//! - [`Messenger`]: what an app wants: a connection that reconnects with backoff, catches up with
//!   `conversations` + `sync` after every (re)connect, fills gaps, delivers each conversation's
//!   messages exactly once and in `seq` order, and retries sends with the same `client_msg_id`.
//!   Given several endpoints (the nodes of a cluster, [`Messenger::connect_any`]) it fails over:
//!   a dropped connection moves to the next node at once, round robin, with backoff and jitter
//!   only after every node has failed in a row; [`Messenger::endpoint`] says where it is.

mod admin;
mod api;
mod connection;
mod error;
mod failover;
mod media;
mod messenger;

pub use admin::AdminApi;
pub use api::Api;
pub use banter_protocol as protocol;
pub use connection::{Connection, Event, Target};
pub use error::ClientError;
pub use messenger::Messenger;

/// A fresh random `client_msg_id`.
pub fn new_client_msg_id() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; 12];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
