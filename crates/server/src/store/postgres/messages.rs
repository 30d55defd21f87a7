//! Conversation entries: the insert every entry goes through, amend, paging and the
//! conversation list.
//!
//! Every transaction that adds entries to a conversation first locks its row
//! ([`lock_conversation`], or the append batch's ordered lock): the lock serialises the
//! conversation's writers on every handle and is held until commit, so seqs are gap-free and
//! commit order is seq order. [`INSERT_ENTRY`] then reads `last_seq`, inserts at the next seq
//! and bumps the counter in one statement, and only when the row went in: a repeated
//! `(sender, client_msg_id)` inserts nothing and takes no seq, with no savepoint to undo.

use deadpool_postgres::GenericClient;

use super::errors::db;
use super::rows::{self, MESSAGE_COLUMNS, seq_of, seq_param};
use crate::store::{
    Amendment, Appended, ConvId, ConversationRecord, ENTRY_OVERHEAD, EntryKind, Missing,
    StoreError, StoreResult, StoredMessage, UserId,
};

/// Inserts an entry at the conversation's next seq and moves the counter and the sender's read
/// cursor to it, all only if the row went in: nothing when `(sender, client_msg_id)` exists
/// (another writer's insert of it in flight is waited for). System entries pass a NULL key
/// and get `sys:<id>`. The caller holds the conversation's row lock. Returns `id, seq,
/// client_msg_id`, or no row (a duplicate, or no such conversation).
///
/// `$1` conv, `$2` sender, `$3` key, `$4` kind, `$5` body, `$6` ref_seq, `$7` ts.
pub(super) const INSERT_ENTRY: &str = "
WITH ins AS (
    INSERT INTO messages (conv_id, seq, id, sender, client_msg_id, kind, body, ref_seq, ts)
    SELECT c.id, c.last_seq + 1, n.id, $2::BIGINT, COALESCE($3::TEXT, 'sys:' || n.id),
           $4::INTEGER, $5::TEXT, $6::BIGINT, $7::BIGINT
    FROM conversations c, (SELECT nextval('message_ids') AS id) n
    WHERE c.id = $1::BIGINT
    ON CONFLICT (sender, client_msg_id) DO NOTHING
    RETURNING id, seq, client_msg_id
), bump AS (
    UPDATE conversations c SET last_seq = ins.seq FROM ins WHERE c.id = $1::BIGINT
), mark AS (
    UPDATE members m SET read_seq = ins.seq FROM ins
    WHERE m.conv_id = $1::BIGINT AND m.user_id = $2::BIGINT AND m.read_seq < ins.seq
)
SELECT id, seq, client_msg_id FROM ins";

/// A new entry, before it has a seq.
pub(super) struct Entry<'a> {
    pub(super) conv: ConvId,
    pub(super) sender: UserId,
    /// `None` for system entries, which get a unique key derived from their id.
    pub(super) client_msg_id: Option<&'a str>,
    pub(super) kind: EntryKind,
    pub(super) body: &'a str,
    pub(super) ref_seq: Option<u64>,
}

impl Entry<'_> {
    /// The stored entry, from [`INSERT_ENTRY`]'s row.
    pub(super) fn stored(&self, row: &tokio_postgres::Row, ts: i64) -> StoredMessage {
        StoredMessage {
            id: row.get(0),
            conv: self.conv,
            seq: seq_of(row.get(1)),
            sender: self.sender,
            client_msg_id: row.get(2),
            kind: self.kind,
            text: self.body.to_owned(),
            ref_seq: self.ref_seq,
            edited_at: None,
            recalled: false,
            ts,
        }
    }
}

/// Locks the conversation's row until the transaction ends; `None` if there is none.
pub(super) async fn lock_conversation(c: &impl GenericClient, conv: ConvId) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE")
        .await
        .map_err(db)?;
    Ok(c.query_opt(&stmt, &[&conv]).await.map_err(db)?.is_some())
}

/// Inserts `e` (its conversation locked by the caller): `None` when its key exists already.
pub(super) async fn insert(
    c: &impl GenericClient,
    e: &Entry<'_>,
    now: i64,
) -> StoreResult<Option<StoredMessage>> {
    let stmt = c.prepare_cached(INSERT_ENTRY).await.map_err(db)?;
    let kind = e.kind as i32;
    let ref_seq = e.ref_seq.map(seq_param);
    let row = c
        .query_opt(
            &stmt,
            &[
                &e.conv,
                &e.sender,
                &e.client_msg_id,
                &kind,
                &e.body,
                &ref_seq,
                &now,
            ],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| e.stored(&r, now)))
}

/// [`insert`] of an entry without a key (a system entry), which is never a duplicate.
pub(super) async fn insert_system(
    c: &impl GenericClient,
    e: &Entry<'_>,
    now: i64,
) -> StoreResult<StoredMessage> {
    insert(c, e, now)
        .await?
        .ok_or(StoreError::NotFound(Missing::Conversation))
}

/// The entry `(sender, client_msg_id)`, if stored.
pub(super) async fn find_by_client_id(
    c: &impl GenericClient,
    sender: UserId,
    client_msg_id: &str,
) -> StoreResult<Option<StoredMessage>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = $1 AND client_msg_id = $2"
        ))
        .await
        .map_err(db)?;
    let row = c
        .query_opt(&stmt, &[&sender, &client_msg_id])
        .await
        .map_err(db)?;
    Ok(row.as_ref().map(rows::message))
}

pub(super) async fn by_seq(
    c: &impl GenericClient,
    conv: ConvId,
    seq: u64,
) -> StoreResult<Option<StoredMessage>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = $1 AND seq = $2"
        ))
        .await
        .map_err(db)?;
    let row = c
        .query_opt(&stmt, &[&conv, &seq_param(seq)])
        .await
        .map_err(db)?;
    Ok(row.as_ref().map(rows::message))
}

/// Applies a recall or edit to the live text message `seq` of `sender` and appends its entry,
/// in one transaction (the caller's), the conversation locked first.
pub(super) async fn amend(
    c: &impl GenericClient,
    now: i64,
    (conv, seq, sender): (ConvId, u64, UserId),
    client_msg_id: &str,
    amendment: &Amendment,
) -> StoreResult<Appended> {
    let duplicate = |message| Appended {
        message,
        duplicate: true,
    };
    if !lock_conversation(c, conv).await? {
        return Err(StoreError::NotFound(Missing::Message));
    }
    if let Some(message) = find_by_client_id(c, sender, client_msg_id).await? {
        return Ok(duplicate(message));
    }
    match by_seq(c, conv, seq).await? {
        Some(t) if t.amendable(amendment) && t.sender == sender && !t.recalled => {}
        _ => return Err(StoreError::NotFound(Missing::Message)),
    }
    let (kind, body) = match amendment {
        Amendment::Recall => {
            c.execute(
                "UPDATE messages SET body = '', recalled = TRUE WHERE conv_id = $1 AND seq = $2",
                &[&conv, &seq_param(seq)],
            )
            .await
            .map_err(db)?;
            (EntryKind::Recall, "")
        }
        Amendment::Edit(text) => {
            c.execute(
                "UPDATE messages SET body = $3, edited_at = $4 WHERE conv_id = $1 AND seq = $2",
                &[&conv, &seq_param(seq), text, &now],
            )
            .await
            .map_err(db)?;
            (EntryKind::Edit, text.as_str())
        }
    };
    let entry = Entry {
        conv,
        sender,
        client_msg_id: Some(client_msg_id),
        kind,
        body,
        ref_seq: Some(seq),
    };
    match insert(c, &entry, now).await? {
        Some(message) => Ok(Appended {
            message,
            duplicate: false,
        }),
        // The key was taken meanwhile by an entry in another conversation: the caller rolls
        // back (undoing the change) and returns that one.
        None => Err(StoreError::Conflict("client_msg_id taken".into())),
    }
}

/// Rows are fetched this many at a time, so that a byte bound stops the load early.
const CHUNK: i64 = 256;

/// Reads a page with `stmt` (`$1` conv, `$2` the bound to move past, `$3` a row count) in
/// chunks, moving the bound to each row's seq, until `limit` rows, the end, or the row whose
/// text (plus [`ENTRY_OVERHEAD`] each) passes `max_bytes` (kept unless it is the first; see
/// `Store::messages_after`).
async fn paged(
    c: &impl GenericClient,
    stmt: &tokio_postgres::Statement,
    (conv, mut bound): (ConvId, i64),
    extra: Option<i64>,
    limit: u32,
    max_bytes: usize,
) -> StoreResult<Vec<StoredMessage>> {
    let mut page = Vec::new();
    let mut bytes = 0usize;
    loop {
        let left = i64::from(limit) - i64::try_from(page.len()).unwrap_or(i64::MAX);
        if left <= 0 {
            return Ok(page);
        }
        let want = left.min(CHUNK);
        let rows = match extra {
            Some(min) => c.query(stmt, &[&conv, &bound, &min, &want]).await,
            None => c.query(stmt, &[&conv, &bound, &want]).await,
        }
        .map_err(db)?;
        let fetched = rows.len();
        for row in &rows {
            let m = rows::message(row);
            bytes = bytes.saturating_add(m.text.len() + ENTRY_OVERHEAD);
            bound = seq_param(m.seq);
            page.push(m);
            if page.len() > 1 && bytes > max_bytes {
                return Ok(page);
            }
        }
        if i64::try_from(fetched).unwrap_or(0) < want {
            return Ok(page);
        }
    }
}

pub(super) async fn after(
    c: &impl GenericClient,
    conv: ConvId,
    after: u64,
    limit: u32,
    max_bytes: usize,
) -> StoreResult<Vec<StoredMessage>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        ))
        .await
        .map_err(db)?;
    paged(c, &stmt, (conv, seq_param(after)), None, limit, max_bytes).await
}

pub(super) async fn before(
    c: &impl GenericClient,
    conv: ConvId,
    before: Option<u64>,
    min_seq: u64,
    limit: u32,
    max_bytes: usize,
) -> StoreResult<Vec<StoredMessage>> {
    let before = before.map_or(i64::MAX, seq_param);
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = $1 AND seq < $2 AND seq >= $3
             ORDER BY seq DESC LIMIT $4"
        ))
        .await
        .map_err(db)?;
    let min = Some(seq_param(min_seq));
    let mut page = paged(c, &stmt, (conv, before), min, limit, max_bytes).await?;
    page.reverse();
    Ok(page)
}

/// The conversation's counter (0 for an unknown conversation).
pub(super) async fn last_seq(c: &impl GenericClient, conv: ConvId) -> StoreResult<u64> {
    let stmt = c
        .prepare_cached("SELECT last_seq FROM conversations WHERE id = $1")
        .await
        .map_err(db)?;
    let row = c.query_opt(&stmt, &[&conv]).await.map_err(db)?;
    Ok(row.map_or(0, |r| seq_of(r.get(0))))
}

/// One query for the whole list: the newest entry of each conversation is the `last_seq` row
/// and the peer of a direct conversation its other member.
pub(super) async fn conversations_of(
    c: &impl GenericClient,
    user: UserId,
) -> StoreResult<Vec<ConversationRecord>> {
    let stmt = c
        .prepare_cached(
            "SELECT lm.id, lm.conv_id, lm.seq, lm.sender, lm.client_msg_id, lm.kind, lm.body,
                    lm.ref_seq, lm.edited_at, lm.recalled, lm.ts,
                    c.id, c.name, c.created_at, m.read_seq, p.id, p.username
             FROM members m
             JOIN conversations c ON c.id = m.conv_id
             LEFT JOIN members pm
                  ON c.kind = 'direct' AND pm.conv_id = c.id AND pm.user_id <> m.user_id
             LEFT JOIN users p ON p.id = pm.user_id
             LEFT JOIN messages lm ON lm.conv_id = c.id AND lm.seq = c.last_seq
             WHERE m.user_id = $1",
        )
        .await
        .map_err(db)?;
    let mut out: Vec<ConversationRecord> = c
        .query(&stmt, &[&user])
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            let last_message = r.get::<_, Option<i64>>(0).map(|_| rows::message_at(r, 0));
            let created_at: i64 = r.get(13);
            let peer = r
                .get::<_, Option<UserId>>(15)
                .map(|id| (id, r.get::<_, String>(16)));
            ConversationRecord {
                id: r.get(11),
                group_name: r.get(12),
                peer,
                updated_at: last_message.as_ref().map_or(created_at, |m| m.ts),
                last_message,
                read_seq: seq_of(r.get(14)),
            }
        })
        .collect();
    out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    Ok(out)
}
