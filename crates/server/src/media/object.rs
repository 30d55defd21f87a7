//! Media bytes in an object store (S3 or any S3-compatible service, or the object store
//! crate's local and in-memory stores), behind the same [`MediaStorage`] trait as the local
//! directory. Uploads still land in a local temporary file first (they are hashed, sniffed and
//! inspected there); `put` then streams that file out in parts, so a large file is never held
//! in memory whole.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::storage::{MediaStorage, StoredKey, check_key, process_temp_dir};

/// Bytes per part of an upload: S3's smallest part size (every part but the last).
const PART: usize = 5 * 1024 * 1024;

/// Parts in flight at once while storing one file: with the one being filled, at most three
/// parts (15 MiB) in memory per file being stored.
const PARTS_IN_FLIGHT: usize = 2;

/// Files being stored at once by one server; the next waits for a turn. With
/// [`PARTS_IN_FLIGHT`], at most 8 × 15 MiB of parts in memory, whatever the number of users.
const STORES_AT_ONCE: usize = 8;

/// Blobs as objects `<prefix>/<key>` of an [`ObjectStore`].
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    tmp: PathBuf,
    /// Turns of [`STORES_AT_ONCE`].
    stores: Arc<tokio::sync::Semaphore>,
}

impl ObjectStorage {
    /// Keys under `prefix` of `store`; uploads in progress in a directory of this process
    /// under `local_root/tmp` (made on first use).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, local_root: &Path) -> Self {
        Self {
            store,
            prefix,
            tmp: process_temp_dir(local_root),
            stores: Arc::new(tokio::sync::Semaphore::new(STORES_AT_ONCE)),
        }
    }

    /// Opens the store a `media_store` URL names: `s3://bucket/prefix` (credentials, region
    /// and endpoint from the `AWS_*` environment variables), `file:///directory` or
    /// `memory://` (lost when the process exits: for tests and demos).
    pub fn open(url: &str, local_root: &Path) -> io::Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("{url}: {e}")))?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "s3" => {
                // reqwest's TLS has no crypto built in here: the process uses ring (as the
                // rest of the server does). Installing it twice is harmless.
                _ = rustls::crypto::ring::default_provider().install_default();
                let s3 = s3_builder(url)
                    .build()
                    .map_err(|e| invalid(format!("{url}: {e}")))?;
                let prefix = ObjectPath::from_url_path(parsed.path())
                    .map_err(|e| invalid(format!("{url}: {e}")))?;
                (Arc::new(s3), prefix)
            }
            "memory" => (
                Arc::new(object_store::memory::InMemory::new()),
                ObjectPath::default(),
            ),
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid(format!("{url}: not an absolute path")))?;
                std::fs::create_dir_all(&dir)?;
                // Durable before it is recorded, like the media directory.
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(format!("{url}: {e}")))?
                    .with_fsync(true);
                (Arc::new(local), ObjectPath::default())
            }
            other => {
                return Err(invalid(format!(
                    "{url}: media_store takes s3://, file:// or memory://, not {other}://"
                )));
            }
        };
        Ok(Self::new(store, prefix, local_root))
    }

    fn location(&self, key: &str) -> io::Result<ObjectPath> {
        check_key(key)?;
        Ok(self.prefix.clone().join(key))
    }
}

/// S3 from the `AWS_*` environment, failing fast when the bucket is away (object_store's
/// defaults retry for up to 3 minutes, holding the request and its slots meanwhile): at most 3
/// retries within 10 s, a request timeout of 30 s and a connect timeout of 5 s unless
/// `AWS_TIMEOUT` or `AWS_CONNECT_TIMEOUT` say otherwise.
fn s3_builder(url: &str) -> object_store::aws::AmazonS3Builder {
    use object_store::ClientConfigKey as C;
    use object_store::aws::AmazonS3ConfigKey as K;
    let mut s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_url(url)
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(10),
            backoff: object_store::BackoffConfig::default(),
        });
    for (var, key, value) in [
        ("AWS_TIMEOUT", C::Timeout, "30s"),
        ("AWS_CONNECT_TIMEOUT", C::ConnectTimeout, "5s"),
    ] {
        if std::env::var_os(var).is_none() {
            s3 = s3.with_config(K::Client(key), value);
        }
    }
    s3
}

/// Streams `file` into `writer`, with at most [`PARTS_IN_FLIGHT`] parts uploading.
async fn copy(mut file: tokio::fs::File, writer: &mut WriteMultipart) -> io::Result<()> {
    let mut chunk = vec![0; super::storage::CHUNK];
    loop {
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(io_error)?;
        writer.write(&chunk[..n]);
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// An object store error as I/O: a missing object is `NotFound`, anything else `Other`.
fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

#[async_trait]
impl MediaStorage for ObjectStorage {
    async fn put(&self, key: &str, from: &Path) -> io::Result<()> {
        let location = self.location(key)?;
        if self.size(key).await?.is_some() {
            return tokio::fs::remove_file(from).await;
        }
        // Opened here, so the task below reads it even if the request goes away and its
        // temporary file is unlinked.
        let file = tokio::fs::File::open(from).await?;
        let turn = Arc::clone(&self.stores)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let store = Arc::clone(&self.store);
        let from = from.to_owned();
        // In a task of its own: a multipart upload is always completed or aborted, even when
        // the request that started it is dropped (S3 keeps, and bills, the parts of an upload
        // that is neither; object_store cannot abort one on drop).
        tokio::spawn(async move {
            let _turn = turn;
            let upload = store.put_multipart(&location).await.map_err(io_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            match copy(file, &mut writer).await {
                // `finish` aborts the upload itself when it fails.
                Ok(()) => _ = writer.finish().await.map_err(io_error)?,
                Err(e) => {
                    if let Err(abort) = writer.abort().await {
                        tracing::warn!(error = %abort, "media multipart upload not aborted");
                    }
                    return Err(e);
                }
            }
            match tokio::fs::remove_file(&from).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match self.store.head(&self.location(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn read(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let location = self.location(key)?;
        if range.is_empty() {
            return Ok(stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(io_error)?;
        Ok(got.into_stream().map_err(io_error).boxed())
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match self.store.delete(&self.location(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    fn keys(&self) -> BoxStream<'static, io::Result<StoredKey>> {
        let prefix = self.prefix.clone();
        self.store
            .list(Some(&self.prefix))
            .map(move |meta| {
                let meta = meta.map_err(io_error)?;
                // The key is what follows the prefix; objects further down are not ours
                // (an empty key, which the sweep skips).
                let parts: Vec<String> = meta
                    .location
                    .prefix_match(&prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect())
                    .unwrap_or_default();
                let key = match <[String; 1]>::try_from(parts) {
                    Ok([key]) => key,
                    Err(_) => String::new(),
                };
                Ok(StoredKey {
                    key,
                    stored: meta.last_modified.into(),
                })
            })
            .boxed()
    }

    fn temp_dir(&self) -> &Path {
        &self.tmp
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectStorage;
    use crate::media::storage::MediaStorage;
    use futures_util::TryStreamExt;

    async fn temp_file(storage: &ObjectStorage, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        storage.prepare().await.unwrap();
        let path = storage.temp_dir().join(name);
        tokio::fs::write(&path, bytes).await.unwrap();
        path
    }

    #[tokio::test]
    async fn objects_are_put_once_read_by_range_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "memory://".to_owned(),
            format!("file://{}/objects", dir.path().display()),
        ] {
            let storage = ObjectStorage::open(&url, dir.path()).unwrap();
            let key = "ab".repeat(32);
            assert_eq!(storage.size(&key).await.unwrap(), None, "{url}");
            let from = temp_file(&storage, "one", b"hello, object").await;
            storage.put(&key, &from).await.unwrap();
            assert!(!from.exists(), "the temporary file is consumed");
            assert_eq!(storage.size(&key).await.unwrap(), Some(13), "{url}");
            // The same key again keeps what is stored and still consumes the file.
            let from = temp_file(&storage, "two", b"hello, object").await;
            storage.put(&key, &from).await.unwrap();
            assert!(!from.exists());
            let read = |range| storage.read(&key, range);
            let bytes: Vec<_> = read(7..13).await.unwrap().try_collect().await.unwrap();
            assert_eq!(bytes.concat(), b"object", "{url}");
            let none: Vec<_> = read(3..3).await.unwrap().try_collect().await.unwrap();
            assert!(none.is_empty());
            storage.delete(&key).await.unwrap();
            storage.delete(&key).await.unwrap();
            assert_eq!(storage.size(&key).await.unwrap(), None, "{url}");
            for bad in ["../etc/passwd", "a/b", "x"] {
                assert!(storage.size(bad).await.is_err(), "{bad} is not a key");
            }
        }
    }

    #[test]
    fn unknown_schemes_and_bad_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for url in ["ftp://host/x", "not a url", "file://relative"] {
            let e = ObjectStorage::open(url, dir.path()).err();
            assert!(e.is_some(), "{url}");
        }
    }
}
