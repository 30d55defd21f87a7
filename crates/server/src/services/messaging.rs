//! Messaging: send (idempotent, acknowledged after commit), sync, history, the conversation
//! list, read cursors and receipts, recall, edit and typing.
//!
//! Fan-out encodes each event once into shared bytes and hands them to the bus; the sender's own
//! connection gets the acknowledgement instead of the event. The read side (pages, the
//! conversation list, cursors and receipts) is in `reads`, recall and edit in `amend`.

mod amend;
mod reads;
mod writers;

use std::sync::Arc;

use banter_protocol::{
    Attachment, AttachmentRequest, ErrorCode, Message, MessageKind, SendAck, ServerFrame,
};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::budget::{BudgetLimits, RequestBudget, quota};
use super::directory::Directory;
use super::fields::{check_client_msg_id, check_text, reused_client_msg_id};
use super::turns::Turns;
use super::{Caller, parse_id};
use crate::bus::ConnId;
use crate::bus::{self, Audience, Bus, Delivery, Event, Invalidation};
use crate::config::DirectMessagePolicy;
use crate::error::{Error, Result};
use crate::media::service::{Media, fallback_line};
use crate::media::stickers;
use crate::metrics::Metrics;
use crate::store::{
    Appended, ConvId, EntryKind, MemberRecord, NewMessage, PendingAppend, Store, StoreError,
    StoredMessage, UserId,
};

/// Typing notices per second per user and conversation.
pub const TYPING_PER_SEC: u32 = 1;
/// Typing indicators a user may burst per conversation.
pub const TYPING_BURST: u32 = 2;

/// Limits the messaging service enforces.
#[derive(Debug, Clone, Copy)]
pub struct MessagingLimits {
    /// Largest text in bytes.
    pub max_text_bytes: usize,
    /// Largest page.
    pub max_page: u32,
    /// Most encoded bytes of messages in a page (and of previews in the conversation list).
    pub max_page_bytes: usize,
    /// Sustained sends per second per user.
    pub send_rate_per_sec: u32,
    /// Burst above the sustained rate.
    pub send_burst: u32,
    /// Who may open a direct conversation.
    pub direct_policy: DirectMessagePolicy,
    /// How long after sending a message may be recalled, in ms.
    pub recall_window_ms: i64,
    /// The budget of state-changing requests other than sends.
    pub requests: BudgetLimits,
}

/// The messaging service.
pub struct Messaging {
    store: Arc<dyn Store>,
    media: Arc<Media>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    directory: Arc<Directory>,
    limits: MessagingLimits,
    send_limiter: DefaultKeyedRateLimiter<UserId>,
    typing_limiter: DefaultKeyedRateLimiter<(UserId, ConvId)>,
    budget: RequestBudget,
    /// One conversation list at a time per user (see `turns`).
    list_turns: Turns,
    /// Where this node's group appends are in flight, in a cluster (see `writers`).
    routes: Arc<writers::Routes>,
}

/// A send whose append is queued (see [`Messaging::queue_send`]).
pub struct QueuedSend {
    commit: Commit,
    members: Arc<[UserId]>,
}

/// Where a queued send commits.
enum Commit {
    /// In this node's store.
    Here(PendingAppend),
    /// On its group's line, in a cluster (`writers`): in this node's store or on the group's
    /// writer.
    Group(writers::PendingGroupAppend),
}

/// What to send: text to a user or into a conversation.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// Recipient user id (direct message).
    pub to: Option<String>,
    /// Conversation id.
    pub conversation: Option<String>,
    /// Idempotency key.
    pub client_msg_id: String,
    /// Text (the caption, with an attachment).
    pub text: String,
    /// A file to send with it.
    pub attachment: Option<AttachmentRequest>,
    /// A built-in sticker to send instead of text.
    pub sticker: Option<String>,
}

/// What an [`EntryKind::Attachment`] entry's body holds.
#[derive(Serialize, Deserialize)]
struct AttachmentBody {
    text: String,
    attachment: Attachment,
}

/// The wire form of a stored entry.
pub fn message_view(m: &StoredMessage) -> Message {
    let system = m.kind == EntryKind::System;
    // An attachment's body is the caption and the file; the wire text starts with a line for
    // clients that do not know attachments. A recalled one has neither.
    let (text, attachment) = if m.kind == EntryKind::Attachment {
        match serde_json::from_str::<AttachmentBody>(&m.text) {
            Ok(AttachmentBody {
                text,
                mut attachment,
            }) => {
                attachment.caption.clone_from(&text);
                let line = fallback_line(&attachment);
                let shown = if text.is_empty() {
                    line
                } else {
                    format!("{line}\n{text}")
                };
                (shown, Some(Box::new(attachment)))
            }
            Err(_) => (String::new(), None),
        }
    } else if system {
        (String::new(), None)
    } else {
        (m.text.clone(), None)
    };
    // A sticker's body is its id; a recalled one (or one this version no longer has) shows
    // only what the id says.
    let sticker = (m.kind == EntryKind::Sticker)
        .then(|| stickers::find(&m.text))
        .flatten();
    let text = match (m.kind, sticker) {
        (EntryKind::Sticker, Some(s)) => s.fallback_line(),
        (EntryKind::Sticker, None) if !m.text.is_empty() => format!("[Sticker: {}]", m.text),
        (EntryKind::Sticker, None) => String::new(),
        _ => text,
    };
    Message {
        id: m.id.to_string(),
        conversation: m.conv.to_string(),
        seq: m.seq,
        sender: m.sender.to_string(),
        client_msg_id: if system {
            String::new()
        } else {
            m.client_msg_id.clone()
        },
        kind: match m.kind {
            EntryKind::Text => MessageKind::Text,
            EntryKind::System => MessageKind::System,
            EntryKind::Recall => MessageKind::Recall,
            EntryKind::Edit => MessageKind::Edit,
            // Old clients show it as text (the fallback line and the caption).
            EntryKind::Attachment | EntryKind::Sticker => MessageKind::Text,
        },
        text,
        attachment,
        sticker: sticker.map(|s| Box::new(s.view())),
        ref_seq: m.ref_seq,
        event: if system {
            serde_json::from_str(&m.text).ok()
        } else {
            None
        },
        edited_at: m.edited_at,
        recalled: m.recalled,
        ts: m.ts,
    }
}

/// Spare capacity past which an encoded frame is shrunk to fit (see [`encode`]).
const ENCODE_SLACK: usize = 4096;

/// Serializes a server frame once, for every recipient. The buffer grows by doubling and
/// `Bytes` keeps the whole allocation while the frame waits to be written, so a large reply
/// (a page of up to `max_page_bytes`) would hold up to twice its size: past a little slack it
/// is shrunk to fit (one reallocation, only for large frames).
pub fn encode(frame: &ServerFrame) -> Bytes {
    let mut bytes = serde_json::to_vec(frame).expect("server frames always serialize");
    if bytes.capacity() - bytes.len() > ENCODE_SLACK {
        bytes.shrink_to_fit();
    }
    Bytes::from(bytes)
}

/// The event that delivers entry `m` to `users` but connection `except`.
fn entry_event(except: Option<ConnId>, m: &StoredMessage, users: Arc<[UserId]>) -> Event {
    let frame = encode(&ServerFrame::Message {
        message: message_view(m),
    });
    Event::Deliver(Delivery {
        audience: Audience::Users(users),
        entry: Some((m.conv, m.seq)),
        frame,
        except,
    })
}

/// The acknowledgement of an appended entry.
fn ack(appended: &Appended) -> SendAck {
    let m = &appended.message;
    SendAck {
        conversation: m.conv.to_string(),
        seq: m.seq,
        message_id: m.id.to_string(),
        ts: m.ts,
        duplicate: appended.duplicate,
    }
}

pub(crate) fn unknown_conversation() -> Error {
    Error::new(
        ErrorCode::UnknownConversation,
        "no such conversation, or you are not a member",
    )
}

impl Messaging {
    /// A service over `store` and `bus`.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        directory: Arc<Directory>,
        media: Arc<Media>,
        limits: MessagingLimits,
    ) -> Self {
        Self {
            store,
            media,
            bus,
            metrics,
            directory,
            limits,
            send_limiter: RateLimiter::keyed(quota(
                Quota::per_second,
                limits.send_rate_per_sec,
                limits.send_burst,
            )),
            typing_limiter: RateLimiter::keyed(quota(
                Quota::per_second,
                TYPING_PER_SEC,
                TYPING_BURST,
            )),
            budget: RequestBudget::new(limits.requests),
            list_turns: Turns::default(),
            routes: Arc::default(),
        }
    }

    /// Forgets rate-limiter state of users idle long enough to be back at full burst.
    pub fn prune(&self) {
        self.send_limiter.retain_recent();
        self.send_limiter.shrink_to_fit();
        self.typing_limiter.retain_recent();
        self.typing_limiter.shrink_to_fit();
        self.budget.prune();
    }

    /// Takes one state-changing request (other than a send) from the user's and the
    /// connection's budgets.
    pub fn check_request_budget(&self, user: UserId, conn: Option<ConnId>) -> Result<()> {
        self.budget.check(user, conn)
    }

    /// Takes one send from the user's budget (shared with chatroom sends).
    pub fn check_send_rate(&self, user: UserId) -> Result<()> {
        self.send_limiter.check_key(&user).map_err(|_| {
            Error::new(
                ErrorCode::RateLimited,
                "sending too fast; slow down and retry",
            )
        })
    }

    /// Publishes an entry to `users` but connection `except`, in seq order within its
    /// conversation.
    pub fn publish(&self, except: Option<ConnId>, m: &StoredMessage, users: Arc<[UserId]>) {
        bus::publish(&*self.bus, entry_event(except, m, users));
    }

    /// Tells every node that a cached answer is stale (after the change committed).
    pub fn invalidate(&self, what: Invalidation) {
        bus::publish(&*self.bus, Event::Invalidate(what));
    }

    /// Checks a send and queues its append; [`Messaging::finish_send`] completes it. Sends
    /// queued one after another commit in that order; a connection pipelines its sends by
    /// queueing the next before the previous one committed.
    pub async fn queue_send(&self, caller: &Caller, req: SendRequest) -> Result<QueuedSend> {
        check_client_msg_id(&req.client_msg_id)?;
        // A file may go without a caption; a sticker goes alone.
        if let Some(id) = &req.sticker {
            if !req.text.is_empty() || req.attachment.is_some() {
                return Err(Error::new(
                    ErrorCode::InvalidField,
                    "a sticker is sent without text or a file",
                ));
            }
            if stickers::find(id).is_none() {
                return Err(Error::new(ErrorCode::UnknownSticker, "no such sticker"));
            }
        } else if req.attachment.is_none() || !req.text.is_empty() {
            check_text(&req.text, self.limits.max_text_bytes)?;
        }
        self.check_send_rate(caller.user)?;
        let (conv, members, group) = self.resolve_target(caller, &req).await?;
        let (kind, text) = match &req.attachment {
            None if req.sticker.is_some() => (EntryKind::Sticker, req.sticker.unwrap_or_default()),
            None => (EntryKind::Text, req.text),
            Some(file) => {
                let attachment = self
                    .media
                    .attach(caller.user, conv, file, &req.text)
                    .await?;
                let body = AttachmentBody {
                    text: req.text,
                    attachment,
                };
                let body = serde_json::to_string(&body).expect("an attachment serializes");
                (EntryKind::Attachment, body)
            }
        };
        let message = NewMessage {
            conv,
            sender: caller.user,
            client_msg_id: req.client_msg_id,
            text,
            kind,
        };
        let commit = if group && self.bus.clustered() {
            Commit::Group(self.queue_group_append(message, caller.conn).await?)
        } else {
            Commit::Here(self.store.queue_append(message).await?)
        };
        Ok(QueuedSend { commit, members })
    }

    /// Waits for a queued send's commit, delivers it and returns the acknowledgement (the
    /// original one for a retried `client_msg_id`).
    pub async fn finish_send(&self, caller: &Caller, queued: QueuedSend) -> Result<SendAck> {
        let (appended, delivered) = match queued.commit {
            Commit::Here(pending) => (pending.await?, false),
            Commit::Group(pending) => {
                let written = pending.await?;
                (written.appended, written.delivered)
            }
        };
        let sent_kind = matches!(
            appended.message.kind,
            EntryKind::Text | EntryKind::Attachment | EntryKind::Sticker
        );
        if appended.duplicate && !sent_kind {
            return Err(reused_client_msg_id());
        }
        if !appended.duplicate {
            self.metrics.message_in();
            if !delivered {
                self.publish(caller.conn, &appended.message, queued.members);
            }
        }
        Ok(ack(&appended))
    }

    /// The conversation a send goes to, its members (the caller among them), and whether it
    /// is a group.
    async fn resolve_target(
        &self,
        caller: &Caller,
        req: &SendRequest,
    ) -> Result<(ConvId, Arc<[UserId]>, bool)> {
        match (&req.to, &req.conversation) {
            (Some(to), None) => {
                let peer = parse_id(to, ErrorCode::UnknownUser, "user")?;
                if peer == caller.user {
                    return Err(Error::new(
                        ErrorCode::CannotMessageSelf,
                        "you cannot send a direct message to yourself",
                    ));
                }
                let conv = self.direct_conversation(caller.user, peer).await?;
                let mut pair = [caller.user, peer];
                pair.sort_unstable();
                Ok((conv, Arc::from(pair), false))
            }
            (None, Some(conv)) => {
                let conv = parse_id(conv, ErrorCode::UnknownConversation, "conversation")?;
                let members = self.member_check(caller, conv).await?;
                let info = self.directory.info(conv).await?;
                if info.dissolved {
                    return Err(dissolved());
                }
                if !info.group
                    && let Some(peer) = members.iter().find(|u| **u != caller.user)
                {
                    self.check_direct_allowed(caller.user, *peer).await?;
                }
                Ok((conv, members, info.group))
            }
            _ => Err(Error::new(
                ErrorCode::BadRequest,
                "give exactly one of `to` and `conversation`",
            )),
        }
    }

    /// Refuses a direct message that a block or the server policy forbids.
    async fn check_direct_allowed(&self, from: UserId, to: UserId) -> Result<()> {
        let rel = self.directory.relation(from, to).await?;
        if rel.a_blocked || rel.b_blocked {
            return Err(Error::new(
                ErrorCode::Blocked,
                "one of you has blocked the other",
            ));
        }
        if self.limits.direct_policy == DirectMessagePolicy::Friends && !rel.friends {
            return Err(Error::new(
                ErrorCode::NotFriends,
                "direct messages are open to friends only",
            ));
        }
        Ok(())
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> Result<ConvId> {
        if let Some(conv) = self.directory.direct(a, b) {
            self.check_direct_allowed(a, b).await?;
            return Ok(conv);
        }
        if self.store.user_by_id(b).await?.is_none_or(|u| u.deleted) {
            return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
        }
        self.check_direct_allowed(a, b).await?;
        let conv = match self.store.direct_conversation(a, b).await {
            Err(StoreError::NotFound(_)) => {
                return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
            }
            other => other?,
        };
        self.directory.put_direct(a, b, conv);
        Ok(conv)
    }

    /// The other member of a direct conversation `conv`, when one of the two blocked the other:
    /// a block also silences typing and read receipts between them (PROTOCOL.md, "What a block
    /// does").
    async fn blocked_peer(
        &self,
        caller: UserId,
        conv: ConvId,
        members: &[UserId],
    ) -> Result<Option<UserId>> {
        if self.directory.info(conv).await?.group {
            return Ok(None);
        }
        let Some(peer) = members.iter().copied().find(|u| *u != caller) else {
            return Ok(None);
        };
        let rel = self.directory.relation(caller, peer).await?;
        Ok((rel.a_blocked || rel.b_blocked).then_some(peer))
    }

    /// The members of `conv`, if the caller is one of them.
    async fn member_check(&self, caller: &Caller, conv: ConvId) -> Result<Arc<[UserId]>> {
        let members = self.directory.members(conv).await?;
        if members.binary_search(&caller.user).is_ok() {
            Ok(members)
        } else {
            Err(unknown_conversation())
        }
    }

    /// The caller's membership of `conv` (with the point their history starts).
    async fn membership(
        &self,
        caller: &Caller,
        conversation: &str,
    ) -> Result<(ConvId, MemberRecord)> {
        let conv = parse_id(conversation, ErrorCode::UnknownConversation, "conversation")?;
        let member = self
            .store
            .member(conv, caller.user)
            .await?
            .ok_or_else(unknown_conversation)?;
        Ok((conv, member))
    }

    /// Tells the conversation's other members the caller is typing.
    pub async fn typing(&self, caller: &Caller, conversation: &str) -> Result<()> {
        let conv = parse_id(conversation, ErrorCode::UnknownConversation, "conversation")?;
        let members = self.member_check(caller, conv).await?;
        if self
            .blocked_peer(caller.user, conv, &members)
            .await?
            .is_some()
        {
            return Err(Error::new(
                ErrorCode::Blocked,
                "one of you has blocked the other",
            ));
        }
        if self.typing_limiter.check_key(&(caller.user, conv)).is_err() {
            return Err(Error::new(
                ErrorCode::RateLimited,
                "typing notices are limited to one per second",
            ));
        }
        let frame = encode(&ServerFrame::Typing {
            conversation: conv.to_string(),
            user: caller.user.to_string(),
        });
        // Collected straight into the shared slice the event carries (no Vec copied into it).
        let others: Arc<[UserId]> = members
            .iter()
            .copied()
            .filter(|u| *u != caller.user)
            .collect();
        bus::publish(&*self.bus, Event::to_users(others, frame, caller.conn));
        Ok(())
    }
}

pub(crate) fn dissolved() -> Error {
    Error::new(ErrorCode::GroupDissolved, "the group was dissolved")
}
