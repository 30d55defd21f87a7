//! The append path: one task per store handle that takes every queued append in order and
//! commits them in batches, one transaction per batch.
//!
//! A batch is sent as one pipeline (`BEGIN`, the ordered row lock of every conversation it
//! touches, then one [`INSERT_ENTRY`] statement per append, all without waiting for each
//! other's results), then `COMMIT`: two round trips and one commit for the whole batch,
//! however many appends it holds. The lock comes first and in conversation-id order, so
//! batches of several handles on one database never deadlock, and every insert behind it
//! sees whatever another handle committed in those conversations before (a retry through
//! another node is found as the duplicate it is). A duplicate inserts nothing and takes no
//! seq; its original is read after the commit.
//!
//! A batch that fails for a reason other than the connection (a value the database refuses)
//! is run again one append per transaction, so only the append at fault fails; one that hit
//! a deadlock or serialization failure (another writer's transaction in the way) is tried
//! again whole. The task owns the queue, so an append commits whether or not anyone still
//! waits for it, and appends queued one after another commit in that order.

use std::collections::BTreeSet;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use deadpool_postgres::{Object, Pool};

use futures_util::future::maybe_done;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::Health;
use super::errors::{copy, db};
use super::messages::{self, Entry, INSERT_ENTRY};
use crate::metrics::Metrics;
use crate::store::{
    Appended, EntryKind, Missing, NewMessage, StoreError, StoreResult, StoredMessage,
};

/// Appends waiting for the task before `queue_append` callers wait for room.
const QUEUE: usize = 16 * 1024;
/// Times a batch is tried again after a deadlock or serialization failure.
const RETRIES: usize = 3;

/// A queued append and where its outcome goes.
pub(super) struct Job {
    message: NewMessage,
    reply: oneshot::Sender<StoreResult<Appended>>,
}

enum Command {
    Append(Job),
    /// Commit what came before, answer, and exit.
    Stop(oneshot::Sender<()>),
}

/// Handle to the append task.
pub(super) struct Appender {
    commands: mpsc::Sender<Command>,
}

impl Appender {
    /// Starts the task on `pool`, taking at most `batch_max` appends per transaction.
    pub(super) fn start(
        pool: Pool,
        batch_max: usize,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        let (commands, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx, batch_max.max(1), metrics, health));
        Self { commands }
    }

    /// Queues `message`; the receiver gets its outcome once its batch committed (or failed).
    pub(super) async fn queue(
        &self,
        message: NewMessage,
    ) -> StoreResult<oneshot::Receiver<StoreResult<Appended>>> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Append(Job { message, reply }))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Waits until everything queued before has committed, then stops the task.
    pub(super) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            _ = rx.await;
        }
    }
}

async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<Command>,
    batch_max: usize,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    let mut stop = None;
    while stop.is_none() {
        match rx.recv().await {
            Some(Command::Append(job)) => batch.push(job),
            Some(Command::Stop(ack)) => stop = Some(ack),
            None => break,
        }
        while stop.is_none() && batch.len() < batch_max {
            match rx.try_recv() {
                Ok(Command::Append(job)) => batch.push(job),
                Ok(Command::Stop(ack)) => stop = Some(ack),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit(&pool, &mut batch, &metrics, &health).await;
        }
    }
    rx.close();
    if let Some(ack) = stop {
        _ = ack.send(());
    }
}

/// Commits `batch` and answers every job, emptying it.
async fn commit(pool: &Pool, batch: &mut Vec<Job>, metrics: &Metrics, health: &Health) {
    let started = Instant::now();
    let messages: Vec<&NewMessage> = batch.iter().map(|j| &j.message).collect();
    let mut outcome = attempt(pool, &messages).await;
    for _ in 0..RETRIES {
        match &outcome {
            Err(StoreError::Busy(_)) => outcome = attempt(pool, &messages).await,
            _ => break,
        }
    }
    let results = match outcome {
        Ok(results) => results,
        Err(e @ (StoreError::Unavailable(_) | StoreError::Closed | StoreError::Busy(_))) => {
            if let StoreError::Unavailable(why) = &e {
                health.set(Some(why.clone()));
            }
            messages.iter().map(|_| Err(copy(&e))).collect()
        }
        // A value or statement the database refused: find the append at fault by running
        // each alone, in order, so that the others still commit.
        Err(e) if messages.len() > 1 => {
            tracing::warn!(error = %e, batch = messages.len(), "append batch failed; retrying one by one");
            let mut results = Vec::with_capacity(messages.len());
            for m in &messages {
                results.push(match attempt(pool, &[m]).await {
                    Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(e) => Err(e),
                });
            }
            results
        }
        Err(e) => vec![Err(e)],
    };
    if results
        .iter()
        .all(|r| !matches!(r, Err(StoreError::Unavailable(_))))
    {
        health.set(None);
    }
    metrics.record_commit(batch.len(), started.elapsed());
    for (job, result) in batch.drain(..).zip(results) {
        // The caller may have gone away (timeout, disconnect); the write stands.
        _ = job.reply.send(result);
    }
}

/// One try at a batch: every append's outcome if the transaction committed.
async fn attempt(pool: &Pool, messages: &[&NewMessage]) -> StoreResult<Vec<StoreResult<Appended>>> {
    let client = pool.get().await.map_err(super::errors::pool)?;
    let got = match pipeline(&client, messages).await {
        Ok(got) => got,
        Err(e) => {
            // A failed pipeline may have left the transaction open: roll it back, and drop a
            // connection that cannot even do that rather than hand it to the next caller.
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(Object::take(client));
            }
            return Err(e);
        }
    };
    let mut results = Vec::with_capacity(messages.len());
    for (m, got) in messages.iter().zip(got) {
        results.push(match got {
            Got::Inserted(message) => Ok(Appended {
                message,
                duplicate: false,
            }),
            Got::NoConversation => Err(StoreError::NotFound(Missing::Conversation)),
            Got::Duplicate => {
                match messages::find_by_client_id(&client, m.sender, &m.client_msg_id).await {
                    Ok(Some(message)) => Ok(Appended {
                        message,
                        duplicate: true,
                    }),
                    Ok(None) => Err(StoreError::Backend(format!(
                        "client_msg_id {:?} of {} conflicted but is not stored",
                        m.client_msg_id, m.sender
                    ))),
                    Err(e) => Err(e),
                }
            }
        });
    }
    Ok(results)
}

/// What one append of a committed batch got.
enum Got {
    Inserted(StoredMessage),
    Duplicate,
    NoConversation,
}

/// Runs the batch's transaction as one pipeline and commits it.
async fn pipeline(client: &Object, messages: &[&NewMessage]) -> StoreResult<Vec<Got>> {
    let now = crate::clock::now_ms();
    let lock = client
        .prepare_cached("SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await
        .map_err(db)?;
    let insert = client.prepare_cached(INSERT_ENTRY).await.map_err(db)?;
    let convs: Vec<i64> = messages
        .iter()
        .map(|m| m.conv)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let entries: Vec<Entry<'_>> = messages
        .iter()
        .map(|m| Entry {
            conv: m.conv,
            sender: m.sender,
            client_msg_id: Some(&m.client_msg_id),
            kind: EntryKind::Text,
            body: &m.text,
            ref_seq: None,
        })
        .collect();
    let kind = EntryKind::Text as i32;
    let no_ref: Option<i64> = None;
    let params: Vec<[&(dyn ToSql + Sync); 7]> = entries
        .iter()
        .map(|e| -> [&(dyn ToSql + Sync); 7] {
            [
                &e.conv,
                &e.sender,
                &e.client_msg_id,
                &kind,
                &e.body,
                &no_ref,
                &now,
            ]
        })
        .collect();
    // Sent in this order, without waiting for each other: a request leaves on its future's
    // first poll, so each is polled once, in order, before any is waited for; the server runs
    // them one after another and answers in the same order.
    let lock_params: [&(dyn ToSql + Sync); 1] = [&convs];
    let mut begin = pin!(maybe_done(client.batch_execute("BEGIN")));
    let mut locked = pin!(maybe_done(client.query(&lock, &lock_params)));
    let mut inserts: Vec<_> = params
        .iter()
        .map(|p| Box::pin(maybe_done(client.query_opt(&insert, p))))
        .collect();
    poll_fn(|cx| {
        _ = begin.as_mut().poll(cx);
        _ = locked.as_mut().poll(cx);
        for f in &mut inserts {
            _ = f.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await;
    begin.as_mut().await;
    begin.as_mut().take_output().unwrap_or(Ok(())).map_err(db)?;
    locked.as_mut().await;
    let locked = locked
        .as_mut()
        .take_output()
        .ok_or_else(|| StoreError::Backend("lock query lost".into()))?;
    let mut inserted = Vec::with_capacity(inserts.len());
    for f in &mut inserts {
        f.as_mut().await;
        inserted.push(
            f.as_mut()
                .take_output()
                .ok_or_else(|| StoreError::Backend("insert lost".into()))?,
        );
    }
    let existing: BTreeSet<i64> = locked
        .map_err(db)?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let mut got = Vec::with_capacity(entries.len());
    for (e, row) in entries.iter().zip(inserted) {
        got.push(match row.map_err(db)? {
            Some(row) => Got::Inserted(e.stored(&row, now)),
            None if existing.contains(&e.conv) => Got::Duplicate,
            None => Got::NoConversation,
        });
    }
    client.batch_execute("COMMIT").await.map_err(db)?;
    Ok(got)
}
