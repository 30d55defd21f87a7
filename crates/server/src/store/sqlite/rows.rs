//! Column lists and row mappers shared by the query modules.

use rusqlite::{Connection, OptionalExtension, Row};

use crate::store::{
    ConvId, EntryKind, GroupRecord, MemberRecord, MemberRole, ProfileRecord, SessionRecord,
    StoredMessage, UserId, UserRecord,
};

pub(super) use crate::store::columns::{
    MEMBER_COLUMNS, MESSAGE_COLUMNS, PROFILE_COLUMNS, SESSION_COLUMNS, USER_COLUMNS,
};
/// Group columns; `c` is `conversations`.
pub(super) const GROUP_COLUMNS: &str = "c.id, c.name, c.description, c.public, c.dissolved_at, \
     c.created_at, (SELECT user_id FROM members WHERE conv_id = c.id AND role = 2), \
     (SELECT COUNT(*) FROM members WHERE conv_id = c.id)";

pub(super) fn user(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: r.get(3)?,
        disabled: r.get(4)?,
        deleted: r.get(5)?,
    })
}

pub(super) fn session(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        device: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
    })
}

pub(super) fn message(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        conv: r.get(1)?,
        seq: r.get(2)?,
        sender: r.get(3)?,
        client_msg_id: r.get(4)?,
        kind: EntryKind::from_i64(r.get(5)?),
        text: r.get(6)?,
        ref_seq: r.get(7)?,
        edited_at: r.get(8)?,
        recalled: r.get(9)?,
        ts: r.get(10)?,
    })
}

pub(super) fn profile(r: &Row<'_>) -> rusqlite::Result<ProfileRecord> {
    Ok(ProfileRecord {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        avatar_url: r.get(3)?,
        status_text: r.get(4)?,
        last_seen: r.get(5)?,
    })
}

pub(super) fn member(r: &Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        user: r.get(0)?,
        role: MemberRole::from_i64(r.get(1)?),
        joined_seq: r.get(2)?,
        read_seq: r.get(3)?,
    })
}

pub(super) fn group(r: &Row<'_>) -> rusqlite::Result<GroupRecord> {
    Ok(GroupRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        public: r.get(3)?,
        dissolved: r.get::<_, Option<i64>>(4)?.is_some(),
        created_at: r.get(5)?,
        owner: r.get::<_, Option<UserId>>(6)?.unwrap_or(0),
        member_count: r.get::<_, i64>(7)?.try_into().unwrap_or(0),
    })
}

/// The group `conv`, if it is one.
pub(super) fn group_by_id(
    conn: &Connection,
    conv: ConvId,
) -> rusqlite::Result<Option<GroupRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {GROUP_COLUMNS} FROM conversations c WHERE c.id = ?1 AND c.kind = 'group'"
    ))?
    .query_row([conv], group)
    .optional()
}

/// Whether `e` is a UNIQUE constraint violation.
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}
