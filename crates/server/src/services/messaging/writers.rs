//! One writer per group in a cluster: a group's sends are appended by the node the bus names
//! ([`Bus::writer`](crate::bus::Bus::writer)), which batches them with its own, instead of by
//! every node in turn on the group's row lock. The node a member sent on checks the send; the
//! append travels, and the writer publishes the delivery once it committed (the node the
//! member sent on does when the writer did not, or when it appended the send itself).
//!
//! **Order.** Sends queued one after another on one line (this node's store, or one writer
//! over NATS) commit in that order. A group's sends change lines only when none of this
//! node's are in flight on the old one ([`Routes`]): a writer that changes (a node joining or
//! leaving) or fails never lets a later send commit before an earlier one. A send whose
//! forward failed is appended here only after the group's sends before it were (each append
//! waits for its predecessor's turn); the writer that failed then gets no forwards from this
//! node for a few seconds, so the sends after it follow it here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};

use super::Messaging;
use crate::bus::{AppendWriter, ConnId, Event, Forwarded, NodeId};
use crate::metrics::Metrics;
use crate::store::{Appended, ConvId, NewMessage, PendingAppend, Store, StoreError, StoreResult};

/// Longest a send waits for the group's sends in flight on another line before it goes on
/// anyway (the forwards' own timeout, their fallback's commit, and some slack).
const SWITCH_WITHIN: Duration = Duration::from_secs(10);
/// How long a writer that failed a forward gets none from this node.
const SHUN_FOR: Duration = Duration::from_secs(3);
/// Clock difference between nodes tolerated when telling a late commit of this send's own
/// forward from an older message with the same key.
const CLOCK_SLACK_MS: i64 = 1_000;

/// A group send's commit, and whether the writer that committed it delivered it.
pub(super) type PendingGroupAppend = Pin<Box<dyn Future<Output = StoreResult<Forwarded>> + Send>>;

/// Which line each group's appends of this node are on while some are in flight.
#[derive(Default)]
pub(super) struct Routes {
    lines: Mutex<HashMap<ConvId, Line>>,
    /// Writers that failed a forward lately, and until when they get none.
    shunned: Mutex<HashMap<NodeId, Instant>>,
}

/// A group's appends in flight from this node.
struct Line {
    /// Where they go: a writer on another node, or this node's store (`None`).
    writer: Option<NodeId>,
    /// How many are in flight.
    pending: usize,
    /// The turn of the last append queued: it fires once that append committed on its writer
    /// or was queued on this node's store.
    last: Option<oneshot::Receiver<()>>,
    /// Woken when the last append in flight is done.
    idle: Arc<Notify>,
}

/// One append's place on its group's line; the append counts as in flight until it is
/// dropped (however the send ends: done, failed, or its caller gone before it was queued).
struct Place {
    writer: Option<NodeId>,
    /// The previous append's turn.
    before: Option<oneshot::Receiver<()>>,
    /// This append's turn, given once it committed on its writer or was queued here.
    turn: Option<oneshot::Sender<()>>,
    routes: Arc<Routes>,
    conv: ConvId,
}

impl Place {
    /// Gives the next append of the group its turn.
    fn pass(&mut self) {
        if let Some(turn) = self.turn.take() {
            _ = turn.send(());
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.pass();
        self.routes.done(self.conv);
    }
}

impl Routes {
    /// Takes a place for a send to `conv` whose writer is now `wanted` (this node's store
    /// instead while `wanted` is shunned). Waits (at most [`SWITCH_WITHIN`]) when that is
    /// another line than the one `conv`'s appends in flight are on.
    async fn take(self: &Arc<Self>, conv: ConvId, wanted: Option<NodeId>) -> Place {
        let deadline = tokio::time::Instant::now() + SWITCH_WITHIN;
        loop {
            let target = wanted.filter(|w| !self.shunned(*w));
            let idle = {
                let mut lines = self.lines.lock().expect("routes lock");
                let line = lines.entry(conv).or_insert_with(|| Line {
                    writer: target,
                    pending: 0,
                    last: None,
                    idle: Arc::new(Notify::new()),
                });
                let late = tokio::time::Instant::now() >= deadline;
                if line.pending == 0 || line.writer == target || late {
                    if line.pending == 0 {
                        line.writer = target;
                    }
                    line.pending += 1;
                    let (turn, next) = oneshot::channel();
                    let before = line.last.replace(next);
                    return Place {
                        writer: line.writer,
                        before,
                        turn: Some(turn),
                        routes: Arc::clone(self),
                        conv,
                    };
                }
                Arc::clone(&line.idle)
            };
            // Appends in flight on the old line: wait for them, then look again.
            let woken = idle.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let still = self
                .lines
                .lock()
                .expect("routes lock")
                .get(&conv)
                .is_some_and(|l| l.pending > 0);
            if still {
                _ = tokio::time::timeout_at(deadline, woken).await;
            }
        }
    }

    /// Notes that `writer` failed a forward: for [`SHUN_FOR`], this node appends the groups
    /// it writes itself.
    fn failed(&self, writer: NodeId) {
        let until = Instant::now() + SHUN_FOR;
        self.shunned
            .lock()
            .expect("routes lock")
            .insert(writer, until);
    }

    fn shunned(&self, writer: NodeId) -> bool {
        let mut shunned = self.shunned.lock().expect("routes lock");
        let now = Instant::now();
        shunned.retain(|_, until| *until > now);
        shunned.contains_key(&writer)
    }

    /// One of `conv`'s appends is done; the line is forgotten once none is in flight.
    fn done(&self, conv: ConvId) {
        let mut lines = self.lines.lock().expect("routes lock");
        if let Some(line) = lines.get_mut(&conv) {
            line.pending -= 1;
            if line.pending == 0 {
                let idle = Arc::clone(&line.idle);
                lines.remove(&conv);
                idle.notify_waiters();
            }
        }
    }
}

impl Messaging {
    /// Queues the append of a group message sent on connection `except`: on the group's
    /// writer when that is another node, else (or when the writer cannot be reached) on this
    /// node's store, keeping the order described in the module docs. Each commits whether or
    /// not anyone awaits it, as [`Store::queue_append`](crate::store::Store::queue_append)
    /// promises.
    pub(super) async fn queue_group_append(
        &self,
        message: NewMessage,
        except: Option<ConnId>,
    ) -> StoreResult<PendingGroupAppend> {
        let conv = message.conv;
        let mut place = self.routes.take(conv, self.bus.writer(conv)).await;
        let started = (Instant::now(), crate::clock::now_ms());
        let (tx, rx) = oneshot::channel();
        let Some(writer) = place.writer else {
            // This node's own line: queued now, in the caller's order.
            let pending = self.store.queue_append(message).await?;
            place.pass();
            tokio::spawn(async move {
                _ = tx.send(pending.await.map(|appended| Forwarded {
                    appended,
                    delivered: false,
                }));
                drop(place);
            });
            return Ok(Box::pin(async move {
                rx.await.unwrap_or(Err(StoreError::Closed))
            }));
        };
        let reply = match self.bus.forward_append(writer, &message, except).await {
            Ok(reply) => Some(reply),
            Err(e) => {
                tracing::debug!(error = %e, "appending a group message here");
                None
            }
        };
        let fallback = Fallback {
            store: Arc::clone(&self.store),
            metrics: Arc::clone(&self.metrics),
            message,
            started,
        };
        // Awaited here rather than by the caller, so that an append whose writer did not
        // answer is still made when nobody waits for it any more.
        tokio::spawn(async move {
            _ = tx.send(fallback.finish(place, reply).await);
        });
        Ok(Box::pin(async move {
            rx.await.unwrap_or(Err(StoreError::Closed))
        }))
    }
}

/// A forwarded append, kept for appending here if its writer does not take it.
struct Fallback {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    message: NewMessage,
    started: (Instant, i64),
}

impl Fallback {
    /// Waits for the writer's answer; without one, appends the message here after the
    /// group's sends before it.
    async fn finish(
        self,
        mut place: Place,
        reply: Option<crate::bus::ForwardedReply>,
    ) -> StoreResult<Forwarded> {
        let answered = match reply {
            Some(reply) => reply.await,
            None => None,
        };
        if let Some(forwarded) = answered {
            self.metrics.append_forwarded(self.started.0.elapsed());
            return Ok(forwarded);
        }
        self.metrics.append_forward_failed();
        if let Some(writer) = place.writer {
            place.routes.failed(writer);
        }
        // After the sends before it, wherever they went.
        if let Some(before) = place.before.take() {
            _ = before.await;
        }
        let pending = self.store.queue_append(self.message).await?;
        place.pass();
        let appended = pending.await?;
        Ok(Forwarded {
            appended: own_late_commit(appended, self.started.1),
            delivered: false,
        })
    }
}

/// A "duplicate" found by the fallback that committed after this send's forward began is that
/// forward's own commit, whose answer was lost or late: it is this send's, and is delivered as
/// such (receivers drop a seq they already have, should it have been pushed after all).
fn own_late_commit(mut appended: Appended, forwarded_at_ms: i64) -> Appended {
    if appended.duplicate && appended.message.ts >= forwarded_at_ms - CLOCK_SLACK_MS {
        appended.duplicate = false;
    }
    appended
}

/// The writer of the groups this node writes: appends what other nodes forward, counted, and
/// delivers them to the group's members (as this node's directory knows them).
#[async_trait]
impl AppendWriter for Messaging {
    async fn queue(&self, message: NewMessage) -> StoreResult<PendingAppend> {
        self.metrics.append_written_for_peer();
        self.store.queue_append(message).await
    }

    async fn delivery(&self, appended: &Appended, except: Option<ConnId>) -> Option<Event> {
        let m = &appended.message;
        match self.directory.members(m.conv).await {
            Ok(members) => Some(super::entry_event(except, m, members)),
            Err(e) => {
                tracing::debug!(error = %e, "the sender's node delivers");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::store::{EntryKind, StoredMessage};

    const ONE: Option<NodeId> = Some(NodeId(1));
    const TWO: Option<NodeId> = Some(NodeId(2));

    /// Takes a place on `conv` towards `wanted`, checking that it waits while `in_flight`,
    /// the group's last append in flight elsewhere, is not done.
    async fn waits(routes: &Arc<Routes>, in_flight: Place, wanted: Option<NodeId>) -> Place {
        let (r, conv) = (Arc::clone(routes), in_flight.conv);
        let taking = r.take(conv, wanted);
        tokio::pin!(taking);
        assert!(
            taking.as_mut().now_or_never().is_none(),
            "took a new line with appends in flight"
        );
        drop(in_flight);
        taking.await
    }

    #[tokio::test]
    async fn a_line_changes_only_once_its_appends_in_flight_are_done() {
        let routes = Arc::new(Routes::default());
        // Sends to one line join it at once, each after the one before.
        let mut first = routes.take(7, ONE).await;
        let mut second = routes.take(7, ONE).await;
        assert_eq!((first.writer, second.writer), (ONE, ONE));
        assert!(first.before.is_none());
        let after_first = second.before.take().expect("second waits for first's turn");
        first.pass();
        after_first.await.expect("first gave its turn");
        drop(first);
        // The writer changes while `second` is in flight: the next send waits for it.
        let third = waits(&routes, second, TWO).await;
        assert_eq!(third.writer, TWO);
        assert!(third.before.is_none(), "nothing in flight before it");
        // After a failed forward the writer's groups come here, once the line drained.
        routes.failed(NodeId(2));
        let fourth = waits(&routes, third, TWO).await;
        assert_eq!(fourth.writer, None);
        drop(fourth);
        assert!(
            routes.lines.lock().unwrap().is_empty(),
            "forgotten when idle"
        );
        // Other groups are not held up by one in flight, and avoid the shunned writer.
        let _busy = routes.take(8, ONE).await;
        assert_eq!(routes.take(9, ONE).await.writer, ONE);
        assert_eq!(routes.take(10, TWO).await.writer, None);
    }

    #[tokio::test]
    async fn a_send_dropped_before_it_was_queued_frees_its_line() {
        let routes = Arc::new(Routes::default());
        let abandoned = routes.take(7, ONE).await;
        let mut next = routes.take(7, ONE).await;
        let turn = next.before.take().unwrap();
        drop(abandoned);
        turn.await.expect("a dropped place still gives its turn");
        drop(next);
        assert_eq!(
            routes.take(7, TWO).await.writer,
            TWO,
            "no wait: nothing in flight"
        );
    }

    #[test]
    fn a_late_commit_of_the_forward_is_this_sends_own() {
        let appended = |ts, duplicate| Appended {
            message: StoredMessage {
                id: 1,
                conv: 1,
                seq: 5,
                sender: 1,
                client_msg_id: "k".into(),
                kind: EntryKind::Text,
                text: "t".into(),
                ref_seq: None,
                edited_at: None,
                recalled: false,
                ts,
            },
            duplicate,
        };
        let forwarded_at = 1_000_000;
        assert!(!own_late_commit(appended(forwarded_at + 10, true), forwarded_at).duplicate);
        assert!(!own_late_commit(appended(forwarded_at - 500, true), forwarded_at).duplicate);
        assert!(own_late_commit(appended(forwarded_at - 5_000, true), forwarded_at).duplicate);
        assert!(!own_late_commit(appended(forwarded_at - 5_000, false), forwarded_at).duplicate);
    }
}
