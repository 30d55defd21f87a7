//! Media metadata ([`MediaStore`]) on SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::writer::{WriteCtx, backend};
use crate::store::{ConvId, MediaRecord, MediaStore, StoreResult, Upload, UserId};

const COLUMNS: &str = "hash, mime, size, width, height, thumbnail, color";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<MediaRecord> {
    Ok(MediaRecord {
        hash: r.get(0)?,
        mime: r.get(1)?,
        size: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
        width: r.get(3)?,
        height: r.get(4)?,
        thumbnail: r.get(5)?,
        color: r.get(6)?,
    })
}

fn find(c: &Connection, hash: &str) -> rusqlite::Result<Option<MediaRecord>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM media WHERE hash = ?1"))?
        .query_row([hash], record)
        .optional()
}

fn usage(c: &Connection, user: UserId) -> rusqlite::Result<u64> {
    let used: i64 = c
        .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM media_uploads WHERE user_id = ?1")?
        .query_row([user], |r| r.get(0))?;
    Ok(used.try_into().unwrap_or(0))
}

fn add_upload(
    ctx: &mut WriteCtx<'_>,
    record: MediaRecord,
    uploader: UserId,
    name: Option<String>,
    quota: u64,
) -> StoreResult<Upload> {
    let c = ctx.conn;
    let stored = find(c, &record.hash).map_err(backend)?;
    let size = stored.as_ref().map_or(record.size, |r| r.size);
    let used = usage(c, uploader).map_err(backend)?;
    let had = c
        .prepare_cached("SELECT 1 FROM media_uploads WHERE user_id = ?1 AND hash = ?2")
        .and_then(|mut s| s.exists(params![uploader, record.hash]))
        .map_err(backend)?;
    if !had && used.saturating_add(size) > quota {
        return Ok(Upload::OverQuota { used_bytes: used });
    }
    let new = stored.is_none();
    let size_i = i64::try_from(size).unwrap_or(i64::MAX);
    if new {
        c.prepare_cached(
            "INSERT INTO media (hash, mime, size, width, height, thumbnail, color, created_at, touched_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                record.hash,
                record.mime,
                size_i,
                record.width,
                record.height,
                record.thumbnail,
                record.color,
                ctx.now
            ])
        })
        .map_err(backend)?;
    } else {
        c.prepare_cached("UPDATE media SET touched_at = ?2 WHERE hash = ?1")
            .and_then(|mut s| s.execute(params![record.hash, ctx.now]))
            .map_err(backend)?;
    }
    if !had {
        c.prepare_cached(
            "INSERT INTO media_uploads (user_id, hash, name, size, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![uploader, record.hash, name, size_i, ctx.now]))
        .map_err(backend)?;
    }
    let record = match stored {
        Some(r) => r,
        None => MediaRecord { size, ..record },
    };
    Ok(Upload::Recorded {
        record,
        new,
        used_bytes: if had { used } else { used + size },
    })
}

fn sweep(ctx: &mut WriteCtx<'_>, before: i64, limit: u32) -> StoreResult<Vec<String>> {
    let c = ctx.conn;
    let hashes: Vec<String> = c
        .prepare_cached(
            "SELECT hash FROM media m WHERE touched_at < ?1
             AND NOT EXISTS (SELECT 1 FROM media_shares s WHERE s.hash = m.hash)
             ORDER BY touched_at LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![before, limit], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(backend)?;
    for hash in &hashes {
        for sql in [
            "DELETE FROM media_uploads WHERE hash = ?1",
            "DELETE FROM media WHERE hash = ?1",
        ] {
            c.prepare_cached(sql)
                .and_then(|mut s| s.execute([hash]))
                .map_err(backend)?;
        }
    }
    Ok(hashes)
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn media(&self, hash: &str) -> StoreResult<Option<MediaRecord>> {
        let hash = hash.to_owned();
        self.read(move |c| find(c, &hash)).await
    }

    async fn add_upload(
        &self,
        record: MediaRecord,
        uploader: UserId,
        name: Option<String>,
        quota: u64,
    ) -> StoreResult<Upload> {
        self.write(move |ctx| add_upload(ctx, record, uploader, name, quota))
            .await
    }

    async fn media_usage(&self, user: UserId) -> StoreResult<u64> {
        self.read(move |c| usage(c, user)).await
    }

    async fn upload_name(&self, user: UserId, hash: &str) -> StoreResult<Option<Option<String>>> {
        let hash = hash.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT name FROM media_uploads WHERE user_id = ?1 AND hash = ?2")?
                .query_row(params![user, hash], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn share_media(&self, conv: ConvId, hash: &str) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.write(move |ctx| {
            ctx.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO media_shares (hash, conv_id) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute(params![hash, conv]))
                .map(drop)
                .map_err(backend)
        })
        .await
    }

    async fn may_read_media(&self, user: UserId, hash: &str) -> StoreResult<bool> {
        let hash = hash.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM media_uploads WHERE hash = ?1 AND user_id = ?2)
                     OR EXISTS (SELECT 1 FROM media_shares s
                                JOIN members m ON m.conv_id = s.conv_id
                                WHERE s.hash = ?1 AND m.user_id = ?2)",
            )?
            .query_row(params![hash, user], |r| r.get(0))
        })
        .await
    }

    async fn sweep_media(&self, before: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.write(move |ctx| sweep(ctx, before, limit)).await
    }
}
