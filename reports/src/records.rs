//! The result files reports read (`searches/<key>.json`, `runs/<key>.json`,
//! `pretraining/<key>/record.json`), through the schema
//! that writes them (the `results` crate): a field the writer changes is a compile error here,
//! not a report that silently reads nothing.

use std::path::{Path, PathBuf};

pub use results::{Outcome, PretrainingRecord, Probe, RunRecord, SearchRecord};

/// What a report is made from.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Search records (`searches/<key>.json`), sorted by key.
    pub searches: Vec<SearchRecord>,
    /// Run records (`runs/<key>.json`), sorted by key.
    pub runs: Vec<RunRecord>,
    /// Finished MLM pre-trainings (`pretraining/<key>/record.json`).
    pub pretrainings: Vec<PretrainingRecord>,
    /// Searches in the folder that the spec reported on did not plan ([`load_planned`]), left
    /// out with their runs.
    pub left_out: usize,
    /// Searches the spec planned in the folder that have no record yet (a run stopped before
    /// them, or still going).
    pub unfinished: usize,
}

/// Why a results folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A result file could not be read or is not a valid record (the error names it).
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    /// The folder holds no search records.
    #[error("{dir}: no search results (run `cargo xtask reproduce` first, or pass --runs DIR)")]
    Empty {
        /// The results folder read.
        dir: PathBuf,
    },
}

/// Every search, run and pre-training record under `dir` (`searches/*.json`, `runs/*.json`,
/// `pretraining/*/record.json`), sorted by key so that the order of files on disk never matters.
///
/// # Errors
/// A file that is not a result record names itself; a folder without search records is
/// [`LoadError::Empty`].
pub fn load(dir: &Path) -> Result<Records, LoadError> {
    let folder = results::ResultsDir::at(dir);
    let searches = folder.searches()?;
    if searches.is_empty() {
        return Err(LoadError::Empty { dir: dir.to_path_buf() });
    }
    Ok(Records { searches, runs: folder.runs()?, pretrainings: folder.pretrainings()?, left_out: 0, unfinished: 0 })
}

/// [`load`], keeping only the searches that `reproduce` of the spec `name` planned in this folder
/// (`plans/<name>*.json`) and the runs they rest on: another spec's searches that share the
/// folder stay out of its report, counted in [`Records::left_out`]. A folder without a plan of
/// `name` (written before plans were recorded) is read whole.
///
/// # Errors
/// As [`load`]; and [`LoadError::Empty`] when none of the planned searches has a record yet.
pub fn load_planned(dir: &Path, name: &str) -> Result<Records, LoadError> {
    let mut records = load(dir)?;
    let Some(planned) = results::ResultsDir::at(dir).planned(name)? else { return Ok(records) };
    let before = records.searches.len();
    records.searches.retain(|search| planned.contains(&search.key));
    records.left_out = before - records.searches.len();
    records.unfinished = planned.len() - records.searches.len();
    if records.searches.is_empty() {
        return Err(LoadError::Empty { dir: dir.to_path_buf() });
    }
    if records.left_out > 0 {
        let kept: std::collections::BTreeSet<&str> =
            records.searches.iter().flat_map(|search| search.run_keys()).collect();
        records.runs.retain(|run| kept.contains(run.key.as_str()));
    }
    Ok(records)
}
