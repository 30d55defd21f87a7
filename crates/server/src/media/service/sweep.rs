//! What the media sweep removes: files sent nowhere after their age (their records, then
//! their bytes), and, every `media_unreferenced_secs` (at most daily), bytes in storage that no
//! record names (left by a process that stopped between storing an upload's bytes and
//! recording them).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use super::{Media, thumb_key};
use crate::error::Result;
use crate::media::storage::parse_key;

/// The longest time between two listings of the storage for bytes no record names.
const ORPHANS_AT_MOST_EVERY_MS: i64 = 24 * 3600 * 1000;

impl Media {
    /// Removes files sent nowhere whose last upload is older than the limit, and returns how
    /// many; also (every such age, at most daily) stored bytes no record names.
    pub async fn sweep(&self) -> Result<usize> {
        let now = crate::clock::now_ms();
        let before = now - self.limits.unreferenced_ms;
        let mut removed = 0;
        loop {
            let hashes = self.store.sweep_media(before, 100).await?;
            for hash in &hashes {
                // An upload of the same bytes may have recorded them again since.
                let _stripe = self.stripe(hash).await;
                if self.store.media(hash).await?.is_none() {
                    self.delete_bytes(hash).await;
                }
            }
            removed += hashes.len();
            if hashes.len() < 100 {
                break;
            }
        }
        // Bytes no record names: first at the second sweep after a start (not as every node
        // of a cluster comes up), then every retention period, at most daily.
        let last = self.orphans_swept_ms.load(Ordering::Relaxed);
        let sweeps = self.sweeps.fetch_add(1, Ordering::Relaxed);
        let every = self.limits.unreferenced_ms.min(ORPHANS_AT_MOST_EVERY_MS);
        let due = if last == 0 {
            sweeps >= 1
        } else {
            now - last >= every
        };
        if due {
            let orphans = self.sweep_orphans().await?;
            self.orphans_swept_ms.store(now.max(1), Ordering::Relaxed);
            if orphans > 0 {
                tracing::info!(removed = orphans, "media sweep of bytes no record names");
            }
        }
        Ok(removed)
    }

    /// Removes stored bytes that no record names and that were stored before the age limit,
    /// each under the content's stripe. An upload of the same bytes that found them stored
    /// (its put kept them as they were) checks them again under the stripe before recording
    /// them, so it finds them gone and is answered `busy`; its retry stores them anew. Returns
    /// how many keys it removed.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let age = Duration::from_millis(u64::try_from(self.limits.unreferenced_ms).unwrap_or(0));
        let before = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut keys = self.storage.keys();
        let mut removed = 0;
        while let Some(found) = keys.next().await {
            let found = match found {
                Ok(found) => found,
                Err(e) => {
                    // One directory (or page) that cannot be read; the others still are.
                    tracing::warn!(error = %e, "media storage listing failed");
                    continue;
                }
            };
            let Some((hash, thumbnail)) = parse_key(&found.key) else {
                continue;
            };
            if found.stored > before {
                continue;
            }
            let _stripe = self.stripe(hash).await;
            let named = match self.store.media(hash).await? {
                Some(record) => !thumbnail || record.thumbnail.is_some(),
                None => false,
            };
            if named {
                continue;
            }
            let key = if thumbnail {
                thumb_key(hash)
            } else {
                hash.to_owned()
            };
            match self.storage.delete(&key).await {
                Ok(()) => {
                    tracing::info!(key, "media sweep removed bytes no record names");
                    removed += 1;
                }
                Err(e) => tracing::warn!(error = %e, key, "media delete failed"),
            }
        }
        Ok(removed)
    }
}
