//! Profiles, presence timestamps, friendships, friend requests and blocks.

use rusqlite::{Connection, params};

use super::rows::{self, PROFILE_COLUMNS};
use super::writer::{WriteCtx, backend};
use crate::store::{
    Missing, ProfilePatch, ProfileRecord, Relation, Social, StoreError, StoreResult, UserId,
};

pub(super) fn profiles(
    conn: &Connection,
    users: &[UserId],
) -> rusqlite::Result<Vec<ProfileRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROFILE_COLUMNS} FROM users WHERE id = ?1"
    ))?;
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        if let Some(p) =
            rusqlite::OptionalExtension::optional(stmt.query_row([user], rows::profile))?
        {
            out.push(p);
        }
    }
    Ok(out)
}

pub(super) fn update_profile(
    ctx: &mut WriteCtx<'_>,
    user: UserId,
    patch: ProfilePatch,
) -> StoreResult<ProfileRecord> {
    let n = ctx
        .conn
        .prepare_cached(
            "UPDATE users SET display_name = COALESCE(?2, display_name),
                              avatar_url = COALESCE(?3, avatar_url),
                              status_text = COALESCE(?4, status_text)
             WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                user,
                patch.display_name,
                patch.avatar_url,
                patch.status_text
            ])
        })
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Missing::User));
    }
    profiles(ctx.conn, &[user])
        .map_err(backend)?
        .pop()
        .ok_or(StoreError::NotFound(Missing::User))
}

fn exists(conn: &Connection, sql: &str, a: UserId, b: UserId) -> rusqlite::Result<bool> {
    conn.prepare_cached(sql)?.exists(params![a, b])
}

pub(super) fn relation(conn: &Connection, a: UserId, b: UserId) -> rusqlite::Result<Relation> {
    const FRIENDS: &str = "SELECT 1 FROM friendships WHERE user_id = ?1 AND friend_id = ?2";
    const REQUEST: &str = "SELECT 1 FROM friend_requests WHERE from_id = ?1 AND to_id = ?2";
    const BLOCK: &str = "SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2";
    // A shared group makes contacts only while it is live and neither blocked the other.
    const SHARE: &str = "SELECT 1 FROM members x JOIN members y ON x.conv_id = y.conv_id
         JOIN conversations c ON c.id = x.conv_id
         WHERE x.user_id = ?1 AND y.user_id = ?2 AND c.kind = 'group'
         AND c.dissolved_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker = ?1 AND blocked = ?2)
                                                 OR (blocker = ?2 AND blocked = ?1))
         LIMIT 1";
    Ok(Relation {
        friends: exists(conn, FRIENDS, a, b)?,
        a_requested: exists(conn, REQUEST, a, b)?,
        b_requested: exists(conn, REQUEST, b, a)?,
        a_blocked: exists(conn, BLOCK, a, b)?,
        b_blocked: exists(conn, BLOCK, b, a)?,
        share_group: exists(conn, SHARE, a, b)?,
    })
}

fn ids(conn: &Connection, sql: &str, user: UserId) -> rusqlite::Result<Vec<UserId>> {
    conn.prepare_cached(sql)?
        .query_map([user], |r| r.get(0))?
        .collect()
}

pub(super) fn social(conn: &Connection, user: UserId) -> rusqlite::Result<Social> {
    Ok(Social {
        friends: ids(
            conn,
            "SELECT friend_id FROM friendships WHERE user_id = ?1 ORDER BY friend_id",
            user,
        )?,
        incoming: ids(
            conn,
            "SELECT from_id FROM friend_requests WHERE to_id = ?1 ORDER BY from_id",
            user,
        )?,
        outgoing: ids(
            conn,
            "SELECT to_id FROM friend_requests WHERE from_id = ?1 ORDER BY to_id",
            user,
        )?,
        blocked: ids(
            conn,
            "SELECT blocked FROM blocks WHERE blocker = ?1 ORDER BY blocked",
            user,
        )?,
    })
}

pub(super) fn contacts(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<UserId>> {
    // The same rule as `relation().share_group`: live groups only, and never across a block
    // (a block also ends a friendship, so the first half needs no such filter).
    ids(
        conn,
        "SELECT friend_id FROM friendships WHERE user_id = ?1
         UNION
         SELECT y.user_id FROM members x JOIN members y ON x.conv_id = y.conv_id
         JOIN conversations c ON c.id = x.conv_id
         WHERE x.user_id = ?1 AND y.user_id <> ?1 AND c.kind = 'group'
         AND c.dissolved_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker = ?1 AND blocked = y.user_id)
                                                 OR (blocker = y.user_id AND blocked = ?1))",
        user,
    )
}

fn run(ctx: &WriteCtx<'_>, sql: &str, a: UserId, b: UserId) -> StoreResult<usize> {
    ctx.conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params![a, b, ctx.now]))
        .map_err(backend)
}

const DELETE_REQUEST: &str =
    "DELETE FROM friend_requests WHERE from_id = ?1 AND to_id = ?2 AND ?3 IS NOT NULL";
const DELETE_FRIEND: &str =
    "DELETE FROM friendships WHERE user_id = ?1 AND friend_id = ?2 AND ?3 IS NOT NULL";

pub(super) fn create_request(ctx: &mut WriteCtx<'_>, from: UserId, to: UserId) -> StoreResult<()> {
    run(
        ctx,
        "INSERT OR IGNORE INTO friend_requests (from_id, to_id, created_at) VALUES (?1, ?2, ?3)",
        from,
        to,
    )
    .map(drop)
}

pub(super) fn delete_request(ctx: &mut WriteCtx<'_>, from: UserId, to: UserId) -> StoreResult<()> {
    match run(ctx, DELETE_REQUEST, from, to)? {
        0 => Err(StoreError::NotFound(Missing::FriendRequest)),
        _ => Ok(()),
    }
}

pub(super) fn make_friends(ctx: &mut WriteCtx<'_>, a: UserId, b: UserId) -> StoreResult<()> {
    for (x, y) in [(a, b), (b, a)] {
        run(ctx, DELETE_REQUEST, x, y)?;
        run(
            ctx,
            "INSERT OR IGNORE INTO friendships (user_id, friend_id, created_at) VALUES (?1, ?2, ?3)",
            x,
            y,
        )?;
    }
    Ok(())
}

pub(super) fn remove_friend(ctx: &mut WriteCtx<'_>, a: UserId, b: UserId) -> StoreResult<()> {
    let n = run(ctx, DELETE_FRIEND, a, b)? + run(ctx, DELETE_FRIEND, b, a)?;
    if n == 0 {
        Err(StoreError::NotFound(Missing::Friendship))
    } else {
        Ok(())
    }
}

pub(super) fn block(ctx: &mut WriteCtx<'_>, blocker: UserId, blocked: UserId) -> StoreResult<()> {
    for (x, y) in [(blocker, blocked), (blocked, blocker)] {
        run(ctx, DELETE_REQUEST, x, y)?;
        run(ctx, DELETE_FRIEND, x, y)?;
    }
    run(
        ctx,
        "INSERT OR IGNORE INTO blocks (blocker, blocked, created_at) VALUES (?1, ?2, ?3)",
        blocker,
        blocked,
    )
    .map(drop)
}

pub(super) fn unblock(ctx: &mut WriteCtx<'_>, blocker: UserId, blocked: UserId) -> StoreResult<()> {
    match run(
        ctx,
        "DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2 AND ?3 IS NOT NULL",
        blocker,
        blocked,
    )? {
        0 => Err(StoreError::NotFound(Missing::Block)),
        _ => Ok(()),
    }
}
