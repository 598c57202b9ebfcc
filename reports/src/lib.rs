//! Reports: result files in, comparison reports out (markdown, CSV, SVG), with the paper's
//! values beside ours. The only crate that links polars.
//!
//! [`records::load`] reads a results folder; [`build`] turns the records into polars frames (one
//! row per search, per probe, per run; a search that two experiments share is one measurement in
//! every table but the trajectory and size sections, which take each experiment's own) and
//! derives every table with polars expressions (joins with the paper's values, ratios, the
//! orderings the paper reports, Spearman correlations, log-log slopes); [`Report::write`],
//! [`Report::check`] and [`compare`] put it on disk, diff it against what is there, or against
//! another report. Output is deterministic: rows are sorted, numbers have fixed formats, and
//! nothing depends on the clock or the order of files on disk.

#![warn(missing_docs)]

pub mod records;
mod render;
pub mod stats;
pub mod uncertainty;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

use records::{Outcome, Probe, RunRecord, SearchRecord};
pub use render::Table;
use results::{ExperimentKind, Mode};
use uncertainty::Measured;

/// Every search's uncertainty, by search key.
pub type MeasuredSearches = BTreeMap<String, Measured>;

/// The paper's reference values (`reports/paper.yaml`, compiled in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    /// The citation the d90 values come from (paper, arXiv id, table).
    pub source: String,
    /// The d90 values of the paper's Table 1.
    pub d90: Vec<PaperD90>,
    /// Public full fine-tuning dev accuracies to show beside each baseline (not the paper's).
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// A published dev accuracy of full fine-tuning, with its source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The model, by the manifest's asset id (`FacebookAI/roberta-base`), as plans name it.
    pub model: String,
    /// The task, as plans name it (`mrpc`, `sst2`).
    pub task: String,
    /// The dev accuracy, as a fraction (0.902, not 90.2).
    pub accuracy: f64,
    /// Where it is published.
    pub source: String,
}

/// One d90 of the paper's Table 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperD90 {
    /// The model, by the manifest's asset id (`google-bert/bert-base-uncased`).
    pub model: String,
    /// The task, as plans name it (`mrpc`, `qqp`).
    pub task: String,
    /// `said` or `did`, joined against a search's mode.
    pub method: String,
    /// The published d90 (a subspace dimension).
    pub d90: u64,
}

impl Paper {
    /// The values of `reports/paper.yaml`, compiled in (panics only if that file is invalid).
    pub fn embedded() -> Paper {
        serde_norway::from_str(include_str!("../paper.yaml")).expect("reports/paper.yaml is valid")
    }
}

/// Why a report could not be built, written or compared.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A polars operation on the frames failed.
    #[error(transparent)]
    Polars(#[from] PolarsError),
    /// A figure could not be drawn.
    #[error("svg {file}: {message}")]
    Svg {
        /// Which figure (`figure1`, `trajectory`, `model_size`, `generalization`).
        file: String,
        /// The plotting backend's error.
        message: String,
    },
    /// A file or folder could not be read or written, or a `table1.csv` read back is not valid
    /// CSV.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The I/O error (a CSV error wrapped as one).
        source: std::io::Error,
    },
}

/// A rendered report: relative file name -> bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Each file's contents by its name relative to the report folder (`table1.csv`).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The family of a search's model, by the `model_type` its config declares (HF's names, spelt
/// as the paper spells the family: `roberta` -> `RoBERTa`; a type without a spelling here is
/// shown as declared), never by the model's name; `None` in records that do not say (written
/// before records named the architecture, and not yet upgraded by a rerun).
fn family(search: &SearchRecord) -> Option<String> {
    let model_type = &search.architecture.as_ref()?.model_type;
    let spelt = match model_type.as_str() {
        "bert" => "BERT",
        "roberta" => "RoBERTa",
        "xlm-roberta" => "XLM-R",
        "albert" => "ALBERT",
        "electra" => "ELECTRA",
        "distilbert" => "DistilBERT",
        "bart" => "BART",
        "t5" => "T5",
        "xlnet" => "XLNet",
        other => other,
    };
    Some(spelt.to_owned())
}

/// The size of a search's model by its shape (`Base`, `Large`, else `L<layers>-H<hidden>`).
fn size(search: &SearchRecord) -> Option<String> {
    Some(search.architecture.as_ref()?.size_name())
}

/// The subspace map of a search: its scope, and SAID's grouping (`global`, `per_tensor/per_layer`).
fn map_label(search: &SearchRecord) -> String {
    search.plan.method.map_label()
}

/// Where the seeds' best runs (highest dev score among runs that neither diverged nor predicted
/// one class) lie in each probe's learning rates ([`uncertainty::probe_edges`]): how many probes
/// have some seed's best at the lowest (`low`) or the highest (`high`) rate they trained, out of
/// the probes with a run that counts, e.g. `high 2/3` (the grid should extend that way; a
/// method's `lr_extend` does so); `None` when every seed's best lies inside at every probe.
fn best_lr_at_edge(search: &SearchRecord, runs: &BTreeMap<&str, &RunRecord>) -> Option<String> {
    use d90::search::GridEdge;
    let edges = uncertainty::probe_edges(search, runs);
    let count = |edge: GridEdge| edges.iter().filter(|(_, at)| at.contains(&edge)).count();
    let parts: Vec<String> = [GridEdge::Low, GridEdge::High]
        .into_iter()
        .filter(|&edge| count(edge) > 0)
        .map(|edge| format!("{} {}/{}", edge.label(), count(edge), edges.len()))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The outcome a search is reported with: its own, except that a d90 or bound whose target lies
/// at or below the majority-class accuracy (recorded so by an older protocol) is `unable`, since a
/// constant predictor reaches such a target.
pub(crate) fn reported_outcome(search: &SearchRecord) -> Outcome {
    let vacuous = search.baseline.target.is_some_and(|target| target <= search.baseline.majority_accuracy);
    match &search.outcome {
        Outcome::Found { .. } | Outcome::Bound { .. } if vacuous => Outcome::Unable {
            reason: format!(
                "the target ({:.4}) is at or below the majority-class accuracy ({:.4}): a constant predictor \
                 reaches it (recorded as a d90 by an older protocol)",
                search.baseline.target.unwrap_or(f64::NAN),
                search.baseline.majority_accuracy
            ),
        },
        outcome => outcome.clone(),
    }
}

/// Searches whose models (or tasks) share a name but not an identity (two local folders called
/// `model`, two commits of one hub repository, a task file edited between runs) are told apart
/// by their identity in every table: `model@<revision>`, `task@<data>`. Everything in the report
/// groups by these names, so namesakes are never paired, merged or counted as one model.
fn distinguish_namesakes(searches: &[SearchRecord]) -> Vec<SearchRecord> {
    let identities = |name: fn(&SearchRecord) -> (&str, Option<&str>)| -> BTreeMap<String, BTreeSet<String>> {
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for search in searches {
            let (name, identity) = name(search);
            seen.entry(name.to_owned()).or_default().insert(identity.unwrap_or("").to_owned());
        }
        seen
    };
    let models = identities(|s| (s.plan.model.as_str(), s.model_revision.as_deref()));
    let tasks = identities(|s| (s.plan.task.as_str(), s.data.as_deref()));
    searches
        .iter()
        .map(|search| {
            let mut search = search.clone();
            if models[&search.plan.model].len() > 1 {
                search.plan.model =
                    format!("{}@{}", search.plan.model, search.model_revision.as_deref().unwrap_or("?"));
            }
            if tasks[&search.plan.task].len() > 1 {
                search.plan.task = format!("{}@{}", search.plan.task, search.data.as_deref().unwrap_or("?"));
            }
            search
        })
        .collect()
}

/// One row per search.
pub fn searches_frame(
    searches: &[SearchRecord],
    runs: &[RunRecord],
    measured: &MeasuredSearches,
) -> PolarsResult<DataFrame> {
    let by_key: BTreeMap<&str, &RunRecord> = runs.iter().map(|run| (run.key.as_str(), run)).collect();
    let of = |search: &SearchRecord| &measured[&search.key];
    let reported: Vec<SearchRecord> =
        searches.iter().map(|search| SearchRecord { outcome: reported_outcome(search), ..search.clone() }).collect();
    let searches = reported.as_slice();
    let field = |f: &dyn Fn(&SearchRecord) -> Option<i64>| searches.iter().map(f).collect::<Vec<Option<i64>>>();
    let d90 = field(&|s| match s.outcome {
        Outcome::Found { d90, .. } => Some(d90 as i64),
        _ => None,
    });
    let bracket_low = field(&|s| match s.outcome {
        Outcome::Found { bracket: (low, _), .. } => low.map(|low| low as i64),
        _ => None,
    });
    let largest = field(&|s| match s.outcome {
        Outcome::NotReached { largest_tried } => Some(largest_tried as i64),
        _ => None,
    });
    let at_most = field(&|s| match s.outcome {
        Outcome::Bound { at_most } => Some(at_most as i64),
        _ => None,
    });
    let n_train = field(&|s| {
        s.baseline.runs.first().and_then(|key| by_key.get(key.as_str())).map(|run| run.train_examples as i64)
    });
    let strings = |f: &dyn Fn(&SearchRecord) -> String| searches.iter().map(f).collect::<Vec<String>>();
    df!(
        "key" => strings(&|s| s.key.clone()),
        "experiment" => strings(&|s| s.plan.experiment.clone()),
        "kind" => strings(&|s| results::serde_name(&s.plan.kind)),
        "model" => strings(&|s| s.plan.model.clone()),
        "family" => searches.iter().map(family).collect::<Vec<_>>(),
        "size" => searches.iter().map(size).collect::<Vec<_>>(),
        "task" => strings(&|s| s.plan.task.clone()),
        "method" => strings(&|s| s.plan.method.name.clone()),
        "mode" => strings(&|s| s.plan.method.mode.to_string()),
        "map" => strings(&map_label),
        "search" => strings(&|s| results::serde_name(&s.plan.search.mode)),
        "seeds" => searches.iter().map(|s| s.plan.seeds.len() as i64).collect::<Vec<_>>(),
        "outcome" => strings(&|s| s.outcome.name().to_owned()),
        "reason" => searches.iter().map(|s| match &s.outcome {
            Outcome::Unable { reason } => Some(reason.clone()),
            _ => None,
        }).collect::<Vec<_>>(),
        "d90" => d90,
        "at_most" => at_most,
        "d90_curve" => searches.iter().map(|s| of(s).estimate.map(|c| c.label())).collect::<Vec<_>>(),
        "d90_curve_value" => searches.iter().map(|s| of(s).d90()).collect::<Vec<_>>(),
        "baseline_interval" => searches.iter().map(|s| {
            let interval = of(s).baseline_interval();
            interval.low.is_finite().then(|| format!("[{:.4}, {:.4}]", interval.low, interval.high))
        }).collect::<Vec<_>>(),
        "d90_curve_rounded" => searches.iter().map(|s| of(s).d90().map(|d| d.round() as i64)).collect::<Vec<_>>(),
        "interval" => searches.iter().map(|s| of(s).interval_label()).collect::<Vec<_>>(),
        "determination" => searches.iter().map(|s| of(s).estimate.map(|_| of(s).determination_label())).collect::<Vec<_>>(),
        "reading" => searches.iter().map(|s| of(s).reading_label()).collect::<Vec<_>>(),
        "bracket_low" => bracket_low,
        "largest_tried" => largest,
        "grid_min" => searches.iter().map(|s| s.grid.first().map(|&d| d as i64)).collect::<Vec<_>>(),
        "baseline" => searches.iter().map(|s| s.baseline.score).collect::<Vec<_>>(),
        "target" => searches.iter().map(|s| s.baseline.target).collect::<Vec<_>>(),
        "head_only" => searches.iter().map(|s| s.control.as_ref().and_then(|c| c.score)).collect::<Vec<_>>(),
        "head_only_parameters" => searches.iter().map(|s| s.control.as_ref().map(|c| c.trainable_parameters as i64)).collect::<Vec<_>>(),
        "head_reaches_target" => searches.iter().map(|s| s.head_reaches_target()).collect::<Vec<_>>(),
        "majority" => searches.iter().map(|s| s.baseline.majority_accuracy).collect::<Vec<_>>(),
        "threshold" => searches.iter().map(|s| s.plan.search.threshold).collect::<Vec<_>>(),
        "device" => strings(&|s| search_device(s, &by_key)),
        "precision" => strings(&|s| results::serde_name(&s.plan.training.precision)),
        "code" => strings(&|s| s.provenance.code.clone()),
        "probes" => searches.iter().map(|s| s.probes.len() as i64).collect::<Vec<_>>(),
        "monotone" => searches.iter().map(|s| s.monotone).collect::<Vec<_>>(),
        "determined" => searches.iter().map(|s| of(s).determined()).collect::<Vec<_>>(),
        "best_lr_at_edge" => searches.iter().map(|s| best_lr_at_edge(s, &by_key)).collect::<Vec<_>>(),
        "parameters" => searches.iter().map(|s| s.total_parameters as i64).collect::<Vec<_>>(),
        "n_train" => n_train,
        "generalization_run" => searches.iter().map(|s| s.generalization_run.clone()).collect::<Vec<_>>(),
        "chosen" => searches.iter().map(|s| s.generalization_run.as_ref().map(|_| match s.generalization_choice {
            Some(results::GeneralizationChoice::MedianSeedOtherSeedsRate) => "median seed, other seeds' best rate",
            None => "best run by its own dev score (winner's curse: gap biased low)",
        }).or_else(|| matches!(s.outcome, Outcome::Found { .. })
            .then_some("best run of the d90 probe by its own dev score (no generalization run recorded)")))
        .collect::<Vec<_>>(),
        "pretraining" => searches.iter().map(|s| s.plan.pretraining.as_ref().map(|p| p.name.clone())).collect::<Vec<_>>(),
        "update" => searches.iter().map(|s| s.plan.pretraining.as_ref().map(|p| p.update as i64)).collect::<Vec<_>>(),
    )
}

/// The device a search's runs trained on: its first baseline run's, or else the `device:` its
/// signature names.
fn search_device(search: &SearchRecord, runs: &BTreeMap<&str, &RunRecord>) -> String {
    let from_runs =
        search.baseline.runs.first().and_then(|key| runs.get(key.as_str())).map(|run| run.spec.device.clone());
    from_runs
        .or_else(|| search.signature.split('|').find_map(|part| part.strip_prefix("device:")).map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// One row per (search, probe, run); the d90 probe also lists the search's generalization run
/// (its best run trained again with training accuracy).
pub fn probes_frame(searches: &[SearchRecord]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&SearchRecord, &Probe, &String)> = searches
        .iter()
        .flat_map(|search| {
            search.probes.iter().flat_map(move |probe| {
                let rerun = search.generalization_run.as_ref().filter(|_| search.d90() == Some(probe.d));
                probe.runs.iter().chain(rerun).map(move |run| (search, probe, run))
            })
        })
        .collect();
    df!(
        "key" => rows.iter().map(|(s, _, _)| s.key.clone()).collect::<Vec<_>>(),
        "d" => rows.iter().map(|(_, p, _)| p.d as i64).collect::<Vec<_>>(),
        "probe_score" => rows.iter().map(|(_, p, _)| p.score).collect::<Vec<_>>(),
        "success" => rows.iter().map(|(_, p, _)| p.success).collect::<Vec<_>>(),
        "run" => rows.iter().map(|(_, _, r)| (*r).clone()).collect::<Vec<_>>(),
    )
}

/// One row per run.
pub fn runs_frame(runs: &[RunRecord]) -> PolarsResult<DataFrame> {
    df!(
        "run" => runs.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        "signature" => runs.iter().map(|r| r.signature.clone()).collect::<Vec<_>>(),
        "run_mode" => runs.iter().map(|r| r.spec.train.mode.to_string()).collect::<Vec<_>>(),
        "run_d" => runs.iter().map(|r| r.spec.train.d as i64).collect::<Vec<_>>(),
        "lr" => runs.iter().map(|r| r.spec.train.lr).collect::<Vec<_>>(),
        "best_score" => runs.iter().map(|r| r.best_score).collect::<Vec<_>>(),
        "train_accuracy" => runs.iter().map(|r| r.result.best.as_ref().and_then(|b| b.train_accuracy)).collect::<Vec<_>>(),
        "diverged" => runs.iter().map(|r| r.diverged).collect::<Vec<_>>(),
        "wall_time_s" => runs.iter().map(|r| r.result.wall_time_s).collect::<Vec<_>>(),
        "device" => runs.iter().map(|r| r.spec.device.clone()).collect::<Vec<_>>(),
        "torch" => runs.iter().map(|r| r.spec.torch.clone()).collect::<Vec<_>>(),
        "peak_mib" => runs.iter().map(|r| r.peak_resident_bytes.map(|b| (b / (1024 * 1024)) as i64)).collect::<Vec<_>>(),
        "code" => runs.iter().map(|r| r.provenance.code.clone()).collect::<Vec<_>>(),
        "host" => runs.iter().map(|r| r.provenance.host.clone()).collect::<Vec<_>>(),
        "checkpoint" => runs.iter().map(|r| format!("{}@{}", r.spec.model, r.spec.model_revision)).collect::<Vec<_>>(),
        "data" => runs.iter().map(|r| format!("{}@{}", r.spec.task, r.spec.data)).collect::<Vec<_>>(),
    )
}

fn paper_frame(paper: &Paper) -> PolarsResult<DataFrame> {
    df!(
        "model" => paper.d90.iter().map(|p| p.model.clone()).collect::<Vec<_>>(),
        "task" => paper.d90.iter().map(|p| p.task.clone()).collect::<Vec<_>>(),
        "paper_method" => paper.d90.iter().map(|p| p.method.clone()).collect::<Vec<_>>(),
        "paper_d90" => paper.d90.iter().map(|p| p.d90 as i64).collect::<Vec<_>>(),
    )
}

fn by(columns: &[&str]) -> Vec<Expr> {
    columns.iter().map(|name| col(*name)).collect()
}

fn sorted(frame: LazyFrame, columns: &[&str]) -> LazyFrame {
    frame.sort(
        columns.iter().map(|c| PlSmallStr::from(*c)).collect::<Vec<_>>(),
        SortMultipleOptions::default().with_maintain_order(true),
    )
}

/// Table 1: d90 per model, task and method beside the paper's.
pub fn table1(searches: &DataFrame, paper: &Paper) -> PolarsResult<DataFrame> {
    let joined = searches.clone().lazy().join(
        paper_frame(paper)?.lazy(),
        by(&["model", "task", "mode"]),
        by(&["model", "task", "paper_method"]),
        JoinArgs::new(JoinType::Left),
    );
    // Settings that make two rows of one cell different measurements get columns of their own
    // where they differ (or, for the threshold, where it is not the paper's 90%): never two
    // rows that look the same.
    let mut settings = Vec::new();
    for column in ["threshold", "device", "precision", "code"] {
        let values = searches.column(column)?.as_materialized_series().n_unique()?;
        let not_paper = column == "threshold" && searches.column(column)?.f64()?.iter().any(|t| t != Some(0.9));
        if values > 1 || not_paper {
            settings.push(column);
        }
    }
    let mut order = vec!["model", "task", "method"];
    order.extend(&settings);
    let mut columns = vec!["model", "task", "method", "map"];
    columns.extend(settings);
    columns.extend([
        "seeds",
        "paper_d90",
        "d90",
        "bracket_low",
        "d90_curve",
        "interval",
        "determined",
        "determination",
        "reading",
        "ratio",
        "outcome",
        "at_most",
        "largest_tried",
        "monotone",
        "best_lr_at_edge",
        "baseline",
        "target",
        "head_only",
        "head_only_parameters",
        "head_reaches_target",
        "majority",
        "probes",
        "reason",
    ]);
    sorted(
        joined.with_column(
            (col("d90").cast(DataType::Float64) / col("paper_d90").cast(DataType::Float64)).alias("ratio"),
        ),
        &order,
    )
    .select(by(&columns))
    .collect()
}

/// Each search's baseline beside a public reference accuracy for its model and task, where one
/// exists: a weak baseline shows. `best_epoch` is the epoch (1-based) of the best baseline run's
/// best evaluation and `best_at_last_epoch` counts the baseline runs whose best evaluation was
/// their last epoch (all of them: the baseline may still have been improving); `best_lr_at_edge`
/// names the ends of the baseline's rates where some seed's best run lies
/// ([`d90::search::best_rate_edges`]): a baseline that could score higher sets its targets low.
pub fn baselines(searches: &[SearchRecord], runs: &[RunRecord], paper: &Paper) -> PolarsResult<DataFrame> {
    struct Row<'a> {
        score: Option<f64>,
        majority: f64,
        reference: Option<&'a Reference>,
        best_epoch: Option<i64>,
        at_last: Option<String>,
        at_edge: Option<String>,
    }
    let by_key: BTreeMap<&str, &RunRecord> = runs.iter().map(|run| (run.key.as_str(), run)).collect();
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    for search in searches {
        let plan = &search.plan;
        let reference = paper.references.iter().find(|r| r.model == plan.model && r.task == plan.task);
        let lrs = {
            let baseline = &plan.baseline;
            let lrs: Vec<String> = baseline.lrs.iter().map(|lr| format!("{lr:e}")).collect();
            let epochs = baseline.epochs.map_or(String::new(), |epochs| format!(", {epochs} epochs"));
            format!("{}{epochs}", lrs.join(" "))
        };
        let baseline_runs: Vec<&RunRecord> =
            search.baseline.runs.iter().filter_map(|key| by_key.get(key.as_str()).copied()).collect();
        let best_epoch = baseline_runs
            .iter()
            .filter_map(|run| Some((run.best_score?, run.result.best.as_ref()?.epoch)))
            .fold(None, |best: Option<(f64, usize)>, (score, epoch)| match best {
                Some((best_score, _)) if best_score >= score => best,
                _ => Some((score, epoch)),
            })
            .map(|(_, epoch)| epoch as i64 + 1);
        let last: Vec<bool> = baseline_runs
            .iter()
            .filter_map(|run| Some(run.result.best.as_ref()?.epoch + 1 == run.spec.train.epochs))
            .collect();
        let at_last =
            (!last.is_empty()).then(|| format!("{}/{}", last.iter().filter(|&&at_last| at_last).count(), last.len()));
        let scored: Vec<(u64, f64, Option<f64>)> = baseline_runs
            .iter()
            .map(|run| (run.spec.train.seeds.data, run.spec.train.lr, run.counting_score()))
            .collect();
        let edges = d90::search::best_rate_edges(&scored);
        let at_edge = (!edges.is_empty()).then(|| edges.iter().map(|edge| edge.label()).collect::<Vec<_>>().join(", "));
        rows.insert(
            (plan.model.clone(), plan.task.clone(), lrs),
            Row {
                score: search.baseline.score,
                majority: search.baseline.majority_accuracy,
                reference,
                best_epoch,
                at_last,
                at_edge,
            },
        );
    }
    df!(
        "model" => rows.keys().map(|(model, _, _)| model.clone()).collect::<Vec<_>>(),
        "task" => rows.keys().map(|(_, task, _)| task.clone()).collect::<Vec<_>>(),
        "learning_rates" => rows.keys().map(|(_, _, lrs)| lrs.clone()).collect::<Vec<_>>(),
        "baseline" => rows.values().map(|row| row.score).collect::<Vec<_>>(),
        "best_epoch" => rows.values().map(|row| row.best_epoch).collect::<Vec<_>>(),
        "best_at_last_epoch" => rows.values().map(|row| row.at_last.clone()).collect::<Vec<_>>(),
        "best_lr_at_edge" => rows.values().map(|row| row.at_edge.clone()).collect::<Vec<_>>(),
        "majority" => rows.values().map(|row| row.majority).collect::<Vec<_>>(),
        "reference" => rows.values().map(|row| row.reference.map(|r| r.accuracy)).collect::<Vec<_>>(),
        "reference_source" => rows.values().map(|row| row.reference.map(|r| r.source.clone())).collect::<Vec<_>>(),
    )
}

/// The orderings the paper reports, each a ratio of two d90s on the curve over the same
/// resamples (paired where the two searches share seeds and dev split) with its 95% interval and
/// P(left < right); the verdict on "left d90 <= right d90" is `held` when the interval lies below
/// 1, `not held` above 1, `inconclusive` otherwise (an undetermined d90 enters only through its
/// interval, which is open where the d90 is). SAID against DID (same model, task and map) and two
/// maps of one model, task and mode (global against per-tensor, exact against `aghajanyan`) also
/// show the paired score difference at each `d` both probed ([`stats::paired_difference`]),
/// labelled as what it is; RoBERTa against BERT and Large against Base compare d90s of different
/// models (same size or family, task, method and map).
pub fn orderings(records: &[SearchRecord], measured: &MeasuredSearches) -> PolarsResult<DataFrame> {
    struct Row {
        ordering: &'static str,
        claim: String,
        cell: String,
        left: String,
        right: String,
        left_d90: Option<String>,
        right_d90: Option<String>,
        ratio: d90::compare::Ratio,
        paired: bool,
        verdict: d90::compare::Verdict,
        evidence: Option<String>,
    }
    let measured_record = |search: &&SearchRecord| !matches!(reported_outcome(search), Outcome::Unable { .. });
    let usable: Vec<&SearchRecord> = records.iter().filter(measured_record).collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut push = |ordering: &'static str, claim: String, cell: String, left: &SearchRecord, right: &SearchRecord| {
        let (l, r) = (&measured[&left.key], &measured[&right.key]);
        let mut evidence = stats::paired_difference(left, right).map(|difference| {
            format!(
                "score difference at shared d (left - right), paired by seed: mean {:+.4} over {} seeds ({} (d, seed) pairs)",
                difference.mean_difference, difference.seeds, difference.pairs
            )
        });
        let ratio = uncertainty::ratio(l, r);
        let (left_at, right_at) = (l.unbracketed_label(), r.unbracketed_label());
        let verdict = uncertainty::verdict_with_bounds(ratio.verdict, left_at.is_some(), right_at.is_some());
        for (side, at) in [("left", left_at), ("right", right_at)] {
            let Some(at) = at else { continue };
            let mut bounded =
                format!("the {side} d90 is an upper bound: its rates do not bracket the best run at {at}");
            if verdict != ratio.verdict {
                bounded = format!("{bounded}, so the interval's `{}` is no verdict", ratio.verdict.label());
            }
            evidence = Some(evidence.map_or(bounded.clone(), |text| format!("{text}; {bounded}")));
        }
        rows.push(Row {
            ordering,
            claim,
            cell,
            left: format!("{} ({})", short(&left.plan.model), left.plan.method.name),
            right: format!("{} ({})", short(&right.plan.model), right.plan.method.name),
            left_d90: l.estimate.map(|c| c.label()),
            right_d90: r.estimate.map(|c| c.label()),
            ratio,
            paired: uncertainty::paired(l, r),
            verdict,
            evidence,
        });
    };
    let same_cell = |a: &SearchRecord, b: &SearchRecord| a.plan.model == b.plan.model && a.plan.task == b.plan.task;
    for said in usable.iter().filter(|s| s.plan.method.mode == Mode::Said) {
        for did in usable.iter().filter(|did| {
            did.plan.method.mode == Mode::Did
                && same_cell(said, did)
                && did.plan.method.scope == said.plan.method.scope
                && did.plan.method.compat == said.plan.method.compat
        }) {
            push(
                "said_le_did",
                "SAID d90 <= DID d90 (the paper, section 5.1)".to_owned(),
                format!("{} / {} / {}", said.plan.task, short(&said.plan.model), map_label(did)),
                said,
                did,
            );
        }
    }
    for (idx, left) in usable.iter().enumerate() {
        for right in usable.iter().skip(idx + 1) {
            if same_cell(left, right)
                && left.plan.method.mode == right.plan.method.mode
                && left.plan.method.mode != Mode::Full
                && map_label(left) != map_label(right)
            {
                let (left, right) = if map_label(left) <= map_label(right) { (left, right) } else { (right, left) };
                push(
                    "map_vs_map",
                    format!("{} d90 <= {} d90 (same model, task and mode)", map_label(left), map_label(right)),
                    format!("{} / {} / {}", left.plan.task, short(&left.plan.model), left.plan.method.mode),
                    left,
                    right,
                );
            }
        }
    }
    let shape = |search: &SearchRecord| -> (Option<String>, Option<String>) { (family(search), size(search)) };
    for left in &usable {
        for right in &usable {
            let (left_shape, right_shape) = (shape(left), shape(right));
            let same_method = left.plan.task == right.plan.task
                && left.plan.method.mode == right.plan.method.mode
                && left.plan.method.mode != Mode::Full
                && map_label(left) == map_label(right);
            if !same_method {
                continue;
            }
            let cell =
                |by: &str| format!("{by} / {} / {} / {}", left.plan.task, left.plan.method.mode, map_label(left));
            if left_shape.0.as_deref() == Some("RoBERTa")
                && right_shape.0.as_deref() == Some("BERT")
                && left_shape.1.is_some()
                && left_shape.1 == right_shape.1
            {
                let by = left_shape.1.clone().unwrap_or_default();
                push(
                    "roberta_le_bert",
                    "RoBERTa d90 <= BERT d90 (same size, task, method, map)".to_owned(),
                    cell(&by),
                    left,
                    right,
                );
            }
            if left_shape.1.as_deref() == Some("Large")
                && right_shape.1.as_deref() == Some("Base")
                && left_shape.0.is_some()
                && left_shape.0 == right_shape.0
            {
                let by = left_shape.0.clone().unwrap_or_default();
                push(
                    "large_le_base",
                    "Large d90 <= Base d90 (same family, task, method, map; the paper: 7 of 8 cells)".to_owned(),
                    cell(&by),
                    left,
                    right,
                );
            }
        }
    }
    rows.sort_by(|a, b| (a.ordering, &a.cell, &a.left, &a.right).cmp(&(b.ordering, &b.cell, &b.left, &b.right)));
    let end = |value: f64| if value.is_infinite() { "inf".to_owned() } else { format!("{value:.2}") };
    df!(
        "ordering" => rows.iter().map(|row| row.ordering).collect::<Vec<_>>(),
        "claim" => rows.iter().map(|row| row.claim.clone()).collect::<Vec<_>>(),
        "cell" => rows.iter().map(|row| row.cell.clone()).collect::<Vec<_>>(),
        "left_model" => rows.iter().map(|row| row.left.clone()).collect::<Vec<_>>(),
        "left_d90" => rows.iter().map(|row| row.left_d90.clone()).collect::<Vec<_>>(),
        "right_model" => rows.iter().map(|row| row.right.clone()).collect::<Vec<_>>(),
        "right_d90" => rows.iter().map(|row| row.right_d90.clone()).collect::<Vec<_>>(),
        "ratio" => rows.iter().map(|row| row.ratio.point).collect::<Vec<_>>(),
        "ratio_interval" => rows.iter().map(|row| format!("[{}, {}]", end(row.ratio.low), end(row.ratio.high))).collect::<Vec<_>>(),
        "p_left_lower" => rows.iter().map(|row| row.ratio.p_first_lower).collect::<Vec<_>>(),
        "paired" => rows.iter().map(|row| row.paired).collect::<Vec<_>>(),
        "verdict" => rows.iter().map(|row| row.verdict.label()).collect::<Vec<_>>(),
        "evidence" => rows.iter().map(|row| row.evidence.clone()).collect::<Vec<_>>(),
    )
}

fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// Figure 1 data: every probe's score against d, with the search's target.
pub fn figure1(searches: &DataFrame, probes: &DataFrame) -> PolarsResult<DataFrame> {
    let per_probe =
        probes.clone().lazy().group_by(by(&["key", "d"])).agg([col("probe_score").first(), col("success").first()]);
    sorted(
        per_probe
            .join(searches.clone().lazy(), by(&["key"]), by(&["key"]), JoinArgs::new(JoinType::Inner))
            .select(by(&["model", "task", "method", "d", "probe_score", "success", "target", "baseline"])),
        &["model", "task", "method", "d"],
    )
    .collect()
}

/// Generalization at d90: the search's generalization run (a run of the grid d90's probe trained
/// again with training accuracy; `chosen` says how it was picked) with its eval and training
/// accuracy, the gap, and the bound term sqrt(d90 / n_train), for determined d90s (`d90`: on the
/// curve). Older searches without a generalization run take the d90 probe's best run.
pub fn generalization(searches: &DataFrame, probes: &DataFrame, runs: &DataFrame) -> PolarsResult<DataFrame> {
    let at_d90 = probes
        .clone()
        .lazy()
        .join(searches.clone().lazy(), by(&["key"]), by(&["key"]), JoinArgs::new(JoinType::Inner))
        .filter(col("d").eq(col("d90")).and(col("determined")))
        .filter(col("generalization_run").is_null().or(col("run").eq(col("generalization_run"))))
        .join(runs.clone().lazy(), by(&["run"]), by(&["run"]), JoinArgs::new(JoinType::Inner))
        .sort(["best_score"], SortMultipleOptions::default().with_order_descending(true).with_maintain_order(true))
        .group_by_stable(by(&["key"]))
        .agg([
            col("model").first(),
            col("task").first(),
            col("method").first(),
            col("d90_curve_rounded").first().alias("d90"),
            col("n_train").first(),
            col("chosen").first(),
            col("best_score").first().alias("eval_accuracy"),
            col("train_accuracy").first(),
        ]);
    sorted(
        at_d90.with_columns([
            (col("train_accuracy") - col("eval_accuracy")).alias("gap"),
            ((col("train_accuracy") - col("eval_accuracy")) / col("train_accuracy")).alias("relative_gap"),
            (col("d90").cast(DataType::Float64) / col("n_train").cast(DataType::Float64)).sqrt().alias("bound_term"),
        ]),
        &["model", "task", "method"],
    )
    .select(by(&[
        "key",
        "model",
        "task",
        "method",
        "d90",
        "n_train",
        "chosen",
        "eval_accuracy",
        "train_accuracy",
        "gap",
        "relative_gap",
        "bound_term",
    ]))
    .collect()
}

/// The signs the paper reports: lower d90, better dev accuracy (negative), and a smaller
/// generalization gap (positive).
const PAPER_SIGNS: [(&str, &str, f64); 2] =
    [("eval_accuracy", "d90 vs eval accuracy", -1.0), ("relative_gap", "d90 vs relative generalization gap", 1.0)];

/// Spearman correlations of d90 (on the curve, determined) with eval accuracy and with the
/// relative gap: n, rho with its 95% interval over the d90s' resamples (the other variable held
/// at its measured value), the verdict on the paper's sign, a permutation p-value, and flags
/// (`n < 5`, opposite sign).
pub fn correlations(generalization: &DataFrame, measured: &MeasuredSearches) -> PolarsResult<DataFrame> {
    let values = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(generalization.column(name)?.cast(&DataType::Float64)?.f64()?.iter().collect())
    };
    let keys: Vec<String> = {
        let column = generalization.column("key")?.str()?;
        (0..column.len()).map(|idx| column.get(idx).unwrap_or_default().to_owned()).collect()
    };
    let d90 = values("d90")?;
    let mut rows = Vec::new();
    for (column, pair, paper_sign) in PAPER_SIGNS {
        let other = values(column)?;
        let points: Vec<(&Measured, f64, f64)> = keys
            .iter()
            .zip(d90.iter().zip(&other))
            .filter_map(|(key, (x, y))| Some((&measured[key], (*x)?, (*y)?)))
            .filter(|(_, _, y)| y.is_finite())
            .collect();
        let (x, y): (Vec<f64>, Vec<f64>) = points.iter().map(|(_, x, y)| (*x, *y)).unzip();
        let Some((rho, p_value)) = stats::spearman(&x, &y) else { continue };
        let trend =
            uncertainty::spearman_trend(&points.iter().map(|(m, _, y)| (*m, *y)).collect::<Vec<_>>(), paper_sign > 0.0);
        let mut flags = Vec::new();
        if x.len() < 5 {
            flags.push("n < 5");
        }
        if rho * paper_sign < 0.0 {
            flags.push("opposite sign to the paper");
        }
        rows.push((
            pair,
            x.len() as i64,
            rho,
            trend.map(|t| t.interval),
            // Fewer than five points say nothing, whatever their interval.
            trend.filter(|_| x.len() >= 5).map_or("inconclusive", |t| t.verdict.label()),
            p_value,
            if paper_sign < 0.0 { "negative" } else { "positive" },
            flags.join(", "),
        ));
    }
    let end = |value: f64| format!("{value:.2}");
    df!(
        "pair" => rows.iter().map(|row| row.0).collect::<Vec<_>>(),
        "n" => rows.iter().map(|row| row.1).collect::<Vec<_>>(),
        "spearman" => rows.iter().map(|row| row.2).collect::<Vec<_>>(),
        "interval" => rows.iter().map(|row| row.3.map(|i| format!("[{}, {}]", end(i.low), end(i.high)))).collect::<Vec<_>>(),
        "paper_sign" => rows.iter().map(|row| row.6).collect::<Vec<_>>(),
        "verdict" => rows.iter().map(|row| row.4).collect::<Vec<_>>(),
        "p_value" => rows.iter().map(|row| row.5).collect::<Vec<_>>(),
        "flags" => rows.iter().map(|row| row.7.clone()).collect::<Vec<_>>(),
    )
}

/// The checkpoint at update 0 (the random initialisation) of the pre-training `search` is a
/// checkpoint of, searched on the same task: the reference of the precondition.
fn random_init<'a>(search: &SearchRecord, records: &'a [SearchRecord]) -> Option<&'a SearchRecord> {
    let own = search.plan.pretraining.as_ref()?;
    records.iter().find(|other| {
        other.plan.task == search.plan.task
            && other.plan.pretraining.as_ref().is_some_and(|p| p.name == own.name && p.update == 0)
    })
}

/// The precondition of `points`: each against the random init of its own pre-training. Not met
/// when any point's baseline is not above its random init's; else not measured when a point has
/// no random init in the results (a hub checkpoint, a pre-training without its update 0).
fn precondition_of(
    points: &[&SearchRecord],
    records: &[SearchRecord],
    measured: &MeasuredSearches,
) -> uncertainty::Precondition {
    let (mut met, mut not_met, mut unmeasured) = (Vec::new(), Vec::new(), Vec::new());
    for point in points {
        let reference = random_init(point, records).map(|reference| &measured[&reference.key]);
        match uncertainty::precondition(&[(point, &measured[&point.key])], reference) {
            uncertainty::Precondition::Met(text) => met.push(text),
            uncertainty::Precondition::NotMet(text) => not_met.push(text),
            uncertainty::Precondition::NotMeasured(why) => unmeasured.push(why),
        }
    }
    if !not_met.is_empty() {
        uncertainty::Precondition::NotMet(not_met.join("; "))
    } else if !unmeasured.is_empty() || met.is_empty() {
        unmeasured.dedup();
        uncertainty::Precondition::NotMeasured(if unmeasured.is_empty() {
            "no point to check".to_owned()
        } else {
            unmeasured.join("; ")
        })
    } else {
        uncertainty::Precondition::Met(met.join("; "))
    }
}

/// One trend of a trajectory or a size sweep.
#[derive(Debug, Clone)]
pub struct TrendRow {
    /// The pre-training's name (a trajectory), or `size` (a size sweep).
    pub group: String,
    /// The task.
    pub task: String,
    /// The method's name in the plan.
    pub method: String,
    /// Determined points of all points.
    pub determined: usize,
    /// Searches in the trend (checkpoints after update 0, or models).
    pub points: usize,
    /// The slope of log10 d90 against log10 update or parameters over the determined points;
    /// `None` with fewer than two.
    pub trend: Option<d90::compare::Trend>,
    /// Whether pre-training improves full fine-tuning at these points.
    pub precondition: uncertainty::Precondition,
}

impl TrendRow {
    /// The claim's verdict: untestable where pre-training does not help, inconclusive with fewer
    /// than two determined d90s, else the slope's.
    pub fn verdict(&self) -> String {
        match (&self.precondition, &self.trend) {
            (uncertainty::Precondition::NotMet(_), _) => {
                "untestable here: pre-training does not improve full fine-tuning".to_owned()
            }
            (_, None) => "inconclusive".to_owned(),
            (_, Some(trend)) => trend.verdict.label().to_owned(),
        }
    }

    fn slope_interval(&self) -> Option<String> {
        let end = |value: f64| {
            if value.is_infinite() {
                format!("{}inf", if value < 0.0 { "-" } else { "" })
            } else {
                format!("{value:.2}")
            }
        };
        self.trend.map(|t| format!("[{}, {}]", end(t.interval.low), end(t.interval.high)))
    }
}

fn trends_frame(rows: &[TrendRow], group: &str) -> PolarsResult<DataFrame> {
    df!(
        group => rows.iter().map(|r| r.group.clone()).collect::<Vec<_>>(),
        "task" => rows.iter().map(|r| r.task.clone()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| r.method.clone()).collect::<Vec<_>>(),
        "determined" => rows.iter().map(|r| format!("{} of {}", r.determined, r.points)).collect::<Vec<_>>(),
        "slope" => rows.iter().map(|r| r.trend.map(|t| t.point)).collect::<Vec<_>>(),
        "slope_interval" => rows.iter().map(TrendRow::slope_interval).collect::<Vec<_>>(),
        "precondition" => rows.iter().map(|r| r.precondition.label()).collect::<Vec<_>>(),
        "verdict" => rows.iter().map(TrendRow::verdict).collect::<Vec<_>>(),
    )
}

/// d90 against parameter count per task and method (searches of `size` and `d90` experiments,
/// one point per model): each model's d90 on the curve and interval, and where two or more
/// models have a determined d90, the slope of log10 d90 against log10 parameters over them with
/// its 95% interval over resamples, the precondition and the verdict on a negative slope (the
/// paper: larger models have lower d90).
pub fn model_size(records: &[SearchRecord], measured: &MeasuredSearches) -> PolarsResult<(DataFrame, Vec<TrendRow>)> {
    let mut groups: BTreeMap<(String, String), Vec<&SearchRecord>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for record in records {
        let usable = record.plan.kind != ExperimentKind::Trajectory
            && record.plan.method.mode != Mode::Full
            && !matches!(reported_outcome(record), Outcome::Unable { .. });
        if usable && seen.insert((record.plan.task.clone(), record.plan.method.name.clone(), record.plan.model.clone()))
        {
            groups.entry((record.plan.task.clone(), record.plan.method.name.clone())).or_default().push(record);
        }
    }
    let mut points: Vec<(&SearchRecord, usize)> = Vec::new();
    let mut trends = Vec::new();
    for ((task, method), members) in &groups {
        if members.len() < 2 {
            continue;
        }
        let mut members = members.clone();
        members.sort_by(|a, b| a.total_parameters.cmp(&b.total_parameters).then(a.plan.model.cmp(&b.plan.model)));
        let trend = uncertainty::slope_trend(
            &members.iter().map(|m| (m.total_parameters as f64, &measured[&m.key])).collect::<Vec<_>>(),
        );
        let determined: Vec<&SearchRecord> =
            members.iter().copied().filter(|m| measured[&m.key].determined()).collect();
        trends.push(TrendRow {
            group: "size".to_owned(),
            task: task.clone(),
            method: method.clone(),
            determined: determined.len(),
            points: members.len(),
            trend,
            precondition: precondition_of(
                if determined.is_empty() { &members } else { &determined },
                records,
                measured,
            ),
        });
        let index = trends.len() - 1;
        points.extend(members.iter().map(|member| (*member, index)));
    }
    let of = |record: &SearchRecord| &measured[&record.key];
    let frame = df!(
        "task" => points.iter().map(|(r, _)| r.plan.task.clone()).collect::<Vec<_>>(),
        "method" => points.iter().map(|(r, _)| r.plan.method.name.clone()).collect::<Vec<_>>(),
        "model" => points.iter().map(|(r, _)| r.plan.model.clone()).collect::<Vec<_>>(),
        "parameters" => points.iter().map(|(r, _)| r.total_parameters as i64).collect::<Vec<_>>(),
        "d90" => points.iter().map(|(r, _)| of(r).d90().filter(|_| of(r).determined()).map(|d| d.round() as i64)).collect::<Vec<_>>(),
        "interval" => points.iter().map(|(r, _)| of(r).interval_label()).collect::<Vec<_>>(),
        "determined" => points.iter().map(|(r, _)| of(r).determined()).collect::<Vec<_>>(),
        "slope" => points.iter().map(|(_, t)| trends[*t].trend.map(|trend| trend.point)).collect::<Vec<_>>(),
    )?;
    Ok((frame, trends))
}

/// d90 along pre-training (the paper's section 5.2): one row per search of a checkpoint of a
/// pre-training the results ran, by pre-training, task, method and update: the outcome, the d90
/// on the curve where it is determined, its interval and determination, and the baseline with
/// its interval; and per pre-training, task and method, the slope of log10 d90 against log10
/// update over the determined checkpoints after update 0, its interval, the precondition
/// (every such checkpoint's baseline above the update-0 baseline beyond the interval of their
/// difference) and the verdict on a falling d90.
pub fn trajectory(
    searches: &DataFrame,
    records: &[SearchRecord],
    measured: &MeasuredSearches,
) -> PolarsResult<(DataFrame, Vec<TrendRow>)> {
    let frame = sorted(
        searches
            .clone()
            .lazy()
            .filter(col("kind").eq(lit("trajectory")))
            .with_column(
                when(col("determined"))
                    .then(col("d90_curve_rounded"))
                    .otherwise(lit(NULL).cast(DataType::Int64))
                    .alias("d90"),
            )
            .select(by(&[
                "pretraining",
                "task",
                "method",
                "update",
                "outcome",
                "d90_curve",
                "d90",
                "interval",
                "determination",
                "at_most",
                "largest_tried",
                "baseline",
                "baseline_interval",
                "majority",
                "reason",
            ])),
        &["pretraining", "task", "method", "update"],
    )
    .collect()?;
    let mut groups: BTreeMap<(String, String, String), Vec<&SearchRecord>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.plan.kind == ExperimentKind::Trajectory) {
        let Some(pretraining) = &record.plan.pretraining else { continue };
        if record.plan.method.mode == Mode::Full || pretraining.update == 0 {
            continue;
        }
        groups
            .entry((pretraining.name.clone(), record.plan.task.clone(), record.plan.method.name.clone()))
            .or_default()
            .push(record);
    }
    let mut trends = Vec::new();
    for ((name, task, method), mut members) in groups {
        members.sort_by_key(|m| m.plan.pretraining.as_ref().map_or(0, |p| p.update));
        let trend = uncertainty::slope_trend(
            &members
                .iter()
                .map(|m| (m.plan.pretraining.as_ref().map_or(0, |p| p.update) as f64, &measured[&m.key]))
                .collect::<Vec<_>>(),
        );
        let determined: Vec<&SearchRecord> =
            members.iter().copied().filter(|m| measured[&m.key].determined()).collect();
        let checked: Vec<&SearchRecord> = if determined.is_empty() { members.clone() } else { determined.clone() };
        trends.push(TrendRow {
            group: name,
            task,
            method,
            determined: determined.len(),
            points: members.len(),
            trend,
            precondition: precondition_of(&checked, records, measured),
        });
    }
    Ok((frame, trends))
}

/// Trend rows of a trajectory or size sweep as a frame (`group` names the first column).
pub fn trends(rows: &[TrendRow], group: &str) -> PolarsResult<DataFrame> {
    trends_frame(rows, group)
}

/// The pre-trainings behind the results: one row per checkpoint (its update and held-out MLM
/// loss), with the encoder's shape and the run's cost; `name` is the spec's name for it, as the
/// searches of its checkpoints record it.
pub fn pretraining_frame(
    pretrainings: &[records::PretrainingRecord],
    searches: &[SearchRecord],
) -> PolarsResult<DataFrame> {
    let names: BTreeMap<&str, &str> = searches
        .iter()
        .filter_map(|search| {
            let name = search.plan.pretraining.as_ref()?.name.as_str();
            let key = search.model_revision.as_deref()?.split('@').next()?;
            Some((key, name))
        })
        .collect();
    let rows: Vec<(&records::PretrainingRecord, &results::PretrainCheckpoint)> = pretrainings
        .iter()
        .flat_map(|record| record.checkpoints.iter().map(move |checkpoint| (record, checkpoint)))
        .collect();
    let config =
        |record: &records::PretrainingRecord, field: &str| record.spec.model.get(field).and_then(|v| v.as_i64());
    df!(
        "name" => rows.iter().map(|(r, _)| names.get(r.key.as_str()).map(|name| (*name).to_owned())).collect::<Vec<_>>(),
        "key" => rows.iter().map(|(r, _)| r.key.clone()).collect::<Vec<_>>(),
        "layers" => rows.iter().map(|(r, _)| config(r, "num_hidden_layers")).collect::<Vec<_>>(),
        "hidden" => rows.iter().map(|(r, _)| config(r, "hidden_size")).collect::<Vec<_>>(),
        "parameters" => rows.iter().map(|(r, _)| r.parameters as i64).collect::<Vec<_>>(),
        "corpus" => rows.iter().map(|(r, _)| r.spec.corpus.clone()).collect::<Vec<_>>(),
        "update" => rows.iter().map(|(_, c)| c.update as i64).collect::<Vec<_>>(),
        "heldout_loss" => rows.iter().map(|(_, c)| c.heldout_loss).collect::<Vec<_>>(),
        "train_loss" => rows.iter().map(|(_, c)| c.train_loss).collect::<Vec<_>>(),
        "checkpoint" => rows.iter().map(|(_, c)| c.hash.clone()).collect::<Vec<_>>(),
    )
}

/// Bytes a task costs at its d90 on the curve (f32 theta), determined d90s only.
pub fn compression(searches: &DataFrame) -> PolarsResult<DataFrame> {
    sorted(
        searches.clone().lazy().filter(col("determined")).select([
            col("model"),
            col("task"),
            col("method"),
            col("d90_curve_rounded").alias("d90"),
            (col("d90_curve_rounded") * lit(4i64)).alias("bytes"),
            col("parameters"),
            (col("parameters").cast(DataType::Float64) / col("d90_curve_value")).alias("compression"),
        ]),
        &["model", "task", "method"],
    )
    .collect()
}

/// Every run: signature, wall time, device, peak memory.
pub fn inventory(runs: &DataFrame) -> PolarsResult<DataFrame> {
    sorted(
        runs.clone().lazy().select(by(&["signature", "best_score", "wall_time_s", "device", "peak_mib"])),
        &["signature"],
    )
    .collect()
}

/// What a search measured: its record without what names the experiment that asked for it (key,
/// signature, experiment, kind) and without its provenance. Two searches with the same
/// measurement ran the same runs (baseline, probes, generalization run) under the same plan and
/// read them the same way; a signature alone does not say so (it leaves out training knobs that
/// an experiment may override).
fn measurement(search: &SearchRecord) -> String {
    let mut value = serde_json::to_value(search).expect("a search record serialises");
    if let Some(record) = value.as_object_mut() {
        for field in ["key", "signature", "provenance"] {
            record.remove(field);
        }
        if let Some(plan) = record.get_mut("plan").and_then(|plan| plan.as_object_mut()) {
            plan.remove("experiment");
            plan.remove("kind");
        }
    }
    value.to_string()
}

/// The first search (in the given order) of each measurement ([`measurement`]).
fn one_per_measurement(searches: &[SearchRecord]) -> Vec<SearchRecord> {
    let mut seen = BTreeSet::new();
    searches.iter().filter(|search| seen.insert(measurement(search))).cloned().collect()
}

/// Distinct values of `column` in `frame`, sorted.
fn distinct(frame: &DataFrame, column: &str) -> PolarsResult<Vec<String>> {
    let unique =
        sorted(frame.clone().lazy().select([col(column)]).unique_stable(None, UniqueKeepStrategy::First), &[column])
            .collect()?;
    let values = unique.column(column)?.str()?;
    Ok((0..values.len()).filter_map(|idx| values.get(idx).map(str::to_owned)).collect())
}

/// The Claims table: the paper's five claims, each with its verdict (`held`, `not held`,
/// `inconclusive`, `untestable here` with why, `not measured in these results`), the numbers
/// that decide it with their intervals, and the section that shows them.
pub fn claims(
    measurements: &[SearchRecord],
    measured: &MeasuredSearches,
    orderings: &DataFrame,
    trajectory_trends: &[TrendRow],
    size_trends: &[TrendRow],
    generalization: &DataFrame,
    correlations: &DataFrame,
) -> PolarsResult<DataFrame> {
    let not_measured = "not measured in these results";
    let pairs: Vec<(&SearchRecord, &Measured)> =
        measurements.iter().map(|record| (record, &measured[&record.key])).collect();
    let mut rows = vec![uncertainty::small_claim(&pairs)];

    let orderings = Table::from_frame(orderings)?;
    let said_did: Vec<usize> =
        (0..orderings.rows.len()).filter(|&row| orderings.cell(row, "ordering") == Some("said_le_did")).collect();
    let verdict_of = |label: Option<&str>| match label {
        Some("held") => d90::compare::Verdict::Held,
        Some("not held") => d90::compare::Verdict::NotHeld,
        _ => d90::compare::Verdict::Inconclusive,
    };
    rows.push(uncertainty::Claim {
        claim: "(b) SAID d90 <= DID d90 (same model, task and map)",
        verdict: if said_did.is_empty() {
            not_measured.to_owned()
        } else {
            uncertainty::combined(
                &said_did.iter().map(|&row| verdict_of(orderings.cell(row, "verdict"))).collect::<Vec<_>>(),
            )
            .label()
            .to_owned()
        },
        numbers: if said_did.is_empty() {
            "no DID search beside a SAID search of the same model, task and map".to_owned()
        } else {
            said_did
                .iter()
                .map(|&row| {
                    format!(
                        "{}: SAID/DID {} {}, P(SAID < DID) {} ({})",
                        orderings.cell(row, "cell").unwrap_or("?"),
                        orderings.cell(row, "ratio").unwrap_or("—"),
                        orderings.cell(row, "ratio_interval").unwrap_or("?"),
                        orderings.cell(row, "p_left_lower").unwrap_or("?"),
                        orderings.cell(row, "verdict").unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
        section: "Orderings the paper reports",
    });

    let trend_claim = |claim: &'static str, trends: &[TrendRow], section: &'static str, absent: &str| {
        if trends.is_empty() {
            return uncertainty::Claim { claim, verdict: not_measured.to_owned(), numbers: absent.to_owned(), section };
        }
        let untestable = trends.iter().any(|t| matches!(t.precondition, uncertainty::Precondition::NotMet(_)));
        let verdict = if untestable {
            "untestable here: pre-training does not improve full fine-tuning".to_owned()
        } else if trends.iter().any(|t| t.trend.is_none()) {
            "inconclusive".to_owned()
        } else {
            uncertainty::combined(&trends.iter().filter_map(|t| Some(t.trend?.verdict)).collect::<Vec<_>>())
                .label()
                .to_owned()
        };
        let numbers = trends
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}: {} of {} determined, slope {} {}; precondition {}",
                    t.group,
                    t.task,
                    t.method,
                    t.determined,
                    t.points,
                    t.trend.map_or("—".to_owned(), |trend| format!("{:.2}", trend.point)),
                    t.slope_interval().unwrap_or_else(|| "(needs two determined d90s)".to_owned()),
                    t.precondition.label()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        uncertainty::Claim { claim, verdict, numbers, section }
    };
    rows.push(trend_claim(
        "(c) d90 falls along pre-training (slope of log d90 on log updates < 0)",
        trajectory_trends,
        "d90 along pre-training",
        "no trajectory experiment",
    ));
    rows.push(trend_claim(
        "(d) larger models have lower d90 (slope of log d90 on log parameters < 0)",
        size_trends,
        "d90 against model size",
        "no task and method searched on two or more models",
    ));

    let correlations = Table::from_frame(correlations)?;
    let gap = (0..correlations.rows.len())
        .find(|&row| correlations.cell(row, "pair") == Some("d90 vs relative generalization gap"));
    let subspace_searches = measurements.iter().filter(|r| r.plan.method.mode != Mode::Full).count();
    rows.push(match gap {
        Some(row) => uncertainty::Claim {
            claim: "(e) d90 predicts the generalization gap (Spearman of d90 and the relative gap > 0)",
            verdict: correlations.cell(row, "verdict").unwrap_or("inconclusive").to_owned(),
            numbers: format!(
                "Spearman {} {} over n = {}{}",
                correlations.cell(row, "spearman").unwrap_or("?"),
                correlations.cell(row, "interval").unwrap_or("(no interval)"),
                correlations.cell(row, "n").unwrap_or("?"),
                correlations.cell(row, "flags").filter(|f| !f.is_empty()).map_or(String::new(), |f| format!(" ({f})"))
            ),
            section: "Generalization",
        },
        None => uncertainty::Claim {
            claim: "(e) d90 predicts the generalization gap (Spearman of d90 and the relative gap > 0)",
            verdict: if subspace_searches == 0 { not_measured.to_owned() } else { "inconclusive".to_owned() },
            numbers: format!(
                "{} determined d90s with a generalization run; a correlation needs at least 3",
                generalization.height()
            ),
            section: "Generalization",
        },
    });
    df!(
        "claim" => rows.iter().map(|r| r.claim).collect::<Vec<_>>(),
        "verdict" => rows.iter().map(|r| r.verdict.clone()).collect::<Vec<_>>(),
        "numbers" => rows.iter().map(|r| r.numbers.clone()).collect::<Vec<_>>(),
        "section" => rows.iter().map(|r| r.section).collect::<Vec<_>>(),
    )
}

/// Every search's uncertainty ([`Measured`]) from its record and the runs.
pub fn measure(searches: &[SearchRecord], runs: &[RunRecord]) -> MeasuredSearches {
    let by_key: BTreeMap<&str, &RunRecord> = runs.iter().map(|run| (run.key.as_str(), run)).collect();
    searches.iter().map(|search| (search.key.clone(), Measured::of(search, &by_key))).collect()
}

/// Builds the whole report of `preset` from its records; `runs_label` names the results folder in
/// the text (a relative path, so the report does not depend on where it was made).
pub fn build(preset: &str, runs_label: &str, records: &records::Records, paper: &Paper) -> Result<Report, ReportError> {
    build_from(&Source::Preset(preset), runs_label, records, paper)
}

/// What a report's results were produced from: a shipped preset, or a spec file (by its path as
/// the report's reader would pass it to `cargo xtask report --spec`); the report names it and
/// the command that regenerates it.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A preset of `bench-suite/presets/`, by name.
    Preset(&'a str),
    /// A spec file, by its path; its stem names the results.
    Spec(&'a str),
}

impl Source<'_> {
    /// The name of the results (the preset, or the spec file's stem).
    pub fn name(&self) -> String {
        match self {
            Source::Preset(name) => (*name).to_owned(),
            Source::Spec(path) => results::results_name(None, Some(Path::new(path))),
        }
    }

    /// The `cargo xtask report` argument that names it: `--preset <name>` or `--spec <path>`.
    pub fn argument(&self) -> String {
        match self {
            Source::Preset(name) => format!("--preset {name}"),
            Source::Spec(path) => format!("--spec {path}"),
        }
    }

    /// The file that declares it.
    pub fn file(&self) -> String {
        match self {
            Source::Preset(name) => format!("bench-suite/presets/{name}.yaml"),
            Source::Spec(path) => (*path).to_owned(),
        }
    }
}

/// [`build`] for results produced from `source` (a preset or a spec file).
///
/// # Errors
/// As [`build`].
pub fn build_from(
    source: &Source,
    runs_label: &str,
    records: &records::Records,
    paper: &Paper,
) -> Result<Report, ReportError> {
    // Input order never matters: records are taken in key order.
    let mut searches = distinguish_namesakes(&records.searches);
    searches.sort_by(|a, b| a.key.cmp(&b.key));
    let mut runs = records.runs.clone();
    runs.sort_by(|a, b| a.key.cmp(&b.key));
    let mut pretrainings = records.pretrainings.clone();
    pretrainings.sort_by(|a, b| a.key.cmp(&b.key));
    let (searches, runs) = (searches.as_slice(), runs.as_slice());
    let measured = measure(searches, runs);
    // A search that two experiments share (a trajectory's last checkpoint in a size sweep: the
    // same runs read the same way) is one measurement: one row of Table 1, one point of a
    // correlation. The trajectory and size sections take each experiment's own searches.
    let measurements = one_per_measurement(searches);
    let search_frame = searches_frame(searches, runs, &measured)?;
    let measurement_frame = searches_frame(&measurements, runs, &measured)?;
    let probe_frame = probes_frame(&measurements)?;
    let run_frame = runs_frame(runs)?;
    let table1 = table1(&measurement_frame, paper)?;
    let baselines = baselines(&measurements, runs, paper)?;
    let orderings = orderings(&measurements, &measured)?;
    let figure1 = figure1(&measurement_frame, &probe_frame)?;
    let generalization = generalization(&measurement_frame, &probe_frame, &run_frame)?;
    let correlations = correlations(&generalization, &measured)?;
    let (model_size, size_trends) = model_size(searches, &measured)?;
    let (trajectory, trajectory_trends) = trajectory(&search_frame, searches, &measured)?;
    let claims =
        claims(&measurements, &measured, &orderings, &trajectory_trends, &size_trends, &generalization, &correlations)?;
    let pretraining = pretraining_frame(&pretrainings, searches)?;
    let compression = compression(&measurement_frame)?;
    let inventory = inventory(&run_frame)?;
    // Every run a search rests on, with the searches (key and experiment) that rest on it.
    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for search in searches {
        for key in search.run_keys() {
            expected.entry(key).or_default().push(format!("{} of `{}`", search.key, search.plan.experiment));
        }
    }
    let seed_only = measured.values().filter(|m| matches!(m.reading, d90::bootstrap::Reading::SeedOnly(_))).count();
    let provenance = render::Provenance {
        codes: distinct(&run_frame, "code")?,
        devices: distinct(&run_frame, "device")?,
        torch: distinct(&run_frame, "torch")?,
        checkpoints: distinct(&run_frame, "checkpoint")?,
        data: distinct(&run_frame, "data")?,
        hosts: distinct(&run_frame, "host")?,
        searches: searches.len(),
        measurements: measurements.len(),
        runs: runs.len(),
        total_hours: run_frame.column("wall_time_s")?.f64()?.sum().unwrap_or(0.0) / 3600.0,
        seed_only,
        left_out: records.left_out,
        unfinished: records.unfinished,
        expected_runs: expected.len(),
        missing_runs: expected
            .into_iter()
            .filter(|(key, _)| runs.binary_search_by(|run| run.key.as_str().cmp(key)).is_err())
            .map(|(key, searches)| (key.to_owned(), searches.join(", ")))
            .collect(),
    };
    let generalization = generalization.drop("key")?;
    render::report(
        source,
        runs_label,
        paper,
        &render::Frames {
            claims: &claims,
            table1: &table1,
            baselines: &baselines,
            orderings: &orderings,
            figure1: &figure1,
            generalization: &generalization,
            correlations: &correlations,
            model_size: &model_size,
            size_trends: &trends(&size_trends, "experiment")?,
            trajectory: &trajectory,
            trajectory_trends: &trends(&trajectory_trends, "pretraining")?,
            pretraining: &pretraining,
            compression: &compression,
            inventory: &inventory,
        },
        &provenance,
    )
}

impl Report {
    /// Writes every file under `dir` (created if needed), removing stale SVG and CSV files that
    /// this report no longer has.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_path_buf(), source })?;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if (name.ends_with(".svg") || name.ends_with(".csv")) && !self.files.contains_key(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|source| ReportError::Io { path, source })?;
        }
        Ok(())
    }

    /// The differences between this report and the files in `dir`: each names the file and the
    /// first differing line. Empty when they match.
    pub fn check(&self, dir: &Path) -> Vec<String> {
        let mut differences = Vec::new();
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Err(_) => {
                    differences.push(format!("{}: missing (regenerate with `cargo xtask report`)", path.display()))
                }
                Ok(on_disk) if &on_disk != bytes => {
                    let ours = String::from_utf8_lossy(bytes);
                    let theirs = String::from_utf8_lossy(&on_disk);
                    let line = ours
                        .lines()
                        .zip(theirs.lines())
                        .position(|(a, b)| a != b)
                        .map_or_else(|| ours.lines().count().min(theirs.lines().count()) + 1, |idx| idx + 1);
                    let expected = ours.lines().nth(line - 1).unwrap_or("<end of file>");
                    let found = theirs.lines().nth(line - 1).unwrap_or("<end of file>");
                    differences.push(format!(
                        "{}:{line}: differs from what the results give\n  results give: {expected}\n  file has:     {found}",
                        path.display()
                    ));
                }
                Ok(_) => {}
            }
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut extra: Vec<String> = entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| (name.ends_with(".svg") || name.ends_with(".csv")) && !self.files.contains_key(name))
                .collect();
            extra.sort();
            for name in extra {
                differences.push(format!("{}: not produced by the results (stale)", dir.join(name).display()));
            }
        }
        differences
    }
}

/// `table1.csv` as (model, task, method) -> column -> cell.
type Table1Cells = BTreeMap<(String, String, String), BTreeMap<String, String>>;

/// Cells of `table1.csv` that moved between two report folders beyond `tolerance` (relative, for
/// numbers; any change for text), keyed by model, task and method. Rows present on one side only
/// are reported too.
pub fn compare(ours: &Path, other: &Path, tolerance: f64) -> Result<Vec<String>, ReportError> {
    let read = |dir: &Path| -> Result<Table1Cells, ReportError> {
        let path = dir.join("table1.csv");
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|err| csv_error(&path, err))?.clone();
        let mut rows = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(|err| csv_error(&path, err))?;
            let cells: BTreeMap<String, String> =
                headers.iter().zip(record.iter()).map(|(h, v)| (h.to_owned(), v.to_owned())).collect();
            let key = (cells["model"].clone(), cells["task"].clone(), cells["method"].clone());
            rows.insert(key, cells);
        }
        Ok(rows)
    };
    let (mine, theirs) = (read(ours)?, read(other)?);
    let mut moved = Vec::new();
    for (key, cells) in &mine {
        let label = format!("{} {} {}", key.0, key.1, key.2);
        let Some(other_cells) = theirs.get(key) else {
            moved.push(format!("{label}: only in {}", ours.display()));
            continue;
        };
        for (column, value) in cells {
            let other_value = other_cells.get(column).map(String::as_str).unwrap_or("");
            let beyond = match (value.parse::<f64>(), other_value.parse::<f64>()) {
                (Ok(a), Ok(b)) => (a - b).abs() > tolerance * a.abs().max(b.abs()),
                _ => value != other_value,
            };
            if beyond {
                moved.push(format!("{label}: {column} {other_value} -> {value}"));
            }
        }
    }
    for key in theirs.keys().filter(|key| !mine.contains_key(*key)) {
        moved.push(format!("{} {} {}: only in {}", key.0, key.1, key.2, other.display()));
    }
    Ok(moved)
}

fn csv_error(path: &Path, err: csv::Error) -> ReportError {
    ReportError::Io { path: path.to_path_buf(), source: std::io::Error::other(err) }
}
