//! Groups: creation, membership changes with their system entries, and member queries.
//!
//! A change locks the group's conversation row first (as every entry writer does), so changes
//! of one group and its appends on every handle take turns: its size limit and membership
//! checks see every change committed before it.

use deadpool_postgres::GenericClient;

use super::errors::db;
use super::messages::{self, Entry};
use super::rows::{self, GROUP_COLUMNS, MEMBER_COLUMNS};
use crate::store::{
    AddRules, ConvId, EntryKind, GroupChange, GroupRecord, MemberRecord, MemberRole, Missing,
    NewGroup, Refusal, StoreError, StoreResult, StoredMessage, SystemEntry, UserId,
};

/// Inserts a member whose history starts at `joined`, the entry that made them one: their
/// cursor starts just before it, or at it for the entry's own actor.
async fn add_member(
    c: &impl GenericClient,
    now: i64,
    conv: ConvId,
    user: UserId,
    role: MemberRole,
    joined: &StoredMessage,
) -> StoreResult<()> {
    let read_seq = if user == joined.sender {
        joined.seq
    } else {
        joined.seq - 1
    };
    c.execute(
        "INSERT INTO members (conv_id, user_id, role, joined_seq, read_seq, joined_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        &[
            &conv,
            &user,
            &(role as i32),
            &rows::seq_param(joined.seq),
            &rows::seq_param(read_seq),
            &now,
        ],
    )
    .await
    .map_err(db)
    .map(drop)
}

async fn holds(c: &impl GenericClient, sql: &str, a: UserId, b: UserId) -> StoreResult<bool> {
    let stmt = c.prepare_cached(sql).await.map_err(db)?;
    Ok(c.query_opt(&stmt, &[&a, &b]).await.map_err(db)?.is_some())
}

async fn user_exists(c: &impl GenericClient, user: UserId) -> StoreResult<bool> {
    let row = c
        .query_opt(
            "SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL",
            &[&user],
        )
        .await
        .map_err(db)?;
    Ok(row.is_some())
}

/// Live (not dissolved) groups `user` is a member of.
async fn live_groups(c: &impl GenericClient, user: UserId) -> StoreResult<usize> {
    let row = c
        .query_one(
            "SELECT COUNT(*) FROM members m JOIN conversations c ON c.id = m.conv_id
             WHERE m.user_id = $1 AND c.kind = 'group' AND c.dissolved_at IS NULL",
            &[&user],
        )
        .await
        .map_err(db)?;
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// Refuses `user` (about to become a member of `conv`) if `rules` forbid it; runs after the
/// earlier users of the same change were inserted, so blocks among them count too.
async fn check_rules(
    c: &impl GenericClient,
    conv: ConvId,
    rules: &AddRules,
    user: UserId,
) -> StoreResult<()> {
    let refuse = |why| Err(StoreError::Refused { user, why });
    if !user_exists(c, user).await? {
        return Err(StoreError::NotFound(Missing::User));
    }
    if user != rules.by {
        if holds(
            c,
            "SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = $2)
             OR (blocker = $2 AND blocked = $1)",
            rules.by,
            user,
        )
        .await?
        {
            return refuse(Refusal::Blocked);
        }
        if rules.friends_only
            && !holds(
                c,
                "SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2",
                rules.by,
                user,
            )
            .await?
        {
            return refuse(Refusal::NotFriends);
        }
    }
    if holds(
        c,
        "SELECT 1 FROM members m WHERE m.conv_id = $1 AND m.user_id <> $2
         AND (EXISTS (SELECT 1 FROM blocks WHERE blocker = $2 AND blocked = m.user_id)
           OR EXISTS (SELECT 1 FROM blocks WHERE blocker = m.user_id AND blocked = $2))
         LIMIT 1",
        conv,
        user,
    )
    .await?
    {
        return refuse(Refusal::BlockedMember);
    }
    if live_groups(c, user).await? >= rules.max_groups {
        return refuse(Refusal::TooManyGroups);
    }
    Ok(())
}

/// Checks and inserts `user` as a plain member (skipping one who is a member already).
async fn admit(
    c: &impl GenericClient,
    now: i64,
    conv: ConvId,
    rules: &AddRules,
    user: UserId,
    joined: &StoredMessage,
) -> StoreResult<()> {
    if member(c, conv, user).await?.is_none() {
        check_rules(c, conv, rules, user).await?;
        add_member(c, now, conv, user, MemberRole::Member, joined).await?;
    }
    Ok(())
}

async fn system(
    c: &impl GenericClient,
    now: i64,
    conv: ConvId,
    entry: &SystemEntry,
) -> StoreResult<StoredMessage> {
    let e = Entry {
        conv,
        sender: entry.actor,
        client_msg_id: None,
        kind: EntryKind::System,
        body: &entry.body,
        ref_seq: None,
    };
    messages::insert_system(c, &e, now).await
}

/// Creates a group in the caller's transaction; an `Err` rolls all of it back.
pub(super) async fn create(
    c: &impl GenericClient,
    now: i64,
    g: NewGroup,
) -> StoreResult<(GroupRecord, StoredMessage)> {
    let rules = AddRules {
        by: g.owner,
        ..g.rules
    };
    if !user_exists(c, g.owner).await? {
        return Err(StoreError::NotFound(Missing::User));
    }
    if live_groups(c, g.owner).await? >= rules.max_groups {
        return Err(StoreError::Refused {
            user: g.owner,
            why: Refusal::TooManyGroups,
        });
    }
    // The new row is this transaction's until commit: nobody else can lock it meanwhile.
    let conv: ConvId = c
        .query_one(
            "INSERT INTO conversations (kind, name, description, public, created_at)
             VALUES ('group', $1, $2, $3, $4) RETURNING id",
            &[&g.name, &g.description, &g.public, &now],
        )
        .await
        .map_err(db)?
        .get(0);
    let created = system(c, now, conv, &g.event).await?;
    add_member(c, now, conv, g.owner, MemberRole::Owner, &created).await?;
    for user in &g.members {
        admit(c, now, conv, &rules, *user, &created).await?;
    }
    let group = group_by_id(c, conv)
        .await?
        .ok_or(StoreError::NotFound(Missing::Group))?;
    Ok((group, created))
}

async fn member_count(c: &impl GenericClient, conv: ConvId) -> StoreResult<usize> {
    let row = c
        .query_one("SELECT COUNT(*) FROM members WHERE conv_id = $1", &[&conv])
        .await
        .map_err(db)?;
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

async fn set_role(
    c: &impl GenericClient,
    conv: ConvId,
    user: UserId,
    role: MemberRole,
) -> StoreResult<()> {
    let n = c
        .execute(
            "UPDATE members SET role = $3 WHERE conv_id = $1 AND user_id = $2",
            &[&conv, &user, &(role as i32)],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        Err(StoreError::NotFound(Missing::Member))
    } else {
        Ok(())
    }
}

/// Applies a group change and appends its entry in the caller's transaction.
pub(super) async fn change(
    c: &impl GenericClient,
    now: i64,
    conv: ConvId,
    change: GroupChange,
    entry: SystemEntry,
) -> StoreResult<StoredMessage> {
    let locked = c
        .query_opt(
            "SELECT 1 FROM conversations WHERE id = $1 AND kind = 'group' FOR UPDATE",
            &[&conv],
        )
        .await
        .map_err(db)?;
    if locked.is_none() {
        return Err(StoreError::NotFound(Missing::Group));
    }
    match change {
        GroupChange::Add { users, max, rules } => {
            // The entry comes first so that new members see it: their history starts there.
            let event = system(c, now, conv, &entry).await?;
            for user in users {
                admit(c, now, conv, &rules, user, &event).await?;
            }
            if member_count(c, conv).await? > max {
                return Err(StoreError::GroupFull);
            }
            Ok(event)
        }
        GroupChange::Remove { user } => {
            let n = c
                .execute(
                    "DELETE FROM members WHERE conv_id = $1 AND user_id = $2",
                    &[&conv, &user],
                )
                .await
                .map_err(db)?;
            if n == 0 {
                return Err(StoreError::NotFound(Missing::Member));
            }
            system(c, now, conv, &entry).await
        }
        GroupChange::SetRole { user, role } => {
            set_role(c, conv, user, role).await?;
            system(c, now, conv, &entry).await
        }
        GroupChange::Transfer { from, to } => {
            set_role(c, conv, to, MemberRole::Owner).await?;
            set_role(c, conv, from, MemberRole::Admin).await?;
            system(c, now, conv, &entry).await
        }
        GroupChange::Update { name, description } => {
            c.execute(
                "UPDATE conversations SET name = COALESCE($2, name),
                 description = COALESCE($3, description) WHERE id = $1",
                &[&conv, &name, &description],
            )
            .await
            .map_err(db)?;
            system(c, now, conv, &entry).await
        }
        GroupChange::Dissolve => {
            c.execute(
                "UPDATE conversations SET dissolved_at = $2 WHERE id = $1",
                &[&conv, &now],
            )
            .await
            .map_err(db)?;
            system(c, now, conv, &entry).await
        }
    }
}

/// The group `conv`, if it is one.
pub(super) async fn group_by_id(
    c: &impl GenericClient,
    conv: ConvId,
) -> StoreResult<Option<GroupRecord>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM conversations c WHERE c.id = $1 AND c.kind = 'group'"
            ),
            &[&conv],
        )
        .await
        .map_err(db)?;
    Ok(row.as_ref().map(rows::group))
}

pub(super) async fn groups_of(
    c: &impl GenericClient,
    user: UserId,
) -> StoreResult<Vec<GroupRecord>> {
    let rows = c
        .query(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM members m JOIN conversations c ON c.id = m.conv_id
                 WHERE m.user_id = $1 AND c.kind = 'group' ORDER BY c.id"
            ),
            &[&user],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(rows::group).collect())
}

pub(super) async fn member(
    c: &impl GenericClient,
    conv: ConvId,
    user: UserId,
) -> StoreResult<Option<MemberRecord>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE conv_id = $1 AND user_id = $2"
        ))
        .await
        .map_err(db)?;
    let row = c.query_opt(&stmt, &[&conv, &user]).await.map_err(db)?;
    Ok(row.as_ref().map(rows::member))
}

pub(super) async fn members(
    c: &impl GenericClient,
    conv: ConvId,
) -> StoreResult<Vec<MemberRecord>> {
    let rows = c
        .query(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM members WHERE conv_id = $1
                 ORDER BY role DESC, user_id"
            ),
            &[&conv],
        )
        .await
        .map_err(db)?;
    Ok(rows.iter().map(rows::member).collect())
}
