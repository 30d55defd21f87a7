//! The counters a write batch assigns from: each conversation's `last_seq` and the message-id
//! high-water mark, both kept in the database (`conversations.last_seq`, `counters`).
//!
//! They live for ONE batch: read on first use after `BEGIN IMMEDIATE` (which holds the
//! database's write lock, so no other connection or process can move them meanwhile), advanced
//! in memory as entries are inserted, and written back once per conversation touched just
//! before `COMMIT`, in the same transaction as the entries. Nothing is cached across batches,
//! so several writers on one database (two handles in one process, a restored backup) never
//! assign from a stale value, and a failed batch leaves nothing behind to repair. A job whose
//! savepoint rolls back undoes its own advances ([`Counters::undo_to`]).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::ConvId;

/// One conversation's seq counter within a batch.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The newest seq assigned (committed before this batch, or inserted in it).
    last: u64,
    /// What the database row holds: written back only when `last` moved past it.
    stored: u64,
}

/// The batch's counters. See the module docs.
#[derive(Debug, Default)]
pub(super) struct Counters {
    seqs: HashMap<ConvId, Slot>,
    /// The `last` each advance replaced (`None`: the slot was new), newest last, so that a
    /// rolled-back savepoint can put them back.
    journal: Vec<(ConvId, Option<Slot>)>,
    /// `(newest id assigned, stored value)` once the batch has used an id.
    ids: Option<(i64, i64)>,
}

impl Counters {
    /// The seq the next entry of `conv` gets, or `None` if there is no such conversation.
    pub(super) fn next_seq(
        &mut self,
        conn: &Connection,
        conv: ConvId,
    ) -> rusqlite::Result<Option<u64>> {
        if let Some(slot) = self.seqs.get(&conv) {
            return Ok(Some(slot.last + 1));
        }
        let stored: Option<u64> = conn
            .prepare_cached("SELECT last_seq FROM conversations WHERE id = ?1")?
            .query_row([conv], |r| r.get(0))
            .optional()?;
        Ok(stored.map(|stored| {
            // Journaled too: a rolled-back job may have read the row of a conversation it
            // created, whose id the next one reuses.
            self.journal.push((conv, None));
            self.seqs.insert(
                conv,
                Slot {
                    last: stored,
                    stored,
                },
            );
            stored + 1
        }))
    }

    /// Records that the entry at `seq` (from [`Counters::next_seq`]) was inserted. Call it
    /// right after the insert succeeded, before anything else can fail.
    pub(super) fn advance(&mut self, conv: ConvId, seq: u64) {
        let previous = self.seqs.get(&conv).copied();
        self.journal.push((conv, previous));
        let stored = previous.map_or(seq - 1, |s| s.stored);
        self.seqs.insert(conv, Slot { last: seq, stored });
    }

    /// A position in the journal, to undo back to.
    pub(super) fn mark(&self) -> usize {
        self.journal.len()
    }

    /// Undoes every advance since `mark` (the job's savepoint was rolled back).
    pub(super) fn undo_to(&mut self, mark: usize) {
        while self.journal.len() > mark {
            let Some((conv, previous)) = self.journal.pop() else {
                break;
            };
            match previous {
                Some(slot) => self.seqs.insert(conv, slot),
                None => self.seqs.remove(&conv),
            };
        }
    }

    /// A new message id: unique and increasing across every writer of the database, and at
    /// least the commit time shifted left 16 bits, so ids also order roughly by time.
    pub(super) fn next_message_id(&mut self, conn: &Connection, now: i64) -> rusqlite::Result<i64> {
        let (last, stored) = match self.ids {
            Some(ids) => ids,
            None => {
                let stored: i64 = conn
                    .prepare_cached("SELECT value FROM counters WHERE name = 'message_id'")?
                    .query_row([], |r| r.get(0))?;
                (stored, stored)
            }
        };
        let id = (last + 1).max(now << 16);
        self.ids = Some((id, stored));
        Ok(id)
    }

    /// Writes the counters that moved back to the database, inside the batch's transaction:
    /// one `UPDATE` per conversation that got entries, one for the id counter.
    pub(super) fn flush(&self, conn: &Connection) -> rusqlite::Result<()> {
        for (conv, slot) in &self.seqs {
            if slot.last != slot.stored {
                conn.prepare_cached("UPDATE conversations SET last_seq = ?2 WHERE id = ?1")?
                    .execute(params![conv, slot.last])?;
            }
        }
        if let Some((last, stored)) = self.ids
            && last != stored
        {
            conn.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'message_id'")?
                .execute([last])?;
        }
        Ok(())
    }
}
