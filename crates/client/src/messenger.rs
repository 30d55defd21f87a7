//! A reconnecting, ordered messaging client.
//!
//! Pushes are an optimisation; `sync` is the source of truth (DESIGN.md invariant 5). The
//! messenger keeps, per conversation, the highest seq it has delivered to the app. A pushed
//! message with the next seq is delivered at once; one further ahead means a gap, which is filled
//! with `sync` before anything later is delivered; one at or below the cursor is a duplicate and
//! dropped. After every (re)connect it asks which conversations moved (`conversations`) and pages
//! through each with `sync`.
//!
//! A messenger may be given several endpoints, the nodes of a cluster ([`Messenger::connect_any`]).
//! When its connection drops, or a node refuses it for a reason another node may not have (a
//! network error, a timeout, `shutting_down`, `busy`, `store_unavailable`, a 502–504 from a
//! proxy), it tries the next endpoint at once, and backs off (50 ms doubling to 5 s, with jitter)
//! only after every endpoint has failed in a row (see `failover.rs`). The nodes share one
//! database, so the catch-up after landing on another node is the same as after a reconnect to
//! the same one, and a send retried there with its `client_msg_id` is stored once.

use std::collections::{BTreeMap, HashMap, VecDeque};

use banter_protocol::{CloseCode, ErrorCode, Message, SendAck};

use crate::failover::Endpoints;
use crate::{ClientError, Connection, Event, Target};

/// Attempts a send makes across reconnects before giving up.
const SEND_ATTEMPTS: u32 = 8;
/// Page size for catch-up.
const SYNC_PAGE: u32 = 200;

/// A reconnecting client that delivers every conversation's messages exactly once, in order.
pub struct Messenger {
    /// The nodes to use, where we are among them, and the reconnect backoff.
    endpoints: Endpoints,
    token: String,
    conn: Option<Connection>,
    /// Highest seq delivered (or queued for delivery) per conversation.
    cursors: HashMap<String, u64>,
    /// Pushed messages waiting for a gap before them to fill, per conversation.
    early: HashMap<String, BTreeMap<u64, Message>>,
    ready: VecDeque<Message>,
    /// Reconnects performed, for tests and diagnostics.
    reconnects: u64,
}

impl Messenger {
    /// Connects to `addr` (`host:port`) and catches up on everything not yet seen (all history
    /// on first use). The same as [`Messenger::connect_any`] with one endpoint.
    pub async fn connect(addr: &str, token: &str) -> Result<Self, ClientError> {
        Self::connect_any(&[addr], token).await
    }

    /// Connects to the first of `endpoints` that lets us in, trying them in order, and catches
    /// up. Later drops fail over to the others (round robin). Fails with the last endpoint's
    /// error when none works, or at once on an error no other node would change (a bad token).
    pub async fn connect_any<S: AsRef<str>>(
        endpoints: &[S],
        token: &str,
    ) -> Result<Self, ClientError> {
        Self::resume_any(endpoints, token, HashMap::new()).await
    }

    /// Connects to `addr`, assuming the app already holds each conversation up to the given seq.
    pub async fn resume(
        addr: &str,
        token: &str,
        cursors: HashMap<String, u64>,
    ) -> Result<Self, ClientError> {
        Self::resume_any(&[addr], token, cursors).await
    }

    /// [`Messenger::connect_any`] for an app that already holds each conversation up to the
    /// given seq.
    pub async fn resume_any<S: AsRef<str>>(
        endpoints: &[S],
        token: &str,
        cursors: HashMap<String, u64>,
    ) -> Result<Self, ClientError> {
        let mut m = Self {
            endpoints: Endpoints::new(endpoints)?,
            token: token.to_owned(),
            conn: None,
            cursors,
            early: HashMap::new(),
            ready: VecDeque::new(),
            reconnects: 0,
        };
        // One pass over the list, without waiting: an app that was given only dead endpoints
        // hears so instead of hanging.
        let mut attempts = m.endpoints.len();
        loop {
            match m.open().await {
                Ok(()) => {
                    m.endpoints.connected();
                    return Ok(m);
                }
                Err(e) if attempts > 1 && another_node_may_help(&e) => {
                    tracing::debug!(endpoint = m.endpoint(), error = %e, "endpoint failed");
                    m.conn = None;
                    m.endpoints.failed();
                    attempts -= 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The endpoint the messenger is connected to (or, while disconnected, will try next).
    pub fn endpoint(&self) -> &str {
        self.endpoints.current()
    }

    /// Every endpoint it was given, in the order it tries them.
    pub fn endpoints(&self) -> &[String] {
        self.endpoints.all()
    }

    /// The live connection, if any (for requests the messenger does not wrap).
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }

    /// The per-conversation cursors (highest seq handed to the app or queued for it).
    pub fn cursors(&self) -> &HashMap<String, u64> {
        &self.cursors
    }

    /// How many times the messenger reconnected.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Drops the current connection (the next call reconnects, to the next endpoint), as a
    /// network failure would.
    pub fn disconnect(&mut self) {
        self.lost();
    }

    /// The connection is gone: forget it and move to the next endpoint.
    fn lost(&mut self) {
        if self.conn.take().is_some() {
            self.endpoints.dropped();
        }
    }

    /// Connects to the current endpoint and catches up.
    async fn open(&mut self) -> Result<(), ClientError> {
        let conn = Connection::connect(self.endpoints.current(), &self.token).await?;
        self.conn = Some(conn);
        self.catch_up().await
    }

    /// Connects, endpoint after endpoint, with backoff after each full round of failures, until
    /// one works or an error says retrying is pointless.
    async fn reconnect(&mut self) -> Result<(), ClientError> {
        loop {
            self.reconnects += 1;
            match self.open().await {
                Ok(()) => {
                    self.endpoints.connected();
                    return Ok(());
                }
                Err(e) if another_node_may_help(&e) => {
                    tracing::debug!(endpoint = self.endpoint(), error = %e, "reconnect failed");
                    self.conn = None;
                    if let Some(wait) = self.endpoints.failed() {
                        tokio::time::sleep(wait).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn ensure_connected(&mut self) -> Result<&Connection, ClientError> {
        if self.conn.is_none() {
            self.reconnect().await?;
        }
        self.conn.as_ref().ok_or(ClientError::Closed { code: None })
    }

    /// Pages through every conversation that moved past our cursor.
    async fn catch_up(&mut self) -> Result<(), ClientError> {
        let list = self
            .conn
            .as_ref()
            .ok_or(ClientError::Closed { code: None })?
            .conversations(None)
            .await?;
        for c in list.conversations {
            if c.last_seq > self.cursors.get(&c.id).copied().unwrap_or(0) {
                self.fill(&c.id).await?;
            }
        }
        Ok(())
    }

    /// Syncs `conv` from its cursor until the server has nothing more.
    async fn fill(&mut self, conv: &str) -> Result<(), ClientError> {
        loop {
            let after = self.cursors.get(conv).copied().unwrap_or(0);
            let page = self
                .conn
                .as_ref()
                .ok_or(ClientError::Closed { code: None })?
                .sync(conv, after, Some(SYNC_PAGE))
                .await?;
            for m in page.messages {
                self.accept(m);
            }
            if !page.has_more {
                break;
            }
        }
        // Anything still early after a full sync is beyond what the server has: drop it; it
        // cannot be (a later push or sync brings it again).
        let cursor = self.cursors.get(conv).copied().unwrap_or(0);
        if let Some(early) = self.early.get_mut(conv) {
            early.retain(|seq, _| *seq > cursor);
        }
        Ok(())
    }

    /// Takes a message from a push or a sync; returns true when it revealed a gap.
    fn accept(&mut self, m: Message) -> bool {
        let cursor = self.cursors.entry(m.conversation.clone()).or_insert(0);
        if m.seq <= *cursor {
            return false;
        }
        if m.seq > *cursor + 1 {
            self.early
                .entry(m.conversation.clone())
                .or_default()
                .insert(m.seq, m);
            return true;
        }
        *cursor = m.seq;
        let conv = m.conversation.clone();
        self.ready.push_back(m);
        if let Some(early) = self.early.get_mut(&conv) {
            while let Some(next) = early.remove(&(*cursor + 1)) {
                *cursor = next.seq;
                self.ready.push_back(next);
            }
        }
        false
    }

    /// The next message, in seq order within its conversation. Reconnects as needed; fails only
    /// when the session is revoked or the server refuses to let us back in.
    pub async fn next_message(&mut self) -> Result<Message, ClientError> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Ok(m);
            }
            self.ensure_connected().await?;
            let event = match self.conn.as_mut() {
                Some(conn) => conn.next_event().await,
                None => continue,
            };
            match event {
                Some(Event::Message(m)) => {
                    let conv = m.conversation.clone();
                    if self.accept(m) {
                        self.fill_or_drop(&conv).await?;
                    }
                }
                // Events other than messages are for apps that use a `Connection` directly.
                Some(
                    Event::Read { .. }
                    | Event::Friend { .. }
                    | Event::Profile(_)
                    | Event::Presence { .. }
                    | Event::Typing { .. }
                    | Event::RoomMessage { .. }
                    | Event::RoomOccupancy { .. },
                ) => {}
                Some(Event::Closed { code }) => {
                    self.lost();
                    if code == Some(CloseCode::AuthRevoked.code()) {
                        return Err(ClientError::Closed { code });
                    }
                }
                None => self.lost(),
            }
        }
    }

    async fn fill_or_drop(&mut self, conv: &str) -> Result<(), ClientError> {
        match self.fill(conv).await {
            Err(e) if e.is_transient() => {
                // Reconnecting catches up anyway.
                self.lost();
                Ok(())
            }
            other => other,
        }
    }

    /// Sends text with a fresh `client_msg_id`, retrying across reconnects.
    pub async fn send(&mut self, target: &Target, text: &str) -> Result<SendAck, ClientError> {
        self.send_with_id(target, &crate::new_client_msg_id(), text)
            .await
    }

    /// Sends text with the given `client_msg_id`, retrying across reconnects (on whichever
    /// endpoint the messenger fails over to) with that same id; a retry of a message that was
    /// stored, here or through another node on the same database, returns its original
    /// acknowledgement (`duplicate: true`).
    pub async fn send_with_id(
        &mut self,
        target: &Target,
        client_msg_id: &str,
        text: &str,
    ) -> Result<SendAck, ClientError> {
        let mut last = ClientError::Closed { code: None };
        for _ in 0..SEND_ATTEMPTS {
            let conn = match self.ensure_connected().await {
                Ok(conn) => conn,
                Err(e) => return Err(e),
            };
            let me = conn.hello().user.clone();
            match conn.send_text(target, client_msg_id, text).await {
                Ok(ack) => {
                    // Our own message joins the ordered stream like any other, so the next
                    // push in this conversation is not mistaken for a gap.
                    let own = Message {
                        id: ack.message_id.clone(),
                        conversation: ack.conversation.clone(),
                        seq: ack.seq,
                        sender: me,
                        client_msg_id: client_msg_id.to_owned(),
                        kind: banter_protocol::MessageKind::Text,
                        text: text.to_owned(),
                        ref_seq: None,
                        event: None,
                        edited_at: None,
                        recalled: false,
                        attachment: None,
                        sticker: None,
                        ts: ack.ts,
                    };
                    if self.accept(own) {
                        self.fill_or_drop(&ack.conversation).await?;
                    }
                    return Ok(ack);
                }
                // The node going away answers `shutting_down`: another node takes the retry.
                Err(e) if e.is_transient() || e.code() == Some(ErrorCode::ShuttingDown) => {
                    self.lost();
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Whether a failed connect may work on another node (or on this one later): network errors
/// and timeouts, a node that is shutting down or busy or cannot reach its store, and a proxy in
/// front of a node that is down. A refused token or a protocol mismatch is the same everywhere.
fn another_node_may_help(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, body } => {
            matches!(status, 502..=504)
                || matches!(
                    body.code,
                    ErrorCode::ShuttingDown | ErrorCode::Busy | ErrorCode::StoreUnavailable
                )
        }
        other => other.is_transient(),
    }
}
