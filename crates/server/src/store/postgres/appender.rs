//! The append path: one task per store handle that takes every queued append in order and
//! commits them in batches, one transaction per batch.
//!
//! A batch is sent as one pipeline (`BEGIN`, the ordered row lock of every conversation it
//! touches, one [`INSERT_BATCH`] statement for all its appends, then `COMMIT`, without
//! waiting for each other's results): one round trip, four statements and one commit for
//! the whole batch, however many appends it holds. The lock comes first and in
//! conversation-id order, so batches of several handles on one database never deadlock, and
//! the insert behind it sees whatever another handle committed in those conversations before
//! (a retry through another node is found as the duplicate it is). A duplicate inserts
//! nothing and takes no seq; its original is read after the commit. Each conversation's
//! counter row and each sender's read cursor are updated once per batch, not once per
//! append (every update of a row leaves a version the rest of the transaction steps over;
//! ARCHITECTURE.md has the before and after).
//!
//! A batch that fails for a reason other than the connection (a value the database refuses)
//! is run again one append per transaction, so only the append at fault fails; one that hit
//! a deadlock or serialization failure (another writer's transaction in the way), or a key
//! another writer stored meanwhile in a conversation outside the batch, is tried again
//! whole. The task owns the queue, so an append commits whether or not anyone still waits
//! for it, and appends queued one after another commit in that order.

use std::collections::{BTreeSet, HashMap, HashSet};
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
use super::messages::{self, Entry};
use crate::metrics::Metrics;
use crate::store::{Appended, Missing, NewMessage, StoreError, StoreResult, StoredMessage};

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
            // A key another writer stored meanwhile outside this batch's conversations:
            // the next try finds it stored and answers it as the duplicate it is.
            Err(StoreError::Busy(_) | StoreError::Conflict(_)) => {
                outcome = attempt(pool, &messages).await
            }
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

/// Inserts a whole batch in one statement: every append of the batch not stored already (by
/// `(sender, client_msg_id)`) goes in at its conversation's next seqs, in batch order; then
/// each conversation's counter moves once to its last new seq and each sender's read cursor
/// once to its last own seq. The caller holds the row lock of every conversation in the
/// batch, so no other writer takes a seq or stores one of these keys in them meanwhile. A
/// key stored meanwhile in a conversation outside the batch (the same key sent to two
/// conversations) fails the statement with a unique violation instead of leaving a gap.
///
/// The check for a stored key is a `LATERAL … LIMIT 1` lookup, which can only be one probe of
/// `messages_by_client_id` per append. As `NOT EXISTS` the planner may make it a hash anti join
/// over the whole table, and does in the plan a pooled connection keeps for this statement
/// when it was made while the table was a few pages (a new database): that plan then reads
/// every message on every batch until the first autoanalyze replaces it.
///
/// `$1` conversations, `$2` senders, `$3` keys, `$4` bodies, `$5` kinds, in batch order;
/// `$6` ts.
/// Returns `id, seq, client_msg_id, sender` of each row inserted (the first three as
/// [`Entry::stored`] reads them).
const INSERT_BATCH: &str = "
WITH input AS (
    SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::INTEGER[])
        WITH ORDINALITY AS t(conv, sender, key, body, kind, ord)
), fresh AS (
    SELECT i.conv, i.sender, i.key, i.body, i.kind, i.ord,
           c.last_seq + row_number() OVER (PARTITION BY i.conv ORDER BY i.ord) AS seq
    FROM input i JOIN conversations c ON c.id = i.conv
    LEFT JOIN LATERAL (
        SELECT 1 AS stored FROM messages m WHERE m.sender = i.sender AND m.client_msg_id = i.key
        LIMIT 1
    ) d ON TRUE
    WHERE d.stored IS NULL
), ins AS (
    INSERT INTO messages (conv_id, seq, id, sender, client_msg_id, kind, body, ref_seq, ts)
    SELECT f.conv, f.seq, nextval('message_ids'), f.sender, f.key, f.kind, f.body, NULL,
           $6::BIGINT
    FROM (SELECT * FROM fresh ORDER BY ord) f
    RETURNING id, seq, conv_id, sender, client_msg_id
), bump AS (
    UPDATE conversations c SET last_seq = x.seq
    FROM (SELECT conv_id, max(seq) AS seq FROM ins GROUP BY conv_id) x
    WHERE c.id = x.conv_id
), mark AS (
    UPDATE members m SET read_seq = x.seq
    FROM (SELECT conv_id, sender, max(seq) AS seq FROM ins GROUP BY conv_id, sender) x
    WHERE m.conv_id = x.conv_id AND m.user_id = x.sender AND m.read_seq < x.seq
)
SELECT id, seq, client_msg_id, sender FROM ins";

/// Runs the batch's transaction as one pipeline (`BEGIN`, the ordered row locks, the
/// batch's insert, `COMMIT`): one round trip and four statements per batch, however many
/// appends and conversations it holds.
async fn pipeline(client: &Object, messages: &[&NewMessage]) -> StoreResult<Vec<Got>> {
    let now = crate::clock::now_ms();
    let lock = client
        .prepare_cached("SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await
        .map_err(db)?;
    let insert = client.prepare_cached(INSERT_BATCH).await.map_err(db)?;
    let convs: Vec<i64> = messages
        .iter()
        .map(|m| m.conv)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A key sent twice in one batch (a quick retry) goes in once: the later copies are
    // duplicates of the first, read back after the commit like any other.
    let mut first = HashSet::with_capacity(messages.len());
    let unique: Vec<&NewMessage> = messages
        .iter()
        .copied()
        .filter(|m| first.insert((m.sender, m.client_msg_id.as_str())))
        .collect();
    let conv_col: Vec<i64> = unique.iter().map(|m| m.conv).collect();
    let sender_col: Vec<i64> = unique.iter().map(|m| m.sender).collect();
    let key_col: Vec<&str> = unique.iter().map(|m| m.client_msg_id.as_str()).collect();
    let body_col: Vec<&str> = unique.iter().map(|m| m.text.as_str()).collect();
    let kind_col: Vec<i32> = unique.iter().map(|m| m.kind as i32).collect();
    let lock_params: [&(dyn ToSql + Sync); 1] = [&convs];
    let insert_params: [&(dyn ToSql + Sync); 6] =
        [&conv_col, &sender_col, &key_col, &body_col, &kind_col, &now];
    // Sent in this order, without waiting for each other: a request leaves on its future's
    // first poll, so each is polled once, in order, before any is waited for; the server runs
    // them one after another and answers in the same order.
    let mut begin = pin!(maybe_done(client.batch_execute("BEGIN")));
    let mut locked = pin!(maybe_done(client.query(&lock, &lock_params)));
    let mut inserted = pin!(maybe_done(client.query(&insert, &insert_params)));
    // `COMMIT` goes in the same pipeline, so the conversations' row locks are held for one
    // round trip, not two. After a failed statement the server answers it with a rollback
    // (no error): a batch counts as committed only when every statement before succeeded.
    let mut commit = pin!(maybe_done(client.batch_execute("COMMIT")));
    poll_fn(|cx| {
        _ = begin.as_mut().poll(cx);
        _ = locked.as_mut().poll(cx);
        _ = inserted.as_mut().poll(cx);
        _ = commit.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    begin.as_mut().await;
    locked.as_mut().await;
    inserted.as_mut().await;
    commit.as_mut().await;
    let lost = |what: &str| StoreError::Backend(format!("{what} lost"));
    begin.as_mut().take_output().unwrap_or(Ok(())).map_err(db)?;
    let locked = locked
        .as_mut()
        .take_output()
        .ok_or_else(|| lost("lock query"))?;
    let inserted = inserted
        .as_mut()
        .take_output()
        .ok_or_else(|| lost("insert"))?;
    let committed = commit
        .as_mut()
        .take_output()
        .ok_or_else(|| lost("commit"))?;
    let existing: BTreeSet<i64> = locked
        .map_err(db)?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let mut rows: HashMap<(i64, String), tokio_postgres::Row> = inserted
        .map_err(db)?
        .into_iter()
        .map(|r| ((r.get::<_, i64>(3), r.get::<_, String>(2)), r))
        .collect();
    committed.map_err(db)?;
    let mut got = Vec::with_capacity(messages.len());
    for m in messages {
        let entry = Entry {
            conv: m.conv,
            sender: m.sender,
            client_msg_id: Some(&m.client_msg_id),
            kind: m.kind,
            body: &m.text,
            ref_seq: None,
        };
        got.push(match rows.remove(&(m.sender, m.client_msg_id.clone())) {
            Some(row) => Got::Inserted(entry.stored(&row, now)),
            None if existing.contains(&m.conv) => Got::Duplicate,
            None => Got::NoConversation,
        });
    }
    Ok(got)
}
