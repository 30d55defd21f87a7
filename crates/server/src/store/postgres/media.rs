//! Media metadata ([`MediaStore`]) on PostgreSQL. An upload locks its uploader's row, so that
//! two nodes taking uploads of one user at once keep within the quota.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::PostgresStore;
use super::errors::db;
use crate::store::{ConvId, MediaRecord, MediaStore, StoreResult, Upload, UserId};

const COLUMNS: &str = "hash, mime, size, width, height, thumbnail, color";

fn record(r: &tokio_postgres::Row) -> MediaRecord {
    let dim = |i: usize| {
        r.get::<_, Option<i32>>(i)
            .and_then(|v| u32::try_from(v).ok())
    };
    MediaRecord {
        hash: r.get(0),
        mime: r.get(1),
        size: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        width: dim(3),
        height: dim(4),
        thumbnail: r.get(5),
        color: r.get(6),
    }
}

async fn find(c: &impl GenericClient, hash: &str) -> StoreResult<Option<MediaRecord>> {
    let stmt = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM media WHERE hash = $1"))
        .await
        .map_err(db)?;
    Ok(c.query_opt(&stmt, &[&hash])
        .await
        .map_err(db)?
        .as_ref()
        .map(record))
}

async fn usage(c: &impl GenericClient, user: UserId) -> StoreResult<u64> {
    let row = c
        .query_one(
            "SELECT COALESCE(SUM(size), 0)::BIGINT FROM media_uploads WHERE user_id = $1",
            &[&user],
        )
        .await
        .map_err(db)?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

async fn add_upload(
    c: &impl GenericClient,
    now: i64,
    record: MediaRecord,
    uploader: UserId,
    name: Option<String>,
    quota: u64,
) -> StoreResult<Upload> {
    c.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&uploader])
        .await
        .map_err(db)?;
    // Two uploads of new bytes racing on two nodes: the second waits here for the first.
    c.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&record.hash],
    )
    .await
    .map_err(db)?;
    // Locked, so that a sweep cannot delete it between this read and the writes below (one
    // that deleted it before is seen as its absence).
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM media WHERE hash = $1 FOR UPDATE"
        ))
        .await
        .map_err(db)?;
    let stored = c
        .query_opt(&stmt, &[&record.hash])
        .await
        .map_err(db)?
        .as_ref()
        .map(self::record);
    let size = stored.as_ref().map_or(record.size, |r| r.size);
    let used = usage(c, uploader).await?;
    let had = c
        .query_opt(
            "SELECT 1 FROM media_uploads WHERE user_id = $1 AND hash = $2",
            &[&uploader, &record.hash],
        )
        .await
        .map_err(db)?
        .is_some();
    if !had && used.saturating_add(size) > quota {
        return Ok(Upload::OverQuota { used_bytes: used });
    }
    let new = stored.is_none();
    let size_i = i64::try_from(size).unwrap_or(i64::MAX);
    if new {
        let dim = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
        c.execute(
            "INSERT INTO media (hash, mime, size, width, height, thumbnail, color, created_at, touched_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            &[
                &record.hash,
                &record.mime,
                &size_i,
                &dim(record.width),
                &dim(record.height),
                &record.thumbnail,
                &record.color,
                &now,
            ],
        )
        .await
        .map_err(db)?;
    } else {
        c.execute(
            "UPDATE media SET touched_at = $2 WHERE hash = $1",
            &[&record.hash, &now],
        )
        .await
        .map_err(db)?;
    }
    if !had {
        c.execute(
            "INSERT INTO media_uploads (user_id, hash, name, size, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&uploader, &record.hash, &name, &size_i, &now],
        )
        .await
        .map_err(db)?;
    }
    let record = stored.unwrap_or(MediaRecord { size, ..record });
    Ok(Upload::Recorded {
        record,
        new,
        used_bytes: if had { used } else { used + size },
    })
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn media(&self, hash: &str) -> StoreResult<Option<MediaRecord>> {
        find(&self.client().await?, hash).await
    }

    async fn add_upload(
        &self,
        record: MediaRecord,
        uploader: UserId,
        name: Option<String>,
        quota: u64,
    ) -> StoreResult<Upload> {
        in_transaction!(self, |tx, now| add_upload(
            &tx, now, record, uploader, name, quota
        )
        .await)
    }

    async fn media_usage(&self, user: UserId) -> StoreResult<u64> {
        usage(&self.client().await?, user).await
    }

    async fn upload_name(&self, user: UserId, hash: &str) -> StoreResult<Option<Option<String>>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT name FROM media_uploads WHERE user_id = $1 AND hash = $2",
                &[&user, &hash],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn share_media(&self, conv: ConvId, hash: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO media_shares (hash, conv_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&hash, &conv],
            )
            .await
            .map(drop)
            .map_err(db)
    }

    async fn may_read_media(&self, user: UserId, hash: &str) -> StoreResult<bool> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM media_uploads WHERE hash = $1 AND user_id = $2)
                     OR EXISTS (SELECT 1 FROM media_shares s
                                JOIN members m ON m.conv_id = s.conv_id
                                WHERE s.hash = $1 AND m.user_id = $2)",
                &[&hash, &user],
            )
            .await
            .map_err(db)?;
        Ok(row.get(0))
    }

    async fn sweep_media(&self, before: i64, limit: u32) -> StoreResult<Vec<String>> {
        let limit = i64::from(limit);
        in_transaction!(self, |tx, _now| {
            let rows = tx
                .query(
                    "DELETE FROM media WHERE hash IN (
                         SELECT hash FROM media m WHERE touched_at < $1
                         AND NOT EXISTS (SELECT 1 FROM media_shares s WHERE s.hash = m.hash)
                         ORDER BY touched_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING hash",
                    &[&before, &limit],
                )
                .await
                .map_err(db);
            match rows {
                Ok(rows) => {
                    let hashes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                    tx.execute("DELETE FROM media_uploads WHERE hash = ANY($1)", &[&hashes])
                        .await
                        .map(|_| hashes)
                        .map_err(db)
                }
                Err(e) => Err(e),
            }
        })
    }
}
