//! Conversation entries: append (with idempotency), amend, paging and the conversation list.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, MESSAGE_COLUMNS};
use super::writer::{WriteCtx, backend};
use crate::store::{
    Amendment, Appended, ConvId, ConversationRecord, ENTRY_OVERHEAD, EntryKind, Missing,
    NewMessage, StoreError, StoreResult, StoredMessage, UserId,
};

/// The entry `(sender, client_msg_id)`, if stored.
fn find_by_client_id(
    conn: &Connection,
    sender: UserId,
    client_msg_id: &str,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ?1 AND client_msg_id = ?2"
    ))?
    .query_row(params![sender, client_msg_id], rows::message)
    .optional()
}

/// A new entry, before it has a seq.
pub(super) struct Entry<'a> {
    pub(super) conv: ConvId,
    pub(super) sender: UserId,
    /// `None` for system entries, which get a unique key derived from their id.
    pub(super) client_msg_id: Option<String>,
    pub(super) kind: EntryKind,
    pub(super) body: &'a str,
    pub(super) ref_seq: Option<u64>,
}

/// Inserts an entry at the next seq of its conversation.
pub(super) fn insert(ctx: &mut WriteCtx<'_>, e: Entry<'_>) -> StoreResult<StoredMessage> {
    let seq = ctx.next_seq(e.conv)?;
    try_insert(ctx, e, seq).map_err(backend)
}

/// [`insert`] at `seq` (from `next_seq`), keeping SQLite's error so that a caller can tell a
/// duplicate key apart. The counter advances as soon as the row is in, so that whatever fails
/// after it, the counter and the rows of the transaction agree (a job without a savepoint
/// whose later statement fails leaves its row to commit: a retry finds it as a duplicate).
fn try_insert(ctx: &mut WriteCtx<'_>, e: Entry<'_>, seq: u64) -> rusqlite::Result<StoredMessage> {
    let id = ctx.next_message_id()?;
    let client_msg_id = e.client_msg_id.unwrap_or_else(|| format!("sys:{id}"));
    ctx.conn
        .prepare_cached(
            "INSERT INTO messages (conv_id, seq, id, sender, client_msg_id, kind, body, ref_seq, ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                e.conv,
                seq,
                id,
                e.sender,
                client_msg_id,
                e.kind as i64,
                e.body,
                e.ref_seq,
                ctx.now
            ])
        })?;
    ctx.advance_seq(e.conv, seq);
    mark_read_by_sender(ctx.conn, e.conv, e.sender, seq)?;
    Ok(StoredMessage {
        id,
        conv: e.conv,
        seq,
        sender: e.sender,
        client_msg_id,
        kind: e.kind,
        text: e.body.to_owned(),
        ref_seq: e.ref_seq,
        edited_at: None,
        recalled: false,
        ts: ctx.now,
    })
}

/// Appends a text message, or returns the original for a repeated `(sender, client_msg_id)`.
/// The insert comes first and the unique index decides: a new message (the common case) costs
/// one index descent instead of a lookup followed by the insert's own.
pub(super) fn append(ctx: &mut WriteCtx<'_>, m: NewMessage) -> StoreResult<Appended> {
    let seq = ctx.next_seq(m.conv)?;
    let entry = Entry {
        conv: m.conv,
        sender: m.sender,
        client_msg_id: Some(m.client_msg_id.clone()),
        kind: m.kind,
        body: &m.text,
        ref_seq: None,
    };
    match try_insert(ctx, entry, seq) {
        Ok(message) => Ok(Appended {
            message,
            duplicate: false,
        }),
        // A failed statement undoes only itself; the batch's transaction goes on.
        Err(e) if is_duplicate_key(&e) => {
            match find_by_client_id(ctx.conn, m.sender, &m.client_msg_id).map_err(backend)? {
                Some(message) => Ok(Appended {
                    message,
                    duplicate: true,
                }),
                None => Err(backend(e)),
            }
        }
        Err(e) => Err(backend(e)),
    }
}

/// One has read what one writes, and what came before it: the sender's read cursor moves to
/// each entry they make (a message, an edit, a group change), so their own entries never count
/// as unread for them. (A sender who is no longer a member, as after leaving, has no row.)
fn mark_read_by_sender(
    conn: &Connection,
    conv: ConvId,
    sender: UserId,
    seq: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE members SET read_seq = ?1 WHERE conv_id = ?2 AND user_id = ?3 AND read_seq < ?1",
    )?
    .execute(params![seq, conv, sender])?;
    Ok(())
}

/// Whether `e` is a UNIQUE index violation (only `(sender, client_msg_id)` is unique besides
/// the primary key, which reports `SQLITE_CONSTRAINT_PRIMARYKEY` instead).
fn is_duplicate_key(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

pub(super) fn amend(
    ctx: &mut WriteCtx<'_>,
    conv: ConvId,
    seq: u64,
    sender: UserId,
    client_msg_id: String,
    amendment: Amendment,
) -> StoreResult<Appended> {
    if let Some(message) = find_by_client_id(ctx.conn, sender, &client_msg_id).map_err(backend)? {
        return Ok(Appended {
            message,
            duplicate: true,
        });
    }
    let target = by_seq(ctx.conn, conv, seq).map_err(backend)?;
    match target {
        Some(t) if t.amendable(&amendment) && t.sender == sender && !t.recalled => {}
        _ => return Err(StoreError::NotFound(Missing::Message)),
    }
    let (kind, body) = match &amendment {
        Amendment::Recall => {
            ctx.conn
                .prepare_cached(
                    "UPDATE messages SET body = '', recalled = 1 WHERE conv_id = ?1 AND seq = ?2",
                )
                .and_then(|mut s| s.execute(params![conv, seq]))
                .map_err(backend)?;
            (EntryKind::Recall, "")
        }
        Amendment::Edit(text) => {
            ctx.conn
                .prepare_cached(
                    "UPDATE messages SET body = ?3, edited_at = ?4 WHERE conv_id = ?1 AND seq = ?2",
                )
                .and_then(|mut s| s.execute(params![conv, seq, text, ctx.now]))
                .map_err(backend)?;
            (EntryKind::Edit, text.as_str())
        }
    };
    let message = insert(
        ctx,
        Entry {
            conv,
            sender,
            client_msg_id: Some(client_msg_id),
            kind,
            body,
            ref_seq: Some(seq),
        },
    )?;
    Ok(Appended {
        message,
        duplicate: false,
    })
}

pub(super) fn by_seq(
    conn: &Connection,
    conv: ConvId,
    seq: u64,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 AND seq = ?2"
    ))?
    .query_row(params![conv, seq], rows::message)
    .optional()
}

/// Collects rows until their texts (plus [`ENTRY_OVERHEAD`] each) pass `max_bytes`, the row
/// that passes it included unless it is the first (see `Store::messages_after`): rows past it
/// are never loaded.
fn collect_bounded(
    rows: impl Iterator<Item = rusqlite::Result<StoredMessage>>,
    max_bytes: usize,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        let m = row?;
        bytes = bytes.saturating_add(m.text.len() + ENTRY_OVERHEAD);
        page.push(m);
        if page.len() > 1 && bytes > max_bytes {
            break;
        }
    }
    Ok(page)
}

/// Seqs are stored as SQLite's signed integers: a bound past `i64::MAX` is clamped to it
/// (the services refuse such seqs before they get here).
fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(super) fn after(
    conn: &Connection,
    conv: ConvId,
    after: u64,
    limit: u32,
    max_bytes: usize,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 AND seq > ?2
         ORDER BY seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![conv, seq_param(after), limit], rows::message)?;
    collect_bounded(rows, max_bytes)
}

pub(super) fn before(
    conn: &Connection,
    conv: ConvId,
    before: Option<u64>,
    min_seq: u64,
    limit: u32,
    max_bytes: usize,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let before = before.map_or(i64::MAX, seq_param);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_id = ?1 AND seq < ?2 AND seq >= ?3
         ORDER BY seq DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![conv, before, seq_param(min_seq), limit],
        rows::message,
    )?;
    let mut page = collect_bounded(rows, max_bytes)?;
    page.reverse();
    Ok(page)
}

/// The conversation's counter (0 for an unknown conversation).
pub(super) fn last_seq(conn: &Connection, conv: ConvId) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT last_seq FROM conversations WHERE id = ?1")?
        .query_row([conv], |r| r.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// One query for the whole list, whatever its length: the newest entry of each conversation is
/// the `last_seq` row (a primary-key lookup) and the peer of a direct conversation its other
/// member. (It used to be two queries per conversation, which let one user with thousands of
/// groups hold a reader for long enough to slow everyone's token lookups.)
pub(super) fn conversations_of(
    conn: &Connection,
    user: UserId,
) -> rusqlite::Result<Vec<ConversationRecord>> {
    let mut list = conn.prepare_cached(
        "SELECT lm.id, lm.conv_id, lm.seq, lm.sender, lm.client_msg_id, lm.kind, lm.body,
                lm.ref_seq, lm.edited_at, lm.recalled, lm.ts,
                c.id, c.name, c.created_at, m.read_seq, p.id, p.username
         FROM members m
         JOIN conversations c ON c.id = m.conv_id
         LEFT JOIN members pm ON c.kind = 'direct' AND pm.conv_id = c.id AND pm.user_id <> m.user_id
         LEFT JOIN users p ON p.id = pm.user_id
         LEFT JOIN messages lm ON lm.conv_id = c.id
              AND lm.seq = c.last_seq
         WHERE m.user_id = ?1",
    )?;
    let mut out = list
        .query_map([user], |r| {
            let last_message = match r.get::<_, Option<i64>>(0)? {
                Some(_) => Some(rows::message(r)?),
                None => None,
            };
            let created_at: i64 = r.get(13)?;
            let peer = match r.get::<_, Option<UserId>>(15)? {
                Some(id) => Some((id, r.get(16)?)),
                None => None,
            };
            Ok(ConversationRecord {
                id: r.get(11)?,
                group_name: r.get(12)?,
                peer,
                updated_at: last_message.as_ref().map_or(created_at, |m| m.ts),
                last_message,
                read_seq: r.get(14)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    Ok(out)
}
