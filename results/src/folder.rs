//! A results folder on disk: records by key, written atomically, with per-key locks.
//!
//! Layout (`runs/<preset>/` by default):
//!
//! - `runs/<key>.json`: a [`RunRecord`]; `<key>` is [`RunSpec::key`](crate::RunSpec::key). The
//!   code revision is recorded but not part of the key: rerunning after a commit reuses finished
//!   runs, and the signature says which code made each.
//! - `searches/<key>.json`: a [`SearchRecord`], keyed the same way by the search's plan and the
//!   identities of its model and data.
//! - `work/<key>/`: the checkpoints of a run in progress (removed once its result is written).
//! - `locks/<key>.lock`: held (`flock`) by the process working on a run or search; the kernel
//!   releases it when the process dies, so a killed process never leaves a stale lock.
//! - `logs/shard-<i>-of-<n>.log`: the warnings of shard `i` of a sharded (SLURM) reproduction.
//!
//! A result is written with [`write_atomically`]: a reader sees no file or a whole one, never a
//! truncated one, and a run whose result exists is never run again.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::run::RunRecord;
use crate::search::SearchRecord;
use crate::write_atomically;

/// An error reading, writing or locking something in a results folder.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file or folder could not be created, read, written, renamed or locked.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder that failed.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A result file exists but does not parse as its record (a file this suite's atomic writer
    /// did not write, or one edited by hand).
    #[error(
        "{path}: not a valid result file ({message}); it was not written by this suite's atomic writer: remove it to rerun"
    )]
    Corrupt {
        /// The result file.
        path: PathBuf,
        /// serde_json's message (with the line and column of the fault).
        message: String,
    },
}

impl From<crate::WriteError> for ResultsError {
    fn from(err: crate::WriteError) -> ResultsError {
        ResultsError::Io { path: err.path, source: err.source }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io { path: path.to_path_buf(), source }
}

/// A results folder.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    /// The folder itself (`runs/<preset>` by default), laid out as the module doc says.
    pub root: PathBuf,
}

/// A held lock on a key; released when dropped or when the process dies.
pub struct KeyLock {
    _file: File,
}

impl ResultsDir {
    /// Opens the folder `root`, creating it and its subfolders.
    pub fn new(root: impl Into<PathBuf>) -> Result<ResultsDir, ResultsError> {
        let results = ResultsDir::at(root);
        results.create()?;
        Ok(results)
    }

    /// The folder `root`, touching nothing on disk (a plan that is only checked, or a report,
    /// writes nothing).
    pub fn at(root: impl Into<PathBuf>) -> ResultsDir {
        ResultsDir { root: root.into() }
    }

    /// Creates the folder and its subfolders where they are missing.
    pub fn create(&self) -> Result<(), ResultsError> {
        for sub in ["runs", "searches", "work", "locks"] {
            let dir = self.root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(())
    }

    /// `runs/<key>.json`: where the record of the run keyed `key` is, or will be, written.
    pub fn run_path(&self, key: &str) -> PathBuf {
        self.root.join("runs").join(format!("{key}.json"))
    }

    /// `searches/<key>.json`: where the record of the search keyed `key` is, or will be, written.
    pub fn search_path(&self, key: &str) -> PathBuf {
        self.root.join("searches").join(format!("{key}.json"))
    }

    /// `work/<key>/`: the checkpoints of the run keyed `key` while it is in progress.
    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    /// Blocks until this process holds the lock of `key` (another process may be working on it).
    pub fn lock(&self, key: &str) -> Result<KeyLock, ResultsError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(KeyLock { _file: file })
    }

    /// [`ResultsDir::lock`] without waiting: `None` when another process holds the lock.
    pub fn try_lock(&self, key: &str) -> Result<Option<KeyLock>, ResultsError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(io(&path)(err)),
        }
    }

    /// The record of the run keyed `key`; `None` when it has none yet (not run, or not finished).
    /// A file that does not parse is [`ResultsError::Corrupt`].
    pub fn load_run(&self, key: &str) -> Result<Option<RunRecord>, ResultsError> {
        read_json(&self.run_path(key))
    }

    /// The record of the search keyed `key`; `None` when it has none yet. A file that does not
    /// parse is [`ResultsError::Corrupt`].
    pub fn load_search(&self, key: &str) -> Result<Option<SearchRecord>, ResultsError> {
        read_json(&self.search_path(key))
    }

    /// Writes `record` atomically to `runs/<key>.json` (its own key), replacing any older file.
    pub fn save_run(&self, record: &RunRecord) -> Result<(), ResultsError> {
        Ok(write_atomically(&self.run_path(&record.key), record)?)
    }

    /// Writes `record` atomically to `searches/<key>.json` (its own key), replacing any older
    /// file.
    pub fn save_search(&self, record: &SearchRecord) -> Result<(), ResultsError> {
        Ok(write_atomically(&self.search_path(&record.key), record)?)
    }

    /// Every search record in the folder, ordered by key (none when `searches/` is missing).
    pub fn searches(&self) -> Result<Vec<SearchRecord>, ResultsError> {
        read_all(&self.root.join("searches"))
    }

    /// Every run record in the folder, ordered by key (none when `runs/` is missing).
    pub fn runs(&self) -> Result<Vec<RunRecord>, ResultsError> {
        read_all(&self.root.join("runs"))
    }

    /// Every finished pre-training in the folder (`pretraining/<key>/record.json`), ordered by
    /// key; one still running (no record yet) is not listed.
    pub fn pretrainings(&self) -> Result<Vec<crate::PretrainingRecord>, ResultsError> {
        let dir = self.root.join("pretraining");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut folders: Vec<PathBuf> =
            entries.flatten().map(|entry| entry.path()).filter(|path| path.is_dir()).collect();
        folders.sort();
        let mut records = Vec::new();
        for folder in folders {
            if let Some(record) = read_json(&folder.join("record.json"))? {
                records.push(record);
            }
        }
        Ok(records)
    }
}

/// The `<key>.json` files of `dir`, parsed, in the order of their names; a missing folder has
/// none. Only a name that is a key (16 hex digits) is a record: not the hidden temporaries of a
/// write in progress, and not the copies that sync tools and editors leave beside a file
/// (`<key> (conflicted copy).json`, `<key>.sync-conflict-<date>.json`, `<key>.json~`), which
/// would otherwise count one run twice.
fn read_all<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, ResultsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ResultsError::Io { path: dir.to_path_buf(), source }),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = name.strip_suffix(".json").unwrap_or_default();
        if stem.len() == 16 && stem.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            paths.push(path);
        }
    }
    paths.sort();
    let mut records = Vec::new();
    for path in paths {
        // A file listed a moment ago and gone now was removed by its owner: skip it.
        if let Some(record) = read_json(&path)? {
            records.push(record);
        }
    }
    Ok(records)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ResultsError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| ResultsError::Corrupt { path: path.to_path_buf(), message: err.to_string() }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(ResultsError::Io { path: path.to_path_buf(), source: err }),
    }
}
