//! The cluster store: one PostgreSQL database shared by every node, through a connection
//! pool per handle (`deadpool-postgres` over `tokio-postgres`).
//!
//! Appends go through one task per handle ([`appender`]) that commits whatever is queued in
//! one pipelined transaction; every other write is its own transaction on a pooled
//! connection, and reads run on pooled connections outside any transaction (each statement
//! sees what was committed when it started). Every writer of a conversation's entries locks
//! the conversation's row first, which is what keeps seqs gap-free and in commit order across
//! nodes ([`messages`]). Migrations run at [`PostgresStore::open`] ([`schema`]).
//!
//! Connections are plain TCP (`NoTls`): for a database on loopback or a private network.

mod accounts;
mod appender;
mod errors;
mod groups;
mod messages;
mod rows;
mod schema;
mod social;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use self::appender::Appender;
use self::errors::db;
use super::{
    Amendment, Appended, ConvId, ConversationRecord, GroupChange, GroupRecord, MemberRecord,
    Missing, NewGroup, NewMessage, NewSession, PendingAppend, ProfilePatch, ProfileRecord,
    Relation, SessionId, SessionRecord, Social, Store, StoreError, StoreResult, StoredMessage,
    SystemEntry, UserId, UserRecord,
};
use crate::metrics::Metrics;

/// Runs `$body` (which uses the transaction `$tx` and the commit time `$now`) in a transaction
/// on a pooled connection: committed if it returns `Ok`, rolled back otherwise.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident, $now:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client
            .transaction()
            .await
            .map_err($crate::store::postgres::errors::db)?;
        let $now = $crate::clock::now_ms();
        match $body {
            Ok(value) => $tx
                .commit()
                .await
                .map(|()| value)
                .map_err($crate::store::postgres::errors::db),
            Err(e) => {
                _ = $tx.rollback().await;
                Err(e)
            }
        }
    }};
}

mod admin;
mod media;

/// Options for [`PostgresStore::open`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections this handle opens (the append task uses one at a time).
    pub pool_size: usize,
    /// Most appends per transaction.
    pub write_batch_max: usize,
    /// How long to wait for a connection (to be made, or to come free in the pool) before a
    /// call fails with `Unavailable`.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            write_batch_max: 256,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether the last append batch failed for a lasting reason (the database unreachable).
#[derive(Debug, Default)]
pub(super) struct Health {
    fault: Mutex<Option<String>>,
}

impl Health {
    fn set(&self, fault: Option<String>) {
        let mut current = self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (&*current, &fault) {
            (None, Some(why)) => tracing::error!(error = %why, "the store cannot write"),
            (Some(_), None) => tracing::info!("the store writes again"),
            _ => {}
        }
        *current = fault;
    }
}

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: Pool,
    appender: Appender,
    health: Arc<Health>,
    closed: AtomicBool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, or the key-value
    /// form), applies migrations and starts the append task. Fails with `Unavailable` when
    /// the database cannot be reached within the connect timeout.
    pub async fn open(
        url: &str,
        options: &PostgresOptions,
        metrics: Arc<Metrics>,
    ) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("banter");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .wait_timeout(Some(options.connect_timeout * 2))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("connection pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(errors::pool)?;
            schema::migrate(&mut client).await?;
        }
        let health = Arc::new(Health::default());
        let appender = Appender::start(
            pool.clone(),
            options.write_batch_max,
            metrics,
            Arc::clone(&health),
        );
        Ok(Self {
            pool,
            appender,
            health,
            closed: AtomicBool::new(false),
        })
    }

    /// A pooled connection; `Closed` after [`Store::close`].
    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.pool.get().await.map_err(errors::pool)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<UserRecord> {
        let c = self.client().await?;
        accounts::create_user(&c, crate::clock::now_ms(), username, password_hash).await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        accounts::user_by_name(&self.client().await?, username).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        accounts::user_by_id(&self.client().await?, id).await
    }

    async fn users_by_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<UserRecord>> {
        accounts::users_by_prefix(&self.client().await?, prefix, limit).await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
        accounts::one_or_more(
            &self.client().await?,
            Missing::User,
            "UPDATE users SET password_hash = $1 WHERE id = $2",
            &[&password_hash, &user],
        )
        .await
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<SessionRecord> {
        accounts::create_session(&self.client().await?, session).await
    }

    async fn session_by_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>> {
        accounts::session_by_token(&self.client().await?, &token_hash).await
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<SessionRecord>> {
        accounts::sessions_of(&self.client().await?, user).await
    }

    async fn revoke_session(&self, user: UserId, session: SessionId) -> StoreResult<()> {
        accounts::one_or_more(
            &self.client().await?,
            Missing::Session,
            "UPDATE sessions SET revoked_at = $1
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            &[&crate::clock::now_ms(), &session, &user],
        )
        .await
    }

    async fn trim_sessions(&self, user: UserId, keep: u32) -> StoreResult<Vec<SessionId>> {
        let c = self.client().await?;
        accounts::trim_sessions(&c, crate::clock::now_ms(), user, keep).await
    }

    async fn revoke_other_sessions(
        &self,
        user: UserId,
        keep: SessionId,
    ) -> StoreResult<Vec<SessionId>> {
        accounts::revoke_returning(
            &self.client().await?,
            "UPDATE sessions SET revoked_at = $1
             WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL RETURNING id",
            &[&crate::clock::now_ms(), &user, &keep],
        )
        .await
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> StoreResult<ConvId> {
        let key = format!("{}:{}", a.min(b), a.max(b));
        if let Some(id) = accounts::direct_by_key(&self.client().await?, &key).await? {
            return Ok(id);
        }
        in_transaction!(self, |tx, now| accounts::create_direct(
            &tx, now, &key, a, b
        )
        .await)
    }

    async fn members(&self, conv: ConvId) -> StoreResult<Vec<UserId>> {
        accounts::member_ids(&self.client().await?, conv).await
    }

    async fn queue_append(&self, message: NewMessage) -> StoreResult<PendingAppend> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let committed = self.appender.queue(message).await?;
        Ok(Box::pin(async move {
            // The task dropped the job unanswered only when it stopped before running it.
            committed.await.unwrap_or(Err(StoreError::Closed))
        }))
    }

    async fn messages_after(
        &self,
        conv: ConvId,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        messages::after(&self.client().await?, conv, after, limit, max_bytes).await
    }

    async fn messages_before(
        &self,
        conv: ConvId,
        before: Option<u64>,
        min_seq: u64,
        limit: u32,
        max_bytes: usize,
    ) -> StoreResult<Vec<StoredMessage>> {
        let c = self.client().await?;
        messages::before(&c, conv, before, min_seq, limit, max_bytes).await
    }

    async fn message(&self, conv: ConvId, seq: u64) -> StoreResult<Option<StoredMessage>> {
        messages::by_seq(&self.client().await?, conv, seq).await
    }

    async fn amend(
        &self,
        conv: ConvId,
        seq: u64,
        sender: UserId,
        client_msg_id: String,
        amendment: Amendment,
    ) -> StoreResult<Appended> {
        let target = (conv, seq, sender);
        let result = in_transaction!(self, |tx, now| messages::amend(
            &tx,
            now,
            target,
            &client_msg_id,
            &amendment
        )
        .await);
        match result {
            // Another writer took the key meanwhile (in another conversation): theirs is the
            // original, as for an append.
            Err(StoreError::Conflict(why)) => {
                let c = self.client().await?;
                match messages::find_by_client_id(&c, sender, &client_msg_id).await? {
                    Some(message) => Ok(Appended {
                        message,
                        duplicate: true,
                    }),
                    None => Err(StoreError::Conflict(why)),
                }
            }
            other => other,
        }
    }

    async fn last_seq(&self, conv: ConvId) -> StoreResult<u64> {
        messages::last_seq(&self.client().await?, conv).await
    }

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationRecord>> {
        messages::conversations_of(&self.client().await?, user).await
    }

    async fn set_read_cursor(&self, user: UserId, conv: ConvId, seq: u64) -> StoreResult<u64> {
        accounts::set_read_cursor(&self.client().await?, user, conv, seq).await
    }

    async fn profiles(&self, users: &[UserId]) -> StoreResult<Vec<ProfileRecord>> {
        social::profiles(&self.client().await?, users).await
    }

    async fn update_profile(
        &self,
        user: UserId,
        patch: ProfilePatch,
    ) -> StoreResult<ProfileRecord> {
        social::update_profile(&self.client().await?, user, patch).await
    }

    async fn set_last_seen(&self, user: UserId, ts: i64) -> StoreResult<()> {
        accounts::one_or_more(
            &self.client().await?,
            Missing::User,
            "UPDATE users SET last_seen_at = $1 WHERE id = $2",
            &[&ts, &user],
        )
        .await
    }

    async fn relation(&self, a: UserId, b: UserId) -> StoreResult<Relation> {
        social::relation(&self.client().await?, a, b).await
    }

    async fn social(&self, user: UserId) -> StoreResult<Social> {
        social::social(&self.client().await?, user).await
    }

    async fn contacts(&self, user: UserId) -> StoreResult<Vec<UserId>> {
        social::contacts(&self.client().await?, user).await
    }

    async fn create_friend_request(&self, from: UserId, to: UserId) -> StoreResult<()> {
        let c = self.client().await?;
        social::create_request(&c, crate::clock::now_ms(), from, to).await
    }

    async fn delete_friend_request(&self, from: UserId, to: UserId) -> StoreResult<()> {
        social::delete_request(&self.client().await?, from, to).await
    }

    async fn make_friends(&self, a: UserId, b: UserId) -> StoreResult<()> {
        in_transaction!(self, |tx, now| social::make_friends(&tx, now, a, b).await)
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> StoreResult<()> {
        in_transaction!(self, |tx, _now| social::remove_friend(&tx, a, b).await)
    }

    async fn block(&self, blocker: UserId, blocked: UserId) -> StoreResult<()> {
        in_transaction!(self, |tx, now| social::block(&tx, now, blocker, blocked)
            .await)
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> StoreResult<()> {
        social::unblock(&self.client().await?, blocker, blocked).await
    }

    async fn create_group(&self, group: NewGroup) -> StoreResult<(GroupRecord, StoredMessage)> {
        in_transaction!(self, |tx, now| groups::create(&tx, now, group).await)
    }

    async fn group(&self, conv: ConvId) -> StoreResult<Option<GroupRecord>> {
        groups::group_by_id(&self.client().await?, conv).await
    }

    async fn groups_of(&self, user: UserId) -> StoreResult<Vec<GroupRecord>> {
        groups::groups_of(&self.client().await?, user).await
    }

    async fn member(&self, conv: ConvId, user: UserId) -> StoreResult<Option<MemberRecord>> {
        groups::member(&self.client().await?, conv, user).await
    }

    async fn member_records(&self, conv: ConvId) -> StoreResult<Vec<MemberRecord>> {
        groups::members(&self.client().await?, conv).await
    }

    async fn change_group(
        &self,
        conv: ConvId,
        change: GroupChange,
        entry: SystemEntry,
    ) -> StoreResult<StoredMessage> {
        in_transaction!(self, |tx, now| groups::change(
            &tx, now, conv, change, entry
        )
        .await)
    }

    async fn writable(&self) -> StoreResult<()> {
        // A round trip to the database answers for it: a node whose database is unreachable
        // is not ready, whatever its last write did.
        let probe = match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.map(drop).map_err(db),
            Err(e) => Err(e),
        };
        match probe {
            Ok(()) => {
                self.health.set(None);
                Ok(())
            }
            Err(StoreError::Closed) => Err(StoreError::Closed),
            Err(e) => {
                let why = match e {
                    StoreError::Unavailable(why) | StoreError::Backend(why) => why,
                    other => other.to_string(),
                };
                self.health.set(Some(why.clone()));
                Err(StoreError::Unavailable(why))
            }
        }
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Every append queued before this commits first; later ones get `Closed`.
        self.appender.stop().await;
        self.pool.close();
    }
}
