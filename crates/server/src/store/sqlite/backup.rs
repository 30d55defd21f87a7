//! `banter backup` and `banter restore`: a consistent copy of a data directory's database,
//! taken while a server runs on it, and putting such a copy in place of an empty directory.
//!
//! The backup is SQLite's online backup of the whole database in one step, which reads it in
//! one read transaction: the copy is the database as of one commit, every acknowledged message
//! up to it included, while the server goes on writing (in WAL mode readers and the writer do
//! not block each other). It is written beside the destination and renamed into place once
//! synced and checked, so a failed or interrupted backup never leaves a half file under the
//! destination's name.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::DB_FILE;

/// What a backup or restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The database file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Conversation entries (messages, edits, recalls, system entries) in it.
    pub entries: u64,
    /// Users in it.
    pub users: u64,
    /// How long it took.
    pub took: Duration,
}

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// There is no database to back up.
    #[error("no database at {0}")]
    NoDatabase(PathBuf),
    /// The destination exists; nothing is overwritten.
    #[error("{0} exists: choose a new name (nothing is overwritten)")]
    Exists(PathBuf),
    /// The copy is not a sound Banter database.
    #[error("{path} is not a sound Banter database: {detail}")]
    Unsound {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// SQLite failed.
    #[error("{doing} {path}: {source}")]
    Sqlite {
        /// What was being done.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The file system failed.
    #[error("{doing} {path}: {source}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, BackupError>;

/// Copies the database of `data_dir` to the new file `dest`, consistently, while a server may be
/// running on it.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<Copied> {
    let started = Instant::now();
    let source_path = data_dir.join(DB_FILE);
    if !source_path.exists() {
        return Err(BackupError::NoDatabase(source_path));
    }
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let source = Connection::open_with_flags(&source_path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite("open", &source_path))?;
    let partial = partial_name(dest);
    _ = fs::remove_file(&partial);
    {
        let mut target = Connection::open(&partial).map_err(sqlite("create", &partial))?;
        let copy = rusqlite::backup::Backup::new(&source, &mut target)
            .map_err(sqlite("start the backup of", &source_path))?;
        // Every page in one step: one read transaction, so one consistent snapshot.
        copy.step(-1).map_err(sqlite("copy", &source_path))?;
    }
    finish(&partial, dest, started)
}

/// Puts the backup `src` in place as the database of `data_dir`, which must hold no database
/// (move an old one aside first). The server adopts it at its next start, store id included.
pub fn restore(src: &Path, data_dir: &Path) -> Result<Copied> {
    let started = Instant::now();
    let dest = data_dir.join(DB_FILE);
    for taken in [dest.clone(), data_dir.join(super::MARKER_FILE)] {
        if taken.exists() {
            return Err(BackupError::Exists(taken));
        }
    }
    check(src)?;
    fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    let partial = partial_name(&dest);
    fs::copy(src, &partial).map_err(io("copy to", &partial))?;
    finish(&partial, &dest, started)
}

/// Syncs and checks `partial`, then renames it to `dest` and syncs the directory.
fn finish(partial: &Path, dest: &Path, started: Instant) -> Result<Copied> {
    let (entries, users) = match check(partial) {
        Ok(counts) => counts,
        Err(e) => {
            _ = fs::remove_file(partial);
            return Err(e);
        }
    };
    fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", partial))?;
    fs::rename(partial, dest).map_err(io("rename into", dest))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", dir))?;
    }
    let bytes = fs::metadata(dest).map_err(io("read", dest))?.len();
    Ok(Copied {
        path: dest.to_owned(),
        bytes,
        entries,
        users,
        took: started.elapsed(),
    })
}

/// `PRAGMA quick_check` and the counts of a Banter database (a file without Banter's tables is
/// not one).
fn check(path: &Path) -> Result<(u64, u64)> {
    let unsound = |detail: String| BackupError::Unsound {
        path: path.to_owned(),
        detail,
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite("open", path))?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| unsound(e.to_string()))?;
    if verdict != "ok" {
        return Err(unsound(verdict));
    }
    let count = |table: &str| -> Result<u64> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0).unsigned_abs())
        .map_err(|e| unsound(format!("{table}: {e}")))
    };
    Ok((count("messages")?, count("users")?))
}

fn partial_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    dest.with_file_name(name)
}

fn sqlite(doing: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Sqlite {
        doing,
        path,
        source,
    }
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io {
        doing,
        path,
        source,
    }
}
