//! Replies bounded by bytes as well as by count.
//!
//! A page of entries is cut where its *encoded* size would pass the byte budget: text length is
//! not enough, since JSON escapes a control character to six bytes (`\u0001`), so 16 KiB of text
//! can take 96 KiB on the wire. The size is measured by serializing into a counter, without
//! allocating. The first entry always fits (an entry is bounded by `max_text_bytes`), so a page
//! is never empty while entries remain and paging always moves on.

use std::io;

use banter_protocol::Message;
use serde::Serialize;

use super::messaging::message_view;
use crate::store::StoredMessage;

/// The encoded JSON size of `value` in bytes.
pub(crate) fn encoded_len<T: Serialize>(value: &T) -> usize {
    /// Counts what is written and keeps nothing.
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).expect("wire types always serialize");
    counter.0
}

/// A running byte budget: what fits, in the order offered.
pub(crate) struct Budget {
    left: usize,
    first: bool,
}

impl Budget {
    /// A budget of `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            left: max_bytes,
            first: true,
        }
    }

    /// Spends `bytes` (plus one for the separating comma) if they fit; the first item always
    /// does.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        let bytes = bytes + 1;
        if bytes <= self.left || self.first {
            self.left = self.left.saturating_sub(bytes);
            self.first = false;
            true
        } else {
            false
        }
    }
}

/// The views of `entries`, in the order given, up to `limit` of them and as many as fit in
/// `max_bytes` encoded; stops at the first that does not fit (a page has no holes).
pub(crate) fn fit<'a>(
    entries: impl Iterator<Item = &'a StoredMessage>,
    limit: usize,
    max_bytes: usize,
) -> Vec<Message> {
    let mut budget = Budget::new(max_bytes);
    let mut page = Vec::new();
    for entry in entries.take(limit) {
        let view = message_view(entry);
        if !budget.take(encoded_len(&view)) {
            break;
        }
        page.push(view);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_counts() {
        assert_eq!(encoded_len(&"ab"), 4);
        assert_eq!(
            encoded_len(&"\u{1}"),
            8,
            "a control character takes six bytes"
        );
        assert_eq!(encoded_len(&"é"), 4, "UTF-8 is not escaped");
    }

    #[test]
    fn the_store_counts_no_more_than_an_entry_encodes() {
        // The smallest entry there is: one-digit ids, empty text and key.
        let entry = StoredMessage {
            id: 1,
            conv: 1,
            seq: 1,
            sender: 1,
            client_msg_id: String::new(),
            kind: crate::store::EntryKind::Recall,
            text: String::new(),
            ref_seq: None,
            edited_at: None,
            recalled: false,
            ts: 0,
        };
        assert!(encoded_len(&message_view(&entry)) >= crate::store::ENTRY_OVERHEAD);
    }

    #[test]
    fn the_first_item_always_fits() {
        let mut budget = Budget::new(10);
        assert!(budget.take(100));
        assert!(!budget.take(1));
        let mut budget = Budget::new(10);
        assert!(budget.take(4) && budget.take(4));
        assert!(
            !budget.take(1),
            "4 + 1 + 4 + 1 spent, a fifth byte and its comma do not fit"
        );
    }
}
