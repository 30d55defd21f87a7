//! The media part of the [`Store`](super::Store) seam: which files are stored (by SHA-256),
//! who uploaded them (quotas) and where they were sent (who may read them). A supertrait of
//! `Store`, like [`AdminStore`](super::AdminStore). The bytes themselves live in the media
//! storage (`crate::media::storage`), never in the database.

use async_trait::async_trait;

use super::{ConvId, StoreResult, UserId};

/// A stored file's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRecord {
    /// SHA-256 of the bytes as uploaded, 64 lowercase hex digits.
    pub hash: String,
    /// Type sniffed from the bytes.
    pub mime: String,
    /// Size in bytes of what is served (an image's metadata stripped).
    pub size: u64,
    /// Image dimensions.
    pub width: Option<u32>,
    /// Image dimensions.
    pub height: Option<u32>,
    /// Type of the thumbnail, if there is one.
    pub thumbnail: Option<String>,
    /// Placeholder colour (`#rrggbb`).
    pub color: Option<String>,
}

/// What [`MediaStore::add_upload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    /// Recorded: the file's record (the one stored before, if these bytes were stored
    /// already), whether it is new to the store, and the uploader's usage after it.
    Recorded {
        /// The record as stored.
        record: MediaRecord,
        /// No record of these bytes existed: the caller's copy is the one to keep.
        new: bool,
        /// Bytes the uploader's uploads take now.
        used_bytes: u64,
    },
    /// It would take the uploader past `quota`; nothing was written.
    OverQuota {
        /// Bytes the uploader's uploads take.
        used_bytes: u64,
    },
}

/// Media metadata. Every method is one transaction.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// The record of `hash`, if stored.
    async fn media(&self, hash: &str) -> StoreResult<Option<MediaRecord>>;

    /// Records that `uploader` holds `record` (named `name`), adding the record if these bytes
    /// are new: refused when the uploader's uploads, with this one if it is new to them, would
    /// exceed `quota` bytes. Uploading bytes one already uploaded costs no quota.
    async fn add_upload(
        &self,
        record: MediaRecord,
        uploader: UserId,
        name: Option<String>,
        quota: u64,
    ) -> StoreResult<Upload>;

    /// Bytes `user`'s uploads take.
    async fn media_usage(&self, user: UserId) -> StoreResult<u64>;

    /// The name `user` gave `hash` at upload, and whether they uploaded it at all.
    async fn upload_name(&self, user: UserId, hash: &str) -> StoreResult<Option<Option<String>>>;

    /// Records that `hash` was sent into `conv`, so that its members may read it.
    async fn share_media(&self, conv: ConvId, hash: &str) -> StoreResult<()>;

    /// Whether `user` may read `hash`: they uploaded it, or they are a member of a
    /// conversation it was sent into.
    async fn may_read_media(&self, user: UserId, hash: &str) -> StoreResult<bool>;

    /// Removes the records of files sent nowhere and not uploaded since `before` (UTC ms), at
    /// most `limit` of them, and returns their hashes (the caller deletes the bytes).
    async fn sweep_media(&self, before: i64, limit: u32) -> StoreResult<Vec<String>>;
}
