//! Where media bytes live: behind [`MediaStorage`], keyed by content (`<sha256>` for a file,
//! `<sha256>.thumb` for its thumbnail). The default is [`LocalStorage`], a directory under the
//! data directory. An upload is first streamed into a local temporary file (it must be hashed,
//! sniffed and, for an image, inspected before it is accepted), then handed to
//! [`MediaStorage::put`].

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Age after which another process's temporary directory is taken for abandoned.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Bytes read per chunk when streaming a file out.
pub const CHUNK: usize = 64 * 1024;

/// A key [`MediaStorage::keys`] found, and when its bytes were stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The key.
    pub key: String,
    /// When it was stored.
    pub stored: std::time::SystemTime,
}

/// A store of immutable blobs by key.
#[async_trait]
pub trait MediaStorage: Send + Sync + 'static {
    /// Stores the file at `from` (a temporary file of [`MediaStorage::temp_dir`]) under `key`,
    /// consuming it; a key stored already is kept as it is (same key, same bytes).
    async fn put(&self, key: &str, from: &Path) -> io::Result<()>;
    /// The size of `key`, if stored.
    async fn size(&self, key: &str) -> io::Result<Option<u64>>;
    /// The bytes of `key` in `range` (which the caller has checked against its size).
    async fn read(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>>;
    /// Removes `key` (nothing if absent).
    async fn delete(&self, key: &str) -> io::Result<()>;
    /// Every stored key with the time it was stored, in no particular order (for the sweep of
    /// bytes no record names).
    fn keys(&self) -> BoxStream<'static, io::Result<StoredKey>>;
    /// A local directory for uploads in progress (it may not exist yet: see
    /// [`MediaStorage::prepare`]).
    fn temp_dir(&self) -> &Path;
    /// Makes sure [`MediaStorage::temp_dir`] exists.
    async fn prepare(&self) -> io::Result<()> {
        tokio::fs::create_dir_all(self.temp_dir()).await
    }
}

/// A temporary directory for this process under `<root>/tmp` (made on first use), after
/// removing those not touched for a day (left by a process that crashed).
pub fn process_temp_dir(root: &Path) -> PathBuf {
    let all_tmp = root.join("tmp");
    if let Ok(entries) = std::fs::read_dir(&all_tmp) {
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    all_tmp.join(format!("{:016x}", rand::random::<u64>()))
}

/// Keys are made by the server (hex digits and `.thumb`); anything else is refused rather
/// than let a key name a path.
pub fn check_key(key: &str) -> io::Result<()> {
    let valid = key.len() >= 2
        && key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b.is_ascii_lowercase());
    if !valid || key.contains("..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad media key"));
    }
    Ok(())
}

/// A media key as the server makes them, `<sha256 in lowercase hex>` or `<…>.thumb`: the
/// hash and whether it is a thumbnail. Anything else in storage is not the server's (the sweep
/// of bytes no record names leaves it alone).
pub fn parse_key(key: &str) -> Option<(&str, bool)> {
    let (hash, thumbnail) = match key.strip_suffix(".thumb") {
        Some(hash) => (hash, true),
        None => (key, false),
    };
    let hex = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.then_some((hash, thumbnail))
}

/// Blobs as files: `<root>/<first two hex digits>/<key>`, uploads in progress in
/// `<root>/tmp/<per process>`.
/// Directories are made on first use, so a server that stores nothing creates nothing (a
/// PostgreSQL node does not touch its data directory).
pub struct LocalStorage {
    root: PathBuf,
    tmp: PathBuf,
}

impl LocalStorage {
    /// Opens the directory `root` (made on first use). Each process has a temporary
    /// directory of its own, `tmp/<random>`, since nodes of a cluster may share `root`; those
    /// not touched for a day (left by a process that crashed) are removed.
    pub fn open(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            tmp: process_temp_dir(root),
        }
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(&key[..2]).join(key))
    }
}

#[async_trait]
impl MediaStorage for LocalStorage {
    async fn put(&self, key: &str, from: &Path) -> io::Result<()> {
        let to = self.path(key)?;
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        if tokio::fs::try_exists(&to).await? {
            return tokio::fs::remove_file(from).await;
        }
        // Durable before it is recorded: the bytes, then the rename.
        tokio::fs::File::open(from).await?.sync_all().await?;
        tokio::fs::rename(from, &to).await
    }

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let mut file = tokio::fs::File::open(self.path(key)?).await?;
        file.seek(io::SeekFrom::Start(range.start)).await?;
        let len = range.end.saturating_sub(range.start);
        Ok(ReaderStream::with_capacity(file.take(len), CHUNK).boxed())
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn keys(&self) -> BoxStream<'static, io::Result<StoredKey>> {
        // One two-digit directory at a time (a 256th of the files), so memory stays small;
        // each read in one blocking call.
        let root = self.root.clone();
        futures_util::stream::iter(0..=255u8)
            .then(move |i| {
                let shard = format!("{i:02x}");
                let dir = root.join(&shard);
                async move {
                    tokio::task::spawn_blocking(move || list_dir(&dir, &shard))
                        .await
                        .map_err(io::Error::other)?
                }
            })
            .flat_map(|found| match found {
                Ok(keys) => futures_util::stream::iter(keys.into_iter().map(Ok)).boxed(),
                Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    fn temp_dir(&self) -> &Path {
        &self.tmp
    }
}

/// The media keys in one directory of [`LocalStorage`], `shard` (none if it does not exist).
/// Only keys that belong in that shard count; a file removed while listing is skipped.
fn list_dir(dir: &Path, shard: &str) -> io::Result<Vec<StoredKey>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(key) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !parse_key(&key).is_some_and(|(hash, _)| hash.starts_with(shard)) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_file() {
            keys.push(StoredKey {
                key,
                stored: meta.modified()?,
            });
        }
    }
    Ok(keys)
}
