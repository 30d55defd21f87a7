//! The operator's calls ([`AdminStore`]): invitations, disabling and deleting users, listings
//! and counts.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::accounts;
use super::rows::{self, USER_COLUMNS};
use super::writer::{WriteCtx, backend};
use crate::store::{
    AdminStore, DeletedUser, InviteRecord, Missing, NewInvite, SessionId, StoreError, StoreResult,
    StoreStats, UserId, UserRecord,
};

const INVITE_COLUMNS: &str = "id, uses, uses_left, created_at, expires_at, revoked_at IS NOT NULL";

fn invite(r: &rusqlite::Row<'_>) -> rusqlite::Result<InviteRecord> {
    Ok(InviteRecord {
        id: r.get(0)?,
        uses: r.get(1)?,
        uses_left: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked: r.get(5)?,
    })
}

/// Uses one use of the code, then inserts the user; an `Err` rolls the job's savepoint back,
/// so a taken username gives the use back.
fn create_user_invited(
    ctx: &mut WriteCtx<'_>,
    username: String,
    password_hash: String,
    code_hash: [u8; 32],
) -> StoreResult<UserRecord> {
    let used = ctx
        .conn
        .prepare_cached(
            "UPDATE invites SET uses_left = uses_left - 1
             WHERE code_hash = ?1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > ?2",
        )
        .and_then(|mut s| s.execute(params![&code_hash[..], ctx.now]))
        .map_err(backend)?;
    if used == 0 {
        return Err(StoreError::InvalidInvite);
    }
    accounts::create_user(ctx, username, password_hash)
}

fn list_users(
    conn: &Connection,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<UserRecord>> {
    // The range scan of `users_by_prefix`, starting past the cursor.
    let high = format!("{prefix}\u{10FFFF}");
    let after = after.unwrap_or("");
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username >= ?1 AND username < ?2
         AND username > ?3 ORDER BY username LIMIT ?4"
    ))?
    .query_map(params![prefix, high, after, limit], rows::user)?
    .collect()
}

fn revoke_all(ctx: &WriteCtx<'_>, user: UserId) -> StoreResult<Vec<SessionId>> {
    ctx.conn
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?1
             WHERE user_id = ?2 AND revoked_at IS NULL RETURNING id",
        )
        .and_then(|mut s| s.query_map(params![ctx.now, user], |r| r.get(0))?.collect())
        .map_err(backend)
}

fn set_disabled(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    disabled: bool,
) -> StoreResult<Vec<SessionId>> {
    let changed = if disabled {
        ctx.conn
            .prepare_cached(
                "UPDATE users SET disabled_at = COALESCE(disabled_at, ?1)
                 WHERE id = ?2 AND deleted_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![ctx.now, user]))
    } else {
        ctx.conn
            .prepare_cached(
                "UPDATE users SET disabled_at = NULL WHERE id = ?1 AND deleted_at IS NULL",
            )
            .and_then(|mut s| s.execute([user]))
    };
    if changed.map_err(backend)? == 0 {
        return Err(StoreError::NotFound(Missing::User));
    }
    if disabled {
        revoke_all(ctx, user)
    } else {
        Ok(Vec::new())
    }
}

fn delete_user(ctx: &mut WriteCtx<'_>, user: UserId) -> StoreResult<DeletedUser> {
    let found = accounts::user_by_id(ctx.conn, user).map_err(backend)?;
    if found.is_none_or(|u| u.deleted) {
        return Err(StoreError::NotFound(Missing::User));
    }
    let sessions = revoke_all(ctx, user)?;
    let mut peers: Vec<UserId> = ctx
        .conn
        .prepare_cached(
            "SELECT friend_id FROM friendships WHERE user_id = ?1
             UNION SELECT to_id FROM friend_requests WHERE from_id = ?1
             UNION SELECT from_id FROM friend_requests WHERE to_id = ?1
             UNION SELECT blocked FROM blocks WHERE blocker = ?1
             UNION SELECT blocker FROM blocks WHERE blocked = ?1
             UNION SELECT p.user_id FROM members m
                 JOIN conversations c ON c.id = m.conv_id AND c.kind = 'direct'
                 JOIN members p ON p.conv_id = m.conv_id AND p.user_id <> m.user_id
                 WHERE m.user_id = ?1",
        )
        .and_then(|mut s| s.query_map([user], |r| r.get(0))?.collect())
        .map_err(backend)?;
    peers.sort_unstable();
    ctx.conn
        .execute_batch(&format!(
            "DELETE FROM friendships WHERE user_id = {user} OR friend_id = {user};
             DELETE FROM friend_requests WHERE from_id = {user} OR to_id = {user};
             DELETE FROM blocks WHERE blocker = {user} OR blocked = {user};
             DELETE FROM members WHERE user_id = {user}
                 AND conv_id IN (SELECT id FROM conversations WHERE kind = 'group');"
        ))
        .map_err(backend)?;
    ctx.conn
        .prepare_cached(
            "UPDATE users SET username = 'deleted:' || id, password_hash = '', display_name = '',
             avatar_url = '', status_text = '', disabled_at = COALESCE(disabled_at, ?1),
             deleted_at = ?1 WHERE id = ?2",
        )
        .and_then(|mut s| s.execute(params![ctx.now, user]))
        .map_err(backend)?;
    Ok(DeletedUser { sessions, peers })
}

fn create_invite(ctx: &mut WriteCtx<'_>, new: NewInvite) -> StoreResult<InviteRecord> {
    let live: u32 = ctx
        .conn
        .prepare_cached(
            "SELECT COUNT(*) FROM invites
             WHERE revoked_at IS NULL AND uses_left > 0 AND expires_at > ?1",
        )
        .and_then(|mut s| s.query_row([ctx.now], |r| r.get(0)))
        .map_err(backend)?;
    if live >= new.max_live {
        return Err(StoreError::TooManyInvites);
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO invites (code_hash, uses, uses_left, created_at, expires_at)
             VALUES (?1, ?2, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                &new.code_hash[..],
                new.uses,
                ctx.now,
                new.expires_at
            ])
        })
        .map_err(backend)?;
    Ok(InviteRecord {
        id: ctx.conn.last_insert_rowid(),
        uses: new.uses,
        uses_left: new.uses,
        created_at: ctx.now,
        expires_at: new.expires_at,
        revoked: false,
    })
}

fn invites(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<InviteRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {INVITE_COLUMNS} FROM invites WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
    ))?
    .query_map(params![before.unwrap_or(i64::MAX), limit], invite)?
    .collect()
}

fn stats(conn: &Connection, now: i64) -> rusqlite::Result<StoreStats> {
    // Entries are counted as the sum of last seqs (gap-free from 1): one primary-key descent
    // per conversation instead of a scan of every message.
    conn.prepare_cached(
        "SELECT
            (SELECT COUNT(*) FROM users WHERE deleted_at IS NULL),
            (SELECT COUNT(*) FROM users WHERE deleted_at IS NULL AND disabled_at IS NOT NULL),
            (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1),
            (SELECT COUNT(*) FROM conversations WHERE kind = 'group' AND dissolved_at IS NULL),
            (SELECT COUNT(*) FROM conversations),
            (SELECT COALESCE(SUM(last_seq), 0) FROM conversations),
            (SELECT COUNT(*) FROM invites
                WHERE revoked_at IS NULL AND uses_left > 0 AND expires_at > ?1)",
    )?
    .query_row([now], |r| {
        Ok(StoreStats {
            users: r.get(0)?,
            disabled_users: r.get(1)?,
            sessions: r.get(2)?,
            groups: r.get(3)?,
            conversations: r.get(4)?,
            entries: r.get(5)?,
            live_invites: r.get(6)?,
        })
    })
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn create_user_invited(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: [u8; 32],
    ) -> StoreResult<UserRecord> {
        let (name, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |ctx| create_user_invited(ctx, name, hash, code_hash))
            .await
    }

    async fn list_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<UserRecord>> {
        let (prefix, after) = (prefix.to_owned(), after.map(str::to_owned));
        self.read(move |c| list_users(c, &prefix, after.as_deref(), limit))
            .await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> StoreResult<Vec<SessionId>> {
        self.write(move |ctx| set_disabled(ctx, user, disabled))
            .await
    }

    async fn delete_user(&self, user: UserId) -> StoreResult<DeletedUser> {
        self.write(move |ctx| delete_user(ctx, user)).await
    }

    async fn live_sessions(&self, user: UserId, now: i64) -> StoreResult<u64> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM sessions
                 WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
            )?
            .query_row(params![user, now], |r| r.get(0))
        })
        .await
    }

    async fn create_invite(&self, invite: NewInvite) -> StoreResult<InviteRecord> {
        self.write(move |ctx| create_invite(ctx, invite)).await
    }

    async fn invites(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<InviteRecord>> {
        self.read(move |c| invites(c, before, limit)).await
    }

    async fn revoke_invite(&self, id: i64) -> StoreResult<()> {
        self.write(move |ctx| {
            let n = ctx
                .conn
                .prepare_cached(
                    "UPDATE invites SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![ctx.now, id]))
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound(Missing::Invite))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn stats(&self, now: i64) -> StoreResult<StoreStats> {
        self.read(move |c| stats(c, now)).await
    }
}
