//! The read side of messaging: pages of a conversation's log (`sync`, `history`), the
//! conversation list, read cursors and receipts.

use banter_protocol::{
    ConversationKind, ConversationSummary, ErrorCode, MessagePage, ReadResult, Receipt,
    ReceiptsResult, ServerFrame,
};

use super::{Messaging, encode, message_view, unknown_conversation};
use crate::bus::{self, Event};
use crate::error::{Error, Result};
use crate::services::Caller;
use crate::services::fields::check_seq;
use crate::services::page::{self, encoded_len};
use crate::store::{StoreError, UserId};

impl Messaging {
    fn page_size(&self, limit: Option<u32>) -> u32 {
        limit
            .unwrap_or(self.limits.max_page)
            .clamp(1, self.limits.max_page)
    }

    /// Entries after `after_seq` that the caller may see, oldest first.
    pub async fn sync(
        &self,
        caller: &Caller,
        conversation: &str,
        after_seq: u64,
        limit: Option<u32>,
    ) -> Result<MessagePage> {
        check_seq(after_seq, "after_seq")?;
        let (conv, member) = self.membership(caller, conversation).await?;
        let limit = self.page_size(limit);
        let max_bytes = self.limits.max_page_bytes;
        let from = after_seq.max(member.joined_seq.saturating_sub(1));
        let rows = self
            .store
            .messages_after(conv, from, limit + 1, max_bytes)
            .await?;
        let messages = page::fit(rows.iter(), limit as usize, max_bytes);
        Ok(MessagePage {
            has_more: rows.len() > messages.len(),
            messages,
        })
    }

    /// Entries before `before_seq` (the newest when absent) that the caller may see.
    pub async fn history(
        &self,
        caller: &Caller,
        conversation: &str,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<MessagePage> {
        if let Some(seq) = before_seq {
            check_seq(seq, "before_seq")?;
        }
        let (conv, member) = self.membership(caller, conversation).await?;
        let limit = self.page_size(limit);
        let max_bytes = self.limits.max_page_bytes;
        let rows = self
            .store
            .messages_before(conv, before_seq, member.joined_seq, limit + 1, max_bytes)
            .await?;
        // Fitted from the newest down: the page ends next to `before_seq`.
        let mut messages = page::fit(rows.iter().rev(), limit as usize, max_bytes);
        messages.reverse();
        Ok(MessagePage {
            has_more: rows.len() > messages.len(),
            messages,
        })
    }

    /// The caller's conversations, newest activity first. The list holds every conversation
    /// (how many a user has is bounded by the group cap and by the people who message them);
    /// the previews (`last_message`) are bounded by `max_page_bytes` together: once it is spent,
    /// later conversations come without one (`sync` gets it).
    pub async fn conversations(
        &self,
        caller: &Caller,
        since_ts: Option<i64>,
    ) -> Result<Vec<ConversationSummary>> {
        let _turn = self.list_turns.take(caller.user).await;
        let list = self.store.conversations_of(caller.user).await?;
        let mut previews = page::Budget::new(self.limits.max_page_bytes);
        Ok(list
            .into_iter()
            .filter(|c| since_ts.is_none_or(|since| c.updated_at > since))
            .map(|c| {
                let last_seq = c.last_message.as_ref().map_or(0, |m| m.seq);
                ConversationSummary {
                    id: c.id.to_string(),
                    kind: if c.group_name.is_some() {
                        ConversationKind::Group
                    } else {
                        ConversationKind::Direct
                    },
                    name: c.group_name,
                    peer: c.peer.as_ref().map(|(id, _)| id.to_string()),
                    peer_username: c.peer.map(|(_, name)| name),
                    last_seq,
                    read_seq: c.read_seq,
                    unread: last_seq.saturating_sub(c.read_seq),
                    updated_at: c.updated_at,
                    last_message: c
                        .last_message
                        .as_ref()
                        .map(message_view)
                        .filter(|m| previews.take(encoded_len(m))),
                }
            })
            .collect())
    }

    /// Moves the caller's read cursor; the caller's other devices are told, and in a direct
    /// conversation so is the peer (a read receipt).
    pub async fn read(&self, caller: &Caller, conversation: &str, seq: u64) -> Result<ReadResult> {
        check_seq(seq, "seq")?;
        let (conv, _) = self.membership(caller, conversation).await?;
        let last = self.store.last_seq(conv).await?;
        if seq > last {
            return Err(Error::with(
                ErrorCode::InvalidSeq,
                format!("seq {seq} is beyond the last message ({last})"),
            ));
        }
        let read_seq = match self.store.set_read_cursor(caller.user, conv, seq).await {
            Err(StoreError::NotFound(_)) => return Err(unknown_conversation()),
            other => other?,
        };
        let frame = encode(&ServerFrame::Read {
            conversation: conv.to_string(),
            user: caller.user.to_string(),
            seq: read_seq,
        });
        let members = self.directory.members(conv).await?;
        let is_direct = !self.directory.info(conv).await?.group;
        let blocked = self.blocked_peer(caller.user, conv, &members).await?;
        let audience: &[UserId] = if is_direct && blocked.is_none() {
            &members
        } else {
            &[caller.user]
        };
        bus::publish(&*self.bus, Event::to_users(audience, frame, caller.conn));
        Ok(ReadResult { read_seq })
    }

    /// Every member's read cursor.
    pub async fn receipts(&self, caller: &Caller, conversation: &str) -> Result<ReceiptsResult> {
        let (conv, _) = self.membership(caller, conversation).await?;
        let members = self.store.member_records(conv).await?;
        let ids: Vec<UserId> = members.iter().map(|m| m.user).collect();
        let hidden = self.blocked_peer(caller.user, conv, &ids).await?;
        Ok(ReceiptsResult {
            receipts: members
                .iter()
                .filter(|m| Some(m.user) != hidden)
                .map(|m| Receipt {
                    user: m.user.to_string(),
                    read_seq: m.read_seq,
                })
                .collect(),
        })
    }
}
