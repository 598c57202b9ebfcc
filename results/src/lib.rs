//! The results of intrinsic-bench, as the crate that writes them (`bench-suite`) and the one that
//! reads them (`reports`) both see them: one schema, one key, one folder layout.
//!
//! - [`config`]: the vocabulary (modes, maps, precisions) and a run's training settings;
//! - [`run`]: a run's spec (its key and signature), its result and its record;
//! - [`search`]: a d90 search's plan, probes, outcome and record;
//! - [`labels`]: per-example labels in one character each;
//! - [`pretraining`]: an MLM pre-training's spec, checkpoints and record;
//! - [`folder`]: the results folder, with atomic writes and per-key locks;
//! - here: where a preset's results and report go by default, how a spec file names them, the
//!   writer that never leaves half a file, and the hash that keys everything.
//!
//! It links serde, sha2 and tracing only, so both the tch side and the polars side depend on it.

#![warn(missing_docs)]

pub mod config;
pub mod folder;
pub mod labels;
pub mod pretraining;
pub mod run;
pub mod search;

pub use config::{
    Compat, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_MAX_LEN, LambdaGrouping, Mode, Precision, Scope, Seeds,
    SubspaceMethod, TrainConfig,
};
pub use folder::{KeyLock, ResultsDir, ResultsError, SCHEMA, read_or_set_aside, read_record, write_record};
pub use pretraining::{PretrainCheckpoint, PretrainSpec, PretrainingRecord};
pub use run::{
    DevExamples, DivergenceCause, Evaluation, ProjectorSummary, Provenance, RunRecord, RunResult, RunSpec,
    SplitMetrics, Status, SubspaceDescription,
};
pub use search::{
    Architecture, Baseline, Control, ExperimentKind, GeneralizationChoice, Interval, Outcome, PretrainingRef, Probe,
    Search, SearchMode, SearchOutcome, SearchPlan, SearchRecord, Training,
};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The preset `reproduce` runs, and `reports` reports on, when none is named.
pub const DEFAULT_PRESET: &str = "quick";

/// The default results folder of a preset or spec named `name`: `runs/<name>`.
pub fn results_dir(name: &str) -> PathBuf {
    Path::new("runs").join(name)
}

/// The default report folder of a preset or spec named `name`: `reports/<name>`.
pub fn report_dir(name: &str) -> PathBuf {
    Path::new("reports").join(name)
}

/// The name of the results of a spec file: its file stem (`specs/quick-seeds-3-5.yaml` ->
/// `quick-seeds-3-5`), `spec` when it has none.
pub fn spec_name(path: &Path) -> String {
    path.file_stem().map_or("spec".to_owned(), |stem| stem.to_string_lossy().into_owned())
}

/// The names of the results folders that git tracks under `root/runs` (the committed results of
/// presets and specs, `runs/<name>/`), sorted; folders a run is still writing, ignored ones
/// (`runs/smoke`) and SLURM scripts are not among them. The schema and report tests check each.
///
/// # Errors
/// When `git ls-files` cannot run in `root` (no git, or not a checkout), with its message.
pub fn committed_results(root: &Path) -> Result<Vec<String>, String> {
    let output = std::process::Command::new("git")
        .args(["ls-files", "-z", "--", "runs"])
        .current_dir(root)
        .output()
        .map_err(|err| format!("git ls-files in {}: {err}", root.display()))?;
    if !output.status.success() {
        return Err(format!("git ls-files in {}: {}", root.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split('\0')
        .filter_map(|path| {
            let mut parts = path.strip_prefix("runs/")?.splitn(2, '/');
            let (name, rest) = (parts.next()?, parts.next()?);
            (!rest.is_empty()).then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The name of a set of results, which titles its report and names its default folders: the spec
/// file's name when the results came from one, else the preset, else [`DEFAULT_PRESET`].
pub fn results_name(preset: Option<&str>, spec: Option<&Path>) -> String {
    match (preset, spec) {
        (_, Some(spec)) => spec_name(spec),
        (Some(preset), None) => preset.to_owned(),
        (None, None) => DEFAULT_PRESET.to_owned(),
    }
}

/// The first 16 hex digits of the sha256 of `value`'s JSON (serde's field order): the key of a
/// run ([`RunSpec::key`]) or of a search.
pub fn hash_key<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("serialisable");
    let digest = Sha256::digest(&json);
    digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect()
}

/// The serde name of a unit enum value (`per_layer`, `bisect`, ...), as signatures spell it;
/// empty for values that are not a plain string.
pub fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A file could not be written (the path, and the system's reason).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    /// The file that could not be written: the temporary beside the destination, or the
    /// destination when the rename failed.
    pub path: PathBuf,
    /// The system's reason.
    pub source: std::io::Error,
}

/// Writes `value` as pretty JSON (with a final newline) to a temporary file beside `path`
/// (`.<name>.<pid>.partial`), syncs it, renames it over `path` and syncs the folder: a reader sees
/// the old file or the whole new one, never a part, also after a crash.
///
/// # Errors
/// The temporary file cannot be created, written or synced, or the rename fails; the error names
/// the path that failed.
pub fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), WriteError> {
    fn error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
        move |source| WriteError { path: path.to_path_buf(), source }
    }
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut text = serde_json::to_string_pretty(value).expect("serialisable");
    text.push('\n');
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut file = File::create(&temporary).map_err(error(&temporary))?;
    file.write_all(text.as_bytes()).map_err(error(&temporary))?;
    file.sync_all().map_err(error(&temporary))?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(error(path))?;
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_folders_and_spec_names() {
        assert_eq!(results_dir(DEFAULT_PRESET), Path::new("runs/quick"));
        assert_eq!(report_dir("smoke"), Path::new("reports/smoke"));
        assert_eq!(spec_name(Path::new("bench-suite/specs/quick-seeds-3-5.yaml")), "quick-seeds-3-5");
        assert_eq!(spec_name(Path::new("/")), "spec");
        assert_eq!(results_name(None, None), "quick");
        assert_eq!(results_name(Some("smoke"), None), "smoke");
        assert_eq!(results_name(None, Some(Path::new("specs/mrpc-cpu.yaml"))), "mrpc-cpu");
    }

    #[test]
    fn writes_whole_files_and_replaces_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.json");
        write_atomically(&path, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"a\": 1\n}\n");
        write_atomically(&path, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\n  \"a\": 2\n}\n");
        // Nothing but the file itself is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("record.json")]);
        let missing = dir.path().join("no-such-folder").join("record.json");
        let err = write_atomically(&missing, &1).unwrap_err();
        assert!(err.to_string().contains("no-such-folder"), "{err}");
    }
}
