//! The operator's calls ([`AdminStore`]): invitations, disabling and deleting users, listings
//! and counts.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::PostgresStore;
use super::accounts::{self, prefix_end, revoke_returning};
use super::errors::db;
use super::rows::{self, USER_COLUMNS};
use crate::store::{
    AdminStore, DeletedUser, InviteRecord, Missing, NewInvite, SessionId, StoreError, StoreResult,
    StoreStats, UserId, UserRecord,
};

const INVITE_COLUMNS: &str = "id, uses, uses_left, created_at, expires_at, revoked_at IS NOT NULL";
/// Serialises invitation creation across handles, so that `max_live` holds under races.
const INVITE_LOCK: i64 = 0x0062_616e_7465_7202;

fn invite(r: &tokio_postgres::Row) -> InviteRecord {
    InviteRecord {
        id: r.get(0),
        uses: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
        uses_left: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
        created_at: r.get(3),
        expires_at: r.get(4),
        revoked: r.get(5),
    }
}

/// Uses one use of the code, then inserts the user, in the caller's transaction: a taken
/// username rolls the use back with it.
async fn create_user_invited(
    c: &impl GenericClient,
    now: i64,
    username: &str,
    password_hash: &str,
    code_hash: [u8; 32],
) -> StoreResult<UserRecord> {
    let used = c
        .execute(
            "UPDATE invites SET uses_left = uses_left - 1
             WHERE code_hash = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2",
            &[&&code_hash[..], &now],
        )
        .await
        .map_err(db)?;
    if used == 0 {
        return Err(StoreError::InvalidInvite);
    }
    accounts::create_user(c, now, username, password_hash).await
}

async fn revoke_all(c: &impl GenericClient, now: i64, user: UserId) -> StoreResult<Vec<SessionId>> {
    revoke_returning(
        c,
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL
         RETURNING id",
        &[&now, &user],
    )
    .await
}

/// The update takes the user's row lock, so a login in flight (which holds a share lock on
/// it) commits first and its session is revoked here.
async fn set_disabled(
    c: &impl GenericClient,
    now: i64,
    user: UserId,
    disabled: bool,
) -> StoreResult<Vec<SessionId>> {
    let changed = if disabled {
        c.execute(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $1)
             WHERE id = $2 AND deleted_at IS NULL",
            &[&now, &user],
        )
        .await
    } else {
        c.execute(
            "UPDATE users SET disabled_at = NULL WHERE id = $1 AND deleted_at IS NULL",
            &[&user],
        )
        .await
    };
    if changed.map_err(db)? == 0 {
        return Err(StoreError::NotFound(Missing::User));
    }
    if disabled {
        revoke_all(c, now, user).await
    } else {
        Ok(Vec::new())
    }
}

async fn delete_user(c: &impl GenericClient, now: i64, user: UserId) -> StoreResult<DeletedUser> {
    let found = c
        .query_opt(
            "SELECT deleted_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE",
            &[&user],
        )
        .await
        .map_err(db)?;
    if found.is_none_or(|r| r.get::<_, bool>(0)) {
        return Err(StoreError::NotFound(Missing::User));
    }
    let sessions = revoke_all(c, now, user).await?;
    let mut peers: Vec<UserId> = c
        .query(
            "SELECT friend_id FROM friendships WHERE user_id = $1
             UNION SELECT to_id FROM friend_requests WHERE from_id = $1
             UNION SELECT from_id FROM friend_requests WHERE to_id = $1
             UNION SELECT blocked FROM blocks WHERE blocker = $1
             UNION SELECT blocker FROM blocks WHERE blocked = $1
             UNION SELECT p.user_id FROM members m
                 JOIN conversations c ON c.id = m.conv_id AND c.kind = 'direct'
                 JOIN members p ON p.conv_id = m.conv_id AND p.user_id <> m.user_id
                 WHERE m.user_id = $1",
            &[&user],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    peers.sort_unstable();
    for sql in [
        "DELETE FROM friendships WHERE user_id = $1 OR friend_id = $1",
        "DELETE FROM friend_requests WHERE from_id = $1 OR to_id = $1",
        "DELETE FROM blocks WHERE blocker = $1 OR blocked = $1",
        "DELETE FROM members WHERE user_id = $1
             AND conv_id IN (SELECT id FROM conversations WHERE kind = 'group')",
    ] {
        c.execute(sql, &[&user]).await.map_err(db)?;
    }
    c.execute(
        "UPDATE users SET username = 'deleted:' || id, password_hash = '', display_name = '',
         avatar_url = '', status_text = '', disabled_at = COALESCE(disabled_at, $1),
         deleted_at = $1 WHERE id = $2",
        &[&now, &user],
    )
    .await
    .map_err(db)?;
    Ok(DeletedUser { sessions, peers })
}

async fn create_invite(
    c: &impl GenericClient,
    now: i64,
    new: NewInvite,
) -> StoreResult<InviteRecord> {
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&INVITE_LOCK])
        .await
        .map_err(db)?;
    let live: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM invites
             WHERE revoked_at IS NULL AND uses_left > 0 AND expires_at > $1",
            &[&now],
        )
        .await
        .map_err(db)?
        .get(0);
    if live >= i64::from(new.max_live) {
        return Err(StoreError::TooManyInvites);
    }
    let uses = i32::try_from(new.uses).unwrap_or(i32::MAX);
    let row = c
        .query_one(
            "INSERT INTO invites (code_hash, uses, uses_left, created_at, expires_at)
             VALUES ($1, $2, $2, $3, $4) RETURNING id",
            &[&&new.code_hash[..], &uses, &now, &new.expires_at],
        )
        .await
        .map_err(db)?;
    Ok(InviteRecord {
        id: row.get(0),
        uses: new.uses,
        uses_left: new.uses,
        created_at: now,
        expires_at: new.expires_at,
        revoked: false,
    })
}

fn count(r: &tokio_postgres::Row, i: usize) -> u64 {
    u64::try_from(r.get::<_, i64>(i)).unwrap_or(0)
}

#[async_trait]
impl AdminStore for PostgresStore {
    async fn create_user_invited(
        &self,
        username: &str,
        password_hash: &str,
        code_hash: [u8; 32],
    ) -> StoreResult<UserRecord> {
        in_transaction!(self, |tx, now| create_user_invited(
            &tx,
            now,
            username,
            password_hash,
            code_hash
        )
        .await)
    }

    async fn list_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<UserRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username >= $1 AND username < $2
                     AND username > $3 ORDER BY username LIMIT $4"
                ),
                &[
                    &prefix,
                    &prefix_end(prefix),
                    &after.unwrap_or(""),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(rows::user).collect())
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> StoreResult<Vec<SessionId>> {
        in_transaction!(self, |tx, now| set_disabled(&tx, now, user, disabled).await)
    }

    async fn delete_user(&self, user: UserId) -> StoreResult<DeletedUser> {
        in_transaction!(self, |tx, now| delete_user(&tx, now, user).await)
    }

    async fn live_sessions(&self, user: UserId, now: i64) -> StoreResult<u64> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT COUNT(*) FROM sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                &[&user, &now],
            )
            .await
            .map_err(db)?;
        Ok(count(&row, 0))
    }

    async fn create_invite(&self, invite: NewInvite) -> StoreResult<InviteRecord> {
        in_transaction!(self, |tx, now| create_invite(&tx, now, invite).await)
    }

    async fn invites(&self, before: Option<i64>, limit: u32) -> StoreResult<Vec<InviteRecord>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {INVITE_COLUMNS} FROM invites WHERE id < $1 ORDER BY id DESC LIMIT $2"
                ),
                &[&before.unwrap_or(i64::MAX), &i64::from(limit)],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(invite).collect())
    }

    async fn revoke_invite(&self, id: i64) -> StoreResult<()> {
        let c = self.client().await?;
        accounts::one_or_more(
            &c,
            Missing::Invite,
            "UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            &[&crate::clock::now_ms(), &id],
        )
        .await
    }

    async fn stats(&self, now: i64) -> StoreResult<StoreStats> {
        let c = self.client().await?;
        // Entries are the sum of last seqs (gap-free from 1): no scan of the messages.
        let r = c
            .query_one(
                "SELECT
                    (SELECT COUNT(*) FROM users WHERE deleted_at IS NULL),
                    (SELECT COUNT(*) FROM users
                        WHERE deleted_at IS NULL AND disabled_at IS NOT NULL),
                    (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1),
                    (SELECT COUNT(*) FROM conversations
                        WHERE kind = 'group' AND dissolved_at IS NULL),
                    (SELECT COUNT(*) FROM conversations),
                    (SELECT COALESCE(SUM(last_seq), 0)::BIGINT FROM conversations),
                    (SELECT COUNT(*) FROM invites
                        WHERE revoked_at IS NULL AND uses_left > 0 AND expires_at > $1)",
                &[&now],
            )
            .await
            .map_err(db)?;
        Ok(StoreStats {
            users: count(&r, 0),
            disabled_users: count(&r, 1),
            sessions: count(&r, 2),
            groups: count(&r, 3),
            conversations: count(&r, 4),
            entries: count(&r, 5),
            live_invites: count(&r, 6),
        })
    }
}
