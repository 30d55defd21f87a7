//! A store handle's SQLite writer thread and its group commit.
//!
//! Every write of a handle goes through one thread that owns its only read-write connection (a
//! server has one handle; more handles on one database, as in the conformance suite, take turns
//! through SQLite's write lock: `BEGIN IMMEDIATE` waits up to `busy_timeout`).
//! It takes whatever jobs are queued (up to `write_batch_max`), runs each inside its own
//! savepoint of ONE transaction, commits once, and only then answers each job: a message is
//! acknowledged only after the commit that holds it (DESIGN.md invariant 1), and a thousand
//! concurrent senders cost one fsync, not a thousand.
//!
//! Seqs and message ids come from counters stored in the database ([`counters`]), read once per
//! batch under the write lock: the writer caches nothing across batches, so another writer on
//! the same database (a second handle in this process) can never make it assign a taken seq.
//! The writer also keeps the store's [`Health`]: whether the last transaction failed for a
//! lasting reason.
//!
//! [`counters`]: super::counters

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use rusqlite::{Connection, ErrorCode};
use tokio::sync::{mpsc, oneshot};

use super::counters::Counters;
use crate::metrics::Metrics;
use crate::store::{ConvId, Missing, StoreError, StoreResult};

/// Jobs waiting for the writer before `write` callers wait for room (backpressure on senders).
pub(super) const WRITE_QUEUE: usize = 16 * 1024;

/// State a write job may use besides the connection.
pub(super) struct WriteCtx<'a> {
    /// The read-write connection, inside the batch's transaction.
    pub(super) conn: &'a Connection,
    /// Commit time of this batch (UTC ms).
    pub(super) now: i64,
    counters: &'a mut Counters,
    /// A job's lasting failure ([`StoreError::Unavailable`]), for [`Health`]: the job's
    /// savepoint is rolled back and the batch still commits, so the commit alone cannot tell.
    fault: Option<String>,
}

impl WriteCtx<'_> {
    /// The seq the next entry of `conv` gets, from the conversation's counter;
    /// `NotFound(Conversation)` if there is no such conversation.
    pub(super) fn next_seq(&mut self, conv: ConvId) -> StoreResult<u64> {
        self.counters
            .next_seq(self.conn, conv)
            .map_err(backend)?
            .ok_or(StoreError::NotFound(Missing::Conversation))
    }

    /// Records that the entry at `seq` (from [`WriteCtx::next_seq`]) was inserted. Call it
    /// right after the insert succeeded.
    pub(super) fn advance_seq(&mut self, conv: ConvId, seq: u64) {
        self.counters.advance(conv, seq);
    }

    /// A new message id: unique and increasing across every writer of the database.
    pub(super) fn next_message_id(&mut self) -> rusqlite::Result<i64> {
        self.counters.next_message_id(self.conn, self.now)
    }
}

/// Whether the store can write, as the writer last saw it: a write transaction that fails with
/// an I/O error, a full or read-only disk, or corruption sets the fault; the next transaction
/// that commits clean clears it. Readiness (`/readyz`) reports it.
#[derive(Debug, Default)]
pub(super) struct Health {
    // A std mutex: held for a clone or a swap, never across an await.
    fault: Mutex<Option<String>>,
}

impl Health {
    /// Why the last write transaction failed, if it failed for a lasting reason.
    pub(super) fn fault(&self) -> Option<String> {
        self.fault.lock().expect("health lock").clone()
    }

    fn set(&self, fault: Option<String>) {
        let mut current = self.fault.lock().expect("health lock");
        match (&*current, &fault) {
            (None, Some(why)) => tracing::error!(error = %why, "the store cannot write"),
            (Some(_), None) => tracing::info!("the store writes again"),
            _ => {}
        }
        *current = fault;
    }
}

/// What to do once the batch's commit outcome is known.
type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// A write: runs inside the batch's transaction (`None`: the transaction could not begin, so it
/// does not run), returns its completion.
type Job = Box<dyn FnOnce(Option<&mut WriteCtx<'_>>) -> Completion + Send>;

/// What the writer thread receives.
enum Command {
    Write(Job),
    /// Commit what came before, answer, and exit. Jobs queued behind it are dropped, so their
    /// callers see `StoreError::Closed`.
    Stop(oneshot::Sender<()>),
}

/// A queued write's result, ready once the batch holding it has committed (or failed).
pub(super) struct Committed<R>(oneshot::Receiver<StoreResult<R>>);

impl<R> Future for Committed<R> {
    type Output = StoreResult<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The writer dropped the job unanswered only when it stopped before running it.
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::Closed)))
    }
}

/// Handle to the writer thread.
pub(super) struct Writer {
    commands: mpsc::Sender<Command>,
    /// The thread hands its connection back when it stops, for the final checkpoint.
    thread: Mutex<Option<std::thread::JoinHandle<Connection>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn start(
        conn: Connection,
        batch_max: usize,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        let (commands, rx) = mpsc::channel(WRITE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("banter-sqlite-writer".into())
            .spawn(move || run(conn, rx, batch_max, &metrics, &health))
            .expect("spawn sqlite writer thread");
        Self {
            commands,
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    /// Runs `f` in the next batch, inside its own savepoint (so that its failure undoes only
    /// its own writes), and returns its result once that batch has committed.
    pub(super) async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> StoreResult<R> + Send + 'static,
    {
        self.queue_single(move |ctx| in_savepoint(ctx, f))
            .await?
            .await
    }

    /// Like [`Writer::write`] without the savepoint, for jobs whose first write is a single
    /// statement (atomic by itself) that advance the counters only after it succeeded: the
    /// append hot path, where the savepoint cost a fifth of the writer's time. Returns once the
    /// job is queued; the returned future resolves when its batch has committed, so a caller
    /// can queue several jobs in order and wait for them together.
    pub(super) async fn queue_single<R, F>(&self, f: F) -> StoreResult<Committed<R>>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> StoreResult<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            // Not run: the batch's outcome (the error that kept it from beginning) is the answer.
            let result = ctx.map_or(Err(StoreError::Closed), |ctx| {
                let result = f(ctx);
                if let Err(StoreError::Unavailable(why)) = &result {
                    ctx.fault.get_or_insert_with(|| why.clone());
                }
                result
            });
            Box::new(move |committed: StoreResult<()>| {
                // The caller may have gone away (timeout, disconnect); the write stands.
                _ = tx.send(committed.and(result));
            })
        });
        self.commands
            .send(Command::Write(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(Committed(rx))
    }

    /// Commits everything queued so far, stops the thread, checkpoints the whole WAL into the
    /// database and closes the connection. Call it after the readers are closed: SQLite removes
    /// the WAL only when its last connection closes. Returns whether this call closed it.
    pub(super) async fn close(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            _ = rx.await;
        }
        let thread = self.thread.lock().expect("writer thread lock").take();
        let Some(thread) = thread else {
            return false;
        };
        let finished = tokio::task::spawn_blocking(move || join_and_finish(thread));
        if finished.await.is_err() {
            tracing::error!("the final checkpoint did not run");
        }
        true
    }

    /// [`Writer::close`] for `Drop`, where nothing can be awaited: the thread is asked to stop
    /// without waiting for queue room (if the queue is full it stops when the channel closes)
    /// and joined. The thread never waits on the async side, so joining cannot deadlock.
    pub(super) fn close_blocking(&self) -> bool {
        let thread = self.thread.lock().expect("writer thread lock").take();
        let Some(thread) = thread else {
            return false;
        };
        let (tx, _rx) = oneshot::channel();
        if self.commands.try_send(Command::Stop(tx)).is_err() {
            // Full: the thread stops once the channel closes, after this `Writer` is gone.
            tracing::warn!("writer queue full at drop: not waiting for the final checkpoint");
            return false;
        }
        join_and_finish(thread);
        true
    }
}

fn join_and_finish(thread: std::thread::JoinHandle<Connection>) {
    match thread.join() {
        Ok(conn) => finish(conn),
        Err(_) => tracing::error!("the sqlite writer thread panicked"),
    }
}

/// The final checkpoint: `TRUNCATE` copies every WAL page into the database and empties the WAL,
/// and closing the last connection then deletes it, so a stopped server leaves one file.
fn finish(conn: Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::warn!("another connection kept the WAL from being checkpointed"),
        Err(e) => tracing::error!(error = %e, "final WAL checkpoint failed"),
    }
    if let Err((_, e)) = conn.close() {
        tracing::error!(error = %e, "closing the database failed");
    }
}

/// Runs `f` inside a savepoint so that its failure undoes only its own writes.
fn in_savepoint<R>(
    ctx: &mut WriteCtx<'_>,
    f: impl FnOnce(&mut WriteCtx<'_>) -> StoreResult<R>,
) -> StoreResult<R> {
    exec(ctx.conn, "SAVEPOINT job")?;
    let mark = ctx.counters.mark();
    let result = f(ctx);
    match &result {
        Ok(_) => exec(ctx.conn, "RELEASE job")?,
        Err(_) => {
            exec(ctx.conn, "ROLLBACK TO job")?;
            exec(ctx.conn, "RELEASE job")?;
            // The job may have advanced counters for rows now rolled back.
            ctx.counters.undo_to(mark);
        }
    }
    result
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(backend)
}

/// Maps a SQLite error to the store's error: `Unavailable` when the files cannot be written or
/// read as they are (every later write would fail the same way until an operator acts), `Busy`
/// when another connection held the database past `busy_timeout`, `Conflict` for a unique key
/// another write took (callers that treat a duplicate as idempotent check for it first),
/// otherwise the opaque `Backend`.
pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::CannotOpen,
        ) => StoreError::Unavailable(text),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy(text),
        Some(ErrorCode::ConstraintViolation) if is_unique_violation(&e) => {
            StoreError::Conflict(text)
        }
        _ => StoreError::Backend(text),
    }
}

/// A UNIQUE or PRIMARY KEY violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Command>,
    batch_max: usize,
    metrics: &Metrics,
    health: &Health,
) -> Connection {
    let mut batch = Vec::with_capacity(batch_max);
    let mut stop = None;
    while stop.is_none() {
        match rx.blocking_recv() {
            Some(Command::Write(job)) => batch.push(job),
            Some(Command::Stop(ack)) => stop = Some(ack),
            None => break,
        }
        while stop.is_none() && batch.len() < batch_max {
            match rx.try_recv() {
                Ok(Command::Write(job)) => batch.push(job),
                Ok(Command::Stop(ack)) => stop = Some(ack),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let fault = commit_batch(&conn, &mut batch, metrics);
            match fault {
                Ok(()) => health.set(None),
                Err(Some(why)) => health.set(Some(why)),
                Err(None) => {}
            }
        }
    }
    if let Some(ack) = stop {
        _ = ack.send(());
    }
    conn
}

/// Runs `batch` in one transaction, commits, then completes every job with the outcome.
/// Returns `Ok` when the batch committed clean, `Err(Some(why))` when it or one of its jobs
/// failed for a lasting reason, `Err(None)` for any other failure (which says nothing about
/// the store's health).
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    metrics: &Metrics,
) -> Result<(), Option<String>> {
    let started = Instant::now();
    let size = batch.len();
    let mut completions = Vec::with_capacity(size);
    let mut fault = None;
    let begun = exec(conn, "BEGIN IMMEDIATE");
    if begun.is_err() {
        // Locked out past busy_timeout, or a lasting fault: every job fails with that error
        // (below) instead of being dropped, which its caller would read as `Closed`.
        completions.extend(batch.drain(..).map(|job| job(None)));
    }
    let outcome = begun.and_then(|()| {
        let mut counters = Counters::default();
        let mut ctx = WriteCtx {
            conn,
            now: crate::clock::now_ms(),
            counters: &mut counters,
            fault: None,
        };
        for job in batch.drain(..) {
            completions.push(job(Some(&mut ctx)));
        }
        fault = ctx.fault.take();
        counters.flush(conn).map_err(backend)?;
        exec(conn, "COMMIT")
    });
    batch.clear();
    if let Err(e) = &outcome {
        // The counters went with the batch: the next one reads them afresh.
        _ = exec(conn, "ROLLBACK");
        tracing::error!(error = %e, batch = size, "sqlite commit failed");
    }
    metrics.record_commit(size, started.elapsed());
    for complete in completions {
        complete(match &outcome {
            Ok(()) => Ok(()),
            Err(StoreError::Unavailable(why)) => Err(StoreError::Unavailable(why.clone())),
            Err(StoreError::Busy(why)) => Err(StoreError::Busy(why.clone())),
            Err(e) => Err(StoreError::Backend(e.to_string())),
        });
    }
    match outcome {
        Ok(()) if fault.is_none() => Ok(()),
        Err(StoreError::Unavailable(why)) => Err(Some(why)),
        _ => Err(fault),
    }
}
