//! The embedded store: one SQLite file in WAL mode, one writer thread with group commit
//! ([`writer`]), and a small pool of read-only connections for queries.
//!
//! Readers never block the writer and see only committed data (WAL snapshot isolation).

mod schema;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::Semaphore;

use self::writer::{WriteCtx, Writer, backend};
use super::{
    Appended, ConvId, ConversationRecord, NewMessage, NewSession, SessionId, SessionRecord, Store,
    StoreError, StoreResult, StoredMessage, UserId, UserRecord,
};
use crate::config::SqliteSync;
use crate::metrics::Metrics;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "banter.db";

/// Options for [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most writes per transaction.
    pub write_batch_max: usize,
    /// Durability mode.
    pub synchronous: SqliteSync,
    /// Read-only connections.
    pub readers: usize,
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per pooled reader: a query waits here, not on the mutex.
    reader_permits: Semaphore,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/banter.db`, applies migrations and starts the writer.
    pub fn open(dir: &Path, options: &SqliteOptions, metrics: Arc<Metrics>) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(backend)?;
        let sync = match options.synchronous {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = ON;"
        ))
        .map_err(backend)?;
        schema::migrate(&mut conn).map_err(backend)?;
        let readers = (0..options.readers)
            .map(|_| {
                let c = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.execute_batch("PRAGMA busy_timeout = 5000;")?;
                Ok(c)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(Self {
            writer: Writer::start(conn, options.write_batch_max, metrics),
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Semaphore::new(options.readers),
        })
    }

    /// Runs a query on a pooled read-only connection, off the async threads.
    async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .lock()
                .expect("reader pool lock")
                .pop()
                .expect("a permit guarantees a pooled reader");
            let result = f(&conn);
            pool.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task: {e}")))?
        .map_err(backend)
    }

    async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> StoreResult<R> + Send + 'static,
    {
        self.writer.write(f).await
    }
}

const USER_COLUMNS: &str = "id, username, password_hash, created_at";
const SESSION_COLUMNS: &str = "id, user_id, device, created_at, expires_at";
const MESSAGE_COLUMNS: &str = "id, conv_id, seq, sender, client_msg_id, body, ts";

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: r.get(3)?,
    })
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
    })
}

fn message_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        conv: r.get(1)?,
        seq: r.get(2)?,
        sender: r.get(3)?,
        client_msg_id: r.get(4)?,
        text: r.get(5)?,
        ts: r.get(6)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// The message `(sender, client_msg_id)` already stored, if any.
fn find_by_client_id(
    conn: &Connection,
    sender: UserId,
    client_msg_id: &str,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ?1 AND client_msg_id = ?2"
    ))?
    .query_row(params![sender, client_msg_id], message_row)
    .optional()
}

fn append_in(ctx: &mut WriteCtx<'_>, m: NewMessage) -> StoreResult<Appended> {
    if let Some(message) =
        find_by_client_id(ctx.conn, m.sender, &m.client_msg_id).map_err(backend)?
    {
        return Ok(Appended {
            message,
            duplicate: true,
        });
    }
    let seq = ctx.last_seq(m.conv).map_err(backend)? + 1;
    let id = ctx.next_message_id();
    let ts = ctx.now;
    ctx.conn
        .prepare_cached(
            "INSERT INTO messages (conv_id, seq, id, sender, client_msg_id, body, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.conv,
                seq,
                id,
                m.sender,
                m.client_msg_id,
                m.text,
                ts
            ])
        })
        .map_err(backend)?;
    ctx.set_last_seq(m.conv, seq);
    Ok(Appended {
        message: StoredMessage {
            id,
            conv: m.conv,
            seq,
            sender: m.sender,
            client_msg_id: m.client_msg_id,
            text: m.text,
            ts,
        },
        duplicate: false,
    })
}

fn last_message(conn: &Connection, conv: ConvId) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([conv], message_row)
    .optional()
}

fn conversations_of(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<ConversationRecord>> {
    let mut list = conn.prepare_cached(
        "SELECT c.id, c.kind, c.created_at, m.read_seq FROM members m
         JOIN conversations c ON c.id = m.conv_id WHERE m.user_id = ?1",
    )?;
    let mut peer = conn.prepare_cached(
        "SELECT u.id, u.username FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.conv_id = ?1 AND m.user_id <> ?2 LIMIT 1",
    )?;
    let rows = list
        .query_map([user], |r| {
            Ok((
                r.get::<_, ConvId>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, kind, created_at, read_seq) in rows {
        let peer = if kind == "direct" {
            peer.query_row(params![id, user], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
        } else {
            None
        };
        let last_message = last_message(conn, id)?;
        let updated_at = last_message.as_ref().map_or(created_at, |m| m.ts);
        out.push(ConversationRecord {
            id,
            peer,
            last_message,
            read_seq,
            updated_at,
        });
    }
    out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<UserRecord> {
        let (username, password_hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |ctx| {
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![username, password_hash, ctx.now]));
            match inserted {
                Ok(_) => Ok(UserRecord {
                    id: ctx.conn.last_insert_rowid(),
                    username,
                    password_hash,
                    created_at: ctx.now,
                }),
                Err(e) if is_unique_violation(&e) => Err(StoreError::UsernameTaken),
                Err(e) => Err(backend(e)),
            }
        })
        .await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
            ))?
            .query_row([username], user_row)
            .optional()
        })
        .await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row([id], user_row)
                .optional()
        })
        .await
    }

    async fn users_by_prefix(&self, prefix: &str, limit: u32) -> StoreResult<Vec<UserRecord>> {
        // Range scan on the unique index instead of LIKE, which would need escaping and
        // could not use the index with a bound parameter.
        let low = prefix.to_owned();
        let high = format!("{prefix}\u{10FFFF}");
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE username >= ?1 AND username < ?2
                 ORDER BY username LIMIT ?3"
            ))?
            .query_map(params![low, high, limit], user_row)?
            .collect()
        })
        .await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> StoreResult<()> {
        let hash = password_hash.to_owned();
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached("UPDATE users SET password_hash = ?1 WHERE id = ?2")
                .and_then(|mut s| s.execute(params![hash, user]))
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn create_session(&self, s: NewSession) -> StoreResult<SessionRecord> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT INTO sessions (user_id, token_hash, device, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        s.user_id,
                        &s.token_hash[..],
                        s.device,
                        s.created_at,
                        s.expires_at
                    ])
                })
                .map_err(backend)?;
            Ok(SessionRecord {
                id: ctx.conn.last_insert_rowid(),
                user_id: s.user_id,
                device: s.device,
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
        })
        .await
    }

    async fn session_by_token(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions
                 WHERE token_hash = ?1 AND revoked_at IS NULL"
            ))?
            .query_row([&token_hash[..]], session_row)
            .optional()
        })
        .await
    }

    async fn sessions_of(&self, user: UserId) -> StoreResult<Vec<SessionRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions
                 WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY id"
            ))?
            .query_map([user], session_row)?
            .collect()
        })
        .await
    }

    async fn revoke_session(&self, user: UserId, session: SessionId) -> StoreResult<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE sessions SET revoked_at = ?1
                     WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![ctx.now, session, user]))
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn revoke_other_sessions(
        &self,
        user: UserId,
        keep: SessionId,
    ) -> StoreResult<Vec<SessionId>> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "UPDATE sessions SET revoked_at = ?1
                     WHERE user_id = ?2 AND id <> ?3 AND revoked_at IS NULL RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_map(params![ctx.now, user, keep], |r| r.get(0))?
                        .collect()
                })
                .map_err(backend)
        })
        .await
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> StoreResult<ConvId> {
        let key = format!("{}:{}", a.min(b), a.max(b));
        let probe = key.clone();
        let existing = self
            .read(move |c| {
                c.prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")?
                    .query_row([probe], |r| r.get(0))
                    .optional()
            })
            .await?;
        if let Some(id) = existing {
            return Ok(id);
        }
        self.write(move |ctx| {
            let c = ctx.conn;
            // Re-check inside the writer: another request may have created it meanwhile.
            let found: Option<ConvId> = c
                .prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")
                .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
                .map_err(backend)?;
            if let Some(id) = found {
                return Ok(id);
            }
            for user in [a, b] {
                let known: Option<i64> = c
                    .prepare_cached("SELECT id FROM users WHERE id = ?1")
                    .and_then(|mut s| s.query_row([user], |r| r.get(0)).optional())
                    .map_err(backend)?;
                if known.is_none() {
                    return Err(StoreError::NotFound);
                }
            }
            c.prepare_cached(
                "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![key, ctx.now]))
            .map_err(backend)?;
            let id = c.last_insert_rowid();
            let mut add = c
                .prepare_cached(
                    "INSERT INTO members (conv_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(backend)?;
            for user in [a, b] {
                add.execute(params![id, user, ctx.now]).map_err(backend)?;
            }
            Ok(id)
        })
        .await
    }

    async fn members(&self, conv: ConvId) -> StoreResult<Vec<UserId>> {
        self.read(move |c| {
            c.prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 ORDER BY user_id")?
                .query_map([conv], |r| r.get(0))?
                .collect()
        })
        .await
    }

    async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        self.write(move |ctx| append_in(ctx, message)).await
    }

    async fn messages_after(
        &self,
        conv: ConvId,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3"
            ))?
            .query_map(params![conv, after, limit], message_row)?
            .collect()
        })
        .await
    }

    async fn messages_before(
        &self,
        conv: ConvId,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>> {
        let before = before.unwrap_or(u64::MAX >> 1);
        let mut page: Vec<StoredMessage> = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3"
                ))?
                .query_map(params![conv, before, limit], message_row)?
                .collect()
            })
            .await?;
        page.reverse();
        Ok(page)
    }

    async fn last_seq(&self, conv: ConvId) -> StoreResult<u64> {
        self.read(move |c| {
            c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv_id = ?1")?
                .query_row([conv], |r| r.get(0))
        })
        .await
    }

    async fn conversations_of(&self, user: UserId) -> StoreResult<Vec<ConversationRecord>> {
        self.read(move |c| conversations_of(c, user)).await
    }

    async fn set_read_cursor(&self, user: UserId, conv: ConvId, seq: u64) -> StoreResult<u64> {
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "UPDATE members SET read_seq = MAX(read_seq, ?1)
                     WHERE conv_id = ?2 AND user_id = ?3 RETURNING read_seq",
                )
                .and_then(|mut s| {
                    s.query_row(params![seq, conv, user], |r| r.get(0))
                        .optional()
                })
                .map_err(backend)?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn count_messages(&self, conv: ConvId) -> StoreResult<u64> {
        self.read(move |c| {
            c.prepare_cached("SELECT COUNT(*) FROM messages WHERE conv_id = ?1")?
                .query_row([conv], |r| r.get(0))
        })
        .await
    }

    async fn close(&self) {
        self.writer.close().await;
    }
}
