//! Column lists and row mappers shared by the query modules, and the integer conversions
//! between the store's unsigned seqs and PostgreSQL's signed `BIGINT`.

use tokio_postgres::Row;

use crate::store::{
    EntryKind, GroupRecord, MemberRecord, MemberRole, ProfileRecord, SessionRecord, StoredMessage,
    UserId, UserRecord,
};

pub(super) use crate::store::columns::{
    MEMBER_COLUMNS, MESSAGE_COLUMNS, PROFILE_COLUMNS, SESSION_COLUMNS, USER_COLUMNS,
};
/// Group columns; `c` is `conversations`.
pub(super) const GROUP_COLUMNS: &str = "c.id, c.name, c.description, c.public, \
     c.dissolved_at IS NOT NULL, c.created_at, \
     (SELECT user_id FROM members WHERE conv_id = c.id AND role = 2 LIMIT 1), \
     (SELECT COUNT(*) FROM members WHERE conv_id = c.id)";

/// A seq as stored (seqs never reach `i64::MAX`; a bound past it is clamped).
pub(super) fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A stored seq (never negative).
pub(super) fn seq_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn user(r: &Row) -> UserRecord {
    UserRecord {
        id: r.get(0),
        username: r.get(1),
        password_hash: r.get(2),
        created_at: r.get(3),
        disabled: r.get(4),
        deleted: r.get(5),
    }
}

pub(super) fn session(r: &Row) -> SessionRecord {
    SessionRecord {
        id: r.get(0),
        user_id: r.get(1),
        device: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
    }
}

/// A message from [`MESSAGE_COLUMNS`] starting at column `at`.
pub(super) fn message_at(r: &Row, at: usize) -> StoredMessage {
    StoredMessage {
        id: r.get(at),
        conv: r.get(at + 1),
        seq: seq_of(r.get(at + 2)),
        sender: r.get(at + 3),
        client_msg_id: r.get(at + 4),
        kind: EntryKind::from_i64(i64::from(r.get::<_, i32>(at + 5))),
        text: r.get(at + 6),
        ref_seq: r.get::<_, Option<i64>>(at + 7).map(seq_of),
        edited_at: r.get(at + 8),
        recalled: r.get(at + 9),
        ts: r.get(at + 10),
    }
}

pub(super) fn message(r: &Row) -> StoredMessage {
    message_at(r, 0)
}

pub(super) fn profile(r: &Row) -> ProfileRecord {
    ProfileRecord {
        id: r.get(0),
        username: r.get(1),
        display_name: r.get(2),
        avatar_url: r.get(3),
        status_text: r.get(4),
        last_seen: r.get(5),
    }
}

pub(super) fn member(r: &Row) -> MemberRecord {
    MemberRecord {
        user: r.get(0),
        role: MemberRole::from_i64(i64::from(r.get::<_, i32>(1))),
        joined_seq: seq_of(r.get(2)),
        read_seq: seq_of(r.get(3)),
    }
}

pub(super) fn group(r: &Row) -> GroupRecord {
    GroupRecord {
        id: r.get(0),
        name: r.get::<_, Option<String>>(1).unwrap_or_default(),
        description: r.get(2),
        public: r.get(3),
        dissolved: r.get(4),
        created_at: r.get(5),
        owner: r.get::<_, Option<UserId>>(6).unwrap_or(0),
        member_count: usize::try_from(r.get::<_, i64>(7)).unwrap_or(0),
    }
}
