//! Users, login sessions and direct conversations.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, SESSION_COLUMNS, USER_COLUMNS, is_unique_violation};
use super::writer::{WriteCtx, backend};
use crate::store::{
    ConvId, Missing, NewSession, SessionId, SessionRecord, StoreError, StoreResult, UserId,
    UserRecord,
};

pub(super) fn create_user(
    ctx: &mut WriteCtx<'_>,
    username: String,
    password_hash: String,
) -> StoreResult<UserRecord> {
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
            disabled: false,
            deleted: false,
        }),
        Err(e) if is_unique_violation(&e) => Err(StoreError::UsernameTaken),
        Err(e) => Err(backend(e)),
    }
}

pub(super) fn user_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<UserRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
    ))?
    .query_row([name], rows::user)
    .optional()
}

pub(super) fn user_by_id(conn: &Connection, id: UserId) -> rusqlite::Result<Option<UserRecord>> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], rows::user)
        .optional()
}

pub(super) fn users_by_prefix(
    conn: &Connection,
    prefix: &str,
    limit: u32,
) -> rusqlite::Result<Vec<UserRecord>> {
    // A range scan on the unique index instead of LIKE, which would need escaping and could not
    // use the index with a bound parameter.
    let high = format!("{prefix}\u{10FFFF}");
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username >= ?1 AND username < ?2
         AND deleted_at IS NULL ORDER BY username LIMIT ?3"
    ))?
    .query_map(params![prefix, high, limit], rows::user)?
    .collect()
}

/// Runs an UPDATE/DELETE; `NotFound(missing)` when it touched no row.
fn one_or_more(
    ctx: &WriteCtx<'_>,
    missing: Missing,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<()> {
    let n = ctx
        .conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(backend)?;
    if n == 0 {
        Err(StoreError::NotFound(missing))
    } else {
        Ok(())
    }
}

pub(super) fn set_password(ctx: &mut WriteCtx<'_>, user: UserId, hash: String) -> StoreResult<()> {
    one_or_more(
        ctx,
        Missing::User,
        "UPDATE users SET password_hash = ?1 WHERE id = ?2",
        params![hash, user],
    )
}

pub(super) fn set_last_seen(ctx: &mut WriteCtx<'_>, user: UserId, ts: i64) -> StoreResult<()> {
    one_or_more(
        ctx,
        Missing::User,
        "UPDATE users SET last_seen_at = ?1 WHERE id = ?2",
        params![ts, user],
    )
}

/// Refuses (`NotFound`) a disabled or deleted user in the same statement, so that a login
/// racing a disable cannot leave a live session behind.
pub(super) fn create_session(ctx: &mut WriteCtx<'_>, s: NewSession) -> StoreResult<SessionRecord> {
    let inserted = ctx
        .conn
        .prepare_cached(
            "INSERT INTO sessions (user_id, token_hash, device, created_at, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5 FROM users
             WHERE id = ?1 AND disabled_at IS NULL AND deleted_at IS NULL",
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
    if inserted == 0 {
        return Err(StoreError::NotFound(Missing::User));
    }
    Ok(SessionRecord {
        id: ctx.conn.last_insert_rowid(),
        user_id: s.user_id,
        device: s.device,
        created_at: s.created_at,
        expires_at: s.expires_at,
    })
}

pub(super) fn session_by_token(
    conn: &Connection,
    token_hash: &[u8; 32],
) -> rusqlite::Result<Option<SessionRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?1 AND revoked_at IS NULL"
    ))?
    .query_row([&token_hash[..]], rows::session)
    .optional()
}

pub(super) fn sessions_of(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<SessionRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY id"
    ))?
    .query_map([user], rows::session)?
    .collect()
}

pub(super) fn revoke_session(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    session: SessionId,
) -> StoreResult<()> {
    one_or_more(
        ctx,
        Missing::Session,
        "UPDATE sessions SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
        params![ctx.now, session, user],
    )
}

/// One statement, so that concurrent logins cannot together leave more than `keep`.
pub(super) fn trim_sessions(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    keep: u32,
) -> StoreResult<Vec<SessionId>> {
    revoke_returning(
        ctx,
        "UPDATE sessions SET revoked_at = ?1
         WHERE user_id = ?2 AND revoked_at IS NULL AND id NOT IN (
             SELECT id FROM sessions WHERE user_id = ?2 AND revoked_at IS NULL
             ORDER BY id DESC LIMIT ?3)
         RETURNING id",
        params![ctx.now, user, keep],
    )
}

pub(super) fn revoke_other_sessions(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    keep: SessionId,
) -> StoreResult<Vec<SessionId>> {
    revoke_returning(
        ctx,
        "UPDATE sessions SET revoked_at = ?1
         WHERE user_id = ?2 AND id <> ?3 AND revoked_at IS NULL RETURNING id",
        params![ctx.now, user, keep],
    )
}

pub(super) fn direct_by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<ConvId>> {
    conn.prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

pub(super) fn create_direct(
    ctx: &mut WriteCtx<'_>,
    key: &str,
    a: UserId,
    b: UserId,
) -> StoreResult<ConvId> {
    // Re-check inside the writer: another request may have created it meanwhile.
    if let Some(id) = direct_by_key(ctx.conn, key).map_err(backend)? {
        return Ok(id);
    }
    for user in [a, b] {
        let found = user_by_id(ctx.conn, user).map_err(backend)?;
        if found.is_none_or(|u| u.deleted) {
            return Err(StoreError::NotFound(Missing::User));
        }
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', ?1, ?2)",
        )
        .and_then(|mut s| s.execute(params![key, ctx.now]))
        .map_err(backend)?;
    let id = ctx.conn.last_insert_rowid();
    let mut add = ctx
        .conn
        .prepare_cached("INSERT INTO members (conv_id, user_id, joined_at) VALUES (?1, ?2, ?3)")
        .map_err(backend)?;
    for user in [a, b] {
        add.execute(params![id, user, ctx.now]).map_err(backend)?;
    }
    Ok(id)
}

pub(super) fn member_ids(conn: &Connection, conv: ConvId) -> rusqlite::Result<Vec<UserId>> {
    conn.prepare_cached("SELECT user_id FROM members WHERE conv_id = ?1 ORDER BY user_id")?
        .query_map([conv], |r| r.get(0))?
        .collect()
}

pub(super) fn set_read_cursor(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    conv: ConvId,
    seq: u64,
) -> StoreResult<u64> {
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
        .ok_or(StoreError::NotFound(Missing::Member))
}

/// Runs a session-revoking `UPDATE … RETURNING id` and collects the revoked ids.
fn revoke_returning(
    ctx: &WriteCtx<'_>,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<SessionId>> {
    ctx.conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_map(params, |r| r.get(0))?.collect())
        .map_err(backend)
}
