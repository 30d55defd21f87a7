//! Turns one client text frame into one reply frame: parse, call the service, encode. A send
//! is taken in two steps (queue its append, then answer after the commit) so that a connection
//! can pipeline sends; see [`admit`].
//!
//! Parse errors are told apart here: a frame that is not a JSON object with a string `type` is
//! `bad_request`; a `type` we do not know is `unknown_type`; a known type with bad fields is
//! `bad_request` again. The request id is echoed whenever it could be read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use banter_protocol::{
    ClientFrame, ClientRequest as R, ConversationsResult, ErrorCode, GroupAddResult, GroupsResult,
    MembersResult, PresenceResult, ProfilesResult, ServerFrame,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Result, plain_parse_error};
use crate::registry::ConnHandle;
use crate::services::Caller;
use crate::services::messaging::{SendRequest, encode};
use crate::services::rooms::ROOMS_PER_CONNECTION;
use crate::state::App;
use crate::store::{Amendment, ProfilePatch};

/// The envelope alone, read when the full parse failed.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<Value>,
    id: Option<Value>,
}

/// How a request is taken on.
pub(super) enum Admission {
    /// Answered already (it did not parse, or failed its checks).
    Reply(Bytes),
    /// A send whose append is queued; the reply is ready once it has committed. Requests read
    /// after it may be admitted meanwhile (pipelining).
    Queued(Pending),
    /// Any other request: it runs alone, once every earlier one has been answered, so that it
    /// sees their effects.
    Exclusive(ClientFrame),
}

/// A reply that is ready once its request's writes have committed.
pub(super) type Pending = Pin<Box<dyn Future<Output = Bytes> + Send>>;

/// Whether a request may be admitted while earlier ones still wait for their commits: a send,
/// whose only effect is an append queued in order behind theirs.
fn pipelined(request: &R) -> bool {
    matches!(request, R::Send { .. })
}

/// Whether a request spends the request budget (per user and per connection, see
/// `services::budget`): every request that changes state, except sends and room sends, which
/// spend the send budget. Reads are bounded by their reply size instead. Written as a match on
/// every variant so that a new request type has to be classified here.
fn budgeted(request: &R) -> bool {
    match request {
        R::Send { .. }
        | R::RoomSend { .. }
        | R::Sync { .. }
        | R::History { .. }
        | R::Conversations { .. }
        | R::Receipts { .. }
        | R::Presence { .. }
        | R::Profiles { .. }
        | R::Friends
        | R::Groups
        | R::GroupMembers { .. }
        | R::Ping => false,
        R::Read { .. }
        | R::Recall { .. }
        | R::Edit { .. }
        | R::Typing { .. }
        | R::ProfileUpdate { .. }
        | R::FriendRequest { .. }
        | R::FriendAccept { .. }
        | R::FriendDecline { .. }
        | R::FriendCancel { .. }
        | R::FriendRemove { .. }
        | R::Block { .. }
        | R::Unblock { .. }
        | R::GroupCreate { .. }
        | R::GroupAdd { .. }
        | R::GroupJoin { .. }
        | R::GroupLeave { .. }
        | R::GroupRemove { .. }
        | R::GroupRole { .. }
        | R::GroupTransfer { .. }
        | R::GroupUpdate { .. }
        | R::GroupDissolve { .. }
        | R::RoomJoin { .. }
        | R::RoomLeave { .. } => true,
    }
}

/// Parses a frame and, for a send, queues its append. Admitting requests one after another
/// queues their writes in that order: pipelined sends keep their order.
pub(super) async fn admit(
    app: &Arc<App>,
    caller: &Caller,
    conn: &ConnHandle,
    text: &str,
) -> Admission {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(e) => return Admission::Reply(reject(app, text, &e)),
    };
    if !pipelined(&frame.request) {
        return Admission::Exclusive(frame);
    }
    // A pipelined request touches no room: it gets an empty list (no allocation) to lend.
    let ClientFrame { id, request } = frame;
    match run(app, caller, conn, &mut Vec::new(), request).await {
        Ok(Answer::Later(later)) => {
            let app = Arc::clone(app);
            Admission::Queued(Box::pin(async move { reply(&app, id, later.await) }))
        }
        Ok(Answer::Now(result)) => Admission::Reply(reply(app, id, Ok(result))),
        Err(e) => Admission::Reply(reply(app, id, Err(e))),
    }
}

/// Answers an admitted exclusive request.
pub(super) async fn handle(
    app: &Arc<App>,
    caller: &Caller,
    conn: &ConnHandle,
    rooms: &mut Vec<String>,
    frame: ClientFrame,
) -> Bytes {
    let result = match run(app, caller, conn, rooms, frame.request).await {
        Ok(Answer::Now(result)) => Ok(result),
        Ok(Answer::Later(later)) => later.await,
        Err(e) => Err(e),
    };
    reply(app, frame.id, result)
}

/// The `ok` or `error` frame answering request `id`.
fn reply(app: &App, id: String, result: Result<Raw>) -> Bytes {
    match result {
        Ok(result) => encode(&ServerFrame::Ok { id, result }),
        Err(e) => error_frame(app, Some(id), &e),
    }
}

/// What a service call gives back: its result now, or once its writes have committed.
enum Answer {
    Now(Raw),
    Later(Pin<Box<dyn Future<Output = Result<Raw>> + Send>>),
}

/// A result serialized once, into the raw JSON the `ok` frame embeds as is.
type Raw = Box<RawValue>;

fn to_value<T: serde::Serialize>(v: T) -> Raw {
    serde_json::value::to_raw_value(&v).expect("result types always serialize")
}

fn empty() -> Raw {
    RawValue::from_string("{}".to_owned()).expect("{} is JSON")
}

/// Calls the service behind a request.
async fn run(
    app: &Arc<App>,
    caller: &Caller,
    conn: &ConnHandle,
    rooms: &mut Vec<String>,
    request: R,
) -> Result<Answer> {
    let (m, s, g) = (&app.messaging, &app.social, &app.groups);
    if budgeted(&request) {
        m.check_request_budget(caller.user, caller.conn)?;
    }
    Ok(Answer::Now(match request {
        R::Send {
            to,
            conversation,
            client_msg_id,
            text,
            attachment,
            sticker,
        } => {
            let req = SendRequest {
                to,
                conversation,
                client_msg_id,
                text,
                attachment,
                sticker,
            };
            // Queued now; the reply waits for the commit (see `admit`).
            let queued = m.queue_send(caller, req).await?;
            let (app, caller) = (Arc::clone(app), *caller);
            return Ok(Answer::Later(Box::pin(async move {
                app.messaging
                    .finish_send(&caller, queued)
                    .await
                    .map(to_value)
            })));
        }
        R::Sync {
            conversation,
            after_seq,
            limit,
        } => to_value(m.sync(caller, &conversation, after_seq, limit).await?),
        R::History {
            conversation,
            before_seq,
            limit,
        } => to_value(m.history(caller, &conversation, before_seq, limit).await?),
        R::Conversations { since_ts } => to_value(ConversationsResult {
            conversations: m.conversations(caller, since_ts).await?,
        }),
        R::Read { conversation, seq } => to_value(m.read(caller, &conversation, seq).await?),
        R::Receipts { conversation } => to_value(m.receipts(caller, &conversation).await?),
        R::Recall {
            conversation,
            seq,
            client_msg_id,
        } => to_value(
            m.amend(caller, &conversation, seq, Amendment::Recall, client_msg_id)
                .await?,
        ),
        R::Edit {
            conversation,
            seq,
            text,
            client_msg_id,
        } => to_value(
            m.amend(
                caller,
                &conversation,
                seq,
                Amendment::Edit(text),
                client_msg_id,
            )
            .await?,
        ),
        R::Typing { conversation } => {
            m.typing(caller, &conversation).await?;
            empty()
        }
        R::Presence { users } => to_value(PresenceResult {
            presence: s.presence(caller, &users).await?,
        }),
        R::ProfileUpdate {
            display_name,
            avatar_url,
            status_text,
        } => {
            let patch = ProfilePatch {
                display_name,
                avatar_url,
                status_text,
            };
            to_value(s.update_profile(caller, patch).await?)
        }
        R::Profiles { users } => to_value(ProfilesResult {
            profiles: s.profiles(caller, &users).await?,
        }),
        R::FriendRequest { user } => to_value(s.request(caller, &user).await?),
        R::FriendAccept { user } => s.accept(caller, &user).await.map(|()| empty())?,
        R::FriendDecline { user } => s
            .drop_request(caller, &user, true)
            .await
            .map(|()| empty())?,
        R::FriendCancel { user } => s
            .drop_request(caller, &user, false)
            .await
            .map(|()| empty())?,
        R::FriendRemove { user } => s.remove(caller, &user).await.map(|()| empty())?,
        R::Block { user } => s.block(caller, &user).await.map(|()| empty())?,
        R::Unblock { user } => s.unblock(caller, &user).await.map(|()| empty())?,
        R::Friends => to_value(s.social(caller).await?),
        R::GroupCreate {
            name,
            description,
            public,
            members,
        } => to_value(
            g.create(caller, name, description, public, &members)
                .await?,
        ),
        R::GroupAdd { group, users } => to_value(GroupAddResult {
            added: g.add(caller, &group, &users).await?,
        }),
        R::GroupJoin { group } => to_value(g.join(caller, &group).await?),
        R::GroupLeave { group } => g.leave(caller, &group).await.map(|()| empty())?,
        R::GroupRemove { group, user } => {
            g.remove(caller, &group, &user).await.map(|()| empty())?
        }
        R::GroupRole { group, user, role } => {
            g.set_role(caller, &group, &user, role).await?;
            empty()
        }
        R::GroupTransfer { group, user } => {
            g.transfer(caller, &group, &user).await?;
            empty()
        }
        R::GroupUpdate {
            group,
            name,
            description,
        } => to_value(g.update(caller, &group, name, description).await?),
        R::GroupDissolve { group } => g.dissolve(caller, &group).await.map(|()| empty())?,
        R::Groups => to_value(GroupsResult {
            groups: g.mine(caller).await?,
        }),
        R::GroupMembers { group } => to_value(MembersResult {
            members: g.members(caller, &group).await?,
        }),
        R::RoomJoin { room } => {
            if !rooms.contains(&room) && rooms.len() >= ROOMS_PER_CONNECTION {
                return Err(Error::with(
                    ErrorCode::InvalidRoom,
                    format!("a connection may occupy at most {ROOMS_PER_CONNECTION} rooms"),
                ));
            }
            let joined = app.rooms.join(caller.user, conn, &room).await?;
            if !rooms.contains(&room) {
                rooms.push(room);
            }
            to_value(joined)
        }
        R::RoomLeave { room } => {
            app.rooms.leave(conn.conn, &room)?;
            rooms.retain(|r| *r != room);
            empty()
        }
        R::RoomSend {
            room,
            client_msg_id,
            text,
        } => {
            app.messaging.check_send_rate(caller.user)?;
            to_value(
                app.rooms
                    .send(caller.user, conn.conn, &room, client_msg_id, text)
                    .await?,
            )
        }
        R::Ping => empty(),
    }))
}

/// The reply to a frame that did not parse.
fn reject(app: &App, text: &str, e: &serde_json::Error) -> Bytes {
    let envelope = serde_json::from_str::<Envelope>(text).ok();
    let id = envelope
        .as_ref()
        .and_then(|env| env.id.as_ref())
        .and_then(|id| id.as_str().map(str::to_owned));
    let kind = envelope
        .as_ref()
        .and_then(|env| env.kind.as_ref())
        .and_then(|k| k.as_str().map(str::to_owned));
    let error = match kind {
        Some(kind) if !R::TYPES.contains(&kind.as_str()) => Error::with(
            ErrorCode::UnknownType,
            format!("unknown frame type {kind:?}"),
        ),
        _ => Error::with(
            ErrorCode::BadRequest,
            format!("malformed frame: {}", plain_parse_error(&e.to_string())),
        ),
    };
    error_frame(app, id, &error)
}

fn error_frame(app: &App, id: Option<String>, e: &Error) -> Bytes {
    app.metrics.error(e.code);
    encode(&ServerFrame::Error {
        id,
        error: e.body(),
    })
}
