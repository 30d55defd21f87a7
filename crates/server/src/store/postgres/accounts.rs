//! Users, login sessions, direct conversations and read cursors.

use deadpool_postgres::GenericClient;

use super::errors::{db, is_unique_violation};
use super::rows::{self, SESSION_COLUMNS, USER_COLUMNS, seq_of, seq_param};
use crate::store::{
    ConvId, Missing, NewSession, SessionId, SessionRecord, StoreError, StoreResult, UserId,
    UserRecord,
};

pub(super) async fn create_user(
    c: &impl GenericClient,
    now: i64,
    username: &str,
    password_hash: &str,
) -> StoreResult<UserRecord> {
    let inserted = c
        .query_one(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)
             RETURNING id",
            &[&username, &password_hash, &now],
        )
        .await;
    match inserted {
        Ok(row) => Ok(UserRecord {
            id: row.get(0),
            username: username.to_owned(),
            password_hash: password_hash.to_owned(),
            created_at: now,
            disabled: false,
            deleted: false,
        }),
        Err(e) if is_unique_violation(&e) => Err(StoreError::UsernameTaken),
        Err(e) => Err(db(e)),
    }
}

pub(super) async fn user_by_name(
    c: &impl GenericClient,
    name: &str,
) -> StoreResult<Option<UserRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .await
        .map_err(db)?;
    let row = c.query_opt(&stmt, &[&name]).await.map_err(db)?;
    Ok(row.as_ref().map(rows::user))
}

pub(super) async fn user_by_id(
    c: &impl GenericClient,
    id: UserId,
) -> StoreResult<Option<UserRecord>> {
    let stmt = c
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .await
        .map_err(db)?;
    let row = c.query_opt(&stmt, &[&id]).await.map_err(db)?;
    Ok(row.as_ref().map(rows::user))
}

/// The upper bound of the username range that starts with `prefix` (a range scan on the
/// unique index, in the `C` collation, instead of LIKE and its escaping).
pub(super) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

pub(super) async fn users_by_prefix(
    c: &impl GenericClient,
    prefix: &str,
    limit: u32,
) -> StoreResult<Vec<UserRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username >= $1 AND username < $2
             AND deleted_at IS NULL ORDER BY username LIMIT $3"
        ))
        .await
        .map_err(db)?;
    let rows = c
        .query(&stmt, &[&prefix, &prefix_end(prefix), &i64::from(limit)])
        .await
        .map_err(db)?;
    Ok(rows.iter().map(rows::user).collect())
}

/// Runs an UPDATE/DELETE; `NotFound(missing)` when it touched no row.
pub(super) async fn one_or_more(
    c: &impl GenericClient,
    missing: Missing,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<()> {
    match c.execute(sql, params).await.map_err(db)? {
        0 => Err(StoreError::NotFound(missing)),
        _ => Ok(()),
    }
}

/// Refuses (`NotFound`) a disabled or deleted user in the same statement, which takes a share
/// lock on the user's row: a disable in flight is waited for and then seen, and a disable
/// that comes after waits for this session and then revokes it.
pub(super) async fn create_session(
    c: &impl GenericClient,
    s: NewSession,
) -> StoreResult<SessionRecord> {
    let row = c
        .query_opt(
            "INSERT INTO sessions (user_id, token_hash, device, created_at, expires_at)
             SELECT u.id, $2, $3, $4, $5 FROM
                 (SELECT id FROM users
                  WHERE id = $1 AND disabled_at IS NULL AND deleted_at IS NULL FOR SHARE) u
             RETURNING id",
            &[
                &s.user_id,
                &&s.token_hash[..],
                &s.device,
                &s.created_at,
                &s.expires_at,
            ],
        )
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound(Missing::User))?;
    Ok(SessionRecord {
        id: row.get(0),
        user_id: s.user_id,
        device: s.device,
        created_at: s.created_at,
        expires_at: s.expires_at,
    })
}

pub(super) async fn session_by_token(
    c: &impl GenericClient,
    token_hash: &[u8; 32],
) -> StoreResult<Option<SessionRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .await
        .map_err(db)?;
    let row = c.query_opt(&stmt, &[&&token_hash[..]]).await.map_err(db)?;
    Ok(row.as_ref().map(rows::session))
}

pub(super) async fn sessions_of(
    c: &impl GenericClient,
    user: UserId,
) -> StoreResult<Vec<SessionRecord>> {
    let rows = c
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL
                 ORDER BY id"
            ),
            &[&user],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(rows::session).collect())
}

/// Runs a session-revoking `UPDATE … RETURNING id` and collects the revoked ids.
pub(super) async fn revoke_returning(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<Vec<SessionId>> {
    let rows = c.query(sql, params).await.map_err(db)?;
    let mut ids: Vec<SessionId> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// One statement, so that concurrent logins cannot together leave more than `keep`.
pub(super) async fn trim_sessions(
    c: &impl GenericClient,
    now: i64,
    user: UserId,
    keep: u32,
) -> StoreResult<Vec<SessionId>> {
    revoke_returning(
        c,
        "UPDATE sessions SET revoked_at = $1
         WHERE user_id = $2 AND revoked_at IS NULL AND id NOT IN (
             SELECT id FROM sessions WHERE user_id = $2 AND revoked_at IS NULL
             ORDER BY id DESC LIMIT $3)
         RETURNING id",
        &[&now, &user, &i64::from(keep)],
    )
    .await
}

pub(super) async fn direct_by_key(
    c: &impl GenericClient,
    key: &str,
) -> StoreResult<Option<ConvId>> {
    let row = c
        .query_opt(
            "SELECT id FROM conversations WHERE direct_key = $1",
            &[&key],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| r.get(0)))
}

/// Creates the direct conversation of `a` and `b` unless another writer did: the unique key
/// decides (a concurrent insert of it is waited for), and the loser reads the winner's.
pub(super) async fn create_direct(
    c: &impl GenericClient,
    now: i64,
    key: &str,
    a: UserId,
    b: UserId,
) -> StoreResult<ConvId> {
    for user in [a, b] {
        let found = user_by_id(c, user).await?;
        if found.is_none_or(|u| u.deleted) {
            return Err(StoreError::NotFound(Missing::User));
        }
    }
    let created = c
        .query_opt(
            "INSERT INTO conversations (kind, direct_key, created_at) VALUES ('direct', $1, $2)
             ON CONFLICT (direct_key) DO NOTHING RETURNING id",
            &[&key, &now],
        )
        .await
        .map_err(db)?;
    let Some(row) = created else {
        return direct_by_key(c, key)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("direct conversation {key}")));
    };
    let id: ConvId = row.get(0);
    c.execute(
        "INSERT INTO members (conv_id, user_id, joined_at) VALUES ($1, $2, $4), ($1, $3, $4)",
        &[&id, &a, &b, &now],
    )
    .await
    .map_err(db)?;
    Ok(id)
}

pub(super) async fn member_ids(c: &impl GenericClient, conv: ConvId) -> StoreResult<Vec<UserId>> {
    let rows = c
        .query(
            "SELECT user_id FROM members WHERE conv_id = $1 ORDER BY user_id",
            &[&conv],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn set_read_cursor(
    c: &impl GenericClient,
    user: UserId,
    conv: ConvId,
    seq: u64,
) -> StoreResult<u64> {
    let row = c
        .query_opt(
            "UPDATE members SET read_seq = GREATEST(read_seq, $1)
             WHERE conv_id = $2 AND user_id = $3 RETURNING read_seq",
            &[&seq_param(seq), &conv, &user],
        )
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound(Missing::Member))?;
    Ok(seq_of(row.get(0)))
}
