//! One writer per group in a cluster: a group's sends are appended by the node the bus names
//! ([`Bus::writer`](crate::bus::Bus::writer)), which batches them with its own, instead of by
//! every node in turn on the group's row lock. The node a member sent on checks the send and
//! publishes its delivery as usual; only the append travels.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::Messaging;
use crate::bus::AppendWriter;
use crate::store::{NewMessage, PendingAppend, StoreError, StoreResult};

impl Messaging {
    /// Queues the append of a group message: on the group's writer when that is another node,
    /// else (or when the writer cannot be reached) on this node's store. Appends queued one
    /// after another by one caller reach the writer in that order, and each commits whether or
    /// not anyone awaits it, as [`Store::queue_append`](crate::store::Store::queue_append)
    /// promises.
    pub(super) async fn queue_group_append(
        &self,
        message: NewMessage,
    ) -> StoreResult<PendingAppend> {
        let Some(writer) = self.bus.writer(message.conv) else {
            return self.store.queue_append(message).await;
        };
        let started = Instant::now();
        let reply = match self.bus.forward_append(writer, &message).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(error = %e, "appending a group message here");
                self.metrics.append_forward_failed();
                return self.store.queue_append(message).await;
            }
        };
        let (store, metrics) = (Arc::clone(&self.store), Arc::clone(&self.metrics));
        let (tx, rx) = oneshot::channel();
        // Awaited here rather than by the caller, so that an append whose writer did not
        // answer is still made when nobody waits for it any more. If the writer committed it
        // after all, the store answers this repeat with the original.
        tokio::spawn(async move {
            let outcome = match reply.await {
                Some(appended) => {
                    metrics.append_forwarded(started.elapsed());
                    Ok(appended)
                }
                None => {
                    metrics.append_forward_failed();
                    store.append(message).await
                }
            };
            _ = tx.send(outcome);
        });
        Ok(Box::pin(async move {
            rx.await.unwrap_or(Err(StoreError::Closed))
        }))
    }
}

/// The writer of the groups this node writes: appends what other nodes forward, counted.
#[async_trait]
impl AppendWriter for Messaging {
    async fn queue(&self, message: NewMessage) -> StoreResult<PendingAppend> {
        self.metrics.append_written_for_peer();
        self.store.queue_append(message).await
    }
}
