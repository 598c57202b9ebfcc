//! Rendering: frames into markdown tables, CSV files and SVG figures, with fixed number formats.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use polars::prelude::*;

use crate::{Paper, Report, ReportError, Source};

/// A table ready to print: header and formatted cells (`None`: no value).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, in the frame's order.
    pub columns: Vec<String>,
    /// Cells row by row, one per column.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Decimal places of float columns; 4 unless listed.
fn decimals(column: &str) -> usize {
    match column {
        "ratio" | "slope" | "slope_low" | "slope_high" | "compression" | "spearman" => 2,
        "p_value" | "p_left_lower" => 3,
        "wall_time_s" => 1,
        _ => 4,
    }
}

impl Table {
    /// Formats every cell of `frame`: floats with fixed decimals by column (4 unless listed),
    /// booleans as `yes`/`no`, nulls and NaN as `None`.
    pub fn from_frame(frame: &DataFrame) -> PolarsResult<Table> {
        let columns: Vec<String> = frame.get_column_names().iter().map(|name| name.to_string()).collect();
        let mut rows = vec![Vec::with_capacity(columns.len()); frame.height()];
        for column in frame.columns() {
            let name = column.name().to_string();
            let series = column.as_materialized_series();
            for (idx, row) in rows.iter_mut().enumerate() {
                let value = series.get(idx)?;
                row.push(match value {
                    AnyValue::Null => None,
                    AnyValue::Float64(v) if v.is_nan() => None,
                    AnyValue::Float64(v) => Some(format!("{v:.*}", decimals(&name))),
                    AnyValue::Float32(v) => Some(format!("{v:.*}", decimals(&name))),
                    AnyValue::Int64(v) => Some(v.to_string()),
                    AnyValue::Int32(v) => Some(v.to_string()),
                    AnyValue::UInt32(v) => Some(v.to_string()),
                    AnyValue::UInt64(v) => Some(v.to_string()),
                    AnyValue::Boolean(v) => Some(if v { "yes" } else { "no" }.to_owned()),
                    AnyValue::String(v) => Some(v.to_owned()),
                    AnyValue::StringOwned(v) => Some(v.to_string()),
                    other => Some(other.to_string()),
                });
            }
        }
        Ok(Table { columns, rows })
    }

    /// A markdown table: `—` for an empty cell, `|` inside a cell escaped.
    pub fn markdown(&self) -> String {
        let mut text = format!("| {} |\n", self.columns.join(" | "));
        writeln!(text, "|{}|", self.columns.iter().map(|_| "---").collect::<Vec<_>>().join("|")).unwrap();
        for row in &self.rows {
            // A `|` inside a cell (run signatures) would end the cell.
            let cells: Vec<String> =
                row.iter().map(|cell| cell.as_deref().unwrap_or("—").replace('|', "\\|")).collect();
            writeln!(text, "| {} |", cells.join(" | ")).unwrap();
        }
        text
    }

    /// CSV bytes with a header row; an empty cell is an empty field.
    pub fn csv(&self) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns).expect("in memory");
        for row in &self.rows {
            writer.write_record(row.iter().map(|cell| cell.as_deref().unwrap_or(""))).expect("in memory");
        }
        writer.into_inner().expect("in memory")
    }

    pub(crate) fn cell(&self, row: usize, column: &str) -> Option<&str> {
        let idx = self.columns.iter().position(|name| name == column)?;
        self.rows[row][idx].as_deref()
    }
}

pub struct Frames<'a> {
    pub claims: &'a DataFrame,
    pub table1: &'a DataFrame,
    pub baselines: &'a DataFrame,
    pub orderings: &'a DataFrame,
    pub figure1: &'a DataFrame,
    pub generalization: &'a DataFrame,
    pub correlations: &'a DataFrame,
    pub model_size: &'a DataFrame,
    pub size_trends: &'a DataFrame,
    pub trajectory: &'a DataFrame,
    pub trajectory_trends: &'a DataFrame,
    pub pretraining: &'a DataFrame,
    pub compression: &'a DataFrame,
    pub inventory: &'a DataFrame,
}

pub struct Provenance {
    pub codes: Vec<String>,
    pub devices: Vec<String>,
    pub torch: Vec<String>,
    pub checkpoints: Vec<String>,
    pub data: Vec<String>,
    pub hosts: Vec<String>,
    pub searches: usize,
    /// Distinct measurements among the searches (a search two experiments share counts once).
    pub measurements: usize,
    pub runs: usize,
    pub total_hours: f64,
    /// Searches whose intervals resample seeds only (no per-example outcomes).
    pub seed_only: usize,
    /// The runs the searches rest on ([`results::SearchRecord::run_keys`]), counted once each.
    pub expected_runs: usize,
    /// Those of them with no readable record: `(run key, the searches that expect it)`.
    pub missing_runs: Vec<(String, String)>,
    /// Searches of other specs in the results folder, left out ([`crate::records::load_planned`]).
    pub left_out: usize,
    /// Searches the spec planned in the folder without a record yet.
    pub unfinished: usize,
}

/// The warning a report gives when runs its searches rest on have no record; empty when none.
fn missing_runs(provenance: &Provenance) -> String {
    if provenance.missing_runs.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "**Incomplete results: {} of the {} runs the searches rest on have no readable record** (deleted, or \
         unreadable); the numbers below read the searches' records as they were written, not the runs. \
         `cargo xtask reproduce` with the same spec and results folder trains the missing runs again and \
         re-derives their searches. Missing:\n\n",
        provenance.missing_runs.len(),
        provenance.expected_runs
    );
    for (key, searches) in &provenance.missing_runs {
        writeln!(text, "- `runs/{key}.json` (search {searches})").unwrap();
    }
    text.push('\n');
    text
}

fn short_model(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// A file-name-safe stem.
fn stem(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| {
            part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("__")
}

pub fn report(
    source: &Source,
    runs_label: &str,
    paper: &Paper,
    frames: &Frames,
    provenance: &Provenance,
) -> Result<Report, ReportError> {
    let preset = &source.name();
    let mut files = BTreeMap::new();
    let mut md = String::new();
    let table = |frame: &DataFrame| Table::from_frame(frame);
    writeln!(md, "# intrinsic-bench report: `{preset}`\n").unwrap();
    writeln!(
        md,
        "Generated by `cargo xtask report {}` from the result files of `{runs_label}`; \
         every number traces to a run signature in the inventory below. Paper values: {}. The paper \
         publishes no baseline accuracies and no data behind its figures, so only its Table 1 d90 values \
         appear beside ours (\"—\" where it has none, e.g. for models it did not run).\n",
        source.argument(),
        paper.source
    )
    .unwrap();

    if provenance.left_out > 0 {
        writeln!(
            md,
            "This report covers the {} searches that `reproduce` of `{preset}` planned in this folder \
             (`plans/{preset}*.json`); {} other search(es) in the folder, not in that plan (another spec's, or an \
             earlier version of this one), are left out with their runs.\n",
            provenance.searches, provenance.left_out
        )
        .unwrap();
    }
    if provenance.unfinished > 0 {
        writeln!(
            md,
            "**Unfinished: this report covers {} of the {} searches that `reproduce` of `{preset}` planned in \
             this folder; the other {} have no record yet** (the reproduction stopped before finishing them; the \
             same `reproduce` command goes on from these results): every section and claim below reads the \
             finished searches only.\n",
            provenance.searches,
            provenance.searches + provenance.unfinished,
            provenance.unfinished
        )
        .unwrap();
    }
    md.push_str(&missing_runs(provenance));

    // Claims.
    let claims = table(frames.claims)?;
    writeln!(md, "## Claims\n").unwrap();
    writeln!(
        md,
        "The paper's five claims as these results decide them. A verdict is `held` or `not held` only when \
         its 95% interval excludes \"no difference\" (or, for (a), the 1% line, which each d90's interval \
         is read against whether or not it is determined: an upper end below the line decides it, one open \
         above does only when the largest probe already lies above the line); `inconclusive` otherwise; \
         `untestable here` when a precondition fails (the trajectory and size claims need pre-training to \
         improve full fine-tuning); `not measured in these results` when no search bears on it. A d90 with \
         a probe whose learning rates do not bracket its best run (`best_lr_at_edge`) is an upper bound, \
         since a better rate could only have raised that probe's score: it still decides a verdict it can \
         only strengthen (below the 1% line; the lower d90 of a comparison that holds or does not) and no \
         other. Each row names the section with the numbers.\n"
    )
    .unwrap();
    md.push_str(&claims.markdown());
    files.insert("claims.csv".to_owned(), claims.csv());
    writeln!(md).unwrap();

    // Table 1.
    let table1 = table(frames.table1)?;
    let models: Vec<&str> = (0..table1.rows.len()).filter_map(|row| table1.cell(row, "model")).collect();
    if models.iter().any(|model| model.contains("MiniLM")) {
        writeln!(
            md,
            "Note: `sentence-transformers/all-MiniLM-L6-v2` was contrastively trained on sentence pairs that \
             include QQP and MNLI; it stands in for a BERT checkpoint on a CPU and is not one of the paper's \
             models, so its numbers test the protocol, not the paper's values.\n"
        )
        .unwrap();
    }
    writeln!(md, "## Table 1: d90\n").unwrap();
    let [
        (quick_name, quick_covered, quick_mutual, quick_seeds, quick_legacy),
        (mrpc_name, mrpc_covered, mrpc_mutual, mrpc_seeds, mrpc_legacy),
    ] = d90::simulate::MEASURED;
    let [said, did] = d90::simulate::MEASURED_QUICK;
    writeln!(
        md,
        "A probe at d trains every learning rate and seed; a seed's score is its best dev accuracy over \
         learning rates among runs that neither diverged nor predicted one class, and the probe's score is \
         the median over seeds. `d90` is the grid d90, as the search recorded it: the smallest probed d from \
         which every larger probed d reached the target (`threshold` x the full fine-tuning baseline's median \
         best), with `bracket_low` the largest failed d below it. `d90_curve` is where the score curve \
         crosses the target: an isotonic (non-decreasing) fit of the probe scores against log d, the \
         crossing interpolated in log d between the probes around it (`<=d`: already reached at the smallest \
         probe; `>d`: not reached at the largest). `interval` is its bootstrap 95% percentile interval \
         over {} resamples of what varies when the experiment is repeated: the probes' seeds and, \
         independently, the baseline's, and where the runs kept each dev example's prediction \
         (`reading: per-example`) the dev examples, one draw shared by every run of the search so the \
         target and the curve move together; each resample recomputes the target, the curve and the \
         crossing. `seed-only` searches ({} of {} here; `reading` says why: runs written before \
         predictions were kept, or no run that counts) resample seeds only, and their intervals are too \
         narrow. In a simulation with a known d90 (`d90/tests/coverage.rs`, {} repeats, 3 seeds), the interval covered the true d90 in {:.1}% of \
         {quick_name} repeats and {:.1}% of {mrpc_name} repeats (and {:.1}% and {:.1}% for quick's SAID \
         and DID searches since its third design, saturating curves probed at three or four d, whose \
         intervals were closed at both ends in {:.1}% and {:.1}% of repeats and determined in {:.1}% and \
         {:.1}%: with three seeds and 872 dev examples most d90s of this design come out undetermined); \
         two independent repeats' estimates fell \
         inside each other's intervals in {:.1}% and {:.1}% of pairs. The seed-only interval covered \
         {:.1}% and {:.1}%, and the interval searches recorded before (seeds only, the grid d90, the \
         extremes of the resamples) {:.1}% and {:.1}%. `determined`: the interval is closed at both ends \
         inside the searched range, high / low is at most the spec's `determined_factor` (default 4) and \
         every probe's learning rates bracket each seed's best run; `determination` gives the reason otherwise. \
         Only determined d90s enter model-size and trajectory slopes, correlations, compression and the \
         generalization table; comparisons and claim (a) read their own intervals. `monotone` says whether \
         the probes had no failure above a success. `map` is the \
         subspace map: scope (`global`, Li et al.; `per_tensor`, the authors' code), SAID's scale grouping \
         and any compatibility mode. `ratio` = grid d90 / paper. Outcomes: `found`; `bound` (the smallest d \
         searched already succeeds: d90 <= `at_most`, a bound, not a value); `not_reached` (the largest d, \
         `largest_tried`, failed); `unable` (see `reason`: a baseline not above the majority class, a \
         target at or below it, every run diverged). `best_lr_at_edge` counts the probes where some seed's \
         best run (among runs that neither diverged nor predicted one class) used the lowest (`low`) or the highest \
         (`high`) learning rate the probe trained, out of the probes with a run that counts: the rates do \
         not bracket the best there (the grid should \
         extend that way; a method's `lr_extend` adds rates beyond an end where the best lies). \
         `head_only` is the control where the spec names one: the task head (for BERT its pooler and \
         classifier) trained alone with the encoder frozen at theta_0, over its own learning \
         rates and the same seeds, scored as a probe is (`head_only_parameters`: the parameters it trains); \
         `head_reaches_target` flags a search whose target \
         the head reaches on the frozen encoder's features (a point comparison, without an interval): such \
         a d90 cannot be attributed to the encoder, and claim (a) does not count it.\n",
        d90::bootstrap::RESAMPLES,
        provenance.seed_only,
        provenance.searches,
        d90::simulate::MEASURED_REPEATS,
        quick_covered * 100.0,
        mrpc_covered * 100.0,
        said.1 * 100.0,
        did.1 * 100.0,
        said.5 * 100.0,
        did.5 * 100.0,
        said.6 * 100.0,
        did.6 * 100.0,
        quick_mutual * 100.0,
        mrpc_mutual * 100.0,
        quick_seeds * 100.0,
        mrpc_seeds * 100.0,
        quick_legacy * 100.0,
        mrpc_legacy * 100.0,
    )
    .unwrap();
    md.push_str(&table1.markdown());
    files.insert("table1.csv".to_owned(), table1.csv());

    // Baselines.
    let baselines = table(frames.baselines)?;
    writeln!(md, "\n## Baselines\n").unwrap();
    writeln!(
        md,
        "Full fine-tuning (median over seeds of the best dev accuracy over learning rates and epochs) beside a \
         published dev accuracy of full fine-tuning for that model and task where one exists \
         (`reference`, with its source; \"—\": none published for this checkpoint), so a weak baseline shows. \
         `best_epoch`: the epoch (from 1) of the best baseline run's best evaluation; `best_at_last_epoch`: how \
         many baseline runs peaked at their last epoch (all of them: the baseline may not have converged); \
         `best_lr_at_edge`: the end of the baseline's learning rates where some seed's best run lies (its \
         rates do not bracket the best, so the baseline and every target set from it may be low).\n"
    )
    .unwrap();
    md.push_str(&baselines.markdown());
    files.insert("baselines.csv".to_owned(), baselines.csv());

    // Orderings.
    let orderings = table(frames.orderings)?;
    writeln!(md, "\n## Orderings the paper reports\n").unwrap();
    writeln!(
        md,
        "Each ordering is the ratio of two d90s on the curve (left / right), computed on every bootstrap \
         resample of both searches (the same draws where they share seeds and dev split: `paired`), with \
         its 95% interval and the share of resamples in which the left d90 is lower (`p_left_lower`). The \
         verdict on \"left <= right\": `held` when the interval lies below 1, `not held` when above, \
         `inconclusive` when it contains 1 (an open d90 gives an open ratio), and `inconclusive` too when \
         the verdict rests on the wrong side of an upper bound: a d90 with a probe whose rates do not \
         bracket a seed's best run could only fall with a better rate, so it may be the lower d90 of a \
         verdict (the left of `held`, the right of `not held`), never the higher (`evidence` says so). \
         `evidence`, where the two \
         searches share seeds, is the score difference at the d both probed (paired by seed): how the \
         curves differ where both were measured, which is not a d90 comparison.\n"
    )
    .unwrap();
    if orderings.rows.is_empty() {
        writeln!(md, "No pair of searches to compare.").unwrap();
    } else {
        md.push_str(&orderings.markdown());
    }
    files.insert("orderings.csv".to_owned(), orderings.csv());

    // Figure 1.
    let figure1 = table(frames.figure1)?;
    writeln!(md, "\n## Figure 1: dev accuracy against d\n").unwrap();
    writeln!(md, "Every probe's score (median over seeds of the best over learning rates) against d (log axis), with the 90% target.\n").unwrap();
    let mut panels: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for row in 0..figure1.rows.len() {
        let key =
            (figure1.cell(row, "model").unwrap_or("").to_owned(), figure1.cell(row, "task").unwrap_or("").to_owned());
        panels.entry(key).or_default().push(row);
    }
    for ((model, task), rows) in &panels {
        let name = format!("figure1__{}.svg", stem(&[short_model(model), task]));
        files.insert(name.clone(), figure1_svg(&figure1, rows, &format!("{} on {task}", short_model(model)))?);
        writeln!(md, "![{} on {task}]({name})", short_model(model)).unwrap();
    }
    files.insert("figure1.csv".to_owned(), figure1.csv());

    // Generalization.
    let generalization = table(frames.generalization)?;
    writeln!(md, "\n## Generalization\n").unwrap();
    writeln!(
        md,
        "For each determined d90 (on the curve, `d90`), one run of the grid d90's probe trained again with \
         training accuracy (probe runs skip that pass): `chosen` says how it was picked. Searches now take \
         the median seed at the learning rate the other seeds score best with, so the run's own dev score \
         never chose it; older searches took the probe's best run by dev score, whose dev accuracy carries \
         a winner's curse (the gap is biased low). Dev (`eval_accuracy`) and training accuracy (on the \
         whole training subset, eval mode; older results: its first 1,000 examples), the gap and the \
         relative gap (gap / training accuracy), beside the bound term sqrt(d90 / n_train) of the paper's \
         compression bound.\n"
    )
    .unwrap();
    if generalization.rows.is_empty() {
        writeln!(md, "No search with a determined d90 (see Table 1).").unwrap();
    } else {
        md.push_str(&generalization.markdown());
        files.insert("generalization.svg".to_owned(), generalization_svg(&generalization)?);
        writeln!(md, "\n![generalization](generalization.svg)").unwrap();
    }
    let correlations = table(frames.correlations)?;
    if correlations.rows.is_empty() {
        writeln!(
            md,
            "\nNo Spearman correlation: it needs at least 3 searches with a determined d90 and values that are not all \
             equal ({} such searches here).",
            generalization.rows.len()
        )
        .unwrap();
    } else {
        writeln!(
            md,
            "\nSpearman correlations of d90 with n, the 95% interval of rho over the d90s' bootstrap \
             resamples (the other variable held at its measured value), the verdict on the sign the paper \
             reports, and a permutation p-value; `flags` marks n < 5 (too few to say anything) and a sign \
             opposite to the paper's.\n"
        )
        .unwrap();
        md.push_str(&correlations.markdown());
    }
    files.insert("generalization.csv".to_owned(), generalization.csv());

    // Model size and pre-training.
    let model_size = table(frames.model_size)?;
    let size_trends = table(frames.size_trends)?;
    writeln!(md, "\n## d90 against model size\n").unwrap();
    if model_size.rows.is_empty() {
        writeln!(md, "Needs one task and method searched on two or more models; these results have none.").unwrap();
    } else {
        writeln!(
            md,
            "Each model's d90 on the curve (shown where determined) and interval, per task and method; the \
             slope of log10 d90 against log10 parameters over the determined d90s, with its 95% interval over \
             the bootstrap resamples; the precondition (pre-training improves full fine-tuning: each point's \
             baseline above its random initialisation's, beyond the interval of the difference; `not \
             measured` without a random-init baseline in the results); and the verdict on a negative slope \
             (the paper: larger models have lower d90).\n"
        )
        .unwrap();
        md.push_str(&model_size.markdown());
        writeln!(md).unwrap();
        md.push_str(&size_trends.markdown());
        files.insert("model_size.csv".to_owned(), model_size.csv());
        files.insert("size_trends.csv".to_owned(), size_trends.csv());
        if (0..model_size.rows.len()).any(|row| model_size.cell(row, "d90").is_some()) {
            files.insert("model_size.svg".to_owned(), model_size_svg(&model_size)?);
            writeln!(md, "\n![d90 against parameters](model_size.svg)").unwrap();
        }
    }

    writeln!(md, "\n## d90 along pre-training\n").unwrap();
    let trajectory = table(frames.trajectory)?;
    if trajectory.rows.is_empty() {
        writeln!(md, "No search of a pre-training checkpoint in these results (a spec's `kind: trajectory`).").unwrap();
    } else {
        writeln!(
            md,
            "SAID or DID d90 of each checkpoint of a pre-training the results ran (`pretraining`, its name in \
             the spec; `update`, the checkpoint), against its own full fine-tuning baseline (with its 95% \
             interval). `d90` (on the curve) is shown where it is determined; `determination` says why not \
             elsewhere, and the outcome says why there is none (`unable`: the checkpoint cannot be \
             fine-tuned above the majority class, the paper's \"unable to compute\"; `not_reached`: no d \
             searched reached the target; `bound`: at most `at_most`). In the figures, unable and unreached \
             checkpoints are marks on the update axis.\n"
        )
        .unwrap();
        md.push_str(&trajectory.markdown());
        files.insert("trajectory.csv".to_owned(), trajectory.csv());
        let trends = table(frames.trajectory_trends)?;
        writeln!(
            md,
            "\nPer pre-training, task and method: the slope of log10 d90 against log10 update over the \
             determined checkpoints after update 0, with its 95% interval over the bootstrap resamples; the \
             precondition (each such checkpoint's baseline above the update-0, random-init, baseline beyond \
             the interval of their difference); the verdict on a falling d90 (`untestable here` when \
             pre-training does not improve full fine-tuning: then a falling d90 says nothing about what \
             pre-training learns).\n"
        )
        .unwrap();
        md.push_str(&trends.markdown());
        files.insert("trajectory_trends.csv".to_owned(), trends.csv());
        let mut panels: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for row in 0..trajectory.rows.len() {
            let key = (
                trajectory.cell(row, "pretraining").unwrap_or("").to_owned(),
                trajectory.cell(row, "method").unwrap_or("").to_owned(),
            );
            panels.entry(key).or_default().push(row);
        }
        for ((pretraining, method), rows) in &panels {
            let name = format!("trajectory__{}.svg", stem(&[pretraining, method]));
            let title = format!("{method} d90 along the pre-training of {pretraining}");
            files.insert(name.clone(), trajectory_svg(&trajectory, rows, &title)?);
            writeln!(md, "\n![{title}]({name})").unwrap();
        }
    }
    let pretraining = table(frames.pretraining)?;
    if !pretraining.rows.is_empty() {
        writeln!(md, "\n### The pre-trainings\n").unwrap();
        writeln!(
            md,
            "Each checkpoint: the held-out MLM loss (nats per predicted token, fixed masks) and the mean \
             training loss since the previous checkpoint.\n"
        )
        .unwrap();
        md.push_str(&pretraining.markdown());
        files.insert("pretraining.csv".to_owned(), pretraining.csv());
    }

    // Compression.
    let compression = table(frames.compression)?;
    writeln!(md, "\n## Compression\n").unwrap();
    writeln!(md, "Bytes a task costs at its determined d90 on the curve (`theta` in f32: 4 x d90, the seed regenerates `P`); `compression` = parameters / d90.\n").unwrap();
    if compression.rows.is_empty() {
        writeln!(md, "No search with a determined d90.").unwrap();
    } else {
        md.push_str(&compression.markdown());
    }
    files.insert("compression.csv".to_owned(), compression.csv());

    // Inventory and provenance.
    let inventory = table(frames.inventory)?;
    writeln!(md, "\n## Inventory\n").unwrap();
    writeln!(
        md,
        "{} searches{}, {} runs{}, {:.2} hours of training in total. Every run, by signature (`inventory.csv` has them all):\n",
        provenance.searches,
        if provenance.measurements < provenance.searches {
            format!(" ({} distinct measurements: a search that two experiments share counts once in the tables)", provenance.measurements)
        } else {
            String::new()
        },
        provenance.runs,
        if provenance.missing_runs.is_empty() {
            String::new()
        } else {
            format!(
                " ({} of the {} the searches rest on: the missing ones are listed at the top)",
                provenance.expected_runs - provenance.missing_runs.len(),
                provenance.expected_runs
            )
        },
        provenance.total_hours
    )
    .unwrap();
    md.push_str(&inventory.markdown());
    files.insert("inventory.csv".to_owned(), inventory.csv());
    writeln!(md, "\n## Provenance\n").unwrap();
    for (label, values) in [
        ("code revisions", &provenance.codes),
        ("devices", &provenance.devices),
        ("torch", &provenance.torch),
        ("hosts", &provenance.hosts),
        ("checkpoints (asset@revision)", &provenance.checkpoints),
        ("data (task@sha256 prefix)", &provenance.data),
    ] {
        writeln!(md, "- {label}: {}", values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")).unwrap();
    }
    match source {
        Source::Preset(_) => writeln!(md, "- preset: `{preset}` (`{}`)", source.file()).unwrap(),
        Source::Spec(_) => writeln!(md, "- spec: `{}`", source.file()).unwrap(),
    }
    files.insert("README.md".to_owned(), md.into_bytes());
    Ok(Report { files })
}

const COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189)];

type DrawError = Box<dyn std::error::Error>;

/// A 640 x 400 SVG figure on white: `draw` draws on the canvas; a drawing error names `file`.
fn svg_figure(
    file: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), DrawError>,
) -> Result<Vec<u8>, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(DrawError::from).and_then(|()| draw(&root));
        drawn
            .and_then(|()| Ok(root.present()?))
            .map_err(|e| ReportError::Svg { file: file.to_owned(), message: e.to_string() })?;
    }
    Ok(svg.into_bytes())
}

/// A series drawn as a line through its points, with a dot at each and a line in the legend.
fn line_with_points<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
    color: RGBColor,
    label: String,
) -> Result<(), DrawError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    chart.draw_series(points.iter().map(|&point| Circle::new(point, 4, color.filled())))?;
    Ok(())
}

/// The legend box (black border, white background), at `position` or plotters' default place.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: Option<SeriesLabelPosition>,
) -> Result<(), DrawError> {
    let mut labels = chart.configure_series_labels();
    labels.border_style(BLACK).background_style(WHITE);
    if let Some(position) = position {
        labels.position(position);
    }
    Ok(labels.draw()?)
}

fn number(table: &Table, row: usize, column: &str) -> Option<f64> {
    table.cell(row, column).and_then(|v| v.parse().ok())
}

/// Score against d on a log axis, one series per method, dashed target line.
fn figure1_svg(table: &Table, rows: &[usize], title: &str) -> Result<Vec<u8>, ReportError> {
    svg_figure("figure1", |root| {
        let ds: Vec<f64> = rows.iter().filter_map(|&r| number(table, r, "d")).collect();
        let (lo, hi) = (ds.iter().copied().fold(f64::MAX, f64::min), ds.iter().copied().fold(0.0, f64::max));
        let (lo, hi) = (lo / 1.5, hi * 1.5);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("d (log scale)")
            .y_desc("dev accuracy")
            .x_label_formatter(&|d| format!("{d:.0}"))
            .draw()?;
        let mut methods: Vec<&str> = rows.iter().filter_map(|&r| table.cell(r, "method")).collect();
        methods.dedup();
        for (idx, method) in methods.iter().enumerate() {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|&&r| table.cell(r, "method") == Some(method))
                .filter_map(|&r| Some((number(table, r, "d")?, number(table, r, "probe_score")?)))
                .collect();
            line_with_points(&mut chart, &points, COLORS[idx % COLORS.len()], (*method).to_owned())?;
        }
        if let Some(target) = rows.iter().find_map(|&r| number(table, r, "target")) {
            chart
                .draw_series(DashedLineSeries::new(vec![(lo, target), (hi, target)], 6, 4, BLACK.stroke_width(1)))?
                .label(format!("target {target:.4}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        }
        legend(&mut chart, Some(SeriesLabelPosition::LowerRight))
    })
}

/// Mark positions and series of a log-y chart whose x is an update or a parameter count.
fn log_range(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if values.is_empty() { (1.0, 10.0) } else { (lo / 2.0, hi * 2.0) }
}

/// d90 against update (log y), one series per task; checkpoints without a d90 are crosses on the
/// update axis.
fn trajectory_svg(table: &Table, rows: &[usize], title: &str) -> Result<Vec<u8>, ReportError> {
    svg_figure("trajectory", |root| {
        let updates: Vec<f64> = rows.iter().filter_map(|&r| number(table, r, "update")).collect();
        let x_hi = updates.iter().copied().fold(1.0, f64::max) * 1.05;
        let d90s: Vec<f64> = rows.iter().filter_map(|&r| number(table, r, "d90")).collect();
        let (lo, hi) = log_range(&d90s);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(-x_hi * 0.05..x_hi, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("pre-training update")
            .y_desc("d90 (log scale)")
            .y_label_formatter(&|d| format!("{d:.0}"))
            .draw()?;
        let mut tasks: Vec<&str> = rows.iter().filter_map(|&r| table.cell(r, "task")).collect();
        tasks.sort_unstable();
        tasks.dedup();
        for (idx, task) in tasks.iter().enumerate() {
            let color = COLORS[idx % COLORS.len()];
            let task_rows: Vec<usize> = rows.iter().copied().filter(|&r| table.cell(r, "task") == Some(task)).collect();
            let points: Vec<(f64, f64)> = task_rows
                .iter()
                .filter_map(|&r| Some((number(table, r, "update")?, number(table, r, "d90")?)))
                .collect();
            line_with_points(&mut chart, &points, color, (*task).to_owned())?;
            let missing: Vec<f64> = task_rows
                .iter()
                .filter(|&&r| table.cell(r, "d90").is_none())
                .filter_map(|&r| number(table, r, "update"))
                .collect();
            chart
                .draw_series(missing.iter().map(|&update| Cross::new((update, lo * 1.15), 6, color.stroke_width(2))))?;
        }
        legend(&mut chart, Some(SeriesLabelPosition::UpperRight))
    })
}

/// d90 against parameters, log-log, one series per task and method.
fn model_size_svg(table: &Table) -> Result<Vec<u8>, ReportError> {
    svg_figure("model_size", |root| {
        let rows: Vec<usize> = (0..table.rows.len()).collect();
        let (x_lo, x_hi) = log_range(&rows.iter().filter_map(|&r| number(table, r, "parameters")).collect::<Vec<_>>());
        let (y_lo, y_hi) = log_range(&rows.iter().filter_map(|&r| number(table, r, "d90")).collect::<Vec<_>>());
        let mut chart = ChartBuilder::on(root)
            .caption("d90 against parameter count", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("parameters (log scale)")
            .y_desc("d90 (log scale)")
            .x_label_formatter(&|d| format!("{d:.1e}"))
            .y_label_formatter(&|d| format!("{d:.0}"))
            .draw()?;
        let mut series: Vec<(String, String)> = rows
            .iter()
            .map(|&r| {
                (table.cell(r, "task").unwrap_or("").to_owned(), table.cell(r, "method").unwrap_or("").to_owned())
            })
            .collect();
        series.dedup();
        for (idx, (task, method)) in series.iter().enumerate() {
            let in_series = |r: usize| table.cell(r, "task") == Some(task) && table.cell(r, "method") == Some(method);
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|&&r| in_series(r))
                .filter_map(|&r| Some((number(table, r, "parameters")?, number(table, r, "d90")?)))
                .collect();
            let slope = rows.iter().find(|&&r| in_series(r)).and_then(|&r| table.cell(r, "slope")).unwrap_or("?");
            let label = format!("{task} {method} (slope {slope})");
            line_with_points(&mut chart, &points, COLORS[idx % COLORS.len()], label)?;
        }
        legend(&mut chart, Some(SeriesLabelPosition::UpperRight))
    })
}

/// Relative generalization gap and the bound term against d90.
fn generalization_svg(table: &Table) -> Result<Vec<u8>, ReportError> {
    svg_figure("generalization", |root| {
        let rows: Vec<usize> = (0..table.rows.len()).collect();
        let ds: Vec<f64> = rows.iter().filter_map(|&r| number(table, r, "d90")).collect();
        let (lo, hi) =
            (ds.iter().copied().fold(f64::MAX, f64::min) / 1.5, ds.iter().copied().fold(0.0, f64::max) * 1.5);
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|&r| [number(table, r, "relative_gap"), number(table, r, "bound_term")])
            .flatten()
            .collect();
        let top = values.iter().copied().fold(0.05, f64::max) * 1.2;
        let bottom = values.iter().copied().fold(0.0, f64::min) * 1.2;
        let mut chart = ChartBuilder::on(root)
            .caption("relative generalization gap and sqrt(d90 / n) against d90", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((lo..hi).log_scale(), bottom..top)?;
        chart.configure_mesh().x_desc("d90 (log scale)").x_label_formatter(&|d| format!("{d:.0}")).draw()?;
        for (idx, (column, label)) in
            [("relative_gap", "relative gap"), ("bound_term", "sqrt(d90 / n_train)")].into_iter().enumerate()
        {
            let color = COLORS[idx];
            let points: Vec<(f64, f64)> =
                rows.iter().filter_map(|&r| Some((number(table, r, "d90")?, number(table, r, column)?))).collect();
            chart
                .draw_series(points.iter().map(|&point| Circle::new(point, 5, color.filled())))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        legend(&mut chart, None)
    })
}
