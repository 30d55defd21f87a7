//! The NATS bus: nodes of one cluster exchange events over a NATS server (or cluster).
//!
//! **Subjects**, under the cluster's prefix `P` (the `cluster` setting; nodes with the same
//! prefix on one NATS form one cluster):
//!
//! | subject | carries | published by | subscribed by |
//! |---|---|---|---|
//! | `P.events` | every [`Event`] (deliveries, kicks, invalidations), [`wire`]-encoded | the node whose request caused it | every node |
//! | `P.heartbeats` | the node id, and whether it writes groups yet, every [`presence::HEARTBEAT`] | every node | every node |
//! | `$KV.P-presence.<user>` | the user's connections (a JetStream key-value bucket) | the node that attaches or detaches one | every node (a watch) |
//! | `$KV.P-rooms.<room>` | a chatroom's last `seq` ([`counter`]) | the node a message is sent on | nobody (read on demand) |
//! | `P.appends.<node>`, `P.appended.<node>.<n>` | a group's appends forwarded to its writer (which publishes their deliveries), and the outcomes ([`appends`]) | a group member's node / the writer | `<node>` |
//!
//! So a 1:1 message, a message to a 500-member group and one to a 10,000-occupant room each
//! cost one NATS message in and one out per other node, whatever the audience's size (a group
//! message sent on a node that is not the group's writer adds a request and its answer); each
//! node picks its own connections out of the audience (the registry lookup it would do
//! anyway). ARCHITECTURE.md explains why events are not split per user or per room.
//!
//! The connection is opened with `no_echo`: a node applies its own events before `publish`
//! returns (as [`LocalBus`](crate::bus::LocalBus) does) and never receives them back.
//! Outgoing events go through one bounded queue and one task, so a node's events reach every
//! other node in the order it published them; a full queue (NATS away for long) drops the
//! event with [`BusError::Overflow`]: entries are durable and clients sync what they miss.
//! NATS reconnects on its own (async-nats retries forever, with backoff); subscriptions are
//! renewed by the client and the presence watch is restarted.

pub mod appends;
mod bucket;
pub mod counter;
pub mod presence;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::Subject;
use async_nats::jetstream::stream;
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::appends::{Writers, Writing};
use self::counter::Counters;
use self::presence::{Presence, Refused};
use super::node::Node;
use super::{
    AppendWriter, AttachError, Attached, Bus, BusError, ConnHandle, ConnId, Event, ForwardedReply,
    NodeId,
};
use crate::store::{ConvId, NewMessage, UserId};

/// Events a node buffers for NATS before it drops them.
const QUEUE: usize = 65_536;
/// How long closing waits for the last events to leave.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Why the NATS bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The prefix is not a valid NATS token and bucket name.
    #[error("cluster name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    BadPrefix(String),
    /// NATS (or its JetStream) could not be reached or refused a request.
    #[error("NATS at {url}: {reason}")]
    Unreachable {
        /// The server, as configured.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// Connection to NATS of one node.
pub struct NatsBus {
    node: Arc<Node>,
    out: mpsc::Sender<Outgoing>,
    presence: Arc<Presence>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<(UserId, bool)>>>,
    deaths: Mutex<Option<mpsc::UnboundedReceiver<NodeId>>>,
    counters: Counters,
    writers: Writers,
    client: async_nats::Client,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What the sending task publishes, in the order queued.
pub(super) enum Outgoing {
    /// An event, on `P.events`.
    Event(Bytes),
    /// The answer to a forwarded append, on its reply subject ([`appends`]).
    Answer(Subject, Bytes),
}

/// Whether `prefix` may name a cluster.
pub fn valid_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The presence bucket of cluster `prefix`.
pub fn bucket(prefix: &str) -> String {
    format!("{prefix}-presence")
}

impl NatsBus {
    /// Joins cluster `prefix` on the NATS at `url` as `node`, allowing `limit` connections per
    /// user cluster-wide.
    pub async fn connect(
        url: &str,
        prefix: &str,
        node: Arc<Node>,
        limit: usize,
    ) -> Result<Self, NatsError> {
        if !valid_prefix(prefix) {
            return Err(NatsError::BadPrefix(prefix.to_owned()));
        }
        let unreachable = |reason: String| NatsError::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let since = Arc::new(Mutex::new(Instant::now()));
        let reconnected = Arc::clone(&since);
        let repair = Arc::new(AtomicBool::new(false));
        let repair_after = Arc::clone(&repair);
        let connects = Arc::new(AtomicU64::new(0));
        let caches = Arc::clone(&node);
        let client = async_nats::ConnectOptions::new()
            .no_echo()
            .name(format!("banter {:016x}", node.id().0))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let (reconnected, repair, connects, caches) = (
                    Arc::clone(&reconnected),
                    Arc::clone(&repair_after),
                    Arc::clone(&connects),
                    Arc::clone(&caches),
                );
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connected");
                            *reconnected.lock().expect("presence lock") = Instant::now();
                            // After an outage the others may have judged this node dead and
                            // removed its connections: count them again.
                            // Invalidations published meanwhile were missed: drop every cache.
                            if connects.fetch_add(1, Ordering::Relaxed) > 0 {
                                repair.store(true, Ordering::Relaxed);
                                caches.forget_caches();
                            }
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS disconnected");
                            // Judge no other node dead while cut off (see `presence`): until
                            // the next `Connected`, this node's connection lies in the future.
                            *reconnected.lock().expect("presence lock") =
                                Instant::now() + Duration::from_secs(365 * 24 * 3600);
                        }
                        other => tracing::warn!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let js = jetstream::new(client.clone());
        let kv = presence_bucket(&js, prefix)
            .await
            .map_err(|e| unreachable(format!("presence bucket: {e}")))?;
        let counters = Counters::new(
            counter::open(&js, prefix)
                .await
                .map_err(|e| unreachable(format!("rooms bucket: {e}")))?,
        );
        let (changed, changes) = mpsc::unbounded_channel();
        let (died, deaths) = mpsc::unbounded_channel();
        let presence = Arc::new(Presence::new(
            kv,
            node.id(),
            limit,
            since,
            repair,
            changed,
            died,
        ));
        let events = Subject::from(format!("{prefix}.events"));
        let heartbeats = Subject::from(format!("{prefix}.heartbeats"));
        let incoming = client
            .subscribe(events.clone())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let beats = client
            .subscribe(heartbeats.clone())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let writing = Arc::new(Writing::default());
        let (out, outgoing) = mpsc::channel(QUEUE);
        let writers = Writers::start(
            client.clone(),
            prefix,
            Arc::clone(&writing),
            (Arc::clone(&node), out.clone()),
            &tasks,
            &stop,
        )
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        // What any node publishes after `connect` returns reaches this one.
        settle(&client)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let this = Self {
            node,
            out,
            presence,
            changes: Mutex::new(Some(changes)),
            deaths: Mutex::new(Some(deaths)),
            counters,
            writers,
            client,
            stop,
            tasks,
        };
        this.tasks.spawn(send(
            this.client.clone(),
            events,
            outgoing,
            this.stop.clone(),
        ));
        this.tasks
            .spawn(receive(Arc::clone(&this.node), incoming, this.stop.clone()));
        this.tasks
            .spawn(Arc::clone(&this.presence).watch(this.stop.clone()));
        this.tasks.spawn(beat(
            this.client.clone(),
            heartbeats,
            this.node.id(),
            Arc::clone(&writing),
            this.stop.clone(),
        ));
        this.tasks.spawn(heartbeat(
            beats,
            Arc::clone(&this.presence),
            writing,
            Arc::clone(&this.node),
            this.stop.clone(),
        ));
        this.tasks.close();
        Ok(this)
    }
}

/// Returns once the NATS server has read everything `client` sent before, so that the
/// subscriptions made so far are in force: the server reads a connection in order and answers a
/// request on a subject nobody serves with "no responders". ([`async_nats::Client::flush`] only
/// writes the socket: a message another client publishes right after it can reach the server
/// first, and miss a subscription.)
pub async fn settle(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    use async_nats::client::RequestErrorKind;
    match client.request(client.new_inbox(), Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens (creating it if needed) the presence bucket of cluster `prefix`.
async fn presence_bucket(
    js: &jetstream::Context,
    prefix: &str,
) -> Result<kv::Store, async_nats::Error> {
    let limits = stream::Config {
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    bucket::open(
        js,
        &bucket(prefix),
        "banter: each user's connections on every node",
        limits,
    )
    .await
}

/// Sends queued events (and answers) in order until the bus closes; then sends what is still
/// queued.
async fn send(
    client: async_nats::Client,
    events: Subject,
    mut queue: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
) {
    let publish = async |outgoing| {
        let (subject, bytes) = match outgoing {
            Outgoing::Event(bytes) => (events.clone(), bytes),
            Outgoing::Answer(subject, bytes) => (subject, bytes),
        };
        if let Err(e) = client.publish(subject, bytes).await {
            tracing::warn!(error = %e, "bus event not sent");
        }
    };
    loop {
        tokio::select! {
            biased;
            bytes = queue.recv() => match bytes {
                Some(bytes) => publish(bytes).await,
                None => break,
            },
            () = stop.cancelled() => break,
        }
    }
    // Refuse what comes from now on (its publisher learns that), and send what was taken.
    queue.close();
    while let Some(bytes) = queue.recv().await {
        publish(bytes).await;
    }
    if tokio::time::timeout(Duration::from_secs(2), client.flush())
        .await
        .is_err()
    {
        tracing::warn!("NATS did not take the last events in time");
    }
}

/// The next message of `subscription`, or `None` once it ended or `stop` was cancelled.
async fn next_or_stop(
    subscription: &mut async_nats::Subscriber,
    stop: &CancellationToken,
) -> Option<async_nats::Message> {
    tokio::select! {
        () = stop.cancelled() => None,
        m = subscription.next() => m,
    }
}

/// Applies other nodes' events to this node.
async fn receive(node: Arc<Node>, mut incoming: async_nats::Subscriber, stop: CancellationToken) {
    while let Some(message) = next_or_stop(&mut incoming, &stop).await {
        match wire::decode(message.payload) {
            Ok(event) => node.receive(event),
            Err(e) => tracing::warn!(error = %e, "dropped a bus message"),
        }
    }
}

/// Says this node is alive (and whether it writes groups yet: [`Writing::beat`]), every
/// [`presence::HEARTBEAT`], in a task of its own, so that presence's periodic work (however
/// long it takes) never delays it.
async fn beat(
    client: async_nats::Client,
    subject: Subject,
    me: NodeId,
    writing: Arc<Writing>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(presence::HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
            // The beat that says this node serves goes out at once.
            () = writing.serving(), if !announced => announced = true,
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = client.publish(subject.clone(), writing.beat(me)) => {}
        }
    }
}

/// Notes who else is alive and lets presence do its periodic work.
async fn heartbeat(
    mut beats: async_nats::Subscriber,
    presence: Arc<Presence>,
    writing: Arc<Writing>,
    node: Arc<Node>,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(presence::HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = presence.tick(|| node.registry().all()) => {}
                }
            }
            beat = beats.next() => match beat {
                Some(m) => if let Some(id) = writing.heard(&m.payload) {
                    presence.heard(id);
                },
                None => return,
            },
        }
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn node(&self) -> NodeId {
        self.node.id()
    }

    fn publish(&self, event: Event) -> Result<(), BusError> {
        // Out to the other nodes first: they need not wait for this node's own fan-out.
        let sent = self.out.try_send(Outgoing::Event(wire::encode(&event)));
        self.node.receive(event);
        sent.map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BusError::Overflow,
            mpsc::error::TrySendError::Closed(_) => BusError::Unavailable,
        })
    }

    async fn attach(&self, user: UserId, conn: ConnHandle) -> Result<Attached, AttachError> {
        let id = conn.conn;
        self.node
            .registry()
            .register(user, conn)
            .map_err(|_| AttachError::TooManyConnections)?;
        match self.presence.add(user, id).await {
            Ok(first) => Ok(Attached { first }),
            Err(refused) => {
                self.node.registry().unregister(user, id);
                Err(match refused {
                    Refused::Full => AttachError::TooManyConnections,
                    Refused::Unavailable => AttachError::Unavailable,
                })
            }
        }
    }

    async fn detach(&self, user: UserId, conn: ConnId) -> bool {
        self.node.registry().unregister(user, conn);
        self.presence.remove(user, conn).await
    }

    fn connections(&self, user: UserId) -> usize {
        self.presence.connections(user)
    }

    fn has_room(&self, user: UserId) -> bool {
        self.presence.has_room(user) && self.node.registry().has_room(user)
    }

    fn enter_room(&self, room: &str, conn: &ConnHandle) {
        self.node.registry().enter_room(room, conn);
    }

    fn leave_room(&self, room: &str, conn: ConnId) {
        self.node.registry().leave_room(room, conn);
    }

    fn presence_changes(&self) -> Option<mpsc::UnboundedReceiver<(UserId, bool)>> {
        self.changes.lock().expect("bus lock").take()
    }

    fn clustered(&self) -> bool {
        true
    }

    async fn next_room_seq(&self, room: &str) -> Result<Option<u64>, BusError> {
        self.counters.next(room).await.map(Some)
    }

    async fn room_seq(&self, room: &str) -> Result<Option<u64>, BusError> {
        Ok(Some(self.counters.read(room).await?.1))
    }

    fn node_deaths(&self) -> Option<mpsc::UnboundedReceiver<NodeId>> {
        self.deaths.lock().expect("bus lock").take()
    }

    fn writer(&self, conv: ConvId) -> Option<NodeId> {
        self.writers.writer(conv)
    }

    async fn forward_append(
        &self,
        node: NodeId,
        message: &NewMessage,
        except: Option<ConnId>,
    ) -> Result<ForwardedReply, BusError> {
        self.writers.forward(node, message, except).await
    }

    fn serve_appends(&self, writer: Arc<dyn AppendWriter>) {
        self.writers.serve_with(writer);
    }

    fn ready(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn close(&self) {
        self.stop.cancel();
        // The sender sends what is still queued; heartbeats and the watch stop. With NATS away
        // a publish can wait for ever: give up after a while rather than hang the shutdown.
        if tokio::time::timeout(CLOSE_WITHIN, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("NATS did not take this node's last events; closing without them");
        }
    }
}
