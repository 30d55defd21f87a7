//! One data directory, one process: an exclusive lock on `banter.lock` in the data directory,
//! taken at open and held until the last store handle of this process on it is gone.
//!
//! Two processes writing one SQLite database would each be correct (SQLite locks the file),
//! but two servers on one directory would fight over its marker, checkpoints and backups, and
//! an operator who started one by mistake would never find out. So a second process refuses to
//! start and says which process holds the directory (the file holds the holder's pid).
//!
//! Within one process, handles on one directory share one lock (the conformance suite opens
//! two on one database): OS file locks belong to the open file, so a second `try_lock` from
//! this process would fail against our own first one. The map from directory to lock is
//! therefore process-wide; it holds only weak references, so the lock goes with its last
//! handle. The lock also counts the handles still open, so that only the last one to close
//! marks the directory clean.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::store::{StoreError, StoreResult};

/// File name of the lock inside the data directory. It stays after the lock is released (it
/// then names the last holder); removing it would race with a process taking it.
pub const LOCK_FILE: &str = "banter.lock";

/// Locks held by this process, by canonical directory. A process-wide map (not state passed
/// around) because the thing it mirrors, the OS lock, is process-wide too.
static HELD: Mutex<Option<HashMap<PathBuf, Weak<DirLock>>>> = Mutex::new(None);

/// This process's exclusive lock on one data directory, shared by its handles.
#[derive(Debug)]
pub(super) struct DirLock {
    dir: PathBuf,
    /// Holds the OS lock: closing the file releases it.
    _file: File,
    /// Handles that opened and have not closed yet.
    open: AtomicUsize,
}

impl DirLock {
    /// Takes the lock on `dir` (which must exist), or shares the one this process holds.
    /// Refuses with [`StoreError::Locked`] when another process holds it.
    pub(super) fn acquire(dir: &Path) -> StoreResult<Arc<Self>> {
        let canonical = dir
            .canonicalize()
            .map_err(|e| StoreError::DataDir(format!("cannot resolve {}: {e}", dir.display())))?;
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        let held = held.get_or_insert_with(HashMap::new);
        if let Some(lock) = held.get(&canonical).and_then(Weak::upgrade) {
            return Ok(lock);
        }
        let path = canonical.join(LOCK_FILE);
        let cannot =
            |e: std::io::Error| StoreError::DataDir(format!("cannot lock {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_data())
            .map_err(cannot)?;
        held.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(Self {
            dir: canonical.clone(),
            _file: file,
            open: AtomicUsize::new(0),
        });
        held.insert(canonical, Arc::downgrade(&lock));
        Ok(lock)
    }

    /// Records that a handle opened (once it is complete).
    pub(super) fn open_handle(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether no handle is open (one whose open failed may then leave the directory clean).
    pub(super) fn idle(&self) -> bool {
        self.open.load(Ordering::SeqCst) == 0
    }

    /// Records that one handle closed; true for the last one.
    pub(super) fn close_handle(&self) -> bool {
        self.open.fetch_sub(1, Ordering::SeqCst) == 1
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = held.as_mut()
            && held.get(&self.dir).is_some_and(|w| w.strong_count() == 0)
        {
            held.remove(&self.dir);
        }
    }
}

/// The pid the holder wrote, if it can be read.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
