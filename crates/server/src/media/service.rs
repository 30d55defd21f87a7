//! The media service: uploads (streamed to a temporary file while hashed, counted and
//! sniffed; images inspected and stripped), the hash pre-check, reads with authorization per
//! conversation, attachments for sends, and the sweep of files sent nowhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use banter_protocol::{ErrorCode, MediaInfo};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

mod attach;
mod slots;
mod sweep;

pub use attach::fallback_line;
pub use slots::Slot;

use super::image::{self, ImageError, ImageLimits};
use super::sniff::{self, HEAD};
use super::storage::MediaStorage;
use crate::error::{Error, Result};
use crate::store::{MediaRecord, Store, Upload, UserId};

/// Largest SVG read whole to look for script (an allowed SVG is small).
const MAX_SVG_BYTES: u64 = 1024 * 1024;
/// Most bytes of a file name.
pub const MAX_NAME_BYTES: usize = 255;

/// What the media service enforces (from the configuration).
#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// Largest file.
    pub max_file_bytes: u64,
    /// Bytes per user in all.
    pub quota_bytes: u64,
    /// Accepted sniffed types.
    pub types: Vec<String>,
    /// Age after which a file sent nowhere is removed, in ms.
    pub unreferenced_ms: i64,
    /// Uploads in progress per user.
    pub uploads_per_user: u32,
    /// Downloads in progress per user.
    pub downloads_per_user: u32,
    /// Image decoding bounds.
    pub image: ImageLimits,
}

/// Which bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as served (an image's metadata stripped).
    Original,
    /// Its thumbnail.
    Thumbnail,
}

/// A file a caller may read: its storage key, type and size.
#[derive(Debug, Clone)]
pub struct Readable {
    /// Storage key.
    pub key: String,
    /// Content type to serve.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// The name to offer in `Content-Disposition`, if known.
    pub name: Option<String>,
}

/// The media service.
pub struct Media {
    store: Arc<dyn Store>,
    storage: Arc<dyn MediaStorage>,
    limits: MediaLimits,
    in_progress: Arc<Mutex<HashMap<UserId, u32>>>,
    downloading: Arc<Mutex<HashMap<UserId, u32>>>,
    /// One image decoded at a time: a decode may take hundreds of MiB.
    decoding: Arc<tokio::sync::Semaphore>,
    /// Uploads waiting for [`Media::decoding`]; past [`MAX_DECODE_QUEUE`] an image upload is
    /// refused as `busy` at once rather than left to time out.
    waiting: AtomicUsize,
    /// Serialises what one content's record and bytes go through (storing, sharing, the
    /// sweep's deletion), by a stripe of its hash.
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// When the sweep last listed the storage for bytes no record names (0: never).
    orphans_swept_ms: std::sync::atomic::AtomicI64,
    /// Sweeps run since the start.
    sweeps: std::sync::atomic::AtomicU64,
}

/// Image uploads that may wait for the decoder.
const MAX_DECODE_QUEUE: usize = 8;
/// Stripes of [`Media::stripes`].
const STRIPES: usize = 64;

/// A temporary file, removed when dropped unless it was handed to the storage.
struct TempFile(PathBuf);

impl TempFile {
    fn new(dir: &Path) -> Self {
        Self(dir.join(format!("up-{:032x}", rand::random::<u128>())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Gone already when the storage took it.
        _ = std::fs::remove_file(&self.0);
    }
}

fn invalid(message: &'static str) -> Error {
    Error::new(ErrorCode::InvalidMedia, message)
}

fn unknown() -> Error {
    Error::new(ErrorCode::UnknownMedia, "no such file")
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "media {what}");
    Error::new(ErrorCode::Internal, "media storage failed")
}

/// Checks a file name given by a client: shown to others, never used as a path.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name == "."
        || name.contains("..")
        || name.contains(['/', '\\', ':'])
        || !crate::services::text::is_clean_line(name);
    if bad {
        return Err(Error::new(
            ErrorCode::InvalidFileName,
            "file names may not hold path separators, `..`, control characters, or exceed 255 bytes",
        ));
    }
    Ok(())
}

/// Whether `id` is a SHA-256 in lowercase hex.
pub fn is_media_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn thumb_key(hash: &str) -> String {
    format!("{hash}.thumb")
}

impl Media {
    /// The service over `store` and `storage`.
    pub fn new(store: Arc<dyn Store>, storage: Arc<dyn MediaStorage>, limits: MediaLimits) -> Self {
        Self {
            store,
            storage,
            limits,
            in_progress: Arc::new(Mutex::new(HashMap::new())),
            downloading: Arc::new(Mutex::new(HashMap::new())),
            decoding: Arc::new(tokio::sync::Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            orphans_swept_ms: std::sync::atomic::AtomicI64::new(0),
            sweeps: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The stripe lock of `hash` (a media id: hex digits).
    async fn stripe(&self, hash: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let i = hash
            .get(..2)
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        self.stripes[i % STRIPES].lock().await
    }

    /// The limits in force.
    pub fn limits(&self) -> &MediaLimits {
        &self.limits
    }

    fn too_large(&self) -> Error {
        Error::with(
            ErrorCode::MediaTooLarge,
            format!("files may be at most {} bytes", self.limits.max_file_bytes),
        )
    }

    fn over_quota(&self, used: u64) -> Error {
        Error::with(
            ErrorCode::QuotaExceeded,
            format!(
                "this upload would exceed your quota ({used} of {} bytes used)",
                self.limits.quota_bytes
            ),
        )
    }

    /// Takes an upload of `body` by `user`: refused before anything is stored when it is over
    /// the size limit (by its declared length, or as soon as it passes it), over the user's
    /// quota, of a type not allowed, an SVG with script, or an image the server will not
    /// decode. `progress` is told the size of every chunk received. Returns
    /// the stored file and whether these bytes were new to the server.
    pub async fn upload<S, E>(
        &self,
        user: UserId,
        name: Option<String>,
        declared_len: Option<u64>,
        mut body: S,
        mut progress: impl FnMut(u64),
    ) -> Result<(MediaInfo, bool)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(name) = &name {
            check_name(name)?;
        }
        if declared_len.is_some_and(|n| n > self.limits.max_file_bytes) {
            return Err(self.too_large());
        }
        let used = self.store.media_usage(user).await?;
        if declared_len.is_some_and(|n| used.saturating_add(n) > self.limits.quota_bytes) {
            return Err(self.over_quota(used));
        }
        let slot = self.slot(user)?;
        self.storage
            .prepare()
            .await
            .map_err(|e| internal("temp dir", e))?;
        let tmp = TempFile::new(self.storage.temp_dir());
        let mut file = tokio::fs::File::create(&tmp.0)
            .await
            .map_err(|e| internal("temp file", e))?;
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(HEAD);
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::with(ErrorCode::BadRequest, format!("upload interrupted: {e}"))
            })?;
            total += chunk.len() as u64;
            if total > self.limits.max_file_bytes {
                return Err(self.too_large());
            }
            if used.saturating_add(total) > self.limits.quota_bytes {
                return Err(self.over_quota(used));
            }
            if head.len() < HEAD {
                let take = (HEAD - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| internal("write", e))?;
            progress(chunk.len() as u64);
        }
        if total == 0 {
            return Err(invalid("the upload is empty"));
        }
        file.flush().await.map_err(|e| internal("write", e))?;
        drop(file);
        let mime = sniff::sniff(&head);
        if !self.limits.types.iter().any(|t| t == mime) {
            return Err(Error::with(
                ErrorCode::UnsupportedMediaType,
                format!("files of type {mime} are not accepted here"),
            ));
        }
        if mime == "image/svg+xml" {
            // Read whole, so the check sees all of it; larger SVGs are not taken.
            if total > MAX_SVG_BYTES {
                return Err(Error::new(
                    ErrorCode::UnsupportedMediaType,
                    "SVG files over 1 MiB are not accepted",
                ));
            }
            let svg = read_small(&tmp.0, MAX_SVG_BYTES).await?;
            if sniff::svg_is_active(&svg) {
                return Err(Error::new(
                    ErrorCode::UnsupportedMediaType,
                    "SVG files with script, event handlers or foreign content are not accepted",
                ));
            }
        }
        let hash = hex(&hasher.finalize());
        self.keep(user, name, &hash, mime, tmp, slot).await
    }

    /// Records and stores an upload whose bytes are in `tmp`.
    async fn keep(
        &self,
        user: UserId,
        name: Option<String>,
        hash: &str,
        mime: &str,
        tmp: TempFile,
        slot: Slot,
    ) -> Result<(MediaInfo, bool)> {
        // Bytes the server has: no need to inspect or store them again (unless the record
        // outlived its bytes: then this copy puts them back).
        let stripe = self.stripe(hash).await;
        let existing = match self.store.media(hash).await? {
            Some(r) => {
                let bytes = self
                    .storage
                    .size(hash)
                    .await
                    .map_err(|e| internal("stat", e))?;
                bytes.map(|_| r)
            }
            None => None,
        };
        if let Some(existing) = existing {
            match self
                .store
                .add_upload(existing, user, name.clone(), self.limits.quota_bytes)
                .await?
            {
                Upload::OverQuota { used_bytes } => return Err(self.over_quota(used_bytes)),
                Upload::Recorded {
                    record,
                    new: false,
                    used_bytes,
                } => return Ok((self.info(&record, name, used_bytes), false)),
                // Swept between the two calls: store this copy after all.
                Upload::Recorded { .. } => {}
            }
        }
        drop(stripe);
        let mut record = MediaRecord {
            hash: hash.to_owned(),
            mime: mime.to_owned(),
            size: tokio::fs::metadata(&tmp.0)
                .await
                .map_err(|e| internal("stat", e))?
                .len(),
            width: None,
            height: None,
            thumbnail: None,
            color: None,
        };
        let mut served = tmp;
        let mut thumbnail = None;
        if image::is_supported(mime) {
            let (stripped, thumb, info) = self.inspect(served, mime, slot).await?;
            record.width = Some(info.width);
            record.height = Some(info.height);
            record.color = Some(info.color);
            record.thumbnail = Some(info.thumbnail_mime.to_owned());
            record.size = tokio::fs::metadata(&stripped.0)
                .await
                .map_err(|e| internal("stat", e))?
                .len();
            served = stripped;
            thumbnail = Some(thumb);
        }
        // Bytes first, outside the content's stripe (a put under a content key is idempotent,
        // and a transfer to an object store may take long); then, under the stripe (the sweep
        // deletes bytes under it too), a check that they are still there and the record: a
        // record never names bytes about to go. Bytes stored without a record (a crash
        // between the two) are left to the sweep of bytes no record names.
        let has_thumbnail = thumbnail.is_some();
        if let Some(thumb) = &thumbnail {
            self.storage
                .put(&thumb_key(hash), &thumb.0)
                .await
                .map_err(|e| internal("put", e))?;
        }
        self.storage
            .put(hash, &served.0)
            .await
            .map_err(|e| internal("put", e))?;
        let _stripe = self.stripe(hash).await;
        if !self.stored(hash, has_thumbnail).await? {
            // The sweep removed bytes these were deduplicated against, between the put and
            // the stripe: rare, and the client's retry stores them anew.
            return Err(Error::new(
                ErrorCode::Busy,
                "the file was being removed as it was stored; retry",
            )
            .retry_after(std::time::Duration::from_secs(1)));
        }
        match self
            .store
            .add_upload(record, user, name.clone(), self.limits.quota_bytes)
            .await?
        {
            Upload::OverQuota { used_bytes } => {
                // Nothing left on disk for a refused upload (another user may have stored
                // the same bytes meanwhile: then the record exists and they stay).
                if self.store.media(hash).await?.is_none() {
                    self.delete_bytes(hash).await;
                }
                Err(self.over_quota(used_bytes))
            }
            Upload::Recorded {
                record,
                new,
                used_bytes,
            } => Ok((self.info(&record, name, used_bytes), new)),
        }
    }

    /// Strips an image's metadata and makes its thumbnail, one image at a time. The permit,
    /// the upload's slot and its files move into the blocking work: if the request goes
    /// away, they are released only when the work ends, so abandoned uploads cannot add up
    /// to concurrent decodes.
    async fn inspect(
        &self,
        tmp: TempFile,
        mime: &str,
        slot: Slot,
    ) -> Result<(TempFile, TempFile, image::ImageInfo)> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_DECODE_QUEUE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                ErrorCode::Busy,
                "too many images are being processed; retry shortly",
            )
            .retry_after(std::time::Duration::from_secs(1)));
        }
        let turn = Arc::clone(&self.decoding).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let turn =
            turn.map_err(|_| Error::new(ErrorCode::ShuttingDown, "the server is shutting down"))?;
        let dir = self.storage.temp_dir().to_owned();
        let (mime, limits) = (mime.to_owned(), self.limits.image);
        let (outcome, stripped, thumb) = tokio::task::spawn_blocking(move || {
            let (_turn, _slot, _source) = (turn, slot, &tmp);
            let (stripped, thumb) = (TempFile::new(&dir), TempFile::new(&dir));
            let outcome = image::process(&tmp.0, &mime, &limits, &thumb.0).and_then(|info| {
                image::strip_metadata(&tmp.0, &mime, &stripped.0)?;
                Ok(info)
            });
            (outcome, stripped, thumb)
        })
        .await
        .map_err(|e| internal("image task", e))?;
        let info = outcome.map_err(|e| match e {
            ImageError::TooLarge { width, height } => Error::with(
                ErrorCode::InvalidMedia,
                format!(
                    "the image declares {width} × {height} pixels, over the server's limit of {}",
                    self.limits.image.max_pixels
                ),
            ),
            ImageError::Invalid(why) => {
                Error::with(ErrorCode::InvalidMedia, format!("not a valid image: {why}"))
            }
            ImageError::Io(e) => internal("image", e),
        })?;
        Ok((stripped, thumb, info))
    }

    /// Whether the bytes of `hash` (and its thumbnail, if `thumbnail`) are in storage.
    async fn stored(&self, hash: &str, thumbnail: bool) -> Result<bool> {
        let has = |key: String| async move {
            self.storage
                .size(&key)
                .await
                .map(|s| s.is_some())
                .map_err(|e| internal("stat", e))
        };
        Ok(has(hash.to_owned()).await? && (!thumbnail || has(thumb_key(hash)).await?))
    }

    async fn delete_bytes(&self, hash: &str) {
        for key in [hash.to_owned(), thumb_key(hash)] {
            if let Err(e) = self.storage.delete(&key).await {
                tracing::warn!(error = %e, key, "media delete failed");
            }
        }
    }

    fn info(&self, r: &MediaRecord, name: Option<String>, used_bytes: u64) -> MediaInfo {
        MediaInfo {
            id: r.hash.clone(),
            mime: r.mime.clone(),
            size: r.size,
            name,
            width: r.width,
            height: r.height,
            thumbnail: r.thumbnail.is_some(),
            color: r.color.clone(),
            used_bytes,
            quota_bytes: self.limits.quota_bytes,
        }
    }

    /// The hash pre-check: the file `id` if `user` may read it already (they uploaded it, or
    /// it was sent into one of their conversations); `unknown_media` otherwise, also for bytes
    /// the server holds for others (a hash is not proof of holding the bytes: a removed member
    /// still knows the hashes they saw). Sending it then needs no upload.
    pub async fn lookup(&self, user: UserId, id: &str) -> Result<MediaInfo> {
        let record = self.readable_record(user, id).await?;
        let name = self.store.upload_name(user, id).await?.flatten();
        let used = self.store.media_usage(user).await?;
        Ok(self.info(&record, name, used))
    }

    async fn readable_record(&self, user: UserId, id: &str) -> Result<MediaRecord> {
        if !is_media_id(id) || !self.store.may_read_media(user, id).await? {
            return Err(unknown());
        }
        self.store.media(id).await?.ok_or_else(unknown)
    }

    /// What `user` may read of `id`: `unknown_media` for a file they may not read, whether or
    /// not it exists.
    pub async fn open(&self, user: UserId, id: &str, variant: Variant) -> Result<Readable> {
        let record = self.readable_record(user, id).await?;
        let (key, mime) = match variant {
            Variant::Original => (record.hash.clone(), record.mime.clone()),
            Variant::Thumbnail => match &record.thumbnail {
                Some(mime) => (thumb_key(&record.hash), mime.clone()),
                None => return Err(unknown()),
            },
        };
        let size = self
            .storage
            .size(&key)
            .await
            .map_err(|e| internal("stat", e))?
            .ok_or_else(|| internal("read", format!("{key} has a record but no bytes")))?;
        let name = match variant {
            Variant::Original => self.store.upload_name(user, id).await?.flatten(),
            Variant::Thumbnail => None,
        };
        Ok(Readable {
            key,
            mime,
            size,
            name,
        })
    }

    /// The bytes of a readable file in `range`.
    pub async fn read(
        &self,
        readable: &Readable,
        range: std::ops::Range<u64>,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>> {
        self.storage
            .read(&readable.key, range)
            .await
            .map_err(|e| internal("read", e))
    }
}

/// Reads at most `limit` bytes of a file.
async fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| internal("read", e))?;
    let mut out = Vec::new();
    file.take(limit)
        .read_to_end(&mut out)
        .await
        .map_err(|e| internal("read", e))?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        _ = write!(s, "{b:02x}");
        s
    })
}
