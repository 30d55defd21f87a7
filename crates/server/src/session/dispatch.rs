//! Turns one client text frame into one reply frame: parse, call the service, encode.
//!
//! Parse errors are told apart here: a frame that is not a JSON object with a string `type` is
//! `bad_request`; a `type` we do not know is `unknown_type`; a known type with bad fields is
//! `bad_request` again. The request id is echoed whenever it could be read.

use banter_protocol::{ClientFrame, ClientRequest, ConversationsResult, ErrorCode, ServerFrame};
use bytes::Bytes;
use serde::Deserialize;

use crate::app::App;
use crate::error::Error;
use crate::services::Caller;
use crate::services::messaging::{SendRequest, encode};

/// Request types this server understands (for telling unknown types from malformed ones).
const KNOWN_TYPES: &[&str] = &["send", "sync", "history", "conversations", "read", "ping"];

/// The envelope alone, read when the full parse failed.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    id: Option<serde_json::Value>,
}

/// Handles one frame and returns the encoded reply.
pub(super) async fn handle(app: &App, caller: &Caller, text: &str) -> Bytes {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(e) => return reject(app, text, &e),
    };
    let id = frame.id;
    let result = match frame.request {
        ClientRequest::Send {
            to,
            conversation,
            client_msg_id,
            text,
        } => app
            .messaging
            .send(
                caller,
                SendRequest {
                    to,
                    conversation,
                    client_msg_id,
                    text,
                },
            )
            .await
            .map(to_value),
        ClientRequest::Sync {
            conversation,
            after_seq,
            limit,
        } => app
            .messaging
            .sync(caller, &conversation, after_seq, limit)
            .await
            .map(to_value),
        ClientRequest::History {
            conversation,
            before_seq,
            limit,
        } => app
            .messaging
            .history(caller, &conversation, before_seq, limit)
            .await
            .map(to_value),
        ClientRequest::Conversations { since_ts } => app
            .messaging
            .conversations(caller, since_ts)
            .await
            .map(|conversations| to_value(ConversationsResult { conversations })),
        ClientRequest::Read { conversation, seq } => app
            .messaging
            .read(caller, &conversation, seq)
            .await
            .map(to_value),
        ClientRequest::Ping => Ok(serde_json::Value::Object(serde_json::Map::new())),
    };
    match result {
        Ok(result) => encode(&ServerFrame::Ok { id, result }),
        Err(e) => error_frame(app, Some(id), &e),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> serde_json::Value {
    serde_json::to_value(v).expect("result types always serialize")
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
        Some(kind) if !KNOWN_TYPES.contains(&kind.as_str()) => Error::with(
            ErrorCode::UnknownType,
            format!("unknown frame type {kind:?}"),
        ),
        _ => Error::with(ErrorCode::BadRequest, format!("malformed frame: {e}")),
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
