//! Recall and edit of a sent text message: each change is an entry appended to the log (so it
//! syncs like a message), idempotent by the client's key.

use banter_protocol::{ErrorCode, SendAck};

use super::{Messaging, ack, dissolved};
use crate::error::{Error, Result};
use crate::services::Caller;
use crate::services::fields::{
    amendment_key, check_client_msg_id, check_seq, check_text, reused_client_msg_id,
};
use crate::store::{Amendment, EntryKind, StoreError, StoredMessage};

impl Messaging {
    /// Recalls (within the window) or edits one of the caller's text messages. A retry with the
    /// same `client_msg_id` answers the original acknowledgement (see [`amendment_key`]).
    pub async fn amend(
        &self,
        caller: &Caller,
        conversation: &str,
        seq: u64,
        amendment: Amendment,
        client_msg_id: Option<String>,
    ) -> Result<SendAck> {
        check_seq(seq, "seq")?;
        if let Some(id) = &client_msg_id {
            check_client_msg_id(id)?;
        }
        let (conv, _) = self.membership(caller, conversation).await?;
        if let Amendment::Edit(text) = &amendment {
            check_text(text, self.limits.max_text_bytes)?;
        }
        let target = self
            .store
            .message(conv, seq)
            .await?
            .ok_or_else(unknown_message)?;
        if target.sender != caller.user || !target.amendable(&amendment) {
            return Err(unknown_message());
        }
        self.check_recall_window(&amendment, &target)?;
        if self.directory.info(conv).await?.dissolved {
            return Err(dissolved());
        }
        let key = amendment_key(&amendment, target.id, client_msg_id.as_deref());
        let kind = match amendment {
            Amendment::Recall => EntryKind::Recall,
            Amendment::Edit(_) => EntryKind::Edit,
        };
        let appended = match self
            .store
            .amend(conv, seq, caller.user, key, amendment)
            .await
        {
            Err(StoreError::NotFound(_)) => return Err(unknown_message()),
            other => other?,
        };
        if appended.duplicate
            && (appended.message.kind != kind
                || appended.message.conv != conv
                || appended.message.ref_seq != Some(seq))
        {
            // The key names another request of this sender (a send given this very key).
            return Err(reused_client_msg_id());
        }
        if !appended.duplicate {
            let members = self.directory.members(conv).await?;
            self.publish(caller.conn, &appended.message, members);
        }
        Ok(ack(&appended))
    }

    /// Refuses to recall a message older than the recall window.
    fn check_recall_window(&self, amendment: &Amendment, target: &StoredMessage) -> Result<()> {
        // Whether a recalled message may be touched again is the store's call: a retried recall
        // is idempotent, anything else is refused.
        if matches!(amendment, Amendment::Recall)
            && !target.recalled
            && crate::clock::now_ms() - target.ts > self.limits.recall_window_ms
        {
            return Err(Error::new(
                ErrorCode::RecallWindowPassed,
                "the message is too old to recall",
            ));
        }
        Ok(())
    }
}

/// The refusal of an amendment whose target is not the caller's own text message.
fn unknown_message() -> Error {
    Error::new(
        ErrorCode::UnknownMessage,
        "no message of yours at that seq that can be changed",
    )
}
