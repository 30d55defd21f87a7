//! PostgreSQL errors as the store's typed errors, by SQLSTATE.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Maps a driver error: a lost or refused connection and a server that is shutting down,
/// out of resources or damaged are `Unavailable`; serialization failures, deadlocks and lock
/// or statement timeouts are `Busy`; a unique key another writer took is `Conflict` (callers
/// that treat a duplicate as idempotent check for it first); anything else is `Backend`.
pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    let text = e.to_string();
    let Some(db) = e.as_db_error() else {
        // No server error: the connection failed or closed (I/O, timeout), or a value did
        // not convert (a bug).
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        return if e.is_closed() || io || text.contains("timeout") || text.contains("connect") {
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        };
    };
    let detail = format!("{text}: {}", db.message());
    let code = db.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
    {
        return StoreError::Busy(detail);
    }
    if *code == SqlState::UNIQUE_VIOLATION {
        return StoreError::Conflict(detail);
    }
    let class = &code.code()[..2];
    // 08 connection exception, 53 insufficient resources, 57 operator intervention (shutting
    // down), 58 system error, XX internal error (data corrupted); 25006 a read-only server.
    if matches!(class, "08" | "53" | "57" | "58" | "XX")
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        return StoreError::Unavailable(detail);
    }
    StoreError::Backend(detail)
}

/// Maps a pool error: no connection in time, or none could be made, is `Unavailable`.
pub(super) fn pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(e) => match db(e) {
            StoreError::Backend(why) => StoreError::Unavailable(why),
            other => other,
        },
        PoolError::Timeout(_) => StoreError::Unavailable(format!("database connection: {e}")),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Whether `e` is a unique violation (SQLSTATE 23505).
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A copy of a batch's error for each of its jobs (`StoreError` is not `Clone`).
pub(super) fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Busy(why) => StoreError::Busy(why.clone()),
        StoreError::Conflict(why) => StoreError::Conflict(why.clone()),
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        StoreError::Closed => StoreError::Closed,
        StoreError::NotFound(what) => StoreError::NotFound(*what),
        other => StoreError::Backend(other.to_string()),
    }
}
