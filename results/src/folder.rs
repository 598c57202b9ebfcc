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
//! - `plans/<spec>[.<part>].json`: the keys of the searches `reproduce` of a spec planned
//!   ([`ResultsDir::save_plan`]), so that its report covers those and not another spec's.
//!
//! A result is written with [`write_atomically`]: a reader sees no file or a whole one, never a
//! truncated one, and a run whose result exists is never run again.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run::RunRecord;
use crate::search::SearchRecord;
use sha2::{Digest, Sha256};

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
    /// A result file exists but cannot be read as its record (truncated by a crash or a full disk,
    /// or not JSON). [`ResultsDir::load_run`] and [`ResultsDir::load_search`] set such a file
    /// aside and count it as missing, so that `reproduce` makes it again.
    #[error(
        "{path}: unreadable ({message}); the next `cargo xtask reproduce` sets it aside (`.unreadable`) and makes it again"
    )]
    Corrupt {
        /// The result file.
        path: PathBuf,
        /// serde_json's message (with the line and column of the fault).
        message: String,
    },
    /// A record that is JSON but not a record this version can read (a field it does not know or
    /// misses), though its schema is not newer: written by another version, or edited. Refused
    /// and left as it is: nothing sets it aside or makes it again.
    #[error(
        "{path}: not a record this version of intrinsic-bench can read ({message}); if a newer version wrote it, \
         upgrade the suite (`git pull`); the record is kept as it is"
    )]
    Unknown {
        /// The result file.
        path: PathBuf,
        /// serde_json's message.
        message: String,
    },
    /// A `plans/<spec>.json` file that does not parse.
    #[error(
        "{path}: not a plan file ({message}): delete it; the next `cargo xtask reproduce` of the spec writes it again"
    )]
    Plan {
        /// The plan file.
        path: PathBuf,
        /// serde_json's message.
        message: String,
    },
    /// A record written by a newer version of the suite, whose schema this one does not know.
    #[error(
        "{path}: written by a newer version of intrinsic-bench (record schema {schema}; this one reads up to {SCHEMA}): \
         upgrade the suite (`git pull`, then the same command); the record is kept as it is"
    )]
    NewerSchema {
        /// The result file.
        path: PathBuf,
        /// The schema it declares.
        schema: u64,
    },
    /// A record whose content no longer matches the checksum written with it: edited by hand, or
    /// damaged.
    #[error(
        "{path}: its content does not match the checksum written with it (edited by hand, or damaged): \
         restore it (e.g. `git checkout` it), or delete it and `cargo xtask reproduce` trains it again"
    )]
    Edited {
        /// The result file.
        path: PathBuf,
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

impl KeyLock {
    /// The lock held on `file`, into which the holder's pid is written for those who wait.
    fn held(mut file: File) -> KeyLock {
        use std::io::{Seek, Write};
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| write!(file, "{}", std::process::id()));
        KeyLock { _file: file }
    }
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
        Ok(KeyLock::held(file))
    }

    /// [`ResultsDir::lock`] for a wait that says what it waits for and can be stopped: while
    /// another process holds the lock, a warning names `what`, the lock file and the process that
    /// holds it (its pid, which a holder writes into the file), at once and every `every`; `stop`
    /// is asked every 200 ms, and `None` comes back, holding nothing, once it says so.
    pub fn lock_or_stop(
        &self,
        key: &str,
        what: &str,
        every: std::time::Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<KeyLock>, ResultsError> {
        let started = std::time::Instant::now();
        let mut next_message = std::time::Duration::ZERO;
        loop {
            if let Some(lock) = self.try_lock(key)? {
                return Ok(Some(lock));
            }
            if stop() {
                return Ok(None);
            }
            let waited = started.elapsed();
            if waited >= next_message {
                let path = self.root.join("locks").join(format!("{key}.lock"));
                let holder = std::fs::read_to_string(&path).ok().and_then(|text| text.trim().parse::<u32>().ok());
                let holder = holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"));
                tracing::warn!(
                    "waiting {:.0} s for {what}, which {holder} is working on (lock {}); a process that is \
                     stopped (Ctrl-Z) holds it until it goes on or ends; SIGTERM or Ctrl-C ends this wait",
                    waited.as_secs_f64(),
                    path.display()
                );
                next_message = waited + every;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// [`ResultsDir::lock`] without waiting: `None` when another process holds the lock.
    pub fn try_lock(&self, key: &str) -> Result<Option<KeyLock>, ResultsError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(KeyLock::held(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(io(&path)(err)),
        }
    }

    /// The record of the run keyed `key`; `None` when it has none yet (not run, or not finished)
    /// or when its file is unreadable ([`ResultsError::Corrupt`]: it is moved aside, with a
    /// warning, so that the run is trained again). Refused as [`read_record`] refuses.
    pub fn load_run(&self, key: &str) -> Result<Option<RunRecord>, ResultsError> {
        read_or_set_aside(&self.run_path(key))
    }

    /// The record of the search keyed `key`; `None` when it has none yet or its file is
    /// unreadable (moved aside, as [`ResultsDir::load_run`] does).
    pub fn load_search(&self, key: &str) -> Result<Option<SearchRecord>, ResultsError> {
        read_or_set_aside(&self.search_path(key))
    }

    /// Writes `record` atomically to `runs/<key>.json` (its own key), replacing any older file.
    pub fn save_run(&self, record: &RunRecord) -> Result<(), ResultsError> {
        Ok(write_record(&self.run_path(&record.key), record)?)
    }

    /// Writes `record` atomically to `searches/<key>.json` (its own key), replacing any older
    /// file.
    pub fn save_search(&self, record: &SearchRecord) -> Result<(), ResultsError> {
        Ok(write_record(&self.search_path(&record.key), record)?)
    }

    /// Records that `reproduce` of the spec `name` planned the searches `keys` (their order kept)
    /// in `plans/<name>[.<part>].json`: `part` names a shard or an `--only` selection, and a run
    /// of the whole plan (`part` = `None`) removes the parts' files, which it covers. Reports
    /// read [`ResultsDir::planned`] to cover what the spec asked for and nothing else that shares
    /// the folder.
    pub fn save_plan(&self, name: &str, part: Option<&str>, keys: &[String]) -> Result<(), ResultsError> {
        let dir = self.root.join("plans");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        if part.is_none() {
            for path in self.plan_files(name)? {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let file = match part {
            Some(part) => format!("{name}.{part}.json"),
            None => format!("{name}.json"),
        };
        Ok(write_atomically(&dir.join(file), &serde_json::json!({ "spec": name, "searches": keys }))?)
    }

    /// The keys of the searches `reproduce` of the spec `name` last planned here (every part's
    /// file, [`ResultsDir::save_plan`]); `None` when it recorded none (folders written before
    /// plans were recorded).
    pub fn planned(&self, name: &str) -> Result<Option<std::collections::BTreeSet<String>>, ResultsError> {
        let files = self.plan_files(name)?;
        if files.is_empty() {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct PlanFile {
            searches: Vec<String>,
        }
        let mut keys = std::collections::BTreeSet::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let plan: PlanFile = serde_json::from_str(&text)
                .map_err(|err| ResultsError::Plan { path: path.clone(), message: err.to_string() })?;
            keys.extend(plan.searches);
        }
        Ok(Some(keys))
    }

    /// `plans/<name>.json` and `plans/<name>.<part>.json`, where they exist.
    fn plan_files(&self, name: &str) -> Result<Vec<PathBuf>, ResultsError> {
        json_files(&self.root.join("plans"), |stem| {
            stem == name || stem.strip_prefix(name).is_some_and(|rest| rest.starts_with('.'))
        })
    }

    /// Every search record in the folder, ordered by key (none when `searches/` is missing).
    pub fn searches(&self) -> Result<Vec<SearchRecord>, ResultsError> {
        read_all(&self.root.join("searches"), false)
    }

    /// Every readable run record in the folder, ordered by key (none when `runs/` is missing).
    /// An unreadable one ([`ResultsError::Corrupt`]) is left out, as if missing: a report names
    /// the runs its searches expect and do not have. Edited and newer records are refused.
    pub fn runs(&self) -> Result<Vec<RunRecord>, ResultsError> {
        read_all(&self.root.join("runs"), true)
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
            if let Some(record) = read_record(&folder.join("record.json"))? {
                records.push(record);
            }
        }
        Ok(records)
    }
}

/// The `<key>.json` files of `dir`, parsed, in the order of their names; a missing folder has
/// none. Only a name that could be a key (letters, digits, `-`, `_`) is a record: not the
/// hidden temporaries of a write in progress, and not the copies that sync tools and editors
/// leave beside a file (`<key> (conflicted copy).json`, `<key>.sync-conflict-<date>.json`,
/// `<key>.json~`), which would otherwise count one run twice. With `skip_unreadable`,
/// unreadable files are left out instead of failing the read.
fn read_all<T: for<'de> Deserialize<'de>>(dir: &Path, skip_unreadable: bool) -> Result<Vec<T>, ResultsError> {
    let paths = json_files(dir, |stem| {
        !stem.is_empty() && stem.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    })?;
    let mut records = Vec::new();
    for path in paths {
        // A file listed a moment ago and gone now was removed by its owner: skip it.
        match read_record(&path) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(ResultsError::Corrupt { .. }) if skip_unreadable => {}
            Err(err) => return Err(err),
        }
    }
    Ok(records)
}

/// The `<stem>.json` files of `dir` whose stem `keep` accepts, sorted; none when `dir` is missing.
fn json_files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, ResultsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ResultsError::Io { path: dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if name.strip_suffix(".json").is_some_and(&keep) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// [`read_record`], but an unreadable file ([`ResultsError::Corrupt`]) is moved aside to
/// `<name>.unreadable` with a warning and counts as missing, so that what it recorded is made
/// again.
pub fn read_or_set_aside<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ResultsError> {
    match read_record(path) {
        Err(ResultsError::Corrupt { message, .. }) => {
            set_aside(path, &message)?;
            Ok(None)
        }
        other => other,
    }
}

/// The schema of the records this version writes. A record states it (`"schema"`) beside a
/// checksum of its content (`"checksum"`); records written before schemas are schema 1 and
/// carry neither. Raise it whenever a record's fields change meaning or a field is added that an
/// older version must not silently drop.
pub const SCHEMA: u64 = 2;

/// The checksum of a record's JSON `value` (its `checksum` field left out): `sha256:` and the
/// hex digest of its compact JSON, keys sorted (serde_json's map).
fn checksum(value: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut content = value.clone();
    content.remove("checksum");
    let digest = Sha256::digest(serde_json::to_vec(&content).expect("serialisable"));
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes `record` atomically ([`write_atomically`]) to `path` with the [`SCHEMA`] it is written
/// in and a checksum of its content, which [`read_record`] checks.
///
/// # Errors
/// As [`write_atomically`].
pub fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<(), crate::WriteError> {
    let serde_json::Value::Object(mut value) = serde_json::to_value(record).expect("serialisable") else {
        panic!("a record is a JSON object")
    };
    value.insert("schema".to_owned(), SCHEMA.into());
    let sum = checksum(&value);
    value.insert("checksum".to_owned(), sum.into());
    write_atomically(path, &value)
}

/// The record at `path`; `None` when there is no file. A record of a newer schema is refused
/// ([`ResultsError::NewerSchema`]) before its fields are read, one whose checksum does not match
/// its content is [`ResultsError::Edited`], a file that is not a JSON object is
/// [`ResultsError::Corrupt`] (unreadable: set aside by [`read_or_set_aside`]), and one that is
/// but does not read as the record is [`ResultsError::Unknown`] (refused, kept). Records of
/// schema 1 (no schema, no checksum) are read as they are.
pub fn read_record<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ResultsError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(ResultsError::Io { path: path.to_path_buf(), source: err }),
    };
    let corrupt = |message: String| ResultsError::Corrupt { path: path.to_path_buf(), message };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
    let serde_json::Value::Object(mut value) = value else {
        return Err(corrupt("not a JSON object".to_owned()));
    };
    let schema = match value.get("schema") {
        None => 1,
        Some(schema) => schema.as_u64().ok_or_else(|| corrupt(format!("`schema` is {schema}, not a number")))?,
    };
    if schema > SCHEMA {
        return Err(ResultsError::NewerSchema { path: path.to_path_buf(), schema });
    }
    match value.get("checksum") {
        Some(written) if written.as_str() != Some(checksum(&value).as_str()) => {
            return Err(ResultsError::Edited { path: path.to_path_buf() });
        }
        None if schema >= 2 => return Err(ResultsError::Edited { path: path.to_path_buf() }),
        _ => {}
    }
    value.remove("schema");
    value.remove("checksum");
    serde_json::from_value(serde_json::Value::Object(value))
        .map(Some)
        .map_err(|err| ResultsError::Unknown { path: path.to_path_buf(), message: err.to_string() })
}

/// Moves the unreadable record at `path` aside to `<name>.unreadable` (not a record name, so
/// nothing reads it again; kept for a look), so that what it recorded is made again.
fn set_aside(path: &Path, message: &str) -> Result<(), ResultsError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".unreadable");
    match std::fs::rename(path, &aside) {
        // Another process set it aside first.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        result => result.map_err(io(path))?,
    }
    tracing::warn!(
        "{}: unreadable ({message}); moved to {}, and what it recorded is made again",
        path.display(),
        Path::new(&aside).display()
    );
    Ok(())
}
