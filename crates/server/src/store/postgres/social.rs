//! Profiles, presence timestamps, friendships, friend requests and blocks.

use deadpool_postgres::GenericClient;

use super::errors::db;
use super::rows::{self, PROFILE_COLUMNS};
use crate::store::{
    Missing, ProfilePatch, ProfileRecord, Relation, Social, StoreError, StoreResult, UserId,
};

/// Profiles of `users`, in the order asked (unknown ids left out).
pub(super) async fn profiles(
    c: &impl GenericClient,
    users: &[UserId],
) -> StoreResult<Vec<ProfileRecord>> {
    let rows = c
        .query(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM users u
                 JOIN unnest($1::BIGINT[]) WITH ORDINALITY AS w(id, n) USING (id) ORDER BY w.n"
            ),
            &[&users],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(rows::profile).collect())
}

pub(super) async fn update_profile(
    c: &impl GenericClient,
    user: UserId,
    patch: ProfilePatch,
) -> StoreResult<ProfileRecord> {
    let row = c
        .query_opt(
            &format!(
                "UPDATE users SET display_name = COALESCE($2, display_name),
                                  avatar_url = COALESCE($3, avatar_url),
                                  status_text = COALESCE($4, status_text)
                 WHERE id = $1 RETURNING {PROFILE_COLUMNS}"
            ),
            &[
                &user,
                &patch.display_name,
                &patch.avatar_url,
                &patch.status_text,
            ],
        )
        .await
        .map_err(db)?;
    row.as_ref()
        .map(rows::profile)
        .ok_or(StoreError::NotFound(Missing::User))
}

async fn exists(c: &impl GenericClient, sql: &str, a: UserId, b: UserId) -> StoreResult<bool> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    Ok(c.query_opt(&stmt, &[&a, &b]).await.map_err(db)?.is_some())
}

pub(super) async fn relation(
    c: &impl GenericClient,
    a: UserId,
    b: UserId,
) -> StoreResult<Relation> {
    const FRIENDS: &str = "SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2";
    const REQUEST: &str = "SELECT 1 FROM friend_requests WHERE from_id = $1 AND to_id = $2";
    const BLOCK: &str = "SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2";
    // A shared group makes contacts only while it is live and neither blocked the other.
    const SHARE: &str = "SELECT 1 FROM members x JOIN members y ON x.conv_id = y.conv_id
         JOIN conversations c ON c.id = x.conv_id
         WHERE x.user_id = $1 AND y.user_id = $2 AND c.kind = 'group'
         AND c.dissolved_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = $2)
                                                 OR (blocker = $2 AND blocked = $1))
         LIMIT 1";
    Ok(Relation {
        friends: exists(c, FRIENDS, a, b).await?,
        a_requested: exists(c, REQUEST, a, b).await?,
        b_requested: exists(c, REQUEST, b, a).await?,
        a_blocked: exists(c, BLOCK, a, b).await?,
        b_blocked: exists(c, BLOCK, b, a).await?,
        share_group: exists(c, SHARE, a, b).await?,
    })
}

async fn ids(c: &impl GenericClient, sql: &str, user: UserId) -> StoreResult<Vec<UserId>> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    let rows = c.query(&stmt, &[&user]).await.map_err(db)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn social(c: &impl GenericClient, user: UserId) -> StoreResult<Social> {
    Ok(Social {
        friends: ids(
            c,
            "SELECT friend_id FROM friendships WHERE user_id = $1 ORDER BY friend_id",
            user,
        )
        .await?,
        incoming: ids(
            c,
            "SELECT from_id FROM friend_requests WHERE to_id = $1 ORDER BY from_id",
            user,
        )
        .await?,
        outgoing: ids(
            c,
            "SELECT to_id FROM friend_requests WHERE from_id = $1 ORDER BY to_id",
            user,
        )
        .await?,
        blocked: ids(
            c,
            "SELECT blocked FROM blocks WHERE blocker = $1 ORDER BY blocked",
            user,
        )
        .await?,
    })
}

pub(super) async fn contacts(c: &impl GenericClient, user: UserId) -> StoreResult<Vec<UserId>> {
    // The same rule as `relation().share_group`: live groups only, and never across a block
    // (a block also ends a friendship, so the first half needs no such filter).
    ids(
        c,
        "SELECT friend_id FROM friendships WHERE user_id = $1
         UNION
         SELECT y.user_id FROM members x JOIN members y ON x.conv_id = y.conv_id
         JOIN conversations c ON c.id = x.conv_id
         WHERE x.user_id = $1 AND y.user_id <> $1 AND c.kind = 'group'
         AND c.dissolved_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = y.user_id)
                                                 OR (blocker = y.user_id AND blocked = $1))
         ORDER BY 1",
        user,
    )
    .await
}

async fn run(c: &impl GenericClient, sql: &str, a: UserId, b: UserId) -> StoreResult<u64> {
    c.execute(sql, &[&a, &b]).await.map_err(db)
}

async fn run_at(
    c: &impl GenericClient,
    sql: &str,
    a: UserId,
    b: UserId,
    now: i64,
) -> StoreResult<u64> {
    c.execute(sql, &[&a, &b, &now]).await.map_err(db)
}

const DELETE_REQUEST: &str = "DELETE FROM friend_requests WHERE from_id = $1 AND to_id = $2";
const DELETE_FRIEND: &str = "DELETE FROM friendships WHERE user_id = $1 AND friend_id = $2";

pub(super) async fn create_request(
    c: &impl GenericClient,
    now: i64,
    from: UserId,
    to: UserId,
) -> StoreResult<()> {
    run_at(
        c,
        "INSERT INTO friend_requests (from_id, to_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        from,
        to,
        now,
    )
    .await
    .map(drop)
}

pub(super) async fn delete_request(
    c: &impl GenericClient,
    from: UserId,
    to: UserId,
) -> StoreResult<()> {
    match run(c, DELETE_REQUEST, from, to).await? {
        0 => Err(StoreError::NotFound(Missing::FriendRequest)),
        _ => Ok(()),
    }
}

pub(super) async fn make_friends(
    c: &impl GenericClient,
    now: i64,
    a: UserId,
    b: UserId,
) -> StoreResult<()> {
    for (x, y) in [(a, b), (b, a)] {
        run(c, DELETE_REQUEST, x, y).await?;
        run_at(
            c,
            "INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            x,
            y,
            now,
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn remove_friend(c: &impl GenericClient, a: UserId, b: UserId) -> StoreResult<()> {
    let n = run(c, DELETE_FRIEND, a, b).await? + run(c, DELETE_FRIEND, b, a).await?;
    if n == 0 {
        Err(StoreError::NotFound(Missing::Friendship))
    } else {
        Ok(())
    }
}

pub(super) async fn block(
    c: &impl GenericClient,
    now: i64,
    blocker: UserId,
    blocked: UserId,
) -> StoreResult<()> {
    for (x, y) in [(blocker, blocked), (blocked, blocker)] {
        run(c, DELETE_REQUEST, x, y).await?;
        run(c, DELETE_FRIEND, x, y).await?;
    }
    run_at(
        c,
        "INSERT INTO blocks (blocker, blocked, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
        blocker,
        blocked,
        now,
    )
    .await
    .map(drop)
}

pub(super) async fn unblock(
    c: &impl GenericClient,
    blocker: UserId,
    blocked: UserId,
) -> StoreResult<()> {
    match run(
        c,
        "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2",
        blocker,
        blocked,
    )
    .await?
    {
        0 => Err(StoreError::NotFound(Missing::Block)),
        _ => Ok(()),
    }
}
