//! One writer per group conversation: a node hands a group's appends to the node that writes
//! that group, which batches them with its own into one transaction.
//!
//! Without it, every node's batch to one group takes the group's row lock in turn, and each
//! turn pays a commit: three nodes' senders in one busy group wait for three commits where one
//! node's would wait for one (BENCHMARKS.md "Cluster (issue 13)"). So the nodes agree on a
//! writer per group: of the nodes a node has heard from within [`HEARD_WITHIN`] (itself
//! included), the one with the highest [`score`] for the conversation (rendezvous hashing: when
//! a node joins or dies, only the groups it wins or held move).
//!
//! | subject | carries | published by | subscribed by |
//! |---|---|---|---|
//! | `P.appends.<node>` | an append for `node` to write ([`wire::encode_append`]), with a reply subject | a node a group member sent on | `node` |
//! | `P.appended.<node>.<n>` | the outcome of `node`'s forward number `n` ([`wire::encode_appended`]; empty: not written) | the writer (or NATS: no responders) | `node` |
//!
//! The writer commits, queues the delivery ([`AppendWriter::delivery`]) and then its answer
//! for NATS, and only then fans the delivery out to its own connections. So the events a send
//! causes are those of a local send plus these two messages, and the delivery leaves from
//! where the entry committed instead of going back through the sender's node first (which
//! publishes it only when the writer says it did not). Nothing here is needed for
//! correctness: the store keeps seqs gap-free and keys unique whoever appends, so
//! when the writer does not answer within [`FORWARD_TIMEOUT`] (or NATS says nobody listens on
//! its subject, or it refused: a full queue, a failed commit), the sending node appends
//! itself; if the writer had committed after all, the store answers the repeat with the
//! original.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::presence::HEARTBEAT;
use super::{Outgoing, next_or_stop, wire};
use crate::bus::node::Node;
use crate::bus::{AppendWriter, BusError, ConnId, Event, Forwarded, ForwardedReply, NodeId};
use crate::store::{ConvId, EntryKind, NewMessage};

/// How long a node waits for a writer's answer before it appends itself.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Nodes heard from within this long share the groups (three missed heartbeats drop one).
pub const HEARD_WITHIN: Duration = HEARTBEAT.saturating_mul(3);
/// How long a forward may wait for room in the NATS client's buffer.
const SEND_WITHIN: Duration = Duration::from_secs(1);
/// How long the writer waits for room in its store's queue before it refuses a forward.
const QUEUE_WITHIN: Duration = Duration::from_millis(500);

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Option<Forwarded>>>>>;
/// Held weakly: the writer (the messaging service) holds the bus.
type Writer = Arc<OnceLock<Weak<dyn AppendWriter>>>;

/// Which nodes write groups: this one once it serves forwarded appends, and the others whose
/// last heartbeat (within [`HEARD_WITHIN`]) said they do. A node that has started but does not
/// serve yet (or a version without forwarding) is no group's writer.
#[derive(Default)]
pub(super) struct Writing {
    serving: AtomicBool,
    peers: Mutex<HashMap<NodeId, Instant>>,
    /// Woken when this node starts serving, so that it says so at once, not a heartbeat later.
    started: tokio::sync::Notify,
}

impl Writing {
    /// Resolves once this node serves (at once if it does).
    pub(super) async fn serving(&self) {
        let started = self.started.notified();
        if !self.serving.load(Ordering::Relaxed) {
            started.await;
        }
    }

    /// This node's heartbeat: its id (8 bytes, little-endian), then 1 once it serves.
    pub(super) fn beat(&self, me: NodeId) -> Bytes {
        let mut beat = me.0.to_le_bytes().to_vec();
        beat.push(u8::from(self.serving.load(Ordering::Relaxed)));
        Bytes::from(beat)
    }

    /// Reads another node's heartbeat (`None` when unreadable), noting whether it serves.
    pub(super) fn heard(&self, beat: &[u8]) -> Option<NodeId> {
        let id = NodeId(u64::from_le_bytes(beat.get(..8)?.try_into().ok()?));
        let mut peers = self.peers.lock().expect("writers lock");
        if beat.get(8) == Some(&1) {
            peers.insert(id, Instant::now());
        } else {
            peers.remove(&id);
        }
        Some(id)
    }

    /// Of the nodes that write groups now (this one, `me`, when it serves), the writer of
    /// `conv`: looked up on every group send, so it allocates nothing.
    fn writer(&self, me: NodeId, conv: ConvId) -> Option<NodeId> {
        let now = Instant::now();
        let peers = self.peers.lock().expect("writers lock");
        let live = peers
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < HEARD_WITHIN)
            .map(|(n, _)| *n);
        let me = self.serving.load(Ordering::Relaxed).then_some(me);
        best_of(live.chain(me), conv)
    }

    /// The nodes that write groups now, this one included when it serves.
    #[cfg(test)]
    fn nodes(&self, me: NodeId) -> Vec<NodeId> {
        let now = Instant::now();
        let peers = self.peers.lock().expect("writers lock");
        let mut nodes: Vec<NodeId> = peers
            .iter()
            .filter(|(_, t)| now.duration_since(**t) < HEARD_WITHIN)
            .map(|(n, _)| *n)
            .collect();
        if self.serving.load(Ordering::Relaxed) {
            nodes.push(me);
        }
        nodes
    }
}

/// This node's side of forwarding: the appends it hands out and the ones it writes.
pub(super) struct Writers {
    client: async_nats::Client,
    prefix: String,
    me: NodeId,
    writing: Arc<Writing>,
    next: AtomicU64,
    waiting: Waiting,
    writer: Writer,
}

impl Writers {
    /// Subscribes to this node's two subjects and starts their tasks on `tasks`; the node's
    /// deliveries and answers go out through `node` and its bus's queue `out`.
    pub(super) async fn start(
        client: async_nats::Client,
        prefix: &str,
        writing: Arc<Writing>,
        (node, out): (Arc<Node>, mpsc::Sender<Outgoing>),
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<Self, async_nats::SubscribeError> {
        let me = node.id();
        let requests = client
            .subscribe(format!("{prefix}.appends.{:016x}", me.0))
            .await?;
        let replies = client
            .subscribe(format!("{prefix}.appended.{:016x}.*", me.0))
            .await?;
        let waiting = Waiting::default();
        let writer = Writer::default();
        tasks.spawn(serve(
            Sending {
                client: client.clone(),
                out,
                node,
            },
            requests,
            Arc::clone(&writer),
            stop.clone(),
        ));
        tasks.spawn(collect(replies, Arc::clone(&waiting), stop.clone()));
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            me,
            writing,
            next: AtomicU64::new(0),
            waiting,
            writer,
        })
    }

    /// The writer of `conv` when it is another node.
    pub(super) fn writer(&self, conv: ConvId) -> Option<NodeId> {
        let best = self.writing.writer(self.me, conv)?;
        (best != self.me).then_some(best)
    }

    /// Sends `message`, sent on connection `except`, to `node`; the reply resolves to its
    /// outcome there.
    pub(super) async fn forward(
        &self,
        node: NodeId,
        message: &NewMessage,
        except: Option<ConnId>,
    ) -> Result<ForwardedReply, BusError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(BusError::Unavailable);
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            n,
            waiting: Arc::clone(&self.waiting),
        };
        pending.waiting.lock().expect("forward lock").insert(n, tx);
        let subject = format!("{}.appends.{:016x}", self.prefix, node.0);
        let reply = format!("{}.appended.{:016x}.{n}", self.prefix, self.me.0);
        let sent = tokio::time::timeout(
            SEND_WITHIN,
            self.client
                .publish_with_reply(subject, reply, wire::encode_append(message, except)),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return Err(BusError::Unavailable);
        }
        Ok(Box::pin(async move {
            let outcome = tokio::time::timeout(FORWARD_TIMEOUT, rx).await;
            drop(pending);
            outcome.ok().and_then(Result::ok).flatten()
        }))
    }

    /// Appends what other nodes forward to this one with `writer` from now on (the first
    /// writer given stays).
    pub(super) fn serve_with(&self, writer: Arc<dyn AppendWriter>) {
        _ = self.writer.set(Arc::downgrade(&writer));
        self.writing.serving.store(true, Ordering::Relaxed);
        self.writing.started.notify_waiters();
    }
}

/// A forward waiting for its answer; forgotten however its wait ends.
struct Pending {
    n: u64,
    waiting: Waiting,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.waiting.lock().expect("forward lock").remove(&self.n);
    }
}

/// The writer of `conv` among `nodes`: the one with the highest score.
pub fn writer_among(nodes: &[NodeId], conv: ConvId) -> Option<NodeId> {
    best_of(nodes.iter().copied(), conv)
}

fn best_of(nodes: impl Iterator<Item = NodeId>, conv: ConvId) -> Option<NodeId> {
    nodes.max_by_key(|n| (score(*n, conv), n.0))
}

/// How much `node` wants to write `conv`: the same on every node, spread evenly.
fn score(node: NodeId, conv: ConvId) -> u64 {
    mix(node.0 ^ mix(conv as u64))
}

/// SplitMix64's finaliser: every input bit moves about half the output bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Queues the appends forwarded to this node with its writer, in arrival order (the order
/// each forwarding node sent them), and publishes each outcome to the forward's reply subject
/// once committed (behind its delivery, when new). Before a writer is given, or for an
/// unreadable append, the answer is a refusal at once (the forwarder then appends itself).
async fn serve(
    sending: Sending,
    mut requests: async_nats::Subscriber,
    writer: Writer,
    stop: CancellationToken,
) {
    while let Some(request) = next_or_stop(&mut requests, &stop).await {
        let Some(reply) = request.reply else {
            continue;
        };
        let writing = writer.get().and_then(Weak::upgrade);
        let queued = match (writing, wire::decode_append(request.payload)) {
            (Some(writer), Ok((message, except))) if forwardable(&message) => {
                // A store queue that stays full is a refusal, not a wait: the forwarder then
                // appends itself, and forwards behind this one are not held up.
                match tokio::time::timeout(QUEUE_WITHIN, writer.queue(message)).await {
                    Ok(Ok(pending)) => Some((writer, pending, except)),
                    _ => None,
                }
            }
            (_, Err(e)) => {
                tracing::warn!(error = %e, "dropped a forwarded append");
                None
            }
            _ => None,
        };
        let sending = sending.clone();
        tokio::spawn(async move {
            let (mut answer, mut local) = (Bytes::new(), None);
            if let Some((writer, pending, except)) = queued
                && let Ok(appended) = pending.await
            {
                let event = match appended.duplicate {
                    false => writer.delivery(&appended, except).await,
                    true => None,
                };
                let delivered = event.as_ref().is_some_and(|e| sending.queue(e));
                answer = wire::encode_appended(&appended, delivered);
                local = event.filter(|_| delivered);
            }
            sending.answer(reply, answer).await;
            // This node's own connections last: the answer does not wait for them.
            if let Some(event) = local {
                sending.node.receive(event);
            }
        });
    }
}

/// How the writer's deliveries and answers leave.
#[derive(Clone)]
struct Sending {
    client: async_nats::Client,
    out: mpsc::Sender<Outgoing>,
    node: Arc<Node>,
}

impl Sending {
    /// Queues `event` for the other nodes, ahead of the answer; whether the bus took it (not
    /// once it is closing, or while its queue is full).
    fn queue(&self, event: &Event) -> bool {
        self.out
            .try_send(Outgoing::Event(wire::encode(event)))
            .is_ok()
    }

    /// Sends the answer to a forward after the delivery queued before it (so an answer that
    /// says "delivered" is behind its delivery on the wire), or at once when the queue does not
    /// take it.
    async fn answer(&self, reply: async_nats::Subject, answer: Bytes) {
        let queued = self
            .out
            .try_send(Outgoing::Answer(reply.clone(), answer.clone()));
        if queued.is_err()
            && let Err(e) = self.client.publish(reply, answer).await
        {
            tracing::warn!(error = %e, "forwarded append not answered");
        }
    }
}

/// Whether `message` is what a member's send makes (the only appends that are forwarded).
fn forwardable(message: &NewMessage) -> bool {
    matches!(
        message.kind,
        EntryKind::Text | EntryKind::Attachment | EntryKind::Sticker
    )
}

/// Hands each answer to the forward waiting for it (`None` for a refusal or NATS's "no
/// responders").
async fn collect(mut replies: async_nats::Subscriber, waiting: Waiting, stop: CancellationToken) {
    while let Some(reply) = next_or_stop(&mut replies, &stop).await {
        let Some(n) = reply
            .subject
            .rsplit('.')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let outcome = if reply.status.is_some() || reply.payload.is_empty() {
            None
        } else {
            wire::decode_appended(reply.payload).ok()
        };
        let waiter = waiting.lock().expect("forward lock").remove(&n);
        if let Some(waiter) = waiter {
            _ = waiter.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_picks_the_same_writer_and_few_groups_move() {
        let nodes: Vec<NodeId> = [11, 22, 33].map(NodeId).to_vec();
        let mut per_node = HashMap::new();
        for conv in 0..3000 {
            let w = writer_among(&nodes, conv).unwrap();
            // In any order of the list.
            let mut reversed = nodes.clone();
            reversed.reverse();
            assert_eq!(writer_among(&reversed, conv), Some(w));
            *per_node.entry(w).or_insert(0) += 1;
            // A node leaving moves only the groups it wrote.
            let rest: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != NodeId(33)).collect();
            if w != NodeId(33) {
                assert_eq!(writer_among(&rest, conv), Some(w));
            }
        }
        for n in &nodes {
            let share = per_node[n];
            assert!((800..1200).contains(&share), "{n:?} writes {share} of 3000");
        }
        assert_eq!(writer_among(&[], 1), None);
    }

    #[test]
    fn a_node_writes_groups_once_its_heartbeat_says_it_serves() {
        let writing = Writing::default();
        let (me, peer) = (NodeId(1), NodeId(2));
        assert_eq!(writing.beat(me)[8], 0, "not serving yet");
        assert_eq!(writing.nodes(me), Vec::<NodeId>::new());
        // An older node's 8-byte heartbeat: alive, but no writer.
        assert_eq!(writing.heard(&peer.0.to_le_bytes()), Some(peer));
        assert_eq!(writing.nodes(me), Vec::<NodeId>::new());
        let mut serving = peer.0.to_le_bytes().to_vec();
        serving.push(1);
        assert_eq!(writing.heard(&serving), Some(peer));
        assert_eq!(writing.nodes(me), vec![peer]);
        writing.serving.store(true, Ordering::Relaxed);
        assert_eq!(writing.beat(me)[8], 1);
        let mut nodes = writing.nodes(me);
        nodes.sort_unstable();
        assert_eq!(nodes, vec![me, peer]);
        // It stops serving (shutting down): it is dropped at its next heartbeat.
        assert_eq!(writing.heard(&peer.0.to_le_bytes()), Some(peer));
        assert_eq!(writing.nodes(me), vec![me]);
        assert_eq!(writing.heard(&[1, 2, 3]), None);
    }
}
