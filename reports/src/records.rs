//! The parts of bench-suite's result files that reports read (`runs/<key>.json`,
//! `searches/<key>.json`). Unknown fields are ignored, so result files may grow; the fields read
//! here are the contract (see `bench-suite/src/experiment/results.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct SearchRecord {
    pub key: String,
    pub signature: String,
    pub plan: Plan,
    pub total_parameters: u64,
    pub scales: u64,
    pub grid: Vec<u64>,
    pub baseline: Baseline,
    pub outcome: Outcome,
    pub probes: Vec<Probe>,
    pub monotone: Option<bool>,
    /// The seed-bootstrap interval of d90 (two or more seeds).
    #[serde(default)]
    pub interval: Option<Interval>,
    /// The d90 probe's best run trained again with training accuracy (results from before it
    /// existed: `None`, and every run carries a training accuracy).
    #[serde(default)]
    pub generalization_run: Option<String>,
}

impl SearchRecord {
    /// The d90 value when one was found (not a bound, not unreached, not unable).
    pub fn d90(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Found { d90, .. } => Some(d90),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Interval {
    pub low: u64,
    /// `None`: beyond the largest probe.
    pub high: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    pub experiment: String,
    pub model: String,
    pub task: String,
    pub method: Method,
    /// The full fine-tuning method of the baseline.
    #[serde(default)]
    pub baseline: Option<BaselineMethod>,
    pub seeds: Vec<u64>,
    pub search: Search,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Method {
    pub name: String,
    pub mode: String,
    /// `global` or `per_tensor` (absent in full fine-tuning).
    #[serde(default)]
    pub scope: Option<String>,
    /// SAID's scale grouping.
    #[serde(default)]
    pub grouping: Option<String>,
    #[serde(default)]
    pub compat: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BaselineMethod {
    #[serde(rename = "lrs")]
    pub lr: Vec<f64>,
    #[serde(default)]
    pub epochs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Search {
    pub mode: String,
    pub threshold: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub score: Option<f64>,
    pub target: Option<f64>,
    pub majority_accuracy: f64,
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Found { d90: u64, bracket: (Option<u64>, u64) },
    Bound { at_most: u64 },
    NotReached { largest_tried: u64 },
    Unable { reason: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    pub d: u64,
    pub score: Option<f64>,
    pub success: bool,
    /// Per seed, in the plan's order: the best score over learning rates (`None`: diverged or
    /// predicted one class).
    #[serde(default)]
    pub seed_scores: Vec<Option<f64>>,
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunRecord {
    pub key: String,
    pub signature: String,
    pub spec: RunSpec,
    pub train_examples: u64,
    pub best_score: Option<f64>,
    pub diverged: bool,
    pub result: RunResult,
    pub peak_resident_bytes: Option<u64>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunSpec {
    pub model: String,
    pub model_revision: String,
    pub task: String,
    pub data: String,
    pub device: String,
    pub torch: String,
    pub train: Train,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Train {
    pub mode: String,
    pub d: u64,
    pub lr: f64,
    #[serde(default)]
    pub epochs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunResult {
    pub best: Option<Evaluation>,
    pub wall_time_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Evaluation {
    pub score: f64,
    /// 0-based.
    #[serde(default)]
    pub epoch: Option<u64>,
    #[serde(default)]
    pub train_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Provenance {
    pub code: String,
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a result file this report understands: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{dir}: no search results (run `cargo xtask reproduce` first, or pass --runs DIR)")]
    Empty { dir: PathBuf },
}

/// Every search and run record under `dir` (`searches/*.json`, `runs/*.json`), sorted by key so
/// that the order of files on disk never matters.
pub fn load(dir: &Path) -> Result<(Vec<SearchRecord>, Vec<RunRecord>), LoadError> {
    let mut searches: Vec<SearchRecord> = read_all(&dir.join("searches"))?;
    let mut runs: Vec<RunRecord> = read_all(&dir.join("runs"))?;
    if searches.is_empty() {
        return Err(LoadError::Empty { dir: dir.to_path_buf() });
    }
    searches.sort_by(|a, b| a.key.cmp(&b.key));
    runs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((searches, runs))
}

fn read_all<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, LoadError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LoadError::Io { path: dir.to_path_buf(), source }),
    };
    let mut records = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| LoadError::Io { path: dir.to_path_buf(), source })?.path();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        records
            .push(serde_json::from_slice(&bytes).map_err(|err| LoadError::Parse { path, message: err.to_string() })?);
    }
    Ok(records)
}
