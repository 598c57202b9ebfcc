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

pub mod records;
mod render;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

use records::{Outcome, Probe, RunRecord, SearchRecord};
pub use render::Table;
use results::Mode;

/// The paper's reference values (`reports/paper.yaml`, compiled in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    pub source: String,
    pub d90: Vec<PaperD90>,
    /// Public full fine-tuning dev accuracies to show beside each baseline (not the paper's).
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// A published dev accuracy of full fine-tuning, with its source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub model: String,
    pub task: String,
    pub accuracy: f64,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperD90 {
    pub model: String,
    pub task: String,
    pub method: String,
    pub d90: u64,
}

impl Paper {
    pub fn embedded() -> Paper {
        serde_norway::from_str(include_str!("../paper.yaml")).expect("reports/paper.yaml is valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Polars(#[from] PolarsError),
    #[error("svg {file}: {message}")]
    Svg { file: String, message: String },
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// A rendered report: relative file name -> bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
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

/// `[low, high]` of the seed-bootstrap interval: `<=d_min` low when resamples were bounds, `>top`
/// high when open above. Results written before unreached searches stopped getting an interval
/// hold `u64::MAX` as `low`: no interval.
fn interval_label(search: &SearchRecord) -> Option<String> {
    let interval = search.interval.as_ref().filter(|interval| interval.low != usize::MAX)?;
    let (first, last) = (search.grid.first().copied().unwrap_or(0), search.grid.last().copied().unwrap_or(0));
    let low = if interval.low == first { format!("<={first}") } else { interval.low.to_string() };
    let high = interval.high.map_or_else(|| format!(">{last}"), |high| high.to_string());
    Some(format!("[{low}, {high}]"))
}

/// Whether a `found` d90 is determined by its seeds: not when its bootstrap interval reaches past
/// the largest d searched (some resamples of the seeds never reach the target there). Such a d90
/// is shown, and kept out of orderings, correlations and compression like a bound.
fn determined(search: &SearchRecord) -> bool {
    matches!(search.outcome, Outcome::Found { .. })
        && search.interval.as_ref().is_none_or(|interval| interval.high.is_some())
}

/// Where each probe's best run (highest dev score) lies in the probe's learning rates: the probes
/// whose best is the lowest (`low`) or the highest (`high`) rate of the grid, e.g. `high 5/5`
/// (the grid should extend that way); `None` when every best lies inside the grid.
fn best_lr_at_edge(search: &SearchRecord, runs: &BTreeMap<&str, &RunRecord>) -> Option<String> {
    let (mut low, mut high, mut probes) = (0, 0, 0);
    for probe in &search.probes {
        let records: Vec<&RunRecord> = probe.runs.iter().filter_map(|key| runs.get(key.as_str()).copied()).collect();
        let mut lrs: Vec<f64> = records.iter().map(|run| run.spec.train.lr).collect();
        lrs.sort_by(f64::total_cmp);
        lrs.dedup();
        let best_lr = records
            .iter()
            .filter_map(|run| Some((run.best_score?, run.spec.train.lr)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, lr)| lr);
        let (Some(best_lr), true) = (best_lr, lrs.len() >= 2) else { continue };
        probes += 1;
        low += usize::from(best_lr == lrs[0]);
        high += usize::from(best_lr == lrs[lrs.len() - 1]);
    }
    let parts: Vec<String> = [("low", low), ("high", high)]
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(edge, count)| format!("{edge} {count}/{probes}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The outcome a search is reported with: its own, except that a d90 or bound whose target lies
/// at or below the majority-class accuracy (recorded so by an older protocol) is `unable`, since a
/// constant predictor reaches such a target.
fn reported_outcome(search: &SearchRecord) -> Outcome {
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
pub fn searches_frame(searches: &[SearchRecord], runs: &[RunRecord]) -> PolarsResult<DataFrame> {
    let by_key: BTreeMap<&str, &RunRecord> = runs.iter().map(|run| (run.key.as_str(), run)).collect();
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
        "interval" => searches.iter().map(interval_label).collect::<Vec<_>>(),
        "bracket_low" => bracket_low,
        "largest_tried" => largest,
        "grid_min" => searches.iter().map(|s| s.grid.first().map(|&d| d as i64)).collect::<Vec<_>>(),
        "baseline" => searches.iter().map(|s| s.baseline.score).collect::<Vec<_>>(),
        "target" => searches.iter().map(|s| s.baseline.target).collect::<Vec<_>>(),
        "majority" => searches.iter().map(|s| s.baseline.majority_accuracy).collect::<Vec<_>>(),
        "threshold" => searches.iter().map(|s| s.plan.search.threshold).collect::<Vec<_>>(),
        "probes" => searches.iter().map(|s| s.probes.len() as i64).collect::<Vec<_>>(),
        "monotone" => searches.iter().map(|s| s.monotone).collect::<Vec<_>>(),
        "determined" => searches.iter().map(|s| matches!(s.outcome, Outcome::Found { .. }).then(|| determined(s))).collect::<Vec<_>>(),
        "best_lr_at_edge" => searches.iter().map(|s| best_lr_at_edge(s, &by_key)).collect::<Vec<_>>(),
        "parameters" => searches.iter().map(|s| s.total_parameters as i64).collect::<Vec<_>>(),
        "n_train" => n_train,
        "generalization_run" => searches.iter().map(|s| s.generalization_run.clone()).collect::<Vec<_>>(),
        "pretraining" => searches.iter().map(|s| s.plan.pretraining.as_ref().map(|p| p.name.clone())).collect::<Vec<_>>(),
        "update" => searches.iter().map(|s| s.plan.pretraining.as_ref().map(|p| p.update as i64)).collect::<Vec<_>>(),
    )
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
    sorted(
        joined.with_column(
            (col("d90").cast(DataType::Float64) / col("paper_d90").cast(DataType::Float64)).alias("ratio"),
        ),
        &["model", "task", "method"],
    )
    .select(by(&[
        "model",
        "task",
        "method",
        "map",
        "seeds",
        "paper_d90",
        "d90",
        "interval",
        "determined",
        "ratio",
        "bracket_low",
        "outcome",
        "at_most",
        "largest_tried",
        "monotone",
        "best_lr_at_edge",
        "baseline",
        "target",
        "majority",
        "probes",
        "reason",
    ]))
    .collect()
}

/// Each search's baseline beside a public reference accuracy for its model and task, where one
/// exists: a weak baseline shows. `best_epoch` is the epoch (1-based) of the best baseline run's
/// best evaluation and `best_at_last_epoch` counts the baseline runs whose best evaluation was
/// their last epoch (all of them: the baseline may still have been improving).
pub fn baselines(searches: &[SearchRecord], runs: &[RunRecord], paper: &Paper) -> PolarsResult<DataFrame> {
    struct Row<'a> {
        score: Option<f64>,
        majority: f64,
        reference: Option<&'a Reference>,
        best_epoch: Option<i64>,
        at_last: Option<String>,
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
        rows.insert(
            (plan.model.clone(), plan.task.clone(), lrs),
            Row {
                score: search.baseline.score,
                majority: search.baseline.majority_accuracy,
                reference,
                best_epoch,
                at_last,
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
        "majority" => rows.values().map(|row| row.majority).collect::<Vec<_>>(),
        "reference" => rows.values().map(|row| row.reference.map(|r| r.accuracy)).collect::<Vec<_>>(),
        "reference_source" => rows.values().map(|row| row.reference.map(|r| r.source.clone())).collect::<Vec<_>>(),
    )
}

/// The orderings the paper reports. SAID against DID (same model, task and scope) is judged on
/// paired score differences at the `d`s both probed, seed by seed ([`stats::said_against_did`]):
/// `held`, `not held` or `inconclusive`. The size and family orderings compare d90 values: only
/// searches with a d90 (no unable cells, no bounds, nothing unreached) and no ties (listed apart).
pub fn orderings(searches: &DataFrame, records: &[SearchRecord]) -> PolarsResult<(DataFrame, Vec<String>)> {
    /// Cell, model, SAID and DID method names, their d90s, the comparison.
    type Row = (String, String, String, String, Option<i64>, Option<i64>, stats::PairedComparison);
    let mut said_did: Vec<Row> = Vec::new();
    let measured = |search: &&SearchRecord| !matches!(reported_outcome(search), Outcome::Unable { .. });
    for said in records.iter().filter(|s| s.plan.method.mode == Mode::Said).filter(measured) {
        let same = |did: &&SearchRecord| {
            did.plan.method.mode == Mode::Did
                && did.plan.model == said.plan.model
                && did.plan.task == said.plan.task
                && did.plan.method.scope == said.plan.method.scope
                && did.plan.method.compat == said.plan.method.compat
        };
        for did in records.iter().filter(same).filter(measured) {
            if let Some(comparison) = stats::said_against_did(said, did) {
                said_did.push((
                    format!("{} / {} / {}", said.plan.task, short(&said.plan.model), map_label(did)),
                    said.plan.model.clone(),
                    said.plan.method.name.clone(),
                    did.plan.method.name.clone(),
                    said.d90().map(|d| d as i64),
                    did.d90().map(|d| d as i64),
                    comparison,
                ));
            }
        }
    }
    let said_did = df!(
        "ordering" => said_did.iter().map(|_| "said_le_did").collect::<Vec<_>>(),
        "claim" => said_did.iter().map(|_| "SAID scores above DID at the same d, paired by seed (the paper: SAID d90 <= DID d90)").collect::<Vec<_>>(),
        "cell" => said_did.iter().map(|row| row.0.clone()).collect::<Vec<_>>(),
        "left_model" => said_did.iter().map(|row| format!("{} ({})", short(&row.1), row.2)).collect::<Vec<_>>(),
        "left_d90" => said_did.iter().map(|row| row.4).collect::<Vec<_>>(),
        "right_model" => said_did.iter().map(|row| format!("{} ({})", short(&row.1), row.3)).collect::<Vec<_>>(),
        "right_d90" => said_did.iter().map(|row| row.5).collect::<Vec<_>>(),
        "evidence" => said_did.iter().map(|row| format!(
            "mean difference {:+.4} over {} seeds ({} (d, seed) pairs), p = {:.3}",
            row.6.mean_difference, row.6.seeds, row.6.pairs, row.6.p_value
        )).collect::<Vec<_>>(),
        "held" => said_did.iter().map(|row| row.6.verdict).collect::<Vec<_>>(),
    )?;
    let found = searches.clone().lazy().filter(col("outcome").eq(lit("found")).and(col("determined")));
    let pick = |filter: Expr, keys: &[&str], value: &str, label: &str| {
        let mut columns = by(keys);
        columns.push(col("d90").alias(value));
        columns.push(col("model").alias(label));
        found.clone().filter(filter).select(columns)
    };
    let compare = |left: LazyFrame, right: LazyFrame, keys: &[&str], cell: Expr, name: &str, description: &str| {
        left.join(right, by(keys), by(keys), JoinArgs::new(JoinType::Inner)).select([
            lit(name).alias("ordering"),
            lit(description).alias("claim"),
            cell.alias("cell"),
            col("left_model"),
            col("left_d90"),
            col("right_model"),
            col("right_d90"),
            lit("d90 values").alias("evidence"),
            when(col("left_d90").eq(col("right_d90")))
                .then(lit("tie"))
                .when(col("left_d90").lt(col("right_d90")))
                .then(lit("held"))
                .otherwise(lit("not held"))
                .alias("held"),
        ])
    };
    let roberta_bert = compare(
        pick(col("family").eq(lit("RoBERTa")), &["size", "task", "mode", "map"], "left_d90", "left_model"),
        pick(col("family").eq(lit("BERT")), &["size", "task", "mode", "map"], "right_d90", "right_model"),
        &["size", "task", "mode", "map"],
        col("size") + lit(" / ") + col("task") + lit(" / ") + col("mode") + lit(" / ") + col("map"),
        "roberta_le_bert",
        "RoBERTa d90 <= BERT d90 (same size, task, method, map)",
    );
    let large_base = compare(
        pick(col("size").eq(lit("Large")), &["family", "task", "mode", "map"], "left_d90", "left_model"),
        pick(col("size").eq(lit("Base")), &["family", "task", "mode", "map"], "right_d90", "right_model"),
        &["family", "task", "mode", "map"],
        col("family") + lit(" / ") + col("task") + lit(" / ") + col("mode") + lit(" / ") + col("map"),
        "large_le_base",
        "Large d90 <= Base d90 (same family, task, method, map; the paper: 7 of 8 cells)",
    );
    let by_d90 = concat([roberta_bert, large_base], UnionArgs::default())?.collect()?;
    let ties = by_d90.clone().lazy().filter(col("held").eq(lit("tie"))).collect()?;
    let tie_cells = ties.column("cell")?.str()?;
    let tie_labels: Vec<String> = (0..tie_cells.len())
        .filter_map(|idx| {
            Some(format!("{} ({})", tie_cells.get(idx)?, ties.column("ordering").ok()?.str().ok()?.get(idx)?))
        })
        .collect();
    let kept = by_d90.lazy().filter(col("held").neq(lit("tie")));
    let frame = sorted(
        concat([said_did.lazy(), kept], UnionArgs::default())?,
        &["ordering", "cell", "left_model", "right_model"],
    )
    .collect()?;
    Ok((frame, tie_labels))
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

/// Generalization at d90: the best run of the d90 probe (eval and training accuracy; the
/// search's generalization run, the best run trained again with training accuracy, where it has
/// one), the gap, and the bound term sqrt(d90 / n_train).
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
            col("d90").first(),
            col("n_train").first(),
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
        "model",
        "task",
        "method",
        "d90",
        "n_train",
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

/// Spearman correlations of d90 with eval accuracy and with the relative gap, each with n, a
/// permutation p-value, the sign the paper reports and flags (`n < 5`, opposite sign).
pub fn correlations(generalization: &DataFrame) -> PolarsResult<DataFrame> {
    let values = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(generalization.column(name)?.cast(&DataType::Float64)?.f64()?.iter().collect())
    };
    let d90 = values("d90")?;
    let mut rows = Vec::new();
    for (column, pair, paper_sign) in PAPER_SIGNS {
        let other = values(column)?;
        let (x, y): (Vec<f64>, Vec<f64>) =
            d90.iter().zip(&other).filter_map(|(x, y)| Some(((*x)?, (*y)?))).filter(|(_, y)| y.is_finite()).unzip();
        let Some((rho, p_value)) = stats::spearman(&x, &y) else { continue };
        let mut flags = Vec::new();
        if x.len() < 5 {
            flags.push("n < 5");
        }
        if rho * paper_sign < 0.0 {
            flags.push("opposite sign to the paper");
        }
        if p_value >= stats::ALPHA {
            flags.push("not significant");
        }
        rows.push((
            pair,
            x.len() as i64,
            rho,
            p_value,
            if paper_sign < 0.0 { "negative" } else { "positive" },
            flags.join(", "),
        ));
    }
    df!(
        "pair" => rows.iter().map(|row| row.0).collect::<Vec<_>>(),
        "n" => rows.iter().map(|row| row.1).collect::<Vec<_>>(),
        "spearman" => rows.iter().map(|row| row.2).collect::<Vec<_>>(),
        "p_value" => rows.iter().map(|row| row.3).collect::<Vec<_>>(),
        "paper_sign" => rows.iter().map(|row| row.4).collect::<Vec<_>>(),
        "flags" => rows.iter().map(|row| row.5.clone()).collect::<Vec<_>>(),
    )
}

/// d90 against parameter count per task and method, with the log-log slope and its 95% interval
/// (OLS of log10 d90 on log10 parameters, one point per model; an interval needs three models)
/// where a task and method has at least two model sizes. Searches of `size` and `d90` experiments
/// count, not a trajectory's (its checkpoints share one parameter count); a model searched by two
/// experiments (the same runs, so the same d90) is one point.
pub fn model_size(searches: &DataFrame) -> PolarsResult<DataFrame> {
    let found = searches
        .clone()
        .lazy()
        .filter(col("outcome").eq(lit("found")).and(col("determined")).and(col("kind").neq(lit("trajectory"))))
        .select(by(&["task", "method", "mode", "model", "parameters", "d90"]));
    let found = sorted(found, &["task", "method", "parameters", "model"])
        .unique_stable_generic(Some(by(&["task", "method", "model"])), UniqueKeepStrategy::First);
    let found = sorted(found, &["task", "method", "parameters", "model"]).collect()?;
    let column = |name: &str| -> PolarsResult<Vec<String>> {
        let values = found.column(name)?.str()?;
        Ok((0..values.len()).map(|idx| values.get(idx).unwrap_or_default().to_owned()).collect())
    };
    let (tasks, methods, models) = (column("task")?, column("method")?, column("model")?);
    let numbers = |name: &str| -> PolarsResult<Vec<f64>> {
        let values = found.column(name)?.i64()?;
        Ok((0..values.len()).map(|idx| values.get(idx).unwrap_or(0) as f64).collect())
    };
    let (parameters, d90) = (numbers("parameters")?, numbers("d90")?);
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for row in 0..found.height() {
        groups.entry((&tasks[row], &methods[row])).or_default().push(row);
    }
    // (row of `found`, models in its group, slope, interval)
    type SizeRow = (usize, usize, f64, Option<(f64, f64)>);
    let mut rows: Vec<SizeRow> = Vec::new();
    for members in groups.values() {
        let distinct_models: BTreeSet<&str> = members.iter().map(|&row| models[row].as_str()).collect();
        if distinct_models.len() < 2 {
            continue;
        }
        let xs: Vec<f64> = members.iter().map(|&row| parameters[row].log10()).collect();
        let ys: Vec<f64> = members.iter().map(|&row| d90[row].log10()).collect();
        let Some((slope, interval)) = stats::ols_slope(&xs, &ys) else { continue };
        for &row in members {
            rows.push((row, distinct_models.len(), slope, interval));
        }
    }
    df!(
        "task" => rows.iter().map(|r| tasks[r.0].clone()).collect::<Vec<_>>(),
        "method" => rows.iter().map(|r| methods[r.0].clone()).collect::<Vec<_>>(),
        "model" => rows.iter().map(|r| models[r.0].clone()).collect::<Vec<_>>(),
        "parameters" => rows.iter().map(|r| parameters[r.0] as i64).collect::<Vec<_>>(),
        "d90" => rows.iter().map(|r| d90[r.0] as i64).collect::<Vec<_>>(),
        "models" => rows.iter().map(|r| r.1 as i64).collect::<Vec<_>>(),
        "slope" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "slope_low" => rows.iter().map(|r| r.3.map(|(low, _)| low)).collect::<Vec<_>>(),
        "slope_high" => rows.iter().map(|r| r.3.map(|(_, high)| high)).collect::<Vec<_>>(),
    )
}

/// d90 along pre-training (the paper's section 5.2): one row per search of a checkpoint of a
/// pre-training the results ran, by pre-training, task, method and update, with its outcome (a
/// d90 only where it is determined; bounds, unreached targets and unable points keep their own
/// columns and reason).
pub fn trajectory(searches: &DataFrame) -> PolarsResult<DataFrame> {
    sorted(
        searches
            .clone()
            .lazy()
            .filter(col("kind").eq(lit("trajectory")))
            .with_column(
                when(col("outcome").eq(lit("found")).and(col("determined")))
                    .then(col("d90"))
                    .otherwise(lit(NULL).cast(DataType::Int64))
                    .alias("d90"),
            )
            .select(by(&[
                "pretraining",
                "task",
                "method",
                "update",
                "outcome",
                "d90",
                "interval",
                "at_most",
                "largest_tried",
                "baseline",
                "majority",
                "reason",
            ])),
        &["pretraining", "task", "method", "update"],
    )
    .collect()
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

/// Bytes a task costs at d90 (f32 theta).
pub fn compression(searches: &DataFrame) -> PolarsResult<DataFrame> {
    sorted(
        searches.clone().lazy().filter(col("outcome").eq(lit("found")).and(col("determined"))).select([
            col("model"),
            col("task"),
            col("method"),
            col("d90"),
            (col("d90") * lit(4i64)).alias("bytes"),
            col("parameters"),
            (col("parameters").cast(DataType::Float64) / col("d90").cast(DataType::Float64)).alias("compression"),
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

/// Builds the whole report of `preset` from its records; `runs_label` names the results folder in
/// the text (a relative path, so the report does not depend on where it was made).
pub fn build(preset: &str, runs_label: &str, records: &records::Records, paper: &Paper) -> Result<Report, ReportError> {
    // Input order never matters: records are taken in key order.
    let mut searches = distinguish_namesakes(&records.searches);
    searches.sort_by(|a, b| a.key.cmp(&b.key));
    let mut runs = records.runs.clone();
    runs.sort_by(|a, b| a.key.cmp(&b.key));
    let mut pretrainings = records.pretrainings.clone();
    pretrainings.sort_by(|a, b| a.key.cmp(&b.key));
    let (searches, runs) = (searches.as_slice(), runs.as_slice());
    // A search that two experiments share (a trajectory's last checkpoint in a size sweep: the
    // same runs read the same way) is one measurement: one row of Table 1, one point of a
    // correlation. The trajectory and size sections take each experiment's own searches.
    let measurements = one_per_measurement(searches);
    let search_frame = searches_frame(searches, runs)?;
    let measurement_frame = searches_frame(&measurements, runs)?;
    let probe_frame = probes_frame(&measurements)?;
    let run_frame = runs_frame(runs)?;
    let table1 = table1(&measurement_frame, paper)?;
    let baselines = baselines(&measurements, runs, paper)?;
    let (orderings, ties) = orderings(&measurement_frame, &measurements)?;
    let figure1 = figure1(&measurement_frame, &probe_frame)?;
    let generalization = generalization(&measurement_frame, &probe_frame, &run_frame)?;
    let correlations = correlations(&generalization)?;
    let model_size = model_size(&search_frame)?;
    let trajectory = trajectory(&search_frame)?;
    let pretraining = pretraining_frame(&pretrainings, searches)?;
    let compression = compression(&measurement_frame)?;
    let inventory = inventory(&run_frame)?;
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
    };
    render::report(
        preset,
        runs_label,
        paper,
        &render::Frames {
            table1: &table1,
            baselines: &baselines,
            orderings: &orderings,
            ties: &ties,
            figure1: &figure1,
            generalization: &generalization,
            correlations: &correlations,
            model_size: &model_size,
            trajectory: &trajectory,
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
