//! Messaging: send (idempotent, acknowledged after commit), sync, history, the conversation
//! list and read cursors.
//!
//! Fan-out encodes each event once into shared bytes and hands them to the bus; the sender's own
//! connection gets the acknowledgement instead of the event.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use banter_protocol::{
    ConversationKind, ConversationSummary, ErrorCode, Message, MessagePage, ReadResult, SendAck,
    ServerFrame,
};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Caller, parse_id};
use crate::bus::Bus;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::{ConvId, NewMessage, Store, StoreError, StoredMessage, UserId};

/// `client_msg_id` length bounds in bytes.
const CLIENT_MSG_ID_MAX: usize = 64;
/// Entries kept in each lookup cache before it is cleared (a crude but bounded policy).
const CACHE_MAX: usize = 100_000;

/// Limits the messaging service enforces.
#[derive(Debug, Clone, Copy)]
pub struct MessagingLimits {
    /// Largest text in bytes.
    pub max_text_bytes: usize,
    /// Largest page.
    pub max_page: u32,
    /// Sustained sends per second per user.
    pub send_rate_per_sec: u32,
    /// Burst above the sustained rate.
    pub send_burst: u32,
}

/// The messaging service.
pub struct Messaging {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    limits: MessagingLimits,
    send_limiter: DefaultKeyedRateLimiter<UserId>,
    /// Direct conversation of each ordered user pair. Direct pairs never change, so entries
    /// never go stale.
    direct: Mutex<HashMap<(UserId, UserId), ConvId>>,
    /// Members of each conversation. Direct memberships never change; group memberships will
    /// invalidate their entry when they change.
    members: Mutex<HashMap<ConvId, Arc<[UserId]>>>,
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
    /// Text.
    pub text: String,
}

/// The wire form of a stored message.
pub fn message_view(m: &StoredMessage) -> Message {
    Message {
        id: m.id.to_string(),
        conversation: m.conv.to_string(),
        seq: m.seq,
        sender: m.sender.to_string(),
        client_msg_id: m.client_msg_id.clone(),
        text: m.text.clone(),
        ts: m.ts,
    }
}

/// Serializes a server frame once, for every recipient.
pub fn encode(frame: &ServerFrame) -> Bytes {
    Bytes::from(serde_json::to_vec(frame).expect("server frames always serialize"))
}

fn cache_put<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut map = map.lock().expect("cache lock");
    if map.len() >= CACHE_MAX {
        map.clear();
    }
    map.insert(key, value);
}

fn unknown_conversation() -> Error {
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
        limits: MessagingLimits,
    ) -> Self {
        let rate = NonZeroU32::new(limits.send_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.send_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            store,
            bus,
            metrics,
            limits,
            send_limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            direct: Mutex::default(),
            members: Mutex::default(),
        }
    }

    /// Forgets rate-limiter state of users idle long enough to be back at full burst.
    pub fn prune(&self) {
        self.send_limiter.retain_recent();
        self.send_limiter.shrink_to_fit();
    }

    /// Stores a message and delivers it; returns the acknowledgement (the original one for a
    /// retried `client_msg_id`).
    pub async fn send(&self, caller: &Caller, req: SendRequest) -> Result<SendAck> {
        if req.client_msg_id.is_empty() || req.client_msg_id.len() > CLIENT_MSG_ID_MAX {
            return Err(Error::new(
                ErrorCode::InvalidClientMsgId,
                "client_msg_id must be 1 to 64 bytes",
            ));
        }
        if req.text.trim().is_empty() {
            return Err(Error::new(ErrorCode::EmptyMessage, "the message is empty"));
        }
        if req.text.len() > self.limits.max_text_bytes {
            return Err(Error::with(
                ErrorCode::TextTooLong,
                format!("text exceeds {} bytes", self.limits.max_text_bytes),
            ));
        }
        if self.send_limiter.check_key(&caller.user).is_err() {
            return Err(Error::new(
                ErrorCode::RateLimited,
                "sending too fast; slow down and retry",
            ));
        }
        let (conv, members) = self.resolve_target(caller, &req).await?;
        let appended = self
            .store
            .append(NewMessage {
                conv,
                sender: caller.user,
                client_msg_id: req.client_msg_id,
                text: req.text,
            })
            .await?;
        let m = &appended.message;
        if !appended.duplicate {
            self.metrics.message_in();
            let frame = encode(&ServerFrame::Message {
                message: message_view(m),
            });
            self.bus.publish(&members, frame, caller.conn).await;
        }
        Ok(SendAck {
            conversation: m.conv.to_string(),
            seq: m.seq,
            message_id: m.id.to_string(),
            ts: m.ts,
            duplicate: appended.duplicate,
        })
    }

    /// The conversation a send goes to, and its members (the caller among them).
    async fn resolve_target(
        &self,
        caller: &Caller,
        req: &SendRequest,
    ) -> Result<(ConvId, Arc<[UserId]>)> {
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
                Ok((conv, Arc::from(pair)))
            }
            (None, Some(conv)) => {
                let conv = parse_id(conv, ErrorCode::UnknownConversation, "conversation")?;
                let members = self.member_check(caller, conv).await?;
                Ok((conv, members))
            }
            _ => Err(Error::new(
                ErrorCode::BadRequest,
                "give exactly one of `to` and `conversation`",
            )),
        }
    }

    async fn direct_conversation(&self, a: UserId, b: UserId) -> Result<ConvId> {
        let key = (a.min(b), a.max(b));
        if let Some(conv) = self.direct.lock().expect("cache lock").get(&key) {
            return Ok(*conv);
        }
        let conv = match self.store.direct_conversation(a, b).await {
            Err(StoreError::NotFound) => {
                return Err(Error::new(ErrorCode::UnknownUser, "no such user"));
            }
            other => other?,
        };
        cache_put(&self.direct, key, conv);
        Ok(conv)
    }

    /// The members of `conv`, if the caller is one of them.
    async fn member_check(&self, caller: &Caller, conv: ConvId) -> Result<Arc<[UserId]>> {
        let cached = self.members.lock().expect("cache lock").get(&conv).cloned();
        let members = match cached {
            Some(m) => m,
            None => {
                let m: Arc<[UserId]> = self.store.members(conv).await?.into();
                if !m.is_empty() {
                    cache_put(&self.members, conv, Arc::clone(&m));
                }
                m
            }
        };
        if members.binary_search(&caller.user).is_ok() {
            Ok(members)
        } else {
            Err(unknown_conversation())
        }
    }

    fn page_size(&self, limit: Option<u32>) -> u32 {
        limit
            .unwrap_or(self.limits.max_page)
            .clamp(1, self.limits.max_page)
    }

    /// Messages after `after_seq`, oldest first.
    pub async fn sync(
        &self,
        caller: &Caller,
        conversation: &str,
        after_seq: u64,
        limit: Option<u32>,
    ) -> Result<MessagePage> {
        let conv = parse_id(conversation, ErrorCode::UnknownConversation, "conversation")?;
        self.member_check(caller, conv).await?;
        let limit = self.page_size(limit);
        let mut page = self
            .store
            .messages_after(conv, after_seq, limit + 1)
            .await?;
        let has_more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok(MessagePage {
            messages: page.iter().map(message_view).collect(),
            has_more,
        })
    }

    /// Messages before `before_seq` (the newest when absent), oldest first.
    pub async fn history(
        &self,
        caller: &Caller,
        conversation: &str,
        before_seq: Option<u64>,
        limit: Option<u32>,
    ) -> Result<MessagePage> {
        let conv = parse_id(conversation, ErrorCode::UnknownConversation, "conversation")?;
        self.member_check(caller, conv).await?;
        let limit = self.page_size(limit);
        let page = self
            .store
            .messages_before(conv, before_seq, limit + 1)
            .await?;
        let has_more = page.len() > limit as usize;
        let skip = usize::from(has_more);
        Ok(MessagePage {
            messages: page[skip..].iter().map(message_view).collect(),
            has_more,
        })
    }

    /// The caller's conversations, newest activity first, optionally only those updated after
    /// `since_ts`.
    pub async fn conversations(
        &self,
        caller: &Caller,
        since_ts: Option<i64>,
    ) -> Result<Vec<ConversationSummary>> {
        let list = self.store.conversations_of(caller.user).await?;
        Ok(list
            .into_iter()
            .filter(|c| since_ts.is_none_or(|since| c.updated_at > since))
            .map(|c| {
                let last_seq = c.last_message.as_ref().map_or(0, |m| m.seq);
                ConversationSummary {
                    id: c.id.to_string(),
                    kind: ConversationKind::Direct,
                    peer: c.peer.as_ref().map(|(id, _)| id.to_string()),
                    peer_username: c.peer.map(|(_, name)| name),
                    last_seq,
                    read_seq: c.read_seq,
                    unread: last_seq.saturating_sub(c.read_seq),
                    updated_at: c.updated_at,
                    last_message: c.last_message.as_ref().map(message_view),
                }
            })
            .collect())
    }

    /// Moves the caller's read cursor and tells the caller's other devices.
    pub async fn read(&self, caller: &Caller, conversation: &str, seq: u64) -> Result<ReadResult> {
        let conv = parse_id(conversation, ErrorCode::UnknownConversation, "conversation")?;
        self.member_check(caller, conv).await?;
        let last = self.store.last_seq(conv).await?;
        if seq > last {
            return Err(Error::with(
                ErrorCode::InvalidSeq,
                format!("seq {seq} is beyond the last message ({last})"),
            ));
        }
        let read_seq = match self.store.set_read_cursor(caller.user, conv, seq).await {
            Err(StoreError::NotFound) => return Err(unknown_conversation()),
            other => other?,
        };
        let frame = encode(&ServerFrame::Read {
            conversation: conv.to_string(),
            user: caller.user.to_string(),
            seq: read_seq,
        });
        self.bus.publish(&[caller.user], frame, caller.conn).await;
        Ok(ReadResult { read_seq })
    }
}
