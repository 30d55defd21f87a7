//! The data directory's checks at open and its clean-shutdown mark: what a start finds on disk
//! before SQLite touches it, the directory's identity marker (`banter.id`), the integrity check
//! and the test write.
//!
//! SQLite alone cannot tell a new directory from one whose database was deleted: both open as an
//! empty database. So the first start writes `banter.id`, holding a random store id that is also
//! stored inside the database, and a state: `running` from each start on, `clean` once a
//! shutdown has checkpointed the WAL into the database and removed it. A start that finds the
//! marker but no database, a database with another id or none, or `running` without a WAL (the
//! WAL held committed writes that are not in the database) refuses and says what it found.
//! This module never deletes or repairs anything: what to do is the operator's call, and every
//! refusal names it (docs/OPERATIONS.md, "Data", lists them all).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::{Connection, ErrorCode, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::DB_FILE;
use crate::store::{StoreError, StoreResult};

/// File name of the identity marker inside the data directory.
pub const MARKER_FILE: &str = "banter.id";
/// Written, synced and removed at open to prove the directory takes new files.
const PROBE_FILE: &str = ".banter-write-probe";
/// At most this many problems are asked of `PRAGMA quick_check` (and quoted in the refusal).
const QUICK_CHECK_ERRORS: u32 = 5;

/// Whether the last run ended with a checkpointed, removed WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// A server opened the store and has not (yet) shut down cleanly.
    Running,
    /// The last shutdown left every write in the database file and no WAL.
    Clean,
}

/// The contents of `banter.id`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    store_id: String,
    state: State,
}

/// A data directory that passed the checks made before SQLite opens it.
pub(super) struct DataDir {
    dir: PathBuf,
    db: PathBuf,
    wal: PathBuf,
    marker_path: PathBuf,
    /// The marker as found at open (`None`: new directory, or one from before markers).
    found: Option<Marker>,
    /// The store id, once [`DataDir::adopt`] settled it.
    store_id: Option<String>,
}

impl DataDir {
    /// Looks at what `dir` holds and refuses the combinations that mean data is missing.
    pub(super) fn survey(dir: &Path) -> StoreResult<Self> {
        let db = dir.join(DB_FILE);
        let mut this = Self {
            wal: dir.join(format!("{DB_FILE}-wal")),
            marker_path: dir.join(MARKER_FILE),
            dir: dir.to_path_buf(),
            db,
            found: None,
            store_id: None,
        };
        this.found = this.read_marker()?;
        let db_len = fs::metadata(&this.db).ok().map(|m| m.len());
        let has_wal = this.wal.exists();
        match (&this.found, db_len) {
            (Some(m), None) => Err(this.refuse(format!(
                "{} is missing, but {} shows that store {} was created here; starting would \
                 create an empty store. Restore {DB_FILE} from a backup, or move the directory \
                 aside to start empty",
                this.db.display(),
                this.marker_path.display(),
                m.store_id
            ))),
            (None, None) if has_wal => Err(this.refuse(format!(
                "{} is missing but {} exists: the database was deleted or moved. Restore it (the \
                 -wal belongs beside it), or move the directory aside to start empty",
                this.db.display(),
                this.wal.display()
            ))),
            (Some(m), Some(_)) if m.state == State::Running && !has_wal => {
                Err(this.refuse(format!(
                    "{} says the last run did not shut down cleanly, but {} is missing: it held \
                     committed writes that are not in {DB_FILE}. Put the -wal file back if you \
                     have it. To start with what {DB_FILE} holds (losing the writes since the \
                     last start, unless another SQLite tool merged the WAL), set \
                     state = \"clean\" in {MARKER_FILE}",
                    this.marker_path.display(),
                    this.wal.display()
                )))
            }
            _ => Ok(this),
        }
    }

    fn read_marker(&self) -> StoreResult<Option<Marker>> {
        let text = match fs::read_to_string(&self.marker_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unreadable_marker(&e)),
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| self.unreadable_marker(&e))
    }

    fn unreadable_marker(&self, e: &dyn std::fmt::Display) -> StoreError {
        self.refuse(format!(
            "{} cannot be read ({e}); it names the store this directory holds. Restore it, or \
             delete it to accept {DB_FILE} as it is",
            self.marker_path.display()
        ))
    }

    /// Creates, syncs and removes a file: the directory must take the WAL, the shared-memory
    /// file and the marker, and saying so now beats SQLite's "unable to open database file".
    pub(super) fn probe_writable(&self) -> StoreResult<()> {
        let probe = self.dir.join(PROBE_FILE);
        let written = fs::File::create(&probe)
            .and_then(|mut f| f.write_all(b"probe").and_then(|()| f.sync_all()))
            .and_then(|()| fs::remove_file(&probe));
        written.map_err(|e| {
            self.refuse(format!(
                "{} is not writable ({e}): Banter creates {DB_FILE}-wal, {DB_FILE}-shm and \
                 {MARKER_FILE} there. Check the directory's owner, permissions and mount",
                self.dir.display()
            ))
        })
    }

    /// Refuses a connection that SQLite opened read-only (it does so silently when the file
    /// cannot be opened for writing).
    pub(super) fn require_writable(&self, conn: &Connection) -> StoreResult<()> {
        match conn.is_readonly(rusqlite::MAIN_DB) {
            Ok(false) => Ok(()),
            Ok(true) => Err(self.refuse(format!(
                "{} can only be opened read-only: check the file's owner and permissions, and \
                 that its file system is mounted read-write",
                self.db.display()
            ))),
            Err(e) => Err(self.sqlite(&e, "open")),
        }
    }

    /// Runs `PRAGMA quick_check` (every page is read once: 3–4 s for a 1.2 GB database, see
    /// docs/OPERATIONS.md) and refuses a damaged database.
    pub(super) fn quick_check(&self, conn: &Connection) -> StoreResult<()> {
        let started = Instant::now();
        let problems = conn
            .prepare(&format!("PRAGMA quick_check({QUICK_CHECK_ERRORS})"))
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.sqlite(&e, "check"))?;
        if problems != ["ok"] {
            return Err(self.damaged(&problems.join("; ")));
        }
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| self.sqlite(&e, "check"))?;
        tracing::info!(
            pages,
            ms = started.elapsed().as_millis() as u64,
            "database quick_check passed"
        );
        Ok(())
    }

    /// Settles the store id (new, or the database's, which must match the marker's), then makes
    /// the test write and checkpoints it into the database file, so that a start is announced
    /// only once both files have taken a write. After it the database file holds everything
    /// (a crashed run's WAL included): an open that fails from here on may call
    /// [`DataDir::mark_clean`] once its connections are closed.
    pub(super) fn adopt(&mut self, conn: &Connection) -> StoreResult<()> {
        let held: Option<String> = conn
            .query_row(
                "SELECT value FROM banter_meta WHERE key = 'store_id'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(&e, "read"))?;
        let id = match (held, &self.found) {
            (Some(db), Some(m)) if db != m.store_id => {
                return Err(self.refuse(format!(
                    "{} holds store {db}, but {} names store {}: the database comes from \
                     another data directory. If that is intended (a restore from another \
                     server), delete {MARKER_FILE} and start again",
                    self.db.display(),
                    self.marker_path.display(),
                    m.store_id
                )));
            }
            (None, Some(m)) => {
                return Err(self.refuse(format!(
                    "{} is empty or new, but {} shows that store {} lived here: the database \
                     was truncated or replaced. Restore it from a backup, or move the directory \
                     aside to start empty",
                    self.db.display(),
                    self.marker_path.display(),
                    m.store_id
                )));
            }
            (Some(db), found) => {
                if found.is_none() {
                    tracing::warn!(store = %db, "no {MARKER_FILE} beside the database: writing it");
                }
                db
            }
            (None, None) => {
                let id = format!("{:032x}", rand::random::<u128>());
                tracing::info!(store = %id, dir = %self.dir.display(), "new data directory");
                id
            }
        };
        let now = crate::clock::now_ms().to_string();
        conn.execute_batch("BEGIN IMMEDIATE")
            .and_then(|()| {
                conn.execute(
                    "INSERT OR IGNORE INTO banter_meta (key, value) VALUES ('store_id', ?1)",
                    [&id],
                )?;
                conn.execute(
                    "INSERT OR REPLACE INTO banter_meta (key, value) VALUES ('opened_at', ?1)",
                    [&now],
                )?;
                conn.execute_batch("COMMIT")
            })
            .map_err(|e| self.sqlite(&e, "write to"))?;
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| self.sqlite(&e, "checkpoint"))?;
        if busy != 0 {
            tracing::warn!("another connection holds {DB_FILE} open: is a second server running?");
        }
        self.store_id = Some(id);
        Ok(())
    }

    /// Records that a server now runs on this directory: from here on, a missing WAL means lost
    /// writes. Call it last before taking writes.
    pub(super) fn mark_running(&self) -> StoreResult<()> {
        self.mark(State::Running)
    }

    /// After the last connection closed: records that the database holds everything, if the WAL
    /// is gone (SQLite removes it when the last connection closes after a full checkpoint).
    pub(super) fn mark_clean(&self) {
        if self.wal.exists() {
            tracing::warn!(wal = %self.wal.display(), "the WAL is still there after shutdown");
            return;
        }
        if let Err(e) = self.mark(State::Clean) {
            tracing::warn!(error = %e, "cannot record the clean shutdown");
        }
    }

    /// Replaces the marker atomically (write, sync, rename, sync the directory).
    fn mark(&self, state: State) -> StoreResult<()> {
        let Some(store_id) = self.store_id.clone() else {
            return Ok(());
        };
        let marker = Marker { store_id, state };
        let text = format!(
            "# Banter data directory marker: keep it beside {DB_FILE} (docs/OPERATIONS.md, \"Data\").\n{}",
            toml::to_string(&marker).expect("the marker serializes")
        );
        let tmp = self.dir.join(format!("{MARKER_FILE}.tmp"));
        fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.marker_path))
            .and_then(|()| fs::File::open(&self.dir)?.sync_all())
            .map_err(|e| self.refuse(format!("cannot write {}: {e}", self.marker_path.display())))
    }

    fn damaged(&self, detail: &str) -> StoreError {
        self.refuse(format!(
            "{} is damaged (SQLite: {detail}). Restore it from a backup, or salvage what is \
             readable with `sqlite3 {DB_FILE} .recover`",
            self.db.display()
        ))
    }

    /// A refusal naming what SQLite said, in the operator's terms where the code is known.
    pub(super) fn sqlite(&self, e: &rusqlite::Error, doing: &str) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt) => self.damaged(&e.to_string()),
            Some(ErrorCode::NotADatabase) => self.refuse(format!(
                "{} is not a SQLite database or its header is damaged ({e}). Restore it from \
                 a backup",
                self.db.display()
            )),
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => self
                .refuse(format!(
                    "cannot {doing} {} or its -wal/-shm files ({e}): check owner, permissions \
                     and mount of the files and the directory",
                    self.db.display()
                )),
            _ => self.refuse(format!("cannot {doing} {}: {e}", self.db.display())),
        }
    }

    fn refuse(&self, what: String) -> StoreError {
        StoreError::DataDir(format!(
            "{what} (see docs/OPERATIONS.md, \"Data\"; data directory {})",
            self.dir.display()
        ))
    }
}
