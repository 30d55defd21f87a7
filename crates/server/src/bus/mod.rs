//! The `Bus` seam: the only way out of a node.
//!
//! Every effect of a request on connections other than its own leaves through here as an
//! [`Event`]: conversation entries and every other push (to users, a room's occupants, or one
//! login session), session kicks and cache invalidations. Presence and the per-user connection
//! limit are asked of the bus as well, because only the bus knows the other nodes. Services
//! never touch the registry, a room's occupants or another service's cache.
//!
//! Each node has a receiving side ([`node::Node`]) that applies the events addressed to it:
//! conversation entries pass a per-conversation ordering gate ([`node::Gate`]) just before
//! [`Registry::deliver`](crate::registry::Registry::deliver), so entries published out of
//! order (by two tasks, or two nodes) reach each connection in `seq` order; a gap that does not
//! fill within [`node::GAP_TIMEOUT`], or holds more than [`node::MAX_WAITING`] entries behind
//! it, is released and clients `sync` it, as they do after any lost push. In embedded mode
//! ([`LocalBus`]) the receiving side is this process's own; a clustered bus also hands events
//! to other nodes.
//!
//! **Calls never block.** `publish` is synchronous, so that callers can publish in order while
//! holding an ordering lock (a room's). Overflow policy: a bus that talks to a network enqueues
//! on a bounded buffer and, when it is full, drops the event and returns [`BusError::Overflow`]
//! (callers count and log it: entries are durable and receivers sync what they miss); a
//! receiving connection whose queue is full is a slow consumer, kicked with 4003 (see
//! [`registry`](crate::registry)). [`LocalBus`] applies events before `publish` returns
//! and never overflows.
//!
//! **Invalidations are published after the change commits**, and a node applies one by bumping
//! the cache's generation (`services::directory`): a fill that read the store before the commit
//! is discarded however the invalidation and the fill interleave, on any node. The publishing
//! node applies its own invalidations before `publish` returns, so a request's own next read
//! sees its change.

pub mod nats;
pub mod node;
pub mod suite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use banter_protocol::CloseCode;
use bytes::Bytes;
use tokio::sync::mpsc;

use self::node::Node;
pub use crate::registry::{ConnHandle, ConnId, NodeId};
use crate::store::{Appended, ConvId, NewMessage, PendingAppend, SessionId, StoreResult, UserId};

/// Who a delivery is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every connection of these users (each listed once).
    Users(Arc<[UserId]>),
    /// Every connection in this chatroom.
    Room(Arc<str>),
    /// Every connection of one login session.
    Session {
        /// Whose.
        user: UserId,
        /// Which.
        session: SessionId,
    },
}

/// An encoded frame on its way to an audience.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who gets it.
    pub audience: Audience,
    /// The conversation entry it carries, `(conversation, seq)`: receivers order by it. For a
    /// room's audience the order is the room's (its cluster-wide `seq`), keyed by the room's
    /// name: the conversation is then unused and 0 (see [`node::Key`]).
    pub entry: Option<(ConvId, u64)>,
    /// The frame, encoded once for everyone.
    pub frame: Bytes,
    /// A connection that does not get it (the sender's own, which gets a reply instead).
    pub except: Option<ConnId>,
}

/// A cached answer that a change made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// How two users stand towards each other.
    Relation(UserId, UserId),
    /// The relations of every pair of one of `changed` and one of `members` (a group change).
    RelationsBetween {
        /// Whom the change joined or parted.
        changed: Arc<[UserId]>,
        /// The group's members.
        members: Arc<[UserId]>,
    },
    /// A conversation's members and state.
    Conversation(ConvId),
    /// The direct conversation of a pair (one of them was deleted).
    Direct(UserId, UserId),
}

/// What travels on the bus.
#[derive(Debug, Clone)]
pub enum Event {
    /// A frame for an audience.
    Deliver(Delivery),
    /// Close every connection of `user`'s `session` with `code`, wherever it is.
    Kick {
        /// Whose.
        user: UserId,
        /// Which session.
        session: SessionId,
        /// The close code.
        code: CloseCode,
    },
    /// Drop a cached answer on every node.
    Invalidate(Invalidation),
    /// How many occupants some chatrooms have on one node (rooms whose count changed, or all
    /// of them now and then); receivers sum the latest count of every live node.
    RoomCounts(RoomCounts),
}

/// One node's occupancy of some chatrooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCounts {
    /// Whose connections these are.
    pub node: NodeId,
    /// The rooms, at most `max_rooms` of them (a node's own limit).
    pub rooms: Arc<[RoomCount]>,
}

/// One room's occupancy on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCount {
    /// The room.
    pub room: Arc<str>,
    /// Its occupants (connections) on the node; 0 when the last one left.
    pub count: u32,
    /// Users who entered on the node since its last announcement (a bounded few).
    pub joined: Vec<UserId>,
    /// Users who left on the node since its last announcement (a bounded few).
    pub left: Vec<UserId>,
}

impl Event {
    /// A delivery of `frame` to `users` but `except`.
    pub fn to_users(users: impl Into<Arc<[UserId]>>, frame: Bytes, except: Option<ConnId>) -> Self {
        Self::Deliver(Delivery {
            audience: Audience::Users(users.into()),
            entry: None,
            frame,
            except,
        })
    }
}

/// Why an event was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus's outgoing buffer is full; the event was dropped.
    #[error("bus buffer full; event dropped")]
    Overflow,
    /// The bus cannot reach the other nodes; the event was applied on this node only.
    #[error("bus unavailable; event applied on this node only")]
    Unavailable,
}

/// A connection was attached: whether it made its user present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The user had no other connection anywhere.
    pub first: bool,
}

/// Why a connection could not be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// Its user holds the per-user limit of connections (on all nodes together).
    #[error("too many connections")]
    TooManyConnections,
    /// The bus could not record it (its backend is away); the client retries later.
    #[error("bus unavailable")]
    Unavailable,
}

/// An append handed to another node, its conversation's writer ([`Bus::writer`]): resolves to
/// the outcome once the writer committed it, or to `None` when the writer did not answer in
/// time, refused it (a full queue, a failed commit) or is gone. `None` says nothing about
/// whether it committed: the caller appends it itself, and the store answers a repeat as the
/// duplicate it is.
pub type ForwardedReply = Pin<Box<dyn Future<Output = Option<Forwarded>> + Send>>;

/// What a writer answers for a forwarded append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The outcome, as the writer's store gave it.
    pub appended: Appended,
    /// Whether the writer published the entry's delivery itself ([`AppendWriter::delivery`],
    /// sent ahead of the answer); when not, the node the member sent on does.
    pub delivered: bool,
}

/// What appends the group messages other nodes hand to this one, their writer (see
/// [`Bus::serve_appends`]).
#[async_trait]
pub trait AppendWriter: Send + Sync + 'static {
    /// Queues `message` on this node's store, as
    /// [`Store::queue_append`](crate::store::Store::queue_append) does.
    async fn queue(&self, message: NewMessage) -> StoreResult<PendingAppend>;
    /// The event that delivers `appended`, a new entry this writer just committed, to its
    /// conversation's members but the sender's connection `except`; `None` when this writer
    /// cannot say whom to (the node the member sent on delivers it then). The writer's bus
    /// publishes it: from where the entry committed, sparing the delivery a hop through the
    /// sender's node.
    async fn delivery(&self, appended: &Appended, except: Option<ConnId>) -> Option<Event>;
}

/// Cross-node delivery, presence and connection accounting.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// This node.
    fn node(&self) -> NodeId;
    /// Sends `event` to every node that has a connection it concerns (this one included),
    /// without blocking. See the module docs for the overflow policy.
    fn publish(&self, event: Event) -> Result<(), BusError>;
    /// Adds a connection of this node, unless its user is at the per-user limit (counted on
    /// every node). Once it returns, what any node publishes reaches the connection.
    async fn attach(&self, user: UserId, conn: ConnHandle) -> Result<Attached, AttachError>;
    /// Removes a connection of this node (and it from its rooms); returns whether it was its
    /// user's last one anywhere (when that cannot be known now, the user is reported by
    /// [`Bus::presence_changes`] once it is).
    async fn detach(&self, user: UserId, conn: ConnId) -> bool;
    /// How many connections `user` has, on every node.
    fn connections(&self, user: UserId) -> usize;
    /// Whether `user` may open another connection now.
    fn has_room(&self, user: UserId) -> bool;
    /// Routes `room`'s deliveries to a connection of this node.
    fn enter_room(&self, room: &str, conn: &ConnHandle);
    /// Stops routing `room`'s deliveries to a connection of this node.
    fn leave_room(&self, room: &str, conn: ConnId);
    /// Presence changes that no `attach` or `detach` of this node reported: `(user, false)`
    /// when a user's last connection went away elsewhere (a dead node's users, a removal
    /// retried after an outage), `(user, true)` when a connection of this node had to be
    /// counted again (after the others had judged this node dead). Taken once; `None` for a
    /// bus where `attach` and `detach` always know.
    fn presence_changes(&self) -> Option<mpsc::UnboundedReceiver<(UserId, bool)>> {
        None
    }
    /// Whether other nodes share this node's chatrooms (then rooms announce their counts and
    /// take their `seq` from [`Bus::next_room_seq`]).
    fn clustered(&self) -> bool {
        false
    }
    /// The next `seq` of chatroom `room`, counted once for the whole cluster. `None` from a bus
    /// with one node: the rooms service counts on its own (and restarts when a room empties).
    async fn next_room_seq(&self, _room: &str) -> Result<Option<u64>, BusError> {
        Ok(None)
    }
    /// The last `seq` given out in chatroom `room` (0 for none yet); `None` as above.
    async fn room_seq(&self, _room: &str) -> Result<Option<u64>, BusError> {
        Ok(None)
    }
    /// Nodes judged dead (not heard from for a while): reported when judged, and again at each
    /// heartbeat while removing their connections keeps failing (receivers must be idempotent).
    /// Taken once; `None` for a bus with one node.
    fn node_deaths(&self) -> Option<mpsc::UnboundedReceiver<NodeId>> {
        None
    }
    /// The node that appends the entries of group conversation `conv`, when it is another one:
    /// every node picks the same one of the nodes it hears serving (rendezvous hashing), so one node
    /// batches a busy group's sends into one transaction instead of every node taking the
    /// group's row lock in turn. `None` when it is this node, or the bus has one node. Only
    /// speed depends on it: the store keeps every invariant whoever appends, so nodes that
    /// disagree for a moment (one joining, one dying) are safe.
    fn writer(&self, _conv: ConvId) -> Option<NodeId> {
        None
    }
    /// Hands `message`, sent on connection `except`, to `node` to append and deliver (see
    /// [`ForwardedReply`]). Forwards from one caller reach `node` in the order they were made.
    /// `Err` when it could not even be sent.
    async fn forward_append(
        &self,
        _node: NodeId,
        _message: &NewMessage,
        _except: Option<ConnId>,
    ) -> Result<ForwardedReply, BusError> {
        Err(BusError::Unavailable)
    }
    /// Appends what other nodes forward to this one with `writer`, in the order they arrive,
    /// and answers each once committed (and its delivery sent). Until it is called, forwards to
    /// this node are refused (their senders append themselves). A bus with one node ignores it.
    fn serve_appends(&self, _writer: Arc<dyn AppendWriter>) {}
    /// Whether the bus reaches the other nodes now (`/readyz`).
    fn ready(&self) -> bool {
        true
    }
    /// Sends what is still queued and stops the bus's tasks (after the sessions are gone).
    async fn close(&self) {}
}

/// Publishes `event`, counting and logging a refusal: the policy for callers that cannot do
/// better than let receivers recover (entries by `sync`; see the module docs).
pub fn publish(bus: &dyn Bus, event: Event) {
    if let Err(e) = bus.publish(event) {
        tracing::warn!(error = %e, "bus refused an event");
    }
}

/// Which bus to run on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BusConfig {
    /// One node: this process ([`LocalBus`]).
    #[default]
    Local,
    /// A cluster on NATS ([`nats::NatsBus`]).
    Nats {
        /// The NATS server.
        url: String,
        /// The cluster's name: nodes with the same one on one NATS form a cluster.
        cluster: String,
        /// Connections per user, on all nodes together.
        max_per_user: usize,
    },
}

/// Opens the configured bus over this node's receiving side.
pub async fn open(config: &BusConfig, node: Arc<Node>) -> Result<Arc<dyn Bus>, nats::NatsError> {
    Ok(match config {
        BusConfig::Local => Arc::new(LocalBus::new(node)),
        BusConfig::Nats {
            url,
            cluster,
            max_per_user,
        } => Arc::new(nats::NatsBus::connect(url, cluster, node, *max_per_user).await?),
    })
}

/// The in-process bus: every connection is on this node, so an event is applied by this
/// node's receiving side before `publish` returns.
pub struct LocalBus {
    node: Arc<Node>,
}

impl LocalBus {
    /// A bus whose only node is `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[async_trait]
impl Bus for LocalBus {
    fn node(&self) -> NodeId {
        self.node.id()
    }

    fn publish(&self, event: Event) -> Result<(), BusError> {
        self.node.receive(event);
        Ok(())
    }

    async fn attach(&self, user: UserId, conn: ConnHandle) -> Result<Attached, AttachError> {
        let registered = self
            .node
            .registry()
            .register(user, conn)
            .map_err(|_| AttachError::TooManyConnections)?;
        Ok(Attached {
            first: registered.first,
        })
    }

    async fn detach(&self, user: UserId, conn: ConnId) -> bool {
        self.node.registry().unregister(user, conn)
    }

    fn connections(&self, user: UserId) -> usize {
        self.node.registry().connections_of(user)
    }

    fn has_room(&self, user: UserId) -> bool {
        self.node.registry().has_room(user)
    }

    fn enter_room(&self, room: &str, conn: &ConnHandle) {
        self.node.registry().enter_room(room, conn);
    }

    fn leave_room(&self, room: &str, conn: ConnId) {
        self.node.registry().leave_room(room, conn);
    }
}
