//! Groups: creation, membership changes with their system entries, and member queries.

use rusqlite::{Connection, OptionalExtension, params};

use super::messages::{self, Entry};
use super::rows::{self, GROUP_COLUMNS, MEMBER_COLUMNS};
use super::writer::{WriteCtx, backend};
use crate::store::{
    AddRules, ConvId, EntryKind, GroupChange, GroupRecord, MemberRecord, MemberRole, Missing,
    NewGroup, Refusal, StoreError, StoreResult, StoredMessage, SystemEntry, UserId,
};

/// Inserts a member whose history starts at `joined_seq`, the entry that made them one. Nothing
/// before it is theirs to read, so their cursor starts just before it; at it for the entry's
/// own actor (the creator, or a user who joined), who has read what they did.
fn add_member(
    ctx: &WriteCtx<'_>,
    conv: ConvId,
    user: UserId,
    role: MemberRole,
    joined: &StoredMessage,
) -> StoreResult<bool> {
    let read_seq = if user == joined.sender {
        joined.seq
    } else {
        joined.seq - 1
    };
    ctx.conn
        .prepare_cached(
            "INSERT OR IGNORE INTO members (conv_id, user_id, role, joined_seq, read_seq, joined_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![conv, user, role as i64, joined.seq, read_seq, ctx.now])
        })
        .map(|n| n > 0)
        .map_err(backend)
}

fn user_exists(conn: &Connection, user: UserId) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL")
        .and_then(|mut s| s.exists([user]))
        .map_err(backend)
}

fn holds(conn: &Connection, sql: &str, a: UserId, b: UserId) -> StoreResult<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.exists(params![a, b]))
        .map_err(backend)
}

/// Live (not dissolved) groups `user` is a member of.
fn live_groups(conn: &Connection, user: UserId) -> StoreResult<usize> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM members m JOIN conversations c ON c.id = m.conv_id
         WHERE m.user_id = ?1 AND c.kind = 'group' AND c.dissolved_at IS NULL",
    )
    .and_then(|mut s| s.query_row([user], |r| r.get::<_, i64>(0)))
    .map(|n| usize::try_from(n).unwrap_or(0))
    .map_err(backend)
}

/// A block, either way, between `user` and a current member of `conv` other than `user`.
/// Both directions are primary-key lookups per member, so the cost is the group's size.
fn blocks_a_member(conn: &Connection, conv: ConvId, user: UserId) -> StoreResult<bool> {
    holds(
        conn,
        "SELECT 1 FROM members m WHERE m.conv_id = ?1 AND m.user_id <> ?2
         AND (EXISTS (SELECT 1 FROM blocks WHERE blocker = ?2 AND blocked = m.user_id)
           OR EXISTS (SELECT 1 FROM blocks WHERE blocker = m.user_id AND blocked = ?2))",
        conv,
        user,
    )
}

/// Refuses `user` (about to become a member of `conv`) if `rules` forbid it. Runs inside the
/// write transaction, after the earlier users of the same change were inserted, so a block
/// committed before this add is always seen, between `user` and the adder, any current member
/// or any user added alongside.
fn check_rules(conn: &Connection, conv: ConvId, rules: &AddRules, user: UserId) -> StoreResult<()> {
    let refuse = |why| Err(StoreError::Refused { user, why });
    if !user_exists(conn, user)? {
        return Err(StoreError::NotFound(Missing::User));
    }
    if user != rules.by {
        if holds(
            conn,
            "SELECT 1 FROM blocks WHERE (blocker = ?1 AND blocked = ?2)
             OR (blocker = ?2 AND blocked = ?1)",
            rules.by,
            user,
        )? {
            return refuse(Refusal::Blocked);
        }
        if rules.friends_only
            && !holds(
                conn,
                "SELECT 1 FROM friendships WHERE user_id = ?1 AND friend_id = ?2",
                rules.by,
                user,
            )?
        {
            return refuse(Refusal::NotFriends);
        }
    }
    if blocks_a_member(conn, conv, user)? {
        return refuse(Refusal::BlockedMember);
    }
    if live_groups(conn, user)? >= rules.max_groups {
        return refuse(Refusal::TooManyGroups);
    }
    Ok(())
}

/// Checks and inserts `user` as a plain member (skipping one who is a member already).
fn admit(
    ctx: &WriteCtx<'_>,
    conv: ConvId,
    rules: &AddRules,
    user: UserId,
    joined: &StoredMessage,
) -> StoreResult<()> {
    if member(ctx.conn, conv, user).map_err(backend)?.is_none() {
        check_rules(ctx.conn, conv, rules, user)?;
        add_member(ctx, conv, user, MemberRole::Member, joined)?;
    }
    Ok(())
}

fn system(ctx: &mut WriteCtx<'_>, conv: ConvId, entry: &SystemEntry) -> StoreResult<StoredMessage> {
    messages::insert(
        ctx,
        Entry {
            conv,
            sender: entry.actor,
            client_msg_id: None,
            kind: EntryKind::System,
            body: &entry.body,
            ref_seq: None,
        },
    )
}

pub(super) fn create(
    ctx: &mut WriteCtx<'_>,
    g: NewGroup,
) -> StoreResult<(GroupRecord, StoredMessage)> {
    let rules = AddRules {
        by: g.owner,
        ..g.rules
    };
    if !user_exists(ctx.conn, g.owner)? {
        return Err(StoreError::NotFound(Missing::User));
    }
    if live_groups(ctx.conn, g.owner)? >= rules.max_groups {
        return Err(StoreError::Refused {
            user: g.owner,
            why: Refusal::TooManyGroups,
        });
    }
    ctx.conn
        .prepare_cached(
            "INSERT INTO conversations (kind, name, description, public, created_at)
             VALUES ('group', ?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![g.name, g.description, g.public, ctx.now]))
        .map_err(backend)?;
    let conv = ctx.conn.last_insert_rowid();
    let created = system(ctx, conv, &g.event)?;
    add_member(ctx, conv, g.owner, MemberRole::Owner, &created)?;
    // Each member is checked against those inserted before them, so a block between any two
    // of the new members refuses the whole group (the savepoint undoes what was written).
    for user in &g.members {
        admit(ctx, conv, &rules, *user, &created)?;
    }
    let group = rows::group_by_id(ctx.conn, conv)
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Missing::Group))?;
    Ok((group, created))
}

fn member_count(conn: &Connection, conv: ConvId) -> StoreResult<usize> {
    conn.prepare_cached("SELECT COUNT(*) FROM members WHERE conv_id = ?1")
        .and_then(|mut s| s.query_row([conv], |r| r.get::<_, i64>(0)))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(backend)
}

fn set_role(ctx: &WriteCtx<'_>, conv: ConvId, user: UserId, role: MemberRole) -> StoreResult<()> {
    let n = ctx
        .conn
        .prepare_cached("UPDATE members SET role = ?3 WHERE conv_id = ?1 AND user_id = ?2")
        .and_then(|mut s| s.execute(params![conv, user, role as i64]))
        .map_err(backend)?;
    if n == 0 {
        Err(StoreError::NotFound(Missing::Member))
    } else {
        Ok(())
    }
}

pub(super) fn change(
    ctx: &mut WriteCtx<'_>,
    conv: ConvId,
    change: GroupChange,
    entry: SystemEntry,
) -> StoreResult<StoredMessage> {
    if rows::group_by_id(ctx.conn, conv)
        .map_err(backend)?
        .is_none()
    {
        return Err(StoreError::NotFound(Missing::Group));
    }
    match change {
        GroupChange::Add { users, max, rules } => {
            // The entry comes first so that new members see it: their history starts there.
            // A refusal below undoes it with the rest (the job's savepoint).
            let event = system(ctx, conv, &entry)?;
            for user in users {
                admit(ctx, conv, &rules, user, &event)?;
            }
            if member_count(ctx.conn, conv)? > max {
                return Err(StoreError::GroupFull);
            }
            Ok(event)
        }
        GroupChange::Remove { user } => {
            let n = ctx
                .conn
                .prepare_cached("DELETE FROM members WHERE conv_id = ?1 AND user_id = ?2")
                .and_then(|mut s| s.execute(params![conv, user]))
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(Missing::Member));
            }
            system(ctx, conv, &entry)
        }
        GroupChange::SetRole { user, role } => {
            set_role(ctx, conv, user, role)?;
            system(ctx, conv, &entry)
        }
        GroupChange::Transfer { from, to } => {
            set_role(ctx, conv, to, MemberRole::Owner)?;
            set_role(ctx, conv, from, MemberRole::Admin)?;
            system(ctx, conv, &entry)
        }
        GroupChange::Update { name, description } => {
            ctx.conn
                .prepare_cached(
                    "UPDATE conversations SET name = COALESCE(?2, name),
                     description = COALESCE(?3, description) WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![conv, name, description]))
                .map_err(backend)?;
            system(ctx, conv, &entry)
        }
        GroupChange::Dissolve => {
            ctx.conn
                .prepare_cached("UPDATE conversations SET dissolved_at = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![conv, ctx.now]))
                .map_err(backend)?;
            system(ctx, conv, &entry)
        }
    }
}

pub(super) fn groups_of(conn: &Connection, user: UserId) -> rusqlite::Result<Vec<GroupRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM members m JOIN conversations c ON c.id = m.conv_id
         WHERE m.user_id = ?1 AND c.kind = 'group' ORDER BY c.id"
    ))?
    .query_map([user], rows::group)?
    .collect()
}

pub(super) fn member(
    conn: &Connection,
    conv: ConvId,
    user: UserId,
) -> rusqlite::Result<Option<MemberRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE conv_id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![conv, user], rows::member)
    .optional()
}

pub(super) fn members(conn: &Connection, conv: ConvId) -> rusqlite::Result<Vec<MemberRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members WHERE conv_id = ?1 ORDER BY role DESC, user_id"
    ))?
    .query_map([conv], rows::member)?
    .collect()
}
