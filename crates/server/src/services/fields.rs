//! What the fields of messaging requests must be: idempotency keys (a send's, and the key an
//! amendment is stored under), seqs, texts. Each check answers with the error code the client
//! sees; none touches the store.

use banter_protocol::ErrorCode;

use crate::error::{Error, Result};
use crate::store::Amendment;

/// `client_msg_id` length bound in bytes.
const CLIENT_MSG_ID_MAX: usize = 64;

/// Checks a message text: not blank, at most `max` bytes.
pub(crate) fn check_text(text: &str, max: usize) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::new(ErrorCode::EmptyMessage, "the message is empty"));
    }
    if text.len() > max {
        return Err(Error::with(
            ErrorCode::TextTooLong,
            format!("text exceeds {max} bytes"),
        ));
    }
    Ok(())
}

/// Checks an idempotency key.
pub(crate) fn check_client_msg_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > CLIENT_MSG_ID_MAX {
        return Err(Error::new(
            ErrorCode::InvalidClientMsgId,
            "client_msg_id must be 1 to 64 bytes",
        ));
    }
    Ok(())
}

/// The idempotency key of an amendment (unique per sender, like a send's `client_msg_id`,
/// with which it shares the store's index; the prefix keeps it apart from sends' keys).
///
/// A recall's key is its target: a message is recalled once, so every recall of it is the same
/// request. An edit's key is the client's `client_msg_id` under its target, so a retry is
/// idempotent and a new edit (even back to an earlier text) is new; without one the server
/// picks a random key, so an edit is never mistaken for an earlier one. (The key used to be
/// derived from the text, which made v1 → v2 → v1 answer `duplicate` and keep v2.)
pub(crate) fn amendment_key(
    amendment: &Amendment,
    target: i64,
    client_msg_id: Option<&str>,
) -> String {
    match (amendment, client_msg_id) {
        (Amendment::Recall, _) => format!("recall:{target}"),
        (Amendment::Edit(_), Some(id)) => format!("edit:{target}:{id}"),
        (Amendment::Edit(_), None) => format!("edit:{target}:~{:016x}", rand::random::<u64>()),
    }
}

/// Seqs are stored as signed 64-bit integers: anything from 2^63 up names no entry and is a
/// malformed request, refused before it reaches the store.
pub(crate) fn check_seq(seq: u64, field: &str) -> Result<()> {
    if i64::try_from(seq).is_err() {
        return Err(Error::with(
            ErrorCode::BadRequest,
            format!("`{field}` must be below 2^63"),
        ));
    }
    Ok(())
}

pub(crate) fn reused_client_msg_id() -> Error {
    Error::new(
        ErrorCode::InvalidClientMsgId,
        "client_msg_id already names another request of yours",
    )
}
