//! Result files: one JSON per finished run and per finished search, keyed by a hash of what
//! was run, written atomically, shared safely by several processes.
//!
//! Layout of a results folder (`runs/<preset>/` by default):
//!
//! - `runs/<key>.json`: a [`RunRecord`]; `<key>` is the first 16 hex digits of the sha256 of the
//!   run's fully resolved [`RunSpec`] (model and data identities, every training setting, seeds,
//!   device, torch version). The code revision is recorded but not part of the key: rerunning
//!   after a commit reuses finished runs, and the signature says which code made each.
//! - `searches/<key>.json`: a [`SearchRecord`], keyed the same way by the search's plan.
//! - `work/<key>/`: the checkpoints of a run in progress (removed once its result is written).
//! - `locks/<key>.lock`: held (`flock`) by the process working on a run or search; the kernel
//!   releases it when the process dies, so a killed process never leaves a stale lock.
//! - `logs/shard-<i>-of-<n>.log`: the warnings of shard `i` of a sharded (SLURM) reproduction.
//!
//! A result is written to a temporary name in the same folder, synced and renamed over the final
//! name: a reader sees no file or a whole one, never a truncated one, and a run whose result
//! exists is never run again.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::search::{Interval, Outcome, Probe, SearchOutcome};
use super::spec::SearchPlan;
use crate::train::{Mode, RunResult, TrainConfig};

/// The torch version every binary of the suite links (fixed by the workspace; defined by the
/// crate that links it).
pub use subspace::TORCH_VERSION;

/// Everything that determines a run's numbers, fully resolved: its hash is the run's key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub model: String,
    /// Checkpoint identity: HF revision, or `synthetic`.
    pub model_revision: String,
    pub task: String,
    /// Data identity: the first 8 hex digits of the data file's sha256, or `synthetic`.
    pub data: String,
    pub max_len: usize,
    pub max_train_examples: Option<usize>,
    pub subset_seed: u64,
    pub device: String,
    pub torch: String,
    pub train: TrainConfig,
}

impl RunSpec {
    /// The first 16 hex digits of the sha256 of the spec's JSON, without the knobs that change
    /// how a process works on the run but not the run (`train.max_steps_this_process`, which
    /// stops a process early: the run it continues later is the same one).
    pub fn key(&self) -> String {
        let mut identity = self.clone();
        identity.train.max_steps_this_process = None;
        hash_key(&identity)
    }

    /// A sacreBLEU-style one-line description of the run, e.g.
    /// `said|group:per_layer|scope:global|compat:none|task:mrpc|metric:acc|model:roberta-base@e2da8e2|data:60a9b090|d:896|lr:3e-2|seed:1|torch:2.11.0|device:cpu|code:1a2b3c4d5e6f`.
    pub fn signature(&self, code: &str) -> String {
        let train = &self.train;
        let model = self.model.rsplit('/').next().unwrap_or(&self.model);
        let mut parts = vec![match train.mode {
            Mode::Full => "full".to_owned(),
            Mode::Did => "did".to_owned(),
            Mode::Said => "said".to_owned(),
        }];
        if train.mode == Mode::Said {
            parts.push(format!("group:{}", serde_name(&train.grouping)));
        }
        if train.mode != Mode::Full {
            parts.push(format!("scope:{}", serde_name(&train.scope)));
            parts.push(format!("compat:{}", serde_name(&train.compat)));
        }
        parts.push(format!("task:{}", self.task));
        parts.push("metric:acc".to_owned());
        parts.push(format!("model:{model}@{}", self.model_revision));
        parts.push(format!("data:{}", self.data));
        if let Some(n) = self.max_train_examples {
            parts.push(format!("train:{n}@{}", self.subset_seed));
        }
        if train.mode != Mode::Full {
            parts.push(format!("d:{}", train.d));
        }
        parts.push(format!("lr:{:e}", train.lr));
        if let Some(lambda_lr) = train.lambda_lr.filter(|_| train.mode == Mode::Said) {
            parts.push(format!("lambda-lr:{lambda_lr:e}"));
        }
        let seeds = train.seeds;
        if seeds.data == seeds.head && seeds.head == seeds.dropout && seeds.dropout == seeds.projection {
            parts.push(format!("seed:{}", seeds.data));
        } else {
            parts.push(format!("seed:{}/{}/{}/{}", seeds.data, seeds.head, seeds.dropout, seeds.projection));
        }
        parts.push(format!("epochs:{}", train.epochs));
        match train.train_eval_examples {
            Some(0) => {}
            Some(n) => parts.push(format!("train-eval:{n}")),
            None => parts.push("train-eval:all".to_owned()),
        }
        if !train.precision.is_f32() {
            parts.push(format!("precision:{}", serde_name(&train.precision)));
        }
        parts.push(format!("torch:{}", self.torch));
        parts.push(format!("device:{}", self.device));
        parts.push(format!("code:{code}"));
        parts.join("|")
    }
}

/// The serde name of a unit enum value (`per_layer`, `bisect`, ...), as signatures spell it.
pub(crate) fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The first 16 hex digits of the sha256 of `value`'s canonical JSON.
pub fn hash_key<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("serialisable");
    let digest = Sha256::digest(&json);
    digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// Where and by what a result was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The code revision of the binary that made it ([`code_revision`]).
    pub code: String,
    pub host: String,
    /// Seconds since the Unix epoch when the result was written.
    pub finished_at: u64,
}

impl Provenance {
    pub fn now() -> Provenance {
        Provenance {
            code: code_revision().to_owned(),
            host: host_name(),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub key: String,
    pub signature: String,
    pub spec: RunSpec,
    pub train_examples: usize,
    /// Accuracy of always predicting the most frequent label of the first dev split.
    pub majority_accuracy: f64,
    /// The run's best dev metric (accuracy of the first dev split), if it evaluated at all.
    pub best_score: Option<f64>,
    pub diverged: bool,
    pub result: RunResult,
    /// Peak resident memory of the process that finished the run (`VmHWM`).
    pub peak_resident_bytes: Option<u64>,
    pub provenance: Provenance,
}

/// The baseline of a search: full fine-tuning over its learning rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Median over seeds of the best dev metric over learning rates.
    pub score: Option<f64>,
    pub target: Option<f64>,
    pub majority_accuracy: f64,
    pub runs: Vec<String>,
}

/// One finished search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    pub key: String,
    pub signature: String,
    pub plan: SearchPlan,
    /// The model's parameter count D and, for SAID, the number of scales m.
    pub total_parameters: usize,
    pub scales: usize,
    /// The grid searched (after cutting at D).
    pub grid: Vec<usize>,
    pub baseline: Baseline,
    pub outcome: Outcome,
    pub probes: Vec<Probe>,
    /// No probed failure above a probed success.
    pub monotone: Option<bool>,
    /// The seed-bootstrap interval of d90 (two or more seeds).
    #[serde(default)]
    pub interval: Option<Interval>,
    /// The key of the d90 probe's best run trained again with training accuracy (the
    /// generalization gap's run); `None` without a d90.
    #[serde(default)]
    pub generalization_run: Option<String>,
    pub provenance: Provenance,
}

impl SearchRecord {
    /// The d90 value when one was found (not a bound, not unreached, not unable).
    pub fn d90(&self) -> Option<usize> {
        match self.outcome {
            Outcome::Found { d90, .. } => Some(d90),
            _ => None,
        }
    }

    pub fn from_outcome(
        key: String,
        signature: String,
        plan: SearchPlan,
        (total_parameters, scales): (usize, usize),
        grid: Vec<usize>,
        baseline: Baseline,
        outcome: SearchOutcome,
    ) -> SearchRecord {
        SearchRecord {
            key,
            signature,
            plan,
            total_parameters,
            scales,
            grid,
            baseline,
            outcome: outcome.outcome,
            probes: outcome.probes,
            monotone: outcome.monotone,
            interval: outcome.interval,
            generalization_run: None,
            provenance: Provenance::now(),
        }
    }

    pub fn with_generalization_run(self, generalization_run: Option<String>) -> SearchRecord {
        SearchRecord { generalization_run, ..self }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}: not a valid result file ({message}); it was not written by this suite's atomic writer: remove it to rerun"
    )]
    Corrupt { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io { path: path.to_path_buf(), source }
}

/// A results folder.
#[derive(Debug, Clone)]
pub struct ResultsDir {
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

    /// The folder `root`, touching nothing on disk (a plan that is only checked writes nothing).
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

    pub fn run_path(&self, key: &str) -> PathBuf {
        self.root.join("runs").join(format!("{key}.json"))
    }

    pub fn search_path(&self, key: &str) -> PathBuf {
        self.root.join("searches").join(format!("{key}.json"))
    }

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

    pub fn load_run(&self, key: &str) -> Result<Option<RunRecord>, ResultsError> {
        read_json(&self.run_path(key))
    }

    pub fn load_search(&self, key: &str) -> Result<Option<SearchRecord>, ResultsError> {
        read_json(&self.search_path(key))
    }

    pub fn save_run(&self, record: &RunRecord) -> Result<(), ResultsError> {
        write_atomically(&self.run_path(&record.key), record)
    }

    pub fn save_search(&self, record: &SearchRecord) -> Result<(), ResultsError> {
        write_atomically(&self.search_path(&record.key), record)
    }

    /// Every search record in the folder, ordered by key.
    pub fn searches(&self) -> Result<Vec<SearchRecord>, ResultsError> {
        read_all(&self.root.join("searches"))
    }

    /// Every run record in the folder, ordered by key.
    pub fn runs(&self) -> Result<Vec<RunRecord>, ResultsError> {
        read_all(&self.root.join("runs"))
    }
}

fn read_all<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, ResultsError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|path| read_json(path).map(|record| record.expect("listed file exists"))).collect()
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

/// Writes `value` as pretty JSON atomically ([`::results::write_atomically`]).
pub fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), ResultsError> {
    ::results::write_atomically(path, value).map_err(|err| ResultsError::Io { path: err.path, source: err.source })
}

/// The code revision this binary was built from: `git rev-parse --short=12 HEAD` at build time,
/// `+dirty` when tracked files differed from it, `unknown` when built outside a git checkout
/// (captured by `build.rs`, so it names the code that runs, whatever the work tree holds later).
pub fn code_revision() -> &'static str {
    env!("INTRINSIC_BENCH_CODE_REVISION")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}
